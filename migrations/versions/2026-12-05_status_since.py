"""When a vehicle's status last changed (`vehicle.status_since`), so the geofence engine judges
its fixes before then as an active vehicle's: a replay of the days a car was in use, run after it
was sealed, must not raise `sealed_vehicle_moving` for them. Existing vehicles take the time of
their latest audited status change (action "status", or another entry whose before and after
differ in status: an update of several fields, a disposal), or NULL (always) where there is none.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("vehicle", sa.Column("status_since", sa.DateTime(timezone=True), nullable=True))
    op.execute(
        "UPDATE vehicle SET status_since = ("
        " SELECT max(a.at) FROM audit_entry a"
        " WHERE a.entity = 'vehicle' AND a.entity_id = vehicle.id::text AND (a.action = 'status'"
        # a status changed with other fields ("update") or by a disposal ("dispose")
        "  OR a.before->>'status' IS DISTINCT FROM a.after->>'status'"
        "  AND a.before IS NOT NULL AND a.after IS NOT NULL))"
    )


def downgrade() -> None:
    op.drop_column("vehicle", "status_since")
