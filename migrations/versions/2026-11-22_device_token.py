"""Device tokens: integrations (protocol `api`) authenticate to POST /api/v1/telemetry.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("device", sa.Column("token_digest", sa.String(length=64), nullable=True))
    op.create_unique_constraint(op.f("uq_device_token_digest"), "device", ["token_digest"])


def downgrade() -> None:
    op.drop_constraint(op.f("uq_device_token_digest"), "device", type_="unique")
    op.drop_column("device", "token_digest")
