"""Thresholds of the misuse rules and the engine, `FLEET_` prefixed.

No national rule names numbers, so every one of these is a setting; the defaults follow what
fleet-management practice in the field uses. Times are local to `FLEET_DISPLAY_TIMEZONE`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from fleet.api import from_state


def _clock(value: str) -> str:
    hours, _, minutes = value.partition(":")
    if not (hours.isdigit() and minutes.isdigit() and int(hours) < 24 and int(minutes) < 60):
        raise ValueError(f"{value!r} is not a time of day as HH:MM")
    return f"{int(hours):02d}:{int(minutes):02d}"


def clock_seconds(value: str) -> int:
    hours, minutes = _clock(value).split(":")
    return int(hours) * 3600 + int(minutes) * 60


class GeofenceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FLEET_", frozen=True, extra="ignore")

    working_start: str = Field(
        "08:30", description="Start of the working day where a unit sets none (HH:MM, local)."
    )
    working_end: str = Field(
        "17:30", description="End of the working day where a unit sets none (HH:MM, local)."
    )
    moving_speed_kmh: float = Field(
        5, ge=0, description="A fix at or above this speed is movement, in km/h."
    )
    movement_min_distance_m: float = Field(
        500,
        ge=0,
        description="Driving without an order (or off hours), or a sealed or maintenance vehicle"
        " moving, raises an alert past this, in metres.",
    )
    movement_min_duration_s: float = Field(
        60, ge=0, description="... and after at least this long, in seconds."
    )
    movement_end_s: float = Field(
        300,
        gt=0,
        description="An unauthorised-movement episode ends after this long without it, in seconds.",
    )
    no_order_exempt_categories: list[str] = Field(
        default_factory=list,
        description="Vehicle categories that may move without an order in working time.",
    )
    off_hours_exempt_categories: list[str] = Field(
        default_factory=lambda: ["emergency", "enforcement", "confidential_comms"],
        description="Vehicle categories exempt from the off-hours rule (and holiday sealing).",
    )
    off_route_distance_m: float = Field(
        1000, gt=0, description="Farther than this from the planned corridor is off route (m)."
    )
    off_route_duration_s: float = Field(
        180, ge=0, description="... for at least this long, in seconds."
    )
    destination_radius_m: float = Field(
        300, gt=0, description="Within this of an origin or destination counts as there (m)."
    )
    unplanned_stop_s: float = Field(
        1200, gt=0, description="A stop this long away from every destination is off route (s)."
    )
    stop_radius_m: float = Field(
        100, gt=0, description="A vehicle within this of where it stopped is still stopped (m)."
    )
    region_exit_grace_s: float = Field(
        60, ge=0, description="Outside the permitted region this long raises an alert (s)."
    )
    prohibited_dwell_s: float = Field(
        300, ge=0, description="Dwelling in a prohibited place this long raises an alert (s)."
    )
    night_start: str = Field("22:00", description="Start of the night window (HH:MM, local).")
    night_end: str = Field("06:00", description="End of the night window (HH:MM, local).")
    overnight_min_s: float = Field(
        7200,
        gt=0,
        description="Parked outside every depot this long within the night window (s).",
    )
    parked_radius_m: float = Field(
        300, gt=0, description="Two fixes this close across a gap mean the car stayed put (m)."
    )
    speed_limit_kmh: float = Field(
        120, gt=0, description="Speed limit where no fence or vehicle sets one, in km/h."
    )
    overspeed_duration_s: float = Field(
        30, ge=0, description="Above the limit this long raises an alert, in seconds."
    )
    signal_gap_s: float = Field(
        600, gt=0, description="A reporting gap this long with the ignition on is signal loss (s)."
    )
    signal_jump_m: float = Field(
        1000, gt=0, description="... or with the vehicle this far from where it went silent (m)."
    )
    calendar_warning_days: int = Field(
        60,
        ge=0,
        le=366,
        description="Warn this many days before a year the working calendar does not hold"
        " (pages, /healthz, the worker's log), in days.",
    )
    engine_refresh_s: float = Field(
        5,
        gt=0,
        description="How often the engine looks for changed fences, calendar, working hours and"
        " vehicle statuses (s).",
    )

    @field_validator("working_start", "working_end", "night_start", "night_end")
    @classmethod
    def _is_clock(cls, value: str) -> str:
        return _clock(value)


# The routes' dependency: the settings the app factory made, by type.
GeofenceSettingsDep = Annotated[GeofenceSettings, Depends(from_state("geofence_settings"))]
