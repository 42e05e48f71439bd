"""Tiered storage of positions: a monthly partition older than FLEET_HOT_MONTHS leaves PostGIS for
GeoParquet files (zstd, sorted by vehicle and time, Hive-partitioned by month, the point as WKB
with GeoParquet metadata) under FLEET_ARCHIVE_URL, a local folder or any fsspec URL (s3://...).

Archiving a month goes in steps, each of which may be interrupted without loss:

1. `exported`: the partition is written, in one snapshot, to files under `_incoming/`;
2. `verified`: each file is read back from the storage: its rows, first and last fix times and
   SHA-256 must be what was written;
3. `placed`: the files move to `position/month=YYYY-MM/`;
4. `recorded`: `fleet_archive_record` (migration 0015) checks the partition against the files'
   totals and records them (state `verified`);
5. `dropped`: `fleet_archive_drop` counts the partition again under a lock, detaches and drops it
   and marks the part `archived`, with an audit entry, in one transaction.

Until step 5 commits the month is read from PostGIS; from then on from the files (telematics.
tracks). A crash before step 4 leaves the partition (the next run starts the month again); a
crash after it leaves a recorded archive, whose files the next run checks again before dropping.
A fix arriving later for an archived month makes the partition anew; the next run archives it
as the month's next part."""

from __future__ import annotations

import hashlib
import io
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import fsspec
import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from psycopg import errors as pg_errors
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from fleet import audit
from fleet.db import make_session_factory, unit_of_work
from fleet.errors import Invalid, NotFound
from telematics.settings import TelematicsSettings

log = logging.getLogger("fleet.archive")

ATTEMPTS = 3  # writes of a month that keeps receiving late fixes before giving up for the day
STEPS = ("exported", "verified", "placed", "recorded", "dropped")
FILE_ROWS = 16_000_000  # rows in one file at most (a province's month is ~900 million)
ROW_GROUP_ROWS = 131_072  # a vehicle-day (~1,000 fixes) reads one or two row groups
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
UTC_US = pa.timestamp("us", tz="UTC")

SCHEMA = pa.schema(
    [
        pa.field("vehicle_id", pa.int32(), nullable=False),
        pa.field("fix_time", UTC_US, nullable=False),
        pa.field("device_id", pa.int32(), nullable=False),
        pa.field("received_at", UTC_US),
        pa.field("point", pa.binary()),
        pa.field("speed_kmh", pa.float32()),
        pa.field("heading_deg", pa.float32()),
        pa.field("altitude_m", pa.float32()),
        pa.field("ignition", pa.bool_()),
        pa.field("odometer_km", pa.float64()),
        pa.field("fuel_l", pa.float32()),
        pa.field("alarm_bits", pa.int32()),
        pa.field("status_bits", pa.int32()),
        pa.field("attributes", pa.string()),  # the jsonb's text
    ]
)
# GeoParquet 1.1: the point column as WKB in OGC:CRS84 (longitude, latitude on WGS 84: the
# default when `crs` is left out).
GEO = {
    "version": "1.1.0",
    "primary_column": "point",
    "columns": {"point": {"encoding": "WKB", "geometry_types": ["Point"]}},
}
FLOATS = ["speed_kmh", "heading_deg", "altitude_m", "odometer_km", "fuel_l"]

# The partition as CSV (read through `position`: the processes' role reads no partition by
# name), in the files' order; times as epoch microseconds, the point as its two
# coordinates (the WKB is made here, 21 bytes a point), every float in its shortest exact text.
EXPORT = (
    "COPY (SELECT vehicle_id, (extract(epoch FROM fix_time) * 1000000)::bigint, device_id,"
    " (extract(epoch FROM received_at) * 1000000)::bigint, ST_X(point), ST_Y(point), speed_kmh,"
    " heading_deg, altitude_m, ignition, odometer_km, fuel_l, alarm_bits, status_bits,"
    " attributes::text FROM position WHERE fix_time >= '{start}' AND fix_time < '{end}'"
    " ORDER BY vehicle_id, fix_time, device_id)"
    " TO STDOUT (FORMAT csv)"
)
CSV_TYPES = {
    "vehicle_id": pa.int32(),
    "fix_us": pa.int64(),
    "device_id": pa.int32(),
    "received_us": pa.int64(),
    "lon": pa.float64(),
    "lat": pa.float64(),
    "speed_kmh": pa.float32(),
    "heading_deg": pa.float32(),
    "altitude_m": pa.float32(),
    "ignition": pa.bool_(),
    "odometer_km": pa.float64(),
    "fuel_l": pa.float32(),
    "alarm_bits": pa.int32(),
    "status_bits": pa.int32(),
    "attributes": pa.string(),
}
WKB_POINT = np.dtype([("order", "u1"), ("kind", "<u4"), ("x", "<f8"), ("y", "<f8")])


class ArchiveError(RuntimeError):
    """A file does not hold what was written, or the storage failed."""


# ---- the storage --------------------------------------------------------------------------


@dataclass(frozen=True)
class Store:
    """The archive's storage: an fsspec filesystem and the root under it."""

    fs: Any
    root: str
    url: str

    @classmethod
    def open(cls, url: str, options: dict[str, str] | None = None) -> Store:
        """The storage at `url`; a local folder's url is made absolute (it is recorded with
        each archived part, for the readers)."""
        try:
            fs, root = fsspec.core.url_to_fs(url, **(options or {}))
        except (ImportError, ValueError) as error:  # an unknown scheme, a package not installed
            extra = " (pip install fleet[s3])" if url.startswith(("s3://", "s3a://")) else ""
            raise Invalid(
                f"the archive's storage {url!r} cannot be opened: {error}{extra}",
                field="FLEET_ARCHIVE_URL",
            ) from None
        root = root.rstrip("/")
        store = cls(fs=fs, root=root, url=url)
        return cls(fs=fs, root=root, url=root) if store.local else store

    @classmethod
    def from_settings(cls, settings: TelematicsSettings) -> Store:
        return cls.open(settings.archive_url, settings.archive_options)

    @property
    def protocol(self) -> str:
        protocol = self.fs.protocol
        return protocol[0] if isinstance(protocol, tuple) else protocol

    @property
    def local(self) -> bool:
        """Whether the files are plain local paths (DuckDB reads those itself)."""
        return self.protocol in ("file", "local")

    def url_of(self, relative: str) -> str:
        """A file's URL, for a reader going through this storage's filesystem."""
        return f"{self.protocol}://{self.full_path(relative).lstrip('/')}"

    def month_dir(self, month: date) -> str:
        return f"{self.root}/position/month={month:%Y-%m}"

    def incoming_dir(self, month: date) -> str:
        return f"{self.root}/_incoming/position/month={month:%Y-%m}"

    def full_path(self, relative: str) -> str:
        return f"{self.root}/{relative}"

    def relative(self, path: str) -> str:
        return path[len(self.root) + 1 :]

    def clear(self, folder: str) -> None:
        if self.fs.exists(folder):
            self.fs.rm(folder, recursive=True)

    def sha256(self, path: str) -> str:
        digest = hashlib.sha256()
        with self.fs.open(path, "rb") as f:
            while chunk := f.read(1 << 22):
                digest.update(chunk)
        return digest.hexdigest()


class _Hashing(io.RawIOBase):
    """A writable file that hashes what passes through it to the storage's file."""

    def __init__(self, target: Any) -> None:
        self.target = target
        self.digest = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self.digest.update(view)
        self.target.write(view)
        self.size += len(view)
        return len(view)

    def tell(self) -> int:
        return self.size

    def close(self) -> None:
        if not self.closed:
            self.target.close()
        super().close()


# ---- what is archived -----------------------------------------------------------------------


@dataclass(frozen=True)
class ArchivedFile:
    path: str  # relative to the archive's root
    rows: int
    bytes: int
    sha256: str
    min_time: datetime
    max_time: datetime

    def as_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "rows": self.rows,
            "bytes": self.bytes,
            "sha256": self.sha256,
            "min_time": self.min_time.isoformat(),
            "max_time": self.max_time.isoformat(),
        }

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> ArchivedFile:
        return cls(
            path=value["path"],
            rows=int(value["rows"]),
            bytes=int(value["bytes"]),
            sha256=value["sha256"],
            min_time=datetime.fromisoformat(value["min_time"]),
            max_time=datetime.fromisoformat(value["max_time"]),
        )


@dataclass
class Archived:
    month: date
    part: int
    rows: int = 0
    files: list[ArchivedFile] = field(default_factory=list)
    resumed: bool = False  # a part recorded by an earlier, interrupted run

    @property
    def bytes(self) -> int:
        return sum(f.bytes for f in self.files)

    @property
    def min_time(self) -> datetime | None:
        return min((f.min_time for f in self.files), default=None)

    @property
    def max_time(self) -> datetime | None:
        return max((f.max_time for f in self.files), default=None)


Progress = Callable[[int, int], None]  # (rows done, rows in all)
Step = Callable[[str], None]


def _nothing(*_: object) -> None:
    return None


def partition_table(month: date) -> str:
    return f"position_p{month:%Y%m}"


def month_of(text_: str) -> date:
    """`YYYY-MM` as the month's first day, or a clear error."""
    try:
        moment = datetime.strptime(text_, "%Y-%m")
    except ValueError:
        raise Invalid(f"{text_!r} is not a month (YYYY-MM)", field="month") from None
    return moment.date()


def add_months(month: date, months: int) -> date:
    index = month.year * 12 + month.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def hot_partitions(session: Session) -> list[date]:
    """The months `position` has a partition for, oldest first."""
    names = session.scalars(
        text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = 'position'::regclass AND c.relname ~ '^position_p[0-9]{6}$'"
            " ORDER BY c.relname"
        )
    ).all()
    return [date(int(n[10:14]), int(n[14:16]), 1) for n in names]


def months_due(session: Session, now: datetime, hot_months: int) -> list[date]:
    """The partitions older than the current month and the `hot_months` before it (UTC)."""
    first_kept = add_months(date(now.year, now.month, 1), -hot_months)
    return [m for m in hot_partitions(session) if m < first_kept]


def archived_parts(session: Session, month: date) -> list[Any]:
    return list(
        session.execute(
            text("SELECT * FROM archive_partition WHERE month = :m ORDER BY part"), {"m": month}
        ).mappings()
    )


# ---- archiving --------------------------------------------------------------------------------


def archive_month(
    engine: Engine,
    store: Store,
    month: date,
    *,
    progress: Progress = _nothing,
    step: Step = _nothing,
) -> Archived:
    """Archives the month's partition (see the module's steps); returns what was archived."""
    factory = make_session_factory(engine)
    with factory() as session:
        if month not in hot_partitions(session):
            raise NotFound(f"positions of {month:%Y-%m} have no partition in PostGIS")
        parts = archived_parts(session, month)
    pending = [p for p in parts if p["state"] == "verified"]
    part = pending[0]["part"] if pending else max((p["part"] for p in parts), default=0) + 1
    result = _recheck(store, pending[0]) if pending else None
    for attempt in range(1, ATTEMPTS + 1):
        if result is None:
            result = _written(engine, store, month, part, progress, step)
        try:
            with unit_of_work(factory) as session:
                session.execute(
                    text("SELECT fleet_archive_drop(:m, :p)"), {"m": month, "p": result.part}
                )
                audit.record(
                    session=session,
                    actor=audit.SYSTEM,
                    action="archive",
                    entity="position",
                    entity_id=f"{month:%Y-%m}",
                    after={
                        "part": result.part,
                        "rows": result.rows,
                        "bytes": result.bytes,
                        "url": store.url,
                        "files": [f.as_json() for f in result.files],
                    },
                )
            break
        except DBAPIError as error:
            if not isinstance(error.orig, pg_errors.SerializationFailure) or attempt == ATTEMPTS:
                raise
            # Fixes arrived for the month since it was written: write it again.
            log.warning("%s; archiving %s again", error.orig, f"{month:%Y-%m}")
            result = None
    assert result is not None
    step("dropped")
    log.info(
        "positions of %s archived: part %d, %d rows in %d files, %d bytes",
        f"{month:%Y-%m}",
        result.part,
        result.rows,
        len(result.files),
        result.bytes,
    )
    return result


def _written(
    engine: Engine, store: Store, month: date, part: int, progress: Progress, step: Step
) -> Archived:
    """Steps 1 to 4: the month exported, verified, placed and recorded."""
    result = _export(engine, store, month, part, progress)
    step("exported")
    _verify(store, result)
    step("verified")
    _place(store, result)
    step("placed")
    with unit_of_work(make_session_factory(engine)) as session:
        session.execute(
            text(
                "SELECT fleet_archive_record(:m, :p, :rows, :first, :last,"
                " CAST(:files AS jsonb), :bytes, :url)"
            ),
            {
                "m": month,
                "p": result.part,
                "rows": result.rows,
                "first": result.min_time,
                "last": result.max_time,
                "files": json.dumps([f.as_json() for f in result.files]),
                "bytes": result.bytes,
                "url": store.url,
            },
        )
    step("recorded")
    return result


def _recheck(store: Store, row: Any) -> Archived | None:
    """A part recorded by an interrupted run, when its files still hold what was recorded."""
    files = [ArchivedFile.from_json(f) for f in row["files"]]
    recorded = Archived(month=row["month"], part=row["part"], rows=row["rows"], files=files)
    try:
        _verify(store, recorded)
    except (ArchiveError, OSError) as error:
        log.warning("the recorded files of %s are not intact (%s); archiving again", row, error)
        return None
    recorded.resumed = True
    return recorded


def _export(engine: Engine, store: Store, month: date, part: int, progress: Progress) -> Archived:
    """Writes the partition, in one snapshot, to files under `_incoming/`."""
    incoming = store.incoming_dir(month)
    store.clear(incoming)
    store.fs.makedirs(incoming, exist_ok=True)
    result = Archived(month=month, part=part)
    start = datetime(month.year, month.month, 1, tzinfo=UTC)
    bounds = {
        "start": start.isoformat(),
        "end": datetime.combine(add_months(month, 1), datetime.min.time(), UTC).isoformat(),
    }
    with engine.connect() as sa_conn:
        conn: psycopg.Connection[Any] = sa_conn.connection.driver_connection  # type: ignore[assignment]
        conn.autocommit = False
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        total = conn.execute(
            "SELECT count(*) FROM position WHERE fix_time >= %(start)s AND fix_time < %(end)s",
            bounds,
        ).fetchone()[0]  # type: ignore[index]
        progress(0, total)
        with conn.cursor() as cur, cur.copy(EXPORT.format(**bounds)) as copy:
            writer = _Writer(store, incoming, result)
            for batch in _csv_batches(copy):
                writer.write(_converted(batch))
                progress(writer.done, total)
            writer.finish()
        conn.rollback()
    return result


def _csv_batches(copy: Any) -> Iterator[pa.RecordBatch]:
    reader = pacsv.open_csv(
        io.BufferedReader(_CopyReader(copy), buffer_size=1 << 20),
        read_options=pacsv.ReadOptions(column_names=list(CSV_TYPES), block_size=8 << 20),
        convert_options=pacsv.ConvertOptions(
            column_types=CSV_TYPES,
            true_values=["t"],
            false_values=["f"],
            null_values=[""],
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
        ),
    )
    yield from reader


class _CopyReader(io.RawIOBase):
    """psycopg's COPY TO STDOUT as a readable file."""

    def __init__(self, copy: Any) -> None:
        self.chunks = iter(copy)
        self.rest = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self.rest:
            chunk = next(self.chunks, None)
            if chunk is None:
                return 0
            self.rest = memoryview(chunk)
        size = min(len(buffer), len(self.rest))
        buffer[:size] = self.rest[:size]
        self.rest = self.rest[size:]
        return size


def wkb_points(lon: pa.Array, lat: pa.Array) -> pa.Array:
    """Little-endian WKB points (21 bytes each) from the coordinates; null where they are."""
    n = len(lon)
    valid = np.asarray(pc.is_valid(lon), dtype=bool)
    points = np.zeros(int(valid.sum()), dtype=WKB_POINT)
    points["order"] = 1
    points["kind"] = 1
    points["x"] = np.asarray(lon.filter(valid), dtype=np.float64)
    points["y"] = np.asarray(lat.filter(valid), dtype=np.float64)
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(np.where(valid, WKB_POINT.itemsize, 0), out=offsets[1:])
    validity = pa.array(valid).buffers()[1] if not valid.all() else None
    return pa.Array.from_buffers(
        pa.binary(),
        n,
        [validity, pa.py_buffer(offsets.tobytes()), pa.py_buffer(points.tobytes())],
        null_count=n - int(valid.sum()),
    )


def _converted(batch: pa.RecordBatch) -> pa.Table:
    columns = dict(zip(batch.schema.names, batch.columns, strict=True))
    return pa.table(
        {
            "vehicle_id": columns["vehicle_id"],
            "fix_time": columns["fix_us"].cast(UTC_US),
            "device_id": columns["device_id"],
            "received_at": columns["received_us"].cast(UTC_US),
            "point": wkb_points(columns["lon"], columns["lat"]),
            **{name: columns[name] for name in SCHEMA.names[5:]},
        },
        schema=SCHEMA,
    )


class _Writer:
    """Parquet files of FILE_ROWS rows at most, each hashed as it is written."""

    def __init__(self, store: Store, folder: str, result: Archived) -> None:
        self.store = store
        self.folder = folder
        self.result = result
        self.done = 0
        self.pending: list[pa.Table] = []
        self.pending_rows = 0
        self.file: _Hashing | None = None
        self.writer: pq.ParquetWriter | None = None
        self.file_rows = 0
        self.times: list[tuple[datetime, datetime]] = []

    def write(self, table: pa.Table) -> None:
        self.done += table.num_rows
        self.pending.append(table)
        self.pending_rows += table.num_rows
        if self.pending_rows >= ROW_GROUP_ROWS:
            self._flush()

    def _flush(self) -> None:
        if not self.pending_rows:
            return
        table = pa.concat_tables(self.pending)
        self.pending, self.pending_rows = [], 0
        offset = 0
        while offset < table.num_rows:
            if self.writer is None:
                self._open()
            assert self.writer is not None
            size = min(table.num_rows - offset, FILE_ROWS - self.file_rows)
            chunk = table.slice(offset, size)
            self.writer.write_table(chunk, row_group_size=ROW_GROUP_ROWS)
            bounds = pc.min_max(chunk["fix_time"]).as_py()
            self.times.append((bounds["min"], bounds["max"]))
            self.file_rows += size
            offset += size
            if self.file_rows >= FILE_ROWS:
                self._close()

    def _open(self) -> None:
        name = f"part-{self.result.part}-{len(self.result.files):04d}.parquet"
        self.path = f"{self.folder}/{name}"
        self.file = _Hashing(self.store.fs.open(self.path, "wb"))
        self.writer = pq.ParquetWriter(
            self.file,
            SCHEMA.with_metadata({b"geo": json.dumps(GEO).encode()}),
            compression="zstd",
            compression_level=9,
            use_dictionary=["attributes"],
            use_byte_stream_split=FLOATS,
            column_encoding={
                "vehicle_id": "DELTA_BINARY_PACKED",
                "fix_time": "DELTA_BINARY_PACKED",
                "received_at": "DELTA_BINARY_PACKED",
                "device_id": "DELTA_BINARY_PACKED",
                "alarm_bits": "DELTA_BINARY_PACKED",
                "status_bits": "DELTA_BINARY_PACKED",
            },
            write_statistics=["vehicle_id", "fix_time"],
        )
        self.file_rows = 0
        self.times = []

    def _close(self) -> None:
        assert self.writer is not None
        assert self.file is not None
        self.writer.close()
        self.file.close()
        self.result.files.append(
            ArchivedFile(
                path=self.store.relative(self.path),
                rows=self.file_rows,
                bytes=self.file.size,
                sha256=self.file.digest.hexdigest(),
                min_time=min(t[0] for t in self.times),
                max_time=max(t[1] for t in self.times),
            )
        )
        self.result.rows += self.file_rows
        self.writer, self.file = None, None

    def finish(self) -> None:
        self._flush()
        if self.writer is not None:
            self._close()


def _verify(store: Store, result: Archived) -> None:
    """Each file, read back from the storage, holds what was written: its bytes' SHA-256, its
    rows, and its first and last fix times."""
    for f in result.files:
        path = store.full_path(f.path)
        digest = store.sha256(path)
        if digest != f.sha256:
            raise ArchiveError(f"{f.path}: SHA-256 {digest}, written {f.sha256}")
        with store.fs.open(path, "rb") as handle:
            parquet = pq.ParquetFile(handle)
            rows = parquet.metadata.num_rows
            times = parquet.read(columns=["fix_time"])["fix_time"]
        bounds = pc.min_max(times).as_py()
        if (rows, bounds["min"], bounds["max"]) != (f.rows, f.min_time, f.max_time):
            raise ArchiveError(
                f"{f.path}: {rows} rows from {bounds['min']} to {bounds['max']}, written"
                f" {f.rows} from {f.min_time} to {f.max_time}"
            )


def _place(store: Store, result: Archived) -> None:
    """Moves the verified files from `_incoming/` to the month's folder."""
    folder = store.month_dir(result.month)
    store.fs.makedirs(folder, exist_ok=True)
    placed = []
    for f in result.files:
        target = f"{folder}/{f.path.rsplit('/', 1)[1]}"
        store.fs.mv(store.full_path(f.path), target)
        placed.append(
            ArchivedFile(
                path=store.relative(target),
                rows=f.rows,
                bytes=f.bytes,
                sha256=f.sha256,
                min_time=f.min_time,
                max_time=f.max_time,
            )
        )
    result.files = placed
    store.clear(store.incoming_dir(result.month))


def verify_archived(
    session: Session, options: dict[str, str] | None = None
) -> list[tuple[str, str | None]]:
    """Every archived part's files read back against the record: (`YYYY-MM part N`, the
    first problem found or None)."""
    checked: list[tuple[str, str | None]] = []
    for row in session.execute(
        text("SELECT * FROM archive_partition WHERE state = 'archived' ORDER BY month, part")
    ).mappings():
        name = f"{row['month']:%Y-%m} part {row['part']}"
        files = [ArchivedFile.from_json(f) for f in row["files"]]
        try:
            _verify(
                Store.open(row["url"], options), Archived(row["month"], row["part"], files=files)
            )
        except (ArchiveError, OSError) as error:
            checked.append((name, str(error)))
        else:
            checked.append((name, None))
    return checked


def archive_due(engine: Engine, settings: TelematicsSettings, now: datetime) -> list[Archived]:
    """Archives every month older than FLEET_HOT_MONTHS (the worker's daily maintenance)."""
    store = Store.from_settings(settings)
    with make_session_factory(engine)() as session:
        due = months_due(session, now, settings.hot_months)
    return [archive_month(engine, store, month) for month in due]


# ---- restoring --------------------------------------------------------------------------------


def restore_month(
    engine: Engine, store: Store, month: date, *, progress: Progress = _nothing
) -> int:
    """Brings an archived month back into PostGIS (its partition made anew; rows already there,
    from late fixes, kept) and marks its parts `restored`; returns the rows read back."""
    from telematics import tracks  # the reader of the files

    factory = make_session_factory(engine)
    with factory() as session:
        parts = [p for p in archived_parts(session, month) if p["state"] == "archived"]
    if not parts:
        raise NotFound(f"positions of {month:%Y-%m} are not archived")
    files = [ArchivedFile.from_json(f) for p in parts for f in p["files"]]
    total = sum(f.rows for f in files)
    start = datetime(month.year, month.month, 1, tzinfo=UTC)
    with engine.connect() as sa_conn:
        conn: psycopg.Connection[Any] = sa_conn.connection.driver_connection  # type: ignore[assignment]
        conn.autocommit = True
        conn.execute(f"SELECT fleet_position_partition('{start.isoformat()}'::timestamptz)")
        conn.autocommit = False
        conn.execute(RESTORE_STAGING)
        done = 0
        progress(0, total)
        with conn.cursor() as cur, cur.copy(RESTORE_COPY) as copy:
            for chunk in tracks.restore_chunks(store, [f.path for f in files]):
                copy.write(chunk.csv)
                done += chunk.rows
                progress(done, total)
        conn.execute(RESTORE_INSERT)
        conn.commit()
    with unit_of_work(factory) as session:
        session.execute(text("SELECT fleet_archive_restored(:m)"), {"m": month})
        audit.record(
            session=session,
            actor=audit.SYSTEM,
            action="restore",
            entity="position",
            entity_id=f"{month:%Y-%m}",
            after={"parts": [p["part"] for p in parts], "rows": total, "url": store.url},
        )
    log.info("positions of %s restored: %d rows", f"{month:%Y-%m}", total)
    return total


# The files' rows come in as CSV (times as epoch microseconds, the point as WKB, floats as their
# shortest text); rows already in the partition (late fixes) are kept.
RESTORE_STAGING = (
    "CREATE TEMP TABLE position_restored (vehicle_id integer, fix_us bigint, device_id integer,"
    " received_us bigint, point_wkb bytea, speed_kmh real, heading_deg real, altitude_m real,"
    " ignition boolean, odometer_km float8, fuel_l real, alarm_bits integer,"
    " status_bits integer, attributes jsonb) ON COMMIT DROP"
)
RESTORE_COPY = "COPY position_restored FROM STDIN (FORMAT csv)"
RESTORE_INSERT = (
    "INSERT INTO position (vehicle_id, fix_time, device_id, received_at, point, speed_kmh,"
    " heading_deg, altitude_m, ignition, odometer_km, fuel_l, alarm_bits, status_bits,"
    " attributes) SELECT vehicle_id, timestamptz 'epoch' + fix_us * interval '1 microsecond',"
    " device_id, timestamptz 'epoch' + received_us * interval '1 microsecond',"
    " ST_SetSRID(ST_GeomFromWKB(point_wkb), 4326), speed_kmh, heading_deg, altitude_m, ignition,"
    " odometer_km, fuel_l, alarm_bits, status_bits, attributes FROM position_restored"
    " ORDER BY vehicle_id, fix_us ON CONFLICT DO NOTHING"
)


def epoch_us(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(microseconds=1)


def from_epoch_us(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)
