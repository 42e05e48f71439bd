"""Equipping and renewal (配备更新) in headless Chromium: the dashboard shows the demo's quotas
against vehicles held (the police over theirs), the vehicles due for renewal now and within 12
months, idle vehicles and the new-energy share of purchases, as the API has them; on the admin
page a quota is set and flags its unit, and a dispatcher's renewal request is approved and the
vehicle disposed of (the wrong input shown next to its field first). Screenshots land in
var/screenshots/."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.web.conftest import SCREENSHOTS, Stack, api_client, sign_in, watched

REFUSED = re.compile(r"Failed to load resource: the server responded with a status of 422")


@pytest.fixture
def context(browser: Any, stack: Stack) -> Iterator[Any]:
    with watched(browser, stack, "equipping", allowed=REFUSED.pattern) as context:
        yield context


def _plates(page: Any, rows: str) -> list[str]:
    return page.eval_on_selector_all(
        f"{rows} tr[data-plate]", "rows => rows.map(r => r.dataset.plate)"
    )


def test_dashboard_shows_quotas_renewals_idle_vehicles_and_purchases(
    context: Any, stack: Stack
) -> None:
    with api_client(stack, "admin") as api:
        quotas = api.get("/equipping/quotas").json()
        renewals = api.get("/equipping/renewals").json()
        idle = api.get("/equipping/idle").json()
        purchases = api.get("/equipping/new-energy").json()
    page = context.new_page()
    sign_in(page, stack, "admin")
    page.wait_for_url("**/admin")
    page.goto(f"{stack.url}/dashboard")
    page.wait_for_function(
        "window.fleetEquipping && window.fleetEquipping.quotas >= 1"
        " && window.fleetEquipping.purchases >= 1"
    )
    section = page.locator("#equipping")
    expect(section).to_be_visible()

    police = section.locator(".quota-rows tr[data-unit='GAJ']")
    expect(police).to_have_class(re.compile(r"\bover\b"))
    expect(police.locator("td.state")).to_have_text("超编")
    expect(police.locator("td.quota")).to_have_text("7")
    expect(police.locator("td.held")).to_have_text("8")
    pool = section.locator(".quota-rows tr[data-unit='CD']")
    expect(pool.locator("td.state")).to_have_text("未超编")
    expect(section.locator(".quota-total td.state")).to_have_text("超编单位 1 个")
    total = quotas["total"]
    expect(section.locator(".quota-total td.quota")).to_have_text(f"{total['quota']:,}")

    due_now = [i["plate"] for i in renewals["due_now"]]
    due_soon = [i["plate"] for i in renewals["due_within_12_months"]]
    assert due_now
    assert due_soon
    assert _plates(page, "#equipping .due-now-rows") == due_now
    assert _plates(page, "#equipping .due-soon-rows") == due_soon
    reasons = section.locator(".due-now-rows td.reasons").all_text_contents()
    assert "年限" in reasons
    assert "里程" in reasons
    expect(section.locator(".renewal-rule")).to_have_text("标准：使用满 8 年或行驶满 250,000 公里")
    assert _plates(page, "#equipping .idle-rows") == [i["plate"] for i in idle["items"]][:10]
    expect(section.locator(".idle-rule")).to_have_text(
        f"{idle['month']}：使用天数少于 5 天的车辆共 {len(idle['items'])} 辆（使用最少的在前）"
    )
    years = page.eval_on_selector_all(
        "#equipping .purchase-rows tr[data-year]", "rows => rows.map(r => Number(r.dataset.year))"
    )
    assert years == [y["year"] for y in purchases["items"]]
    assert years
    section.screenshot(path=str(SCREENSHOTS / "dashboard-equipping.png"))

    page.click("#lang")
    expect(section.locator(".quota-total td.state")).to_have_text("1 units over quota")
    expect(police.locator("td.state")).to_have_text("Over quota")
    expect(section.locator("h2#equip-h")).to_have_text("Equipping and renewal")
    page.click("#lang")


def _admin_tab(context: Any, stack: Stack) -> Any:
    page = context.new_page()
    sign_in(page, stack, "admin")
    page.wait_for_url("**/admin")
    page.wait_for_function("window.fleetAdmin && window.fleetAdmin.ready", timeout=15_000)
    page.click("#tab-equipping")
    panel = page.locator("#panel-equipping")
    expect(panel).to_be_visible()
    page.wait_for_function("window.fleetEquipping.requests >= 1")
    return page


def test_admin_sets_a_quota_and_the_unit_is_flagged_over_it(context: Any, stack: Stack) -> None:
    page = _admin_tab(context, stack)
    unit_id = stack.value("SELECT id FROM org_unit WHERE code = 'YJJ'")
    row = page.locator("#panel-equipping .quota-rows tr[data-unit='YJJ']")
    expect(row.locator("td.state")).to_have_text("未超编")
    form = page.locator("#quota-form")
    form.locator("select[name=unit_id]").select_option(str(unit_id))
    expect(form.locator("input[name=emergency]")).to_have_value("5")
    form.locator("input[name=emergency]").fill("3")
    form.locator("button[type=submit]").click()
    expect(page.locator("#notice.ok")).to_contain_text("编制已保存")
    expect(row.locator("td.state")).to_have_text("超编")
    quota = stack.value(
        "SELECT quota FROM unit_quota WHERE unit_id = :u AND category = 'emergency'", u=unit_id
    )
    assert quota == 3
    entry = stack.row(
        "SELECT action, after->>'emergency' FROM audit_entry WHERE entity = 'unit_quota'"
        " AND entity_id = :u ORDER BY id DESC LIMIT 1",
        u=str(unit_id),
    )
    assert entry == ("update", "3")


def test_a_renewal_request_is_approved_and_the_vehicle_disposed_of(
    context: Any, stack: Stack
) -> None:
    with api_client(stack, "dispatcher") as desk:
        renewals = desk.get("/equipping/renewals").json()
        vehicle = renewals["due_now"][0]
        today = dt.date.fromisoformat(renewals["today"])  # the server's, in the display zone
        made = desk.post(
            "/equipping/requests",
            json={"vehicle_id": vehicle["vehicle_id"], "kind": "renewal", "reason": "使用满8年"},
        )
        assert made.status_code == 201, made.text
    plate = vehicle["plate"]
    unit_id, category = stack.row(
        "SELECT unit_id, category FROM vehicle WHERE id = :v", v=vehicle["vehicle_id"]
    )
    held = stack.value(
        "SELECT count(*) FROM vehicle WHERE unit_id = :u AND category = :c"
        " AND status <> 'disposed'",
        u=unit_id,
        c=category,
    )
    with api_client(stack, "admin") as api:  # the unit's quota is full
        full = api.put(f"/equipping/quotas/{unit_id}", json={"quotas": {category: held}})
        assert full.status_code == 200, full.text
    page = _admin_tab(context, stack)
    panel = page.locator("#panel-equipping")
    expect(panel.locator(f".due-now-rows tr[data-plate='{plate}'] td.actions")).to_have_text(
        "审批中"
    )
    request = panel.locator(f"#request-rows tr[data-plate='{plate}']")
    expect(request.locator("td.status")).to_have_text("审批中")
    request.locator("button.approve").click()
    expect(request.locator("td.status")).to_have_text("已批准")
    request.locator("button.dispose").click()
    form = page.locator("#disposal-form")
    expect(form).to_be_visible()
    form.locator("select[name=method]").select_option("scrap")
    form.locator("input[name=disposed_on]").fill(today.isoformat())
    form.locator("button[type=submit]").click()  # no receiving party yet
    error = form.locator("[data-error-for=receiver]")
    expect(error).to_be_visible()
    assert form.locator("input[name=receiver]").get_attribute("aria-invalid") == "true"
    form.locator("input[name=receiver]").fill("杭州市报废机动车回收有限公司")
    form.locator("button[type=submit]").click()
    expect(request.locator("td.status")).to_have_text("已处置")
    expect(request.locator("td.disposal")).to_have_text(
        f"报废 {today.isoformat()} 杭州市报废机动车回收有限公司"
    )
    expect(form).to_be_hidden()
    # Disposed of: no longer listed as due, and its place is free.
    expect(panel.locator(f".due-now-rows tr[data-plate='{plate}']")).to_have_count(0)
    status = stack.value("SELECT status FROM vehicle WHERE id = :v", v=vehicle["vehicle_id"])
    assert status == "disposed"
    disposal = stack.row(
        "SELECT status, disposal_method, disposed_on, receiver FROM renewal_request"
        " WHERE vehicle_id = :v",
        v=vehicle["vehicle_id"],
    )
    assert disposal == ("disposed", "scrap", today, "杭州市报废机动车回收有限公司")
    page.screenshot(path=str(SCREENSHOTS / "admin-equipping.png"))

    # The freed place takes a new vehicle, bought today; the next one is refused.
    page.click("#tab-vehicles")
    vehicles = page.locator("#vehicle-form")
    for new_plate in ("浙A·D19001", "浙A·D19002"):
        vehicles.locator("input[name=plate]").fill(new_plate)
        vehicles.locator("select[name=unit_id]").select_option(str(unit_id))
        vehicles.locator("select[name=category]").select_option(category)
        vehicles.locator("select[name=energy]").select_option("bev")
        vehicles.locator("input[name=battery_kwh]").fill("60")
        vehicles.locator("input[name=acquired_on]").fill(today.isoformat())
        vehicles.locator("button[type=submit]").click()
        if new_plate == "浙A·D19001":
            expect(page.locator("#notice.ok")).to_contain_text(new_plate)
            page.click("#vehicle-new")
    refused = vehicles.locator("[data-error-for=unit_id]")
    expect(refused).to_be_visible()
    assert "no place is free" in (refused.text_content() or "")
    bought = stack.value("SELECT acquired_on FROM vehicle WHERE plate = '浙A·D19001'")
    assert bought == today
    assert stack.value("SELECT count(*) FROM vehicle WHERE plate = '浙A·D19002'") == 0
    page.click("#tab-equipping")

    # Another due vehicle is requested from the page itself.
    other = panel.locator(".due-now-rows tr[data-plate] button.request").first
    other_plate = other.evaluate("b => b.closest('tr').dataset.plate")
    other.click()
    expect(panel.locator(f"#request-rows tr[data-plate='{other_plate}'] td.status")).to_have_text(
        "审批中"
    )


def test_admin_reallocates_an_idle_vehicle_within_the_quotas(context: Any, stack: Stack) -> None:
    with api_client(stack, "admin") as api:
        idle = api.get("/equipping/idle").json()["items"][0]
        full = stack.value("SELECT id FROM org_unit WHERE code = 'YJJ'")
        held = stack.value(
            "SELECT count(*) FROM vehicle WHERE unit_id = :u AND category = :c"
            " AND status <> 'disposed'",
            u=full,
            c=idle["category"],
        )
        answer = api.put(f"/equipping/quotas/{full}", json={"quotas": {idle["category"]: held}})
        assert answer.status_code == 200, answer.text
    receiving = stack.value("SELECT id FROM org_unit WHERE code = 'JGSWJ'")
    page = _admin_tab(context, stack)
    panel = page.locator("#panel-equipping")
    row = panel.locator(f".idle-rows tr[data-plate='{idle['plate']}']")
    row.locator("button.reallocate").click()
    form = page.locator("#reallocate-form")
    expect(form).to_be_visible()
    form.locator("select[name=unit_id]").select_option(str(full))
    form.locator("input[name=reason]").fill("闲置，统筹调剂")
    form.locator("button[type=submit]").click()
    refused = form.locator("[data-error-for=unit_id]")
    expect(refused).to_be_visible()  # its quota is full
    assert "no place is free" in (refused.text_content() or "")
    form.locator("select[name=unit_id]").select_option(str(receiving))
    form.locator("button[type=submit]").click()
    expect(page.locator("#notice.ok")).to_contain_text(f"{idle['plate']} 已调剂至 市机关事务管理局")
    expect(form).to_be_hidden()
    moved = stack.row(
        "SELECT v.unit_id, a.after->>'reason' FROM vehicle v JOIN audit_entry a"
        " ON a.entity = 'vehicle' AND a.entity_id = v.id::text AND a.action = 'reallocate'"
        " WHERE v.id = :v",
        v=idle["vehicle_id"],
    )
    assert moved == (receiving, "闲置，统筹调剂")
    expect(row.locator("td.unit")).to_have_text("市机关事务管理局")
