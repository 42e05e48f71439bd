"""Request and response shapes of the costs API."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, Field, field_validator, model_validator

from costs.models import CostKind
from dispatch.schemas import PointOut, _point
from fleet.schemas import Id, Moment, Strict


class CostIn(Strict):
    """A cost entered by hand (a receipt). Fuel needs litres, charging kWh."""

    kind: CostKind
    vehicle_id: Id
    at: Moment = Field(description="When it was paid (fuel: the fill), ISO-8601 with a zone.")
    amount: Decimal = Field(ge=0, lt=1_000_000, decimal_places=2, description="CNY.")
    litres: float | None = Field(None, gt=0, lt=2000)
    kwh: float | None = Field(None, gt=0, lt=2000)
    unit_price: float | None = Field(None, gt=0, lt=100_000, description="CNY per litre or kWh.")
    product: str = Field("", max_length=32, description="Fuel grade, e.g. 92#.")
    station_name: str = Field("", max_length=200)
    station: dict[str, Any] | None = Field(None, description="GeoJSON Point of the station.")
    fuel_card: str = Field("", max_length=32)
    odometer_km: float | None = Field(None, ge=0, lt=10_000_000, description="From the receipt.")
    vendor: str = Field("", max_length=200, description="Garage, insurer, toll road...")
    note: str = Field("", max_length=2000)
    next_due_on: date | None = Field(
        None, description="Maintenance, insurance, inspection: when the next one is due."
    )

    _check_station = field_validator("station")(
        classmethod(lambda cls, v: None if v is None else _point(v))
    )

    @model_validator(mode="after")
    def _quantity(self) -> CostIn:
        if self.kind == CostKind.FUEL and self.litres is None:
            raise ValueError("a fuel fill needs litres")
        if self.kind == CostKind.CHARGING and self.kwh is None:
            raise ValueError("a charging session needs kwh")
        if self.at.tzinfo is None:
            raise ValueError("at needs a time zone")
        return self


# ---- responses ------------------------------------------------------------------------------


class AllocationOut(BaseModel):
    order_id: int | None = Field(description="The order; null for driving no order covered.")
    share: float = Field(description="The order's share of the record, 0..1 (by distance).")
    amount: float = Field(description="CNY.")
    distance_m: float


class CostOut(BaseModel):
    id: int
    kind: CostKind
    vehicle_id: int
    unit_id: int
    at: datetime
    amount: float = Field(description="CNY.")
    litres: float | None
    kwh: float | None
    unit_price: float | None
    product: str
    station_name: str
    station: PointOut | None
    fuel_card: str
    odometer_km: float | None
    vendor: str
    note: str
    next_due_on: date | None
    statement_id: int | None
    issuer: str
    external_id: str | None
    trip_id: int | None
    order_id: int | None
    allocations: list[AllocationOut]


class CostCreated(CostOut):
    alerts: list[int] = Field(description="Ids of the alerts the fuel and energy checks raised.")


class StatementFormatOut(BaseModel):
    issuer: str
    name: str
    kind: str
    columns: dict[str, list[str]] = Field(description="For each field, the headers accepted.")
    required: list[str]
    time_formats: list[str]


class StatementFormats(BaseModel):
    items: list[StatementFormatOut]


class StatementOut(BaseModel):
    id: int
    issuer: str
    filename: str
    rows: int
    added: int
    by: str
    imported_at: datetime


class Statements(BaseModel):
    items: list[StatementOut]


class StatementImported(BaseModel):
    statement_id: int
    rows: int
    added: int
    duplicates: int
    already_imported: bool
    alerts: list[int]
