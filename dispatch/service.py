"""Services of dispatch: trip orders through their life, approval, assignment.

Each takes the session first and never commits; the request commits. Every status change writes
an audit entry in the same transaction.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from geoalchemy2.shape import from_shape, to_shape
from psycopg import errors as pg_errors
from shapely import Point
from sqlalchemy import Select, func, select
from sqlalchemy.dialects.postgresql import Range
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dispatch.models import Assignment, OrderDecision, TripOrder
from dispatch.orders import OrderStatus, move
from dispatch.schemas import AssignIn, Comment, OrderCreate
from dispatch.settings import DispatchSettings
from fleet import audit
from fleet.auth import Actor, require, units_in_scope
from fleet.db import utcnow
from fleet.errors import Conflict, Forbidden, Invalid, NotFound
from fleet.models import Driver, Role, Vehicle, VehicleStatus
from fleet.registry import Listing


def _view(order: TripOrder) -> dict[str, Any]:
    origin = to_shape(order.origin)
    return {
        "id": order.id,
        "status": order.status,
        "purpose": order.purpose,
        "passengers": order.passengers,
        "start_at": order.start_at,
        "end_at": order.end_at,
        "origin": {"type": "Point", "coordinates": [origin.x, origin.y]},
        "origin_name": order.origin_name,
        "destinations": [
            {"point": {"type": "Point", "coordinates": [d["lon"], d["lat"]]}, "name": d["name"]}
            for d in order.destinations
        ],
        "category": order.category,
        "body_class": order.body_class,
        "out_of_region": order.out_of_region,
        "overnight": order.overnight,
        "notes": order.notes,
        "requester_id": order.requester_id,
        "unit_id": order.unit_id,
        "updated_at": order.updated_at,
    }


def view(*, session: Session, order: TripOrder) -> dict[str, Any]:
    """The order with its decisions and its assignment, as the API answers it."""
    shown = _view(order)
    shown["decisions"] = [
        {"approved": d.approved, "comment": d.comment, "by": d.username, "at": d.at}
        for d in session.scalars(
            select(OrderDecision)
            .where(OrderDecision.order_id == order.id)
            .order_by(OrderDecision.id)
        )
    ]
    held = session.scalar(
        select(Assignment).where(Assignment.order_id == order.id, Assignment.active)
    )
    shown["assignment"] = (
        None
        if held is None
        else {
            "vehicle_id": held.vehicle_id,
            "driver_id": held.driver_id,
            "from": held.period.lower,
            "to": held.period.upper,
            "reason": held.reason,
        }
    )
    return shown


def _record(session: Session, actor: Actor, order: TripOrder, action: str, before: Any) -> None:
    audit.record(
        session=session,
        actor=actor.ref,
        action=action,
        entity="trip_order",
        entity_id=order.id,
        before=before,
        after=audit.snapshot(order),
    )


def create_order(
    *, session: Session, actor: Actor, data: OrderCreate, settings: DispatchSettings
) -> TripOrder:
    require(actor, "order", "create")
    now = utcnow()
    if data.end_at <= data.start_at:
        raise Invalid("the window must end after it starts", field="end_at")
    if data.start_at < now - timedelta(minutes=settings.order_past_grace_min):
        raise Invalid("the window starts in the past", field="start_at")
    if data.end_at - data.start_at > timedelta(days=settings.order_max_days):
        raise Invalid(f"an order covers at most {settings.order_max_days:g} days", field="end_at")
    if len(data.destinations) > settings.max_destinations:
        raise Invalid(f"at most {settings.max_destinations} destinations", field="destinations")
    seats = session.scalar(
        select(func.max(Vehicle.seats)).where(
            Vehicle.unit_id.in_(units_in_scope(actor)),
            Vehicle.status != VehicleStatus.DISPOSED,
        )
    )
    if seats is None or data.passengers > seats:
        raise Invalid(
            f"no vehicle of your pool seats {data.passengers} (the largest seats {seats or 0})",
            field="passengers",
        )
    lon, lat = data.origin["coordinates"]
    order = TripOrder(
        requester_id=actor.user_id,
        unit_id=actor.unit_id,
        purpose=data.purpose,
        passengers=data.passengers,
        start_at=data.start_at,
        end_at=data.end_at,
        origin=from_shape(Point(lon, lat), srid=4326),
        origin_name=data.origin_name,
        destinations=[
            {"name": d.name, "lon": d.point["coordinates"][0], "lat": d.point["coordinates"][1]}
            for d in data.destinations
        ],
        category=data.category,
        body_class=data.body_class,
        out_of_region=data.out_of_region,
        overnight=data.overnight,
        notes=data.notes,
        status=OrderStatus.DRAFT,
    )
    session.add(order)
    session.flush()
    _record(session, actor, order, "create", None)
    return order


def _scoped(actor: Actor) -> Select[Any]:
    """Orders the actor may see: their own, and for staff every order of their units."""
    stmt = select(TripOrder)
    if actor.has(Role.ADMIN, Role.APPROVER, Role.DISPATCHER, Role.SUPERVISOR, Role.DRIVER):
        return stmt.where(
            TripOrder.unit_id.in_(units_in_scope(actor)) | (TripOrder.requester_id == actor.user_id)
        )
    return stmt.where(TripOrder.requester_id == actor.user_id)


def get_order(*, session: Session, actor: Actor, order_id: int, lock: bool = False) -> TripOrder:
    stmt = _scoped(actor).where(TripOrder.id == order_id)
    order = session.scalar(stmt.with_for_update() if lock else stmt)
    if order is None:
        raise NotFound(f"no order {order_id}")
    return order


def list_orders(
    *,
    session: Session,
    actor: Actor,
    listing: Listing,
    mine: bool = False,
    status: OrderStatus | None = None,
) -> tuple[list[TripOrder], int]:
    stmt = _scoped(actor)
    if mine:
        stmt = stmt.where(TripOrder.requester_id == actor.user_id)
    if status is not None:
        stmt = stmt.where(TripOrder.status == status)
    total = session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery()))
    items = session.scalars(
        stmt.order_by(TripOrder.start_at.desc(), TripOrder.id.desc())
        .limit(listing.limit)
        .offset(listing.offset)
    ).all()
    return list(items), int(total or 0)


def _owner_or(actor: Actor, order: TripOrder, *roles: Role) -> None:
    if order.requester_id != actor.user_id and not actor.has(*roles):
        raise Forbidden("only the requester (or a dispatcher) may do this to the order")


def submit(*, session: Session, actor: Actor, order_id: int) -> TripOrder:
    order = get_order(session=session, actor=actor, order_id=order_id, lock=True)
    _owner_or(actor, order)
    before = audit.snapshot(order)
    order.status = move(order.status, OrderStatus.SUBMITTED)
    session.flush()
    _record(session, actor, order, "submit", before)
    return order


def decide(
    *, session: Session, actor: Actor, order_id: int, approve: bool, data: Comment
) -> TripOrder:
    require(actor, "order", "approve")
    order = get_order(session=session, actor=actor, order_id=order_id, lock=True)
    if order.requester_id == actor.user_id:
        raise Forbidden("an approver does not approve their own order")
    comment = data.comment.strip()
    if not approve and not comment:
        raise Invalid("a rejection needs a comment", field="comment")
    before = audit.snapshot(order)
    order.status = move(order.status, OrderStatus.APPROVED if approve else OrderStatus.REJECTED)
    session.add(
        OrderDecision(
            order_id=order.id,
            approved=approve,
            comment=comment,
            user_id=actor.user_id,
            username=actor.username,
            at=utcnow(),
        )
    )
    session.flush()
    _record(session, actor, order, "approve" if approve else "reject", before)
    return order


def _release(session: Session, order_id: int) -> None:
    for held in session.scalars(
        select(Assignment).where(Assignment.order_id == order_id, Assignment.active)
    ):
        held.active = False


def cancel(*, session: Session, actor: Actor, order_id: int, data: Comment) -> TripOrder:
    order = get_order(session=session, actor=actor, order_id=order_id, lock=True)
    _owner_or(actor, order, Role.DISPATCHER, Role.ADMIN)
    before = audit.snapshot(order)
    order.status = move(order.status, OrderStatus.CANCELLED)
    order.notes = (order.notes + f"\n取消 / cancelled: {data.comment.strip()}").strip()
    _release(session, order.id)
    session.flush()
    _record(session, actor, order, "cancel", before)
    return order


def _fits(order: TripOrder, vehicle: Vehicle) -> None:
    if vehicle.status != VehicleStatus.ACTIVE:
        raise Invalid(f"{vehicle.plate} is {vehicle.status}, not available", field="vehicle_id")
    if vehicle.seats < order.passengers:
        raise Invalid(
            f"{vehicle.plate} seats {vehicle.seats}, the order carries {order.passengers}",
            field="vehicle_id",
        )
    if order.category is not None and vehicle.category != order.category:
        raise Invalid(f"the order asks for a {order.category} vehicle", field="vehicle_id")
    if order.body_class is not None and vehicle.body_class != order.body_class:
        raise Invalid(f"the order asks for a {order.body_class}", field="vehicle_id")


def window(order: TripOrder, settings: DispatchSettings) -> Range[datetime]:
    """What an assignment holds: the order's window with the turnaround buffer on both sides."""
    buffer = timedelta(minutes=settings.turnaround_min)
    return Range(order.start_at - buffer, order.end_at + buffer, bounds="[)")


def assign(
    *,
    session: Session,
    actor: Actor,
    order_id: int,
    data: AssignIn,
    settings: DispatchSettings,
) -> TripOrder:
    """Holds a vehicle and a driver for the order. Of two dispatchers racing for one vehicle,
    the database's exclusion constraint lets exactly one through; the other gets Conflict."""
    require(actor, "order", "assign")
    order = get_order(session=session, actor=actor, order_id=order_id, lock=True)
    vehicle = session.scalar(
        select(Vehicle).where(
            Vehicle.id == data.vehicle_id, Vehicle.unit_id.in_(units_in_scope(actor))
        )
    )
    if vehicle is None:
        raise Invalid(f"unknown vehicle {data.vehicle_id}", field="vehicle_id")
    driver = session.scalar(
        select(Driver).where(Driver.id == data.driver_id, Driver.unit_id.in_(units_in_scope(actor)))
    )
    if driver is None or not driver.active:
        raise Invalid(f"unknown or inactive driver {data.driver_id}", field="driver_id")
    _fits(order, vehicle)
    before = audit.snapshot(order)
    order.status = move(order.status, OrderStatus.ASSIGNED)
    held = Assignment(
        order_id=order.id,
        vehicle_id=vehicle.id,
        driver_id=driver.id,
        period=window(order, settings),
        reason=data.reason.strip(),
        assigned_by=actor.user_id,
    )
    try:
        with session.begin_nested():
            session.add(held)
            session.flush()
    except IntegrityError as error:
        if isinstance(error.orig, pg_errors.ExclusionViolation):
            who = "driver" if "driver" in str(error.orig) else "vehicle"
            taken = vehicle.plate if who == "vehicle" else driver.name
            raise Conflict(
                f"{who} {taken} is already assigned in this window (turnaround included)",
                field=f"{who}_id",
            ) from None
        raise
    _record(session, actor, order, "assign", before)
    return order


def start(*, session: Session, actor: Actor, order_id: int) -> TripOrder:
    return _drive(session, actor, order_id, OrderStatus.IN_PROGRESS, "start")


def finish(*, session: Session, actor: Actor, order_id: int) -> TripOrder:
    return _drive(session, actor, order_id, OrderStatus.COMPLETED, "finish")


def _drive(
    session: Session, actor: Actor, order_id: int, to: OrderStatus, action: str
) -> TripOrder:
    """The driver of the assignment (or a dispatcher) starts and finishes the trip."""
    order = get_order(session=session, actor=actor, order_id=order_id, lock=True)
    held = session.scalar(
        select(Assignment).where(Assignment.order_id == order.id, Assignment.active)
    )
    driver_user = (
        session.scalar(select(Driver.user_id).where(Driver.id == held.driver_id)) if held else None
    )
    if not actor.has(Role.DISPATCHER, Role.ADMIN) and (
        driver_user is None or driver_user != actor.user_id
    ):
        raise Forbidden("only the assigned driver or a dispatcher starts and finishes a trip")
    before = audit.snapshot(order)
    order.status = move(order.status, to)
    session.flush()
    _record(session, actor, order, action, before)
    return order
