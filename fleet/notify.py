"""The channels a notification reaches a person by: e-mail (SMTP) and the group robots of
企业微信 (WeCom) and 钉钉 (DingTalk), as their vendors document them. The payloads and the
DingTalk signature are pure functions; `send` does the I/O and raises NotifyError for anything
the receiver did not accept (a refused connection, an SMTP error, an HTTP status other than 2xx,
a robot's non-zero `errcode`), which the notifier retries."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import smtplib
import urllib.error
import urllib.request
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any
from urllib.parse import parse_qsl, quote_plus, urlencode, urlsplit, urlunsplit

from fleet.models import NotifyChannel
from fleet.settings import Settings

# Each robot takes at most this much of a message (bytes of UTF-8): WeCom's markdown content
# is limited to 4096, DingTalk's is larger; a notification is far shorter anyway.
ROBOT_MAX_BYTES = 4000
OPEN = {"zh": "打开处理", "en": "Open"}
# The query parameters that carry a robot's credential, masked wherever a URL is shown.
URL_SECRETS = ("key", "access_token")


class NotifyError(Exception):
    """The channel did not accept the message."""


@dataclass(frozen=True, slots=True)
class Message:
    """What one person reads, in their language."""

    language: str
    subject: str
    body: str
    link: str


def masked(url: str | None) -> str | None:
    """A robot's URL with its key or token replaced by `***`."""
    if url is None:
        return None
    parts = urlsplit(url)
    query = [(k, "***" if k in URL_SECRETS else v) for k, v in parse_qsl(parts.query)]
    return urlunsplit(parts._replace(query=urlencode(query, safe="*")))


def _clip(text: str) -> str:
    data = text.encode()
    if len(data) <= ROBOT_MAX_BYTES:
        return text
    return data[: ROBOT_MAX_BYTES - 3].decode(errors="ignore") + "..."


def wecom_payload(message: Message) -> dict[str, Any]:
    """A WeCom group robot's markdown message: {"msgtype": "markdown", "markdown":
    {"content": ...}}."""
    label = OPEN.get(message.language, OPEN["en"])
    content = f"**{message.subject}**\n{message.body}\n[{label}]({message.link})"
    return {"msgtype": "markdown", "markdown": {"content": _clip(content)}}


def dingtalk_payload(message: Message) -> dict[str, Any]:
    """A DingTalk custom robot's markdown message: {"msgtype": "markdown", "markdown":
    {"title": ..., "text": ...}}; the title is what the chat list shows."""
    label = OPEN.get(message.language, OPEN["en"])
    text = f"#### {message.subject}\n\n{message.body}\n\n[{label}]({message.link})"
    return {"msgtype": "markdown", "markdown": {"title": message.subject, "text": _clip(text)}}


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """DingTalk's 加签: base64(HmacSHA256(secret, f"{timestamp}\\n{secret}")), URL-encoded."""
    digest = hmac.new(
        secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256
    ).digest()
    return quote_plus(base64.b64encode(digest).decode())


def dingtalk_url(url: str, secret: str | None, timestamp_ms: int) -> str:
    """The robot's URL with `timestamp` and `sign` appended when it has a secret (DingTalk
    refuses a timestamp more than an hour away from its own clock)."""
    if not secret:
        return url
    joiner = "&" if urlsplit(url).query else "?"
    return f"{url}{joiner}timestamp={timestamp_ms}&sign={dingtalk_sign(secret, timestamp_ms)}"


def email_message(
    message: Message, *, sender: str, to: str, message_id: str, date_s: float
) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = to
    mail["Subject"] = message.subject
    mail["Date"] = formatdate(date_s, usegmt=True)
    # The same id on a resend, so a mail client can tell the copy.
    mail["Message-ID"] = message_id
    mail.set_content(
        f"{message.body}\n\n{OPEN.get(message.language, OPEN['en'])}: {message.link}\n"
    )
    return mail


def message_id(notification_id: int, sender: str) -> str:
    domain = sender.rpartition("@")[2] or "fleet"
    return f"<fleet-notification-{notification_id}@{domain}>"


def post_robot(url: str, payload: dict[str, Any], timeout_s: float) -> None:
    """POSTs a robot's JSON; both vendors answer {"errcode": 0, "errmsg": "ok"} when they took
    it (and HTTP 200 with a non-zero errcode when they did not)."""
    request = urllib.request.Request(  # noqa: S310 - a robot's http(s) URL, checked when set
        url,
        data=json.dumps(payload, ensure_ascii=False).encode(),
        method="POST",
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as reply:  # noqa: S310
            answer = reply.read()
    except urllib.error.HTTPError as error:
        raise NotifyError(f"robot answered {error.code}") from None
    except (OSError, ValueError) as error:
        raise NotifyError(f"robot unreachable: {error}") from None
    try:
        decoded = json.loads(answer)
    except ValueError:
        raise NotifyError("robot answered something other than JSON") from None
    if not isinstance(decoded, dict) or decoded.get("errcode") != 0:
        code = decoded.get("errcode") if isinstance(decoded, dict) else None
        text = decoded.get("errmsg") if isinstance(decoded, dict) else None
        raise NotifyError(f"robot refused: errcode {code}, {text}")


def send_email(settings: Settings, mail: EmailMessage, to: str) -> None:
    if not settings.smtp_host:
        raise NotifyError("no mail server: FLEET_SMTP_HOST is not set")
    try:
        with smtplib.SMTP(
            settings.smtp_host, settings.smtp_port, timeout=settings.forward_timeout_s
        ) as smtp:
            if settings.smtp_starttls:
                smtp.starttls()
            if settings.smtp_user:
                smtp.login(settings.smtp_user, settings.smtp_password)
            smtp.send_message(mail, to_addrs=[to])
    except (smtplib.SMTPException, OSError) as error:
        raise NotifyError(f"mail: {error}") from None


def send(
    settings: Settings,
    *,
    channel: NotifyChannel,
    address: str,
    secret: str | None,
    message: Message,
    notification_id: int,
    now_s: float,
) -> None:
    """Delivers one message; `now_s` (Unix seconds) dates the e-mail and signs for DingTalk."""
    if channel == NotifyChannel.EMAIL:
        mail = email_message(
            message,
            sender=settings.smtp_from,
            to=address,
            message_id=message_id(notification_id, settings.smtp_from),
            date_s=now_s,
        )
        send_email(settings, mail, address)
    elif channel == NotifyChannel.WECOM:
        post_robot(address, wecom_payload(message), settings.forward_timeout_s)
    else:
        url = dingtalk_url(address, secret, int(now_s * 1000))
        post_robot(url, dingtalk_payload(message), settings.forward_timeout_s)
