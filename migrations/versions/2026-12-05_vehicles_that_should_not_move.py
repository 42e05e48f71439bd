"""Vehicles that should not move: the alert kinds raised when a sealed or disposed vehicle moves
(`sealed_vehicle_moving`) and when a vehicle in maintenance moves outside its workshop
(`maintenance_vehicle_moving`), and the fence kind `workshop` that marks where it may.

Values added, for whoever chains this migration after others that change the same checks:
`ck_alert_kind` gains 'sealed_vehicle_moving' and 'maintenance_vehicle_moving';
`ck_fence_kind` gains 'workshop'.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-05
"""

from __future__ import annotations

from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

# Written out rather than imported: a migration must not change when the code does.
ALERT_KINDS_BEFORE = (
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
)
STATUS_KINDS = ("sealed_vehicle_moving", "maintenance_vehicle_moving")
FENCE_KINDS_BEFORE = ("permitted_region", "prohibited", "depot", "custom")
WORKSHOP = "workshop"


def _values(kinds: tuple[str, ...]) -> str:
    return ", ".join(f"'{k}'" for k in kinds)


def _check(table: str, kinds: tuple[str, ...]) -> None:
    op.drop_constraint(op.f(f"ck_{table}_kind"), table, type_="check")
    op.create_check_constraint(op.f(f"ck_{table}_kind"), table, f"kind IN ({_values(kinds)})")


def upgrade() -> None:
    _check("alert", (*ALERT_KINDS_BEFORE, *STATUS_KINDS))
    _check("fence", (*FENCE_KINDS_BEFORE, WORKSHOP))


def downgrade() -> None:
    op.execute(
        "DELETE FROM alert_review WHERE alert_id IN"
        f" (SELECT id FROM alert WHERE kind IN ({_values(STATUS_KINDS)}))"
    )
    op.execute(f"DELETE FROM alert WHERE kind IN ({_values(STATUS_KINDS)})")
    _check("alert", ALERT_KINDS_BEFORE)
    # A workshop drawn since is kept, as a custom fence (it may be evidence in other alerts).
    op.execute(f"UPDATE fence SET kind = 'custom' WHERE kind = '{WORKSHOP}'")
    _check("fence", FENCE_KINDS_BEFORE)
