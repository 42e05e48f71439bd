"""Scope (issue 16, item 5), against the running API on the demo database: a sub-unit
administrator reaches past their subtree, a driver reads their colleagues' orders, a requester
reads the fence layer from the tiles; each attack, and the refusal asserted.

The demo's units: GOV (root) with JGSWJ (and CD under it), GAJ and YJJ.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import timedelta

import httpx2 as httpx
import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from fleet.db import utcnow
from fleet.demo import DEMO_PASSWORD
from geofence import service as geofence_service
from tests.web.conftest import Stack

# A box over the whole demo city: a "depot" no car is ever outside of.
CITY = {
    "type": "Polygon",
    "coordinates": [[[119.9, 30.1], [120.4, 30.1], [120.4, 30.5], [119.9, 30.5], [119.9, 30.1]]],
}


def _login(stack: Stack, username: str, password: str = DEMO_PASSWORD) -> httpx.Client:
    answer = httpx.post(
        f"{stack.url}/api/v1/auth/token", data={"username": username, "password": password}
    )
    answer.raise_for_status()
    return httpx.Client(
        base_url=f"{stack.url}/api/v1",
        headers={"Authorization": f"Bearer {answer.json()['access_token']}"},
        timeout=30,
    )


def _unit(stack: Stack, code: str) -> int:
    return stack.value("SELECT id FROM org_unit WHERE code = :code", code=code)


@pytest.fixture(scope="module")
def clients(stack: Stack) -> Iterator[dict[str, httpx.Client]]:
    """The demo's admin (root), driver, requester and supervisor, and, made by the admin through
    the API, an administrator of GAJ and of YJJ and a requester of CD (the driver's unit)."""
    got = {name: _login(stack, name) for name in ("admin", "driver", "requester", "supervisor")}
    for username, role, unit in (
        ("gaj-admin", "admin", "GAJ"),
        ("yjj-admin", "admin", "YJJ"),
        ("cd-requester", "requester", "CD"),
    ):
        made = got["admin"].post(
            "/users",
            json={
                "username": username,
                "password": DEMO_PASSWORD,
                "roles": [role],
                "unit_id": _unit(stack, unit),
            },
        )
        assert made.status_code == 201, made.text
        got[username] = _login(stack, username)
    yield got
    for client in got.values():
        client.close()


def test_a_sub_unit_administrator_cannot_write_the_shared_calendar(
    clients: dict[str, httpx.Client],
) -> None:
    day = (utcnow() + timedelta(days=400)).date().isoformat()
    refused = clients["gaj-admin"].put(f"/calendar/{day}", json={"working": False, "note": "x"})
    assert refused.status_code == 403, refused.text
    year = clients["admin"].get("/calendar", params={"year": day[:4]}).json()
    assert all(d["note"] != "x" for d in year["days"] if d["day"] == day)
    assert (
        clients["admin"].put(f"/calendar/{day}", json={"working": True, "note": "ok"}).status_code
        == 200
    )


def test_a_sub_unit_depot_fence_without_units_applies_only_to_that_subtree(
    stack: Stack, clients: dict[str, httpx.Client]
) -> None:
    made = clients["gaj-admin"].post(
        "/fences", json={"name": "GAJ everywhere", "kind": "depot", "geometry": CITY}
    )
    assert made.status_code == 201, made.text
    fence_id = made.json()["id"]
    sibling = stack.value("SELECT min(id) FROM vehicle WHERE unit_id = :u", u=_unit(stack, "YJJ"))
    own = stack.value("SELECT min(id) FROM vehicle WHERE unit_id = :u", u=_unit(stack, "GAJ"))
    try:
        # What the ingest worker's engine loads: the fence, as it applies to each car.
        with Session(stack.engine) as session:
            fence = geofence_service.compiled_fences(session=session).by_id[fence_id]
            cars = geofence_service.vehicle_infos(session=session, vehicle_ids=[sibling, own])
        assert not fence.applies_to(cars[sibling]), "a sibling unit's car is in GAJ's depot"
        assert fence.applies_to(cars[own])
        # Naming no units again, or a unit outside the subtree, changes nothing.
        again = clients["gaj-admin"].patch(f"/fences/{fence_id}", json={"unit_ids": []})
        assert again.status_code == 200
        outside = clients["gaj-admin"].patch(
            f"/fences/{fence_id}", json={"unit_ids": [_unit(stack, "JGSWJ")]}
        )
        assert outside.status_code == 422
        with Session(stack.engine) as session:
            fence = geofence_service.compiled_fences(session=session).by_id[fence_id]
        assert not fence.applies_to(cars[sibling])
    finally:
        clients["gaj-admin"].delete(f"/fences/{fence_id}")


def test_a_fence_outside_the_callers_scope_is_404_like_a_missing_one(
    clients: dict[str, httpx.Client],
) -> None:
    made = clients["gaj-admin"].post(
        "/fences", json={"name": "GAJ yard", "kind": "depot", "geometry": CITY}
    )
    assert made.status_code == 201, made.text
    fence_id = made.json()["id"]
    try:
        sibling = clients["yjj-admin"]
        missing = sibling.patch("/fences/2147483000", json={"name": "mine"})
        assert missing.status_code == 404
        for answer in (
            sibling.get(f"/fences/{fence_id}"),
            sibling.patch(f"/fences/{fence_id}", json={"name": "mine"}),
            sibling.delete(f"/fences/{fence_id}"),
        ):
            assert answer.status_code == 404, (answer.request.method, answer.text)
        assert clients["gaj-admin"].get(f"/fences/{fence_id}").json()["properties"]["name"] == (
            "GAJ yard"
        )
    finally:
        clients["gaj-admin"].delete(f"/fences/{fence_id}")


def test_a_driver_sees_only_the_orders_assigned_to_them(
    stack: Stack, clients: dict[str, httpx.Client]
) -> None:
    start = utcnow() + timedelta(days=3)
    point = {"type": "Point", "coordinates": [120.12, 30.28]}
    made = clients["cd-requester"].post(
        "/orders",
        json={
            "purpose": "a colleague's trip",
            "passengers": 1,
            "start_at": start.isoformat(),
            "end_at": (start + timedelta(hours=2)).isoformat(),
            "origin": point,
            "origin_name": "office",
            "destinations": [{"point": point, "name": "there"}],
        },
    )
    assert made.status_code == 201, made.text
    order_id = made.json()["id"]
    driver = clients["driver"]
    assert driver.get(f"/orders/{order_id}").status_code == 404
    listed = driver.get("/orders", params={"limit": 500}).json()["items"]
    assert order_id not in {o["id"] for o in listed}
    driver_user = stack.value("SELECT id FROM user_account WHERE username = 'driver'")
    with stack.engine.connect() as conn:
        assigned = set(
            conn.execute(
                text(
                    "SELECT a.order_id FROM assignment a JOIN driver d ON d.id = a.driver_id"
                    " WHERE a.active AND d.user_id = :u"
                ),
                {"u": driver_user},
            ).scalars()
        )
    for order in listed:
        assert order["id"] in assigned or order["requester_id"] == driver_user, order["id"]


def _tile_of(lon: float, lat: float, z: int) -> tuple[int, int]:
    n = 2**z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return x, y


def test_tiles_serve_the_fence_layer_only_to_roles_that_may_read_fences(
    stack: Stack, clients: dict[str, httpx.Client]
) -> None:
    with stack.engine.connect() as conn:
        lon, lat = conn.execute(
            text(
                "SELECT ST_X(ST_PointOnSurface(area)), ST_Y(ST_PointOnSurface(area)) FROM fence"
                " ORDER BY id LIMIT 1"
            )
        ).one()
    x, y = _tile_of(lon, lat, 14)

    def tile(name: str) -> bytes:
        answer = httpx.get(
            f"{stack.url}/tiles/14/{x}/{y}.pbf",
            headers={"Authorization": clients[name].headers["Authorization"]},
        )
        assert answer.status_code == 200
        return answer.content

    assert b"fences" in tile("admin"), "the demo fence should be drawn for an administrator"
    assert b"fences" not in tile("requester")
    assert b"fences" not in tile("driver")


def test_unknown_devices_and_counters_are_for_root_administrators_only(
    clients: dict[str, httpx.Client],
) -> None:
    assert clients["gaj-admin"].get("/unknown-devices").status_code == 403
    assert clients["supervisor"].get("/telemetry/counters").status_code == 403
    assert clients["gaj-admin"].get("/telemetry/counters").status_code == 403
    assert clients["admin"].get("/unknown-devices").status_code == 200
    assert clients["admin"].get("/telemetry/counters").status_code == 200
