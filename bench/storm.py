"""A reconnection storm, as after a gateway restart or a network cut in a county: N registered
JT/T 808 terminals connect at once to gateways whose copy of the registry has gone stale. Each
opens its connection, registers (0x0100 -> 0x8100), authenticates (0x0102) and sends one report
(0x0200); what counts is the time until the last report is acknowledged. Two storms: terminals
bound already (a reconnection: each is recognised and issued a new code), and terminals
registering for the first time (each binding is written and audited). Baseline in the same run:
the same storm of a tenth as many terminals.

The terminals run in client processes of at most 8,000 each, and past 15,000 terminals two
gateway processes share the JT/T 808 port (FLEET_JT808_SHARED_PORT), each process on this
machine being allowed 20,000 open files.

    python -m bench.storm [--terminals 3000] [--gateways 0 (as many as needed)]
"""

from __future__ import annotations

import asyncio
import multiprocessing
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from typing import Any

import uvloop
from redis import Redis
from sqlalchemy import text

from bench._support import bench_settings, options, parse, table
from bench.ingest import _wait_port, child_env, free_port, make_fleet, redis_url
from fleet.db import make_engine
from telematics import simulator
from telematics.fix import Fix

PER_CLIENT = 8_000
PER_GATEWAY = 15_000
CACHE_S = 5.0  # the gateways' FLEET_DEVICE_CACHE_S: stale by the time the storm comes
PHASES = ("connect", "register", "authenticate", "report")


async def _storm(port: int, phones: list[str], start_at: float) -> list[Any]:
    """Every terminal of this process at once; per terminal its phase end times (epoch s), or
    the error that stopped it."""
    fix = Fix("", datetime.now(UTC).replace(microsecond=0), 30.25, 120.2, speed_kmh=0.0)
    await asyncio.sleep(max(0.0, start_at - time.time()))

    async def one(phone: str) -> Any:
        client = simulator.JT808Terminal("127.0.0.1", port, phone, reply_timeout_s=300)
        ends: list[float] = []
        try:
            for attempt in range(10):  # a refused connection is tried again, as terminals do
                try:
                    await client.open()
                    break
                except OSError:
                    await asyncio.sleep(1 + attempt)
            else:
                return "could not connect"
            ends.append(time.time())
            code = await client.register()
            ends.append(time.time())
            await client.authenticate(code)
            ends.append(time.time())
            if not await client.report([fix]):
                return "report refused"
            ends.append(time.time())
            return ends
        except Exception as error:
            return f"{type(error).__name__}: {error}"[:80]
        finally:
            if client.writer is not None:
                client.writer.close()

    return await asyncio.gather(*(one(phone) for phone in phones))


def _client(port: int, phones: list[str], start_at: float, out: Any) -> None:
    out.put(uvloop.run(_storm(port, phones, start_at)))


def storm(n: int, gateways: int, *, bound: bool) -> dict[str, Any]:
    settings = bench_settings()
    engine = make_engine(settings)
    targets = make_fleet(engine, n)
    if bound:  # bound to the identity the simulated terminals claim
        with engine.begin() as conn:
            conn.execute(
                text(
                    "UPDATE device SET terminal_maker = 'FLEET', terminal_model = 'SIM-808',"
                    " terminal_id = 'FLEET01', bound_at = now()"
                )
            )
    engine.dispose()
    redis = Redis.from_url(redis_url(settings.redis_url))
    redis.flushdb()
    port = free_port()
    phones = [str(13800000000 + t.vehicle_id) for t in targets]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "app.cli", "gateway"],
            env=child_env(
                settings,
                {
                    "FLEET_JT808_PORT": str(port),
                    "FLEET_OSMAND_PORT": str(free_port()),
                    "FLEET_DEVICE_CACHE_S": str(CACHE_S),
                    "FLEET_JT808_SHARED_PORT": "true",
                },
            ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(gateways)
    ]
    try:
        _wait_port(port)
        time.sleep(CACHE_S + 1)  # every gateway's copy of the registry is now stale
        start_at = time.time() + 2.0
        queue: Any = multiprocessing.get_context("spawn").Queue()
        chunks = [phones[i : i + PER_CLIENT] for i in range(0, len(phones), PER_CLIENT)]
        clients = [
            multiprocessing.get_context("spawn").Process(
                target=_client, args=(port, chunk, start_at, queue)
            )
            for chunk in chunks
        ]
        for client in clients:
            client.start()
        results = [r for _ in clients for r in queue.get()]
        for client in clients:
            client.join()
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)
        redis.flushdb()
        redis.close()
    done = [r for r in results if isinstance(r, list)]
    errors: dict[str, int] = {}
    for r in results:
        if not isinstance(r, list):
            errors[r] = errors.get(r, 0) + 1
    phases: dict[str, list[float]] = {}
    for ends in done:
        starts = [start_at, *ends[:-1]]
        for name, begin, end in zip(PHASES, starts, ends, strict=True):
            phases.setdefault(name, []).append(end - begin)
    return {
        "n": n,
        "bound": bound,
        "gateways": gateways,
        "done": len(done),
        "last_ack_s": max((ends[-1] for ends in done), default=start_at) - start_at,
        "phases": phases,
        "errors": errors,
    }


def _quantiles(values: list[float]) -> str:
    if not values:
        return "-"
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return f"{statistics.median(ordered):.2f} / {p95:.2f} / {ordered[-1]:.2f} s"


def main(argv: list[str] | None = None) -> None:
    parser = options(__doc__)
    parser.add_argument("--terminals", type=int, default=3000)
    parser.add_argument(
        "--gateways", type=int, default=0, help="gateway processes (0: one per 15,000 terminals)"
    )
    args = parse(parser, argv)
    rows = [("stage", "figure", "vs baseline")]
    unfinished = 0
    for bound in (True, False):
        runs = []
        for n in (max(1, args.terminals // 10), args.terminals):
            runs.append(storm(n, args.gateways or -(-n // PER_GATEWAY), bound=bound))
        baseline = runs[0]
        base_rate = baseline["done"] / baseline["last_ack_s"] if baseline["last_ack_s"] else 0.0
        for run in runs:
            rate = run["done"] / run["last_ack_s"] if run["last_ack_s"] else 0.0
            kind = "bound already" if bound else "first registration"
            label = f"{run['n']:,} terminals ({kind}), {run['gateways']} gateway(s)"
            rows.append(
                (
                    f"{label}: last report acknowledged after",
                    f"{run['last_ack_s']:.1f} s ({run['done']:,} done, {rate:,.0f} terminals/s)",
                    f"{rate / base_rate:.2f}" if base_rate else "-",
                )
            )
            for name in PHASES:
                figures = _quantiles(run["phases"].get(name, []))
                rows.append((f"  {name} p50 / p95 / max", figures, ""))
            for error, count in sorted(run["errors"].items()):
                rows.append((f"  failed: {error}", f"{count:,}", ""))
            unfinished += run["n"] - run["done"]
    print(table(rows))
    assert not unfinished, f"{unfinished} terminals did not finish: see the failures above"


if __name__ == "__main__":
    main(sys.argv[1:])
