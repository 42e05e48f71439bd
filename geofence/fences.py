"""Fences as the engine holds them: compiled once per change, queried a whole batch at a time.

Membership is worked out for the whole batch at once: a grid over the fences' bounding boxes
gives the candidate (fix, fence) pairs with numpy arithmetic alone, and GEOS tests each pair
against the prepared fence (`shapely.intersects_xy`, no Point objects made).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from geofence.calendar import DAY, weekday


class FenceKind:
    PERMITTED_REGION = "permitted_region"
    PROHIBITED = "prohibited"
    DEPOT = "depot"
    CUSTOM = "custom"
    # A repair shop: a vehicle in maintenance may move inside one that applies to it
    # (`maintenance_vehicle_moving`).
    WORKSHOP = "workshop"


KINDS = (
    FenceKind.PERMITTED_REGION,
    FenceKind.PROHIBITED,
    FenceKind.DEPOT,
    FenceKind.CUSTOM,
    FenceKind.WORKSHOP,
)


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
    # `fleet.models.VehicleStatus`, as the registry holds it now: sealed, disposed and maintenance
    # vehicles are watched for movement (`sealed_vehicle_moving`, `maintenance_vehicle_moving`)
    status: str = "active"
    # Since when (epoch seconds, UTC) it has held that status; None: always. The engine judges a
    # fix before it as one of an active vehicle (`engine.batch.read`): the earlier status is not
    # known, and a replay of a period when the car was in use must not raise it as sealed.
    status_since: float | None = None


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
        self._grid = _Grid(shapely.bounds(self._areas)) if areas else None
        self.by_id = {f.id: f for f in self.fences}
        # Per fence, indexed like `fences`, for the engine's whole-batch arithmetic.
        self.ids = np.array([f.id for f in self.fences], dtype=np.int64)
        self.is_depot = np.array([f.kind == FenceKind.DEPOT for f in self.fences], dtype=bool)
        self.is_prohibited = np.array(
            [f.kind == FenceKind.PROHIBITED for f in self.fences], dtype=bool
        )
        self.is_workshop = np.array([f.kind == FenceKind.WORKSHOP for f in self.fences], dtype=bool)
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
        if self._grid is None or not len(lons):
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
        point, fence = self._grid.candidates(lons, lats)
        inside = shapely.intersects_xy(self._areas[fence], lons[point], lats[point])
        return point[inside], fence[inside]

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


class _Grid:
    """Cells over the fences' bounding boxes, each listing the fences whose box meets it: the
    candidates for a point are its cell's, found by arithmetic. As fine as keeps the listing to
    about `MAX_PAIRS` (cell, fence) pairs."""

    MAX_PAIRS = 1_000_000
    SIDES = (256, 128, 64, 32, 16, 8, 4, 2, 1)  # cells per side, finest first

    def __init__(self, bounds: np.ndarray) -> None:
        """`bounds`: per fence (xmin, ymin, xmax, ymax)."""
        self.x0, self.y0 = float(bounds[:, 0].min()), float(bounds[:, 1].min())
        self.x1, self.y1 = float(bounds[:, 2].max()), float(bounds[:, 3].max())
        for side in self.SIDES:
            self.side = side
            # a fence has no area only if it is broken; a degenerate extent still gets one cell
            self.width = (self.x1 - self.x0) / side or 1.0
            self.height = (self.y1 - self.y0) / side or 1.0
            cx0, cx1 = self._column(bounds[:, 0]), self._column(bounds[:, 2])
            cy0, cy1 = self._row(bounds[:, 1]), self._row(bounds[:, 3])
            wide, high = cx1 - cx0 + 1, cy1 - cy0 + 1
            count = wide * high
            if count.sum() <= self.MAX_PAIRS:
                break
        fence = np.repeat(np.arange(len(bounds)), count)
        k = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
        cell = (cy0[fence] + k // wide[fence]) * side + cx0[fence] + k % wide[fence]
        order = np.argsort(cell, kind="stable")  # fences stay in order within a cell
        self.fence = fence[order]
        self.start = np.searchsorted(cell[order], np.arange(side * side + 1))

    def _column(self, x: np.ndarray) -> np.ndarray:
        # Monotonic: a point within a box falls in a cell between the box's first and last.
        return np.clip(((x - self.x0) / self.width).astype(np.int64), 0, self.side - 1)

    def _row(self, y: np.ndarray) -> np.ndarray:
        return np.clip(((y - self.y0) / self.height).astype(np.int64), 0, self.side - 1)

    def candidates(self, lons: np.ndarray, lats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(point index, fence index) for every fence whose cell list holds the point's cell,
        ordered by point then fence. Points outside every box (or NaN) get none."""
        within = (lons >= self.x0) & (lons <= self.x1) & (lats >= self.y0) & (lats <= self.y1)
        x = np.where(within, lons, self.x0)
        y = np.where(within, lats, self.y0)
        cell = self._row(y) * self.side + self._column(x)
        first = self.start[cell]
        count = np.where(within, self.start[cell + 1] - first, 0)
        point = np.repeat(np.arange(len(lons)), count)
        k = np.arange(len(point)) - np.repeat(np.cumsum(count) - count, count)
        return point, self.fence[np.repeat(first, count) + k]
