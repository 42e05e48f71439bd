"""The next year's working calendar in the pages, with the server's clock pinned on 20 November
2026 (42 days before 2027, which the calendar the migrations seed lacks): the banner on every
staff page and the line on the dashboard, and the administrator pasting a notice, reading the
refusal of a mistyped line, previewing the whole year and saving it, after which the banner is
gone. Screenshots land in var/screenshots/."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.clock import CHINA
from tests.web.conftest import SCREENSHOTS, Stack, sign_in, watched

STACK_CLOCK = datetime(2026, 11, 20, 10, 0, tzinfo=CHINA)
NOTICE = (
    Path(__file__).resolve().parents[1] / "data" / "holiday-notices" / "invented-2027.txt"
).read_text(encoding="utf-8")
# Chromium logs the API's 422 for the mistyped notice, which the page shows by the line.
REFUSED = re.compile(r"Failed to load resource: the server responded with a status of 422")


@pytest.fixture
def context(browser: Any, stack: Stack) -> Iterator[Any]:
    with watched(browser, stack, "calendar-year", allowed=REFUSED.pattern) as context:
        yield context


def signed_in(context: Any, stack: Stack, username: str, landing: str) -> Any:
    page = context.new_page()
    sign_in(page, stack, username)
    page.wait_for_url(f"**/{landing}**")
    return page


def test_every_staff_page_warns_of_2027_and_the_phone_does_not(context: Any, stack: Stack):
    for username, landing in (("dispatcher", "desk"), ("supervisor", "review"), ("admin", "admin")):
        page = signed_in(context, stack, username, landing)
        banner = page.locator("#calendar-banner")
        expect(banner).to_be_visible()
        expect(banner).to_have_attribute("data-years", "2027")
        expect(banner).to_contain_text(
            "工作日历尚未收录 2027 年（缺 365 天）：42 天后（2027-01-01 起）"
        )
        if username == "admin":
            expect(banner.locator("a[href='/admin#calendar']")).to_have_text(
                "粘贴国务院办公厅节假日安排通知录入"
            )
        else:
            expect(banner).to_contain_text("请系统管理员录入国务院办公厅节假日安排通知。")
            expect(banner.locator("a")).to_have_count(0)
        if landing == "desk":
            # The full-height desk leaves the banner its room.
            page.wait_for_function("window.fleetDesk && window.fleetDesk.ready", timeout=30_000)
            assert page.evaluate(
                "document.querySelector('main.desk').offsetHeight"
                " === innerHeight - 48 - document.getElementById('calendar-banner').offsetHeight"
            )

    page.goto(f"{stack.url}/dashboard")
    expect(page.locator("#calendar-banner")).to_have_attribute("data-years", "2027")
    line = page.locator("#calendar-line")
    expect(line).to_have_text("工作日历 已收录至 2026 年底 · 2027 年未收录，42 天后开始")
    expect(line).to_have_class(re.compile(r"\bwarn\b"))
    page.click("#lang")
    expect(line).to_have_text(
        "Working calendar held through the end of 2026 · 2027 not held, starting in 42 days"
    )
    expect(page.locator("#calendar-banner")).to_contain_text(
        "The working calendar does not hold 2027 (365 days missing): in 42 days (from 2027-01-01)"
    )
    expect(page.locator("#calendar-banner a")).to_have_text(
        "Paste the State Council's holiday notice"
    )
    page.screenshot(path=str(SCREENSHOTS / "calendar-banner-dashboard.png"))
    page.click("#lang")

    phone = signed_in(context, stack, "requester", "phone")
    phone.wait_for_function("window.fleetPhone && window.fleetPhone.ready", timeout=30_000)
    expect(phone.locator("#calendar-banner")).to_be_hidden()


def test_the_administrator_pastes_the_notice_previews_the_year_and_saves_it(
    context: Any, stack: Stack
):
    page = signed_in(context, stack, "admin", "admin")
    page.wait_for_function("window.fleetAdmin && window.fleetAdmin.ready", timeout=15_000)
    page.click("#calendar-banner a")  # the banner's link opens the calendar tab
    expect(page.locator("#panel-calendar")).to_be_visible()
    form = page.locator("#notice-form")
    expect(form.locator("input[name=year]")).to_have_value("2027")  # the year warned of

    # A weekday mistyped: the line is named and nothing is previewed.
    form.locator("textarea[name=text]").fill(NOTICE.replace("4月3日（周六）", "4月3日（周日）"))
    form.locator("button[type=submit]").click()
    problem = form.locator("#notice-problems li")
    expect(problem).to_have_count(1)
    expect(problem).to_contain_text("第 11 行")
    expect(problem).to_contain_text("4月3日 is written as 周日 but is a 周六 in 2027")
    expect(form.locator("[data-error-for=__form]")).to_have_text(
        "1 line of the notice cannot be read"
    )
    expect(page.locator("#notice-preview")).to_be_hidden()

    form.locator("textarea[name=text]").fill(NOTICE)
    form.locator("button[type=submit]").click()
    preview = page.locator("#notice-preview")
    expect(preview).to_be_visible()
    expect(form.locator("#notice-problems")).to_be_hidden()
    expect(page.locator("#notice-summary")).to_have_text(
        "2027 年：休息日 117 天（其中节假日 29 天），工作日 248 天（其中调休上班 5 天）。"
        "与现有日历相比：新增 365 天，改变 0 天，不变 0 天。"
    )
    rows = page.locator("#notice-holidays tr")
    expect(rows).to_have_count(7)
    expect(rows.nth(1)).to_contain_text("春节")
    expect(rows.nth(1)).to_contain_text("2027-02-05 – 2027-02-13")
    expect(rows.nth(1)).to_contain_text("2027-02-14")
    # The whole year in the grid, as it would be saved; nothing is saved yet.
    grid = page.locator("#calendar-grid")
    expect(grid.locator(".day")).to_have_count(365)
    expect(grid.locator("[data-day='2027-02-08']")).to_have_class(re.compile(r"\boff\b"))
    expect(grid.locator(".day.changed")).to_have_count(0)  # every date is new
    expect(grid.locator("[data-day='2027-02-14']")).to_have_class(re.compile(r"\bworking\b"))
    expect(grid.locator(".day.unknown")).to_have_count(0)
    assert stack.value("SELECT count(*) FROM calendar_day WHERE day >= '2027-01-01'") == 0
    page.screenshot(path=str(SCREENSHOTS / "admin-calendar-notice-preview.png"))

    page.click("#notice-save")
    expect(page.locator("#notice.ok")).to_contain_text("2027 年已保存：新增 365 天，改变 0 天")
    expect(preview).to_be_hidden()
    expect(page.locator("#calendar-summary")).to_have_text("全年已收录")
    expect(grid.locator("[data-day='2027-10-09']")).to_have_class(re.compile(r"\bworking\b"))
    expect(page.locator("#calendar-banner")).to_be_hidden()
    assert stack.row(
        "SELECT count(*), count(*) FILTER (WHERE source = 'notice') FROM calendar_day"
        " WHERE day BETWEEN '2027-01-01' AND '2027-12-31'"
    ) == (365, 365)
    assert (
        stack.value(
            "SELECT count(*) FROM audit_entry WHERE entity = 'calendar_day'"
            " AND entity_id LIKE '2027-%' AND actor = 'admin'"
        )
        == 365
    )
    page.screenshot(path=str(SCREENSHOTS / "admin-calendar-notice-saved.png"))

    # A corrected notice against the year now held: the dates it would change are marked.
    form.locator("textarea[name=text]").fill(NOTICE.replace("6月9日（周三）", "6月10日（周四）"))
    form.locator("button[type=submit]").click()
    expect(preview).to_be_visible()
    changed = grid.locator(".day.changed")
    expect(changed).to_have_count(2)
    assert changed.evaluate_all("cells => cells.map(c => c.dataset.day)") == [
        "2027-06-09",
        "2027-06-10",
    ]
    expect(page.locator("#notice-summary")).to_contain_text("改变 2 天，不变 363 天")
    page.click("#notice-cancel")
    expect(preview).to_be_hidden()
    expect(changed).to_have_count(0)
    assert stack.value("SELECT working FROM calendar_day WHERE day = '2027-06-09'") is False

    page.reload()
    page.wait_for_function("window.fleetAdmin && window.fleetAdmin.ready", timeout=15_000)
    expect(page.locator("#calendar-banner")).to_be_hidden()
