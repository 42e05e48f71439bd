"""Positions for other systems: from the fix stream, not the outbox (a fix is not a change to
audit, and there are thousands a second).

The ingest worker's `PositionTap` adds each stored batch's fixes (with a position) to one more
stream, `fleet:forward:positions`, in the pipeline that acknowledges the batch (so a batch is
tapped at least once), capped at FLEET_FORWARD_POSITIONS_MAXLEN entries. `fleet forward` reads it
with one consumer group per sink that takes positions (`kinds` naming `positions`, or none: every
kind) and acknowledges an entry only once the sink has acknowledged every fix of it; a sink that
fails is retried with back-off from its first unacknowledged entry, so nothing within the cap is
lost and each vehicle's fixes arrive in order. The lag, from the gateway's receipt to the sink's
acknowledgement, is measured on every entry and kept with the counts in
`fleet:forward:positions:stats`.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import psycopg
from redis.exceptions import ResponseError
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from fleet.forwarding import (
    POSITION_STAT_FIELDS,
    POSITION_STATS,
    OpenSinks,
    Sink,
    SinkError,
    open_sink,
    send_all,
)
from fleet.models import Integration, OrgUnit
from fleet.redis_client import RedisClient, RedisPipeline
from fleet.settings import Settings
from telematics import stream
from telematics.batch import FixBatch

log = logging.getLogger("fleet.forward")

STREAM = "fleet:forward:positions"
STATS = POSITION_STATS
CONSUMER = "forward"
KIND = "positions"
SWEEP_EVERY_S = 300


class PositionTap:
    """The ingest worker's observer that hands each stored batch's fixes to `fleet forward`."""

    def __init__(self, maxlen: int) -> None:
        self.maxlen = maxlen

    def evaluate(self, batch: FixBatch, starts: np.ndarray) -> bytes | None:
        records = batch.records[~np.isnan(batch.records["lat"])]
        return records.tobytes() if len(records) else None

    def write(self, conn: psycopg.Connection[Any], pending: bytes | None) -> None:
        pass

    def after_commit(self, pipe: RedisPipeline, pending: bytes | None) -> None:
        if pending:
            pipe.xadd(STREAM, {b"f": pending}, maxlen=self.maxlen, approximate=True)

    def committed(self, pending: bytes | None) -> None:
        pass


def _number(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def position_body(entry_id: str, index: int, record: Any, unit_code: str) -> bytes:
    """A fix as sinks receive it: the envelope of the outbox's events, with a string `id` (the
    stream entry and the fix's place in it) that is the same on every copy."""
    fix_ms, received_ms = int(record["fix_ms"]), int(record["received_ms"])
    return json.dumps(
        {
            "version": 1,
            "id": f"p-{entry_id}-{index}",
            "kind": KIND,
            "unit_code": unit_code,
            "occurred_at": stream.iso_utc(stream.ms_to_datetime(fix_ms)),
            "object": {
                "type": "position",
                "vehicle_id": int(record["vehicle"]),
                "device_id": int(record["device"]),
                "fix_time": stream.iso_utc(stream.ms_to_datetime(fix_ms)),
                "received_at": stream.iso_utc(stream.ms_to_datetime(received_ms)),
                "lat": float(record["lat"]),
                "lon": float(record["lon"]),
                "speed_kmh": _number(record["speed"]),
                "heading_deg": _number(record["heading"]),
                "altitude_m": _number(record["altitude"]),
                "odometer_km": _number(record["odometer"]),
                "fuel_l": _number(record["fuel"]),
                "ignition": None if record["ignition"] < 0 else bool(record["ignition"]),
            },
        },
        ensure_ascii=False,
        sort_keys=True,
        separators=(",", ":"),
    ).encode()


class PositionForwarder:
    """One pass per call of `step`: each sink that takes positions gets its pending entries
    again (those read but not acknowledged), else the next ones."""

    def __init__(
        self,
        redis: RedisClient,
        settings: Settings,
        *,
        batch_entries: int = 20,
        clock_ms: Callable[[], int] = stream.now_ms,
        opener: Callable[[Integration, float], Sink] = open_sink,
    ) -> None:
        self.redis = redis
        self.settings = settings
        self.batch_entries = batch_entries
        self.clock_ms = clock_ms
        self.sinks = OpenSinks(opener, settings.forward_timeout_s)
        self.attempts: dict[int, int] = {}
        self.swept_at = -math.inf
        self.retry_at: dict[int, float] = {}

    def close(self) -> None:
        self.sinks.close()

    def step(self, session: Session) -> int:
        if time.monotonic() - self.swept_at > SWEEP_EVERY_S:
            self.sweep(session)
        integrations = session.scalars(
            select(Integration)
            .where(
                Integration.enabled,
                or_(Integration.kinds.is_(None), Integration.kinds.contains([KIND])),
            )
            .order_by(Integration.id)
        ).all()
        self.sinks.keep_only(i.id for i in integrations)
        if not integrations:
            return 0
        units = {
            unit_id: (code, path)
            for unit_id, code, path in session.execute(
                select(OrgUnit.id, OrgUnit.code, OrgUnit.path)
            )
        }
        sent = 0
        for integration in integrations:
            if self.retry_at.get(integration.id, 0.0) > time.monotonic():
                continue
            sent += self._deliver(integration, units)
        return sent

    def sweep(self, session: Session) -> None:
        """Drops the consumer groups (and counts) of sinks that were deleted: a group left
        behind would pin nothing, but would be read by nobody for ever."""
        self.swept_at = time.monotonic()
        known = {str(i) for i in session.scalars(select(Integration.id))}
        try:
            groups: Any = self.redis.xinfo_groups(STREAM)
        except ResponseError:  # no stream yet
            return
        for group in groups:
            name = group["name"].decode() if isinstance(group["name"], bytes) else group["name"]
            integration_id = name.removeprefix("sink:")
            if name.startswith("sink:") and integration_id not in known:
                self.redis.xgroup_destroy(STREAM, name)
                fields = [f"{integration_id}:{f}" for f in POSITION_STAT_FIELDS]
                self.redis.hdel(STATS, *fields)

    def _group(self, integration: Integration) -> str:
        """The sink's consumer group; a new sink starts at the newest entry."""
        group = f"sink:{integration.id}"
        try:
            self.redis.xgroup_create(STREAM, group, id="$", mkstream=True)
        except ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise
        return group

    def _deliver(self, integration: Integration, units: dict[int, tuple[str, str]]) -> int:
        group = self._group(integration)
        root = units.get(integration.unit_id) if integration.unit_id is not None else None
        entries = self._read(group, "0") or self._read(group, ">")
        sent = 0
        for entry_id, fields in entries:
            records = np.frombuffer(fields.get(b"f", b""), dtype=stream.RECORD)
            messages = []
            for index, record in enumerate(records):
                code, path = units.get(int(record["unit"]), ("-", ""))
                if root is not None and not path.startswith(root[1]):
                    continue
                body = position_body(entry_id, index, record, code)
                messages.append((KIND, code, f"p-{entry_id}-{index}", body))
            try:
                send_all(self.sinks.get(integration), messages)
                sent += len(messages)
            except SinkError as error:
                self._failed(integration, str(error))
                break
            lag_ms = self.clock_ms() - int(records["received_ms"].min()) if len(records) else 0
            with self.redis.pipeline(transaction=False) as pipe:
                pipe.xack(STREAM, group, entry_id)
                pipe.hincrby(STATS, f"{integration.id}:sent", len(messages))
                pipe.hset(STATS, f"{integration.id}:lag_ms", lag_ms)
                pipe.execute()
            self.attempts.pop(integration.id, None)
        return sent

    def _read(self, group: str, start: str) -> list[tuple[str, dict[bytes, bytes]]]:
        reply: Any = self.redis.xreadgroup(
            group, CONSUMER, {STREAM: start}, count=self.batch_entries
        )
        found, trimmed = [], []
        for _key, items in reply or []:
            for entry_id, fields in items:
                name = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
                if fields:
                    found.append((name, fields))
                else:  # trimmed away by the cap while pending: gone, and counted
                    trimmed.append(name)
        if trimmed:
            with self.redis.pipeline(transaction=False) as pipe:
                pipe.xack(STREAM, group, *trimmed)
                pipe.hincrby(STATS, f"{group.removeprefix('sink:')}:trimmed", len(trimmed))
                pipe.execute()
        return found

    def _failed(self, integration: Integration, error: str) -> None:
        self.sinks.drop(integration.id)
        attempts = self.attempts.get(integration.id, 0) + 1
        self.attempts[integration.id] = attempts
        wait = min(
            self.settings.forward_retry_max_s,
            self.settings.forward_retry_min_s * 2 ** (attempts - 1),
        )
        self.retry_at[integration.id] = time.monotonic() + wait
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.hincrby(STATS, f"{integration.id}:failed", 1)
            pipe.hset(STATS, f"{integration.id}:last_error", error[:500])
            pipe.execute()
        log.warning("sink %s, positions: %s", integration.name, error)
