"""Ingest throughput and live delay, each beside the storage limit measured in the same run.

(a) storage limit: binary COPY of the same fixes into a `position` partition with its key;
(b) worker stage: a pre-filled stream drained by `fleet worker` into committed rows (peak RSS);
(c) end to end: simulated JT/T 808 terminals over TCP -> gateway -> Redis -> worker -> PostGIS,
    sustained fixes/s, loss (acknowledged fixes missing from PostGIS), and the delay from gateway
    receipt to delivery on the live WebSocket (p50/p99).

    python -m bench.ingest [--fixes 200000] [--terminals 5000] [--rate 25000] [--duration 60]
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import random
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import uvloop
from redis import Redis
from sqlalchemy import Engine, text

from bench._support import bench_settings, options, parse, table
from fleet.db import make_engine
from fleet.settings import Settings
from telematics import simulator, stream
from telematics.batch import FixBatch
from telematics.fix import Fix
from telematics.ingest import IngestWorker, encode_copy
from telematics.protocols import jt808
from telematics.settings import TelematicsSettings
from telematics.stream import Target

BENCH_REDIS_DB = 14


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def redis_url(base: str) -> str:
    return urlunsplit(urlsplit(base)._replace(path=f"/{BENCH_REDIS_DB}"))


def make_fleet(engine: Engine, terminals: int) -> list[Target]:
    """Units, vehicles and JT/T 808 devices for the bench, straight into the tables."""
    with engine.begin() as conn:
        conn.execute(
            text("TRUNCATE position, trip, stop, device, driver, vehicle, org_unit CASCADE")
        )
        unit = conn.execute(
            text(
                "INSERT INTO org_unit (code, name, path) VALUES ('BENCH', '压测', '') RETURNING id"
            )
        ).scalar_one()
        conn.execute(text("UPDATE org_unit SET path = id || '/' WHERE id = :u"), {"u": unit})
        conn.execute(
            text(
                "INSERT INTO vehicle (plate, category, body_class, seats, energy, unit_id)"
                " SELECT '浙A·B' || lpad(n::text, 5, '0'), 'general', 'sedan', 4, 'bev', :u"
                " FROM generate_series(1, :n) n"
            ),
            {"u": unit, "n": terminals},
        )
        conn.execute(
            text(
                "INSERT INTO device (protocol, identifier, vehicle_id, unit_id)"
                " SELECT 'jt808', (13800000000 + v.id)::text, v.id, :u FROM vehicle v"
            ),
            {"u": unit},
        )
        rows = conn.execute(text("SELECT d.id, d.vehicle_id FROM device d ORDER BY d.id")).all()
    return [Target(device_id=d, vehicle_id=v, unit_id=unit) for d, v in rows]


def synthetic_rows(targets: list[Target], count: int) -> list[list[Any]]:
    start = datetime.now(UTC) - timedelta(hours=2)
    rows = []
    per = max(1, count // len(targets))
    received = stream.now_ms()
    for i in range(count):
        target = targets[i % len(targets)]
        fix = Fix(
            device_identifier="x",
            fix_time=start + timedelta(seconds=(i // len(targets)) % per),
            lat=30.2 + (i % 997) * 1e-4,
            lon=120.1 + (i % 991) * 1e-4,
            speed_kmh=42.0,
            heading_deg=90.0,
            altitude_m=12.0,
            ignition=True,
            odometer_km=1000.0 + i / 100,
            attributes={"sat": 12},
            valid=True,
        )
        rows.append(stream.to_row(fix, target, received))
    return rows


def storage_limit(engine: Engine, rows: list[list[Any]], redis: Redis) -> tuple[float, float]:
    """(rows/s with the key, rows/s into a bare copy) for one COPY of `rows`."""
    worker = IngestWorker(engine=engine, redis=redis, settings=TelematicsSettings())
    batch = FixBatch.from_rows(rows)
    data = encode_copy(batch)
    with engine.connect() as sa_conn:
        conn = sa_conn.connection.driver_connection
        assert conn is not None
        conn.autocommit = True
        worker._ensure_partitions(conn, batch["fix_ms"])
        conn.execute("CREATE TABLE IF NOT EXISTS position_bare (LIKE position)")
        results = []
        for table_name in ("position", "position_bare"):
            conn.execute(f"TRUNCATE {table_name}")
            started = time.perf_counter()
            with conn.transaction():
                worker._copy(conn, table_name, data)
            results.append(len(rows) / (time.perf_counter() - started))
        conn.execute("DROP TABLE position_bare")
        conn.execute("TRUNCATE position")
        conn.autocommit = False
    return results[0], results[1]


def child_env(settings: Settings, tsettings: dict[str, str]) -> dict[str, str]:
    return {
        **os.environ,
        "FLEET_DATABASE_URL": settings.database_url,
        "FLEET_REDIS_URL": redis_url(settings.redis_url),
        **tsettings,
    }


def peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def count_positions(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM position")).scalar_one())


def worker_stage(
    engine: Engine, redis: Redis, rows: list[list[Any]], env: dict[str, str], workers: int
) -> tuple[float, float]:
    """Fixes/s from a filled stream to committed rows with `workers` processes sharing the shards
    (timed from the first entry written, the workers already waiting), and their peak RSS."""
    redis.flushdb()
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE position, trip, stop CASCADE"))
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "app.cli",
                "worker",
                "--index",
                str(i),
                "--count",
                str(workers),
            ],
            env=env,
        )
        for i in range(workers)
    ]
    try:
        shards = int(env["FLEET_STREAM_SHARDS"])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not all(
            redis.exists(stream.stream_key(s)) for s in range(shards)
        ):
            time.sleep(0.1)  # each worker creates its shards' consumer groups when ready
        by_shard: dict[int, list[list[Any]]] = {}
        for row in rows:
            by_shard.setdefault(stream.shard_of(row[stream.R_VEHICLE], shards), []).append(row)
        payloads = [
            (stream.stream_key(shard), stream.entry(shard_rows[i : i + 200]))
            for shard, shard_rows in by_shard.items()
            for i in range(0, len(shard_rows), 200)
        ]
        started = time.perf_counter()
        with redis.pipeline(transaction=False) as pipe:
            for key, payload in payloads:
                pipe.xadd(key, payload)  # type: ignore[arg-type]
            pipe.execute()
        # the workers count what they commit in Redis: polled there, the clock does not
        # compete with them for PostgreSQL; the table is counted once at the end
        while int(redis.hget(stream.COUNTERS, "stored") or 0) < len(rows):
            time.sleep(0.01)
        elapsed = time.perf_counter() - started
        stored = count_positions(engine)
        assert stored == len(rows), f"{stored:,} rows stored of {len(rows):,}"
        rss = max(peak_rss_mb(p.pid) for p in procs)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)
    return len(rows) / elapsed, rss


def _watch_live(api_port: int, token: str, seconds: float, out: Any) -> None:
    """In a process of its own: the load generator's busy loop would otherwise add its own lag
    to every delay measured."""
    deadline = time.monotonic() + seconds
    out.put(asyncio.run(live_delays(api_port, token, deadline)))


async def live_delays(api_port: int, token: str, until: float) -> list[tuple[float, float]]:
    """(seconds before `until`, delay in ms) of every position delivered."""
    import websockets

    delays: list[tuple[float, float]] = []
    async with websockets.connect(
        f"ws://127.0.0.1:{api_port}/ws/live?token={token}", max_size=None
    ) as ws:
        while time.monotonic() < until:
            try:
                raw = await asyncio.wait_for(ws.recv(), timeout=1.0)
            except TimeoutError:
                continue
            now = stream.now_ms()
            message = json.loads(raw)
            if message["type"] == "positions":
                left = until - time.monotonic()
                delays += [(left, now - item["received_ms"]) for item in message["items"]]
    return delays


def end_to_end(
    settings: Settings,
    engine: Engine,
    redis: Redis,
    targets: list[Target],
    env: dict[str, str],
    *,
    rate: float,
    duration: float,
    batch: int,
    api_port: int,
    workers: int,
) -> dict[str, Any]:
    redis.flushdb()
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE position, trip, stop CASCADE"))
    jt808_port = int(env["FLEET_JT808_PORT"])
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "app.cli", *args],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for args in (
            ("gateway",),
            ("serve",),
            *(("worker", "--index", str(i), "--count", str(workers)) for i in range(workers)),
        )
    ]
    try:
        _wait_port(jt808_port)
        _wait_port(api_port)
        token = _admin_token(engine, api_port)
        phones = [str(13800000000 + t.vehicle_id) for t in targets]
        interval = len(phones) / rate  # each terminal takes a fix every interval
        # The load generator shares the 2 cores with what it measures, so every report is
        # encoded before the clock starts: during the run the terminals only write and wait.
        frames = pre_encode(phones, per_terminal=int(duration / interval) + batch, batch=batch)

        async def run() -> tuple[simulator.Stats, list[float], list[tuple[float, int]]]:
            until = time.monotonic() + duration
            samples: list[tuple[float, int]] = []
            stats = simulator.Stats()

            async def sample() -> None:
                while time.monotonic() < until:
                    count = await asyncio.to_thread(count_positions, engine)
                    samples.append((time.monotonic(), count))
                    await asyncio.sleep(2.0)

            async def terminal(n: int, phone: str) -> None:
                await asyncio.sleep(n % 1000 / 1000 * interval * batch)
                for attempt in range(5):  # a terminal retries, as real ones do
                    client = simulator.JT808Terminal("127.0.0.1", jt808_port, phone)
                    try:
                        await client.connect()
                        break
                    except (OSError, PermissionError, TimeoutError):
                        stats.errors += 1
                        await client.close()
                        await asyncio.sleep(1 + attempt)
                else:
                    return
                stats.connected += 1
                next_at = time.monotonic()
                try:
                    for frame in frames[phone]:
                        if time.monotonic() >= until:
                            break
                        stats.sent += batch
                        if await client.send_frame(frame):
                            stats.acked += batch
                        else:
                            stats.refused += batch
                        next_at += interval * batch
                        await asyncio.sleep(max(0.0, next_at - time.monotonic()))
                finally:
                    await client.close()

            context = multiprocessing.get_context("spawn")
            received = context.Queue()
            watcher = context.Process(
                target=_watch_live, args=(api_port, token, until - time.monotonic(), received)
            )
            watcher.start()
            sim = asyncio.gather(*(terminal(n, p) for n, p in enumerate(phones)))
            sampler = asyncio.create_task(sample())
            await sim
            await sampler
            delays = await asyncio.to_thread(received.get, True, 60)
            watcher.join(timeout=10)
            return stats, delays, samples

        # The load generator runs on uvloop, as the gateway does, to leave the cores to the system.
        generator_cpu = time.process_time()
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            stats, delays, samples = runner.run(run())
        deadline = time.monotonic() + 120
        while count_positions(engine) < stats.acked and time.monotonic() < deadline:
            time.sleep(0.2)
        stored = count_positions(engine)
        duplicates = int(redis.hget(stream.COUNTERS, "duplicate") or 0)
        worker_rss = max(peak_rss_mb(p.pid) for p in procs[2:])
        # CPU per fix in each process, where the two cores went
        cpu = {
            "gateway": cpu_seconds(procs[0].pid),
            "api": cpu_seconds(procs[1].pid),
            "workers": sum(cpu_seconds(p.pid) for p in procs[2:]),
            "load generator": time.process_time() - generator_cpu,
        }
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)
    # Sustained rate: committed rows over the middle of the run, after the terminals connected.
    steady = [s for s in samples if s[0] - samples[0][0] >= min(10.0, duration / 3)]
    sustained = (
        (steady[-1][1] - steady[0][1]) / (steady[-1][0] - steady[0][0])
        if len(steady) >= 2
        else float("nan")
    )
    # Delays in the same steady part of the run (the connection storm at the start is not the
    # live picture a dispatcher watches).
    warm_up = min(10.0, duration / 3)
    steady_delays = sorted(d for left, d in delays if left <= duration - warm_up)
    # p99 by 10-second window of the run, to tell a steady tail from a burst
    windows: dict[int, list[float]] = {}
    for left, d in delays:
        windows.setdefault(int((duration - left) // 10), []).append(d)
    by_window = [
        sorted(found)[int(len(found) * 0.99)] for _, found in sorted(windows.items()) if found
    ]
    return {
        "sustained": sustained,
        "acked": stats.acked,
        "stored": stored,
        "lost": max(0, stats.acked - stored - duplicates),
        "duplicates": duplicates,
        "p50": steady_delays[len(steady_delays) // 2] if steady_delays else float("nan"),
        "p99": steady_delays[int(len(steady_delays) * 0.99)] if steady_delays else float("nan"),
        "delivered": len(steady_delays),
        "p99_by_window": by_window,
        "worker_rss": worker_rss,
        "cpu_us": {k: v / max(stats.acked, 1) * 1e6 for k, v in cpu.items()},
        "connected": stats.connected,
    }


def pre_encode(phones: list[str], *, per_terminal: int, batch: int) -> dict[str, list[bytes]]:
    """0x0704 batch reports for each terminal, one fix per simulated second along a drive."""
    origin = datetime.now(UTC) - timedelta(seconds=per_terminal + 120)
    routes = simulator.StraightLegs((30.25, 120.2))
    frames: dict[str, list[bytes]] = {}
    for n, phone in enumerate(phones):
        motion = simulator.Motion(position=(30.25, 120.2), rng=random.Random(n), routes=routes)
        fixes = []
        for k in range(per_terminal):
            motion.advance(float(k), 1.0)
            fixes.append(motion.fix(phone, origin + timedelta(seconds=k)))
        frames[phone] = [
            jt808.encode_frame(
                0x0704, phone, i + 1, jt808.batch_body(fixes[i * batch : (i + 1) * batch])
            )
            for i in range(per_terminal // batch)
        ]
    return frames


def _wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


def _admin_token(engine: Engine, api_port: int) -> str:
    import urllib.parse
    import urllib.request

    from sqlalchemy.orm import Session

    from fleet import registry
    from fleet.models import OrgUnit
    from fleet.schemas import UserCreate

    with Session(engine) as session, session.begin():
        unit = session.query(OrgUnit).filter_by(code="BENCH").one()
        registry.create_user(
            session=session,
            actor=None,
            data=UserCreate(
                username="bench-admin", password="bench-password", roles=["admin"], unit_id=unit.id
            ),
        )
    body = urllib.parse.urlencode({"username": "bench-admin", "password": "bench-password"})
    with urllib.request.urlopen(
        f"http://127.0.0.1:{api_port}/api/v1/auth/token", data=body.encode(), timeout=10
    ) as reply:
        return str(json.load(reply)["access_token"])


def main(argv: list[str] | None = None) -> None:
    parser = options(__doc__)
    parser.add_argument("--fixes", type=int, default=200_000)
    parser.add_argument("--terminals", type=int, default=5000)
    parser.add_argument("--rate", type=float, default=25_000, help="offered fixes/s in (c)")
    parser.add_argument("--duration", type=float, default=60)
    parser.add_argument("--batch", type=int, default=10, help="fixes per 0x0704 report")
    parser.add_argument("--workers", type=int, default=2, help="ingest workers in (c)")
    args = parse(parser, argv)
    settings = bench_settings()
    engine = make_engine(settings, pool_size=4)
    redis = Redis.from_url(redis_url(settings.redis_url))
    redis.flushdb()
    targets = make_fleet(engine, args.terminals)
    rows = synthetic_rows(targets, args.fixes)
    keyed, bare = storage_limit(engine, rows, redis)
    api_port = free_port()
    env = child_env(
        settings,
        {
            "FLEET_STREAM_SHARDS": "8",
            "FLEET_JT808_PORT": str(free_port()),
            "FLEET_OSMAND_PORT": str(free_port()),
            "FLEET_HTTP_PORT": str(api_port),
            "FLEET_GATEWAY_HOST": "127.0.0.1",
        },
    )
    stage, stage_rss = worker_stage(engine, redis, rows, env, workers=1)
    stage2, stage2_rss = worker_stage(engine, redis, rows, env, workers=2)
    e2e = end_to_end(
        settings,
        engine,
        redis,
        targets,
        env,
        rate=args.rate,
        duration=args.duration,
        batch=args.batch,
        api_port=api_port,
        workers=args.workers,
    )
    print(
        table(
            [
                ("stage", "figure", "vs (a)"),
                ("(a) COPY, bare table", f"{bare:,.0f} fixes/s", f"{bare / keyed:.2f}"),
                ("(a) COPY into position (with key)", f"{keyed:,.0f} fixes/s", "1.00"),
                (
                    "(b) worker: stream -> committed",
                    f"{stage:,.0f} fixes/s",
                    f"{stage / keyed:.2f}",
                ),
                ("(b) worker peak RSS", f"{stage_rss:,.0f} MB", ""),
                ("(b) 2 workers (--count 2)", f"{stage2:,.0f} fixes/s", f"{stage2 / keyed:.2f}"),
                ("(b) 2 workers, peak RSS each", f"{stage2_rss:,.0f} MB", ""),
                (
                    f"(c) end to end, {e2e['connected']:.0f} terminals, {args.workers} workers,"
                    f" offered {args.rate:,.0f}/s",
                    f"{e2e['sustained']:,.0f} fixes/s",
                    f"{e2e['sustained'] / keyed:.2f}",
                ),
                (
                    "(c) acknowledged / stored / duplicate / lost",
                    f"{e2e['acked']:,.0f} / {e2e['stored']:,.0f} / {e2e['duplicates']:,.0f}"
                    f" / {e2e['lost']:,.0f}",
                    "",
                ),
                (
                    "(c) live delay p50 / p99",
                    f"{e2e['p50']:.0f} / {e2e['p99']:.0f} ms ({e2e['delivered']:,.0f} deliveries)",
                    "",
                ),
                (
                    "(c) live delay p99 by 10 s of the run",
                    " ".join(f"{d:.0f}" for d in e2e["p99_by_window"]) + " ms",
                    "",
                ),
                ("(c) worker peak RSS", f"{e2e['worker_rss']:,.0f} MB", ""),
                (
                    "(c) CPU per fix: " + ", ".join(e2e["cpu_us"]),
                    " / ".join(f"{v:.1f}" for v in e2e["cpu_us"].values()) + " us",
                    "",
                ),
            ]
        )
    )
    redis.flushdb()
    redis.close()
    engine.dispose()


if __name__ == "__main__":
    main(sys.argv[1:])
