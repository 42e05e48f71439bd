"""Costs of the vehicles: records entered by hand or imported from statements, linked by time to
the trip and order they belong to, allocated to orders, and checked for fuel misuse.

Services take the session first and never commit.
"""

from __future__ import annotations

import hashlib
import json
from bisect import bisect_left, bisect_right
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from geoalchemy2.shape import from_shape, to_shape
from shapely.geometry import Point
from sqlalchemy import Select, delete, func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from costs import checks as fuel_checks
from costs import statements
from costs.models import CostAllocation, CostKind, CostRecord, CostStatement
from costs.schemas import CostIn
from dispatch import merging
from dispatch.models import Assignment, AssignmentOrder, TripOrder
from dispatch.settings import DispatchSettings
from fleet import audit
from fleet.auth import Actor, require, units_in_scope
from fleet.errors import Invalid, NotFound, Rejected
from fleet.models import Energy, Vehicle
from fleet.paging import Listing
from fleet.registry import get_vehicle
from geofence import store
from geofence.calendar import WorkingCalendar, epoch_day
from geofence.engine import AlertRecord
from geofence.rules.base import Event
from telematics import tracks
from telematics.models import Trip

CENT = Decimal("0.01")
FILLS = (CostKind.FUEL, CostKind.CHARGING)
# Costs of the car itself rather than of a journey: never shared out to orders.
VEHICLE_COSTS = (CostKind.MAINTENANCE, CostKind.REPAIR, CostKind.INSURANCE, CostKind.INSPECTION)


@dataclass(frozen=True)
class CheckSetup:
    """What the checks need besides the records: settings, the working calendar, the zone."""

    settings: DispatchSettings
    calendar: WorkingCalendar
    zone: ZoneInfo


def view(record: CostRecord, allocations: Sequence[CostAllocation] = ()) -> dict[str, Any]:
    station = to_shape(record.station) if record.station is not None else None
    return {
        "id": record.id,
        "kind": record.kind,
        "vehicle_id": record.vehicle_id,
        "unit_id": record.unit_id,
        "at": record.at,
        "amount": float(record.amount),
        "litres": record.litres,
        "kwh": record.kwh,
        "unit_price": record.unit_price,
        "product": record.product,
        "station_name": record.station_name,
        "station": None
        if station is None
        else {"type": "Point", "coordinates": [station.x, station.y]},
        "fuel_card": record.fuel_card,
        "odometer_km": record.odometer_km,
        "vendor": record.vendor,
        "note": record.note,
        "next_due_on": record.next_due_on,
        "statement_id": record.statement_id,
        "issuer": record.issuer,
        "external_id": record.external_id,
        "trip_id": record.trip_id,
        "order_id": record.order_id,
        "allocations": [
            {
                "order_id": a.order_id,
                "share": round(a.share, 4),
                "amount": float(a.amount),
                "distance_m": round(a.distance_m, 1),
            }
            for a in allocations
        ],
    }


def allocations_of(session: Session, cost_ids: Iterable[int]) -> dict[int, list[CostAllocation]]:
    found: dict[int, list[CostAllocation]] = defaultdict(list)
    ids = list(cost_ids)
    if ids:
        for a in session.scalars(
            select(CostAllocation)
            .where(CostAllocation.cost_id.in_(ids))
            .order_by(CostAllocation.id)
        ):
            found[a.cost_id].append(a)
    return found


def _scoped(actor: Actor) -> Select[Any]:
    return select(CostRecord).where(CostRecord.unit_id.in_(units_in_scope(actor)))


def get(*, session: Session, actor: Actor, cost_id: int) -> CostRecord:
    require(actor, "cost", "read")
    record = session.scalar(_scoped(actor).where(CostRecord.id == cost_id))
    if record is None:
        raise NotFound(f"cost record {cost_id} not found")
    return record


def list_(
    *,
    session: Session,
    actor: Actor,
    listing: Listing,
    vehicle_id: int | None = None,
    order_id: int | None = None,
    kind: CostKind | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> tuple[Sequence[CostRecord], int]:
    require(actor, "cost", "read")
    stmt = _scoped(actor)
    if vehicle_id is not None:
        stmt = stmt.where(CostRecord.vehicle_id == vehicle_id)
    if order_id is not None:
        shared = select(CostAllocation.cost_id).where(CostAllocation.order_id == order_id)
        stmt = stmt.where((CostRecord.order_id == order_id) | CostRecord.id.in_(shared))
    if kind is not None:
        stmt = stmt.where(CostRecord.kind == kind)
    if since is not None:
        stmt = stmt.where(CostRecord.at >= since)
    if until is not None:
        stmt = stmt.where(CostRecord.at < until)
    return listing.page(session, stmt.order_by(CostRecord.at.desc(), CostRecord.id.desc()))


def create(
    *, session: Session, actor: Actor, data: CostIn, setup: CheckSetup, now: datetime
) -> tuple[CostRecord, list[int]]:
    """A record entered by hand; returns it and the ids of the alerts its checks raised. `now`
    (aware) bounds its time: a day ahead at most."""
    require(actor, "cost", "write")
    vehicle = get_vehicle(session=session, actor=actor, vehicle_id=data.vehicle_id)
    if data.at > now + timedelta(days=1):
        raise Invalid("the time is in the future", field="at")
    values = data.model_dump(exclude={"station"})
    record = CostRecord(**values, unit_id=vehicle.unit_id, created_by=actor.user_id)
    if data.station is not None:
        record.station = from_shape(Point(*data.station["coordinates"]), srid=4326)
    audit.created(session=session, actor=actor.ref, entity="cost_record", obj=record)
    link(session=session, vehicle_id=vehicle.id, since=data.at, settings=setup.settings)
    raised = check(session=session, vehicle_id=vehicle.id, since=data.at, setup=setup)
    return record, raised


# ---- statements -----------------------------------------------------------------------------


def formats(settings: DispatchSettings) -> dict[str, statements.StatementFormat]:
    extra: dict[str, Any] | None = None
    if settings.statement_formats_file:
        path = Path(settings.statement_formats_file)
        try:
            extra = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise Invalid(f"statement formats file {path}: {error}") from None
    try:
        return statements.load_formats(extra)
    except ValueError as error:
        raise Invalid(f"statement formats file: {error}") from None


def _row_key(issuer: str, row: statements.StatementRow) -> str:
    """The issuer's transaction id; without one, a digest of what identifies the row."""
    if row.transaction_id:
        return row.transaction_id[:64]
    identity = "|".join(
        str(v) for v in (row.at.isoformat(), row.plate, row.card, row.amount, row.litres, row.kwh)
    )
    return "sha256:" + hashlib.sha256(f"{issuer}|{identity}".encode()).hexdigest()[:56]


def import_statement(
    *,
    session: Session,
    actor: Actor,
    data: bytes,
    filename: str,
    issuer: str,
    setup: CheckSetup,
    now: datetime,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """One statement file, all or nothing: any bad row (or row naming an unknown vehicle)
    rejects the file with every problem listed. Rows already stored (the same file again, or
    overlapping statements) are counted and skipped. `now` (aware) bounds the rows' times.
    `progress(done, total)` follows the rows linked to trips and checked, vehicle by vehicle
    (a few queries each): the stage whose time grows with a large statement."""
    require(actor, "cost", "write")
    known = formats(setup.settings)
    fmt = known.get(issuer)
    if fmt is None:
        raise Invalid(
            f"unknown issuer {issuer!r}; known: {', '.join(sorted(known))}", field="issuer"
        )
    digest = hashlib.sha256(data).hexdigest()
    earlier = session.scalar(select(CostStatement).where(CostStatement.digest == digest))
    if earlier is not None:
        return {
            "statement_id": earlier.id,
            "rows": earlier.rows,
            "added": 0,
            "duplicates": earlier.rows,
            "already_imported": True,
            "alerts": [],
        }
    try:
        rows, errors = statements.parse(data, filename, fmt, zone=setup.zone, now=now)
    except statements.StatementUnreadable as error:
        raise Invalid(f"{filename}: {error}", field="file") from None
    problems: list[dict[str, object]] = [
        {"line": e.line, "field": e.field, "reason": e.reason} for e in errors
    ]
    vehicles = _vehicles_for(session, actor, rows, problems)
    if problems:
        problems.sort(key=lambda p: (int(str(p["line"])), str(p["field"])))
        bad_lines = len({p["line"] for p in problems})
        raise Rejected(
            f"{filename}: {bad_lines} row(s) are not acceptable, so nothing was imported",
            problems=problems,
        )
    if not rows:
        raise Invalid(f"{filename}: the statement holds no rows", field="file")
    statement = CostStatement(
        issuer=issuer,
        filename=filename[:200],
        digest=digest,
        rows=len(rows),
        added=0,
        user_id=actor.user_id,
        username=actor.ref.name,
    )
    session.add(statement)
    session.flush()
    values = []
    for row in rows:
        vehicle = vehicles[row.line]
        values.append(
            {
                "kind": fmt.kind,
                "vehicle_id": vehicle.id,
                "unit_id": vehicle.unit_id,
                "at": row.at,
                "amount": row.amount,
                "litres": row.litres,
                "kwh": row.kwh,
                "unit_price": row.unit_price,
                "product": row.product[:32],
                "station_name": row.station_name[:200],
                "station": None
                if row.station_lat is None or row.station_lon is None
                else from_shape(Point(row.station_lon, row.station_lat), srid=4326),
                "fuel_card": (row.card or "")[:32],
                "odometer_km": row.odometer_km,
                "statement_id": statement.id,
                "issuer": issuer,
                "external_id": _row_key(issuer, row),
                "created_by": actor.user_id,
            }
        )
    # Executemany: SQLAlchemy sends the rows in batches that stay under PostgreSQL's 65,535
    # parameters per statement, however long the statement file.
    added_ids = list(
        session.scalars(
            insert(CostRecord)
            .on_conflict_do_nothing(constraint="uq_cost_record_external")
            .returning(CostRecord.id),
            values,
        )
    )
    statement.added = len(added_ids)
    audit.record(
        session=session,
        actor=actor.ref,
        action="import",
        entity="cost_statement",
        entity_id=statement.id,
        before=None,
        after={
            "issuer": issuer,
            "filename": statement.filename,
            "digest": digest,
            "rows": len(rows),
            "added": len(added_ids),
        },
    )
    raised: list[int] = []
    first: dict[int, datetime] = {}
    per_vehicle: Counter[int] = Counter()
    for row in rows:
        vid = vehicles[row.line].id
        first[vid] = min(first.get(vid, row.at), row.at)
        per_vehicle[vid] += 1
    checked = 0
    for vid, since in sorted(first.items()):
        link(session=session, vehicle_id=vid, since=since, settings=setup.settings)
        raised += check(session=session, vehicle_id=vid, since=since, setup=setup)
        checked += per_vehicle[vid]
        if progress is not None:
            progress(checked, len(rows))
    return {
        "statement_id": statement.id,
        "rows": len(rows),
        "added": len(added_ids),
        "duplicates": len(rows) - len(added_ids),
        "already_imported": False,
        "alerts": raised,
    }


def _vehicles_for(
    session: Session,
    actor: Actor,
    rows: Sequence[statements.StatementRow],
    problems: list[dict[str, object]],
) -> dict[int, Vehicle]:
    """Each row's vehicle by plate, else by fuel card, within the importer's scope."""
    plates = {r.plate for r in rows if r.plate}
    cards = {r.card for r in rows if r.card}
    scope = units_in_scope(actor)
    by_plate = {
        v.plate: v
        for v in session.scalars(
            select(Vehicle).where(Vehicle.plate.in_(plates), Vehicle.unit_id.in_(scope))
        )
    }
    by_card = {
        v.fuel_card: v
        for v in session.scalars(
            select(Vehicle).where(Vehicle.fuel_card.in_(cards), Vehicle.unit_id.in_(scope))
        )
    }
    found: dict[int, Vehicle] = {}
    for row in rows:
        vehicle = by_plate.get(row.plate or "") or by_card.get(row.card or "")
        if vehicle is None:
            what = f"plate {row.plate}" if row.plate else f"fuel card {row.card}"
            problems.append(
                {
                    "line": row.line,
                    "field": "plate" if row.plate else "card",
                    "reason": f"no vehicle with {what} in your units",
                }
            )
        elif row.plate and row.card and vehicle.fuel_card and vehicle.fuel_card != row.card:
            problems.append(
                {
                    "line": row.line,
                    "field": "card",
                    "reason": f"fuel card {row.card} is not the card of {vehicle.plate}",
                }
            )
        else:
            found[row.line] = vehicle
    return found


def list_statements(*, session: Session, actor: Actor, listing: Listing) -> list[dict[str, Any]]:
    require(actor, "cost", "read")
    own = select(CostRecord.statement_id).where(CostRecord.unit_id.in_(units_in_scope(actor)))
    return [
        {
            "id": s.id,
            "issuer": s.issuer,
            "filename": s.filename,
            "rows": s.rows,
            "added": s.added,
            "by": s.username,
            "imported_at": s.imported_at,
        }
        for s in session.scalars(
            listing.window(
                select(CostStatement)
                .where(CostStatement.id.in_(own))
                .order_by(CostStatement.id.desc())
            )
        )
    ]


# ---- linking to trips and orders ------------------------------------------------------------


def _split(amount: Decimal, weights: Sequence[float]) -> list[Decimal]:
    """`amount` in cents by weights; the rounding remainder goes to the largest part, so the
    parts always add up to the amount."""
    total = sum(weights)
    parts = [(amount * Decimal(w / total)).quantize(CENT, ROUND_HALF_UP) for w in weights]
    largest = max(range(len(parts)), key=lambda i: weights[i])
    parts[largest] += amount - sum(parts)
    return parts


def link(*, session: Session, vehicle_id: int, since: datetime, settings: DispatchSettings) -> None:
    """Sets each record's trip and order (by time) from `since` on and shares the costs out.

    A fill replaces the fuel burnt since the fill before it, so it is shared among the trips
    between the two by distance; each trip goes to the order whose assignment covers most of it
    (none: driving no order covered). A toll, parking or washing goes to the order it happened in.
    Records after `since` are redone too: a fill inserted before them changes what they serve.
    """
    records = session.scalars(
        select(CostRecord)
        .where(CostRecord.vehicle_id == vehicle_id, CostRecord.at >= since)
        .order_by(CostRecord.at, CostRecord.id)
    ).all()
    if not records:
        return
    lookback = timedelta(days=settings.fuel_link_lookback_days)
    window = timedelta(minutes=settings.fuel_trip_window_min)
    previous_fill: dict[str, datetime | None] = {
        kind: session.scalar(
            select(func.max(CostRecord.at)).where(
                CostRecord.vehicle_id == vehicle_id,
                CostRecord.kind == kind,
                CostRecord.at < since,
            )
        )
        for kind in FILLS
    }
    low = since - lookback
    high = records[-1].at + window
    trips = session.execute(
        select(Trip.id, Trip.start_at, Trip.end_at, Trip.distance_m)
        .where(Trip.vehicle_id == vehicle_id, Trip.end_at >= low, Trip.start_at <= high)
        .order_by(Trip.start_at)
    ).all()
    holds = session.execute(
        select(Assignment.id, Assignment.period, AssignmentOrder.order_id, TripOrder.passengers)
        .join(AssignmentOrder, AssignmentOrder.assignment_id == Assignment.id)
        .join(TripOrder, TripOrder.id == AssignmentOrder.order_id)
        .where(
            Assignment.vehicle_id == vehicle_id,
            Assignment.active,
            AssignmentOrder.active,
            Assignment.period.overlaps(
                func.tstzrange(low - window, high + window)  # type: ignore[arg-type]
            ),
        )
        .order_by(Assignment.id, TripOrder.start_at, TripOrder.id)
    ).all()

    # Each hold with the orders it carries: a merged trip's costs are shared by passengers.
    riders: dict[int, dict[int, int]] = defaultdict(dict)
    periods: dict[int, Any] = {}
    for assignment_id, period, order_id, passengers in holds:
        riders[assignment_id][int(order_id)] = passengers
        periods[assignment_id] = period
    spans = [
        (next(iter(riders[a])), p.lower, p.upper, merging.cost_shares(riders[a]))
        for a, p in periods.items()
        if p.lower and p.upper
    ]

    def order_at(at: datetime) -> int | None:
        for order_id, lower, upper, _ in spans:
            if lower <= at < upper:
                return order_id
        return None

    def shares_of(order_id: int) -> dict[int | None, float]:
        """The passenger shares of the trip carrying the order (the order alone if none)."""
        for _, _, _, shares in spans:
            if order_id in shares:
                return {owner: part for owner, part in shares.items()}
        return {order_id: 1.0}

    def hold_of_trip(start: datetime, end: datetime) -> dict[int, float] | None:
        best, best_overlap = None, timedelta(0)
        for _, lower, upper, shares in spans:
            overlap = min(end, upper) - max(start, lower)
            if overlap > best_overlap:
                best, best_overlap = shares, overlap
        return best

    def order_of_trip(start: datetime, end: datetime) -> int | None:
        shares = hold_of_trip(start, end)
        return next(iter(shares)) if shares else None

    ids = [r.id for r in records]
    session.execute(delete(CostAllocation).where(CostAllocation.cost_id.in_(ids)))
    for record in records:
        at = record.at
        containing = [t for t in trips if t.start_at <= at <= t.end_at]
        before = [t for t in trips if at - window <= t.end_at < at]
        after = [t for t in trips if at < t.start_at <= at + window]
        nearest = containing or before[-1:] or after[:1]
        trip = nearest[0] if nearest else None
        record.trip_id = trip.id if trip is not None else None
        record.order_id = order_at(at) or (
            order_of_trip(trip.start_at, trip.end_at) if trip is not None else None
        )
        shares: dict[int | None, float] = {}
        weights: dict[int | None, float] = {}
        if record.kind in FILLS:
            start = previous_fill[record.kind] or at - lookback
            previous_fill[record.kind] = at
            for t in trips:
                if start <= t.start_at < at and t.distance_m > 0:
                    held = hold_of_trip(t.start_at, t.end_at)
                    owners: dict[int | None, float] = (
                        {owner: part for owner, part in held.items()} if held else {None: 1.0}
                    )
                    for owner, part in owners.items():
                        shares[owner] = shares.get(owner, 0.0) + float(t.distance_m) * part
            if not shares and record.order_id is not None:
                weights = shares_of(record.order_id)
                shares = dict.fromkeys(weights, 0.0)
        elif record.kind not in VEHICLE_COSTS and record.order_id is not None:
            weights = shares_of(record.order_id)
            shares = dict.fromkeys(weights, 0.0)
        _allocate(session, record, shares, weights)
    session.flush()


def _allocate(
    session: Session,
    record: CostRecord,
    distances: dict[int | None, float],
    fallback: dict[int | None, float] | None = None,
) -> None:
    """The record split by distance driven for each order; with no distance, by `fallback`
    (a merged trip's passenger shares), else evenly."""
    if not distances:
        return
    owners = sorted(distances, key=lambda o: (o is None, o or 0))
    total = sum(distances.values())
    weights = [distances[o] if total > 0 else (fallback or {}).get(o, 1.0) for o in owners]
    weight_sum = sum(weights)
    for owner, part, weight in zip(owners, _split(record.amount, weights), weights, strict=True):
        session.add(
            CostAllocation(
                cost_id=record.id,
                order_id=owner,
                share=weight / weight_sum,
                amount=part,
                distance_m=distances[owner],
            )
        )


# ---- the fuel and energy checks -------------------------------------------------------------

# An episode's row, by the alert writer's identity (vehicle, kind, key, start), with what a
# re-check may change in it.
EPISODES = text(
    "SELECT a.kind, a.key, e.started_t, a.severity, a.ended_at, a.measured"
    " FROM alert a JOIN unnest(CAST(:kinds AS varchar[]), CAST(:keys AS varchar[]),"
    " CAST(:starts AS float8[])) AS e(kind, key, started_t)"
    " ON a.kind = e.kind AND a.key = e.key AND a.started_at = to_timestamp(e.started_t)"
    " WHERE a.vehicle_id = :vehicle"
)
# The station's distance from a fix, on the spheroid as PostGIS measures geographies.
STATION_DISTANCES = text(
    "SELECT c.id, ST_Distance(ST_SetSRID(ST_MakePoint(f.lon, f.lat), 4326)::geography,"
    " c.station::geography) AS distance_m FROM unnest(CAST(:ids AS integer[]),"
    " CAST(:lons AS float8[]), CAST(:lats AS float8[])) AS f(id, lon, lat)"
    " JOIN cost_record c ON c.id = f.id"
)


def _nearest_fixes(
    session: Session, vehicle_id: int, fills: Sequence[CostRecord], window: timedelta
) -> dict[int, tuple[float, int]]:
    """For each fill that names its station, the located fix nearest to it in time within
    `window` either side: the station's distance from it (m) and the time between them (s).
    The fixes come through `telematics.tracks`, which reads the archived months too, so a month
    checked again after it left PostGIS gives the same answer."""
    placed = [f for f in fills if f.station is not None]
    found = {
        fill.id: (fill.at, fix)
        for fill, fix in zip(
            placed,
            tracks.nearest(session, vehicle_id, [f.at for f in placed], window),
            strict=True,
        )
        if fix is not None
    }
    if not found:
        return {}
    ids = list(found)
    distances = session.execute(
        STATION_DISTANCES,
        {
            "ids": ids,
            "lons": [found[i][1].lon for i in ids],
            "lats": [found[i][1].lat for i in ids],
        },
    ).all()
    return {
        int(r.id): (
            float(r.distance_m),
            round(abs((found[r.id][1].fix_time - found[r.id][0]).total_seconds())),
        )
        for r in distances
    }


def _working_time(setup: CheckSetup, unit_id: int, at: datetime) -> tuple[bool, str]:
    """Whether `at` is working time for the unit; a date the calendar lacks counts as
    non-working (the stricter reading, as for approval chains)."""
    local = at.astimezone(setup.zone)
    working_day = setup.calendar.days.get(epoch_day(local.date()), False)
    start, end = setup.calendar.unit_hours.get(unit_id, setup.calendar.default_hours)
    second = local.hour * 3600 + local.minute * 60 + local.second
    return working_day and start <= second < end, local.strftime("%Y-%m-%d %H:%M")


def _month(at: datetime, zone: ZoneInfo) -> tuple[datetime, datetime, str]:
    local = at.astimezone(zone)
    start = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = (start + timedelta(days=32)).replace(day=1)
    return start, end, start.strftime("%Y-%m")


@dataclass(frozen=True)
class _Track:
    """A vehicle's trips over a span, for the distance between two times and the trips near
    one, without a query each."""

    starts: list[datetime]
    ends: list[datetime]
    distances_m: list[float]

    def km_between(self, low: datetime, high: datetime) -> float:
        """Distance of the trips starting in [low, high)."""
        first, last = bisect_left(self.starts, low), bisect_left(self.starts, high)
        return sum(self.distances_m[first:last]) / 1000

    def near(self, at: datetime, window: timedelta) -> int:
        """Trips overlapping [at - window, at + window]."""
        last = bisect_right(self.starts, at + window)
        return sum(1 for end in self.ends[:last] if end >= at - window)


def check(*, session: Session, vehicle_id: int, since: datetime, setup: CheckSetup) -> list[int]:
    """Runs the fuel and energy checks on the vehicle's fills and charges from `since` on (and
    the days and months they fall in); stores each finding as an alert (one per record and kind,
    or per day or month), and returns the ids of the alerts raised or updated."""
    return store.write(session, _findings(session, vehicle_id, since, setup))


def recheck(
    *, session: Session, vehicle_id: int, since: datetime | None, setup: CheckSetup
) -> dict[str, Counter[str]]:
    """The checks run again on the vehicle's records from `since` on (all of them when None),
    for example after its norms or the thresholds changed. An alert already raised is updated
    in place, never raised twice. Returns, by kind, the alerts `added`, `updated` (a figure or
    the severity changed) and `unchanged`."""
    if since is None:
        since = session.scalar(
            select(func.min(CostRecord.at)).where(
                CostRecord.vehicle_id == vehicle_id, CostRecord.kind.in_(FILLS)
            )
        )
    counts: dict[str, Counter[str]] = {
        "added": Counter(),
        "updated": Counter(),
        "unchanged": Counter(),
    }
    if since is None:
        return counts
    records = _findings(session, vehicle_id, since, setup)
    before = _episodes(session, vehicle_id, records)
    store.write(session, records)
    after = _episodes(session, vehicle_id, records)
    for record in records:
        event = record.event
        identity = (event.kind, event.key, event.started_t)
        if identity not in before:
            counts["added"][event.kind] += 1
        elif before[identity] != after[identity]:
            counts["updated"][event.kind] += 1
        else:
            counts["unchanged"][event.kind] += 1
    return counts


def _episodes(
    session: Session, vehicle_id: int, records: Sequence[AlertRecord]
) -> dict[tuple[str, str, float], tuple[Any, ...]]:
    """The stored rows of the records' episodes, by (kind, key, started_t): what a re-check may
    change in them (severity, end, figures)."""
    if not records:
        return {}
    return {
        (r.kind, r.key, r.started_t): (r.severity, r.ended_at, r.measured)
        for r in session.execute(
            EPISODES,
            {
                "vehicle": vehicle_id,
                "kinds": [r.event.kind for r in records],
                "keys": [r.event.key for r in records],
                "starts": [r.event.started_t for r in records],
            },
        )
    }


def record_recheck(
    *,
    session: Session,
    actor: Actor,
    since: datetime | None,
    vehicles: int,
    counts: dict[str, Counter[str]],
) -> None:
    """The audit entry of a run of the checks again (`fleet costs check`): what it covered and
    the alerts it added and updated, by kind."""
    audit.record(
        session=session,
        actor=actor.ref,
        action="check",
        entity="cost_record",
        entity_id="*",
        before=None,
        after={
            "since": None if since is None else since.isoformat(),
            "vehicles": vehicles,
            **{what: dict(sorted(by_kind.items())) for what, by_kind in counts.items()},
        },
    )


def vehicles_with_fills(*, session: Session, actor: Actor, since: datetime | None) -> list[int]:
    """The vehicles of the actor's units with fuel or charging records from `since` on (ever,
    when None): those `recheck` has work for."""
    require(actor, "cost", "write")
    stmt = (
        select(CostRecord.vehicle_id)
        .where(CostRecord.kind.in_(FILLS), CostRecord.unit_id.in_(units_in_scope(actor)))
        .distinct()
    )
    if since is not None:
        stmt = stmt.where(CostRecord.at >= since)
    return sorted(session.scalars(stmt))


def _findings(
    session: Session, vehicle_id: int, since: datetime, setup: CheckSetup
) -> list[AlertRecord]:
    """The findings on the vehicle's records from `since` on, as the alert writer's records.
    The facts come from a few queries per vehicle, however many records (and one track read per
    fill that names its station): a month's statement checks in one pass.

    Each fill is checked by itself (tank, station, trips, hours, odometer) and with the others
    of its day; each month with a fill or a charge against the vehicle's norm (costs.checks.
    month_consumption: litres per 100 km, kWh per 100 km, or both for a plug-in hybrid)."""
    settings = setup.settings
    th = fuel_checks.Thresholds.of(settings)
    vehicle = session.get(Vehicle, vehicle_id)
    assert vehicle is not None
    fuel = (CostRecord.vehicle_id == vehicle_id) & (CostRecord.kind == CostKind.FUEL)
    ours = (CostRecord.vehicle_id == vehicle_id) & CostRecord.kind.in_(FILLS)
    checked = session.scalars(
        select(CostRecord)
        .where(ours, CostRecord.at >= since)
        .order_by(CostRecord.at, CostRecord.id)
    ).all()
    if not checked:
        return []
    fills = [r for r in checked if r.kind == CostKind.FUEL]
    zone = setup.zone
    trip_window = timedelta(minutes=settings.fuel_trip_window_min)
    odometer_before = session.scalar(
        select(CostRecord)
        .where(fuel, CostRecord.odometer_km.is_not(None), CostRecord.at < since)
        .order_by(CostRecord.at.desc(), CostRecord.id.desc())
        .limit(1)
    )
    low = min(
        _month(checked[0].at, zone)[0],
        checked[0].at - trip_window,
        odometer_before.at if odometer_before is not None else checked[0].at,
    )
    high = max(_month(checked[-1].at, zone)[1], checked[-1].at + trip_window)
    rows = session.execute(
        select(Trip.start_at, Trip.end_at, Trip.distance_m)
        .where(Trip.vehicle_id == vehicle_id, Trip.end_at >= low, Trip.start_at < high)
        .order_by(Trip.start_at)
    ).all()
    track = _Track([r[0] for r in rows], [r[1] for r in rows], [float(r[2]) for r in rows])
    # Every fill and charge of the days and months concerned, including those before `since`.
    around = session.execute(
        select(CostRecord.at, CostRecord.kind, CostRecord.litres, CostRecord.kwh).where(
            ours, CostRecord.at >= low, CostRecord.at < high
        )
    ).all()
    nearest = _nearest_fixes(
        session, vehicle_id, fills, timedelta(minutes=settings.fuel_track_window_min)
    )
    found: list[tuple[CostRecord, str, fuel_checks.Finding]] = []
    days: dict[str, CostRecord] = {}
    months: dict[str, CostRecord] = {}
    previous_odometer = odometer_before
    for fill in fills:
        key = f"cost:{fill.id}"
        assert fill.litres is not None
        distance_m, offset_s = nearest.get(fill.id, (None, None))
        working, local_time = _working_time(setup, vehicle.unit_id, fill.at)
        findings = [
            fuel_checks.over_capacity(fill.litres, vehicle.tank_l, th),
            fuel_checks.location_mismatch(distance_m, offset_s, th),
            fuel_checks.no_trip(track.near(fill.at, trip_window), settings.fuel_trip_window_min),
            fuel_checks.off_hours(working, fill.order_id is not None, local_time),
        ]
        if fill.odometer_km is not None:
            if previous_odometer is not None and previous_odometer.odometer_km is not None:
                finding = fuel_checks.odometer_mismatch(
                    fill.odometer_km - previous_odometer.odometer_km,
                    track.km_between(previous_odometer.at, fill.at),
                    th,
                )
                if finding:
                    finding.measured["since_cost_id"] = previous_odometer.id
                findings.append(finding)
            previous_odometer = fill
        found += [(fill, key, f) for f in findings if f is not None]
        days[fill.at.astimezone(zone).date().isoformat()] = fill
    for record in checked:
        months[_month(record.at, zone)[2]] = record
    for day, last in days.items():
        start = datetime.fromisoformat(day).replace(tzinfo=zone)
        count = sum(
            1
            for at, kind, _, _ in around
            if kind == CostKind.FUEL and start <= at < start + timedelta(days=1)
        )
        finding = fuel_checks.too_frequent(count, th)
        if finding:
            finding.measured["day"] = day
            found.append((last, f"day:{day}", finding))
    for month, last in months.items():
        start, end, _ = _month(last.at, zone)
        inside = [r for r in around if start <= r.at < end]
        finding = fuel_checks.month_consumption(
            energy=Energy(vehicle.energy),
            litres=sum(float(r.litres or 0.0) for r in inside if r.kind == CostKind.FUEL),
            kwh=sum(float(r.kwh or 0.0) for r in inside if r.kind == CostKind.CHARGING),
            distance_km=track.km_between(start, end),
            norm_l_100km=vehicle.fuel_norm_l_100km,
            norm_kwh_100km=vehicle.energy_norm_kwh_100km,
            th=th,
        )
        if finding:
            finding.measured["month"] = month
            found.append((last, f"month:{month}", finding))
    return _alert_records(vehicle, found, zone)


def _alert_records(
    vehicle: Vehicle,
    found: Sequence[tuple[CostRecord, str, fuel_checks.Finding]],
    zone: ZoneInfo,
) -> list[AlertRecord]:
    """Findings as the one alert writer's (geofence.store) records: one per (vehicle, kind, key,
    start). A day's or month's alert starts at the day or month, so a later run updates the same
    row with the newer figures, and an older view never overwrites a newer."""
    records = []
    for record, key, finding in found:
        started = record.at
        if key.startswith("day:"):
            started = datetime.fromisoformat(key[4:]).replace(tzinfo=zone)
        elif key.startswith("month:"):
            started = datetime.fromisoformat(key[6:] + "-01").replace(tzinfo=zone)
        station = to_shape(record.station) if record.station is not None else None
        at = record.at.timestamp()
        records.append(
            AlertRecord(
                vehicle_id=vehicle.id,
                unit_id=vehicle.unit_id,
                order_id=record.order_id,
                driver_id=None,
                event=Event(
                    kind=finding.kind,
                    key=key,
                    started_t=started.timestamp(),
                    last_t=at,
                    ended_t=at,
                    severity=finding.severity,
                    lat=None if station is None else station.y,
                    lon=None if station is None else station.x,
                    measured={**finding.measured, "cost_id": record.id},
                ),
                thresholds=finding.thresholds,
            )
        )
    return records
