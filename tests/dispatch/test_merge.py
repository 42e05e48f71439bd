"""Merged trips (合并用车) through the API: one assignment carrying several approved orders, its
checks (seats, overlap, status, scope), its route through every destination, the permit it gives
the geofence engine, the dossier and the costs shared by passengers, and un-merging."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from datetime import timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from fastapi.testclient import TestClient
from sqlalchemy import Connection, select
from sqlalchemy.orm import Session

from dispatch import merging
from dispatch.permits import OrderPermits
from fleet.models import AuditEntry, Role
from geofence.calendar import LocalClock, WorkingCalendar
from geofence.engine import Engine as RuleEngine
from geofence.fences import FenceSet, VehicleInfo
from geofence.rules.base import Fix, Thresholds
from tests.dispatch.conftest import tomorrow
from tests.dispatch.test_api import NODES, approved_order, assign, lay_roads

ORIGIN = (120.2106, 30.2452)  # lon, lat
NORTH = (120.2106, 30.2770)  # NODES[2]
WEST = (120.1688, 30.2770)  # NODES[3]
EAST = (120.2606, 30.2452)  # about 4.8 km east of the origin


def going_to(*places: tuple[float, float]) -> list[dict[str, Any]]:
    return [
        {"point": {"type": "Point", "coordinates": list(p)}, "name": f"地点{n}"}
        for n, p in enumerate(places)
    ]


def field(reply) -> str:
    """The request field a 409 or 422 answer names."""
    return str(reply.json()["detail"][0]["loc"][-1])


def message(reply) -> str:
    return str(reply.json()["detail"][0]["msg"])


def merge(client: TestClient, headers, order_ids: list[int], vehicle_id: int, driver_id: int):
    body = {"order_ids": order_ids, "vehicle_id": vehicle_id, "driver_id": driver_id}
    return client.post("/api/v1/dispatch/merge", json=body, headers=headers)


def test_a_merged_trip_carries_the_orders_and_each_shows_it(
    client: TestClient, people, pool, order_body, db: Session
):
    first = approved_order(
        client, people, order_body, passengers=3, start_at=tomorrow(1).isoformat()
    )
    second = approved_order(
        client,
        people,
        order_body,
        passengers=2,
        start_at=tomorrow(2).isoformat(),
        end_at=tomorrow(6).isoformat(),
    )
    mpv, driver = pool["vehicles"]["mpv"], pool["drivers"][0]
    reply = merge(client, people["desk"], [second, first], mpv.id, driver.id)
    assert reply.status_code == 201, reply.text
    answer = reply.json()
    assert [o["id"] for o in answer["items"]] == [first, second]
    for order_id, share in ((first, 0.6), (second, 0.4)):
        shown = client.get(f"/api/v1/orders/{order_id}", headers=people["asker"]).json()
        assert shown["status"] == "assigned"
        held = shown["assignment"]
        assert held["id"] == answer["assignment_id"]
        assert held["order_ids"] == [first, second]
        assert (held["vehicle_id"], held["driver_id"]) == (mpv.id, driver.id)
        assert held["passengers"] == 5
        assert held["share"] == share
        # The windows joined: from the first start to the last end, with the turnaround.
        slack = timedelta(minutes=30)
        assert held["from"] == (tomorrow(1) - slack).isoformat().replace("+00:00", "Z")
        assert held["to"] == (tomorrow(6) + slack).isoformat().replace("+00:00", "Z")
    # Every change is audited: each order's and the trip's.
    actions = db.execute(
        select(AuditEntry.entity, AuditEntry.entity_id).where(AuditEntry.action == "merge")
    ).all()
    assert sorted(actions) == sorted(
        [("trip_order", str(first)), ("trip_order", str(second)),
         ("assignment", str(answer["assignment_id"]))]
    )  # fmt: skip


def test_the_passengers_must_fit_the_seats(client: TestClient, people, pool, order_body):
    first = approved_order(client, people, order_body, passengers=3)
    second = approved_order(client, people, order_body, passengers=2)
    sedan, mpv, driver = (
        pool["vehicles"]["sedan"],
        pool["vehicles"]["mpv"],
        pool["drivers"][0],
    )
    reply = merge(client, people["desk"], [first, second], sedan.id, driver.id)  # 4 seats
    assert reply.status_code == 422, reply.text
    assert field(reply) == "order_ids"
    assert "5 passengers" in message(reply)
    # Nothing was held: both are still approved, and the larger car takes them.
    assert client.get(f"/api/v1/orders/{first}", headers=people["desk"]).json()["status"] == (
        "approved"
    )
    assert merge(client, people["desk"], [first, second], mpv.id, driver.id).status_code == 201


def test_the_drivers_licence_must_cover_the_merged_car(
    client: TestClient, people, pool, order_body, db: Session, root_unit
):
    from fleet.auth import Actor
    from tests.factories import add_driver

    first = approved_order(client, people, order_body, passengers=1)
    second = approved_order(client, people, order_body, passengers=1)
    sedan = pool["vehicles"]["sedan"]
    automatic_only = add_driver(
        db, root_unit, "自动挡", actor=Actor.system(root_unit), licence_class="C2"
    )
    db.commit()
    reply = merge(client, people["desk"], [first, second], sedan.id, automatic_only.id)
    assert reply.status_code == 422, reply.text
    assert field(reply) == "driver_id"
    assert "C1" in message(reply)
    ok = merge(client, people["desk"], [first, second], sedan.id, pool["drivers"][0].id)
    assert ok.status_code == 201, ok.text


def test_an_overlap_with_another_hold_is_409(client: TestClient, people, pool, order_body):
    first = approved_order(client, people, order_body, passengers=1)
    second = approved_order(
        client,
        people,
        order_body,
        passengers=1,
        start_at=tomorrow(6).isoformat(),
        end_at=tomorrow(8).isoformat(),
    )
    # Another order holds the MPV at 07:00-09:00: inside the joined window 01:00-08:00 only.
    other = approved_order(
        client,
        people,
        order_body,
        start_at=tomorrow(7).isoformat(),
        end_at=tomorrow(9).isoformat(),
    )
    mpv, drivers = pool["vehicles"]["mpv"], pool["drivers"]
    assert assign(client, people["desk"], other, mpv.id, drivers[1].id).status_code == 200
    reply = merge(client, people["desk"], [first, second], mpv.id, drivers[0].id)
    assert reply.status_code == 409, reply.text
    assert field(reply) == "vehicle_id"
    # The driver of the other hold is refused too, with another car.
    sedan = pool["vehicles"]["sedan"]
    reply = merge(client, people["desk"], [first, second], sedan.id, drivers[1].id)
    assert reply.status_code == 409, reply.text
    assert field(reply) == "driver_id"
    for order_id in (first, second):
        shown = client.get(f"/api/v1/orders/{order_id}", headers=people["desk"]).json()
        assert (shown["status"], shown["assignment"]) == ("approved", None)


def test_only_approved_orders_of_the_callers_scope_are_merged(
    client: TestClient, people, pool, order_body, make_unit, make_user, login
):
    approved = approved_order(client, people, order_body, passengers=1)
    draft = client.post(
        "/api/v1/orders", json=order_body(passengers=1), headers=people["asker"]
    ).json()["id"]
    mpv, driver = pool["vehicles"]["mpv"], pool["drivers"][0]
    reply = merge(client, people["desk"], [approved, draft], mpv.id, driver.id)
    assert reply.status_code == 409, reply.text
    assert field(reply) == "order_ids"
    assert f"#{draft} is draft" in message(reply)
    # The desk of a unit below does not find the order of the unit above.
    elsewhere = make_unit("OTHER", name="别的单位")
    make_user("faraway", elsewhere, Role.REQUESTER)
    theirs = client.post(
        "/api/v1/orders", json=order_body(passengers=1), headers=login("faraway")
    ).json()["id"]
    make_user("otherdesk", elsewhere, Role.DISPATCHER)
    reply = merge(client, login("otherdesk"), [approved, theirs], mpv.id, driver.id)
    assert reply.status_code == 404, reply.text
    # A requester may not merge at all; one order alone is no merge.
    assert merge(client, people["asker"], [approved, draft], mpv.id, driver.id).status_code == 403
    reply = merge(client, people["desk"], [approved], mpv.id, driver.id)
    assert reply.status_code == 422


def test_the_route_runs_through_every_destination_in_a_sensible_order_on_the_roads(
    client: TestClient, people, pool, order_body, db: Session
):
    lay_roads(db)  # origin -> NORTH -> WEST
    # The first order goes farther (WEST, past NORTH); the second stops at NORTH on the way.
    far = approved_order(client, people, order_body, passengers=1, destinations=going_to(WEST))
    near = approved_order(client, people, order_body, passengers=1, destinations=going_to(NORTH))
    mpv, driver = pool["vehicles"]["mpv"], pool["drivers"][0]
    reply = merge(client, people["desk"], [far, near], mpv.id, driver.id)
    assert reply.status_code == 201, reply.text
    held = reply.json()["items"][0]["assignment"]
    assert held["route_source"] == "roads"
    line = [tuple(p) for p in held["route"]["coordinates"]]
    assert line[0] == ORIGIN
    assert line[-1] == ORIGIN
    assert NORTH in line
    assert WEST in line
    assert line.index(NORTH) < line.index(WEST)  # the nearer stop first
    assert NODES[1] == ORIGIN


def test_visiting_order_is_the_shortest_tour_pure():
    day = tomorrow(1)
    riders = [
        merging.Rider(1, 1, day, day + timedelta(hours=1), (30.0, 120.0), ((30.0, 120.3),)),
        merging.Rider(2, 1, day, day + timedelta(hours=1), (30.0, 120.0), ((30.0, 120.1),)),
        merging.Rider(3, 1, day, day + timedelta(hours=1), (30.0, 120.0), ((30.0, 120.2),)),
    ]
    assert merging.stops(riders) == [
        (30.0, 120.0),
        (30.0, 120.1),
        (30.0, 120.2),
        (30.0, 120.3),
        (30.0, 120.0),
    ]
    assert merging.cost_shares({1: 3, 2: 1}) == {1: 0.75, 2: 0.25}
    assert merging.seats_short(riders, 2) == 1
    assert merging.seats_short(riders, 3) == 0


class _Bound:
    """The test's connection as `OrderPermits` takes an engine: it sees the test's rows."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def connect(self) -> AbstractContextManager[Connection]:
        return nullcontext(self.connection)


def test_the_permit_covers_the_merged_corridor_and_window(
    client: TestClient, people, pool, order_body, db: Session, root_unit
):
    north = approved_order(
        client,
        people,
        order_body,
        passengers=1,
        destinations=going_to(NORTH),
        start_at=tomorrow(1).isoformat(),
        end_at=tomorrow(2).isoformat(),
    )
    east = approved_order(
        client,
        people,
        order_body,
        passengers=1,
        destinations=going_to(EAST),
        start_at=tomorrow(1).isoformat(),
        end_at=tomorrow(4).isoformat(),
    )
    mpv, driver = pool["vehicles"]["mpv"], pool["drivers"][0]
    permits = OrderPermits(_Bound(db.connection()))  # type: ignore[arg-type]
    start = tomorrow(1).timestamp()
    # Driving east, along the second order's way, for 20 minutes.
    drive = [Fix(start + 10 * i, 30.2452, 120.2106 + i * 0.0004, 40.0, True) for i in range(120)]
    car = VehicleInfo(id=mpv.id, unit_id=root_unit.id, unit_path="", category="general")
    calendar = WorkingCalendar(
        days=dict.fromkeys(range(15_000, 30_000), True), default_hours=(0, 86_400)
    )

    def kinds() -> set[str]:
        engine = RuleEngine(
            fences=FenceSet([]),
            calendar=calendar,
            clock=LocalClock(ZoneInfo("Asia/Shanghai")),
            thresholds=Thresholds(),
            permits=permits,
        )
        outcome = engine.run({car.id: drive}, {}, {car.id: car})
        return {a.event.kind for a in outcome.alerts}

    # The first order alone: its corridor goes north, so driving east is off route.
    assert assign(client, people["desk"], north, mpv.id, driver.id).status_code == 200
    assert "off_route" in kinds()
    client.post(f"/api/v1/orders/{north}/cancel", json={}, headers=people["desk"])
    north = approved_order(
        client,
        people,
        order_body,
        passengers=1,
        destinations=going_to(NORTH),
        start_at=tomorrow(1).isoformat(),
        end_at=tomorrow(2).isoformat(),
    )
    reply = merge(client, people["desk"], [north, east], mpv.id, driver.id)
    assert reply.status_code == 201, reply.text
    found = permits.permits([mpv.id], start, start + 1200)[mpv.id]
    assert len(found) == 1
    permit = found[0]
    assert permit.order_id == east  # the lead: the first to start (the lower id of a tie)
    slack = timedelta(minutes=30).total_seconds()
    assert (permit.start_t, permit.end_t) == (start - slack, tomorrow(4).timestamp() + slack)
    assert (30.2452, 120.2606) in permit.places
    assert (30.2770, 120.2106) in permit.places
    assert "off_route" not in kinds()
    assert "no_order" not in kinds()


def test_the_dossier_shows_the_shared_trip_and_costs_are_shared_by_passengers(
    client: TestClient, people, pool, order_body
):
    three = approved_order(client, people, order_body, passengers=3)
    one = approved_order(client, people, order_body, passengers=1)
    mpv, driver = pool["vehicles"]["mpv"], pool["drivers"][0]
    reply = merge(client, people["desk"], [three, one], mpv.id, driver.id)
    assert reply.status_code == 201, reply.text
    toll = {
        "kind": "toll",
        "vehicle_id": mpv.id,
        "at": (tomorrow(2)).isoformat(),
        "amount": "40.00",
        "vendor": "绕城高速",
    }
    reply = client.post("/api/v1/costs", json=toll, headers=people["desk"])
    assert reply.status_code == 201, reply.text
    cost = client.get(f"/api/v1/costs/{reply.json()['id']}", headers=people["desk"]).json()
    assert {
        (a["order_id"], a["share"], Decimal(str(a["amount"]))) for a in cost["allocations"]
    } == {
        (three, 0.75, Decimal("30")),
        (one, 0.25, Decimal("10")),
    }
    for order_id, share in ((three, 0.75), (one, 0.25)):
        dossier = client.get(f"/api/v1/orders/{order_id}/dossier", headers=people["desk"])
        assert dossier.status_code == 200, dossier.text
        held = dossier.json()["assignment"]
        assert [(s["order_id"], s["passengers"], s["share"]) for s in held["shared"]] == [
            (three, 3, 0.75),
            (one, 1, 0.25),
        ]
        assert held["share"] == share
        mine = [c for c in dossier.json()["costs"]["items"] if c["kind"] == "toll"]
        assert [c["allocated"] for c in mine] == [40 * share]
    html = client.get(f"/api/v1/orders/{one}/dossier.html", headers=people["desk"])
    assert html.status_code == 200
    assert "合并用车 Shared trip" in html.text
    assert f"#{three}" in html.text


def test_unmerging_returns_the_orders_to_approved_before_the_trip_starts(
    client: TestClient, people, pool, order_body, db: Session
):
    first = approved_order(client, people, order_body, passengers=1)
    second = approved_order(client, people, order_body, passengers=1)
    mpv, driver = pool["vehicles"]["mpv"], pool["drivers"][0]
    reply = merge(client, people["desk"], [first, second], mpv.id, driver.id)
    trip = reply.json()["assignment_id"]
    url = f"/api/v1/dispatch/merge/{trip}/unmerge"
    assert client.post(url, headers=people["asker"]).status_code == 403
    reply = client.post(url, json={"comment": "分开走"}, headers=people["desk"])
    assert reply.status_code == 200, reply.text
    assert [(o["id"], o["status"], o["assignment"]) for o in reply.json()["items"]] == [
        (first, "approved", None),
        (second, "approved", None),
    ]
    assert client.post(url, headers=people["desk"]).status_code == 404  # it is no more
    assert db.scalar(
        select(AuditEntry.id).where(
            AuditEntry.action == "unmerge", AuditEntry.entity == "assignment"
        )
    )
    # The car is free again: merged anew, started, and then un-merging is refused.
    reply = merge(client, people["desk"], [first, second], mpv.id, driver.id)
    assert reply.status_code == 201, reply.text
    trip = reply.json()["assignment_id"]
    reply = client.post(f"/api/v1/orders/{first}/start", headers=people["desk"])
    assert reply.status_code == 200, reply.text
    # One car, one trip: the other order set off with it.
    assert client.get(f"/api/v1/orders/{second}", headers=people["desk"]).json()["status"] == (
        "in_progress"
    )
    reply = client.post(f"/api/v1/dispatch/merge/{trip}/unmerge", headers=people["desk"])
    assert reply.status_code == 409, reply.text
    reply = client.post(f"/api/v1/orders/{second}/finish", headers=people["desk"])
    assert reply.status_code == 200, reply.text
    assert client.get(f"/api/v1/orders/{first}", headers=people["desk"]).json()["status"] == (
        "completed"
    )


def test_a_merged_order_cancelled_leaves_the_trip_to_the_others(
    client: TestClient, people, pool, order_body
):
    first = approved_order(client, people, order_body, passengers=1)
    second = approved_order(client, people, order_body, passengers=1)
    mpv, driver = pool["vehicles"]["mpv"], pool["drivers"][0]
    merge(client, people["desk"], [first, second], mpv.id, driver.id)
    reply = client.post(f"/api/v1/orders/{first}/cancel", json={}, headers=people["asker"])
    assert reply.status_code == 200, reply.text
    held = client.get(f"/api/v1/orders/{second}", headers=people["desk"]).json()["assignment"]
    assert held["order_ids"] == [second]
    assert held["share"] == 1.0


def test_an_assigned_order_with_seats_to_spare_takes_another_aboard(
    client: TestClient, people, pool, order_body
):
    first = approved_order(client, people, order_body, passengers=2)
    mpv, driver = pool["vehicles"]["mpv"], pool["drivers"][0]
    assert assign(client, people["desk"], first, mpv.id, driver.id).status_code == 200
    second = approved_order(client, people, order_body, passengers=2)
    options = client.get(f"/api/v1/orders/{second}/suggestions", headers=people["desk"]).json()
    assert [(m["order_id"], m["vehicle_id"], m["spare_seats"]) for m in options["merge"]] == [
        (first, mpv.id, 5)
    ]
    reply = merge(client, people["desk"], [second, first], mpv.id, driver.id)
    assert reply.status_code == 201, reply.text
    assert {o["assignment"]["passengers"] for o in reply.json()["items"]} == {4}
    # A third now sees the car with the trip's four aboard: three seats to spare.
    third = approved_order(client, people, order_body, passengers=1)
    options = client.get(f"/api/v1/orders/{third}/suggestions", headers=people["desk"]).json()
    spare = {m["order_id"]: m.get("spare_seats") for m in options["merge"]}
    assert spare[first] == spare[second] == 3
    # Taking the third aboard names every order of the trip: leaving one out is refused.
    reply = merge(client, people["desk"], [third, first], mpv.id, driver.id)
    assert reply.status_code == 422, reply.text
    assert field(reply) == "order_ids"
    assert f"#{second}" in message(reply)


def test_the_vehicle_file_lists_the_orders_a_merged_trip_carried(
    client: TestClient, people, pool, order_body
):
    first = approved_order(client, people, order_body, passengers=1)
    second = approved_order(client, people, order_body, passengers=1)
    mpv, driver = pool["vehicles"]["mpv"], pool["drivers"][0]
    assert merge(client, people["desk"], [first, second], mpv.id, driver.id).status_code == 201
    file = client.get(f"/api/v1/vehicles/{mpv.id}/file", headers=people["desk"])
    assert file.status_code == 200, file.text
    assert [a["order_ids"] for a in file.json()["assignments"]] == [[first, second]]
    html = client.get(f"/api/v1/vehicles/{mpv.id}/file.html", headers=people["desk"]).text
    assert f"#{first} + #{second}" in html


def test_an_emergency_order_assigned_before_its_approval_is_not_merged(
    client: TestClient, people, pool, order_body
):
    approved = approved_order(client, people, order_body, passengers=1)
    urgent = client.post(
        "/api/v1/orders", json=order_body(passengers=1, emergency=True), headers=people["asker"]
    ).json()["id"]
    client.post(f"/api/v1/orders/{urgent}/submit", headers=people["asker"])
    sedan, mpv, drivers = pool["vehicles"]["sedan"], pool["vehicles"]["mpv"], pool["drivers"]
    assert assign(client, people["desk"], urgent, sedan.id, drivers[1].id).status_code == 200
    reply = merge(client, people["desk"], [approved, urgent], mpv.id, drivers[0].id)
    assert reply.status_code == 409, reply.text
    assert field(reply) == "order_ids"
    assert f"#{urgent} is not approved yet" in message(reply)
