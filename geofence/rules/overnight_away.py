"""`overnight_away`: parked outside every depot fence for `overnight_min_s` of the night window
(`night_start`-`night_end`, local) with no approved overnight assignment.

Trackers often sleep with the ignition off, so the rule reasons over the interval between two
fixes: when both are outside the depots and within `parked_radius_m` of where the car parked, the
car stayed put in between, and that interval's overlap with the night counts.
"""

from __future__ import annotations

from typing import Any

from geofence.rules.base import NO_EVENTS, Context, Event, Fix, Severity
from telematics.trips import step_m

KIND = "overnight_away"
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
    return Event(
        kind=KIND,
        key="",
        started_t=state["start"],
        last_t=state["last"],
        ended_t=ended,
        severity=Severity.MEDIUM,
        lat=state["lat"],
        lon=state["lon"],
        measured={
            "night_parked_s": round(state["night"], 1),
            "parked_s": round(state["last"] - state["start"], 1),
        },
        thresholds=THRESHOLDS,
    )


def step(
    state: dict[str, Any] | None, fix: Fix, ctx: Context
) -> tuple[dict[str, Any] | None, tuple[Event, ...]]:
    if fix.lat is None or fix.lon is None:
        return state, NO_EVENTS
    th = ctx.th
    # Parked means not driving: a moving car ends any stay and starts none.
    away = (
        not ctx.moving and not ctx.depot and not (ctx.permit is not None and ctx.permit.overnight)
    )
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
