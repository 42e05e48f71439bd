"""Device credentials in the registry: an OsmAnd phone's secret (a digest, never shown), a JT/T
808 terminal id entered beforehand, and the administrator's audited re-bind."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from fleet.models import AuditEntry, Device, OrgUnit, Role
from fleet.registry import device_secret_digest

SECRET = "s3cret-Key_0123456789"


@pytest.fixture
def admin(client: TestClient, root_unit: OrgUnit, make_user, login) -> dict[str, str]:
    make_user("cred-admin", root_unit, Role.ADMIN)
    return login("cred-admin")


@pytest.fixture
def dispatcher(client: TestClient, root_unit: OrgUnit, make_user, login) -> dict[str, str]:
    make_user("cred-dispatcher", root_unit, Role.DISPATCHER)
    return login("cred-dispatcher")


def test_a_phone_secret_is_stored_as_a_digest_and_never_shown(client, admin, db: Session):
    created = client.post(
        "/api/v1/devices",
        json={"protocol": "osmand", "identifier": "phone-cred", "secret": SECRET},
        headers=admin,
    )
    assert created.status_code == 201, created.text
    assert created.json()["has_secret"] is True
    assert SECRET not in created.text
    device = db.get(Device, created.json()["id"])
    assert device is not None
    assert device.secret_digest == device_secret_digest(SECRET) != SECRET
    entries = db.scalars(select(AuditEntry).where(AuditEntry.entity == "device")).all()
    assert all(
        SECRET not in str(e.after) and device.secret_digest not in str(e.after) for e in entries
    )

    removed = client.patch(f"/api/v1/devices/{device.id}", json={"secret": None}, headers=admin)
    assert removed.json()["has_secret"] is False
    last = db.scalars(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(1)).one()
    assert (last.action, last.before["has_secret"], last.after["has_secret"]) == (
        "update",
        True,
        False,
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"protocol": "osmand", "identifier": "p", "secret": "short"}, "secret"),
        ({"protocol": "osmand", "identifier": "p", "secret": "x" * 20 + "&id=1"}, "secret"),
        ({"protocol": "jt808", "identifier": "13900000001", "secret": SECRET}, "secret"),
        ({"protocol": "osmand", "identifier": "p", "terminal_id": "T1"}, "terminal_id"),
    ],
)
def test_credentials_of_the_wrong_kind_are_refused(client, admin, body, field):
    reply = client.post("/api/v1/devices", json=body, headers=admin)
    assert reply.status_code == 422
    assert field in reply.text


def test_a_terminal_id_entered_beforehand_and_the_admins_rebind(client, admin, dispatcher, db):
    created = client.post(
        "/api/v1/devices",
        json={"protocol": "jt808", "identifier": "013900000077", "terminal_id": "T0077"},
        headers=admin,
    ).json()
    assert (created["terminal_id"], created["bound_at"]) == ("T0077", None)
    device = db.get(Device, created["id"])
    assert device is not None
    # As a registration binds it (telematics.terminals does this from the gateway).
    device.terminal_maker, device.terminal_model = "70111", "KM-01"
    device.bound_at, device.auth_code_digest = datetime.now(UTC), "0" * 64
    device.imei = "861234567890123"
    db.commit()

    changed = client.patch(
        f"/api/v1/devices/{device.id}", json={"terminal_id": "OTHER"}, headers=admin
    )
    assert changed.status_code == 409  # a bound device is re-bound, not edited
    refused = client.post(f"/api/v1/devices/{device.id}/rebind", json={}, headers=dispatcher)
    assert refused.status_code == 403
    db.refresh(device)
    assert device.bound_at is not None

    rebound = client.post(
        f"/api/v1/devices/{device.id}/rebind", json={"terminal_id": "NEW01"}, headers=admin
    )
    assert rebound.status_code == 200, rebound.text
    assert rebound.json()["terminal_id"] == "NEW01"
    assert rebound.json()["bound_at"] is None
    db.refresh(device)
    assert (device.auth_code_digest, device.terminal_maker, device.imei) == (None, None, None)
    entry = db.scalars(
        select(AuditEntry).where(AuditEntry.action == "rebind", AuditEntry.entity == "device")
    ).one()
    assert entry.before["terminal_id"] == "T0077"
    assert entry.before["imei"] == "861234567890123"
    assert entry.after["terminal_id"] == "NEW01"
    assert "auth_code_digest" not in entry.before


def test_revoking_an_auth_code_is_audited(client, dispatcher, admin, db):
    created = client.post(
        "/api/v1/devices", json={"protocol": "jt808", "identifier": "013900000078"}, headers=admin
    ).json()
    device = db.get(Device, created["id"])
    assert device is not None
    device.auth_code_digest = "1" * 64
    db.commit()
    reply = client.delete(f"/api/v1/devices/{device.id}/auth-code", headers=dispatcher)
    assert reply.status_code == 200
    db.refresh(device)
    assert device.auth_code_digest is None
    assert db.scalar(select(AuditEntry.action).order_by(AuditEntry.id.desc()).limit(1)) == (
        "revoke_auth_code"
    )
