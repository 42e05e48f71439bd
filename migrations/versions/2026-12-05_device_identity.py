"""Device identity: a JT/T 808 terminal's identity bound at its first registration, its current
auth code as a digest, the IMEI and software version 2019 terminals report; an OsmAnd phone's
optional secret as a digest; the alert kind raised when another terminal claims a bound number.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
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
)
DEVICE_KINDS = ("device_identity_mismatch",)

# (name, type) of the columns added to `device`, all nullable: nothing is bound yet.
DEVICE_COLUMNS = (
    ("secret_digest", sa.String(length=64)),
    ("terminal_id", sa.String(length=30)),
    ("terminal_maker", sa.String(length=11)),
    ("terminal_model", sa.String(length=30)),
    ("terminal_plate", sa.String(length=32)),
    ("terminal_plate_colour", sa.SmallInteger()),
    ("bound_at", sa.DateTime(timezone=True)),
    ("auth_code_digest", sa.String(length=64)),
    ("imei", sa.String(length=15)),
    ("software_version", sa.String(length=20)),
)


def _values(kinds: tuple[str, ...]) -> str:
    return ", ".join(f"'{k}'" for k in kinds)


def _alert_kinds(kinds: tuple[str, ...]) -> None:
    op.drop_constraint(op.f("ck_alert_kind"), "alert", type_="check")
    op.create_check_constraint(op.f("ck_alert_kind"), "alert", f"kind IN ({_values(kinds)})")


def upgrade() -> None:
    for name, type_ in DEVICE_COLUMNS:
        op.add_column("device", sa.Column(name, type_, nullable=True))
    _alert_kinds(KINDS_BEFORE + DEVICE_KINDS)


def downgrade() -> None:
    op.execute(
        "DELETE FROM alert_review WHERE alert_id IN"
        f" (SELECT id FROM alert WHERE kind IN ({_values(DEVICE_KINDS)}))"
    )
    op.execute(f"DELETE FROM alert WHERE kind IN ({_values(DEVICE_KINDS)})")
    _alert_kinds(KINDS_BEFORE)
    for name, _ in reversed(DEVICE_COLUMNS):
        op.drop_column("device", name)
