"""The next year's working calendar: the warning from 60 days before a year the calendar lacks
(/healthz, the calendar's status for the pages, the worker's daily log line), and a year entered
in one step from the State Council's notice, previewed, then saved and audited. The clock is
pinned: the migrations hold 2004-2026 (what `chinesecalendar` knows), so 2027 is the year
missing, and 2026-11-02 is 60 days before it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from fleet.api import get_now
from fleet.models import AuditEntry, OrgUnit, Role
from geofence import service
from geofence.models import CalendarDay
from geofence.settings import GeofenceSettings
from geofence.worker import warn_calendar_years

CHINA = ZoneInfo("Asia/Shanghai")
NOTICES = Path(__file__).resolve().parents[1] / "data" / "holiday-notices"
INVENTED_2027 = (NOTICES / "invented-2027.txt").read_text(encoding="utf-8")
NOTICE_2026 = (NOTICES / "2026.txt").read_text(encoding="utf-8")
# The last day without a warning, and the first with one, in China's time.
QUIET = datetime(2026, 11, 1, 23, 59, tzinfo=CHINA)
WARNED = datetime(2026, 11, 2, 0, 1, tzinfo=CHINA)


@pytest.fixture
def admin(root_unit: OrgUnit, make_user, login) -> dict[str, str]:
    make_user("calendar-admin", root_unit, Role.ADMIN)
    return login("calendar-admin")


@pytest.fixture
def at(client: TestClient) -> Callable[[datetime], None]:
    """Pins the app's clock (`fleet.api.get_now`) at a moment."""

    def pin(moment: datetime) -> None:
        client.app.dependency_overrides[get_now] = lambda: moment  # type: ignore[attr-defined]

    return pin


def health_warnings(client: TestClient) -> list[dict]:
    reply = client.get("/healthz")
    assert reply.status_code == 200, reply.text
    return reply.json()["warnings"]


def test_no_warning_61_days_before_the_missing_year(client: TestClient, at, admin):
    at(QUIET)
    assert health_warnings(client) == []
    status = client.get("/api/v1/calendar/status", headers=admin).json()
    assert status == {"today": "2026-11-01", "covered_through": 2026, "warnings": []}


def test_a_warning_from_60_days_before_until_the_year_is_entered(
    client: TestClient, at, admin, db: Session
):
    at(WARNED)
    [warning] = health_warnings(client)
    assert warning["code"] == "calendar_year_missing"
    assert (warning["year"], warning["starts_on"], warning["days_left"]) == (2027, "2027-01-01", 60)
    assert warning["missing_days"] == 365
    assert "fleet calendar import FILE --year 2027" in warning["message"]
    status = client.get("/api/v1/calendar/status", headers=admin).json()
    assert status["warnings"] == [warning]

    reply = client.post(
        "/api/v1/calendar/notice", json={"year": 2027, "text": INVENTED_2027}, headers=admin
    )
    assert reply.status_code == 200, reply.text
    assert reply.json() == {
        "year": 2027,
        "created": 365,
        "updated": 0,
        "unchanged": 0,
        "covered": True,
    }
    assert health_warnings(client) == []
    status = client.get("/api/v1/calendar/status", headers=admin).json()
    assert (status["covered_through"], status["warnings"]) == (2027, [])


def test_a_year_that_has_begun_without_its_calendar_is_warned_of_every_day(
    client: TestClient, at, db: Session
):
    at(datetime(2027, 3, 1, 9, 0, tzinfo=CHINA))
    [warning] = health_warnings(client)
    assert (warning["year"], warning["days_left"]) == (2027, 0)
    # The day is China's: 16:30 UTC on 31 October is already 1 November there, still quiet...
    at(datetime(2026, 10, 31, 16, 30, tzinfo=UTC))
    assert health_warnings(client) == []
    # ... and 16:30 UTC on 1 November is 2 November there.
    at(datetime(2026, 11, 1, 16, 30, tzinfo=UTC))
    assert [w["year"] for w in health_warnings(client)] == [2027]


def test_a_year_partly_entered_by_hand_is_still_missing(client: TestClient, at, admin):
    at(WARNED)
    reply = client.put(
        "/api/v1/calendar/2027-01-01", json={"working": False, "note": "元旦"}, headers=admin
    )
    assert reply.status_code == 200
    [warning] = health_warnings(client)
    assert warning["missing_days"] == 364


def test_the_preview_shows_the_whole_year_and_saves_nothing(client: TestClient, admin, db: Session):
    reply = client.post(
        "/api/v1/calendar/notice/preview", json={"year": 2027, "text": INVENTED_2027}, headers=admin
    )
    assert reply.status_code == 200, reply.text
    preview = reply.json()
    assert len(preview["days"]) == 365
    days = {d["day"]: d for d in preview["days"]}
    assert days["2027-02-05"] == {
        "day": "2027-02-05",
        "working": False,
        "note": "春节",
        "change": "new",
        "before": None,
    }
    assert days["2027-02-14"]["working"] is True  # a Sunday worked
    assert days["2027-02-14"]["note"] == "春节调休上班"
    assert [h["name"] for h in preview["holidays"]] == [
        "元旦",
        "春节",
        "清明节",
        "劳动节",
        "端午节",
        "中秋节",
        "国庆节",
    ]
    assert preview["summary"] == {
        # 104 weekend days, the 18 holiday dates that are not on one, less 5 weekend days worked
        "days_off": 104 + 18 - 5,
        "working_days": 365 - 117,
        "holidays": 29,
        "adjusted_working_days": 5,
        "new": 365,
        "changed": 0,
        "same": 0,
    }
    assert [line["line"] for line in preview["ignored"]][:2] == [1, 3]
    assert db.scalar(select(func.count()).where(CalendarDay.day >= date(2027, 1, 1))) == 0


def test_saving_a_year_already_held_changes_only_what_differs_and_audits_each_date(
    client: TestClient, admin, db: Session
):
    """2026 as the migrations seeded it from `chinesecalendar`, with one date changed by hand:
    the notice agrees on every working day; it names 清明节 where the package says 清明."""
    client.put("/api/v1/calendar/2026-06-03", json={"working": False, "note": "x"}, headers=admin)
    version = service.engine_version(session=db)
    preview = client.post(
        "/api/v1/calendar/notice/preview", json={"year": 2026, "text": NOTICE_2026}, headers=admin
    ).json()
    changed = {d["day"]: d for d in preview["days"] if d["change"] == "changed"}
    assert changed["2026-06-03"]["before"] == {
        "day": "2026-06-03",
        "working": False,
        "note": "x",
        "source": "manual",
    }
    assert changed["2026-06-03"]["working"] is True
    assert {d["working"] == d["before"]["working"] for d in changed.values()} == {True, False}
    assert {d["note"] for d in changed.values()} == {"", "清明节", "端午节", "中秋节"}
    entries_before = db.scalar(select(func.count()).select_from(AuditEntry))

    saved = client.post(
        "/api/v1/calendar/notice", json={"year": 2026, "text": NOTICE_2026}, headers=admin
    ).json()
    assert (saved["created"], saved["updated"]) == (0, len(changed))
    assert saved["unchanged"] == 365 - len(changed)
    entries = db.scalars(select(AuditEntry).order_by(AuditEntry.id).offset(entries_before)).all()
    assert len(entries) == len(changed)
    assert {e.entity_id for e in entries} == set(changed)
    june = next(e for e in entries if e.entity_id == "2026-06-03")
    assert (june.action, june.entity, june.actor) == ("update", "calendar_day", "calendar-admin")
    assert june.before["source"] == "manual"
    assert june.after == {"day": "2026-06-03", "working": True, "note": "", "source": "notice"}
    assert db.get(CalendarDay, date(2026, 4, 5)).source == "notice"
    assert db.get(CalendarDay, date(2026, 2, 14)).source == "chinesecalendar"  # as it was
    assert service.engine_version(session=db) != version  # the engines reload

    again = client.post(
        "/api/v1/calendar/notice", json={"year": 2026, "text": NOTICE_2026}, headers=admin
    ).json()
    assert (again["created"], again["updated"], again["unchanged"]) == (0, 0, 365)


def test_a_line_that_cannot_be_read_refuses_the_notice_naming_it(
    client: TestClient, admin, db: Session
):
    text = INVENTED_2027.replace("2月5日（农历除夕、周五）", "2月5日（农历除夕、周四）")
    for path in ("/api/v1/calendar/notice/preview", "/api/v1/calendar/notice"):
        reply = client.post(path, json={"year": 2027, "text": text}, headers=admin)
        assert reply.status_code == 422
        body = reply.json()
        assert body["detail"] == "1 line of the notice cannot be read"
        [problem] = body["problems"]
        assert (problem["line"], problem["field"]) == (9, "text")
        assert "2月5日 is written as 周四 but is a 周五 in 2027" in problem["reason"]
        assert problem["reason"].startswith("「二、春节:")
    reply = client.post(
        "/api/v1/calendar/notice", json={"year": 2027, "text": "没有节假日"}, headers=admin
    )
    assert reply.status_code == 422
    assert reply.json()["detail"][0]["loc"] == ["body", "text"]
    reply = client.post(
        "/api/v1/calendar/notice", json={"year": 2026, "text": INVENTED_2027}, headers=admin
    )
    assert reply.status_code == 422
    assert "this is the notice for 2027, not 2026" in reply.json()["problems"][0]["reason"]
    assert db.scalar(select(func.count()).where(CalendarDay.day >= date(2027, 1, 1))) == 0


def test_only_an_administrator_of_a_root_unit_enters_a_year(
    client: TestClient, root_unit, make_unit, make_user, login
):
    make_user("dispatcher", root_unit, Role.DISPATCHER)
    make_user("unit-admin", make_unit("SUB"), Role.ADMIN)
    body = {"year": 2027, "text": INVENTED_2027}
    for username in ("dispatcher", "unit-admin"):
        for path in ("/api/v1/calendar/notice/preview", "/api/v1/calendar/notice"):
            reply = client.post(path, json=body, headers=login(username))
            assert reply.status_code == 403, (username, path)
    # Everyone signed in sees the warning the pages show.
    assert client.get("/api/v1/calendar/status", headers=login("dispatcher")).status_code == 200
    assert client.get("/api/v1/calendar/status").status_code == 401


def test_the_worker_logs_the_missing_year_daily_from_60_days_before(
    engine: Engine, caplog: pytest.LogCaptureFixture
):
    settings = GeofenceSettings()
    with caplog.at_level(logging.WARNING, logger="fleet.geofence"):
        assert warn_calendar_years(engine, settings=settings, zone=CHINA, now=QUIET) == []
        assert not caplog.records
        [warning] = warn_calendar_years(engine, settings=settings, zone=CHINA, now=WARNED)
    assert warning["year"] == 2027
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert "does not hold 2027 (365 of 365 dates missing): from 2027-01-01, in 60 days" in (
        record.getMessage()
    )


def test_the_warning_reaches_as_far_as_the_setting_says(db: Session):
    today = date(2026, 11, 2)
    assert service.calendar_status(session=db, today=today, warning_days=59)["warnings"] == []
    wide = service.calendar_status(session=db, today=today, warning_days=366 + 365)
    assert [w["year"] for w in wide["warnings"]] == [2027, 2028]
