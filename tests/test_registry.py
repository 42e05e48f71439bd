"""Registry API: creation contracts, clear 422/409 errors naming the field, nothing half-written."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fleet.models import AuditEntry, OrgUnit, Role, Vehicle


@pytest.fixture
def admin(client: TestClient, root_unit: OrgUnit, make_user, login) -> dict[str, str]:
    make_user("root-admin", root_unit, Role.ADMIN)
    return login("root-admin")


def vehicle_body(unit: OrgUnit | int, **overrides: Any) -> dict[str, Any]:
    body = {
        "plate": "浙A·D12345",
        "category": "general",
        "body_class": "sedan",
        "seats": 4,
        "energy": "bev",
        "unit_id": unit if isinstance(unit, int) else unit.id,
        "battery_kwh": 60,
        "depot": {"type": "Point", "coordinates": [120.21, 30.25]},
    }
    body.update(overrides)
    return body


def counts(db: Session) -> tuple[int, int]:
    return (
        db.scalar(select(func.count()).select_from(Vehicle)) or 0,
        db.scalar(select(func.count()).select_from(AuditEntry)) or 0,
    )


def field_of(reply: Any) -> str:
    return reply.json()["detail"][0]["loc"][-1]


def test_create_vehicle_answers_201_with_the_object(client, admin, root_unit):
    reply = client.post("/api/v1/vehicles", json=vehicle_body(root_unit), headers=admin)
    assert reply.status_code == 201, reply.text
    body = reply.json()
    assert body["id"] > 0
    assert body["plate"] == "浙A·D12345"
    assert body["new_energy"] is True
    assert body["status"] == "active"
    assert body["depot"] == {"type": "Point", "coordinates": [120.21, 30.25]}
    again = client.get(f"/api/v1/vehicles/{body['id']}", headers=admin)
    assert again.json() == body


def test_plate_is_normalised(client, admin, root_unit):
    reply = client.post(
        "/api/v1/vehicles", json=vehicle_body(root_unit, plate="浙a d12345"), headers=admin
    )
    assert reply.json()["plate"] == "浙A·D12345"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"category": "limousine"}, "category"),
        ({"seats": 0}, "seats"),
        ({"seats": 61}, "seats"),
        ({"plate": "ABC-123"}, "plate"),
        ({"energy": "steam"}, "energy"),
        ({"depot": {"type": "Point", "coordinates": [200, 30]}}, "depot"),
        ({"tank_l": 50}, "tank_l"),  # a BEV has no tank
    ],
)
def test_bad_vehicle_fields_get_422_naming_the_field(
    client, admin, root_unit, db, overrides, field
):
    before = counts(db)
    reply = client.post(
        "/api/v1/vehicles", json=vehicle_body(root_unit, **overrides), headers=admin
    )
    assert reply.status_code == 422, reply.text
    assert field_of(reply) == field
    assert counts(db) == before


def test_unknown_unit_is_422_on_unit_id(client, admin, root_unit, db):
    before = counts(db)
    reply = client.post(
        "/api/v1/vehicles", json=vehicle_body(root_unit, unit_id=999999), headers=admin
    )
    assert reply.status_code == 422
    assert field_of(reply) == "unit_id"
    assert counts(db) == before


def test_duplicate_plate_is_409_and_writes_nothing(client, admin, root_unit, db):
    assert (
        client.post("/api/v1/vehicles", json=vehicle_body(root_unit), headers=admin).status_code
        == 201
    )
    before = counts(db)
    reply = client.post(
        "/api/v1/vehicles", json=vehicle_body(root_unit, plate="浙A·D 12345"), headers=admin
    )
    assert reply.status_code == 409
    assert field_of(reply) == "plate"
    assert "already exists" in reply.json()["detail"][0]["msg"]
    assert counts(db) == before


def test_malformed_json_is_422(client, admin):
    reply = client.post(
        "/api/v1/vehicles",
        content='{"plate": "浙A·D12345", '.encode(),
        headers={**admin, "Content-Type": "application/json"},
    )
    assert reply.status_code == 422
    assert reply.json()["detail"][0]["type"] == "json_invalid"


def test_duplicate_device_identifier_is_409(client, admin, root_unit):
    vehicle = client.post("/api/v1/vehicles", json=vehicle_body(root_unit), headers=admin).json()
    body = {"protocol": "jt808", "identifier": "013912345678", "vehicle_id": vehicle["id"]}
    first = client.post("/api/v1/devices", json=body, headers=admin)
    assert first.status_code == 201, first.text
    assert first.json()["identifier"] == "13912345678"
    assert first.json()["unit_id"] == root_unit.id
    # The same terminal written with the 2019 header's 20 digits is the same device.
    dup = client.post(
        "/api/v1/devices", json={**body, "identifier": "00000000013912345678"}, headers=admin
    )
    assert dup.status_code == 409
    assert field_of(dup) == "identifier"
    # The same identifier under another protocol is a different device.
    other = client.post(
        "/api/v1/devices",
        json={**body, "protocol": "osmand", "identifier": "13912345678"},
        headers=admin,
    )
    assert other.status_code == 201


def test_jt808_identifier_must_be_digits(client, admin):
    reply = client.post(
        "/api/v1/devices", json={"protocol": "jt808", "identifier": "abc"}, headers=admin
    )
    assert reply.status_code == 422
    assert field_of(reply) == "identifier"


def test_device_on_unknown_vehicle_is_422(client, admin):
    reply = client.post(
        "/api/v1/devices",
        json={"protocol": "osmand", "identifier": "x1", "vehicle_id": 424242},
        headers=admin,
    )
    assert reply.status_code == 422
    assert field_of(reply) == "vehicle_id"


def test_unit_tree_and_duplicate_code(client, admin, root_unit):
    bureau = client.post(
        "/api/v1/units",
        json={"name": "机关事务管理局", "code": "JG", "parent_id": root_unit.id},
        headers=admin,
    )
    assert bureau.status_code == 201
    pool = client.post(
        "/api/v1/units",
        json={"name": "车队", "code": "CD", "parent_id": bureau.json()["id"]},
        headers=admin,
    )
    assert pool.json()["path"] == f"{root_unit.id}/{bureau.json()['id']}/{pool.json()['id']}/"
    dup = client.post(
        "/api/v1/units",
        json={"name": "又一个", "code": "CD", "parent_id": root_unit.id},
        headers=admin,
    )
    assert dup.status_code == 409
    assert field_of(dup) == "code"


def test_moving_a_unit_moves_its_subtree(client, admin, root_unit):
    def unit(code: str, parent: int) -> dict[str, Any]:
        return client.post(
            "/api/v1/units", json={"name": code, "code": code, "parent_id": parent}, headers=admin
        ).json()

    a = unit("A", root_unit.id)
    b = unit("B", root_unit.id)
    a1 = unit("A1", a["id"])
    moved = client.patch(f"/api/v1/units/{a['id']}", json={"parent_id": b["id"]}, headers=admin)
    assert moved.status_code == 200
    assert moved.json()["path"] == f"{root_unit.id}/{b['id']}/{a['id']}/"
    child = client.get(f"/api/v1/units/{a1['id']}", headers=admin).json()
    assert child["path"] == f"{root_unit.id}/{b['id']}/{a['id']}/{a1['id']}/"
    cycle = client.patch(f"/api/v1/units/{b['id']}", json={"parent_id": a1["id"]}, headers=admin)
    assert cycle.status_code == 422


def test_unit_with_members_cannot_be_deleted(client, admin, root_unit):
    unit = client.post(
        "/api/v1/units", json={"name": "X", "code": "X", "parent_id": root_unit.id}, headers=admin
    ).json()
    added = client.post("/api/v1/vehicles", json=vehicle_body(unit["id"]), headers=admin)
    assert added.status_code == 201
    refused = client.delete(f"/api/v1/units/{unit['id']}", headers=admin)
    assert refused.status_code == 409
    assert "still has vehicles" in refused.json()["detail"]


def test_user_create_and_bad_role(client, admin, root_unit):
    ok = client.post(
        "/api/v1/users",
        json={
            "username": "li",
            "password": "secret-123",
            "roles": ["approver", "requester"],
            "unit_id": root_unit.id,
        },
        headers=admin,
    )
    assert ok.status_code == 201
    assert sorted(ok.json()["roles"]) == ["approver", "requester"]
    assert "password" not in ok.text
    bad = client.post(
        "/api/v1/users",
        json={
            "username": "wang",
            "password": "secret-123",
            "roles": ["king"],
            "unit_id": root_unit.id,
        },
        headers=admin,
    )
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"][:2] == ["body", "roles"]
    dup = client.post(
        "/api/v1/users",
        json={
            "username": "li",
            "password": "secret-123",
            "roles": ["driver"],
            "unit_id": root_unit.id,
        },
        headers=admin,
    )
    assert dup.status_code == 409
    assert field_of(dup) == "username"


def test_list_filters_and_pagination(client, admin, root_unit):
    for n, (energy, seats) in enumerate([("bev", 4), ("petrol", 4), ("petrol", 7), ("bev", 12)]):
        body = vehicle_body(
            root_unit,
            plate=f"浙A·D1000{n}" if energy == "bev" else f"浙A·G100{n}",
            energy=energy,
            seats=seats,
            battery_kwh=60 if energy == "bev" else None,
        )
        assert client.post("/api/v1/vehicles", json=body, headers=admin).status_code == 201
    page = client.get("/api/v1/vehicles?energy=petrol", headers=admin).json()
    assert page["total"] == 2
    assert {v["energy"] for v in page["items"]} == {"petrol"}
    big = client.get("/api/v1/vehicles?min_seats=7", headers=admin).json()
    assert {v["seats"] for v in big["items"]} == {7, 12}
    first = client.get("/api/v1/vehicles?limit=3&offset=0", headers=admin).json()
    second = client.get("/api/v1/vehicles?limit=3&offset=3", headers=admin).json()
    assert first["total"] == second["total"] == 4
    assert len(first["items"]) == 3
    assert len(second["items"]) == 1
    assert client.get("/api/v1/vehicles?limit=0", headers=admin).status_code == 422


def test_vehicle_with_device_cannot_be_deleted_but_status_can_change(client, admin, root_unit):
    vehicle = client.post("/api/v1/vehicles", json=vehicle_body(root_unit), headers=admin).json()
    client.post(
        "/api/v1/devices",
        json={"protocol": "osmand", "identifier": "p1", "vehicle_id": vehicle["id"]},
        headers=admin,
    )
    assert client.delete(f"/api/v1/vehicles/{vehicle['id']}", headers=admin).status_code == 409
    sealed = client.patch(
        f"/api/v1/vehicles/{vehicle['id']}", json={"status": "sealed"}, headers=admin
    )
    assert sealed.json()["status"] == "sealed"
    bad = client.patch(f"/api/v1/vehicles/{vehicle['id']}", json={"status": "lost"}, headers=admin)
    assert bad.status_code == 422


def test_a_status_change_sets_status_since_and_other_changes_do_not(client, admin, root_unit, db):
    from datetime import UTC, datetime

    from fleet.api import get_now

    vehicle = client.post("/api/v1/vehicles", json=vehicle_body(root_unit), headers=admin).json()
    url = f"/api/v1/vehicles/{vehicle['id']}"

    def patch(at: datetime, **body: Any) -> datetime | None:
        client.app.dependency_overrides[get_now] = lambda: at  # type: ignore[attr-defined]
        assert client.patch(url, json=body, headers=admin).status_code == 200
        db.expire_all()
        found = db.get(Vehicle, vehicle["id"])
        assert found is not None
        return found.status_since

    sealed_at, later, last = (datetime(2026, 11, d, 2, tzinfo=UTC) for d in (10, 11, 12))
    assert patch(sealed_at - timedelta(days=1), seats=6) is None  # never changed: always
    assert patch(sealed_at, status="sealed") == sealed_at
    assert patch(later, seats=7) == sealed_at
    assert patch(later, status="sealed") == sealed_at  # the same status: no change
    assert patch(last, status="active", seats=5) == last
    actions = db.scalars(
        select(AuditEntry.action)
        .where(AuditEntry.entity == "vehicle", AuditEntry.entity_id == str(vehicle["id"]))
        .order_by(AuditEntry.id)
    ).all()
    assert actions == ["create", "update", "status", "update", "update"]


def test_users_are_listed_by_role(client, admin, root_unit):
    for username, roles in (("zhao", ["approver", "requester"]), ("qian", ["requester"])):
        body = {"username": username, "password": "secret-123", "roles": roles,
                "unit_id": root_unit.id}  # fmt: skip
        assert client.post("/api/v1/users", json=body, headers=admin).status_code == 201
    reply = client.get("/api/v1/users?role=approver&limit=500", headers=admin)
    assert reply.status_code == 200, reply.text
    assert {u["username"] for u in reply.json()["items"]} >= {"zhao"}
    assert all("approver" in u["roles"] for u in reply.json()["items"])
    assert client.get("/api/v1/users?role=king", headers=admin).status_code == 422


def test_device_identifiers_are_printable_text_without_whitespace_or_control_characters():
    from pydantic import TypeAdapter, ValidationError

    from fleet.schemas import Identifier

    identifier = TypeAdapter(Identifier)
    for sent in ("!a1b2c3d4", "865478070001047", "phone-1", "设备一号", "x" * 64):
        assert identifier.validate_python(sent) == sent
    for sent in ("", "a b", "a\tb", "a\x00b", "a\x85b", "x" * 65):
        with pytest.raises(ValidationError):
            identifier.validate_python(sent)
