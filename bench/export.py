"""The bulk export's memory: flat, whatever the size.

A stack of its own (a bench database, `fleet serve`) holding VEHICLES vehicles' realistic tracks
(bench.archive's, loaded by binary COPY: about 1,000 fixes a vehicle-day, 2 million by default),
a unit of SMALL of those vehicles among them. Each format of the positions export is pulled over
HTTP for the small unit (about 20,000 fixes, the baseline) and then for every vehicle, read as it
comes; printed per pull: rows, bytes, seconds, and the server process's peak resident memory
(its VmHWM, reset before each pull), also as the growth over what it held before the pull, with
the ratio of the large pull's peak to the small one's. The small pull runs first, so the memory
a format's first pull leaves in the allocators shows there, not in the large one.

    python -m bench.export [--vehicles 1000] [--days 2] [--small 10] [--formats csv,parquet,geojson]
"""

from __future__ import annotations

import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx2 as httpx
from redis import Redis
from sqlalchemy import text

from bench._support import bench_settings, options, parse, serve, table
from bench.archive import START, fill
from bench.ingest import redis_url
from fleet import registry
from fleet.auth import Actor
from fleet.db import make_engine, make_session_factory, unit_of_work
from fleet.models import Role
from fleet.schemas import UnitCreate, UserCreate

PASSWORD = "bench-password"


def make_fleet(settings: Any, vehicles: int, small: int) -> int:
    """A root unit with the vehicles 1..`vehicles`, the first `small` of them in a unit below it,
    and an administrator; returns the small unit's id."""
    engine = make_engine(settings)
    with unit_of_work(make_session_factory(engine)) as session:
        root = registry.create_root_unit(session=session, code="EXP", name="导出基准")
        system = Actor.system(root)
        unit = registry.create_unit(
            session=session,
            actor=system,
            data=UnitCreate(code="EXP-S", name="小单位", parent_id=root.id),
        )
        registry.create_user(
            session=session,
            actor=system,
            data=UserCreate(
                username="exporter", password=PASSWORD, roles=[Role.ADMIN], unit_id=root.id
            ),
        )
        session.execute(
            text(
                "INSERT INTO vehicle (plate, category, body_class, seats, energy, unit_id)"
                " SELECT '浙A·X' || lpad(n::text, 5, '0'), 'general', 'sedan', 4, 'petrol',"
                " CASE WHEN n <= :small THEN :unit ELSE :root END"
                " FROM generate_series(1, :n) n ORDER BY n"
            ),
            {"unit": unit.id, "root": root.id, "small": small, "n": vehicles},
        )
        ids = list(session.scalars(text("SELECT id FROM vehicle ORDER BY id")))
        assert ids == list(range(1, vehicles + 1)), "the tracks are written for ids 1..n"
        small_id = unit.id
    engine.dispose()
    return small_id


def _status(pid: int) -> dict[str, int]:
    """The process's memory figures from /proc, in kB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name.startswith("Vm"):
            out[name] = int(value.split()[0])
    return out


def pull(
    client: httpx.Client, pid: int, params: dict[str, Any], fmt: str
) -> tuple[int, int, float, int, int]:
    """One export read as it comes: (rows, bytes, seconds, the server's peak RSS above its RSS
    before, its peak RSS, kB). Rows are counted from the body: CSV lines, GeoJSON features,
    Parquet rows."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    before = _status(pid)["VmRSS"]
    size = 0
    lines = 0
    parquet = bytearray()
    began = time.perf_counter()
    with client.stream("GET", "/api/v1/export/positions", params={**params, "format": fmt}) as r:
        r.raise_for_status()
        for chunk in r.iter_bytes():
            size += len(chunk)
            if fmt == "parquet":
                parquet += chunk  # the file's footer says how many rows; kept here, not there
            else:
                lines += chunk.count(b"\n")
    seconds = time.perf_counter() - began
    highest = _status(pid)["VmHWM"]
    if fmt == "parquet":
        import io

        import pyarrow.parquet as pq

        rows = pq.ParquetFile(io.BytesIO(bytes(parquet))).metadata.num_rows
    elif fmt == "csv":
        rows = lines - 1
    else:
        rows = lines - 2  # the collection's first and last lines
    return rows, size, seconds, highest - before, highest


def main(argv: list[str] | None = None) -> None:
    parser = options(__doc__)
    parser.add_argument("--vehicles", type=int, default=1000)
    parser.add_argument("--days", type=int, default=2)
    parser.add_argument("--small", type=int, default=10)
    parser.add_argument("--formats", default="csv,parquet,geojson")
    args = parse(parser, argv)
    settings = bench_settings()
    small_unit = make_fleet(settings, args.vehicles, args.small)
    engine = make_engine(settings)
    began = time.perf_counter()
    fixes = fill(engine, range(1, args.vehicles + 1), args.days)
    print(
        f"{args.vehicles} vehicles x {args.days} days: {fixes:,} fixes,"
        f" loaded in {time.perf_counter() - began:.1f} s",
        file=sys.stderr,
    )
    engine.dispose()
    url_redis = redis_url(settings.redis_url)
    Redis.from_url(url_redis).flushdb()
    server, base = serve(settings.database_url, url_redis)
    period = {
        "since": START.isoformat(),
        "until": (START + timedelta(days=args.days)).isoformat(),
    }
    results: list[tuple[str, ...]] = [
        (
            "format",
            "pull",
            "rows",
            "MB",
            "seconds",
            "rows/s",
            "server peak RSS MB",
            "above before MB",
            "large/small",
        )
    ]
    try:
        token = httpx.post(
            f"{base}/api/v1/auth/token", data={"username": "exporter", "password": PASSWORD}
        ).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=base, headers=headers, timeout=600) as client:
            # a first small pull warms the server (imports, pools, the first Parquet writer)
            pull(client, server.pid, {**period, "unit_id": small_unit}, "csv")
            for fmt in args.formats.split(","):
                small = pull(client, server.pid, {**period, "unit_id": small_unit}, fmt)
                large = pull(client, server.pid, period, fmt)
                assert large[0] == fixes, (fmt, large[0], fixes)
                for name, (rows, size, seconds, peak, highest) in (
                    ("small", small),
                    ("large", large),
                ):
                    results.append(
                        (
                            fmt,
                            name,
                            f"{rows:,}",
                            f"{size / 1e6:,.1f}",
                            f"{seconds:.1f}",
                            f"{rows / seconds:,.0f}",
                            f"{highest / 1024:.1f}",
                            f"{peak / 1024:.1f}",
                            "-"
                            if name == "small"
                            else f"peak {highest / small[4]:.2f}x for {large[0] / small[0]:.0f}x"
                            " the rows",
                        )
                    )
    finally:
        server.terminate()
        server.wait(timeout=20)
    print(table(results))


if __name__ == "__main__":
    main(sys.argv[1:])
