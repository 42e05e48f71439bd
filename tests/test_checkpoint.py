"""Signed checkpoints of the audit chain: they round-trip, a forged or edited line is refused, and
a chain that no longer holds a checkpointed head is named."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from fleet import audit, checkpoint
from fleet.models import AuditEntry

AT = datetime(2026, 12, 5, 2, 0, tzinfo=UTC)


def _key(tmp_path: Path) -> Path:
    path = tmp_path / "key.pem"
    path.write_bytes(checkpoint.generate_key())
    return path


def test_a_checkpoint_reads_back_with_its_key_and_not_with_another(tmp_path: Path):
    key = checkpoint.load_private_key(_key(tmp_path))
    file = tmp_path / "cp.jsonl"
    head = checkpoint.Checkpoint(entry_id=7, hash="ab" * 32, count=5, at=AT)
    checkpoint.append(file, checkpoint.sign(head, key))
    assert checkpoint.read(file, key.public_key()) == ([head], "")
    other = Ed25519PrivateKey.generate().public_key()
    assert checkpoint.read(file, other)[1] == "checkpoint line 1: its signature does not verify"
    file.write_text(file.read_text().replace('"count":5', '"count":6'))
    assert "signature does not verify" in checkpoint.read(file, key.public_key())[1]
    file.write_text("not json\n")
    assert checkpoint.read(file, key.public_key())[1] == "checkpoint line 1: not a checkpoint"


def test_the_head_is_checked_by_hash_and_by_count(db: Session, root_unit, tmp_path: Path):
    audit.record(
        session=db, actor=audit.SYSTEM, action="create", entity="x", entity_id=1, after={"a": 1}
    )
    head = checkpoint.head(session=db, at=AT)
    assert head.entry_id > 0
    assert checkpoint.check(session=db, checkpoints=[head]).ok
    edited = checkpoint.Checkpoint(head.entry_id, "0" * 64, head.count, AT)
    assert "rewritten" in checkpoint.check(session=db, checkpoints=[edited]).problem
    fewer = checkpoint.Checkpoint(head.entry_id, head.hash, head.count + 1, AT)
    assert "removed or added" in checkpoint.check(session=db, checkpoints=[head, fewer]).problem
    assert checkpoint.check(session=db, checkpoints=[head, fewer]).checked == 1


# ---- checkpoints attest their stretch; readers verify from them ------------------------------


def _entries(db: Session, count: int) -> list[int]:
    someone = audit.ActorRef(id=None, name="test")
    return [
        audit.record(
            session=db, actor=someone, action="edit", entity="x", entity_id=n, after={"n": n}
        ).id
        for n in range(count)
    ]


def _rewrite(owner_db: Session, entry_id: int) -> None:
    """Someone with full database access: edit an entry and recompute every hash after it."""
    owner_db.execute(text("ALTER TABLE audit_entry DISABLE TRIGGER USER"))
    later = owner_db.scalars(
        select(AuditEntry).where(AuditEntry.id >= entry_id).order_by(AuditEntry.id)
    ).all()
    prev = owner_db.scalar(
        select(AuditEntry.hash).where(AuditEntry.id < entry_id).order_by(AuditEntry.id.desc())
    )
    later[0].actor = "someone-else"
    for entry in later:
        entry.prev_hash = prev or audit.GENESIS
        entry.hash = prev = audit.entry_digest(entry)
        owner_db.flush()
    owner_db.execute(text("ALTER TABLE audit_entry ENABLE TRIGGER USER"))
    owner_db.expire_all()


@pytest.fixture
def signing(tmp_path: Path) -> tuple[Ed25519PrivateKey, checkpoint.Anchors]:
    key = checkpoint.load_private_key(_key(tmp_path))
    return key, checkpoint.Anchors(tmp_path / "cp.jsonl", key.public_key())


def test_a_checkpoint_is_signed_only_over_a_stretch_that_verifies(owner_db: Session, signing):
    key, anchors = signing
    first = _entries(owner_db, 3)
    checkpoint.write(session=owner_db, key=key, path=anchors.path, at=AT)
    later = _entries(owner_db, 3)
    owner_db.execute(text("ALTER TABLE audit_entry DISABLE TRIGGER USER"))
    owner_db.execute(text("UPDATE audit_entry SET actor = 'x' WHERE id = :id"), {"id": later[1]})
    owner_db.execute(text("ALTER TABLE audit_entry ENABLE TRIGGER USER"))
    owner_db.expire_all()
    with pytest.raises(checkpoint.ChainBroken, match=f"entry {later[1]} does not verify"):
        checkpoint.write(session=owner_db, key=key, path=anchors.path, at=AT)
    assert len(anchors.path.read_text().splitlines()) == 1
    # Nor over a chain rewritten below the last checkpoint, hashes and all.
    _rewrite(owner_db, first[1])
    with pytest.raises(checkpoint.ChainBroken, match=f"entry {first[-1]} no longer"):
        checkpoint.write(session=owner_db, key=key, path=anchors.path, at=AT)


def test_a_reader_verifies_from_the_checkpoints_around_its_entries(owner_db: Session, signing):
    key, anchors = signing
    _entries(owner_db, 5)
    low = checkpoint.write(session=owner_db, key=key, path=anchors.path, at=AT)
    middle = _entries(owner_db, 5)
    high = checkpoint.write(session=owner_db, key=key, path=anchors.path, at=AT)
    tail = _entries(owner_db, 3)

    shown = checkpoint.attest(session=owner_db, anchors=anchors, entry_ids=[middle[2]])
    assert shown.ok, shown.message
    assert shown.checked == 5 + 3  # the stretch from `low` to `high`, and the tail: not the start
    assert shown.since == high
    assert shown.as_dict()["since_checkpoint"] == {"entry_id": high.entry_id, "at": AT.isoformat()}
    assert checkpoint.attest(session=owner_db, anchors=anchors, entry_ids=[tail[0]]).checked == 3

    whole = checkpoint.attest(session=owner_db, anchors=None, entry_ids=[middle[2]])
    assert whole.ok
    assert whole.checked >= 13
    assert whole.since is None
    assert "first entry" in whole.message

    # An entry shown, edited without recomputing: its stretch no longer verifies.
    owner_db.execute(text("ALTER TABLE audit_entry DISABLE TRIGGER USER"))
    owner_db.execute(text("UPDATE audit_entry SET actor = 'x' WHERE id = :id"), {"id": middle[2]})
    owner_db.execute(text("ALTER TABLE audit_entry ENABLE TRIGGER USER"))
    owner_db.expire_all()
    edited = checkpoint.attest(session=owner_db, anchors=anchors, entry_ids=[middle[2]])
    assert (edited.ok, edited.first_bad_id) == (False, middle[2])
    assert low.entry_id < middle[2] <= high.entry_id


def test_a_rewrite_with_every_hash_recomputed_fails_against_the_checkpoint(
    owner_db: Session, signing
):
    key, anchors = signing
    shown = _entries(owner_db, 4)
    held = checkpoint.write(session=owner_db, key=key, path=anchors.path, at=AT)
    _entries(owner_db, 2)
    _rewrite(owner_db, shown[1])
    assert audit.verify(session=owner_db).ok  # the chain alone cannot tell
    found = checkpoint.attest(session=owner_db, anchors=anchors, entry_ids=[shown[1]])
    assert not found.ok
    assert found.first_bad_id == held.entry_id
    assert "rewritten" in found.message
    # A checkpoint line signed by another key is not relied on.
    stranger = checkpoint.Anchors(anchors.path, Ed25519PrivateKey.generate().public_key())
    refused = checkpoint.attest(session=owner_db, anchors=stranger, entry_ids=[shown[1]])
    assert (refused.ok, refused.message) == (False, "a checkpoint's signature does not verify")
