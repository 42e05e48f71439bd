"""Registry objects the tests make, with the fields a test does not care about filled in: a vehicle
is a four-seat general-duty sedan, a driver holds a C1 licence, unless the test says otherwise."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from fleet import registry
from fleet.auth import Actor
from fleet.models import Driver, OrgUnit, Vehicle
from fleet.schemas import DriverCreate, VehicleCreate
from geofence import service as fences
from geofence.models import Fence
from geofence.schemas import FenceCreate


def add_vehicle(
    session: Session, unit: OrgUnit, plate: str, *, actor: Actor | None = None, **fields: Any
) -> Vehicle:
    """A vehicle of `unit`, made through the registry as the system (or `actor`); `fields` set or
    override any field of `VehicleCreate` (energy is petrol unless given)."""
    data = {
        "plate": plate,
        "category": "general",
        "body_class": "sedan",
        "seats": 4,
        "energy": "petrol",
        "unit_id": unit.id,
        **fields,
    }
    return registry.create_vehicle(
        session=session, actor=actor or Actor.system(unit), data=VehicleCreate(**data)
    )


def add_driver(
    session: Session, unit: OrgUnit, name: str, *, actor: Actor | None = None, **fields: Any
) -> Driver:
    """A driver of `unit` with a C1 licence, made as `add_vehicle` makes a vehicle."""
    data = {"name": name, "licence_class": "C1", "unit_id": unit.id, **fields}
    return registry.create_driver(
        session=session, actor=actor or Actor.system(unit), data=DriverCreate(**data)
    )


def add_circle(
    session: Session, unit: OrgUnit, name: str, kind: str, at: tuple[float, float], radius_m: float
) -> Fence:
    """A circular fence of `unit` (its owner) around `at` (lon, lat), made through the service."""
    data = FenceCreate(
        name=name, kind=kind, geometry={"type": "Point", "coordinates": list(at)}, radius_m=radius_m
    )
    return fences.create_fence(session=session, actor=Actor.system(unit), data=data)
