"""Geofence engine speed, beside a plain per-fix loop measured in the same run.

(1) membership: fixes against 1,000 fences (circles, corridors and polygons scattered over a
    city), in fix-checks per second (fixes x fences / time): the engine's grid of candidates +
    vectorised `intersects_xy`, against a loop that tests every fence for every fix with Shapely;
(2) the whole engine: membership, context and all eleven rules with per-vehicle state, in fixes
    per second on one core, on batches holding one fix of every vehicle (how a worker sees a
    fleet reporting live) and holding many (a backlog draining). The cars drive with no orders,
    so the movement rules are busy on every moving fix: a pessimistic case; then the same drives
    each under an approved order (corridor, places, overnight allowed): a day once dispatch is used.
    Beside each, the plain per-fix loop (`Engine.run_plain`: the same batch membership and
    kinematics, then per fix the context built in Python and every rule stepped), which must
    raise the same alerts. Each batch is cut from the tracks before the clock starts, with its
    columns (the worker gets both from the stream): what is timed is the engine, and the states
    it hands on.

No database: the engine is pure, so this is what it costs on its own.

    python -m bench.geofence [--fences 1000] [--fixes 200000] [--vehicles 5000]
"""

from __future__ import annotations

import gc
import math
import random
import sys
import time
from zoneinfo import ZoneInfo

import numpy as np
from shapely import LineString, Point, Polygon

from bench._support import options, parse, table, timed
from geofence import geometry
from geofence.calendar import LocalClock, WorkingCalendar
from geofence.engine import Engine, fix_columns
from geofence.fences import CompiledFence, FenceSet, VehicleInfo
from geofence.permits import NO_PERMITS, FixedPermits, Permit
from geofence.rules.base import Fix, Thresholds

CENTRE = (30.27, 120.16)  # Hangzhou
SPAN = 0.4  # degrees each way: a city and its outskirts
T0 = 1_790_000_000.0
KINDS = ("prohibited", "depot", "custom", "custom")


def make_fences(n: int, rng: random.Random) -> list[CompiledFence]:
    fences = []
    for i in range(n):
        lat = CENTRE[0] + rng.uniform(-SPAN, SPAN)
        lon = CENTRE[1] + rng.uniform(-SPAN, SPAN)
        shape = i % 3
        if shape == 0:
            area = geometry.area(Point(lon, lat), radius_m=rng.uniform(50, 800), width_m=None)
        elif shape == 1:
            line = LineString(
                [(lon + k * 0.01, lat + rng.uniform(-0.005, 0.005)) for k in range(6)]
            )
            area = geometry.area(line, radius_m=None, width_m=rng.uniform(30, 200))
        else:
            r = rng.uniform(0.002, 0.02)
            ring = [
                (lon + r * math.cos(a) * rng.uniform(0.7, 1), lat + r * math.sin(a))
                for a in np.linspace(0, 2 * math.pi, 24, endpoint=False)
            ]
            area = geometry.area(Polygon(ring), radius_m=None, width_m=None)
        fences.append(
            CompiledFence(
                id=i + 1,
                name=f"f{i}",
                kind=KINDS[i % len(KINDS)],
                area=area,
                speed_limit_kmh=60 if i % 10 == 0 else None,
            )
        )
    return fences


def make_tracks(vehicles: int, per_vehicle: int, rng: random.Random) -> dict[int, list[Fix]]:
    tracks = {}
    for v in range(1, vehicles + 1):
        lat = CENTRE[0] + rng.uniform(-SPAN, SPAN)
        lon = CENTRE[1] + rng.uniform(-SPAN, SPAN)
        heading = rng.uniform(0, 2 * math.pi)
        fixes = []
        for k in range(per_vehicle):
            speed = 0.0 if (k // 30) % 3 == 2 else rng.uniform(20, 90)
            step = speed / 3.6 * 10 / 111_000
            lat += step * math.cos(heading)
            lon += step * math.sin(heading)
            heading += rng.uniform(-0.2, 0.2)
            fixes.append(Fix(T0 + k * 10, lat, lon, speed, speed > 0, 1 if k == 5 else 0))
        tracks[v] = fixes
    return tracks


def plain_membership(fences: list[CompiledFence], lons: np.ndarray, lats: np.ndarray) -> int:
    hits = 0
    for lon, lat in zip(lons.tolist(), lats.tolist(), strict=True):
        point = Point(lon, lat)
        for fence in fences:
            if fence.area.contains(point):
                hits += 1
    return hits


def main(argv: list[str] | None = None) -> None:
    parser = options(__doc__)
    parser.add_argument("--fences", type=int, default=1000)
    parser.add_argument("--fixes", type=int, default=200_000)
    parser.add_argument("--vehicles", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=4000, help="fixes per worker batch")
    args = parse(parser, argv)
    rng = random.Random(42)
    fences = make_fences(args.fences, rng)
    fence_set = FenceSet(fences)

    # (1) membership
    n = args.fixes
    lats = np.array([CENTRE[0] + rng.uniform(-SPAN, SPAN) for _ in range(n)])
    lons = np.array([CENTRE[1] + rng.uniform(-SPAN, SPAN) for _ in range(n)])
    batch = args.batch

    def tree() -> int:
        return sum(
            len(h)
            for start in range(0, n, batch)
            for h in fence_set.containing(
                lons[start : start + batch], lats[start : start + batch]
            ).values()
        )

    tree_s = timed(tree)
    sample = 200  # the plain loop is slow: time it on a sample and scale
    plain_s = timed(lambda: plain_membership(fences, lons[:sample], lats[:sample]), repeat=1)
    assert plain_membership(fences, lons[:sample], lats[:sample]) == sum(
        len(h) for h in fence_set.containing(lons[:sample], lats[:sample]).values()
    )
    tree_rate = n * len(fences) / tree_s
    plain_rate = sample * len(fences) / plain_s

    # (2) the whole engine
    per_vehicle = max(1, n // args.vehicles)
    tracks = make_tracks(args.vehicles, per_vehicle, rng)
    infos = {v: VehicleInfo(id=v, unit_id=1, unit_path="1/", category="general") for v in tracks}
    day0 = int((T0 + 8 * 3600) // 86_400)
    calendar = WorkingCalendar(
        days={d: d % 7 not in (2, 3) for d in range(day0 - 5, day0 + 60)},
        default_hours=(8 * 3600 + 1800, 17 * 3600 + 1800),
    )
    total = sum(len(f) for f in tracks.values())

    # The typical day once orders exist: each car drives under an approved order whose corridor
    # is the road it takes, and parks at the order's places (overnight approved).
    approved = FixedPermits(
        tuple(
            Permit(
                vehicle_id=v,
                start_t=T0 - 60,
                end_t=T0 + 10 * per_vehicle + 60,
                order_id=v,
                places=tuple(
                    (f.lat, f.lon)
                    for f in fixes[:: max(1, len(fixes) // 8)]
                    if f.lat is not None and f.lon is not None
                ),
                corridor=LineString([(f.lon, f.lat) for f in fixes]),
                overnight=True,
            )
            for v, fixes in tracks.items()
        )
    )

    def whole(
        per_batch: int, permits: FixedPermits = NO_PERMITS, plain: bool = False
    ) -> tuple[int, float]:
        """Alert events raised, and the seconds the engine took: each batch is cut from the
        tracks before the clock starts (the worker gets it from the stream)."""
        engine = Engine(
            fences=FenceSet(fences),
            calendar=calendar,
            clock=LocalClock(ZoneInfo("Asia/Shanghai")),
            thresholds=Thresholds(),
            permits=permits,
        )
        states: dict[int, dict] = {}
        alerts, seconds = 0, 0.0
        columns = [
            fix_columns([f for fixes in tracks.values() for f in fixes[k : k + per_batch]])
            for k in range(0, per_vehicle, per_batch)
        ]
        for k in range(0, per_vehicle, per_batch):
            # As the worker takes them: a slice of time for every vehicle at once.
            part = {v: f[k : k + per_batch] for v, f in tracks.items()}
            start = time.perf_counter()
            if plain:
                outcome = engine.run_plain(part, states, infos)
            else:
                # the worker hands its batch's columns beside the tuples
                outcome = engine.run(part, states, infos, columns[k // per_batch])
            states.update(outcome.states)
            seconds += time.perf_counter() - start
            alerts += len(outcome.alerts)
        return alerts, seconds

    # The bench's own inputs (every vehicle's whole drive, ready to be cut into batches) are a
    # heap the worker does not have: moved out of the cycle collector's sight, so that its full
    # passes walk what the engine keeps, as in the worker (which freezes what it loads at start).
    gc.collect()
    gc.freeze()
    figures = []
    for label, permits in (("no orders", NO_PERMITS), ("every drive under an order", approved)):
        for per_batch in (1, per_vehicle):
            alerts, _ = whole(per_batch, permits)
            plain_alerts, plain_s = whole(per_batch, permits, plain=True)
            assert plain_alerts == alerts
            # best of two (the machine is shared; best is steadiest)
            engine_s = min(whole(per_batch, permits)[1] for _ in range(2))
            figures.append((label, per_batch, alerts, total / engine_s, total / plain_s))
    rows: list[tuple[str, ...]] = [
        ("stage", "figure", "vs plain loop"),
        (
            f"plain loop: every fence for every fix ({len(fences):,} fences)",
            f"{plain_rate:,.0f} fix-checks/s",
            "1.0",
        ),
        (
            f"membership: the grid and `intersects_xy`, per batch of {batch:,}",
            f"{tree_rate:,.0f} fix-checks/s",
            f"{tree_rate / plain_rate:,.0f}x",
        ),
    ]
    for label, per_batch, alerts, engine_rate, loop_rate in figures:
        scene = (
            f"{args.vehicles:,} vehicles, {per_batch} fix{'es' if per_batch > 1 else ''} each"
            f" per batch, {label} ({alerts:,} alert events)"
        )
        rows += [
            (f"plain loop: every rule on every fix, {scene}", f"{loop_rate:,.0f} fixes/s", "1.0"),
            (
                "  whole engine, the same",
                f"{engine_rate:,.0f} fixes/s",
                f"{engine_rate / loop_rate:.1f}x",
            ),
        ]
    print(table(rows))


if __name__ == "__main__":
    main(sys.argv[1:])
