"""The misuse rules, in the order the engine runs them on each fix."""

from __future__ import annotations

from geofence.rules import (
    device_alarm,
    maintenance_vehicle_moving,
    no_order,
    off_hours,
    off_route,
    overnight_away,
    overspeed,
    prohibited_zone,
    region_exit,
    sealed_vehicle_moving,
    signal_loss,
)
from geofence.rules.base import Context, Fix, Rule, Step

__all__ = ["DEVICE_KINDS", "KINDS", "RECORD_KINDS", "REGISTERED", "RULES", "Step", "wakes"]

# The rules, in the order the engine runs them on each fix. A rule's module holds its step and
# its wake conditions; adding one is adding its `RULE` here.
REGISTERED: tuple[Rule, ...] = (
    no_order.RULE,
    off_hours.RULE,
    off_route.RULE,
    region_exit.RULE,
    prohibited_zone.RULE,
    overnight_away.RULE,
    overspeed.RULE,
    signal_loss.RULE,
    device_alarm.RULE,
    sealed_vehicle_moving.RULE,
    maintenance_vehicle_moving.RULE,
)
RULES: dict[str, Step] = {rule.kind: rule.step for rule in REGISTERED}
# Alerts raised by checks of records rather than of the track (fuel receipts, charging records,
# odometer readings):
# the dispatch domain's cost checks raise them, into the same queue and review as the rules'.
RECORD_KINDS = (
    "fuel_over_capacity",
    "fuel_location_mismatch",
    "fuel_no_trip",
    "fuel_off_hours",
    "fuel_too_frequent",
    "fuel_consumption_high",
    "odometer_mismatch",
    "energy_consumption_high",
)
# Alerts about the devices themselves: the telematics gateway reports them through an interface
# this domain implements (`geofence.terminals`).
DEVICE_KINDS = ("device_identity_mismatch",)
KINDS = (*RULES, *RECORD_KINDS, *DEVICE_KINDS)


def wakes(fix: Fix, ctx: Context) -> tuple[bool, ...]:
    """For each rule, in the order of `RULES`: whether, resting (no state), it could act on this
    fix (see `Rule`)."""
    return tuple(rule.wakes(fix, ctx) for rule in REGISTERED)
