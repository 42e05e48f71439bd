"""`off_hours`: the vehicle drives outside working time (after hours, a weekend, a public
holiday; an adjusted working Saturday is working time) with no approved assignment covering it.

Categories in `off_hours_exempt` (emergency, enforcement... by default) are exempt. A day the
calendar does not cover is never guessed: the engine reports it and this rule stays silent.
"""

from __future__ import annotations

from typing import Any

from geofence.rules import movement
from geofence.rules.base import Context, Event, Fix, Severity

KIND = "off_hours"
SEVERITY = Severity.HIGH


def step(
    state: dict[str, Any] | None, fix: Fix, ctx: Context
) -> tuple[dict[str, Any] | None, tuple[Event, ...]]:
    violating = (
        ctx.moving
        and ctx.working is False
        and ctx.permit is None
        and not ctx.depot
        and ctx.category not in ctx.th.off_hours_exempt
    )
    return movement.step(state, fix, ctx, violating, KIND, SEVERITY)
