"""Equipping and renewal (配备更新) through the API: quotas per unit and in total, registration
and reallocation within them, vehicles due for renewal by age and by distance, idle vehicles, a
renewal request up the approval chain to the disposal and the vehicle registered on its place,
and the new-energy share of each year's purchases. The clock is pinned (NowDep)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from geoalchemy2.shape import from_shape
from shapely.geometry import LineString, Point
from sqlalchemy import select
from sqlalchemy.orm import Session

from dispatch import equipping
from dispatch.approval import Condition
from dispatch.models import ApprovalRule
from fleet import registry
from fleet.api import get_now
from fleet.auth import Actor
from fleet.models import AuditEntry, OrgUnit, OutboxEvent, Role, Vehicle
from fleet.schemas import DeviceCreate
from telematics.models import Trip
from tests.clock import CHINA
from tests.factories import add_vehicle

NOW = datetime(2026, 12, 5, 10, 0, tzinfo=CHINA)


def pin(client: TestClient, moment: datetime) -> None:
    client.app.dependency_overrides[get_now] = lambda: moment  # type: ignore[attr-defined]


@pytest.fixture
def units(make_unit: Callable[..., OrgUnit]) -> dict[str, OrgUnit]:
    return {"a": make_unit("EQ-A", name="甲局"), "b": make_unit("EQ-B", name="乙局")}


@pytest.fixture
def admin(root_unit: OrgUnit, make_user, login) -> dict[str, str]:
    make_user("eq-admin", root_unit, Role.ADMIN)
    return login("eq-admin")


def vehicle_body(unit: OrgUnit, plate: str, **fields: Any) -> dict[str, Any]:
    return {
        "plate": plate,
        "category": "general",
        "body_class": "sedan",
        "seats": 4,
        "energy": "petrol",
        "unit_id": unit.id,
        **fields,
    }


def set_quotas(client: TestClient, admin: dict[str, str], unit: OrgUnit, **quotas: Any) -> None:
    reply = client.put(
        f"/api/v1/equipping/quotas/{unit.id}", json={"quotas": quotas}, headers=admin
    )
    assert reply.status_code == 200, reply.text


def field_of(reply: Any) -> str:
    return reply.json()["detail"][0]["loc"][-1]


# ---- quotas -----------------------------------------------------------------------------------


def test_quota_against_vehicles_held_per_unit_and_in_total_flags_units_over(
    client: TestClient, db: Session, units: dict[str, OrgUnit], admin, make_user, login
):
    a, b = units["a"], units["b"]
    set_quotas(client, admin, a, general=2)
    set_quotas(client, admin, b, general=2, enforcement=1)
    for plate in ("浙A·Q0001", "浙A·Q0002"):
        add_vehicle(db, a, plate)
    add_vehicle(db, b, "浙A·Q0003")
    add_vehicle(db, b, "浙A·Q0004")
    add_vehicle(db, b, "浙A·Q0005", status="disposed")  # a disposed vehicle holds no place
    db.commit()
    set_quotas(client, admin, b, general=1)  # lowered below what it holds

    answer = client.get("/api/v1/equipping/quotas", headers=admin).json()
    rows = {row["unit_code"]: row for row in answer["units"]}
    assert rows["EQ-A"]["categories"] == [
        {"category": "general", "quota": 2, "held": 2, "free": 0, "over": False}
    ]
    assert (rows["EQ-A"]["quota"], rows["EQ-A"]["held"], rows["EQ-A"]["over"]) == (2, 2, False)
    b_lines = {line["category"]: line for line in rows["EQ-B"]["categories"]}
    assert b_lines["general"] == {
        "category": "general",
        "quota": 1,
        "held": 2,
        "free": 0,
        "over": True,
    }
    assert b_lines["enforcement"]["held"] == 0
    assert not b_lines["enforcement"]["over"]
    assert (rows["EQ-B"]["quota"], rows["EQ-B"]["held"], rows["EQ-B"]["over"]) == (2, 2, True)
    assert rows["T-ROOT"]["quota"] is None
    assert rows["T-ROOT"]["held"] == 0
    assert answer["total"] == {"quota": 4, "held": 4, "over_units": 1}

    # Scoped: an administrator of unit A sees A alone.
    make_user("eq-a-admin", a, Role.ADMIN)
    mine = client.get("/api/v1/equipping/quotas", headers=login("eq-a-admin")).json()
    assert [row["unit_code"] for row in mine["units"]] == ["EQ-A"]
    assert mine["total"] == {"quota": 2, "held": 2, "over_units": 0}

    changes = db.scalars(
        select(AuditEntry)
        .where(AuditEntry.entity == "unit_quota", AuditEntry.entity_id == str(b.id))
        .order_by(AuditEntry.id)
    ).all()
    assert [(e.before, e.after) for e in changes] == [
        ({}, {"enforcement": 1, "general": 2}),
        ({"enforcement": 1, "general": 2}, {"enforcement": 1, "general": 1}),
    ]


def test_setting_quotas_is_for_administrators_of_the_unit(
    client: TestClient, units: dict[str, OrgUnit], make_user, login
):
    make_user("eq-desk", units["a"], Role.DISPATCHER)
    desk = login("eq-desk")
    reply = client.put(
        f"/api/v1/equipping/quotas/{units['a'].id}", json={"quotas": {"general": 3}}, headers=desk
    )
    assert reply.status_code == 403
    make_user("eq-b-admin", units["b"], Role.ADMIN)
    other = login("eq-b-admin")
    reply = client.put(
        f"/api/v1/equipping/quotas/{units['a'].id}", json={"quotas": {"general": 3}}, headers=other
    )
    assert reply.status_code == 404


def test_registering_over_the_quota_is_refused_until_a_place_is_freed(
    client: TestClient, db: Session, units: dict[str, OrgUnit], admin
):
    a = units["a"]
    set_quotas(client, admin, a, general=1)
    first = client.post("/api/v1/vehicles", json=vehicle_body(a, "浙A·Q1001"), headers=admin)
    assert first.status_code == 201, first.text
    refused = client.post("/api/v1/vehicles", json=vehicle_body(a, "浙A·Q1002"), headers=admin)
    assert refused.status_code == 422
    assert field_of(refused) == "unit_id"
    assert "quota of 1" in refused.json()["detail"][0]["msg"]
    # Another category is not limited, nor is another unit.
    other = vehicle_body(a, "浙A·Q1003", category="emergency")
    assert client.post("/api/v1/vehicles", json=other, headers=admin).status_code == 201

    # Nor may an existing vehicle be moved or re-categorised into the full place.
    moved = add_vehicle(db, units["b"], "浙A·Q1004")
    db.commit()
    reply = client.patch(f"/api/v1/vehicles/{moved.id}", json={"unit_id": a.id}, headers=admin)
    assert reply.status_code == 422
    assert field_of(reply) == "unit_id"

    # The first vehicle is disposed of: its place is free, and the new one takes it.
    old = first.json()["id"]
    replacing = vehicle_body(a, "浙A·Q1002", replaces_id=old)
    refused = client.post("/api/v1/vehicles", json=replacing, headers=admin)
    assert refused.status_code == 422
    assert field_of(refused) == "replaces_id"
    client.patch(f"/api/v1/vehicles/{old}", json={"status": "disposed"}, headers=admin)
    new = client.post("/api/v1/vehicles", json=replacing, headers=admin)
    assert new.status_code == 201, new.text
    assert new.json()["replaces_id"] == old
    # The place is taken again: neither a second vehicle nor the old one back in service.
    again = vehicle_body(a, "浙A·Q1005")
    assert client.post("/api/v1/vehicles", json=again, headers=admin).status_code == 422
    back = client.patch(f"/api/v1/vehicles/{old}", json={"status": "active"}, headers=admin)
    assert back.status_code == 422
    assert field_of(back) == "unit_id"


# ---- renewal due --------------------------------------------------------------------------------


def test_vehicles_due_for_renewal_by_age_and_by_distance_now_and_within_12_months(
    client: TestClient, db: Session, units: dict[str, OrgUnit], admin
):
    a = units["a"]
    made = {}
    for plate, acquired, km in (
        ("浙A·R0001", date(2018, 12, 1), 90_000.0),  # 8 years on 2026-12-01: due now by age
        ("浙A·R0002", date(2024, 12, 5), 260_000.0),  # past 250,000 km: due now by distance
        ("浙A·R0003", date(2019, 6, 1), 100_000.0),  # 8 years on 2027-06-01: within 12 months
        # 4 years, 210,000 km: at its pace (143.7 km a day) 250,000 km in 279 days
        ("浙A·R0004", date(2022, 12, 5), 210_000.0),
        ("浙A·R0005", date(2025, 1, 1), 10_000.0),  # neither
        ("浙A·R0006", None, None),  # nothing known
        ("浙A·R0007", date(2010, 1, 1), None),  # disposed of: not listed
    ):
        made[plate] = add_vehicle(
            db,
            a,
            plate,
            acquired_on=acquired,
            odometer_km=km,
            status="disposed" if plate == "浙A·R0007" else "active",
        )
    # No reading by hand, but its tracker reported 251,000 km at the end of a trip.
    tracked = add_vehicle(db, a, "浙A·R0008", acquired_on=date(2023, 3, 1))
    point = from_shape(Point(120.1, 30.2), srid=4326)
    db.add(
        Trip(
            vehicle_id=tracked.id,
            start_at=datetime(2026, 11, 2, 1, tzinfo=UTC),
            end_at=datetime(2026, 11, 2, 2, tzinfo=UTC),
            start_point=point,
            end_point=point,
            path=from_shape(LineString([(120.1, 30.2), (120.2, 30.2)]), srid=4326),
            distance_m=9_000,
            duration_s=3600,
            odometer_start_km=250_991,
            odometer_end_km=251_000,
        )
    )
    db.commit()
    pin(client, NOW)

    answer = client.get("/api/v1/equipping/renewals", headers=admin).json()
    assert (answer["today"], answer["horizon"]) == ("2026-12-05", "2027-12-05")
    assert (answer["age_years"], answer["distance_km"]) == (8, 250_000)
    now = {i["plate"]: i for i in answer["due_now"]}
    soon = {i["plate"]: i for i in answer["due_within_12_months"]}
    assert set(now) == {"浙A·R0001", "浙A·R0002", "浙A·R0008"}
    assert now["浙A·R0001"]["reasons"] == ["age"]
    assert now["浙A·R0001"]["due_on"] == "2026-12-01"
    assert now["浙A·R0002"]["reasons"] == ["distance"]
    assert now["浙A·R0008"]["reasons"] == ["distance"]
    assert now["浙A·R0008"]["distance_km"] == 251_000
    assert set(soon) == {"浙A·R0003", "浙A·R0004"}
    assert soon["浙A·R0003"]["due_on"] == "2027-06-01"
    assert soon["浙A·R0003"]["reasons"] == ["age"]
    assert soon["浙A·R0004"]["reasons"] == ["distance"]
    assert soon["浙A·R0004"]["due_on"] == "2027-09-10"

    # Four days earlier, the first is not due yet: it will be within 12 months.
    pin(client, NOW - timedelta(days=5))
    earlier = client.get("/api/v1/equipping/renewals", headers=admin).json()
    assert "浙A·R0001" in {i["plate"] for i in earlier["due_within_12_months"]}
    assert "浙A·R0001" not in {i["plate"] for i in earlier["due_now"]}


def test_renewal_rules_pure():
    today = date(2026, 12, 5)
    leap = equipping.renewal(
        acquired_on=date(2020, 2, 29),
        distance_km=None,
        today=today,
        age_years=8,
        distance_limit_km=250_000,
    )
    assert leap.age_due_on == date(2028, 2, 29)
    odd = equipping.renewal(
        acquired_on=date(2019, 2, 28),
        distance_km=0.0,
        today=today,
        age_years=9,
        distance_limit_km=250_000,
    )
    assert odd.age_due_on == date(2028, 2, 28)
    assert odd.distance_due_on is None
    assert equipping.add_months(date(2027, 1, 31), 1) == date(2027, 2, 28)
    unknown = equipping.renewal(
        acquired_on=None, distance_km=None, today=today, age_years=8, distance_limit_km=1
    )
    assert unknown.due_on is None
    assert not unknown.due_by(date(2100, 1, 1))
    both = equipping.renewal(
        acquired_on=date(2010, 1, 1),
        distance_km=300_000,
        today=today,
        age_years=8,
        distance_limit_km=250_000,
    )
    assert both.reasons(today) == ["age", "distance"]
    assert equipping.is_idle(4, 5)
    assert not equipping.is_idle(5, 5)


# ---- idle ---------------------------------------------------------------------------------------


def _trip(vehicle: Vehicle, start: datetime) -> Trip:
    point = from_shape(Point(120.1, 30.2), srid=4326)
    return Trip(
        vehicle_id=vehicle.id,
        start_at=start.astimezone(UTC),
        end_at=(start + timedelta(minutes=30)).astimezone(UTC),
        start_point=point,
        end_point=point,
        path=from_shape(LineString([(120.1, 30.2), (120.2, 30.2)]), srid=4326),
        distance_m=5_000,
        duration_s=1800,
    )


def test_vehicles_used_on_fewer_days_than_the_setting_are_idle(
    client: TestClient, db: Session, units: dict[str, OrgUnit], admin
):
    a = units["a"]
    busy = add_vehicle(db, a, "浙A·K0001")
    rare = add_vehicle(db, a, "浙A·K0002")
    never = add_vehicle(db, a, "浙A·K0003")
    add_vehicle(db, a, "浙A·K0004", status="sealed")  # sealed: not expected to be used
    add_vehicle(db, a, "浙A·K0005", acquired_on=date(2026, 11, 20))  # bought mid-month
    for day in range(2, 8):  # six days of November
        db.add(_trip(busy, datetime(2026, 11, day, 9, tzinfo=CHINA)))
    db.add(_trip(rare, datetime(2026, 11, 3, 9, tzinfo=CHINA)))
    db.add(_trip(rare, datetime(2026, 11, 3, 15, tzinfo=CHINA)))  # the same day again
    db.add(_trip(rare, datetime(2026, 11, 30, 23, 30, tzinfo=CHINA)))  # 15:30 UTC, still 30 Nov
    db.add(_trip(never, datetime(2026, 12, 1, 0, 30, tzinfo=CHINA)))  # December, locally
    db.commit()
    pin(client, NOW)

    answer = client.get("/api/v1/equipping/idle", headers=admin).json()  # last whole month
    assert (answer["month"], answer["min_days"]) == ("2026-11", 5)
    assert [(i["plate"], i["days_used"]) for i in answer["items"]] == [
        ("浙A·K0003", 0),
        ("浙A·K0002", 2),
    ]
    december = client.get("/api/v1/equipping/idle?month=2026-12", headers=admin).json()
    assert {i["plate"]: i["days_used"] for i in december["items"]}["浙A·K0003"] == 1
    bad = client.get("/api/v1/equipping/idle?month=2026-13", headers=admin)
    assert bad.status_code == 422
    assert field_of(bad) == "month"


# ---- reallocation -------------------------------------------------------------------------------


def test_reallocation_moves_a_vehicle_within_the_quotas_and_is_audited(
    client: TestClient, db: Session, units: dict[str, OrgUnit], admin, make_unit, make_user, login
):
    a, b = units["a"], units["b"]
    set_quotas(client, admin, b, general=1)
    idle_car = add_vehicle(db, a, "浙A·M0001")
    add_vehicle(db, b, "浙A·M0002")
    tracker = registry.create_device(
        session=db,
        actor=Actor.system(a),
        data=DeviceCreate(protocol="jt808", identifier="013800000991", vehicle_id=idle_car.id),
    )
    db.commit()
    url = f"/api/v1/equipping/vehicles/{idle_car.id}/reallocate"
    body = {"unit_id": b.id, "reason": "闲置，统筹调剂"}
    refused = client.post(url, json=body, headers=admin)
    assert refused.status_code == 422
    assert field_of(refused) == "unit_id"
    db.refresh(idle_car)
    assert idle_car.unit_id == a.id

    set_quotas(client, admin, b, general=2)
    moved = client.post(url, json=body, headers=admin)
    assert moved.status_code == 200, moved.text
    assert moved.json()["unit_id"] == b.id
    entry = db.scalars(
        select(AuditEntry).where(
            AuditEntry.entity == "vehicle",
            AuditEntry.entity_id == str(idle_car.id),
            AuditEntry.action == "reallocate",
        )
    ).one()
    assert (entry.before["unit_id"], entry.after["unit_id"]) == (a.id, b.id)
    assert entry.after["reason"] == "闲置，统筹调剂"
    db.refresh(tracker)
    assert tracker.unit_id == b.id  # its tracker went with it

    # Scope: an administrator of A neither reaches the vehicle now in B nor sends one to B.
    make_user("eq-a-admin2", a, Role.ADMIN)
    a_admin = login("eq-a-admin2")
    assert client.post(url, json={**body, "unit_id": a.id}, headers=a_admin).status_code == 404
    own = add_vehicle(db, a, "浙A·M0003")
    db.commit()
    outside = client.post(
        f"/api/v1/equipping/vehicles/{own.id}/reallocate", json=body, headers=a_admin
    )
    assert outside.status_code == 422
    assert field_of(outside) == "unit_id"


# ---- renewal request -> approval -> disposal -> new vehicle ------------------------------------


def test_renewal_request_goes_up_the_approval_chain_to_disposal_and_a_new_vehicle(
    client: TestClient,
    db: Session,
    root_unit: OrgUnit,
    units: dict[str, OrgUnit],
    admin,
    make_user,
    login,
):
    a = units["a"]
    db.add(ApprovalRule(unit_id=a.id, condition=Condition.ALWAYS, level=1, name="上级审批"))
    make_user("eq-desk", a, Role.DISPATCHER)
    make_user("eq-boss", a, Role.APPROVER)
    make_user("eq-boss2", a, Role.APPROVER)
    make_user("eq-leader", root_unit, Role.APPROVER)
    desk, boss, leader = login("eq-desk"), login("eq-boss"), login("eq-leader")
    boss2 = login("eq-boss2")
    set_quotas(client, admin, a, general=1)
    old = add_vehicle(db, a, "浙A·N0001", acquired_on=date(2018, 1, 1))
    db.commit()
    pin(client, NOW)

    body = {"vehicle_id": old.id, "kind": "renewal", "reason": "使用年限已满8年"}
    created = client.post("/api/v1/equipping/requests", json=body, headers=desk)
    assert created.status_code == 201, created.text
    request = created.json()
    assert request["status"] == "submitted"
    assert [s["unit_id"] for s in request["approval_steps"]] == [a.id, root_unit.id]
    assert client.post("/api/v1/equipping/requests", json=body, headers=desk).status_code == 409
    url = f"/api/v1/equipping/requests/{request['id']}"
    renewals = client.get("/api/v1/equipping/renewals", headers=desk).json()
    assert renewals["due_now"][0]["request_id"] == request["id"]

    disposal = {"method": "auction", "disposed_on": "2026-12-04", "receiver": "杭州市产权交易所"}
    assert client.post(f"{url}/dispose", json=disposal, headers=desk).status_code == 409
    assert client.post(f"{url}/approve", headers=desk).status_code == 403  # not an approver
    first = client.post(f"{url}/approve", json={"comment": "同意"}, headers=boss)
    assert first.status_code == 200
    assert first.json()["approvals_done"] == 1
    assert client.post(f"{url}/approve", headers=boss).status_code == 403  # one step each
    refused = client.post(f"{url}/approve", headers=boss2)
    assert refused.status_code == 403
    assert "step 2 of 2" in refused.json()["detail"]
    second = client.post(f"{url}/approve", headers=leader)
    assert second.json()["status"] == "approved"
    assert [d["username"] for d in second.json()["decisions"]] == ["eq-boss", "eq-leader"]

    future = {**disposal, "disposed_on": "2026-12-06"}
    refused = client.post(f"{url}/dispose", json=future, headers=desk)
    assert refused.status_code == 422
    assert field_of(refused) == "disposed_on"
    bad_method = client.post(f"{url}/dispose", json={**disposal, "method": "sold"}, headers=desk)
    assert bad_method.status_code == 422
    done = client.post(f"{url}/dispose", json=disposal, headers=desk)
    assert done.status_code == 200, done.text
    assert (done.json()["status"], done.json()["disposal_method"]) == ("disposed", "auction")
    assert (done.json()["disposed_on"], done.json()["receiver"]) == (
        "2026-12-04",
        "杭州市产权交易所",
    )
    assert client.get(f"/api/v1/vehicles/{old.id}", headers=desk).json()["status"] == "disposed"
    db.refresh(old)
    assert old.status_since == NOW  # disposed from the time it was recorded (geofence judges by it)

    new = client.post(
        "/api/v1/vehicles",
        json=vehicle_body(a, "浙A·D19001", energy="bev", replaces_id=old.id),
        headers=desk,
    )
    assert new.status_code == 201, new.text
    assert client.get(url, headers=desk).json()["replacement_id"] == new.json()["id"]
    vehicle_file = client.get(f"/api/v1/vehicles/{new.json()['id']}/file", headers=admin).json()
    assert vehicle_file["vehicle"]["replaces_id"] == old.id
    told = db.scalars(
        select(OutboxEvent.payload)
        .where(
            OutboxEvent.object_type == "renewal_request",
            OutboxEvent.object_id == str(request["id"]),
        )
        .order_by(OutboxEvent.id)
    ).all()
    assert [(e["action"], e["state"]["status"]) for e in told][-1] == ("dispose", "disposed")

    actions = db.execute(
        select(AuditEntry.entity, AuditEntry.action)
        .where(
            (
                (AuditEntry.entity == "renewal_request")
                & (AuditEntry.entity_id == str(request["id"]))
            )
            | ((AuditEntry.entity == "vehicle") & (AuditEntry.entity_id == str(old.id)))
        )
        .order_by(AuditEntry.id)
    ).all()
    assert [tuple(row) for row in actions] == [
        ("vehicle", "create"),
        ("renewal_request", "create"),
        ("renewal_request", "approve"),
        ("renewal_request", "approve"),
        ("vehicle", "dispose"),
        ("renewal_request", "dispose"),
    ]


def test_a_rejected_request_leaves_the_vehicle_and_is_out_of_reach_of_other_units(
    client: TestClient, db: Session, units: dict[str, OrgUnit], make_user, login
):
    pin(client, NOW)  # the disposal's date must not be after today
    a, b = units["a"], units["b"]
    make_user("eq-desk", a, Role.DISPATCHER)
    make_user("eq-boss", a, Role.APPROVER)
    make_user("eq-b-desk", b, Role.DISPATCHER)
    desk, boss, other = login("eq-desk"), login("eq-boss"), login("eq-b-desk")
    car = add_vehicle(db, a, "浙A·N0002")
    db.commit()
    body = {"vehicle_id": car.id, "kind": "disposal", "reason": "事故损毁"}
    assert client.post("/api/v1/equipping/requests", json=body, headers=other).status_code == 422
    request = client.post("/api/v1/equipping/requests", json=body, headers=desk).json()
    url = f"/api/v1/equipping/requests/{request['id']}"
    assert client.get(url, headers=other).status_code == 404
    assert client.get("/api/v1/equipping/requests", headers=other).json()["total"] == 0
    no_comment = client.post(f"{url}/reject", json={"comment": " "}, headers=boss)
    assert no_comment.status_code == 422
    assert field_of(no_comment) == "comment"
    rejected = client.post(f"{url}/reject", json={"comment": "可修复"}, headers=boss)
    assert rejected.json()["status"] == "rejected"
    disposal = {"method": "scrap", "disposed_on": "2026-12-01", "receiver": "报废回收公司"}
    assert client.post(f"{url}/dispose", json=disposal, headers=desk).status_code == 409
    db.refresh(car)
    assert car.status == "active"
    # A new request may follow a rejected one.
    assert client.post("/api/v1/equipping/requests", json=body, headers=desk).status_code == 201


# ---- the new-energy share of purchases ----------------------------------------------------------


def test_new_energy_share_of_the_vehicles_bought_each_year(
    client: TestClient, db: Session, units: dict[str, OrgUnit], admin
):
    a, b = units["a"], units["b"]
    system = Actor.system(a)
    for n, (unit, energy, bought) in enumerate(
        [
            (a, "bev", date(2024, 3, 1)),
            (b, "petrol", date(2024, 7, 1)),
            (a, "phev", date(2025, 1, 1)),
            (a, "petrol", date(2025, 2, 1)),
            (b, "hybrid", date(2025, 5, 1)),  # a hybrid is not a new-energy vehicle
            (b, "diesel", date(2025, 12, 31)),
            (a, "bev", None),  # year unknown: not counted
        ]
    ):
        add_vehicle(
            db,
            unit,
            f"浙A·E{n:04d}",
            actor=Actor.system(unit) if unit is b else system,
            energy=energy,
            acquired_on=bought,
        )
    db.commit()
    answer = client.get("/api/v1/equipping/new-energy", headers=admin).json()
    assert answer["items"] == [
        {"year": 2024, "bought": 2, "new_energy": 1, "share": 0.5},
        {"year": 2025, "bought": 4, "new_energy": 1, "share": 0.25},
    ]
