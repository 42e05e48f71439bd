"""The audit log: one entry per change in the same transaction, append-only, hash-chained."""

from __future__ import annotations

import itertools

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from fleet import audit
from fleet.models import AuditEntry, OrgUnit, Role


def entries(db: Session) -> list[AuditEntry]:
    return list(db.scalars(select(AuditEntry).order_by(AuditEntry.id)))


@pytest.fixture
def admin(client, root_unit: OrgUnit, make_user, login) -> dict[str, str]:
    make_user("auditor-admin", root_unit, Role.ADMIN)
    return login("auditor-admin")


VEHICLE = {
    "plate": "浙A·G12345",
    "category": "general",
    "body_class": "sedan",
    "seats": 4,
    "energy": "petrol",
    "tank_l": 60,
}


def test_each_change_leaves_exactly_one_entry(client, admin, root_unit, db):
    start = len(entries(db))
    created = client.post(
        "/api/v1/vehicles", json={**VEHICLE, "unit_id": root_unit.id}, headers=admin
    )
    vehicle_id = created.json()["id"]
    log = entries(db)[start:]
    assert [(e.action, e.entity, e.entity_id, e.actor) for e in log] == [
        ("create", "vehicle", str(vehicle_id), "auditor-admin")
    ]
    assert log[0].before is None
    assert log[0].after["plate"] == "浙A·G12345"

    client.patch(f"/api/v1/vehicles/{vehicle_id}", json={"seats": 5}, headers=admin)
    update = entries(db)[start + 1 :]
    assert len(update) == 1
    assert (update[0].before["seats"], update[0].after["seats"]) == (4, 5)

    client.delete(f"/api/v1/vehicles/{vehicle_id}", headers=admin)
    deleted = entries(db)[start + 2 :]
    assert [(e.action, e.after) for e in deleted] == [("delete", None)]


def test_a_failed_change_leaves_no_entry(client, admin, root_unit, db):
    client.post("/api/v1/vehicles", json={**VEHICLE, "unit_id": root_unit.id}, headers=admin)
    start = len(entries(db))
    dup = client.post("/api/v1/vehicles", json={**VEHICLE, "unit_id": root_unit.id}, headers=admin)
    assert dup.status_code == 409
    assert len(entries(db)) == start


def test_passwords_never_reach_the_log(client, admin, root_unit, db):
    client.post(
        "/api/v1/users",
        json={
            "username": "zhou",
            "password": "top-secret-pw",
            "roles": ["driver"],
            "unit_id": root_unit.id,
        },
        headers=admin,
    )
    last = entries(db)[-1]
    assert last.entity == "user"
    assert "password_hash" not in last.after
    assert "top-secret-pw" not in str(last.after)


@pytest.mark.parametrize(
    "statement",
    ["UPDATE audit_entry SET actor = 'mallory'", "DELETE FROM audit_entry", "TRUNCATE audit_entry"],
)
def test_database_refuses_to_change_the_log(db, root_unit, statement):
    assert entries(db)
    with pytest.raises(DBAPIError, match="append-only"), db.begin_nested():
        db.execute(text(statement))
    assert db.scalar(select(func.count()).select_from(AuditEntry)) >= 1


def _tamper(db: Session, sql: str) -> None:
    db.execute(text("ALTER TABLE audit_entry DISABLE TRIGGER USER"))
    db.execute(text(sql))
    db.execute(text("ALTER TABLE audit_entry ENABLE TRIGGER USER"))


def test_verify_passes_on_a_clean_log_and_names_an_altered_entry(client, admin, root_unit, db):
    for n in range(3):
        client.post(
            "/api/v1/vehicles",
            json={**VEHICLE, "plate": f"浙A·G1000{n}", "unit_id": root_unit.id},
            headers=admin,
        )
    clean = audit.verify(session=db)
    assert clean.ok
    assert clean.checked == len(entries(db))
    target = entries(db)[-2]
    _tamper(
        db, f"UPDATE audit_entry SET after = after || '{{\"seats\": 9}}' WHERE id = {target.id}"
    )
    db.expire_all()
    result = audit.verify(session=db)
    assert not result.ok
    assert result.first_bad_id == target.id
    assert "content" in result.reason


def test_verify_names_the_entry_after_a_deleted_one(client, admin, root_unit, db):
    for n in range(3):
        client.post(
            "/api/v1/vehicles",
            json={**VEHICLE, "plate": f"浙A·G2000{n}", "unit_id": root_unit.id},
            headers=admin,
        )
    log = entries(db)
    _tamper(db, f"DELETE FROM audit_entry WHERE id = {log[-2].id}")
    db.expire_all()
    result = audit.verify(session=db)
    assert result.first_bad_id == log[-1].id
    assert "prev_hash" in result.reason


def test_jsonable_keeps_hashes_stable_through_jsonb(db, root_unit):
    odd = {"big": 1e20, "small": 1.5e-7, "pi": 3.14159, "text": "浙A", "nested": [1, {"x": None}]}
    entry = audit.record(
        session=db, actor=audit.SYSTEM, action="test", entity="probe", entity_id=1, after=odd
    )
    db.expire_all()
    reloaded = db.get(AuditEntry, entry.id)
    assert reloaded is not None
    assert audit.entry_digest(reloaded) == reloaded.hash


def test_many_changes_appended_at_once_chain_like_single_ones(db, root_unit):
    someone = audit.ActorRef(id=None, name="test")
    single = audit.record(session=db, actor=someone, action="a", entity="device", entity_id=1)
    many = audit.record_many(
        session=db,
        changes=[
            audit.Change(someone, "bind", "device", n, before={"n": n}, after={"n": n + 1})
            for n in range(2, 7)
        ],
    )
    after = audit.record(session=db, actor=someone, action="z", entity="device", entity_id=9)
    assert [e.entity_id for e in many] == ["2", "3", "4", "5", "6"]
    chain = [single, *many, after]
    assert [e.id for e in chain] == sorted(e.id for e in chain)
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(chain))
    assert audit.record_many(session=db, changes=[]) == []
    db.commit()
    assert audit.verify(session=db).ok
