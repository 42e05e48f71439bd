"""The geofence API: fences (GeoJSON in and out, clear 422s), the working calendar, working hours,
the alert queue and review."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fleet.models import AuditEntry, OrgUnit, Role
from geofence.models import Alert
from tests.factories import add_vehicle

SQUARE = [[120.1, 30.2], [120.2, 30.2], [120.2, 30.3], [120.1, 30.3], [120.1, 30.2]]


@pytest.fixture
def admin(root_unit: OrgUnit, make_user, login) -> dict[str, str]:
    make_user("fence-admin", root_unit, Role.ADMIN)
    return login("fence-admin")


@pytest.fixture
def supervisor(root_unit: OrgUnit, make_user, login) -> dict[str, str]:
    make_user("supervisor", root_unit, Role.SUPERVISOR)
    return login("supervisor")


def fence(**overrides: Any) -> dict[str, Any]:
    return {
        "name": "市域",
        "kind": "permitted_region",
        "geometry": {"type": "Polygon", "coordinates": [SQUARE]},
        **overrides,
    }


def test_create_fences_of_each_shape(client: TestClient, admin):
    polygon = client.post("/api/v1/fences", json=fence(), headers=admin)
    assert polygon.status_code == 201, polygon.text
    assert polygon.json()["properties"]["shape"] == "polygon"
    circle = client.post(
        "/api/v1/fences",
        json=fence(
            name="会所",
            kind="prohibited",
            geometry={"type": "Point", "coordinates": [120.15, 30.25]},
            radius_m=200,
            schedule={"days": [6, 7], "start": "18:00", "end": "02:00"},
        ),
        headers=admin,
    )
    assert circle.status_code == 201, circle.text
    area = circle.json()["properties"]["area"]
    assert area["type"] == "MultiPolygon"
    assert len(area["coordinates"][0][0]) == 65
    corridor = client.post(
        "/api/v1/fences",
        json=fence(
            name="路线",
            kind="custom",
            geometry={"type": "LineString", "coordinates": [[120.1, 30.2], [120.2, 30.3]]},
            width_m=500,
            speed_limit_kmh=60,
        ),
        headers=admin,
    )
    assert corridor.status_code == 201, corridor.text
    listed = client.get("/api/v1/fences", headers=admin).json()
    assert [f["properties"]["shape"] for f in listed["features"]] == [
        "polygon",
        "circle",
        "corridor",
    ]
    only = client.get("/api/v1/fences?kind=prohibited", headers=admin).json()["features"]
    assert [f["properties"]["name"] for f in only] == ["会所"]


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        (fence(geometry={"type": "Polygon", "coordinates": [SQUARE[:-1]]}), "geometry", "closed"),
        (
            fence(
                geometry={
                    "type": "Polygon",
                    "coordinates": [[[120, 30], [121, 31], [121, 30], [120, 31], [120, 30]]],
                }
            ),
            "geometry",
            "not valid",
        ),
        (fence(geometry={"type": "Point", "coordinates": [120, 30]}), "radius_m", "radius_m"),
        (
            fence(geometry={"type": "Point", "coordinates": [120, 30]}, radius_m=0.5),
            "radius_m",
            "between",
        ),
        (
            fence(geometry={"type": "LineString", "coordinates": [[120, 30], [120, 30]]}),
            "geometry",
            "distinct",
        ),
        (fence(geometry={"type": "Point", "coordinates": [200, 30]}, radius_m=50), "geometry", ""),
        (fence(radius_m=50), "radius_m", "circles"),
        (fence(geometry={"type": "GeometryCollection", "geometries": []}), "geometry", ""),
        (fence(kind="brothel"), "kind", ""),
        (fence(schedule={"days": [], "start": "08:00", "end": "09:00"}), "schedule", ""),
    ],
)
def test_bad_fences_get_a_clear_422(client: TestClient, admin, body, field, words):
    reply = client.post("/api/v1/fences", json=body, headers=admin)
    assert reply.status_code == 422, reply.text
    detail = reply.json()["detail"][0]
    assert field in [str(p) for p in detail["loc"]]
    assert words in detail["msg"]


def test_only_administrators_write_fences(client: TestClient, root_unit, make_user, login):
    make_user("dispatch", root_unit, Role.DISPATCHER)
    headers = login("dispatch")
    assert client.post("/api/v1/fences", json=fence(), headers=headers).status_code == 403
    assert client.get("/api/v1/fences", headers=headers).status_code == 200


def test_update_and_delete_are_audited(client: TestClient, admin, db: Session):
    created = client.post("/api/v1/fences", json=fence(), headers=admin).json()
    fence_id = created["id"]
    changed = client.patch(
        f"/api/v1/fences/{fence_id}",
        json={"geometry": {"type": "Point", "coordinates": [120.15, 30.25]}, "radius_m": 300},
        headers=admin,
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["properties"]["shape"] == "circle"
    assert client.delete(f"/api/v1/fences/{fence_id}", headers=admin).status_code == 204
    assert client.get(f"/api/v1/fences/{fence_id}", headers=admin).status_code == 404
    actions = db.scalars(
        select(AuditEntry.action).where(AuditEntry.entity == "fence").order_by(AuditEntry.id)
    ).all()
    assert actions == ["create", "update", "delete"]


def test_import_is_all_or_nothing_and_names_each_bad_feature(client: TestClient, admin):
    good = {"type": "Feature", "properties": fence(), "geometry": fence()["geometry"]}
    bad_ring = {
        "type": "Feature",
        "properties": {"name": "坏", "kind": "depot"},
        "geometry": {"type": "Polygon", "coordinates": [SQUARE[:-1]]},
    }
    no_kind = {"type": "Feature", "properties": {"name": "无类"}, "geometry": fence()["geometry"]}
    reply = client.post(
        "/api/v1/fences/import",
        json={"type": "FeatureCollection", "features": [good, bad_ring, no_kind]},
        headers=admin,
    )
    assert reply.status_code == 422
    message = reply.json()["detail"][0]["msg"]
    assert "feature 1" in message
    assert "feature 2" in message
    assert "feature 0" not in message
    assert client.get("/api/v1/fences", headers=admin).json()["features"] == []
    reply = client.post(
        "/api/v1/fences/import",
        json={"type": "FeatureCollection", "features": [good, good]},
        headers=admin,
    )
    assert reply.status_code == 201
    assert reply.json()["imported"] == 2


# ---- calendar and working hours ---------------------------------------------------------------


def test_calendar_knows_adjusted_working_days_and_holidays(client: TestClient, admin):
    year = client.get("/api/v1/calendar?year=2026", headers=admin).json()
    assert year["covered"] is True
    days = {d["day"]: d for d in year["days"]}
    assert days["2026-02-14"]["working"] is True  # a Saturday worked for the Spring Festival
    assert "调休" in days["2026-02-14"]["note"]
    assert days["2026-10-01"]["working"] is False  # National Day, a Thursday
    assert days["2026-11-23"]["working"] is True
    assert days["2026-11-22"]["working"] is False  # an ordinary Sunday


def test_a_year_not_published_yet_is_reported_and_enterable(client: TestClient, admin, db):
    year = client.get("/api/v1/calendar?year=2031", headers=admin).json()
    assert year["covered"] is False
    assert year["missing_days"] == 365
    reply = client.put(
        "/api/v1/calendar/2031-01-01", json={"working": False, "note": "元旦"}, headers=admin
    )
    assert reply.status_code == 200
    assert reply.json()["source"] == "manual"
    year = client.get("/api/v1/calendar?year=2031", headers=admin).json()
    assert year["missing_days"] == 364
    assert db.scalar(
        select(func.count()).where(
            AuditEntry.entity == "calendar_day", AuditEntry.entity_id == "2031-01-01"
        )
    )


def test_working_hours_are_inherited_and_checked(client: TestClient, admin, root_unit, make_unit):
    child = make_unit("CHILD", root_unit)
    assert client.get(f"/api/v1/units/{child.id}/working-hours", headers=admin).json() == {
        "unit_id": child.id,
        "start": "08:30",
        "end": "17:30",
        "inherited": True,
    }
    reply = client.put(
        f"/api/v1/units/{root_unit.id}/working-hours",
        json={"start": "09:00", "end": "18:00"},
        headers=admin,
    )
    assert reply.status_code == 200
    got = client.get(f"/api/v1/units/{child.id}/working-hours", headers=admin).json()
    assert (got["start"], got["end"], got["inherited"]) == ("09:00", "18:00", True)
    reply = client.put(
        f"/api/v1/units/{child.id}/working-hours",
        json={"start": "18:00", "end": "09:00"},
        headers=admin,
    )
    assert reply.status_code == 422


# ---- alerts -----------------------------------------------------------------------------------


@pytest.fixture
def alert(db: Session, root_unit: OrgUnit) -> Alert:
    vehicle = add_vehicle(db, root_unit, "浙A·12345")
    started = datetime(2026, 11, 21, 14, 0, tzinfo=UTC)
    row = Alert(
        kind="off_hours",
        key="",
        severity="high",
        vehicle_id=vehicle.id,
        unit_id=root_unit.id,
        started_at=started,
        last_at=started + timedelta(minutes=20),
        ended_at=started + timedelta(minutes=20),
        measured={"distance_m": 12000.0, "duration_s": 1200.0},
        thresholds={"movement_min_distance_m": 500},
    )
    db.add(row)
    db.commit()
    return row


def test_alert_queue_filters(client: TestClient, supervisor, alert):
    items = client.get("/api/v1/alerts?status=pending", headers=supervisor).json()["items"]
    assert [a["id"] for a in items] == [alert.id]
    assert items[0]["plate"] == "浙A·12345"
    assert client.get("/api/v1/alerts?status=open", headers=supervisor).json()["total"] == 0
    assert client.get("/api/v1/alerts?kind=overspeed", headers=supervisor).json()["total"] == 0
    assert client.get("/api/v1/alerts?kind=nonsense", headers=supervisor).status_code == 422
    assert client.get("/api/v1/alerts?status=nonsense", headers=supervisor).status_code == 422
    late = "2026-11-21T15:00:00Z"
    assert client.get(f"/api/v1/alerts?start={late}", headers=supervisor).json()["total"] == 0


def test_alert_detail_carries_its_evidence(client: TestClient, supervisor, alert):
    detail = client.get(f"/api/v1/alerts/{alert.id}", headers=supervisor).json()
    assert detail["measured"] == {"distance_m": 12000.0, "duration_s": 1200.0}
    assert detail["evidence"]["thresholds"] == {"movement_min_distance_m": 500}
    assert detail["evidence"]["points"] == []  # no fixes stored in this test
    assert detail["reviews"] == []


def test_dismissal_needs_a_reason_and_decisions_are_audited(
    client: TestClient, supervisor, alert, db: Session
):
    url = f"/api/v1/alerts/{alert.id}/review"
    reply = client.post(url, json={"decision": "dismissed"}, headers=supervisor)
    assert reply.status_code == 422
    assert reply.json()["detail"][0]["loc"][-1] == "reason"
    reply = client.post(url, json={"decision": "dismissed", "reason": "   "}, headers=supervisor)
    assert reply.status_code == 422
    reply = client.post(url, json={"decision": "escalated"}, headers=supervisor)
    assert reply.json()["review"] == "escalated"
    reply = client.post(
        url, json={"decision": "dismissed", "reason": "节日值班，有口头批准"}, headers=supervisor
    )
    assert reply.status_code == 200
    assert client.post(url, json={"decision": "confirmed"}, headers=supervisor).status_code == 409
    assert client.post(url, json={"decision": "maybe"}, headers=supervisor).status_code == 422
    detail = client.get(f"/api/v1/alerts/{alert.id}", headers=supervisor).json()
    assert [(r["decision"], r["by"]) for r in detail["reviews"]] == [
        ("escalated", "supervisor"),
        ("dismissed", "supervisor"),
    ]
    audited = db.scalars(
        select(AuditEntry.after).where(AuditEntry.entity == "alert").order_by(AuditEntry.id)
    ).all()
    assert [a["review"] for a in audited] == ["escalated", "dismissed"]


def test_requesters_cannot_see_or_review_alerts(
    client: TestClient, root_unit, make_user, login, alert
):
    make_user("asker", root_unit, Role.REQUESTER)
    headers = login("asker")
    assert client.get("/api/v1/alerts", headers=headers).status_code == 403
    reply = client.post(
        f"/api/v1/alerts/{alert.id}/review", json={"decision": "confirmed"}, headers=headers
    )
    assert reply.status_code == 403


def test_alerts_of_other_units_are_not_found(
    client: TestClient, alert, make_unit, make_user, login
):
    other = make_unit("OTHER")
    make_user("other-supervisor", other, Role.SUPERVISOR)
    headers = login("other-supervisor")
    assert client.get(f"/api/v1/alerts/{alert.id}", headers=headers).status_code == 404
    assert client.get("/api/v1/alerts", headers=headers).json()["total"] == 0
