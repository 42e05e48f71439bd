"""The driver's file (JSON, HTML, PDF) on the demo's completed trip, the rating in the order's
dossier, and the requesters' average ratings per driver and per unit in the statistics."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from redis import Redis
from sqlalchemy import select
from sqlalchemy.orm import Session

from app import demo as app_demo
from dispatch.models import Assignment, TripOrder
from fleet import registry
from fleet.api import get_now
from fleet.auth import Actor
from fleet.db import utcnow
from fleet.demo import DEMO_PASSWORD
from fleet.models import AuditEntry, OrgUnit, Role
from fleet.schemas import UserCreate
from tests.dispatch.conftest import tomorrow
from tests.dispatch.test_api import approved_order, assign
from tests.factories import add_driver
from tests.reports.test_dossier import _login, _pdf_page_ink


@pytest.fixture
def seeded(db: Session, redis: Redis) -> dict[str, Any]:
    app_demo.seed(session=db, redis=redis, zone_name="Asia/Shanghai", now=utcnow())
    db.commit()
    order = db.scalar(select(TripOrder).where(TripOrder.status == "completed"))
    assert order is not None
    held = db.scalar(select(Assignment).where(Assignment.order_id == order.id))
    assert held is not None
    return {"order_id": order.id, "driver_id": held.driver_id, "start_at": order.start_at}


def test_the_drivers_file_holds_assignments_use_alerts_and_ratings(
    client: TestClient, seeded, db: Session
) -> None:
    requester, admin = _login(client, "requester"), _login(client, "admin")
    order_id, driver_id = seeded["order_id"], seeded["driver_id"]
    rated = client.post(
        f"/api/v1/orders/{order_id}/rating",
        json={"stars": 5, "comment": "师傅驾驶平稳"},
        headers=requester,
    )
    assert rated.status_code == 201, rated.text
    url = f"/api/v1/drivers/{driver_id}/file"
    reply = client.get(url, headers=admin)
    assert reply.status_code == 200, reply.text
    file = reply.json()
    assert file["driver"]["name"] == "陈建国"
    assert file["licence"]["class"] == "A1"
    assert {"B1", "B2", "C1"} <= set(file["licence"]["covers"])
    assert [a["order_id"] for a in file["assignments"]] == [order_id]
    assert sum(m["distance_m"] for m in file["distance_by_month"]) > 5_000
    assert sum(m["hours"] for m in file["distance_by_month"]) > 1
    assert [a["kind"] for a in file["alerts"]] == ["overspeed"]
    assert file["alerts"][0]["reviews"][0]["decision"] == "dismissed"
    assert file["alert_outcomes"]["overspeed"]["dismissed"] == 1
    assert file["ratings"]["count"] == 1
    assert file["ratings"]["average"] == 5
    assert file["ratings"]["items"][0]["comment"] == "师傅驾驶平稳"
    page = client.get(url + ".html", headers=admin)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    for shown in ("驾驶证", "陈建国", "A1", "师傅驾驶平稳", "用车评价", "★★★★★"):
        assert shown in page.text, shown
    pdf = client.get(url + ".pdf", headers=admin)
    assert pdf.status_code == 200
    assert pdf.headers["content-type"] == "application/pdf"
    ink, text = _pdf_page_ink(pdf.content)
    assert ink > 0.01
    assert "陈建国" in text
    reads = db.scalars(
        select(AuditEntry.action).where(
            AuditEntry.entity == "driver", AuditEntry.entity_id == str(driver_id)
        )
    ).all()
    assert reads.count("read") == 1
    assert reads.count("export") == 2


def test_the_order_dossier_shows_the_requesters_rating(client: TestClient, seeded) -> None:
    requester, supervisor = _login(client, "requester"), _login(client, "supervisor")
    url = f"/api/v1/orders/{seeded['order_id']}/dossier"
    assert client.get(url, headers=supervisor).json()["rating"] is None
    assert "未评价" in client.get(url + ".html", headers=supervisor).text
    client.post(
        f"/api/v1/orders/{seeded['order_id']}/rating",
        json={"stars": 3, "comment": "晚到十分钟"},
        headers=requester,
    )
    data = client.get(url, headers=supervisor).json()
    assert (data["rating"]["stars"], data["rating"]["comment"]) == (3, "晚到十分钟")
    assert "trip_rating" in {e["entity"] for e in data["audit"]["entries"]}
    html = client.get(url + ".html", headers=supervisor).text
    assert "晚到十分钟" in html
    assert "★★★☆☆" in html


@pytest.mark.parametrize(
    ("expires_on", "state", "flagged"),
    [
        ("2026-12-04", "expired", True),
        ("2027-01-04", "expiring", True),
        ("2027-01-05", "valid", False),
    ],
)
def test_the_drivers_file_flags_a_licence_expired_or_expiring_on_a_pinned_clock(
    client: TestClient, seeded, expires_on: str, state: str, flagged: bool
) -> None:
    client.app.dependency_overrides[get_now] = lambda: datetime(  # type: ignore[attr-defined]
        2026, 12, 5, 2, 0, tzinfo=UTC
    )
    admin = _login(client, "admin")
    url = f"/api/v1/drivers/{seeded['driver_id']}"
    patched = client.patch(url, json={"licence_expires_on": expires_on}, headers=admin)
    assert patched.status_code == 200, patched.text
    licence = client.get(url + "/file", headers=admin).json()["licence"]
    assert (licence["expires_on"], licence["state"], licence["flagged"]) == (
        expires_on,
        state,
        flagged,
    )
    html = client.get(url + "/file.html", headers=admin).text
    assert ("已过期" in html) is (state == "expired")
    assert ("即将到期" in html) is (state == "expiring")


def test_a_drivers_file_outside_the_callers_units_is_404(
    client: TestClient, seeded, db: Session
) -> None:
    """The motor pool's driver is outside the public security bureau's units."""
    dispatcher = _login(client, "dispatcher")  # 市机关事务管理局, above the motor pool
    url = f"/api/v1/drivers/{seeded['driver_id']}/file"
    assert client.get(url, headers=dispatcher).status_code == 200
    gaj = db.scalar(select(OrgUnit).where(OrgUnit.code == "GAJ"))
    assert gaj is not None

    registry.create_user(
        session=db,
        actor=None,
        data=UserCreate(
            username="police-desk",
            password=DEMO_PASSWORD,
            roles=[Role.SUPERVISOR],
            unit_id=gaj.id,
        ),
    )
    db.commit()
    police = _login(client, "police-desk")
    for suffix in ("", ".html", ".pdf"):
        assert client.get(url + suffix, headers=police).status_code == 404, suffix


def test_statistics_average_the_ratings_per_driver_and_per_unit(
    client: TestClient, people, pool, order_body, db: Session, root_unit: OrgUnit, make_unit
) -> None:
    """Two trips of one driver rated 5 and 2, one of another rated 4: the drivers average 3.5
    and 4, their unit (11/3) 3.67; a driver of another unit below has no rating."""
    other_unit = make_unit("T-OTHER", name="下属车队")
    add_driver(db, other_unit, "闲置司机", actor=Actor.system(root_unit))
    db.commit()
    first, second = pool["drivers"]
    sedan, mpv = pool["vehicles"]["sedan"].id, pool["vehicles"]["mpv"].id
    trips = [(1, 2, sedan, first, 5), (6, 7, sedan, first, 2), (1, 2, mpv, second, 4)]
    for start, end, vehicle, driver, stars in trips:
        order_id = approved_order(
            client,
            people,
            order_body,
            start_at=tomorrow(start).isoformat(),
            end_at=tomorrow(end).isoformat(),
        )
        assert assign(client, people["desk"], order_id, vehicle, driver.id).status_code == 200
        for move in ("start", "finish"):
            client.post(f"/api/v1/orders/{order_id}/{move}", headers=people["desk"])
        reply = client.post(
            f"/api/v1/orders/{order_id}/rating", json={"stars": stars}, headers=people["asker"]
        )
        assert reply.status_code == 201, reply.text
    day = tomorrow(0)
    period = {"since": day.isoformat(), "until": (day + timedelta(days=1)).isoformat()}
    drivers = client.get("/api/v1/statistics/drivers", params=period, headers=people["desk"])
    assert drivers.status_code == 200, drivers.text
    by_name = {r["name"]: r for r in drivers.json()["items"]}
    assert (by_name[first.name]["ratings"], by_name[first.name]["average_rating"]) == (2, 3.5)
    assert (by_name[second.name]["ratings"], by_name[second.name]["average_rating"]) == (1, 4.0)
    assert by_name[first.name]["assignments"] == 2
    assert (by_name["闲置司机"]["ratings"], by_name["闲置司机"]["average_rating"]) == (0, None)
    units = client.get("/api/v1/statistics/units", params=period, headers=people["desk"]).json()
    by_unit = {r["unit"]: r for r in units["items"]}
    assert (by_unit[root_unit.name]["ratings"], by_unit[root_unit.name]["average_rating"]) == (
        3,
        3.67,
    )
    before = {"since": (day - timedelta(days=2)).isoformat(), "until": day.isoformat()}
    earlier = client.get("/api/v1/statistics/drivers", params=before, headers=people["desk"])
    assert all(r["ratings"] == 0 for r in earlier.json()["items"])
    csv = client.get(
        "/api/v1/statistics/drivers", params={**period, "format": "csv"}, headers=people["desk"]
    )
    assert "average_rating" in csv.text
    assert "3.5" in csv.text
