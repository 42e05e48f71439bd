"""The phone page in headless Chromium at 360x740 with touch: a requester files an order by
tapping saved places and the map, the approver approves it on their phone and the requester's
list follows over the live channel; a rejection needs a comment; the API's 422 shows next to the
field; a driver starts and finishes an assigned trip; every label switches language and nothing
is wider than the screen. Screenshots land in var/screenshots/."""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx2 as httpx
import pytest
from sqlalchemy import text

from dispatch.demo import OFFICES, working_day
from fleet.demo import DEMO_PASSWORD
from tests.web.conftest import SCREENSHOTS, Phones, Stack, bearer

CJK = re.compile(r"[\u4e00-\u9fff]")
CIVIC_CENTRE = list(OFFICES)  # the requester's offices, beside the unit's depot
STADIUM = [120.12970, 30.26699]
UNNAMED_CONTROLS = """[...document.querySelectorAll('main input, main textarea, main button')]
  .filter(e => e.offsetParent)
  .filter(e => e.tagName === 'BUTTON'
    ? !(e.textContent.trim() || e.getAttribute('aria-label'))
    : !(e.labels.length || e.getAttribute('aria-label')))
  .map(e => e.outerHTML.slice(0, 80))"""
# A user of the motor pool's own unit, whose orders the pool's driver sees by unit.
POOL_REQUESTER = "pool-requester"


# ---- the API, for what a test sets up and checks --------------------------------------------


def _call(stack: Stack, username: str, method: str, path: str, body: Any = None) -> Any:
    password = "pool-requester-pw" if username == POOL_REQUESTER else DEMO_PASSWORD
    answer = httpx.request(
        method,
        f"{stack.url}/api/v1{path}",
        headers=bearer(stack, username, password),
        json=body,
        timeout=30,
    )
    assert answer.status_code < 300, answer.text
    return answer.json() if answer.content else None


def _next_working_day(stack: Stack, hour: int, minutes: int = 60) -> tuple[str, str]:
    """A window on the calendar's next working day after today by the server's clock, so the
    order's chain is the same on a weekend, a holiday or an adjusted working day."""
    zone = ZoneInfo("Asia/Shanghai")
    with stack.engine.connect() as conn:
        days = dict(conn.execute(text("SELECT day, working FROM calendar_day")).all())
    day = working_day(datetime.now(zone).date(), days, 1)
    start = datetime(day.year, day.month, day.day, hour, tzinfo=zone)
    return start.isoformat(), (start + timedelta(minutes=minutes)).isoformat()


def _file_order(stack: Stack, username: str, purpose: str, hour: int) -> dict[str, Any]:
    """An order created and submitted as a phone would, through the API."""
    start_at, end_at = _next_working_day(stack, hour)
    order = _call(
        stack,
        username,
        "POST",
        "/orders",
        {
            "purpose": purpose,
            "passengers": 2,
            "start_at": start_at,
            "end_at": end_at,
            "origin": {"type": "Point", "coordinates": CIVIC_CENTRE},
            "origin_name": "市政府机关大院",
            "destinations": [
                {"point": {"type": "Point", "coordinates": STADIUM}, "name": "黄龙体育中心"}
            ],
        },
    )
    return _call(stack, username, "POST", f"/orders/{order['id']}/submit")


def _status(stack: Stack, order_id: int) -> str:
    with stack.engine.connect() as conn:
        return str(
            conn.execute(
                text("SELECT status FROM trip_order WHERE id = :id"), {"id": order_id}
            ).scalar()
        )


def _purpose(what: str) -> str:
    return f"{what} {uuid.uuid4().hex[:6]}"


def _card(page: Any, panel: str, order_id: int | str) -> Any:
    return page.locator(f"#{panel}-list [data-order='{order_id}']")


def _wait_status(page: Any, panel: str, order_id: int | str, status: str) -> None:
    page.wait_for_function(
        "([sel, status]) => document.querySelector(sel)?.dataset.status === status",
        arg=[f"#{panel}-list [data-order='{order_id}']", status],
        timeout=30_000,
    )


def _scroll_width(page: Any) -> int:
    return int(page.evaluate("document.documentElement.scrollWidth"))


# ---- the tests ----------------------------------------------------------------------------


def test_requester_files_an_order_that_the_approver_approves(phones: Phones, stack: Stack) -> None:
    purpose = _purpose("手机派车测试")
    page = phones.open("requester")
    assert page.get_attribute("#tab-new", "aria-selected") == "true"
    page.fill("#purpose", purpose)
    page.fill("#passengers", "2")
    page.locator("#places .chip[data-place='市政府机关大院']").tap()
    assert page.input_value("#origin-name") == "市政府机关大院"
    # The start is set, so the next tap is the destination's.
    assert page.get_attribute("button.pick.destination", "aria-pressed") == "true"
    page.wait_for_function("window.fleetPhone.mapReady", timeout=30_000)
    page.locator("#pick-map canvas").tap(position={"x": 220, "y": 50})
    page.wait_for_function("document.getElementById('destination-name').value !== ''")
    assert "地图选点" in page.input_value("#destination-name")
    page.screenshot(path=str(SCREENSHOTS / "phone-new-order.png"), full_page=True)
    assert _scroll_width(page) <= 360

    destination = page.input_value("#destination-name")
    page.locator("#send").tap()
    card = page.locator("#mine-list [data-order]", has_text=purpose)
    card.wait_for(timeout=30_000)
    order_id = int(card.get_attribute("data-order") or 0)
    _wait_status(page, "mine", order_id, "submitted")
    assert card.locator(".status").text_content() == "审批中"
    page.screenshot(path=str(SCREENSHOTS / "phone-my-orders.png"), full_page=True)
    # The places just used are offered first next time.
    assert page.locator("#places .chip").first.text_content() == destination
    order = _call(stack, "requester", "GET", f"/orders/{order_id}")
    assert order["origin"]["coordinates"] == CIVIC_CENTRE
    lon, lat = order["destinations"][0]["point"]["coordinates"]
    assert (lon, lat) != tuple(CIVIC_CENTRE)
    assert 120.1 < lon < 120.4
    assert 30.1 < lat < 30.4
    assert order["start_at"].endswith("01:00:00Z")  # 09:00 in Asia/Shanghai, the prefilled start

    approver = phones.open("approver")
    assert approver.get_attribute("#tab-approvals", "aria-selected") == "true"
    pending = _card(approver, "approvals", order_id)
    pending.wait_for(timeout=30_000)
    expect_name = "document.querySelector('#approvals-list .requester-name')?.textContent"
    approver.wait_for_function(f"{expect_name} === '王科员'")
    approver.screenshot(path=str(SCREENSHOTS / "phone-approvals.png"), full_page=True)
    pending.locator("button.approve").tap()
    pending.wait_for(state="detached", timeout=30_000)
    if len(order["approval_steps"]) > 1:  # a holiday tomorrow: the city's step too
        leader = phones.open("leader")
        second = _card(leader, "approvals", order_id)
        second.wait_for(timeout=30_000)
        second.locator("button.approve").tap()
        second.wait_for(state="detached", timeout=30_000)

    # No reload: the live channel tells the requester's phone.
    _wait_status(page, "mine", order_id, "approved")
    approved = _card(page, "mine", order_id)
    assert approved.locator(".status").text_content() == "已批准"
    assert approved.locator(".step.done").count() == len(order["approval_steps"])
    page.screenshot(path=str(SCREENSHOTS / "phone-approved.png"), full_page=True)
    assert _status(stack, order_id) == "approved"


def test_the_form_shows_what_is_missing_and_the_apis_422_by_the_field(
    phones: Phones, stack: Stack
) -> None:
    page = phones.open("requester")
    page.locator("#send").tap()
    assert page.is_visible("#err-purpose")
    assert page.text_content("#err-purpose") == "请填写用车事由"
    assert page.text_content("#err-origin") == "请选择起点"

    phones.expected_errors.append("status of 422")  # the refusal the test asks for
    page.fill("#purpose", _purpose("时间填反"))
    page.locator("#places .chip[data-place='市政府机关大院']").tap()
    page.locator("#places .chip[data-place='黄龙体育中心']").tap()
    assert not page.is_visible("#err-origin")
    start = page.input_value("#start")
    page.fill("#end", start.replace("T09:", "T08:"))  # ends before it starts
    page.locator("#send").tap()
    page.wait_for_selector("#err-end:not([hidden])", timeout=30_000)
    assert "end after it starts" in (page.text_content("#err-end") or "")
    assert not page.is_visible("#err-form")
    page.screenshot(path=str(SCREENSHOTS / "phone-form-error.png"), full_page=True)
    assert page.get_attribute("#tab-new", "aria-selected") == "true"


def test_a_rejection_without_a_comment_is_refused(phones: Phones, stack: Stack) -> None:
    order = _file_order(stack, "requester", _purpose("驳回测试"), hour=10)
    page = phones.open("approver")
    card = _card(page, "approvals", order["id"])
    card.wait_for(timeout=30_000)
    card.locator("button.reject").tap()
    message = card.locator(".field-error")
    message.wait_for()
    assert message.text_content() == "驳回须填写意见"
    assert card.locator("textarea").get_attribute("aria-invalid") == "true"
    page.screenshot(path=str(SCREENSHOTS / "phone-reject-refused.png"), full_page=True)
    assert _status(stack, order["id"]) == "submitted"

    card.locator("textarea").fill("目的地不在本次工作范围")
    card.locator("button.reject").tap()
    card.wait_for(state="detached", timeout=30_000)
    assert _status(stack, order["id"]) == "rejected"
    requester = phones.open("requester", tab="mine")
    rejected = _card(requester, "mine", order["id"])
    rejected.wait_for(timeout=30_000)
    assert rejected.get_attribute("data-status") == "rejected"
    assert "目的地不在本次工作范围" in (rejected.locator(".step.rejected").text_content() or "")


def test_the_requester_cancels_an_order_with_a_reason(phones: Phones, stack: Stack) -> None:
    order = _file_order(stack, "requester", _purpose("取消测试"), hour=11)
    page = phones.open("requester", tab="mine")
    card = _card(page, "mine", order["id"])
    card.wait_for(timeout=30_000)
    card.locator("button.cancel").tap()
    card.locator(".confirm textarea").fill("会议改期")
    card.locator("button.confirm-cancel").tap()
    _wait_status(page, "mine", order["id"], "cancelled")
    assert _status(stack, order["id"]) == "cancelled"
    assert _card(page, "mine", order["id"]).locator("button.cancel").count() == 0


@pytest.mark.parametrize("username", ["requester", "approver", "driver"])
def test_every_tab_switches_language_and_fits_360_px(
    phones: Phones, stack: Stack, username: str
) -> None:
    # Something in every list, so cards, statuses and approval steps are on screen too.
    _file_order(stack, "requester", _purpose("语言测试"), hour=12)
    page = phones.open(username)
    tabs = page.eval_on_selector_all("[role=tab]:not([hidden])", "els => els.map(e => e.id)")
    assert tabs
    visible = "[...document.querySelectorAll('[data-i18n]')].filter(e => e.offsetParent)"
    labelled = "[...document.querySelectorAll('[data-i18n-label], [data-i18n-placeholder]')]"
    for language in ("zh", "en"):
        for tab in tabs:
            page.locator(f"#{tab}").tap()
            page.wait_for_timeout(300)
            labels = page.evaluate(f"{visible}.map(e => e.textContent)")
            assert labels
            if language == "zh":
                assert all(CJK.search(label) for label in labels), labels
            else:
                assert not [label for label in labels if CJK.search(label)], (tab, labels)
                attributes = page.evaluate(
                    f"{labelled}.flatMap(e => [e.getAttribute('aria-label'), e.placeholder])"
                )
                assert not [a for a in attributes if a and CJK.search(a)], attributes
            # Keyboard and screen-reader use: every control says what it is.
            unnamed = page.evaluate(UNNAMED_CONTROLS)
            assert not unnamed, (tab, unnamed)
            width = _scroll_width(page)
            assert width <= 360, f"{tab} in {language} is {width} px wide"
            page.screenshot(path=str(SCREENSHOTS / f"phone-{username}-{tab}-{language}.png"))
        if language == "zh":
            page.click("#lang")
            assert page.evaluate("document.documentElement.lang") == "en"
    assert page.text_content("h1.title") == "Trips"


@pytest.mark.parametrize("requester", ["requester", POOL_REQUESTER])
def test_the_driver_starts_and_finishes_an_assigned_trip(
    phones: Phones, stack: Stack, requester: str
) -> None:
    if requester == POOL_REQUESTER:
        units = _call(stack, "admin", "GET", "/units?limit=500")["items"]
        pool = next(u for u in units if u["code"] == "CD")
        users = _call(stack, "admin", "GET", "/users?limit=500")["items"]
        if not any(u["username"] == POOL_REQUESTER for u in users):
            _call(
                stack,
                "admin",
                "POST",
                "/users",
                {
                    "username": POOL_REQUESTER,
                    "password": "pool-requester-pw",
                    "roles": ["requester"],
                    "unit_id": pool["id"],
                    "full_name": "车队科员",
                },
            )
    # Hours apart, so the driver is free for each.
    order = _file_order(
        stack, requester, _purpose("出车测试"), hour=14 if requester == POOL_REQUESTER else 7
    )
    for step in order["approval_steps"]:  # different people decide the steps of one order
        decider = "leader" if step["level"] else "approver"
        _call(stack, decider, "POST", f"/orders/{order['id']}/approve", {"comment": ""})
    me = _call(stack, "driver", "GET", "/me")
    drivers = _call(stack, "dispatcher", "GET", "/drivers?limit=500")["items"]
    driver = next(d for d in drivers if d["user_id"] == me["id"])
    # The demo's trackers have not reported here, so no vehicle is suggested: the dispatcher
    # picks one of the motor pool's and gives the reason the API asks for.
    pool_unit = driver["unit_id"]
    vehicles = _call(stack, "dispatcher", "GET", f"/vehicles?unit_id={pool_unit}&status=active")
    vehicle = next(v for v in vehicles["items"] if v["seats"] >= 2)
    _call(
        stack,
        "dispatcher",
        "POST",
        f"/orders/{order['id']}/assign",
        {"vehicle_id": vehicle["id"], "driver_id": driver["id"], "reason": "手机端测试"},
    )

    page = phones.open("driver")
    assert page.get_attribute("#tab-trips", "aria-selected") == "true"
    card = _card(page, "trips", order["id"])
    # The page is ready once its lists are read, so the trip is listed by now.
    assert card.count() == 1, "the driver's phone does not list the assigned trip"
    assert card.get_attribute("data-status") == "assigned"
    page.screenshot(path=str(SCREENSHOTS / "phone-driver-trips.png"), full_page=True)
    card.locator("input.odometer").fill("20000")
    card.locator("button.start-trip").tap()
    _wait_status(page, "trips", order["id"], "in_progress")
    card.locator("input.odometer").fill("20012.5")
    card.locator("button.finish-trip").tap()
    card.wait_for(state="detached", timeout=30_000)
    assert _status(stack, order["id"]) == "completed"
    with stack.engine.connect() as conn:
        readings = conn.execute(
            text("SELECT odometer_start_km, odometer_end_km FROM trip_order WHERE id = :id"),
            {"id": order["id"]},
        ).one()
    assert tuple(readings) == (20000.0, 20012.5)
    page.screenshot(path=str(SCREENSHOTS / "phone-driver-done.png"), full_page=True)


def test_the_requester_rates_a_completed_trip_from_the_phone(phones: Phones, stack: Stack) -> None:
    order = _file_order(stack, "requester", _purpose("评价测试"), hour=10)
    for step in order["approval_steps"]:
        decider = "leader" if step["level"] else "approver"
        _call(stack, decider, "POST", f"/orders/{order['id']}/approve", {"comment": ""})
    me = _call(stack, "driver", "GET", "/me")
    drivers = _call(stack, "dispatcher", "GET", "/drivers?limit=500")["items"]
    driver = next(d for d in drivers if d["user_id"] == me["id"])
    vehicles = _call(
        stack, "dispatcher", "GET", f"/vehicles?unit_id={driver['unit_id']}&status=active"
    )
    vehicle = next(v for v in vehicles["items"] if v["seats"] >= 2)
    _call(
        stack,
        "dispatcher",
        "POST",
        f"/orders/{order['id']}/assign",
        {"vehicle_id": vehicle["id"], "driver_id": driver["id"], "reason": "评价测试"},
    )
    for move in ("start", "finish"):
        _call(stack, "dispatcher", "POST", f"/orders/{order['id']}/{move}")

    page = phones.open("requester", tab="mine")
    card = _card(page, "mine", order["id"])
    card.wait_for(timeout=30_000)
    assert card.get_attribute("data-status") == "completed"
    assert page.evaluate(UNNAMED_CONTROLS) == []
    # Sent without stars, the rating is refused on the page and nothing reaches the server.
    card.locator("button.rate").tap()
    assert card.locator(".field-error").is_visible()
    card.locator("button.star[data-stars='4']").tap()
    assert card.locator("button.star[aria-pressed='true']").count() == 4
    card.locator("textarea.rating-comment").fill("司机准时，车内整洁")
    page.screenshot(path=str(SCREENSHOTS / "phone-rating.png"), full_page=True)
    assert _scroll_width(page) <= 360
    card.locator("button.rate").tap()
    card.locator(".rated").wait_for(timeout=30_000)
    assert card.locator(".rated .stars").text_content() == "★★★★☆"
    assert "司机准时，车内整洁" in (card.locator(".rated").text_content() or "")
    assert card.locator("button.rate").count() == 0
    with stack.engine.connect() as conn:
        rows = conn.execute(
            text("SELECT stars, comment, driver_id FROM trip_rating WHERE order_id = :id"),
            {"id": order["id"]},
        ).all()
    assert [tuple(r) for r in rows] == [(4, "司机准时，车内整洁", driver["id"])]
    page.reload()  # the rating is the order's: it is there when the page is read again
    page.locator(f"#mine-list [data-order='{order['id']}'] .rated").wait_for(timeout=30_000)
    page.screenshot(path=str(SCREENSHOTS / "phone-rated.png"), full_page=True)
