"""`no_order`: the vehicle drives in working time with no approved assignment covering it.

Movement inside a depot fence does not count (washing, re-parking); categories in
`no_order_exempt` may drive without an order.
"""

from __future__ import annotations

from typing import Any

from geofence.rules import movement
from geofence.rules.base import Context, Event, Fix, Severity

KIND = "no_order"
SEVERITY = Severity.MEDIUM


def step(
    state: dict[str, Any] | None, fix: Fix, ctx: Context
) -> tuple[dict[str, Any] | None, tuple[Event, ...]]:
    violating = (
        ctx.moving
        and ctx.working is True
        and ctx.permit is None
        and not ctx.depot
        and ctx.category not in ctx.th.no_order_exempt
    )
    return movement.step(state, fix, ctx, violating, KIND, SEVERITY)
