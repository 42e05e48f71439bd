"""Tables of telematics: every fix (partitioned by month), trips and stops, unknown devices."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from geoalchemy2 import Geometry, WKBElement
from sqlalchemy.dialects.postgresql import JSONB, REAL
from sqlalchemy.orm import Mapped, mapped_column

from fleet.db import Base


class Position(Base):
    """One fix. The key (vehicle, fix time, device) makes a re-sent fix a duplicate, and serves the
    track queries (one vehicle, a time range) without a second index on the hot partition.

    Partitioned by month; partitions are created on demand by the ingest worker, because blind-area
    re-sends can be months old. No foreign keys: they would cost every COPY a lookup."""

    __tablename__ = "position"

    vehicle_id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    fix_time: Mapped[datetime] = mapped_column(primary_key=True)
    device_id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    received_at: Mapped[datetime]
    point: Mapped[WKBElement | None] = mapped_column(
        Geometry("POINT", srid=4326, spatial_index=False), nullable=True
    )
    speed_kmh: Mapped[float | None] = mapped_column(REAL)
    heading_deg: Mapped[float | None] = mapped_column(REAL)
    altitude_m: Mapped[float | None] = mapped_column(REAL)
    ignition: Mapped[bool | None] = mapped_column(sa.Boolean)
    odometer_km: Mapped[float | None] = mapped_column(sa.Float)
    fuel_l: Mapped[float | None] = mapped_column(REAL)
    alarm_bits: Mapped[int] = mapped_column(sa.Integer, server_default="0")
    status_bits: Mapped[int] = mapped_column(sa.Integer, server_default="0")
    attributes: Mapped[dict[str, Any] | None] = mapped_column(JSONB)

    __table_args__ = ({"postgresql_partition_by": "RANGE (fix_time)"},)


class ArchivePartition(Base):
    """One archived part of a month of positions: its GeoParquet files (path, rows, bytes,
    first and last fix times, SHA-256 each) and state: `verified` (files written and checked,
    the partition still in PostGIS), `archived` (the partition dropped: the files are the
    month's record) or `restored` (the rows back in PostGIS). Written only through the owner's
    functions of migration 0015, which check the partition against it."""

    __tablename__ = "archive_partition"

    month: Mapped[date] = mapped_column(primary_key=True)
    part: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    state: Mapped[str] = mapped_column(sa.Text)
    rows: Mapped[int] = mapped_column(sa.BigInteger)
    min_time: Mapped[datetime | None]
    max_time: Mapped[datetime | None]
    files: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    bytes: Mapped[int] = mapped_column(sa.BigInteger)
    url: Mapped[str] = mapped_column(sa.Text)
    recorded_at: Mapped[datetime]
    archived_at: Mapped[datetime | None]
    restored_at: Mapped[datetime | None]

    __table_args__ = (
        sa.CheckConstraint(
            "state IN ('verified', 'archived', 'restored')", name="ck_archive_partition_state"
        ),
    )


class Trip(Base):
    __tablename__ = "trip"

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    vehicle_id: Mapped[int] = mapped_column(sa.ForeignKey("vehicle.id", ondelete="CASCADE"))
    start_at: Mapped[datetime]
    end_at: Mapped[datetime]
    start_point: Mapped[WKBElement] = mapped_column(
        Geometry("POINT", srid=4326, spatial_index=False)
    )
    end_point: Mapped[WKBElement] = mapped_column(Geometry("POINT", srid=4326, spatial_index=False))
    path: Mapped[WKBElement] = mapped_column(Geometry("LINESTRING", srid=4326, spatial_index=False))
    distance_m: Mapped[float] = mapped_column(sa.Float)
    duration_s: Mapped[float] = mapped_column(sa.Float)
    max_speed_kmh: Mapped[float | None] = mapped_column(REAL)
    avg_speed_kmh: Mapped[float | None] = mapped_column(REAL)
    odometer_start_km: Mapped[float | None] = mapped_column(sa.Float)
    odometer_end_km: Mapped[float | None] = mapped_column(sa.Float)

    __table_args__ = (
        sa.UniqueConstraint("vehicle_id", "start_at"),
        sa.Index("ix_trip_path", "path", postgresql_using="gist"),
    )


class Stop(Base):
    __tablename__ = "stop"

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    vehicle_id: Mapped[int] = mapped_column(sa.ForeignKey("vehicle.id", ondelete="CASCADE"))
    start_at: Mapped[datetime]
    end_at: Mapped[datetime]
    point: Mapped[WKBElement] = mapped_column(Geometry("POINT", srid=4326, spatial_index=False))
    duration_s: Mapped[float] = mapped_column(sa.Float)

    __table_args__ = (sa.UniqueConstraint("vehicle_id", "start_at"),)


class UnknownDevice(Base):
    """A tracker that talked to a gateway but is not registered (or is disabled): what an
    administrator needs to register it."""

    __tablename__ = "unknown_device"

    id: Mapped[int] = mapped_column(sa.Integer, sa.Identity(), primary_key=True)
    protocol: Mapped[str] = mapped_column(sa.String(16))
    identifier: Mapped[str] = mapped_column(sa.String(64))
    first_seen_at: Mapped[datetime] = mapped_column(server_default=sa.func.now())
    last_seen_at: Mapped[datetime] = mapped_column(server_default=sa.func.now())
    attempts: Mapped[int] = mapped_column(sa.Integer, server_default="1")
    remote_addr: Mapped[str] = mapped_column(sa.String(64), server_default="")
    last_message: Mapped[str] = mapped_column(sa.String(1100), server_default="")

    __table_args__ = (sa.UniqueConstraint("protocol", "identifier"),)


class Road(Base):
    """One edge of the imported road network, between two junctions (OSM node ids), with costs
    in seconds for pgRouting; a negative reverse cost marks a one-way edge."""

    __tablename__ = "road"

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    osm_id: Mapped[int] = mapped_column(sa.BigInteger)
    name: Mapped[str] = mapped_column(sa.String(200), server_default="")
    highway: Mapped[str] = mapped_column(sa.String(32))
    oneway: Mapped[bool] = mapped_column(sa.Boolean, server_default="false")
    maxspeed_kmh: Mapped[float] = mapped_column(sa.Float)
    source: Mapped[int] = mapped_column(sa.BigInteger)
    target: Mapped[int] = mapped_column(sa.BigInteger)
    length_m: Mapped[float] = mapped_column(sa.Float)
    cost_s: Mapped[float] = mapped_column(sa.Float)
    reverse_cost_s: Mapped[float] = mapped_column(sa.Float)
    geom: Mapped[WKBElement] = mapped_column(Geometry("LINESTRING", srid=4326, spatial_index=False))

    __table_args__ = (
        sa.Index("ix_road_geom", "geom", postgresql_using="gist"),
        sa.Index("ix_road_source", "source"),
        sa.Index("ix_road_target", "target"),
    )
