"""Merged trips (合并用车): the orders an assignment carries (`assignment_order`), one for a plain
assignment, several for a merged trip; every existing assignment carries its own order.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "assignment_order",
        sa.Column("assignment_id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), server_default="true", nullable=False),
        sa.ForeignKeyConstraint(
            ["assignment_id"],
            ["assignment.id"],
            name=op.f("fk_assignment_order_assignment_id_assignment"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["trip_order.id"],
            name=op.f("fk_assignment_order_order_id_trip_order"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("assignment_id", "order_id", name=op.f("pk_assignment_order")),
    )
    op.create_index(
        "uq_assignment_order_order_active",
        "assignment_order",
        ["order_id"],
        unique=True,
        postgresql_where=sa.text("active"),
    )
    op.execute(
        "INSERT INTO assignment_order (assignment_id, order_id, active)"
        " SELECT id, order_id, active FROM assignment"
    )


def downgrade() -> None:
    op.drop_index(
        "uq_assignment_order_order_active",
        table_name="assignment_order",
        postgresql_where=sa.text("active"),
    )
    op.drop_table("assignment_order")
