"""Foundation: PostGIS, org units, accounts and tokens, the registry, the append-only audit log.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


# The log refuses to be changed by anyone, owner included; a superuser who disables the
# trigger can still change it, and `fleet audit verify` then names the altered entry.
AUDIT_APPEND_ONLY = (
    """
    CREATE FUNCTION audit_entry_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'audit_entry is append-only: % refused', TG_OP
            USING ERRCODE = 'insufficient_privilege';
    END
    $$
    """,
    """
    CREATE TRIGGER audit_entry_append_only BEFORE UPDATE OR DELETE ON audit_entry
        FOR EACH ROW EXECUTE FUNCTION audit_entry_refuse_change()
    """,
    """
    CREATE TRIGGER audit_entry_no_truncate BEFORE TRUNCATE ON audit_entry
        FOR EACH STATEMENT EXECUTE FUNCTION audit_entry_refuse_change()
    """,
)


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    # btree_gist lets exclusion constraints mix equality (vehicle) with ranges (time window).
    op.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
    op.create_table(
        "audit_entry",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor_id", sa.Integer(), nullable=True),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("entity", sa.String(length=32), nullable=False),
        sa.Column("entity_id", sa.String(length=64), nullable=False),
        sa.Column("before", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("after", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_entry")),
        sa.UniqueConstraint("hash", name=op.f("uq_audit_entry_hash")),
    )
    op.create_index("ix_audit_entry_entity", "audit_entry", ["entity", "entity_id"], unique=False)
    op.create_table(
        "org_unit",
        sa.Column("id", sa.Integer(), sa.Identity(always=False), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("parent_id", sa.Integer(), nullable=True),
        sa.Column("path", sa.String(length=400), nullable=False),
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
        sa.ForeignKeyConstraint(
            ["parent_id"],
            ["org_unit.id"],
            name=op.f("fk_org_unit_parent_id_org_unit"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_org_unit")),
        sa.UniqueConstraint("code", name=op.f("uq_org_unit_code")),
    )
    op.create_index("ix_org_unit_parent_id", "org_unit", ["parent_id"], unique=False)
    op.create_index(
        "ix_org_unit_path",
        "org_unit",
        ["path"],
        unique=False,
        postgresql_ops={"path": "text_pattern_ops"},
    )
    op.create_table(
        "user_account",
        sa.Column("id", sa.Integer(), sa.Identity(always=False), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("full_name", sa.String(length=100), server_default="", nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=False),
        sa.Column("roles", sa.ARRAY(sa.String(length=16)), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("is_active", sa.Boolean(), server_default="true", nullable=False),
        sa.Column("language", sa.String(length=8), server_default="zh", nullable=False),
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
            "cardinality(roles) >= 1 AND roles <@ ARRAY['admin', 'requester', 'approver', "
            "'dispatcher', 'driver', 'supervisor']::varchar[]",
            name=op.f("ck_user_account_roles"),
        ),
        sa.ForeignKeyConstraint(
            ["unit_id"],
            ["org_unit.id"],
            name=op.f("fk_user_account_unit_id_org_unit"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_account")),
        sa.UniqueConstraint("username", name=op.f("uq_user_account_username")),
    )
    op.create_index("ix_user_account_unit_id", "user_account", ["unit_id"], unique=False)
    op.create_geospatial_table(
        "vehicle",
        sa.Column("id", sa.Integer(), sa.Identity(always=False), nullable=False),
        sa.Column("plate", sa.String(length=16), nullable=False),
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
            nullable=False,
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
            nullable=False,
        ),
        sa.Column("seats", sa.Integer(), nullable=False),
        sa.Column(
            "energy",
            sa.Enum(
                "petrol",
                "diesel",
                "hybrid",
                "phev",
                "bev",
                name="energy",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column("tank_l", sa.Float(), nullable=True),
        sa.Column("battery_kwh", sa.Float(), nullable=True),
        sa.Column("fuel_norm_l_100km", sa.Float(), nullable=True),
        sa.Column("make_model", sa.String(length=100), server_default="", nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("depot_name", sa.String(length=200), server_default="", nullable=False),
        sa.Column(
            "depot",
            Geometry(
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
            ),
            nullable=True,
        ),
        sa.Column(
            "status",
            sa.Enum(
                "active",
                "sealed",
                "maintenance",
                "disposed",
                name="status",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            server_default="active",
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
            "battery_kwh IS NULL OR battery_kwh > 0", name=op.f("ck_vehicle_battery_kwh")
        ),
        sa.CheckConstraint("seats BETWEEN 1 AND 60", name=op.f("ck_vehicle_seats")),
        sa.CheckConstraint("tank_l IS NULL OR tank_l > 0", name=op.f("ck_vehicle_tank_l")),
        sa.ForeignKeyConstraint(
            ["unit_id"],
            ["org_unit.id"],
            name=op.f("fk_vehicle_unit_id_org_unit"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vehicle")),
        sa.UniqueConstraint("plate", name=op.f("uq_vehicle_plate")),
    )
    op.create_index("ix_vehicle_unit_id", "vehicle", ["unit_id"], unique=False)
    op.create_table(
        "auth_token",
        sa.Column("id", sa.Integer(), sa.Identity(always=False), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user_account.id"],
            name=op.f("fk_auth_token_user_id_user_account"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_auth_token")),
        sa.UniqueConstraint("digest", name=op.f("uq_auth_token_digest")),
    )
    op.create_index("ix_auth_token_user_id", "auth_token", ["user_id"], unique=False)
    op.create_table(
        "device",
        sa.Column("id", sa.Integer(), sa.Identity(always=False), nullable=False),
        sa.Column(
            "protocol",
            sa.Enum(
                "jt808",
                "osmand",
                "api",
                name="protocol",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column("identifier", sa.String(length=64), nullable=False),
        sa.Column("vehicle_id", sa.Integer(), nullable=True),
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default="true", nullable=False),
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
        sa.ForeignKeyConstraint(
            ["unit_id"],
            ["org_unit.id"],
            name=op.f("fk_device_unit_id_org_unit"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["vehicle_id"],
            ["vehicle.id"],
            name=op.f("fk_device_vehicle_id_vehicle"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_device")),
        sa.UniqueConstraint("protocol", "identifier", name=op.f("uq_device_protocol_identifier")),
    )
    op.create_index("ix_device_unit_id", "device", ["unit_id"], unique=False)
    op.create_index("ix_device_vehicle_id", "device", ["vehicle_id"], unique=False)
    op.create_table(
        "driver",
        sa.Column("id", sa.Integer(), sa.Identity(always=False), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("phone", sa.String(length=32), server_default="", nullable=False),
        sa.Column("licence_class", sa.String(length=4), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("active", sa.Boolean(), server_default="true", nullable=False),
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
        sa.ForeignKeyConstraint(
            ["unit_id"],
            ["org_unit.id"],
            name=op.f("fk_driver_unit_id_org_unit"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user_account.id"],
            name=op.f("fk_driver_user_id_user_account"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_driver")),
        sa.UniqueConstraint("user_id", name=op.f("uq_driver_user_id")),
    )
    op.create_index("ix_driver_unit_id", "driver", ["unit_id"], unique=False)
    for statement in AUDIT_APPEND_ONLY:
        op.execute(statement)


def downgrade() -> None:
    op.drop_index("ix_driver_unit_id", table_name="driver")
    op.drop_table("driver")
    op.drop_index("ix_device_vehicle_id", table_name="device")
    op.drop_index("ix_device_unit_id", table_name="device")
    op.drop_table("device")
    op.drop_index("ix_auth_token_user_id", table_name="auth_token")
    op.drop_table("auth_token")
    op.drop_index("ix_vehicle_unit_id", table_name="vehicle")
    op.drop_geospatial_table("vehicle")
    op.drop_index("ix_user_account_unit_id", table_name="user_account")
    op.drop_table("user_account")
    op.drop_index(
        "ix_org_unit_path", table_name="org_unit", postgresql_ops={"path": "text_pattern_ops"}
    )
    op.drop_index("ix_org_unit_parent_id", table_name="org_unit")
    op.drop_table("org_unit")
    op.drop_index("ix_audit_entry_entity", table_name="audit_entry")
    op.drop_table("audit_entry")
    op.execute("DROP FUNCTION audit_entry_refuse_change()")
