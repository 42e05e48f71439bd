"""The stored data from the command line: what is loaded in bulk (roads, the working calendar,
fences, cost statements), what is pruned (positions past their retention), and the stored
tracks replayed through the current rules."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Annotated, Any

import typer

from app.cli.common import (
    Exit,
    database,
    fail,
    log_to_stderr,
    refusals,
    system_actor,
    transaction,
    unit_by_code,
)
from app.cli.progress import progress
from fleet.auth import Actor
from fleet.db import utcnow
from fleet.settings import Settings

roads_app = typer.Typer(help="The road network (OpenStreetMap extracts).", no_args_is_help=True)
calendar_app = typer.Typer(help="The working calendar.", no_args_is_help=True)
fences_app = typer.Typer(help="Geofences.", no_args_is_help=True)
costs_app = typer.Typer(help="Costs: fuel-card and charging statements.", no_args_is_help=True)
positions_app = typer.Typer(help="Stored positions.", no_args_is_help=True)


@positions_app.command("prune")
def positions_prune(
    ctx: typer.Context,
    before: Annotated[
        str | None,
        typer.Option(
            help="Delete the fixes dated before this moment (ISO 8601 with a zone); default"
            " FLEET_POSITION_RETENTION_YEARS before now."
        ),
    ] = None,
) -> None:
    """Delete positions past their retention: whole monthly partitions dropped, the month the
    cut-off falls in trimmed, the deletion audited. The worker does this daily by itself."""
    from telematics import retention
    from telematics.settings import TelematicsSettings

    years = TelematicsSettings().position_retention_years
    if before is not None:
        try:
            cutoff = datetime.fromisoformat(before)
        except ValueError:
            raise fail(f"--before {before!r} is not an ISO 8601 moment", Exit.FAILED) from None
        if cutoff.tzinfo is None:
            raise fail("--before needs a zone (2020-01-01T00:00:00+08:00)", Exit.FAILED)
    elif years is not None:
        cutoff = retention.cutoff(utcnow(), years)
    else:
        raise fail("no retention: set FLEET_POSITION_RETENTION_YEARS or give --before", Exit.FAILED)
    with transaction(ctx.obj) as session:
        pruned = retention.prune(session=session, before=cutoff, retention_years=years)
    typer.echo(
        f"positions before {cutoff.isoformat()}: {pruned.rows_deleted} deleted, partitions"
        f" dropped: {', '.join(pruned.partitions_dropped) or 'none'}"
    )


@roads_app.command("import")
def roads_import(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="An OpenStreetMap extract (.osm.pbf).")],
    if_empty: Annotated[bool, typer.Option(help="Only when no roads are loaded yet.")] = False,
) -> None:
    """Load a road network into PostGIS for routing (replaces the one loaded before)."""
    from telematics import roads

    if not file.is_file():
        raise fail(f"no such file: {file}", Exit.FAILED)
    log_to_stderr()
    with database(ctx.obj, owner=True) as engine:  # it replaces a table: the owner's work
        if if_empty:
            with engine.connect() as conn:
                if roads.loaded(conn):
                    typer.echo("roads already loaded")
                    return
        typer.echo(f"importing roads from {file} ...")
        try:
            with progress(f"reading {file.name}", "ways") as reading:
                ways = roads.read_ways(file, reading)
        except RuntimeError as error:
            raise fail(f"cannot read {file}: {error}", Exit.FAILED) from None
        with progress("storing the roads", "ways") as storing:
            report = roads.store(engine, ways, storing)
    typer.echo(f"roads: {report.ways} ways, {report.edges} edges, {report.length_km:,.0f} km")


@calendar_app.command("seed")
def calendar_seed(
    ctx: typer.Context,
    first: Annotated[int, typer.Option(help="First year.")] = 2004,
    last: Annotated[int, typer.Option(help="Last year.")] = 2030,
) -> None:
    """Add the official working calendar the `chinesecalendar` package knows (dates already in
    the table, edited ones included, are kept)."""
    from geofence import service as geofence_service

    with transaction(ctx.obj) as session:
        added = geofence_service.seed_calendar(session=session, years=range(first, last + 1))
    typer.echo(f"working calendar: {added} dates added")


@calendar_app.command("import")
def calendar_import(
    ctx: typer.Context,
    file: Annotated[
        Path,
        typer.Argument(help="The State Council's holiday notice as text (UTF-8 or GB18030)."),
    ],
    year: Annotated[int, typer.Option(help="The year the notice arranges.")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the year as it would be saved; save nothing.")
    ] = False,
    unit: Annotated[
        str | None, typer.Option(help="Code of the root unit acting; default: the only one.")
    ] = None,
) -> None:
    """Enter a year of the working calendar from the State Council's notice (国务院办公厅关于
    N 年部分节假日安排的通知): its holidays and adjusted working days, every other date by its
    weekday. Prints the year first; a line it cannot read is named and nothing is saved."""
    from geofence import service as geofence_service

    try:
        raw = file.read_bytes()
    except OSError as error:
        raise fail(f"cannot read {file}: {error.strerror}", Exit.FAILED) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("gb18030", errors="replace")
    with refusals(), transaction(ctx.obj) as session:
        actor = system_actor(session, unit)
        preview = geofence_service.preview_notice(
            session=session, actor=actor, year=year, text=text
        )
        for line in _year_summary(preview):
            typer.echo(line)
        if dry_run:
            typer.echo("dry run: nothing saved")
            return
        saved = geofence_service.import_notice(session=session, actor=actor, year=year, text=text)
    typer.echo(
        f"working calendar {year}: {saved['created']} dates added, {saved['updated']} changed,"
        f" {saved['unchanged']} already so"
    )


def _year_summary(preview: dict[str, Any]) -> list[str]:
    """The year a notice makes, as the command prints it before saving."""

    def dates(days: list[Any]) -> str:
        return "、".join(f"{d.month}月{d.day}日" for d in days) or "—"

    summary = preview["summary"]
    lines = [
        f"{preview['year']}: {summary['days_off']} days off ({summary['holidays']} holiday dates),"
        f" {summary['working_days']} working days ({summary['adjusted_working_days']} of them"
        " adjusted working weekends)"
    ]
    for holiday in preview["holidays"]:
        off = holiday["days_off"]
        span = f"{off[0]} – {off[-1]}" if len(off) > 1 else f"{off[0]}"
        lines.append(
            f"  {holiday['name']}: off {span} ({len(off)} days); worked: "
            f"{dates(holiday['working_days'])}"
        )
    lines += [f"  note: {w['message']}" for w in preview["warnings"]]
    changed = [d for d in preview["days"] if d["change"] == "changed"]
    lines.append(
        f"against the calendar: {summary['new']} new, {summary['changed']} changed,"
        f" {summary['same']} the same"
    )
    lines += [f"  {d['day']}: {_day_state(d['before'])} -> {_day_state(d)}" for d in changed[:40]]
    if len(changed) > 40:
        lines.append(f"  ... and {len(changed) - 40} more")
    return lines


def _day_state(day: dict[str, Any]) -> str:
    state = "working" if day["working"] else "off"
    return f"{state} {day['note']}".strip()


@fences_app.command("import")
def fences_import(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="A GeoJSON FeatureCollection.")],
    unit: Annotated[str, typer.Option(help="Code of the unit that owns the fences.")],
) -> None:
    """Import fences from a GeoJSON file (each feature's properties: name, kind, radius_m...).
    All or nothing: one bad feature refuses the file, naming each bad feature."""
    from geofence import service as geofence_service

    try:
        collection = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise fail(f"cannot read {file}: {error}", Exit.FAILED) from None
    with refusals(), transaction(ctx.obj) as session:
        owner = Actor.system(unit_by_code(session, unit))
        fences = geofence_service.import_fences(session=session, actor=owner, collection=collection)
    typer.echo(f"imported {len(fences)} fences")


@costs_app.command("import")
def costs_import(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="The statement, CSV or XLSX.")],
    issuer: Annotated[str, typer.Option(help="Its format: sinopec, petrochina, charging...")],
    unit: Annotated[
        str | None, typer.Option(help="Code of the unit whose vehicles it covers; default: root.")
    ] = None,
) -> None:
    """Import a fuel-card or charging statement, all or nothing: one bad row refuses the file,
    naming every bad row and why. The same file again adds nothing."""
    from costs import service as costs
    from dispatch.settings import DispatchSettings
    from geofence import service as geofence_service
    from geofence.settings import GeofenceSettings

    settings: Settings = ctx.obj
    try:
        data = file.read_bytes()
    except OSError as error:
        raise fail(f"cannot read {file}: {error}", Exit.FAILED) from None
    log_to_stderr()
    with (
        refusals(),
        transaction(settings) as session,
        progress(f"checking {file.name}", "rows") as checked,
    ):
        setup = costs.CheckSetup(
            settings=DispatchSettings(),
            calendar=geofence_service.working_calendar(
                session=session, settings=GeofenceSettings()
            ),
            zone=settings.zone,
        )
        result = costs.import_statement(
            session=session,
            actor=system_actor(session, unit),
            data=data,
            filename=file.name,
            issuer=issuer,
            setup=setup,
            now=utcnow(),
            progress=checked,
        )
    if result["already_imported"]:
        typer.echo(f"{file.name} was imported before (statement {result['statement_id']})")
    else:
        typer.echo(
            f"imported {result['added']} of {result['rows']} rows"
            f" ({result['duplicates']} already stored); {len(result['alerts'])} alerts"
        )


@costs_app.command("check")
def costs_check(
    ctx: typer.Context,
    since: Annotated[
        str | None,
        typer.Option(
            help="Check the records from this day on (YYYY-MM-DD, a day in FLEET_DISPLAY_TIMEZONE,"
            " or an ISO 8601 moment with a zone); default: every record."
        ),
    ] = None,
    unit: Annotated[
        str | None, typer.Option(help="Code of the unit whose vehicles are checked; default: root.")
    ] = None,
) -> None:
    """Run every cost check again (fuel, energy, odometer), for example after vehicles' norms
    or the thresholds changed: alerts already raised are updated in place, never raised twice.
    Prints the alerts added and updated by kind. One transaction per vehicle."""
    from costs import service as costs
    from dispatch.settings import DispatchSettings
    from fleet.db import make_session_factory, unit_of_work
    from geofence import service as geofence_service
    from geofence.settings import GeofenceSettings

    settings: Settings = ctx.obj
    start = None if since is None else _since(since, settings)
    if start is not None and start > utcnow():
        raise fail(f"--since {since} is in the future", Exit.FAILED)
    log_to_stderr()
    counts: dict[str, Counter[str]] = {
        "added": Counter(),
        "updated": Counter(),
        "unchanged": Counter(),
    }
    with (
        refusals(),
        database(settings) as engine,
        progress("checking costs", "vehicles") as checked,
    ):
        sessions = make_session_factory(engine)
        with unit_of_work(sessions) as session:
            setup = costs.CheckSetup(
                settings=DispatchSettings(),
                calendar=geofence_service.working_calendar(
                    session=session, settings=GeofenceSettings()
                ),
                zone=settings.zone,
            )
            actor = system_actor(session, unit)
            vehicle_ids = costs.vehicles_with_fills(session=session, actor=actor, since=start)
        for done, vehicle_id in enumerate(vehicle_ids, 1):
            with unit_of_work(sessions) as session:
                found = costs.recheck(
                    session=session, vehicle_id=vehicle_id, since=start, setup=setup
                )
            for what, by_kind in found.items():
                counts[what].update(by_kind)
            checked(done, len(vehicle_ids))
        with unit_of_work(sessions) as session:
            costs.record_recheck(
                session=session,
                actor=actor,
                since=start,
                vehicles=len(vehicle_ids),
                counts=counts,
            )
    total = {what: sum(by_kind.values()) for what, by_kind in counts.items()}
    typer.echo(
        f"checked {len(vehicle_ids)} vehicles: {total['added']} alerts added,"
        f" {total['updated']} updated, {total['unchanged']} unchanged"
    )
    for what in ("added", "updated"):
        for kind, n in sorted(counts[what].items()):
            typer.echo(f"  {what} {kind}: {n}")


def _since(value: str, settings: Settings) -> datetime:
    try:
        day = date.fromisoformat(value)
    except ValueError:
        pass
    else:
        return datetime.combine(day, time(), settings.zone)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise fail(
            f"--since {value!r} is neither a day nor an ISO 8601 moment", Exit.FAILED
        ) from None
    if moment.tzinfo is None:
        raise fail("--since needs a zone (2026-03-01T00:00:00+08:00) or a day", Exit.FAILED)
    return moment


def replay(
    ctx: typer.Context,
    start: Annotated[
        datetime, typer.Option(help="Start of the period (ISO-8601, UTC if no zone).")
    ],
    end: Annotated[datetime, typer.Option(help="End of the period (exclusive).")],
    vehicle: Annotated[
        list[int] | None, typer.Option(help="Only this vehicle id (repeatable).")
    ] = None,
    dry_run: Annotated[bool, typer.Option(help="Report the alerts without storing them.")] = False,
) -> None:
    """Run stored tracks through the current rules and fences; store the alerts they raise."""
    from dispatch.permits import OrderPermits
    from geofence.calendar import date_of
    from geofence.replay import replay as run_replay
    from geofence.settings import GeofenceSettings

    settings: Settings = ctx.obj
    start, end = (t if t.tzinfo else t.replace(tzinfo=UTC) for t in (start, end))
    if end <= start:
        raise fail("--end must be after --start", Exit.FAILED)
    log_to_stderr()
    with (
        database(settings, pool_size=2) as engine,
        progress("replaying", "vehicles") as replayed,
    ):
        report = run_replay(
            engine=engine,
            settings=GeofenceSettings(),
            zone=settings.zone,
            start=start,
            end=end,
            vehicle_ids=vehicle or None,
            permits=OrderPermits(engine),
            write=not dry_run,
            progress=replayed,
        )
    for record in report.alerts:
        event = record.event
        began = datetime.fromtimestamp(event.started_t, UTC).isoformat()
        typer.echo(
            f"{record.vehicle_id}\t{event.kind}\t{event.key}\t{began}\t{event.severity}"
            f"\t{json.dumps(event.measured, ensure_ascii=False)}"
        )
    for day in sorted(report.uncovered_days):
        typer.echo(
            f"warning: the working calendar does not cover {date_of(day)}: off-hours and"
            " no-order checks were suspended for it",
            err=True,
        )
    verb = "would add" if dry_run else "added"
    typer.echo(
        f"replayed {report.fixes} fixes of {report.vehicles} vehicles: {len(report.alerts)}"
        f" alerts, {verb} {report.new} not raised before",
        err=True,
    )
