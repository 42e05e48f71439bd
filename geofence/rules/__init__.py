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
KINDS = tuple(RULES)
