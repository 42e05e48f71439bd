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


CHANGES = [
    "UPDATE audit_entry SET actor = 'mallory'",
    "DELETE FROM audit_entry",
    "TRUNCATE audit_entry",
]


@pytest.mark.parametrize("statement", CHANGES)
def test_the_processes_role_may_not_change_the_log(db, root_unit, settings, statement):
    assert settings.app_role, "the suite runs as an application role (FLEET_DATABASE_OWNER)"
    assert entries(db)
    with pytest.raises(DBAPIError, match="permission denied"), db.begin_nested():
        db.execute(text(statement))
    assert db.scalar(select(func.count()).select_from(AuditEntry)) >= 1


@pytest.mark.parametrize(
    "statement",
    [
        "ALTER TABLE audit_entry DISABLE TRIGGER USER",
        "DROP TRIGGER audit_entry_append_only ON audit_entry",
        "ALTER TABLE audit_entry OWNER TO CURRENT_USER",
        "DROP TABLE audit_entry",
    ],
)
def test_nor_turn_its_guard_off(db, root_unit, statement):
    with pytest.raises(DBAPIError, match="must be owner"), db.begin_nested():
        db.execute(text(statement))


def _log(db: Session, count: int) -> list[AuditEntry]:
    someone = audit.ActorRef(id=None, name="test")
    for n in range(count):
        audit.record(
            session=db,
            actor=someone,
            action="create",
            entity="vehicle",
            entity_id=n,
            after={"seats": 4},
        )
    return entries(db)


@pytest.mark.parametrize("statement", CHANGES)
def test_the_owner_is_refused_by_the_trigger(owner_db, statement):
    _log(owner_db, 1)
    with pytest.raises(DBAPIError, match="append-only"), owner_db.begin_nested():
        owner_db.execute(text(statement))


def _tamper(owner_db: Session, sql: str) -> None:
    """What only the owner (or a superuser) can do: turn the trigger off and change the log."""
    owner_db.execute(text("ALTER TABLE audit_entry DISABLE TRIGGER USER"))
    owner_db.execute(text(sql))
    owner_db.execute(text("ALTER TABLE audit_entry ENABLE TRIGGER USER"))


def test_verify_passes_on_a_clean_log_and_names_an_altered_entry(owner_db):
    log = _log(owner_db, 3)
    clean = audit.verify(session=owner_db)
    assert clean.ok
    assert clean.checked == len(log)
    target = log[-2]
    _tamper(
        owner_db,
        f"UPDATE audit_entry SET after = after || '{{\"seats\": 9}}' WHERE id = {target.id}",
    )
    owner_db.expire_all()
    result = audit.verify(session=owner_db)
    assert not result.ok
    assert result.first_bad_id == target.id
    assert "content" in result.reason


def test_verify_names_the_entry_after_a_deleted_one(owner_db):
    log = _log(owner_db, 3)
    _tamper(owner_db, f"DELETE FROM audit_entry WHERE id = {log[-2].id}")
    owner_db.expire_all()
    result = audit.verify(session=owner_db)
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
