"""The order dossier, the vehicle file (一车一档) and the driver's file, assembled from the
database as plain data (JSON for machines); `reports.render` draws them as HTML and PDF.

Times are ISO-8601 strings in UTC, money floats in CNY, distances metres.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from geoalchemy2.shape import to_shape
from sqlalchemy import func, or_, select, text
from sqlalchemy.orm import Session

from costs import checks as fuel_checks
from costs.models import CostAllocation, CostKind, CostRecord
from dispatch import merging, service
from dispatch.models import Assignment, AssignmentOrder, OrderDecision, TripOrder, TripRating
from fleet import access, checkpoint, licences
from fleet.auth import Actor, require
from fleet.db import utcnow
from fleet.models import AuditEntry, Driver, Energy, OrgUnit, UserAccount, Vehicle
from fleet.registry import get_driver, get_vehicle
from geofence.models import Alert, AlertReview
from telematics.models import Trip

# Trips are drawn simplified: the map of an A4 page cannot show more (degrees, about 2 m).
DRAW_TOLERANCE_DEG = 0.00002


def _iso(value: datetime | date | None) -> str | None:
    return None if value is None else value.isoformat()


def _shared_trip(session: Session, held: Assignment, order: TripOrder) -> dict[str, Any]:
    """The orders the assignment carries (a merged trip, 合并用车, carries several: those it
    carries now, or those it carried when it ended), each with its part of the trip's costs."""
    rows = session.execute(
        select(TripOrder, OrgUnit.name, AssignmentOrder.active)
        .join(AssignmentOrder, AssignmentOrder.order_id == TripOrder.id)
        .join(OrgUnit, OrgUnit.id == TripOrder.unit_id)
        .where(AssignmentOrder.assignment_id == held.id)
        .order_by(TripOrder.start_at, TripOrder.id)
    ).all()
    riding = [(o, unit) for o, unit, active in rows if active or not held.active]
    shares = merging.cost_shares({o.id: o.passengers for o, _ in riding})
    return {
        "shared": [
            {
                "order_id": o.id,
                "purpose": o.purpose,
                "unit_name": unit,
                "passengers": o.passengers,
                "share": round(shares[o.id], 4),
            }
            for o, unit in riding
        ]
        if len(riding) > 1
        else [],
        "share": round(shares.get(order.id, 1.0), 4),
    }


def _coords(session: Session, geom: Any) -> list[list[float]]:
    shape = to_shape(geom)
    return [[round(x, 6), round(y, 6)] for x, y, *_ in shape.coords]


def _verification(
    session: Session, anchors: checkpoint.Anchors | None, entries: list[dict[str, Any]]
) -> dict[str, Any]:
    """The chain where it vouches for the entries shown, from the signed checkpoints around
    them (the whole chain when there are none)."""
    ids = [int(e["id"]) for e in entries]
    return checkpoint.attest(session=session, anchors=anchors, entry_ids=ids).as_dict()


def _audit_entries(session: Session, refs: list[tuple[str, list[int]]]) -> list[dict[str, Any]]:
    wanted = [
        (AuditEntry.entity == entity) & AuditEntry.entity_id.in_([str(i) for i in ids])
        for entity, ids in refs
        if ids
    ]
    if not wanted:
        return []
    return [
        {
            "id": e.id,
            "at": _iso(e.at),
            "actor": e.actor,
            "action": e.action,
            "entity": e.entity,
            "entity_id": e.entity_id,
            "hash": e.hash,
        }
        for e in session.scalars(
            select(AuditEntry)
            .where(or_(*wanted), AuditEntry.action.not_in(access.KINDS))
            .order_by(AuditEntry.id)
        )
    ]


def _alerts(session: Session, condition: Any) -> list[dict[str, Any]]:
    alerts = session.scalars(select(Alert).where(condition).order_by(Alert.started_at)).all()
    reviews: dict[int, list[AlertReview]] = defaultdict(list)
    if alerts:
        for r in session.scalars(
            select(AlertReview)
            .where(AlertReview.alert_id.in_([a.id for a in alerts]))
            .order_by(AlertReview.id)
        ):
            reviews[r.alert_id].append(r)
    return [
        {
            "id": a.id,
            "kind": a.kind,
            "severity": a.severity,
            "started_at": _iso(a.started_at),
            "ended_at": _iso(a.ended_at),
            "measured": a.measured,
            "thresholds": a.thresholds,
            "review": a.review,
            "reviews": [
                {"decision": r.decision, "reason": r.reason, "by": r.username, "at": _iso(r.at)}
                for r in reviews[a.id]
            ],
        }
        for a in alerts
    ]


def order_dossier(
    *, session: Session, actor: Actor, order_id: int, anchors: checkpoint.Anchors | None
) -> dict[str, Any]:
    """Everything audit asks of one trip order, in one document; `anchors` are the signed
    checkpoints the audit chain is verified from (None: from its first entry)."""
    require(actor, "report", "read")
    order = service.get_order(session=session, actor=actor, order_id=order_id)
    unit = session.get(OrgUnit, order.unit_id)
    requester = session.get(UserAccount, order.requester_id)
    origin = to_shape(order.origin)
    units = {
        u.id: u.name
        for u in session.scalars(
            select(OrgUnit).where(
                OrgUnit.id.in_([s["unit_id"] for s in order.approval_steps] or [0])
            )
        )
    }
    decisions = session.scalars(
        select(OrderDecision).where(OrderDecision.order_id == order.id).order_by(OrderDecision.id)
    ).all()
    approvals = []
    for number, step in enumerate(order.approval_steps, start=1):
        decided = [d for d in decisions if d.step == number]
        last = decided[-1] if decided else None
        approvals.append(
            {
                "step": number,
                "unit_name": units.get(step["unit_id"], str(step["unit_id"])),
                "reasons": list(step.get("reasons", [])),
                "approved": None if last is None else last.approved,
                "by": None if last is None else last.username,
                "at": None if last is None else _iso(last.at),
                "comment": "" if last is None else last.comment,
            }
        )
    held = session.scalar(
        select(Assignment)
        .join(AssignmentOrder, AssignmentOrder.assignment_id == Assignment.id)
        .where(AssignmentOrder.order_id == order.id)
        .order_by(Assignment.active.desc(), Assignment.id.desc())
        .limit(1)
    )
    assignment = None
    planned: list[list[float]] | None = None
    planned_m: float | None = None
    trips: list[Trip] = []
    driven: list[list[list[float]]] = []
    alert_condition: Any = Alert.order_id == order.id
    if held is not None:
        vehicle = session.get(Vehicle, held.vehicle_id)
        driver = session.get(Driver, held.driver_id)
        by = session.get(UserAccount, held.assigned_by) if held.assigned_by else None
        assert vehicle is not None
        assert driver is not None
        assignment = {
            "vehicle": {
                "id": vehicle.id,
                "plate": vehicle.plate,
                "make_model": vehicle.make_model,
                "category": vehicle.category,
                "energy": vehicle.energy,
            },
            "driver": {"id": driver.id, "name": driver.name, "phone": driver.phone},
            "from": _iso(held.period.lower),
            "to": _iso(held.period.upper),
            "reason": held.reason,
            "assigned_by": by.username if by else None,
            "assigned_at": _iso(held.created_at),
            "route_source": held.route_source,
            "active": held.active,
            **_shared_trip(session, held, order),
        }
        if held.route is not None:
            planned = _coords(session, held.route)
            planned_m = session.scalar(
                select(func.ST_Length(func.Geography(Assignment.route))).where(
                    Assignment.id == held.id
                )
            )
        trips = service.trips_of(session, held)
        for (geojson,) in session.execute(
            select(func.ST_AsGeoJSON(func.ST_Simplify(Trip.path, DRAW_TOLERANCE_DEG), 6))
            .where(Trip.id.in_([t.id for t in trips] or [0]))
            .order_by(Trip.start_at)
        ):
            driven.append(json.loads(geojson)["coordinates"])
        alert_condition = or_(
            alert_condition,
            (Alert.vehicle_id == held.vehicle_id)
            & (Alert.started_at < held.period.upper)
            & (Alert.last_at >= held.period.lower),
        )
    shared = session.execute(
        select(CostAllocation, CostRecord)
        .join(CostRecord, CostRecord.id == CostAllocation.cost_id)
        .where(CostAllocation.order_id == order.id)
        .order_by(CostRecord.at)
    ).all()
    cost_items = [
        {
            "id": record.id,
            "kind": record.kind,
            "at": _iso(record.at),
            "amount": float(record.amount),
            "share": round(allocation.share, 4),
            "allocated": float(allocation.amount),
            "litres": record.litres,
            "kwh": record.kwh,
            "station_name": record.station_name,
            "note": record.note,
        }
        for allocation, record in shared
    ]
    alerts = _alerts(session, alert_condition)
    rating = session.scalar(select(TripRating).where(TripRating.order_id == order.id))
    entries = _audit_entries(
        session,
        [
            ("trip_order", [order.id]),
            ("alert", [int(a["id"]) for a in alerts]),
            ("cost_record", [record.id for _, record in shared]),
            ("trip_rating", [rating.id] if rating else []),
        ],
    )
    return {
        "generated_at": _iso(utcnow()),
        "order": {
            "id": order.id,
            "status": order.status,
            "purpose": order.purpose,
            "passengers": order.passengers,
            "start_at": _iso(order.start_at),
            "end_at": _iso(order.end_at),
            "origin_name": order.origin_name,
            "origin": [origin.x, origin.y],
            "destinations": [
                {"name": d["name"], "lon": d["lon"], "lat": d["lat"]} for d in order.destinations
            ],
            "unit": {"id": order.unit_id, "name": unit.name if unit else ""},
            "requester": {
                "id": order.requester_id,
                "username": requester.username if requester else "",
                "full_name": requester.full_name if requester else "",
            },
            "emergency": order.emergency,
            "out_of_region": order.out_of_region,
            "overnight": order.overnight,
            "approval": order.approval,
            "notes": order.notes,
            "created_at": _iso(order.created_at),
        },
        "approvals": approvals,
        "assignment": assignment,
        "route": {"planned": planned, "driven": driven},
        "figures": {
            "planned_distance_m": None if planned_m is None else round(float(planned_m), 1),
            "distance_m": round(sum(t.distance_m for t in trips), 1),
            "duration_s": round(sum(t.duration_s for t in trips), 1),
            "odometer_start_km": order.odometer_start_km,
            "odometer_end_km": order.odometer_end_km,
            "trips": [
                {
                    "id": t.id,
                    "start_at": _iso(t.start_at),
                    "end_at": _iso(t.end_at),
                    "distance_m": round(t.distance_m, 1),
                    "duration_s": round(t.duration_s, 1),
                    "max_speed_kmh": t.max_speed_kmh,
                }
                for t in trips
            ],
        },
        "costs": {
            "items": cost_items,
            "total": float(sum(allocation.amount for allocation, _ in shared)),
        },
        "alerts": alerts,
        "rating": None
        if rating is None
        else {"stars": rating.stars, "comment": rating.comment, "at": _iso(rating.at)},
        "audit": {"entries": entries, "verification": _verification(session, anchors, entries)},
    }


def record_order_read(
    *, session: Session, actor: Actor, client: str, dossier: dict[str, Any], format: str
) -> None:
    """Records who read (`json`) or exported (`html`, `pdf`) an order's dossier. It shows the
    assigned vehicle's track over the assignment, so the read is the vehicle's."""
    held = dossier["assignment"]
    order_id = dossier["order"]["id"]
    access.record(
        session=session,
        actor=actor,
        client=client,
        action=access.READ if format == "json" else access.EXPORT,
        entity="vehicle" if held else "trip_order",
        entity_id=held["vehicle"]["id"] if held else order_id,
        what="order_dossier",
        since=datetime.fromisoformat(held["from"]) if held else None,
        until=datetime.fromisoformat(held["to"]) if held else None,
        order_id=order_id,
        format=format,
    )


def record_vehicle_file_read(
    *, session: Session, actor: Actor, client: str, vehicle_id: int, format: str
) -> None:
    """Records who read (`json`) or exported (`html`, `pdf`) a vehicle file: its whole life."""
    access.record(
        session=session,
        actor=actor,
        client=client,
        action=access.READ if format == "json" else access.EXPORT,
        entity="vehicle",
        entity_id=vehicle_id,
        what="vehicle_file",
        format=format,
    )


# ---- the vehicle file -----------------------------------------------------------------------

DUE_KINDS = (CostKind.INSPECTION, CostKind.INSURANCE, CostKind.MAINTENANCE)

MONTHLY_USE = text(
    "SELECT to_char(start_at AT TIME ZONE :zone, 'YYYY-MM') AS month,"
    " sum(distance_m) AS distance_m, count(*) AS trips, sum(duration_s) / 3600.0 AS hours"
    " FROM trip WHERE vehicle_id = :vehicle GROUP BY 1 ORDER BY 1"
)
MONTHLY_ENERGY = text(
    "SELECT to_char(at AT TIME ZONE :zone, 'YYYY-MM') AS month,"
    " coalesce(sum(litres), 0) AS litres, coalesce(sum(kwh), 0) AS kwh"
    " FROM cost_record WHERE vehicle_id = :vehicle AND kind IN ('fuel', 'charging')"
    " GROUP BY 1 ORDER BY 1"
)


def vehicle_file(
    *, session: Session, actor: Actor, vehicle_id: int, zone: ZoneInfo
) -> dict[str, Any]:
    """The vehicle's life in one document: registry data, assignments, use and consumption by
    month against its norm, every cost, what falls due, alerts and outcomes, status changes."""
    require(actor, "report", "read")
    vehicle = get_vehicle(session=session, actor=actor, vehicle_id=vehicle_id)
    unit = session.get(OrgUnit, vehicle.unit_id)
    params = {"zone": zone.key, "vehicle": vehicle.id}
    use = [
        {
            "month": row.month,
            "distance_m": round(float(row.distance_m), 1),
            "trips": int(row.trips),
            "hours": round(float(row.hours), 2),
        }
        for row in session.execute(MONTHLY_USE, params)
    ]
    distance_by_month = {u["month"]: u["distance_m"] for u in use}
    norm = vehicle.fuel_norm_l_100km
    consumption = []
    for row in session.execute(MONTHLY_ENERGY, params):
        metres = distance_by_month.get(row.month, 0.0)
        litres, kwh = float(row.litres), float(row.kwh)
        per_100 = litres / metres * 100_000 if metres > 0 and litres > 0 else None
        over = fuel_checks.over_norm_pct(
            energy=Energy(vehicle.energy),
            litres=litres,
            kwh=kwh,
            distance_km=metres / 1000,
            norm_l_100km=norm,
            norm_kwh_100km=vehicle.energy_norm_kwh_100km,
        )
        consumption.append(
            {
                "month": row.month,
                "litres": round(litres, 2),
                "kwh": round(kwh, 2),
                "distance_m": metres,
                "l_100km": None if per_100 is None else round(per_100, 2),
                "kwh_100km": round(kwh / metres * 100_000, 2) if metres > 0 and kwh > 0 else None,
                "norm_l_100km": norm,
                "norm_kwh_100km": vehicle.energy_norm_kwh_100km,
                "over_norm_pct": None if over is None else round(over, 1),
            }
        )
    records = session.scalars(
        select(CostRecord).where(CostRecord.vehicle_id == vehicle.id).order_by(CostRecord.at)
    ).all()
    by_kind: dict[str, float] = defaultdict(float)
    for r in records:
        by_kind[r.kind] += float(r.amount)
    today = datetime.now(zone).date()
    due = []
    for kind in DUE_KINDS:
        latest = max(
            (r for r in records if r.kind == kind and r.next_due_on is not None),
            key=lambda r: (r.at, r.id),
            default=None,
        )
        if latest is not None and latest.next_due_on is not None:
            days_left = (latest.next_due_on - today).days
            due.append(
                {
                    "kind": kind.value,
                    "due_on": latest.next_due_on.isoformat(),
                    "days_left": days_left,
                    "overdue": days_left < 0,
                }
            )
    holds = session.execute(
        select(Assignment, TripOrder, Driver)
        .join(TripOrder, TripOrder.id == Assignment.order_id)
        .join(Driver, Driver.id == Assignment.driver_id)
        .where(Assignment.vehicle_id == vehicle.id)
        .order_by(Assignment.id)
    ).all()
    # The orders each assignment carried (a merged trip, 合并用车, several).
    carried: dict[int, list[int]] = defaultdict(list)
    for assignment_id, order_id in session.execute(
        select(AssignmentOrder.assignment_id, AssignmentOrder.order_id)
        .join(Assignment, Assignment.id == AssignmentOrder.assignment_id)
        .where(Assignment.vehicle_id == vehicle.id)
        .order_by(AssignmentOrder.order_id)
    ):
        carried[assignment_id].append(order_id)
    alerts = _alerts(session, Alert.vehicle_id == vehicle.id)
    outcomes: dict[str, dict[str, int]] = {}
    for a in alerts:
        counts = outcomes.setdefault(
            a["kind"], {"total": 0, "confirmed": 0, "dismissed": 0, "escalated": 0, "pending": 0}
        )
        counts["total"] += 1
        counts[str(a["review"])] += 1
    status_changes = [
        {
            "at": _iso(e.at),
            "actor": e.actor,
            "from": (e.before or {}).get("status"),
            "to": (e.after or {}).get("status"),
        }
        for e in session.scalars(
            select(AuditEntry)
            .where(
                AuditEntry.entity == "vehicle",
                AuditEntry.entity_id == str(vehicle.id),
                AuditEntry.action.not_in(access.KINDS),
            )
            .order_by(AuditEntry.id)
        )
        if (e.before or {}).get("status") != (e.after or {}).get("status")
    ]
    return {
        "generated_at": _iso(utcnow()),
        "vehicle": {
            "id": vehicle.id,
            "plate": vehicle.plate,
            "category": vehicle.category,
            "body_class": vehicle.body_class,
            "seats": vehicle.seats,
            "energy": vehicle.energy,
            "tank_l": vehicle.tank_l,
            "battery_kwh": vehicle.battery_kwh,
            "fuel_norm_l_100km": norm,
            "energy_norm_kwh_100km": vehicle.energy_norm_kwh_100km,
            "make_model": vehicle.make_model,
            "fuel_card": vehicle.fuel_card,
            "unit": {"id": vehicle.unit_id, "name": unit.name if unit else ""},
            "depot_name": vehicle.depot_name,
            "status": vehicle.status,
            "created_at": _iso(vehicle.created_at),
            "acquired_on": _iso(vehicle.acquired_on),
            "odometer_km": vehicle.odometer_km,
            "replaces_id": vehicle.replaces_id,
        },
        "assignments": [
            {
                "order_id": order.id,
                "order_ids": carried.get(held.id, [order.id]),
                "purpose": order.purpose,
                "from": _iso(held.period.lower),
                "to": _iso(held.period.upper),
                "driver": driver.name,
                "status": order.status if held.active else "released",
            }
            for held, order, driver in holds
        ],
        "distance_by_month": use,
        "consumption": consumption,
        "costs": {
            "items": [
                {
                    "id": r.id,
                    "kind": r.kind,
                    "at": _iso(r.at),
                    "amount": float(r.amount),
                    "litres": r.litres,
                    "kwh": r.kwh,
                    "station_name": r.station_name,
                    "note": r.note,
                    "order_id": r.order_id,
                }
                for r in records
            ],
            "by_kind": {k: round(v, 2) for k, v in sorted(by_kind.items())},
            "total": round(sum(float(r.amount) for r in records), 2),
        },
        "due": due,
        "alerts": [
            {k: a[k] for k in ("id", "kind", "severity", "started_at", "review")} for a in alerts
        ],
        "alert_outcomes": outcomes,
        "status_changes": status_changes,
    }


# ---- the driver's file ----------------------------------------------------------------------

# The trips of the vehicle a driver was assigned, within each of their holds: what they drove.
DRIVER_MONTHLY_USE = text(
    "SELECT to_char(t.start_at AT TIME ZONE :zone, 'YYYY-MM') AS month,"
    " sum(t.distance_m) AS distance_m, count(*) AS trips, sum(t.duration_s) / 3600.0 AS hours"
    " FROM assignment a JOIN trip t ON t.vehicle_id = a.vehicle_id"
    " AND t.start_at < upper(a.period) AND t.end_at > lower(a.period)"
    " WHERE a.driver_id = :driver AND a.active GROUP BY 1 ORDER BY 1"
)


def driver_file(
    *, session: Session, actor: Actor, driver_id: int, zone: ZoneInfo, now: datetime
) -> dict[str, Any]:
    """A driver's record in one document: registry data and their licence (flagged when it has
    expired or expires within licences.EXPIRY_WARNING_DAYS of `now`), assignments, distance and
    hours driven by month, the alerts raised while they drove with their outcomes, and the
    requesters' ratings."""
    require(actor, "report", "read")
    driver = get_driver(session=session, actor=actor, driver_id=driver_id)
    unit = session.get(OrgUnit, driver.unit_id)
    expiry = licences.expiry(driver.licence_expires_on, now=now.astimezone(zone))
    holds = session.execute(
        select(Assignment, TripOrder, Vehicle)
        .join(TripOrder, TripOrder.id == Assignment.order_id)
        .join(Vehicle, Vehicle.id == Assignment.vehicle_id)
        .where(Assignment.driver_id == driver.id)
        .order_by(Assignment.id)
    ).all()
    use = [
        {
            "month": row.month,
            "distance_m": round(float(row.distance_m), 1),
            "trips": int(row.trips),
            "hours": round(float(row.hours), 2),
        }
        for row in session.execute(DRIVER_MONTHLY_USE, {"zone": zone.key, "driver": driver.id})
    ]
    # The alerts the engine tied to them (through the permit of their assignment), and those
    # raised on the vehicle they held while they held it.
    held_then = (
        select(Assignment.id)
        .where(
            Assignment.driver_id == driver.id,
            Assignment.active,
            Assignment.vehicle_id == Alert.vehicle_id,
            func.lower(Assignment.period) <= Alert.last_at,
            func.upper(Assignment.period) > Alert.started_at,
        )
        .exists()
    )
    alerts = _alerts(session, or_(Alert.driver_id == driver.id, held_then))
    outcomes: dict[str, dict[str, int]] = {}
    for a in alerts:
        counts = outcomes.setdefault(
            a["kind"], {"total": 0, "confirmed": 0, "dismissed": 0, "escalated": 0, "pending": 0}
        )
        counts["total"] += 1
        counts[str(a["review"])] += 1
    ratings = session.execute(
        select(TripRating, TripOrder.purpose)
        .join(TripOrder, TripOrder.id == TripRating.order_id)
        .where(TripRating.driver_id == driver.id)
        .order_by(TripRating.at, TripRating.id)
    ).all()
    stars = [r.stars for r, _ in ratings]
    return {
        "generated_at": _iso(utcnow()),
        "driver": {
            "id": driver.id,
            "name": driver.name,
            "phone": driver.phone,
            "unit": {"id": driver.unit_id, "name": unit.name if unit else ""},
            "active": driver.active,
            "created_at": _iso(driver.created_at),
        },
        "licence": {
            "class": driver.licence_class,
            "covers": sorted(licences.covers(driver.licence_class)),
            "expires_on": _iso(driver.licence_expires_on),
            "state": expiry.state.value,
            "days_left": expiry.days_left,
            "flagged": expiry.flagged,
        },
        "assignments": [
            {
                "order_id": order.id,
                "purpose": order.purpose,
                "from": _iso(held.period.lower),
                "to": _iso(held.period.upper),
                "vehicle": {"id": vehicle.id, "plate": vehicle.plate},
                "status": order.status if held.active else "released",
            }
            for held, order, vehicle in holds
        ],
        "distance_by_month": use,
        "alerts": alerts,
        "alert_outcomes": outcomes,
        "ratings": {
            "count": len(stars),
            "average": round(sum(stars) / len(stars), 2) if stars else None,
            "items": [
                {
                    "order_id": r.order_id,
                    "purpose": purpose,
                    "stars": r.stars,
                    "comment": r.comment,
                    "at": _iso(r.at),
                }
                for r, purpose in ratings
            ],
        },
    }


def record_driver_file_read(
    *, session: Session, actor: Actor, client: str, driver_id: int, format: str
) -> None:
    """Records who read (`json`) or exported (`html`, `pdf`) a driver's file: personal data."""
    access.record(
        session=session,
        actor=actor,
        client=client,
        action=access.READ if format == "json" else access.EXPORT,
        entity="driver",
        entity_id=driver_id,
        what="driver_file",
        format=format,
    )
