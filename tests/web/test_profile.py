"""The profile page in headless Chromium: a person reaches it from their name in the header,
chooses how notifications reach them, and sees where they go now and their latest messages; the
choice is kept, a robot on another host than the vendor's is refused with the server's reason,
the labels switch language, and an administrator sends a message that could not be delivered
again."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from playwright.sync_api import expect
from sqlalchemy import text

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


def _message(stack: Stack, username: str, event_id: int, state: str, **fields: Any) -> int:
    """A message to `username` as the notifier leaves it (and a dead one's dead letter)."""
    row = {
        "event_id": event_id,
        "channel": "wecom",
        "address": f"https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=K{event_id}",
        "subject": f"消息 {event_id}",
        "attempts": 0,
        "last_error": None,
        "sent_at": None,
        **fields,
    }
    with stack.engine.begin() as conn:
        notification_id = conn.execute(
            text(
                "INSERT INTO notification (event_id, user_id, kind, channel, address, language,"
                " subject, body, link, state, attempts, last_error, sent_at, created_at)"
                " SELECT :event_id, id, 'order_approved', :channel, :address, 'zh', :subject,"
                " '正文', 'https://fleet.example.gov.cn/phone', :state, :attempts, :last_error,"
                " :sent_at, :created_at FROM user_account WHERE username = :username"
                " RETURNING id"
            ),
            {**row, "state": state, "username": username, "created_at": CREATED},
        ).scalar_one()
        if state == "dead":
            conn.execute(
                text(
                    "INSERT INTO dead_letter (notification_id, event_id, attempts, last_error)"
                    " VALUES (:id, :event_id, :attempts, :last_error)"
                ),
                {"id": notification_id, **row},
            )
    return int(notification_id)


CREATED = datetime(2026, 12, 5, 2, 0, tzinfo=UTC)  # 10:00 in the display zone (Asia/Shanghai)


def test_a_person_sees_their_messages_and_an_administrator_sends_a_dead_one_again(
    profile_context: Any, stack: Stack
):
    _message(
        stack,
        "requester",
        900001,
        "sent",
        channel="email",
        address="requester@example.gov.cn",
        sent_at=CREATED,
    )
    dead = _message(stack, "requester", 900002, "dead", attempts=5, last_error="robot answered 500")
    page = _open(profile_context, stack)
    expect(page.locator("#dead-section")).to_be_hidden()  # not an administrator
    rows = page.locator("#messages tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0).locator("td")).to_have_text(
        ["消息 900002", "企业微信群机器人", "未能送达", "2026/12/05 10:00"]
    )
    expect(rows.nth(1).locator("td")).to_have_text(
        ["消息 900001", "电子邮件", "已送达", "2026/12/05 10:00"]
    )
    page.click("#lang")
    expect(rows.nth(0).locator("td").nth(2)).to_have_text("Not delivered")
    expect(rows.nth(1).locator("td").nth(1)).to_have_text("E-mail")
    page.click("#lang")
    page.close()

    page = _open(profile_context, stack, "admin", "admin")
    retry = page.locator(f"#dead tbody tr[data-id='{dead}']")
    expect(retry.locator("td")).to_have_text(
        ["消息 900002", "requester", "企业微信群机器人", "robot answered 500", "重新发送"]
    )
    expect(retry.locator("td").nth(2)).to_have_attribute(
        "title", "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=***"
    )
    page.screenshot(path=str(SCREENSHOTS / "profile-dead.png"), full_page=True)
    retry.locator("button").click()
    expect(page.locator("#notice")).to_have_text("已重新排队发送")
    expect(retry).to_have_count(0)
    assert stack.row("SELECT state, attempts FROM notification WHERE id = :id", id=dead) == (
        "pending",
        0,
    )
    assert stack.row("SELECT count(*) FROM dead_letter WHERE notification_id = :id", id=dead) == (
        0,
    )
    assert stack.row(
        "SELECT actor, action FROM audit_entry WHERE entity = 'notification' AND entity_id = :id",
        id=str(dead),
    ) == ("admin", "retry")
