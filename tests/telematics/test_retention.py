"""Positions past their retention: whole months dropped as partitions, the month of the cut-off
trimmed, the deletion one audit entry; nothing to delete leaves no entry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from fleet.models import AuditEntry
from telematics import retention
from telematics.ingest import partition_sql
from telematics.models import Position


def _fix(db: Session, at: datetime) -> None:
    db.execute(
        text(
            "INSERT INTO position (vehicle_id, fix_time, device_id, received_at)"
            " VALUES (1, :at, 1, :at)"
        ),
        {"at": at},
    )


def _partitions(db: Session) -> set[str]:
    return set(
        db.scalars(
            text(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                " WHERE i.inhparent = 'position'::regclass"
            )
        )
    )


def test_prune_drops_whole_months_trims_the_cutoff_month_and_audits(db: Session):
    for month in (1, 2, 3):
        db.execute(text(partition_sql(datetime(2019, month, 1, tzinfo=UTC))))
        for day in (1, 20):
            _fix(db, datetime(2019, month, day, 8, tzinfo=UTC))
    cutoff = datetime(2019, 2, 15, tzinfo=UTC)

    pruned = retention.prune(session=db, before=cutoff, retention_years=7)

    assert pruned.partitions_dropped == ("position_p201901",)
    assert pruned.rows_deleted == 3  # two in January, the 1st of February
    assert {"position_p201902", "position_p201903"} <= _partitions(db)
    assert "position_p201901" not in _partitions(db)
    left = db.scalars(
        select(Position.fix_time).where(Position.fix_time < datetime(2019, 4, 1, tzinfo=UTC))
    ).all()
    assert sorted(t.day for t in left) == [1, 20, 20]
    entry = db.scalars(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(1)).one()
    assert (entry.actor, entry.action, entry.entity) == ("system", "delete", "position")
    assert entry.after == {
        "cutoff": "2019-02-15T00:00:00+00:00",
        "retention_years": 7,
        "partitions_dropped": ["position_p201901"],
        "rows_deleted": 3,
    }

    count = db.scalar(select(func.count()).select_from(AuditEntry))
    again = retention.prune(session=db, before=cutoff, retention_years=7)
    assert again.nothing
    assert db.scalar(select(func.count()).select_from(AuditEntry)) == count


def test_the_cutoff_is_the_same_moment_years_before():
    now = datetime(2026, 12, 5, 3, 0, tzinfo=UTC)
    assert retention.cutoff(now, 3) == datetime(2023, 12, 5, 3, 0, tzinfo=UTC)
    assert retention.cutoff(datetime(2028, 2, 29, tzinfo=UTC), 1) == datetime(
        2027, 2, 28, tzinfo=UTC
    )


def test_the_processes_cannot_delete_recent_tracks(db: Session):
    """Their role may not DELETE positions, and the owner's function it calls instead refuses a
    cut-off under a year old, whatever it is told. "Under a year" is by the database's clock,
    which `make test-any-day` does not move, so the test takes its now from there."""
    now = db.scalar(select(func.now()))
    with pytest.raises(DBAPIError, match="under a year old"), db.begin_nested():
        retention.prune(session=db, before=now - timedelta(days=300))
    with pytest.raises(DBAPIError, match="permission denied"), db.begin_nested():
        db.execute(delete(Position).where(Position.fix_time < now))
    db.execute(text(partition_sql(datetime(2019, 1, 1, tzinfo=UTC))))
    with pytest.raises(DBAPIError, match="must be owner"), db.begin_nested():
        db.execute(text("DROP TABLE position_p201901"))
    with pytest.raises(DBAPIError, match="first moment"), db.begin_nested():
        db.execute(text("SELECT fleet_position_partition('2026-03-02T00:00:00+00:00')"))
