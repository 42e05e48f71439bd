"""The restore drill (README, "Backups"): pgBackRest backs up a PostgreSQL 15 cluster of the test's
own whose WAL it archives, as a production one is set up; orders, fixes and audit entries are
written, a time is noted, more is written; a point-in-time restore to the noted time into a new
cluster holds exactly what existed then, and `fleet audit verify` passes on it.

The clusters are the test's alone (their own ports, a folder under the system's temporary one),
not the suite's server. As root, initdb, postgres and pgbackrest run as the postgres user, as
scripts/dev.sh runs the local cluster."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from redis import Redis
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from app.cli import app
from dispatch import service as dispatch_service
from dispatch.schemas import Comment, OrderCreate
from dispatch.settings import DispatchSettings
from fleet import registry
from fleet.auth import Actor
from fleet.db import make_engine
from fleet.models import Role
from fleet.schemas import DeviceCreate, UserCreate, VehicleUpdate
from fleet.settings import Settings
from telematics import stream
from telematics.ingest import IngestWorker
from telematics.settings import TelematicsSettings
from tests.dispatch.conftest import tomorrow
from tests.factories import add_vehicle
from tests.support import free_port, wait_until
from tests.telematics.conftest import T0, a_day_after_t0, drive

PG_BIN = Path("/usr/lib/postgresql/15/bin")
STANZA = "drill"
APP_ROLE = "fleet_app"
SHARDS = 2


def _env() -> dict[str, str]:
    """The environment of the clusters and pgbackrest: the real clock (make test-any-day starts
    its stores outside faketime too), since the noted time is the database's."""
    return {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "FAKETIME")}


def as_postgres(*args: str | Path, check: bool = True) -> str:
    """A PostgreSQL or pgBackRest command, run as the user owning the clusters; its output."""
    command = [str(a) for a in args]
    if os.geteuid() == 0:
        command = ["runuser", "-u", "postgres", "--", *command]
    done = subprocess.run(
        command, cwd="/", env=_env(), capture_output=True, text=True, timeout=600, check=False
    )
    if check:
        assert done.returncode == 0, (
            f"{command} exited {done.returncode}:\n{done.stdout}{done.stderr}"
        )
    return done.stdout


@dataclass
class Cluster:
    data: Path
    port: int
    sockets: Path

    def start(self) -> None:
        options = f"-p {self.port} -h 127.0.0.1 -k {self.sockets}"
        log = self.data.parent / f"{self.data.name}.log"
        as_postgres(
            PG_BIN / "pg_ctl", "-D", self.data, "-l", log, "-w", "-t", "300", "-o", options, "start"
        )

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            as_postgres(
                PG_BIN / "pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop", check=False
            )

    def settings(self, base: Settings) -> Settings:
        """Fleet's settings against this cluster: the processes as fleet_app, postgres owning
        the schema, as scripts/dev.sh sets up the local cluster."""
        url = f"postgresql+psycopg://{APP_ROLE}@127.0.0.1:{self.port}/fleet"
        return base.model_copy(update={"database_url": url, "database_owner": "postgres"})


@dataclass
class Drill:
    """The drill's folder (owned by the clusters' user), its pgBackRest configuration, and the
    clusters started in it, which the fixture stops at the end whatever happened."""

    root: Path
    clusters: list[Cluster] = field(default_factory=list)

    @property
    def config(self) -> Path:
        return self.root / "pgbackrest.conf"

    def pgbackrest(self, *args: str | Path) -> str:
        return as_postgres("pgbackrest", f"--config={self.config}", f"--stanza={STANZA}", *args)

    def cluster(self, name: str) -> Cluster:
        cluster = Cluster(self.root / name, free_port(), self.root)
        self.clusters.append(cluster)
        return cluster


@pytest.fixture
def drill() -> Iterator[Drill]:
    root = Path(tempfile.mkdtemp(prefix="fleet-drill-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    drill = Drill(root)
    try:
        yield drill
    finally:
        for cluster in drill.clusters:
            cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


def primary_with_archiving(drill: Drill) -> Cluster:
    """A new cluster whose WAL pgbackrest archives into the drill's repository, and the stanza."""
    primary = drill.cluster("primary")
    as_postgres(
        PG_BIN / "initdb", "-D", primary.data, "-U", "postgres", "--auth=trust", "-E", "UTF8",
        "--locale=C.UTF-8",
    )  # fmt: skip
    archive = f"pgbackrest --config={drill.config} --stanza={STANZA} archive-push %p"
    with (primary.data / "postgresql.conf").open("a") as conf:
        conf.write(f"fsync = off\narchive_mode = on\narchive_command = '{archive}'\n")
    drill.config.write_text(
        f"""[global]
repo1-path={drill.root}/repo
log-path={drill.root}/log
lock-path={drill.root}/lock
spool-path={drill.root}/spool
compress-type=zst
start-fast=y
log-level-console=warn
log-level-file=off

[{STANZA}]
pg1-path={primary.data}
pg1-port={primary.port}
pg1-socket-path={drill.root}
"""
    )
    primary.start()
    drill.pgbackrest("stanza-create")
    return primary


def fleet_cli(settings: Settings, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), obj=settings)
    return result.exit_code, result.output


# ---- what the drill writes: registry objects, orders, fixes through the ingest worker ----------


@dataclass
class Pool:
    engine: Engine
    requester: Actor
    system: Actor
    targets: list[stream.Target]


def make_pool(engine: Engine) -> Pool:
    with Session(engine) as session, session.begin():
        root = registry.create_root_unit(session=session, code="DRILL", name="恢复演练")
        system = Actor.system(root)
        targets = []
        for n in range(2):
            vehicle = add_vehicle(session, root, f"浙A·B8000{n}", actor=system)
            device = registry.create_device(
                session=session,
                actor=system,
                data=DeviceCreate(
                    protocol="osmand", identifier=f"drill-{n}", vehicle_id=vehicle.id
                ),
            )
            targets.append(stream.Target(device.id, vehicle.id, root.id))
        asker = registry.create_user(
            session=session,
            actor=None,
            data=UserCreate(
                username="drill-asker",
                password="correct-horse-9",
                roles=["requester"],
                unit_id=root.id,
            ),
        )
        requester = Actor(asker.id, asker.username, root.id, root.path, frozenset({Role.REQUESTER}))
    return Pool(engine, requester, system, targets)


def file_orders(pool: Pool, purposes: list[str]) -> list[int]:
    """Trip orders filed by the requester, each an audit entry, committed."""
    ids = []
    with Session(pool.engine) as session, session.begin():
        for hour, purpose in enumerate(purposes, start=1):
            order = dispatch_service.create_order(
                session=session,
                actor=pool.requester,
                data=OrderCreate(
                    purpose=purpose,
                    passengers=2,
                    start_at=tomorrow(hour),
                    end_at=tomorrow(hour) + timedelta(minutes=40),
                    origin={"type": "Point", "coordinates": [120.20, 30.25]},
                    origin_name="单位",
                    destinations=[
                        {"point": {"type": "Point", "coordinates": [120.15, 30.28]}, "name": "某处"}
                    ],
                ),
                settings=DispatchSettings(),
            )
            ids.append(order.id)
    return ids


def change_seats(pool: Pool, seats: int) -> None:
    """A change to the first vehicle through the registry (an audit entry with before and after)."""
    with Session(pool.engine) as session, session.begin():
        registry.update_vehicle(
            session=session,
            actor=pool.system,
            vehicle_id=pool.targets[0].vehicle_id,
            data=VehicleUpdate(seats=seats),
            now=T0,
        )


def report_fixes(pool: Pool, redis: Redis, worker: IngestWorker, minutes_after_t0: int) -> None:
    """Each vehicle reports ten fixes into the stream, as a gateway does, and the ingest worker
    stores them in PostGIS."""
    start = T0 + timedelta(minutes=minutes_after_t0)
    for n, target in enumerate(pool.targets):
        rows = [stream.to_row(f, target, stream.now_ms()) for f in drive(f"drill-{n}", start, 10)]
        redis.xadd(
            stream.stream_key(stream.shard_of(target.vehicle_id, SHARDS)), stream.entry(rows)
        )
    for _ in range(50):
        if worker.process_once().entries == 0:
            return
    raise AssertionError("the stream did not drain")


def contents(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """What the drill compares: every order, fix, vehicle and audit entry, by key."""
    queries = {
        "orders": "SELECT id, status FROM trip_order ORDER BY id",
        "positions": "SELECT vehicle_id, device_id, fix_time FROM position ORDER BY 1, 2, 3",
        "vehicles": "SELECT id, plate, seats FROM vehicle ORDER BY id",
        "audit": "SELECT id, hash FROM audit_entry ORDER BY id",
    }
    with engine.connect() as conn:
        return {name: [tuple(r) for r in conn.execute(text(sql))] for name, sql in queries.items()}


def db_clock(engine: Engine) -> str:
    with engine.connect() as conn:
        return str(conn.execute(text("SELECT clock_timestamp()::text")).scalar_one())


def db_clock_past(engine: Engine, moment: str) -> bool:
    with engine.connect() as conn:
        sql = "SELECT clock_timestamp() > CAST(:moment AS timestamptz)"
        return bool(conn.execute(text(sql), {"moment": moment}).scalar_one())


def test_a_point_in_time_restore_holds_exactly_what_existed_at_that_time(
    drill: Drill, redis: Redis, base_settings: Settings, settings: Settings
):
    primary = primary_with_archiving(drill)
    as_postgres(
        PG_BIN / "psql", "-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres", "-d",
        "postgres", "-qAtX", "-v", "ON_ERROR_STOP=1", "-c", f"CREATE ROLE {APP_ROLE} LOGIN",
    )  # fmt: skip
    fleet_settings = primary.settings(base_settings).model_copy(
        update={"redis_url": settings.redis_url}  # the suite's Redis database, flushed by `redis`
    )
    code, out = fleet_cli(fleet_settings, "db", "upgrade")
    assert code == 0, out
    engine = make_engine(fleet_settings, pool_size=2)
    owner = create_engine(fleet_settings.owner_database)
    try:
        pool = make_pool(engine)
        worker = IngestWorker(
            engine=engine,
            redis=redis,
            settings=TelematicsSettings(stream_shards=SHARDS, ingest_linger_ms=20),
            block_ms=50,
            clock=a_day_after_t0,
        )

        # 1. A full backup.
        drill.pgbackrest("--type=full", "backup")
        (full,) = json.loads(drill.pgbackrest("info", "--output=json"))[0]["backup"]

        # 2. More orders, fixes and audit entries.
        kept = file_orders(pool, ["会议", "调研"])
        report_fixes(pool, redis, worker, minutes_after_t0=0)
        change_seats(pool, 5)

        # 3. The noted time, by the database's clock, after every commit of step 2; and what
        # the database held then.
        noted = db_clock(engine)
        then = contents(owner)
        # Step 4 starts once the database's clock has passed the noted time, so every commit of
        # it is dated after it.
        wait_until(lambda: db_clock_past(engine, noted), "the database's clock to pass it")

        # 4. More of everything, and a change to what existed at the noted time.
        file_orders(pool, ["检查"])
        report_fixes(pool, redis, worker, minutes_after_t0=60)
        change_seats(pool, 6)
        with Session(engine) as session, session.begin():
            dispatch_service.cancel(
                session=session,
                actor=pool.requester,
                order_id=kept[0],
                data=Comment(comment="改期"),
            )
        now = contents(owner)
        assert [name for name in then if now[name] == then[name]] == []  # step 4 changed each
        # pgbackrest check switches to a new WAL segment and waits until it is archived, so the
        # archive holds step 4's commits: recovery stops at the first one after the noted time.
        drill.pgbackrest("check")
    finally:
        owner.dispose()
        engine.dispose()

    # 5. Restore to the noted time into a new cluster, and start it on a port of its own.
    restored = drill.cluster("restored")
    # The backup set is named: pgbackrest would pick the latest one that stopped before the
    # target by its stop time in whole seconds, and the noted time may fall in that same second.
    drill.pgbackrest(
        f"--pg1-path={restored.data}", f"--set={full['label']}", "--type=time",
        f"--target={noted}", "--target-action=promote", "--archive-mode=off", "restore",
    )  # fmt: skip
    restored.start()
    restored_settings = restored.settings(base_settings)
    restored_engine = create_engine(restored_settings.owner_database)
    try:

        def promoted() -> bool:
            with restored_engine.connect() as conn:
                return not conn.execute(text("SELECT pg_is_in_recovery()")).scalar_one()

        wait_until(promoted, "the restored cluster to reach the noted time and promote", 300)

        # 6. Exactly what existed at the noted time, and an audit chain that verifies.
        assert contents(restored_engine) == then
    finally:
        restored_engine.dispose()
    code, out = fleet_cli(restored_settings, "audit", "verify")
    assert code == 0, out
    assert f"audit log intact: {len(then['audit'])} entries verified" in out
