"""The ingest worker: stream entries -> PostGIS (binary COPY) -> live positions -> XACK.

The per-batch pipeline, in order:
1. read the owned shards (first this consumer's own pending entries, then new ones; entries a dead
   consumer left pending are claimed after `ingest_claim_idle_s`);
2. decode the rows (a broken entry is counted and acknowledged, never retried forever);
3. segment trips and stops, and let each observer (the geofence engine) evaluate the batch;
4. in one transaction: COPY the fixes into `position` (duplicates, from a re-sent fix or a replayed
   batch, fall back to a staging table and `ON CONFLICT DO NOTHING`), write the trips and stops
   the segmentation closed, and the observers' rows (alerts);
5. commit; then update each vehicle's trip and rule state in Redis and XACK + XDEL the entries.
Each vehicle's last position is set and published on the live channel as soon as the batch is
decoded (between 3 and 4): the map does not wait for PostGIS or the rules, and keeps moving while
PostgreSQL is away.
A worker killed anywhere before the XACK sees its entries again and stores nothing twice.
"""

from __future__ import annotations

import contextlib
import json
import logging
import struct
import threading
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import psycopg
from psycopg import errors as pg_errors
from redis import Redis
from redis.client import Pipeline
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from telematics import stream, trips
from telematics.settings import TelematicsSettings
from telematics.stream import (
    R_ALARM,
    R_ALTITUDE,
    R_ATTRIBUTES,
    R_DEVICE,
    R_FIX_MS,
    R_FUEL,
    R_HEADING,
    R_IGNITION,
    R_LAT,
    R_LON,
    R_ODOMETER,
    R_RECEIVED_MS,
    R_SPEED,
    R_STATUS,
    R_VEHICLE,
)

log = logging.getLogger("fleet.ingest")

# Non-null columns first, so that part of each tuple is one fixed-layout pack.
COLUMNS = (
    "vehicle_id, fix_time, device_id, received_at, alarm_bits, status_bits, point, speed_kmh,"
    " heading_deg, altitude_m, ignition, odometer_km, fuel_l, attributes"
)
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" * 2
_COPY_TRAILER = b"\xff\xff"
# field count, then (length, value) for vehicle, fix time, device, receipt, alarm, status
_FIXED = struct.Struct(">hiiiqiiiqiiii")
_NULL = b"\xff\xff\xff\xff"
_F4 = struct.Struct(">if")
_F8 = struct.Struct(">id")
_LEN = struct.Struct(">i")
_TRUE, _FALSE = b"\x00\x00\x00\x01\x01", b"\x00\x00\x00\x01\x00"
# geometry's binary input is EWKB (a little-endian point with its SRID), after its length.
_EWKB_POINT = struct.Struct("<BIIdd")
_EWKB_POINT_SRID = 0x20000001  # point type with the SRID flag
_POINT_LEN = _LEN.pack(_EWKB_POINT.size)
_PG_EPOCH_MS = 946_684_800_000  # 2000-01-01, where PostgreSQL's timestamps count from


def _int32(value: Any) -> int:
    """Alarm and status words are unsigned 32-bit on the wire; int4 is signed."""
    value = int(value or 0) & 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


def encode_copy(rows: Iterable[Sequence[Any]]) -> bytes:
    """PostgreSQL's binary COPY format for `position`, built directly from stream rows: no
    datetime or driver objects per fix, which is where a Python ingest spends its time."""
    parts = [_COPY_HEADER]
    add = parts.append
    fixed, f4, f8, null = _FIXED.pack, _F4.pack, _F8.pack, _NULL
    for row in rows:
        add(
            fixed(
                14,
                4,
                row[R_VEHICLE],
                8,
                (row[R_FIX_MS] - _PG_EPOCH_MS) * 1000,
                4,
                row[R_DEVICE],
                8,
                (row[R_RECEIVED_MS] - _PG_EPOCH_MS) * 1000,
                4,
                _int32(row[R_ALARM]),
                4,
                _int32(row[R_STATUS]),
            )
        )
        lat = row[R_LAT]
        if lat is None:
            add(null)
        else:
            add(_POINT_LEN)
            add(_EWKB_POINT.pack(1, _EWKB_POINT_SRID, 4326, row[R_LON], lat))
        for index in (R_SPEED, R_HEADING, R_ALTITUDE):
            value = row[index]
            add(null if value is None else f4(4, value))
        ignition = row[R_IGNITION]
        add(null if ignition is None else _TRUE if ignition else _FALSE)
        odometer = row[R_ODOMETER]
        add(null if odometer is None else f8(8, odometer))
        fuel = row[R_FUEL]
        add(null if fuel is None else f4(4, fuel))
        attributes = row[R_ATTRIBUTES]
        if attributes:
            text = b"\x01" + attributes.encode()  # JSON text made by the gateway
            add(_LEN.pack(len(text)))
            add(text)
        else:
            add(null)
    add(_COPY_TRAILER)
    return b"".join(parts)


_NUMBER_TYPES = frozenset({int, float, type(None)})
_REAL_MAX = 3.0e38  # float4 columns; the comparison is also false for NaN
_MAX_MS = 253_402_300_799_999  # 9999-12-31


def well_formed(row: Any) -> bool:
    """A row the gateways could have written: anything else is counted and dropped, because
    one bad row must not hold back the batch it came in. (Runs per fix: kept to plain checks.)"""
    if type(row) is not list or len(row) != R_ATTRIBUTES + 1:
        return False
    (
        vehicle,
        device,
        unit,
        fix_ms,
        received_ms,
        lat,
        lon,
        speed,
        heading,
        altitude,
        ignition,
        odometer,
        fuel,
        alarm,
        status,
        attributes,
    ) = row
    numbers = _NUMBER_TYPES
    return (
        type(vehicle) is int
        and type(device) is int
        and type(unit) is int
        and type(fix_ms) is int
        and type(received_ms) is int
        and type(alarm) is int
        and type(status) is int
        and 0 < vehicle < 2**31
        and 0 < device < 2**31
        and 0 <= fix_ms <= _MAX_MS
        and 0 <= received_ms <= _MAX_MS
        and type(speed) in numbers
        and type(heading) in numbers
        and type(altitude) in numbers
        and type(odometer) in numbers
        and type(fuel) in numbers
        and (speed is None or -_REAL_MAX < speed < _REAL_MAX)
        and (heading is None or -_REAL_MAX < heading < _REAL_MAX)
        and (altitude is None or -_REAL_MAX < altitude < _REAL_MAX)
        and (fuel is None or -_REAL_MAX < fuel < _REAL_MAX)
        and (odometer is None or -1e15 < odometer < 1e15)
        and (ignition is None or type(ignition) is bool)
        and (attributes is None or type(attributes) is str)
        and (
            (lat is None and lon is None)
            or (
                type(lat) in numbers
                and type(lon) in numbers
                and lat is not None
                and lon is not None
                and -90 <= lat <= 90
                and -180 <= lon <= 180
            )
        )
    )


def _json_or_none(text: str | None) -> bool:
    if text is None:
        return True
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False


def month_start(ms: int) -> datetime:
    moment = stream.ms_to_datetime(ms)
    return datetime(moment.year, moment.month, 1, tzinfo=UTC)


def _next_month(start: datetime) -> datetime:
    return (
        start.replace(year=start.year + 1, month=1)
        if start.month == 12
        else start.replace(month=start.month + 1)
    )


def partition_name(start: datetime) -> str:
    return f"position_p{start:%Y%m}"


PARTITION_LOCK = "SELECT pg_advisory_xact_lock(hashtext('fleet.position.partition'))"


def partition_ddl(start: datetime) -> str:
    """The statement creating the partition of `position` for the month from `start` (nothing
    when it exists). DDL takes no parameters; both bounds are made here from datetimes."""
    low, high = start.isoformat(), _next_month(start).isoformat()
    return (
        f"CREATE TABLE IF NOT EXISTS {partition_name(start)} PARTITION OF position"
        f" FOR VALUES FROM ('{low}') TO ('{high}')"
    )


class BatchObserver(Protocol):
    """More work on every batch, plugged in by the composition root (the geofence engine).

    `evaluate` runs before the transaction on the batch's well-formed rows in (vehicle, fix time)
    order; `write` runs inside it (and again if the transaction is retried); `after_commit`
    queues its Redis writes in the pipeline that acknowledges the entries; `committed` runs once
    that pipeline has executed. A batch that fails is evaluated again from the same state."""

    def evaluate(self, rows: list[list[Any]]) -> Any: ...

    def write(self, conn: psycopg.Connection[Any], pending: Any) -> None: ...

    def after_commit(self, pipe: Pipeline, pending: Any) -> None: ...

    def committed(self, pending: Any) -> None: ...


@dataclass
class BatchResult:
    entries: int = 0
    fixes: int = 0
    stored: int = 0
    duplicates: int = 0
    broken_entries: int = 0
    trips: int = 0
    stops: int = 0


@dataclass
class _Vehicle:
    """What the worker remembers of one vehicle between batches."""

    last_fix_ms: int = -1
    trip_state: trips.State | None = None


@dataclass
class IngestWorker:
    engine: Engine
    redis: Redis
    settings: TelematicsSettings
    index: int = 0
    count: int = 1
    consumer: str = ""
    block_ms: int = 1000
    observers: Sequence[BatchObserver] = ()
    _shards: list[int] = field(default_factory=list)
    _partitions: set[str] = field(default_factory=set)
    _vehicles: dict[int, _Vehicle] = field(default_factory=dict)
    _own_pending_done: bool = False
    _last_claim: float = 0.0

    def __post_init__(self) -> None:
        self._shards = stream.owned_shards(self.settings.stream_shards, self.index, self.count)
        self.consumer = self.consumer or f"worker-{self.index}"
        self._thresholds = trips.Thresholds(
            min_trip_distance_m=self.settings.trip_min_distance_m,
            min_stop_duration_s=self.settings.stop_min_duration_s,
            split_gap_s=self.settings.trip_split_gap_s,
        )
        for shard in self._shards:
            try:
                self.redis.xgroup_create(
                    stream.stream_key(shard), stream.GROUP, id="0", mkstream=True
                )
            except ResponseError as error:
                if "BUSYGROUP" not in str(error):
                    raise

    # ---- reading ----------------------------------------------------------------------------

    def _read(self) -> list[tuple[str, bytes, dict[bytes, bytes]]]:
        keys = [stream.stream_key(s) for s in self._shards]
        # The batch size is for all owned shards together, which bounds the worker's memory.
        count = max(1, self.settings.ingest_batch_entries // len(self._shards))
        if not self._own_pending_done:
            # After a restart, what this consumer read but never acknowledged comes first.
            reply: Any = self.redis.xreadgroup(
                stream.GROUP, self.consumer, dict.fromkeys(keys, "0"), count=count
            )
            found = [(k.decode(), i, f) for k, items in reply for i, f in items if f]
            if found:
                return found
            self._own_pending_done = True
        if time.monotonic() - self._last_claim > self.settings.ingest_claim_idle_s / 2:
            self._last_claim = time.monotonic()
            claimed = self._claim_abandoned(keys, count)
            if claimed:
                return claimed
        reply = self.redis.xreadgroup(
            stream.GROUP, self.consumer, dict.fromkeys(keys, ">"), count=count, block=self.block_ms
        )
        assert isinstance(reply, list)
        found = [(k.decode(), i, f) for k, items in reply for i, f in items]
        # Under a steady trickle each read returns a few entries; a batch that small would pay
        # the transaction's fixed cost for a handful of fixes. Linger briefly to fill it.
        deadline = time.monotonic() + self.settings.ingest_linger_ms / 1000
        while found and len(found) < count and time.monotonic() < deadline:
            time.sleep(0.005)
            more: Any = self.redis.xreadgroup(
                stream.GROUP, self.consumer, dict.fromkeys(keys, ">"), count=count - len(found)
            )
            found += [(k.decode(), i, f) for k, items in more for i, f in items]
        return found

    def _claim_abandoned(
        self, keys: list[str], count: int
    ) -> list[tuple[str, bytes, dict[bytes, bytes]]]:
        idle_ms = int(self.settings.ingest_claim_idle_s * 1000)
        found = []
        for key in keys:
            claimed: Any = self.redis.xautoclaim(
                key, stream.GROUP, self.consumer, min_idle_time=idle_ms, count=count
            )
            found += [(key, i, f) for i, f in claimed[1] if f]
        return found

    # ---- one batch --------------------------------------------------------------------------

    def process_once(self) -> BatchResult:
        entries = self._read()
        result = BatchResult(entries=len(entries))
        if not entries:
            return result
        rows: dict[tuple[int, int, int], list[Any]] = {}
        broken: Counter[str] = Counter()
        for _, _, fields in entries:
            try:
                decoded = stream.decode(fields[b"p"])
            except (KeyError, ValueError, TypeError):
                result.broken_entries += 1
                broken["broken_stream_entry"] += 1
                continue
            for row in decoded:
                if not well_formed(row):
                    broken["broken_stream_row"] += 1
                    continue
                rows[(row[R_VEHICLE], row[R_FIX_MS], row[R_DEVICE])] = row
                result.fixes += 1
        result.duplicates = result.fixes - len(rows)
        ordered = sorted(rows.values(), key=lambda r: (r[R_VEHICLE], r[R_FIX_MS]))
        self._load_vehicles({r[R_VEHICLE] for r in ordered})
        segments, states, latest = self._segment(ordered)
        # Where each vehicle is now, for the snapshot a new map starts from (the live channel
        # itself is fed by the gateways as fixes enter the stream).
        self._remember_latest(latest)
        pending = [(o, o.evaluate(ordered)) for o in self.observers]
        stored = self._store(ordered, segments, pending)
        result.stored = stored
        result.duplicates += len(ordered) - stored
        result.trips = sum(1 for _, s in segments if isinstance(s, trips.Trip))
        result.stops = len(segments) - result.trips
        self._after_commit(entries, states, latest, result, broken, pending)
        return result

    def _load_vehicles(self, vehicle_ids: set[int]) -> None:
        missing = [v for v in vehicle_ids if v not in self._vehicles]
        if not missing:
            return
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.hmget(stream.LAST_POSITIONS, missing)
            pipe.hmget(TRIP_STATES, missing)
            last, states = pipe.execute()
        for vehicle_id, last_raw, state_raw in zip(missing, last, states, strict=True):
            memory = _Vehicle()
            if last_raw:
                memory.last_fix_ms = int(json.loads(last_raw)["fix_ms"])
            if state_raw:
                memory.trip_state = trips.State.from_dict(json.loads(state_raw))
            self._vehicles[vehicle_id] = memory

    def _segment(
        self, ordered: list[list[Any]]
    ) -> tuple[list[tuple[int, trips.Segment]], dict[int, trips.State], dict[int, list[Any]]]:
        segments: list[tuple[int, trips.Segment]] = []
        states: dict[int, trips.State] = {}
        latest: dict[int, list[Any]] = {}
        for row in ordered:
            vehicle_id = row[R_VEHICLE]
            memory = self._vehicles[vehicle_id]
            point = trips.TrackPoint(
                t=row[R_FIX_MS] / 1000,
                lat=row[R_LAT],
                lon=row[R_LON],
                speed_kmh=row[R_SPEED],
                ignition=row[R_IGNITION],
                odometer_km=row[R_ODOMETER],
            )
            state = states.get(vehicle_id, memory.trip_state)
            state, closed = trips.step(state, point, self._thresholds)
            states[vehicle_id] = state
            segments += [(vehicle_id, s) for s in closed]
            if row[R_FIX_MS] > memory.last_fix_ms and row[R_LAT] is not None:
                latest[vehicle_id] = row
        return segments, states, latest

    # ---- storing ----------------------------------------------------------------------------

    def _ensure_partitions(
        self, conn: psycopg.Connection[Any], ordered: Iterable[list[Any]]
    ) -> None:
        days = {r[R_FIX_MS] // 86_400_000 for r in ordered}
        months = {month_start(day * 86_400_000) for day in days}
        for start in sorted(months):
            name = partition_name(start)
            if name in self._partitions:
                continue
            with conn.transaction():
                # Two workers may meet a new month at once; the lock makes one create it.
                conn.execute(PARTITION_LOCK)
                conn.execute(partition_ddl(start))
            self._partitions.add(name)

    def _store(
        self,
        ordered: list[list[Any]],
        segments: list[tuple[int, trips.Segment]],
        pending: Sequence[tuple[BatchObserver, Any]] = (),
    ) -> int:
        """Commit fixes and segments in one transaction; returns the number of fixes stored.

        Attribute texts go to jsonb unparsed (the gateways made them); should the database refuse
        one, the batch is stored again without the rows whose text is not JSON."""
        try:
            return self._store_once(ordered, segments, pending)
        except pg_errors.DataError:
            valid = [r for r in ordered if _json_or_none(r[R_ATTRIBUTES])]
            self.redis.hincrby(stream.COUNTERS, "broken_stream_row", len(ordered) - len(valid))
            return self._store_once(valid, segments, pending)

    def _store_once(
        self,
        ordered: list[list[Any]],
        segments: list[tuple[int, trips.Segment]],
        pending: Sequence[tuple[BatchObserver, Any]],
    ) -> int:
        with self.engine.connect() as sa_conn:
            conn: psycopg.Connection[Any] = sa_conn.connection.driver_connection  # type: ignore[assignment]
            conn.autocommit = True
            try:
                self._ensure_partitions(conn, ordered)
                data = encode_copy(ordered)
                try:
                    with conn.transaction():
                        self._copy(conn, "position", data)
                        self._write_segments(conn, segments)
                        for observer, work in pending:
                            observer.write(conn, work)
                    return len(ordered)
                except pg_errors.UniqueViolation:
                    # Some of these fixes are stored already (a replayed batch): merge instead.
                    with conn.transaction():
                        conn.execute(
                            "CREATE TEMP TABLE position_staging (LIKE position) ON COMMIT DROP"
                        )
                        self._copy(conn, "position_staging", data)
                        stored = conn.execute(
                            f"INSERT INTO position ({COLUMNS}) SELECT {COLUMNS}"
                            " FROM position_staging ON CONFLICT DO NOTHING"
                        ).rowcount
                        self._write_segments(conn, segments)
                        for observer, work in pending:
                            observer.write(conn, work)
                    return stored
            finally:
                conn.autocommit = False

    @staticmethod
    def _copy(conn: psycopg.Connection[Any], table: str, data: bytes) -> None:
        with (
            conn.cursor() as cur,
            cur.copy(f"COPY {table} ({COLUMNS}) FROM STDIN (FORMAT BINARY)") as copy,
        ):
            copy.write(data)

    @staticmethod
    def _write_segments(
        conn: psycopg.Connection[Any], segments: list[tuple[int, trips.Segment]]
    ) -> None:
        for vehicle_id, segment in segments:
            if isinstance(segment, trips.Trip):
                # The line is drawn from the trip's stored fixes (this batch's are in the same
                # transaction), so the segmentation state never carries a growing path.
                conn.execute(
                    "INSERT INTO trip (vehicle_id, start_at, end_at, start_point, end_point, path,"
                    " distance_m, duration_s, max_speed_kmh, avg_speed_kmh, odometer_start_km,"
                    " odometer_end_km)"
                    " SELECT %(v)s, %(s)s, %(e)s,"
                    " ST_SetSRID(ST_MakePoint(%(slon)s, %(slat)s), 4326),"
                    " ST_SetSRID(ST_MakePoint(%(elon)s, %(elat)s), 4326),"
                    " CASE WHEN count(point) >= 2 THEN ST_MakeLine(point ORDER BY fix_time)"
                    " ELSE ST_MakeLine(ST_SetSRID(ST_MakePoint(%(slon)s, %(slat)s), 4326),"
                    " ST_SetSRID(ST_MakePoint(%(elon)s, %(elat)s), 4326)) END,"
                    " %(d)s, %(dur)s, %(max)s, %(avg)s, %(o1)s, %(o2)s"
                    " FROM position WHERE vehicle_id = %(v)s AND fix_time BETWEEN %(s)s AND %(e)s"
                    " AND point IS NOT NULL"
                    " ON CONFLICT (vehicle_id, start_at) DO NOTHING",
                    {
                        "v": vehicle_id,
                        "s": segment.start_at,
                        "e": segment.end_at,
                        "slat": segment.start[0],
                        "slon": segment.start[1],
                        "elat": segment.end[0],
                        "elon": segment.end[1],
                        "d": segment.distance_m,
                        "dur": segment.duration_s,
                        "max": segment.max_speed_kmh,
                        "avg": segment.avg_speed_kmh,
                        "o1": segment.odometer_start_km,
                        "o2": segment.odometer_end_km,
                    },
                )
            else:
                conn.execute(
                    "INSERT INTO stop (vehicle_id, start_at, end_at, point, duration_s)"
                    " VALUES (%s, %s, %s, ST_SetSRID(ST_MakePoint(%s, %s), 4326), %s)"
                    " ON CONFLICT (vehicle_id, start_at) DO NOTHING",
                    (
                        vehicle_id,
                        segment.start_at,
                        segment.end_at,
                        segment.lon,
                        segment.lat,
                        segment.duration_s,
                    ),
                )

    # ---- after the commit -------------------------------------------------------------------

    def _remember_latest(self, latest: dict[int, list[Any]]) -> None:
        """Each vehicle's newest fix of the batch as its last position (never an older one: the
        segmenter's memory knows the last fix of each vehicle)."""
        if not latest:
            return
        self.redis.hset(
            stream.LAST_POSITIONS,
            mapping={v: stream.dumps(stream.live_item(row)) for v, row in latest.items()},
        )

    def _after_commit(
        self,
        entries: list[tuple[str, bytes, dict[bytes, bytes]]],
        states: dict[int, trips.State],
        latest: dict[int, list[Any]],
        result: BatchResult,
        broken: Counter[str],
        pending: Sequence[tuple[BatchObserver, Any]] = (),
    ) -> None:
        with self.redis.pipeline(transaction=False) as pipe:
            if states:
                pipe.hset(
                    TRIP_STATES,
                    mapping={v: stream.dumps(s.to_dict()) for v, s in states.items()},
                )
            for observer, work in pending:
                observer.after_commit(pipe, work)
            by_key: dict[str, list[bytes]] = {}
            for key, entry_id, _ in entries:
                by_key.setdefault(key, []).append(entry_id)
            for key, ids in by_key.items():
                pipe.xack(key, stream.GROUP, *ids)
                pipe.xdel(key, *ids)
            pipe.hincrby(stream.COUNTERS, "stored", result.stored)
            if result.duplicates:
                pipe.hincrby(stream.COUNTERS, "duplicate", result.duplicates)
            for reason, n in broken.items():
                pipe.hincrby(stream.COUNTERS, reason, n)
            pipe.execute()
        for observer, work in pending:
            observer.committed(work)
        for vehicle_id, state in states.items():
            self._vehicles[vehicle_id].trip_state = state
        for vehicle_id, row in latest.items():
            self._vehicles[vehicle_id].last_fix_ms = row[R_FIX_MS]

    # ---- the loop ---------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        backoff = 0.5
        while not stop.is_set():
            try:
                self.process_once()
                backoff = 0.5
            except Exception as error:
                # Nothing was acknowledged, so the batch is taken again after a pause. A store
                # error waits for the store; anything else is a bug, but a worker that dies stops
                # all ingest, so it is logged and counted instead.
                if _is_store_error(error):
                    log.warning("ingest paused: %s", str(error).splitlines()[0])
                else:
                    log.exception("ingest batch failed; retrying")
                    with contextlib.suppress(Exception):
                        self.redis.hincrby(stream.COUNTERS, "worker_errors", 1)
                self._own_pending_done = False
                stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)


TRIP_STATES = "fleet:trip-state"


def _is_store_error(error: BaseException) -> bool:
    """PostgreSQL or Redis unreachable (raw driver errors, or SQLAlchemy's wrapping of them)."""
    if isinstance(error, psycopg.OperationalError | OSError | RedisConnectionError):
        return True
    return isinstance(error, DBAPIError) and (
        error.connection_invalidated or isinstance(error.orig, psycopg.OperationalError)
    )
