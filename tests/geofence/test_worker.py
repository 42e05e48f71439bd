"""The engine inside the ingest worker, on real Redis streams and PostGIS: alerts stored in the
batch's transaction, exactly one per episode across restarts, and replay agreeing with live."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from fleet import channels
from fleet.models import OrgUnit
from fleet.redis_client import RedisClient
from geofence.replay import ReplayReport, replay
from geofence.settings import GeofenceSettings
from geofence.worker import RULE_STATES, GeofenceObserver
from telematics import stream
from telematics.batch import FixBatch, entry_rows, in_order
from telematics.fix import Fix
from telematics.ingest import IngestWorker
from telematics.settings import TelematicsSettings
from tests.factories import add_circle
from tests.redis_cluster import SINGLE_AND_CLUSTER
from tests.telematics.conftest import Fleetlet
from tests.telematics.test_ingest import count, drain, make_worker, pending, push

ZONE = ZoneInfo("Asia/Shanghai")
# Friday 2026-11-20, 10:00 in Beijing: working time.
T0 = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
CLUB = (30.30, 120.10)  # (lat, lon) of a prohibited place


@pytest.fixture
def club(fleetlet: Fleetlet):
    _clear(fleetlet)
    with Session(fleetlet.engine) as session, session.begin():
        root = session.get(OrgUnit, fleetlet.unit_id)
        fence = add_circle(session, root, "私人会所", "prohibited", (CLUB[1], CLUB[0]), 150)
        fence_id = fence.id
    yield fence_id
    _clear(fleetlet)


def _clear(fleetlet: Fleetlet) -> None:
    owner = create_engine(fleetlet.settings.owner_database)  # the processes' role cannot TRUNCATE
    with owner.begin() as conn:
        conn.execute(text("TRUNCATE alert_review, alert, fence RESTART IDENTITY CASCADE"))
    owner.dispose()


def observer(fleetlet: Fleetlet, redis: RedisClient) -> GeofenceObserver:
    return GeofenceObserver(
        engine=fleetlet.engine, redis=redis, settings=GeofenceSettings(), zone=ZONE
    )


def worker(fleetlet: Fleetlet, redis: RedisClient, tsettings: TelematicsSettings) -> IngestWorker:
    return make_worker(
        fleetlet,
        redis,
        tsettings,
        observers=[observer(fleetlet, redis)],
        clock=lambda: (T0 + timedelta(days=1)).timestamp(),  # the timelines start at T0
    )


def visit(fleetlet: Fleetlet, minutes: int, start: datetime = T0) -> list[list]:
    """Vehicle 0 parked at the club, a fix every 30 s, then one fix a kilometre away."""
    target = fleetlet.targets[0]
    fixes = [
        Fix(
            device_identifier="phone-0",
            fix_time=start + timedelta(seconds=30 * i),
            lat=CLUB[0],
            lon=CLUB[1],
            speed_kmh=0.0,
            ignition=False,
            valid=True,
        )
        for i in range(minutes * 2 + 1)
    ]
    fixes.append(
        Fix(
            device_identifier="phone-0",
            fix_time=start + timedelta(minutes=minutes, seconds=60),
            lat=CLUB[0] + 0.01,
            lon=CLUB[1],
            speed_kmh=0.0,
            ignition=False,
            valid=True,
        )
    )
    return [stream.to_row(f, target, stream.now_ms()) for f in fixes]


def alerts(fleetlet: Fleetlet) -> list[tuple]:
    with fleetlet.engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                text(
                    "SELECT kind, key, fence_id, started_at, ended_at, measured->>'duration_s'"
                    " FROM alert ORDER BY id"
                )
            )
        ]


@SINGLE_AND_CLUSTER
@pytest.mark.usefixtures("clean_tracks")
def test_worker_stores_an_alert_with_the_fixes(fleetlet, redis, tsettings, club):
    push(redis, visit(fleetlet, 10), tsettings.stream_shards)
    drain(worker(fleetlet, redis, tsettings))
    assert count(fleetlet) == 22
    assert alerts(fleetlet) == [
        ("prohibited_zone", str(club), club, T0, T0 + timedelta(minutes=10), "600.0")
    ]
    assert int(redis.hget(stream.COUNTERS, "rules_evaluated")) == 22


@pytest.mark.usefixtures("clean_tracks")
def test_a_restarted_worker_continues_the_episode_it_did_not_see_begin(
    fleetlet, redis, tsettings, club
):
    rows = visit(fleetlet, 10)
    push(redis, rows[:14], tsettings.stream_shards)  # 6.5 minutes in: the alert is open
    drain(worker(fleetlet, redis, tsettings))
    assert [a[4] for a in alerts(fleetlet)] == [None]
    push(redis, rows[14:], tsettings.stream_shards)
    drain(worker(fleetlet, redis, tsettings))  # a new process: state comes from Redis
    assert alerts(fleetlet) == [
        ("prohibited_zone", str(club), club, T0, T0 + timedelta(minutes=10), "600.0")
    ]


@pytest.mark.usefixtures("clean_tracks")
def test_a_crash_after_the_commit_raises_the_episode_once(fleetlet, redis, tsettings, club):
    """Commit, then die before the rule state is saved and the entries acknowledged."""
    rows = visit(fleetlet, 10)
    push(redis, rows[:14], tsettings.stream_shards)
    drain(worker(fleetlet, redis, tsettings))
    push(redis, rows[14:], tsettings.stream_shards)
    crashed = worker(fleetlet, redis, tsettings)
    entries = crashed._read()
    decoded = sorted(
        (r for _, _, f in entries for r in entry_rows(f)),
        key=lambda r: r[stream.R_FIX_MS],
    )
    (rules,) = crashed.observers
    ordered, starts = in_order(FixBatch.from_rows(decoded))
    crashed._store(ordered, [], [(rules, rules.evaluate(ordered, starts))])
    assert pending(redis, tsettings.stream_shards) == len(entries)
    restarted = worker(fleetlet, redis, tsettings)
    drain(restarted)
    assert alerts(fleetlet) == [
        ("prohibited_zone", str(club), club, T0, T0 + timedelta(minutes=10), "600.0")
    ]
    assert redis.hexists(RULE_STATES, fleetlet.targets[0].vehicle_id)


@pytest.mark.usefixtures("clean_tracks")
def test_replay_of_the_period_reproduces_the_live_alerts(fleetlet, redis, tsettings, club):
    # The club visit, and a drive through the afternoon with no order (no_order, overspeed).
    rows = visit(fleetlet, 10)
    target = fleetlet.targets[1]
    drive_start = T0 + timedelta(hours=4)
    rows += [
        stream.to_row(
            Fix(
                device_identifier="phone-1",
                fix_time=drive_start + timedelta(seconds=10 * i),
                lat=30.2 + i * 0.0005,
                lon=120.2,
                speed_kmh=130.0 if 20 <= i < 40 else 60.0,
                ignition=True,
                valid=True,
            ),
            target,
            stream.now_ms(),
        )
        for i in range(120)
    ]
    for n in range(0, len(rows), 25):  # in many small batches, as they would arrive
        push(redis, rows[n : n + 25], tsettings.stream_shards)
        drain(worker(fleetlet, redis, tsettings))
    live = alerts(fleetlet)
    assert sorted(a[0] for a in live) == ["no_order", "overspeed", "prohibited_zone"]

    def replay_day(write: bool) -> ReplayReport:
        return replay(
            engine=fleetlet.engine,
            settings=GeofenceSettings(),
            zone=ZONE,
            start=T0 - timedelta(hours=1),
            end=T0 + timedelta(hours=12),
            write=write,
        )

    report = replay_day(write=False)
    assert report.new == 0
    replayed = {
        (
            r.event.kind,
            r.event.key,
            r.event.started_t,
            r.event.ended_t,
            r.event.measured.get("duration_s"),
        )
        for r in report.alerts
    }
    assert replayed == {
        (
            a[0],
            a[1],
            a[3].timestamp(),
            a[4].timestamp() if a[4] else None,
            float(a[5]) if a[5] else None,
        )
        for a in live
    }
    replay_day(write=True)
    assert alerts(fleetlet) == live


@SINGLE_AND_CLUSTER
@pytest.mark.usefixtures("clean_tracks")
def test_alerts_reach_supervisors_on_the_websocket_and_not_drivers(
    fleetlet, redis, redis_address, tsettings, club
):
    from fastapi.testclient import TestClient

    from fleet import registry
    from fleet.schemas import UserCreate
    from tests.conftest import PASSWORD
    from web.app import create_app

    with Session(fleetlet.engine) as session, session.begin():
        for name, role in (("ws-supervisor", "supervisor"), ("ws-driver", "driver")):
            if session.scalar(text("SELECT 1 FROM user_account WHERE username = :u"), {"u": name}):
                continue
            registry.create_user(
                session=session,
                actor=None,
                data=UserCreate(
                    username=name, password=PASSWORD, roles=[role], unit_id=fleetlet.unit_id
                ),
            )

    def token(client: TestClient, username: str) -> str:
        reply = client.post("/api/v1/auth/token", data={"username": username, "password": PASSWORD})
        return reply.json()["access_token"]

    def next_of(ws, kind: str) -> dict:
        for _ in range(50):
            message = ws.receive_json()
            if message["type"] == kind:
                return message
        raise AssertionError(f"no {kind} message")

    api = TestClient(create_app(fleetlet.settings.with_redis(redis_address), live_keepalive_s=0.2))
    with (
        api,
        api.websocket_connect(f"/ws/live?token={token(api, 'ws-supervisor')}") as boss,
        api.websocket_connect(f"/ws/live?token={token(api, 'ws-driver')}") as driver,
    ):
        assert boss.receive_json()["type"] == "snapshot"
        assert driver.receive_json()["type"] == "snapshot"
        rows = visit(fleetlet, 10)
        push(redis, rows, tsettings.stream_shards)
        # What a gateway puts on the live channel as it writes the fixes to the stream.
        live = {"type": "positions", "items": [stream.live_item(rows[-1])]}
        redis.publish(channels.LIVE, stream.dumps(live))
        drain(worker(fleetlet, redis, tsettings))
        alert = next_of(boss, "alerts")["items"][0]
        assert (alert["kind"], alert["fence_id"]) == ("prohibited_zone", club)
        seen = [driver.receive_json()["type"] for _ in range(8)]
        assert "positions" in seen
        assert "alerts" not in seen


def test_a_slow_client_keeps_the_latest_state_of_each_episode_and_a_bounded_queue():
    from web.live import MAX_PENDING_ALERTS, LiveClient

    client = LiveClient(frozenset({1}), alerts=True)
    item = {"vehicle_id": 5, "unit_id": 1, "kind": "overspeed", "key": "", "started_t": 1.0}
    client.offer_alerts([{**item, "ended_t": None}, {**item, "ended_t": 9.0}])
    client.offer_alerts([{**item, "unit_id": 2, "started_t": 3.0}])  # not in scope
    assert client.take_alerts() == [{**item, "ended_t": 9.0}]
    for n in range(MAX_PENDING_ALERTS + 50):
        client.offer_alerts([{**item, "started_t": float(n)}])
    pending = client.take_alerts()
    assert len(pending) == MAX_PENDING_ALERTS
    assert pending[-1]["started_t"] == MAX_PENDING_ALERTS + 49
    assert LiveClient(frozenset({1})).wants_alerts is False


def test_the_engine_sees_speeds_as_postgresql_stores_them():
    import struct

    from geofence.worker import fixes_by_vehicle

    def row(vehicle: int, ms: int, speed: float | None) -> list:
        r: list = [None] * (stream.R_ATTRIBUTES + 1)
        r[stream.R_VEHICLE], r[stream.R_FIX_MS], r[stream.R_SPEED] = vehicle, ms, speed
        r[stream.R_LAT], r[stream.R_LON], r[stream.R_ALARM] = 30.0, 120.0, 0
        r[stream.R_DEVICE], r[stream.R_UNIT], r[stream.R_RECEIVED_MS] = 1, 1, ms
        r[stream.R_STATUS] = 0
        return r

    speeds = [120.1, None, 5.0, 0.1, 299.99]
    rows = [row(1 + n % 2, 1000 * n, s) for n, s in enumerate(speeds)]
    rows.sort(key=lambda r: (r[stream.R_VEHICLE], r[stream.R_FIX_MS]))
    tracks = fixes_by_vehicle(*in_order(FixBatch.from_rows(rows)))
    as_real = {
        s: None if s is None else struct.unpack("<f", struct.pack("<f", s))[0] for s in speeds
    }
    got = [f.speed_kmh for fixes in tracks.values() for f in fixes]
    assert got == [as_real[r[stream.R_SPEED]] for r in rows]
    assert got[0] != 120.1  # really rounded, not passed through
    assert sorted(tracks) == [1, 2]


def test_the_batch_columns_the_engine_is_handed_are_its_fixes():
    """The worker hands the engine its batch as columns beside the tuples; they must say the
    same, missing values included (no position, speed or ignition), as the engine's own
    reading of the tuples."""
    import numpy as np

    from geofence.engine import fix_columns as engine_columns
    from geofence.worker import fix_columns, fixes_by_vehicle

    def row(vehicle: int, ms: int, n: int) -> list:
        r: list = [None] * (stream.R_ATTRIBUTES + 1)
        r[stream.R_VEHICLE], r[stream.R_FIX_MS] = vehicle, ms
        r[stream.R_LAT], r[stream.R_LON] = (None, None) if n % 4 == 1 else (30.1 + n, 120.3)
        r[stream.R_SPEED] = None if n % 3 == 2 else 33.3 * n
        r[stream.R_IGNITION] = (None, False, True)[n % 3]
        r[stream.R_ALARM] = (0, 1, 1 << 31 | 1 << 8)[n % 3]
        r[stream.R_DEVICE], r[stream.R_UNIT], r[stream.R_RECEIVED_MS] = 1, 1, ms
        r[stream.R_STATUS] = 0
        return r

    rows = sorted(
        (row(1 + n % 3, 1000 * n + 7, n) for n in range(12)),
        key=lambda r: (r[stream.R_VEHICLE], r[stream.R_FIX_MS]),
    )
    batch, starts = in_order(FixBatch.from_rows(rows))
    tracks = fixes_by_vehicle(batch, starts)
    given = fix_columns(batch)
    read = engine_columns([f for fixes in tracks.values() for f in fixes])
    assert given.shape == read.shape == (12, 6)
    assert np.array_equal(given, read, equal_nan=True)
    assert np.isnan(given).any(axis=0).tolist() == [False, True, True, True, True, False]


def test_states_go_to_redis_as_the_standard_library_would_write_them():
    """The worker writes every state of a batch with orjson; read back, each is what
    `json.dumps` gave: the previous fix (a `Fix`, a tuple of its own class) as an array, None,
    nested rule states, floats to the last bit. What JSON cannot hold is still refused."""
    import json

    from geofence.engine import new_state
    from geofence.rules.base import Fix as EngineFix
    from geofence.worker import state_json

    states = [
        new_state(),
        {
            "t": 1_790_000_190.0,
            "prev": EngineFix(1_790_000_190.0, 0.1 + 0.2, 120.46455468499255, None, True, 1 << 31),
            "pos": (29.96746446950128, 120.46455468499255),
            "rules": {
                "off_hours": {"start": 1.5, "dist": 2795.557392835926, "open": True, "lat": None},
                "prohibited_zone": {"fences": {"7": [1e-7, 3]}},
            },
        },
    ]
    for state in states:
        assert json.loads(state_json(state)) == json.loads(json.dumps(state))
    with pytest.raises(TypeError):
        state_json({"rules": {"x": {1, 2}}})
