"""`device_alarm`: alarms the terminal itself raises (JT/T 808 alarm flags). One episode per
alarm while its bit stays set; SOS, theft and rollover are critical. Fixes without a position
count: a terminal that lost GNSS still reports its alarms."""

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

KIND = "device_alarm"

# JT/T 808 alarm flag bit -> (name, severity). Overspeed and fatigue the terminal computes from
# its own settings are left to the `overspeed` rule and the driver-hours checks.
ALARMS: dict[int, tuple[str, str]] = {
    0: ("sos", Severity.CRITICAL),
    4: ("gnss_fault", Severity.MEDIUM),
    5: ("antenna_cut", Severity.HIGH),
    6: ("antenna_short", Severity.MEDIUM),
    7: ("power_low", Severity.MEDIUM),
    8: ("power_cut", Severity.HIGH),
    23: ("route_deviation", Severity.MEDIUM),
    25: ("fuel_abnormal", Severity.HIGH),
    26: ("stolen", Severity.CRITICAL),
    27: ("illegal_ignition", Severity.HIGH),
    28: ("illegal_displacement", Severity.HIGH),
    29: ("collision", Severity.HIGH),
    30: ("rollover", Severity.CRITICAL),
}
WATCHED = sum(1 << bit for bit in ALARMS)


def _event(bit: int, alarm: dict[str, Any], ended: float | None) -> Event:
    name, severity = ALARMS[bit]
    return episode_event(
        alarm,
        ended,
        kind=KIND,
        key=name,
        severity=severity,
        measured={
            "alarm": name,
            "bit": bit,
            "duration_s": round(alarm["last"] - alarm["start"], 1),
        },
    )


def wakes(fix: Fix, ctx: Context) -> bool:
    return bool(fix.alarm_bits & WATCHED)


def wakes_columns(columns: Columns) -> np.ndarray:
    return (columns.alarm_bits & WATCHED) != 0


def step(
    state: dict[str, Any] | None, fix: Fix, ctx: Context
) -> tuple[dict[str, Any] | None, tuple[Event, ...]]:
    bits = fix.alarm_bits & WATCHED
    if not bits and state is None:
        return None, NO_EVENTS
    active: dict[str, Any] = state or {}
    new: dict[str, Any] = {}
    events: tuple[Event, ...] = NO_EVENTS
    for bit in ALARMS:
        key = str(bit)
        alarm = active.get(key)
        if bits >> bit & 1:
            if alarm is None:
                alarm = {"start": fix.t, "last": fix.t, "lat": fix.lat, "lon": fix.lon}
                events += (_event(bit, alarm, None),)
            else:
                alarm = {**alarm, "last": fix.t}
            new[key] = alarm
        elif alarm is not None:
            events += (_event(bit, alarm, fix.t),)
    return new or None, events


RULE = Rule(KIND, step, wakes, wakes_columns)
