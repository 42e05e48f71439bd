"""Response shapes of the telematics API. Times are ISO-8601 strings in UTC, as the service
writes them. A track or a day of trips can be large (up to 200,000 fixes), so those endpoints
document these shapes without validating each row again on the way out."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class PositionProperties(BaseModel):
    fix_time: str = Field(description="ISO-8601, UTC.")
    speed_kmh: float | None
    heading_deg: float | None
    altitude_m: float | None
    ignition: bool | None
    odometer_km: float | None
    fuel_l: float | None
    alarm_bits: int = Field(description="JT/T 808 alarm flags, as sent.")
    status_bits: int = Field(description="JT/T 808 status flags, as sent.")
    attributes: dict[str, Any]


class PositionFeature(BaseModel):
    type: Literal["Feature"] = "Feature"
    geometry: dict[str, Any] | None = Field(description="A GeoJSON Point; null without a fix.")
    properties: PositionProperties


class Track(BaseModel):
    """A vehicle's fixes in time order, as a GeoJSON FeatureCollection of points."""

    type: Literal["FeatureCollection"] = "FeatureCollection"
    features: list[PositionFeature]
    vehicle_id: int
    truncated: bool = Field(description="True when the period held more fixes than are sent.")


class TripOut(BaseModel):
    id: int
    vehicle_id: int
    start_at: str
    end_at: str
    distance_m: float
    duration_s: float
    max_speed_kmh: float | None
    avg_speed_kmh: float | None
    odometer_start_km: float | None
    odometer_end_km: float | None
    odometer_distance_km: float | None
    path: dict[str, Any] = Field(description="GeoJSON LineString of the trip.")


class Trips(BaseModel):
    items: list[TripOut]


class LivePosition(BaseModel):
    """A vehicle's latest fix as the gateways last saw it."""

    model_config = ConfigDict(extra="allow")

    vehicle_id: int
    unit_id: int
    fix_ms: int
    fix_time: str
    received_ms: int
    lat: float | None
    lon: float | None
    speed_kmh: float | None
    heading_deg: float | None
    ignition: bool | None


class LiveVehicle(BaseModel):
    vehicle_id: int
    plate: str
    status: str
    unit_id: int
    position: LivePosition | None = Field(description="Null until the vehicle is heard from.")


class Live(BaseModel):
    items: list[LiveVehicle]


class UnknownDeviceOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    protocol: str
    identifier: str
    first_seen_at: datetime
    last_seen_at: datetime
    attempts: int
    remote_addr: str | None
    last_message: str | None


class Dropped(BaseModel):
    index: int = Field(description="The fix's place in the batch, from 0.")
    reason: str


class TelemetryAccepted(BaseModel):
    accepted: int
    dropped: list[Dropped]
