"""The tamper-evident audit log.

Each entry holds the SHA-256 of its own canonical content, which includes the hash of the entry
before it. Writers serialise on a transaction-scoped advisory lock, so the chain has no forks even
with many API processes; the database itself refuses UPDATE, DELETE and TRUNCATE on the table.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from enum import Enum
from typing import Any

from geoalchemy2 import WKBElement
from geoalchemy2.shape import to_shape
from sqlalchemy import func, inspect, select
from sqlalchemy.orm import Session

from fleet import outbox
from fleet.db import utcnow
from fleet.models import AuditEntry

GENESIS = "0" * 64
CHAIN_LOCK = 0x0F1EE7_A0D17  # any constant: one lock for the whole chain (and the outbox)
_NEVER_LOGGED = frozenset(
    {
        "password_hash",
        "token_digest",
        "secret_digest",
        "auth_code_digest",
        "created_at",
        "updated_at",
    }
)


@dataclass(frozen=True, slots=True)
class ActorRef:
    """Who made a change: a user, or the system itself (CLI, worker) with id None."""

    id: int | None
    name: str


SYSTEM = ActorRef(id=None, name="system")


def jsonable(value: Any) -> Any:
    """A JSON value that survives a round trip through jsonb unchanged, so hashes recompute."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("non-finite number in an audit entry")
        # jsonb prints integral numbers without an exponent; keep them ints so text stays equal.
        return int(value) if value.is_integer() else value
    if isinstance(value, Enum):
        return jsonable(value.value)
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, WKBElement):
        return to_shape(value).wkt
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    raise TypeError(f"cannot put {type(value).__name__} in an audit entry")


def snapshot(obj: object) -> dict[str, Any]:
    """The column values of an ORM object as they stand now (sensitive columns left out)."""
    mapper = inspect(obj).mapper
    return {
        attr.key: jsonable(getattr(obj, attr.key))
        for attr in mapper.column_attrs
        if attr.key not in _NEVER_LOGGED
    }


def canonical(
    *,
    entry_id: int,
    at: datetime,
    actor_id: int | None,
    actor: str,
    action: str,
    entity: str,
    entity_id: str,
    before: Any,
    after: Any,
    prev_hash: str,
) -> bytes:
    content = {
        "id": entry_id,
        "at": at.astimezone(UTC).isoformat(),
        "actor_id": actor_id,
        "actor": actor,
        "action": action,
        "entity": entity,
        "entity_id": entity_id,
        "before": before,
        "after": after,
        "prev_hash": prev_hash,
    }
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def entry_digest(entry: AuditEntry) -> str:
    return hashlib.sha256(
        canonical(
            entry_id=entry.id,
            at=entry.at,
            actor_id=entry.actor_id,
            actor=entry.actor,
            action=entry.action,
            entity=entry.entity,
            entity_id=entry.entity_id,
            before=entry.before,
            after=entry.after,
            prev_hash=entry.prev_hash,
        )
    ).hexdigest()


@dataclass(frozen=True, slots=True)
class Change:
    """One change to append to the chain (what `record` takes, for `record_many`)."""

    actor: ActorRef
    action: str
    entity: str
    entity_id: object
    before: Mapping[str, Any] | None = None
    after: Mapping[str, Any] | None = None


def record(
    *,
    session: Session,
    actor: ActorRef,
    action: str,
    entity: str,
    entity_id: object,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
) -> AuditEntry:
    """Append one entry in the caller's transaction; it commits or rolls back with the change."""
    change = Change(actor, action, entity, entity_id, before, after)
    return record_many(session=session, changes=[change])[0]


def hold_chain(session: Session) -> None:
    """Take the chain's lock now, until the transaction ends. `record` takes it anyway; a writer
    that locks rows an outbox writer may also lock (an alert under review) takes it first, so
    that every transaction takes the two in the same order and none waits on the other."""
    session.execute(select(func.pg_advisory_xact_lock(CHAIN_LOCK)))


def record_many(*, session: Session, changes: Sequence[Change]) -> list[AuditEntry]:
    """Append entries in order in the caller's transaction, under one take of the chain's lock:
    one read of the head and one draw of ids for all of them (a storm of terminals binding at
    once is one batch, not a queue of single appends); and the outbox events of the changes
    other systems hear of."""
    if not changes:
        return []
    hold_chain(session)
    prev = session.scalar(select(AuditEntry.hash).order_by(AuditEntry.id.desc()).limit(1))
    ids = sorted(
        session.scalars(
            select(func.nextval("audit_entry_id_seq")).select_from(
                func.generate_series(1, len(changes))
            )
        )
    )
    at = utcnow()
    entries = []
    for entry_id, change in zip(ids, changes, strict=True):
        entry = AuditEntry(
            id=entry_id,
            at=at,
            actor_id=change.actor.id,
            actor=change.actor.name,
            action=change.action,
            entity=change.entity,
            entity_id=str(change.entity_id),
            before=jsonable(change.before) if change.before is not None else None,
            after=jsonable(change.after) if change.after is not None else None,
            prev_hash=prev or GENESIS,
        )
        entry.hash = prev = entry_digest(entry)
        entries.append(entry)
    session.add_all(entries)
    session.flush()
    # Under the same lock, so the outbox's ids follow commit order (fleet/outbox.py).
    outbox.from_entries(session, entries)
    return entries


def changed(before: Mapping[str, Any], after: Mapping[str, Any]) -> bool:
    return dict(before) != dict(after)


@dataclass(frozen=True, slots=True)
class Verification:
    checked: int
    first_bad_id: int | None = None
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.first_bad_id is None


def verify_entries(entries: Iterable[AuditEntry], prev: str = GENESIS) -> Verification:
    """Recompute `entries` (in id order) as a chain whose first link is `prev`."""
    checked = 0
    for entry in entries:
        if entry.prev_hash != prev:
            return Verification(
                checked,
                entry.id,
                "its prev_hash does not match the entry before it (one was removed or altered)",
            )
        if entry_digest(entry) != entry.hash:
            return Verification(checked, entry.id, "its content does not match its hash")
        prev = entry.hash
        checked += 1
    return Verification(checked)


def verify(
    *,
    session: Session,
    batch: int = 2000,
    after: tuple[int, str] | None = None,
    upto: int | None = None,
) -> Verification:
    """Recompute the chain in id order and name the first entry that does not match: the whole
    chain, or the entries after `after` (an entry id and the hash it is known to have, which
    the next entry must link to) up to `upto`, inclusive."""
    query = select(AuditEntry).order_by(AuditEntry.id)
    prev = GENESIS
    if after is not None:
        query = query.where(AuditEntry.id > after[0])
        prev = after[1]
    if upto is not None:
        query = query.where(AuditEntry.id <= upto)
    rows = session.scalars(query.execution_options(yield_per=batch))
    try:
        return verify_entries(rows, prev)
    finally:
        rows.close()  # stopping early must not leave the server-side cursor open


# ---- the audited write: snapshot, change, flush, record -------------------------------------


View = Callable[[Any], Mapping[str, Any]]  # what an entry shows of an object: `snapshot`


def created(
    *, session: Session, actor: ActorRef, entity: str, obj: Any, view: View = snapshot
) -> Any:
    """Adds a new object, flushes it (so it has its id, and a duplicate fails here), and records
    its creation with its state; returns the object."""
    session.add(obj)
    session.flush()
    record(
        session=session,
        actor=actor,
        action="create",
        entity=entity,
        entity_id=obj.id,
        after=view(obj),
    )
    return obj


def deleted(
    *, session: Session, actor: ActorRef, entity: str, obj: Any, view: View = snapshot
) -> None:
    """Deletes an object, flushes, and records its deletion with the state it had."""
    before = view(obj)
    entity_id = obj.id
    session.delete(obj)
    session.flush()
    record(
        session=session,
        actor=actor,
        action="delete",
        entity=entity,
        entity_id=entity_id,
        before=before,
    )


@dataclass(slots=True)
class Changing:
    """What `changing` records; the block may rename the action (say, `status`) or make the
    entry count even when the snapshot does not show the change (a password)."""

    action: str
    always: bool = False


@contextmanager
def changing(
    *,
    session: Session,
    actor: ActorRef,
    entity: str,
    obj: Any,
    action: str = "update",
    view: View = snapshot,
) -> Iterator[Changing]:
    """Around a change to `obj`: its state before, the block, a flush, its state after, and one
    entry when anything changed (nothing is recorded for a change that changed nothing)."""
    change = Changing(action)
    before = view(obj)
    yield change
    session.flush()
    after = view(obj)
    if change.always or changed(before, after):
        record(
            session=session,
            actor=actor,
            action=change.action,
            entity=entity,
            entity_id=obj.id,
            before=before,
            after=after,
        )
