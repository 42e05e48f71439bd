"""Merged trips (合并用车): one assignment carrying several orders, and its undoing before the trip
starts. The rules (seats, window, visiting order, cost shares) are `dispatch.merging`'s."""

from __future__ import annotations

from datetime import timedelta

from geoalchemy2.shape import from_shape, to_shape
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import Range
from sqlalchemy.orm import Session

from dispatch import merging
from dispatch.models import Assignment, AssignmentOrder, TripOrder
from dispatch.orders import IllegalMove, OrderStatus, move
from dispatch.schemas import Comment, MergeIn
from dispatch.service.assignment import hold, licensed, route_through, vehicle_and_driver
from dispatch.service.scope import get_order, record
from dispatch.settings import DispatchSettings
from fleet import audit
from fleet.auth import Actor, require, units_in_scope
from fleet.errors import Invalid, NotFound
from fleet.models import Vehicle, VehicleStatus


def rider(order: TripOrder) -> merging.Rider:
    origin = to_shape(order.origin)
    return merging.Rider(
        id=order.id,
        passengers=order.passengers,
        start_at=order.start_at,
        end_at=order.end_at,
        origin=(origin.y, origin.x),
        destinations=tuple((d["lat"], d["lon"]) for d in order.destinations),
    )


def _fit(orders: list[TripOrder], vehicle: Vehicle) -> None:
    if vehicle.status != VehicleStatus.ACTIVE:
        raise Invalid(f"{vehicle.plate} is {vehicle.status}, not available", field="vehicle_id")
    riders = [rider(o) for o in orders]
    if merging.seats_short(riders, vehicle.seats):
        counts = " + ".join(f"#{o.id}: {o.passengers}" for o in orders)
        raise Invalid(
            f"the orders carry {sum(o.passengers for o in orders)} passengers ({counts}),"
            f" {vehicle.plate} seats {vehicle.seats}",
            field="order_ids",
        )
    for order in orders:
        if order.category is not None and vehicle.category != order.category:
            raise Invalid(
                f"order #{order.id} asks for a {order.category} vehicle", field="vehicle_id"
            )
        if order.body_class is not None and vehicle.body_class != order.body_class:
            raise Invalid(f"order #{order.id} asks for a {order.body_class}", field="vehicle_id")


def _trip(held: Assignment, order_ids: list[int]) -> dict[str, object]:
    """The assignment as the audit log keeps it, with the orders it carries."""
    return {
        "vehicle_id": held.vehicle_id,
        "driver_id": held.driver_id,
        "from": held.period.lower.isoformat() if held.period.lower else None,
        "to": held.period.upper.isoformat() if held.period.upper else None,
        "route_source": held.route_source,
        "reason": held.reason,
        "active": held.active,
        "order_ids": order_ids,
    }


def _replaced(session: Session, orders: list[TripOrder]) -> list[Assignment]:
    """The assignments the merge takes the place of: an order may already be assigned (joining
    a car with seats to spare), before its trip starts, if every order its assignment carries is
    merged too. Any other status than approved or assigned is refused (409)."""
    named = {o.id for o in orders}
    found: dict[int, Assignment] = {}
    for order in orders:
        if order.status == OrderStatus.APPROVED:
            continue
        if order.status == OrderStatus.ASSIGNED and order.approval != "approved":
            # An emergency order assigned before its approval: un-merging could not return it
            # to approved, so it is not merged until it is approved.
            raise IllegalMove(
                f"order #{order.id} is not approved yet (approval {order.approval})",
                field="order_ids",
            )
        held = None
        if order.status == OrderStatus.ASSIGNED:
            held = session.scalar(
                select(Assignment)
                .join(AssignmentOrder, AssignmentOrder.assignment_id == Assignment.id)
                .where(
                    AssignmentOrder.order_id == order.id,
                    AssignmentOrder.active,
                    Assignment.active,
                )
                .with_for_update(of=Assignment)
            )
        if held is None:
            raise IllegalMove(
                f"order #{order.id} is {order.status}: only approved orders (or assigned ones"
                " not yet started) are merged",
                field="order_ids",
            )
        found[held.id] = held
    for held in found.values():
        left = [i for i in carried(session, held.id) if i not in named]
        if left:
            listed = ", ".join(f"#{i}" for i in left)
            raise Invalid(
                f"the car of order(s) already assigned also carries {listed}: name them too",
                field="order_ids",
            )
    return list(found.values())


def _release(session: Session, actor: Actor, held: Assignment, action: str) -> None:
    """Ends the assignment and what it carries, audited."""
    ids = carried(session, held.id)
    before = _trip(held, ids)
    held.active = False
    for carriage in session.scalars(
        select(AssignmentOrder).where(AssignmentOrder.assignment_id == held.id)
    ):
        carriage.active = False
    session.flush()
    audit.record(
        session=session,
        actor=actor.ref,
        action=action,
        entity="assignment",
        entity_id=held.id,
        before=before,
        after=_trip(held, []),
    )


def merge(
    *, session: Session, actor: Actor, data: MergeIn, settings: DispatchSettings
) -> tuple[Assignment, list[TripOrder]]:
    """One assignment carrying the approved orders: their passengers within the seats, their
    windows joined (with the turnaround buffer), the route from the first origin through every
    destination on the roads. 409 when the vehicle or driver is taken in the joined window."""
    require(actor, "order", "assign")
    ids = list(data.order_ids)
    if len(set(ids)) != len(ids):
        raise Invalid("an order is named twice", field="order_ids")
    # Locked in id order, so two merges of overlapping sets cannot deadlock.
    orders = [
        get_order(session=session, actor=actor, order_id=i, lock=True) for i in sorted(set(ids))
    ]
    replaced = _replaced(session, orders)
    vehicle, driver = vehicle_and_driver(session, actor, data.vehicle_id, data.driver_id)
    _fit(orders, vehicle)
    licensed(driver, vehicle)
    riders = [rider(o) for o in orders]
    start, end = merging.joined_window(riders)
    buffer = timedelta(minutes=settings.turnaround_min)
    route, source = route_through(session, merging.stops(riders))
    trip_lead = merging.lead(riders)
    held = Assignment(
        order_id=trip_lead.id,
        vehicle_id=vehicle.id,
        driver_id=driver.id,
        period=Range(start - buffer, end + buffer, bounds="[)"),
        route=from_shape(route, srid=4326),
        route_source=source,
        reason=data.reason.strip(),
        assigned_by=actor.user_id,
    )
    befores = {o.id: audit.snapshot(o) for o in orders}
    for order in orders:
        if order.status == OrderStatus.APPROVED:
            order.status = move(order.status, OrderStatus.ASSIGNED)
    for old in replaced:
        _release(session, actor, old, "merge")
    hold(session, held, [o.id for o in orders], vehicle, driver)
    for order in orders:
        record(session, actor, order, "merge", befores[order.id])
    audit.record(
        session=session,
        actor=actor.ref,
        action="merge",
        entity="assignment",
        entity_id=held.id,
        after=_trip(held, [o.id for o in orders]),
    )
    return held, orders


def carried(session: Session, assignment_id: int) -> list[int]:
    """The ids of the orders the assignment carries now."""
    return list(
        session.scalars(
            select(AssignmentOrder.order_id)
            .where(AssignmentOrder.assignment_id == assignment_id, AssignmentOrder.active)
            .order_by(AssignmentOrder.order_id)
        )
    )


def unmerge(
    *, session: Session, actor: Actor, assignment_id: int, data: Comment
) -> list[TripOrder]:
    """Releases a merged trip's vehicle and driver and returns its orders to approved, before
    the trip starts (409 once any of them is under way)."""
    require(actor, "order", "assign")
    held = session.scalar(
        select(Assignment)
        .join(Vehicle, Vehicle.id == Assignment.vehicle_id)
        .where(
            Assignment.id == assignment_id,
            Assignment.active,
            Vehicle.unit_id.in_(units_in_scope(actor)),
        )
        .with_for_update(of=Assignment)
    )
    if held is None:
        raise NotFound(f"no merged trip {assignment_id}")
    ids = carried(session, held.id)
    # Every order must be the caller's to see: a trip carrying another scope's order is not theirs.
    orders = [get_order(session=session, actor=actor, order_id=i, lock=True) for i in ids]
    if len(orders) < 2:
        raise IllegalMove(
            f"assignment {assignment_id} carries one order: cancel it instead", field="order_ids"
        )
    befores = {o.id: audit.snapshot(o) for o in orders}
    for order in orders:
        order.status = move(order.status, OrderStatus.APPROVED)
    note = data.comment.strip()
    if note:
        held.reason = (held.reason + f"\n拆分 / unmerged: {note}").strip()
    _release(session, actor, held, "unmerge")
    for order in orders:
        record(session, actor, order, "unmerge", befores[order.id])
    return orders
