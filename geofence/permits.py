"""What the engine needs to know about approved trips, and the interface it asks through.

The dispatch package implements `PermitSource`; the composition root plugs it in. Until then (and
in tests) a source of the caller's own permits stands in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from shapely import LineString


@dataclass(frozen=True, slots=True)
class Permit:
    """One approved use of one vehicle: the window it covers and what was approved for it."""

    vehicle_id: int
    start_t: float  # epoch seconds, UTC
    end_t: float
    order_id: int | None = None
    driver_id: int | None = None
    # (lat, lon) of the origin and every destination
    places: tuple[tuple[float, float], ...] = ()
    # the planned route as (lon, lat) vertices; none means no corridor check
    corridor: LineString | None = None
    out_of_region: bool = False
    overnight: bool = False

    def covers(self, t: float) -> bool:
        return self.start_t <= t <= self.end_t


class PermitSource(Protocol):
    def permits(
        self, vehicle_ids: Iterable[int], start_t: float, end_t: float
    ) -> Mapping[int, Sequence[Permit]]:
        """Every permit of these vehicles whose window meets [start_t, end_t]."""
        ...


@dataclass(frozen=True)
class FixedPermits:
    """A permit source over permits held in memory (tests, replay of a known case)."""

    items: tuple[Permit, ...] = ()
    _by_vehicle: dict[int, tuple[Permit, ...]] = field(init=False, repr=False, compare=False)
    # per vehicle: the latest start and the earliest end of its permits
    _spans: dict[int, tuple[float, float]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_vehicle: dict[int, list[Permit]] = {}
        for permit in self.items:
            by_vehicle.setdefault(permit.vehicle_id, []).append(permit)
        object.__setattr__(self, "_by_vehicle", {v: tuple(h) for v, h in by_vehicle.items()})
        spans = {
            v: (max(p.start_t for p in h), min(p.end_t for p in h)) for v, h in by_vehicle.items()
        }
        object.__setattr__(self, "_spans", spans)

    def permits(
        self, vehicle_ids: Iterable[int], start_t: float, end_t: float
    ) -> Mapping[int, Sequence[Permit]]:
        found: dict[int, Sequence[Permit]] = {}
        if not self._by_vehicle:
            return found
        for vehicle_id in self._by_vehicle.keys() & set(vehicle_ids):
            latest_start, earliest_end = self._spans[vehicle_id]
            if latest_start <= end_t and earliest_end >= start_t:  # every one meets the window
                found[vehicle_id] = self._by_vehicle[vehicle_id]
                continue
            held = [
                p for p in self._by_vehicle[vehicle_id] if p.start_t <= end_t and p.end_t >= start_t
            ]
            if held:
                found[vehicle_id] = held
        return found


NO_PERMITS = FixedPermits()
