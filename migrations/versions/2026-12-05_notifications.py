"""Notifications to people: how each person and each unit is reached (`notification_setting`),
the messages `fleet forward` derives from the outbox and delivers (`notification`), how far in
the outbox it has come (`notifier_cursor`), and dead letters for messages as well as for sink
events (`dead_letter.notification_id`; `integration_id` becomes nullable, one of the two set).

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

CHANNELS = "'email', 'wecom', 'dingtalk'"


def upgrade() -> None:
    op.create_table(
        "notification_setting",
        sa.Column("id", sa.Integer(), sa.Identity(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("unit_id", sa.Integer(), nullable=True),
        sa.Column("channels", postgresql.ARRAY(sa.String(length=16)), nullable=True),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("wecom_url", sa.String(length=500), nullable=True),
        sa.Column("dingtalk_url", sa.String(length=500), nullable=True),
        sa.Column("dingtalk_secret", sa.String(length=200), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint(
            "num_nonnulls(user_id, unit_id) = 1", name=op.f("ck_notification_setting_owner")
        ),
        sa.CheckConstraint(
            f"channels <@ ARRAY[{CHANNELS}]::varchar[]",
            name=op.f("ck_notification_setting_channels"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user_account.id"],
            name=op.f("fk_notification_setting_user_id_user_account"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["unit_id"],
            ["org_unit.id"],
            name=op.f("fk_notification_setting_unit_id_org_unit"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_setting")),
        sa.UniqueConstraint("user_id", name=op.f("uq_notification_setting_user_id")),
        sa.UniqueConstraint("unit_id", name=op.f("uq_notification_setting_unit_id")),
    )
    op.create_table(
        "notification",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column(
            "channel",
            sa.Enum(
                "email",
                "wecom",
                "dingtalk",
                name="channel",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column("address", sa.String(length=500), nullable=False),
        sa.Column("setting_id", sa.Integer(), nullable=True),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("link", sa.String(length=500), nullable=False),
        sa.Column(
            "state",
            sa.Enum(
                "pending",
                "sent",
                "dead",
                name="state",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            server_default="pending",
            nullable=False,
        ),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("retry_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user_account.id"],
            name=op.f("fk_notification_user_id_user_account"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["setting_id"],
            ["notification_setting.id"],
            name=op.f("fk_notification_setting_id_notification_setting"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification")),
        sa.UniqueConstraint(
            "event_id", "channel", "address", name=op.f("uq_notification_event_id_channel_address")
        ),
    )
    op.create_index("ix_notification_user_id", "notification", ["user_id"])
    op.create_index("ix_notification_setting_id", "notification", ["setting_id"])
    op.create_index(
        "ix_notification_pending",
        "notification",
        ["retry_at"],
        postgresql_where=sa.text("state = 'pending'"),
    )
    op.create_table(
        "notifier_cursor",
        sa.Column("id", sa.SmallInteger(), nullable=False),
        sa.Column("cursor", sa.BigInteger(), server_default="0", nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_notifier_cursor_single")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifier_cursor")),
    )
    # From now on: the events already in the outbox happened before anyone chose a channel.
    op.execute(
        "INSERT INTO notifier_cursor (id, cursor) SELECT 1, coalesce(max(id), 0) FROM outbox_event"
    )
    op.alter_column("dead_letter", "integration_id", existing_type=sa.Integer(), nullable=True)
    op.add_column("dead_letter", sa.Column("notification_id", sa.BigInteger(), nullable=True))
    op.create_foreign_key(
        op.f("fk_dead_letter_notification_id_notification"),
        "dead_letter",
        "notification",
        ["notification_id"],
        ["id"],
        ondelete="CASCADE",
    )
    op.create_index("ix_dead_letter_notification_id", "dead_letter", ["notification_id"])
    op.create_check_constraint(
        op.f("ck_dead_letter_target"),
        "dead_letter",
        "num_nonnulls(integration_id, notification_id) = 1",
    )


def downgrade() -> None:
    op.execute("DELETE FROM dead_letter WHERE notification_id IS NOT NULL")
    op.drop_constraint(op.f("ck_dead_letter_target"), "dead_letter", type_="check")
    op.drop_index("ix_dead_letter_notification_id", table_name="dead_letter")
    op.drop_constraint(
        op.f("fk_dead_letter_notification_id_notification"), "dead_letter", type_="foreignkey"
    )
    op.drop_column("dead_letter", "notification_id")
    op.alter_column("dead_letter", "integration_id", existing_type=sa.Integer(), nullable=False)
    op.drop_table("notifier_cursor")
    op.drop_index("ix_notification_pending", table_name="notification")
    op.drop_index("ix_notification_setting_id", table_name="notification")
    op.drop_index("ix_notification_user_id", table_name="notification")
    op.drop_table("notification")
    op.drop_table("notification_setting")
