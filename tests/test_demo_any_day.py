"""`fleet seed demo` leaves the same believable pool whatever the date and hour: run with its clock
pinned on a Saturday, a public holiday, an adjusted working Saturday and at 23:30 on a working day,
it leaves 2 orders approved and waiting for a vehicle on the next working day (every approval step
decided), 2 submitted, and 1 completed on the last working day with its track and costs."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text

from dispatch.demo import working_day
from fleet import migrate
from fleet.settings import Settings
from geofence.calendar import official_days
from tests.clock import CHINA, PINNED, faketime

CALENDAR = {day: working for day, working, _ in official_days(range(2025, 2028))}


@pytest.mark.parametrize(
    ("today", "after", "before"),
    [
        (dt.date(2026, 12, 5), dt.date(2026, 12, 7), dt.date(2026, 12, 4)),  # Saturday
        (dt.date(2026, 10, 1), dt.date(2026, 10, 8), dt.date(2026, 9, 30)),  # National Day
        (dt.date(2026, 2, 14), dt.date(2026, 2, 24), dt.date(2026, 2, 13)),  # worked Saturday
        (dt.date(2026, 9, 21), dt.date(2026, 9, 22), dt.date(2026, 9, 20)),  # after a worked Sunday
        (dt.date(2026, 12, 31), dt.date(2027, 1, 1), dt.date(2026, 12, 30)),  # 2027 not covered
    ],
)
def test_working_day_follows_the_calendar(today: dt.date, after: dt.date, before: dt.date):
    assert working_day(today, CALENDAR, 1) == after
    assert working_day(today, CALENDAR, -1) == before


def test_a_day_the_calendar_does_not_cover_counts_by_its_weekday():
    assert working_day(dt.date(2031, 1, 3), {}, 1) == dt.date(2031, 1, 6)  # Friday -> Monday
    assert working_day(dt.date(2031, 1, 6), {}, -1) == dt.date(2031, 1, 3)


@pytest.fixture(scope="module")
def migrated(settings: Settings) -> Iterator[Settings]:
    """A migrated database that each pinned day copies (CREATE DATABASE ... TEMPLATE)."""
    base = settings.with_database_name(f"{settings.database.database}_anyday_{os.getpid()}")
    admin = create_engine(settings.database.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{base.database.database}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{base.database.database}"'))
    migrate.upgrade(base)
    yield base
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{base.database.database}" WITH (FORCE)'))
    admin.dispose()


@pytest.mark.parametrize("moment", PINNED.values(), ids=PINNED.keys())
def test_seed_demo_is_the_same_on_any_day_at_any_hour(migrated: Settings, moment: dt.datetime):
    name = f"{migrated.database.database}_{moment:%m%d%H%M}"
    admin = create_engine(migrated.database.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{migrated.database.database}"'))
    url = migrated.database.set(database=name)
    env = {
        **os.environ,
        "FLEET_DATABASE_URL": url.render_as_string(hide_password=False),
        "FLEET_REDIS_URL": migrated.redis_url,
        "FLEET_ENVIRONMENT": "test",
    }
    engine = create_engine(url)
    try:
        seeded = subprocess.run(
            [*faketime(moment), sys.executable, "-m", "fleet.cli", "seed", "demo"],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert seeded.returncode == 0, seeded.stdout + seeded.stderr
        with engine.connect() as conn:
            orders = conn.execute(
                text(
                    "SELECT status, approval, approvals_done, jsonb_array_length(approval_steps),"
                    " start_at, end_at FROM trip_order ORDER BY id"
                )
            ).all()
            days = dict(conn.execute(text("SELECT day, working FROM calendar_day")).all())
            completed = conn.execute(
                text(
                    "SELECT count(DISTINCT t.id), count(DISTINCT c.id) FROM trip_order o"
                    " JOIN assignment a ON a.order_id = o.id"
                    " JOIN trip t ON t.vehicle_id = a.vehicle_id AND t.start_at >= o.start_at"
                    " AND t.end_at <= o.end_at"
                    " JOIN cost_record c ON c.order_id = o.id WHERE o.status = 'completed'"
                )
            ).one()
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    today = moment.astimezone(CHINA).date()
    states = sorted((status, approval) for status, approval, *_ in orders)
    assert states == [
        ("approved", "approved"),
        ("approved", "approved"),
        ("completed", "approved"),
        ("submitted", "pending"),
        ("submitted", "pending"),
    ]
    for status, _, done, steps, start, end in orders:
        if status == "approved":
            assert done == steps  # every step the rules asked for, decided
            assert start.astimezone(CHINA).date() == working_day(today, days, 1)
            assert days[start.astimezone(CHINA).date()] is True
            assert start > moment
        elif status == "completed":
            assert end.astimezone(CHINA).date() == working_day(today, days, -1)
            assert end < moment
        else:
            assert start > moment
    assert completed == (2, 2)  # the trips there and back, the parking and the fuel
