"""`off_route`: during an assignment, farther than `off_route_distance_m` from its planned
corridor for `off_route_duration_s` (key `corridor`), or stopped for `unplanned_stop_s` within
`stop_radius_m` of one place that is neither the origin, a destination nor a depot (key `stop`).
Outside every assignment the rule rests; an episode in progress ends with the assignment.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from geofence.rules import dwell
from geofence.rules.base import NO_EVENTS, Columns, Context, Event, Fix, Rule, Severity
from telematics.trips import step_m

KIND = "off_route"
CORRIDOR_THRESHOLDS = ("off_route_distance_m", "off_route_duration_s")
STOP_THRESHOLDS = ("unplanned_stop_s", "stop_radius_m", "destination_radius_m")
THRESHOLDS = {"corridor": CORRIDOR_THRESHOLDS, "stop": STOP_THRESHOLDS}


def wakes(fix: Fix, ctx: Context) -> bool:
    return (
        fix.lat is not None
        and ctx.permit is not None
        and (
            (ctx.corridor_m is not None and ctx.corridor_m > ctx.th.off_route_distance_m)
            or (not ctx.moving and not ctx.at_place and not ctx.depot)
        )
    )


def wakes_columns(columns: Columns) -> np.ndarray:
    with np.errstate(invalid="ignore"):  # NaN: no corridor
        off_corridor = columns.corridor_m > columns.th.off_route_distance_m
    stopped = ~columns.moving & ~columns.at_place & ~columns.depot
    return columns.positioned & columns.permitted & (off_corridor | stopped)


def _dwell(
    episode: dict[str, Any] | None,
    fix: Fix,
    holds: bool,
    *,
    key: str,
    after_s: float,
    value: float | None = None,
    value_name: str | None = None,
) -> tuple[dict[str, Any] | None, tuple[Event, ...]]:
    return dwell.step(
        episode,
        fix,
        holds=holds,
        after_s=after_s,
        kind=KIND,
        key=key,
        severity=Severity.MEDIUM,
        thresholds=THRESHOLDS[key],
        value=value,
        value_name=value_name,
    )


def step(
    state: dict[str, Any] | None, fix: Fix, ctx: Context
) -> tuple[dict[str, Any] | None, tuple[Event, ...]]:
    if fix.lat is None or fix.lon is None or (state is None and ctx.permit is None):
        return state, NO_EVENTS
    state = state or {}
    th = ctx.th
    off = ctx.permit is not None and ctx.corridor_m is not None
    off = off and ctx.corridor_m > th.off_route_distance_m  # type: ignore[operator]
    corridor, events = _dwell(
        state.get("corridor"),
        fix,
        off,
        key="corridor",
        after_s=th.off_route_duration_s,
        value=ctx.corridor_m,
        value_name="max_distance_m",
    )
    stop = state.get("stop")
    stopped = ctx.permit is not None and not ctx.moving and not ctx.at_place and not ctx.depot
    # Still the same stop only while within the radius of where it began; past it, that stop
    # ends and a new one begins here.
    if (
        stop is not None
        and stopped
        and step_m(stop["lat"], stop["lon"], fix.lat, fix.lon) > th.stop_radius_m
    ):
        stop, ended = _dwell(stop, fix, False, key="stop", after_s=th.unplanned_stop_s)
        events += ended
    stop, fired = _dwell(stop, fix, stopped, key="stop", after_s=th.unplanned_stop_s)
    events += fired
    new = {k: v for k, v in (("corridor", corridor), ("stop", stop)) if v is not None}
    return new or None, events


RULE = Rule(KIND, step, wakes, wakes_columns, reads_corridor=True)
