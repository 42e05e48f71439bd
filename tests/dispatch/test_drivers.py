"""Drivers' licences and requesters' ratings through the API: an assignment the licence does not
cover is refused naming `driver_id` (each row of the licence table), an expired or expiring
licence is flagged on the desk's suggestions on a pinned clock, and a completed trip is rated
once, by its requester only."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from fleet.api import get_now
from fleet.auth import Actor
from fleet.models import AuditEntry, OrgUnit, Role
from tests.dispatch.test_api import approved_order, assign, place
from tests.factories import add_driver, add_vehicle

# Each row of the licence table (fleet.licences, the README's): a vehicle, a class that does
# not cover it, and the lowest class that does.
ROWS = [
    ("sedan", 4, "C2", "C1"),
    ("suv", 5, "C2", "C1"),
    ("mpv", 7, "C2", "C1"),
    ("minibus", 9, "C2", "C1"),
    ("minibus", 13, "C1", "B1"),
    ("bus", 32, "C1", "B1"),
    ("bus", 32, "B2", "A1"),
    ("truck", 2, "C1", "B2"),
    ("truck", 2, "B1", "A2"),
]


@pytest.mark.parametrize(("body", "seats", "refused", "accepted"), ROWS)
def test_an_assignment_the_drivers_licence_does_not_cover_is_refused_naming_driver_id(
    client: TestClient,
    people,
    pool,
    order_body,
    db: Session,
    root_unit: OrgUnit,
    body: str,
    seats: int,
    refused: str,
    accepted: str,
) -> None:
    system = Actor.system(root_unit)
    vehicle = add_vehicle(db, root_unit, "浙A·H10001", actor=system, body_class=body, seats=seats)
    unlicensed = add_driver(db, root_unit, "无证", actor=system, licence_class=refused)
    licensed = add_driver(db, root_unit, "有证", actor=system, licence_class=accepted)
    db.commit()
    order_id = approved_order(client, people, order_body, passengers=min(seats, 3))
    reply = assign(client, people["desk"], order_id, vehicle.id, unlicensed.id)
    assert reply.status_code == 422, reply.text
    (problem,) = reply.json()["detail"]
    assert problem["loc"] == ["body", "driver_id"]
    assert refused in problem["msg"]
    assert accepted in problem["msg"]
    reply = assign(client, people["desk"], order_id, vehicle.id, licensed.id)
    assert reply.status_code == 200, reply.text


def test_the_plan_pairs_a_vehicle_only_with_a_driver_licensed_for_it(
    client: TestClient, people, pool, order_body, db: Session, root_unit: OrgUnit, redis
) -> None:
    system = Actor.system(root_unit)
    bus = add_vehicle(db, root_unit, "浙A·H10002", actor=system, body_class="bus", seats=32)
    licensed = add_driver(db, root_unit, "大客车司机", actor=system, licence_class="A1")
    db.commit()
    place(redis, bus.id, 30.2452, 120.2106)
    approved_order(client, people, order_body, passengers=20)
    plan = client.post("/api/v1/dispatch/plan", headers=people["desk"]).json()
    assert [(p["vehicle_id"], p["driver_id"]) for p in plan["pairs"]] == [(bus.id, licensed.id)]


def test_the_desk_flags_a_licence_expired_or_expiring_within_thirty_days(
    client: TestClient, people, pool, order_body, db: Session, root_unit: OrgUnit
) -> None:
    client.app.dependency_overrides[get_now] = lambda: datetime(  # type: ignore[attr-defined]
        2026, 12, 5, 2, 0, tzinfo=UTC
    )
    system = Actor.system(root_unit)
    expiring = {
        "过期": date(2026, 12, 4),
        "将到期": date(2027, 1, 4),
        "有效": date(2027, 1, 5),
    }
    for name, expires_on in expiring.items():
        add_driver(db, root_unit, name, actor=system, licence_expires_on=expires_on)
    db.commit()
    order_id = approved_order(client, people, order_body)
    reply = client.get(f"/api/v1/orders/{order_id}/suggestions", headers=people["desk"])
    assert reply.status_code == 200, reply.text
    states = {
        d["name"]: (d["licence_state"], d["licence_days_left"]) for d in reply.json()["drivers"]
    }
    assert states["过期"] == ("expired", -1)
    assert states["将到期"] == ("expiring", 30)
    assert states["有效"] == ("valid", 31)
    assert states[pool["drivers"][0].name] == ("unknown", None)


def test_a_licence_expiry_is_entered_and_cleared_through_the_registry(
    client: TestClient, make_user, login, root_unit: OrgUnit, db: Session
) -> None:
    make_user("registrar", root_unit, Role.ADMIN)
    admin = login("registrar")
    body = {"name": "赵师傅", "licence_class": "B1", "unit_id": root_unit.id}
    created = client.post(
        "/api/v1/drivers", json={**body, "licence_expires_on": "2031-06-30"}, headers=admin
    )
    assert created.status_code == 201, created.text
    assert created.json()["licence_class"] == "B1"
    assert created.json()["licence_expires_on"] == "2031-06-30"
    driver_id = created.json()["id"]
    cleared = client.patch(
        f"/api/v1/drivers/{driver_id}", json={"licence_expires_on": None}, headers=admin
    )
    assert cleared.json()["licence_expires_on"] is None
    entry = db.scalars(
        select(AuditEntry)
        .where(AuditEntry.entity == "driver", AuditEntry.entity_id == str(driver_id))
        .order_by(AuditEntry.id.desc())
    ).first()
    assert entry is not None
    assert entry.before is not None
    assert entry.before["licence_expires_on"] == "2031-06-30"
    assert entry.after is not None
    assert entry.after["licence_expires_on"] is None
    refused = client.post(
        "/api/v1/drivers", json={**body, "licence_expires_on": "1999-12-31"}, headers=admin
    )
    assert refused.status_code == 422
    assert "licence_expires_on" in refused.text


# ---- ratings ----------------------------------------------------------------------------------


def completed_order(client: TestClient, people, pool, order_body) -> int:
    order_id = approved_order(client, people, order_body)
    reply = assign(
        client, people["desk"], order_id, pool["vehicles"]["sedan"].id, pool["drivers"][0].id
    )
    assert reply.status_code == 200, reply.text
    for move in ("start", "finish"):
        reply = client.post(f"/api/v1/orders/{order_id}/{move}", headers=people["desk"])
        assert reply.status_code == 200, reply.text
    return order_id


def test_the_requester_rates_a_completed_trip_once(
    client: TestClient, people, pool, order_body, db: Session
) -> None:
    moment = datetime(2026, 12, 5, 6, 0, tzinfo=UTC)
    client.app.dependency_overrides[get_now] = lambda: moment  # type: ignore[attr-defined]
    order_id = completed_order(client, people, pool, order_body)
    url = f"/api/v1/orders/{order_id}/rating"
    reply = client.post(
        url, json={"stars": 4, "comment": " 准时，车内整洁 "}, headers=people["asker"]
    )
    assert reply.status_code == 201, reply.text
    assert reply.json() == {
        "order_id": order_id,
        "driver_id": pool["drivers"][0].id,
        "stars": 4,
        "comment": "准时，车内整洁",
        "at": "2026-12-05T06:00:00Z",
    }
    again = client.post(url, json={"stars": 1}, headers=people["asker"])
    assert again.status_code == 409, again.text
    shown = client.get(f"/api/v1/orders/{order_id}", headers=people["asker"]).json()
    assert shown["rating"]["stars"] == 4
    entry = db.scalar(select(AuditEntry).where(AuditEntry.entity == "trip_rating"))
    assert entry is not None
    assert entry.action == "create"
    assert entry.after is not None
    assert entry.after["stars"] == 4


def test_only_the_requester_rates_and_only_a_completed_trip(
    client: TestClient, people, pool, order_body, make_user, login, make_unit
) -> None:
    order_id = approved_order(client, people, order_body)
    url = f"/api/v1/orders/{order_id}/rating"
    assert client.post(url, json={"stars": 5}, headers=people["asker"]).status_code == 409
    order_id = completed_order(client, people, pool, order_body)
    url = f"/api/v1/orders/{order_id}/rating"
    # The dispatcher sees the order but did not ask for it; a requester of another unit does
    # not see it at all.
    assert client.post(url, json={"stars": 5}, headers=people["desk"]).status_code == 403
    make_user("stranger", make_unit("ELSE"), Role.REQUESTER)
    assert client.post(url, json={"stars": 5}, headers=login("stranger")).status_code == 404
    for bad in ({"stars": 0}, {"stars": 6}, {"stars": 3, "comment": "长" * 501}, {}):
        reply = client.post(url, json=bad, headers=people["asker"])
        assert reply.status_code == 422, (bad, reply.text)
    assert client.post(url, json={"stars": 5}, headers=people["asker"]).status_code == 201
