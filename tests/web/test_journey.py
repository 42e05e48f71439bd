"""The whole loop on a running system: an order requested and approved, the dispatcher assigning
it from the suggestions on the desk, a phone tracker (OsmAnd protocol, through the gateway, the
Redis stream and the ingest worker with the geofence engine) driving the car on the desk's map,
an off-route drive raising an alert that reaches the desk, the supervisor dismissing it."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx2 as httpx
from sqlalchemy import text

from fleet.demo import DEMO_PASSWORD
from tests.web.conftest import SCREENSHOTS, Stack, Trackers, sign_in

ORIGIN = (120.2106, 30.2452)  # the civic centre, the demo's depot
DESTINATION = (120.2150, 30.2600)


def _token(stack: Stack, username: str) -> dict[str, str]:
    answer = httpx.post(
        f"{stack.url}/api/v1/auth/token",
        data={"username": username, "password": DEMO_PASSWORD},
        timeout=10,
    )
    answer.raise_for_status()
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def _api(stack: Stack, method: str, path: str, who: str, **kwargs: Any) -> Any:
    answer = httpx.request(
        method, f"{stack.url}/api/v1{path}", headers=_token(stack, who), timeout=30, **kwargs
    )
    assert answer.status_code < 300, answer.text
    return answer.json()


def _fix(trackers: Trackers, device: str, at: float, lon: float, lat: float, speed: float) -> None:
    answer = httpx.get(
        trackers.osmand_url,
        params={"id": device, "lat": lat, "lon": lon, "timestamp": int(at),
                "speed": speed / 1.852, "ignition": "true"},  # knots, as the apps send
        timeout=10,
    )  # fmt: skip
    assert answer.status_code == 200, answer.text


def test_request_to_review_on_a_running_system(
    desk_context, stack: Stack, trackers: Trackers
) -> None:
    with stack.engine.connect() as conn:
        vehicle_id, plate, device = conn.execute(
            text(
                "SELECT v.id, v.plate, d.identifier FROM device d JOIN vehicle v"
                " ON v.id = d.vehicle_id WHERE d.protocol = 'osmand' AND v.status = 'active'"
                " AND v.seats >= 4 ORDER BY v.id LIMIT 1"
            )
        ).one()
    # The car reports from the depot: a fresh tracker, so it can be suggested.
    start = time.time() - 600
    _fix(trackers, device, start, *ORIGIN, 0)
    deadline = time.monotonic() + 30
    while not stack.redis.hget("fleet:last", vehicle_id):
        assert time.monotonic() < deadline, "the worker never stored the first fix"
        time.sleep(0.2)

    # The request and its approval (the phones' own pages are tested in test_phone.py).
    begin = datetime.now(UTC) - timedelta(minutes=12)
    order = _api(stack, "POST", "/orders", "requester", json={
        "purpose": "现场检查", "passengers": 2,
        "start_at": begin.isoformat(), "end_at": (begin + timedelta(hours=2)).isoformat(),
        "origin": {"type": "Point", "coordinates": list(ORIGIN)}, "origin_name": "市民中心",
        "destinations": [{"point": {"type": "Point", "coordinates": list(DESTINATION)},
                          "name": "检查现场"}],
    })  # fmt: skip
    order = _api(stack, "POST", f"/orders/{order['id']}/submit", "requester")
    for step in order["approval_steps"]:
        _api(
            stack,
            "POST",
            f"/orders/{order['id']}/approve",
            "leader" if step["level"] else "approver",
            json={},
        )

    # The dispatcher assigns the car from the suggestions on the desk.
    page = desk_context.new_page()
    sign_in(page, stack, "dispatcher")
    page.wait_for_url("**/desk")
    page.wait_for_function("window.fleetDesk && window.fleetDesk.ready", timeout=30_000)
    page.locator(f"button.order[data-order='{order['id']}']").click()
    candidate = page.locator(".candidate", has_text=plate)
    candidate.wait_for(timeout=15_000)
    if candidate.locator("input.reason").count():
        candidate.locator("input.reason").fill("该车就在出发地 / the car is at the origin")
    candidate.locator("button.assign").click()
    page.wait_for_selector(".notice.ok", timeout=15_000)

    # The car drives: first towards the destination, then 3 km away from every planned road.
    before = page.evaluate(f"window.fleetDesk.feature({vehicle_id}).geometry.coordinates")
    path = [(ORIGIN[0], ORIGIN[1] + 0.0004 * n) for n in range(1, 6)]
    path += [(ORIGIN[0] - 0.003 * n, ORIGIN[1] + 0.002) for n in range(1, 13)]
    for n, (lon, lat) in enumerate(path):
        _fix(trackers, device, start + 30 * (n + 1), lon, lat, 40)
    page.wait_for_function(
        f"window.fleetDesk.feature({vehicle_id}).geometry.coordinates[0] < {before[0] - 0.02}",
        timeout=30_000,
    )
    deadline = time.monotonic() + 60
    while True:
        with stack.engine.connect() as conn:
            alert = conn.execute(
                text("SELECT id, kind FROM alert WHERE vehicle_id = :v AND kind = 'off_route'"),
                {"v": vehicle_id},
            ).first()
        if alert is not None:
            break
        assert time.monotonic() < deadline, "no off_route alert was raised"
        time.sleep(0.5)
    page.wait_for_selector(f"#alerts li:has-text('{plate}')", timeout=30_000)
    time.sleep(2)  # later updates of the same episode change its line, they add none
    assert page.locator(f"#alerts li:has-text('{plate}')").count() == 1
    page.screenshot(path=str(SCREENSHOTS / "journey-desk.png"))

    # The supervisor dismisses it with a reason.
    reason = {"decision": "dismissed", "reason": "临时改道，经核实 / detour confirmed"}
    _api(stack, "POST", f"/alerts/{alert.id}/review", "supervisor", json=reason)
    with stack.engine.connect() as conn:
        review = conn.execute(text("SELECT review FROM alert WHERE id = :id"), {"id": alert.id})
        assert review.scalar_one() == "dismissed"
