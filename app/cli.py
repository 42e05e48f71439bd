"""`fleet ...`: the one command line that starts every role of the system. The composition root."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import OperationalError

from fleet import audit, checkpoint, migrate, registry
from fleet.auth import Actor
from fleet.db import make_engine, make_session_factory, unit_of_work, utcnow
from fleet.errors import FleetError, Rejected
from fleet.models import OrgUnit, Role
from fleet.schemas import UserCreate
from fleet.settings import Settings

ROOT = Path(__file__).resolve().parent.parent

app = typer.Typer(
    help="Fleet: telematics and dispatch for official-vehicle pools.", no_args_is_help=True
)
db_app = typer.Typer(help="Database schema (Alembic migrations).", no_args_is_help=True)
user_app = typer.Typer(help="User accounts.", no_args_is_help=True)
seed_app = typer.Typer(help="Demo data.", no_args_is_help=True)
audit_app = typer.Typer(help="The tamper-evident audit log.", no_args_is_help=True)
roads_app = typer.Typer(help="The road network (OpenStreetMap extracts).", no_args_is_help=True)
calendar_app = typer.Typer(help="The working calendar.", no_args_is_help=True)
fences_app = typer.Typer(help="Geofences.", no_args_is_help=True)
report_app = typer.Typer(
    help="Reports for audit: order dossiers, vehicle files.", no_args_is_help=True
)
costs_app = typer.Typer(help="Costs: fuel-card and charging statements.", no_args_is_help=True)
positions_app = typer.Typer(help="Stored positions.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(user_app, name="user")
app.add_typer(seed_app, name="seed")
app.add_typer(audit_app, name="audit")
app.add_typer(roads_app, name="roads")
app.add_typer(calendar_app, name="calendar")
app.add_typer(fences_app, name="fences")
app.add_typer(report_app, name="report")
app.add_typer(costs_app, name="costs")
app.add_typer(positions_app, name="positions")


class Exit:
    """Exit codes, so scripts can tell failures apart."""

    FAILED = 1
    DATABASE_UNREACHABLE = 2
    POSTGIS_MISSING = 3
    BAD_SETTINGS = 4


def fail(message: str, code: int) -> typer.Exit:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code)


@app.callback()
def main_callback(ctx: typer.Context) -> None:
    """Settings are read once here (tests pass their own in ctx.obj)."""
    if ctx.obj is None:
        try:
            ctx.obj = Settings()
        except ValidationError as error:
            raise fail(f"bad FLEET_ settings:\n{error}", Exit.BAD_SETTINGS) from None


def _where(url: URL) -> str:
    return f"{url.host or 'localhost'}:{url.port or 5432}/{url.database}"


def _ensure_database(settings: Settings) -> None:
    """Create the database when the server is there but the database is not (a fresh cluster)."""
    url = settings.owner_database
    admin = create_engine(
        url.set(database="postgres"),
        isolation_level="AUTOCOMMIT",
        connect_args={"connect_timeout": 5},
    )
    try:
        with admin.connect() as conn:
            exists = conn.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": url.database}
            ).scalar()
            if not exists:
                typer.echo(f"creating database {url.database}")
                conn.execute(text(f'CREATE DATABASE "{url.database}"'))
            available = conn.execute(
                text("SELECT 1 FROM pg_available_extensions WHERE name = 'postgis'")
            ).scalar()
    except OperationalError as error:
        raise fail(
            f"database server unreachable at {_where(url)}: {str(error.orig).strip()}\n"
            "Is PostgreSQL running? `make run` starts a local one if FLEET_DATABASE_URL is unset.",
            Exit.DATABASE_UNREACHABLE,
        ) from None
    finally:
        admin.dispose()
    if not available:
        raise fail(
            "PostGIS is not installed on the database server "
            "(Debian: apt-get install postgresql-15-postgis-3)",
            Exit.POSTGIS_MISSING,
        )


def _check_database(settings: Settings) -> None:
    engine = make_engine(settings, pool_size=1)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT postgis_lib_version()"))
    except OperationalError as error:
        raise fail(
            f"database unreachable at {_where(settings.database)}: {str(error.orig).strip()}",
            Exit.DATABASE_UNREACHABLE,
        ) from None
    except Exception:
        raise fail(
            f"PostGIS is not enabled in {_where(settings.database)}: run `fleet db upgrade`",
            Exit.POSTGIS_MISSING,
        ) from None
    finally:
        engine.dispose()


@db_app.command("upgrade")
def db_upgrade(ctx: typer.Context, revision: str = "head") -> None:
    """Create the database if needed and migrate it up to REVISION (default: the newest)."""
    settings: Settings = ctx.obj
    _ensure_database(settings)
    try:
        migrate.upgrade(settings, revision)
    except migrate.RoleError as error:
        raise fail(str(error), Exit.FAILED) from None
    if settings.app_role is None:
        typer.echo(
            "note: the processes connect as the schema's owner; set FLEET_DATABASE_OWNER (README,"
            " Security) so that their role cannot rewrite the audit log"
        )
    typer.echo(f"database {_where(settings.database)} is at {revision}")


@db_app.command("downgrade")
def db_downgrade(ctx: typer.Context, revision: Annotated[str, typer.Argument()] = "-1") -> None:
    """Migrate down to REVISION (default: one step; `base` removes every table)."""
    settings: Settings = ctx.obj
    _check_database(settings)
    migrate.downgrade(settings, revision)
    typer.echo(f"database {_where(settings.database)} downgraded to {revision}")


@user_app.command("create")
def user_create(
    ctx: typer.Context,
    username: Annotated[str, typer.Option(help="Login name.")],
    password: Annotated[str, typer.Option(help="At least 8 characters.")],
    role: Annotated[list[Role], typer.Option(help="A role; repeat for several.")],
    unit: Annotated[str | None, typer.Option(help="Unit code; default: the root unit.")] = None,
) -> None:
    """Create a user. On an empty installation this also creates the root unit."""
    settings: Settings = ctx.obj
    _check_database(settings)
    engine = make_engine(settings, pool_size=1)
    try:
        with unit_of_work(make_session_factory(engine)) as session:
            if unit is not None:
                found = session.scalar(select(OrgUnit).where(OrgUnit.code == unit))
                if found is None:
                    raise fail(f"no unit with code {unit!r}", Exit.FAILED)
            else:
                roots = session.scalars(select(OrgUnit).where(OrgUnit.parent_id.is_(None))).all()
                if len(roots) > 1:
                    raise fail("several root units exist: name one with --unit", Exit.FAILED)
                found = (
                    roots[0]
                    if roots
                    else registry.create_root_unit(session=session, code="ROOT", name="本级单位")
                )
            try:
                data = UserCreate(
                    username=username, password=password, roles=role, unit_id=found.id
                )
            except ValidationError as error:
                raise fail(str(error), Exit.FAILED) from None
            try:
                user = registry.create_user(session=session, actor=None, data=data)
            except FleetError as error:
                raise fail(error.message, Exit.FAILED) from None
            typer.echo(f"created user {user.username} (id {user.id}) in unit {found.code}")
    finally:
        engine.dispose()


@seed_app.command("demo")
def seed_demo(ctx: typer.Context) -> None:
    """Load the demo fleet (idempotent: only what is missing is added)."""
    from redis import Redis

    from app import demo

    settings: Settings = ctx.obj
    _check_database(settings)
    engine = make_engine(settings, pool_size=1)
    try:
        with unit_of_work(make_session_factory(engine)) as session:
            report = demo.seed(
                session=session,
                redis=Redis.from_url(settings.redis_url),
                zone_name=settings.display_timezone,
                now=utcnow(),
            )
    finally:
        engine.dispose()
    added = ", ".join(f"{n} {k}" for k, n in sorted(report.created.items())) or "nothing new"
    typer.echo(
        f"demo data: {added}; {report.vehicles} vehicles, {report.new_energy_share:.0%} new-energy"
    )


@audit_app.command("verify")
def audit_verify(
    ctx: typer.Context,
    checkpoints: Annotated[
        Path | None,
        typer.Option(
            help="A file of signed checkpoints (`fleet audit checkpoint`): the chain must still"
            " hold every head it names, which a rewrite with every hash recomputed does not."
        ),
    ] = None,
) -> None:
    """Recompute the hash chain; exit 1 naming the first entry that does not match."""

    settings: Settings = ctx.obj
    pinned: list[checkpoint.Checkpoint] = []
    if checkpoints is not None:
        key_file = settings.audit_verify_key_file or settings.audit_signing_key_file
        if not key_file:
            raise fail(
                "--checkpoints needs FLEET_AUDIT_VERIFY_KEY_FILE (or the signing key)", Exit.FAILED
            )
        try:
            key = checkpoint.load_public_key(Path(key_file))
            pinned, problem = checkpoint.read(checkpoints, key)
        except (OSError, ValueError) as error:
            raise fail(f"cannot read the checkpoints: {error}", Exit.FAILED) from None
        if problem:
            raise fail(f"{checkpoints}: {problem}", Exit.FAILED)
    _check_database(settings)
    engine = make_engine(settings, pool_size=1)
    try:
        with make_session_factory(engine)() as session:
            result = audit.verify(session=session)
            held = checkpoint.check(session=session, checkpoints=pinned)
    finally:
        engine.dispose()
    if not result.ok:
        raise fail(
            f"audit log entry {result.first_bad_id} does not verify: {result.reason} "
            f"({result.checked} entries before it are intact)",
            Exit.FAILED,
        )
    if not held.ok:
        raise fail(
            f"the audit log does not match its checkpoints: {held.problem}"
            f" ({held.checked} checkpoints before it hold)",
            Exit.FAILED,
        )
    pins = f"; {held.checked} signed checkpoints hold" if checkpoints is not None else ""
    typer.echo(f"audit log intact: {result.checked} entries verified{pins}")


@audit_app.command("checkpoint")
def audit_checkpoint(
    ctx: typer.Context,
    file: Annotated[
        Path | None, typer.Option(help="Append here (default FLEET_AUDIT_CHECKPOINT_FILE).")
    ] = None,
) -> None:
    """Append a signed checkpoint of the chain's head (entry id, hash, count, time) to a file
    outside the database, signed with FLEET_AUDIT_SIGNING_KEY_FILE (Ed25519)."""

    settings: Settings = ctx.obj
    if not settings.audit_signing_key_file:
        raise fail("set FLEET_AUDIT_SIGNING_KEY_FILE (`fleet audit keygen` makes one)", 1)
    try:
        key = checkpoint.load_private_key(Path(settings.audit_signing_key_file))
    except (OSError, ValueError) as error:
        raise fail(f"cannot load the signing key: {error}", Exit.FAILED) from None
    target = file or Path(settings.audit_checkpoint_file)
    _check_database(settings)
    engine = make_engine(settings, pool_size=1)
    try:
        with make_session_factory(engine)() as session:
            head = checkpoint.write(session=session, key=key, path=target, at=utcnow())
    except checkpoint.ChainBroken as error:
        raise fail(f"no checkpoint signed: {error}", Exit.FAILED) from None
    finally:
        engine.dispose()
    typer.echo(f"checkpoint: entry {head.entry_id}, {head.count} entries, appended to {target}")


@audit_app.command("keygen")
def audit_keygen(
    out: Annotated[Path, typer.Argument(help="Where to write the private key (PEM).")],
) -> None:
    """Make an Ed25519 key for the checkpoints: OUT (private, mode 0600) and OUT.pub."""

    if out.exists():
        raise fail(f"{out} exists; not overwriting a key", Exit.FAILED)
    pem = checkpoint.generate_key()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.touch(mode=0o600)
    out.write_bytes(pem)
    public = out.with_name(out.name + ".pub")
    public.write_bytes(checkpoint.public_pem(checkpoint.load_private_key(out)))
    typer.echo(f"private key {out} (FLEET_AUDIT_SIGNING_KEY_FILE), public key {public}")


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

    settings: Settings = ctx.obj
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
    _check_database(settings)
    engine = make_engine(settings, pool_size=1)
    try:
        with unit_of_work(make_session_factory(engine)) as session:
            pruned = retention.prune(session=session, before=cutoff, retention_years=years)
    finally:
        engine.dispose()
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

    settings: Settings = ctx.obj
    if not file.is_file():
        raise fail(f"no such file: {file}", Exit.FAILED)
    _check_database(settings)
    engine = make_engine(settings.as_owner(), pool_size=1)  # it replaces a table: the owner's work
    try:
        if if_empty:
            with engine.connect() as conn:
                if roads.loaded(conn):
                    typer.echo("roads already loaded")
                    return
        typer.echo(f"importing roads from {file} ...")
        try:
            report = roads.import_pbf(engine, file)
        except RuntimeError as error:
            raise fail(f"cannot read {file}: {error}", Exit.FAILED) from None
    finally:
        engine.dispose()
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

    settings: Settings = ctx.obj
    _check_database(settings)
    engine = make_engine(settings, pool_size=1)
    try:
        with unit_of_work(make_session_factory(engine)) as session:
            added = geofence_service.seed_calendar(session=session, years=range(first, last + 1))
    finally:
        engine.dispose()
    typer.echo(f"working calendar: {added} dates added")


@fences_app.command("import")
def fences_import(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="A GeoJSON FeatureCollection.")],
    unit: Annotated[str, typer.Option(help="Code of the unit that owns the fences.")],
) -> None:
    """Import fences from a GeoJSON file (each feature's properties: name, kind, radius_m...).
    All or nothing: one bad feature refuses the file, naming each bad feature."""
    from geofence import service as geofence_service

    settings: Settings = ctx.obj
    try:
        collection = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise fail(f"cannot read {file}: {error}", Exit.FAILED) from None
    _check_database(settings)
    engine = make_engine(settings, pool_size=1)
    try:
        with unit_of_work(make_session_factory(engine)) as session:
            owner = session.scalar(select(OrgUnit).where(OrgUnit.code == unit))
            if owner is None:
                raise fail(f"no unit with code {unit!r}", Exit.FAILED)
            fences = geofence_service.import_fences(
                session=session, actor=Actor.system(owner), collection=collection
            )
    except FleetError as error:
        raise fail(error.message, Exit.FAILED) from None
    finally:
        engine.dispose()
    typer.echo(f"imported {len(fences)} fences")


def _system_actor(session: Any, unit: str | None) -> Actor:
    """The system acting over the unit named by code, or over the only root unit."""
    if unit is not None:
        found = session.scalar(select(OrgUnit).where(OrgUnit.code == unit))
        if found is None:
            raise fail(f"no unit with code {unit!r}", Exit.FAILED)
        return Actor.system(found)
    roots = session.scalars(select(OrgUnit).where(OrgUnit.parent_id.is_(None))).all()
    if len(roots) != 1:
        raise fail("several root units exist: name one with --unit", Exit.FAILED)
    return Actor.system(roots[0])


def _cli_client() -> str:
    """Where a command-line read comes from, for the audit log: the machine's user and host."""
    import getpass
    import socket

    return f"command line ({getpass.getuser()}@{socket.gethostname()})"


def _order_root(session: Any, order_id: int) -> Actor:
    """The system acting over the root of the order's unit tree."""
    path = session.scalar(
        text(
            "SELECT u.path FROM trip_order o JOIN org_unit u ON u.id = o.unit_id WHERE o.id = :id"
        ),
        {"id": order_id},
    )
    if path is None:
        raise fail(f"no trip order {order_id}", Exit.FAILED)
    root = session.get(OrgUnit, int(path.strip("/").split("/")[0]))
    return Actor.system(root)


@report_app.command("order")
def report_order(
    ctx: typer.Context,
    order_id: Annotated[int, typer.Argument(help="The trip order's id.")],
    out: Annotated[
        Path | None, typer.Option(help="Where to write; default order-ID.pdf (or .html/.json).")
    ] = None,
    format: Annotated[str, typer.Option(help="pdf, html or json.")] = "pdf",
) -> None:
    """Write the order's dossier (request, approvals, assignment, route and track, costs,
    alerts and reviews, audit entries and the chain's verification) as PDF, HTML or JSON."""
    from dispatch.settings import DispatchSettings
    from reports import dossier
    from reports import render as report

    settings: Settings = ctx.obj
    if format not in ("pdf", "html", "json"):
        raise fail("--format is pdf, html or json", Exit.FAILED)
    target = out or Path(f"order-{order_id}.{format}")
    _check_database(settings)
    try:
        anchors = checkpoint.anchors(settings)
    except ValueError as error:
        raise fail(str(error), Exit.FAILED) from None
    engine = make_engine(settings, pool_size=1)
    try:
        with unit_of_work(make_session_factory(engine)) as session:
            actor = _order_root(session, order_id)
            data = dossier.order_dossier(
                session=session, actor=actor, order_id=order_id, anchors=anchors
            )
            # An export like any other: who ran it is the machine's user, from the command line.
            dossier.record_order_read(
                session=session, actor=actor, client=_cli_client(), dossier=data, format=format
            )
        if format == "pdf":
            font = Path(DispatchSettings().report_font)
            target.write_bytes(report.render_order_pdf(data, zone=settings.zone, font_path=font))
        elif format == "html":
            target.write_text(report.render_order_html(data, zone=settings.zone), "utf-8")
        else:
            target.write_text(json.dumps(data, ensure_ascii=False, indent=2), "utf-8")
    except FleetError as error:
        raise fail(error.message, Exit.FAILED) from None
    except report.ReportFontMissing as error:
        raise fail(str(error), Exit.FAILED) from None
    finally:
        engine.dispose()
    typer.echo(f"wrote {target} ({target.stat().st_size:,} bytes)")


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
    _check_database(settings)
    engine = make_engine(settings, pool_size=1)
    try:
        with unit_of_work(make_session_factory(engine)) as session:
            setup = costs.CheckSetup(
                settings=DispatchSettings(),
                calendar=geofence_service.working_calendar(
                    session=session, settings=GeofenceSettings()
                ),
                zone=settings.zone,
            )
            result = costs.import_statement(
                session=session,
                actor=_system_actor(session, unit),
                data=data,
                filename=file.name,
                issuer=issuer,
                setup=setup,
                now=utcnow(),
            )
    except Rejected as error:
        lines = [f"  line {p['line']}: {p['field']}: {p['reason']}" for p in error.problems]
        raise fail("\n".join([error.message, *lines]), Exit.FAILED) from None
    except FleetError as error:
        raise fail(error.message, Exit.FAILED) from None
    finally:
        engine.dispose()
    if result["already_imported"]:
        typer.echo(f"{file.name} was imported before (statement {result['statement_id']})")
    else:
        typer.echo(
            f"imported {result['added']} of {result['rows']} rows"
            f" ({result['duplicates']} already stored); {len(result['alerts'])} alerts"
        )


@app.command("replay")
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
    _check_database(settings)
    engine = make_engine(settings, pool_size=2)

    def progress(done: int, total: int) -> None:
        if done == total or done % 50 == 0:
            typer.echo(f"  {done}/{total} vehicles", err=True)

    try:
        report = run_replay(
            engine=engine,
            settings=GeofenceSettings(),
            zone=settings.zone,
            start=start,
            end=end,
            vehicle_ids=vehicle or None,
            permits=OrderPermits(engine),
            write=not dry_run,
            progress=progress,
        )
    finally:
        engine.dispose()
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


@app.command("serve")
def serve(ctx: typer.Context) -> None:
    """Run the HTTP API (and, as they are built, the pages) on FLEET_HTTP_HOST:FLEET_HTTP_PORT."""
    import uvicorn

    from web import access_log
    from web.app import create_app

    settings: Settings = ctx.obj
    _check_database(settings)
    uvicorn.run(
        create_app(settings),
        host=settings.http_host,
        port=settings.http_port,
        log_level="info",
        log_config=access_log.log_config(),
    )


@app.command("gateway")
def gateway(ctx: typer.Context) -> None:
    """Run the device gateways: JT/T 808 on FLEET_JT808_PORT, OsmAnd on FLEET_OSMAND_PORT."""
    import asyncio
    import logging

    from redis import Redis

    from geofence.terminals import IdentityAlerts
    from telematics import gateway as telematics_gateway
    from telematics.settings import TelematicsSettings

    settings: Settings = ctx.obj
    _check_database(settings)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    engine = make_engine(settings, pool_size=2)
    redis = Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=5)
    runner = asyncio.Runner(loop_factory=_loop_factory())
    try:
        runner.run(
            telematics_gateway.serve(
                TelematicsSettings(),
                engine,
                settings.redis_url,
                # An impostor terminal becomes an alert for supervisors (telematics defines the
                # interface, the geofence domain writes alerts).
                mismatches=IdentityAlerts(engine, redis),
            )
        )
    except KeyboardInterrupt:
        pass
    finally:
        runner.close()
        redis.close()
        engine.dispose()


def _loop_factory():  # type: ignore[no-untyped-def]
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


@app.command("worker")
def worker(
    ctx: typer.Context,
    index: Annotated[int, typer.Option(help="This worker's number, from 0.")] = 0,
    count: Annotated[int, typer.Option(help="How many workers share the shards.")] = 1,
) -> None:
    """Run an ingest worker: stream -> PostGIS -> live positions (shards index::count)."""
    import gc
    import logging
    import threading

    from redis import Redis

    from dispatch.permits import OrderPermits
    from geofence.settings import GeofenceSettings
    from geofence.worker import GeofenceObserver
    from telematics.ingest import IngestWorker
    from telematics.settings import TelematicsSettings

    settings: Settings = ctx.obj
    if not 0 <= index < count:
        raise fail("--index must be between 0 and --count - 1", Exit.FAILED)
    _check_database(settings)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    engine = make_engine(settings, pool_size=2)
    redis = Redis.from_url(settings.redis_url, socket_timeout=10, socket_connect_timeout=5)
    # What is loaded by now lives as long as the process: out of the cycle collector's sight, its
    # full passes walk only what the batches leave (vehicle states), not every module and class.
    gc.collect()
    gc.freeze()
    telematics_settings = TelematicsSettings()
    if telematics_settings.worker_nice:
        # Storing and the rules are throughput work; the positions a dispatcher watches are
        # published by the gateways, which should not wait behind a batch for a core.
        os.nice(telematics_settings.worker_nice)
    try:
        rules = GeofenceObserver(
            engine=engine,
            redis=redis,
            settings=GeofenceSettings(),
            zone=settings.zone,
            permits=OrderPermits(engine),
        )
        if index == 0:  # one worker does the maintenance
            from fleet import maintenance
            from telematics import retention

            periodic = maintenance.Periodic(stop)
            if telematics_settings.position_retention_years is not None:
                periodic.every(
                    maintenance.DAY_S,
                    "prune positions",
                    lambda: retention.prune_expired(engine, telematics_settings),
                )
            if settings.audit_signing_key_file:
                periodic.every(
                    settings.audit_checkpoint_interval_min * 60,
                    "audit checkpoint",
                    lambda: maintenance.checkpoint_audit(engine, settings),
                )
            periodic.start()
        IngestWorker(
            engine=engine,
            redis=redis,
            settings=telematics_settings,
            index=index,
            count=count,
            observers=[rules],
        ).run(stop)
    finally:
        redis.close()
        engine.dispose()


@app.command("simulate")
def simulate(
    ctx: typer.Context,
    vehicles: Annotated[int, typer.Option(help="How many registered devices to drive.")] = 10,
    protocol: Annotated[str, typer.Option(help="jt808 or osmand.")] = "jt808",
    interval: Annotated[float, typer.Option(help="Seconds between reports.")] = 5.0,
    duration: Annotated[float, typer.Option(help="Seconds to run.")] = 3600.0,
    host: Annotated[str, typer.Option(help="Where the gateways listen.")] = "127.0.0.1",
) -> None:
    """Drive registered vehicles and report through the gateways like real terminals."""
    import asyncio
    import logging

    from telematics import simulator
    from telematics.settings import TelematicsSettings

    settings: Settings = ctx.obj
    if protocol not in ("jt808", "osmand"):
        raise fail("--protocol must be jt808 or osmand", Exit.FAILED)
    _check_database(settings)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    tsettings = TelematicsSettings()
    engine = make_engine(settings, pool_size=1)
    try:
        fleet_vehicles = simulator.registered(engine, protocol, vehicles)
        if not fleet_vehicles:
            raise fail(f"no enabled {protocol} devices on vehicles: run `fleet seed demo`", 1)
        routes = simulator.route_source(engine)
        port = tsettings.jt808_port if protocol == "jt808" else tsettings.osmand_port
        typer.echo(f"simulating {len(fleet_vehicles)} {protocol} vehicles every {interval:g} s")
        stats = asyncio.run(
            simulator.simulate(
                fleet_vehicles,
                protocol=protocol,
                host=host,
                port=port,
                routes=routes,
                interval_s=interval,
                duration_s=duration,
            )
        )
    finally:
        engine.dispose()
    typer.echo(f"sent {stats.sent} fixes, {stats.acked} acknowledged, {stats.refused} refused")


# Every long-running process of the system, as `fleet up` starts them.
DEMO_WEEK_S = str(7 * 24 * 3600)
PROCESSES: tuple[tuple[str, ...], ...] = (
    ("serve",),
    ("gateway",),
    ("worker",),
    # The demo's vehicles, driving and reporting like real terminals and phones.
    (
        "simulate",
        "--protocol",
        "jt808",
        "--vehicles",
        "100",
        "--interval",
        "5",
        "--duration",
        DEMO_WEEK_S,
    ),
    (
        "simulate",
        "--protocol",
        "osmand",
        "--vehicles",
        "100",
        "--interval",
        "10",
        "--duration",
        DEMO_WEEK_S,
    ),
)


def _banner(settings: Settings) -> str:
    from fleet.demo import DEMO_PASSWORD, DEMO_USERS

    base = f"http://{settings.http_host}:{settings.http_port}"
    lines = [
        "",
        "Fleet is up.",
        f"  sign in        {base}/login  (each role lands on its own page:)",
        f"    dispatcher   {base}/desk",
        f"    phones       {base}/phone  (requesters, approvers, drivers; 360 px and up)",
        f"    supervisor   {base}/review",
        f"    admin        {base}/admin  and  {base}/dashboard",
        f"  API and docs   {base}/docs",
        f"  health         {base}/healthz",
        "  demo accounts  (password for all: " + DEMO_PASSWORD + ")",
    ]
    lines += [f"    {u:<11} {role.value:<11} {name}" for u, name, role, _ in DEMO_USERS]
    lines += ["  stop with Ctrl-C, or `make stop` from another terminal", ""]
    return "\n".join(lines)


def _wait_healthy(settings: Settings, children: list[subprocess.Popen[bytes]]) -> bool:
    import urllib.request

    url = f"http://{settings.http_host}:{settings.http_port}/healthz"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if any(child.poll() is not None for child in children):
            return False
        try:
            with urllib.request.urlopen(url, timeout=2) as reply:
                if reply.status == 200:
                    return True
        except OSError:
            time.sleep(0.3)
    return False


@app.command("up")
def up(ctx: typer.Context) -> None:
    """Start every process of the system and keep them running until Ctrl-C or `make stop`."""
    settings: Settings = ctx.obj
    _check_database(settings)
    pid_file = ROOT / "var" / "fleet-up.pid"
    pid_file.parent.mkdir(exist_ok=True)
    pid_file.write_text(str(os.getpid()))
    # Children get their own session so that a terminal's Ctrl-C reaches only this process, which
    # then stops each child exactly once (a second signal makes uvicorn abort its shutdown).
    children = [
        subprocess.Popen([sys.executable, "-m", "app.cli", *args], start_new_session=True)  # noqa: S603
        for args in PROCESSES
    ]
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        if _wait_healthy(settings, children):
            typer.echo(_banner(settings))
        while not stopping and all(child.poll() is None for child in children):
            time.sleep(0.2)
        failed = [c for c in children if c.poll() not in (None, 0)]
    finally:
        for child in children:
            if child.poll() is None:
                child.terminate()
        for child in children:
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
        pid_file.unlink(missing_ok=True)
    if failed and not stopping:
        raise fail("a process of the system stopped; everything was shut down", Exit.FAILED)
    typer.echo("Fleet stopped.")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
