"""`overspeed`: above the limit in force (the lowest of the fences the vehicle is in, else the
global `speed_limit_kmh`) for `overspeed_duration_s`. A fix without a speed changes nothing."""

from __future__ import annotations

from typing import Any

import numpy as np

from geofence.rules import dwell
from geofence.rules.base import NO_EVENTS, Columns, Context, Event, Fix, Rule, Severity

KIND = "overspeed"
THRESHOLDS = ("overspeed_duration_s",)
SEVERE_RATIO = 1.5  # 50% over the limit is high severity (the road-traffic law's licence line)


def wakes(fix: Fix, ctx: Context) -> bool:
    return fix.speed_kmh is not None and fix.speed_kmh > ctx.speed_limit_kmh


def wakes_columns(columns: Columns) -> np.ndarray:
    with np.errstate(invalid="ignore"):  # NaN: no speed
        return columns.speed_kmh > columns.speed_limit_kmh


def step(
    state: dict[str, Any] | None, fix: Fix, ctx: Context
) -> tuple[dict[str, Any] | None, tuple[Event, ...]]:
    speed = fix.speed_kmh
    if speed is None:
        return state, NO_EVENTS
    limit = ctx.speed_limit_kmh
    over = speed > limit
    if state is None and not over:
        return None, NO_EVENTS
    peak = max(speed, state["max"] or 0) if state is not None else speed
    new, events = dwell.step(
        state,
        fix,
        holds=over,
        after_s=ctx.th.overspeed_duration_s,
        kind=KIND,
        severity=Severity.HIGH if peak >= limit * SEVERE_RATIO else Severity.MEDIUM,
        thresholds=THRESHOLDS,
        value=speed,
        value_name="max_speed_kmh",
    )
    if new is not None:
        new["limit"] = min(limit, new.get("limit", limit))
    if events:
        events = tuple(_with_limit(e, limit if new is None else new["limit"]) for e in events)
    return new, events


def _with_limit(event: Event, limit: float) -> Event:
    event.measured["limit_kmh"] = limit
    return event


RULE = Rule(KIND, step, wakes, wakes_columns)
