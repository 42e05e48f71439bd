"""Electric and plug-in hybrid vehicles: a vehicle's energy norm in kWh per 100 km, against which
its charging records are checked as fuel is against `fuel_norm_l_100km`, and the alert kind that
check raises.

Alert kinds added to `ck_alert_kind`: "energy_consumption_high".

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

# Written out rather than imported: a migration must not change when the code does.
KINDS_BEFORE = (
    "no_order",
    "off_hours",
    "off_route",
    "region_exit",
    "prohibited_zone",
    "overnight_away",
    "overspeed",
    "signal_loss",
    "device_alarm",
    "fuel_over_capacity",
    "fuel_location_mismatch",
    "fuel_no_trip",
    "fuel_off_hours",
    "fuel_too_frequent",
    "fuel_consumption_high",
    "odometer_mismatch",
    "device_identity_mismatch",
    "sealed_vehicle_moving",
    "maintenance_vehicle_moving",
)
# The values this migration adds to the alert kind CHECK constraint.
ENERGY_KINDS = ("energy_consumption_high",)


def _values(kinds: tuple[str, ...]) -> str:
    return ", ".join(f"'{k}'" for k in kinds)


def _alert_kinds(kinds: tuple[str, ...]) -> None:
    op.drop_constraint(op.f("ck_alert_kind"), "alert", type_="check")
    op.create_check_constraint(op.f("ck_alert_kind"), "alert", f"kind IN ({_values(kinds)})")


def upgrade() -> None:
    op.add_column("vehicle", sa.Column("energy_norm_kwh_100km", sa.Float(), nullable=True))
    _alert_kinds(KINDS_BEFORE + ENERGY_KINDS)


def downgrade() -> None:
    op.execute(
        "DELETE FROM alert_review WHERE alert_id IN"
        f" (SELECT id FROM alert WHERE kind IN ({_values(ENERGY_KINDS)}))"
    )
    op.execute(f"DELETE FROM alert WHERE kind IN ({_values(ENERGY_KINDS)})")
    _alert_kinds(KINDS_BEFORE)
    op.drop_column("vehicle", "energy_norm_kwh_100km")
