"""Services of dispatch: trip orders through their life, approval, assignment.

Each takes the session first and never commits; the request commits. Every status change writes
an audit entry in the same transaction.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from geoalchemy2.shape import from_shape, to_shape
from psycopg import errors as pg_errors
from redis import Redis
from shapely import LineString, Point
from shapely.geometry import mapping
from sqlalchemy import Select, func, select, text
from sqlalchemy.dialects.postgresql import Range
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dispatch import approval, matching
from dispatch.models import ApprovalRule, Assignment, OrderDecision, TripOrder
from dispatch.orders import IllegalMove, OrderStatus, move
from dispatch.schemas import AssignIn, Comment, OrderCreate, RuleIn
from dispatch.settings import DispatchSettings
from fleet import audit, channels, events
from fleet.auth import Actor, require, units_in_scope
from fleet.db import utcnow
from fleet.errors import Conflict, Forbidden, Invalid, NotFound
from fleet.models import Driver, OrgUnit, Role, Vehicle, VehicleStatus
from fleet.registry import Listing
from geofence.models import CalendarDay
from telematics import roads
from telematics import service as telematics_service
from telematics.models import Trip


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
        "approval_steps": order.approval_steps,
        "approvals_done": order.approvals_done,
        "approval": order.approval,
        "emergency": order.emergency,
        "odometer_start_km": order.odometer_start_km,
        "odometer_end_km": order.odometer_end_km,
        "updated_at": order.updated_at,
    }


def trips_of(session: Session, held: Assignment) -> list[Trip]:
    """The trips the segmentation found for the assigned vehicle within the hold."""
    return list(
        session.scalars(
            select(Trip)
            .where(
                Trip.vehicle_id == held.vehicle_id,
                Trip.start_at < held.period.upper,
                Trip.end_at > held.period.lower,
            )
            .order_by(Trip.start_at)
        )
    )


def view(*, session: Session, order: TripOrder) -> dict[str, Any]:
    """The order with its decisions and its assignment, as the API answers it."""
    return views(session=session, orders=[order])[0]


def views(*, session: Session, orders: Sequence[TripOrder]) -> list[dict[str, Any]]:
    """`view` of many orders in three queries, whatever their number: their decisions, their
    active assignments, and the trips driven within those."""
    ids = [o.id for o in orders]
    if not ids:
        return []
    decisions: dict[int, list[OrderDecision]] = defaultdict(list)
    for decision in session.scalars(
        select(OrderDecision).where(OrderDecision.order_id.in_(ids)).order_by(OrderDecision.id)
    ):
        decisions[decision.order_id].append(decision)
    held = {
        a.order_id: a
        for a in session.scalars(
            select(Assignment).where(Assignment.order_id.in_(ids), Assignment.active)
        )
    }
    driven: dict[int, list[Trip]] = defaultdict(list)
    if held:
        rows = session.execute(
            select(Assignment.order_id, Trip)
            .join(
                Trip,
                (Trip.vehicle_id == Assignment.vehicle_id)
                & (Trip.start_at < func.upper(Assignment.period))
                & (Trip.end_at > func.lower(Assignment.period)),
            )
            .where(Assignment.id.in_([a.id for a in held.values()]))
            .order_by(Trip.start_at)
        )
        for order_id, trip in rows:
            driven[order_id].append(trip)
    return [_shown(o, decisions[o.id], held.get(o.id), driven[o.id]) for o in orders]


def _shown(
    order: TripOrder,
    decisions: list[OrderDecision],
    held: Assignment | None,
    trips: list[Trip],
) -> dict[str, Any]:
    shown = _view(order)
    shown["decisions"] = [
        {"approved": d.approved, "comment": d.comment, "by": d.username, "at": d.at}
        for d in decisions
    ]
    shown["assignment"] = None
    shown["trips"] = []
    if held is not None:
        shown["assignment"] = {
            "vehicle_id": held.vehicle_id,
            "driver_id": held.driver_id,
            "from": held.period.lower,
            "to": held.period.upper,
            "reason": held.reason,
            "route": mapping(to_shape(held.route)) if held.route is not None else None,
            "route_source": held.route_source,
        }
        shown["trips"] = [
            {
                "id": t.id,
                "start_at": t.start_at,
                "end_at": t.end_at,
                "distance_m": t.distance_m,
                "duration_s": t.duration_s,
            }
            for t in trips
        ]
        shown["actual"] = {
            "distance_m": round(sum(t.distance_m for t in trips), 1),
            "duration_s": round(sum(t.duration_s for t in trips), 1),
        }
    return shown


def _record(session: Session, actor: Actor, order: TripOrder, action: str, before: Any) -> None:
    """The audit entry of a change, and its announcement to phones and desks after the commit
    (to the requester, the staff of the order's unit, and the driver last assigned, who hears
    of a cancellation too)."""
    driver_user_id = session.scalar(
        select(Driver.user_id)
        .join(Assignment, Assignment.driver_id == Driver.id)
        .where(Assignment.order_id == order.id)
        .order_by(Assignment.id.desc())
        .limit(1)
    )
    events.announce(
        session,
        channels.ORDERS,
        {
            "type": "orders",
            "items": [
                {
                    "id": order.id,
                    "status": order.status,
                    "action": action,
                    "unit_id": order.unit_id,
                    "requester_id": order.requester_id,
                    "driver_user_id": driver_user_id,
                    "start_at": order.start_at.isoformat(),
                    "approvals_done": order.approvals_done,
                }
            ],
        },
    )
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
    _record(session, actor, order, "create", None)
    return order


def _scoped(actor: Actor) -> Select[Any]:
    """Orders the actor may see: their own, for staff every order of their units, and for a
    driver the orders they are assigned to (a motor pool's driver serves other units' orders,
    and sees no other order of their own unit's)."""
    seen = TripOrder.requester_id == actor.user_id
    if actor.has(Role.ADMIN, Role.APPROVER, Role.DISPATCHER, Role.SUPERVISOR):
        seen = seen | TripOrder.unit_id.in_(units_in_scope(actor))
    if actor.has(Role.DRIVER):
        seen = seen | TripOrder.id.in_(_driven_by(actor.user_id))
    return select(TripOrder).where(seen)


def _driven_by(user_id: int | None) -> Select[Any]:
    """The orders whose active assignment names the user as the driver."""
    return (
        select(Assignment.order_id)
        .join(Driver, Driver.id == Assignment.driver_id)
        .where(Assignment.active, Driver.user_id == user_id)
    )


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


def traits(
    *, session: Session, order: TripOrder, zone: ZoneInfo, night: tuple[int, int]
) -> approval.Traits:
    """What approval rules look at: computed from the order, the working calendar (a day it does
    not cover counts as non-working: the stricter chain) and the night window."""
    start, end = order.start_at.astimezone(zone), order.end_at.astimezone(zone)
    days = [start.date() + timedelta(days=n) for n in range((end.date() - start.date()).days + 1)]
    working = dict(
        session.execute(
            select(CalendarDay.day, CalendarDay.working).where(CalendarDay.day.in_(days))
        ).all()
    )
    night_start, night_end = night
    touches_night = False
    moment = start
    while moment < end and not touches_night:  # by the quarter hour: windows are short
        second = moment.hour * 3600 + moment.minute * 60
        touches_night = second >= night_start or second < night_end
        moment += timedelta(minutes=15)
    return approval.Traits(
        out_of_region=order.out_of_region,
        days=(order.end_at - order.start_at).total_seconds() / 86_400,
        non_working_day=any(not working.get(d, False) for d in days),
        night=touches_night,
        body_class=order.body_class,
        passengers=order.passengers,
    )


def _chain(session: Session, order: TripOrder, traits_: approval.Traits) -> list[dict[str, Any]]:
    unit_path = session.scalar(select(OrgUnit.path).where(OrgUnit.id == order.unit_id)) or ""
    ancestors = [int(p) for p in unit_path.strip("/").split("/") if p]  # root first
    rules = [
        approval.Rule(condition=r.condition, level=r.level, name=r.name, param=r.param)
        for r in session.scalars(select(ApprovalRule).where(ApprovalRule.unit_id.in_(ancestors)))
    ]
    chain = []
    for step in approval.steps(traits_, rules):
        # The unit `level` steps above the order's own; past the root, the root.
        target = ancestors[max(0, len(ancestors) - 1 - step.level)]
        chain.append({"level": step.level, "unit_id": target, "reasons": list(step.reasons)})
    return chain


def submit(
    *, session: Session, actor: Actor, order_id: int, zone: ZoneInfo, night: tuple[int, int]
) -> TripOrder:
    """Sends the order for approval; the steps it needs are fixed now, from its unit's rules."""
    order = get_order(session=session, actor=actor, order_id=order_id, lock=True)
    _owner_or(actor, order)
    before = audit.snapshot(order)
    order.status = move(order.status, OrderStatus.SUBMITTED)
    order.approval_steps = _chain(
        session, order, traits(session=session, order=order, zone=zone, night=night)
    )
    order.approvals_done = 0
    session.flush()
    _record(session, actor, order, "submit", before)
    return order


def _may_decide(session: Session, actor: Actor, unit_id: int) -> bool:
    """An approver decides a step at their own unit or any unit below theirs."""
    path = session.scalar(select(OrgUnit.path).where(OrgUnit.id == unit_id)) or ""
    return path.startswith(actor.unit_path)


def _has_decided(session: Session, actor: Actor, order_id: int) -> bool:
    return (
        session.scalar(
            select(OrderDecision.id)
            .where(OrderDecision.order_id == order_id, OrderDecision.user_id == actor.user_id)
            .limit(1)
        )
        is not None
    )


def decide(
    *,
    session: Session,
    actor: Actor,
    order_id: int,
    approve: bool,
    data: Comment,
    distinct_deciders: bool,
) -> TripOrder:
    """Approves the order's current step (the last one approves the order) or rejects it.

    With `distinct_deciders` (segregation of duties) nobody decides two steps of one order."""
    require(actor, "order", "approve")
    order = get_order(session=session, actor=actor, order_id=order_id, lock=True)
    if order.requester_id == actor.user_id:
        raise Forbidden("an approver does not approve their own order")
    comment = data.comment.strip()
    if not approve and not comment:
        raise Invalid("a rejection needs a comment", field="comment")
    after_the_fact = order.emergency and order.status in (
        OrderStatus.ASSIGNED,
        OrderStatus.IN_PROGRESS,
        OrderStatus.COMPLETED,
    )
    if order.approval != "pending" or not (order.status == OrderStatus.SUBMITTED or after_the_fact):
        raise IllegalMove(
            f"an order that is {order.status} (approval {order.approval}) has nothing to decide"
        )
    if distinct_deciders and _has_decided(session, actor, order.id):
        raise Forbidden(
            "each step of an approval chain is decided by a different person: you already"
            " decided a step of this order"
        )
    steps = order.approval_steps or [{"level": 0, "unit_id": order.unit_id, "reasons": []}]
    step = steps[order.approvals_done]
    if not _may_decide(session, actor, step["unit_id"]):
        raise Forbidden(
            f"step {order.approvals_done + 1} of {len(steps)} is for an approver of unit"
            f" {step['unit_id']} ({', '.join(step['reasons'])})"
        )
    before = audit.snapshot(order)
    if not approve:
        order.approval = "rejected"
        if not after_the_fact:  # an emergency trip already under way stays on record, flagged
            order.status = move(order.status, OrderStatus.REJECTED)
    else:
        order.approvals_done += 1
        if order.approvals_done == len(steps):
            order.approval = "approved"
            if not after_the_fact:
                order.status = move(order.status, OrderStatus.APPROVED)
    session.add(
        OrderDecision(
            order_id=order.id,
            step=order.approvals_done if approve else order.approvals_done + 1,
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


def overdue_emergencies(
    *, session: Session, actor: Actor, settings: DispatchSettings
) -> list[TripOrder]:
    """Emergency orders assigned before approval whose approval has not come in time."""
    require(actor, "order", "approve")
    due = utcnow() - timedelta(hours=settings.emergency_approval_due_h)
    return list(
        session.scalars(
            _scoped(actor)
            .where(
                TripOrder.emergency,
                TripOrder.approval == "pending",
                TripOrder.status.in_(
                    [OrderStatus.ASSIGNED, OrderStatus.IN_PROGRESS, OrderStatus.COMPLETED]
                ),
                TripOrder.created_at < due,
            )
            .order_by(TripOrder.created_at)
        )
    )


def pending_for(*, session: Session, actor: Actor, distinct_deciders: bool) -> list[TripOrder]:
    """Submitted orders whose current step the actor may decide."""
    require(actor, "order", "approve")
    submitted = session.scalars(
        _scoped(actor)
        .where(TripOrder.approval == "pending", TripOrder.status != OrderStatus.DRAFT)
        .where(TripOrder.status.not_in([OrderStatus.CANCELLED, OrderStatus.REJECTED]))
        .order_by(TripOrder.start_at)
    ).all()
    return [
        o
        for o in submitted
        if o.requester_id != actor.user_id
        and o.approvals_done < len(o.approval_steps)
        and _may_decide(session, actor, o.approval_steps[o.approvals_done]["unit_id"])
        and not (distinct_deciders and _has_decided(session, actor, o.id))
    ]


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


def planned_route(session: Session, order: TripOrder) -> tuple[LineString, str]:
    """Origin -> each destination -> origin: on the imported roads (pgRouting) where every leg
    can be routed, else straight legs. Returns the line and which it is ("roads"/"straight")."""
    origin = to_shape(order.origin)
    stops = [(origin.y, origin.x), *((d["lat"], d["lon"]) for d in order.destinations)]
    stops.append(stops[0])
    legs: list[list[tuple[float, float]]] = []
    conn = session.connection()
    if roads.loaded(conn):
        for a, b in itertools.pairwise(stops):
            leg = roads.path_between(conn, a, b)
            if leg is None:
                legs = []
                break
            legs.append(leg)
    if legs:
        points = [p for leg in legs for p in leg]
        return LineString([(lon, lat) for lat, lon in points]), "roads"
    return LineString([(lon, lat) for lat, lon in stops]), "straight"


def window(order: TripOrder, settings: DispatchSettings) -> Range[datetime]:
    """What an assignment holds: the order's window with the turnaround buffer on both sides."""
    buffer = timedelta(minutes=settings.turnaround_min)
    return Range(order.start_at - buffer, order.end_at + buffer, bounds="[)")


def assign(
    *,
    session: Session,
    redis: Redis,
    actor: Actor,
    order_id: int,
    data: AssignIn,
    settings: DispatchSettings,
) -> TripOrder:
    """Holds a vehicle and a driver for the order. Choosing another vehicle than the top
    suggestion needs a reason. Of two dispatchers racing for one vehicle, the database's
    exclusion constraint lets exactly one through; the other gets Conflict."""
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
    if order.status == OrderStatus.SUBMITTED and not order.emergency:
        raise IllegalMove("a submitted order is assigned once approved (unless it is an emergency)")
    _fits(order, vehicle)
    reason = data.reason.strip()
    if not reason:
        facts, _ = vehicle_facts(
            session=session, redis=redis, actor=actor, orders=[order], settings=settings
        )
        ranked = matching.rank(_order_facts(order), facts)
        if not ranked or ranked[0].vehicle_id != vehicle.id:
            top = f"the top suggestion {ranked[0].plate}" if ranked else "no suggestion at all"
            raise Invalid(f"choosing {vehicle.plate} over {top} needs a reason", field="reason")
    before = audit.snapshot(order)
    order.status = move(order.status, OrderStatus.ASSIGNED)
    route, source = planned_route(session, order)
    held = Assignment(
        order_id=order.id,
        vehicle_id=vehicle.id,
        driver_id=driver.id,
        period=window(order, settings),
        route=from_shape(route, srid=4326),
        route_source=source,
        reason=reason,
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
    if odometer_km is not None:
        if to == OrderStatus.IN_PROGRESS:
            order.odometer_start_km = odometer_km
        elif order.odometer_start_km is not None and odometer_km < order.odometer_start_km:
            raise Invalid(
                f"the odometer read {order.odometer_start_km:g} km at the start",
                field="odometer_km",
            )
        else:
            order.odometer_end_km = odometer_km
    session.flush()
    _record(session, actor, order, action, before)
    return order


# ---- suggestions and the plan ---------------------------------------------------------------


def _order_facts(order: TripOrder) -> matching.OrderFacts:
    origin = to_shape(order.origin)
    return matching.OrderFacts(
        id=order.id,
        passengers=order.passengers,
        lat=origin.y,
        lon=origin.x,
        urban=not order.out_of_region,
        category=order.category,
        body_class=order.body_class,
    )


def _holds(session: Session, low: datetime, high: datetime) -> list[tuple[int, int, Any]]:
    """(vehicle, driver, period) of every active assignment within a day of [low, high): enough
    for any turnaround buffer, and each is then checked against each window exactly."""
    margin = timedelta(days=1)
    rows = session.execute(
        select(Assignment.vehicle_id, Assignment.driver_id, Assignment.period).where(
            Assignment.active,
            Assignment.period.overlaps(Range(low - margin, high + margin, bounds="[)")),
        )
    ).all()
    return [(r[0], r[1], r[2]) for r in rows]


def _overlaps(period: Any, window_: Range[datetime]) -> bool:
    return bool(period.lower < window_.upper and window_.lower < period.upper)


def vehicle_facts(
    *,
    session: Session,
    redis: Redis,
    actor: Actor,
    orders: list[TripOrder],
    settings: DispatchSettings,
) -> tuple[list[matching.VehicleFacts], list[tuple[int, int, Any]]]:
    """The pool in the actor's scope as matching sees it, and the holds meeting the orders."""
    vehicles = session.scalars(
        select(Vehicle).where(Vehicle.unit_id.in_(units_in_scope(actor))).order_by(Vehicle.id)
    ).all()
    windows = {o.id: window(o, settings) for o in orders}
    holds = _holds(session, min(o.start_at for o in orders), max(o.end_at for o in orders))
    last = telematics_service.last_positions(redis=redis, vehicle_ids=[v.id for v in vehicles])
    now = utcnow()
    # This (UTC) month by the same clock as the rest, not the database server's now().
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    month: dict[int, Any] = dict(
        session.execute(
            text(
                "SELECT vehicle_id, sum(distance_m) / 1000 FROM trip"
                " WHERE start_at >= :month_start GROUP BY vehicle_id"
            ),
            {"month_start": month_start},
        ).all()
    )
    fresh_after = (now - timedelta(hours=settings.tracker_fresh_h)).timestamp() * 1000
    facts = []
    for vehicle in vehicles:
        fix = last.get(vehicle.id)
        lat = lon = None
        if fix is not None:
            lat, lon = fix["lat"], fix["lon"]
        elif vehicle.depot is not None:
            centre = to_shape(vehicle.depot).centroid
            lat, lon = centre.y, centre.x
        busy = frozenset(
            order_id
            for order_id, w in windows.items()
            for v, _, period in holds
            if v == vehicle.id and _overlaps(period, w)
        )
        facts.append(
            matching.VehicleFacts(
                id=vehicle.id,
                plate=vehicle.plate,
                seats=vehicle.seats,
                category=vehicle.category,
                body_class=vehicle.body_class,
                active=vehicle.status == VehicleStatus.ACTIVE,
                new_energy=vehicle.new_energy,
                lat=lat,
                lon=lon,
                tracker_fresh=fix is not None and fix["fix_ms"] >= fresh_after,
                month_km=float(month.get(vehicle.id) or 0.0),
                busy=busy,
            )
        )
    return facts, holds


def _free_drivers(
    session: Session, actor: Actor, holds: list[tuple[int, int, Any]], window_: Range[datetime]
) -> list[Driver]:
    taken = {d for _, d, period in holds if _overlaps(period, window_)}
    drivers = session.scalars(
        select(Driver)
        .where(Driver.active, Driver.unit_id.in_(units_in_scope(actor)))
        .order_by(Driver.id)
    ).all()
    return [d for d in drivers if d.id not in taken]


def _travel_minutes(
    session: Session, order: matching.OrderFacts, facts: list[matching.VehicleFacts]
) -> dict[int, float]:
    """Minutes on the roads from each fitting vehicle to the origin, where roads are loaded."""
    conn = session.connection()
    if not roads.loaded(conn):
        return {}
    fitting = [f for f in facts if matching.why_not(order, f) is None]
    seconds = roads.travel_seconds(
        conn,
        [(f.lat or 0.0, f.lon or 0.0) for f in fitting],
        (order.lat, order.lon),
    )
    return {f.id: s / 60 for f, s in zip(fitting, seconds, strict=True) if s is not None}


def suggestions(
    *, session: Session, redis: Redis, actor: Actor, order_id: int, settings: DispatchSettings
) -> dict[str, Any]:
    """Ranked vehicles for an approved order with the parts of each cost, the vehicles left out
    and why, and the drivers free for the window."""
    require(actor, "order", "assign")
    order = get_order(session=session, actor=actor, order_id=order_id)
    facts, holds = vehicle_facts(
        session=session, redis=redis, actor=actor, orders=[order], settings=settings
    )
    wanted = _order_facts(order)
    ranked = matching.rank(wanted, facts, travel_min=_travel_minutes(session, wanted, facts))
    return {
        "merge": _merge_options(session, actor, order, facts),
        "order_id": order.id,
        "status": order.status,
        "candidates": [
            {"vehicle_id": c.vehicle_id, "plate": c.plate, "cost": c.cost, "parts": c.parts}
            for c in ranked
        ],
        "excluded": [
            {"vehicle_id": f.id, "plate": f.plate, "reason": reason}
            for f in facts
            if (reason := matching.why_not(wanted, f)) is not None
        ],
        "drivers": [
            {"id": d.id, "name": d.name}
            for d in _free_drivers(session, actor, holds, window(order, settings))
        ],
    }


def _as_trip(order: TripOrder, seats: int | None, vehicle_id: int | None) -> matching.Trip:
    return matching.Trip(
        id=order.id,
        start_t=order.start_at.timestamp(),
        end_t=order.end_at.timestamp(),
        passengers=order.passengers,
        destinations=tuple((d["lat"], d["lon"]) for d in order.destinations),
        seats=seats,
        vehicle_id=vehicle_id,
    )


def _merge_options(
    session: Session, actor: Actor, order: TripOrder, facts: list[matching.VehicleFacts]
) -> list[dict[str, Any]]:
    slack = timedelta(hours=1)
    rows = session.execute(
        _scoped(actor)
        .add_columns(Assignment.vehicle_id, Vehicle.seats)
        .outerjoin(Assignment, (Assignment.order_id == TripOrder.id) & Assignment.active)
        .outerjoin(Vehicle, Vehicle.id == Assignment.vehicle_id)
        .where(
            TripOrder.id != order.id,
            TripOrder.status.in_(
                [OrderStatus.APPROVED, OrderStatus.ASSIGNED, OrderStatus.IN_PROGRESS]
            ),
            TripOrder.start_at.between(order.start_at - slack, order.start_at + slack),
        )
    ).all()
    others = [_as_trip(o, seats, vehicle) for o, vehicle, seats in rows]
    largest = max((f.seats for f in facts if f.active), default=0)
    return matching.merge_options(_as_trip(order, None, None), others, largest_seats=largest)


def dispatch_plan(
    *, session: Session, redis: Redis, actor: Actor, settings: DispatchSettings
) -> dict[str, Any]:
    """The optimal assignment of the approved, unassigned orders in scope, for review (nothing is
    assigned until the dispatcher accepts each pair through `assign`), beside the greedy one."""
    require(actor, "order", "assign")
    orders = list(
        session.scalars(
            _scoped(actor)
            .where(TripOrder.status == OrderStatus.APPROVED)
            .order_by(TripOrder.start_at, TripOrder.id)
        )
    )
    if not orders:
        return {"pairs": [], "unserved": [], "total_cost": 0.0, "greedy_total_cost": 0.0}
    facts, holds = vehicle_facts(
        session=session, redis=redis, actor=actor, orders=orders, settings=settings
    )
    wanted = [_order_facts(o) for o in orders]
    best = matching.plan(wanted, facts)
    baseline = matching.greedy(wanted, facts)
    by_order = {o.id: o for o in orders}
    plates = {f.id: f.plate for f in facts}
    planned: list[tuple[Range[datetime], int]] = []
    pairs = []
    for order_id, vehicle_id, cost_ in best.pairs:
        held = window(by_order[order_id], settings)
        free = [
            d
            for d in _free_drivers(session, actor, holds, held)
            if not any(d.id == other and _overlaps(w, held) for w, other in planned)
        ]
        driver = free[0].id if free else None
        if driver is not None:
            planned.append((held, driver))
        pairs.append(
            {
                "order_id": order_id,
                "vehicle_id": vehicle_id,
                "plate": plates[vehicle_id],
                "driver_id": driver,
                "cost": round(cost_, 2),
            }
        )
    return {
        "pairs": pairs,
        "unserved": best.unserved,
        "total_cost": best.total_cost,
        "greedy_total_cost": baseline.total_cost,
        "greedy_unserved": baseline.unserved,
    }


# ---- approval rules -------------------------------------------------------------------------


def list_rules(*, session: Session, actor: Actor) -> list[dict[str, Any]]:
    require(actor, "order", "create")
    rules = session.scalars(
        select(ApprovalRule)
        .where(ApprovalRule.unit_id.in_(units_in_scope(actor)))
        .order_by(ApprovalRule.unit_id, ApprovalRule.level, ApprovalRule.id)
    ).all()
    return [_rule(r) for r in rules]


def _rule(rule: ApprovalRule) -> dict[str, Any]:
    return {
        "id": rule.id,
        "unit_id": rule.unit_id,
        "condition": rule.condition,
        "param": rule.param,
        "level": rule.level,
        "name": rule.name,
    }


def create_rule(*, session: Session, actor: Actor, data: RuleIn) -> dict[str, Any]:
    require(actor, "approval_rule", "write")
    if data.unit_id not in set(session.scalars(units_in_scope(actor))):
        raise Invalid(f"unknown unit {data.unit_id}", field="unit_id")
    needs_param = {approval.Condition.LONGER_THAN_DAYS, approval.Condition.PASSENGERS_OVER}
    if (data.condition in needs_param) != (data.param is not None):
        raise Invalid(
            "param is required for longer_than_days and passengers_over, and only for them",
            field="param",
        )
    rule = ApprovalRule(**data.model_dump())
    audit.created(session=session, actor=actor.ref, entity="approval_rule", obj=rule)
    return _rule(rule)


def delete_rule(*, session: Session, actor: Actor, rule_id: int) -> None:
    require(actor, "approval_rule", "write")
    rule = session.scalar(
        select(ApprovalRule).where(
            ApprovalRule.id == rule_id, ApprovalRule.unit_id.in_(units_in_scope(actor))
        )
    )
    if rule is None:
        raise NotFound(f"no approval rule {rule_id}")
    audit.deleted(session=session, actor=actor.ref, entity="approval_rule", obj=rule)
