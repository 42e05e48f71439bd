"""Settings of the dispatch domain, `FLEET_` prefixed."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from fleet.api import from_state


class DispatchSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FLEET_", frozen=True, extra="ignore")

    order_max_days: float = Field(
        14, gt=0, description="Longest window one trip order may cover, in days."
    )
    order_past_grace_min: float = Field(
        15, ge=0, description="How far in the past an order's window may start, in minutes."
    )
    turnaround_min: float = Field(
        30,
        ge=0,
        description="Buffer kept free before and after an assignment (to reach the origin, to"
        " return), in minutes; it also widens the permit the geofence engine sees.",
    )
    max_destinations: int = Field(10, ge=1, description="Destinations one order may list (count).")
    emergency_approval_due_h: float = Field(
        24, gt=0, description="An emergency order's approval is overdue after this long (h)."
    )
    approval_distinct_deciders: bool = Field(
        True,
        description="Segregation of duties: each step of one order's approval chain is decided by"
        " a different person; a second decision by the same person on the same order is refused.",
    )
    tracker_fresh_h: float = Field(
        24,
        gt=0,
        description="A vehicle is suggested only if its tracker reported this recently (h).",
    )

    # ---- equipping and renewal (配备更新) -------------------------------------------------------
    renewal_age_years: int = Field(
        8,
        ge=1,
        le=30,
        description="A vehicle is due for renewal this long after it was bought (years).",
    )
    renewal_distance_km: float = Field(
        250_000,
        gt=0,
        description="... or once it has run this far, whichever comes first (km).",
    )
    idle_min_days: int = Field(
        5,
        ge=1,
        le=31,
        description="A vehicle used on fewer days of a month than this is idle (闲置) that month"
        " and offered for reallocation (days).",
    )

    # ---- costs and the fuel checks ------------------------------------------------------------
    statement_formats_file: str = Field(
        "",
        description="JSON file of extra fuel-card statement formats (column mappings per issuer),"
        " added to and overriding the built-in ones; empty for the built-ins only.",
    )
    fuel_link_lookback_days: float = Field(
        31,
        gt=0,
        description="A fill with no earlier fill is shared among the trips of this many days"
        " before it (days).",
    )
    fuel_tank_margin_pct: float = Field(
        5,
        ge=0,
        description="fuel_over_capacity: a fill more than the tank plus this margin (% of tank).",
    )
    fuel_station_distance_m: float = Field(
        400,
        gt=0,
        description="fuel_location_mismatch: the station is farther than this from where the"
        " track puts the vehicle at the fill's time (m).",
    )
    fuel_track_window_min: float = Field(
        15,
        gt=0,
        description="fuel_location_mismatch: only fixes this close to the fill's time place the"
        " vehicle (min).",
    )
    fuel_trip_window_min: float = Field(
        60,
        gt=0,
        description="fuel_no_trip: a fill with no trip of the vehicle within this long before or"
        " after it (min).",
    )
    fuel_max_fills_per_day: int = Field(
        2, ge=1, description="fuel_too_frequent: more fills than this in one local day (count)."
    )
    fuel_consumption_margin_pct: float = Field(
        20,
        ge=0,
        description="fuel_consumption_high: a month's litres per 100 km above the vehicle's norm"
        " by more than this (%).",
    )
    fuel_consumption_min_km: float = Field(
        100,
        gt=0,
        description="fuel_consumption_high: months with less tracked distance are not judged (km).",
    )
    energy_consumption_margin_pct: float = Field(
        20,
        ge=0,
        description="energy_consumption_high: a month's charging (and a plug-in hybrid's fills)"
        " above the vehicle's energy norm by more than this (%); months with less tracked"
        " distance than FLEET_FUEL_CONSUMPTION_MIN_KM are not judged.",
    )
    odometer_mismatch_pct: float = Field(
        10,
        ge=0,
        description="odometer_mismatch: receipts' odometer difference against the tracked"
        " distance between two fills, allowed difference (% of the tracked distance) ...",
    )
    odometer_mismatch_min_km: float = Field(
        5, ge=0, description="... and never less than this (km)."
    )
    report_font: str = Field(
        "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
        description="TrueType font with Chinese glyphs for the PDF reports (Debian's"
        " fonts-droid-fallback, which the set-up installs).",
    )


# The routes' dependency: the settings the app factory made, by type.
DispatchSettingsDep = Annotated[DispatchSettings, Depends(from_state("dispatch_settings"))]
