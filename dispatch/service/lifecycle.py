"""A trip order's life as its requester and driver see it: filed, submitted, cancelled, started and
finished."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

from geoalchemy2.shape import from_shape
from shapely import Point
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dispatch.models import Assignment, AssignmentOrder, TripOrder
from dispatch.orders import OrderStatus, move
from dispatch.schemas import Comment, OrderCreate
from dispatch.service.approvals import approval_chain, traits
from dispatch.service.scope import get_order, owner_or, record
from dispatch.settings import DispatchSettings
from fleet import audit
from fleet.auth import Actor, require
from fleet.db import utcnow
from fleet.errors import Forbidden, Invalid
from fleet.models import Driver, OrgUnit, Role, Vehicle, VehicleStatus


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
    # The pool serving a requester is usually a sibling unit (the motor pool), so the check is
    # against every vehicle of the requester's organisation (their root unit's tree).
    root_path = actor.unit_path.split("/", 1)[0] + "/"
    seats = session.scalar(
        select(func.max(Vehicle.seats))
        .join(OrgUnit, OrgUnit.id == Vehicle.unit_id)
        .where(
            OrgUnit.path.startswith(root_path, autoescape=True),
            Vehicle.status != VehicleStatus.DISPOSED,
        )
    )
    if seats is None or data.passengers > seats:
        raise Invalid(
            f"no vehicle of the pool seats {data.passengers} (the largest seats {seats or 0})",
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
        emergency=data.emergency,
        notes=data.notes,
        status=OrderStatus.DRAFT,
        # Stamped by the clock `now` came from, not the database server's: the overdue check
        # compares it with that clock.
        created_at=now,
    )
    session.add(order)
    session.flush()
    record(session, actor, order, "create", None)
    return order


def submit(
    *, session: Session, actor: Actor, order_id: int, zone: ZoneInfo, night: tuple[int, int]
) -> TripOrder:
    """Sends the order for approval; the steps it needs are fixed now, from its unit's rules."""
    order = get_order(session=session, actor=actor, order_id=order_id, lock=True)
    owner_or(actor, order)
    before = audit.snapshot(order)
    order.status = move(order.status, OrderStatus.SUBMITTED)
    order.approval_steps = approval_chain(
        session, order, traits(session=session, order=order, zone=zone, night=night)
    )
    order.approvals_done = 0
    session.flush()
    record(session, actor, order, "submit", before)
    return order


def _release(session: Session, order_id: int) -> None:
    """The order leaves its assignment; the vehicle and driver are released with the last order
    the assignment carries (a merged trip goes on for the others)."""
    for carriage in session.scalars(
        select(AssignmentOrder).where(AssignmentOrder.order_id == order_id, AssignmentOrder.active)
    ):
        carriage.active = False
        session.flush()
        others = session.scalar(
            select(func.count()).where(
                AssignmentOrder.assignment_id == carriage.assignment_id, AssignmentOrder.active
            )
        )
        if not others:
            held = session.get(Assignment, carriage.assignment_id)
            if held is not None:
                held.active = False


def cancel(*, session: Session, actor: Actor, order_id: int, data: Comment) -> TripOrder:
    order = get_order(session=session, actor=actor, order_id=order_id, lock=True)
    owner_or(actor, order, Role.DISPATCHER, Role.ADMIN)
    before = audit.snapshot(order)
    order.status = move(order.status, OrderStatus.CANCELLED)
    order.notes = (order.notes + f"\n取消 / cancelled: {data.comment.strip()}").strip()
    _release(session, order.id)
    session.flush()
    record(session, actor, order, "cancel", before)
    return order


def start(
    *, session: Session, actor: Actor, order_id: int, odometer_km: float | None = None
) -> TripOrder:
    return _drive(session, actor, order_id, OrderStatus.IN_PROGRESS, "start", odometer_km)


def finish(
    *, session: Session, actor: Actor, order_id: int, odometer_km: float | None = None
) -> TripOrder:
    return _drive(session, actor, order_id, OrderStatus.COMPLETED, "finish", odometer_km)


def _drive(
    session: Session,
    actor: Actor,
    order_id: int,
    to: OrderStatus,
    action: str,
    odometer_km: float | None,
) -> TripOrder:
    """The driver of the assignment (or a dispatcher) starts and finishes the trip. A merged
    trip starts and finishes as one: the other orders it carries move with this one."""
    order = get_order(session=session, actor=actor, order_id=order_id, lock=True)
    held = session.scalar(
        select(Assignment)
        .join(AssignmentOrder, AssignmentOrder.assignment_id == Assignment.id)
        .where(AssignmentOrder.order_id == order.id, AssignmentOrder.active, Assignment.active)
    )
    driver_user = (
        session.scalar(select(Driver.user_id).where(Driver.id == held.driver_id)) if held else None
    )
    if not actor.has(Role.DISPATCHER, Role.ADMIN) and (
        driver_user is None or driver_user != actor.user_id
    ):
        raise Forbidden("only the assigned driver or a dispatcher starts and finishes a trip")
    moving = [order]
    if held is not None:
        others = session.scalars(
            select(TripOrder)
            .join(AssignmentOrder, AssignmentOrder.order_id == TripOrder.id)
            .where(
                AssignmentOrder.assignment_id == held.id,
                AssignmentOrder.active,
                TripOrder.id != order.id,
            )
            .order_by(TripOrder.id)
            .with_for_update(of=TripOrder)
        ).all()
        # Only those still where this one is (one cancelled or already moved stays).
        moving += [o for o in others if o.status == order.status]
    befores = [audit.snapshot(o) for o in moving]
    for each in moving:
        each.status = move(each.status, to)
        if odometer_km is not None:
            if to == OrderStatus.IN_PROGRESS:
                each.odometer_start_km = odometer_km
            elif each.odometer_start_km is not None and odometer_km < each.odometer_start_km:
                raise Invalid(
                    f"the odometer read {each.odometer_start_km:g} km at the start",
                    field="odometer_km",
                )
            else:
                each.odometer_end_km = odometer_km
    session.flush()
    for each, before in zip(moving, befores, strict=True):
        record(session, actor, each, action, before)
    return order
