"""The working calendar as the migrations seed it, through the engine: adjusted working days,
public holidays, unit hours, and dates the calendar does not cover."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from geofence import service
from geofence.calendar import LocalClock, epoch_day
from geofence.engine import Engine
from geofence.fences import FenceSet, VehicleInfo
from geofence.permits import FixedPermits
from geofence.rules.base import Fix, Thresholds
from geofence.settings import GeofenceSettings

ZONE = ZoneInfo("Asia/Shanghai")
CAR = VehicleInfo(id=1, unit_id=10, unit_path="1/10/", category="general")
RESCUE = VehicleInfo(id=2, unit_id=10, unit_path="1/10/", category="emergency")


def drive_at(local: datetime) -> list[Fix]:
    """Ten minutes at 40 km/h, a fix every 10 s, starting at a local time in Beijing."""
    start = local.replace(tzinfo=ZONE).timestamp()
    return [Fix(start + 10 * i, 30.25 + i * 0.001, 120.17, 40.0, True) for i in range(61)]


def kinds(db: Session, local: datetime, vehicle: VehicleInfo = CAR) -> set[str]:
    engine = Engine(
        fences=FenceSet([]),
        calendar=service.working_calendar(session=db, settings=GeofenceSettings()),
        clock=LocalClock(ZONE),
        thresholds=Thresholds(),
        permits=FixedPermits(),
    )
    outcome = engine.run({vehicle.id: drive_at(local)}, {}, {vehicle.id: vehicle})
    return {a.event.kind for a in outcome.alerts} | {
        f"uncovered:{d}" for d in sorted(outcome.uncovered_days)
    }


def test_a_drive_on_an_adjusted_working_saturday_is_not_off_hours(db: Session):
    assert kinds(db, datetime(2026, 2, 14, 10, 0)) == {"no_order"}  # working time, no order


def test_a_drive_on_a_weekday_public_holiday_is_off_hours(db: Session):
    assert kinds(db, datetime(2026, 10, 1, 10, 0)) == {"off_hours"}  # National Day, a Thursday


def test_after_the_unit_working_day_is_off_hours_unless_exempt(db: Session):
    assert kinds(db, datetime(2026, 11, 23, 17, 20)) == {"no_order"}
    assert kinds(db, datetime(2026, 11, 23, 18, 0)) == {"off_hours"}
    assert kinds(db, datetime(2026, 11, 23, 18, 0), RESCUE) == set()  # exempt after hours


def test_a_date_the_calendar_does_not_cover_is_reported_not_guessed(db: Session):
    found = kinds(db, datetime(2031, 3, 3, 10, 0))
    assert found == {f"uncovered:{epoch_day(datetime(2031, 3, 3).date())}"}


def test_unit_working_hours_apply_to_its_vehicles(db: Session, root_unit):
    from fleet.auth import Actor
    from geofence.schemas import WorkingHoursIn

    service.set_working_hours(
        session=db,
        actor=Actor.system(root_unit),
        unit_id=root_unit.id,
        data=WorkingHoursIn(start="09:00", end="18:30"),
    )
    car = VehicleInfo(id=3, unit_id=root_unit.id, unit_path=root_unit.path, category="general")
    assert kinds(db, datetime(2026, 11, 23, 18, 0), car) == {"no_order"}
    assert kinds(db, datetime(2026, 11, 23, 8, 40), car) == {"off_hours"}


def test_an_edit_stamped_before_the_newest_row_still_changes_the_engine_version(
    db: Session, root_unit
):
    """The app stamps an edit by its own clock, which may be behind the database server's that
    stamped other rows (the migrations' calendar): the engine must still see the change."""
    from datetime import date

    from sqlalchemy import text

    from fleet.auth import Actor
    from geofence.schemas import CalendarDayIn

    db.execute(
        text("UPDATE calendar_day SET updated_at = now() + interval '1 day' WHERE day = :d"),
        {"d": date(2026, 6, 1)},
    )
    before = service.engine_version(session=db)
    service.set_calendar_day(
        session=db,
        actor=Actor.system(root_unit),
        day=date(2026, 6, 3),
        data=CalendarDayIn(working=False, note="机关调休"),
    )
    assert service.engine_version(session=db) != before
