"""Positions are kept no longer than the retention says (个人信息保护法: personal information is
kept only as long as its purpose needs). A month whose every fix is past the cut-off goes as a
whole partition (DROP is instant and leaves no dead rows); the month the cut-off falls in loses
the rows before it. Each deletion is an audit entry of the system. The deleting is done by the
schema owner's function `fleet_prune_positions` (migration 0013), since the processes' role may
not delete positions, and it refuses a cut-off under a year old."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from fleet import audit
from fleet.db import make_session_factory, unit_of_work, utcnow
from telematics.settings import TelematicsSettings

log = logging.getLogger("fleet.maintenance")


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


def prune(*, session: Session, before: datetime, retention_years: int | None = None) -> Pruned:
    """Deletes every position with a fix time before `before`, in the caller's transaction, and
    records it (when anything went) as one audit entry: the cut-off, the partitions dropped and
    the rows deleted."""
    dropped, rows = session.execute(
        text("SELECT partitions_dropped, rows_deleted FROM fleet_prune_positions(:cutoff)"),
        {"cutoff": before},
    ).one()
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


def prune_expired(engine: Engine, settings: TelematicsSettings) -> Pruned | None:
    """Deletes the positions past FLEET_POSITION_RETENTION_YEARS (none when it is unset)."""
    years = settings.position_retention_years
    if years is None:
        return None
    with unit_of_work(make_session_factory(engine)) as session:
        pruned = prune(session=session, before=cutoff(utcnow(), years), retention_years=years)
    if not pruned.nothing:
        log.info(
            "positions before %s deleted: %d rows, partitions dropped: %s",
            pruned.cutoff.isoformat(),
            pruned.rows_deleted,
            ", ".join(pruned.partitions_dropped) or "none",
        )
    return pruned
