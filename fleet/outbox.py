"""The outbox: events for other systems, written in the transaction of the change they tell of.

Every audited change passes through `audit.record_many`, which hands its entries here: an entry
of an entity other systems hear of becomes one `outbox_event` row, so orders and their moves
(assignments included), alert reviews and the registry all give events without a line in their
services. Alerts opened and ended by the geofence worker's raw SQL, and cost records (typed in or
imported by the thousand), get theirs from triggers on `alert` and `cost_record` (migration
0016). `fleet forward` (fleet/forwarding.py) delivers them.

Writers hold the audit chain's advisory lock until they commit (`record_many` takes it; the
trigger takes it too), so ids are handed out in commit order: a sink that has acknowledged event
N has seen every event before it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from fleet.models import AuditEntry, OrgUnit, OutboxEvent

VERSION = 1

# Cost records get theirs from a trigger on `cost_record` (a statement adds thousands in one
# INSERT, with one audit entry for the statement), alerts opened and ended from one on `alert`.
# The audited entity, the kind of event it gives (`fleet/{unit_code}/{kind}`) and the table that
# knows its unit when its audit entry does not say (an alert's review names only the decision).
KINDS: dict[str, tuple[str, str]] = {
    "trip_order": ("orders", "trip_order"),
    "alert": ("alerts", "alert"),
    "org_unit": ("registry", "org_unit"),
    "user": ("registry", "user_account"),
    "vehicle": ("registry", "vehicle"),
    "driver": ("registry", "driver"),
    "device": ("registry", "device"),
    "renewal_request": ("registry", "renewal_request"),
}
# Reads and exports are audited too; nothing changed, so nobody outside hears of them.
_READS = frozenset({"read", "export"})


def from_entries(session: Session, entries: Sequence[AuditEntry]) -> list[OutboxEvent]:
    """The events of audit entries just written, added in the caller's transaction (which holds
    the chain's lock). One query for all their units' codes: a storm of terminals binding at
    once is one batch here too."""
    told = []
    for entry in entries:
        mapped = KINDS.get(entry.entity)
        if mapped is None or entry.action in _READS:
            continue
        kind, table = mapped
        state = entry.after if entry.after is not None else entry.before
        told.append((entry, kind, state, _unit_of(session, entry, state, table)))
    if not told:
        return []
    units = {unit_id for *_, unit_id in told if unit_id is not None}
    codes: dict[int, str] = {
        unit_id: code
        for unit_id, code in session.execute(
            select(OrgUnit.id, OrgUnit.code).where(OrgUnit.id.in_(units))
        )
    }
    for entry, _, state, unit_id in told:  # a unit just deleted still has its code to tell
        if entry.entity == "org_unit" and unit_id is not None and state:
            codes.setdefault(unit_id, str(state.get("code", "-")))
    events = [
        OutboxEvent(
            kind=kind,
            unit_id=unit_id,
            unit_code=codes.get(unit_id, "-") if unit_id is not None else "-",
            object_type=entry.entity,
            object_id=entry.entity_id,
            occurred_at=entry.at,
            payload={
                "type": entry.entity,
                "id": int(entry.entity_id) if entry.entity_id.isdigit() else entry.entity_id,
                "action": entry.action,
                "actor": entry.actor,
                "state": state,
            },
        )
        for entry, kind, state, unit_id in told
    ]
    session.add_all(events)
    session.flush()
    return events


def _unit_of(
    session: Session, entry: AuditEntry, state: dict[str, Any] | None, table: str
) -> int | None:
    if entry.entity == "org_unit":
        return int(entry.entity_id)
    if state and isinstance(state.get("unit_id"), int):
        return int(state["unit_id"])
    if not entry.entity_id.isdigit():
        return None
    # `table` comes from KINDS above, never from input.
    found = session.scalar(
        text(f"SELECT unit_id FROM {table} WHERE id = :id"),
        {"id": int(entry.entity_id)},
    )
    return int(found) if found is not None else None


def envelope(event: OutboxEvent) -> dict[str, Any]:
    """What a sink receives: the same bytes however often it is sent, so `id` de-duplicates."""
    return {
        "version": VERSION,
        "id": event.id,
        "kind": event.kind,
        "unit_code": event.unit_code,
        "occurred_at": event.occurred_at.astimezone(UTC).isoformat(),
        "object": event.payload,
    }
