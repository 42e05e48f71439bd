"""The fuel, energy and odometer checks: pure functions from measured facts to findings.

Each check fires strictly above its threshold and stays quiet at or under it. The service gathers
the facts (the track near a fill, the trips around it, the working calendar, the month's fills and
distance) and stores a finding as an alert of the geofence domain's record kinds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dispatch.settings import DispatchSettings
from fleet.models import Energy


@dataclass(frozen=True, slots=True)
class Thresholds:
    tank_margin_pct: float = 5
    station_distance_m: float = 400
    max_fills_per_day: int = 2
    consumption_margin_pct: float = 20
    consumption_min_km: float = 100
    energy_margin_pct: float = 20
    odometer_pct: float = 10
    odometer_min_km: float = 5

    @classmethod
    def of(cls, settings: DispatchSettings) -> Thresholds:
        return cls(
            tank_margin_pct=settings.fuel_tank_margin_pct,
            station_distance_m=settings.fuel_station_distance_m,
            max_fills_per_day=settings.fuel_max_fills_per_day,
            consumption_margin_pct=settings.fuel_consumption_margin_pct,
            consumption_min_km=settings.fuel_consumption_min_km,
            energy_margin_pct=settings.energy_consumption_margin_pct,
            odometer_pct=settings.odometer_mismatch_pct,
            odometer_min_km=settings.odometer_mismatch_min_km,
        )


@dataclass(frozen=True, slots=True)
class Finding:
    kind: str
    severity: str
    measured: dict[str, Any]
    thresholds: dict[str, Any]


def over_capacity(litres: float, tank_l: float | None, th: Thresholds) -> Finding | None:
    """A fill larger than the tank can hold (plus a margin for the filler neck and the gauge)."""
    if tank_l is None:
        return None
    allowed = tank_l * (1 + th.tank_margin_pct / 100)
    if litres <= allowed:
        return None
    return Finding(
        "fuel_over_capacity",
        "high",
        {"litres": litres, "tank_l": tank_l, "over_l": round(litres - tank_l, 2)},
        {"tank_margin_pct": th.tank_margin_pct, "allowed_l": round(allowed, 2)},
    )


def location_mismatch(
    distance_m: float | None, fix_offset_s: float | None, th: Thresholds
) -> Finding | None:
    """The station is far from where the vehicle's own track puts it at the fill's time.
    `distance_m` is None when the receipt names no station location or no fix is near enough in
    time: then there is nothing to compare (a fill with no track at all is `fuel_no_trip`'s)."""
    if distance_m is None or distance_m <= th.station_distance_m:
        return None
    return Finding(
        "fuel_location_mismatch",
        "high",
        {"distance_m": round(distance_m, 1), "fix_offset_s": fix_offset_s},
        {"station_distance_m": th.station_distance_m},
    )


def no_trip(trips_near: int, window_min: float) -> Finding | None:
    """No trip of the vehicle anywhere near the fill: the car was not driven to the pump."""
    if trips_near > 0:
        return None
    return Finding("fuel_no_trip", "high", {"trips_near": 0}, {"trip_window_min": window_min})


def off_hours(working_time: bool, covered_by_order: bool, local_time: str) -> Finding | None:
    """A fill outside working time that no assignment covers."""
    if working_time or covered_by_order:
        return None
    return Finding(
        "fuel_off_hours",
        "medium",
        {"local_time": local_time, "working_time": False, "order": False},
        {},
    )


def too_frequent(fills_that_day: int, th: Thresholds) -> Finding | None:
    if fills_that_day <= th.max_fills_per_day:
        return None
    return Finding(
        "fuel_too_frequent",
        "medium",
        {"fills": fills_that_day},
        {"max_fills_per_day": th.max_fills_per_day},
    )


def consumption_high(
    litres: float, distance_km: float, norm_l_100km: float | None, th: Thresholds
) -> Finding | None:
    """A period's fills against the distance the tracker measured, over the vehicle's norm.
    Periods with little distance are not judged: one fill then dominates the figure."""
    if norm_l_100km is None or distance_km < th.consumption_min_km:
        return None
    per_100 = litres / distance_km * 100
    allowed = norm_l_100km * (1 + th.consumption_margin_pct / 100)
    if per_100 <= allowed:
        return None
    return Finding(
        "fuel_consumption_high",
        "medium",
        {
            "litres": round(litres, 2),
            "distance_km": round(distance_km, 1),
            "l_100km": round(per_100, 2),
            "norm_l_100km": norm_l_100km,
            "over_norm_pct": round((per_100 / norm_l_100km - 1) * 100, 1),
        },
        {
            "consumption_margin_pct": th.consumption_margin_pct,
            "allowed_l_100km": round(allowed, 2),
            "consumption_min_km": th.consumption_min_km,
        },
    )


def norm_km(kwh: float, litres: float, norm_kwh_100km: float, norm_l_100km: float | None) -> float:
    """The distance a period's charging (and, with `norm_l_100km`, its fuel) drives at the
    vehicle's norms (km)."""
    fuel_km = litres / norm_l_100km * 100 if norm_l_100km else 0.0
    return kwh / norm_kwh_100km * 100 + fuel_km


def energy_consumption_high(
    kwh: float,
    litres: float,
    distance_km: float,
    norm_kwh_100km: float | None,
    norm_l_100km: float | None,
    th: Thresholds,
) -> Finding | None:
    """A period's charging against the distance the tracker measured, over the vehicle's energy
    norm. A plug-in hybrid drives on both, so neither figure alone says much (its electric
    kilometres lower its litres per 100 km): with `norm_l_100km` its fills count too, each
    energy turned into the distance it drives at its norm, and the period is over when that
    distance passes the tracked one by more than the margin. For a battery-electric vehicle
    (`norm_l_100km` None) that is kWh per 100 km against the norm, as litres are for fuel.
    Periods with little distance are not judged."""
    if norm_kwh_100km is None or distance_km < th.consumption_min_km:
        return None
    at_norm = norm_km(kwh, litres, norm_kwh_100km, norm_l_100km)
    allowed = 1 + th.energy_margin_pct / 100
    if at_norm <= distance_km * allowed:
        return None
    measured: dict[str, Any] = {
        "kwh": round(kwh, 2),
        "distance_km": round(distance_km, 1),
        "kwh_100km": round(kwh / distance_km * 100, 2),
        "norm_kwh_100km": norm_kwh_100km,
    }
    thresholds: dict[str, Any] = {
        "energy_consumption_margin_pct": th.energy_margin_pct,
        "consumption_min_km": th.consumption_min_km,
    }
    if norm_l_100km:
        measured |= {
            "litres": round(litres, 2),
            "l_100km": round(litres / distance_km * 100, 2),
            "norm_l_100km": norm_l_100km,
            "norm_km": round(at_norm, 1),
        }
        thresholds["allowed_norm_km"] = round(distance_km * allowed, 1)
    else:
        thresholds["allowed_kwh_100km"] = round(norm_kwh_100km * allowed, 2)
    measured["over_norm_pct"] = round((at_norm / distance_km - 1) * 100, 1)
    return Finding("energy_consumption_high", "medium", measured, thresholds)


def month_consumption(
    *,
    energy: Energy,
    litres: float,
    kwh: float,
    distance_km: float,
    norm_l_100km: float | None,
    norm_kwh_100km: float | None,
    th: Thresholds,
) -> Finding | None:
    """A month against the vehicle's norm: a battery-electric vehicle's charging against its
    energy norm, a plug-in hybrid's charging and fills against both together (against its fuel
    norm alone until it has an energy norm), any other vehicle's fills against its fuel norm."""
    if energy is Energy.BEV:
        return energy_consumption_high(kwh, 0.0, distance_km, norm_kwh_100km, None, th)
    if energy is Energy.PHEV and norm_kwh_100km is not None:
        return energy_consumption_high(kwh, litres, distance_km, norm_kwh_100km, norm_l_100km, th)
    return consumption_high(litres, distance_km, norm_l_100km, th)


def over_norm_pct(
    *,
    energy: Energy,
    litres: float,
    kwh: float,
    distance_km: float,
    norm_l_100km: float | None,
    norm_kwh_100km: float | None,
) -> float | None:
    """How far a period's consumption is over the vehicle's norm (%, negative under it), judged
    as `month_consumption` judges a month; None when there is no norm, distance or energy to
    compare."""
    if distance_km <= 0:
        return None
    if energy is Energy.BEV or (energy is Energy.PHEV and norm_kwh_100km is not None):
        used = kwh + (litres if energy is Energy.PHEV and norm_l_100km else 0.0)
        if norm_kwh_100km is None or used <= 0:
            return None
        fuel_norm = norm_l_100km if energy is Energy.PHEV else None
        return (norm_km(kwh, litres, norm_kwh_100km, fuel_norm) / distance_km - 1) * 100
    if norm_l_100km is None or litres <= 0:
        return None
    return (litres / distance_km * 100 / norm_l_100km - 1) * 100


def odometer_mismatch(receipt_km: float, tracked_km: float, th: Thresholds) -> Finding | None:
    """The distance between two receipts' odometer readings against the tracked distance
    between the two fills."""
    allowed = max(tracked_km * th.odometer_pct / 100, th.odometer_min_km)
    difference = abs(receipt_km - tracked_km)
    if difference <= allowed:
        return None
    return Finding(
        "odometer_mismatch",
        "medium",
        {
            "receipt_km": round(receipt_km, 1),
            "tracked_km": round(tracked_km, 1),
            "difference_km": round(difference, 1),
        },
        {
            "odometer_pct": th.odometer_pct,
            "odometer_min_km": th.odometer_min_km,
            "allowed_km": round(allowed, 1),
        },
    )
