"""An episode that lasts while a condition holds: it opens an alert once the condition has held
for `after_s` and ends at the last fix that still met it. Shared by the rules that measure how
long something lasted (outside a corridor or a region, inside a prohibited place, over a limit).
"""

from __future__ import annotations

from typing import Any

from geofence.rules.base import NO_EVENTS, Event, Fix, episode_event

UPDATE_EVERY_S = 60


def event(
    state: dict[str, Any],
    ended: float | None,
    *,
    kind: str,
    key: str,
    severity: str,
    thresholds: tuple[str, ...],
    value_name: str | None,
    fence_id: int | None,
) -> Event:
    measured: dict[str, Any] = {"duration_s": round(state["last"] - state["start"], 1)}
    if value_name is not None and state["max"] is not None:
        measured[value_name] = round(state["max"], 1)
    return episode_event(
        state,
        ended,
        kind=kind,
        key=key,
        severity=severity,
        measured=measured,
        thresholds=thresholds,
        fence_id=fence_id,
    )


def step(
    state: dict[str, Any] | None,
    fix: Fix,
    *,
    holds: bool,
    after_s: float,
    kind: str,
    key: str = "",
    severity: str,
    thresholds: tuple[str, ...],
    value: float | None = None,
    value_name: str | None = None,
    fence_id: int | None = None,
) -> tuple[dict[str, Any] | None, tuple[Event, ...]]:
    if not holds:
        if state is None or not state["open"]:
            return None, NO_EVENTS
        ended: float | None = state["last"]
    else:
        t = fix.t
        if state is None:
            state = {
                "start": t,
                "last": t,
                "open": False,
                "lat": fix.lat,
                "lon": fix.lon,
                "max": value,
                "reported": t,
            }
        else:
            # a copy, key order kept: the caller's state stays as it was
            peak = state["max"]
            state = state.copy()
            state["last"] = t
            if value is not None and (peak is None or value > peak):
                state["max"] = value
        if state["open"]:
            due = t - state["reported"] >= UPDATE_EVERY_S
        else:
            due = t - state["start"] >= after_s
        if not due:
            return state, NO_EVENTS
        state["open"] = True
        state["reported"] = t
        ended = None
    made = event(
        state,
        ended,
        kind=kind,
        key=key,
        severity=severity,
        thresholds=thresholds,
        value_name=value_name,
        fence_id=fence_id,
    )
    return (state if holds else None), (made,)
