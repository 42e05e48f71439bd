"""Who looked at what. A vehicle's track is personal information about its drivers
(个人信息保护法), so every read of its positions, trips, file or an order dossier that shows it, and
every export, is an audit entry: who, what, which period, from which address.

Such entries are of their own kind (action `read` or `export`), so whatever counts or shows the
changes of a record (the vehicle file's status changes, a dossier's entries) leaves them out, and a
supervisor lists them per vehicle. They go through the one audit writer, into the same chain."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from fleet import audit, registry
from fleet.auth import Actor
from fleet.errors import Forbidden
from fleet.models import AuditEntry, Role
from fleet.paging import Listing

READ = "read"
EXPORT = "export"
KINDS = (READ, EXPORT)


def record(
    *,
    session: Session,
    actor: Actor,
    client: str,
    action: str,
    entity: str,
    entity_id: object,
    what: str,
    since: datetime | None = None,
    until: datetime | None = None,
    **detail: Any,
) -> AuditEntry:
    """Appends one read (or export) in the caller's transaction. `what` names the thing read
    (`positions`, `trips`, `vehicle_file`, `order_dossier`, `statistics`...), `since`/`until` the
    period it covers (none for a whole life), `client` the address the request came from."""
    if action not in KINDS:
        raise ValueError(f"a read is recorded as one of {KINDS}, not {action!r}")
    return audit.record(
        session=session,
        actor=actor.ref,
        action=action,
        entity=entity,
        entity_id=entity_id,
        after={"what": what, "since": since, "until": until, "client": client, **detail},
    )


def list_for_vehicle(
    *, session: Session, actor: Actor, vehicle_id: int, listing: Listing
) -> tuple[Sequence[AuditEntry], int]:
    """The reads and exports of one vehicle's data, newest first: for supervisors (and
    administrators) whose units keep the vehicle; outside their scope the vehicle is 404."""
    if not actor.has(Role.SUPERVISOR, Role.ADMIN):
        raise Forbidden("only supervisors and administrators see who read a vehicle's data")
    registry.get_vehicle(session=session, actor=actor, vehicle_id=vehicle_id)
    stmt = (
        select(AuditEntry)
        .where(
            AuditEntry.entity == "vehicle",
            AuditEntry.entity_id == str(vehicle_id),
            AuditEntry.action.in_(KINDS),
        )
        .order_by(AuditEntry.id.desc())
    )
    return listing.page(session, stmt)
