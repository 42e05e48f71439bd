"""Tables of dispatch: trip orders, their approvals, and assignments (no double booking)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from geoalchemy2 import Geometry, WKBElement
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    Float,
    ForeignKey,
    Identity,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, TSTZRANGE, ExcludeConstraint, Range
from sqlalchemy.orm import Mapped, mapped_column

from dispatch.approval import Condition
from dispatch.orders import OrderStatus
from fleet.db import Base, Timestamped
from fleet.models import BodyClass, VehicleCategory, _enum


class TripOrder(Timestamped, Base):
    """A request for a car: who, why, when, from where to where, and how far it has got."""

    __tablename__ = "trip_order"

    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    requester_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="RESTRICT"))
    unit_id: Mapped[int] = mapped_column(ForeignKey("org_unit.id", ondelete="RESTRICT"))
    purpose: Mapped[str] = mapped_column(String(500))
    passengers: Mapped[int] = mapped_column(Integer)
    start_at: Mapped[datetime]
    end_at: Mapped[datetime]
    origin: Mapped[WKBElement] = mapped_column(Geometry("POINT", srid=4326, spatial_index=False))
    origin_name: Mapped[str] = mapped_column(String(200))
    # [{"name", "lon", "lat"}], in visiting order
    destinations: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    category: Mapped[VehicleCategory | None] = mapped_column(_enum(VehicleCategory, "category"))
    body_class: Mapped[BodyClass | None] = mapped_column(_enum(BodyClass, "body_class"))
    out_of_region: Mapped[bool] = mapped_column(Boolean, server_default="false")
    overnight: Mapped[bool] = mapped_column(Boolean, server_default="false")
    notes: Mapped[str] = mapped_column(Text, server_default="")
    # Set at submission: [{"level", "unit_id", "reasons"}], and how many are done.
    approval_steps: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, server_default="[]")
    approvals_done: Mapped[int] = mapped_column(Integer, server_default="0")
    # An emergency order may be assigned before it is approved; its approval is then due
    # afterwards (`approval` pending -> approved or rejected, whatever the order's status).
    emergency: Mapped[bool] = mapped_column(Boolean, server_default="false")
    # What the driver read off the dashboard at start and finish, if they did.
    odometer_start_km: Mapped[float | None] = mapped_column(Float)
    odometer_end_km: Mapped[float | None] = mapped_column(Float)
    approval: Mapped[str] = mapped_column(String(16), server_default="pending")
    status: Mapped[OrderStatus] = mapped_column(
        _enum(OrderStatus, "status"), server_default=OrderStatus.DRAFT.value
    )

    __table_args__ = (
        CheckConstraint("end_at > start_at", name="window"),
        CheckConstraint("passengers BETWEEN 1 AND 60", name="passengers"),
        CheckConstraint("approval IN ('pending', 'approved', 'rejected')", name="approval"),
        CheckConstraint(
            "odometer_end_km IS NULL OR odometer_start_km IS NULL"
            " OR odometer_end_km >= odometer_start_km",
            name="odometer",
        ),
        Index("ix_trip_order_unit_id_start_at", "unit_id", "start_at"),
        Index("ix_trip_order_requester_id", "requester_id"),
        Index("ix_trip_order_status", "status"),
    )


class ApprovalRule(Timestamped, Base):
    """One rule of a unit's approval chain; it applies to the orders of the unit and below."""

    __tablename__ = "approval_rule"

    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("org_unit.id", ondelete="CASCADE"))
    condition: Mapped[Condition] = mapped_column(_enum(Condition, "condition"))
    param: Mapped[float | None] = mapped_column(Float)
    level: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(200), server_default="")

    __table_args__ = (
        CheckConstraint("level BETWEEN 0 AND 10", name="level"),
        Index("ix_approval_rule_unit_id", "unit_id"),
    )


class OrderDecision(Base):
    """One approval or rejection of an order, with who, when and why."""

    __tablename__ = "order_decision"

    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("trip_order.id", ondelete="RESTRICT"))
    step: Mapped[int] = mapped_column(Integer, server_default="1")
    approved: Mapped[bool] = mapped_column(Boolean)
    comment: Mapped[str] = mapped_column(Text, server_default="")
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"))
    username: Mapped[str] = mapped_column(String(100))
    at: Mapped[datetime]

    __table_args__ = (Index("ix_order_decision_order_id", "order_id"),)


class Assignment(Base):
    """A vehicle and driver held for an order's window plus the turnaround buffer.

    Two active assignments of one vehicle (or one driver) cannot overlap: the exclusion constraints
    make double booking impossible in the database itself, whatever the application does."""

    __tablename__ = "assignment"

    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("trip_order.id", ondelete="RESTRICT"))
    vehicle_id: Mapped[int] = mapped_column(ForeignKey("vehicle.id", ondelete="RESTRICT"))
    driver_id: Mapped[int] = mapped_column(ForeignKey("driver.id", ondelete="RESTRICT"))
    period: Mapped[Range[datetime]] = mapped_column(TSTZRANGE)
    # The planned route, origin -> destinations -> origin: on the roads where they are loaded,
    # straight legs elsewhere. The geofence engine's corridor.
    route: Mapped[WKBElement | None] = mapped_column(
        Geometry("LINESTRING", srid=4326, spatial_index=False), nullable=True
    )
    route_source: Mapped[str] = mapped_column(String(16), server_default="straight")
    active: Mapped[bool] = mapped_column(Boolean, server_default="true")
    reason: Mapped[str] = mapped_column(Text, server_default="")
    assigned_by: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(server_default=text("now()"))

    __table_args__ = (
        ExcludeConstraint(
            ("vehicle_id", "="),
            ("period", "&&"),
            where=text("active"),
            using="gist",
            name="ex_assignment_vehicle_period",
        ),
        ExcludeConstraint(
            ("driver_id", "="),
            ("period", "&&"),
            where=text("active"),
            using="gist",
            name="ex_assignment_driver_period",
        ),
        Index(
            "uq_assignment_order_active",
            "order_id",
            unique=True,
            postgresql_where=text("active"),
        ),
    )


class CostKind(StrEnum):
    FUEL = "fuel"  # 加油
    CHARGING = "charging"  # 充电
    MAINTENANCE = "maintenance"  # 保养
    REPAIR = "repair"  # 维修
    INSURANCE = "insurance"  # 保险
    INSPECTION = "inspection"  # 年检
    TOLL = "toll"  # 通行费
    PARKING = "parking"  # 停车费
    WASHING = "washing"  # 洗车
    OTHER = "other"


class CostStatement(Base):
    """One imported statement file. Its digest makes a second import of the same file a no-op."""

    __tablename__ = "cost_statement"

    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    issuer: Mapped[str] = mapped_column(String(32))
    filename: Mapped[str] = mapped_column(String(200))
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    rows: Mapped[int] = mapped_column(Integer)
    added: Mapped[int] = mapped_column(Integer)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"))
    username: Mapped[str] = mapped_column(String(100))
    imported_at: Mapped[datetime] = mapped_column(server_default=text("now()"))


class CostRecord(Timestamped, Base):
    """One cost of one vehicle: a fuel fill, a charging session, a repair, a toll...

    `trip_id` and `order_id` are where the record happened (found by time); what each order
    bears of it is in `cost_allocation`."""

    __tablename__ = "cost_record"

    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    kind: Mapped[CostKind] = mapped_column(_enum(CostKind, "kind"))
    vehicle_id: Mapped[int] = mapped_column(ForeignKey("vehicle.id", ondelete="RESTRICT"))
    unit_id: Mapped[int] = mapped_column(ForeignKey("org_unit.id", ondelete="RESTRICT"))
    at: Mapped[datetime]
    amount: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    litres: Mapped[float | None] = mapped_column(Float)
    kwh: Mapped[float | None] = mapped_column(Float)
    unit_price: Mapped[float | None] = mapped_column(Float)
    product: Mapped[str] = mapped_column(String(32), server_default="")
    station_name: Mapped[str] = mapped_column(String(200), server_default="")
    station: Mapped[WKBElement | None] = mapped_column(
        Geometry("POINT", srid=4326, spatial_index=False), nullable=True
    )
    fuel_card: Mapped[str] = mapped_column(String(32), server_default="")
    odometer_km: Mapped[float | None] = mapped_column(Float)
    vendor: Mapped[str] = mapped_column(String(200), server_default="")
    note: Mapped[str] = mapped_column(Text, server_default="")
    # When the next service, insurance renewal or inspection is due (from the receipt).
    next_due_on: Mapped[date | None] = mapped_column(Date)
    statement_id: Mapped[int | None] = mapped_column(
        ForeignKey("cost_statement.id", ondelete="RESTRICT")
    )
    # The issuer's transaction id, or a digest of the row where a statement has none.
    issuer: Mapped[str] = mapped_column(String(32), server_default="")
    external_id: Mapped[str | None] = mapped_column(String(64))
    trip_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("trip.id", ondelete="SET NULL")
    )
    order_id: Mapped[int | None] = mapped_column(ForeignKey("trip_order.id", ondelete="SET NULL"))
    created_by: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL")
    )

    __table_args__ = (
        UniqueConstraint("issuer", "external_id", name="uq_cost_record_external"),
        CheckConstraint("amount >= 0", name="amount"),
        CheckConstraint("litres IS NULL OR litres > 0", name="litres"),
        CheckConstraint("kwh IS NULL OR kwh > 0", name="kwh"),
        CheckConstraint("kind <> 'fuel' OR litres IS NOT NULL", name="fuel_litres"),
        CheckConstraint("kind <> 'charging' OR kwh IS NOT NULL", name="charging_kwh"),
        CheckConstraint("odometer_km IS NULL OR odometer_km >= 0", name="odometer"),
        Index("ix_cost_record_vehicle_id_at", "vehicle_id", "at"),
        Index("ix_cost_record_unit_id_at", "unit_id", "at"),
        Index("ix_cost_record_order_id", "order_id"),
    )


class CostAllocation(Base):
    """The part of a cost an order bears (`order_id` NULL: driving no order covered)."""

    __tablename__ = "cost_allocation"

    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    cost_id: Mapped[int] = mapped_column(ForeignKey("cost_record.id", ondelete="CASCADE"))
    order_id: Mapped[int | None] = mapped_column(ForeignKey("trip_order.id", ondelete="CASCADE"))
    share: Mapped[float] = mapped_column(Float)
    amount: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    distance_m: Mapped[float] = mapped_column(Float, server_default="0")

    __table_args__ = (
        CheckConstraint("share > 0 AND share <= 1", name="share"),
        Index("ix_cost_allocation_cost_id", "cost_id"),
        Index("ix_cost_allocation_order_id", "order_id"),
    )
