"""The misuse rules, in the order the engine runs them on each fix."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from geofence.rules import (
    device_alarm,
    no_order,
    off_hours,
    off_route,
    overnight_away,
    overspeed,
    prohibited_zone,
    region_exit,
    signal_loss,
)
from geofence.rules.base import Context, Event, Fix

Step = Callable[
    [dict[str, Any] | None, Fix, Context], tuple[dict[str, Any] | None, tuple[Event, ...]]
]

RULES: dict[str, Step] = {
    "no_order": no_order.step,
    "off_hours": off_hours.step,
    "off_route": off_route.step,
    "region_exit": region_exit.step,
    "prohibited_zone": prohibited_zone.step,
    "overnight_away": overnight_away.step,
    "overspeed": overspeed.step,
    "signal_loss": signal_loss.step,
    "device_alarm": device_alarm.step,
}
# Alerts raised by checks of records rather than of the track (fuel receipts, odometer readings):
# the dispatch domain's cost checks raise them, into the same queue and review as the rules'.
RECORD_KINDS = (
    "fuel_over_capacity",
    "fuel_location_mismatch",
    "fuel_no_trip",
    "fuel_off_hours",
    "fuel_too_frequent",
    "fuel_consumption_high",
    "odometer_mismatch",
)
# Alerts about the devices themselves: the telematics gateway reports them through an interface
# this domain implements (`geofence.terminals`).
DEVICE_KINDS = ("device_identity_mismatch",)
KINDS = (*RULES, *RECORD_KINDS, *DEVICE_KINDS)


def wakes(fix: Fix, ctx: Context) -> tuple[bool, ...]:
    """For each rule, in the order of `RULES`: whether, resting (no state), it could act on this
    fix. The engine skips a resting rule whose answer is False, so this must be True whenever
    `step(None, fix, ctx)` would return a state or an event (a test holds each rule to it)."""
    positioned = fix.lat is not None
    moving = ctx.moving
    permit = ctx.permit
    unauthorised = moving and permit is None and not ctx.depot
    speed = fix.speed_kmh
    off_route = (
        positioned
        and permit is not None
        and (
            (ctx.corridor_m is not None and ctx.corridor_m > ctx.th.off_route_distance_m)
            or (not moving and not ctx.at_place and not ctx.depot)
        )
    )
    parked_away = (
        positioned
        and not moving
        and not ctx.depot
        and not (permit is not None and permit.overnight)
    )
    category = ctx.category
    return (
        unauthorised and ctx.working is True and category not in ctx.th.no_order_exempt,
        unauthorised and ctx.working is False and category not in ctx.th.off_hours_exempt,
        off_route,  # off_route
        positioned and ctx.in_region is False,  # region_exit
        positioned and bool(ctx.prohibited),  # prohibited_zone
        parked_away,  # overnight_away
        speed is not None and speed > ctx.speed_limit_kmh,  # overspeed
        ctx.gap_s is not None and ctx.gap_s >= ctx.th.signal_gap_s,  # signal_loss
        bool(fix.alarm_bits & device_alarm.WATCHED),  # device_alarm
    )
