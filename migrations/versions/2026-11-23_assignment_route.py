"""The planned route of an assignment (on the roads where loaded, else straight legs): the
geofence engine's corridor for the trip.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_geospatial_column(
        "assignment",
        sa.Column(
            "route",
            Geometry(
                geometry_type="LINESTRING",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
            ),
            nullable=True,
        ),
    )
    op.add_column(
        "assignment",
        sa.Column("route_source", sa.String(length=16), server_default="straight", nullable=False),
    )


def downgrade() -> None:
    op.drop_column("assignment", "route_source")
    op.drop_geospatial_column("assignment", "route")
