"""The demo's receipts: the completed inspection trip's parking and its fuel fill on the way
back, entered through the service as a dispatcher would (so they are linked to the trip and the
order, shared out, checked and audited). Run after the dispatch demo, which makes the trip."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from costs import service as costs
from costs.models import CostRecord
from costs.schemas import CostIn
from dispatch.demo import COMPLETED, _actor
from dispatch.models import Assignment, TripOrder
from dispatch.settings import DispatchSettings
from geofence import service as geofence_service
from geofence.settings import GeofenceSettings

STATION = (120.12440, 30.28470)  # 文二路 加油站, beside the offices
RECEIPTS = (
    # kind, minutes after the order's start, amount (CNY), the receipt's other fields
    ("parking", 60, "10.00", {"station_name": "西湖区项目工地停车场", "vendor": "停车场"}),
    (
        "fuel",
        175,
        "291.83",
        {
            "litres": 38.5,
            "unit_price": 7.58,
            "product": "92#",
            "station_name": "中国石化 文二路加油站",
            "station": {"type": "Point", "coordinates": list(STATION)},
        },
    ),
)


def seed(*, session: Session, settings: DispatchSettings, zone_name: str, now: datetime) -> int:
    """Adds the completed demo trip's receipts when it has none yet; returns how many."""
    order = session.scalar(select(TripOrder).where(TripOrder.purpose == COMPLETED))
    dispatcher = _actor(session, "dispatcher")
    if order is None or dispatcher is None:
        return 0
    held = session.scalar(
        select(Assignment).where(Assignment.order_id == order.id).order_by(Assignment.id.desc())
    )
    if held is None:
        return 0
    start = order.start_at
    known = session.scalar(
        select(CostRecord.id).where(
            CostRecord.vehicle_id == held.vehicle_id,
            CostRecord.at >= start,
            CostRecord.at <= start + timedelta(hours=6),
        )
    )
    if known is not None:
        return 0
    zone = ZoneInfo(zone_name)
    setup = costs.CheckSetup(
        settings=settings,
        calendar=geofence_service.working_calendar(session=session, settings=GeofenceSettings()),
        zone=zone,
    )
    for kind, minutes, amount, extra in RECEIPTS:
        fields = dict(extra)
        if kind == "fuel":
            fields["odometer_km"] = order.odometer_end_km
        costs.create(
            session=session,
            actor=dispatcher,
            data=CostIn(
                kind=kind,
                vehicle_id=held.vehicle_id,
                at=(start + timedelta(minutes=minutes)).astimezone(UTC),
                amount=Decimal(amount),
                **fields,
            ),
            setup=setup,
            now=now,
        )
    return len(RECEIPTS)
