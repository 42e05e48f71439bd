"""Notifications to people, end to end: an order's moves and a critical alert, made through the
API, are read from the outbox by `fleet forward`'s notifier and delivered to a real SMTP server
(aiosmtpd) and to a local receiver that checks the 企业微信 and 钉钉 robots' payloads against the
shapes their vendors document (and verifies DingTalk's signature). A receiver that fails gets the
message afterwards; one that always refuses has it dead-lettered; each person hears of their own
orders only, in their own language."""

from __future__ import annotations

import base64
import email
import email.policy
import hashlib
import hmac
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote_plus, urlsplit

import pytest
from aiosmtpd.controller import Controller
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.notices import DERIVERS
from dispatch.notices import awaiting_step
from fleet import migrate, notifications, notify, registry
from fleet.api import get_settings
from fleet.db import make_engine
from fleet.forwarding import prune
from fleet.models import (
    AuditEntry,
    DeadLetter,
    Driver,
    Notification,
    NotificationSetting,
    NotifierCursor,
    OrgUnit,
    OutboxEvent,
    Role,
    UserAccount,
)
from fleet.notifications import Notifier
from fleet.schemas import UserCreate
from fleet.settings import Settings
from geofence.models import Alert
from tests.factories import add_driver, add_vehicle
from tests.support import free_port, wait_until

PUBLIC = "https://fleet.example.gov.cn/gw"
T0 = datetime(2026, 12, 5, 2, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


# ---- a real SMTP server ---------------------------------------------------------------------


class Mailbox:
    """What aiosmtpd received: (recipients, parsed message)."""

    def __init__(self) -> None:
        self.mails: list[tuple[list[str], EmailMessage]] = []

    # aiosmtpd calls it by this name.
    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        mail = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.mails.append((list(envelope.rcpt_tos), mail))
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[EmailMessage]:
        return [m for rcpt, m in self.mails if address in rcpt]


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    yield box, port
    controller.stop()


def body_of(mail: EmailMessage) -> str:
    return str(mail.get_content())


# ---- a receiver for the robots --------------------------------------------------------------


def documented_shape(vendor: str, payload: Any) -> list[str]:
    """What is wrong with a robot message, by the vendor's documentation (empty: nothing).
    WeCom: {"msgtype": "text", "text": {"content" <= 2048 bytes}} or {"msgtype": "markdown",
    "markdown": {"content" <= 4096 bytes}}. DingTalk: {"msgtype": "text", "text": {"content"}}
    or {"msgtype": "markdown", "markdown": {"title", "text"}}."""
    if not isinstance(payload, dict):
        return ["not a JSON object"]
    kind = payload.get("msgtype")
    if kind not in ("text", "markdown") or set(payload) - {"msgtype", kind, "at"}:
        return [f"msgtype {kind!r} with keys {sorted(payload)}"]
    inner = payload.get(kind)
    if not isinstance(inner, dict):
        return [f"{kind} is not an object"]
    wanted = {"content"} if vendor == "wecom" or kind == "text" else {"title", "text"}
    if set(inner) != wanted or not all(isinstance(inner[k], str) and inner[k] for k in wanted):
        return [f"{kind} has {sorted(inner)}, not {sorted(wanted)}"]
    if vendor == "wecom":
        limit = 2048 if kind == "text" else 4096
        if len(inner["content"].encode()) > limit:
            return [f"content over {limit} bytes"]
    return []


@dataclass
class Received:
    vendor: str
    query: dict[str, str]
    payload: dict[str, Any]


@dataclass
class Robots:
    """WeCom at /cgi-bin/webhook/send?key=K, DingTalk at /robot/send?access_token=T (with
    `timestamp` and `sign` checked when `secrets` has the token's). `answers` are given first,
    one per request: an HTTP status, or a dict answered with 200; then {"errcode": 0, "errmsg":
    "ok"}."""

    url: str = ""
    secrets: dict[str, str] = field(default_factory=dict)
    answers: list[int | dict[str, Any]] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    def handle(self, path: str, raw: bytes) -> tuple[int, dict[str, Any]]:
        parts = urlsplit(path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        vendor = {"/cgi-bin/webhook/send": "wecom", "/robot/send": "dingtalk"}.get(parts.path)
        if vendor is None:
            return 404, {"errcode": 404, "errmsg": "no such robot"}
        payload = json.loads(raw)
        problems = documented_shape(vendor, payload)
        if vendor == "wecom" and not query.get("key"):
            problems.append("no key")
        if vendor == "dingtalk":
            token = query.get("access_token", "")
            secret = self.secrets.get(token)
            if secret is not None:
                problems += self.unsigned(secret, parts.query)
        if problems:
            self.problems += problems
            return 200, {"errcode": 40035, "errmsg": "; ".join(problems)}
        self.received.append(Received(vendor, query, payload))
        if self.answers:
            answer = self.answers.pop(0)
            if isinstance(answer, int):
                return answer, {"errcode": -1, "errmsg": "system busy"}
            return 200, answer
        return 200, {"errcode": 0, "errmsg": "ok"}

    @staticmethod
    def unsigned(secret: str, raw_query: str) -> list[str]:
        """DingTalk's 加签 check: sign = urlencode(base64(HmacSHA256(secret, timestamp\\nsecret)))
        with the timestamp in milliseconds."""
        pairs = dict(p.split("=", 1) for p in raw_query.split("&") if "=" in p)
        stamp, sign = pairs.get("timestamp", ""), pairs.get("sign", "")
        if not stamp.isdigit() or len(stamp) != 13:
            return [f"timestamp {stamp!r} is not in milliseconds"]
        digest = hmac.new(secret.encode(), f"{stamp}\n{secret}".encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(unquote_plus(sign), base64.b64encode(digest).decode()):
            return ["bad sign"]
        return []

    def wecom(self, key: str) -> str:
        return f"{self.url}/cgi-bin/webhook/send?key={key}"

    def dingtalk(self, token: str) -> str:
        return f"{self.url}/robot/send?access_token={token}"


@pytest.fixture
def robots() -> Iterator[Robots]:
    state = Robots()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers["Content-Length"]))
            code, answer = state.handle(self.path, raw)
            data = json.dumps(answer).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    state.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{state.server.server_address[1]}"
    threading.Thread(target=state.server.serve_forever, daemon=True).start()
    yield state
    state.server.shutdown()
    state.server.server_close()


# ---- the loop's people and the notifier -----------------------------------------------------


@pytest.fixture
def notifier(settings: Settings, mailbox: tuple[Mailbox, int]) -> tuple[Notifier, Clock, Mailbox]:
    box, port = mailbox
    clock = Clock()
    quick = settings.model_copy(
        update={
            "smtp_host": "127.0.0.1",
            "smtp_port": port,
            "smtp_from": "fleet@example.gov.cn",
            "public_url": PUBLIC,
            "forward_retry_min_s": 2.0,
            "forward_timeout_s": 5.0,
            "notify_max_attempts": 3,
        }
    )
    return Notifier(quick, DERIVERS, clock=clock), clock, box


@dataclass
class Loop:
    client: TestClient
    headers: dict[str, dict[str, str]]
    users: dict[str, UserAccount]
    vehicle_id: int
    driver_id: int

    def call(self, who: str, method: str, path: str, body: Any = None) -> Any:
        reply = self.client.request(method, path, json=body, headers=self.headers[who])
        assert reply.status_code < 300, reply.text
        return reply.json() if reply.content else None

    def prefer(self, who: str, **body: Any) -> Any:
        return self.call(who, "PATCH", "/api/v1/me/notifications", body)

    def order(self, who: str = "asker") -> int:
        day = (datetime.now(UTC) + timedelta(days=1)).date()
        start = datetime(day.year, day.month, day.day, 1, tzinfo=UTC)
        order = self.call(
            who,
            "POST",
            "/api/v1/orders",
            {
                "purpose": "市场监管检查",
                "passengers": 2,
                "start_at": start.isoformat(),
                "end_at": (start + timedelta(hours=4)).isoformat(),
                "origin": {"type": "Point", "coordinates": [120.2106, 30.2452]},
                "origin_name": "市民中心",
                "destinations": [
                    {
                        "point": {"type": "Point", "coordinates": [120.1688, 30.2770]},
                        "name": "某市场",
                    }
                ],
            },
        )
        return int(order["id"])

    def submit(self, order_id: int, who: str = "asker") -> None:
        self.call(who, "POST", f"/api/v1/orders/{order_id}/submit")

    def approve(self, order_id: int) -> None:
        self.call("boss", "POST", f"/api/v1/orders/{order_id}/approve", {"comment": ""})

    def assign(self, order_id: int) -> None:
        self.call(
            "desk",
            "POST",
            f"/api/v1/orders/{order_id}/assign",
            {"vehicle_id": self.vehicle_id, "driver_id": self.driver_id, "reason": "测试"},
        )


@pytest.fixture
def loop(
    db: Session,
    client: TestClient,
    settings: Settings,
    root_unit: OrgUnit,
    make_user,
    login: Callable[..., Any],
) -> Loop:
    # The robots here are the local receiver's.
    hosts = [*settings.notify_robot_hosts, "127.0.0.1"]
    local = client.app.state.settings.model_copy(update={"notify_robot_hosts": hosts})
    client.app.dependency_overrides[get_settings] = lambda: local  # type: ignore[attr-defined]
    roles = {
        "asker": Role.REQUESTER,
        "other": Role.REQUESTER,
        "boss": Role.APPROVER,
        "desk": Role.DISPATCHER,
        "wheel": Role.DRIVER,
        "watch": Role.SUPERVISOR,
        "chief": Role.ADMIN,
    }
    users = {name: make_user(name, root_unit, role) for name, role in roles.items()}
    vehicle = add_vehicle(db, root_unit, "浙A·N0001", seats=5)
    driver = add_driver(db, root_unit, "陈师傅")
    db.execute(update(Driver).where(Driver.id == driver.id).values(user_id=users["wheel"].id))
    db.commit()
    headers = {name: login(name) for name in roles}
    return Loop(client, headers, users, vehicle.id, driver.id)


def drain(notifier: Notifier, db: Session) -> int:
    """Passes until one finds nothing to do; returns the messages and events handled."""
    total = 0
    while (done := notifier.step(db)) > 0:
        total += done
    return total


# ---- tests ----------------------------------------------------------------------------------


def test_an_approver_gets_an_email_when_a_step_awaits_them(db: Session, loop: Loop, notifier):
    run, _, box = notifier
    loop.prefer("boss", channels=["email"], email="boss@example.gov.cn")
    order_id = loop.order()
    drain(run, db)
    assert box.mails == []  # a draft awaits nobody
    loop.submit(order_id)
    drain(run, db)
    [mail] = box.to("boss@example.gov.cn")
    assert mail["Subject"] == f"待审批：用车申请 #{order_id}"
    assert mail["From"] == "fleet@example.gov.cn"
    text = body_of(mail)
    assert "市场监管检查" in text
    assert f"{PUBLIC}/phone#approvals" in text
    [row] = db.scalars(select(Notification).where(Notification.user_id == loop.users["boss"].id))
    assert (row.kind, row.state, row.channel) == ("approval_pending", "sent", "email")
    assert mail["Message-ID"] == f"<fleet-notification-{row.id}@example.gov.cn>"


def test_a_requester_hears_on_wecom_in_their_language(db: Session, loop: Loop, notifier, robots):
    run, _, _ = notifier
    loop.prefer("asker", channels=["wecom"], wecom_url=robots.wecom("K-ASKER"), language="en")
    order_id = loop.order()
    loop.submit(order_id)
    loop.approve(order_id)
    drain(run, db)
    assert robots.problems == []
    [got] = robots.received
    assert (got.vendor, got.query) == ("wecom", {"key": "K-ASKER"})
    content = got.payload["markdown"]["content"]
    assert content.startswith(f"**Approved: trip order #{order_id}**")
    assert f"[Open]({PUBLIC}/phone#mine)" in content
    loop.prefer("asker", language="zh")
    loop.assign(order_id)
    drain(run, db)
    assert robots.problems == []
    assigned = robots.received[1].payload["markdown"]["content"]
    assert assigned.startswith(f"**已派车：用车申请 #{order_id}**")
    assert "浙A·N0001" in assigned
    assert "陈师傅" in assigned
    assert f"[打开处理]({PUBLIC}/phone#mine)" in assigned


def test_a_driver_hears_of_a_trip_on_a_signed_dingtalk_robot_set_by_the_unit(
    db: Session, loop: Loop, notifier, robots, root_unit: OrgUnit
):
    run, _, _ = notifier
    robots.secrets["T-POOL"] = "SEC0123456789abcdef"
    answer = loop.call(
        "chief",
        "PATCH",
        f"/api/v1/units/{root_unit.id}/notifications",
        {
            "channels": ["dingtalk"],
            "dingtalk_url": robots.dingtalk("T-POOL"),
            "dingtalk_secret": "SEC0123456789abcdef",
        },
    )
    assert answer["dingtalk_url"].endswith("access_token=***")
    assert answer["has_dingtalk_secret"] is True
    assert "dingtalk_secret" not in answer
    # The others choose e-mail, so only the driver takes the unit's robot.
    for who in ("asker", "boss"):
        loop.prefer(who, channels=["email"], email=f"{who}@example.gov.cn")
    order_id = loop.order()
    loop.submit(order_id)
    loop.approve(order_id)
    loop.assign(order_id)
    drain(run, db)
    loop.call("desk", "POST", f"/api/v1/orders/{order_id}/cancel", {"comment": "改期"})
    drain(run, db)
    assert robots.problems == []
    assert [r.vendor for r in robots.received] == ["dingtalk", "dingtalk"]
    trip, cancelled = (r.payload["markdown"] for r in robots.received)
    assert trip["title"] == f"新任务：#{order_id} 浙A·N0001"
    assert f"({PUBLIC}/phone#trips)" in trip["text"]
    assert cancelled["title"] == f"任务取消：#{order_id} 浙A·N0001"
    kinds = db.scalars(
        select(Notification.kind)
        .where(Notification.user_id == loop.users["wheel"].id)
        .order_by(Notification.id)
    ).all()
    assert kinds == ["trip_assigned", "trip_changed"]


def test_a_robot_answering_500_then_an_error_code_gets_the_message_afterwards(
    db: Session, loop: Loop, notifier, robots
):
    run, clock, _ = notifier
    robots.answers = [500, {"errcode": 45009, "errmsg": "api freq out of limit"}]
    loop.prefer("boss", channels=["wecom"], wecom_url=robots.wecom("K-BOSS"))
    order_id = loop.order()
    loop.submit(order_id)
    run.step(db)
    [row] = db.scalars(select(Notification).where(Notification.user_id == loop.users["boss"].id))
    assert (row.state, row.attempts, row.last_error) == ("pending", 1, "robot answered 500")
    assert run.step(db) == 0  # waiting out the back-off
    clock.now += timedelta(minutes=1)
    run.step(db)
    db.refresh(row)
    assert (row.state, row.attempts) == ("pending", 2)
    assert row.last_error == "robot refused: errcode 45009, api freq out of limit"
    clock.now += timedelta(minutes=1)
    assert run.step(db) == 1
    db.refresh(row)
    assert (row.state, row.sent_at) == ("sent", clock.now)
    contents = [r.payload["markdown"]["content"] for r in robots.received]
    assert len(contents) == 3
    assert len(set(contents)) == 1
    assert f"#{order_id}" in contents[0]


def test_a_robot_refusing_every_time_has_the_message_dead_lettered(
    db: Session, loop: Loop, notifier, robots
):
    run, clock, box = notifier
    robots.answers = [{"errcode": 93000, "errmsg": "invalid webhook url"}] * 3
    loop.prefer("boss", channels=["wecom", "email"], wecom_url=robots.wecom("K-GONE"))
    loop.prefer("boss", email="boss@example.gov.cn")
    loop.submit(loop.order())
    for _ in range(3):
        run.step(db)
        clock.now += timedelta(minutes=5)
    rows = {
        n.channel: n
        for n in db.scalars(
            select(Notification).where(Notification.user_id == loop.users["boss"].id)
        )
    }
    assert (rows["wecom"].state, rows["wecom"].attempts) == ("dead", 3)
    assert rows["email"].state == "sent"  # the broken robot held up nothing else
    [letter] = db.scalars(select(DeadLetter).where(DeadLetter.notification_id == rows["wecom"].id))
    assert (letter.event_id, letter.attempts, letter.integration_id) == (
        rows["wecom"].event_id,
        3,
        None,
    )
    assert len(box.to("boss@example.gov.cn")) == 1


def test_a_requester_is_not_told_of_anyone_elses_order(db: Session, loop: Loop, notifier):
    run, _, box = notifier
    for who in ("asker", "other"):
        loop.prefer(who, channels=["email"], email=f"{who}@example.gov.cn")
    order_id = loop.order("asker")
    loop.submit(order_id)
    loop.approve(order_id)
    drain(run, db)
    [mail] = box.to("asker@example.gov.cn")
    assert mail["Subject"] == f"已批准：用车申请 #{order_id}"
    assert box.to("other@example.gov.cn") == []


def test_nobody_hears_of_their_own_act(db: Session, loop: Loop, notifier):
    """An approver who files an order themselves is not asked to approve it."""
    run, _, box = notifier
    loop.prefer("boss", channels=["email"], email="boss@example.gov.cn")
    order_id = loop.order("boss")
    loop.submit(order_id, who="boss")
    drain(run, db)
    assert box.mails == []


def test_a_critical_alert_reaches_the_supervisors_and_a_high_one_does_not(
    db: Session, loop: Loop, notifier, root_unit: OrgUnit
):
    run, _, box = notifier
    loop.prefer("watch", channels=["email"], email="watch@example.gov.cn", language="en")
    started = datetime(2026, 12, 5, 1, 30, tzinfo=UTC)
    alerts = []
    for severity, kind in (("high", "off_hours"), ("critical", "device_alarm")):
        alert = Alert(
            kind=kind,
            key="sos" if kind == "device_alarm" else "",
            severity=severity,
            vehicle_id=loop.vehicle_id,
            unit_id=root_unit.id,
            started_at=started,
            last_at=started,
        )
        db.add(alert)
        db.flush()
        alerts.append(alert)
    db.commit()
    drain(run, db)
    [mail] = box.to("watch@example.gov.cn")
    assert mail["Subject"] == "Critical alert: 浙A·N0001 device alarm"
    text = body_of(mail)
    assert "since 12-05 09:30" in text  # Asia/Shanghai
    assert f"{PUBLIC}/review#alert-{alerts[1].id}" in text


def test_profile_settings_are_masked_audited_and_fall_back_to_the_unit(
    db: Session, loop: Loop, root_unit: OrgUnit, make_unit
):
    mine = loop.call("boss", "GET", "/api/v1/me/notifications")
    assert mine == {
        "language": "zh",
        "own": {
            "channels": None,
            "email": None,
            "wecom_url": None,
            "dingtalk_url": None,
            "has_dingtalk_secret": False,
        },
        "effective": [],
    }
    loop.call(
        "chief",
        "PATCH",
        f"/api/v1/units/{root_unit.id}/notifications",
        {
            "channels": ["wecom"],
            "wecom_url": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=abc",
        },
    )
    mine = loop.call("boss", "GET", "/api/v1/me/notifications")
    assert mine["effective"] == [
        {
            "channel": "wecom",
            "address": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=***",
            "from_unit_id": root_unit.id,
        }
    ]
    mine = loop.prefer("boss", channels=["email", "wecom"], email="boss@example.gov.cn")
    assert [(t["channel"], t["from_unit_id"]) for t in mine["effective"]] == [
        ("email", None),
        ("wecom", root_unit.id),
    ]
    mine = loop.prefer("boss", channels=[])
    assert mine["effective"] == []  # none at all, whatever the unit says
    entries = db.scalars(
        select(AuditEntry)
        .where(AuditEntry.entity == "notification_setting")
        .order_by(AuditEntry.id)
    ).all()
    assert [(e.actor, e.action) for e in entries] == [
        ("chief", "create"),
        ("boss", "create"),
        ("boss", "update"),
    ]
    assert "abc" not in json.dumps([e.after for e in entries])
    bad = loop.client.patch(
        "/api/v1/me/notifications", json={"email": "not an address"}, headers=loop.headers["boss"]
    )
    assert bad.status_code == 422


def test_unit_defaults_are_for_the_units_administrators_in_scope(
    loop: Loop, root_unit: OrgUnit, make_unit, make_user, login
):
    path = f"/api/v1/units/{root_unit.id}/notifications"
    reply = loop.client.get(path, headers=loop.headers["boss"])
    assert reply.status_code == 403
    branch = make_unit("N-BR")
    make_user("branchadmin", branch, Role.ADMIN)
    reply = loop.client.patch(path, json={"channels": ["email"]}, headers=login("branchadmin"))
    assert reply.status_code == 404  # the root is out of a branch administrator's scope


def test_old_events_wait_for_the_notifier_before_they_are_pruned(db: Session, loop: Loop):
    loop.submit(loop.order())
    newest = db.scalar(select(OutboxEvent.id).order_by(OutboxEvent.id.desc()).limit(1))
    behind = db.scalar(select(NotifierCursor.cursor))
    assert behind is not None
    assert behind < newest
    later = datetime.now(UTC) + timedelta(days=30)
    prune(db, before=later)
    assert db.scalar(select(OutboxEvent.id).where(OutboxEvent.id == newest)) == newest
    db.execute(update(NotifierCursor).values(cursor=newest))
    prune(db, before=later)
    assert db.scalar(select(OutboxEvent.id).where(OutboxEvent.id == newest)) is None


def test_dingtalk_signature_follows_the_documented_recipe():
    # The recipe of DingTalk's documentation, in Python: quote_plus(b64encode(hmac_sha256(...))).
    secret, stamp = "this is secret", 1780000000000
    digest = hmac.new(secret.encode(), f"{stamp}\n{secret}".encode(), hashlib.sha256).digest()
    expected = base64.b64encode(digest).decode()
    sign = notify.dingtalk_sign(secret, stamp)
    assert unquote_plus(sign) == expected
    assert "+" not in sign
    assert "/" not in sign
    url = notify.dingtalk_url("https://oapi.dingtalk.com/robot/send?access_token=T", secret, stamp)
    assert (
        url == f"https://oapi.dingtalk.com/robot/send?access_token=T&timestamp={stamp}&sign={sign}"
    )
    assert notify.dingtalk_url(
        "https://oapi.dingtalk.com/robot/send?access_token=T", None, stamp
    ) == ("https://oapi.dingtalk.com/robot/send?access_token=T")


def test_robot_payloads_have_the_vendors_shapes():
    message = notify.Message("en", "Approved: trip order #7", "x" * 5000, "https://f/phone#mine")
    assert documented_shape("wecom", notify.wecom_payload(message)) == []
    assert documented_shape("dingtalk", notify.dingtalk_payload(message)) == []
    assert documented_shape("wecom", {"msgtype": "markdown", "markdown": {"text": "x"}}) != []


def test_the_step_awaiting_a_decision():
    steps = [{"level": 0, "unit_id": 1, "reasons": []}, {"level": 1, "unit_id": 9, "reasons": []}]
    state = {"approval": "pending", "status": "submitted", "approval_steps": steps}
    assert awaiting_step({**state, "approvals_done": 0}, "submit") == steps[0]
    assert awaiting_step({**state, "approvals_done": 1}, "approve") == steps[1]
    assert awaiting_step({**state, "approvals_done": 1}, "update") is None
    assert awaiting_step({**state, "approvals_done": 2, "approval": "approved"}, "approve") is None
    assert awaiting_step({**state, "approvals_done": 0, "status": "cancelled"}, "submit") is None


def test_a_robot_on_a_host_other_than_the_vendors_is_refused(
    client: TestClient, make_user, login, root_unit
):
    make_user("curious", root_unit, Role.REQUESTER)
    reply = client.patch(
        "/api/v1/me/notifications",
        json={"channels": ["wecom"], "wecom_url": "http://10.0.0.5/cgi-bin/webhook/send?key=K"},
        headers=login("curious"),
    )
    assert reply.status_code == 422
    assert "qyapi.weixin.qq.com" in reply.text


def test_without_a_mail_server_no_email_is_queued_and_the_robots_still_go(
    db: Session, loop: Loop, notifier, robots
):
    run, clock, _ = notifier
    mailless = Notifier(run.settings.model_copy(update={"smtp_host": ""}), DERIVERS, clock=clock)
    loop.prefer(
        "boss",
        channels=["email", "wecom"],
        email="boss@example.gov.cn",
        wecom_url=robots.wecom("K-B"),
    )
    loop.submit(loop.order())
    drain(mailless, db)
    channels = db.scalars(
        select(Notification.channel).where(Notification.user_id == loop.users["boss"].id)
    ).all()
    assert channels == ["wecom"]
    assert len(robots.received) == 1


def test_sent_messages_go_after_the_outbox_keeps_its_events_and_dead_ones_stay(
    db: Session, loop: Loop, notifier, robots
):
    run, clock, _ = notifier
    robots.answers = [{"errcode": 93000, "errmsg": "invalid webhook url"}] * 3
    loop.prefer("boss", channels=["wecom"], wecom_url=robots.wecom("K-DEAD"))
    loop.prefer("asker", channels=["wecom"], wecom_url=robots.wecom("K-OK"))
    order_id = loop.order()
    loop.submit(order_id)
    for _ in range(3):
        run.step(db)
        clock.now += timedelta(minutes=5)
    loop.approve(order_id)
    drain(run, db)
    states = {
        kind: state for kind, state in db.execute(select(Notification.kind, Notification.state))
    }
    assert states == {"approval_pending": "dead", "order_approved": "sent"}
    assert notifications.prune(db, before=clock.now - timedelta(days=1)) == 0  # none so old
    assert notifications.prune(db, before=clock.now + timedelta(days=1)) == 1
    assert db.scalars(select(Notification.kind)).all() == ["approval_pending"]


def test_fleet_forward_mails_a_critical_alert_to_the_supervisor(
    scratch_settings: Settings, mailbox: tuple[Mailbox, int]
):
    """The notifier runs in the `fleet forward` process itself, as it is started in production."""
    box, port = mailbox
    migrate.upgrade(scratch_settings)
    engine = make_engine(scratch_settings)
    env = {
        **os.environ,
        "FLEET_DATABASE_URL": scratch_settings.database_url,
        "FLEET_DATABASE_OWNER": scratch_settings.database_owner,
        "FLEET_REDIS_URL": scratch_settings.redis_url,
        "FLEET_FORWARD_POLL_S": "0.1",
        "FLEET_MQTT_URL": "",
        "FLEET_SMTP_HOST": "127.0.0.1",
        "FLEET_SMTP_PORT": str(port),
        "FLEET_PUBLIC_URL": PUBLIC,
    }
    try:
        with Session(engine, expire_on_commit=False) as session:
            root = registry.create_root_unit(session=session, code="NT-PROC", name="通知测试")
            supervisor = registry.create_user(
                session=session,
                actor=None,
                data=UserCreate(
                    username="nt-watch",
                    password="a-long-enough-password",
                    roles=[Role.SUPERVISOR],
                    unit_id=root.id,
                ),
            )
            session.add(
                NotificationSetting(
                    user_id=supervisor.id, channels=["email"], email="watch@example.gov.cn"
                )
            )
            vehicle = add_vehicle(session, root, "浙A·N0009")
            started = datetime(2026, 12, 5, 1, 0, tzinfo=UTC)
            alert = Alert(
                kind="device_alarm",
                key="sos",
                severity="critical",
                vehicle_id=vehicle.id,
                unit_id=root.id,
                started_at=started,
                last_at=started,
            )
            session.add(alert)
            session.commit()
        forward = subprocess.Popen([sys.executable, "-m", "app.cli", "forward"], env=env)
        try:
            wait_until(lambda: box.to("watch@example.gov.cn"), "the supervisor's e-mail", 60)
        finally:
            forward.terminate()
            forward.wait(timeout=20)
    finally:
        engine.dispose()
    [mail] = box.to("watch@example.gov.cn")
    assert mail["Subject"] == "严重告警：浙A·N0009 终端报警"
    assert f"{PUBLIC}/review#alert-{alert.id}" in body_of(mail)


def test_a_merged_trip_is_announced_for_each_order_and_its_unmerging_to_the_driver(
    db: Session, loop: Loop, notifier
):
    run, _, _ = notifier
    for who in ("asker", "wheel"):
        loop.prefer(who, channels=["email"], email=f"{who}@example.gov.cn")
    orders = [loop.order(), loop.order()]
    for order_id in orders:
        loop.submit(order_id)
        loop.approve(order_id)
    merged = loop.call(
        "desk",
        "POST",
        "/api/v1/dispatch/merge",
        {"order_ids": orders, "vehicle_id": loop.vehicle_id, "driver_id": loop.driver_id},
    )
    drain(run, db)
    loop.call("desk", "POST", f"/api/v1/dispatch/merge/{merged['assignment_id']}/unmerge", {})
    drain(run, db)

    def heard(who: str) -> list[tuple[str, str]]:
        rows = db.execute(
            select(Notification.kind, Notification.subject)
            .where(Notification.user_id == loop.users[who].id)
            .order_by(Notification.id)
        ).all()
        return [(kind, subject) for kind, subject in rows]

    assert [k for k, _ in heard("asker") if k == "order_assigned"] == ["order_assigned"] * 2
    driver = heard("wheel")
    assert [k for k, _ in driver] == ["trip_assigned"] * 2 + ["trip_changed"] * 2
    assert {s for _, s in driver[:2]} == {f"新任务：#{o} 浙A·N0001" for o in orders}


# ---- the messages through the API -----------------------------------------------------------


def _message(db: Session, user: UserAccount, event_id: int, **fields: Any) -> Notification:
    row = Notification(
        event_id=event_id,
        user_id=user.id,
        kind=fields.pop("kind", "order_approved"),
        channel=fields.pop("channel", "wecom"),
        address=fields.pop(
            "address", f"https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=KEY{event_id}"
        ),
        language="zh",
        subject=fields.pop("subject", f"消息 {event_id}"),
        body="正文",
        link=f"{PUBLIC}/phone",
        created_at=T0 + timedelta(minutes=event_id),
        **fields,
    )
    db.add(row)
    db.flush()
    return row


def test_administrators_list_the_messages_of_their_units_people_only(
    db: Session, client: TestClient, root_unit: OrgUnit, make_unit, make_user, login
):
    east, west = make_unit("N-EAST"), make_unit("N-WEST")
    make_user("eastadmin", east, Role.ADMIN)
    make_user("westadmin", west, Role.ADMIN)
    ann = make_user("ann", east)
    bob = make_user("bob", east, Role.APPROVER)
    wes = make_user("wes", west)
    dead = _message(db, ann, 1, state="dead", attempts=3, last_error="robot answered 500")
    _message(db, ann, 2, state="sent", channel="email", address="ann@example.gov.cn")
    _message(db, bob, 3, kind="approval_pending")
    _message(
        db,
        bob,
        4,
        kind="approval_pending",
        channel="dingtalk",
        address="https://oapi.dingtalk.com/robot/send?access_token=TOK4",
    )
    theirs = _message(db, wes, 5, state="dead", attempts=3, last_error="robot answered 500")
    db.commit()
    east_admin = login("eastadmin")

    def listed(**query: Any) -> dict[str, Any]:
        reply = client.get("/api/v1/notifications", params=query, headers=east_admin)
        assert reply.status_code == 200, reply.text
        return reply.json()

    everything = listed()
    assert everything["total"] == 4  # wes, in the sibling unit, is invisible
    assert [n["id"] for n in everything["items"]] == sorted(
        (n["id"] for n in everything["items"]), reverse=True
    )
    assert {n["user"]["username"] for n in everything["items"]} == {"ann", "bob"}
    text = json.dumps(everything)
    assert "KEY1" not in text
    assert "TOK4" not in text
    by_id = {n["id"]: n for n in everything["items"]}
    assert by_id[dead.id] == {
        "id": dead.id,
        "user": {"id": ann.id, "username": "ann"},
        "kind": "order_approved",
        "channel": "wecom",
        "address": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=***",
        "subject": "消息 1",
        "state": "dead",
        "attempts": 3,
        "last_error": "robot answered 500",
        "created_at": (T0 + timedelta(minutes=1)).isoformat().replace("+00:00", "Z"),
        "sent_at": None,
        "retry_at": None,
    }
    assert [n["address"] for n in everything["items"] if n["channel"] == "email"] == [
        "ann@example.gov.cn"
    ]
    assert [n["id"] for n in listed(state="dead")["items"]] == [dead.id]
    assert [n["subject"] for n in listed(user_id=bob.id)["items"]] == ["消息 4", "消息 3"]
    assert listed(user_id=wes.id)["total"] == 0
    assert {n["user"]["id"] for n in listed(kind="approval_pending")["items"]} == {bob.id}
    first, rest = listed(limit=3), listed(limit=3, offset=3)
    assert (first["total"], len(first["items"]), len(rest["items"])) == (4, 3, 1)
    assert {n["id"] for n in first["items"] + rest["items"]} == set(by_id)
    assert (
        client.get("/api/v1/notifications", params={"state": "lost"}, headers=east_admin)
    ).status_code == 422

    reply = client.post(f"/api/v1/notifications/{theirs.id}/retry", headers=east_admin)
    assert reply.status_code == 404  # another unit's person: as if it did not exist
    assert db.scalar(select(Notification.state).where(Notification.id == theirs.id)) == "dead"
    west_admin = login("westadmin")
    west = client.get("/api/v1/notifications", headers=west_admin).json()
    assert [n["id"] for n in west["items"]] == [theirs.id]
    bobs = login("bob")
    assert client.get("/api/v1/notifications", headers=bobs).status_code == 403
    assert client.post(f"/api/v1/notifications/{dead.id}/retry", headers=bobs).status_code == 403
    mine = client.get("/api/v1/me/notifications/sent", params={"limit": 1}, headers=bobs).json()
    assert (mine["total"], [n["subject"] for n in mine["items"]]) == (2, ["消息 4"])
    assert "TOK4" not in json.dumps(mine)


def test_a_dead_message_is_sent_again_on_an_administrators_retry_audited(
    db: Session, loop: Loop, notifier, robots
):
    run, clock, _ = notifier
    robots.answers = [{"errcode": 93000, "errmsg": "invalid webhook url"}] * 3
    loop.prefer("boss", channels=["wecom"], wecom_url=robots.wecom("K-BACK"))
    loop.submit(loop.order())
    for _ in range(3):
        run.step(db)
        clock.now += timedelta(minutes=5)
    dead = loop.call("chief", "GET", "/api/v1/notifications?state=dead")
    [message] = dead["items"]
    assert message["user"]["username"] == "boss"
    assert message["address"].endswith("?key=***")
    assert (message["attempts"], message["last_error"]) == (
        3,
        "robot refused: errcode 93000, invalid webhook url",
    )
    assert db.scalar(select(DeadLetter.id).where(DeadLetter.notification_id == message["id"]))

    retried = loop.call("chief", "POST", f"/api/v1/notifications/{message['id']}/retry")
    assert (retried["state"], retried["attempts"], retried["retry_at"]) == ("pending", 0, None)
    letter = select(DeadLetter.id).where(DeadLetter.notification_id == message["id"])
    assert db.scalar(letter) is None
    [entry] = db.scalars(select(AuditEntry).where(AuditEntry.entity == "notification")).all()
    assert (entry.actor, entry.action, entry.entity_id) == ("chief", "retry", str(message["id"]))
    assert entry.before is not None
    assert entry.after is not None
    assert (entry.before["state"], entry.before["attempts"]) == ("dead", 3)
    assert (entry.after["state"], entry.after["attempts"]) == ("pending", 0)
    assert "K-BACK" not in json.dumps([entry.before, entry.after])

    again = loop.client.post(
        f"/api/v1/notifications/{message['id']}/retry", headers=loop.headers["chief"]
    )
    assert again.status_code == 409  # pending: on its way already

    drain(run, db)  # the robot answers ok now
    assert [r.query["key"] for r in robots.received] == ["K-BACK"] * 4  # 3 refused, 1 taken
    mine = loop.call("boss", "GET", "/api/v1/me/notifications/sent")
    assert [(n["id"], n["state"]) for n in mine["items"]] == [(message["id"], "sent")]
    sent = loop.client.post(
        f"/api/v1/notifications/{message['id']}/retry", headers=loop.headers["chief"]
    )
    assert sent.status_code == 409
