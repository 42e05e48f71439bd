"""Who looked at what: reads of a vehicle's positions, trips and file, and exports, are audit
entries of their own kind that a supervisor lists per vehicle; changes are told apart from them."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from fleet import access
from fleet.auth import Actor
from fleet.models import AuditEntry, OrgUnit, Role

VEHICLE = {
    "plate": "浙A·R12345",
    "category": "general",
    "body_class": "sedan",
    "seats": 4,
    "energy": "petrol",
    "tank_l": 60,
}
PERIOD = {"start": "2026-11-02T00:00:00+08:00", "end": "2026-11-03T00:00:00+08:00"}


def _world(client, root_unit: OrgUnit, make_unit, make_user, login):
    make_user("acc-admin", root_unit, Role.ADMIN)
    make_user("acc-disp", root_unit, Role.DISPATCHER)
    make_user("acc-super", root_unit, Role.SUPERVISOR)
    sibling = make_unit("ACC-SIB")
    make_user("acc-sib-super", sibling, Role.SUPERVISOR)
    admin = login("acc-admin")
    vehicle = client.post(
        "/api/v1/vehicles", json={**VEHICLE, "unit_id": root_unit.id}, headers=admin
    ).json()
    return vehicle["id"], {n: login(f"acc-{n}") for n in ("disp", "super", "sib-super", "admin")}


def test_reads_of_a_track_are_listed_per_vehicle_for_supervisors(
    client, root_unit, make_unit, make_user, login
):
    vehicle_id, who = _world(client, root_unit, make_unit, make_user, login)
    for path in ("positions", "trips"):
        reply = client.get(
            f"/api/v1/vehicles/{vehicle_id}/{path}", params=PERIOD, headers=who["disp"]
        )
        assert reply.status_code == 200, reply.text
    listed = client.get(f"/api/v1/vehicles/{vehicle_id}/reads", headers=who["super"])
    assert listed.status_code == 200, listed.text
    page = listed.json()
    reads = [i for i in page["items"] if i["actor"] == "acc-disp"]
    assert [r["what"] for r in reads] == ["trips", "positions"]
    newest = reads[-1]
    assert newest["action"] == "read"
    assert newest["since"].startswith("2026-11-01T16:00:00")
    assert newest["until"].startswith("2026-11-02T16:00:00")
    assert newest["client"] == "testclient"
    assert page["total"] == len(page["items"])

    # Not for a dispatcher; and outside the supervisor's units, the vehicle does not exist.
    assert (
        client.get(f"/api/v1/vehicles/{vehicle_id}/reads", headers=who["disp"]).status_code == 403
    )
    outside = client.get(f"/api/v1/vehicles/{vehicle_id}/reads", headers=who["sib-super"])
    assert outside.status_code == 404


def test_a_refused_read_is_not_recorded_and_reads_are_not_changes(
    client, root_unit, make_unit, make_user, login, db: Session
):
    vehicle_id, who = _world(client, root_unit, make_unit, make_user, login)
    refused = client.get(
        f"/api/v1/vehicles/{vehicle_id}/positions", params=PERIOD, headers=who["sib-super"]
    )
    assert refused.status_code == 404
    assert (
        client.get(f"/api/v1/vehicles/{vehicle_id}/reads", headers=who["super"]).json()["total"]
        == 0
    )
    client.get(f"/api/v1/vehicles/{vehicle_id}/file", headers=who["admin"])
    file = client.get(f"/api/v1/vehicles/{vehicle_id}/file", headers=who["admin"]).json()
    # The first read is not a change of the vehicle: its creation is the only one.
    assert [(c["from"], c["to"]) for c in file["status_changes"]] == [(None, "active")]
    kinds = db.scalars(
        select(AuditEntry.action).where(
            AuditEntry.entity == "vehicle", AuditEntry.entity_id == str(vehicle_id)
        )
    ).all()
    assert sorted(set(kinds)) == ["create", "read"]
    reads = client.get(f"/api/v1/vehicles/{vehicle_id}/reads", headers=who["super"]).json()
    assert [(r["actor"], r["what"], r["since"]) for r in reads["items"]] == [
        ("acc-admin", "vehicle_file", None),
        ("acc-admin", "vehicle_file", None),
    ]


def test_an_export_of_statistics_is_recorded_with_its_format_and_period(
    client, root_unit, make_unit, make_user, login, db: Session
):
    _, who = _world(client, root_unit, make_unit, make_user, login)
    params = {"since": "2026-11-01T00:00:00+08:00", "until": "2026-12-01T00:00:00+08:00"}
    assert client.get("/api/v1/statistics/vehicles", params=params, headers=who["admin"]).is_success
    before = db.scalar(select(AuditEntry.id).order_by(AuditEntry.id.desc()).limit(1))
    got = client.get(
        "/api/v1/statistics/vehicles", params={**params, "format": "csv"}, headers=who["admin"]
    )
    assert got.status_code == 200, got.text
    entry = db.scalars(select(AuditEntry).where(AuditEntry.id > before)).one()
    assert (entry.action, entry.entity, entry.entity_id) == ("export", "statistics", "vehicles")
    assert entry.after is not None
    assert entry.after["format"] == "csv"
    assert entry.after["since"].startswith("2026-10-31T16:00:00")
    assert entry.after["client"] == "testclient"


def test_only_reads_and_exports_go_through_the_read_recorder(db: Session, root_unit):
    actor = Actor.system(root_unit)
    with pytest.raises(ValueError, match="read"):
        access.record(
            session=db,
            actor=actor,
            client="x",
            action="update",
            entity="vehicle",
            entity_id=1,
            what="positions",
        )
