"""Request and response shapes of the dispatch API (small: requesters use phones)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from dispatch.approval import Condition
from fleet.models import BodyClass, VehicleCategory

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


def _point(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict) or value.get("type") != "Point":
        raise ValueError("expected a GeoJSON Point")
    coordinates = value.get("coordinates")
    if (
        not isinstance(coordinates, list | tuple)
        or len(coordinates) != 2
        or not all(isinstance(c, int | float) and not isinstance(c, bool) for c in coordinates)
    ):
        raise ValueError("a Point's coordinates are [longitude, latitude]")
    lon, lat = float(coordinates[0]), float(coordinates[1])
    if not (-180 <= lon <= 180 and -90 <= lat <= 90):
        raise ValueError(f"[{lon}, {lat}] is not a longitude and latitude on Earth")
    return {"type": "Point", "coordinates": [lon, lat]}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Destination(Strict):
    point: dict[str, Any]
    name: Name

    _check_point = field_validator("point")(classmethod(lambda cls, v: _point(v)))


class OrderCreate(Strict):
    purpose: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
    passengers: int = Field(ge=1, le=60, description="People travelling, the driver not counted.")
    start_at: datetime = Field(description="Start of the window, ISO-8601 with a zone.")
    end_at: datetime = Field(description="End of the window, ISO-8601 with a zone.")
    origin: dict[str, Any] = Field(description="GeoJSON Point, WGS-84.")
    origin_name: Name
    destinations: list[Destination] = Field(min_length=1)
    category: VehicleCategory | None = None
    body_class: BodyClass | None = None
    out_of_region: bool = False
    overnight: bool = False
    emergency: bool = Field(
        False, description="May be assigned before approval; the approval is then due after."
    )
    notes: str = Field("", max_length=2000)

    _check_origin = field_validator("origin")(classmethod(lambda cls, v: _point(v)))

    @field_validator("start_at", "end_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("give the time zone (e.g. 2026-11-24T09:00:00+08:00)")
        return value


class Comment(Strict):
    comment: str = Field("", max_length=2000)


class Reading(Strict):
    odometer_km: float | None = Field(
        None, ge=0, le=10_000_000, description="The dashboard's odometer, km (optional)."
    )


class AssignIn(Strict):
    vehicle_id: int
    driver_id: int
    reason: str = Field("", max_length=2000, description="Why, when overriding the top suggestion.")


class RuleIn(Strict):
    unit_id: int
    condition: Condition
    param: float | None = Field(None, ge=0, description="Days or passengers, for those conditions.")
    level: int = Field(ge=0, le=10, description="0: the order's own unit, 1: its parent, ...")
    name: str = Field("", max_length=200)
