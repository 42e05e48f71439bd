"""Emergency orders: assigned before approval, their approval due afterwards (`approval`).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "trip_order", sa.Column("emergency", sa.Boolean(), server_default="false", nullable=False)
    )
    op.add_column(
        "trip_order",
        sa.Column("approval", sa.String(length=16), server_default="pending", nullable=False),
    )
    # Orders approved before this column existed are approved.
    op.execute(
        "UPDATE trip_order SET approval = 'approved'"
        " WHERE status IN ('approved', 'assigned', 'in_progress', 'completed')"
    )
    op.execute("UPDATE trip_order SET approval = 'rejected' WHERE status = 'rejected'")
    op.create_check_constraint(
        op.f("ck_trip_order_approval"),
        "trip_order",
        "approval IN ('pending', 'approved', 'rejected')",
    )


def downgrade() -> None:
    op.drop_constraint(op.f("ck_trip_order_approval"), "trip_order", type_="check")
    op.drop_column("trip_order", "approval")
    op.drop_column("trip_order", "emergency")
