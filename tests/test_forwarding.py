"""`fleet forward` against real brokers: each sink's test reads back what the broker delivered
(subscribed before anything is sent), a sink that is down loses nothing and delivers in order
once it is back, a webhook answering 500 gets every event afterwards, and a forwarder killed
between sending and marking loses nothing (the receiver sees the same id twice)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import paho.mqtt.client as mqtt
import pika
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from fleet import migrate, registry
from fleet.auth import Actor
from fleet.db import make_engine, utcnow
from fleet.forwarding import Forwarder, prune
from fleet.models import (
    DeadLetter,
    Integration,
    NotifierCursor,
    OrgUnit,
    OutboxEvent,
    SinkKind,
)
from fleet.schemas import VehicleUpdate
from fleet.settings import Settings
from tests.factories import add_vehicle
from tests.support import free_port, wait_until

MQTT = "mqtt://127.0.0.1:1883"
AMQP = "amqp://guest:guest@127.0.0.1:5672/%2F"
NATS = "nats://127.0.0.1:4222"
T0 = datetime(2026, 12, 5, 2, 0, tzinfo=UTC)


class Clock:
    """The forwarder's clock, moved by the test (back-off waits are read from it)."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def newest(db: Session) -> int:
    return db.scalar(select(func.max(OutboxEvent.id))) or 0


def sink(db: Session, kind: SinkKind, url: str, **fields: Any) -> Integration:
    """An integration that starts after the newest event, as one added through the API does."""
    row = Integration(
        name=f"{kind.value}-{url}", kind=kind, url=url, cursor=newest(db), options={}, **fields
    )
    db.add(row)
    db.commit()
    return row


def changes(db: Session, unit: OrgUnit, plate: str, seats: tuple[int, ...]) -> list[int]:
    """A vehicle made and changed (one event each); returns the events' ids in order."""
    mark = newest(db)
    vehicle = add_vehicle(db, unit, plate)
    for n in seats:
        registry.update_vehicle(
            session=db,
            actor=Actor.system(unit),
            vehicle_id=vehicle.id,
            data=VehicleUpdate(seats=n),
            now=T0,
        )
    db.commit()
    return list(db.scalars(select(OutboxEvent.id).where(OutboxEvent.id > mark).order_by("id")))


@pytest.fixture
def forwarder(settings: Settings) -> Iterator[tuple[Forwarder, Clock]]:
    clock = Clock()
    quick = settings.model_copy(
        update={"forward_retry_min_s": 2.0, "forward_timeout_s": 3.0, "webhook_max_attempts": 3}
    )
    forwarder = Forwarder(quick, clock=clock)
    yield forwarder, clock
    forwarder.close()


class Subscriber:
    """An MQTT subscriber that collects every message on `topic`."""

    def __init__(self, topic: str) -> None:
        self.messages: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
        subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self.client.on_message = lambda c, u, m: self.messages.put((m.topic, json.loads(m.payload)))
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.connect("127.0.0.1", 1883)
        self.client.loop_start()
        self.client.subscribe(topic, qos=1)
        assert subscribed.wait(10), "the broker did not confirm the subscription"

    def take(self, n: int) -> list[tuple[str, dict[str, Any]]]:
        return [self.messages.get(timeout=10) for _ in range(n)]

    def take_until(self, ids: list[int]) -> list[tuple[str, dict[str, Any]]]:
        """Messages until every event of `ids` has come, repeats included (at least once: an
        event whose acknowledgement was lost is sent again)."""
        got: list[tuple[str, dict[str, Any]]] = []
        missing = set(ids)
        while missing:
            got.append(self.messages.get(timeout=10))
            missing.discard(got[-1][1]["id"])
        return got

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_mqtt_delivers_each_event_on_its_units_topic(db: Session, make_unit, forwarder):
    run, _ = forwarder
    unit = make_unit("FW-MQ1")
    subscriber = Subscriber("fleet/FW-MQ1/#")
    try:
        integration = sink(db, SinkKind.MQTT, MQTT)
        ids = changes(db, unit, "浙A·C6001", (5, 6))
        assert run.step(db) == 3
        got = subscriber.take(3)
    finally:
        subscriber.close()
    assert [topic for topic, _ in got] == ["fleet/FW-MQ1/registry"] * 3
    assert [body["id"] for _, body in got] == ids
    first = got[0][1]
    assert first["version"] == 1
    assert (first["kind"], first["unit_code"]) == ("registry", "FW-MQ1")
    assert first["object"]["type"] == "vehicle"
    assert first["object"]["action"] == "create"
    assert [body["object"]["state"]["seats"] for _, body in got] == [4, 5, 6]
    db.refresh(integration)
    assert (integration.cursor, integration.sent, integration.failed) == (ids[-1], 3, 0)


def test_fleet_mqtt_url_alone_sends_every_event_from_then_on(
    db: Session, make_unit, settings: Settings
):
    unit = make_unit("FW-ENV")
    before = changes(db, unit, "浙A·C6010", ())
    forwarder = Forwarder(settings.model_copy(update={"mqtt_url": MQTT}))
    subscriber = Subscriber("fleet/FW-ENV/#")
    try:
        forwarder.step(db)  # sets the sink up: it starts after the newest event
        ids = changes(db, unit, "浙A·C6011", (5,))
        assert forwarder.step(db) == 2
        got = subscriber.take(2)
        assert subscriber.messages.empty()
    finally:
        subscriber.close()
        forwarder.close()
    assert [body["id"] for _, body in got] == ids
    assert before[0] < ids[0]
    [row] = db.scalars(select(Integration).where(Integration.from_settings))
    assert (row.name, row.url, row.enabled, row.unit_id, row.kinds) == (
        "FLEET_MQTT_URL",
        MQTT,
        True,
        None,
        None,
    )
    Forwarder(settings).step(db)  # the setting is gone: so is the sink
    db.refresh(row)
    assert not row.enabled


def test_old_events_go_once_every_enabled_sink_has_them(db: Session, make_unit):
    unit = make_unit("FW-PR")
    stale = sink(db, SinkKind.WEBHOOK, "http://127.0.0.1:9/x", enabled=False)
    behind = sink(db, SinkKind.MQTT, MQTT)
    ids = changes(db, unit, "浙A·C6012", (5, 6))
    behind.cursor = ids[0]
    db.execute(update(NotifierCursor).values(cursor=ids[-1]))  # the notifier has them all
    db.commit()
    later = utcnow() + timedelta(days=1)
    assert prune(db, before=later) >= 1
    left = db.scalars(
        select(OutboxEvent.id).where(OutboxEvent.id >= ids[0]).order_by(OutboxEvent.id)
    ).all()
    assert left == ids[1:]  # the sink that is behind still gets them; the disabled one waits not
    assert prune(db, before=utcnow() - timedelta(days=1)) == 0  # none so old
    assert stale.cursor < ids[0]


def test_a_sink_filtered_to_a_subtree_and_kind_gets_only_those(db: Session, make_unit, forwarder):
    run, _ = forwarder
    inside = make_unit("FW-IN")
    below = make_unit("FW-IN2", parent=inside)
    outside = make_unit("FW-OUT")
    subscriber = Subscriber("fleet/+/registry")
    try:
        integration = sink(db, SinkKind.MQTT, MQTT, unit_id=inside.id, kinds=["registry"])
        ids = changes(db, below, "浙A·C6002", ())
        changes(db, outside, "浙A·C6003", ())
        run.step(db)
        got = subscriber.take(1)
        assert subscriber.messages.empty()
    finally:
        subscriber.close()
    assert [(body["id"], body["unit_code"]) for _, body in got] == [(ids[0], "FW-IN2")]
    # Past the events it does not take as well: nothing to scan again, nothing held back.
    db.refresh(integration)
    assert (integration.cursor, integration.sent) == (newest(db), 1)


def test_mqtt_down_loses_nothing_and_delivers_in_order_once_back(db: Session, make_unit, forwarder):
    run, clock = forwarder
    unit = make_unit("FW-MQ2")
    subscriber = Subscriber("fleet/FW-MQ2/#")
    try:
        integration = sink(db, SinkKind.MQTT, f"mqtt://127.0.0.1:{free_port()}")
        ids = changes(db, unit, "浙A·C6004", (5, 6, 7))
        start = integration.cursor
        assert run.step(db) == 0
        db.refresh(integration)
        assert (integration.cursor, integration.attempts) == (start, 1)
        assert integration.retry_at == T0 + timedelta(seconds=2)
        assert "cannot connect" in (integration.last_error or "")
        clock.now = T0 + timedelta(seconds=1)  # not yet due: no attempt
        assert run.step(db) == 0
        db.refresh(integration)
        assert integration.attempts == 1
        clock.now = T0 + timedelta(seconds=2)
        assert run.step(db) == 0
        db.refresh(integration)
        assert integration.attempts == 2
        assert integration.retry_at == clock.now + timedelta(seconds=4)  # doubled
        integration.url = MQTT  # the broker is back
        db.commit()
        clock.now += timedelta(seconds=4)
        assert run.step(db) == 4
        got = subscriber.take(4)
    finally:
        subscriber.close()
    assert [body["id"] for _, body in got] == ids
    assert [body["object"]["state"]["seats"] for _, body in got] == [4, 5, 6, 7]
    db.refresh(integration)
    assert (integration.cursor, integration.sent, integration.failed) == (ids[-1], 4, 2)
    assert integration.attempts == 0


class Receiver:
    """A webhook receiver: answers `fail_first` requests with 500, then 200; keeps every body
    with its headers. `on_request` runs before it answers."""

    def __init__(self, secret: str, fail_first: int = 0) -> None:
        self.secret = secret.encode()
        self.fail_first = fail_first
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.on_request: Callable[[int], None] = lambda n: None
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append((dict(self.headers), body))
                receiver.on_request(len(receiver.received))
                ok = len(receiver.received) > receiver.fail_first
                self.send_response(200 if ok else 500)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def verified(self, headers: dict[str, str], body: bytes) -> bool:
        stamp = headers["X-Fleet-Timestamp"].encode()
        expected = hmac.new(self.secret, stamp + b"." + body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(headers["X-Fleet-Signature"], f"sha256={expected}")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_webhook_answering_500_for_a_while_gets_every_event_afterwards(
    db: Session, make_unit, forwarder
):
    run, clock = forwarder
    unit = make_unit("FW-WH1")
    receiver = Receiver("s3cret", fail_first=2)
    try:
        integration = sink(db, SinkKind.WEBHOOK, receiver.url, secret="s3cret")
        ids = changes(db, unit, "浙A·C6005", (5,))
        for _ in range(2):
            assert run.step(db) == 0
            clock.now += timedelta(minutes=10)
        assert run.step(db) == 2
    finally:
        receiver.close()
    assert all(receiver.verified(h, b) for h, b in receiver.received)
    delivered = [json.loads(b)["id"] for _, b in receiver.received]
    assert delivered == [ids[0], ids[0], ids[0], ids[1]]
    db.refresh(integration)
    assert (integration.cursor, integration.sent, integration.failed) == (ids[-1], 2, 2)
    assert integration.last_error == "webhook answered 500"


def test_a_webhook_refusing_an_event_too_often_dead_letters_it(db: Session, make_unit, forwarder):
    run, clock = forwarder
    unit = make_unit("FW-WH2")
    receiver = Receiver("k", fail_first=3)  # webhook_max_attempts is 3
    try:
        integration = sink(db, SinkKind.WEBHOOK, receiver.url, secret="k")
        ids = changes(db, unit, "浙A·C6006", (5,))
        for _ in range(3):
            run.step(db)
            clock.now += timedelta(minutes=10)
        db.refresh(integration)
        assert (integration.cursor, integration.dead) == (ids[0], 1)
        assert run.step(db) == 1
    finally:
        receiver.close()
    [letter] = db.scalars(select(DeadLetter).where(DeadLetter.integration_id == integration.id))
    assert (letter.event_id, letter.attempts) == (ids[0], 3)
    assert [json.loads(b)["id"] for _, b in receiver.received] == [ids[0]] * 3 + [ids[1]]


def test_a_signature_with_the_wrong_secret_does_not_verify():
    receiver = Receiver("right")
    try:
        stamp = "1780000000"
        body = b'{"id":1}'
        wrong = hmac.new(b"wrong", stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
        headers = {"X-Fleet-Timestamp": stamp, "X-Fleet-Signature": f"sha256={wrong}"}
        assert not receiver.verified(headers, body)
    finally:
        receiver.close()


def test_amqp_publishes_to_a_topic_exchange_with_confirms(db: Session, make_unit, forwarder):
    run, _ = forwarder
    unit = make_unit("FW-AM")
    connection = pika.BlockingConnection(pika.URLParameters(AMQP))
    try:
        channel = connection.channel()
        channel.exchange_declare("fleet-test", exchange_type="topic", durable=True)
        queue_name = channel.queue_declare("", exclusive=True).method.queue
        channel.queue_bind(queue_name, "fleet-test", routing_key="FW-AM.#")
        integration = sink(db, SinkKind.AMQP, AMQP)
        integration.options = {"exchange": "fleet-test"}
        db.commit()
        ids = changes(db, unit, "浙A·C6007", (5,))
        assert run.step(db) == 2
        got = []
        for _ in range(2):
            method, properties, body = channel.basic_get(queue_name, auto_ack=True)
            assert method is not None, "the broker holds fewer messages than were confirmed"
            got.append((method.routing_key, properties.message_id, json.loads(body)))
    finally:
        connection.close()
    assert [(key, mid, body["id"]) for key, mid, body in got] == [
        ("FW-AM.registry", str(ids[0]), ids[0]),
        ("FW-AM.registry", str(ids[1]), ids[1]),
    ]


def test_nats_jetstream_stores_each_event_on_its_subject(db: Session, make_unit, forwarder):
    import nats

    run, _ = forwarder
    unit = make_unit("FW-NA")
    stream = f"FLEET_TEST_{os.getpid()}"

    async def create() -> None:
        nc = await nats.connect(NATS)
        js = nc.jetstream()
        await js.add_stream(name=stream, subjects=["fleet.FW-NA.>"])
        await nc.close()

    async def read(n: int) -> list[tuple[str, dict[str, Any]]]:
        nc = await nats.connect(NATS)
        try:
            subscription = await nc.jetstream().pull_subscribe("fleet.FW-NA.>", stream=stream)
            messages = await subscription.fetch(n, timeout=10)
            return [(m.subject, json.loads(m.data)) for m in messages]
        finally:
            await nc.close()

    async def drop() -> None:
        nc = await nats.connect(NATS)
        await nc.jetstream().delete_stream(stream)
        await nc.close()

    asyncio.run(create())
    try:
        sink(db, SinkKind.NATS, NATS)
        ids = changes(db, unit, "浙A·C6008", (5,))
        assert run.step(db) == 2
        got = asyncio.run(read(2))
    finally:
        asyncio.run(drop())
    assert got == [
        ("fleet.FW-NA.registry", got[0][1]),
        ("fleet.FW-NA.registry", got[1][1]),
    ]
    assert [body["id"] for _, body in got] == ids


def test_a_forwarder_killed_between_sending_and_marking_loses_nothing(scratch_settings: Settings):
    """The receiver kills the forwarder (SIGKILL) when the second event arrives, before it
    answers: the first was acknowledged and the second sent, neither marked (a batch is marked
    at its end). The next forwarder sends them again (the same ids, so a receiver drops the
    copies) and every later one."""
    migrate.upgrade(scratch_settings)
    engine = make_engine(scratch_settings)
    receiver = Receiver("k")
    env = {
        **os.environ,
        "FLEET_DATABASE_URL": scratch_settings.database_url,
        "FLEET_DATABASE_OWNER": scratch_settings.database_owner,
        "FLEET_REDIS_URL": scratch_settings.redis_url,
        "FLEET_FORWARD_POLL_S": "0.1",
        "FLEET_MQTT_URL": "",
    }
    try:
        with Session(engine, expire_on_commit=False) as session:
            root = registry.create_root_unit(session=session, code="FW-KILL", name="转发测试")
            session.commit()
            sink(session, SinkKind.WEBHOOK, receiver.url, secret="k")
            ids = changes(session, root, "浙A·C6009", (5, 6, 7))
        first = subprocess.Popen([sys.executable, "-m", "app.cli", "forward"], env=env)
        killed = threading.Event()

        def kill_on_second(n: int) -> None:
            if n == 2:
                first.send_signal(signal.SIGKILL)
                first.wait()
                killed.set()

        receiver.on_request = kill_on_second
        assert first.wait(timeout=60) == -signal.SIGKILL
        assert killed.wait(10)
        receiver.on_request = lambda n: None
        second = subprocess.Popen([sys.executable, "-m", "app.cli", "forward"], env=env)
        try:
            with Session(engine) as session:
                wait_until(lambda: _cursor(session) == ids[-1], "every event marked", timeout=60)
        finally:
            second.terminate()
            second.wait(timeout=20)
    finally:
        receiver.close()
        engine.dispose()
    delivered = [json.loads(b)["id"] for _, b in receiver.received]
    # The batch the first forwarder never marked is sent again from its start, then the rest:
    # nothing lost, each copy the same bytes as the first, the order held.
    assert delivered == [ids[0], ids[1], *ids]
    by_id: dict[int, set[bytes]] = {}
    for _, body in receiver.received:
        by_id.setdefault(json.loads(body)["id"], set()).add(body)
    assert all(len(copies) == 1 for copies in by_id.values())


class Relay:
    """A TCP relay in front of a broker, which the test takes down and brings back: the sink's
    URL stays the same, the broker behind it goes away."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self.server: socket.socket | None = None
        self.links: list[socket.socket] = []

    def up(self) -> None:
        self.server = socket.create_server(("127.0.0.1", self.port), reuse_port=False)
        threading.Thread(target=self._accept, args=(self.server,), daemon=True).start()

    def down(self) -> None:
        assert self.server is not None
        # A listening socket closed while a thread waits in accept() keeps accepting on Linux;
        # shutting it down first ends the wait and the listening.
        with contextlib.suppress(OSError):
            self.server.shutdown(socket.SHUT_RDWR)
        self.server.close()
        for link in self.links:
            with contextlib.suppress(OSError):
                link.shutdown(socket.SHUT_RDWR)
            link.close()
        self.links.clear()

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self.links += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)


def _cursor(session: Session) -> int | None:
    cursor = session.scalar(select(Integration.cursor))
    session.rollback()
    return cursor


@pytest.mark.slow
def test_a_broker_down_for_30_s_loses_nothing_and_delivers_in_order(scratch_settings: Settings):
    """The real forwarder loop on the real clock: the broker goes away for 30 s while changes
    go on; once it is back every event arrives, each vehicle's in order."""
    migrate.upgrade(scratch_settings)
    engine = make_engine(scratch_settings)
    relay = Relay(("127.0.0.1", 1883))
    relay.up()
    subscriber = Subscriber("fleet/FW-OUT30/#")
    settings = scratch_settings.model_copy(
        update={"forward_poll_s": 0.1, "forward_retry_min_s": 0.5, "forward_retry_max_s": 4.0}
    )
    stop = threading.Event()
    loop = threading.Thread(target=Forwarder(settings).run, args=(engine, stop), daemon=True)
    try:
        with Session(engine, expire_on_commit=False) as session:
            root = registry.create_root_unit(session=session, code="FW-OUT30", name="断线测试")
            session.commit()
            sink(session, SinkKind.MQTT, f"mqtt://127.0.0.1:{relay.port}")
            loop.start()
            ids = changes(session, root, "浙A·C6020", (5,))
            early = subscriber.take(2)
            wait_until(lambda: _cursor(session) == ids[1], "the first two marked", timeout=30)
            relay.down()
            for n in range(6):  # changes while the broker is away, two vehicles interleaved
                ids += changes(session, root, f"浙A·C603{n}", (5, 6))
            stop.wait(30)
            assert _cursor(session) == ids[1], "nothing sent in the outage may be marked delivered"
            relay.up()
            late = subscriber.take_until(ids[2:])
            stop.set()
            loop.join(timeout=20)
            failed = session.scalar(select(Integration.failed))
    finally:
        stop.set()
        loop.join(timeout=20)
        subscriber.close()
        relay.down()
        engine.dispose()
    delivered = [body["id"] for _, body in early + late]
    # Every event, first seen in order. At least once: an event whose acknowledgement did not
    # come back in time (a loaded machine) is sent again, so a repeat may follow.
    assert list(dict.fromkeys(delivered)) == ids
    assert failed is not None
    assert failed >= 1


def test_amqp_down_loses_nothing_and_delivers_in_order_once_back(db: Session, make_unit, forwarder):
    run, clock = forwarder
    unit = make_unit("FW-AM2")
    connection = pika.BlockingConnection(pika.URLParameters(AMQP))
    try:
        channel = connection.channel()
        channel.exchange_declare("fleet-test", exchange_type="topic", durable=True)
        queue_name = channel.queue_declare("", exclusive=True).method.queue
        channel.queue_bind(queue_name, "fleet-test", routing_key="FW-AM2.#")
        integration = sink(db, SinkKind.AMQP, f"amqp://guest:guest@127.0.0.1:{free_port()}/%2F")
        integration.options = {"exchange": "fleet-test"}
        db.commit()
        ids = changes(db, unit, "浙A·C6013", (5, 6))
        assert run.step(db) == 0
        db.refresh(integration)
        assert (integration.sent, integration.failed) == (0, 1)
        integration.url = AMQP
        db.commit()
        clock.now += timedelta(minutes=1)
        assert run.step(db) == 3
        got = []
        for _ in range(3):
            method, _, body = channel.basic_get(queue_name, auto_ack=True)
            assert method is not None
            got.append(json.loads(body)["id"])
    finally:
        connection.close()
    assert got == ids


def test_nats_down_loses_nothing_and_delivers_in_order_once_back(db: Session, make_unit, forwarder):
    import nats

    run, clock = forwarder
    unit = make_unit("FW-NA2")
    stream = f"FLEET_TEST_OUT_{os.getpid()}"

    async def create() -> None:
        nc = await nats.connect(NATS)
        await nc.jetstream().add_stream(name=stream, subjects=["fleet.FW-NA2.>"])
        await nc.close()

    async def read(n: int) -> list[int]:
        nc = await nats.connect(NATS)
        try:
            subscription = await nc.jetstream().pull_subscribe("fleet.FW-NA2.>", stream=stream)
            messages = await subscription.fetch(n, timeout=10)
            return [json.loads(m.data)["id"] for m in messages]
        finally:
            await nc.close()

    async def drop() -> None:
        nc = await nats.connect(NATS)
        await nc.jetstream().delete_stream(stream)
        await nc.close()

    asyncio.run(create())
    try:
        integration = sink(db, SinkKind.NATS, f"nats://127.0.0.1:{free_port()}")
        ids = changes(db, unit, "浙A·C6014", (5, 6))
        assert run.step(db) == 0
        db.refresh(integration)
        assert (integration.sent, integration.failed) == (0, 1)
        integration.url = NATS
        db.commit()
        clock.now += timedelta(minutes=1)
        assert run.step(db) == 3
        assert asyncio.run(read(3)) == ids
    finally:
        asyncio.run(drop())
