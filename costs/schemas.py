"""Request and response shapes of the costs API."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from pydantic import Field, field_validator, model_validator

from costs.models import CostKind
from dispatch.schemas import _point
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
