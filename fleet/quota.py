"""Vehicle quotas (编制): how many vehicles of each category a unit may hold, the vehicles it
holds against them, and reallocation (统筹调剂) of a vehicle to another unit within them.

A vehicle counts against its unit's quota until it is disposed of; disposing of one frees its
place. A unit with no quota for a category is not limited in it. Registering or moving a vehicle
into a unit whose quota is full is refused (422 naming `unit_id`); a unit may still be over its
quota when the quota was lowered below what it holds, and is flagged so.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fleet import audit
from fleet.auth import Actor, require, units_in_scope
from fleet.errors import Invalid, NotFound
from fleet.models import Device, OrgUnit, UnitQuota, Vehicle, VehicleCategory, VehicleStatus


def _held(session: Session, unit_id: int, category: VehicleCategory, excluding: int | None) -> int:
    stmt = select(func.count()).where(
        Vehicle.unit_id == unit_id,
        Vehicle.category == category,
        Vehicle.status != VehicleStatus.DISPOSED,
    )
    if excluding is not None:
        stmt = stmt.where(Vehicle.id != excluding)
    return int(session.scalar(stmt) or 0)


def check_place(
    session: Session,
    *,
    unit_id: int,
    category: VehicleCategory | str,
    excluding: int | None = None,
    field: str = "unit_id",
) -> None:
    """Refuses a vehicle of `category` entering `unit_id` when its quota there is full.
    `excluding`: the vehicle being moved or changed, which is not counted twice. The quota row is
    locked until the transaction ends, so two registrations cannot both take the last place."""
    category = VehicleCategory(category)
    limit = session.scalar(
        select(UnitQuota.quota)
        .where(UnitQuota.unit_id == unit_id, UnitQuota.category == category)
        .with_for_update()
    )
    if limit is None:
        return
    held = _held(session, unit_id, category, excluding)
    if held >= limit:
        raise Invalid(
            f"unit {unit_id} holds {held} {category.value} vehicles against a quota of {limit}:"
            " no place is free (dispose of a vehicle or raise the quota first)",
            field=field,
        )


def _unit(session: Session, actor: Actor, unit_id: int, field: str) -> OrgUnit:
    unit = session.scalar(
        select(OrgUnit).where(OrgUnit.id == unit_id, OrgUnit.id.in_(units_in_scope(actor)))
    )
    if unit is None:
        raise Invalid(f"unknown unit {unit_id}", field=field)
    return unit


def quotas_of(session: Session, unit_id: int) -> dict[str, int]:
    return {
        VehicleCategory(category).value: quota
        for category, quota in session.execute(
            select(UnitQuota.category, UnitQuota.quota)
            .where(UnitQuota.unit_id == unit_id)
            .order_by(UnitQuota.category)
        )
    }


def summary(*, session: Session, actor: Actor) -> dict[str, Any]:
    """Quota against vehicles held (not disposed), per unit in the caller's scope and category,
    per unit in all, and over every unit; units over their quota in any category are flagged."""
    require(actor, "vehicle", "read")
    scope = units_in_scope(actor)
    units = session.scalars(select(OrgUnit).where(OrgUnit.id.in_(scope)).order_by(OrgUnit.path))
    quotas: dict[int, dict[str, int]] = defaultdict(dict)
    for unit_id, category, quota in session.execute(
        select(UnitQuota.unit_id, UnitQuota.category, UnitQuota.quota).where(
            UnitQuota.unit_id.in_(scope)
        )
    ):
        quotas[unit_id][VehicleCategory(category).value] = quota
    held: dict[int, dict[str, int]] = defaultdict(dict)
    for unit_id, category, count in session.execute(
        select(Vehicle.unit_id, Vehicle.category, func.count())
        .where(Vehicle.unit_id.in_(scope), Vehicle.status != VehicleStatus.DISPOSED)
        .group_by(Vehicle.unit_id, Vehicle.category)
    ):
        held[unit_id][VehicleCategory(category).value] = int(count)
    rows = []
    total_quota = total_held = over_units = 0
    for unit in units:
        categories: list[dict[str, Any]] = []
        for category in VehicleCategory:
            limit = quotas[unit.id].get(category.value)
            count = held[unit.id].get(category.value, 0)
            if limit is None and count == 0:
                continue
            categories.append(
                {
                    "category": category.value,
                    "quota": limit,
                    "held": count,
                    "free": None if limit is None else max(limit - count, 0),
                    "over": limit is not None and count > limit,
                }
            )
        unit_quota = sum(c["quota"] or 0 for c in categories)
        unit_held = sum(c["held"] for c in categories)
        over = any(c["over"] for c in categories)
        rows.append(
            {
                "unit_id": unit.id,
                "unit_code": unit.code,
                "unit_name": unit.name,
                "categories": categories,
                "quota": unit_quota if quotas[unit.id] else None,
                "held": unit_held,
                "over": over,
            }
        )
        total_quota += unit_quota
        total_held += unit_held
        over_units += over
    return {
        "units": rows,
        "total": {"quota": total_quota, "held": total_held, "over_units": over_units},
    }


def set_quotas(
    *, session: Session, actor: Actor, unit_id: int, quotas: Mapping[VehicleCategory, int | None]
) -> dict[str, int]:
    """Sets a unit's quota per category (None: no limit in it); the others stay. Lowering a
    quota below what the unit holds is allowed: the unit is then flagged over its quota."""
    require(actor, "unit", "write")
    unit = session.scalar(
        select(OrgUnit).where(OrgUnit.id == unit_id, OrgUnit.id.in_(units_in_scope(actor)))
    )
    if unit is None:
        raise NotFound(f"unit {unit_id} not found")
    before = quotas_of(session, unit.id)
    for category, limit in quotas.items():
        row = session.get(UnitQuota, (unit.id, category), with_for_update=True)
        if limit is None:
            if row is not None:
                session.delete(row)
        elif row is None:
            session.add(UnitQuota(unit_id=unit.id, category=category, quota=limit))
        else:
            row.quota = limit
    session.flush()
    after = quotas_of(session, unit.id)
    if after != before:
        audit.record(
            session=session,
            actor=actor.ref,
            action="update",
            entity="unit_quota",
            entity_id=unit.id,
            before=before,
            after=after,
        )
    return after


def reallocate(
    *, session: Session, actor: Actor, vehicle_id: int, unit_id: int, reason: str
) -> Vehicle:
    """Moves a vehicle to another unit of the caller's scope (统筹调剂), within the receiving
    unit's quota, with the trackers fitted to it, and records the move with its reason."""
    require(actor, "vehicle", "write")
    vehicle = session.scalar(
        select(Vehicle)
        .where(Vehicle.id == vehicle_id, Vehicle.unit_id.in_(units_in_scope(actor)))
        .with_for_update()
    )
    if vehicle is None:
        raise NotFound(f"vehicle {vehicle_id} not found")
    target = _unit(session, actor, unit_id, "unit_id")
    if target.id == vehicle.unit_id:
        raise Invalid("the vehicle already belongs to this unit", field="unit_id")
    if vehicle.status == VehicleStatus.DISPOSED:
        raise Invalid("a disposed vehicle is not reallocated", field="vehicle_id")
    check_place(session, unit_id=target.id, category=vehicle.category, excluding=vehicle.id)
    before = audit.snapshot(vehicle)
    # Its trackers go with it, so that the receiving unit's staff see them and the old one's not.
    for device in session.scalars(
        select(Device).where(Device.vehicle_id == vehicle.id, Device.unit_id == vehicle.unit_id)
    ):
        with audit.changing(
            session=session, actor=actor.ref, entity="device", obj=device, action="reallocate"
        ):
            device.unit_id = target.id
    vehicle.unit_id = target.id
    session.flush()
    audit.record(
        session=session,
        actor=actor.ref,
        action="reallocate",
        entity="vehicle",
        entity_id=vehicle.id,
        before=before,
        after={**audit.snapshot(vehicle), "reason": reason},
    )
    return vehicle
