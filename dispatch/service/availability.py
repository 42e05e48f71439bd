"""The pool as matching sees it: the windows assignments hold, which vehicles and drivers are
free in them, the ranked suggestions for one order and the plan for all approved ones."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from geoalchemy2.shape import to_shape
from sqlalchemy import func, select, text
from sqlalchemy.dialects.postgresql import Range
from sqlalchemy.orm import Session

from dispatch import matching
from dispatch.models import Assignment, AssignmentOrder, TripOrder
from dispatch.orders import OrderStatus
from dispatch.service.scope import get_order, scoped
from dispatch.settings import DispatchSettings
from fleet import licences
from fleet.auth import Actor, require, units_in_scope
from fleet.db import utcnow
from fleet.models import Driver, Vehicle, VehicleStatus
from fleet.redis_client import RedisClient
from telematics import roads
from telematics import service as telematics_service


def window(order: TripOrder, settings: DispatchSettings) -> Range[datetime]:
    """What an assignment holds: the order's window with the turnaround buffer on both sides."""
    buffer = timedelta(minutes=settings.turnaround_min)
    return Range(order.start_at - buffer, order.end_at + buffer, bounds="[)")


def order_facts(order: TripOrder) -> matching.OrderFacts:
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
    redis: RedisClient,
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


def _driver_choice(driver: Driver, now: datetime) -> dict[str, Any]:
    """A free driver as the desk offers them, their licence flagged when it has expired, expires
    within licences.EXPIRY_WARNING_DAYS of `now` (a local time) or has no expiry recorded."""
    expiry = licences.expiry(driver.licence_expires_on, now=now)
    return {
        "id": driver.id,
        "name": driver.name,
        "licence_class": driver.licence_class,
        "licence_expires_on": driver.licence_expires_on,
        "licence_state": expiry.state,
        "licence_days_left": expiry.days_left,
    }


def suggestions(
    *,
    session: Session,
    redis: RedisClient,
    actor: Actor,
    order_id: int,
    settings: DispatchSettings,
    now: datetime,
) -> dict[str, Any]:
    """Ranked vehicles for an approved order with the parts of each cost, the vehicles left out
    and why, and the drivers free for the window with their licences' state on `now` (local)."""
    require(actor, "order", "assign")
    order = get_order(session=session, actor=actor, order_id=order_id)
    facts, holds = vehicle_facts(
        session=session, redis=redis, actor=actor, orders=[order], settings=settings
    )
    wanted = order_facts(order)
    ranked = matching.rank(wanted, facts, travel_min=_travel_minutes(session, wanted, facts))
    seats = {f.id: f.seats for f in facts}
    return {
        "merge": _merge_options(session, actor, order, facts),
        "order_id": order.id,
        "status": order.status,
        "candidates": [
            {
                "vehicle_id": c.vehicle_id,
                "plate": c.plate,
                "seats": seats[c.vehicle_id],
                "cost": c.cost,
                "parts": c.parts,
            }
            for c in ranked
        ],
        "excluded": [
            {"vehicle_id": f.id, "plate": f.plate, "reason": reason}
            for f in facts
            if (reason := matching.why_not(wanted, f)) is not None
        ],
        "drivers": [
            _driver_choice(d, now)
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
        scoped(actor)
        .add_columns(Assignment.id, Assignment.vehicle_id, Vehicle.seats)
        .outerjoin(
            AssignmentOrder, (AssignmentOrder.order_id == TripOrder.id) & AssignmentOrder.active
        )
        .outerjoin(Assignment, (Assignment.id == AssignmentOrder.assignment_id) & Assignment.active)
        .outerjoin(Vehicle, Vehicle.id == Assignment.vehicle_id)
        .where(
            TripOrder.id != order.id,
            TripOrder.status.in_(
                [OrderStatus.APPROVED, OrderStatus.ASSIGNED, OrderStatus.IN_PROGRESS]
            ),
            TripOrder.start_at.between(order.start_at - slack, order.start_at + slack),
        )
    ).all()
    # An assigned order's car carries the passengers of every order of its trip.
    held = {a for _, a, _, _ in rows if a is not None}
    aboard: dict[Any, int] = dict(
        session.execute(
            select(AssignmentOrder.assignment_id, func.sum(TripOrder.passengers))
            .join(TripOrder, TripOrder.id == AssignmentOrder.order_id)
            .where(AssignmentOrder.assignment_id.in_(held), AssignmentOrder.active)
            .group_by(AssignmentOrder.assignment_id)
        ).all()
        if held
        else []
    )
    own = session.scalar(
        select(AssignmentOrder.assignment_id).where(
            AssignmentOrder.order_id == order.id, AssignmentOrder.active
        )
    )
    others = []
    for other, assignment_id, vehicle, seats in rows:
        if assignment_id is not None and assignment_id == own:
            continue  # already in this order's trip
        trip = _as_trip(other, seats, vehicle)
        if assignment_id is not None:
            trip = replace(trip, passengers=int(aboard.get(assignment_id, other.passengers)))
        others.append(trip)
    largest = max((f.seats for f in facts if f.active), default=0)
    return matching.merge_options(_as_trip(order, None, None), others, largest_seats=largest)


def dispatch_plan(
    *, session: Session, redis: RedisClient, actor: Actor, settings: DispatchSettings
) -> dict[str, Any]:
    """The optimal assignment of the approved, unassigned orders in scope, for review (nothing is
    assigned until the dispatcher accepts each pair through `assign`), beside the greedy one."""
    require(actor, "order", "assign")
    orders = list(
        session.scalars(
            scoped(actor)
            .where(TripOrder.status == OrderStatus.APPROVED)
            .order_by(TripOrder.start_at, TripOrder.id)
        )
    )
    if not orders:
        return {"pairs": [], "unserved": [], "total_cost": 0.0, "greedy_total_cost": 0.0}
    facts, holds = vehicle_facts(
        session=session, redis=redis, actor=actor, orders=orders, settings=settings
    )
    wanted = [order_facts(o) for o in orders]
    best = matching.plan(wanted, facts)
    baseline = matching.greedy(wanted, facts)
    by_order = {o.id: o for o in orders}
    by_vehicle = {f.id: f for f in facts}
    plates = {f.id: f.plate for f in facts}
    planned: list[tuple[Range[datetime], int]] = []
    pairs = []
    for order_id, vehicle_id, cost_ in best.pairs:
        held = window(by_order[order_id], settings)
        car = by_vehicle[vehicle_id]
        free = [
            d
            for d in _free_drivers(session, actor, holds, held)
            if licences.may_drive(d.licence_class, car.body_class, car.seats)
            and not any(d.id == other and _overlaps(w, held) for w, other in planned)
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
