"""Positions are kept no longer than the retention says (个人信息保护法: personal information is
kept only as long as its purpose needs). A month whose every fix is past the cut-off goes as a
whole partition (DROP is instant and leaves no dead rows); the month the cut-off falls in loses
the rows before it. Each deletion is an audit entry of the system."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import CursorResult, delete, text
from sqlalchemy.orm import Session

from fleet import audit
from telematics.ingest import PARTITION_LOCK, _next_month
from telematics.models import Position

_PARTITION = re.compile(r"^position_p(\d{4})(\d{2})$")


@dataclass(frozen=True, slots=True)
class Pruned:
    cutoff: datetime
    partitions_dropped: tuple[str, ...]
    rows_deleted: int  # in dropped partitions and in the month the cut-off falls in

    @property
    def nothing(self) -> bool:
        return self.rows_deleted == 0 and not self.partitions_dropped


def cutoff(now: datetime, years: int) -> datetime:
    """The moment `years` before `now` (29 February falls back to the 28th)."""
    day = min(now.day, 28) if now.month == 2 and now.day == 29 else now.day
    return now.replace(year=now.year - years, day=day)


def _partitions(session: Session) -> list[tuple[str, datetime]]:
    names = session.scalars(
        text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = 'position'::regclass"
        )
    )
    found = []
    for name in names:
        match = _PARTITION.match(name)
        if match:  # only the worker's monthly partitions; anything else is left to its owner
            found.append((name, datetime(int(match[1]), int(match[2]), 1, tzinfo=UTC)))
    return sorted(found, key=lambda p: p[1])


def prune(*, session: Session, before: datetime, retention_years: int | None = None) -> Pruned:
    """Deletes every position with a fix time before `before`, in the caller's transaction, and
    records it (when anything went) as one audit entry: the cut-off, the partitions dropped and
    the rows deleted."""
    session.execute(text(PARTITION_LOCK))  # no partition is made or dropped meanwhile
    dropped: list[str] = []
    rows = 0
    for name, start in _partitions(session):
        if _next_month(start) <= before:  # the name matched _PARTITION: safe in the statement
            rows += session.scalar(text(f"SELECT count(*) FROM {name}")) or 0
            session.execute(text(f"DROP TABLE {name}"))
            dropped.append(name)
    # The month the cut-off falls in, and rows any other partition holds (none, by design).
    trimmed = session.execute(delete(Position).where(Position.fix_time < before))
    rows += cast("CursorResult[Any]", trimmed).rowcount
    result = Pruned(cutoff=before, partitions_dropped=tuple(dropped), rows_deleted=int(rows))
    if not result.nothing:
        audit.record(
            session=session,
            actor=audit.SYSTEM,
            action="delete",
            entity="position",
            entity_id=f"before {before.isoformat()}",
            after={
                "cutoff": before,
                "retention_years": retention_years,
                "partitions_dropped": list(dropped),
                "rows_deleted": result.rows_deleted,
            },
        )
    return result
