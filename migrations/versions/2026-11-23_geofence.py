"""Geofence: fences, the working calendar (seeded from `chinesecalendar`), working hours, alerts
and their reviews.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry
from sqlalchemy.dialects import postgresql

from geofence.calendar import official_days

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "calendar_day",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("working", sa.Boolean(), nullable=False),
        sa.Column("note", sa.String(length=200), server_default="", nullable=False),
        sa.Column("source", sa.String(length=24), server_default="chinesecalendar", nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("day", name=op.f("pk_calendar_day")),
    )
    op.create_geospatial_table(
        "fence",
        sa.Column("id", sa.Integer(), sa.Identity(always=False), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "permitted_region",
                "prohibited",
                "depot",
                "custom",
                name="kind",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column(
            "shape",
            sa.Enum(
                "polygon",
                "circle",
                "corridor",
                name="shape",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column(
            "geometry",
            Geometry(
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.Column("radius_m", sa.Float(), nullable=True),
        sa.Column("width_m", sa.Float(), nullable=True),
        sa.Column(
            "area",
            Geometry(
                geometry_type="MULTIPOLYGON",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.Column("schedule", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("unit_ids", sa.ARRAY(sa.Integer()), server_default="{}", nullable=False),
        sa.Column(
            "categories", sa.ARRAY(sa.String(length=24)), server_default="{}", nullable=False
        ),
        sa.Column("speed_limit_kmh", sa.Float(), nullable=True),
        sa.Column("enabled", sa.Boolean(), server_default="true", nullable=False),
        sa.Column("owner_unit_id", sa.Integer(), nullable=False),
        sa.Column("note", sa.Text(), server_default="", nullable=False),
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
        sa.CheckConstraint("radius_m IS NULL OR radius_m > 0", name=op.f("ck_fence_radius_m")),
        sa.CheckConstraint(
            "speed_limit_kmh IS NULL OR speed_limit_kmh > 0", name=op.f("ck_fence_speed_limit")
        ),
        sa.CheckConstraint("width_m IS NULL OR width_m > 0", name=op.f("ck_fence_width_m")),
        sa.ForeignKeyConstraint(
            ["owner_unit_id"],
            ["org_unit.id"],
            name=op.f("fk_fence_owner_unit_id_org_unit"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fence")),
    )
    op.create_geospatial_index(
        "idx_fence_area",
        "fence",
        ["area"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={},
    )
    op.create_index("ix_fence_owner_unit_id", "fence", ["owner_unit_id"], unique=False)
    op.create_table(
        "working_hours",
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("start", sa.Time(), nullable=False),
        sa.Column("end", sa.Time(), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint('start < "end"', name=op.f("ck_working_hours_order")),
        sa.ForeignKeyConstraint(
            ["unit_id"],
            ["org_unit.id"],
            name=op.f("fk_working_hours_unit_id_org_unit"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("unit_id", name=op.f("pk_working_hours")),
    )
    op.create_geospatial_table(
        "alert",
        sa.Column("id", sa.Integer(), sa.Identity(always=False), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=64), server_default="", nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("vehicle_id", sa.Integer(), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("driver_id", sa.Integer(), nullable=True),
        sa.Column("order_id", sa.Integer(), nullable=True),
        sa.Column("fence_id", sa.Integer(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "point",
            Geometry(
                geometry_type="POINT",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
            ),
            nullable=True,
        ),
        sa.Column(
            "measured", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False
        ),
        sa.Column(
            "thresholds",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default="{}",
            nullable=False,
        ),
        sa.Column(
            "review",
            sa.Enum(
                "pending",
                "confirmed",
                "dismissed",
                "escalated",
                name="review",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            server_default="pending",
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
        sa.CheckConstraint(
            "kind IN ('no_order', 'off_hours', 'off_route', 'region_exit', 'prohibited_zone',"
            " 'overnight_away', 'overspeed', 'signal_loss', 'device_alarm')",
            name=op.f("ck_alert_kind"),
        ),
        sa.CheckConstraint(
            "severity IN ('low', 'medium', 'high', 'critical')", name=op.f("ck_alert_severity")
        ),
        sa.ForeignKeyConstraint(
            ["driver_id"],
            ["driver.id"],
            name=op.f("fk_alert_driver_id_driver"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["fence_id"], ["fence.id"], name=op.f("fk_alert_fence_id_fence"), ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["unit_id"],
            ["org_unit.id"],
            name=op.f("fk_alert_unit_id_org_unit"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["vehicle_id"],
            ["vehicle.id"],
            name=op.f("fk_alert_vehicle_id_vehicle"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert")),
        sa.UniqueConstraint("vehicle_id", "kind", "key", "started_at", name="uq_alert_episode"),
    )
    op.create_index("ix_alert_review_started_at", "alert", ["review", "started_at"], unique=False)
    op.create_index("ix_alert_unit_id_started_at", "alert", ["unit_id", "started_at"], unique=False)
    op.create_table(
        "alert_review",
        sa.Column("id", sa.Integer(), sa.Identity(always=False), nullable=False),
        sa.Column("alert_id", sa.Integer(), nullable=False),
        sa.Column(
            "decision",
            sa.Enum(
                "pending",
                "confirmed",
                "dismissed",
                "escalated",
                name="decision",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column("reason", sa.Text(), server_default="", nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("username", sa.String(length=100), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["alert_id"],
            ["alert.id"],
            name=op.f("fk_alert_review_alert_id_alert"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user_account.id"],
            name=op.f("fk_alert_review_user_id_user_account"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_review")),
    )
    op.create_index("ix_alert_review_alert_id", "alert_review", ["alert_id"], unique=False)
    # Every date the `chinesecalendar` package knows (official holidays and adjusted working
    # weekends); later years are added with `fleet calendar seed` or entered by hand.
    calendar = sa.table(
        "calendar_day",
        sa.column("day", sa.Date()),
        sa.column("working", sa.Boolean()),
        sa.column("note", sa.String()),
    )
    op.bulk_insert(
        calendar,
        [{"day": d, "working": w, "note": n} for d, w, n in official_days(range(2004, 2031))],
    )


def downgrade() -> None:
    op.drop_index("ix_alert_review_alert_id", table_name="alert_review")
    op.drop_table("alert_review")
    op.drop_index("ix_alert_unit_id_started_at", table_name="alert")
    op.drop_index("ix_alert_review_started_at", table_name="alert")
    op.drop_geospatial_table("alert")
    op.drop_table("working_hours")
    op.drop_index("ix_fence_owner_unit_id", table_name="fence")
    op.drop_geospatial_index(
        "idx_fence_area", table_name="fence", postgresql_using="gist", column_name="area"
    )
    op.drop_geospatial_table("fence")
    op.drop_table("calendar_day")
