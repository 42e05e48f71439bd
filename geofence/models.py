"""Tables of the geofence domain: fences, the working calendar, working hours, alerts, reviews."""

from __future__ import annotations

from datetime import date, datetime, time
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from geoalchemy2 import Geometry, WKBElement
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from fleet.db import Base, Timestamped
from fleet.models import _enum
from geofence.fences import KINDS
from geofence.rules import KINDS as ALERT_KINDS


class FenceKind(StrEnum):
    PERMITTED_REGION = "permitted_region"
    PROHIBITED = "prohibited"
    DEPOT = "depot"
    CUSTOM = "custom"
    WORKSHOP = "workshop"  # 维修厂: where a vehicle in maintenance may move


assert tuple(FenceKind) == KINDS


class FenceShape(StrEnum):
    POLYGON = "polygon"
    CIRCLE = "circle"
    CORRIDOR = "corridor"


class Review(StrEnum):
    PENDING = "pending"
    CONFIRMED = "confirmed"
    DISMISSED = "dismissed"
    ESCALATED = "escalated"


# Which decisions may follow which: an escalated alert is decided higher up; a decided one stays.
REVIEW_MOVES: dict[Review, frozenset[Review]] = {
    Review.PENDING: frozenset({Review.CONFIRMED, Review.DISMISSED, Review.ESCALATED}),
    Review.ESCALATED: frozenset({Review.CONFIRMED, Review.DISMISSED}),
    Review.CONFIRMED: frozenset(),
    Review.DISMISSED: frozenset(),
}


class Fence(Timestamped, Base):
    """A fence as drawn (`geometry`: polygon, circle centre or corridor line) and the ground it
    covers (`area`, what the engine and the map use)."""

    __tablename__ = "fence"

    id: Mapped[int] = mapped_column(sa.Integer, sa.Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    kind: Mapped[FenceKind] = mapped_column(_enum(FenceKind, "kind"))
    shape: Mapped[FenceShape] = mapped_column(_enum(FenceShape, "shape"))
    geometry: Mapped[WKBElement] = mapped_column(Geometry(srid=4326, spatial_index=False))
    radius_m: Mapped[float | None] = mapped_column(sa.Float)
    width_m: Mapped[float | None] = mapped_column(sa.Float)
    area: Mapped[WKBElement] = mapped_column(Geometry("MULTIPOLYGON", srid=4326))
    schedule: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    unit_ids: Mapped[list[int]] = mapped_column(sa.ARRAY(sa.Integer), server_default="{}")
    categories: Mapped[list[str]] = mapped_column(sa.ARRAY(sa.String(24)), server_default="{}")
    speed_limit_kmh: Mapped[float | None] = mapped_column(sa.Float)
    enabled: Mapped[bool] = mapped_column(sa.Boolean, server_default="true")
    owner_unit_id: Mapped[int] = mapped_column(sa.ForeignKey("org_unit.id", ondelete="RESTRICT"))
    note: Mapped[str] = mapped_column(sa.Text, server_default="")

    __table_args__ = (
        sa.CheckConstraint("radius_m IS NULL OR radius_m > 0", name="radius_m"),
        sa.CheckConstraint("width_m IS NULL OR width_m > 0", name="width_m"),
        sa.CheckConstraint("speed_limit_kmh IS NULL OR speed_limit_kmh > 0", name="speed_limit"),
        sa.Index("ix_fence_owner_unit_id", "owner_unit_id"),
    )


class CalendarDay(Base):
    """One date of the working calendar (seeded from `chinesecalendar`, editable)."""

    __tablename__ = "calendar_day"

    day: Mapped[date] = mapped_column(sa.Date, primary_key=True)
    working: Mapped[bool] = mapped_column(sa.Boolean)
    note: Mapped[str] = mapped_column(sa.String(200), server_default="")
    source: Mapped[str] = mapped_column(sa.String(24), server_default="chinesecalendar")
    updated_at: Mapped[datetime] = mapped_column(server_default=sa.func.now())


class WorkingHours(Base):
    """A unit's working day (local time); units without one inherit their parent's."""

    __tablename__ = "working_hours"

    unit_id: Mapped[int] = mapped_column(
        sa.ForeignKey("org_unit.id", ondelete="CASCADE"), primary_key=True
    )
    start: Mapped[time] = mapped_column(sa.Time)
    end: Mapped[time] = mapped_column(sa.Time)
    updated_at: Mapped[datetime] = mapped_column(server_default=sa.func.now())

    __table_args__ = (sa.CheckConstraint('start < "end"', name="order"),)


KIND_VALUES = ", ".join(f"'{k}'" for k in ALERT_KINDS)


class Alert(Timestamped, Base):
    """One episode of one rule on one vehicle. Never deleted; `review` records the decision."""

    __tablename__ = "alert"

    id: Mapped[int] = mapped_column(sa.Integer, sa.Identity(), primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(32))
    key: Mapped[str] = mapped_column(sa.String(64), server_default="")
    severity: Mapped[str] = mapped_column(sa.String(16))
    vehicle_id: Mapped[int] = mapped_column(sa.ForeignKey("vehicle.id", ondelete="RESTRICT"))
    unit_id: Mapped[int] = mapped_column(sa.ForeignKey("org_unit.id", ondelete="RESTRICT"))
    driver_id: Mapped[int | None] = mapped_column(sa.ForeignKey("driver.id", ondelete="SET NULL"))
    order_id: Mapped[int | None] = mapped_column(sa.Integer)  # the dispatch domain's trip order
    fence_id: Mapped[int | None] = mapped_column(sa.ForeignKey("fence.id", ondelete="RESTRICT"))
    started_at: Mapped[datetime]
    last_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    point: Mapped[WKBElement | None] = mapped_column(
        Geometry("POINT", srid=4326, spatial_index=False), nullable=True
    )
    measured: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")
    thresholds: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")
    review: Mapped[Review] = mapped_column(
        _enum(Review, "review"), server_default=Review.PENDING.value
    )

    __table_args__ = (
        sa.UniqueConstraint("vehicle_id", "kind", "key", "started_at", name="uq_alert_episode"),
        sa.CheckConstraint(f"kind IN ({KIND_VALUES})", name="kind"),
        sa.CheckConstraint("severity IN ('low', 'medium', 'high', 'critical')", name="severity"),
        sa.Index("ix_alert_unit_id_started_at", "unit_id", "started_at"),
        sa.Index("ix_alert_review_started_at", "review", "started_at"),
    )


class AlertReview(Base):
    __tablename__ = "alert_review"

    id: Mapped[int] = mapped_column(sa.Integer, sa.Identity(), primary_key=True)
    alert_id: Mapped[int] = mapped_column(sa.ForeignKey("alert.id", ondelete="RESTRICT"))
    decision: Mapped[Review] = mapped_column(_enum(Review, "decision"))
    reason: Mapped[str] = mapped_column(sa.Text, server_default="")
    user_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("user_account.id", ondelete="SET NULL")
    )
    username: Mapped[str] = mapped_column(sa.String(100))
    at: Mapped[datetime]

    __table_args__ = (sa.Index("ix_alert_review_alert_id", "alert_id"),)
