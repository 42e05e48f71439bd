"""The administrator's pages in headless Chromium: a vehicle is created (the API's refusal of a
bad plate shows next to the plate field first) and sealed, a prohibited zone is drawn on the map
and stored with the clicked positions, a date is made a day off in the working calendar, an
unknown tracker is registered from the gateways' list, and every label switches language.
Screenshots land in var/screenshots/."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect
from sqlalchemy import text

from tests.web.conftest import SCREENSHOTS, Stack, sign_in, watched

CJK = re.compile(r"[\u4e00-\u9fff]")
# Chromium logs every non-2xx answer; these are the API refusing bad input on purpose, which the
# page shows next to the field it names.
REFUSED = re.compile(r"Failed to load resource: the server responded with a status of (409|422)")
TABS = (
    "units",
    "users",
    "vehicles",
    "drivers",
    "devices",
    "fences",
    "rules",
    "calendar",
    "hours",
    "equipping",
)
VISIBLE_LABELS = "[...document.querySelectorAll('[data-i18n]')].filter(e => e.offsetParent)"


@pytest.fixture
def admin_context(browser: Any, stack: Stack) -> Iterator[Any]:
    with watched(browser, stack, "admin", allowed=REFUSED.pattern) as context:
        yield context


def _open(context: Any, stack: Stack, tab: str) -> Any:
    page = context.new_page()
    sign_in(page, stack, "admin")
    page.wait_for_url("**/admin")
    page.wait_for_function("window.fleetAdmin && window.fleetAdmin.ready", timeout=15_000)
    page.click(f"#tab-{tab}")
    expect(page.locator(f"#panel-{tab}")).to_be_visible()
    return page


def test_admin_creates_a_vehicle_after_a_refused_plate_and_seals_it(
    admin_context: Any, stack: Stack
) -> None:
    page = _open(admin_context, stack, "vehicles")
    form = page.locator("#vehicle-form")
    form.locator("input[name=plate]").fill("ABC123")
    form.locator("select[name=category]").select_option("general")
    form.locator("select[name=body_class]").select_option("suv")
    form.locator("input[name=seats]").fill("5")
    form.locator("select[name=energy]").select_option("petrol")
    form.locator("input[name=tank_l]").fill("60")
    form.locator("input[name=fuel_norm_l_100km]").fill("8.5")
    form.locator("input[name=fuel_card]").fill("1000 1131 0009 8765")
    form.locator("input[name=make_model]").fill("丰田 汉兰达")
    form.locator("button[type=submit]").click()

    plate_error = form.locator(".f-plate [data-error-for=plate]")
    expect(plate_error).to_be_visible()
    assert "not a Chinese plate" in (plate_error.text_content() or "")
    assert form.locator("input[name=plate]").get_attribute("aria-invalid") == "true"
    assert page.evaluate("document.activeElement.name") == "plate"
    assert form.locator("[data-error-for]:visible").count() == 1  # only the field at fault
    page.screenshot(path=str(SCREENSHOTS / "admin-vehicle-refused.png"))

    form.locator("input[name=plate]").fill("浙A W8765")
    form.locator("button[type=submit]").click()
    expect(page.locator("#notice.ok")).to_contain_text("浙A·W8765")
    expect(plate_error).to_be_hidden()
    row = stack.row(
        "SELECT status, body_class, seats, tank_l, fuel_norm_l_100km, fuel_card, make_model"
        " FROM vehicle WHERE plate = :plate",
        plate="浙A·W8765",
    )
    assert row == ("active", "suv", 5, 60.0, 8.5, "1000113100098765", "丰田 汉兰达")

    page.fill("#vehicle-filter input[name=plate]", "W8765")
    page.press("#vehicle-filter input[name=plate]", "Enter")
    listed = page.locator("#vehicle-rows tr[data-plate='浙A·W8765']")
    expect(listed).to_have_count(1)
    expect(page.locator("#vehicle-rows tr")).to_have_count(1)
    listed.locator("button.seal").click()
    expect(listed.locator("button.unseal")).to_be_visible()
    expect(listed.locator("td.status")).to_have_text("封存")
    assert stack.row("SELECT status FROM vehicle WHERE plate = :p", p="浙A·W8765") == ("sealed",)

    # An edit sends only what changed: the seal stays.
    listed.locator("button.edit").click()
    form.locator("input[name=seats]").fill("6")
    form.locator("button[type=submit]").click()
    expect(listed.locator("td.num")).to_have_text("6")
    row = stack.row("SELECT seats, status FROM vehicle WHERE plate = :p", p="浙A·W8765")
    assert row == (6, "sealed")
    page.screenshot(path=str(SCREENSHOTS / "admin-vehicles.png"))


def test_admin_gives_a_plug_in_hybrid_its_fuel_and_energy_norms(
    admin_context: Any, stack: Stack
) -> None:
    page = _open(admin_context, stack, "vehicles")
    form = page.locator("#vehicle-form")
    expect(form.locator(".f-energy_norm_kwh_100km label")).to_contain_text("电耗定额 kWh/100km")
    form.locator("input[name=plate]").fill("浙A D56789")
    form.locator("select[name=category]").select_option("general")
    form.locator("select[name=body_class]").select_option("mpv")
    form.locator("input[name=seats]").fill("6")
    form.locator("select[name=energy]").select_option("phev")
    form.locator("input[name=tank_l]").fill("53")
    form.locator("input[name=battery_kwh]").fill("40")
    form.locator("input[name=fuel_norm_l_100km]").fill("6.5")
    form.locator("input[name=energy_norm_kwh_100km]").fill("22")
    form.locator("button[type=submit]").click()
    expect(page.locator("#notice.ok")).to_contain_text("浙A·D56789")
    row = stack.row(
        "SELECT energy, fuel_norm_l_100km, energy_norm_kwh_100km FROM vehicle WHERE plate = :p",
        p="浙A·D56789",
    )
    assert row == ("phev", 6.5, 22.0)


def test_admin_adds_a_unit_under_a_parent(admin_context: Any, stack: Stack) -> None:
    (parent,) = stack.row("SELECT id FROM org_unit WHERE code = 'JGSWJ'")
    page = _open(admin_context, stack, "units")
    page.locator(f"#unit-tree li[data-unit='{parent}'] > button").click()
    form = page.locator("#unit-form")
    expect(form.locator("input[name=name]")).to_be_focused()
    expect(form.locator("select[name=parent_id]")).to_have_value(str(parent))
    form.locator("input[name=name]").fill("市机关事务管理局车辆科")
    form.locator("input[name=code]").fill("CD")  # taken: the API's 409 names the code
    form.locator("button[type=submit]").click()
    expect(form.locator(".f-code [data-error-for=code]")).to_contain_text("already exists")
    form.locator("input[name=code]").fill("JGSWJ-CLK")
    form.locator("button[type=submit]").click()
    expect(page.locator("#notice.ok")).to_contain_text("市机关事务管理局车辆科")
    row = stack.row("SELECT parent_id FROM org_unit WHERE code = 'JGSWJ-CLK'")
    assert row == (parent,)
    branch = page.locator(f"#unit-tree li[data-unit='{parent}'] > ul")
    expect(branch).to_contain_text("市机关事务管理局车辆科")
    page.screenshot(path=str(SCREENSHOTS / "admin-units.png"))


def test_admin_adds_an_approval_rule_and_sets_working_hours(
    admin_context: Any, stack: Stack
) -> None:
    (unit,) = stack.row("SELECT id FROM org_unit WHERE code = 'GAJ'")
    page = _open(admin_context, stack, "rules")
    form = page.locator("#approval-form")
    form.locator("select[name=unit_id]").select_option(str(unit))
    form.locator("select[name=condition]").select_option("passengers_over")
    form.locator("input[name=name]").fill("七人以上须上级审批")
    form.locator("button[type=submit]").click()  # without the number of passengers
    expect(form.locator(".f-param [data-error-for=param]")).to_be_visible()
    form.locator("input[name=param]").fill("7")
    form.locator("button[type=submit]").click()
    expect(page.locator("#approval-rows tr", has_text="七人以上须上级审批")).to_have_count(1)
    row = stack.row(
        "SELECT unit_id, condition, param, level FROM approval_rule WHERE name = :n",
        n="七人以上须上级审批",
    )
    assert row == (unit, "passengers_over", 7.0, 1)
    expect(page.locator("#threshold-rows tr")).to_have_count(19)

    page.click("#tab-hours")
    hours = page.locator(f"#hours-{unit}")
    hours.locator("input[name=start]").fill("09:00")
    hours.locator("input[name=end]").fill("08:00")
    hours.locator("button[type=submit]").click()
    expect(hours.locator("[data-error-for=end]")).to_contain_text("end after it starts")
    hours.locator("input[name=end]").fill("17:00")
    hours.locator("button[type=submit]").click()
    expect(page.locator(f"#hours-{unit} .inherited")).to_have_text("本单位设定")
    row = stack.row('SELECT start, "end" FROM working_hours WHERE unit_id = :u', u=unit)
    assert row == (dt.time(9, 0), dt.time(17, 0))
    page.screenshot(path=str(SCREENSHOTS / "admin-hours.png"))


def test_admin_creates_a_user_with_roles_and_deactivates_it(
    admin_context: Any, stack: Stack
) -> None:
    unit = stack.row("SELECT id FROM org_unit WHERE code = 'CD'")
    page = _open(admin_context, stack, "users")
    page.on("dialog", lambda dialog: dialog.accept())
    form = page.locator("#user-form")
    form.locator("input[name=username]").fill("zhao.li")
    form.locator("input[name=full_name]").fill("赵丽")
    form.locator("input[name=password]").fill("short")
    form.locator("select[name=unit_id]").select_option(str(unit[0]))
    form.locator("input[name=roles][value=dispatcher]").check()
    form.locator("input[name=roles][value=driver]").check()
    form.locator("button[type=submit]").click()
    expect(form.locator(".f-password [data-error-for=password]")).to_be_visible()
    form.locator("input[name=password]").fill("a-long-enough-password")
    form.locator("button[type=submit]").click()
    expect(page.locator("#notice.ok")).to_contain_text("zhao.li")
    row = stack.row("SELECT roles, unit_id, is_active FROM user_account WHERE username = 'zhao.li'")
    assert row == (["dispatcher", "driver"], unit[0], True)

    page.select_option("#user-filter select[name=role]", "driver")
    listed = page.locator("#user-rows tr", has_text="zhao.li")
    expect(listed).to_have_count(1)
    expect(listed.locator(".tag")).to_have_text(["调度员", "驾驶员"])
    listed.get_by_role("button", name="停用").click()
    expect(listed).to_have_class(re.compile("inactive"))
    assert stack.row("SELECT is_active FROM user_account WHERE username = 'zhao.li'") == (False,)
    page.screenshot(path=str(SCREENSHOTS / "admin-users.png"))


def test_admin_draws_a_prohibited_zone_on_the_map(admin_context: Any, stack: Stack) -> None:
    page = _open(admin_context, stack, "fences")
    page.wait_for_function("window.fleetAdmin.fencesReady", timeout=30_000)
    page.fill("#fence-form input[name=name]", "测试禁入区")
    page.select_option("#fence-form select[name=kind]", "prohibited")
    page.click("#fence-draw")
    assert page.get_attribute("#fence-draw", "aria-pressed") == "true"

    left, top, width, height = page.evaluate(
        "(() => { const r = window.fleetAdmin.map.getCanvas().getBoundingClientRect();"
        " return [r.left, r.top, r.width, r.height]; })()"
    )
    # Whole client pixels, so that the point MapLibre derives from the click is exactly the one
    # unprojected below.
    clicks = [
        (round(left + width * fx), round(top + height * fy))
        for fx, fy in ((0.35, 0.3), (0.65, 0.32), (0.6, 0.7), (0.3, 0.65))
    ]
    for n, (x, y) in enumerate(clicks, start=1):
        page.mouse.click(x, y)
        expect(page.locator("#draft-points li")).to_have_count(n)
        page.wait_for_timeout(350)  # not a double click
    expected = page.evaluate(
        """async (points) => {
            const { gcj02ToWgs84 } = await import('/static/js/map.js');
            const crs = JSON.parse(document.getElementById('fleet-config').textContent).basemap.crs;
            return points.map(([x, y]) => {
                const at = window.fleetAdmin.map.unproject([x, y]);
                return crs === 'gcj02' ? gcj02ToWgs84(at.lng, at.lat) : [at.lng, at.lat];
            });
        }""",
        [[x - left, y - top] for x, y in clicks],
    )
    page.screenshot(path=str(SCREENSHOTS / "admin-fence-drawn.png"))
    page.click("#fence-form button[type=submit]")
    expect(page.locator("#notice.ok")).to_contain_text("测试禁入区")

    row = stack.row(
        "SELECT kind, shape, enabled, ST_AsGeoJSON(geometry) FROM fence WHERE name = :name",
        name="测试禁入区",
    )
    kind, shape, enabled, geometry = row
    assert (kind, shape, enabled) == ("prohibited", "polygon", True)
    ring = json.loads(geometry)["coordinates"][0]
    assert len(ring) == len(expected) + 1
    assert ring[0] == ring[-1]
    for stored, clicked in zip(ring, expected, strict=False):
        assert abs(stored[0] - clicked[0]) < 1e-6
        assert abs(stored[1] - clicked[1]) < 1e-6

    listed = page.locator("#fence-rows tr", has_text="测试禁入区")
    expect(listed).to_have_count(1)
    expect(page.locator("#draft-points li")).to_have_count(0)
    assert page.evaluate(
        "window.fleetAdmin.map.getSource('admin-fences').serialize().data.features"
        ".some(f => f.properties.name === '测试禁入区')"
    )
    page.screenshot(path=str(SCREENSHOTS / "admin-fences.png"))


def test_admin_marks_a_date_non_working(admin_context: Any, stack: Stack) -> None:
    year = dt.datetime.now(stack.settings.zone).year
    june = dt.date(year, 6, 1)
    wednesday = june + dt.timedelta(days=(2 - june.weekday()) % 7)
    page = _open(admin_context, stack, "calendar")
    day = page.locator(f"#calendar-grid [data-day='{wednesday.isoformat()}']")
    day.click()
    form = page.locator("#calendar-form")
    expect(form).to_be_visible()
    working = form.locator("input[name=working]")
    expect(working).to_be_checked()  # a weekday the calendar does not hold yet
    working.uncheck()
    form.locator("input[name=note]").fill("机关调休")
    form.locator("button[type=submit]").click()
    expect(page.locator("#notice.ok")).to_be_visible()
    expect(day).to_have_class(re.compile(r"\boff\b.*\bmanual\b"))
    row = stack.row("SELECT working, note, source FROM calendar_day WHERE day = :d", d=wednesday)
    assert row == (False, "机关调休", "manual")

    # The grid is one tab stop; arrows move the day, Enter opens it.
    day.focus()
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    next_week = (wednesday + dt.timedelta(days=7)).isoformat()
    assert form.get_attribute("data-day") == next_week
    page.screenshot(path=str(SCREENSHOTS / "admin-calendar.png"))


def test_unknown_device_is_registered_from_the_gateway_list(
    admin_context: Any, stack: Stack
) -> None:
    with stack.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO unknown_device (protocol, identifier, attempts, remote_addr,"
                " last_message) VALUES ('jt808', '13912345678', 3, '10.1.2.3:40000', '7e0200...')"
                " ON CONFLICT DO NOTHING"
            )
        )
        vehicle_id, plate = conn.execute(
            text("SELECT id, plate FROM vehicle ORDER BY id LIMIT 1")
        ).one()
    page = _open(admin_context, stack, "devices")
    listed = page.locator("#unknown-rows tr[data-identifier='13912345678']")
    listed.locator("button.register").click()
    form = page.locator("#device-form")
    expect(form.locator("input[name=identifier]")).to_have_value("13912345678")
    expect(form.locator("select[name=protocol]")).to_have_value("jt808")
    expect(form.locator("select[name=vehicle_id]")).to_be_focused()
    form.locator("select[name=vehicle_id]").select_option(str(vehicle_id))
    form.locator("button[type=submit]").click()
    expect(page.locator("#notice.ok")).to_be_visible()
    expect(page.locator("#device-rows tr", has_text="13912345678")).to_contain_text(plate)
    row = stack.row("SELECT vehicle_id FROM device WHERE identifier = :i", i="13912345678")
    assert row == (vehicle_id,)

    form.locator("input[name=identifier]").fill("13912345678")
    form.locator("button[type=submit]").click()  # the same tracker again: the API refuses it
    expect(form.locator("[data-error-for]:visible").first).to_be_visible()
    page.screenshot(path=str(SCREENSHOTS / "admin-devices.png"))


def test_admin_page_turns_away_other_roles(admin_context: Any, stack: Stack) -> None:
    page = admin_context.new_page()
    sign_in(page, stack, "supervisor")
    page.wait_for_url("**/review")
    page.goto(f"{stack.url}/admin")
    stack.console.clear()  # only this page's messages count here
    expect(page.locator("#admin-denied")).to_be_visible()
    expect(page.locator("#admin-main")).to_be_hidden()


def test_tabs_follow_the_arrow_keys(admin_context: Any, stack: Stack) -> None:
    page = _open(admin_context, stack, "units")
    page.focus("#tab-units")
    page.keyboard.press("ArrowRight")
    expect(page.locator("#tab-users")).to_be_focused()
    expect(page.locator("#tab-users")).to_have_attribute("aria-selected", "true")
    expect(page.locator("#panel-users")).to_be_visible()
    expect(page.locator("#panel-units")).to_be_hidden()
    page.keyboard.press("End")
    expect(page.locator("#tab-equipping")).to_be_focused()
    assert page.evaluate("location.hash") == "#equipping"


def test_switching_language_changes_every_visible_label(admin_context: Any, stack: Stack) -> None:
    page = _open(admin_context, stack, "units")
    for tab in TABS:
        page.click(f"#tab-{tab}")
        page.wait_for_load_state("networkidle")
        chinese = page.evaluate(f"{VISIBLE_LABELS}.map(e => e.textContent)")
        assert chinese
        assert all(CJK.search(label) for label in chinese), (tab, chinese)
    page.click("#tab-units")
    page.click("#lang")
    assert page.evaluate("document.documentElement.lang") == "en"
    for tab in TABS:
        page.click(f"#tab-{tab}")
        page.wait_for_load_state("networkidle")
        english = page.evaluate(f"{VISIBLE_LABELS}.map(e => e.textContent)")
        assert english
        assert not [label for label in english if CJK.search(label)], (tab, english)
        page.screenshot(path=str(SCREENSHOTS / f"admin-{tab}-en.png"))
    page.reload()  # the choice is kept
    page.wait_for_function("window.fleetAdmin && window.fleetAdmin.ready", timeout=15_000)
    assert page.text_content("h1.title") == "Administration"
    page.click("#lang")
