"""Trip orders through the API: the whole loop, the clear errors, and who may do what."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from fleet.models import AuditEntry
from tests.dispatch.conftest import tomorrow


def approved_order(client: TestClient, people, order_body, **changes) -> int:
    reply = client.post("/api/v1/orders", json=order_body(**changes), headers=people["asker"])
    assert reply.status_code == 201, reply.text
    order_id = reply.json()["id"]
    assert (
        client.post(f"/api/v1/orders/{order_id}/submit", headers=people["asker"]).status_code == 200
    )
    reply = client.post(f"/api/v1/orders/{order_id}/approve", headers=people["boss"])
    assert reply.json()["status"] == "approved", reply.text
    return order_id


def test_the_whole_loop_is_audited(client: TestClient, people, pool, order_body, db: Session):
    order_id = approved_order(client, people, order_body)
    reply = client.post(
        f"/api/v1/orders/{order_id}/assign",
        json={
            "vehicle_id": pool["vehicles"]["sedan"].id,
            "driver_id": pool["drivers"][0].id,
            "reason": "指定",
        },
        headers=people["desk"],
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["status"] == "assigned"
    assert reply.json()["assignment"]["vehicle_id"] == pool["vehicles"]["sedan"].id
    for step, status in (("start", "in_progress"), ("finish", "completed")):
        reply = client.post(f"/api/v1/orders/{order_id}/{step}", headers=people["desk"])
        assert reply.json()["status"] == status, reply.text
    actions = db.scalars(
        select(AuditEntry.action)
        .where(AuditEntry.entity == "trip_order", AuditEntry.entity_id == str(order_id))
        .order_by(AuditEntry.id)
    ).all()
    assert actions == ["create", "submit", "approve", "assign", "start", "finish"]
    mine = client.get("/api/v1/orders?mine=true", headers=people["asker"]).json()
    assert [o["id"] for o in mine["items"]] == [order_id]


def test_bad_orders_get_clear_errors(client: TestClient, people, pool, order_body):
    cases = {
        "end_at": order_body(end_at=tomorrow(0).isoformat()),
        "start_at": order_body(start_at="2020-01-01T08:00:00+08:00"),
        "passengers": order_body(passengers=9),
        "origin": order_body(origin={"type": "Point", "coordinates": [200, 30]}),
        "destinations": order_body(destinations=[]),
    }
    for field, body in cases.items():
        reply = client.post("/api/v1/orders", json=body, headers=people["asker"])
        assert reply.status_code == 422, (field, reply.text)
        assert field in str(reply.json()["detail"]), (field, reply.text)
    naive = order_body(start_at="2026-12-01T08:00:00")
    assert client.post("/api/v1/orders", json=naive, headers=people["asker"]).status_code == 422


def test_a_seven_passenger_order_never_gets_a_five_seat_car_nor_a_sealed_one(
    client: TestClient, people, pool, order_body
):
    order_id = approved_order(client, people, order_body, passengers=7)
    for key in ("sedan", "sealed"):
        reply = client.post(
            f"/api/v1/orders/{order_id}/assign",
            json={
                "vehicle_id": pool["vehicles"][key].id,
                "driver_id": pool["drivers"][0].id,
                "reason": "指定",
            },
            headers=people["desk"],
        )
        assert reply.status_code == 422, reply.text
        assert reply.json()["detail"][0]["loc"][-1] == "vehicle_id"
    reply = client.post(
        f"/api/v1/orders/{order_id}/assign",
        json={
            "vehicle_id": pool["vehicles"]["mpv"].id,
            "driver_id": pool["drivers"][0].id,
            "reason": "指定",
        },
        headers=people["desk"],
    )
    assert reply.status_code == 200


def test_overlapping_assignment_of_a_vehicle_or_driver_is_409(
    client: TestClient, people, pool, order_body
):
    first = approved_order(client, people, order_body)
    second = approved_order(
        client, people, order_body, start_at=tomorrow(5).isoformat(), end_at=tomorrow(7).isoformat()
    )
    sedan, mpv = pool["vehicles"]["sedan"].id, pool["vehicles"]["mpv"].id
    chen, liu = (d.id for d in pool["drivers"])
    url = "/api/v1/orders/{}/assign"
    ok = client.post(
        url.format(first),
        json={"vehicle_id": sedan, "driver_id": chen, "reason": "指定"},
        headers=people["desk"],
    )
    assert ok.status_code == 200
    # The second starts when the first ends: the turnaround buffer makes them overlap.
    taken = client.post(
        url.format(second),
        json={"vehicle_id": sedan, "driver_id": liu, "reason": "指定"},
        headers=people["desk"],
    )
    assert taken.status_code == 409
    assert taken.json()["detail"][0]["loc"][-1] == "vehicle_id"
    busy = client.post(
        url.format(second),
        json={"vehicle_id": mpv, "driver_id": chen, "reason": "指定"},
        headers=people["desk"],
    )
    assert busy.status_code == 409
    assert busy.json()["detail"][0]["loc"][-1] == "driver_id"
    assert (
        client.get(f"/api/v1/orders/{second}", headers=people["desk"]).json()["status"]
        == "approved"
    )
    # Cancelling the first frees both.
    client.post(
        f"/api/v1/orders/{first}/cancel", json={"comment": "会议取消"}, headers=people["asker"]
    )
    freed = client.post(
        url.format(second),
        json={"vehicle_id": sedan, "driver_id": chen, "reason": "指定"},
        headers=people["desk"],
    )
    assert freed.status_code == 200, freed.text


def test_who_may_do_what(client: TestClient, people, pool, order_body):
    reply = client.post("/api/v1/orders", json=order_body(), headers=people["asker"])
    order_id = reply.json()["id"]
    # an approver cannot approve a draft; a requester cannot approve at all
    assert (
        client.post(f"/api/v1/orders/{order_id}/approve", headers=people["boss"]).status_code == 409
    )
    client.post(f"/api/v1/orders/{order_id}/submit", headers=people["asker"])
    assert (
        client.post(f"/api/v1/orders/{order_id}/approve", headers=people["asker"]).status_code
        == 403
    )
    reply = client.post(f"/api/v1/orders/{order_id}/reject", json={}, headers=people["boss"])
    assert reply.status_code == 422
    reply = client.post(
        f"/api/v1/orders/{order_id}/reject", json={"comment": "请合并用车"}, headers=people["boss"]
    )
    assert reply.json()["status"] == "rejected"
    assert reply.json()["decisions"][0]["comment"] == "请合并用车"
    reply = client.post(
        f"/api/v1/orders/{order_id}/assign",
        json={
            "vehicle_id": pool["vehicles"]["sedan"].id,
            "driver_id": pool["drivers"][0].id,
            "reason": "指定",
        },
        headers=people["asker"],
    )
    assert reply.status_code == 403


def place(redis, vehicle_id: int, lat: float, lon: float, age_h: float = 0.0) -> None:
    """A last position as the ingest worker leaves it in Redis."""
    import json
    import time

    from telematics import stream

    fix_ms = int((time.time() - age_h * 3600) * 1000)
    redis.hset(
        stream.LAST_POSITIONS,
        vehicle_id,
        json.dumps({"vehicle_id": vehicle_id, "fix_ms": fix_ms, "lat": lat, "lon": lon}),
    )


def test_suggestions_rank_with_parts_and_say_why_others_are_left_out(
    client: TestClient, people, pool, order_body, redis
):
    sedan, mpv, sealed = (pool["vehicles"][k].id for k in ("sedan", "mpv", "sealed"))
    place(redis, sedan, 30.2452, 120.2106)  # at the origin
    place(redis, mpv, 30.30, 120.25)
    place(redis, sealed, 30.2452, 120.2106)
    order_id = approved_order(client, people, order_body)
    reply = client.get(f"/api/v1/orders/{order_id}/suggestions", headers=people["desk"])
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert [c["vehicle_id"] for c in body["candidates"]] == [sedan, mpv]
    assert body["candidates"][0]["parts"]["distance_km"] < 0.1
    assert {e["vehicle_id"]: e["reason"] for e in body["excluded"]}[sealed].startswith("not active")
    assert len(body["drivers"]) == 2
    stale = approved_order(client, people, order_body, passengers=5)
    place(redis, mpv, 30.30, 120.25, age_h=30)
    body = client.get(f"/api/v1/orders/{stale}/suggestions", headers=people["desk"]).json()
    assert body["candidates"] == []
    assert "tracker not reporting" in {e["reason"] for e in body["excluded"]}
    assert (
        client.get(f"/api/v1/orders/{stale}/suggestions", headers=people["asker"]).status_code
        == 403
    )


def test_the_plan_covers_the_approved_orders_and_beats_or_ties_greedy(
    client: TestClient, people, pool, order_body, redis
):
    sedan, mpv = pool["vehicles"]["sedan"].id, pool["vehicles"]["mpv"].id
    place(redis, sedan, 30.2452, 120.2106)
    place(redis, mpv, 30.2452, 120.2106)
    small = approved_order(client, people, order_body, passengers=2)
    large = approved_order(client, people, order_body, passengers=6)
    reply = client.post("/api/v1/dispatch/plan", headers=people["desk"])
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert {(p["order_id"], p["vehicle_id"]) for p in body["pairs"]} == {
        (small, sedan),
        (large, mpv),
    }
    assert len({p["driver_id"] for p in body["pairs"]}) == 2  # overlapping windows: two drivers
    assert body["unserved"] == []
    assert body["total_cost"] <= body["greedy_total_cost"] + 1e-6


def test_choosing_other_than_the_top_suggestion_needs_a_reason(
    client: TestClient, people, pool, order_body, redis
):
    sedan, mpv = pool["vehicles"]["sedan"].id, pool["vehicles"]["mpv"].id
    place(redis, sedan, 30.2452, 120.2106)  # at the origin: the top suggestion
    place(redis, mpv, 30.35, 120.30)
    order_id = approved_order(client, people, order_body)
    url = f"/api/v1/orders/{order_id}/assign"
    driver = pool["drivers"][0].id
    reply = client.post(url, json={"vehicle_id": mpv, "driver_id": driver}, headers=people["desk"])
    assert reply.status_code == 422
    assert reply.json()["detail"][0]["loc"][-1] == "reason"
    assert "浙A·D10001" in reply.json()["detail"][0]["msg"]
    reply = client.post(
        url,
        json={"vehicle_id": mpv, "driver_id": driver, "reason": "领导指定"},
        headers=people["desk"],
    )
    assert reply.status_code == 200
    assert reply.json()["assignment"]["reason"] == "领导指定"
    other = approved_order(
        client, people, order_body, start_at=tomorrow(8).isoformat(), end_at=tomorrow(9).isoformat()
    )
    reply = client.post(
        f"/api/v1/orders/{other}/assign",
        json={"vehicle_id": sedan, "driver_id": driver},
        headers=people["desk"],
    )
    assert reply.status_code == 200, reply.text


def test_an_emergency_order_is_assigned_first_and_approved_after(
    client: TestClient, people, pool, order_body, db: Session
):
    from datetime import UTC, datetime, timedelta

    from dispatch.models import TripOrder

    assign = {"vehicle_id": pool["vehicles"]["sedan"].id, "driver_id": pool["drivers"][0].id}
    assign["reason"] = "应急"
    ordinary = client.post("/api/v1/orders", json=order_body(), headers=people["asker"]).json()
    client.post(f"/api/v1/orders/{ordinary['id']}/submit", headers=people["asker"])
    reply = client.post(
        f"/api/v1/orders/{ordinary['id']}/assign", json=assign, headers=people["desk"]
    )
    assert reply.status_code == 409  # not approved, not an emergency
    urgent = client.post(
        "/api/v1/orders",
        json=order_body(
            emergency=True, start_at=tomorrow(6).isoformat(), end_at=tomorrow(8).isoformat()
        ),
        headers=people["asker"],
    ).json()
    client.post(f"/api/v1/orders/{urgent['id']}/submit", headers=people["asker"])
    reply = client.post(
        f"/api/v1/orders/{urgent['id']}/assign", json=assign, headers=people["desk"]
    )
    assert reply.status_code == 200, reply.text
    assert (reply.json()["status"], reply.json()["approval"]) == ("assigned", "pending")
    pending = client.get("/api/v1/approvals/pending", headers=people["boss"]).json()["items"]
    assert {o["id"] for o in pending} == {ordinary["id"], urgent["id"]}
    # Not overdue yet; two days on, it is.
    assert client.get("/api/v1/approvals/overdue", headers=people["boss"]).json()["items"] == []
    row = db.get(TripOrder, urgent["id"])
    row.created_at = datetime.now(UTC) - timedelta(days=2)
    db.commit()
    overdue = client.get("/api/v1/approvals/overdue", headers=people["boss"]).json()["items"]
    assert [o["id"] for o in overdue] == [urgent["id"]]
    done = client.post(f"/api/v1/orders/{urgent['id']}/approve", headers=people["boss"]).json()
    assert (done["status"], done["approval"]) == ("assigned", "approved")
    assert client.get("/api/v1/approvals/overdue", headers=people["boss"]).json()["items"] == []
    again = client.post(f"/api/v1/orders/{urgent['id']}/approve", headers=people["boss"])
    assert again.status_code == 409
