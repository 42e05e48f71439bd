"""Signed checkpoints of the audit chain: they round-trip, a forged or edited line is refused, and
a chain that no longer holds a checkpointed head is named."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.orm import Session

from fleet import audit, checkpoint

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
