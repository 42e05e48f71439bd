"""The simulator drives registered vehicles through a real gateway; the worker stores what it
sends, and a dispatcher whose scope covers the vehicles sees them move on the WebSocket."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session

from fleet import registry
from fleet.schemas import UserCreate
from telematics import gateway, simulator
from telematics.ingest import IngestWorker
from telematics.settings import TelematicsSettings
from tests.conftest import PASSWORD
from tests.telematics.test_gateway import SECRET, free_port
from web.app import create_app

pytestmark = pytest.mark.usefixtures("clean_tracks")


def test_simulated_terminals_reach_postgis_and_the_live_socket(fleetlet, redis):
    with Session(fleetlet.engine) as session, session.begin():
        registry.create_user(
            session=session,
            actor=None,
            data=UserCreate(
                username="sim-watcher",
                password=PASSWORD,
                roles=["dispatcher"],
                unit_id=fleetlet.unit_id,
            ),
        )
    tsettings = TelematicsSettings(
        gateway_host="127.0.0.1",
        jt808_port=free_port(),
        osmand_port=free_port(),
        stream_shards=4,
        ingest_linger_ms=0,
    )
    vehicles = simulator.registered(fleetlet.engine, "jt808", 3)
    assert len(vehicles) == 3
    stop_worker = threading.Event()
    worker = IngestWorker(engine=fleetlet.engine, redis=redis, settings=tsettings, block_ms=100)
    worker_thread = threading.Thread(target=worker.run, args=(stop_worker,), daemon=True)
    outcome: dict[str, simulator.Stats] = {}

    async def drive() -> None:
        ready, stop = asyncio.Event(), asyncio.Event()
        serving = asyncio.create_task(
            gateway.serve(
                tsettings, fleetlet.engine, fleetlet.settings.redis_url, SECRET, ready, stop
            )
        )
        await asyncio.wait_for(ready.wait(), 10)
        outcome["stats"] = await simulator.simulate(
            vehicles,
            protocol="jt808",
            host="127.0.0.1",
            port=tsettings.jt808_port,
            routes=simulator.StraightLegs(simulator.DEFAULT_CENTRE),
            interval_s=0.5,
            duration_s=4,
            fix_step_s=1.0,  # JT/T 808 times are whole seconds: two a second would be one fix
        )
        stop.set()
        await serving

    with TestClient(create_app(fleetlet.settings, live_keepalive_s=0.5)) as api:
        token = api.post(
            "/api/v1/auth/token", data={"username": "sim-watcher", "password": PASSWORD}
        ).json()["access_token"]
        worker_thread.start()
        driver = threading.Thread(target=lambda: asyncio.run(drive()), daemon=True)
        with api.websocket_connect(f"/ws/live?token={token}") as socket_:
            assert socket_.receive_json()["type"] == "snapshot"
            driver.start()
            seen: set[int] = set()
            for _ in range(100):
                message = socket_.receive_json()
                if message["type"] == "positions":
                    seen |= {i["vehicle_id"] for i in message["items"]}
                if len(seen) == 3:
                    break
        driver.join(timeout=30)
        deadline = time.monotonic() + 30
        while stored_count(fleetlet) < outcome["stats"].acked and time.monotonic() < deadline:
            time.sleep(0.1)
        stop_worker.set()
        worker_thread.join(timeout=30)
    stats = outcome["stats"]
    assert stats.connected == 3
    assert stats.refused == 0
    assert stats.acked == stats.sent > 10
    assert seen == {t.vehicle_id for t in fleetlet.targets}
    assert stored_count(fleetlet) == stats.acked


def stored_count(fleetlet) -> int:
    with fleetlet.engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM position")).scalar_one())
