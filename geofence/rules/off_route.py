"""`off_route`: during an assignment, farther than `off_route_distance_m` from its planned
corridor for `off_route_duration_s` (key `corridor`), or stopped for `unplanned_stop_s` within
`stop_radius_m` of one place that is neither the origin, a destination nor a depot (key `stop`).
Outside every assignment the rule rests; an episode in progress ends with the assignment.
"""

from __future__ import annotations

from typing import Any

from geofence.rules import dwell
from geofence.rules.base import NO_EVENTS, Context, Event, Fix, Severity
from telematics.trips import step_m

KIND = "off_route"
CORRIDOR_THRESHOLDS = ("off_route_distance_m", "off_route_duration_s")
STOP_THRESHOLDS = ("unplanned_stop_s", "stop_radius_m", "destination_radius_m")


def step(
    state: dict[str, Any] | None, fix: Fix, ctx: Context
) -> tuple[dict[str, Any] | None, tuple[Event, ...]]:
    if fix.lat is None or fix.lon is None or (state is None and ctx.permit is None):
        return state, NO_EVENTS
    state = state or {}
    th = ctx.th
    off = ctx.permit is not None and ctx.corridor_m is not None
    off = off and ctx.corridor_m > th.off_route_distance_m  # type: ignore[operator]
    corridor, events = dwell.step(
        state.get("corridor"),
        fix,
        holds=off,
        after_s=th.off_route_duration_s,
        kind=KIND,
        key="corridor",
        severity=Severity.MEDIUM,
        thresholds=CORRIDOR_THRESHOLDS,
        value=ctx.corridor_m,
        value_name="max_distance_m",
    )

    def stop_step(stop: dict[str, Any] | None, holds: bool) -> tuple[Any, tuple[Event, ...]]:
        return dwell.step(
            stop,
            fix,
            holds=holds,
            after_s=th.unplanned_stop_s,
            kind=KIND,
            key="stop",
            severity=Severity.MEDIUM,
            thresholds=STOP_THRESHOLDS,
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
        stop, ended = stop_step(stop, False)
        events += ended
    stop, fired = stop_step(stop, stopped)
    events += fired
    new = {k: v for k, v in (("corridor", corridor), ("stop", stop)) if v is not None}
    return new or None, events
