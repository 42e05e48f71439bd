"""Drivers' licences get their expiry date (驾驶证有效期止, none until entered), and requesters
rate completed trips (用车评价): `trip_rating`, one per order, 1 to 5 stars, naming the driver.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("driver", sa.Column("licence_expires_on", sa.Date(), nullable=True))
    op.create_table(
        "trip_rating",
        sa.Column("id", sa.Integer(), sa.Identity(), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("requester_id", sa.Integer(), nullable=False),
        sa.Column("driver_id", sa.Integer(), nullable=False),
        sa.Column("stars", sa.SmallInteger(), nullable=False),
        sa.Column("comment", sa.String(length=500), server_default="", nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("stars BETWEEN 1 AND 5", name=op.f("ck_trip_rating_stars")),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["trip_order.id"],
            name=op.f("fk_trip_rating_order_id_trip_order"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["requester_id"],
            ["user_account.id"],
            name=op.f("fk_trip_rating_requester_id_user_account"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["driver_id"],
            ["driver.id"],
            name=op.f("fk_trip_rating_driver_id_driver"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trip_rating")),
        sa.UniqueConstraint("order_id", name=op.f("uq_trip_rating_order_id")),
    )
    op.create_index("ix_trip_rating_driver_id", "trip_rating", ["driver_id"])


def downgrade() -> None:
    op.drop_index("ix_trip_rating_driver_id", table_name="trip_rating")
    op.drop_table("trip_rating")
    op.drop_column("driver", "licence_expires_on")
