"""Notifications to people: who hears of an event, where, in which words; and the notifier
`fleet forward` runs beside the sinks.

Nothing here is a second delivery mechanism. The events are the outbox's, written with the
change; the notifier reads them after its cursor (`notifier_cursor`), asks the domain that owns
each event who should hear of it (`Deriver`, plugged in by the composition root: the kernel does
not know orders or alerts), and writes one `notification` per address in the same transaction as
its cursor's move. It then sends those that are due, each retried on its own with the forwarder's
back-off, and dead-letters one after FLEET_NOTIFY_MAX_ATTEMPTS: at least once, never lost, and a
broken robot holds up nobody else's messages.

Where a person is reached: their own setting, field by field over the nearest unit's (their unit,
then its parent, up to the root) that sets it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from sqlalchemy import Select, delete, func, or_, select
from sqlalchemy.orm import Session

from fleet import audit, notify
from fleet.auth import Actor, require, units_in_scope
from fleet.db import utcnow
from fleet.errors import Conflict, Invalid, NotFound
from fleet.models import (
    DeadLetter,
    Notification,
    NotificationSetting,
    NotificationState,
    NotifierCursor,
    NotifyChannel,
    OrgUnit,
    OutboxEvent,
    Role,
    UserAccount,
)
from fleet.paging import Listing
from fleet.schemas import MyNotificationUpdate, NotificationSettingUpdate
from fleet.settings import Settings

log = logging.getLogger("fleet.notify")
LANGUAGES = ("zh", "en")


@dataclass(frozen=True, slots=True)
class Notice:
    """What a domain says of one event for some people: the message kind, who, the page that
    acts on it (a path with its fragment) and the words, per language: (subject, body)."""

    kind: str
    user_ids: tuple[int, ...]
    path: str
    texts: Mapping[str, tuple[str, str]]


# A domain's reading of one of its events (an outbox row) into notices; the display zone formats
# the times it mentions.
Deriver = Callable[[Session, OutboxEvent, ZoneInfo], list[Notice]]


def nearest_with_role(session: Session, unit_id: int, role: Role) -> tuple[int, ...]:
    """The active users holding `role` in the unit, or, when it has none, in the nearest unit
    above it that has some: the people whose scope covers the unit and who answer for it."""
    path = session.scalar(select(OrgUnit.path).where(OrgUnit.id == unit_id))
    if path is None:
        return ()
    chain = [int(p) for p in path.strip("/").split("/") if p]
    found = session.execute(
        select(UserAccount.unit_id, UserAccount.id)
        .where(
            UserAccount.unit_id.in_(chain),
            UserAccount.is_active,
            UserAccount.roles.contains([role.value]),
        )
        .order_by(UserAccount.id)
    ).all()
    for unit in reversed(chain):
        here = tuple(user_id for unit_of, user_id in found if unit_of == unit)
        if here:
            return here
    return ()


# ---- where a person is reached --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Target:
    channel: NotifyChannel
    address: str
    setting_id: int
    from_unit_id: int | None


def _chain(session: Session, user: UserAccount) -> list[NotificationSetting]:
    """The person's own setting, then their unit's, then each unit above, nearest first."""
    path = session.scalar(select(OrgUnit.path).where(OrgUnit.id == user.unit_id)) or ""
    units = [int(p) for p in path.strip("/").split("/") if p]
    rows = session.scalars(
        select(NotificationSetting).where(
            or_(NotificationSetting.user_id == user.id, NotificationSetting.unit_id.in_(units))
        )
    ).all()
    own = [r for r in rows if r.user_id == user.id]
    by_unit = {r.unit_id: r for r in rows if r.unit_id is not None}
    return own + [by_unit[u] for u in reversed(units) if u in by_unit]


_ADDRESS = {
    NotifyChannel.EMAIL: "email",
    NotifyChannel.WECOM: "wecom_url",
    NotifyChannel.DINGTALK: "dingtalk_url",
}


def targets(session: Session, user: UserAccount) -> list[Target]:
    """Where the person's messages go: the channels of the nearest setting that names any, each
    to the nearest address set for it (a channel with no address anywhere is left out)."""
    chain = _chain(session, user)
    channels = next((r.channels for r in chain if r.channels is not None), [])
    found = []
    for name in channels:
        channel = NotifyChannel(name)
        row = next((r for r in chain if getattr(r, _ADDRESS[channel])), None)
        if row is not None:
            found.append(Target(channel, getattr(row, _ADDRESS[channel]), row.id, row.unit_id))
    return found


# ---- the settings, through the API ----------------------------------------------------------


def setting_view(row: NotificationSetting | None) -> dict[str, Any]:
    """A setting as the API and the audit log show it: the robots' credentials masked, the
    secret only as whether there is one."""
    if row is None:
        return {
            "channels": None,
            "email": None,
            "wecom_url": None,
            "dingtalk_url": None,
            "has_dingtalk_secret": False,
        }
    return {
        "channels": row.channels,
        "email": row.email,
        "wecom_url": notify.masked(row.wecom_url),
        "dingtalk_url": notify.masked(row.dingtalk_url),
        "has_dingtalk_secret": row.dingtalk_secret is not None,
    }


def shown_address(channel: NotifyChannel, address: str) -> str:
    """An address as the API shows it: an e-mail address as it is, a robot's URL masked."""
    return address if channel == NotifyChannel.EMAIL else notify.masked(address) or ""


def _audited_view(row: NotificationSetting) -> dict[str, Any]:
    return {"user_id": row.user_id, "unit_id": row.unit_id, **setting_view(row)}


def _check_robots(settings: Settings, changes: dict[str, Any]) -> None:
    """A robot's URL names one of FLEET_NOTIFY_ROBOT_HOSTS: the notifier posts to it, and a
    person must not have it post into the internal network."""
    for name in ("wecom_url", "dingtalk_url"):
        url = changes.get(name)
        if url is None:
            continue
        host = urlsplit(url).hostname or ""
        if host not in settings.notify_robot_hosts:
            allowed = ", ".join(settings.notify_robot_hosts) or "none"
            raise Invalid(f"a robot's URL is on one of these hosts: {allowed}", field=name)


def _write(
    session: Session,
    actor: Actor,
    row: NotificationSetting | None,
    owner: dict[str, int],
    changes: dict[str, Any],
) -> NotificationSetting:
    if "channels" in changes and changes["channels"] is not None:
        changes["channels"] = sorted({NotifyChannel(c).value for c in changes["channels"]})
    if row is None:
        row = NotificationSetting(**owner, **changes)
        return audit.created(  # type: ignore[no-any-return]
            session=session,
            actor=actor.ref,
            entity="notification_setting",
            obj=row,
            view=_audited_view,
        )
    with audit.changing(
        session=session,
        actor=actor.ref,
        entity="notification_setting",
        obj=row,
        view=_audited_view,
    ) as change:
        for key, value in changes.items():
            setattr(row, key, value)
        if "dingtalk_secret" in changes:
            change.always = True  # a new secret does not show in the entry, but it counts
    return row


def _me(session: Session, actor: Actor) -> UserAccount:
    user = session.get(UserAccount, actor.user_id) if actor.user_id is not None else None
    if user is None:
        raise NotFound("only a signed-in person has notification settings")
    return user


def mine(*, session: Session, actor: Actor) -> dict[str, Any]:
    user = _me(session, actor)
    own = session.scalar(select(NotificationSetting).where(NotificationSetting.user_id == user.id))
    return {
        "language": user.language,
        "own": setting_view(own),
        "effective": [
            {
                "channel": t.channel,
                "address": shown_address(t.channel, t.address),
                "from_unit_id": t.from_unit_id,
            }
            for t in targets(session, user)
        ],
    }


def update_mine(
    *, session: Session, settings: Settings, actor: Actor, data: MyNotificationUpdate
) -> dict[str, Any]:
    """Anyone signed in sets their own channels, addresses and language."""
    user = _me(session, actor)
    changes = data.model_dump(exclude_unset=True)
    _check_robots(settings, changes)
    language = changes.pop("language", None)
    if language is not None:
        with audit.changing(session=session, actor=actor.ref, entity="user", obj=user):
            user.language = language
    if changes:
        own = session.scalar(
            select(NotificationSetting).where(NotificationSetting.user_id == user.id)
        )
        _write(session, actor, own, {"user_id": user.id}, changes)
    return mine(session=session, actor=actor)


def _unit_in_scope(session: Session, actor: Actor, unit_id: int) -> None:
    require(actor, "unit", "write")
    found = session.scalar(
        select(OrgUnit.id).where(OrgUnit.id == unit_id, OrgUnit.id.in_(units_in_scope(actor)))
    )
    if found is None:
        raise NotFound(f"no unit {unit_id}")


def of_unit(*, session: Session, actor: Actor, unit_id: int) -> dict[str, Any]:
    """A unit's defaults, for its administrators (the robots' URLs are the unit's group chats)."""
    _unit_in_scope(session, actor, unit_id)
    row = session.scalar(select(NotificationSetting).where(NotificationSetting.unit_id == unit_id))
    return {"unit_id": unit_id, **setting_view(row)}


def update_unit(
    *,
    session: Session,
    settings: Settings,
    actor: Actor,
    unit_id: int,
    data: NotificationSettingUpdate,
) -> dict[str, Any]:
    _unit_in_scope(session, actor, unit_id)
    row = session.scalar(select(NotificationSetting).where(NotificationSetting.unit_id == unit_id))
    changes = data.model_dump(exclude_unset=True)
    _check_robots(settings, changes)
    if changes:
        _write(session, actor, row, {"unit_id": unit_id}, changes)
    return of_unit(session=session, actor=actor, unit_id=unit_id)


# ---- the messages, through the API ----------------------------------------------------------


class NotificationNotDead(Conflict):
    """Only a message given up on is tried again: a pending one is on its way, a sent one went."""


def _listed(session: Session, rows: Sequence[Notification]) -> list[dict[str, Any]]:
    names = {
        user_id: username
        for user_id, username in session.execute(
            select(UserAccount.id, UserAccount.username).where(
                UserAccount.id.in_({n.user_id for n in rows})
            )
        )
    }
    return [
        {
            "id": n.id,
            "user": {"id": n.user_id, "username": names[n.user_id]},
            "kind": n.kind,
            "channel": n.channel,
            "address": shown_address(n.channel, n.address),
            "subject": n.subject,
            "state": n.state,
            "attempts": n.attempts,
            "last_error": n.last_error,
            "created_at": n.created_at,
            "sent_at": n.sent_at,
            "retry_at": n.retry_at,
        }
        for n in rows
    ]


def _scoped(actor: Actor) -> Select[Notification]:
    """The notifications of the people in the actor's units (administrators)."""
    require(actor, "notification", "read")
    return select(Notification).where(
        Notification.user_id.in_(
            select(UserAccount.id).where(UserAccount.unit_id.in_(units_in_scope(actor)))
        )
    )


def list_(
    *,
    session: Session,
    actor: Actor,
    listing: Listing,
    state: NotificationState | None = None,
    user_id: int | None = None,
    kind: str | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """The messages to the people in the caller's units, newest first."""
    stmt = _scoped(actor).order_by(Notification.id.desc())
    if state is not None:
        stmt = stmt.where(Notification.state == state)
    if user_id is not None:
        stmt = stmt.where(Notification.user_id == user_id)
    if kind is not None:
        stmt = stmt.where(Notification.kind == kind)
    rows, total = listing.page(session, stmt)
    return _listed(session, rows), total


def list_mine(
    *, session: Session, actor: Actor, listing: Listing
) -> tuple[list[dict[str, Any]], int]:
    """The caller's own messages, newest first."""
    user = _me(session, actor)
    stmt = (
        select(Notification).where(Notification.user_id == user.id).order_by(Notification.id.desc())
    )
    rows, total = listing.page(session, stmt)
    return _listed(session, rows), total


def _retry_view(row: Notification) -> dict[str, Any]:
    return {
        "user_id": row.user_id,
        "kind": row.kind,
        "channel": row.channel,
        "address": shown_address(row.channel, row.address),
        "state": row.state,
        "attempts": row.attempts,
        "last_error": row.last_error,
    }


def retry(*, session: Session, actor: Actor, notification_id: int) -> dict[str, Any]:
    """A dead message goes back to the notifier: pending, due now, its attempts at 0 and its
    dead letter removed; the last error stays until the next attempt replaces it. Audited."""
    require(actor, "notification", "write")
    row = session.scalar(_scoped(actor).where(Notification.id == notification_id).with_for_update())
    if row is None:
        raise NotFound(f"no notification {notification_id}")
    if row.state != NotificationState.DEAD:
        raise NotificationNotDead(f"notification {notification_id} is {row.state}, not dead")
    with audit.changing(
        session=session,
        actor=actor.ref,
        entity="notification",
        obj=row,
        action="retry",
        view=_retry_view,
    ):
        row.state = NotificationState.PENDING
        row.attempts = 0
        row.retry_at = None
        session.execute(delete(DeadLetter).where(DeadLetter.notification_id == row.id))
    return _listed(session, [row])[0]


# ---- the notifier ---------------------------------------------------------------------------


def cursor_row(session: Session) -> NotifierCursor:
    """The notifier's cursor, locked until the commit; made (after the newest event) if missing."""
    row = session.get(NotifierCursor, 1, with_for_update=True)
    if row is None:
        newest = session.scalar(select(func.max(OutboxEvent.id))) or 0
        row = NotifierCursor(id=1, cursor=newest)
        session.add(row)
        session.flush()
    return row


PRUNE_EVERY_S = 3600


def prune(session: Session, *, before: datetime) -> int:
    """Deletes the messages sent before `before`; returns how many. Those that could not be
    delivered stay, with their dead letters, for someone to look into."""
    gone = session.execute(
        delete(Notification).where(
            Notification.state == NotificationState.SENT, Notification.sent_at < before
        )
    )
    return int(gone.rowcount or 0)  # type: ignore[attr-defined]


class Notifier:
    """Derives notifications from the outbox and delivers them; `step` is one pass of both (the
    forwarder runs it after its sinks), committing as it goes."""

    def __init__(
        self,
        settings: Settings,
        derivers: Mapping[str, Deriver],
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.settings = settings
        self.derivers = dict(derivers)
        self.clock = clock
        self.zone = ZoneInfo(settings.display_timezone)
        self.pruned_at = -float(PRUNE_EVERY_S)

    def step(self, session: Session) -> int:
        """Events read plus messages delivered in this pass (0: nothing to do now); once an hour,
        the messages sent longer ago than the outbox keeps its events are deleted."""
        if time.monotonic() - self.pruned_at > PRUNE_EVERY_S:
            prune(session, before=self.clock() - timedelta(days=self.settings.outbox_keep_days))
            session.commit()
            self.pruned_at = time.monotonic()
        read = self.derive(session)
        session.commit()
        return read + self.deliver(session)

    def derive(self, session: Session) -> int:
        """The notifications of the events after the cursor, written with the cursor's move (so
        each event is read once, whatever crashes when)."""
        cursor = cursor_row(session)
        # Ids follow commit order (outbox.py): every event up to the newest now is committed.
        horizon = session.scalar(select(func.max(OutboxEvent.id))) or 0
        events = session.scalars(
            select(OutboxEvent)
            .where(
                OutboxEvent.id > cursor.cursor,
                OutboxEvent.id <= horizon,
                OutboxEvent.object_type.in_(list(self.derivers)),
            )
            .order_by(OutboxEvent.id)
            .limit(self.settings.forward_batch)
        ).all()
        for event in events:
            self._write(session, event, self.derivers[event.object_type](session, event, self.zone))
        full = len(events) == self.settings.forward_batch
        cursor.cursor = events[-1].id if full else max(cursor.cursor, horizon)
        session.flush()
        return len(events)

    def _write(self, session: Session, event: OutboxEvent, notices: Sequence[Notice]) -> None:
        actor = str(event.payload.get("actor", ""))
        wanted = {user_id for notice in notices for user_id in notice.user_ids}
        if not wanted:
            return
        users = {
            u.id: u
            for u in session.scalars(
                select(UserAccount).where(UserAccount.id.in_(wanted), UserAccount.is_active)
            )
        }
        base = self.settings.public_url.rstrip("/")
        seen: set[tuple[str, str]] = set()
        for notice in notices:
            for user_id in notice.user_ids:
                user = users.get(user_id)
                if user is None or user.username == actor:  # nobody hears of their own act
                    continue
                language = user.language if user.language in notice.texts else LANGUAGES[0]
                subject, body = notice.texts[language]
                for target in targets(session, user):
                    if target.channel == NotifyChannel.EMAIL and not self.settings.smtp_host:
                        continue  # no mail server: e-mail is off
                    if (target.channel, target.address) in seen:
                        continue  # a group robot two recipients share hears it once
                    seen.add((target.channel, target.address))
                    session.add(
                        Notification(
                            event_id=event.id,
                            user_id=user.id,
                            kind=notice.kind,
                            channel=target.channel,
                            address=target.address,
                            setting_id=target.setting_id,
                            language=language,
                            subject=subject[:200],
                            body=body,
                            link=f"{base}{notice.path}"[:500],
                            created_at=self.clock(),
                        )
                    )
        session.flush()

    def due(self, session: Session) -> list[int]:
        now = self.clock()
        return list(
            session.scalars(
                select(Notification.id)
                .where(
                    Notification.state == NotificationState.PENDING,
                    or_(Notification.retry_at.is_(None), Notification.retry_at <= now),
                )
                .order_by(Notification.id)
                .limit(self.settings.forward_batch)
            )
        )

    def deliver(self, session: Session) -> int:
        """Sends the messages that are due, oldest first, committing after each (a crash sends
        at most that one again); returns how many went."""
        sent = 0
        for notification_id in self.due(session):
            found = session.scalar(
                select(Notification)
                .where(
                    Notification.id == notification_id,
                    Notification.state == NotificationState.PENDING,
                )
                .with_for_update(skip_locked=True)
                .execution_options(populate_existing=True)
            )
            if found is not None:
                sent += self._send(session, found)
            session.commit()
        return sent

    def _send(self, session: Session, notification: Notification) -> int:
        secret = None
        if notification.channel == NotifyChannel.DINGTALK and notification.setting_id is not None:
            secret = session.scalar(
                select(NotificationSetting.dingtalk_secret).where(
                    NotificationSetting.id == notification.setting_id
                )
            )
        now = self.clock()
        try:
            notify.send(
                self.settings,
                channel=NotifyChannel(notification.channel),
                address=notification.address,
                secret=secret,
                message=notify.Message(
                    notification.language,
                    notification.subject,
                    notification.body,
                    notification.link,
                ),
                notification_id=notification.id,
                now_s=now.timestamp(),
            )
        except notify.NotifyError as error:
            self._failed(session, notification, str(error), now)
            return 0
        notification.state = NotificationState.SENT
        notification.sent_at = now
        notification.retry_at = None
        return 1

    def _failed(
        self, session: Session, notification: Notification, error: str, now: datetime
    ) -> None:
        notification.attempts += 1
        notification.last_error = error[:1000]
        log.warning(
            "notification %d (%s to user %d): %s",
            notification.id,
            notification.channel,
            notification.user_id,
            error,
        )
        if notification.attempts >= self.settings.notify_max_attempts:
            notification.state = NotificationState.DEAD
            notification.retry_at = None
            session.add(
                DeadLetter(
                    notification_id=notification.id,
                    event_id=notification.event_id,
                    attempts=notification.attempts,
                    last_error=error[:1000],
                    at=now,
                )
            )
            return
        wait = min(
            self.settings.forward_retry_max_s,
            self.settings.forward_retry_min_s * 2 ** (notification.attempts - 1),
        )
        notification.retry_at = now + timedelta(seconds=wait)


def user_ids(values: Iterable[Any]) -> tuple[int, ...]:
    """The distinct ids among `values`, in order, Nones and repeats left out."""
    seen: dict[int, None] = {}
    for value in values:
        if isinstance(value, int):
            seen.setdefault(value, None)
    return tuple(seen)
