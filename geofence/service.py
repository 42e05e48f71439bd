"""Services of the geofence domain: fences, the working calendar and hours, alerts and review.

Each takes the session first and never commits; the request or the worker commits.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import shapely
from geoalchemy2.shape import from_shape, to_shape
from pydantic import ValidationError
from shapely.geometry import mapping
from sqlalchemy import Select, func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from fleet import audit
from fleet.auth import Actor, is_root_admin, is_root_path, require, units_in_scope
from fleet.db import utcnow
from fleet.errors import Conflict, Forbidden, Invalid, NotFound, Rejected
from fleet.models import OrgUnit, Vehicle
from fleet.paging import Listing
from geofence import geometry, notice
from geofence.calendar import WorkingCalendar, epoch_day, official_days, year_length
from geofence.fences import CompiledFence, FenceSet, Schedule, VehicleInfo
from geofence.models import (
    REVIEW_MOVES,
    Alert,
    AlertReview,
    CalendarDay,
    Fence,
    FenceShape,
    Review,
    WorkingHours,
)
from geofence.schemas import (
    CalendarDayIn,
    FenceCreate,
    FenceUpdate,
    ReviewIn,
    ScheduleIn,
    WorkingHoursIn,
)
from geofence.settings import GeofenceSettings, clock_seconds
from telematics import tracks

# A GeoJSON import is bounded before any feature is read.
MAX_IMPORT_FEATURES = 1_000
MAX_IMPORT_VERTICES = 200_000

# ---- fences ---------------------------------------------------------------------------------


def _shape_and_area(
    geojson: dict[str, Any], radius_m: float | None, width_m: float | None
) -> tuple[FenceShape, Any, Any]:
    shape = geometry.parse(geojson)
    kind = FenceShape(geometry.shape_of(shape))
    geometry.check_size(kind, radius_m=radius_m, width_m=width_m)
    return kind, shape, geometry.area(shape, radius_m=radius_m, width_m=width_m)


def _check_units(session: Session, actor: Actor, unit_ids: Sequence[int]) -> None:
    if not unit_ids:
        return
    found = set(
        session.scalars(
            select(OrgUnit.id).where(
                OrgUnit.id.in_(unit_ids), OrgUnit.id.in_(units_in_scope(actor))
            )
        )
    )
    missing = sorted(set(unit_ids) - found)
    if missing:
        raise Invalid(f"unknown units {missing}", field="unit_ids")


def _schedule(value: ScheduleIn | None) -> dict[str, Any] | None:
    return None if value is None else value.model_dump()


def _audit_view(fence: Fence) -> dict[str, Any]:
    """The fence as the audit log keeps it: as drawn, without the derived area."""
    snapshot = audit.snapshot(fence)
    snapshot.pop("area", None)
    return snapshot


def _visible(actor: Actor) -> Select[Any]:
    """Fences owned in the actor's subtree, or above it (a city's region applies to its bureaus)."""
    owner_path = select(OrgUnit.path).where(OrgUnit.id == Fence.owner_unit_id).scalar_subquery()
    return select(Fence).where(
        Fence.owner_unit_id.in_(units_in_scope(actor))
        | func.starts_with(actor.unit_path, owner_path)
    )


def get_fence(*, session: Session, actor: Actor, fence_id: int) -> Fence:
    require(actor, "fence", "read")
    fence = session.scalar(_visible(actor).where(Fence.id == fence_id))
    if fence is None:
        raise NotFound(f"no fence {fence_id}")
    return fence


def list_fences(
    *, session: Session, actor: Actor, kind: str | None = None, enabled: bool | None = None
) -> Sequence[Fence]:
    require(actor, "fence", "read")
    stmt = _visible(actor).order_by(Fence.id)
    if kind is not None:
        stmt = stmt.where(Fence.kind == kind)
    if enabled is not None:
        stmt = stmt.where(Fence.enabled == enabled)
    return session.scalars(stmt).all()


def _writable(session: Session, actor: Actor, fence_id: int) -> Fence:
    require(actor, "fence", "write")
    fence = session.scalar(
        select(Fence).where(Fence.id == fence_id, Fence.owner_unit_id.in_(units_in_scope(actor)))
    )
    if fence is None:
        # A fence the caller can see (one of a unit above theirs) is theirs to read, not to
        # write; any other is outside their scope, and no different from a missing one.
        if session.scalar(_visible(actor).where(Fence.id == fence_id)) is not None:
            raise Forbidden(f"fence {fence_id} belongs to a unit above yours")
        raise NotFound(f"no fence {fence_id}")
    return fence


def create_fence(*, session: Session, actor: Actor, data: FenceCreate) -> Fence:
    require(actor, "fence", "write")
    shape_kind, shape, area = _shape_and_area(data.geometry, data.radius_m, data.width_m)
    _check_units(session, actor, data.unit_ids)
    fence = Fence(
        name=data.name,
        kind=data.kind,
        shape=shape_kind,
        geometry=from_shape(shape, srid=4326),
        radius_m=data.radius_m,
        width_m=data.width_m,
        area=from_shape(area, srid=4326),
        schedule=_schedule(data.schedule),
        unit_ids=sorted(set(data.unit_ids)),
        categories=sorted({c.value for c in data.categories}),
        speed_limit_kmh=data.speed_limit_kmh,
        enabled=data.enabled,
        owner_unit_id=actor.unit_id,
        note=data.note,
    )
    return audit.created(
        session=session, actor=actor.ref, entity="fence", obj=fence, view=_audit_view
    )


def update_fence(*, session: Session, actor: Actor, fence_id: int, data: FenceUpdate) -> Fence:
    fence = _writable(session, actor, fence_id)
    with audit.changing(
        session=session, actor=actor.ref, entity="fence", obj=fence, view=_audit_view
    ):
        changes = data.model_dump(exclude_unset=True)
        for required in ("name", "kind", "geometry", "enabled", "unit_ids", "categories", "note"):
            if required in changes and changes[required] is None:
                raise Invalid(f"{required} cannot be empty", field=required)
        if {"geometry", "radius_m", "width_m"} & changes.keys():
            geojson = changes.get("geometry") or mapping(to_shape(fence.geometry))
            radius = changes.get("radius_m", fence.radius_m if "geometry" not in changes else None)
            width = changes.get("width_m", fence.width_m if "geometry" not in changes else None)
            shape_kind, shape, area = _shape_and_area(dict(geojson), radius, width)
            fence.shape, fence.geometry = shape_kind, from_shape(shape, srid=4326)
            fence.area, fence.radius_m, fence.width_m = from_shape(area, srid=4326), radius, width
        if "unit_ids" in changes:
            _check_units(session, actor, changes["unit_ids"])
            fence.unit_ids = sorted(set(changes["unit_ids"]))
        if "categories" in changes:
            fence.categories = sorted({str(c) for c in changes["categories"]})
        if "schedule" in changes:
            fence.schedule = _schedule(data.schedule)
        for key in ("name", "kind", "speed_limit_kmh", "enabled", "note"):
            if key in changes:
                setattr(fence, key, changes[key])
        fence.updated_at = utcnow()
    return fence


def delete_fence(*, session: Session, actor: Actor, fence_id: int) -> None:
    fence = _writable(session, actor, fence_id)
    if session.scalar(select(func.count()).where(Alert.fence_id == fence_id)):
        raise Conflict(
            f"fence {fence_id} is evidence in alerts; disable it instead (PATCH enabled=false)"
        )
    audit.deleted(session=session, actor=actor.ref, entity="fence", obj=fence, view=_audit_view)


def import_fences(*, session: Session, actor: Actor, collection: Any) -> list[Fence]:
    """A GeoJSON FeatureCollection, each feature's properties holding the fence's fields. All or
    nothing: one bad feature refuses the file, and the error names every bad feature."""
    require(actor, "fence", "write")
    if not isinstance(collection, dict) or collection.get("type") != "FeatureCollection":
        raise Invalid("expected a GeoJSON FeatureCollection", field="type")
    features = collection.get("features")
    if not isinstance(features, list) or not features:
        raise Invalid("the FeatureCollection has no features", field="features")
    if len(features) > MAX_IMPORT_FEATURES:
        raise Invalid(
            f"an import holds at most {MAX_IMPORT_FEATURES} features, not {len(features)}",
            field="features",
        )
    vertices = sum(geometry.positions(f.get("geometry")) for f in features if isinstance(f, dict))
    if vertices > MAX_IMPORT_VERTICES:
        raise Invalid(
            f"an import holds at most {MAX_IMPORT_VERTICES} vertices in all, not {vertices}",
            field="features",
        )
    checked: list[FenceCreate] = []
    problems: list[str] = []
    for n, feature in enumerate(features):
        try:
            if not isinstance(feature, dict) or feature.get("type") != "Feature":
                raise Invalid("not a GeoJSON Feature")
            data = FenceCreate.model_validate(
                {**(feature.get("properties") or {}), "geometry": feature.get("geometry")}
            )
            _shape_and_area(data.geometry, data.radius_m, data.width_m)
            checked.append(data)
        except Invalid as error:
            problems.append(f"feature {n}: {error.message}")
        except ValidationError as invalid:
            first = invalid.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            problems.append(f"feature {n}: {where}: {first['msg']}")
    if problems:
        raise Invalid("nothing imported: " + "; ".join(problems), field="features")
    return [create_fence(session=session, actor=actor, data=data) for data in checked]


def fence_feature(fence: Fence, *, with_area: bool = True) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "id": fence.id,
        "name": fence.name,
        "kind": fence.kind,
        "shape": fence.shape,
        "radius_m": fence.radius_m,
        "width_m": fence.width_m,
        "schedule": fence.schedule,
        "unit_ids": fence.unit_ids,
        "categories": fence.categories,
        "speed_limit_kmh": fence.speed_limit_kmh,
        "enabled": fence.enabled,
        "owner_unit_id": fence.owner_unit_id,
        "note": fence.note,
        "updated_at": fence.updated_at,
    }
    if with_area:
        properties["area"] = mapping(to_shape(fence.area))
    return {
        "type": "Feature",
        "id": fence.id,
        "geometry": mapping(to_shape(fence.geometry)),
        "properties": properties,
    }


def _compiled_schedule(value: dict[str, Any] | None) -> Schedule | None:
    if not value:
        return None
    end = value.get("end", "24:00")
    return Schedule(
        days=frozenset(value.get("days") or range(1, 8)),
        start_s=clock_seconds(value.get("start", "00:00")),
        end_s=86_400 if end == "24:00" else clock_seconds(end),
    )


def _applies_to_paths(
    paths: dict[int, str], owner_unit_id: int, unit_ids: Sequence[int]
) -> tuple[str, ...]:
    """The unit paths a fence applies to. A root unit's fence applies to the units it names, or
    to every unit; any other unit's fence only within its owner's subtree: to the units it names
    there, or, naming none (or none that is still there), to the whole subtree."""
    owner = paths.get(owner_unit_id, "")
    if is_root_path(owner):
        return tuple(paths[u] for u in unit_ids if u in paths)
    named = tuple(paths[u] for u in unit_ids if paths.get(u, "").startswith(owner))
    return named or (owner,)


def compiled_fences(*, session: Session) -> FenceSet:
    """Every enabled fence, compiled for the engine."""
    paths = {r[0]: r[1] for r in session.execute(select(OrgUnit.id, OrgUnit.path))}
    rows = session.execute(
        select(
            Fence.id,
            Fence.name,
            Fence.kind,
            func.ST_AsBinary(Fence.area),
            Fence.speed_limit_kmh,
            Fence.schedule,
            Fence.unit_ids,
            Fence.categories,
            Fence.owner_unit_id,
        )
        .where(Fence.enabled)
        .order_by(Fence.id)
    ).all()
    return FenceSet(
        [
            CompiledFence(
                id=r[0],
                name=r[1],
                kind=str(r[2]),
                area=shapely.from_wkb(bytes(r[3])),
                speed_limit_kmh=r[4],
                schedule=_compiled_schedule(r[5]),
                unit_paths=_applies_to_paths(paths, r[8], r[6]),
                categories=frozenset(r[7]),
            )
            for r in rows
        ]
    )


def vehicle_infos(*, session: Session, vehicle_ids: Sequence[int]) -> dict[int, VehicleInfo]:
    rows = session.execute(
        select(
            Vehicle.id,
            Vehicle.unit_id,
            OrgUnit.path,
            Vehicle.category,
            Vehicle.status,
            Vehicle.status_since,
        )
        .join(OrgUnit, OrgUnit.id == Vehicle.unit_id)
        .where(Vehicle.id.in_(vehicle_ids))
    ).all()
    return {
        r[0]: VehicleInfo(
            id=r[0],
            unit_id=r[1],
            unit_path=r[2],
            category=str(r[3]),
            status=str(r[4]),
            status_since=None if r[5] is None else r[5].timestamp(),
        )
        for r in rows
    }


def engine_version(*, session: Session) -> tuple[Any, ...]:
    """Changes when fences, the calendar or working hours change, or a vehicle's status (the
    engine then reloads, and the worker reads its vehicles again: a car sealed or sent to the
    workshop is watched from then on). The sum of the stamps, not their latest: an edit stamped
    by the app's clock may be older than rows the database stamped (the migrations' calendar),
    and must still count. Of the vehicles, those not active, their status and since when, as a
    digest."""
    return tuple(
        session.execute(
            text(
                "SELECT (SELECT count(*) || '/' || sum(extract(epoch FROM updated_at)) FROM fence),"
                " (SELECT count(*) || '/' || sum(extract(epoch FROM updated_at))"
                " FROM calendar_day),"
                " (SELECT count(*) || '/' || sum(extract(epoch FROM updated_at))"
                " FROM working_hours),"
                " (SELECT count(*) || '/' || coalesce(md5(string_agg(id || ':' || status"
                " || ':' || coalesce(extract(epoch FROM status_since)::text, ''), ','"
                " ORDER BY id)), '') FROM vehicle WHERE status <> 'active')"
            )
        ).one()
    )


# ---- the working calendar -------------------------------------------------------------------


def calendar_year(*, session: Session, year: int) -> dict[str, Any]:
    if not 1900 <= year <= 2200:
        raise Invalid("year out of range", field="year")
    days = session.scalars(
        select(CalendarDay)
        .where(CalendarDay.day >= dt.date(year, 1, 1), CalendarDay.day <= dt.date(year, 12, 31))
        .order_by(CalendarDay.day)
    ).all()
    length = year_length(year)
    return {
        "year": year,
        "covered": len(days) == length,
        "missing_days": length - len(days),
        "days": [
            {"day": d.day, "working": d.working, "note": d.note, "source": d.source} for d in days
        ],
    }


def _require_calendar_admin(actor: Actor) -> None:
    require(actor, "calendar", "write")
    if not is_root_admin(actor):
        raise Forbidden("only an administrator of a root unit edits the calendar every unit shares")


def set_calendar_day(
    *, session: Session, actor: Actor, day: dt.date, data: CalendarDayIn
) -> CalendarDay:
    _require_calendar_admin(actor)
    row = session.get(CalendarDay, day)
    before = audit.snapshot(row) if row is not None else None
    if row is None:
        row = CalendarDay(day=day, working=data.working, note=data.note, source="manual")
        session.add(row)
    else:
        row.working, row.note, row.source = data.working, data.note, "manual"
    _saved(session=session, actor=actor, row=row, before=before, entity_id=day.isoformat())
    return row


def _held_per_year(session: Session, first: int, last: int | None = None) -> dict[int, int]:
    """How many dates of each year from `first` (to `last`) the calendar holds."""
    year = func.extract("year", CalendarDay.day)
    query = select(year, func.count()).where(CalendarDay.day >= dt.date(first, 1, 1))
    if last is not None:
        query = query.where(CalendarDay.day <= dt.date(last, 12, 31))
    return {int(y): int(n) for y, n in session.execute(query.group_by(year))}


def calendar_status(*, session: Session, today: dt.date, warning_days: int) -> dict[str, Any]:
    """How far ahead the calendar reaches, and a warning for each year it does not hold that
    has begun or begins within `warning_days` of `today` (a local date): on that year's dates
    the no-order and off-hours rules are silent until it is entered."""
    held = _held_per_year(session, today.year)
    covered_through = None
    year = today.year
    while held.get(year, 0) == year_length(year):
        covered_through, year = year, year + 1
    warnings = []
    for year in range(today.year, (today + dt.timedelta(days=warning_days)).year + 1):
        missing = year_length(year) - held.get(year, 0)
        if not missing:
            continue
        starts_on = dt.date(year, 1, 1)
        days_left = max(0, (starts_on - today).days)
        when = f"from {starts_on}, in {days_left} days," if days_left else "now"
        warnings.append(
            {
                "code": "calendar_year_missing",
                "year": year,
                "starts_on": starts_on,
                "days_left": days_left,
                "missing_days": missing,
                "message": (
                    f"the working calendar does not hold {year} ({missing} of"
                    f" {year_length(year)} dates missing): {when} the no-order and off-hours"
                    " checks are silent on the dates it lacks. Paste the State Council's notice"
                    f" for {year} under Administration, Working calendar, or run"
                    f" `fleet calendar import FILE --year {year}`"
                ),
            }
        )
    return {"today": today, "covered_through": covered_through, "warnings": warnings}


def _read_notice(text: str, year: int) -> notice.Notice:
    if not 1900 <= year <= 2200:
        raise Invalid("year out of range", field="year")
    try:
        return notice.parse(text, year=year)
    except notice.NoticeInvalid as error:
        if not error.problems:
            raise Invalid(error.message, field="text") from None
        problems: list[dict[str, object]] = [
            {"line": p.line, "field": "text", "reason": f"「{p.text}」: {p.reason}"}
            for p in error.problems
        ]
        raise Rejected(error.message, problems=problems) from None


def _notice_plan(
    session: Session, parsed: notice.Notice
) -> tuple[list[tuple[dt.date, bool, str]], dict[dt.date, CalendarDay]]:
    year = parsed.year
    held = {
        row.day: row
        for row in session.scalars(
            select(CalendarDay).where(
                CalendarDay.day >= dt.date(year, 1, 1), CalendarDay.day <= dt.date(year, 12, 31)
            )
        )
    }
    return notice.year_days(parsed), held


def _change(row: CalendarDay | None, working: bool, note: str) -> str:
    if row is None:
        return "new"
    return "same" if (row.working, row.note) == (working, note) else "changed"


def preview_notice(*, session: Session, actor: Actor, year: int, text: str) -> dict[str, Any]:
    """The whole year as the notice makes it, each date marked new, changed (with what the
    calendar holds now) or the same; nothing is written."""
    _require_calendar_admin(actor)
    parsed = _read_notice(text, year)
    days, held = _notice_plan(session, parsed)
    rows = []
    for day, working, note in days:
        row = held.get(day)
        change = _change(row, working, note)
        rows.append(
            {
                "day": day,
                "working": working,
                "note": note,
                "change": change,
                "before": (
                    {"day": day, "working": row.working, "note": row.note, "source": row.source}
                    if row is not None and change == "changed"
                    else None
                ),
            }
        )
    changes = [r["change"] for r in rows]
    return {
        "year": year,
        "holidays": [
            {
                "name": h.name,
                "line": h.line,
                "days_off": list(h.days_off),
                "working_days": list(h.working_days),
            }
            for h in parsed.holidays
        ],
        "days": rows,
        "summary": {
            "days_off": sum(not r["working"] for r in rows),
            "working_days": sum(r["working"] for r in rows),
            "holidays": sum(not w and n != "周末" for _, w, n in days),
            "adjusted_working_days": sum(w and bool(n) for _, w, n in days),
            "new": changes.count("new"),
            "changed": changes.count("changed"),
            "same": changes.count("same"),
        },
        "warnings": [
            {"code": w.code, "message": w.message, "line": w.line, "day": w.day, "name": w.name}
            for w in parsed.warnings
        ],
        "ignored": [{"line": number, "text": line} for number, line in parsed.ignored],
    }


def import_notice(*, session: Session, actor: Actor, year: int, text: str) -> dict[str, Any]:
    """Writes the year as the notice makes it (source `notice`): every date new or changed is
    stamped, so the engines reload, and audited as `calendar_day` entries, one per date, as a
    change by hand is; dates already as the notice has them are left alone."""
    _require_calendar_admin(actor)
    parsed = _read_notice(text, year)
    days, held = _notice_plan(session, parsed)
    now = utcnow()
    changes = []
    created = updated = 0
    for day, working, note in days:
        row = held.get(day)
        change = _change(row, working, note)
        if change == "same":
            continue
        before = audit.snapshot(row) if row is not None else None
        if row is None:
            row = CalendarDay(day=day, working=working, note=note, source="notice")
            session.add(row)
            created += 1
        else:
            row.working, row.note, row.source = working, note, "notice"
            updated += 1
        row.updated_at = now
        changes.append((row, before))
    session.flush()
    audit.record_many(
        session=session,
        changes=[
            audit.Change(
                actor=actor.ref,
                action="update" if before else "create",
                entity=CalendarDay.__tablename__,
                entity_id=row.day.isoformat(),
                before=before,
                after=audit.snapshot(row),
            )
            for row, before in changes
        ],
    )
    return {
        "year": year,
        "created": created,
        "updated": updated,
        "unchanged": len(days) - created - updated,
        "covered": True,
    }


def seed_calendar(*, session: Session, years: range) -> int:
    """Adds the dates `chinesecalendar` knows that the table lacks; edited dates are kept."""
    rows = [{"day": d, "working": w, "note": n} for d, w, n in official_days(years)]
    if not rows:
        return 0
    result = session.execute(
        insert(CalendarDay).values(rows).on_conflict_do_nothing(index_elements=["day"])
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def _hours(row: WorkingHours) -> tuple[int, int]:
    return (
        row.start.hour * 3600 + row.start.minute * 60,
        row.end.hour * 3600 + row.end.minute * 60,
    )


def working_calendar(*, session: Session, settings: GeofenceSettings) -> WorkingCalendar:
    days = {
        epoch_day(d): w for d, w in session.execute(select(CalendarDay.day, CalendarDay.working))
    }
    own = {row.unit_id: _hours(row) for row in session.scalars(select(WorkingHours))}
    default = (clock_seconds(settings.working_start), clock_seconds(settings.working_end))
    hours: dict[int, tuple[int, int]] = {}
    for unit_id, path in session.execute(select(OrgUnit.id, OrgUnit.path)):
        # The nearest unit up the path that sets its own hours.
        ancestors = [int(p) for p in path.strip("/").split("/") if p]
        for ancestor in reversed(ancestors):
            if ancestor in own:
                hours[unit_id] = own[ancestor]
                break
    return WorkingCalendar(days=days, default_hours=default, unit_hours=hours)


def get_working_hours(
    *, session: Session, actor: Actor, unit_id: int, settings: GeofenceSettings
) -> dict[str, Any]:
    require(actor, "calendar", "read")
    unit = session.scalar(
        select(OrgUnit).where(OrgUnit.id == unit_id, OrgUnit.id.in_(units_in_scope(actor)))
    )
    if unit is None:
        raise NotFound(f"no unit {unit_id}")
    calendar = working_calendar(session=session, settings=settings)
    start, end = calendar.unit_hours.get(unit_id, calendar.default_hours)
    own = session.get(WorkingHours, unit_id)
    return {
        "unit_id": unit_id,
        "start": f"{start // 3600:02d}:{start % 3600 // 60:02d}",
        "end": f"{end // 3600:02d}:{end % 3600 // 60:02d}",
        "inherited": own is None,
    }


def set_working_hours(
    *, session: Session, actor: Actor, unit_id: int, data: WorkingHoursIn
) -> WorkingHours:
    require(actor, "calendar", "write")
    unit = session.scalar(
        select(OrgUnit).where(OrgUnit.id == unit_id, OrgUnit.id.in_(units_in_scope(actor)))
    )
    if unit is None:
        raise NotFound(f"no unit {unit_id}")
    start, end = clock_seconds(data.start), clock_seconds(data.end)
    if start >= end:
        raise Invalid("the working day must end after it starts", field="end")
    row = session.get(WorkingHours, unit_id)
    before = audit.snapshot(row) if row is not None else None
    if row is None:
        row = WorkingHours(unit_id=unit_id, start=dt.time(0), end=dt.time(0))
        session.add(row)
    row.start = dt.time(start // 3600, start % 3600 // 60)
    row.end = dt.time(end // 3600, end % 3600 // 60)
    _saved(session=session, actor=actor, row=row, before=before, entity_id=unit_id)
    return row


def _saved(
    *,
    session: Session,
    actor: Actor,
    row: CalendarDay | WorkingHours,
    before: dict[str, Any] | None,
    entity_id: object,
) -> None:
    """Stamps and flushes a calendar row made or changed by hand, and audits it (`before`: its
    snapshot before the change, None for a new row)."""
    row.updated_at = utcnow()
    session.flush()
    audit.record(
        session=session,
        actor=actor.ref,
        action="update" if before else "create",
        entity=row.__tablename__,
        entity_id=entity_id,
        before=before,
        after=audit.snapshot(row),
    )


# ---- alerts ---------------------------------------------------------------------------------

OPEN, CLOSED = "open", "closed"


def _alert_row(alert: Alert, plate: str) -> dict[str, Any]:
    point = to_shape(alert.point) if alert.point is not None else None
    return {
        "id": alert.id,
        "kind": alert.kind,
        "key": alert.key,
        "severity": alert.severity,
        "vehicle_id": alert.vehicle_id,
        "plate": plate,
        "unit_id": alert.unit_id,
        "driver_id": alert.driver_id,
        "order_id": alert.order_id,
        "fence_id": alert.fence_id,
        "started_at": alert.started_at,
        "last_at": alert.last_at,
        "ended_at": alert.ended_at,
        "open": alert.ended_at is None,
        "review": alert.review,
        "lat": point.y if point is not None else None,
        "lon": point.x if point is not None else None,
        "measured": alert.measured,
        "thresholds": alert.thresholds,
    }


def list_alerts(
    *,
    session: Session,
    actor: Actor,
    listing: Listing,
    status: str | None = None,
    kind: str | None = None,
    vehicle_id: int | None = None,
    unit_id: int | None = None,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
) -> tuple[list[dict[str, Any]], int]:
    require(actor, "alert", "read")
    stmt = (
        select(Alert, Vehicle.plate)
        .join(Vehicle, Vehicle.id == Alert.vehicle_id)
        .where(Alert.unit_id.in_(units_in_scope(actor)))
    )
    if status == OPEN:
        stmt = stmt.where(Alert.ended_at.is_(None))
    elif status == CLOSED:
        stmt = stmt.where(Alert.ended_at.is_not(None))
    elif status is not None:
        try:
            stmt = stmt.where(Alert.review == Review(status))
        except ValueError:
            raise Invalid(
                "status is open, closed, " + ", ".join(r.value for r in Review), field="status"
            ) from None
    if kind is not None:
        stmt = stmt.where(Alert.kind == kind)
    if vehicle_id is not None:
        stmt = stmt.where(Alert.vehicle_id == vehicle_id)
    if unit_id is not None:
        stmt = stmt.where(Alert.unit_id == unit_id)
    if start is not None:
        stmt = stmt.where(func.coalesce(Alert.ended_at, Alert.last_at) >= start)
    if end is not None:
        stmt = stmt.where(Alert.started_at < end)
    rows = session.execute(
        listing.window(stmt.order_by(Alert.started_at.desc(), Alert.id.desc()))
    ).all()
    return [_alert_row(a, plate) for a, plate in rows], listing.total(session, stmt)


def _alert_in_scope(session: Session, actor: Actor, alert_id: int) -> tuple[Alert, str]:
    row = session.execute(
        select(Alert, Vehicle.plate)
        .join(Vehicle, Vehicle.id == Alert.vehicle_id)
        .where(Alert.id == alert_id, Alert.unit_id.in_(units_in_scope(actor)))
    ).first()
    if row is None:
        raise NotFound(f"no alert {alert_id}")
    return row[0], row[1]


EVIDENCE_MARGIN = dt.timedelta(minutes=5)
EVIDENCE_MAX_POINTS = 5000


def get_alert(*, session: Session, actor: Actor, alert_id: int) -> dict[str, Any]:
    """The alert with its evidence: the track around the episode (the flagged part marked),
    the fence, thresholds and measured values, and the review history."""
    require(actor, "alert", "read")
    alert, plate = _alert_in_scope(session, actor, alert_id)
    until = alert.ended_at or alert.last_at
    track = [
        (f.fix_time, f.lon, f.lat, f.speed_kmh, f.ignition)
        for f in tracks.fixes(
            session,
            alert.vehicle_id,
            alert.started_at - EVIDENCE_MARGIN,
            until + EVIDENCE_MARGIN + dt.timedelta(microseconds=1),  # the margin's end included
            located=True,
            limit=EVIDENCE_MAX_POINTS,
        )
    ]
    flagged = [r for r in track if alert.started_at <= r[0] <= until]
    fence = session.get(Fence, alert.fence_id) if alert.fence_id is not None else None
    reviews = session.scalars(
        select(AlertReview).where(AlertReview.alert_id == alert.id).order_by(AlertReview.id)
    ).all()

    def line(rows: Sequence[Any]) -> dict[str, Any] | None:
        if len(rows) < 2:
            return None
        return {"type": "LineString", "coordinates": [[r[1], r[2]] for r in rows]}

    return {
        **_alert_row(alert, plate),
        "evidence": {
            "track": line(track),
            "flagged": line(flagged),
            "points": [
                {
                    "fix_time": audit.jsonable(r[0]),
                    "lon": r[1],
                    "lat": r[2],
                    "speed_kmh": r[3],
                    "ignition": r[4],
                    "flagged": alert.started_at <= r[0] <= until,
                }
                for r in track
            ],
            "fence": fence_feature(fence) if fence is not None else None,
            "measured": alert.measured,
            "thresholds": alert.thresholds,
        },
        "reviews": [
            {"decision": r.decision, "reason": r.reason, "by": r.username, "at": r.at}
            for r in reviews
        ],
    }


def review_alert(
    *, session: Session, actor: Actor, alert_id: int, data: ReviewIn
) -> dict[str, Any]:
    require(actor, "alert", "review")
    # Before the alert's row: the geofence worker, which may be writing this alert, takes the
    # chain's lock before the alerts' rows too (geofence/store.py).
    audit.hold_chain(session)
    alert, plate = _alert_in_scope(session, actor, alert_id)
    decision = data.decision
    reason = data.reason.strip()
    if decision == Review.PENDING:
        raise Invalid("a decision is confirmed, dismissed or escalated", field="decision")
    if decision == Review.DISMISSED and not reason:
        raise Invalid("a dismissal needs a reason", field="reason")
    current = Review(alert.review)
    if decision not in REVIEW_MOVES[current]:
        raise Conflict(f"alert {alert_id} is {current.value}: it cannot become {decision.value}")
    before = {"review": current.value}
    alert.review = decision
    session.add(
        AlertReview(
            alert_id=alert.id,
            decision=decision,
            reason=reason,
            user_id=actor.user_id,
            username=actor.username,
            at=utcnow(),
        )
    )
    session.flush()
    audit.record(
        session=session,
        actor=actor.ref,
        action="review",
        entity="alert",
        entity_id=alert.id,
        before=before,
        after={"review": decision.value, "reason": reason},
    )
    return _alert_row(alert, plate)
