"""PostgreSQL goes away mid-run: the gateway keeps accepting into Redis, the worker waits, and
the backlog drains when the database is back, with every fix stored once. The test runs its own
throwaway PostgreSQL cluster so that stopping it disturbs nothing else."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from fleet import migrate, registry
from fleet.auth import Actor
from fleet.db import make_engine
from fleet.schemas import DeviceCreate
from fleet.settings import Settings
from telematics import gateway
from telematics.settings import TelematicsSettings
from tests.factories import add_vehicle
from tests.redis_cluster import SINGLE_AND_CLUSTER, redis_env
from tests.support import free_port

PG_BIN = Path("/usr/lib/postgresql/15/bin")
OUTAGE_S = 3  # long enough for the worker to fail and back off several times


def as_postgres(args: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


class Cluster:
    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="fleet-outage-"))
        self.port = free_port()
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres")
        subprocess.run(
            as_postgres(
                [
                    str(PG_BIN / "initdb"),
                    "-D",
                    str(self.dir / "data"),
                    "-U",
                    "postgres",
                    "--auth=trust",
                ]
            ),
            check=True,
            capture_output=True,
        )

    def start(self) -> None:
        subprocess.run(
            as_postgres(
                [
                    str(PG_BIN / "pg_ctl"),
                    "-D",
                    str(self.dir / "data"),
                    "-w",
                    "-l",
                    str(self.dir / "log"),
                    "-o",
                    f"-p {self.port} -h 127.0.0.1 -k {self.dir}",
                    "start",
                ]
            ),
            check=True,
            capture_output=True,
        )

    def stop(self) -> None:
        subprocess.run(
            as_postgres(
                [str(PG_BIN / "pg_ctl"), "-D", str(self.dir / "data"), "-m", "fast", "-w", "stop"]
            ),
            check=False,
            capture_output=True,
        )


@pytest.fixture(scope="module")
def cluster(settings: Settings) -> Iterator[tuple[Cluster, Settings]]:
    own = Cluster()
    own.start()
    url = settings.database.set(host="127.0.0.1", port=own.port, database="postgres")
    owner = settings.owner_database.set(host="127.0.0.1", port=own.port, database="postgres")
    admin = create_engine(owner, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text("CREATE DATABASE fleet_outage"))
        if settings.app_role:  # the processes' role, as scripts/dev.sh makes it
            conn.execute(text(f'CREATE ROLE "{settings.app_role}" LOGIN'))
    admin.dispose()
    outage_settings = settings.model_copy(
        update={"database_url": url.set(database="fleet_outage").render_as_string(False)}
    )
    migrate.upgrade(outage_settings)
    yield own, outage_settings
    own.stop()
    shutil.rmtree(own.dir, ignore_errors=True)


def count(engine, vehicle_id: int) -> int:
    with engine.connect() as conn:
        found = conn.execute(
            text("SELECT count(*) FROM position WHERE vehicle_id = :v"), {"v": vehicle_id}
        )
        return int(found.scalar_one())


@SINGLE_AND_CLUSTER
def test_postgres_outage_loses_nothing(cluster, redis, redis_address):
    own, settings = cluster
    settings = settings.with_redis(redis_address)
    run = 2 if redis_address.cluster else 1  # each run has its own unit, vehicle and phone
    phone = f"outage-phone-{run}"
    engine = make_engine(settings, pool_size=2)
    with Session(engine) as session, session.begin():
        root = registry.create_root_unit(session=session, code=f"OUT{run}", name="停机测试")
        vehicle = add_vehicle(session, root, f"浙A·D7111{run}", energy="bev")
        registry.create_device(
            session=session,
            actor=Actor.system(root),
            data=DeviceCreate(protocol="osmand", identifier=phone, vehicle_id=vehicle.id),
        )
        vehicle_id = vehicle.id
    tsettings = TelematicsSettings(
        gateway_host="127.0.0.1", jt808_port=free_port(), osmand_port=free_port(), stream_shards=2
    )
    env = {
        **os.environ,
        "FLEET_DATABASE_URL": settings.database_url,
        **redis_env(redis_address),
        "FLEET_STREAM_SHARDS": "2",
    }
    worker = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "worker"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    statuses: list[int] = []
    recent = int(time.time()) - 3600  # inside the allowed window, whatever the day

    async def scenario() -> None:
        ready, stop = asyncio.Event(), asyncio.Event()
        serving = asyncio.create_task(gateway.serve(tsettings, engine, settings.redis, ready, stop))
        await asyncio.wait_for(ready.wait(), 10)
        base = f"http://127.0.0.1:{tsettings.osmand_port}/"
        async with httpx.AsyncClient() as client:

            async def send(first: int, n: int) -> None:
                for i in range(first, first + n):
                    reply = await client.get(
                        base,
                        params={
                            "id": phone,
                            "lat": 30 + i / 1e4,
                            "lon": 120,
                            "timestamp": recent + i,
                        },
                    )
                    statuses.append(reply.status_code)

            await send(0, 50)
            deadline = time.monotonic() + 30
            while (
                await asyncio.to_thread(count, engine, vehicle_id) < 50
                and time.monotonic() < deadline
            ):
                await asyncio.sleep(0.1)
            await asyncio.to_thread(own.stop)
            await send(50, 100)  # the database is down: these go to Redis only
            await asyncio.sleep(OUTAGE_S)
            await asyncio.to_thread(own.start)
        stop.set()
        await serving

    try:
        asyncio.run(scenario())
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(OperationalError):  # until the database answers again
                if count(engine, vehicle_id) >= 150:
                    break
            time.sleep(0.2)
        assert worker.poll() is None, "the worker must survive the outage"
    finally:
        worker.terminate()
        worker.wait(timeout=20)
    assert statuses == [200] * 150
    assert count(engine, vehicle_id) == 150
    with engine.connect() as conn:
        distinct = conn.execute(
            text("SELECT count(DISTINCT fix_time) FROM position WHERE vehicle_id = :v"),
            {"v": vehicle_id},
        ).scalar()
    assert distinct == 150
    engine.dispose()
