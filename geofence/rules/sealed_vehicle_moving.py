"""`sealed_vehicle_moving`: a vehicle the registry holds as sealed (封存) or disposed (已处置)
moves. Such a car should stand where it was parked, so nothing excuses it: no order, depot,
category or working time; it is raised at critical severity.

"Moves" is what it is for `no_order`: the engine's movement (`moving_speed_kmh`, ignition on),
and the episode opens only once the vehicle has covered `movement_min_distance_m` over at least
`movement_min_duration_s`, so a jittery fix of a parked car raises nothing; it ends when no moving
fix has come for `movement_end_s` (`movement.step`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from geofence.rules import movement
from geofence.rules.base import Columns, Context, Event, Fix, Rule, Severity

KIND = "sealed_vehicle_moving"
SEVERITY = Severity.CRITICAL
STATUSES = frozenset({"sealed", "disposed"})


def wakes(fix: Fix, ctx: Context) -> bool:
    """Exactly the violating fixes: a moving fix of a sealed or disposed vehicle."""
    return ctx.moving and ctx.status in STATUSES


def wakes_columns(columns: Columns) -> np.ndarray:
    return columns.moving & columns.status_in(STATUSES)


def step(
    state: dict[str, Any] | None, fix: Fix, ctx: Context
) -> tuple[dict[str, Any] | None, tuple[Event, ...]]:
    return movement.step(state, fix, ctx, wakes(fix, ctx), KIND, SEVERITY)


RULE = Rule(KIND, step, wakes, wakes_columns)
