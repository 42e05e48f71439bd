"""Positions forwarded from the stream, not the outbox: the worker's tap hands each stored batch
to `fleet forward`, which sends every fix to the sinks that take positions, acknowledges an
entry only once the sink acknowledged all of it, loses nothing while a sink is down, and keeps
the lag from the gateway's receipt to the sink's acknowledgement."""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from fleet.models import Integration, SinkKind
from fleet.redis_client import RedisClient
from fleet.settings import Settings
from telematics import outbound
from telematics.batch import FixBatch
from tests.factories import add_vehicle
from tests.support import free_port
from tests.test_forwarding import MQTT, Subscriber

T0_MS = 1_780_000_000_000  # 2026-05-28, a fixed moment: no test reads the day it runs


def row(vehicle: int, unit: int, n: int, lat: float | None = 30.25) -> list[Any]:
    """A stream row of the vehicle's n-th fix, 5 s apart, received 2 s after it was taken."""
    fix_ms = T0_MS + n * 5000
    lon = 120.2 if lat is not None else None
    received_ms = fix_ms + 2000
    head = [vehicle, 1, unit, fix_ms, received_ms, lat, lon, 40.0 + n, 90.0, None, 1]
    return [*head, None, None, 0, 0, None]


def tap(redis: RedisClient, rows: list[list[Any]]) -> None:
    """The worker's tap on a stored batch of these rows."""
    positions = outbound.PositionTap(maxlen=1000)
    pending = positions.evaluate(FixBatch.from_rows(rows), np.array([0]))
    with redis.pipeline(transaction=False) as pipe:
        positions.after_commit(pipe, pending)
        pipe.execute()


def positions_sink(db: Session, url: str, **fields: Any) -> Integration:
    row_ = Integration(name=f"positions-{url}", kind=SinkKind.MQTT, url=url, options={}, **fields)
    db.add(row_)
    db.commit()
    return row_


def test_each_fix_reaches_the_sink_once_its_entry_is_acknowledged(
    db: Session, redis: RedisClient, make_unit, settings: Settings
):
    unit = make_unit("PO-A")
    vehicle = add_vehicle(db, unit, "浙A·E7001")
    integration = positions_sink(db, MQTT, kinds=["positions"])
    forwarder = outbound.PositionForwarder(redis, settings, clock_ms=lambda: T0_MS + 20_000)
    subscriber = Subscriber("fleet/PO-A/positions")
    try:
        assert forwarder.step(db) == 0  # its consumer group starts here
        tap(redis, [row(vehicle.id, unit.id, 0), row(vehicle.id, unit.id, 1, lat=None)])
        tap(redis, [row(vehicle.id, unit.id, 2)])
        assert forwarder.step(db) == 2
        got = subscriber.take(2)
    finally:
        subscriber.close()
        forwarder.close()
    bodies = [body for _, body in got]
    assert [b["kind"] for b in bodies] == ["positions", "positions"]
    assert [b["object"]["fix_time"] for b in bodies] == [
        "2026-05-28T20:26:40Z",
        "2026-05-28T20:26:50Z",
    ]
    assert bodies[0]["object"]["vehicle_id"] == vehicle.id
    assert bodies[0]["object"]["received_at"] == "2026-05-28T20:26:42Z"
    assert bodies[0]["unit_code"] == "PO-A"
    assert bodies[0]["id"].startswith("p-")
    group = f"sink:{integration.id}"
    assert redis.xpending(outbound.STREAM, group)["pending"] == 0
    stats = redis.hgetall(outbound.STATS)
    assert stats[f"{integration.id}:sent".encode()] == b"2"
    # The last entry's fix was received at T0 + 12 s and acknowledged at T0 + 20 s.
    assert int(stats[f"{integration.id}:lag_ms".encode()]) == 8000


def test_a_sink_down_loses_no_fix_and_gets_them_in_order_once_back(
    db: Session, redis: RedisClient, make_unit, settings: Settings
):
    unit = make_unit("PO-B")
    vehicle = add_vehicle(db, unit, "浙A·E7002")
    integration = positions_sink(db, f"mqtt://127.0.0.1:{free_port()}")  # every kind
    quick = settings.model_copy(update={"forward_retry_min_s": 0.0})
    forwarder = outbound.PositionForwarder(redis, quick)
    subscriber = Subscriber("fleet/PO-B/positions")
    try:
        forwarder.step(db)
        for n in range(3):
            tap(redis, [row(vehicle.id, unit.id, 2 * n), row(vehicle.id, unit.id, 2 * n + 1)])
        assert forwarder.step(db) == 0
        assert forwarder.step(db) == 0
        group = f"sink:{integration.id}"
        assert redis.xpending(outbound.STREAM, group)["pending"] == 3  # read, none acknowledged
        assert b"cannot connect" in redis.hget(outbound.STATS, f"{integration.id}:last_error")
        integration.url = MQTT  # the broker is back
        db.commit()
        while forwarder.step(db):
            pass
        got = subscriber.take(6)
    finally:
        subscriber.close()
        forwarder.close()
    times = [body["object"]["fix_time"] for _, body in got]
    assert times == sorted(times)
    assert len(set(times)) == 6
    assert redis.xpending(outbound.STREAM, group)["pending"] == 0


def test_a_sink_not_taking_positions_gets_none(
    db: Session, redis: RedisClient, make_unit, settings: Settings
):
    unit = make_unit("PO-C")
    vehicle = add_vehicle(db, unit, "浙A·E7003")
    positions_sink(db, MQTT, kinds=["alerts"])
    forwarder = outbound.PositionForwarder(redis, settings)
    forwarder.step(db)
    tap(redis, [row(vehicle.id, unit.id, 0)])
    assert forwarder.step(db) == 0
    assert not redis.exists(outbound.STATS)


def test_a_sink_of_a_subtree_gets_its_units_fixes_in_order_from_a_large_batch(
    db: Session, redis: RedisClient, make_unit, settings: Settings
):
    inside = make_unit("PO-IN")
    outside = make_unit("PO-OUT")
    mine = add_vehicle(db, inside, "浙A·E7004")
    other = add_vehicle(db, outside, "浙A·E7005")
    integration = positions_sink(db, MQTT, unit_id=inside.id, kinds=["positions"])
    forwarder = outbound.PositionForwarder(redis, settings)
    subscriber = Subscriber("fleet/+/positions")
    try:
        forwarder.step(db)
        rows = []
        for n in range(150):
            rows += [row(mine.id, inside.id, n), row(other.id, outside.id, n)]
        tap(redis, rows)
        assert forwarder.step(db) == 150
        got = subscriber.take(150)
        assert subscriber.messages.empty()
    finally:
        subscriber.close()
        forwarder.close()
    assert {topic for topic, _ in got} == {"fleet/PO-IN/positions"}
    times = [body["object"]["fix_time"] for _, body in got]
    assert times == sorted(times)
    assert len(set(times)) == 150
    assert redis.hget(outbound.STATS, f"{integration.id}:sent") == b"150"


def test_the_group_of_a_deleted_sink_is_dropped(
    db: Session, redis: RedisClient, make_unit, settings: Settings
):
    kept = positions_sink(db, MQTT, kinds=["positions"])
    redis.xgroup_create(outbound.STREAM, "sink:999999", id="$", mkstream=True)
    redis.hset(outbound.STATS, mapping={"999999:sent": 5, f"{kept.id}:sent": 7})
    forwarder = outbound.PositionForwarder(redis, settings)
    try:
        forwarder.step(db)
    finally:
        forwarder.close()
    names = {g["name"] for g in redis.xinfo_groups(outbound.STREAM)}
    assert names == {f"sink:{kept.id}".encode()}
    assert redis.hgetall(outbound.STATS) == {f"{kept.id}:sent".encode(): b"7"}
