"""`/api/v1/integrations`: administrators add, change and remove sinks, scoped to their units;
secrets go in and never come out; every change is audited; the answers carry the statistics."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from fleet.forwarding import POSITION_STATS
from fleet.models import AuditEntry, Integration, OrgUnit, Role

SECRET = "hook-secret-never-shown"


@pytest.fixture
def admin(client: TestClient, root_unit: OrgUnit, make_user, login) -> dict[str, str]:
    make_user("sink-admin", root_unit, Role.ADMIN)
    return login("sink-admin")


def hook(**changes: object) -> dict[str, object]:
    return {
        "name": "exchange platform",
        "kind": "webhook",
        "url": "https://exchange.example.gov.cn/fleet",
        "secret": SECRET,
        **changes,
    }


def test_a_sink_is_added_with_its_statistics_and_without_its_secret(
    client: TestClient, admin, db: Session
):
    reply = client.post("/api/v1/integrations", json=hook(kinds=["alerts"]), headers=admin)
    assert reply.status_code == 201, reply.text
    body = reply.json()
    assert SECRET not in reply.text
    assert "secret" not in body
    assert body["has_secret"] is True
    assert (body["kind"], body["kinds"], body["unit_id"]) == ("webhook", ["alerts"], None)
    assert (body["sent"], body["pending"], body["failed"], body["last_error"]) == (0, 0, 0, None)
    listed = client.get("/api/v1/integrations", headers=admin)
    assert listed.status_code == 200
    assert [i["id"] for i in listed.json()["items"]] == [body["id"]]
    assert SECRET not in listed.text
    entry = db.scalar(
        select(AuditEntry).where(
            AuditEntry.entity == "integration", AuditEntry.entity_id == str(body["id"])
        )
    )
    assert entry is not None
    assert entry.action == "create"
    assert SECRET not in json.dumps(entry.after)


def test_pending_counts_the_events_the_filters_let_through(
    client: TestClient, admin, make_unit, db: Session
):
    unit = make_unit("SINK-P")
    sink = client.post(
        "/api/v1/integrations", json=hook(unit_id=unit.id, kinds=["registry"]), headers=admin
    ).json()
    make_unit("SINK-P2", parent=unit)  # a registry event under the sink's unit
    make_unit("SINK-X")  # and one outside it
    reply = client.get(f"/api/v1/integrations/{sink['id']}", headers=admin)
    assert reply.json()["pending"] == 1


def test_a_secret_is_changed_audited_and_still_not_shown(client: TestClient, admin, db: Session):
    sink = client.post("/api/v1/integrations", json=hook(), headers=admin).json()
    reply = client.patch(
        f"/api/v1/integrations/{sink['id']}", json={"secret": "another-one"}, headers=admin
    )
    assert reply.status_code == 200, reply.text
    assert "another-one" not in reply.text
    assert db.scalar(select(Integration.secret).where(Integration.id == sink["id"])) == (
        "another-one"
    )
    actions = db.scalars(
        select(AuditEntry.action)
        .where(AuditEntry.entity == "integration", AuditEntry.entity_id == str(sink["id"]))
        .order_by(AuditEntry.id)
    ).all()
    assert actions == ["create", "update"]


def test_an_amqp_password_in_the_url_is_masked(client: TestClient, admin):
    reply = client.post(
        "/api/v1/integrations",
        json=hook(kind="amqp", url="amqp://fleet:pa55word@mq.example:5672/%2F", secret=None),
        headers=admin,
    )
    assert reply.status_code == 201, reply.text
    assert "pa55word" not in reply.text
    assert reply.json()["url"] == "amqp://fleet:***@mq.example:5672/%2F"


def test_a_url_of_the_wrong_scheme_is_422_on_url(client: TestClient, admin):
    reply = client.post("/api/v1/integrations", json=hook(kind="mqtt"), headers=admin)
    assert reply.status_code == 422
    assert "url" in reply.text


def test_a_taken_name_is_409(client: TestClient, admin):
    assert client.post("/api/v1/integrations", json=hook(), headers=admin).status_code == 201
    assert client.post("/api/v1/integrations", json=hook(), headers=admin).status_code == 409


def test_a_sub_unit_administrator_sees_and_adds_only_sinks_of_their_units(
    client: TestClient, admin, make_unit, make_user, login
):
    unit = make_unit("SINK-S")
    make_user("sub-admin", unit, Role.ADMIN)
    sub = login("sub-admin")
    everything = client.post("/api/v1/integrations", json=hook(), headers=admin).json()
    assert client.post("/api/v1/integrations", json=hook(name="x"), headers=sub).status_code == 403
    mine = client.post("/api/v1/integrations", json=hook(name="mine", unit_id=unit.id), headers=sub)
    assert mine.status_code == 201
    assert [i["id"] for i in client.get("/api/v1/integrations", headers=sub).json()["items"]] == [
        mine.json()["id"]
    ]
    assert client.get(f"/api/v1/integrations/{everything['id']}", headers=sub).status_code == 404


def test_others_may_not_touch_sinks(client: TestClient, root_unit, make_user, login):
    make_user("sink-dispatcher", root_unit, Role.DISPATCHER)
    headers = login("sink-dispatcher")
    assert client.get("/api/v1/integrations", headers=headers).status_code == 403
    assert client.post("/api/v1/integrations", json=hook(), headers=headers).status_code == 403


def test_a_sink_is_deleted_audited(client: TestClient, admin, db: Session):
    sink = client.post("/api/v1/integrations", json=hook(), headers=admin).json()
    assert client.delete(f"/api/v1/integrations/{sink['id']}", headers=admin).status_code == 204
    assert client.get(f"/api/v1/integrations/{sink['id']}", headers=admin).status_code == 404
    entry = db.scalar(
        select(AuditEntry).where(AuditEntry.entity == "integration", AuditEntry.action == "delete")
    )
    assert entry is not None
    assert entry.entity_id == str(sink["id"])


def test_a_positions_sink_shows_how_its_positions_go(client: TestClient, admin, redis):
    sink = client.post("/api/v1/integrations", json=hook(kinds=["positions"]), headers=admin)
    sink_id = sink.json()["id"]
    assert sink.json()["positions"] is None  # none sent yet
    redis.hset(
        POSITION_STATS,
        mapping={f"{sink_id}:sent": 1200, f"{sink_id}:lag_ms": 850, f"{sink_id}:failed": 2},
    )
    reply = client.get(f"/api/v1/integrations/{sink_id}", headers=admin)
    assert reply.json()["positions"] == {
        "sent": 1200,
        "failed": 2,
        "trimmed": 0,
        "lag_ms": 850,
        "last_error": None,
    }
    [listed] = client.get("/api/v1/integrations", headers=admin).json()["items"]
    assert listed["positions"]["lag_ms"] == 850
