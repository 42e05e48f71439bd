"""`fleet forward`: the outbox's events delivered to each sink, at least once, in order.

Each sink (`integration`) has a cursor, the last event it acknowledged. The forwarder sends the
events after it one by one, each waiting for the sink's acknowledgement (an MQTT PUBACK, an AMQP
publisher confirm, a JetStream PubAck, a 2xx from a webhook), and moves the cursor only then, in
one commit per batch: a crash between sending and marking sends those events again (with the
same `id`, so the receiver can drop the copy), never loses one. A failure stops the sink at that
event until a retry, with back-off, gets it through, so each object's events arrive in order; a
webhook gives up on an event after FLEET_WEBHOOK_MAX_ATTEMPTS and dead-letters it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol
from urllib.parse import urlsplit

from sqlalchemy import Engine, delete, func, select, text, union_all
from sqlalchemy.orm import Session

from fleet import outbox
from fleet.db import utcnow
from fleet.models import (
    DeadLetter,
    Integration,
    NotifierCursor,
    OrgUnit,
    OutboxEvent,
    SinkKind,
)
from fleet.settings import Settings

log = logging.getLogger("fleet.forward")
SETTINGS_SINK = "FLEET_MQTT_URL"
# Per sink that takes positions (telematics/outbound.py): `{id}:sent`, `{id}:failed`,
# `{id}:trimmed`, `{id}:last_error`, `{id}:lag_ms`.
POSITION_STATS = "fleet:forward:positions:stats"
POSITION_STAT_FIELDS = ("sent", "failed", "trimmed", "lag_ms", "last_error")
_FORWARDER_LOCK = 0x0F1EE7_F0D  # one forwarder delivers at a time


class SinkError(Exception):
    """The sink did not acknowledge an event."""


Message = tuple[str, str, str, bytes]  # kind, unit code, message id, body


class Sink(Protocol):
    def send(self, kind: str, unit_code: str, message_id: str, body: bytes) -> None:
        """Returns once the sink has acknowledged the message; raises SinkError otherwise."""

    def close(self) -> None: ...


def send_all(sink: Sink, messages: Sequence[Message]) -> None:
    """Every message, in order, acknowledged; a sink that can have many in flight at once
    (`send_many`) gets them so, for the positions' volume."""
    many = getattr(sink, "send_many", None)
    if many is not None:
        many(messages)
        return
    for message in messages:
        sink.send(*message)


def _token(value: str) -> str:
    """A unit code as one level of a topic or subject (no separators, no wildcards)."""
    return "".join("_" if c in "/.+#*> " else c for c in value)


class MqttSink:
    """QoS 1: each event waits for the broker's PUBACK."""

    def __init__(self, url: str, timeout_s: float) -> None:
        import paho.mqtt.client as mqtt

        parts = urlsplit(url)
        self.timeout_s = timeout_s
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self.client.max_inflight_messages_set(100)
        self.client.max_queued_messages_set(0)  # unbounded: a batch is bounded by its caller
        if parts.username:
            self.client.username_pw_set(parts.username, parts.password)
        try:
            self.client.connect(parts.hostname or "127.0.0.1", parts.port or 1883)
        except OSError as error:
            raise SinkError(f"cannot connect to {parts.hostname}:{parts.port}: {error}") from None
        self.client.loop_start()

    def send(self, kind: str, unit_code: str, message_id: str, body: bytes) -> None:
        topic = f"fleet/{_token(unit_code)}/{kind}"
        try:
            info = self.client.publish(topic, body, qos=1)
            info.wait_for_publish(self.timeout_s)
        except (RuntimeError, ValueError, OSError) as error:
            raise SinkError(f"MQTT publish failed: {error}") from None
        if not info.is_published():
            raise SinkError("MQTT broker did not acknowledge in time")

    def send_many(self, messages: Sequence[Message]) -> None:
        """All published at once (paho keeps them in order, its in-flight window full), then
        every PUBACK awaited."""
        try:
            sent = [
                self.client.publish(f"fleet/{_token(code)}/{kind}", body, qos=1)
                for kind, code, _, body in messages
            ]
            deadline = time.monotonic() + self.timeout_s * max(1, len(sent) // 100)
            for info in sent:
                info.wait_for_publish(max(0.0, deadline - time.monotonic()))
                if not info.is_published():
                    raise SinkError("MQTT broker did not acknowledge in time")
        except (RuntimeError, ValueError, OSError) as error:
            raise SinkError(f"MQTT publish failed: {error}") from None

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class WebhookSink:
    """A POST of the event, signed: `X-Fleet-Signature: sha256=HMAC(secret, timestamp.body)`
    with the timestamp in `X-Fleet-Timestamp` (Unix seconds), so a receiver checks both that
    Fleet sent it and that it is fresh."""

    def __init__(self, url: str, secret: str | None, timeout_s: float) -> None:
        self.url = url
        self.secret = (secret or "").encode()
        self.timeout_s = timeout_s

    def send(self, kind: str, unit_code: str, message_id: str, body: bytes) -> None:
        stamp = str(int(time.time()))
        digest = hmac.new(self.secret, stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
        request = urllib.request.Request(  # noqa: S310 - an administrator's http(s) URL
            self.url,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "X-Fleet-Timestamp": stamp,
                "X-Fleet-Signature": f"sha256={digest}",
                "X-Fleet-Event-Id": message_id,
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as reply:  # noqa: S310
                reply.read()
        except urllib.error.HTTPError as error:
            raise SinkError(f"webhook answered {error.code}") from None
        except (OSError, ValueError) as error:
            raise SinkError(f"webhook unreachable: {error}") from None

    def close(self) -> None:
        pass


class AmqpSink:
    """A durable topic exchange (option `exchange`, default `fleet`), routing key
    `{unit_code}.{kind}`, persistent messages, publisher confirms."""

    def __init__(self, url: str, secret: str | None, options: dict[str, Any], timeout_s: float):
        import pika

        parameters = pika.URLParameters(url)
        if secret and parameters.credentials is not None:
            user = getattr(parameters.credentials, "username", "guest")
            parameters.credentials = pika.PlainCredentials(user, secret)
        parameters.blocked_connection_timeout = timeout_s
        parameters.socket_timeout = timeout_s
        self.exchange = str(options.get("exchange") or "fleet")
        try:
            self.connection = pika.BlockingConnection(parameters)
            self.channel = self.connection.channel()
            self.channel.exchange_declare(self.exchange, exchange_type="topic", durable=True)
            self.channel.confirm_delivery()
        except Exception as error:  # pika raises many unrelated types for one refusal
            raise SinkError(f"AMQP: {error!r}") from None
        self.properties = pika.BasicProperties

    def send(self, kind: str, unit_code: str, message_id: str, body: bytes) -> None:
        try:
            self.channel.basic_publish(
                self.exchange,
                f"{_token(unit_code)}.{kind}",
                body,
                self.properties(
                    content_type="application/json", delivery_mode=2, message_id=message_id
                ),
            )
        except Exception as error:  # a nack, a closed channel or connection
            raise SinkError(f"AMQP publish failed: {error!r}") from None

    def close(self) -> None:
        with contextlib.suppress(Exception):  # already gone
            self.connection.close()


class NatsSink:
    """JetStream: subject `fleet.{unit_code}.{kind}`, each publish awaiting its PubAck, with
    `Nats-Msg-Id` set to the event's id so JetStream drops a resent copy itself. With option
    `stream`, the stream is created (subjects `fleet.>`) when it does not exist."""

    def __init__(self, url: str, options: dict[str, Any], timeout_s: float) -> None:
        import nats

        self.timeout_s = timeout_s
        self.loop = asyncio.new_event_loop()
        try:
            # Bounded from outside: nats-py may keep trying a server that refuses.
            self.nc = self.loop.run_until_complete(
                asyncio.wait_for(
                    nats.connect(
                        url,
                        connect_timeout=timeout_s,
                        allow_reconnect=False,
                        max_reconnect_attempts=0,
                    ),
                    timeout_s,
                )
            )
            self.js = self.nc.jetstream(timeout=timeout_s)
            stream = options.get("stream")
            if stream:
                self.loop.run_until_complete(self._ensure(str(stream)))
        except Exception as error:
            self.loop.close()
            raise SinkError(f"NATS: {error!r}") from None

    async def _ensure(self, stream: str) -> None:
        from nats.js.errors import NotFoundError

        try:
            await self.js.stream_info(stream)
        except NotFoundError:
            await self.js.add_stream(name=stream, subjects=["fleet.>"])

    def send(self, kind: str, unit_code: str, message_id: str, body: bytes) -> None:
        subject = f"fleet.{_token(unit_code)}.{kind}"
        try:
            self.loop.run_until_complete(
                self.js.publish(subject, body, headers={"Nats-Msg-Id": message_id})
            )
        except Exception as error:
            raise SinkError(f"NATS publish failed: {error!r}") from None

    def close(self) -> None:
        with contextlib.suppress(Exception):  # already gone
            self.loop.run_until_complete(self.nc.close())
        self.loop.close()


def open_sink(integration: Integration, timeout_s: float) -> Sink:
    kind = SinkKind(integration.kind)
    if kind == SinkKind.MQTT:
        return MqttSink(integration.url, timeout_s)
    if kind == SinkKind.WEBHOOK:
        return WebhookSink(integration.url, integration.secret, timeout_s)
    if kind == SinkKind.AMQP:
        return AmqpSink(integration.url, integration.secret, integration.options, timeout_s)
    return NatsSink(integration.url, integration.options, timeout_s)


def body(event: OutboxEvent) -> bytes:
    return json.dumps(
        outbox.envelope(event), ensure_ascii=False, sort_keys=True, separators=(",", ":")
    ).encode()


def pending_query(session: Session, integration: Integration) -> Any:
    """The events after the sink's cursor that its filters let through, oldest first."""
    query = select(OutboxEvent).where(OutboxEvent.id > integration.cursor)
    if integration.kinds:
        query = query.where(OutboxEvent.kind.in_(integration.kinds))
    if integration.unit_id is not None:
        path = select(OrgUnit.path).where(OrgUnit.id == integration.unit_id).scalar_subquery()
        query = query.where(
            OutboxEvent.unit_id.in_(select(OrgUnit.id).where(OrgUnit.path.startswith(path)))
        )
    return query


def pending_count(session: Session, integration: Integration) -> int:
    query = pending_query(session, integration).with_only_columns(func.count())
    return int(session.scalar(query) or 0)


def ensure_settings_sink(session: Session, settings: Settings) -> None:
    """FLEET_MQTT_URL as an integration of its own (every unit, every kind), so it has a cursor
    and statistics like the others; its URL follows the setting, and it stops when unset. A new
    one starts after the newest event."""
    sink = session.scalar(select(Integration).where(Integration.name == SETTINGS_SINK))
    if not settings.mqtt_url:
        if sink is not None and sink.enabled:
            sink.enabled = False
        return
    if sink is None:
        newest = session.scalar(select(func.max(OutboxEvent.id))) or 0
        session.add(
            Integration(
                name=SETTINGS_SINK,
                kind=SinkKind.MQTT,
                url=settings.mqtt_url,
                from_settings=True,
                cursor=newest,
                options={},
            )
        )
    else:
        sink.url = settings.mqtt_url
        sink.enabled = True
    session.flush()


PRUNE_EVERY_S = 3600


def prune(session: Session, *, before: datetime) -> int:
    """Deletes the events that occurred before `before` and that every enabled sink, and the
    notifier, has had; returns how many."""
    # The notifier (fleet/notifications.py) reads the outbox too: its cursor holds back as a
    # sink's does.
    readers = union_all(
        select(Integration.cursor.label("cursor")).where(Integration.enabled),
        select(NotifierCursor.cursor.label("cursor")),
    ).subquery()
    cursors = select(func.min(readers.c.cursor)).scalar_subquery()
    newest = select(func.max(OutboxEvent.id)).scalar_subquery()
    gone = session.execute(
        delete(OutboxEvent).where(
            OutboxEvent.occurred_at < before, OutboxEvent.id <= func.coalesce(cursors, newest)
        )
    )
    return int(gone.rowcount or 0)  # type: ignore[attr-defined]


class OpenSinks:
    """The connections to the sinks, kept between passes and opened again when a sink's settings
    change or after it failed."""

    def __init__(self, opener: Callable[[Integration, float], Sink], timeout_s: float) -> None:
        self.opener = opener
        self.timeout_s = timeout_s
        self.held: dict[int, tuple[tuple[Any, ...], Sink]] = {}

    def get(self, integration: Integration) -> Sink:
        config = (
            integration.kind,
            integration.url,
            integration.secret,
            json.dumps(integration.options, sort_keys=True),
        )
        held = self.held.get(integration.id)
        if held is not None and held[0] == config:
            return held[1]
        self.drop(integration.id)
        sink = self.opener(integration, self.timeout_s)
        self.held[integration.id] = (config, sink)
        return sink

    def drop(self, integration_id: int) -> None:
        held = self.held.pop(integration_id, None)
        if held is not None:
            with contextlib.suppress(Exception):  # a broken sink goes whatever its state
                held[1].close()

    def keep_only(self, integration_ids: Iterable[int]) -> None:
        for gone in set(self.held) - set(integration_ids):
            self.drop(gone)

    def close(self) -> None:
        self.keep_only(())


class Forwarder:
    """Delivers for every enabled sink; `step` is one pass (what tests drive), `run` loops."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Callable[[], datetime] = utcnow,
        opener: Callable[[Integration, float], Sink] = open_sink,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.sinks = OpenSinks(opener, settings.forward_timeout_s)

    def close(self) -> None:
        self.sinks.close()

    def step(self, session: Session) -> int:
        """One batch for each sink that is due; returns how many events were acknowledged.
        Commits the session after each sink's batch."""
        ensure_settings_sink(session, self.settings)
        session.commit()
        ids = session.scalars(
            select(Integration.id).where(Integration.enabled).order_by(Integration.id)
        ).all()
        delivered = 0
        for integration_id in ids:
            integration = session.get(Integration, integration_id, with_for_update=True)
            if integration is None or not integration.enabled:
                session.commit()
                continue
            if integration.retry_at is not None and integration.retry_at > self.clock():
                session.commit()
                continue
            delivered += self._deliver(session, integration)
            session.commit()
        self.sinks.keep_only(ids)
        return delivered

    def _deliver(self, session: Session, integration: Integration) -> int:
        # Every event up to the newest now is committed (ids follow commit order): once the
        # sink has those its filters let through, the cursor passes the others too, so a sink
        # that hears of little does not hold back the pruning, nor scan the same rows again.
        horizon = session.scalar(select(func.max(OutboxEvent.id))) or 0
        events = session.scalars(
            pending_query(session, integration)
            .where(OutboxEvent.id <= horizon)
            .order_by(OutboxEvent.id)
            .limit(self.settings.forward_batch)
        ).all()
        sent = 0
        for event in events:
            try:
                self.sinks.get(integration).send(
                    event.kind, event.unit_code, str(event.id), body(event)
                )
            except SinkError as error:
                self.sinks.drop(integration.id)
                self._failed(session, integration, event, str(error))
                return sent
            integration.cursor = event.id
            integration.sent += 1
            integration.attempts = 0
            integration.retry_at = None
            sent += 1
        if len(events) < self.settings.forward_batch:
            integration.cursor = max(integration.cursor, horizon)
        return sent

    def _failed(
        self, session: Session, integration: Integration, event: OutboxEvent, error: str
    ) -> None:
        now = self.clock()
        integration.attempts += 1
        integration.failed += 1
        integration.last_error = error[:1000]
        integration.last_error_at = now
        log.warning("sink %s, event %d: %s", integration.name, event.id, error)
        if (
            integration.kind == SinkKind.WEBHOOK
            and integration.attempts >= self.settings.webhook_max_attempts
        ):
            session.add(
                DeadLetter(
                    integration_id=integration.id,
                    event_id=event.id,
                    attempts=integration.attempts,
                    last_error=error[:1000],
                    at=now,
                )
            )
            integration.cursor = event.id
            integration.dead += 1
            integration.attempts = 0
            integration.retry_at = None
            return
        wait = min(
            self.settings.forward_retry_max_s,
            self.settings.forward_retry_min_s * 2 ** (integration.attempts - 1),
        )
        integration.retry_at = now + timedelta(seconds=wait)

    def run(
        self,
        engine: Engine,
        stop: threading.Event,
        also: Sequence[Callable[[Session], int]] = (),
    ) -> None:
        """Until `stop`: one pass (and one of each of `also`, the positions' forwarder), then a
        pause when there was nothing to send. Only one forwarder delivers at a time (a session
        advisory lock); another waits its turn."""
        with engine.connect() as guard:
            while not stop.is_set():
                got = guard.scalar(text(f"SELECT pg_try_advisory_lock({_FORWARDER_LOCK})"))
                guard.commit()  # the lock is the session's: it outlives the transaction
                if got:
                    break
                stop.wait(self.settings.forward_poll_s * 5)
            pruned_at = 0.0
            try:
                while not stop.is_set():
                    try:
                        with Session(engine, expire_on_commit=False) as session:
                            if time.monotonic() - pruned_at > PRUNE_EVERY_S:
                                keep = timedelta(days=self.settings.outbox_keep_days)
                                prune(session, before=self.clock() - keep)
                                session.commit()
                                pruned_at = time.monotonic()
                            delivered = self.step(session)
                            for step in also:
                                delivered += step(session)
                                session.commit()
                    except Exception:
                        log.exception("forwarding pass failed")
                        delivered = 0
                    if not delivered:
                        stop.wait(self.settings.forward_poll_s)
            finally:
                self.close()
