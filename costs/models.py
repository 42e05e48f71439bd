"""Tables of costs: receipts and statement lines (cost_record), the statements imported
(cost_statement), and each record's shares among the orders it served (cost_allocation)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum

import sqlalchemy as sa
from geoalchemy2 import Geometry, WKBElement
from sqlalchemy.orm import Mapped, mapped_column

from fleet.db import Base, Timestamped
from fleet.models import _enum


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

    id: Mapped[int] = mapped_column(sa.Integer, sa.Identity(), primary_key=True)
    issuer: Mapped[str] = mapped_column(sa.String(32))
    filename: Mapped[str] = mapped_column(sa.String(200))
    digest: Mapped[str] = mapped_column(sa.String(64), unique=True)
    rows: Mapped[int] = mapped_column(sa.Integer)
    added: Mapped[int] = mapped_column(sa.Integer)
    user_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("user_account.id", ondelete="SET NULL")
    )
    username: Mapped[str] = mapped_column(sa.String(100))
    imported_at: Mapped[datetime] = mapped_column(server_default=sa.text("now()"))


class CostRecord(Timestamped, Base):
    """One cost of one vehicle: a fuel fill, a charging session, a repair, a toll...

    `trip_id` and `order_id` are where the record happened (found by time); what each order
    bears of it is in `cost_allocation`."""

    __tablename__ = "cost_record"

    id: Mapped[int] = mapped_column(sa.Integer, sa.Identity(), primary_key=True)
    kind: Mapped[CostKind] = mapped_column(_enum(CostKind, "kind"))
    vehicle_id: Mapped[int] = mapped_column(sa.ForeignKey("vehicle.id", ondelete="RESTRICT"))
    unit_id: Mapped[int] = mapped_column(sa.ForeignKey("org_unit.id", ondelete="RESTRICT"))
    at: Mapped[datetime]
    amount: Mapped[Decimal] = mapped_column(sa.Numeric(12, 2))
    litres: Mapped[float | None] = mapped_column(sa.Float)
    kwh: Mapped[float | None] = mapped_column(sa.Float)
    unit_price: Mapped[float | None] = mapped_column(sa.Float)
    product: Mapped[str] = mapped_column(sa.String(32), server_default="")
    station_name: Mapped[str] = mapped_column(sa.String(200), server_default="")
    station: Mapped[WKBElement | None] = mapped_column(
        Geometry("POINT", srid=4326, spatial_index=False), nullable=True
    )
    fuel_card: Mapped[str] = mapped_column(sa.String(32), server_default="")
    odometer_km: Mapped[float | None] = mapped_column(sa.Float)
    vendor: Mapped[str] = mapped_column(sa.String(200), server_default="")
    note: Mapped[str] = mapped_column(sa.Text, server_default="")
    # When the next service, insurance renewal or inspection is due (from the receipt).
    next_due_on: Mapped[date | None] = mapped_column(sa.Date)
    statement_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("cost_statement.id", ondelete="RESTRICT")
    )
    # The issuer's transaction id, or a digest of the row where a statement has none.
    issuer: Mapped[str] = mapped_column(sa.String(32), server_default="")
    external_id: Mapped[str | None] = mapped_column(sa.String(64))
    trip_id: Mapped[int | None] = mapped_column(
        sa.BigInteger, sa.ForeignKey("trip.id", ondelete="SET NULL")
    )
    order_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("trip_order.id", ondelete="SET NULL")
    )
    created_by: Mapped[int | None] = mapped_column(
        sa.ForeignKey("user_account.id", ondelete="SET NULL")
    )

    __table_args__ = (
        sa.UniqueConstraint("issuer", "external_id", name="uq_cost_record_external"),
        sa.CheckConstraint("amount >= 0", name="amount"),
        sa.CheckConstraint("litres IS NULL OR litres > 0", name="litres"),
        sa.CheckConstraint("kwh IS NULL OR kwh > 0", name="kwh"),
        sa.CheckConstraint("kind <> 'fuel' OR litres IS NOT NULL", name="fuel_litres"),
        sa.CheckConstraint("kind <> 'charging' OR kwh IS NOT NULL", name="charging_kwh"),
        sa.CheckConstraint("odometer_km IS NULL OR odometer_km >= 0", name="odometer"),
        sa.Index("ix_cost_record_vehicle_id_at", "vehicle_id", "at"),
        sa.Index("ix_cost_record_unit_id_at", "unit_id", "at"),
        sa.Index("ix_cost_record_order_id", "order_id"),
    )


class CostAllocation(Base):
    """The part of a cost an order bears (`order_id` NULL: driving no order covered)."""

    __tablename__ = "cost_allocation"

    id: Mapped[int] = mapped_column(sa.Integer, sa.Identity(), primary_key=True)
    cost_id: Mapped[int] = mapped_column(sa.ForeignKey("cost_record.id", ondelete="CASCADE"))
    order_id: Mapped[int | None] = mapped_column(sa.ForeignKey("trip_order.id", ondelete="CASCADE"))
    share: Mapped[float] = mapped_column(sa.Float)
    amount: Mapped[Decimal] = mapped_column(sa.Numeric(12, 2))
    distance_m: Mapped[float] = mapped_column(sa.Float, server_default="0")

    __table_args__ = (
        sa.CheckConstraint("share > 0 AND share <= 1", name="share"),
        sa.Index("ix_cost_allocation_cost_id", "cost_id"),
        sa.Index("ix_cost_allocation_order_id", "order_id"),
    )
