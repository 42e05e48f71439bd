"""The sinks administrators connect (`/api/v1/integrations`): each filtered to a unit's subtree
and to event kinds, with its delivery statistics. A secret goes in and never comes out: answers
say only whether one is set, and a URL's password is masked."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from psycopg import errors as pg_errors
from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from fleet import audit, forwarding
from fleet.auth import Actor, is_root_admin, require, units_in_scope
from fleet.errors import Conflict, Forbidden, Invalid, NotFound
from fleet.models import Integration, OrgUnit, OutboxEvent, SinkKind
from fleet.paging import Listing
from fleet.redis_client import RedisClient
from fleet.schemas import IntegrationCreate, IntegrationUpdate

SCHEMES = {
    SinkKind.MQTT: ("mqtt",),
    SinkKind.WEBHOOK: ("http", "https"),
    SinkKind.AMQP: ("amqp", "amqps"),
    SinkKind.NATS: ("nats", "tls"),
}


def masked(url: str) -> str:
    """The URL with its password, if any, replaced by `***`."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


def view(integration: Integration) -> dict[str, Any]:
    """What the audit log keeps of a sink: its settings, never its secret."""
    return {
        "name": integration.name,
        "kind": integration.kind,
        "url": masked(integration.url),
        "has_secret": integration.secret is not None,
        "options": integration.options,
        "unit_id": integration.unit_id,
        "kinds": integration.kinds,
        "enabled": integration.enabled,
    }


def position_stats(redis: RedisClient, integration_ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    """What `fleet forward` keeps of each sink's positions (none for a sink not taking them)."""
    ids = list(integration_ids)
    names = forwarding.POSITION_STAT_FIELDS
    fields = [f"{i}:{name}" for i in ids for name in names]
    values = redis.hmget(forwarding.POSITION_STATS, fields) if fields else []
    found: dict[int, dict[str, Any]] = {}
    for n, integration_id in enumerate(ids):
        raw = values[n * len(names) : (n + 1) * len(names)]
        if all(v is None for v in raw):
            continue
        stats = dict(zip(names, raw, strict=True))
        found[integration_id] = {
            "sent": int(stats["sent"] or 0),
            "failed": int(stats["failed"] or 0),
            "trimmed": int(stats["trimmed"] or 0),
            "lag_ms": int(stats["lag_ms"]) if stats["lag_ms"] is not None else None,
            "last_error": _text(stats["last_error"]),
        }
    return found


def _text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


def out(
    session: Session, integration: Integration, positions: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "positions": positions,
        **view(integration),
        "id": integration.id,
        "from_settings": integration.from_settings,
        "cursor": integration.cursor,
        "sent": integration.sent,
        "pending": forwarding.pending_count(session, integration),
        "failed": integration.failed,
        "dead": integration.dead,
        "attempts": integration.attempts,
        "retry_at": integration.retry_at,
        "last_error": integration.last_error,
        "last_error_at": integration.last_error_at,
        "created_at": integration.created_at,
    }


@contextmanager
def _unique_name() -> Iterator[None]:
    try:
        yield
    except IntegrityError as error:
        if isinstance(error.orig, pg_errors.UniqueViolation):
            raise Conflict("an integration has this name", field="name") from None
        raise


def _check_url(kind: SinkKind, url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES[kind] or not parts.hostname:
        allowed = " or ".join(f"{s}://" for s in SCHEMES[kind])
        raise Invalid(
            f"a {kind.value} sink's URL starts with {allowed} and names a host", field="url"
        )


def _check_unit(session: Session, actor: Actor, unit_id: int | None) -> None:
    if unit_id is None:
        if not is_root_admin(actor):
            raise Forbidden("only an administrator of a root unit may add a sink for every unit")
        return
    found = session.scalar(
        select(OrgUnit.id).where(OrgUnit.id == unit_id, OrgUnit.id.in_(units_in_scope(actor)))
    )
    if found is None:
        raise Invalid(f"no unit {unit_id} in your scope", field="unit_id")


def _scoped(actor: Actor) -> Any:
    seen: ColumnElement[bool] = Integration.unit_id.in_(units_in_scope(actor))
    if is_root_admin(actor):
        seen = or_(seen, Integration.unit_id.is_(None))
    return select(Integration).where(seen)


def list_(*, session: Session, actor: Actor, listing: Listing) -> tuple[Sequence[Integration], int]:
    require(actor, "integration", "read")
    items, total = listing.page(session, _scoped(actor).order_by(Integration.id))
    return list(items), total


def get(*, session: Session, actor: Actor, integration_id: int) -> Integration:
    require(actor, "integration", "read")
    found = session.scalar(_scoped(actor).where(Integration.id == integration_id))
    if found is None:
        raise NotFound(f"no integration {integration_id}")
    return found


def create(*, session: Session, actor: Actor, data: IntegrationCreate) -> Integration:
    """A new sink starts after the newest event: it receives what happens from now on."""
    require(actor, "integration", "write")
    _check_url(data.kind, data.url)
    _check_unit(session, actor, data.unit_id)
    newest = session.scalar(select(func.max(OutboxEvent.id))) or 0
    integration = Integration(
        **data.model_dump(exclude={"kinds"}),
        kinds=sorted(set(data.kinds)) if data.kinds else None,
        cursor=newest,
    )
    with _unique_name():
        audit.created(
            session=session,
            actor=actor.ref,
            entity="integration",
            obj=integration,
            view=view,
        )
    return integration


def update(
    *, session: Session, actor: Actor, integration_id: int, data: IntegrationUpdate
) -> Integration:
    require(actor, "integration", "write")
    integration = get(session=session, actor=actor, integration_id=integration_id)
    if integration.from_settings:
        raise Conflict("this sink is set by FLEET_MQTT_URL; change the setting instead")
    changes = data.model_dump(exclude_unset=True)
    if "unit_id" in changes:
        _check_unit(session, actor, changes["unit_id"])
    if changes.get("kinds"):
        changes["kinds"] = sorted(set(changes["kinds"]))
    kind = SinkKind(changes.get("kind", integration.kind))
    _check_url(kind, changes.get("url", integration.url))
    with (
        _unique_name(),
        audit.changing(
            session=session, actor=actor.ref, entity="integration", obj=integration, view=view
        ) as change,
    ):
        for key, value in changes.items():
            setattr(integration, key, value)
        if "secret" in changes:
            change.always = True  # a new secret does not show in the entry, but it counts
        if changes.get("enabled") and integration.retry_at is not None:
            integration.retry_at = None  # turned back on: try now
    return integration


def delete(*, session: Session, actor: Actor, integration_id: int) -> None:
    require(actor, "integration", "write")
    integration = get(session=session, actor=actor, integration_id=integration_id)
    if integration.from_settings:
        raise Conflict("this sink is set by FLEET_MQTT_URL; unset the setting instead")
    audit.deleted(
        session=session, actor=actor.ref, entity="integration", obj=integration, view=view
    )
