"""One vehicle's fixes over a period, wherever they are kept: the hot months from PostGIS, the
archived ones (telematics.archive) from their GeoParquet files through an embedded DuckDB. Every
reader of stored tracks goes through `fixes` (or `nearest`, many moments' nearest fix at once), so
callers see no difference: the same rows, the
same values (a REAL is read back as PostgreSQL prints it), the same order (fix time, then
device).

The hot rows are read before the archive's record: a month whose partition is dropped between
the two reads is archived by then, so no month is missed; a fix both in a partition made anew
and in the archive is returned once."""

from __future__ import annotations

import contextlib
import functools
import json
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv
from sqlalchemy import Connection, text
from sqlalchemy.orm import Session

from fleet.errors import StoreUnavailable
from telematics.archive import Store, add_months, epoch_us, from_epoch_us
from telematics.settings import TelematicsSettings


class ArchiveUnreadable(StoreUnavailable):
    """An archived file that DuckDB cannot read (damaged, truncated, gone) or a storage that
    fails: the read is refused whole (503) rather than answered with part of a track."""

    code = "archive_unreadable"


class Fix(NamedTuple):
    """A stored fix as the readers see it."""

    fix_time: datetime
    lon: float | None
    lat: float | None
    speed_kmh: float | None
    heading_deg: float | None
    altitude_m: float | None
    ignition: bool | None
    odometer_km: float | None
    fuel_l: float | None
    alarm_bits: int
    status_bits: int
    attributes: dict[str, Any] | None
    device_id: int


FIX_COLUMNS = (
    "fix_time, ST_X(point), ST_Y(point), speed_kmh, heading_deg, altitude_m, ignition,"
    " odometer_km, fuel_l, alarm_bits, status_bits, attributes, device_id"
)
HOT = (
    "SELECT " + FIX_COLUMNS + " FROM position"
    " WHERE vehicle_id = :v AND fix_time >= :s AND fix_time < :e{located}"
    " ORDER BY fix_time, device_id LIMIT :n"
)
# For each moment, the located fix nearest to it in time within the window (both ends included);
# a tie goes to the earlier fix, then the lower device id.
NEAREST_HOT = (
    "SELECT m.i, n.* FROM unnest(CAST(:moments AS timestamptz[])) WITH ORDINALITY AS m(at, i)"
    f" CROSS JOIN LATERAL (SELECT {FIX_COLUMNS} FROM position"
    " WHERE vehicle_id = :v AND point IS NOT NULL"
    " AND fix_time >= m.at - make_interval(secs => :w)"
    " AND fix_time <= m.at + make_interval(secs => :w)"
    " ORDER BY abs(extract(epoch FROM fix_time - m.at)), fix_time, device_id LIMIT 1) n"
)
COLD = (
    "SELECT epoch_us(fix_time), ST_X(point), ST_Y(point), speed_kmh::VARCHAR::DOUBLE,"
    " heading_deg::VARCHAR::DOUBLE, altitude_m::VARCHAR::DOUBLE, ignition, odometer_km,"
    " fuel_l::VARCHAR::DOUBLE, alarm_bits, status_bits, attributes, device_id"
    " FROM read_parquet([{files}])"
    " WHERE vehicle_id = $v AND fix_time >= make_timestamptz($s::BIGINT)"
    " AND fix_time < make_timestamptz($e::BIGINT){located}"
    " ORDER BY fix_time, device_id LIMIT $n"
)
NO_LIMIT = 2**62


def fixes(
    session: Session | Connection,
    vehicle_id: int,
    start: datetime,
    end: datetime,
    *,
    located: bool = False,
    limit: int | None = None,
) -> list[Fix]:
    """The vehicle's fixes with `start <= fix_time < end` in time order, at most `limit`;
    with `located`, only those with a position."""
    n = NO_LIMIT if limit is None else limit
    hot = [
        Fix(*row)
        for row in session.execute(
            text(HOT.format(located=" AND point IS NOT NULL" if located else "")),
            {"v": vehicle_id, "s": start, "e": end, "n": n},
        )
    ]
    parts = archived_files(session, start, end)
    if not parts:
        return hot
    cold = _cold(parts, vehicle_id, start, end, located=located, limit=n)
    if not cold:
        return hot
    merged = {(f.fix_time, f.device_id): f for f in cold}
    merged.update({(f.fix_time, f.device_id): f for f in hot})
    return [merged[key] for key in sorted(merged)][:n]


def nearest(
    session: Session | Connection,
    vehicle_id: int,
    moments: Sequence[datetime],
    window: timedelta,
) -> list[Fix | None]:
    """For each of `moments`, the vehicle's located fix nearest to it in time within `window`
    either side (both ends included), None when there is none; a tie goes to the earlier fix,
    then the lower device. The same answer as picking it from `fixes`: a moment near an archived
    month is read through `fixes`, the others from PostGIS in one query for them all."""
    found: list[Fix | None] = [None] * len(moments)
    if not moments:
        return found
    wide = timedelta(microseconds=1)  # the window's end included
    archived = [
        datetime.combine(month, time(), UTC)
        for month in session.scalars(
            text(
                "SELECT DISTINCT month FROM archive_partition WHERE state = 'archived'"
                " AND month < :e AND month + interval '1 month' > :s"
            ),
            {"s": min(moments) - window, "e": max(moments) + window + wide},
        )
    ]

    def near_archive(at: datetime) -> bool:
        return any(
            first < at + window + wide
            and at - window < datetime.combine(add_months(first.date(), 1), time(), UTC)
            for first in archived
        )

    hot = []
    for i, at in enumerate(moments):
        if near_archive(at):
            found[i] = _nearest_of(
                fixes(session, vehicle_id, at - window, at + window + wide, located=True), at
            )
        else:
            hot.append(i)
    if hot:
        for row in session.execute(
            text(NEAREST_HOT),
            {"moments": [moments[i] for i in hot], "v": vehicle_id, "w": window.total_seconds()},
        ):
            found[hot[row[0] - 1]] = Fix(*row[1:])
    return found


def _nearest_of(candidates: Sequence[Fix], at: datetime) -> Fix | None:
    """The fix nearest to `at` among `candidates` (in `fixes` order: time, then device)."""
    return min(candidates, key=lambda f: (abs(f.fix_time - at), f.fix_time), default=None)


@dataclass(frozen=True)
class Files:
    """Archived files, by the storage they were written to."""

    url: str
    paths: tuple[str, ...]


def archived_files(session: Session | Connection, start: datetime, end: datetime) -> list[Files]:
    """The files of the archived parts whose months meet [start, end)."""
    rows = session.execute(
        text(
            "SELECT url, files FROM archive_partition WHERE state = 'archived'"
            " AND month < :e AND month + interval '1 month' > :s ORDER BY month, part"
        ),
        {"s": start, "e": end},
    ).all()
    by_url: dict[str, list[str]] = {}
    for url, files in rows:
        by_url.setdefault(url, []).extend(f["path"] for f in files)
    return [Files(url, tuple(paths)) for url, paths in by_url.items() if paths]


def months(start: datetime, end: datetime) -> Iterator[tuple[datetime, datetime]]:
    """[start, end) cut at the months' first moments (UTC)."""
    low = start
    while low < end:
        first = datetime(low.year, low.month, 1, tzinfo=UTC)
        following = datetime.combine(add_months(first.date(), 1), time(), UTC)
        yield low, min(following, end)
        low = following


def vehicles(session: Session | Connection, start: datetime, end: datetime) -> list[int]:
    """The vehicles with fixes in [start, end), hot or archived."""
    found = set(
        session.scalars(
            text("SELECT DISTINCT vehicle_id FROM position WHERE fix_time >= :s AND fix_time < :e"),
            {"s": start, "e": end},
        )
    )
    for part in archived_files(session, start, end):
        store = _store(part.url)
        with _reading(part):
            rows = (
                _duck(store)
                .execute(
                    f"SELECT DISTINCT vehicle_id FROM read_parquet([{_paths(store, part.paths)}])"
                    " WHERE fix_time >= make_timestamptz($s::BIGINT)"
                    " AND fix_time < make_timestamptz($e::BIGINT)",
                    {"s": epoch_us(start), "e": epoch_us(end)},
                )
                .fetchall()
            )
        found.update(row[0] for row in rows)
    return sorted(found)


def _cold(
    parts: Sequence[Files],
    vehicle_id: int,
    start: datetime,
    end: datetime,
    *,
    located: bool,
    limit: int,
) -> list[Fix]:
    rows: list[Fix] = []
    for part in parts:
        store = _store(part.url)
        with _reading(part):
            result = (
                _duck(store)
                .execute(
                    COLD.format(
                        files=_paths(store, part.paths),
                        located=" AND point IS NOT NULL" if located else "",
                    ),
                    {"v": vehicle_id, "s": epoch_us(start), "e": epoch_us(end), "n": limit},
                )
                .fetchall()
            )
        rows.extend(
            Fix._make(
                (from_epoch_us(r[0]), *r[1:11], None if r[11] is None else json.loads(r[11]), r[12])
            )
            for r in result
        )
    return rows


@contextlib.contextmanager
def _reading(part: Files) -> Iterator[None]:
    """DuckDB's and the storage's failures as ArchiveUnreadable, naming the files."""
    try:
        yield
    except (duckdb.Error, OSError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ArchiveUnreadable(
            f"the archived fixes in {', '.join(part.paths)} at {part.url} cannot be read"
            f" ({reason}); `fleet archive verify` checks every file, and a copy of the archive"
            " or `fleet archive restore` from a good copy repairs it"
        ) from error


def _paths(store: Store, paths: Sequence[str]) -> str:
    full = [store.full_path(p) if store.local else store.url_of(p) for p in paths]
    return ", ".join("'" + p.replace("'", "''") + "'" for p in full)


@functools.lru_cache(maxsize=16)
def _store(url: str) -> Store:
    """The storage an archived part was written to (options such as credentials from now)."""
    return Store.open(url, TelematicsSettings().archive_options)


# ---- the embedded DuckDB --------------------------------------------------------------------

_lock = threading.Lock()
_database: duckdb.DuckDBPyConnection | None = None
_registered: set[str] = set()
_local = threading.local()


def spatial_extension() -> Path:
    """The spatial extension shipped by the duckdb-ext-spatial wheel for this DuckDB."""
    import duckdb_ext  # the extension wheel's namespace package

    version = duckdb.__version__
    for root in duckdb_ext.__path__:
        found = Path(root) / "extensions" / f"v{version}" / "linux_amd64"
        if (found / "spatial.duckdb_extension").is_file():
            return found / "spatial.duckdb_extension"
    raise RuntimeError(
        f"the DuckDB spatial extension for DuckDB {version} is not installed"
        " (duckdb-ext-spatial, pinned with duckdb in pyproject.toml)"
    )


def _duck(store: Store) -> duckdb.DuckDBPyConnection:
    """This thread's cursor on the process's DuckDB, with the spatial extension loaded and the
    storage's filesystem known to it."""
    global _database
    with _lock:
        if _database is None:
            database = duckdb.connect(
                config={
                    "autoinstall_known_extensions": False,
                    "autoload_known_extensions": False,
                    "threads": 2,
                    "memory_limit": "1GB",
                }
            )
            database.execute(f"LOAD '{spatial_extension()}'")
            database.execute("SET TimeZone = 'UTC'")
            _database = database
        if not store.local and store.protocol not in _registered:
            _database.register_filesystem(store.fs)
            _registered.add(store.protocol)
        cursors: dict[int, duckdb.DuckDBPyConnection] = getattr(_local, "cursors", {})
        _local.cursors = cursors
        cursor = cursors.get(id(_database))
        if cursor is None:
            cursor = cursors[id(_database)] = _database.cursor()
    return cursor


# ---- reading a month back for a restore ---------------------------------------------------------


@dataclass(frozen=True)
class Chunk:
    csv: bytes
    rows: int


RESTORE = (
    "SELECT vehicle_id, epoch_us(fix_time), device_id, epoch_us(received_at),"
    " CASE WHEN point IS NULL THEN NULL ELSE '\\x' || lower(hex(ST_AsWKB(point))) END,"
    " speed_kmh::VARCHAR, heading_deg::VARCHAR, altitude_m::VARCHAR, ignition,"
    " odometer_km::VARCHAR, fuel_l::VARCHAR, alarm_bits, status_bits, attributes"
    " FROM read_parquet([{files}])"
)


def restore_chunks(store: Store, paths: Sequence[str]) -> Iterator[Chunk]:
    """The archived rows as CSV for COPY into the restore's staging table, chunk by chunk."""
    cursor = _duck(store)
    reader = cursor.execute(RESTORE.format(files=_paths(store, paths))).fetch_record_batch(100_000)
    options = pacsv.WriteOptions(include_header=False)
    for batch in reader:
        sink = pa.BufferOutputStream()
        pacsv.write_csv(batch, sink, write_options=options)
        yield Chunk(sink.getvalue().to_pybytes(), batch.num_rows)


# ---- the archived fixes for a bulk export -----------------------------------------------------

EXPORTED = (
    "SELECT vehicle_id, device_id, epoch_us(fix_time), epoch_us(received_at), ST_X(point),"
    " ST_Y(point), speed_kmh::VARCHAR::DOUBLE, heading_deg::VARCHAR::DOUBLE,"
    " altitude_m::VARCHAR::DOUBLE, ignition, odometer_km, fuel_l::VARCHAR::DOUBLE, alarm_bits,"
    " status_bits, attributes FROM read_parquet([{files}])"
    " WHERE list_contains($vehicles, vehicle_id)"
    " AND fix_time >= make_timestamptz($s::BIGINT) AND fix_time < make_timestamptz($e::BIGINT)"
    " AND received_at >= make_timestamptz($rs::BIGINT)"
    " AND received_at < make_timestamptz($re::BIGINT)"
)


def archived_fixes(
    session: Session | Connection,
    start: datetime,
    end: datetime,
    *,
    vehicle_ids: Sequence[int],
    received_from: datetime,
    received_before: datetime,
    chunk: int,
) -> Iterator[list[tuple[Any, ...]]]:
    """The archived fixes of `vehicle_ids` with `start <= fix_time < end` and
    `received_from <= received_at < received_before`, in chunks of at most `chunk` rows, in
    no particular order: (vehicle_id, device_id, fix_time, received_at, lon, lat, speed_kmh,
    heading_deg, altitude_m, ignition, odometer_km, fuel_l, alarm_bits, status_bits, attributes
    as JSON text). Each call reads on a DuckDB cursor of its own, so a caller may pull chunks
    from any thread while other reads go on."""
    if not vehicle_ids:
        return
    for part in archived_files(session, start, end):
        store = _store(part.url)
        cursor = _duck(store).cursor()
        try:
            with _reading(part):
                reader = cursor.execute(
                    EXPORTED.format(files=_paths(store, part.paths)),
                    {
                        "vehicles": list(vehicle_ids),
                        "s": epoch_us(start),
                        "e": epoch_us(end),
                        "rs": epoch_us(received_from),
                        "re": epoch_us(received_before),
                    },
                ).fetch_record_batch(chunk)
                for batch in reader:
                    columns = [column.to_pylist() for column in batch.columns]
                    columns[2] = [from_epoch_us(us) for us in columns[2]]
                    columns[3] = [None if us is None else from_epoch_us(us) for us in columns[3]]
                    yield list(zip(*columns, strict=True))
        finally:
            cursor.close()
