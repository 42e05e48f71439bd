"""`maintenance_vehicle_moving`: a vehicle the registry holds as in maintenance (维修) moves
outside every workshop fence that applies to it. A workshop is a fence of kind `workshop`,
scoped like any fence (its units and categories): inside one, a car may be moved and test-driven;
outside all of them, or where no workshop fence applies at all, its movement is raised.

"Moves" is what it is for `no_order` (`movement.step`): an episode opens once the vehicle has
covered `movement_min_distance_m` outside the workshops over at least `movement_min_duration_s`,
and ends when no such fix has come for `movement_end_s`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from geofence.rules import movement
from geofence.rules.base import Columns, Context, Event, Fix, Rule, Severity

KIND = "maintenance_vehicle_moving"
SEVERITY = Severity.HIGH
STATUSES = frozenset({"maintenance"})


def wakes(fix: Fix, ctx: Context) -> bool:
    """Exactly the violating fixes: a moving fix of a vehicle in maintenance, outside the
    workshops."""
    return ctx.moving and not ctx.workshop and ctx.status in STATUSES


def wakes_columns(columns: Columns) -> np.ndarray:
    return columns.moving & ~columns.workshop & columns.status_in(STATUSES)


def step(
    state: dict[str, Any] | None, fix: Fix, ctx: Context
) -> tuple[dict[str, Any] | None, tuple[Event, ...]]:
    return movement.step(state, fix, ctx, wakes(fix, ctx), KIND, SEVERITY)


RULE = Rule(KIND, step, wakes, wakes_columns)
