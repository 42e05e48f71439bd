"""Demo dispatch data, created idempotently: the city's approval rules, and a few orders for
tomorrow waiting at each stage so that every role has something to do."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from dispatch import service
from dispatch.approval import Condition
from dispatch.models import ApprovalRule, TripOrder
from dispatch.schemas import Comment, OrderCreate
from dispatch.settings import DispatchSettings
from fleet.auth import Actor
from fleet.models import OrgUnit, Role, UserAccount

RULES = (
    (Condition.OUT_OF_REGION, None, "出市用车须市政府办公厅审批"),
    (Condition.NON_WORKING_DAY, None, "节假日用车须市政府办公厅审批"),
    (Condition.LONGER_THAN_DAYS, 3.0, "连续用车超过三天须市政府办公厅审批"),
    (Condition.LARGE_VEHICLE, None, "中大型客车须市政府办公厅审批"),
)
# purpose, passengers, hour (local, tomorrow), hours, destination name and (lon, lat), stage
ORDERS = (
    ("市场监管联合检查", 3, 9, 3, "东站市场", (120.2131, 30.2907), "approved"),
    ("防汛工作调研", 5, 10, 4, "钱塘江堤防", (120.2630, 30.2460), "approved"),
    ("接待上级检查组", 6, 14, 2, "杭州东站", (120.2128, 30.2910), "submitted"),
    ("下乡走访", 2, 8, 9, "淳安县（出市）", (119.0420, 29.6090), "submitted"),
)


def _actor(session: Session, username: str) -> Actor | None:
    row = session.execute(
        select(UserAccount, OrgUnit)
        .join(OrgUnit, OrgUnit.id == UserAccount.unit_id)
        .where(UserAccount.username == username)
    ).first()
    if row is None:
        return None
    user, unit = row
    return Actor(user.id, user.username, unit.id, unit.path, frozenset(Role(r) for r in user.roles))


def seed(*, session: Session, settings: DispatchSettings, zone_name: str) -> dict[str, int]:
    from zoneinfo import ZoneInfo

    added = {"approval rules": 0, "orders": 0}
    root = session.scalar(select(OrgUnit).where(OrgUnit.code == "GOV"))
    requester, approver = _actor(session, "requester"), _actor(session, "approver")
    if root is None or requester is None or approver is None:
        return added
    have = {(r.condition, r.unit_id) for r in session.scalars(select(ApprovalRule))}
    for condition, param, name in RULES:
        if (condition, root.id) not in have:
            session.add(
                ApprovalRule(unit_id=root.id, condition=condition, param=param, level=1, name=name)
            )
            added["approval rules"] += 1
    session.flush()
    purposes = set(session.scalars(select(TripOrder.purpose)))
    zone = ZoneInfo(zone_name)
    tomorrow = (datetime.now(zone) + timedelta(days=1)).date()
    for purpose, passengers, hour, hours, place, (lon, lat), stage in ORDERS:
        if purpose in purposes:
            continue
        start = datetime(tomorrow.year, tomorrow.month, tomorrow.day, hour, tzinfo=zone)
        order = service.create_order(
            session=session,
            actor=requester,
            data=OrderCreate(
                purpose=purpose,
                passengers=passengers,
                start_at=start.astimezone(UTC),
                end_at=(start + timedelta(hours=hours)).astimezone(UTC),
                origin={"type": "Point", "coordinates": [120.2106, 30.2452]},
                origin_name="市民中心",
                destinations=[
                    {"point": {"type": "Point", "coordinates": [lon, lat]}, "name": place}
                ],
                out_of_region=lon < 119.9,
            ),
            settings=settings,
        )
        service.submit(
            session=session, actor=requester, order_id=order.id, zone=zone, night=(79_200, 21_600)
        )
        if stage == "approved":
            service.decide(
                session=session, actor=approver, order_id=order.id, approve=True, data=Comment()
            )
        added["orders"] += 1
    return added
