"""Fences as the engine holds them: compiled once per change, queried a whole batch at a time.

Membership is one vectorised STRtree query for the whole batch: the envelopes give the candidate
(fix, fence) pairs and GEOS tests each pair against the prepared fence.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import shapely
from shapely import STRtree
from shapely.geometry.base import BaseGeometry

from geofence.calendar import DAY, weekday


class FenceKind:
    PERMITTED_REGION = "permitted_region"
    PROHIBITED = "prohibited"
    DEPOT = "depot"
    CUSTOM = "custom"


KINDS = (FenceKind.PERMITTED_REGION, FenceKind.PROHIBITED, FenceKind.DEPOT, FenceKind.CUSTOM)


@dataclass(frozen=True, slots=True)
class Schedule:
    """Active on these ISO weekdays between start and end (seconds of the local day; an end
    before the start runs past midnight)."""

    days: frozenset[int] = frozenset(range(1, 8))
    start_s: int = 0
    end_s: int = DAY

    def active(self, local_t: float) -> bool:
        day = int(local_t // DAY)
        second = local_t - day * DAY
        if self.start_s <= self.end_s:
            return weekday(day) in self.days and self.start_s <= second < self.end_s
        if second >= self.start_s:
            return weekday(day) in self.days
        return second < self.end_s and weekday(day - 1) in self.days


@dataclass(frozen=True, slots=True)
class VehicleInfo:
    id: int
    unit_id: int
    unit_path: str
    category: str


@dataclass(frozen=True, slots=True)
class CompiledFence:
    id: int
    name: str
    kind: str
    area: BaseGeometry  # WGS-84 polygon or multipolygon, (lon, lat)
    speed_limit_kmh: float | None = None
    schedule: Schedule | None = None
    unit_paths: tuple[str, ...] = ()  # empty: every unit
    categories: frozenset[str] = frozenset()  # empty: every category

    def applies_to(self, vehicle: VehicleInfo) -> bool:
        return (not self.unit_paths or vehicle.unit_path.startswith(self.unit_paths)) and (
            not self.categories or vehicle.category in self.categories
        )

    def active(self, local_t: float) -> bool:
        return self.schedule is None or self.schedule.active(local_t)


@dataclass
class FenceSet:
    fences: Sequence[CompiledFence]
    _applies: dict[tuple[int, int], bool] = field(default_factory=dict)
    _regions: dict[tuple[str, str], frozenset[int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        areas = [f.area for f in self.fences]
        shapely.prepare(areas)
        self._areas = np.array(areas, dtype=object)
        self._tree = STRtree(areas)
        self.by_id = {f.id: f for f in self.fences}
        # Per fence, indexed like `fences`, for the engine's whole-batch arithmetic.
        self.ids = np.array([f.id for f in self.fences], dtype=np.int64)
        self.is_depot = np.array([f.kind == FenceKind.DEPOT for f in self.fences], dtype=bool)
        self.is_prohibited = np.array(
            [f.kind == FenceKind.PROHIBITED for f in self.fences], dtype=bool
        )
        self.is_region = np.array(
            [f.kind == FenceKind.PERMITTED_REGION for f in self.fences], dtype=bool
        )
        self.has_limit = np.array([f.speed_limit_kmh is not None for f in self.fences], dtype=bool)
        # whether a fence counts for a vehicle and a moment depends on the two
        self.conditional = np.array(
            [f.schedule is not None or bool(f.unit_paths or f.categories) for f in self.fences],
            dtype=bool,
        )

    def pairs(self, lons: np.ndarray, lats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(point index, fence index) for every fence containing every point, ordered by point.
        A point on a boundary counts as inside."""
        if not len(self.fences) or not len(lons):
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
        point, fence = self._tree.query(shapely.points(lons, lats), predicate="intersects")
        if len(point) > 1 and (np.diff(point) < 0).any():
            order = np.argsort(point, kind="stable")
            point, fence = point[order], fence[order]
        return point, fence

    def containing(self, lons: np.ndarray, lats: np.ndarray) -> dict[int, list[int]]:
        """For each point inside any fence, the indexes (into `fences`) of those fences; points
        inside none are left out. A point on a boundary counts as inside."""
        point_idx, fence_idx = self.pairs(lons, lats)
        hits: dict[int, list[int]] = {}
        for point, fence in zip(point_idx.tolist(), fence_idx.tolist(), strict=True):
            found = hits.get(point)
            if found is None:
                hits[point] = [fence]
            else:
                found.append(fence)
        return hits

    def applies(self, index: int, vehicle: VehicleInfo) -> bool:
        key = (index, vehicle.id)
        found = self._applies.get(key)
        if found is None:
            found = self._applies[key] = self.fences[index].applies_to(vehicle)
        return found

    def regions_for(self, vehicle: VehicleInfo) -> frozenset[int]:
        """Ids of the permitted-region fences that apply to a vehicle."""
        key = (vehicle.unit_path, vehicle.category)  # what scope depends on
        found = self._regions.get(key)
        if found is None:
            found = self._regions[key] = frozenset(
                f.id
                for f in self.fences
                if f.kind == FenceKind.PERMITTED_REGION and f.applies_to(vehicle)
            )
        return found
