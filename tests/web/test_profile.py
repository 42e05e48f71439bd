"""The profile page in headless Chromium: a person reaches it from their name in the header,
chooses how notifications reach them, and sees where they go now; the choice is kept, a robot on
another host than the vendor's is refused with the server's reason, and the labels switch
language."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.web.conftest import SCREENSHOTS, Stack, sign_in, watched


@pytest.fixture
def profile_context(browser: Any, stack: Stack) -> Iterator[Any]:
    # The refused robot's 422 is logged by the browser as a failed resource.
    with watched(browser, stack, "profile", allowed=r"status of 422") as context:
        yield context


def _open(context: Any, stack: Stack, username: str = "requester", home: str = "phone") -> Any:
    page = context.new_page()
    sign_in(page, stack, username)
    page.wait_for_url(f"**/{home}**")
    page.click("#who")
    page.wait_for_url("**/profile")
    page.wait_for_function("window.fleetProfile && window.fleetProfile.ready")
    return page


def test_a_person_chooses_how_notifications_reach_them(profile_context: Any, stack: Stack):
    page = _open(profile_context, stack)
    expect(page.locator("h1.title")).to_have_text("个人设置")
    expect(page.locator("#unit-form")).to_be_hidden()  # not an administrator
    expect(page.locator("#inherit")).to_be_checked()
    expect(page.locator("#effective li")).to_have_text(["不接收通知"])
    page.uncheck("#inherit")
    page.check("#notify-form input[name=channel][value=email]")
    page.fill("#email", "wang@example.gov.cn")
    page.select_option("#language", "en")
    page.click("#notify-form button[type=submit]")
    expect(page.locator("#effective li[data-channel=email]")).to_have_text(
        "电子邮件: wang@example.gov.cn (本人设置)"
    )
    page.screenshot(path=str(SCREENSHOTS / "profile.png"), full_page=True)
    page.reload()
    page.wait_for_function("window.fleetProfile && window.fleetProfile.ready")
    expect(page.locator("#email")).to_have_value("wang@example.gov.cn")
    expect(page.locator("#language")).to_have_value("en")
    expect(page.locator("#notify-form input[name=channel][value=email]")).to_be_checked()
    language = stack.row(
        "SELECT language FROM user_account WHERE username = :name", name="requester"
    )
    assert language == ("en",)

    page.click("#lang")
    expect(page.locator("h1.title")).to_have_text("Profile")
    expect(page.locator("#effective li[data-channel=email]")).to_have_text(
        "E-mail: wang@example.gov.cn (your own)"
    )


def test_a_robot_on_another_host_is_refused_with_the_reason(profile_context: Any, stack: Stack):
    page = _open(profile_context, stack)
    page.uncheck("#inherit")
    page.check("#notify-form input[name=channel][value=wecom]")
    page.fill("#wecom_url", "http://10.1.2.3/cgi-bin/webhook/send?key=K")
    page.click("#notify-form button[type=submit]")
    expect(page.locator("#notify-form [data-error-for=__form]")).to_contain_text(
        "qyapi.weixin.qq.com"
    )
    expect(page.locator("#effective li")).to_have_count(1)


def test_an_administrator_sets_a_units_robot_for_those_who_set_nothing(
    profile_context: Any, stack: Stack
):
    page = _open(profile_context, stack, "admin", "admin")
    root = stack.value("SELECT unit_id FROM user_account WHERE username = 'admin'")
    expect(page.locator("#unit")).to_have_value(str(root))
    expect(page.locator("#unit-inherit")).to_be_checked()
    page.uncheck("#unit-inherit")
    page.check("#unit-form input[name=channel][value=dingtalk]")
    page.fill("#unit-dingtalk_url", "https://oapi.dingtalk.com/robot/send?access_token=POOLTOKEN")
    page.fill("#unit-dingtalk_secret", "SECabc123")
    page.click("#unit-form button[type=submit]")
    expect(page.locator("#unit-dingtalk_url")).to_have_value(
        "https://oapi.dingtalk.com/robot/send?access_token=***"
    )
    expect(page.locator("#unit-dingtalk_secret")).to_have_value("")
    # The administrator sets nothing of their own: the unit's robot reaches them too.
    expect(page.locator("#effective li[data-channel=dingtalk]")).to_have_text(
        "钉钉群机器人: https://oapi.dingtalk.com/robot/send?access_token=*** (单位默认)"
    )
    stored = stack.row(
        "SELECT channels, dingtalk_url, dingtalk_secret FROM notification_setting"
        " WHERE unit_id = :unit",
        unit=root,
    )
    assert stored == (
        ["dingtalk"],
        "https://oapi.dingtalk.com/robot/send?access_token=POOLTOKEN",
        "SECabc123",
    )
    page.screenshot(path=str(SCREENSHOTS / "profile-admin.png"), full_page=True)
