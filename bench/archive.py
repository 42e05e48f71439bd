"""Tiered storage: a month of realistic JT/T 808 tracks in PostGIS, then archived to GeoParquet.

Each vehicle drives about two hours a day, reporting every 10 s, and sends a heartbeat every
5 minutes while parked: about 1,000 fixes a day, as an official car does. Coordinates at the
protocol's 1e-6 degree, speed at 0.1 km/h, whole degrees and metres, odometer at 0.1 km.

Printed: bytes per fix hot (table and index) and archived (target: at most 15), the time to
archive, and one vehicle-day read through `telematics.tracks.fixes` from PostGIS (the baseline,
same run) and from the archive (target: at most 300 ms), p50 and p95.

    python -m bench.archive [--vehicles 500] [--days 2] [--reads 60]
"""

from __future__ import annotations

import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import numpy as np
from sqlalchemy import Engine, create_engine, text

from bench._support import bench_settings, options, parse, table
from telematics import archive, ingest, stream, tracks
from telematics.batch import FixBatch

MONTH = date(2026, 1, 1)
START = datetime(2026, 1, 1, tzinfo=UTC)
DRIVE_S = 10  # report interval while driving
PARK_S = 300  # heartbeat interval while parked
DRIVING_H = 2.0
CHUNK_VEHICLES = 500  # vehicles a COPY


def vehicle_day(
    rng: np.random.Generator, vehicle: int, day: int, start: datetime = START
) -> np.ndarray:
    """One vehicle-day of fixes, as the stream's records (`telematics.stream.RECORD`)."""
    begin = start.timestamp() + day * 86_400
    out_at = begin + rng.uniform(7.5, 9.5) * 3600
    driving = np.arange(out_at, out_at + DRIVING_H * 3600, DRIVE_S)
    parked = np.concatenate(
        [np.arange(begin, out_at, PARK_S), np.arange(driving[-1] + PARK_S, begin + 86_400, PARK_S)]
    )
    times = np.sort(np.concatenate([driving, parked]))
    moving = np.isin(times, driving)
    n = len(times)
    speed = np.where(moving, np.clip(rng.normal(38, 14, n), 0, 110), 0.0)
    heading = np.cumsum(np.where(moving, rng.normal(0, 12, n), 0)) % 360
    step_m = speed / 3.6 * DRIVE_S
    dx = step_m * np.sin(np.radians(heading)) / 96_000
    dy = step_m * np.cos(np.radians(heading)) / 111_000
    rows = np.zeros(n, dtype=stream.RECORD)
    rows["vehicle"] = vehicle
    rows["device"] = vehicle
    rows["fix_ms"] = np.round(times * 1000).astype(np.int64)
    rows["received_ms"] = rows["fix_ms"] + rng.integers(400, 3000, n)
    rows["lon"] = np.round(108.3 + (vehicle % 200) * 0.01 + np.cumsum(dx), 6)
    rows["lat"] = np.round(22.8 + (vehicle // 200 % 200) * 0.01 + np.cumsum(dy), 6)
    rows["speed"] = np.round(speed, 1)
    rows["heading"] = np.round(heading)
    rows["altitude"] = np.round(40 + np.cumsum(rng.normal(0, 0.3, n)))
    rows["ignition"] = moving
    rows["odometer"] = np.round(12_000 + vehicle % 977 * 3 + day * 60 + np.cumsum(step_m) / 1000, 1)
    rows["fuel"] = np.round(45 - np.cumsum(step_m) / 1000 * 0.09, 1)
    rows["status"] = np.where(moving, 3, 2)
    rows["attr_len"] = -1
    return rows


def fill(
    engine: Engine,
    vehicles: range,
    days: int,
    start: datetime = START,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Binary-COPYs `days` of fixes from `start` for each vehicle into `position` (the ingest
    worker's encoder); returns how many."""
    rng = np.random.default_rng(808)
    total = 0
    month = datetime(start.year, start.month, 1, tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(text(f"SELECT fleet_position_partition('{month.isoformat()}')"))
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        for first in range(0, len(vehicles), CHUNK_VEHICLES):
            records = np.concatenate(
                [
                    vehicle_day(rng, vehicle, day, start)
                    for vehicle in vehicles[first : first + CHUNK_VEHICLES]
                    for day in range(days)
                ]
            )
            batch = FixBatch(records, np.zeros(len(records), np.int64), np.zeros(0, np.uint8))
            with cursor.copy(
                f"COPY position ({ingest.COLUMNS}) FROM STDIN (FORMAT BINARY)"
            ) as copy:
                copy.write(ingest.encode_copy(batch))
            raw.commit()
            total += len(records)
            if progress is not None:
                progress(total)
    finally:
        raw.close()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f"VACUUM ANALYZE {archive.partition_table(month.date())}"))
    return total


def reads(
    engine: Engine, vehicles: range, days: int, n: int, start: datetime = START
) -> list[float]:
    """`n` random vehicle-days read through `telematics.tracks.fixes`: seconds each."""
    rng = random.Random(7)
    times = []
    with engine.connect() as conn:
        for _ in range(n):
            vehicle, day = rng.choice(vehicles), rng.randrange(days)
            low = start + timedelta(days=day)
            began = time.perf_counter()
            got = tracks.fixes(conn, vehicle, low, low + timedelta(days=1))
            times.append(time.perf_counter() - began)
            assert len(got) > 500, (vehicle, day, len(got))
    return times


def _ms(values: list[float], q: float) -> str:
    ordered = sorted(values)
    return f"{1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]:.1f} ms"


def main(argv: list[str] | None = None) -> None:
    parser = options(__doc__)
    parser.add_argument("--vehicles", type=int, default=500)
    parser.add_argument("--days", type=int, default=2)
    parser.add_argument("--reads", type=int, default=60)
    args = parse(parser, argv)
    settings = bench_settings()
    engine = create_engine(settings.database_url)
    began = time.perf_counter()
    fixes = fill(engine, range(1, args.vehicles + 1), args.days)
    loaded_s = time.perf_counter() - began
    with engine.connect() as conn:
        hot_bytes = conn.execute(
            text("SELECT pg_total_relation_size('position_p202601')")
        ).scalar_one()
    hot = reads(engine, range(1, args.vehicles + 1), args.days, args.reads)
    with tempfile.TemporaryDirectory() as folder:
        store = archive.Store.open(folder)
        began = time.perf_counter()
        done = archive.archive_month(engine, store, MONTH)
        archive_s = time.perf_counter() - began
        cold = reads(engine, range(1, args.vehicles + 1), args.days, args.reads)
        assert done.rows == fixes
    engine.dispose()
    ratio = statistics.median(cold) / statistics.median(hot)
    print(
        f"{args.vehicles} vehicles x {args.days} days: {fixes:,} fixes, loaded in {loaded_s:.1f} s",
        file=sys.stderr,
    )
    print(
        table(
            [
                ("figure", "measured", "target"),
                ("bytes per fix, PostGIS (table+index)", f"{hot_bytes / fixes:.1f}", "-"),
                ("bytes per fix, archive", f"{done.bytes / fixes:.1f}", "<= 15"),
                (
                    "archive the month",
                    f"{archive_s:.1f} s ({fixes / archive_s:,.0f} fixes/s)",
                    "-",
                ),
                ("vehicle-day from PostGIS p50 / p95", f"{_ms(hot, 0.5)} / {_ms(hot, 0.95)}", "-"),
                (
                    "vehicle-day from archive p50 / p95",
                    f"{_ms(cold, 0.5)} / {_ms(cold, 0.95)}",
                    "<= 300 ms",
                ),
                ("archive / PostGIS read (p50)", f"{ratio:.1f}x", "-"),
            ]
        )
    )


if __name__ == "__main__":
    main(sys.argv[1:])
