"""Settings of the dispatch domain, `FLEET_` prefixed."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


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
    tracker_fresh_h: float = Field(
        24,
        gt=0,
        description="A vehicle is suggested only if its tracker reported this recently (h).",
    )
