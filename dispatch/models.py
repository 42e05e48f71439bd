"""Tables of dispatch: trip orders, their approvals, and assignments (no double booking)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from geoalchemy2 import Geometry, WKBElement
from sqlalchemy.dialects.postgresql import JSONB, TSTZRANGE, ExcludeConstraint, Range
from sqlalchemy.orm import Mapped, mapped_column

from dispatch.approval import Condition
from dispatch.equipping import DisposalMethod, RequestKind, RequestStatus
from dispatch.orders import OrderStatus
from fleet.db import Base, Timestamped
from fleet.models import BodyClass, VehicleCategory, _enum


class TripOrder(Timestamped, Base):
    """A request for a car: who, why, when, from where to where, and how far it has got."""

    __tablename__ = "trip_order"

    id: Mapped[int] = mapped_column(sa.Integer, sa.Identity(), primary_key=True)
    requester_id: Mapped[int] = mapped_column(sa.ForeignKey("user_account.id", ondelete="RESTRICT"))
    unit_id: Mapped[int] = mapped_column(sa.ForeignKey("org_unit.id", ondelete="RESTRICT"))
    purpose: Mapped[str] = mapped_column(sa.String(500))
    passengers: Mapped[int] = mapped_column(sa.Integer)
    start_at: Mapped[datetime]
    end_at: Mapped[datetime]
    origin: Mapped[WKBElement] = mapped_column(Geometry("POINT", srid=4326, spatial_index=False))
    origin_name: Mapped[str] = mapped_column(sa.String(200))
    # [{"name", "lon", "lat"}], in visiting order
    destinations: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    category: Mapped[VehicleCategory | None] = mapped_column(_enum(VehicleCategory, "category"))
    body_class: Mapped[BodyClass | None] = mapped_column(_enum(BodyClass, "body_class"))
    out_of_region: Mapped[bool] = mapped_column(sa.Boolean, server_default="false")
    overnight: Mapped[bool] = mapped_column(sa.Boolean, server_default="false")
    notes: Mapped[str] = mapped_column(sa.Text, server_default="")
    # Set at submission: [{"level", "unit_id", "reasons"}], and how many are done.
    approval_steps: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, server_default="[]")
    approvals_done: Mapped[int] = mapped_column(sa.Integer, server_default="0")
    # An emergency order may be assigned before it is approved; its approval is then due
    # afterwards (`approval` pending -> approved or rejected, whatever the order's status).
    emergency: Mapped[bool] = mapped_column(sa.Boolean, server_default="false")
    # What the driver read off the dashboard at start and finish, if they did.
    odometer_start_km: Mapped[float | None] = mapped_column(sa.Float)
    odometer_end_km: Mapped[float | None] = mapped_column(sa.Float)
    approval: Mapped[str] = mapped_column(sa.String(16), server_default="pending")
    status: Mapped[OrderStatus] = mapped_column(
        _enum(OrderStatus, "status"), server_default=OrderStatus.DRAFT.value
    )

    __table_args__ = (
        sa.CheckConstraint("end_at > start_at", name="window"),
        sa.CheckConstraint("passengers BETWEEN 1 AND 60", name="passengers"),
        sa.CheckConstraint("approval IN ('pending', 'approved', 'rejected')", name="approval"),
        sa.CheckConstraint(
            "odometer_end_km IS NULL OR odometer_start_km IS NULL"
            " OR odometer_end_km >= odometer_start_km",
            name="odometer",
        ),
        sa.Index("ix_trip_order_unit_id_start_at", "unit_id", "start_at"),
        sa.Index("ix_trip_order_requester_id", "requester_id"),
        sa.Index("ix_trip_order_status", "status"),
    )


class ApprovalRule(Timestamped, Base):
    """One rule of a unit's approval chain; it applies to the orders of the unit and below."""

    __tablename__ = "approval_rule"

    id: Mapped[int] = mapped_column(sa.Integer, sa.Identity(), primary_key=True)
    unit_id: Mapped[int] = mapped_column(sa.ForeignKey("org_unit.id", ondelete="CASCADE"))
    condition: Mapped[Condition] = mapped_column(_enum(Condition, "condition"))
    param: Mapped[float | None] = mapped_column(sa.Float)
    level: Mapped[int] = mapped_column(sa.Integer)
    name: Mapped[str] = mapped_column(sa.String(200), server_default="")

    __table_args__ = (
        sa.CheckConstraint("level BETWEEN 0 AND 10", name="level"),
        sa.Index("ix_approval_rule_unit_id", "unit_id"),
    )


class OrderDecision(Base):
    """One approval or rejection of an order, with who, when and why."""

    __tablename__ = "order_decision"

    id: Mapped[int] = mapped_column(sa.Integer, sa.Identity(), primary_key=True)
    order_id: Mapped[int] = mapped_column(sa.ForeignKey("trip_order.id", ondelete="RESTRICT"))
    step: Mapped[int] = mapped_column(sa.Integer, server_default="1")
    approved: Mapped[bool] = mapped_column(sa.Boolean)
    comment: Mapped[str] = mapped_column(sa.Text, server_default="")
    user_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("user_account.id", ondelete="SET NULL")
    )
    username: Mapped[str] = mapped_column(sa.String(100))
    at: Mapped[datetime]

    __table_args__ = (sa.Index("ix_order_decision_order_id", "order_id"),)


def _held_once(what: str) -> ExcludeConstraint:
    """No two active assignments of one vehicle (or driver) whose periods overlap."""
    return ExcludeConstraint(
        (f"{what}_id", "="),
        ("period", "&&"),
        where=sa.text("active"),
        using="gist",
        name=f"ex_assignment_{what}_period",
    )


class Assignment(Base):
    """A vehicle and driver held for an order's window plus the turnaround buffer; for a merged
    trip (合并用车), for the joined windows of the orders it carries (`AssignmentOrder`).
    `order_id` is the trip's lead order (the first to start); the orders carried are those of
    `assignment_order`, the lead among them.

    Two active assignments of one vehicle (or one driver) cannot overlap: the exclusion constraints
    make double booking impossible in the database itself, whatever the application does."""

    __tablename__ = "assignment"

    id: Mapped[int] = mapped_column(sa.Integer, sa.Identity(), primary_key=True)
    order_id: Mapped[int] = mapped_column(sa.ForeignKey("trip_order.id", ondelete="RESTRICT"))
    vehicle_id: Mapped[int] = mapped_column(sa.ForeignKey("vehicle.id", ondelete="RESTRICT"))
    driver_id: Mapped[int] = mapped_column(sa.ForeignKey("driver.id", ondelete="RESTRICT"))
    period: Mapped[Range[datetime]] = mapped_column(TSTZRANGE)
    # The planned route, origin -> destinations -> origin: on the roads where they are loaded,
    # straight legs elsewhere. The geofence engine's corridor.
    route: Mapped[WKBElement | None] = mapped_column(
        Geometry("LINESTRING", srid=4326, spatial_index=False), nullable=True
    )
    route_source: Mapped[str] = mapped_column(sa.String(16), server_default="straight")
    active: Mapped[bool] = mapped_column(sa.Boolean, server_default="true")
    reason: Mapped[str] = mapped_column(sa.Text, server_default="")
    assigned_by: Mapped[int | None] = mapped_column(
        sa.ForeignKey("user_account.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(server_default=sa.text("now()"))

    __table_args__ = (
        _held_once("vehicle"),
        _held_once("driver"),
        sa.Index(
            "uq_assignment_order_active",
            "order_id",
            unique=True,
            postgresql_where=sa.text("active"),
        ),
    )


class AssignmentOrder(Base):
    """An order an assignment carries: one for a plain assignment, several for a merged trip.
    `active` follows the assignment's (an order dropped from a trip by its cancellation is
    inactive while the trip goes on); an order is carried by one active assignment at most."""

    __tablename__ = "assignment_order"

    assignment_id: Mapped[int] = mapped_column(
        sa.ForeignKey("assignment.id", ondelete="CASCADE"), primary_key=True
    )
    order_id: Mapped[int] = mapped_column(
        sa.ForeignKey("trip_order.id", ondelete="RESTRICT"), primary_key=True
    )
    active: Mapped[bool] = mapped_column(sa.Boolean, server_default="true")

    __table_args__ = (
        sa.Index(
            "uq_assignment_order_order_active",
            "order_id",
            unique=True,
            postgresql_where=sa.text("active"),
        ),
    )


class TripRating(Base):
    """The requester's rating of a completed trip (用车评价): once per order, 1 to 5 stars. It
    names the driver of the assignment the trip was driven under, so a driver's ratings stay
    theirs whatever happens to the order later."""

    __tablename__ = "trip_rating"

    id: Mapped[int] = mapped_column(sa.Integer, sa.Identity(), primary_key=True)
    order_id: Mapped[int] = mapped_column(
        sa.ForeignKey("trip_order.id", ondelete="RESTRICT"), unique=True
    )
    requester_id: Mapped[int] = mapped_column(sa.ForeignKey("user_account.id", ondelete="RESTRICT"))
    driver_id: Mapped[int] = mapped_column(sa.ForeignKey("driver.id", ondelete="RESTRICT"))
    stars: Mapped[int] = mapped_column(sa.SmallInteger)
    comment: Mapped[str] = mapped_column(sa.String(500), server_default="")
    at: Mapped[datetime]

    __table_args__ = (
        sa.CheckConstraint("stars BETWEEN 1 AND 5", name="stars"),
        sa.Index("ix_trip_rating_driver_id", "driver_id"),
    )


class RenewalRequest(Timestamped, Base):
    """A request to renew (更新) or dispose of (处置) a vehicle: it goes up its unit's approval
    chain as an order does, and once approved the vehicle is disposed of, by a method, on a
    date, to a receiving party. A vehicle has at most one open request."""

    __tablename__ = "renewal_request"

    id: Mapped[int] = mapped_column(sa.Integer, sa.Identity(), primary_key=True)
    vehicle_id: Mapped[int] = mapped_column(sa.ForeignKey("vehicle.id", ondelete="RESTRICT"))
    unit_id: Mapped[int] = mapped_column(sa.ForeignKey("org_unit.id", ondelete="RESTRICT"))
    kind: Mapped[RequestKind] = mapped_column(_enum(RequestKind, "kind"))
    reason: Mapped[str] = mapped_column(sa.String(500))
    requester_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("user_account.id", ondelete="SET NULL")
    )
    # As an order's: [{"level", "unit_id", "reasons"}], how many are done, and the decisions
    # [{"step", "approved", "comment", "user_id", "username", "at"}].
    approval_steps: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, server_default="[]")
    approvals_done: Mapped[int] = mapped_column(sa.Integer, server_default="0")
    decisions: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, server_default="[]")
    status: Mapped[RequestStatus] = mapped_column(
        _enum(RequestStatus, "status"), server_default=RequestStatus.SUBMITTED.value
    )
    disposal_method: Mapped[DisposalMethod | None] = mapped_column(
        _enum(DisposalMethod, "disposal_method")
    )
    disposed_on: Mapped[date | None] = mapped_column(sa.Date)
    receiver: Mapped[str] = mapped_column(sa.String(200), server_default="")

    __table_args__ = (
        sa.CheckConstraint(
            "(status = 'disposed') = (disposal_method IS NOT NULL AND disposed_on IS NOT NULL)",
            name="disposal",
        ),
        sa.Index("ix_renewal_request_unit_id", "unit_id"),
        sa.Index(
            "uq_renewal_request_vehicle_open",
            "vehicle_id",
            unique=True,
            postgresql_where=sa.text("status IN ('submitted', 'approved')"),
        ),
    )
