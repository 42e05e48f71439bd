"""Costs: fuel fills, charging, maintenance and other records of each vehicle, the statements
they were imported from, their allocation to trip orders; a fuel card per vehicle; the alert kinds
of the fuel and odometer checks.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

# Written out rather than imported: a migration must not change when the code does.
RULE_KINDS = (
    "no_order",
    "off_hours",
    "off_route",
    "region_exit",
    "prohibited_zone",
    "overnight_away",
    "overspeed",
    "signal_loss",
    "device_alarm",
)
RECORD_KINDS = (
    "fuel_over_capacity",
    "fuel_location_mismatch",
    "fuel_no_trip",
    "fuel_off_hours",
    "fuel_too_frequent",
    "fuel_consumption_high",
    "odometer_mismatch",
)


def _values(kinds: tuple[str, ...]) -> str:
    return ", ".join(f"'{k}'" for k in kinds)


def _alert_kinds(kinds: tuple[str, ...]) -> None:
    op.drop_constraint(op.f("ck_alert_kind"), "alert", type_="check")
    op.create_check_constraint(op.f("ck_alert_kind"), "alert", f"kind IN ({_values(kinds)})")


def upgrade() -> None:
    op.create_table(
        "cost_statement",
        sa.Column("id", sa.Integer(), sa.Identity(always=False), nullable=False),
        sa.Column("issuer", sa.String(length=32), nullable=False),
        sa.Column("filename", sa.String(length=200), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("added", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("username", sa.String(length=100), nullable=False),
        sa.Column(
            "imported_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user_account.id"],
            name=op.f("fk_cost_statement_user_id_user_account"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cost_statement")),
        sa.UniqueConstraint("digest", name=op.f("uq_cost_statement_digest")),
    )
    op.create_geospatial_table(
        "cost_record",
        sa.Column("id", sa.Integer(), sa.Identity(always=False), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "fuel",
                "charging",
                "maintenance",
                "repair",
                "insurance",
                "inspection",
                "toll",
                "parking",
                "washing",
                "other",
                name="kind",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column("vehicle_id", sa.Integer(), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("amount", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("litres", sa.Float(), nullable=True),
        sa.Column("kwh", sa.Float(), nullable=True),
        sa.Column("unit_price", sa.Float(), nullable=True),
        sa.Column("product", sa.String(length=32), server_default="", nullable=False),
        sa.Column("station_name", sa.String(length=200), server_default="", nullable=False),
        sa.Column(
            "station",
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
        sa.Column("fuel_card", sa.String(length=32), server_default="", nullable=False),
        sa.Column("odometer_km", sa.Float(), nullable=True),
        sa.Column("vendor", sa.String(length=200), server_default="", nullable=False),
        sa.Column("note", sa.Text(), server_default="", nullable=False),
        sa.Column("next_due_on", sa.Date(), nullable=True),
        sa.Column("statement_id", sa.Integer(), nullable=True),
        sa.Column("issuer", sa.String(length=32), server_default="", nullable=False),
        sa.Column("external_id", sa.String(length=64), nullable=True),
        sa.Column("trip_id", sa.BigInteger(), nullable=True),
        sa.Column("order_id", sa.Integer(), nullable=True),
        sa.Column("created_by", sa.Integer(), nullable=True),
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
            "kind <> 'charging' OR kwh IS NOT NULL", name=op.f("ck_cost_record_charging_kwh")
        ),
        sa.CheckConstraint(
            "kind <> 'fuel' OR litres IS NOT NULL", name=op.f("ck_cost_record_fuel_litres")
        ),
        sa.CheckConstraint("amount >= 0", name=op.f("ck_cost_record_amount")),
        sa.CheckConstraint("kwh IS NULL OR kwh > 0", name=op.f("ck_cost_record_kwh")),
        sa.CheckConstraint("litres IS NULL OR litres > 0", name=op.f("ck_cost_record_litres")),
        sa.CheckConstraint(
            "odometer_km IS NULL OR odometer_km >= 0", name=op.f("ck_cost_record_odometer")
        ),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["user_account.id"],
            name=op.f("fk_cost_record_created_by_user_account"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["trip_order.id"],
            name=op.f("fk_cost_record_order_id_trip_order"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["statement_id"],
            ["cost_statement.id"],
            name=op.f("fk_cost_record_statement_id_cost_statement"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["trip_id"], ["trip.id"], name=op.f("fk_cost_record_trip_id_trip"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["unit_id"],
            ["org_unit.id"],
            name=op.f("fk_cost_record_unit_id_org_unit"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["vehicle_id"],
            ["vehicle.id"],
            name=op.f("fk_cost_record_vehicle_id_vehicle"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cost_record")),
        sa.UniqueConstraint("issuer", "external_id", name="uq_cost_record_external"),
    )
    op.create_index("ix_cost_record_order_id", "cost_record", ["order_id"], unique=False)
    op.create_index("ix_cost_record_unit_id_at", "cost_record", ["unit_id", "at"], unique=False)
    op.create_index(
        "ix_cost_record_vehicle_id_at", "cost_record", ["vehicle_id", "at"], unique=False
    )
    op.create_table(
        "cost_allocation",
        sa.Column("id", sa.Integer(), sa.Identity(always=False), nullable=False),
        sa.Column("cost_id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=True),
        sa.Column("share", sa.Float(), nullable=False),
        sa.Column("amount", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("distance_m", sa.Float(), server_default="0", nullable=False),
        sa.CheckConstraint("share > 0 AND share <= 1", name=op.f("ck_cost_allocation_share")),
        sa.ForeignKeyConstraint(
            ["cost_id"],
            ["cost_record.id"],
            name=op.f("fk_cost_allocation_cost_id_cost_record"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["trip_order.id"],
            name=op.f("fk_cost_allocation_order_id_trip_order"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cost_allocation")),
    )
    op.create_index("ix_cost_allocation_cost_id", "cost_allocation", ["cost_id"], unique=False)
    op.create_index("ix_cost_allocation_order_id", "cost_allocation", ["order_id"], unique=False)
    op.add_column("vehicle", sa.Column("fuel_card", sa.String(length=32), nullable=True))
    op.create_unique_constraint(op.f("uq_vehicle_fuel_card"), "vehicle", ["fuel_card"])
    _alert_kinds(RULE_KINDS + RECORD_KINDS)


def downgrade() -> None:
    op.execute(
        "DELETE FROM alert_review WHERE alert_id IN"
        f" (SELECT id FROM alert WHERE kind IN ({_values(RECORD_KINDS)}))"
    )
    op.execute(f"DELETE FROM alert WHERE kind IN ({_values(RECORD_KINDS)})")
    _alert_kinds(RULE_KINDS)
    op.drop_constraint(op.f("uq_vehicle_fuel_card"), "vehicle", type_="unique")
    op.drop_column("vehicle", "fuel_card")
    op.drop_index("ix_cost_allocation_order_id", table_name="cost_allocation")
    op.drop_index("ix_cost_allocation_cost_id", table_name="cost_allocation")
    op.drop_table("cost_allocation")
    op.drop_index("ix_cost_record_vehicle_id_at", table_name="cost_record")
    op.drop_index("ix_cost_record_unit_id_at", table_name="cost_record")
    op.drop_index("ix_cost_record_order_id", table_name="cost_record")
    op.drop_geospatial_table("cost_record")
    op.drop_table("cost_statement")
