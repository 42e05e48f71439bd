"""The ingest worker against real Redis streams and PostGIS."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, text

from fleet.redis_client import RedisClient
from telematics import outbound as outbound_stream
from telematics import stream
from telematics.batch import FixBatch, entry_rows, in_order
from telematics.ingest import IngestWorker
from telematics.outbound import PositionTap
from telematics.settings import TelematicsSettings
from tests.redis_cluster import SINGLE_AND_CLUSTER, redis_env
from tests.telematics.conftest import T0, Fleetlet, a_day_after_t0, drive

pytestmark = pytest.mark.usefixtures("clean_tracks")


def push(redis: RedisClient, rows: list[list], shards: int) -> None:
    by_shard: dict[int, list[list]] = {}
    for row in rows:
        by_shard.setdefault(stream.shard_of(row[stream.R_VEHICLE], shards), []).append(row)
    for shard, shard_rows in by_shard.items():
        redis.xadd(stream.stream_key(shard), stream.entry(shard_rows))


def rows_for(fleetlet: Fleetlet, vehicle: int, n: int, start: datetime = T0) -> list[list]:
    target = fleetlet.targets[vehicle]
    return [stream.to_row(f, target, stream.now_ms()) for f in drive(f"phone-{vehicle}", start, n)]


def count(fleetlet: Fleetlet, sql: str = "SELECT count(*) FROM position") -> int:
    with fleetlet.engine.connect() as conn:
        return int(conn.execute(text(sql)).scalar_one())


def drain(worker: IngestWorker, limit: int = 100) -> None:
    for _ in range(limit):
        if worker.process_once().entries == 0:
            return
    raise AssertionError("the stream did not drain")


def pending(redis: RedisClient, shards: int) -> int:
    total = 0
    for shard in range(shards):
        key = stream.stream_key(shard)
        if redis.exists(key) and redis.xinfo_groups(key):
            total += redis.xpending(key, stream.GROUP)["pending"]
    return total


def make_worker(
    fleetlet: Fleetlet, redis: RedisClient, tsettings: TelematicsSettings, **options: Any
) -> IngestWorker:
    """An ingest worker on the fleetlet, polling briefly, its clock a day after T0 unless
    `options` say otherwise (observers, clock...)."""
    return IngestWorker(
        **{
            "engine": fleetlet.engine,
            "redis": redis,
            "settings": tsettings,
            "block_ms": 50,
            "clock": a_day_after_t0,
            **options,
        }
    )


def partitions(fleetlet: Fleetlet) -> set[str]:
    with fleetlet.engine.connect() as conn:
        found = conn.execute(text("SELECT relname FROM pg_class WHERE relname LIKE 'position_p%'"))
        return {r[0] for r in found}


@SINGLE_AND_CLUSTER
def test_worker_stores_every_fix_then_acknowledges(fleetlet, redis, tsettings):
    worker = make_worker(fleetlet, redis, tsettings)
    rows = rows_for(fleetlet, 0, 120) + rows_for(fleetlet, 1, 80)
    push(redis, rows[:100], tsettings.stream_shards)
    push(redis, rows[100:], tsettings.stream_shards)
    drain(worker)
    assert count(fleetlet) == 200
    assert pending(redis, tsettings.stream_shards) == 0
    assert sum(redis.xlen(stream.stream_key(s)) for s in range(tsettings.stream_shards)) == 0
    last = json.loads(redis.hget(stream.LAST_POSITIONS, fleetlet.targets[0].vehicle_id))
    assert last["fix_ms"] == rows_for(fleetlet, 0, 120)[-1][stream.R_FIX_MS]
    assert last["unit_id"] == fleetlet.unit_id
    assert int(redis.hget(stream.COUNTERS, "stored")) == 200


def test_point_and_values_land_in_postgis(fleetlet, redis, tsettings):
    worker = make_worker(fleetlet, redis, tsettings)
    push(redis, rows_for(fleetlet, 2, 3), tsettings.stream_shards)
    drain(worker)
    with fleetlet.engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT ST_Y(point), ST_X(point), ST_SRID(point), speed_kmh, ignition, fix_time,"
                " odometer_km, attributes FROM position WHERE vehicle_id = :v"
                " ORDER BY fix_time LIMIT 1"
            ),
            {"v": fleetlet.targets[2].vehicle_id},
        ).one()
    assert row[0] == pytest.approx(30.25)
    assert row[1] == pytest.approx(120.2)
    assert row[2] == 4326
    assert row[3] == pytest.approx(40.0)
    assert row[4] is True
    assert row[5] == T0
    assert row[6] == pytest.approx(1000)
    assert row[7] == {"sat": 9, "x_e1": "0a0b"}


@SINGLE_AND_CLUSTER
def test_a_fix_sent_twice_is_stored_once(fleetlet, redis, tsettings):
    worker = make_worker(fleetlet, redis, tsettings)
    rows = rows_for(fleetlet, 0, 30)
    push(redis, rows, tsettings.stream_shards)
    push(redis, rows[10:20], tsettings.stream_shards)  # same batch: de-duplicated in memory
    drain(worker)
    push(redis, rows[:5], tsettings.stream_shards)  # later: the database refuses, merge path
    drain(worker)
    assert count(fleetlet) == 30
    assert int(redis.hget(stream.COUNTERS, "duplicate")) == 15


@SINGLE_AND_CLUSTER
def test_a_replayed_batch_after_a_crash_inserts_nothing_twice(fleetlet, redis, tsettings):
    """Commit, then die before XACK: the restarted worker takes its pending entries again."""
    rows = rows_for(fleetlet, 1, 60)
    push(redis, rows, tsettings.stream_shards)
    crashed = make_worker(fleetlet, redis, tsettings)
    entries = crashed._read()
    decoded = [r for _, _, f in entries for r in entry_rows(f)]
    crashed._store(in_order(FixBatch.from_rows(decoded))[0], [])
    assert count(fleetlet) == 60
    assert pending(redis, tsettings.stream_shards) == len(entries)
    restarted = make_worker(fleetlet, redis, tsettings)
    drain(restarted)
    assert count(fleetlet) == 60
    assert pending(redis, tsettings.stream_shards) == 0


def test_partitions_are_made_for_blind_area_fixes_in_the_window_and_never_outside(
    fleetlet, redis, tsettings
):
    """A blind-area re-send across a month's end, 20 days late, is stored in both months; fixes
    dated 1970, or a month before the window opens, are dropped and counted, and make no
    partition (should one reach the stream past the gateways)."""
    month_end = datetime(2025, 6, 30, 23, 59, tzinfo=UTC)
    worker = IngestWorker(
        engine=fleetlet.engine,
        redis=redis,
        settings=tsettings,
        block_ms=50,
        clock=lambda: (month_end + timedelta(days=20)).timestamp(),
    )
    push(redis, rows_for(fleetlet, 0, 10, start=month_end), tsettings.stream_shards)
    push(redis, rows_for(fleetlet, 1, 10, start=datetime(1970, 1, 1, tzinfo=UTC)), 4)
    push(redis, rows_for(fleetlet, 2, 10, start=month_end - timedelta(days=40)), 4)
    drain(worker)
    assert count(fleetlet) == 10
    assert {"position_p202506", "position_p202507"} <= partitions(fleetlet)
    assert not {"position_p197001", "position_p202505"} & partitions(fleetlet)
    assert int(redis.hget(stream.COUNTERS, "dropped_too_old")) == 20
    with fleetlet.engine.connect() as sa_conn:
        conn = sa_conn.connection.driver_connection
        with pytest.raises(ValueError, match="outside the allowed time window"):
            worker._ensure_partitions(conn, np.array([0]))  # type: ignore[arg-type]


def test_a_late_fix_for_a_month_archived_meanwhile_is_stored(fleetlet, redis, tsettings, tmp_path):
    """The worker knows June's partition; June is archived (the partition dropped); a blind-area
    re-send for June then makes the partition anew instead of failing the batch, and the reader
    returns the archived fixes and the late one together."""
    from telematics import archive, tracks

    june = datetime(2025, 6, 20, 8, tzinfo=UTC)
    worker = make_worker(
        fleetlet, redis, tsettings, clock=lambda: (june + timedelta(days=12)).timestamp()
    )
    push(redis, rows_for(fleetlet, 0, 10, start=june), tsettings.stream_shards)
    drain(worker)
    assert "position_p202506" in partitions(fleetlet)
    store = archive.Store.open(str(tmp_path / "archive"))
    archive.archive_month(fleetlet.engine, store, datetime(2025, 6, 1).date())
    assert "position_p202506" not in partitions(fleetlet)

    push(redis, rows_for(fleetlet, 0, 12, start=june)[10:], tsettings.stream_shards)
    drain(worker)

    assert "position_p202506" in partitions(fleetlet)
    assert pending(redis, tsettings.stream_shards) == 0
    vehicle = fleetlet.targets[0].vehicle_id
    with fleetlet.engine.connect() as conn:
        found = tracks.fixes(conn, vehicle, june, june + timedelta(days=1))
    assert len(found) == 12
    owner = create_engine(fleetlet.settings.owner_database)
    with owner.begin() as conn:
        conn.execute(text("DELETE FROM archive_partition"))
    owner.dispose()


@SINGLE_AND_CLUSTER
def test_a_broken_entry_is_counted_and_acknowledged(fleetlet, redis, tsettings):
    worker = make_worker(fleetlet, redis, tsettings)
    redis.xadd(stream.stream_key(0), {"p": b"{not json"})
    redis.xadd(stream.stream_key(0), {"q": b"[]"})
    push(redis, rows_for(fleetlet, 0, 4), tsettings.stream_shards)
    drain(worker)
    assert count(fleetlet) == 4
    assert int(redis.hget(stream.COUNTERS, "broken_stream_entry")) == 2
    assert pending(redis, tsettings.stream_shards) == 0


@SINGLE_AND_CLUSTER
def test_worker_killed_mid_run_loses_and_duplicates_nothing(
    fleetlet, redis, redis_address, tsettings
):
    """SIGKILL a real worker process mid-run, restart it: every fix is stored exactly once."""
    shards = tsettings.stream_shards
    total = 0
    # The worker runs on the real clock: its fixes are from the last few days.
    recent = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=3)
    for vehicle in range(3):
        for chunk in range(40):
            start = recent + timedelta(hours=chunk)
            rows = rows_for(fleetlet, vehicle, 250, start=start)
            push(redis, rows, shards)
            total += len(rows)
    env = {
        **os.environ,
        "FLEET_DATABASE_URL": fleetlet.settings.database_url,
        **redis_env(redis_address),
        "FLEET_STREAM_SHARDS": str(shards),
        "FLEET_INGEST_BATCH_ENTRIES": "5",
        "FLEET_INGEST_CLAIM_IDLE_S": "1",
    }

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "app.cli", "worker"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    first = start()
    deadline = time.monotonic() + 60
    while count(fleetlet) < total // 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.wait()
    stored_at_kill = count(fleetlet)
    assert 0 < stored_at_kill < total
    second = start()
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            backlog = sum(redis.xlen(stream.stream_key(s)) for s in range(shards))
            if backlog == 0 and pending(redis, shards) == 0:
                break
            time.sleep(0.1)
    finally:
        second.terminate()
        second.wait(timeout=10)
    assert count(fleetlet) == total
    assert (
        count(
            fleetlet,
            "SELECT count(*) FROM (SELECT DISTINCT vehicle_id, fix_time,"
            " device_id FROM position) d",
        )
        == total
    )


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    payloads=st.lists(
        st.one_of(
            st.binary(max_size=60),
            st.recursive(
                st.none() | st.integers() | st.floats() | st.text(max_size=5),
                lambda c: st.lists(c, max_size=16),
                max_leaves=40,
            ).map(lambda v: json.dumps(v).encode()),
        ),
        min_size=1,
        max_size=5,
    )
)
@example(payloads=[json.dumps([["x"] * 16, [None] * 16, [1] * 15 + [[]]]).encode()])
@example(
    payloads=[
        json.dumps(
            [[1, 1, 1, 0, 0, None, None, 1e300, None, None, None, None, None, 0, 0, None]]
        ).encode()
    ]
)
@example(
    payloads=[
        json.dumps(
            [[1, 1, 1, 0, 0, None, None, None, None, None, None, None, None, 0, 0, "{not json"]]
        ).encode()
    ]
)
def test_random_stream_entries_never_crash_the_worker(fleetlet, redis, tsettings, payloads):
    """Whatever lands in the stream, the worker counts it and moves on; nothing stays pending."""
    worker = make_worker(fleetlet, redis, tsettings)
    for payload in payloads:
        redis.xadd(stream.stream_key(0), {"p": payload})
    push(redis, rows_for(fleetlet, 0, 2), tsettings.stream_shards)
    drain(worker)
    assert pending(redis, tsettings.stream_shards) == 0
    assert_the_good_fix_is_stored(fleetlet)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=8),
    cut=st.integers(0, 200),
    text=st.binary(max_size=12) | st.just(b'{"sat":7}') | st.just(b"\xff\xfe"),
    whole=st.booleans(),
)
def test_damaged_binary_entries_never_crash_the_worker(
    fleetlet, redis, tsettings, flips, cut, text, whole
):
    """A binary entry with flipped bytes, cut short, or with attribute texts that are not JSON
    or not UTF-8: counted (the entry, or its fixes) and acknowledged; the fixes after it are
    stored."""
    worker = make_worker(fleetlet, redis, tsettings)
    rows = rows_for(fleetlet, 1, 3, start=datetime(2026, 11, 19, tzinfo=UTC))
    rows[1][stream.R_ATTRIBUTES] = "x" * len(text)
    fields = stream.entry(rows)
    records = bytearray(fields[b"f"])
    for at, value in flips:
        records[at % len(records)] = value
    if not whole:
        records = records[: len(records) - cut % len(records)]
    redis.xadd(
        stream.stream_key(0),
        {b"f": bytes(records), b"a": fields.get(b"a", b"")[: -len(text) or None] + text},
    )
    push(redis, rows_for(fleetlet, 0, 2), tsettings.stream_shards)
    drain(worker)
    assert pending(redis, tsettings.stream_shards) == 0
    assert_the_good_fix_is_stored(fleetlet)


def assert_the_good_fix_is_stored(fleetlet: Fleetlet) -> None:
    """The well-formed fix pushed after the damaged entries is stored, once."""
    assert (
        count(fleetlet, "SELECT count(*) FROM position WHERE fix_time = '2026-11-20T01:00:00Z'")
        == 1
    )


def test_stream_rows_round_trip_and_what_orjson_refuses_still_encodes():
    row = [1, 2, 3, 1_700_000_000_000, 1_700_000_000_001, 30.2, 120.123456, 42.5, 90.0, None,
           True, 1000.1, None, 2**31 + 5, 0, '{"sat":12,"note":"维修"}']  # fmt: skip
    assert stream.decode(stream.encode([row])) == [row]
    # An OsmAnd client may send a number no 64-bit integer holds; it is stored, not refused.
    assert stream.decode(stream.encode([[10**30]])) == [[1e30]]


def test_the_position_tap_hands_every_stored_fix_to_the_forwarder(fleetlet, redis, tsettings):
    worker = make_worker(fleetlet, redis, tsettings, observers=[PositionTap(maxlen=1000)])
    rows = rows_for(fleetlet, 0, 30) + rows_for(fleetlet, 1, 20)
    push(redis, rows, tsettings.stream_shards)
    drain(worker)
    tapped = [
        np.frombuffer(fields[b"f"], dtype=stream.RECORD)
        for _, fields in redis.xrange(outbound_stream.STREAM)
    ]
    fixes = np.concatenate(tapped)
    assert len(fixes) == 50
    assert sorted(zip(fixes["vehicle"].tolist(), fixes["fix_ms"].tolist(), strict=True)) == sorted(
        (r[stream.R_VEHICLE], r[stream.R_FIX_MS]) for r in rows
    )
