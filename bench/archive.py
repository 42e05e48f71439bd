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

import io
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta

import numpy as np
from sqlalchemy import Engine, create_engine, text

from bench._support import bench_settings, options, parse, table
from telematics import archive, tracks

MONTH = date(2026, 1, 1)
START = datetime(2026, 1, 1, tzinfo=UTC)
DRIVE_S = 10  # report interval while driving
PARK_S = 300  # heartbeat interval while parked
DRIVING_H = 2.0


def _vehicle_day(rng: np.random.Generator, vehicle: int, day: int) -> np.ndarray:
    """One vehicle-day of fixes as a structured array."""
    begin = START.timestamp() + day * 86_400
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
    lon = 108.3 + (vehicle % 200) * 0.01 + np.cumsum(dx)
    lat = 22.8 + (vehicle // 200) * 0.01 + np.cumsum(dy)
    odometer = 12_000 + vehicle * 3 + day * 60 + np.cumsum(step_m) / 1000
    rows = np.zeros(
        n,
        dtype=[
            ("us", "i8"),
            ("received_us", "i8"),
            ("lon", "f8"),
            ("lat", "f8"),
            ("speed", "f4"),
            ("heading", "f4"),
            ("altitude", "f4"),
            ("ignition", "?"),
            ("odometer", "f8"),
            ("fuel", "f4"),
            ("status", "i4"),
        ],
    )
    rows["us"] = (times * 1e6).astype(np.int64)
    rows["received_us"] = rows["us"] + rng.integers(400_000, 3_000_000, n) // 1000 * 1000
    rows["lon"] = np.round(lon, 6)
    rows["lat"] = np.round(lat, 6)
    rows["speed"] = np.round(speed, 1)
    rows["heading"] = np.round(heading)
    rows["altitude"] = np.round(40 + np.cumsum(rng.normal(0, 0.3, n)))
    rows["ignition"] = moving
    rows["odometer"] = np.round(odometer, 1)
    rows["fuel"] = np.round(45 - np.cumsum(step_m) / 1000 * 0.09, 1)
    rows["status"] = np.where(moving, 3, 2)
    return rows


def fill(engine: Engine, vehicles: int, days: int) -> int:
    """COPYs the month's fixes into `position`; returns how many."""
    rng = np.random.default_rng(808)
    total = 0
    with engine.begin() as conn:
        conn.execute(text(f"SELECT fleet_position_partition('{START.isoformat()}')"))
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        for vehicle in range(1, vehicles + 1):
            buffer = io.StringIO()
            for day in range(days):
                r = _vehicle_day(rng, vehicle, day)
                total += len(r)
                for row in r.tolist():
                    us, rec, lon, lat, spd, hdg, alt, ign, odo, fuel, status = row
                    buffer.write(
                        f"{vehicle}\t{_iso(us)}\t{vehicle}\t{_iso(rec)}\t"
                        f"SRID=4326;POINT({lon!r} {lat!r})\t{spd}\t{hdg}\t{alt}\t"
                        f"{'t' if ign else 'f'}\t{odo!r}\t{fuel}\t0\t{status}\t\\N\n"
                    )
            buffer.seek(0)
            with cursor.copy(
                "COPY position (vehicle_id, fix_time, device_id, received_at, point, speed_kmh,"
                " heading_deg, altitude_m, ignition, odometer_km, fuel_l, alarm_bits,"
                " status_bits, attributes) FROM STDIN"
            ) as copy:
                copy.write(buffer.getvalue())
        raw.commit()
    finally:
        raw.close()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE position_p202601"))
    return total


def _iso(us: int) -> str:
    return (START + timedelta(microseconds=us - int(START.timestamp() * 1e6))).isoformat()


def reads(engine: Engine, vehicles: int, days: int, n: int) -> list[float]:
    rng = random.Random(7)
    times = []
    with engine.connect() as conn:
        for _ in range(n):
            vehicle, day = rng.randint(1, vehicles), rng.randrange(days)
            low = START + timedelta(days=day)
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
    fixes = fill(engine, args.vehicles, args.days)
    loaded_s = time.perf_counter() - began
    with engine.connect() as conn:
        hot_bytes = conn.execute(
            text("SELECT pg_total_relation_size('position_p202601')")
        ).scalar_one()
    hot = reads(engine, args.vehicles, args.days, args.reads)
    with tempfile.TemporaryDirectory() as folder:
        store = archive.Store.open(folder)
        began = time.perf_counter()
        done = archive.archive_month(engine, store, MONTH)
        archive_s = time.perf_counter() - began
        cold = reads(engine, args.vehicles, args.days, args.reads)
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
