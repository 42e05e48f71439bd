"""Merged trips (合并用车) (pure): one car carrying several orders, the seats they need, the window
they hold together, the order the car visits their places in, and how their costs are shared.

- Seats: the orders' passengers add up to no more than the car's seats.
- Window: from the first order's start to the last one's end.
- Route: from the first order's origin, by the other orders' origins (in the order they start),
  through every destination in the order that makes the straight-line tour shortest (every
  permutation for a few stops, nearest first beyond), and back to the first origin. The roads
  then join the stops (`dispatch.service.assignment.route_through`).
- Costs: each order bears the trip's costs in proportion to its passengers.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from telematics.trips import haversine_m

# Up to this many distinct destinations every visiting order is tried (8! = 40,320 tours);
# beyond, the nearest destination next.
EXACT_UP_TO = 8


@dataclass(frozen=True, slots=True)
class Rider:
    """An order as merging sees it."""

    id: int
    passengers: int
    start_at: datetime
    end_at: datetime
    origin: tuple[float, float]  # (lat, lon)
    destinations: tuple[tuple[float, float], ...]  # (lat, lon), as the order lists them


def lead(riders: Sequence[Rider]) -> Rider:
    """The order the trip starts with: the first to start (the lowest id of a tie)."""
    return min(riders, key=lambda r: (r.start_at, r.id))


def joined_window(riders: Sequence[Rider]) -> tuple[datetime, datetime]:
    return min(r.start_at for r in riders), max(r.end_at for r in riders)


def seats_short(riders: Sequence[Rider], seats: int) -> int:
    """How many passengers are over the seats (0 when they fit)."""
    return max(0, sum(r.passengers for r in riders) - seats)


def _key(point: tuple[float, float]) -> tuple[float, float]:
    return (round(point[0], 6), round(point[1], 6))


def _distinct(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    seen: set[tuple[float, float]] = set()
    kept = []
    for point in points:
        if _key(point) not in seen:
            seen.add(_key(point))
            kept.append(point)
    return kept


def _metres(a: tuple[float, float], b: tuple[float, float]) -> float:
    return haversine_m(a[0], a[1], b[0], b[1])


def _path_m(path: Sequence[tuple[float, float]]) -> float:
    return sum(_metres(a, b) for a, b in itertools.pairwise(path))


def _nearest_first(
    start: tuple[float, float], stops: Sequence[tuple[float, float]]
) -> list[tuple[float, float]]:
    left, at, ordered = list(stops), start, []
    while left:
        nearest = min(left, key=lambda p: _metres(at, p))
        left.remove(nearest)
        ordered.append(nearest)
        at = nearest
    return ordered


def stops(riders: Sequence[Rider]) -> list[tuple[float, float]]:
    """The places the car visits, (lat, lon): the first origin, the other origins, every
    destination once in a shortest order, and the first origin again."""
    first = lead(riders)
    pickups = _distinct(
        [first.origin, *(r.origin for r in sorted(riders, key=lambda r: (r.start_at, r.id)))]
    )
    known = {_key(p) for p in pickups}
    drops = [
        p for p in _distinct([d for r in riders for d in r.destinations]) if _key(p) not in known
    ]
    after = pickups[-1]
    if len(drops) <= EXACT_UP_TO:
        best = min(
            itertools.permutations(drops), key=lambda tour: _path_m([after, *tour, first.origin])
        )
        ordered = list(best)
    else:
        ordered = _nearest_first(after, drops)
    return [*pickups, *ordered, first.origin]


def cost_shares(passengers: Mapping[int, int]) -> dict[int, float]:
    """Each order's part of the trip's costs: its passengers over all the trip's passengers."""
    total = sum(passengers.values())
    if total <= 0:
        return {order: 1 / len(passengers) for order in passengers} if passengers else {}
    return {order: count / total for order, count in passengers.items()}
