"""Equipping and renewal (配备更新): each unit's vehicle quota per category (`unit_quota`), the
vehicle's purchase date, odometer reading and the disposed vehicle whose place it took, and the
requests to renew or dispose of a vehicle (`renewal_request`), with their approval chain and
the disposal (method, date, receiving party).

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None

CATEGORIES = ("confidential_comms", "emergency", "enforcement", "special", "general")


def _enum(name: str, *values: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=True, length=24)


def _timestamps() -> list[sa.Column]:
    return [
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
    ]


def upgrade() -> None:
    op.add_column("vehicle", sa.Column("acquired_on", sa.Date(), nullable=True))
    op.add_column("vehicle", sa.Column("odometer_km", sa.Float(), nullable=True))
    op.add_column("vehicle", sa.Column("replaces_id", sa.Integer(), nullable=True))
    op.create_check_constraint(
        op.f("ck_vehicle_odometer_km"), "vehicle", "odometer_km IS NULL OR odometer_km >= 0"
    )
    op.create_foreign_key(
        op.f("fk_vehicle_replaces_id_vehicle"),
        "vehicle",
        "vehicle",
        ["replaces_id"],
        ["id"],
        ondelete="RESTRICT",
    )
    op.create_unique_constraint(op.f("uq_vehicle_replaces_id"), "vehicle", ["replaces_id"])

    op.create_table(
        "unit_quota",
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("category", _enum("category", *CATEGORIES), nullable=False),
        sa.Column("quota", sa.Integer(), nullable=False),
        *_timestamps(),
        sa.CheckConstraint("quota BETWEEN 0 AND 10000", name=op.f("ck_unit_quota_quota")),
        sa.ForeignKeyConstraint(
            ["unit_id"],
            ["org_unit.id"],
            name=op.f("fk_unit_quota_unit_id_org_unit"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("unit_id", "category", name=op.f("pk_unit_quota")),
    )

    op.create_table(
        "renewal_request",
        sa.Column("id", sa.Integer(), sa.Identity(always=False), nullable=False),
        sa.Column("vehicle_id", sa.Integer(), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("kind", _enum("kind", "renewal", "disposal"), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("requester_id", sa.Integer(), nullable=True),
        sa.Column(
            "approval_steps",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default="[]",
            nullable=False,
        ),
        sa.Column("approvals_done", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "decisions",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default="[]",
            nullable=False,
        ),
        sa.Column(
            "status",
            _enum("status", "submitted", "approved", "rejected", "disposed"),
            server_default="submitted",
            nullable=False,
        ),
        sa.Column(
            "disposal_method",
            _enum("disposal_method", "auction", "scrap", "transfer"),
            nullable=True,
        ),
        sa.Column("disposed_on", sa.Date(), nullable=True),
        sa.Column("receiver", sa.String(length=200), server_default="", nullable=False),
        *_timestamps(),
        sa.CheckConstraint(
            "(status = 'disposed') = (disposal_method IS NOT NULL AND disposed_on IS NOT NULL)",
            name=op.f("ck_renewal_request_disposal"),
        ),
        sa.ForeignKeyConstraint(
            ["vehicle_id"],
            ["vehicle.id"],
            name=op.f("fk_renewal_request_vehicle_id_vehicle"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["unit_id"],
            ["org_unit.id"],
            name=op.f("fk_renewal_request_unit_id_org_unit"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["requester_id"],
            ["user_account.id"],
            name=op.f("fk_renewal_request_requester_id_user_account"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_renewal_request")),
    )
    op.create_index("ix_renewal_request_unit_id", "renewal_request", ["unit_id"])
    op.create_index(
        "uq_renewal_request_vehicle_open",
        "renewal_request",
        ["vehicle_id"],
        unique=True,
        postgresql_where=sa.text("status IN ('submitted', 'approved')"),
    )


def downgrade() -> None:
    op.drop_index("uq_renewal_request_vehicle_open", table_name="renewal_request")
    op.drop_index("ix_renewal_request_unit_id", table_name="renewal_request")
    op.drop_table("renewal_request")
    op.drop_table("unit_quota")
    op.drop_constraint(op.f("uq_vehicle_replaces_id"), "vehicle", type_="unique")
    op.drop_constraint(op.f("fk_vehicle_replaces_id_vehicle"), "vehicle", type_="foreignkey")
    op.drop_constraint(op.f("ck_vehicle_odometer_km"), "vehicle", type_="check")
    op.drop_column("vehicle", "replaces_id")
    op.drop_column("vehicle", "odometer_km")
    op.drop_column("vehicle", "acquired_on")
