"""The permits' corridors in their metric planes, for the distance of a fix from its corridor."""

from __future__ import annotations

from itertools import repeat
from operator import attrgetter, is_not
from typing import Any

import numpy as np
import shapely

from geofence import geometry
from geofence.engine.base import Near
from geofence.permits import Permit

CORRIDOR = attrgetter("corridor")
PLANE_KEY = attrgetter("order_id", "vehicle_id", "start_t", "end_t")  # see `plane`

_PLANES: dict[tuple[Any, ...], geometry.PlaneLine] = {}


def plane(permit: Permit) -> geometry.PlaneLine:
    """The permit's corridor in its metric plane, projected once per order (permits are fetched
    anew for every batch, their routes do not change)."""
    assert permit.corridor is not None
    key: tuple[Any, ...] = PLANE_KEY(permit)
    if permit.order_id is None:
        key = (id(permit.corridor), *key)
    found = _PLANES.get(key)
    if found is None:
        if len(_PLANES) > 50_000:
            _PLANES.clear()
        found = _PLANES[key] = geometry.PlaneLine(permit.corridor)
    return found


def planes(permits: list[Permit]) -> list[geometry.PlaneLine | None]:
    """`plane` of each permit, None for a permit without a corridor or with an empty one."""
    found: list[geometry.PlaneLine | None] = list(
        map(_PLANES.get, map(PLANE_KEY, permits))  # type: ignore[arg-type]
    )
    if all(map(is_not, found, repeat(None))) and all(
        map(is_not, map(CORRIDOR, permits), repeat(None))
    ):
        return found  # the usual case: every one projected in an earlier batch
    for i, permit in enumerate(permits):
        if permit.corridor is None:
            found[i] = None
        elif found[i] is None and permit.corridor:
            found[i] = plane(permit)
    return found


def measure(near: Near, chosen: np.ndarray, corridor_m: np.ndarray) -> None:
    """Fills in the corridor distance of the fixes in `near` that are `chosen`."""
    wanted = np.isin(near.fixes, chosen, assume_unique=True)
    if wanted.any():
        corridor_m[near.fixes[wanted]] = shapely.distance(near.points[wanted], near.lines[wanted])
