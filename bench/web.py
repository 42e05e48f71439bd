"""The dispatcher's desk under 5,000 live vehicles each updating every second.

A stack of its own (a bench database with VEHICLES vehicles, `fleet serve`), the desk open in
headless Chromium (Debian's), and a publisher sending every vehicle's position once a second on
the live channel, in batches as the ingest worker does. Measured in the page: the time the desk
spends applying one batch (`window.fleetDesk.lastApplyMs`: rebuilding the features and handing
them to the map), the time until the map has drawn it (`lastDrawMs`) and the time from its
oldest position arriving until then (`lastWaitMs` + `lastDrawMs`), p50/p95/max, against the same
with a tenth of the vehicles measured in the same run; the page's JS heap at the start and the
end of the run (growth means a leak).

    python -m bench.web [--vehicles 5000] [--minutes 10]
"""

from __future__ import annotations

import json
import random
import statistics
import sys
import threading
import time
from typing import Any

from redis import Redis
from sqlalchemy import text

from bench._support import bench_settings, options, parse, serve, table
from bench.ingest import redis_url
from fleet import channels, registry
from fleet.auth import Actor
from fleet.db import make_engine, make_session_factory, unit_of_work
from fleet.models import Role
from fleet.schemas import UserCreate
from telematics import stream

CENTRE = (120.16, 30.27)
PASSWORD = "bench-password"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


def make_fleet(settings: Any, vehicles: int) -> None:
    engine = make_engine(settings)
    with unit_of_work(make_session_factory(engine)) as session:
        root = registry.create_root_unit(session=session, code="WEB", name="基准单位")
        registry.create_user(
            session=session,
            actor=Actor.system(root),
            data=UserCreate(
                username="desk", password=PASSWORD, roles=[Role.DISPATCHER], unit_id=root.id
            ),
        )
        session.execute(
            text(
                "INSERT INTO vehicle (plate, category, body_class, seats, energy, unit_id)"
                " SELECT '浙A·W' || lpad(n::text, 5, '0'), 'general', 'sedan', 4, 'bev', :unit"
                " FROM generate_series(1, :n) n"
            ),
            {"unit": root.id, "n": vehicles},
        )
    engine.dispose()


class Publisher(threading.Thread):
    """Every vehicle's position once a second, in batches of 500 like the worker's."""

    def __init__(self, url: str, ids: list[int], unit_id: int) -> None:
        super().__init__(daemon=True)
        self.redis = Redis.from_url(url)
        self.ids = ids
        self.unit_id = unit_id
        self.stop = threading.Event()
        self.rng = random.Random(3)
        self.where = {i: [CENTRE[0] + self.rng.uniform(-0.2, 0.2),
                          CENTRE[1] + self.rng.uniform(-0.15, 0.15)] for i in ids}  # fmt: skip

    def items(self, ids: list[int], now_ms: int) -> list[dict[str, Any]]:
        out = []
        for i in ids:
            spot = self.where[i]
            spot[0] += self.rng.uniform(-0.0005, 0.0005)
            spot[1] += self.rng.uniform(-0.0005, 0.0005)
            out.append({"vehicle_id": i, "unit_id": self.unit_id, "fix_ms": now_ms,
                        "fix_time": "", "received_ms": now_ms, "lat": spot[1], "lon": spot[0],
                        "speed_kmh": 40.0, "heading_deg": 0.0, "ignition": True})  # fmt: skip
        return out

    def run(self) -> None:
        while not self.stop.is_set():
            began = time.monotonic()
            now_ms = int(time.time() * 1000)
            for start in range(0, len(self.ids), 500):
                batch = self.items(self.ids[start : start + 500], now_ms)
                self.redis.publish(channels.LIVE, json.dumps({"type": "positions", "items": batch}))
            self.stop.wait(max(0.0, 1.0 - (time.monotonic() - began)))


def measure(page: Any, seconds: float) -> tuple[list[float], list[float], list[float]]:
    """Apply times (main thread), draw times (until the map shows the batch) and arrival times
    (from the oldest position of the batch arriving until the map shows it: the wait for the
    update before, then the draw) of the batches of `seconds`, sampled after each frame."""
    applied, drawn, arrived = page.evaluate(
        """async (ms) => {
          const applied = [], drawn = [], arrived = [];
          let a = window.fleetDesk.applied, d = window.fleetDesk.drawn;
          const end = performance.now() + ms;
          while (performance.now() < end) {
            await new Promise(r => requestAnimationFrame(r));
            if (window.fleetDesk.applied !== a) {
              a = window.fleetDesk.applied; applied.push(window.fleetDesk.lastApplyMs);
            }
            if (window.fleetDesk.drawn !== d) {
              d = window.fleetDesk.drawn; drawn.push(window.fleetDesk.lastDrawMs);
              arrived.push(window.fleetDesk.lastWaitMs + window.fleetDesk.lastDrawMs);
            }
          }
          return [applied, drawn, arrived];
        }""",
        seconds * 1000,
    )
    return list(applied), list(drawn), list(arrived)


def percentiles(samples: list[float]) -> tuple[float, float, float]:
    if not samples:
        return float("nan"), float("nan"), float("nan")
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[int(len(ordered) * 0.95)], ordered[-1]


def heap_mb(page: Any) -> float:
    client = page.context.new_cdp_session(page)
    client.send("Performance.enable")
    client.send("HeapProfiler.collectGarbage")
    metrics = {m["name"]: m["value"] for m in client.send("Performance.getMetrics")["metrics"]}
    return float(metrics.get("JSHeapUsedSize", 0.0)) / 1e6


def run(vehicles: int, minutes: float) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    settings = bench_settings()
    make_fleet(settings, vehicles)
    url_redis = redis_url(settings.redis_url)
    Redis.from_url(url_redis).flushdb()
    server, base = serve(settings.database_url, url_redis, FLEET_MAP_ZOOM="10")
    engine = make_engine(settings)
    with engine.connect() as conn:
        ids = list(conn.execute(text("SELECT id FROM vehicle ORDER BY id")).scalars())
        unit_id = int(conn.execute(text("SELECT id FROM org_unit")).scalar_one())
    engine.dispose()
    publisher = Publisher(url_redis, ids, unit_id)
    try:
        # Every vehicle has a last position before the page opens, as on a running system.
        now_ms = int(time.time() * 1000)
        publisher.redis.hset(
            stream.LAST_POSITIONS,
            mapping={i["vehicle_id"]: json.dumps(i) for i in publisher.items(ids, now_ms)},
        )
        with sync_playwright() as play:
            browser = play.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.goto(f"{base}/login")
            page.fill("#username", "desk")
            page.fill("#password", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url("**/desk")
            page.wait_for_function("window.fleetDesk && window.fleetDesk.ready", timeout=60_000)
            publisher.start()
            time.sleep(5)  # steady state
            heaps = [heap_mb(page)]  # once a minute: a leak keeps growing, a cache levels off
            applied: list[float] = []
            drawn: list[float] = []
            arrived: list[float] = []
            began = time.monotonic()
            deadline = began + minutes * 60
            while time.monotonic() < deadline:
                a, d, w = measure(page, min(30.0, max(1.0, deadline - time.monotonic())))
                applied += a
                drawn += d
                arrived += w
                if time.monotonic() - began >= 60 * len(heaps):
                    heaps.append(heap_mb(page))
            if len(heaps) < 2:
                heaps.append(heap_mb(page))
            browser.close()
    finally:
        publisher.stop.set()
        server.terminate()
        server.wait(timeout=20)
    return {
        "vehicles": vehicles,
        "batches": len(applied),
        "apply": percentiles(applied),
        "draw": percentiles(drawn),
        "arrival": percentiles(arrived),
        "heaps": heaps,
        "heap_start": heaps[0],
        "heap_end": heaps[-1],
    }


def main(argv: list[str] | None = None) -> None:
    parser = options(__doc__)
    parser.add_argument("--vehicles", type=int, default=5000)
    parser.add_argument("--minutes", type=float, default=10.0)
    args = parse(parser, argv)
    baseline = run(max(1, args.vehicles // 10), min(args.minutes, 1.0))
    full = run(args.vehicles, args.minutes)
    rows = [
        (
            "vehicles",
            "batches",
            "apply p50/p95/max ms",
            "drawn p50/p95/max ms",
            "arrival to screen p50/p95/max ms",
            "heap MB start/end",
        )
    ]
    for r in (baseline, full):
        rows.append(
            (
                f"{r['vehicles']:,}",
                f"{r['batches']:,}",
                "/".join(f"{v:.1f}" for v in r["apply"]),
                "/".join(f"{v:.1f}" for v in r["draw"]),
                "/".join(f"{v:.1f}" for v in r["arrival"]),
                f"{r['heap_start']:.1f}/{r['heap_end']:.1f}",
            )
        )
    print(table(rows))
    print(
        f"apply p95 {full['apply'][1]:.1f} ms (target under 50 ms), on screen p95"
        f" {full['draw'][1]:.1f} ms, x{full['draw'][1] / baseline['draw'][1]:.1f} the"
        f" {baseline['vehicles']:,}-vehicle baseline (from arrival {full['arrival'][1]:.1f} ms);"
        " heap"
        f" {full['heap_end'] - full['heap_start']:+.1f} MB over {args.minutes:g} min"
    )
    heaps = full["heaps"]
    half = heaps[len(heaps) // 2]
    print(
        "heap MB by minute: " + " ".join(f"{h:.1f}" for h in heaps) + f" ({heaps[-1] - half:+.1f}"
        f" MB over the second half)"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
