"""Who looked at what, retention, and an audit log its own database cannot rewrite (issue 16,
items 11 and 8), against the running API on the demo database and the command line beside it."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from fleet import audit
from fleet.models import AuditEntry
from tests.web.conftest import Stack, api_client


def _fleet(stack: Stack, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        env={**stack.env, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


# ---- who looked at what ----------------------------------------------------------------------


def test_a_supervisor_sees_who_read_a_vehicles_track(stack: Stack) -> None:
    vehicle_id = stack.value(
        "SELECT v.id FROM vehicle v JOIN org_unit u ON u.id = v.unit_id"
        " WHERE u.code = 'CD' ORDER BY v.id LIMIT 1"
    )
    period = {"start": "2026-11-30T00:00:00+08:00", "end": "2026-12-01T00:00:00+08:00"}
    with (
        api_client(stack, "dispatcher") as dispatcher,
        api_client(stack, "supervisor") as supervisor,
    ):
        read = dispatcher.get(f"/vehicles/{vehicle_id}/positions", params=period)
        assert read.status_code == 200, read.text

        listed = supervisor.get(f"/vehicles/{vehicle_id}/reads")
        assert listed.status_code == 200, listed.text
        reads = [r for r in listed.json()["items"] if r["what"] == "positions"]
        assert len(reads) == 1, listed.text
        (entry,) = reads
        assert (entry["actor"], entry["action"]) == ("dispatcher", "read")
        assert entry["since"].startswith("2026-11-29T16:00:00")
        assert entry["until"].startswith("2026-11-30T16:00:00")
        assert entry["client"] == "127.0.0.1"

        # The dispatcher does not get to see who else looked.
        assert dispatcher.get(f"/vehicles/{vehicle_id}/reads").status_code == 403


def test_positions_past_their_retention_are_deleted_and_the_deletion_audited(
    stack: Stack,
) -> None:
    # A month of fixes from 2019 (put there by the owner: the worker makes no partition so old).
    with _owner(stack) as owner, owner.begin() as conn:
        conn.execute(
            text(
                "CREATE TABLE IF NOT EXISTS position_p201903 PARTITION OF position"
                " FOR VALUES FROM ('2019-03-01T00:00:00+00:00') TO ('2019-04-01T00:00:00+00:00')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO position (vehicle_id, fix_time, device_id, received_at)"
                " SELECT 1, '2019-03-10T08:00:00+00:00'::timestamptz + n * interval '1 minute',"
                " 1, now() FROM generate_series(1, 50) n"
            )
        )
    done = _fleet(stack, "positions", "prune", FLEET_POSITION_RETENTION_YEARS="5")
    assert done.returncode == 0, done.stderr
    with stack.engine.connect() as conn:
        assert conn.execute(text("SELECT to_regclass('position_p201903')")).scalar() is None
        entry = conn.execute(
            text(
                "SELECT actor, action, after FROM audit_entry WHERE entity = 'position'"
                " ORDER BY id DESC LIMIT 1"
            )
        ).one()
    assert (entry.actor, entry.action) == ("system", "delete")
    assert entry.after["partitions_dropped"] == ["position_p201903"]
    assert entry.after["rows_deleted"] == 50
    assert entry.after["retention_years"] == 5
    assert _fleet(stack, "audit", "verify").returncode == 0


# ---- an audit log its own database cannot rewrite ----------------------------------------------


@contextmanager
def _owner(stack: Stack) -> Iterator[Engine]:
    """The schema owner's connection: full access to the database (FLEET_DATABASE_OWNER)."""
    engine = create_engine(stack.settings.owner_database)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("statement", "refusal"),
    [
        ("UPDATE audit_entry SET actor = 'mallory'", "permission denied"),
        ("DELETE FROM audit_entry", "permission denied"),
        ("TRUNCATE audit_entry", "permission denied"),
        ("ALTER TABLE audit_entry DISABLE TRIGGER ALL", "must be owner"),
        ("DROP TRIGGER audit_entry_append_only ON audit_entry", "must be owner"),
        ("ALTER FUNCTION audit_entry_refuse_change() RENAME TO gone", "must be owner"),
        ("UPDATE position SET point = NULL", "permission denied"),
        ("DELETE FROM position", "permission denied"),
    ],
)
def test_the_processes_role_cannot_rewrite_the_log_nor_the_tracks(
    stack: Stack, statement: str, refusal: str
) -> None:
    """What the server's own connection (the role every process uses) tries when someone holds
    it: each statement is refused by PostgreSQL, not by Fleet's code."""
    assert stack.settings.app_role, "the stack runs as an application role (FLEET_DATABASE_OWNER)"

    def entries() -> int:
        with stack.engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM audit_entry")).scalar_one())

    before = entries()
    with stack.engine.connect() as conn, pytest.raises(DBAPIError, match=refusal), conn.begin():
        conn.execute(text(statement))
    assert entries() == before


def _rewrite_from(stack: Stack, entry_id: int) -> None:
    """What someone with full access to the database can do: edit an entry and recompute the
    hash of every entry after it (the algorithm is no secret), with the append-only trigger off."""
    with _owner(stack) as owner, Session(owner) as session, session.begin():
        session.execute(text("ALTER TABLE audit_entry DISABLE TRIGGER ALL"))
        prev = session.scalar(
            select(AuditEntry.hash).where(AuditEntry.id < entry_id).order_by(AuditEntry.id.desc())
        )
        later = session.scalars(
            select(AuditEntry).where(AuditEntry.id >= entry_id).order_by(AuditEntry.id)
        ).all()
        later[0].actor = "someone-else"
        rewritten = []
        for entry in later:
            entry.prev_hash = prev or audit.GENESIS
            prev = audit.entry_digest(entry)
            rewritten.append(
                {"id": entry.id, "actor": entry.actor, "prev": entry.prev_hash, "hash": prev}
            )
        session.expunge_all()
        # Out of the way of the unique hashes first, then every row at once.
        session.execute(
            text("UPDATE audit_entry SET hash = 'rewriting-' || id WHERE id >= :id"),
            {"id": entry_id},
        )
        session.execute(
            text(
                "UPDATE audit_entry SET actor = :actor, prev_hash = :prev, hash = :hash"
                " WHERE id = :id"
            ),
            rewritten,
        )
        session.execute(text("ALTER TABLE audit_entry ENABLE TRIGGER ALL"))


def test_a_chain_rewritten_with_full_database_access_fails_against_its_checkpoints(
    stack: Stack, tmp_path: Path
) -> None:
    key = tmp_path / "audit-key.pem"
    made = _fleet(stack, "audit", "keygen", str(key))
    assert made.returncode == 0, made.stderr
    checkpoints = tmp_path / "checkpoints.jsonl"
    signing = {"FLEET_AUDIT_SIGNING_KEY_FILE": str(key)}
    taken = _fleet(stack, "audit", "checkpoint", "--file", str(checkpoints), **signing)
    assert taken.returncode == 0, taken.stderr
    assert (
        _fleet(stack, "audit", "verify", "--checkpoints", str(checkpoints), **signing).returncode
        == 0
    )

    with stack.engine.connect() as conn:
        victim = conn.execute(
            text("SELECT min(id) FROM audit_entry WHERE entity = 'trip_order'")
        ).scalar()
    assert victim is not None
    _rewrite_from(stack, victim)

    # The chain alone cannot tell: every hash was recomputed.
    plain = _fleet(stack, "audit", "verify")
    assert plain.returncode == 0, plain.stderr
    # The signed checkpoint, kept outside the database, can.
    pinned = _fleet(stack, "audit", "verify", "--checkpoints", str(checkpoints), **signing)
    assert pinned.returncode == 1, pinned.stdout
    assert "rewritten" in pinned.stderr

    # A checkpoint forged without the key is refused as such.
    lines = checkpoints.read_text().splitlines()
    forged = json.loads(lines[-1])
    with stack.engine.connect() as conn:
        forged["hash"] = conn.execute(
            text("SELECT hash FROM audit_entry WHERE id = :id"), {"id": forged["entry_id"]}
        ).scalar()
    checkpoints.write_text(json.dumps(forged) + "\n")
    refused = _fleet(stack, "audit", "verify", "--checkpoints", str(checkpoints), **signing)
    assert refused.returncode == 1
    assert "signature does not verify" in refused.stderr
