"""The one position type every protocol decodes to, with units in the names."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType
from typing import NamedTuple

_EMPTY: Mapping[str, object] = MappingProxyType({})


class Fix(NamedTuple):
    """A tuple: every protocol makes one per fix it decodes, and a frozen dataclass of this size
    costs several times as much to build."""

    device_identifier: str
    fix_time: datetime  # aware, UTC
    lat: float | None
    lon: float | None
    speed_kmh: float | None = None
    heading_deg: float | None = None
    altitude_m: float | None = None
    ignition: bool | None = None
    odometer_km: float | None = None
    fuel_l: float | None = None
    alarm_bits: int = 0
    status_bits: int = 0
    attributes: Mapping[str, object] = _EMPTY
    valid: bool = True


def check_fix(
    fix: Fix, *, now: datetime, max_future_s: float, max_past_s: float, max_speed_kmh: float
) -> str | None:
    """Why a fix must be dropped, or None. A fix without a valid position is not a coordinate
    error: its alarms and ignition still count."""
    if fix.valid:
        lat, lon = fix.lat, fix.lon
        if (
            lat is None
            or lon is None
            or not (math.isfinite(lat) and math.isfinite(lon))
            or not (-90 <= lat <= 90 and -180 <= lon <= 180)
        ):
            return "bad_coordinates"
    ahead_s = (fix.fix_time - now).total_seconds()
    if ahead_s > max_future_s:
        return "future_time"
    if -ahead_s > max_past_s:
        return "too_old"
    if fix.speed_kmh is not None and (
        not math.isfinite(fix.speed_kmh) or fix.speed_kmh > max_speed_kmh or fix.speed_kmh < 0
    ):
        return "impossible_speed"
    for value, low, high in (
        (fix.altitude_m, -1_000.0, 20_000.0),  # the Dead Sea to well above any road
        (fix.heading_deg, 0.0, 360.0),
        (fix.odometer_km, 0.0, 1e8),
        (fix.fuel_l, 0.0, 10_000.0),
    ):
        if value is not None and not (math.isfinite(value) and low <= value <= high):
            return "impossible_value"
    return None
