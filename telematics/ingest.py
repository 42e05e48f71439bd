"""The ingest worker: stream entries -> PostGIS (binary COPY) -> live positions -> XACK.

The per-batch pipeline, in order:
1. read the owned shards (first this consumer's own pending entries, then new ones; entries a dead
   consumer left pending are claimed after `ingest_claim_idle_s`);
2. read the fixes as columns (`telematics.batch`; a broken entry or fix is counted and
   acknowledged, never retried forever), drop (and count) fixes outside the allowed time window,
   put them in order and drop repeats;
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
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np
import psycopg
from psycopg import errors as pg_errors
from redis.exceptions import ClusterDownError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from fleet.redis_client import RedisClient, RedisPipeline, slot_groups
from telematics import stream, trips
from telematics.batch import FixBatch, in_order, read_entry, well_formed_mask
from telematics.settings import TelematicsSettings
from telematics.stream import RECORD, RECORDS

log = logging.getLogger("fleet.ingest")

_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" * 2
_COPY_TRAILER = b"\xff\xff"
_PG_EPOCH_MS = 946_684_800_000  # 2000-01-01, where PostgreSQL's timestamps count from
_EWKB_POINT_SRID = 0x20000001  # a little-endian point with its SRID: geometry's binary input
# The columns of `position` as COPY writes them: (name, binary type), the first six never null.
_COPY_COLUMNS = (
    ("vehicle_id", ">i4"),
    ("fix_time", ">i8"),
    ("device_id", ">i4"),
    ("received_at", ">i8"),
    ("alarm_bits", ">i4"),
    ("status_bits", ">i4"),
    ("point", None),
    ("speed_kmh", ">f4"),
    ("heading_deg", ">f4"),
    ("altitude_m", ">f4"),
    ("ignition", "u1"),
    ("odometer_km", ">f8"),
    ("fuel_l", ">f4"),
    ("attributes", None),
)
COLUMNS = ", ".join(name for name, _ in _COPY_COLUMNS)
_POINT = [("order", "u1"), ("type", "<u4"), ("srid", "<u4"), ("x", "<f8"), ("y", "<f8")]
_LAYOUTS: dict[tuple[int, int], np.dtype] = {}


def _layout(present: int, text_size: int) -> np.dtype:
    """A binary COPY row of `position` for one shape of fix: which nullable columns it has (a bit
    each, in the order of the columns after the sixth) and its attribute text's length. A column
    is its length (-1 for null) followed by its value."""
    key = (present, text_size)
    layout = _LAYOUTS.get(key)
    if layout is None:
        fields: list[Any] = [("count", ">i2")]
        for k, (name, kind) in enumerate(_COPY_COLUMNS):
            fields.append((f"{name}_len", ">i4"))
            if k >= 6 and not present & (1 << (k - 6)):
                continue
            if name == "point":
                fields += [(f"point_{part}", t) for part, t in _POINT]
            elif name == "attributes":
                fields += [("jsonb_version", "u1"), ("attributes", "u1", (text_size,))]
            else:
                fields.append((name, kind))
        layout = _LAYOUTS[key] = np.dtype(fields)
    return layout


def encode_copy(batch: FixBatch) -> bytes:
    """PostgreSQL's binary COPY format for `position`, built from the batch's columns: the fixes
    are grouped by shape (which columns are null, how long the attribute text is; a live fleet
    has a handful of shapes), and each group is filled column by column in one numpy record
    array laid out as COPY reads it. Nothing is done per fix in Python."""
    r = batch.records
    if not len(r):
        return _COPY_HEADER + _COPY_TRAILER
    lat, text_size = r["lat"], r["attr_len"].astype(np.int64)
    has = [
        ~np.isnan(lat),
        ~np.isnan(r["speed"]),
        ~np.isnan(r["heading"]),
        ~np.isnan(r["altitude"]),
        r["ignition"] >= 0,
        ~np.isnan(r["odometer"]),
        ~np.isnan(r["fuel"]),
        text_size >= 0,
    ]
    shape = np.zeros(len(r), dtype=np.int64)
    for bit, column in enumerate(has):
        shape |= column.astype(np.int64) << bit
    shape = (shape << 32) | np.maximum(text_size, 0)
    shapes, group = np.unique(shape, return_inverse=True)
    by_group = np.argsort(group, kind="stable")
    bounds = np.concatenate(([0], np.cumsum(np.bincount(group))))
    parts = [_COPY_HEADER]
    for g, key in enumerate(shapes.tolist()):
        index = by_group[bounds[g] : bounds[g + 1]]
        parts.append(_encode_group(batch, index, key >> 32, key & 0xFFFFFFFF))
    parts.append(_COPY_TRAILER)
    return b"".join(parts)


def _encode_group(batch: FixBatch, index: np.ndarray, present: int, text_size: int) -> bytes:
    r = batch.records[index]
    out = np.empty(len(r), dtype=_layout(present, text_size))
    out["count"] = len(_COPY_COLUMNS)
    for k, (name, kind) in enumerate(_COPY_COLUMNS):
        if k >= 6 and not present & (1 << (k - 6)):
            out[f"{name}_len"] = -1
        elif name == "point":
            out["point_len"] = 25
            out["point_order"] = 1
            out["point_type"] = _EWKB_POINT_SRID
            out["point_srid"] = 4326
            out["point_x"] = r["lon"]
            out["point_y"] = r["lat"]
        elif name == "attributes":
            out["attributes_len"] = text_size + 1
            out["jsonb_version"] = 1
            if text_size:
                at = batch.offsets[index][:, None] + np.arange(text_size)
                out["attributes"] = batch.blob[at]
        else:
            out[f"{name}_len"] = np.dtype(kind).itemsize
            out[name] = _column(r, name)
    return out.tobytes()


_SOURCE = {
    "vehicle_id": "vehicle",
    "device_id": "device",
    "speed_kmh": "speed",
    "heading_deg": "heading",
    "altitude_m": "altitude",
    "ignition": "ignition",
    "odometer_km": "odometer",
    "fuel_l": "fuel",
}


def _column(r: np.ndarray, name: str) -> np.ndarray:
    if name == "fix_time":
        return (r["fix_ms"] - _PG_EPOCH_MS) * 1000  # type: ignore[no-any-return]
    if name == "received_at":
        return (r["received_ms"] - _PG_EPOCH_MS) * 1000  # type: ignore[no-any-return]
    if name in ("alarm_bits", "status_bits"):
        # unsigned 32-bit words on the wire; int4 is signed
        return r["alarm" if name == "alarm_bits" else "status"].astype(np.uint32).view(np.int32)
    return r[_SOURCE[name]]  # type: ignore[no-any-return]


def _json_or_none(text: bytes | None) -> bool:
    if text is None:
        return True
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:  # UnicodeDecodeError too
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


def window_ms(now_ms: int, settings: TelematicsSettings) -> tuple[int, int]:
    """The fix times stored, as epoch ms (low, high): what the gateways admit (`check_fix`)."""
    return (
        now_ms - round(settings.max_past_days * 86_400_000),
        now_ms + round(settings.max_future_s * 1000),
    )


def within(start: datetime, low_ms: int, high_ms: int) -> bool:
    """Whether the month from `start` holds any moment of the window: no partition is ever made
    for another month, whatever date a fix carries (1970, say)."""
    return _next_month(start).timestamp() * 1000 > low_ms and start.timestamp() * 1000 <= high_ms


def partition_name(start: datetime) -> str:
    return f"position_p{start:%Y%m}"


def partition_sql(start: datetime) -> str:
    """The statement making the partition of `position` for the month from `start` (nothing
    when it exists), through the owner's function (migration 0013): the processes' role makes
    no tables. The bound is written here from a datetime, never from input."""
    return f"SELECT fleet_position_partition('{start.isoformat()}'::timestamptz)"


class BatchObserver(Protocol):
    """More work on every batch, plugged in by the composition root (the geofence engine).

    `evaluate` runs before the transaction on the batch's well-formed fixes in (vehicle, fix
    time) order, vehicle k's being `batch.records[starts[k]:starts[k + 1]]`; `write` runs inside
    it (and again if the transaction is retried); `after_commit` queues its Redis writes in the
    pipeline that acknowledges the entries (no PUBLISH: a cluster's pipeline refuses it);
    `committed` runs once that pipeline has executed, and publishes what there is to announce.
    A batch that fails is evaluated again from the same state."""

    def evaluate(self, batch: FixBatch, starts: np.ndarray) -> Any: ...

    def write(self, conn: psycopg.Connection[Any], pending: Any) -> None: ...

    def after_commit(self, pipe: RedisPipeline, pending: Any) -> None: ...

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
    redis: RedisClient
    settings: TelematicsSettings
    index: int = 0
    count: int = 1
    consumer: str = ""
    block_ms: int = 1000
    observers: Sequence[BatchObserver] = ()
    clock: Callable[[], float] = time.time  # epoch seconds: "now" for the time window
    _shards: list[int] = field(default_factory=list)
    _slot_groups: list[list[str]] = field(default_factory=list)
    _partitions: set[str] = field(default_factory=set)
    _vehicles: dict[int, _Vehicle] = field(default_factory=dict)
    _own_pending_done: bool = False
    _last_claim: float = 0.0

    def __post_init__(self) -> None:
        self._shards = stream.owned_shards(self.settings.stream_shards, self.index, self.count)
        self._slot_groups = slot_groups(self.redis, [stream.stream_key(s) for s in self._shards])
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
        """The next batch's entries: at most `ingest_batch_entries`, and no more once it holds
        `ingest_batch_fixes` fixes, read a few at a time so that the bound holds whatever an
        entry's size."""
        keys = [stream.stream_key(s) for s in self._shards]
        entries, fixes = self.settings.ingest_batch_entries, self.settings.ingest_batch_fixes
        chunk = max(1, min(32, entries // len(keys)))  # per stream and read
        if not self._own_pending_done:
            # After a restart, what this consumer read but never acknowledged comes first.
            found = [e for e in self._read_shards("0", chunk) if e[2]]
            if found:
                return found
            self._own_pending_done = True
        if time.monotonic() - self._last_claim > self.settings.ingest_claim_idle_s / 2:
            self._last_claim = time.monotonic()
            claimed = self._claim_abandoned(keys, chunk)
            if claimed:
                return claimed
        found = self._read_shards(">", chunk, block_ms=self.block_ms)
        # Under a steady flow each read returns a few small entries; a batch that small pays the
        # transaction's fixed cost, and each vehicle's state work, for a fix or two. Linger to
        # fill it (the map does not wait: the gateways put positions live themselves).
        held = sum(_fixes_in(f) for _, _, f in found)
        deadline = time.monotonic() + self.settings.ingest_linger_ms / 1000
        while found and len(found) < entries and held < fixes:
            added = self._read_shards(">", max(1, min(chunk, (entries - len(found)) // len(keys))))
            if not added:
                if time.monotonic() >= deadline:
                    break
                time.sleep(0.01)
                continue
            held += sum(_fixes_in(f) for _, _, f in added)
            found += added
        return found

    def _read_shards(
        self, start: str, count: int, block_ms: int | None = None
    ) -> list[tuple[str, bytes, dict[bytes, bytes]]]:
        """One XREADGROUP round over the owned shards from `start` ("0": this consumer's pending
        entries, ">": new ones), at most `count` entries a shard, waiting up to `block_ms` for
        any. A single server takes all the shards in one blocking command. A cluster refuses a
        command across hash slots: there it is one command per slot, pipelined (the client sends
        each master its share at once), and the wait is polled every `CLUSTER_POLL_S`."""
        if len(self._slot_groups) == 1:
            keys = self._slot_groups[0]
            reply: Any = self.redis.xreadgroup(
                stream.GROUP, self.consumer, dict.fromkeys(keys, start), count=count, block=block_ms
            )
            return _entries(reply)
        deadline = time.monotonic() + (block_ms or 0) / 1000
        while True:
            with self.redis.pipeline(transaction=False) as pipe:
                for keys in self._slot_groups:
                    pipe.xreadgroup(
                        stream.GROUP, self.consumer, dict.fromkeys(keys, start), count=count
                    )
                replies = pipe.execute()
            found = [e for reply in replies for e in _entries(reply)]
            if found or time.monotonic() >= deadline:
                return found
            time.sleep(CLUSTER_POLL_S)

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
        if not entries:
            return BatchResult()
        try:
            return self._process(entries)
        except BaseException:
            self._vehicles.clear()  # half-updated states: see `_segment`
            raise

    def _process(self, entries: list[tuple[str, bytes, dict[bytes, bytes]]]) -> BatchResult:
        result = BatchResult(entries=len(entries))
        parts: list[FixBatch] = []
        broken: Counter[str] = Counter()
        for _, _, fields in entries:
            try:
                part, dropped = read_entry(fields)
            except (KeyError, ValueError, TypeError):
                result.broken_entries += 1
                broken["broken_stream_entry"] += 1
                continue
            parts.append(part)
            if dropped:
                broken["broken_stream_row"] += dropped
        batch = FixBatch.concat(parts)
        valid = well_formed_mask(batch)
        if not valid.all():
            broken["broken_stream_row"] += int((~valid).sum())
            batch = batch.take(np.flatnonzero(valid))
        batch = self._within_window(batch, broken)
        result.fixes = len(batch)
        ordered, starts = in_order(batch)
        result.duplicates = result.fixes - len(ordered)
        vehicle_ids = ordered["vehicle"][starts[:-1]].tolist()
        self._load_vehicles(vehicle_ids)
        with self._copying(ordered) as copying:
            segments, states = self._segment(ordered, starts, vehicle_ids)
            latest = self._latest(ordered, starts, vehicle_ids)
            # Where each vehicle is now, for the snapshot a new map starts from (the live
            # channel itself is fed by the gateways as fixes enter the stream).
            self._remember_latest(ordered, latest)
            pending = [(o, o.evaluate(ordered, starts)) for o in self.observers]
            stored = copying.commit(segments, pending)
        result.stored = stored
        result.duplicates += len(ordered) - stored
        result.trips = sum(1 for _, s in segments if isinstance(s, trips.Trip))
        result.stops = len(segments) - result.trips
        self._after_commit(entries, states, ordered, latest, result, broken, pending)
        return result

    def _within_window(self, batch: FixBatch, dropped: Counter[str]) -> FixBatch:
        """The fixes dated inside the allowed window. The gateways admit no others; one that
        reached the stream another way, or waited there too long, is dropped and counted as
        they count it."""
        low, high = window_ms(round(self.clock() * 1000), self.settings)
        fix_ms = batch["fix_ms"]
        old, ahead = fix_ms < low, fix_ms > high
        if not (old.any() or ahead.any()):
            return batch
        dropped["dropped_too_old"] += int(old.sum())
        dropped["dropped_future_time"] += int(ahead.sum())
        return batch.take(np.flatnonzero(~(old | ahead)))

    def _load_vehicles(self, vehicle_ids: list[int]) -> None:
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
        self, ordered: FixBatch, starts: np.ndarray, vehicle_ids: list[int]
    ) -> tuple[list[tuple[int, trips.Segment]], dict[int, trips.State]]:
        """Trips and stops each vehicle's fixes closed, and each vehicle's segmentation state after
        them. The remembered states are taken over: should the batch fail, they are forgotten and
        read again from Redis, which has them as of the last commit."""
        before = [m.trip_state for m in map(self._vehicles.__getitem__, vehicle_ids)]
        r = ordered.records
        after, closed = trips.advance(
            before,
            starts,
            r["fix_ms"] / 1000,
            r["lat"],
            r["lon"],
            r["speed"],
            r["ignition"],
            r["odometer"],
            self._thresholds,
        )
        segments = [(vehicle_ids[k], segment) for k, segment in closed]
        return segments, dict(zip(vehicle_ids, after, strict=True))

    def _latest(
        self, ordered: FixBatch, starts: np.ndarray, vehicle_ids: list[int]
    ) -> dict[int, int]:
        """Per vehicle, the index of its newest fix with a position, if newer than the last one
        remembered."""
        r = ordered.records
        positioned = np.where(np.isnan(r["lat"]), -1, np.arange(len(r)))
        newest = np.maximum.reduceat(positioned, starts[:-1])
        known = np.fromiter(
            (self._vehicles[v].last_fix_ms for v in vehicle_ids), np.int64, len(vehicle_ids)
        )
        shown = newest >= 0
        shown[shown] = r["fix_ms"][newest[shown]] > known[shown]
        picked = np.flatnonzero(shown)
        return dict(
            zip(
                [vehicle_ids[k] for k in picked.tolist()],
                newest[picked].tolist(),
                strict=True,
            )
        )

    # ---- storing ----------------------------------------------------------------------------

    def _ensure_partitions(self, conn: psycopg.Connection[Any], fix_ms: np.ndarray) -> None:
        days = np.unique(fix_ms // 86_400_000).tolist()
        months = {month_start(day * 86_400_000) for day in days}
        low, high = window_ms(round(self.clock() * 1000), self.settings)
        for start in sorted(months):
            name = partition_name(start)
            if name in self._partitions:
                continue
            if not within(start, low, high):
                raise ValueError(f"{name} is outside the allowed time window")
            with conn.transaction():  # two workers meeting a new month: the function locks
                conn.execute(partition_sql(start))
            self._partitions.add(name)

    @contextlib.contextmanager
    def _copying(self, ordered: FixBatch) -> Iterator[_Copying]:
        """The batch's COPY, sent in a thread inside an open transaction while the caller segments
        trips and runs the rules: PostgreSQL stores the fixes on one core as Python works on the
        other. `commit` then writes the rest in the same transaction."""
        with self.engine.connect() as sa_conn:
            conn: psycopg.Connection[Any] = sa_conn.connection.driver_connection  # type: ignore[assignment]
            conn.autocommit = True
            try:
                self._ensure_partitions(conn, ordered["fix_ms"])
                conn.autocommit = False  # the COPY opens the transaction
                copying = _Copying(self, conn, ordered)
                try:
                    yield copying
                finally:
                    copying.join()
                    if not copying.done:
                        conn.rollback()
            finally:
                conn.autocommit = False

    def _store(
        self,
        ordered: FixBatch,
        segments: list[tuple[int, trips.Segment]],
        pending: Sequence[tuple[BatchObserver, Any]] = (),
    ) -> int:
        """Commit fixes and segments in one transaction; returns the number of fixes stored.

        Attribute texts go to jsonb unparsed (the gateways made them); should the database refuse
        one, the batch is stored again without the fixes whose text is not JSON."""
        try:
            try:
                return self._store_once(ordered, segments, pending)
            except pg_errors.CheckViolation:
                # No partition for a fix's month: it was archived (telematics.archive) since
                # this worker saw it. The month is made anew and archived later as a new part.
                self._partitions.clear()
                return self._store_once(ordered, segments, pending)
        except pg_errors.DataError:
            valid = np.array(
                [_json_or_none(ordered.attributes(i)) for i in range(len(ordered))], dtype=bool
            )
            self.redis.hincrby(stream.COUNTERS, "broken_stream_row", int((~valid).sum()))
            return self._store_once(ordered.take(np.flatnonzero(valid)), segments, pending)

    def _store_once(
        self,
        ordered: FixBatch,
        segments: list[tuple[int, trips.Segment]],
        pending: Sequence[tuple[BatchObserver, Any]],
    ) -> int:
        with self.engine.connect() as sa_conn:
            conn: psycopg.Connection[Any] = sa_conn.connection.driver_connection  # type: ignore[assignment]
            conn.autocommit = True
            try:
                self._ensure_partitions(conn, ordered["fix_ms"])
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

    def _remember_latest(self, ordered: FixBatch, latest: dict[int, int]) -> None:
        """Each vehicle's newest fix of the batch as its last position (never an older one: the
        worker remembers the last fix of each vehicle)."""
        if not latest:
            return
        items = ordered.live_items(list(latest.values()))
        self.redis.hset(
            stream.LAST_POSITIONS,
            mapping=dict(zip(latest, map(stream.dumps, items), strict=True)),
        )

    def _after_commit(
        self,
        entries: list[tuple[str, bytes, dict[bytes, bytes]]],
        states: dict[int, trips.State],
        ordered: FixBatch,
        latest: dict[int, int],
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
        fix_ms = ordered["fix_ms"]
        for vehicle_id, index in latest.items():
            self._vehicles[vehicle_id].last_fix_ms = int(fix_ms[index])

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


# How often a worker on a cluster asks its shards again while they are empty (in s): at most this
# late for a fix, and a few small reads a second per idle worker.
CLUSTER_POLL_S = 0.02


def _entries(reply: Any) -> list[tuple[str, bytes, dict[bytes, bytes]]]:
    """(stream key, entry id, fields) for each entry of an XREADGROUP reply; a pending entry
    deleted since has no fields."""
    return [(k.decode(), i, f) for k, items in reply or () for i, f in items]


def _fixes_in(fields: dict[bytes, bytes]) -> int:
    """How many fixes a stream entry holds, without reading them (an older entry counts one)."""
    records = fields.get(RECORDS)
    return len(records) // RECORD.itemsize if records is not None else 1


class _Copying(threading.Thread):
    """A batch's COPY into `position` on its own thread (see `IngestWorker._copying`)."""

    def __init__(
        self, worker: IngestWorker, conn: psycopg.Connection[Any], ordered: FixBatch
    ) -> None:
        super().__init__(name="ingest-copy", daemon=True)
        self.worker, self.conn, self.ordered = worker, conn, ordered
        self.error: BaseException | None = None
        self.done = False
        self.start()

    def run(self) -> None:
        try:
            self.worker._copy(self.conn, "position", encode_copy(self.ordered))
        except BaseException as error:  # handed to the caller by `commit`
            self.error = error

    def commit(
        self,
        segments: list[tuple[int, trips.Segment]],
        pending: Sequence[tuple[BatchObserver, Any]],
    ) -> int:
        """Writes the segments and the observers' rows after the fixes, and commits; returns the
        number of fixes stored. Fixes stored already (a replayed batch) or refused by the
        database (an attribute text that is not JSON) are stored by the careful path instead."""
        self.join()
        conn = self.conn
        if self.error is None:
            self.worker._write_segments(conn, segments)
            for observer, work in pending:
                observer.write(conn, work)
            conn.commit()
            self.done = True
            return len(self.ordered)
        conn.rollback()
        self.done = True
        if isinstance(
            self.error,
            pg_errors.UniqueViolation | pg_errors.DataError | pg_errors.CheckViolation,
        ):
            return self.worker._store(self.ordered, segments, pending)
        raise self.error


def _is_store_error(error: BaseException) -> bool:
    """PostgreSQL or Redis unreachable (raw driver errors, or SQLAlchemy's wrapping of them; a
    Redis Cluster without a master for some slot)."""
    if isinstance(
        error, psycopg.OperationalError | OSError | RedisConnectionError | ClusterDownError
    ):
        return True
    return isinstance(error, DBAPIError) and (
        error.connection_invalidated or isinstance(error.orig, psycopg.OperationalError)
    )
