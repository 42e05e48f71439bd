"""The API of vehicles that should not move: a workshop fence drawn like any other, a status
change that the engines notice, and the two alert kinds in the queue, its filter and review."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from fleet.models import OrgUnit, Role
from geofence import service
from geofence.models import Alert
from tests.factories import add_vehicle

STARTED = datetime(2026, 11, 21, 14, 0, tzinfo=UTC)


@pytest.fixture
def admin(root_unit: OrgUnit, make_user, login) -> dict[str, str]:
    make_user("status-admin", root_unit, Role.ADMIN)
    return login("status-admin")


@pytest.fixture
def supervisor(root_unit: OrgUnit, make_user, login) -> dict[str, str]:
    make_user("status-supervisor", root_unit, Role.SUPERVISOR)
    return login("status-supervisor")


def test_a_workshop_fence_is_drawn_and_listed_by_its_kind(client: TestClient, admin):
    body = {
        "name": "定点维修厂",
        "kind": "workshop",
        "geometry": {"type": "Point", "coordinates": [120.2, 30.26]},
        "radius_m": 150,
    }
    reply = client.post("/api/v1/fences", json=body, headers=admin)
    assert reply.status_code == 201, reply.text
    listed = client.get("/api/v1/fences?kind=workshop", headers=admin).json()["features"]
    assert [f["properties"]["name"] for f in listed] == ["定点维修厂"]
    assert client.get("/api/v1/fences?kind=garage", headers=admin).status_code == 422


def test_sealing_a_vehicle_changes_the_engine_version(
    client: TestClient, admin, db: Session, root_unit
):
    vehicle = add_vehicle(db, root_unit, "浙A·F0001")
    db.commit()
    before = service.engine_version(session=db)
    reply = client.patch(f"/api/v1/vehicles/{vehicle.id}", json={"status": "sealed"}, headers=admin)
    assert reply.status_code == 200, reply.text
    sealed = service.engine_version(session=db)
    assert sealed != before  # the workers read their vehicles again
    client.patch(f"/api/v1/vehicles/{vehicle.id}", json={"status": "maintenance"}, headers=admin)
    assert service.engine_version(session=db) not in (before, sealed)
    client.patch(f"/api/v1/vehicles/{vehicle.id}", json={"status": "active"}, headers=admin)
    assert service.engine_version(session=db) == before


@pytest.fixture
def moved(db: Session, root_unit: OrgUnit) -> tuple[Alert, Alert]:
    sealed = add_vehicle(db, root_unit, "浙A·F0002", status="sealed")
    repaired = add_vehicle(db, root_unit, "浙A·F0003", status="maintenance")
    rows = (
        Alert(
            kind="sealed_vehicle_moving",
            severity="critical",
            vehicle_id=sealed.id,
            unit_id=root_unit.id,
            started_at=STARTED,
            last_at=STARTED + timedelta(minutes=5),
            measured={"distance_m": 2200.0, "duration_s": 300.0},
            thresholds={"movement_min_distance_m": 500},
        ),
        Alert(
            kind="maintenance_vehicle_moving",
            severity="high",
            vehicle_id=repaired.id,
            unit_id=root_unit.id,
            started_at=STARTED,
            last_at=STARTED + timedelta(minutes=3),
            measured={"distance_m": 900.0, "duration_s": 180.0},
            thresholds={"movement_min_distance_m": 500},
        ),
    )
    db.add_all(rows)
    db.commit()
    return rows


def test_the_queue_filters_and_reviews_the_two_kinds(client: TestClient, supervisor, moved):
    sealed, repaired = moved
    for alert, plate in ((sealed, "浙A·F0002"), (repaired, "浙A·F0003")):
        page = client.get(f"/api/v1/alerts?kind={alert.kind}", headers=supervisor).json()
        assert [(a["id"], a["plate"], a["severity"]) for a in page["items"]] == [
            (alert.id, plate, alert.severity)
        ]
    url = f"/api/v1/alerts/{sealed.id}/review"
    assert client.post(url, json={"decision": "dismissed"}, headers=supervisor).status_code == 422
    reply = client.post(url, json={"decision": "confirmed"}, headers=supervisor)
    assert reply.json()["review"] == "confirmed"
    assert (
        client.post(
            url, json={"decision": "dismissed", "reason": "x"}, headers=supervisor
        ).status_code
        == 409
    )
