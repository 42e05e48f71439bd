"""Approval chains as data: each unit's rules, and the steps an order needs (set at submission).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "approval_rule",
        sa.Column("id", sa.Integer(), sa.Identity(always=False), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column(
            "condition",
            sa.Enum(
                "always",
                "out_of_region",
                "longer_than_days",
                "non_working_day",
                "night",
                "large_vehicle",
                "passengers_over",
                name="condition",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column("param", sa.Float(), nullable=True),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), server_default="", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("level BETWEEN 0 AND 10", name=op.f("ck_approval_rule_level")),
        sa.ForeignKeyConstraint(
            ["unit_id"],
            ["org_unit.id"],
            name=op.f("fk_approval_rule_unit_id_org_unit"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_approval_rule")),
    )
    op.create_index("ix_approval_rule_unit_id", "approval_rule", ["unit_id"], unique=False)
    op.add_column(
        "trip_order",
        sa.Column(
            "approval_steps",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default="[]",
            nullable=False,
        ),
    )
    op.add_column(
        "trip_order", sa.Column("approvals_done", sa.Integer(), server_default="0", nullable=False)
    )


def downgrade() -> None:
    op.drop_column("trip_order", "approvals_done")
    op.drop_column("trip_order", "approval_steps")
    op.drop_index("ix_approval_rule_unit_id", table_name="approval_rule")
    op.drop_table("approval_rule")
