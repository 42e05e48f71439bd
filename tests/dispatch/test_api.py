"""Trip orders through the API: the whole loop, the clear errors, and who may do what."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from fleet import registry
from fleet.auth import Actor
from fleet.models import AuditEntry, Role
from fleet.schemas import DriverCreate
from tests.dispatch.conftest import tomorrow
from tests.factories import add_circle


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


def assign(
    client: TestClient, headers, order_id: int, vehicle_id: int, driver_id: int, reason="指定"
):
    """Holds the vehicle and driver for the order; `reason=None` gives none."""
    body = {"vehicle_id": vehicle_id, "driver_id": driver_id}
    if reason is not None:
        body["reason"] = reason
    return client.post(f"/api/v1/orders/{order_id}/assign", json=body, headers=headers)


def test_the_whole_loop_is_audited(client: TestClient, people, pool, order_body, db: Session):
    order_id = approved_order(client, people, order_body)
    reply = assign(
        client, people["desk"], order_id, pool["vehicles"]["sedan"].id, pool["drivers"][0].id
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["status"] == "assigned"
    assert reply.json()["assignment"]["vehicle_id"] == pool["vehicles"]["sedan"].id
    reply = client.post(
        f"/api/v1/orders/{order_id}/start", json={"odometer_km": 12000.5}, headers=people["desk"]
    )
    assert reply.json()["status"] == "in_progress", reply.text
    backwards = client.post(
        f"/api/v1/orders/{order_id}/finish", json={"odometer_km": 11999}, headers=people["desk"]
    )
    assert backwards.status_code == 422
    reply = client.post(
        f"/api/v1/orders/{order_id}/finish", json={"odometer_km": 12042}, headers=people["desk"]
    )
    assert reply.json()["status"] == "completed", reply.text
    assert (reply.json()["odometer_start_km"], reply.json()["odometer_end_km"]) == (12000.5, 12042)
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
        reply = assign(
            client, people["desk"], order_id, pool["vehicles"][key].id, pool["drivers"][0].id
        )
        assert reply.status_code == 422, reply.text
        assert reply.json()["detail"][0]["loc"][-1] == "vehicle_id"
    reply = assign(
        client, people["desk"], order_id, pool["vehicles"]["mpv"].id, pool["drivers"][0].id
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
    ok = assign(client, people["desk"], first, sedan, chen)
    assert ok.status_code == 200
    # The second starts when the first ends: the turnaround buffer makes them overlap.
    taken = assign(client, people["desk"], second, sedan, liu)
    assert taken.status_code == 409
    assert taken.json()["detail"][0]["loc"][-1] == "vehicle_id"
    busy = assign(client, people["desk"], second, mpv, chen)
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
    freed = assign(client, people["desk"], second, sedan, chen)
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
    reply = assign(
        client, people["asker"], order_id, pool["vehicles"]["sedan"].id, pool["drivers"][0].id
    )
    assert reply.status_code == 403


def test_a_motor_pool_driver_sees_and_drives_only_the_orders_assigned_to_them(
    client: TestClient, people, pool, order_body, db: Session, make_unit, make_user, login
):
    """The pool's drivers serve other units: an order is theirs to see, start and finish once it
    is assigned to them, and no sooner."""
    motor_pool = make_unit("POOL")
    chauffeurs = {}
    for username in ("chauffeur", "other-chauffeur"):
        user = make_user(username, motor_pool, Role.DRIVER)
        chauffeurs[username] = registry.create_driver(
            session=db,
            actor=Actor.system(motor_pool),
            data=DriverCreate(
                name=username, licence_class="C1", unit_id=motor_pool.id, user_id=user.id
            ),
        )
    db.commit()
    mine, theirs = login("chauffeur"), login("other-chauffeur")
    order_id = approved_order(client, people, order_body)
    assert client.get(f"/api/v1/orders/{order_id}", headers=mine).status_code == 404
    reply = assign(
        client,
        people["desk"],
        order_id,
        pool["vehicles"]["sedan"].id,
        chauffeurs["chauffeur"].id,
        "车队派车",
    )
    assert reply.status_code == 200, reply.text
    listed = client.get("/api/v1/orders", headers=mine).json()["items"]
    assert [o["id"] for o in listed] == [order_id]
    assert client.get("/api/v1/orders", headers=theirs).json()["items"] == []
    assert client.post(f"/api/v1/orders/{order_id}/start", headers=theirs).status_code == 404
    reply = client.post(f"/api/v1/orders/{order_id}/start", headers=mine)
    assert reply.json()["status"] == "in_progress", reply.text
    reply = client.post(f"/api/v1/orders/{order_id}/finish", headers=mine)
    assert reply.json()["status"] == "completed", reply.text
    # A finished order stays on the driver's record; a cancelled assignment would not.
    assert client.get(f"/api/v1/orders/{order_id}", headers=mine).status_code == 200


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
    driver = pool["drivers"][0].id
    reply = assign(client, people["desk"], order_id, mpv, driver, reason=None)
    assert reply.status_code == 422
    assert reply.json()["detail"][0]["loc"][-1] == "reason"
    assert "浙A·D10001" in reply.json()["detail"][0]["msg"]
    reply = assign(client, people["desk"], order_id, mpv, driver, "领导指定")
    assert reply.status_code == 200
    assert reply.json()["assignment"]["reason"] == "领导指定"
    other = approved_order(
        client, people, order_body, start_at=tomorrow(8).isoformat(), end_at=tomorrow(9).isoformat()
    )
    reply = assign(client, people["desk"], other, sedan, driver, reason=None)
    assert reply.status_code == 200, reply.text


def test_an_emergency_order_is_assigned_first_and_approved_after(
    client: TestClient, people, pool, order_body, db: Session
):
    from datetime import UTC, datetime, timedelta

    from dispatch.models import TripOrder

    sedan, driver = pool["vehicles"]["sedan"].id, pool["drivers"][0].id
    ordinary = client.post("/api/v1/orders", json=order_body(), headers=people["asker"]).json()
    client.post(f"/api/v1/orders/{ordinary['id']}/submit", headers=people["asker"])
    reply = assign(client, people["desk"], ordinary["id"], sedan, driver, "应急")
    assert reply.status_code == 409  # not approved, not an emergency
    urgent = client.post(
        "/api/v1/orders",
        json=order_body(
            emergency=True, start_at=tomorrow(6).isoformat(), end_at=tomorrow(8).isoformat()
        ),
        headers=people["asker"],
    ).json()
    client.post(f"/api/v1/orders/{urgent['id']}/submit", headers=people["asker"])
    reply = assign(client, people["desk"], urgent["id"], sedan, driver, "应急")
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


def test_the_order_links_its_route_and_the_trips_driven(
    client: TestClient, people, pool, order_body, db: Session
):
    from geoalchemy2.shape import from_shape
    from shapely import LineString, Point

    from telematics.models import Trip

    sedan = pool["vehicles"]["sedan"].id
    order_id = approved_order(client, people, order_body)
    reply = assign(client, people["desk"], order_id, sedan, pool["drivers"][0].id)
    held = reply.json()["assignment"]
    assert held["route_source"] == "straight"  # no roads in the test database
    assert held["route"]["coordinates"] == [
        [120.2106, 30.2452],
        [120.1688, 30.277],
        [120.2106, 30.2452],
    ]
    for hour, metres in ((2, 5200.0), (3, 5100.0), (9, 999.0)):  # the last is after the window
        start = tomorrow(hour)
        db.add(
            Trip(
                vehicle_id=sedan,
                start_at=start,
                end_at=start.replace(minute=30),
                start_point=from_shape(Point(120.2106, 30.2452), srid=4326),
                end_point=from_shape(Point(120.1688, 30.2770), srid=4326),
                path=from_shape(LineString([(120.2106, 30.2452), (120.1688, 30.2770)]), srid=4326),
                distance_m=metres,
                duration_s=1800.0,
            )
        )
    db.commit()
    shown = client.get(f"/api/v1/orders/{order_id}", headers=people["asker"]).json()
    assert len(shown["trips"]) == 2
    assert shown["actual"] == {"distance_m": 10300.0, "duration_s": 3600.0}


NODES = {1: (120.2106, 30.2452), 2: (120.2106, 30.2770), 3: (120.1688, 30.2770)}


def lay_roads(db: Session) -> None:
    """Two road edges: the demo origin -> a corner -> the demo destination, 200 s each."""
    from sqlalchemy import text

    for edge, (a, b) in enumerate(((1, 2), (2, 3)), start=1):
        (x1, y1), (x2, y2) = NODES[a], NODES[b]
        db.execute(
            text(
                "INSERT INTO road (osm_id, highway, maxspeed_kmh, source, target, length_m,"
                " cost_s, reverse_cost_s, geom) VALUES (:e, 'primary', 50, :a, :b, 3000, 200, 200,"
                " ST_SetSRID(ST_MakeLine(ST_MakePoint(:x1, :y1), ST_MakePoint(:x2, :y2)), 4326))"
            ),
            {"e": edge, "a": a, "b": b, "x1": x1, "y1": y1, "x2": x2, "y2": y2},
        )
    db.commit()


def test_suggestions_use_travel_time_on_the_roads_where_loaded(
    client: TestClient, people, pool, order_body, redis, db: Session
):
    lay_roads(db)
    sedan, mpv = pool["vehicles"]["sedan"].id, pool["vehicles"]["mpv"].id
    place(redis, sedan, NODES[1][1], NODES[1][0])  # at the origin
    place(redis, mpv, NODES[3][1], NODES[3][0])  # two edges away
    order_id = approved_order(client, people, order_body)
    body = client.get(f"/api/v1/orders/{order_id}/suggestions", headers=people["desk"]).json()
    travel = {c["vehicle_id"]: c["parts"].get("travel_min") for c in body["candidates"]}
    assert travel == {sedan: 0.0, mpv: round(400 / 60, 1)}


def test_the_route_follows_the_roads_where_they_are_loaded(db: Session, pool, root_unit):
    from geoalchemy2.shape import from_shape
    from shapely import Point

    from dispatch import service
    from dispatch.models import TripOrder

    def order_from(lon: float, lat: float) -> TripOrder:
        """An order (never stored) from (lon, lat) to the same destination."""
        return TripOrder(
            requester_id=None,
            unit_id=root_unit.id,
            purpose="路线",
            passengers=1,
            start_at=tomorrow(1),
            end_at=tomorrow(2),
            origin=from_shape(Point(lon, lat), srid=4326),
            origin_name="起点",
            destinations=[{"name": "终点", "lon": 120.1688, "lat": 30.2770}],
        )

    lay_roads(db)
    route, source = service.planned_route(db, order_from(120.2106, 30.2452))
    assert source == "roads"
    assert (120.2106, 30.2770) in list(route.coords)  # it goes round the corner
    far = order_from(121.5, 31.2)  # Shanghai: no roads loaded there
    assert service.planned_route(db, far)[1] == "straight"


def test_suggestions_offer_merging_with_an_order_going_the_same_way(
    client: TestClient, people, pool, order_body, redis
):
    first = approved_order(client, people, order_body, passengers=3)
    second = approved_order(client, people, order_body, passengers=2)
    body = client.get(f"/api/v1/orders/{second}/suggestions", headers=people["desk"]).json()
    assert [(m["order_id"], m["together"]) for m in body["merge"]] == [(first, 5)]
    far = approved_order(
        client,
        people,
        order_body,
        destinations=[{"point": {"type": "Point", "coordinates": [120.40, 30.40]}, "name": "远"}],
    )
    assert (
        client.get(f"/api/v1/orders/{far}/suggestions", headers=people["desk"]).json()["merge"]
        == []
    )


def test_order_news_reach_the_requester_the_units_staff_and_the_assigned_driver_only():
    from web.live import LiveClient

    item = {"id": 7, "status": "assigned", "unit_id": 1, "requester_id": 10, "driver_user_id": 20}
    hearing = {
        "requester": LiveClient(frozenset(), positions=False, user_id=10),
        "driver": LiveClient(frozenset({2}), user_id=20),
        "staff": LiveClient(frozenset({1}), user_id=30, staff=True),
        "another driver": LiveClient(frozenset({2}), user_id=21),
        "other staff": LiveClient(frozenset({2}), user_id=31, staff=True),
    }
    for client in hearing.values():
        client.offer_orders([item])
    heard = {who for who, client in hearing.items() if client.take_orders() == [item]}
    assert heard == {"requester", "driver", "staff"}


def test_places_offered_are_the_units_most_used_then_its_depots(
    client: TestClient, people, pool, order_body, db: Session, root_unit, make_unit
):

    station = {"point": {"type": "Point", "coordinates": [120.2128, 30.291]}, "name": "杭州东站"}
    market = {"point": {"type": "Point", "coordinates": [120.1688, 30.277]}, "name": "某市场"}
    for destinations in ([station], [station, market], [market], [station]):
        reply = client.post(
            "/api/v1/orders", json=order_body(destinations=destinations), headers=people["asker"]
        )
        assert reply.status_code == 201, reply.text
    for unit, name in ((root_unit, "本单位车库"), (make_unit("ELSE"), "别的单位车库")):
        add_circle(db, unit, name, "depot", (120.21, 30.25), 150)
    db.commit()
    reply = client.get("/api/v1/places", headers=people["asker"])
    assert reply.status_code == 200, reply.text
    offered = [(p["name"], p["kind"], p["uses"]) for p in reply.json()["items"]]
    assert offered == [
        ("市民中心", "used", 4),
        ("杭州东站", "used", 3),
        ("某市场", "used", 2),
        ("本单位车库", "depot", 0),
    ]
    depot = reply.json()["items"][-1]["point"]["coordinates"]
    assert abs(depot[0] - 120.21) < 0.002
    assert abs(depot[1] - 30.25) < 0.002
    assert client.get("/api/v1/places?limit=0", headers=people["asker"]).status_code == 422


def test_a_page_of_orders_costs_the_same_few_queries_whatever_its_length(
    client: TestClient, people, pool, order_body, db: Session
):
    from sqlalchemy import event

    from dispatch import service
    from dispatch.models import TripOrder

    ids = [
        approved_order(
            client,
            people,
            order_body,
            start_at=tomorrow(hour).isoformat(),
            end_at=tomorrow(hour + 1).isoformat(),
        )
        for hour in (1, 4, 7)
    ]
    for order_id, vehicle, driver in zip(ids[:2], ("sedan", "mpv"), (0, 1), strict=False):
        reply = assign(
            client,
            people["desk"],
            order_id,
            pool["vehicles"][vehicle].id,
            pool["drivers"][driver].id,
        )
        assert reply.status_code == 200, reply.text
    orders = [db.get(TripOrder, i) for i in ids]
    statements: list[str] = []

    def count(conn, cursor, statement, *args) -> None:  # type: ignore[no-untyped-def]
        statements.append(statement)

    connection = db.connection()
    event.listen(connection, "before_cursor_execute", count)
    try:
        one = service.views(session=db, orders=orders[:1])
        queries_for_one = len(statements)
        statements.clear()
        three = service.views(session=db, orders=orders)
        queries_for_three = len(statements)
    finally:
        event.remove(connection, "before_cursor_execute", count)
    assert queries_for_one == queries_for_three == 4
    assert one[0] == three[0]
    assert [v["assignment"] is not None for v in three] == [True, True, False]
    assert three[0]["decisions"][0]["approved"] is True

    listed = client.get("/api/v1/orders", headers=people["desk"]).json()
    assert {o["id"] for o in listed["items"]} >= set(ids)
