"""The long-running processes of the system: the API (`serve`), the device gateways, the ingest
workers, the simulated fleet, and `up`, which starts them all."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from app.cli.common import Exit, check_database, database, fail, log_to_stderr, redis_client
from fleet.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def serve(ctx: typer.Context) -> None:
    """Run the HTTP API (and, as they are built, the pages) on FLEET_HTTP_HOST:FLEET_HTTP_PORT."""
    import uvicorn

    from web import access_log
    from web.app import create_app

    settings: Settings = ctx.obj
    check_database(settings)
    uvicorn.run(
        create_app(settings),
        host=settings.http_host,
        port=settings.http_port,
        log_level="info",
        log_config=access_log.log_config(),
    )


def gateway(ctx: typer.Context) -> None:
    """Run the device gateways: JT/T 808 on FLEET_JT808_PORT, OsmAnd on FLEET_OSMAND_PORT."""
    import asyncio

    from geofence.terminals import IdentityAlerts
    from telematics import gateway as telematics_gateway
    from telematics.settings import TelematicsSettings

    settings: Settings = ctx.obj
    with (
        database(settings, pool_size=2) as engine,
        redis_client(settings, socket_timeout=5, socket_connect_timeout=5) as redis,
    ):
        log_to_stderr()
        runner = asyncio.Runner(loop_factory=_loop_factory())
        try:
            runner.run(
                telematics_gateway.serve(
                    TelematicsSettings(),
                    engine,
                    settings.redis,
                    # An impostor terminal becomes an alert for supervisors (telematics defines
                    # the interface, the geofence domain writes alerts).
                    mismatches=IdentityAlerts(engine, redis),
                )
            )
        except KeyboardInterrupt:
            pass
        finally:
            runner.close()


def _loop_factory():  # type: ignore[no-untyped-def]
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def worker(
    ctx: typer.Context,
    index: Annotated[int, typer.Option(help="This worker's number, from 0.")] = 0,
    count: Annotated[int, typer.Option(help="How many workers share the shards.")] = 1,
) -> None:
    """Run an ingest worker: stream -> PostGIS -> live positions (shards index::count)."""
    import gc
    import threading

    from dispatch.permits import OrderPermits
    from geofence.settings import GeofenceSettings
    from geofence.worker import GeofenceObserver, warn_calendar_years
    from telematics.ingest import BatchObserver, IngestWorker
    from telematics.settings import TelematicsSettings

    settings: Settings = ctx.obj
    if not 0 <= index < count:
        raise fail("--index must be between 0 and --count - 1", Exit.FAILED)
    with (
        database(settings, pool_size=2) as engine,
        redis_client(settings, socket_timeout=10, socket_connect_timeout=5) as redis,
    ):
        log_to_stderr()
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        # What is loaded by now lives as long as the process: out of the cycle collector's sight,
        # its full passes walk only what the batches leave (vehicle states), not every module and
        # class.
        gc.collect()
        gc.freeze()
        telematics_settings = TelematicsSettings()
        if telematics_settings.worker_nice:
            # Storing and the rules are throughput work; the positions a dispatcher watches are
            # published by the gateways, which should not wait behind a batch for a core.
            os.nice(telematics_settings.worker_nice)
        geofence_settings = GeofenceSettings()
        rules = GeofenceObserver(
            engine=engine,
            redis=redis,
            settings=geofence_settings,
            zone=settings.zone,
            permits=OrderPermits(engine),
        )
        if index == 0:  # one worker does the maintenance
            from fleet import maintenance
            from fleet.db import utcnow
            from telematics import archive, retention

            periodic = maintenance.Periodic(stop)
            periodic.every(
                maintenance.DAY_S,
                "calendar years",
                lambda: warn_calendar_years(engine, settings=geofence_settings, zone=settings.zone),
            )
            if telematics_settings.position_retention_years is not None:
                periodic.every(
                    maintenance.DAY_S,
                    "prune positions",
                    lambda: retention.prune_expired(engine, telematics_settings),
                )
            periodic.every(
                maintenance.DAY_S,
                "archive positions",
                lambda: archive.archive_due(engine, telematics_settings, utcnow()),
            )
            if settings.audit_signing_key_file:
                periodic.every(
                    settings.audit_checkpoint_interval_min * 60,
                    "audit checkpoint",
                    lambda: maintenance.checkpoint_audit(engine, settings),
                )
            periodic.start()
        observers: list[BatchObserver] = [rules]
        if telematics_settings.forward_positions or settings.mqtt_url:
            from telematics.outbound import PositionTap

            observers.append(PositionTap(telematics_settings.forward_positions_maxlen))
        IngestWorker(
            engine=engine,
            redis=redis,
            settings=telematics_settings,
            index=index,
            count=count,
            observers=observers,
        ).run(stop)


def forward(ctx: typer.Context) -> None:
    """Deliver the outbox's events and the stored positions to the integrations (and to
    FLEET_MQTT_URL), and the notifications they give to people, at least once."""
    import threading

    from app.notices import DERIVERS
    from fleet.forwarding import Forwarder
    from fleet.notifications import Notifier
    from telematics.outbound import PositionForwarder

    settings: Settings = ctx.obj
    with (
        database(settings, pool_size=2) as engine,
        redis_client(settings, socket_timeout=10, socket_connect_timeout=5) as redis,
    ):
        log_to_stderr()
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        positions = PositionForwarder(redis, settings)
        try:
            notifier = Notifier(settings, DERIVERS)
            Forwarder(settings).run(engine, stop, also=[positions.step, notifier.step])
        finally:
            positions.close()


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

    from telematics import simulator
    from telematics.settings import TelematicsSettings

    settings: Settings = ctx.obj
    if protocol not in ("jt808", "osmand"):
        raise fail("--protocol must be jt808 or osmand", Exit.FAILED)
    with database(settings) as engine:
        log_to_stderr()
        tsettings = TelematicsSettings()
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
    typer.echo(f"sent {stats.sent} fixes, {stats.acked} acknowledged, {stats.refused} refused")


# Every long-running process of the system, as `fleet up` starts them.
DEMO_WEEK_S = str(7 * 24 * 3600)
PROCESSES: tuple[tuple[str, ...], ...] = (
    ("serve",),
    ("gateway",),
    ("worker",),
    ("forward",),
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


def up(ctx: typer.Context) -> None:
    """Start every process of the system and keep them running until Ctrl-C or `make stop`."""
    settings: Settings = ctx.obj
    check_database(settings)
    # The checkout's var/ (where `make stop` reads it); an installed Fleet, the working folder's.
    home = ROOT if (ROOT / "pyproject.toml").is_file() else Path.cwd()
    pid_file = home / "var" / "fleet-up.pid"
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
