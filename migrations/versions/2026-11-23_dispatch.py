"""Dispatch: trip orders, their approval decisions, and assignments whose exclusion constraints
make double booking of a vehicle or a driver impossible.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_geospatial_table(
        "trip_order",
        sa.Column("id", sa.Integer(), sa.Identity(always=False), nullable=False),
        sa.Column("requester_id", sa.Integer(), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("purpose", sa.String(length=500), nullable=False),
        sa.Column("passengers", sa.Integer(), nullable=False),
        sa.Column("start_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "origin",
            Geometry(
                geometry_type="POINT",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.Column("origin_name", sa.String(length=200), nullable=False),
        sa.Column("destinations", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "category",
            sa.Enum(
                "confidential_comms",
                "emergency",
                "enforcement",
                "special",
                "general",
                name="category",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=True,
        ),
        sa.Column(
            "body_class",
            sa.Enum(
                "sedan",
                "suv",
                "mpv",
                "minibus",
                "bus",
                "truck",
                name="body_class",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=True,
        ),
        sa.Column("out_of_region", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("overnight", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("notes", sa.Text(), server_default="", nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "draft",
                "submitted",
                "approved",
                "rejected",
                "assigned",
                "in_progress",
                "completed",
                "cancelled",
                name="status",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            server_default="draft",
            nullable=False,
        ),
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
        sa.CheckConstraint("end_at > start_at", name=op.f("ck_trip_order_window")),
        sa.CheckConstraint("passengers BETWEEN 1 AND 60", name=op.f("ck_trip_order_passengers")),
        sa.ForeignKeyConstraint(
            ["requester_id"],
            ["user_account.id"],
            name=op.f("fk_trip_order_requester_id_user_account"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["unit_id"],
            ["org_unit.id"],
            name=op.f("fk_trip_order_unit_id_org_unit"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trip_order")),
    )
    op.create_index("ix_trip_order_requester_id", "trip_order", ["requester_id"], unique=False)
    op.create_index("ix_trip_order_status", "trip_order", ["status"], unique=False)
    op.create_index(
        "ix_trip_order_unit_id_start_at", "trip_order", ["unit_id", "start_at"], unique=False
    )
    op.create_table(
        "assignment",
        sa.Column("id", sa.Integer(), sa.Identity(always=False), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("vehicle_id", sa.Integer(), nullable=False),
        sa.Column("driver_id", sa.Integer(), nullable=False),
        sa.Column("period", postgresql.TSTZRANGE(), nullable=False),
        sa.Column("active", sa.Boolean(), server_default="true", nullable=False),
        sa.Column("reason", sa.Text(), server_default="", nullable=False),
        sa.Column("assigned_by", sa.Integer(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        postgresql.ExcludeConstraint(
            (sa.column("driver_id"), "="),
            (sa.column("period"), "&&"),
            where=sa.text("active"),
            using="gist",
            name="ex_assignment_driver_period",
        ),
        postgresql.ExcludeConstraint(
            (sa.column("vehicle_id"), "="),
            (sa.column("period"), "&&"),
            where=sa.text("active"),
            using="gist",
            name="ex_assignment_vehicle_period",
        ),
        sa.ForeignKeyConstraint(
            ["assigned_by"],
            ["user_account.id"],
            name=op.f("fk_assignment_assigned_by_user_account"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["driver_id"],
            ["driver.id"],
            name=op.f("fk_assignment_driver_id_driver"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["trip_order.id"],
            name=op.f("fk_assignment_order_id_trip_order"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["vehicle_id"],
            ["vehicle.id"],
            name=op.f("fk_assignment_vehicle_id_vehicle"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assignment")),
    )
    op.create_index(
        "uq_assignment_order_active",
        "assignment",
        ["order_id"],
        unique=True,
        postgresql_where=sa.text("active"),
    )
    op.create_table(
        "order_decision",
        sa.Column("id", sa.Integer(), sa.Identity(always=False), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("step", sa.Integer(), server_default="1", nullable=False),
        sa.Column("approved", sa.Boolean(), nullable=False),
        sa.Column("comment", sa.Text(), server_default="", nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("username", sa.String(length=100), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["trip_order.id"],
            name=op.f("fk_order_decision_order_id_trip_order"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user_account.id"],
            name=op.f("fk_order_decision_user_id_user_account"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_order_decision")),
    )
    op.create_index("ix_order_decision_order_id", "order_decision", ["order_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_order_decision_order_id", table_name="order_decision")
    op.drop_table("order_decision")
    op.drop_index(
        "uq_assignment_order_active", table_name="assignment", postgresql_where=sa.text("active")
    )
    op.drop_table("assignment")
    op.drop_index("ix_trip_order_unit_id_start_at", table_name="trip_order")
    op.drop_index("ix_trip_order_status", table_name="trip_order")
    op.drop_index("ix_trip_order_requester_id", table_name="trip_order")
    op.drop_geospatial_table("trip_order")
