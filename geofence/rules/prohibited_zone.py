"""`prohibited_zone`: dwelling in a prohibited fence (entertainment venues, scenic spots, private
clubs...) for `prohibited_dwell_s`. One episode per fence; entering and leaving is the set
difference of the fence ids between two fixes. A fix without a position changes nothing."""

from __future__ import annotations

from typing import Any

import numpy as np

from geofence.rules import dwell
from geofence.rules.base import NO_EVENTS, Columns, Context, Event, Fix, Rule, Severity

KIND = "prohibited_zone"
THRESHOLDS = ("prohibited_dwell_s",)


def wakes(fix: Fix, ctx: Context) -> bool:
    return fix.lat is not None and bool(ctx.prohibited)


def wakes_columns(columns: Columns) -> np.ndarray:
    return columns.positioned & columns.prohibited


def step(
    state: dict[str, Any] | None, fix: Fix, ctx: Context
) -> tuple[dict[str, Any] | None, tuple[Event, ...]]:
    if fix.lat is None or (state is None and not ctx.prohibited):
        return state, NO_EVENTS
    inside = state or {}
    now = {str(fence_id) for fence_id in ctx.prohibited}
    new: dict[str, Any] = {}
    events: tuple[Event, ...] = NO_EVENTS
    for key in sorted(now | inside.keys()):
        fence_state, fired = dwell.step(
            inside.get(key),
            fix,
            holds=key in now,
            after_s=ctx.th.prohibited_dwell_s,
            kind=KIND,
            key=key,
            severity=Severity.HIGH,
            thresholds=THRESHOLDS,
            fence_id=int(key),
        )
        if fence_state is not None:
            new[key] = fence_state
        events += fired
    return new or None, events


RULE = Rule(KIND, step, wakes, wakes_columns)
