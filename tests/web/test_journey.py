"""The whole loop on a running system, each step on its person's page: an order filed on the
requester's phone and approved on the approvers', the dispatcher assigning it from the
suggestions on the desk, a phone tracker (OsmAnd protocol, through the gateway, the
Redis stream and the ingest worker with the geofence engine) driving the car on the desk's map,
an off-route drive raising an alert that reaches the desk, the supervisor dismissing it on the
review page with a reason."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx2 as httpx
from sqlalchemy import text

from dispatch.demo import OFFICES
from tests.web.conftest import (
    SCREENSHOTS,
    Phones,
    Stack,
    Trackers,
    bearer,
    open_context,
    sign_in,
)

ORIGIN = OFFICES  # the city hall compound, beside its depot
PURPOSE = "现场检查 / site inspection"


def _api(stack: Stack, method: str, path: str, who: str, **kwargs: Any) -> Any:
    answer = httpx.request(
        method, f"{stack.url}/api/v1{path}", headers=bearer(stack, who), timeout=30, **kwargs
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
    browser: Any, phones: Phones, desk_context: Any, stack: Stack, trackers: Trackers
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

    # The requester files the order on their phone, for a window that began ten minutes ago (the
    # car has been out since); the approvers approve on theirs.
    zone = ZoneInfo("Asia/Shanghai")
    begin = datetime.now(zone) - timedelta(minutes=10)
    requester = phones.open("requester")
    requester.fill("#purpose", PURPOSE)
    requester.fill("#passengers", "2")
    requester.locator("#places .chip[data-place='市政府机关大院']").tap()
    requester.locator("#places .chip[data-place='黄龙体育中心']").tap()
    requester.fill("#start", begin.strftime("%Y-%m-%dT%H:%M"))
    requester.fill("#end", (begin + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M"))
    requester.locator("#send").tap()
    card = requester.locator("#mine-list [data-order]", has_text=PURPOSE)
    card.wait_for(timeout=30_000)
    order_id = int(card.get_attribute("data-order") or 0)
    requester.screenshot(path=str(SCREENSHOTS / "journey-phone-filed.png"), full_page=True)
    steps = _api(stack, "GET", f"/orders/{order_id}", "requester")["approval_steps"]
    for step in steps:
        approver = phones.open("leader" if step["level"] else "approver", tab="approvals")
        pending = approver.locator(f"#approvals-list [data-order='{order_id}']")
        pending.wait_for(timeout=30_000)
        pending.locator("button.approve").tap()
        pending.wait_for(state="detached", timeout=30_000)
    requester.wait_for_function(
        f"document.querySelector(\"#mine-list [data-order='{order_id}']\")"
        "?.dataset.status === 'approved'",
        timeout=30_000,
    )
    order = {"id": order_id}

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

    # The supervisor dismisses it with a reason, on the review page.
    review = open_context(browser, stack, viewport={"width": 1400, "height": 900})
    try:
        queue = review.new_page()
        sign_in(queue, stack, "supervisor")
        queue.wait_for_url("**/review")
        row = queue.locator(f"#queue a[data-alert='{alert.id}']")
        row.wait_for(timeout=30_000)
        row.click()
        queue.wait_for_function(f"window.fleetReview.drawn === {alert.id}", timeout=30_000)
        queue.fill("#reason", "临时改道，经核实 / detour confirmed")
        queue.click("#decision [data-decision='dismissed']")
        queue.wait_for_selector(".notice.ok", timeout=15_000)
        queue.screenshot(path=str(SCREENSHOTS / "journey-review.png"))
    finally:
        review.close()
    with stack.engine.connect() as conn:
        decided = conn.execute(text("SELECT review FROM alert WHERE id = :id"), {"id": alert.id})
        assert decided.scalar_one() == "dismissed"
