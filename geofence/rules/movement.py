"""Unauthorised movement, shared by `no_order` (in working time) and `off_hours` (outside it);
its episodes (`step`) also those of a vehicle that should not move at all
(`sealed_vehicle_moving`, `maintenance_vehicle_moving`).

An episode starts at the first violating fix, opens an alert once the vehicle has covered
`movement_min_distance_m` over at least `movement_min_duration_s`, and ends when no violating fix
has come for `movement_end_s` (a stop at the lights does not split it).
"""

from __future__ import annotations

from operator import attrgetter
from typing import Any

import numpy as np

from geofence.rules.base import NO_EVENTS, Columns, Context, Event, Fix, Rule, episode_event

THRESHOLDS = ("moving_speed_kmh", "movement_min_distance_m", "movement_min_duration_s")
# Registry statuses whose movement other rules judge (`sealed_vehicle_moving`,
# `maintenance_vehicle_moving`): a car in the workshop is test-driven with no order, and a
# sealed one that moves is one critical alert, not that and a `no_order` beside it.
NOT_IN_USE = frozenset({"sealed", "disposed", "maintenance"})
UPDATE_EVERY_S = 60
# the numbers of an episode's state (see `step`), as the engine's carry reads them
EPISODE_NUMBERS = ("start", "last", "dist", "open", "reported")


def rule(kind: str, severity: str, *, working: bool, exempt: str) -> Rule:
    """The rule of driving with no permit covering the fix, outside a depot, in working time
    (`working` True) or outside it, by a vehicle in use (not `NOT_IN_USE`) whose category is not
    in the threshold named `exempt`. A fix wakes it exactly when it violates it: the engine
    relies on that to carry an episode on without the step where the step would only add the
    distance."""
    working_code = int(working)
    exempt_of = attrgetter(exempt)

    def violating(fix: Fix, ctx: Context) -> bool:
        return (
            ctx.moving
            and ctx.working is working
            and ctx.permit is None
            and not ctx.depot
            and ctx.category not in exempt_of(ctx.th)
            and ctx.status not in NOT_IN_USE
        )

    def violating_columns(columns: Columns) -> np.ndarray:
        return (
            columns.moving
            & ~columns.permitted
            & ~columns.depot
            & (columns.working == working_code)
            & columns.outside(exempt_of(columns.th))
            & columns.status_in(NOT_IN_USE, negate=True)
        )

    def step_rule(
        state: dict[str, Any] | None, fix: Fix, ctx: Context
    ) -> tuple[dict[str, Any] | None, tuple[Event, ...]]:
        return step(state, fix, ctx, violating(fix, ctx), kind, severity)

    return Rule(kind, step_rule, violating, violating_columns, movement_severity=severity)


def event(kind: str, severity: str, state: dict[str, Any], ended: float | None) -> Event:
    return episode_event(
        state,
        ended,
        kind=kind,
        severity=severity,
        measured={
            "distance_m": round(state["dist"], 1),
            "duration_s": round(state["last"] - state["start"], 1),
        },
        thresholds=THRESHOLDS,
    )


def step(
    state: dict[str, Any] | None,
    fix: Fix,
    ctx: Context,
    violating: bool,
    kind: str,
    severity: str,
) -> tuple[dict[str, Any] | None, tuple[Event, ...]]:
    """Positional arguments, and the state copied rather than rebuilt: `no_order` and
    `off_hours` call it on nearly every moving fix of every vehicle."""
    t = fix.t
    th = ctx.th
    if not violating:
        if state is not None and t - state["last"] >= th.movement_end_s:
            return None, (event(kind, severity, state, state["last"]),) if state["open"] else ()
        return state, NO_EVENTS
    events: tuple[Event, ...] = NO_EVENTS
    if state is not None and t - state["last"] >= th.movement_end_s:
        events = (event(kind, severity, state, state["last"]),) if state["open"] else ()
        state = None
    if state is None:
        state = {
            "start": t,
            "last": t,
            "dist": 0.0,
            "open": False,
            "lat": fix.lat,
            "lon": fix.lon,
            "reported": t,
        }
    else:
        # a copy, key order kept: the caller's state stays as it was
        dist = state["dist"] + ctx.step_m
        state = state.copy()
        state["last"] = t
        state["dist"] = dist
    if not state["open"]:
        if (
            state["dist"] >= th.movement_min_distance_m
            and t - state["start"] >= th.movement_min_duration_s
        ):
            state["open"] = True
            state["reported"] = t
            events = (*events, event(kind, severity, state, None))
    elif t - state["reported"] >= UPDATE_EVERY_S:
        state["reported"] = t
        events = (*events, event(kind, severity, state, None))
    return state, events
