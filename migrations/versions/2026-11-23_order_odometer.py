"""The odometer the driver reads at the start and the finish of a trip order (optional).

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("trip_order", sa.Column("odometer_start_km", sa.Float(), nullable=True))
    op.add_column("trip_order", sa.Column("odometer_end_km", sa.Float(), nullable=True))
    op.create_check_constraint(
        op.f("ck_trip_order_odometer"),
        "trip_order",
        "odometer_end_km IS NULL OR odometer_start_km IS NULL"
        " OR odometer_end_km >= odometer_start_km",
    )


def downgrade() -> None:
    op.drop_constraint(op.f("ck_trip_order_odometer"), "trip_order", type_="check")
    op.drop_column("trip_order", "odometer_end_km")
    op.drop_column("trip_order", "odometer_start_km")
