"""`overnight_away`: parked outside every depot fence for `overnight_min_s` of the night window
(`night_start`-`night_end`, local) with no approved overnight assignment.

Trackers often sleep with the ignition off, so the rule reasons over the interval between two
fixes: when both are outside the depots and within `parked_radius_m` of where the car parked, the
car stayed put in between, and that interval's overlap with the night counts. A vehicle in
maintenance spends its nights in a workshop fence as others do in a depot.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from geofence.rules.base import (
    NO_EVENTS,
    Columns,
    Context,
    Event,
    Fix,
    Rule,
    Severity,
    episode_event,
)
from telematics.trips import step_m

KIND = "overnight_away"
IN_MAINTENANCE = frozenset({"maintenance"})
THRESHOLDS = ("overnight_min_s", "parked_radius_m", "night_start_s", "night_end_s")
DAY = 86_400


def night_overlap(a: float, b: float, start_s: int, end_s: int) -> float:
    """Seconds of [a, b] (local epoch seconds) that fall in the nightly window."""
    if b <= a:
        return 0.0
    length = (end_s - start_s) % DAY or DAY
    total = 0.0
    day = int(a // DAY) - 1
    while day * DAY + start_s < b:
        low = day * DAY + start_s
        high = low + length
        total += max(0.0, min(b, high) - max(a, low))
        day += 1
    return total


def _event(state: dict[str, Any], ended: float | None) -> Event:
    return episode_event(
        state,
        ended,
        kind=KIND,
        severity=Severity.MEDIUM,
        measured={
            "night_parked_s": round(state["night"], 1),
            "parked_s": round(state["last"] - state["start"], 1),
        },
        thresholds=THRESHOLDS,
    )


def _away(ctx: Context) -> bool:
    """Parked (not driving: a moving car ends any stay and starts none) outside the depots
    (and, in maintenance, the workshops), with no overnight assignment."""
    return (
        not ctx.moving
        and not ctx.depot
        and not (ctx.workshop and ctx.status in IN_MAINTENANCE)
        and not (ctx.permit is not None and ctx.permit.overnight)
    )


def wakes(fix: Fix, ctx: Context) -> bool:
    return fix.lat is not None and _away(ctx)


def wakes_columns(columns: Columns) -> np.ndarray:
    # False last: what `[permit]` gives the fixes without a permit (-1)
    overnight = np.array([p.overnight for p in columns.permits] + [False])[columns.permit]
    repaired = columns.workshop & columns.status_in(IN_MAINTENANCE)
    return columns.positioned & ~columns.moving & ~columns.depot & ~repaired & ~overnight


def step(
    state: dict[str, Any] | None, fix: Fix, ctx: Context
) -> tuple[dict[str, Any] | None, tuple[Event, ...]]:
    if fix.lat is None or fix.lon is None:
        return state, NO_EVENTS
    th = ctx.th
    away = _away(ctx)
    if state is None and not away:
        return None, NO_EVENTS
    events: tuple[Event, ...] = NO_EVENTS
    if state is not None:
        stayed = away and step_m(state["lat"], state["lon"], fix.lat, fix.lon) <= th.parked_radius_m
        if stayed:
            local_last = state["local"]
            night = state["night"] + night_overlap(
                local_last, ctx.local_t, th.night_start_s, th.night_end_s
            )
            state = {**state, "last": fix.t, "local": ctx.local_t, "night": night}
            if not state["open"] and night >= th.overnight_min_s:
                state["open"] = True
                return state, (_event(state, None),)
            return state, NO_EVENTS
        if state["open"]:
            events = (_event(state, state["last"]),)
        state = None
    if away:
        state = {
            "start": fix.t,
            "last": fix.t,
            "local": ctx.local_t,
            "night": 0.0,
            "open": False,
            "lat": fix.lat,
            "lon": fix.lon,
        }
    return state, events


RULE = Rule(KIND, step, wakes, wakes_columns)
