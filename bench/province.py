"""Figures at province size (全区一张网): 30,000 vehicles in three levels of units (a region, 14
cities, 115 counties) and one realistic day of their tracks (about 30 million fixes, loaded by
binary COPY as the ingest worker writes them), part of which is then archived.

Each figure is printed beside its target and beside a baseline measured in the same run:

- bytes per fix, in PostGIS (table and key) and archived;
- one vehicle-day's track (`telematics.tracks.fixes`), from PostGIS and from the archive, p50/p95;
- a vehicle file (一车一档) once its month is archived, through the API;
- the province's statistics for the month (`/api/v1/statistics/vehicles`), against one county's;
- `/api/v1/live` for every vehicle (time and bytes), against one county's;
- the dispatch plan for 1,000 orders against the 30,000 vehicles (the greedy planner as baseline);
- the desk with 30,000 live vehicles (`bench/web.py`: batch apply and time until drawn, p95, and
  the heap), against 3,000, when `--desk-minutes` is above 0 (it rebuilds the bench database, so
  it runs last).

    python -m bench.province [--vehicles 30000] [--days 1] [--desk-minutes 1]
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from typing import Any

import httpx2 as httpx
from redis import Redis
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session

from bench import dispatch as dispatch_bench
from bench import web as web_bench
from bench._support import bench_settings, options, parse, serve, table
from bench.archive import _ms, fill, reads
from bench.ingest import redis_url
from dispatch.matching import greedy, plan
from fleet import registry
from fleet.auth import Actor
from fleet.db import unit_of_work
from fleet.models import Role
from fleet.schemas import UnitCreate, UserCreate
from telematics import archive, stream

DAY = datetime(2026, 1, 15, tzinfo=UTC)  # a fixed day: the same figures on any date
MONTH = date(2026, 1, 1)
CITIES, COUNTIES = 14, 115
PASSWORD = "province-bench-1"


def build(engine: Engine, vehicles: int) -> tuple[list[int], int]:
    """The units and vehicles; returns the vehicle ids and one county's id."""
    with unit_of_work(lambda: Session(engine)) as session:
        region = registry.create_root_unit(session=session, code="GX", name="自治区")
        system = Actor.system(region)
        cities = [
            registry.create_unit(
                session=session,
                actor=system,
                data=UnitCreate(code=f"GX{c:02d}", name=f"第{c}市", parent_id=region.id),
            )
            for c in range(1, CITIES + 1)
        ]
        counties = [
            registry.create_unit(
                session=session,
                actor=system,
                data=UnitCreate(
                    code=f"GX{k % CITIES + 1:02d}{k:03d}",
                    name=f"第{k}县",
                    parent_id=cities[k % CITIES].id,
                ),
            )
            for k in range(COUNTIES)
        ]
        for name, unit in (("province", region), ("county", counties[0])):
            registry.create_user(
                session=session,
                actor=None,
                data=UserCreate(
                    username=name,
                    password=PASSWORD,
                    roles=[Role.DISPATCHER, Role.SUPERVISOR],
                    unit_id=unit.id,
                ),
            )
        # A tenth of the cars belong to the region's and cities' own offices, the rest to counties.
        units = [region.id] * 10 + [c.id for c in cities] * 10 + [k.id for k in counties] * 60
        session.execute(
            text(
                "INSERT INTO vehicle (plate, category, body_class, seats, energy, unit_id)"
                " SELECT '桂A·' || lpad(n::text, 5, '0'), 'general', 'sedan', 5,"
                " CASE WHEN n % 3 = 0 THEN 'bev' ELSE 'petrol' END,"
                " (CAST(:units AS int[]))[1 + n % :k] FROM generate_series(1, :n) n"
            ),
            {"units": units, "k": len(units), "n": vehicles},
        )
        county = counties[0].id
    with engine.connect() as conn:
        ids = list(conn.scalars(text("SELECT id FROM vehicle ORDER BY id")))
    return ids, county


def trips(engine: Engine) -> int:
    """One trip a vehicle-day, drawn from its driving fixes (the statistics read trips)."""
    with engine.begin() as conn:
        return conn.execute(
            text(
                "INSERT INTO trip (vehicle_id, start_at, end_at, start_point, end_point, path,"
                " distance_m, duration_s, max_speed_kmh, avg_speed_kmh, odometer_start_km,"
                " odometer_end_km)"
                " SELECT vehicle_id, first, last, ST_StartPoint(line), ST_EndPoint(line), line,"
                " ST_Length(line::geography), extract(epoch FROM last - first), top, mean, low,"
                " high FROM (SELECT vehicle_id, min(fix_time) AS first, max(fix_time) AS last,"
                "  ST_MakeLine(point ORDER BY fix_time) AS line, max(speed_kmh) AS top,"
                "  avg(speed_kmh) AS mean, min(odometer_km) AS low, max(odometer_km) AS high"
                "  FROM position WHERE ignition GROUP BY vehicle_id, fix_time::date) d"
            )
        ).rowcount


def _best(fn: Any, repeat: int = 5) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeat):
        began = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - began)
    return sorted(times)[len(times) // 2], result


def _last(vehicle: int, now_ms: int) -> dict[str, Any]:
    return {
        "vehicle_id": vehicle,
        "fix_ms": now_ms,
        "lat": 22.8 + vehicle % 200 * 0.01,
        "lon": 108.3 + vehicle // 200 % 200 * 0.01,
        "speed_kmh": 40.0,
        "heading_deg": 90.0,
        "ignition": True,
    }


class Api:
    """`fleet serve` on the bench database, with every vehicle's last position in Redis."""

    def __init__(self, settings: Any, ids: list[int]) -> None:
        self.redis_url = redis_url(settings.redis_url)
        redis = Redis.from_url(self.redis_url)
        redis.flushdb()
        now_ms = int(time.time() * 1000)
        for first in range(0, len(ids), 5000):
            redis.hset(
                stream.LAST_POSITIONS,
                mapping={v: json.dumps(_last(v, now_ms)) for v in ids[first : first + 5000]},
            )
        redis.close()
        self.server, self.base = serve(settings.database_url, self.redis_url)

    def client(self, username: str) -> httpx.Client:
        token = httpx.post(
            f"{self.base}/api/v1/auth/token",
            data={"username": username, "password": PASSWORD},
            timeout=30,
        ).json()["access_token"]
        return httpx.Client(
            base_url=f"{self.base}/api/v1",
            headers={"Authorization": f"Bearer {token}"},
            timeout=120,
        )

    def timed(self, client: httpx.Client, path: str) -> tuple[float, int]:
        def get() -> int:
            reply = client.get(path)
            reply.raise_for_status()
            return len(reply.content)

        return _best(get)

    def close(self) -> None:
        self.server.terminate()
        self.server.wait(timeout=30)


def main(argv: list[str] | None = None) -> None:
    parser = options(__doc__)
    parser.add_argument("--vehicles", type=int, default=30_000)
    parser.add_argument("--days", type=int, default=1)
    parser.add_argument("--reads", type=int, default=60)
    parser.add_argument("--orders", type=int, default=1000)
    parser.add_argument("--desk-minutes", type=float, default=1.0)
    args = parse(parser, argv)
    say = lambda *a: print(*a, file=sys.stderr, flush=True)  # noqa: E731
    settings = bench_settings()
    engine = create_engine(settings.database_url)
    ids, _ = build(engine, args.vehicles)
    say(f"{len(ids):,} vehicles in {1 + CITIES + COUNTIES} units")
    began = time.perf_counter()
    fixes = fill(
        engine,
        range(ids[0], ids[-1] + 1),
        args.days,
        DAY,
        progress=lambda n: say(f"  {n:,} fixes loaded") if n % 2_000_000 < 400_000 else None,
    )
    load_s = time.perf_counter() - began
    say(f"{fixes:,} fixes in {load_s:.0f} s ({fixes / load_s:,.0f}/s); drawing trips")
    made = trips(engine)
    say(f"{made:,} trips")
    with engine.connect() as conn:
        hot_bytes = conn.execute(
            text(f"SELECT pg_total_relation_size('{archive.partition_table(MONTH)}')")
        ).scalar_one()
    first = ids[0]
    hot = reads(engine, range(first, first + len(ids)), args.days, args.reads, DAY)
    api = Api(settings, ids)
    rows: list[tuple[str, ...]] = [("figure", "measured", "baseline (same run)", "target")]
    try:
        with api.client("province") as province, api.client("county") as local:
            live_s, live_bytes = api.timed(province, "/live")
            county_s, county_bytes = api.timed(local, "/live")
            period = "since=2026-01-01T00:00:00%2B00:00&until=2026-02-01T00:00:00%2B00:00"
            stats_s, _ = api.timed(province, f"/statistics/vehicles?{period}")
            stats_county_s, _ = api.timed(local, f"/statistics/vehicles?{period}")
            with tempfile.TemporaryDirectory() as folder:
                store = archive.Store.open(folder)
                began = time.perf_counter()
                done = archive.archive_month(engine, store, MONTH)
                archive_s = time.perf_counter() - began
                first_s = reads(engine, range(first, first + len(ids)), args.days, 1, DAY)[0]
                cold = reads(engine, range(first, first + len(ids)), args.days, args.reads, DAY)
                file_s, _ = api.timed(province, f"/vehicles/{ids[len(ids) // 2]}/file")
    finally:
        api.close()
    engine.dispose()
    orders, pool = dispatch_bench.instance(args.orders, len(ids))
    greedy_s, _ = _best(lambda: greedy(orders, pool), 1)
    plan_s, _ = _best(lambda: plan(orders, pool), 1)
    rows += [
        ("fixes loaded (binary COPY)", f"{fixes:,} in {load_s:.0f} s", "-", "-"),
        ("bytes per fix, PostGIS (table+key)", f"{hot_bytes / fixes:.1f}", "-", "-"),
        (
            "bytes per fix, archive",
            f"{done.bytes / fixes:.1f}",
            f"{hot_bytes / done.bytes:.0f}x smaller than PostGIS",
            "<= 15",
        ),
        ("archive the month", f"{archive_s:.0f} s ({fixes / archive_s:,.0f} fixes/s)", "-", "-"),
        (
            "vehicle-day from archive p50 / p95 (after the first)",
            f"{_ms(cold, 0.5)} / {_ms(cold, 0.95)}",
            f"PostGIS {_ms(hot, 0.5)} / {_ms(hot, 0.95)}",
            "<= 300 ms",
        ),
        ("first archived read of a process", f"{first_s * 1000:.0f} ms", "-", "-"),
        ("vehicle file, month archived", f"{file_s * 1000:.0f} ms", "-", "-"),
        (
            "statistics for the month (province)",
            f"{stats_s * 1000:.0f} ms",
            f"one county {stats_county_s * 1000:.0f} ms",
            "-",
        ),
        (
            f"/api/v1/live, {len(ids):,} vehicles",
            f"{live_s * 1000:.0f} ms, {live_bytes / 1e6:.1f} MB",
            f"one county {county_s * 1000:.0f} ms, {county_bytes / 1e3:.0f} kB",
            "<= 1 s",
        ),
        (
            f"plan {args.orders:,} orders x {len(ids):,} vehicles",
            f"{plan_s:.2f} s",
            f"greedy {greedy_s:.2f} s",
            "<= 5 s",
        ),
    ]
    print(f"measured {datetime.now(UTC):%Y-%m-%d} on {os.cpu_count()} cores", flush=True)
    print(table(rows), flush=True)
    if args.desk_minutes > 0:
        rows = [rows[0]]
        small = web_bench.run(max(1, len(ids) // 10), min(1.0, args.desk_minutes))
        big = web_bench.run(len(ids), args.desk_minutes)
        for label, key, target in (
            ("desk batch apply p95", "apply", "<= 16 ms"),
            ("desk drawn on screen p95", "draw", "<= 500 ms"),
        ):
            rows.append(
                (
                    f"{label}, {len(ids):,} live",
                    f"{big[key][1]:.1f} ms",
                    f"{len(ids) // 10:,} live: {small[key][1]:.1f} ms",
                    target,
                )
            )
        rows.append(
            (
                f"desk heap start / end, {args.desk_minutes:g} min",
                f"{big['heap_start']:.0f} / {big['heap_end']:.0f} MB",
                f"{small['heap_start']:.0f} / {small['heap_end']:.0f} MB",
                "flat",
            )
        )
        print(table(rows))


if __name__ == "__main__":
    main(sys.argv[1:])
