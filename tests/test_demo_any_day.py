"""`fleet seed demo` leaves the same believable pool whatever the date and hour: run with its clock
pinned on a Saturday, a public holiday, an adjusted working Saturday and at 23:30 on a working day,
it leaves 2 orders approved and waiting for a vehicle on the next working day (every approval step
decided), 2 submitted, and 1 completed on the last working day with its track and costs."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, text

from dispatch.demo import working_day
from fleet import migrate
from fleet.settings import Settings
from geofence.calendar import official_days
from tests.clock import CHINA, PINNED, SATURDAY, faketime

pytestmark = pytest.mark.slow

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
    admin = create_engine(
        settings.owner_database.set(database="postgres"), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{base.database.database}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{base.database.database}"'))
    migrate.upgrade(base)
    yield base
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{base.database.database}" WITH (FORCE)'))
    admin.dispose()


@dataclass
class Copy:
    """A database copied from the migrated one, and the environment of a `fleet` run on it."""

    engine: Engine
    env: dict[str, str]

    def seed(self, moment: dt.datetime) -> None:
        seeded = subprocess.run(
            [*faketime(moment), sys.executable, "-m", "app.cli", "seed", "demo"],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert seeded.returncode == 0, seeded.stdout + seeded.stderr


@pytest.fixture
def copy(migrated: Settings, request: pytest.FixtureRequest) -> Iterator[Copy]:
    name = f"{migrated.database.database}_{zlib.crc32(request.node.name.encode()):08x}"
    admin = create_engine(
        migrated.owner_database.set(database="postgres"), isolation_level="AUTOCOMMIT"
    )
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
    yield Copy(engine, env)
    engine.dispose()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _orders(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                text(
                    "SELECT status, approval, approvals_done, jsonb_array_length(approval_steps),"
                    " start_at, end_at FROM trip_order ORDER BY id"
                )
            )
        )


def _calendar(engine: Engine) -> dict[dt.date, bool]:
    with engine.connect() as conn:
        return dict(conn.execute(text("SELECT day, working FROM calendar_day")).all())


@pytest.mark.parametrize("moment", PINNED.values(), ids=PINNED.keys())
def test_seed_demo_is_the_same_on_any_day_at_any_hour(copy: Copy, moment: dt.datetime):
    copy.seed(moment)
    orders, days = _orders(copy.engine), _calendar(copy.engine)
    with copy.engine.connect() as conn:
        completed = conn.execute(
            text(
                "SELECT count(DISTINCT t.id), count(DISTINCT c.id) FROM trip_order o"
                " JOIN assignment a ON a.order_id = o.id"
                " JOIN trip t ON t.vehicle_id = a.vehicle_id AND t.start_at >= o.start_at"
                " AND t.end_at <= o.end_at"
                " JOIN cost_record c ON c.order_id = o.id WHERE o.status = 'completed'"
            )
        ).one()
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


def test_seed_demo_a_week_later_renews_the_orders_whose_day_has_passed(copy: Copy):
    copy.seed(SATURDAY)
    later = SATURDAY + dt.timedelta(days=4)  # Wednesday 2026-12-09
    copy.seed(later)
    orders = _orders(copy.engine)
    states = sorted(status for status, *_ in orders)
    assert states == ["approved"] * 2 + ["cancelled"] * 4 + ["completed"] + ["submitted"] * 2
    waiting = [start for status, _, _, _, start, _ in orders if status in ("approved", "submitted")]
    assert {start.astimezone(CHINA).date() for start in waiting} == {dt.date(2026, 12, 10)}
    with copy.engine.connect() as conn:
        cancels = conn.scalar(
            text(
                "SELECT count(*) FROM audit_entry WHERE entity = 'trip_order' AND action = 'cancel'"
            )
        )
    assert cancels == 4
    copy.seed(later)  # and again the same day: nothing more
    assert len(_orders(copy.engine)) == len(orders)
