"""Cost records: each fuel check just over and just under its threshold, on facts gathered
from real trips and fixes in PostGIS; a fill linked to trips and shared out to orders."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from geoalchemy2.shape import from_shape
from shapely.geometry import LineString, Point
from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import Range
from sqlalchemy.orm import Session

from costs import service as costs
from costs.models import CostAllocation
from costs.schemas import CostIn
from dispatch.models import Assignment, AssignmentOrder, TripOrder
from dispatch.settings import DispatchSettings
from fleet.auth import Actor
from fleet.models import Driver, OrgUnit, UserAccount, Vehicle
from geofence import service as geofence_service
from geofence.models import Alert
from geofence.settings import GeofenceSettings
from telematics.ingest import partition_sql
from telematics.models import Trip
from tests.factories import add_driver, add_vehicle

ZONE = ZoneInfo("Asia/Shanghai")
HERE = (120.2106, 30.2452)
# A Tuesday that the official calendar has as a working day (08:30-17:30 by default).
WORKDAY = datetime(2026, 3, 10, tzinfo=ZONE)
# When the receipts are entered: the week after, so that every fill of these tests is past.
ENTERED = datetime(2026, 3, 17, 9, tzinfo=ZONE)


def local(day: datetime, hour: int, minute: int = 0) -> datetime:
    return day.replace(hour=hour, minute=minute).astimezone(UTC)


@pytest.fixture
def car(db: Session, root_unit: OrgUnit) -> Vehicle:
    vehicle = add_vehicle(db, root_unit, "浙A·F00001", tank_l=60, fuel_norm_l_100km=8)
    db.commit()
    return vehicle


@pytest.fixture
def setup(db: Session) -> costs.CheckSetup:
    return costs.CheckSetup(
        settings=DispatchSettings(),
        calendar=geofence_service.working_calendar(session=db, settings=GeofenceSettings()),
        zone=ZONE,
    )


@pytest.fixture
def trip(db: Session, car: Vehicle) -> Callable[..., Trip]:
    def make(start: datetime, end: datetime, km: float = 10.0) -> Trip:
        line = LineString([HERE, (HERE[0] + 0.05, HERE[1])])
        row = Trip(
            vehicle_id=car.id,
            start_at=start,
            end_at=end,
            start_point=from_shape(Point(line.coords[0]), srid=4326),
            end_point=from_shape(Point(line.coords[-1]), srid=4326),
            path=from_shape(line, srid=4326),
            distance_m=km * 1000,
            duration_s=(end - start).total_seconds(),
        )
        db.add(row)
        db.flush()
        return row

    return make


@pytest.fixture
def fill(
    db: Session, root_unit: OrgUnit, car: Vehicle, setup: costs.CheckSetup
) -> Callable[..., set[str]]:
    """Enters a fill; returns the kinds of the alerts the checks raised for it."""

    def make(at: datetime, litres: float = 30.0, **extra: Any) -> set[str]:
        record, raised = costs.create(
            session=db,
            actor=Actor.system(root_unit),
            data=CostIn(
                kind="fuel",
                vehicle_id=car.id,
                at=at,
                amount=Decimal(str(round(litres * 7.5, 2))),
                litres=litres,
                **extra,
            ),
            setup=setup,
            now=ENTERED,
        )
        kinds = db.scalars(select(Alert.kind).where(Alert.id.in_(raised))).all()
        make.last = record  # type: ignore[attr-defined]
        return set(kinds)

    return make


def test_fill_larger_than_the_tank_is_flagged_just_over_the_margin(trip, fill) -> None:
    trip(local(WORKDAY, 9), local(WORKDAY, 10))
    assert "fuel_over_capacity" not in fill(local(WORKDAY, 10, 5), litres=62.9)
    assert "fuel_over_capacity" in fill(local(WORKDAY, 10, 10), litres=63.1)  # 60 L + 5 %


def _fix_at(db: Session, vehicle: Vehicle, at: datetime, lon: float, lat: float) -> None:
    db.execute(text(partition_sql(datetime(2026, 3, 1, tzinfo=UTC))))
    db.execute(
        text(
            "INSERT INTO position (vehicle_id, fix_time, device_id, received_at, point)"
            " VALUES (:v, :t, 0, :t, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326))"
        ),
        {"v": vehicle.id, "t": at, "lon": lon, "lat": lat},
    )


def _station(db: Session, metres: float) -> dict[str, Any]:
    """A point `metres` due north of HERE, measured on the spheroid as the check measures."""
    lon, lat = db.execute(
        text(
            "SELECT ST_X(g), ST_Y(g) FROM (SELECT ST_Project("
            "ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)::geography, :m, 0)::geometry AS g) p"
        ),
        {"lon": HERE[0], "lat": HERE[1], "m": metres},
    ).one()
    return {"type": "Point", "coordinates": [lon, lat]}


def test_station_far_from_the_track_is_flagged_past_400_m(db, car, trip, fill) -> None:
    trip(local(WORKDAY, 9), local(WORKDAY, 11))
    for minute in (0, 20):
        _fix_at(db, car, local(WORKDAY, 10, minute), *HERE)
    near = fill(local(WORKDAY, 10, 1), station=_station(db, 395), station_name="中石化 近")
    far = fill(local(WORKDAY, 10, 19), station=_station(db, 405), station_name="中石化 远")
    assert "fuel_location_mismatch" not in near
    assert "fuel_location_mismatch" in far
    alert = db.scalar(select(Alert).where(Alert.kind == "fuel_location_mismatch"))
    assert alert is not None
    assert 404 < alert.measured["distance_m"] < 406
    assert alert.thresholds == {"station_distance_m": 400}


def test_fill_with_no_trip_within_an_hour_is_flagged(trip, fill) -> None:
    trip(local(WORKDAY, 8, 40), local(WORKDAY, 9))
    assert "fuel_no_trip" not in fill(local(WORKDAY, 9, 59))
    assert "fuel_no_trip" in fill(local(WORKDAY, 10, 1))


def test_fill_after_working_hours_without_an_order_is_flagged(trip, fill) -> None:
    trip(local(WORKDAY, 16), local(WORKDAY, 18))
    assert "fuel_off_hours" not in fill(local(WORKDAY, 17, 29))
    assert "fuel_off_hours" in fill(local(WORKDAY, 17, 31))


def test_fill_on_a_weekend_is_flagged(trip, fill) -> None:
    saturday = WORKDAY + timedelta(days=4)
    trip(local(saturday, 10), local(saturday, 11))
    assert "fuel_off_hours" in fill(local(saturday, 10, 30))


def test_third_fill_of_a_day_is_too_frequent(trip, fill) -> None:
    trip(local(WORKDAY, 9), local(WORKDAY, 17))
    assert "fuel_too_frequent" not in fill(local(WORKDAY, 9, 30), litres=10)
    assert "fuel_too_frequent" not in fill(local(WORKDAY, 12), litres=10)
    assert "fuel_too_frequent" in fill(local(WORKDAY, 15), litres=10)


@pytest.mark.parametrize(("litres", "flagged"), [(47.9, False), (48.1, True)])
def test_month_consumption_over_the_norm_is_flagged(trip, fill, litres, flagged) -> None:
    # 500 km in the month against a norm of 8 L/100 km + 20 %: up to 48 L.
    for day in range(5):
        start = local(WORKDAY + timedelta(days=day - 7), 9)
        trip(start, start + timedelta(hours=2), km=100)
    kinds = fill(local(WORKDAY, 9, 30), litres=litres)
    assert ("fuel_consumption_high" in kinds) is flagged


@pytest.mark.parametrize(("receipt_km", "flagged"), [(109.5, False), (110.5, True)])
def test_receipt_odometer_disagreeing_with_the_track_is_flagged(
    trip, fill, receipt_km, flagged
) -> None:
    trip(local(WORKDAY, 8, 45), local(WORKDAY, 9))
    fill(local(WORKDAY, 9, 10), odometer_km=20_000)
    trip(local(WORKDAY, 10), local(WORKDAY, 12), km=100)
    kinds = fill(local(WORKDAY, 12, 10), odometer_km=20_000 + receipt_km)
    assert ("odometer_mismatch" in kinds) is flagged


def test_checks_run_twice_raise_one_alert(db, trip, fill, car, setup) -> None:
    trip(local(WORKDAY, 9), local(WORKDAY, 10))
    fill(local(WORKDAY, 10, 5), litres=70)
    costs.check(session=db, vehicle_id=car.id, since=local(WORKDAY, 0), setup=setup)
    count = db.scalar(
        select(text("count(*)")).select_from(Alert).where(Alert.kind == "fuel_over_capacity")
    )
    assert count == 1


# ---- linking --------------------------------------------------------------------------------


def _order_on(
    db: Session, unit: OrgUnit, vehicle: Vehicle, driver: Driver, start: datetime, hours: float
) -> TripOrder:
    requester = db.scalar(select(UserAccount).limit(1))
    assert requester is not None
    order = TripOrder(
        requester_id=requester.id,
        unit_id=unit.id,
        purpose="检查",
        passengers=1,
        start_at=start,
        end_at=start + timedelta(hours=hours),
        origin=from_shape(Point(HERE), srid=4326),
        origin_name="市民中心",
        destinations=[{"name": "A", "lon": HERE[0] + 0.05, "lat": HERE[1]}],
        status="completed",
    )
    db.add(order)
    db.flush()
    held = Assignment(
        order_id=order.id,
        vehicle_id=vehicle.id,
        driver_id=driver.id,
        period=Range(start, start + timedelta(hours=hours)),
    )
    db.add(held)
    db.flush()
    db.add(AssignmentOrder(assignment_id=held.id, order_id=order.id))  # the order it carries
    db.flush()
    return order


def test_fill_is_shared_between_orders_by_distance(
    db, root_unit, make_user, car, trip, fill
) -> None:
    make_user("asker", root_unit)
    driver = add_driver(db, root_unit, "陈师傅")
    fill(local(WORKDAY, 8), litres=10)  # the fill before: only trips after it count
    first = _order_on(db, root_unit, car, driver, local(WORKDAY, 9), 2)
    second = _order_on(db, root_unit, car, driver, local(WORKDAY, 13), 2)
    trip(local(WORKDAY, 9, 10), local(WORKDAY, 10), km=30)
    trip(local(WORKDAY, 13, 10), local(WORKDAY, 14), km=60)
    trip(local(WORKDAY, 16), local(WORKDAY, 16, 30), km=10)  # no order covered it
    fill(local(WORKDAY, 17), litres=40)  # 300.00 CNY
    record = fill.last  # type: ignore[attr-defined]
    shares = {
        a.order_id: (a.amount, round(a.share, 3))
        for a in db.scalars(select(CostAllocation).where(CostAllocation.cost_id == record.id))
    }
    assert shares == {
        first.id: (Decimal("90.00"), 0.3),
        second.id: (Decimal("180.00"), 0.6),
        None: (Decimal("30.00"), 0.1),
    }
    assert record.trip_id is not None  # the 16:00 trip, the last before the fill


def test_fill_after_hours_within_an_assignment_is_not_flagged(
    db, root_unit, make_user, car, trip, fill
) -> None:
    make_user("asker", root_unit)
    driver = add_driver(db, root_unit, "刘师傅")
    order = _order_on(db, root_unit, car, driver, local(WORKDAY, 18), 3)
    trip(local(WORKDAY, 18, 10), local(WORKDAY, 19, 50), km=40)
    kinds = fill(local(WORKDAY, 20))
    assert "fuel_off_hours" not in kinds
    assert fill.last.order_id == order.id  # type: ignore[attr-defined]
    assert "fuel_off_hours" in fill(local(WORKDAY, 21, 30))  # after the assignment


# ---- electric and plug-in hybrid vehicles -----------------------------------------------------


def _trips(db: Session, vehicle: Vehicle, km_each: float, count: int) -> None:
    """`count` trips of `km_each` km in WORKDAY's month, one a day in the week before it."""
    line = LineString([HERE, (HERE[0] + 0.05, HERE[1])])
    for day in range(count):
        start = local(WORKDAY + timedelta(days=day - 7), 9)
        db.add(
            Trip(
                vehicle_id=vehicle.id,
                start_at=start,
                end_at=start + timedelta(hours=2),
                start_point=from_shape(Point(line.coords[0]), srid=4326),
                end_point=from_shape(Point(line.coords[-1]), srid=4326),
                path=from_shape(line, srid=4326),
                distance_m=km_each * 1000,
                duration_s=7200,
            )
        )
    db.flush()


def _enter(
    db: Session, unit: OrgUnit, vehicle: Vehicle, setup: costs.CheckSetup, at: datetime, **what
) -> set[str]:
    """A fill (`litres=`) or a charge (`kwh=`) by hand; the kinds of the alerts it raised."""
    kind = "charging" if "kwh" in what else "fuel"
    _, raised = costs.create(
        session=db,
        actor=Actor.system(unit),
        data=CostIn(kind=kind, vehicle_id=vehicle.id, at=at, amount=Decimal("100.00"), **what),
        setup=setup,
        now=ENTERED,
    )
    return set(db.scalars(select(Alert.kind).where(Alert.id.in_(raised))))


@pytest.mark.parametrize(("second_kwh", "flagged"), [(39.9, False), (40.1, True)])
def test_electric_car_charging_over_its_energy_norm_is_flagged(
    db, root_unit, setup, second_kwh, flagged
) -> None:
    ev = add_vehicle(
        db, root_unit, "浙A·D00001", energy="bev", battery_kwh=60, energy_norm_kwh_100km=15
    )
    _trips(db, ev, 100, 5)  # 500 km: 90 kWh at 15 kWh/100 km + 20 %
    assert _enter(db, root_unit, ev, setup, local(WORKDAY, 8), kwh=50) == set()
    kinds = _enter(db, root_unit, ev, setup, local(WORKDAY, 12), kwh=second_kwh)
    assert ("energy_consumption_high" in kinds) is flagged
    # A charge is not a fill: no tank, station, trip or hours check of its own.
    assert not kinds - {"energy_consumption_high"}
    if flagged:
        alert = db.scalar(select(Alert).where(Alert.kind == "energy_consumption_high"))
        assert alert is not None
        assert alert.key == f"month:{WORKDAY:%Y-%m}"
        assert alert.measured["kwh"] == pytest.approx(90.1)
        assert alert.measured["norm_kwh_100km"] == 15


def test_plug_in_hybrid_is_checked_on_its_fills_and_charges_together(db, root_unit, setup) -> None:
    phev = add_vehicle(
        db,
        root_unit,
        "浙A·D00002",
        energy="phev",
        tank_l=50,
        battery_kwh=20,
        fuel_norm_l_100km=6.5,
        energy_norm_kwh_100km=20,
    )
    _trips(db, phev, 100, 10)  # 1,000 km: at the norms + 20 %, 1,200 km's worth of energy
    assert _enter(db, root_unit, phev, setup, local(WORKDAY, 8), kwh=100) == set()  # 500 km
    # 45.5 L: 700 km more, 1,200 km in all; the fuel alone (4.55 L/100 km) is under its norm.
    assert "energy_consumption_high" not in _enter(
        db, root_unit, phev, setup, local(WORKDAY, 10), litres=45.5
    )
    kinds = _enter(db, root_unit, phev, setup, local(WORKDAY, 11), kwh=1)
    assert "energy_consumption_high" in kinds
    assert "fuel_consumption_high" not in kinds
    alert = db.scalar(select(Alert).where(Alert.kind == "energy_consumption_high"))
    assert alert is not None
    assert alert.measured["litres"] == 45.5
    assert alert.measured["kwh"] == 101
    assert alert.measured["norm_km"] == pytest.approx(1205.0)


def test_checks_run_again_add_update_and_never_repeat(db, root_unit, setup) -> None:
    ev = add_vehicle(
        db, root_unit, "浙A·D00003", energy="bev", battery_kwh=60, energy_norm_kwh_100km=20
    )
    _trips(db, ev, 100, 5)
    assert _enter(db, root_unit, ev, setup, local(WORKDAY, 8), kwh=100) == set()  # 20 kWh/100km

    def again() -> dict[str, dict[str, int]]:
        found = costs.recheck(session=db, vehicle_id=ev.id, since=None, setup=setup)
        return {what: dict(by_kind) for what, by_kind in found.items()}

    assert again() == {"added": {}, "updated": {}, "unchanged": {}}
    ev.energy_norm_kwh_100km = 15  # the norm lowered: 100 kWh is now 33 % over it
    db.flush()
    assert again() == {"added": {"energy_consumption_high": 1}, "updated": {}, "unchanged": {}}
    assert again() == {"added": {}, "updated": {}, "unchanged": {"energy_consumption_high": 1}}
    ev.energy_norm_kwh_100km = 14
    db.flush()
    assert again() == {"added": {}, "updated": {"energy_consumption_high": 1}, "unchanged": {}}
    alerts = db.scalars(select(Alert).where(Alert.vehicle_id == ev.id)).all()
    assert [(a.kind, a.measured["norm_kwh_100km"]) for a in alerts] == [
        ("energy_consumption_high", 14)
    ]
