"""Track, trips and live over HTTP and the WebSocket, with scope, on fixes the worker stored."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from fleet import channels, registry
from fleet.auth import Actor
from fleet.models import Role
from fleet.redis_client import RedisAddress, RedisClient
from fleet.schemas import UserCreate
from telematics import stream
from telematics.ingest import IngestWorker
from telematics.settings import TelematicsSettings
from tests.clock import CHINA
from tests.conftest import PASSWORD
from tests.factories import add_vehicle
from tests.redis_cluster import SINGLE_AND_CLUSTER
from tests.telematics.conftest import T0, Fleetlet, a_day_after_t0, drive
from web.app import create_app

pytestmark = pytest.mark.usefixtures("clean_tracks")


@pytest.fixture(scope="module")
def people(fleetlet: Fleetlet) -> dict[str, int]:
    """A dispatcher at the fleetlet's root, and one in a sibling unit with its own vehicle."""
    with Session(fleetlet.engine) as session, session.begin():
        root = registry.get_unit(
            session=session,
            actor=Actor(
                None, "t", fleetlet.unit_id, f"{fleetlet.unit_id}/", frozenset({Role.ADMIN})
            ),
            unit_id=fleetlet.unit_id,
        )
        system = Actor.system(root)
        other = registry.create_root_unit(session=session, code="OTHER", name="别的单位")
        for name, unit in (("root-disp", root.id), ("other-disp", other.id)):
            registry.create_user(
                session=session,
                actor=None,
                data=UserCreate(
                    username=name, password=PASSWORD, roles=["dispatcher"], unit_id=unit
                ),
            )
        theirs = add_vehicle(session, other, "浙A·D79999", energy="bev")
        assert system.unit_id == root.id
        return {"other_unit": other.id, "their_vehicle": theirs.id}


@pytest.fixture
def api(
    fleetlet: Fleetlet, redis: RedisClient, redis_address: RedisAddress
) -> Iterator[TestClient]:
    app = create_app(fleetlet.settings.with_redis(redis_address), live_keepalive_s=0.3)
    with TestClient(app) as client:
        yield client


def token(client: TestClient, username: str) -> str:
    reply = client.post("/api/v1/auth/token", data={"username": username, "password": PASSWORD})
    assert reply.status_code == 200, reply.text
    return reply.json()["access_token"]


def ingest(fleetlet: Fleetlet, redis: RedisClient, vehicle: int, n: int) -> None:
    settings = TelematicsSettings(stream_shards=4)
    target = fleetlet.targets[vehicle]
    rows = [stream.to_row(f, target, stream.now_ms()) for f in drive(f"phone-{vehicle}", T0, n)]
    redis.xadd(stream.stream_key(stream.shard_of(target.vehicle_id, 4)), stream.entry(rows))
    worker = IngestWorker(
        engine=fleetlet.engine, redis=redis, settings=settings, block_ms=50, clock=a_day_after_t0
    )
    while worker.process_once().entries:
        pass


def test_positions_are_geojson_in_time_order(fleetlet, redis, api, people):
    ingest(fleetlet, redis, 0, 50)
    headers = {"Authorization": f"Bearer {token(api, 'root-disp')}"}
    vehicle_id = fleetlet.targets[0].vehicle_id
    reply = api.get(
        f"/api/v1/vehicles/{vehicle_id}/positions",
        params={"start": "2026-11-20T00:00:00Z", "end": "2026-11-21T00:00:00Z"},
        headers=headers,
    )
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["type"] == "FeatureCollection"
    assert len(body["features"]) == 50
    first = body["features"][0]
    assert first["geometry"] == {"type": "Point", "coordinates": [120.2, 30.25]}
    assert first["properties"]["fix_time"] == "2026-11-20T01:00:00Z"
    assert first["properties"]["speed_kmh"] == pytest.approx(40)
    times = [f["properties"]["fix_time"] for f in body["features"]]
    assert times == sorted(times)
    # A straight line simplifies to its two ends.
    simple = api.get(
        f"/api/v1/vehicles/{vehicle_id}/positions",
        params={"start": "2026-11-20T00:00:00Z", "end": "2026-11-21T00:00:00Z", "simplify_m": 5},
        headers=headers,
    ).json()
    assert len(simple["features"]) == 2
    bad = api.get(
        f"/api/v1/vehicles/{vehicle_id}/positions",
        params={"start": "2026-11-21T00:00:00Z", "end": "2026-11-20T00:00:00Z"},
        headers=headers,
    )
    assert bad.status_code == 422


def test_positions_of_a_vehicle_out_of_scope_are_404(fleetlet, api, people):
    headers = {"Authorization": f"Bearer {token(api, 'other-disp')}"}
    reply = api.get(
        f"/api/v1/vehicles/{fleetlet.targets[0].vehicle_id}/positions",
        params={"start": "2026-11-20T00:00:00Z", "end": "2026-11-21T00:00:00Z"},
        headers=headers,
    )
    assert reply.status_code == 404


def test_live_lists_only_vehicles_in_scope(fleetlet, redis, api, people):
    ingest(fleetlet, redis, 1, 5)
    mine = api.get("/api/v1/live", headers={"Authorization": f"Bearer {token(api, 'root-disp')}"})
    items = {i["vehicle_id"]: i for i in mine.json()["items"]}
    assert items[fleetlet.targets[1].vehicle_id]["position"]["lat"] == pytest.approx(30.254)
    assert people["their_vehicle"] not in items
    theirs = api.get(
        "/api/v1/live", headers={"Authorization": f"Bearer {token(api, 'other-disp')}"}
    )
    assert [i["vehicle_id"] for i in theirs.json()["items"]] == [people["their_vehicle"]]


@SINGLE_AND_CLUSTER
def test_websocket_sends_snapshot_deltas_and_keepalive_within_scope(fleetlet, redis, api, people):
    ingest(fleetlet, redis, 2, 3)
    with (
        api.websocket_connect(f"/ws/live?token={token(api, 'root-disp')}") as mine,
        api.websocket_connect(f"/ws/live?token={token(api, 'other-disp')}") as theirs,
    ):
        snapshot = mine.receive_json()
        assert snapshot["type"] == "snapshot"
        assert fleetlet.targets[2].vehicle_id in {i["vehicle_id"] for i in snapshot["items"]}
        assert theirs.receive_json() == {"type": "snapshot", "items": []}
        # Fresh fixes of vehicle 0 enter the stream, and go live as a gateway puts them there.
        now = datetime.now(UTC) - timedelta(seconds=5)
        target = fleetlet.targets[0]
        rows = [stream.to_row(f, target, stream.now_ms()) for f in drive("phone-0", now, 2)]
        redis.publish(channels.LIVE, stream.live_message(rows) or b"")
        delta = mine.receive_json()
        while delta["type"] == "keepalive":
            delta = mine.receive_json()
        assert delta["type"] == "positions"
        assert {i["vehicle_id"] for i in delta["items"]} == {fleetlet.targets[0].vehicle_id}
        # The other unit's dispatcher hears nothing but keepalives.
        assert theirs.receive_json() == {"type": "keepalive"}


def test_websocket_refuses_a_bad_token(api):
    from starlette.websockets import WebSocketDisconnect

    with pytest.raises(WebSocketDisconnect) as closed, api.websocket_connect("/ws/live?token=nope"):
        pass
    assert closed.value.code == 4401


def test_slow_client_keeps_only_the_latest_position_per_vehicle():
    from web.live import LiveClient

    client = LiveClient(frozenset({1}))
    for n in range(1000):
        client.offer([{"vehicle_id": n % 3, "unit_id": 1, "fix_ms": n}])
    taken = client.take()
    assert len(taken) == 3
    assert max(i["fix_ms"] for i in taken) == 999
    assert json.dumps(taken)


def test_trips_are_segmented_by_the_worker_and_served(fleetlet, redis, api, people):
    from datetime import timedelta

    from telematics.fix import Fix

    target = fleetlet.targets[1]
    fixes = []
    t = T0
    for _ in range(30):  # parked 5 minutes, ignition off
        fixes.append(
            Fix("phone-1", t, 30.25, 120.2, speed_kmh=0.0, ignition=False, odometer_km=500.0)
        )
        t += timedelta(seconds=10)
    for i in range(1, 31):  # 30 x 100 m north in 5 minutes
        fixes.append(
            Fix(
                "phone-1",
                t,
                30.25 + i * 0.0009,
                120.2,
                speed_kmh=36.0,
                ignition=True,
                odometer_km=500.0 + i * 0.1,
            )
        )
        t += timedelta(seconds=10)
    for _ in range(30):  # parked again
        fixes.append(
            Fix("phone-1", t, 30.277, 120.2, speed_kmh=0.0, ignition=False, odometer_km=503.0)
        )
        t += timedelta(seconds=10)
    rows = [stream.to_row(f, target, stream.now_ms()) for f in fixes]
    key = stream.stream_key(stream.shard_of(target.vehicle_id, 4))
    for chunk in range(0, len(rows), 25):  # several batches: the trip state crosses them
        redis.xadd(key, stream.entry(rows[chunk : chunk + 25]))
    worker = IngestWorker(
        engine=fleetlet.engine,
        redis=redis,
        settings=TelematicsSettings(stream_shards=4, ingest_batch_entries=1),
        block_ms=50,
        clock=a_day_after_t0,
    )
    while worker.process_once().entries:
        pass
    headers = {"Authorization": f"Bearer {token(api, 'root-disp')}"}
    reply = api.get(
        f"/api/v1/vehicles/{target.vehicle_id}/trips",
        params={"start": "2026-11-20T00:00:00Z", "end": "2026-11-21T00:00:00Z"},
        headers=headers,
    )
    assert reply.status_code == 200, reply.text
    (trip,) = reply.json()["items"]
    assert trip["distance_m"] == pytest.approx(3000, rel=0.02)
    assert trip["odometer_distance_km"] == pytest.approx(3.0)
    assert trip["path"]["type"] == "LineString"
    assert trip["start_at"] == "2026-11-20T01:04:50Z"


@SINGLE_AND_CLUSTER
def test_integration_posts_a_batch_with_its_device_token(fleetlet, redis, api, people):
    from sqlalchemy import text as sql

    admin_token = token(api, "root-disp")
    created = api.post(
        "/api/v1/devices",
        json={
            "protocol": "api",
            "identifier": "erp-feed-1",
            "vehicle_id": fleetlet.targets[2].vehicle_id,
        },
        headers={"Authorization": f"Bearer {admin_token}"},
    )
    assert created.status_code == 201, created.text
    device_token = created.json()["token"]
    assert device_token
    shown_again = api.get(
        f"/api/v1/devices/{created.json()['id']}",
        headers={"Authorization": f"Bearer {admin_token}"},
    )
    assert shown_again.json()["token"] is None
    recent = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    body = {
        "fixes": [
            {"fix_time": recent.isoformat(), "lat": 30.2, "lon": 120.1, "speed_kmh": 30},
            {
                "fix_time": (recent + timedelta(seconds=10)).astimezone(CHINA).isoformat(),
                "lat": 30.3,
                "lon": 120.1,
                "attributes": {"driver": "D1"},
            },
            {"fix_time": "2099-01-01T00:00:00Z", "lat": 30.2, "lon": 120.1},
            {
                "fix_time": (recent + timedelta(seconds=20)).isoformat(),
                "lat": 30.2,
                "lon": 120.1,
                "speed_kmh": 900,
            },
            {"fix_time": "1970-01-01T00:00:00Z", "lat": 30.2, "lon": 120.1},
        ]
    }
    reply = api.post(
        "/api/v1/telemetry", json=body, headers={"Authorization": f"Bearer {device_token}"}
    )
    assert reply.status_code == 202, reply.text
    assert reply.json() == {
        "accepted": 2,
        "dropped": [
            {"index": 2, "reason": "future_time"},
            {"index": 3, "reason": "impossible_speed"},
            {"index": 4, "reason": "too_old"},
        ],
    }
    bad = api.post(
        "/api/v1/telemetry",
        json={"fixes": [{"fix_time": "x"}]},
        headers={"Authorization": f"Bearer {device_token}"},
    )
    assert bad.status_code == 422
    stranger = api.post("/api/v1/telemetry", json=body, headers={"Authorization": "Bearer nope"})
    assert stranger.status_code == 401
    worker = IngestWorker(
        engine=fleetlet.engine,
        redis=redis,
        settings=TelematicsSettings(stream_shards=8),
        block_ms=50,
    )
    while worker.process_once().entries:
        pass
    with fleetlet.engine.connect() as conn:
        stored = conn.execute(
            sql(
                "SELECT count(*) FROM position p JOIN device d ON d.id = p.device_id"
                " WHERE d.identifier = 'erp-feed-1'"
            )
        ).scalar()
        conn.execute(sql("DELETE FROM device WHERE identifier = 'erp-feed-1'"))
        conn.commit()
    assert stored == 2
