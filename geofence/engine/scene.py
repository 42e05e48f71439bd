"""What the fences and the permits say of every fix of a batch, worked out as columns: the fast
loop's membership (step 2) and the rest of its context (step 3)."""

from __future__ import annotations

from itertools import chain, repeat
from operator import attrgetter

import numpy as np
import shapely

from geofence import geometry
from geofence.engine import corridors
from geofence.engine.base import EARTH_RADIUS_M, EMPTY, Batch, Cover, Near, Scene
from geofence.fences import FenceSet
from geofence.permits import Permit
from geofence.rules.base import Thresholds
from telematics.trips import step_m

PERMIT_START, PERMIT_END = attrgetter("start_t"), attrgetter("end_t")
PERMIT_PLACES = attrgetter("places")


def scene_of(fences: FenceSet, th: Thresholds, batch: Batch, local: np.ndarray) -> Scene:
    """What the fences say of each fix of the batch (see `Scene`)."""
    n = len(batch.fixes)
    positioned = np.flatnonzero(~np.isnan(batch.lat))
    point, fence = fences.pairs(batch.lon[positioned], batch.lat[positioned])
    point = positioned[point]
    conditional = np.flatnonzero(fences.conditional[fence])
    if len(conditional):
        keep = np.ones(len(point), dtype=bool)
        for j in conditional.tolist():
            p, f = int(point[j]), int(fence[j])
            vehicle = batch.vehicles[batch.slot[p]]
            keep[j] = fences.applies(f, vehicle) and fences.fences[f].active(local[p])
        point, fence = point[keep], fence[keep]
    banned = fences.is_prohibited[fence]
    depot = np.zeros(n, dtype=bool)
    depot[point[fences.is_depot[fence]]] = True
    prohibited = np.zeros(n, dtype=bool)
    prohibited[point[banned]] = True
    workshop = np.zeros(n, dtype=bool)
    workshop[point[fences.is_workshop[fence]]] = True
    limit = [th.speed_limit_kmh] * n
    limited = fences.has_limit[fence]
    for p, f in zip(point[limited].tolist(), fence[limited].tolist(), strict=True):
        fence_limit = fences.fences[f].speed_limit_kmh
        if fence_limit < limit[p]:  # type: ignore[operator]
            limit[p] = fence_limit  # type: ignore[call-overload]
    inside = _sets(n, point, fences.ids[fence])
    in_region = np.full(n, -1, dtype=np.int8)
    if fences.is_region.any():
        region_hit = np.zeros(n, dtype=bool)
        region_hit[point[fences.is_region[fence]]] = True
        _regions(fences, batch, local, inside, region_hit, in_region)
    return Scene(
        fences=inside,
        banned=_sets(n, point[banned], fences.ids[fence[banned]]),
        depot=depot,
        prohibited=prohibited,
        limit=limit,
        in_region=in_region,
        workshop=workshop,
    )


def _regions(
    fences: FenceSet,
    batch: Batch,
    local: np.ndarray,
    inside: list[frozenset[int]],
    region_hit: np.ndarray,
    in_region: np.ndarray,
) -> None:
    """Fills `in_region`: 1 inside an active permitted region in the vehicle's scope, 0
    outside every one, -1 where none applies (left as it is)."""
    regions = list(map(fences.regions_for, batch.vehicles))
    unscheduled = [bool(r) and all(fences.by_id[i].schedule is None for i in r) for r in regions]
    # the vehicles whose regions always apply: the fence hits tell
    always = np.array(unscheduled)[batch.slot]
    in_region[always] = region_hit[always]
    starts = batch.starts
    for slot, found in enumerate(regions):
        if not found or unscheduled[slot]:
            continue
        for m in range(starts[slot], starts[slot + 1]):
            active = [r for r in found if fences.by_id[r].active(local[m])]
            if active:
                in_region[m] = any(r in inside[m] for r in active)


def cover_of(th: Thresholds, batch: Batch, moving: np.ndarray) -> Cover:
    """Each fix's permit: the first of its vehicle's permits that covers the fix time."""
    n = len(batch.fixes)
    table: list[Permit] = []
    which = np.full(n, -1, dtype=np.int64)
    corridor_m = np.full(n, np.nan)
    at_place = np.zeros(n, dtype=bool)
    if not batch.permits:
        return Cover(table, which, corridor_m, at_place)
    held = list(map(batch.permits.get, batch.vehicle_ids, repeat(())))
    count = np.fromiter(map(len, held), np.int64, len(held))
    slot = batch.slot
    for rank in range(int(count.max())):
        owners = np.flatnonzero(count > rank)
        ranked = [held[k][rank] for k in owners.tolist()]
        number = np.full(len(held), -1, dtype=np.int64)
        number[owners] = np.arange(len(table), len(table) + len(owners))
        table.extend(ranked)
        start = np.full(len(held), np.nan)
        start[owners] = list(map(PERMIT_START, ranked))
        end = np.full(len(held), np.nan)
        end[owners] = list(map(PERMIT_END, ranked))
        covers = (which < 0) & (start[slot] <= batch.t) & (batch.t <= end[slot])
        which[covers] = number[slot][covers]
    permitted = which >= 0
    # the permits some fix falls under; and -1 last: what `[which]` gives the fixes
    # without a permit (-1)
    used = np.unique(which[permitted])
    planes = corridors.planes([table[i] for i in used.tolist()])
    # as the plain loop has it: a permit's empty corridor is none; a fix without a position
    # under a corridor is 0 m from it
    line_of = np.full(len(table) + 1, -1)
    drawn = np.array([p is not None for p in planes], dtype=bool)
    line_of[used[drawn]] = np.arange(int(drawn.sum()))
    under = line_of[which] >= 0
    corridor_m[under] = 0.0
    measured = np.flatnonzero(under & ~np.isnan(batch.lat))
    near = None
    if len(measured):
        # Most fixes under an order are on its road: `dwithin` tells them apart from the
        # rest without the distance (it stops at the first segment near enough), and only
        # the others are measured now. The margin keeps "within" true of the distance
        # itself, whatever its last bit.
        points, lines = geometry.PlaneLine.points_each(
            [p for p in planes if p is not None],
            line_of[which[measured]],
            batch.lat[measured],
            batch.lon[measured],
        )
        within = shapely.dwithin(points, lines, th.off_route_distance_m * (1 - 1e-9))
        far = ~within
        corridor_m[measured] = np.nan
        corridor_m[measured[far]] = shapely.distance(points[far], lines[far])
        near = Near(measured[within], points[within], lines[within])
    # Only a stopped car's place matters (an unplanned stop); a moving one is not asked.
    stopped = np.flatnonzero(permitted & ~moving & ~np.isnan(batch.lat) & ~np.isnan(batch.lon))
    if len(stopped):
        at_place[stopped] = _at_place(th, batch, stopped, [table[i] for i in which[stopped]])
    return Cover(table, which, corridor_m, at_place, near)


def _at_place(
    th: Thresholds, batch: Batch, stopped: np.ndarray, permits: list[Permit]
) -> np.ndarray:
    """Whether each stopped fix is within the destination radius of one of its permit's
    places, by `step_m`: worked out in numpy, and again by `step_m` itself where numpy's
    rounding could fall on the other side of the radius."""
    radius = th.destination_radius_m
    places = list(map(PERMIT_PLACES, permits))
    count = np.fromiter(map(len, places), np.int64, len(places))
    found = np.zeros(len(stopped), dtype=bool)
    if not count.any():
        return found
    place = np.array(list(chain.from_iterable(places)), dtype=float).reshape(-1, 2)
    fix = np.repeat(stopped, count)
    lat1, lon1 = place[:, 0], place[:, 1]
    lat2, lon2 = batch.lat[fix], batch.lon[fix]
    x = np.radians(lon2 - lon1) * np.cos(np.radians((lat1 + lat2) / 2))
    y = np.radians(lat2 - lat1)
    distance = EARTH_RADIUS_M * np.sqrt(x * x + y * y)
    near = distance <= radius * (1 - 1e-9)
    for j in np.flatnonzero(np.abs(distance - radius) <= radius * 1e-9).tolist():
        place_lat, place_lon = place[j].tolist()
        near[j] = step_m(place_lat, place_lon, float(lat2[j]), float(lon2[j])) <= radius
    shown = count > 0
    found[shown] = np.logical_or.reduceat(near, (np.cumsum(count) - count)[shown])
    return found


def _sets(n: int, point: np.ndarray, ids: np.ndarray) -> list[frozenset[int]]:
    """Per point of `n`, the set of `ids[j]` for the pairs j of that point (`point` ascending)."""
    found = [EMPTY] * n
    if len(point):
        shown, begin = np.unique(point, return_index=True)
        bounds = [*begin.tolist(), len(point)]
        listed = ids.tolist()
        for k, p in enumerate(shown.tolist()):
            found[p] = frozenset(listed[bounds[k] : bounds[k + 1]])
    return found
