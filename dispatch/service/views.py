"""Orders as the API answers them: each with its decisions, its assignment, the trips driven
within it and the requester's rating, loaded for a whole page in a fixed number of queries."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from geoalchemy2.shape import to_shape
from shapely.geometry import mapping
from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

from dispatch import merging
from dispatch.models import Assignment, AssignmentOrder, OrderDecision, TripOrder, TripRating
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
    """`view` of many orders in four queries, whatever their number: their decisions, their
    active assignments (with the orders each carries), the trips driven within those, and their
    ratings."""
    ids = [o.id for o in orders]
    if not ids:
        return []
    decisions: dict[int, list[OrderDecision]] = defaultdict(list)
    for decision in session.scalars(
        select(OrderDecision).where(OrderDecision.order_id.in_(ids)).order_by(OrderDecision.id)
    ):
        decisions[decision.order_id].append(decision)
    # Each order's active assignment, and the orders each of those carries with their passengers.
    mine, other = aliased(AssignmentOrder), aliased(AssignmentOrder)
    held: dict[int, Assignment] = {}
    riders: dict[int, dict[int, int]] = defaultdict(dict)
    for order_id, assignment, rider_id, passengers in session.execute(
        select(mine.order_id, Assignment, other.order_id, TripOrder.passengers)
        .join(Assignment, Assignment.id == mine.assignment_id)
        .join(other, (other.assignment_id == Assignment.id) & other.active)
        .join(TripOrder, TripOrder.id == other.order_id)
        .where(mine.order_id.in_(ids), mine.active, Assignment.active)
    ):
        held[order_id] = assignment
        riders[assignment.id][rider_id] = passengers
    driven: dict[int, list[Trip]] = defaultdict(list)
    if held:
        rows = session.execute(
            select(Assignment.id, Trip)
            .join(
                Trip,
                (Trip.vehicle_id == Assignment.vehicle_id)
                & (Trip.start_at < func.upper(Assignment.period))
                & (Trip.end_at > func.lower(Assignment.period)),
            )
            .where(Assignment.id.in_({a.id for a in held.values()}))
            .order_by(Trip.start_at)
        )
        for assignment_id, trip in rows:
            driven[assignment_id].append(trip)
    rated = {
        r.order_id: r
        for r in session.scalars(select(TripRating).where(TripRating.order_id.in_(ids)))
    }
    return [
        _shown(
            o,
            decisions[o.id],
            held.get(o.id),
            driven[held[o.id].id] if o.id in held else [],
            riders[held[o.id].id] if o.id in held else {},
            rated.get(o.id),
        )
        for o in orders
    ]


def _shown(
    order: TripOrder,
    decisions: list[OrderDecision],
    held: Assignment | None,
    trips: list[Trip],
    riders: dict[int, int],
    rating: TripRating | None,
) -> dict[str, Any]:
    shown = _view(order)
    shown["rating"] = (
        None
        if rating is None
        else {
            "order_id": rating.order_id,
            "driver_id": rating.driver_id,
            "stars": rating.stars,
            "comment": rating.comment,
            "at": rating.at,
        }
    )
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
            "id": held.id,
            "order_ids": sorted(riders),
            "passengers": sum(riders.values()),
            "share": round(merging.cost_shares(riders).get(order.id, 1.0), 4),
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
