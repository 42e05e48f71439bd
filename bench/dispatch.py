"""Dispatch planning: 1,000 approved orders against 5,000 vehicles.

Candidate filtering plus the optimal assignment (Hungarian method on the cost matrix), beside a
greedy nearest-first baseline on the same input: time, total cost and orders left unserved. No
database: the planner is pure, this is what it costs on its own.

    python -m bench.dispatch [--orders 1000] [--vehicles 5000]
"""

from __future__ import annotations

import random
import sys
import time

from bench._support import options, parse, table
from dispatch.matching import OrderFacts, VehicleFacts, distance_km, greedy, plan

CENTRE = (30.27, 120.16)


def instance(
    orders: int, vehicles: int, seed: int = 5
) -> tuple[list[OrderFacts], list[VehicleFacts]]:
    rng = random.Random(seed)
    pool = [
        VehicleFacts(
            id=v,
            plate=f"浙A·D{v:05d}",
            seats=rng.choice([4, 4, 4, 5, 7, 7, 11, 19]),
            category=rng.choice(["general"] * 6 + ["emergency", "enforcement"]),
            body_class=rng.choice(["sedan", "sedan", "suv", "mpv", "minibus"]),
            active=rng.random() > 0.05,
            new_energy=rng.random() < 0.45,
            lat=CENTRE[0] + rng.uniform(-0.3, 0.3),
            lon=CENTRE[1] + rng.uniform(-0.3, 0.3),
            tracker_fresh=rng.random() > 0.03,
            month_km=rng.uniform(0, 3000),
        )
        for v in range(1, vehicles + 1)
    ]
    wanted = [
        OrderFacts(
            id=o,
            passengers=rng.choice([1, 2, 2, 3, 4, 6, 9]),
            lat=CENTRE[0] + rng.uniform(-0.3, 0.3),
            lon=CENTRE[1] + rng.uniform(-0.3, 0.3),
            urban=rng.random() > 0.2,
            category=rng.choice([None] * 8 + ["emergency"]),
            body_class=rng.choice([None] * 6 + ["mpv"]),
        )
        for o in range(1, orders + 1)
    ]
    return wanted, pool


def main(argv: list[str] | None = None) -> None:
    parser = options(__doc__)
    parser.add_argument("--orders", type=int, default=1000)
    parser.add_argument("--vehicles", type=int, default=5000)
    args = parse(parser, argv)
    orders, pool = instance(args.orders, args.vehicles)
    started = time.perf_counter()
    baseline = greedy(orders, pool)
    greedy_s = time.perf_counter() - started
    started = time.perf_counter()
    best = plan(orders, pool)
    plan_s = time.perf_counter() - started
    by_order = {o.id: o for o in orders}
    by_vehicle = {v.id: v for v in pool}

    def empty_km(pairs: list[tuple[int, int, float]]) -> float:
        """Kilometres driven empty to the origins (straight line), the plain part of the cost."""
        return sum(
            distance_km(
                by_vehicle[v].lat or 0, by_vehicle[v].lon or 0, by_order[o].lat, by_order[o].lon
            )
            for o, v, _ in pairs
        )

    print(
        table(
            [
                ("planner", "time", "cost (lower is better)", "empty km", "served", "unserved"),
                (
                    f"greedy nearest-first ({len(orders):,} x {len(pool):,})",
                    f"{greedy_s:.2f} s",
                    f"{baseline.total_cost:,.1f}",
                    f"{empty_km(baseline.pairs):,.0f}",
                    f"{len(baseline.pairs):,}",
                    f"{len(baseline.unserved):,}",
                ),
                (
                    "optimal (Hungarian, penalties)",
                    f"{plan_s:.2f} s",
                    f"{best.total_cost:,.1f} ({best.total_cost - baseline.total_cost:+,.1f})",
                    f"{empty_km(best.pairs):,.0f}",
                    f"{len(best.pairs):,}",
                    f"{len(best.unserved):,}",
                ),
            ]
        )
    )


if __name__ == "__main__":
    main(sys.argv[1:])
