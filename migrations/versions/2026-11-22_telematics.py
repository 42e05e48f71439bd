"""Telematics: positions partitioned by month, trips and stops, unknown devices.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_geospatial_table(
        "position",
        sa.Column("vehicle_id", sa.Integer(), nullable=False),
        sa.Column("fix_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
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
        sa.Column("speed_kmh", sa.REAL(), nullable=True),
        sa.Column("heading_deg", sa.REAL(), nullable=True),
        sa.Column("altitude_m", sa.REAL(), nullable=True),
        sa.Column("ignition", sa.Boolean(), nullable=True),
        sa.Column("odometer_km", sa.Float(), nullable=True),
        sa.Column("fuel_l", sa.REAL(), nullable=True),
        sa.Column("alarm_bits", sa.Integer(), server_default="0", nullable=False),
        sa.Column("status_bits", sa.Integer(), server_default="0", nullable=False),
        sa.Column("attributes", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.PrimaryKeyConstraint("vehicle_id", "fix_time", "device_id", name=op.f("pk_position")),
        # Partitions (position_pYYYYMM) are created on demand by the ingest worker.
        postgresql_partition_by="RANGE (fix_time)",
    )
    op.create_table(
        "unknown_device",
        sa.Column("id", sa.Integer(), sa.Identity(always=False), nullable=False),
        sa.Column("protocol", sa.String(length=16), nullable=False),
        sa.Column("identifier", sa.String(length=64), nullable=False),
        sa.Column(
            "first_seen_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "last_seen_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("attempts", sa.Integer(), server_default="1", nullable=False),
        sa.Column("remote_addr", sa.String(length=64), server_default="", nullable=False),
        sa.Column("last_message", sa.String(length=1100), server_default="", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_unknown_device")),
        sa.UniqueConstraint(
            "protocol", "identifier", name=op.f("uq_unknown_device_protocol_identifier")
        ),
    )
    op.create_geospatial_table(
        "stop",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("vehicle_id", sa.Integer(), nullable=False),
        sa.Column("start_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "point",
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
        sa.Column("duration_s", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["vehicle_id"],
            ["vehicle.id"],
            name=op.f("fk_stop_vehicle_id_vehicle"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stop")),
        sa.UniqueConstraint("vehicle_id", "start_at", name=op.f("uq_stop_vehicle_id_start_at")),
    )
    op.create_geospatial_table(
        "trip",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("vehicle_id", sa.Integer(), nullable=False),
        sa.Column("start_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "start_point",
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
        sa.Column(
            "end_point",
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
        sa.Column(
            "path",
            Geometry(
                geometry_type="LINESTRING",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.Column("distance_m", sa.Float(), nullable=False),
        sa.Column("duration_s", sa.Float(), nullable=False),
        sa.Column("max_speed_kmh", sa.REAL(), nullable=True),
        sa.Column("avg_speed_kmh", sa.REAL(), nullable=True),
        sa.Column("odometer_start_km", sa.Float(), nullable=True),
        sa.Column("odometer_end_km", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["vehicle_id"],
            ["vehicle.id"],
            name=op.f("fk_trip_vehicle_id_vehicle"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trip")),
        sa.UniqueConstraint("vehicle_id", "start_at", name=op.f("uq_trip_vehicle_id_start_at")),
    )
    op.create_geospatial_index(
        "ix_trip_path", "trip", ["path"], unique=False, postgresql_using="gist", postgresql_ops={}
    )


def downgrade() -> None:
    op.drop_geospatial_index(
        "ix_trip_path", table_name="trip", postgresql_using="gist", column_name="path"
    )
    op.drop_geospatial_table("trip")
    op.drop_geospatial_table("stop")
    op.drop_table("unknown_device")
    op.drop_geospatial_table("position")
