"""The dispatcher's desk in headless Chromium: the map draws the app's own roads, vehicles move
with the live positions, an order is assigned from the suggestions, every label switches
language. Screenshots land in var/screenshots/."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text

from fleet import channels
from telematics import stream
from telematics.ingest import month_start, partition_sql
from tests.web.conftest import CENTRE, GRID, SCREENSHOTS, Stack, api_client, sign_in
from tests.web.test_phone import _call, _file_order, _purpose

CJK = re.compile(r"[\u4e00-\u9fff]")


def _place_vehicles(stack: Stack, count: int = 8, shift: float = 0.0) -> list[int]:
    """Last positions as the ingest worker leaves them, and the live message it publishes."""
    with stack.engine.connect() as conn:
        rows = conn.execute(
            text("SELECT id, unit_id FROM vehicle WHERE status = 'active' ORDER BY id LIMIT :n"),
            {"n": count},
        ).all()
    now_ms = int(time.time() * 1000)
    items = []
    for n, (vehicle_id, unit_id) in enumerate(rows):
        lon, lat = GRID[n % len(GRID)]
        items.append(
            {
                "vehicle_id": vehicle_id,
                "unit_id": unit_id,
                "fix_ms": now_ms,
                "fix_time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now_ms / 1000)),
                "received_ms": now_ms,
                "lat": lat + shift,
                "lon": lon + shift,
                "speed_kmh": 30.0,
                "heading_deg": 90.0,
                "ignition": True,
            }
        )
    stack.redis.hset(stream.LAST_POSITIONS, mapping={i["vehicle_id"]: json.dumps(i) for i in items})
    stack.redis.publish(channels.LIVE, json.dumps({"type": "positions", "items": items}))
    return [i["vehicle_id"] for i in items]


def _rendered(page: Any, layer: str) -> int:
    return int(
        page.evaluate(f"window.fleetDesk.map.queryRenderedFeatures({{layers: ['{layer}']}}).length")
    )


def test_desk_draws_roads_and_live_vehicles(desk_context, stack: Stack) -> None:
    placed = _place_vehicles(stack)
    page = desk_context.new_page()
    tiles: list[int] = []
    page.on("response", lambda r: tiles.append(r.status) if "/tiles/" in r.url else None)
    sign_in(page, stack, "dispatcher")
    page.wait_for_url("**/desk")
    page.wait_for_function("window.fleetDesk && window.fleetDesk.ready", timeout=30_000)
    page.wait_for_function(
        "window.fleetDesk.map.queryRenderedFeatures({layers: ['roads']}).length > 0",
        timeout=30_000,
    )
    assert tiles
    assert set(tiles) == {200}
    rendered = "window.fleetDesk.map.queryRenderedFeatures({layers: ['vehicles']}).length"
    page.wait_for_function(f"{rendered} >= {len(placed)}", timeout=15_000)
    before = page.evaluate(f"window.fleetDesk.feature({placed[0]}).geometry.coordinates")
    drawn_at = {
        i: page.evaluate(f"window.fleetDesk.feature({i}).geometry.coordinates[0]") for i in placed
    }
    _place_vehicles(stack, shift=0.001)  # the cars move
    page.wait_for_function(
        f"window.fleetDesk.feature({placed[0]}).geometry.coordinates[0] > {before[0] + 0.0005}",
        timeout=15_000,
    )
    # The map itself draws every car where it moved, and only there.
    for vehicle_id, lon in drawn_at.items():
        page.wait_for_function(
            "(() => { const at = window.fleetDesk.map.queryRenderedFeatures({layers: ['vehicles']})"
            f".filter(f => f.properties.id === {vehicle_id}).map(f => f.geometry.coordinates[0]);"
            f" return at.length === 1 && at[0] > {lon + 0.0005}; }})()",
            timeout=15_000,
        )
    assert page.text_content("#vehicle-count") != "0"
    page.screenshot(path=str(SCREENSHOTS / "desk.png"))


def test_dispatcher_assigns_an_order_from_the_suggestions(desk_context, stack: Stack) -> None:
    _place_vehicles(stack, count=30)
    page = desk_context.new_page()
    sign_in(page, stack, "dispatcher")
    page.wait_for_url("**/desk")
    first = page.locator("button.order").first
    first.wait_for(timeout=15_000)
    order_id = first.get_attribute("data-order")
    first.click()
    page.locator(".candidate").first.wait_for(timeout=15_000)
    page.screenshot(path=str(SCREENSHOTS / "desk-suggestions.png"))
    page.locator(".candidate button.assign").first.click()
    page.wait_for_selector(".notice.ok", timeout=15_000)
    assert f"#{order_id}" in (page.text_content("#notice") or "")
    with stack.engine.connect() as conn:
        status = conn.execute(
            text("SELECT status FROM trip_order WHERE id = :id"), {"id": int(order_id or 0)}
        ).scalar()
    assert status == "assigned"
    page.locator(f"button.order[data-order='{order_id}']").wait_for(state="detached")


def test_switching_language_changes_every_visible_label(desk_context, stack: Stack) -> None:
    page = desk_context.new_page()
    sign_in(page, stack, "dispatcher")
    page.wait_for_url("**/desk")
    page.wait_for_function("window.fleetDesk && window.fleetDesk.ready", timeout=30_000)
    labels = "[...document.querySelectorAll('[data-i18n]')].filter(e => e.offsetParent)"
    chinese = page.evaluate(f"{labels}.map(e => e.textContent)")
    assert chinese
    assert all(CJK.search(t) for t in chinese), chinese
    page.click("#lang")
    english = page.evaluate(f"{labels}.map(e => e.textContent)")
    assert len(english) == len(chinese)
    assert not [t for t in english if CJK.search(t)]
    assert page.evaluate("document.documentElement.lang") == "en"
    page.reload()  # the choice is kept
    page.wait_for_function("window.fleetDesk && window.fleetDesk.ready", timeout=30_000)
    assert page.text_content("h1.title") == "Dispatch desk"
    page.click("#lang")


def test_dispatcher_accepts_the_optimal_plan(desk_context, stack: Stack) -> None:
    _place_vehicles(stack, count=30)
    with stack.engine.connect() as conn:
        waiting = conn.execute(
            text("SELECT count(*) FROM trip_order WHERE status = 'approved'")
        ).scalar_one()
    assert waiting >= 1
    page = desk_context.new_page()
    sign_in(page, stack, "dispatcher")
    page.wait_for_url("**/desk")
    page.wait_for_function("window.fleetDesk && window.fleetDesk.ready", timeout=30_000)
    page.click("#plan-button")
    page.wait_for_function("document.getElementById('plan-summary').textContent !== ''")
    pair = page.locator(".plan-pair").first
    pair.wait_for(timeout=15_000)
    assert page.text_content("#plan-summary")
    pair.locator("button").click()
    page.wait_for_selector(".notice.ok", timeout=15_000)
    with stack.engine.connect() as conn:
        left = conn.execute(
            text("SELECT count(*) FROM trip_order WHERE status = 'approved'")
        ).scalar_one()
        reason = conn.execute(
            text("SELECT reason FROM assignment ORDER BY id DESC LIMIT 1")
        ).scalar_one()
    assert left == waiting - 1
    assert reason == "按最优派车方案"


def test_track_playback_of_a_vehicle(desk_context, stack: Stack) -> None:
    [vehicle_id] = _place_vehicles(stack, count=1)
    now = time.time()
    with stack.engine.begin() as conn:
        conn.execute(text(partition_sql(month_start(int(now * 1000)))))
        for n in range(20):
            conn.execute(
                text(
                    "INSERT INTO position (vehicle_id, fix_time, device_id, received_at, point,"
                    " speed_kmh) VALUES (:v, to_timestamp(:t), 0, now(),"
                    " ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), 35)"
                    " ON CONFLICT DO NOTHING"
                ),
                {"v": vehicle_id, "t": now - 1800 + n * 60, "lon": CENTRE[0] + n * 0.001,
                 "lat": CENTRE[1] + n * 0.0005},
            )  # fmt: skip
    page = desk_context.new_page()
    sign_in(page, stack, "dispatcher")
    page.wait_for_url("**/desk")
    page.wait_for_function("window.fleetDesk && window.fleetDesk.ready", timeout=30_000)
    # Click the car itself on the map.
    page.wait_for_function(
        f"window.fleetDesk.map.queryRenderedFeatures({{layers: ['vehicles']}})"
        f".some(f => f.properties.id === {vehicle_id})",
        timeout=15_000,
    )
    box = page.locator("#map canvas").bounding_box()
    x, y = page.evaluate(
        f"(() => {{ const c = window.fleetDesk.feature({vehicle_id}).geometry.coordinates;"
        f" const p = window.fleetDesk.map.project(c); return [p.x, p.y]; }})()"
    )
    page.mouse.click(box["x"] + x, box["y"] + y)
    page.wait_for_selector("#vehicle-card:not([hidden])", timeout=10_000)
    page.click("#playback-form button[type=submit]")
    page.wait_for_function(
        "window.fleetDesk.map.getLayer('track') &&"
        " window.fleetDesk.map.queryRenderedFeatures({layers: ['track']}).length > 0",
        timeout=15_000,
    )
    first_time = page.text_content("#playback-time")
    page.locator("#playback-slider").fill("19")
    page.wait_for_function(
        f"document.getElementById('playback-time').textContent !== {json.dumps(first_time)}"
    )
    page.screenshot(path=str(SCREENSHOTS / "desk-playback.png"))


def test_a_write_is_committed_before_its_answer(stack: Stack) -> None:
    """A token works on the very next request: the request's transaction commits before the
    answer leaves, not after."""
    import httpx2 as httpx

    from fleet.demo import DEMO_PASSWORD

    with httpx.Client(base_url=stack.url, timeout=10) as client:
        for _ in range(30):
            token = client.post(
                "/api/v1/auth/token", data={"username": "dispatcher", "password": DEMO_PASSWORD}
            ).json()["access_token"]
            me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
            assert me.status_code == 200, me.text


def _approved(stack: Stack, start: datetime, name: str) -> int:
    """An order of one passenger to the same far place, through the API, approved step by step
    (the demo's approver and leader decide in turn)."""
    body = {
        "purpose": f"合并测试 {name}",
        "passengers": 1,
        "start_at": start.isoformat(),
        "end_at": (start + timedelta(hours=2)).isoformat(),
        "origin": {"type": "Point", "coordinates": [120.2106, 30.2452]},
        "origin_name": "市民中心",
        "destinations": [
            {"point": {"type": "Point", "coordinates": [120.0903, 30.3002]}, "name": "合并目的地"}
        ],
    }
    with api_client(stack, "requester") as requester:
        reply = requester.post("/orders", json=body)
        assert reply.status_code == 201, reply.text
        order_id = int(reply.json()["id"])
        assert requester.post(f"/orders/{order_id}/submit").status_code == 200
    status = "submitted"
    for _ in range(4):
        for who in ("approver", "leader"):
            with api_client(stack, who) as decider:
                reply = decider.post(f"/orders/{order_id}/approve", json={})
                if reply.status_code == 200:
                    status = reply.json()["status"]
        if status == "approved":
            break
    assert status == "approved"
    return order_id


def test_dispatcher_merges_two_orders_the_suggestions_pair(desk_context, stack: Stack) -> None:
    _place_vehicles(stack, count=30)
    start = (datetime.now(UTC) + timedelta(days=2)).replace(minute=0, second=0, microsecond=0)
    first = _approved(stack, start, "甲")
    second = _approved(stack, start + timedelta(minutes=15), "乙")
    page = desk_context.new_page()
    sign_in(page, stack, "dispatcher")
    page.wait_for_url("**/desk")
    page.locator(f"button.order[data-order='{first}']").click(timeout=15_000)
    option = page.locator(f".candidate.merge[data-order='{second}']")
    option.wait_for(timeout=15_000)
    assert f"#{second}" in (option.text_content() or "")
    page.screenshot(path=str(SCREENSHOTS / "desk-merge.png"))
    option.locator("button.merge").click()
    page.wait_for_selector(".notice.ok", timeout=15_000)
    assert f"#{first} + #{second}" in (page.text_content("#notice") or "")
    with stack.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT o.status, ao.assignment_id FROM trip_order o JOIN assignment_order ao"
                " ON ao.order_id = o.id AND ao.active WHERE o.id IN (:a, :b)"
            ),
            {"a": first, "b": second},
        ).all()
    assert len(rows) == 2
    assert {r[0] for r in rows} == {"assigned"}
    assert rows[0][1] == rows[1][1]  # one car, one assignment
    for order_id in (first, second):
        page.locator(f"button.order[data-order='{order_id}']").wait_for(state="detached")


def test_the_desk_flags_a_drivers_licence_that_expires_within_thirty_days(
    desk_context, stack: Stack
) -> None:
    """The demo seeds 郭亮's licence to run out 20 days after the seed: the desk offers him with
    the flag, and shows it beside the choice; a driver whose licence is valid has none."""
    order = _file_order(stack, "requester", _purpose("驾驶证提示"), hour=17)
    for step in order["approval_steps"]:
        decider = "leader" if step["level"] else "approver"
        _call(stack, decider, "POST", f"/orders/{order['id']}/approve", {"comment": ""})
    page = desk_context.new_page()
    sign_in(page, stack, "dispatcher")
    page.wait_for_url("**/desk")
    button = page.locator(f"button.order[data-order='{order['id']}']")
    button.wait_for(timeout=15_000)
    button.click()
    flagged = page.locator("#driver option[data-licence='expiring']")
    flagged.first.wait_for(state="attached", timeout=15_000)
    assert "郭亮" in (flagged.first.text_content() or "")
    assert "⚠" in (flagged.first.text_content() or "")
    valid = page.locator("#driver option[data-licence='valid']").first
    assert "⚠" not in (valid.text_content() or "")
    page.select_option("#driver", label=flagged.first.text_content() or "")
    assert page.locator("#driver-licence").is_visible()
    assert "到期" in (page.text_content("#driver-licence") or "")
    page.screenshot(path=str(SCREENSHOTS / "desk-licence-flag.png"))
    page.select_option("#driver", label=valid.text_content() or "")
    assert page.locator("#driver-licence").is_hidden()
