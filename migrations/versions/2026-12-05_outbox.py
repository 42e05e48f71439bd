"""The outbox of events for other systems, the sinks they are delivered to (`integration`), with
each sink's cursor and counts, and the events a webhook refused for good (`dead_letter`). Alerts
are written with raw SQL by the geofence worker and the gateways: a trigger on `alert` puts an
event in the outbox when an episode opens and when it ends, in the writer's transaction; one on
`cost_record` an event for each record added, one by one or a statement's thousands at once.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

# The audit chain's advisory lock (fleet/audit.py `CHAIN_LOCK`), written out: every outbox writer
# holds it until its commit, so event ids are handed out in commit order.
CHAIN_LOCK = 1039088094487

ALERT_EVENT = f"""
CREATE FUNCTION fleet_alert_outbox() RETURNS trigger
LANGUAGE plpgsql SET search_path = public, pg_temp AS $$
BEGIN
    PERFORM pg_advisory_xact_lock({CHAIN_LOCK});
    INSERT INTO outbox_event (kind, unit_id, unit_code, object_type, object_id, payload)
    SELECT 'alerts', NEW.unit_id, u.code, 'alert', NEW.id::text, jsonb_build_object(
        'type', 'alert',
        'id', NEW.id,
        'action', CASE WHEN TG_OP = 'INSERT' AND NEW.ended_at IS NULL THEN 'open'
                       WHEN TG_OP = 'INSERT' THEN 'record' ELSE 'end' END,
        'actor', 'system',
        'state', to_jsonb(NEW) - 'point' - 'created_at' - 'updated_at'
            || jsonb_build_object('lat', ST_Y(NEW.point), 'lon', ST_X(NEW.point)))
    FROM org_unit u WHERE u.id = NEW.unit_id;
    RETURN NEW;
END
$$
"""

# Cost records are written one by one (by hand, audited) and by the thousand (a statement, in one
# INSERT): one event per record, from the table, whichever way it came.
COST_EVENT = f"""
CREATE FUNCTION fleet_cost_outbox() RETURNS trigger
LANGUAGE plpgsql SET search_path = public, pg_temp AS $$
BEGIN
    PERFORM pg_advisory_xact_lock({CHAIN_LOCK});
    INSERT INTO outbox_event (kind, unit_id, unit_code, object_type, object_id, payload)
    SELECT 'costs', r.unit_id, u.code, 'cost_record', r.id::text, jsonb_build_object(
        'type', 'cost_record',
        'id', r.id,
        'action', 'create',
        'actor', coalesce(a.username, 'system'),
        'state', to_jsonb(r) - 'station' - 'created_at' - 'updated_at'
            || jsonb_build_object('station_lat', ST_Y(r.station), 'station_lon', ST_X(r.station)))
    FROM added r
    JOIN org_unit u ON u.id = r.unit_id
    LEFT JOIN user_account a ON a.id = r.created_by
    ORDER BY r.id;
    RETURN NULL;
END
$$
"""


def upgrade() -> None:
    op.create_table(
        "outbox_event",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=True),
        sa.Column("unit_code", sa.String(length=32), nullable=False),
        sa.Column("object_type", sa.String(length=32), nullable=False),
        sa.Column("object_id", sa.String(length=64), nullable=False),
        sa.Column(
            "occurred_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("payload", postgresql.JSONB(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox_event")),
    )
    op.create_table(
        "integration",
        sa.Column("id", sa.Integer(), sa.Identity(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "mqtt",
                "webhook",
                "amqp",
                "nats",
                name="kind",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column("url", sa.String(length=500), nullable=False),
        sa.Column("secret", sa.String(length=200), nullable=True),
        sa.Column("options", postgresql.JSONB(), server_default="{}", nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=True),
        sa.Column("kinds", postgresql.ARRAY(sa.String(length=32)), nullable=True),
        sa.Column("enabled", sa.Boolean(), server_default="true", nullable=False),
        sa.Column("from_settings", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("cursor", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("retry_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sent", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("failed", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("dead", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_error_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["unit_id"],
            ["org_unit.id"],
            name=op.f("fk_integration_unit_id_org_unit"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_integration")),
        sa.UniqueConstraint("name", name=op.f("uq_integration_name")),
    )
    op.create_table(
        "dead_letter",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("integration_id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.ForeignKeyConstraint(
            ["integration_id"],
            ["integration.id"],
            name=op.f("fk_dead_letter_integration_id_integration"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dead_letter")),
    )
    op.create_index("ix_dead_letter_integration_id", "dead_letter", ["integration_id"])
    op.execute(ALERT_EVENT)
    op.execute(
        "CREATE TRIGGER alert_outbox AFTER INSERT ON alert"
        " FOR EACH ROW EXECUTE FUNCTION fleet_alert_outbox()"
    )
    op.execute(
        "CREATE TRIGGER alert_ended_outbox AFTER UPDATE OF ended_at ON alert FOR EACH ROW"
        " WHEN (OLD.ended_at IS NULL AND NEW.ended_at IS NOT NULL)"
        " EXECUTE FUNCTION fleet_alert_outbox()"
    )
    op.execute(COST_EVENT)
    op.execute(
        "CREATE TRIGGER cost_record_outbox AFTER INSERT ON cost_record"
        " REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION fleet_cost_outbox()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER cost_record_outbox ON cost_record")
    op.execute("DROP FUNCTION fleet_cost_outbox()")
    op.execute("DROP TRIGGER alert_ended_outbox ON alert")
    op.execute("DROP TRIGGER alert_outbox ON alert")
    op.execute("DROP FUNCTION fleet_alert_outbox()")
    op.drop_index("ix_dead_letter_integration_id", table_name="dead_letter")
    op.drop_table("dead_letter")
    op.drop_table("integration")
    op.drop_table("outbox_event")
