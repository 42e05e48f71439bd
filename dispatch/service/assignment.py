"""Holding a vehicle and a driver for an order, on its planned route."""

from __future__ import annotations

import itertools

from geoalchemy2.shape import from_shape, to_shape
from psycopg import errors as pg_errors
from shapely import LineString
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dispatch import matching
from dispatch.models import Assignment, AssignmentOrder, TripOrder
from dispatch.orders import IllegalMove, OrderStatus, move
from dispatch.schemas import AssignIn
from dispatch.service.availability import order_facts, vehicle_facts, window
from dispatch.service.scope import get_order, record
from dispatch.settings import DispatchSettings
from fleet import audit, licences
from fleet.auth import Actor, require, units_in_scope
from fleet.errors import Conflict, Invalid
from fleet.models import Driver, Vehicle, VehicleStatus
from fleet.redis_client import RedisClient
from telematics import roads


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


def licensed(driver: Driver, vehicle: Vehicle) -> None:
    """The driver's licence covers the vehicle (fleet.licences, the README's licence table)."""
    if not licences.may_drive(driver.licence_class, vehicle.body_class, vehicle.seats):
        accepted = "/".join(licences.accepted(vehicle.body_class, vehicle.seats))
        raise Invalid(
            f"{driver.name} holds a {driver.licence_class} licence; {vehicle.plate}"
            f" ({vehicle.body_class}, {vehicle.seats} seats) needs {accepted}",
            field="driver_id",
        )


def planned_route(session: Session, order: TripOrder) -> tuple[LineString, str]:
    """Origin -> each destination -> origin: on the imported roads (pgRouting) where every leg
    can be routed, else straight legs. Returns the line and which it is ("roads"/"straight")."""
    origin = to_shape(order.origin)
    stops = [(origin.y, origin.x), *((d["lat"], d["lon"]) for d in order.destinations)]
    stops.append(stops[0])
    return route_through(session, stops)


def route_through(session: Session, stops: list[tuple[float, float]]) -> tuple[LineString, str]:
    """The line through the stops, (lat, lon), in their order: on the imported roads where every
    leg can be routed, else straight legs; and which it is ("roads"/"straight")."""
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


def vehicle_and_driver(
    session: Session, actor: Actor, vehicle_id: int, driver_id: int
) -> tuple[Vehicle, Driver]:
    """The vehicle and the (active) driver named, in the actor's scope; else Invalid."""
    vehicle = session.scalar(
        select(Vehicle).where(Vehicle.id == vehicle_id, Vehicle.unit_id.in_(units_in_scope(actor)))
    )
    if vehicle is None:
        raise Invalid(f"unknown vehicle {vehicle_id}", field="vehicle_id")
    driver = session.scalar(
        select(Driver).where(Driver.id == driver_id, Driver.unit_id.in_(units_in_scope(actor)))
    )
    if driver is None or not driver.active:
        raise Invalid(f"unknown or inactive driver {driver_id}", field="driver_id")
    return vehicle, driver


def hold(
    session: Session, held: Assignment, order_ids: list[int], vehicle: Vehicle, driver: Driver
) -> None:
    """Adds the assignment and the orders it carries. Of two dispatchers racing for one vehicle
    (or driver), the database's exclusion constraint lets exactly one through; the other gets
    Conflict."""
    try:
        with session.begin_nested():
            session.add(held)
            session.flush()
            session.add_all(AssignmentOrder(assignment_id=held.id, order_id=o) for o in order_ids)
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


def assign(
    *,
    session: Session,
    redis: RedisClient,
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
    vehicle, driver = vehicle_and_driver(session, actor, data.vehicle_id, data.driver_id)
    if order.status == OrderStatus.SUBMITTED and not order.emergency:
        raise IllegalMove("a submitted order is assigned once approved (unless it is an emergency)")
    _fits(order, vehicle)
    licensed(driver, vehicle)
    reason = data.reason.strip()
    if not reason:
        facts, _ = vehicle_facts(
            session=session, redis=redis, actor=actor, orders=[order], settings=settings
        )
        ranked = matching.rank(order_facts(order), facts)
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
    hold(session, held, [order.id], vehicle, driver)
    record(session, actor, order, "assign", before)
    return order
