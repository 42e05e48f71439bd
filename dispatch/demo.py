"""Demo dispatch data, created idempotently: the city's approval rules, a few orders for the next
working day waiting at each stage so that every role has something to do, and one order completed
on the last working day with its track, costs and a reviewed alert, so that the dossier has every
section.

The seed is the same on any date and at any hour: it is handed `now`, it reads the working calendar
(holidays and the adjusted working weekends) to pick its days, and every approval step it creates
for an order meant to be approved is decided, however many the unit's rules asked for that day.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from geoalchemy2.shape import from_shape
from shapely.geometry import LineString, Point
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from dispatch import service
from dispatch.approval import Condition
from dispatch.models import ApprovalRule, TripOrder
from dispatch.orders import OrderStatus
from dispatch.schemas import AssignIn, Comment, OrderCreate
from dispatch.settings import DispatchSettings
from fleet.auth import Actor
from fleet.models import Device, Driver, Energy, OrgUnit, Role, UserAccount, Vehicle
from fleet.redis_client import RedisClient
from geofence import service as geofence_service
from geofence.models import Alert, CalendarDay
from geofence.schemas import ReviewIn
from telematics import ingest, roads
from telematics.models import Trip
from telematics.trips import haversine_m

RULES = (
    (Condition.OUT_OF_REGION, None, "出市用车须市政府办公厅审批"),
    (Condition.NON_WORKING_DAY, None, "节假日用车须市政府办公厅审批"),
    (Condition.LONGER_THAN_DAYS, 3.0, "连续用车超过三天须市政府办公厅审批"),
    (Condition.LARGE_VEHICLE, None, "中大型客车须市政府办公厅审批"),
)
# purpose, passengers, hour (local, on the next working day), hours, destination name and
# (lon, lat), stage
ORDERS = (
    ("市场监管联合检查", 3, 9, 3, "古荡农贸市场", (120.11492, 30.28126), "approved"),
    ("防汛工作调研", 5, 10, 4, "余杭塘河堤防", (120.07532, 30.29573), "approved"),
    ("接待上级检查组", 6, 14, 2, "黄龙体育中心", (120.12970, 30.26699), "submitted"),
    ("下乡走访", 2, 8, 9, "淳安县（出市）", (119.0420, 29.6090), "submitted"),
)
# The requesters' offices: the city hall compound on 文二路, its depot beside them (fleet/demo.py).
OFFICES = (120.12571, 30.28506)
OFFICES_NAME = "市政府机关大院"


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


def working_day(today: date, working: Mapping[date, bool], step: int) -> date:
    """The nearest working day after (`step` 1) or before (`step` -1) `today`. A day the
    calendar does not cover counts as working from Monday to Friday."""
    day = today + timedelta(days=step)
    while not working.get(day, day.isoweekday() <= 5):
        day += timedelta(days=step)
    return day


def _working_days(session: Session, today: date) -> Mapping[date, bool]:
    # The longest run of non-working days in the Chinese calendar is the 9-day Spring Festival.
    window = (today - timedelta(days=31), today + timedelta(days=31))
    rows = session.execute(
        select(CalendarDay.day, CalendarDay.working).where(CalendarDay.day.between(*window))
    )
    return {day: working for day, working in rows}


def _waiting_purposes(session: Session, requester: Actor, now: datetime) -> set[str]:
    """The demo orders still ahead. One seeded on an earlier day whose window has begun while it
    still waited for approval or for a vehicle is cancelled (audited), so that a later
    `make run` seeds it again on the next working day; what happened to the others is history."""
    demo = [purpose for purpose, *_ in ORDERS]
    waiting: set[str] = set()
    for order in session.scalars(
        select(TripOrder).where(
            TripOrder.purpose.in_(demo), TripOrder.status != OrderStatus.CANCELLED
        )
    ):
        if order.start_at > now:
            waiting.add(order.purpose)
        elif order.status in (OrderStatus.SUBMITTED, OrderStatus.APPROVED):
            service.cancel(
                session=session,
                actor=requester,
                order_id=order.id,
                data=Comment(comment="演示订单已过期，按下一个工作日重新生成 / demo order renewed"),
            )
    return waiting


def _decide_every_step(session: Session, people: Mapping[str, Actor | None], order_id: int) -> None:
    """Approves each step the unit's rules asked for (a holiday or a large car adds the city's):
    the bureau's approver the first, the city's leader the one above, two people as segregation
    of duties asks (the demo's rules are all at level 1, so no chain has a third step)."""
    order = session.get(TripOrder, order_id)
    assert order is not None
    for step in list(order.approval_steps or [{"level": 0}]):
        decider = people["leader"] if step["level"] >= 1 else people["approver"]
        assert decider is not None
        service.decide(
            session=session,
            actor=decider,
            order_id=order_id,
            approve=True,
            data=Comment(),
            distinct_deciders=True,
        )


def seed(
    *,
    session: Session,
    settings: DispatchSettings,
    zone_name: str,
    redis: RedisClient,
    now: datetime,
) -> dict[str, int]:
    added = {"approval rules": 0, "orders": 0}
    root = session.scalar(select(OrgUnit).where(OrgUnit.code == "GOV"))
    people = {n: _actor(session, n) for n in ("requester", "approver", "leader")}
    requester = people["requester"]
    if root is None or None in people.values():
        return added
    assert requester is not None
    have = {(r.condition, r.unit_id) for r in session.scalars(select(ApprovalRule))}
    for condition, param, name in RULES:
        if (condition, root.id) not in have:
            session.add(
                ApprovalRule(unit_id=root.id, condition=condition, param=param, level=1, name=name)
            )
            added["approval rules"] += 1
    session.flush()
    purposes = _waiting_purposes(session, requester, now)
    zone = ZoneInfo(zone_name)
    today = now.astimezone(zone).date()
    working = _working_days(session, today)
    day = working_day(today, working, 1)
    for purpose, passengers, hour, hours, place, (lon, lat), stage in ORDERS:
        if purpose in purposes:
            continue
        start = datetime(day.year, day.month, day.day, hour, tzinfo=zone)
        order = service.create_order(
            session=session,
            actor=requester,
            data=OrderCreate(
                purpose=purpose,
                passengers=passengers,
                start_at=start.astimezone(UTC),
                end_at=(start + timedelta(hours=hours)).astimezone(UTC),
                origin={"type": "Point", "coordinates": list(OFFICES)},
                origin_name=OFFICES_NAME,
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
            _decide_every_step(session, people, order.id)
        added["orders"] += 1
    added["orders"] += _completed(
        session=session,
        settings=settings,
        zone=zone,
        redis=redis,
        day=working_day(today, working, -1),
        now=now,
    )
    return added


COMPLETED = "财政专项资金现场核查"
SITE = (120.06511, 30.30027)  # 蒋墩路 一处项目工地


def _drive(
    session: Session, a: tuple[float, float], b: tuple[float, float], bend: float
) -> LineString:
    """The drive from a to b ((lon, lat)): on the imported roads when they join the two, otherwise
    a line that bends like streets do."""
    path = roads.path_between(session.connection(), (a[1], a[0]), (b[1], b[0]))
    if path is not None and len(path) > 2:
        return LineString([(round(lon, 6), round(lat, 6)) for lat, lon in path])
    points = []
    for i in range(21):
        f = i / 20
        lon = a[0] + (b[0] - a[0]) * f + bend * (f - f * f)
        lat = a[1] + (b[1] - a[1]) * f
        points.append((round(lon, 6), round(lat, 6)))
    return LineString(points)


def _length_m(line: LineString) -> float:
    coords = line.coords
    return sum(haversine_m(y1, x1, y2, x2) for (x1, y1), (x2, y2) in itertools.pairwise(coords))


def _trip(
    session: Session, vehicle_id: int, start: datetime, minutes: int, line: LineString
) -> None:
    coords = list(line.coords)
    metres = _length_m(line)
    session.add(
        Trip(
            vehicle_id=vehicle_id,
            start_at=start,
            end_at=start + timedelta(minutes=minutes),
            start_point=from_shape(Point(coords[0]), srid=4326),
            end_point=from_shape(Point(coords[-1]), srid=4326),
            path=from_shape(line, srid=4326),
            distance_m=metres,
            duration_s=minutes * 60.0,
            max_speed_kmh=68.0,
            avg_speed_kmh=metres / 1000 / (minutes / 60),
        )
    )


FIX_EVERY_S = 15
_FIX = text(
    "INSERT INTO position (vehicle_id, fix_time, device_id, received_at, point, speed_kmh,"
    " heading_deg, ignition) VALUES (:vehicle, :at, :device, :at,"
    " ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), :speed, :heading, true) ON CONFLICT DO NOTHING"
)


def _recorded(
    session: Session,
    vehicle_id: int,
    start: datetime,
    minutes: int,
    line: LineString,
    fast: tuple[datetime, datetime] | None = None,
) -> None:
    """What the tracker reported on a demo trip: a fix every 15 s along the line at the trip's
    average speed (68 km/h while `fast`), so the track can be played back and reviewed."""
    device = session.scalar(
        select(Device.id).where(Device.vehicle_id == vehicle_id).order_by(Device.id).limit(1)
    )
    if device is None:
        return
    utc = start.astimezone(UTC)
    session.execute(text(ingest.partition_sql(datetime(utc.year, utc.month, 1, tzinfo=UTC))))
    steps = minutes * 60 // FIX_EVERY_S
    average = line.length * 111_000 * math.cos(math.radians(line.centroid.y)) / (minutes * 60)
    rows = []
    for i in range(steps + 1):
        at = utc + timedelta(seconds=FIX_EVERY_S * i)
        here = line.interpolate(i / steps, normalized=True)
        ahead = line.interpolate(min(1.0, (i + 1) / steps), normalized=True)
        east = (ahead.x - here.x) * math.cos(math.radians(here.y))
        speeding = fast is not None and fast[0] <= at <= fast[1]
        rows.append(
            {"vehicle": vehicle_id, "device": device, "at": at, "lon": round(here.x, 6),
             "lat": round(here.y, 6), "speed": 68.0 if speeding else round(average * 3.6, 1),
             "heading": round(math.degrees(math.atan2(east, ahead.y - here.y)) % 360, 1)}
        )  # fmt: skip
    session.execute(_FIX, rows)


def _completed(
    *,
    session: Session,
    settings: DispatchSettings,
    zone: ZoneInfo,
    redis: RedisClient,
    day: date,
    now: datetime,
) -> int:
    """The last working day's inspection trip, from request to review, through the services (so
    every step is in the audit log), with the fixes and trips the tracker would have left."""
    if session.scalar(select(TripOrder.id).where(TripOrder.purpose == COMPLETED)):
        return 0
    people = {n: _actor(session, n) for n in ("requester", "approver", "leader", "dispatcher")}
    supervisor = _actor(session, "supervisor")
    vehicle = session.scalar(
        select(Vehicle).where(Vehicle.energy == Energy.PETROL).order_by(Vehicle.id).limit(1)
    )
    driver_user = session.scalar(select(UserAccount.id).where(UserAccount.username == "driver"))
    driver = session.scalar(select(Driver).where(Driver.user_id == driver_user))
    if None in people.values() or supervisor is None or vehicle is None or driver is None:
        return 0
    requester, dispatcher = people["requester"], people["dispatcher"]
    assert requester is not None
    assert dispatcher is not None
    start = datetime(day.year, day.month, day.day, 9, tzinfo=zone)
    # The order is entered after the fact, as a record of that day's trip (after a long holiday
    # that day is more than a week back).
    late = settings.model_copy(
        update={"order_past_grace_min": (now - start).total_seconds() / 60 + 24 * 60}
    )
    order = service.create_order(
        session=session,
        actor=requester,
        data=OrderCreate(
            purpose=COMPLETED,
            passengers=2,
            start_at=start.astimezone(UTC),
            end_at=(start + timedelta(hours=3)).astimezone(UTC),
            origin={"type": "Point", "coordinates": list(OFFICES)},
            origin_name=OFFICES_NAME,
            destinations=[
                {"point": {"type": "Point", "coordinates": list(SITE)}, "name": "西湖区项目工地"}
            ],
        ),
        settings=late,
    )
    service.submit(
        session=session, actor=requester, order_id=order.id, zone=zone, night=(79_200, 21_600)
    )
    _decide_every_step(session, people, order.id)
    service.assign(
        session=session,
        redis=redis,
        actor=dispatcher,
        order_id=order.id,
        data=AssignIn(
            vehicle_id=vehicle.id,
            driver_id=driver.id,
            reason="需运送检测设备，指定后备箱较大的车辆 / equipment needs the larger boot",
        ),
        settings=settings,
    )
    service.start(session=session, actor=dispatcher, order_id=order.id, odometer_km=12_345.0)
    # The overspeed the engine raised on the way there: 75 s at 68 km/h, 15 minutes into it.
    there, back = _drive(session, OFFICES, SITE, 0.01), _drive(session, SITE, OFFICES, -0.008)
    at = (start + timedelta(minutes=25)).astimezone(UTC)
    fast = (at, at + timedelta(seconds=75))
    for minute, minutes, line, speeding in ((10, 35, there, fast), (130, 40, back, None)):
        _trip(session, vehicle.id, start + timedelta(minutes=minute), minutes, line)
        _recorded(session, vehicle.id, start + timedelta(minutes=minute), minutes, line, speeding)
    session.flush()
    driven_km = sum(_length_m(line) for line in (there, back)) / 1000
    odometer_km = round(12_345.0 + driven_km, 1)
    service.finish(session=session, actor=dispatcher, order_id=order.id, odometer_km=odometer_km)
    alert = Alert(
        kind="overspeed",
        severity="medium",
        vehicle_id=vehicle.id,
        unit_id=vehicle.unit_id,
        driver_id=driver.id,
        order_id=order.id,
        started_at=at,
        last_at=at + timedelta(seconds=75),
        ended_at=at + timedelta(seconds=75),
        point=from_shape(there.interpolate(15 / 35, normalized=True), srid=4326),
        measured={"max_speed_kmh": 68.0, "limit_kmh": 60.0, "duration_s": 75},
        thresholds={"speed_limit_kmh": 60.0, "overspeed_duration_s": 60},
    )
    session.add(alert)
    session.flush()
    geofence_service.review_alert(
        session=session,
        actor=supervisor,
        alert_id=alert.id,
        data=ReviewIn(
            decision="dismissed", reason="高架限速路段标志已更新，车速合规 / limit sign changed"
        ),
    )
    return 1
