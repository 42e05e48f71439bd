"""The fix stream: Redis Streams sharded by vehicle, between the gateways and the ingest worker.

A stream entry carries a small batch of fixes (all that one gateway flush had for that shard) as
compact JSON rows, so Redis and Python pay per batch rather than per fix. A gateway acknowledges
a fix to its sender only after the XADD holding it has returned.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import struct
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson

from fleet import channels
from fleet.redis_client import AsyncRedisClient
from telematics.fix import Fix

log = logging.getLogger("fleet.stream")

PREFIX = "fleet:fixes:"
GROUP = "ingest"
# Keys that no command names together with another: on a Redis Cluster each lives on whichever
# master holds its slot.
LAST_POSITIONS = "fleet:last"
COUNTERS = "fleet:counters"

# Positions of the fields in a stream row (a JSON array, to keep entries small).
(
    R_VEHICLE,
    R_DEVICE,
    R_UNIT,
    R_FIX_MS,
    R_RECEIVED_MS,
    R_LAT,
    R_LON,
    R_SPEED,
    R_HEADING,
    R_ALTITUDE,
    R_IGNITION,
    R_ODOMETER,
    R_FUEL,
    R_ALARM,
    R_STATUS,
    R_ATTRIBUTES,
) = range(16)


def stream_key(shard: int) -> str:
    """The shard's stream, `fleet:fixes:{N}`: the hash tag `{N}` is the shard, so on a Redis
    Cluster the shards spread over the masters by their slots, while a shard's stream (with its
    consumer group), and any key named for that shard, stays on one node."""
    return f"{PREFIX}{{{shard}}}"


def shard_of(vehicle_id: int, shards: int) -> int:
    return vehicle_id % shards


def owned_shards(shards: int, index: int, count: int) -> list[int]:
    """The shards worker `index` of `count` reads: each shard has exactly one owner, so each
    vehicle's fixes are handled in order by one worker."""
    return [s for s in range(shards) if s % count == index]


@dataclass(frozen=True, slots=True)
class Target:
    """Where a device's fixes go: what the gateway knows of the device from the registry."""

    device_id: int
    vehicle_id: int
    unit_id: int


def to_row(fix: Fix, target: Target, received_ms: int) -> list[Any]:
    valid = fix.valid and fix.lat is not None and fix.lon is not None
    return [
        target.vehicle_id,
        target.device_id,
        target.unit_id,
        int(fix.fix_time.timestamp() * 1000),
        received_ms,
        fix.lat if valid else None,
        fix.lon if valid else None,
        fix.speed_kmh,
        fix.heading_deg,
        fix.altitude_m,
        fix.ignition,
        fix.odometer_km,
        fix.fuel_l,
        fix.alarm_bits,
        fix.status_bits,
        # Encoded once here: the worker passes the text to jsonb without decoding it.
        dumps(dict(fix.attributes)).decode() if fix.attributes else None,
    ]


# The stream entry (see `telematics.batch`): the fixes as packed little-endian records, one per
# fix, NaN for a missing number and -1 for a missing ignition or attribute text; the texts follow
# one after another in a field of their own.
RECORD = np.dtype(
    [
        ("vehicle", "<i4"),
        ("device", "<i4"),
        ("unit", "<i4"),
        ("fix_ms", "<i8"),
        ("received_ms", "<i8"),
        ("lat", "<f8"),
        ("lon", "<f8"),
        ("speed", "<f8"),
        ("heading", "<f8"),
        ("altitude", "<f8"),
        ("odometer", "<f8"),
        ("fuel", "<f8"),
        ("alarm", "<u4"),
        ("status", "<u4"),
        ("ignition", "i1"),
        ("attr_len", "<i4"),
    ]
)
_PACK = struct.Struct("<iiiqqdddddddIIbi")
assert _PACK.size == RECORD.itemsize
RECORDS, ATTRIBUTES, ROWS = b"f", b"a", b"p"
_NAN = math.nan
_WORD = 0xFFFFFFFF


def pack(rows: Iterable[Sequence[Any]]) -> tuple[bytes, bytes]:
    """(records, attribute texts) for stream rows (`telematics.stream.to_row`)."""
    record, texts = _PACK.pack, []
    packed = []
    nan = _NAN
    for row in rows:
        text = row[R_ATTRIBUTES]
        size = -1
        if text is not None:
            data = text.encode()
            texts.append(data)
            size = len(data)
        ignition = row[R_IGNITION]
        packed.append(
            record(
                row[R_VEHICLE],
                row[R_DEVICE],
                row[R_UNIT],
                row[R_FIX_MS],
                row[R_RECEIVED_MS],
                nan if row[R_LAT] is None else row[R_LAT],
                nan if row[R_LON] is None else row[R_LON],
                nan if row[R_SPEED] is None else row[R_SPEED],
                nan if row[R_HEADING] is None else row[R_HEADING],
                nan if row[R_ALTITUDE] is None else row[R_ALTITUDE],
                nan if row[R_ODOMETER] is None else row[R_ODOMETER],
                nan if row[R_FUEL] is None else row[R_FUEL],
                row[R_ALARM] & _WORD,
                row[R_STATUS] & _WORD,
                -1 if ignition is None else ignition,
                size,
            )
        )
    return b"".join(packed), b"".join(texts)


def entry(rows: Sequence[Sequence[Any]]) -> dict[bytes, bytes]:
    """The stream entry's fields for rows."""
    records, texts = pack(rows)
    return {RECORDS: records, ATTRIBUTES: texts} if texts else {RECORDS: records}


# One encoder for every call: json.dumps with options builds a new one each time.
_to_json = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON, by orjson (several times faster per fix than the standard library),
    falling back to the standard library for what orjson refuses (integers beyond 64 bits)."""
    try:
        return orjson.dumps(value)
    except TypeError:
        return _to_json(value).encode()


def encode(rows: Sequence[Sequence[Any]]) -> bytes:
    return dumps(rows)


def decode(payload: bytes) -> list[list[Any]]:
    rows = orjson.loads(payload)
    if not isinstance(rows, list):
        raise ValueError("a stream entry holds a list of rows")
    return rows


# A fix older than this at receipt (a blind-area re-send, a backlog after an outage) is stored
# but not shown live: the map shows where vehicles are now.
LIVE_MAX_AGE_MS = 10 * 60 * 1000
# How long a gateway gathers fixes for one live message.
LIVE_EVERY_S = 0.05


def live_item(row: Sequence[Any]) -> dict[str, Any]:
    return {
        "vehicle_id": row[R_VEHICLE],
        "unit_id": row[R_UNIT],
        "fix_ms": row[R_FIX_MS],
        "fix_time": iso_utc(ms_to_datetime(row[R_FIX_MS])),
        "received_ms": row[R_RECEIVED_MS],
        "lat": row[R_LAT],
        "lon": row[R_LON],
        "speed_kmh": row[R_SPEED],
        "heading_deg": row[R_HEADING],
        "ignition": row[R_IGNITION],
    }


def collect_live(
    rows: Iterable[Sequence[Any]], seen: dict[int, int], into: dict[int, Sequence[Any]]
) -> None:
    """Each vehicle's newest recent fix with a position among rows just accepted into the stream,
    if newer than the last one shown (`seen`: vehicle -> fix ms, updated here), into `into`."""
    for row in rows:
        vehicle, fix_ms = row[R_VEHICLE], row[R_FIX_MS]
        if (
            row[R_LAT] is not None
            and fix_ms > seen.get(vehicle, 0)
            and row[R_RECEIVED_MS] - fix_ms < LIVE_MAX_AGE_MS
        ):
            seen[vehicle] = fix_ms
            into[vehicle] = row


def live_message(rows: Iterable[Sequence[Any]], seen: dict[int, int] | None = None) -> bytes | None:
    """The live channel's message for rows just accepted into the stream; None when there is
    nothing to show."""
    latest: dict[int, Sequence[Any]] = {}
    collect_live(rows, {} if seen is None else seen, latest)
    if not latest:
        return None
    return dumps({"type": "positions", "items": [live_item(r) for r in latest.values()]})


def ms_to_datetime(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def iso_utc(moment: datetime) -> str:
    """ISO-8601 in UTC with a Z, as every telematics payload writes times."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Backlogged(Exception):
    """The stream holds more than the backlog limit: stop acknowledging rather than drop."""


class StreamWriter:
    """Group commit for gateways: rows from every connection are gathered for a moment and
    written with one pipelined XADD per shard; each caller resumes once its rows are in Redis."""

    def __init__(
        self,
        redis: AsyncRedisClient,
        *,
        shards: int,
        max_backlog: int,
        linger_s: float = 0.002,
        flush_rows: int = 2000,
    ) -> None:
        self._redis = redis
        self._shards = shards
        self._max_backlog = max_backlog
        self._linger_s = linger_s
        self._flush_rows = flush_rows
        self._pending: dict[int, list[list[Any]]] = {}
        self._waiters: list[asyncio.Future[None]] = []
        self._count = 0
        self._timer: asyncio.TimerHandle | None = None
        self._backlog = 0
        self._backlog_checked = 0.0
        self._writes: set[asyncio.Task[None]] = set()
        self._shown: dict[int, int] = {}  # vehicle -> newest fix ms put on the live channel
        self._live: dict[int, Sequence[Any]] = {}  # waiting to go live, newest per vehicle
        self._live_timer: asyncio.TimerHandle | None = None

    async def append(self, rows: Sequence[list[Any]]) -> None:
        """Returns when every row is in Redis; raises Backlogged or a Redis error otherwise."""
        if not rows:
            return
        await self._check_backlog()
        for row in rows:
            self._pending.setdefault(shard_of(row[R_VEHICLE], self._shards), []).append(row)
        self._count += len(rows)
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        if self._count >= self._flush_rows:
            self._flush_now()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._linger_s, self._flush_now)
        await waiter

    def _flush_now(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        pending, waiters = self._pending, self._waiters
        self._pending, self._waiters, self._count = {}, [], 0
        if waiters:
            task = asyncio.get_running_loop().create_task(self._write(pending, waiters))
            self._writes.add(task)
            task.add_done_callback(self._writes.discard)

    async def _write(
        self, pending: dict[int, list[list[Any]]], waiters: list[asyncio.Future[None]]
    ) -> None:
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for shard, rows in pending.items():
                    pipe.xadd(stream_key(shard), entry(rows))  # type: ignore[arg-type]
                await pipe.execute()
        except Exception as error:
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(error)
            return
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
        # The map need not wait for the worker: these fixes are safe in the stream (and stored
        # exactly once from there), so they go live now, gathered for a moment (LIVE_EVERY_S) so
        # that the live channel carries a few large messages rather than one per flush.
        collect_live((r for rows in pending.values() for r in rows), self._shown, self._live)
        if self._live and self._live_timer is None:
            loop = asyncio.get_running_loop()
            self._live_timer = loop.call_later(LIVE_EVERY_S, self._publish_live)

    def _publish_live(self) -> None:
        self._live_timer = None
        rows, self._live = self._live, {}
        message = dumps({"type": "positions", "items": [live_item(r) for r in rows.values()]})
        task = asyncio.get_running_loop().create_task(self._send_live(message))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _send_live(self, message: bytes) -> None:
        try:
            await self._redis.publish(channels.LIVE, message)
        except Exception as error:  # the fixes are in: a missed live update is not a loss
            log.warning("live update not published: %s", error)

    async def _check_backlog(self) -> None:
        now = time.monotonic()
        if now - self._backlog_checked > 1.0:
            self._backlog_checked = now
            async with self._redis.pipeline(transaction=False) as pipe:
                for shard in range(self._shards):
                    pipe.xlen(stream_key(shard))
                self._backlog = sum(await pipe.execute())
        if self._backlog > self._max_backlog:
            raise Backlogged(f"{self._backlog} stream entries wait for the ingest worker")

    async def drain(self) -> None:
        """Write whatever is pending now (on shutdown)."""
        self._flush_now()
        if self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)
        if self._live_timer is not None:
            self._live_timer.cancel()
            self._publish_live()
        if self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)
