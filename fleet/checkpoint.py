"""Signed checkpoints of the audit chain's head, kept outside the database.

The hash chain shows an edit to anyone who cannot recompute the hashes after it; someone with
full access to the database can. A checkpoint (head entry id, its hash, how many entries, when)
signed with an Ed25519 key the database never sees, appended to a file elsewhere, pins the chain
as it stood: a rewrite of any entry up to a checkpointed head changes that head's hash (or the
count up to it), and the signature cannot be redone without the key.

The file is JSON lines, one checkpoint a line, each signed on its own, so appending is all a
writer does and a truncated last line costs only that line."""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import text
from sqlalchemy.orm import Session

VERSION = 1


@dataclass(frozen=True, slots=True)
class Checkpoint:
    entry_id: int  # 0 with hash "" for an empty log
    hash: str
    count: int
    at: datetime

    def payload(self) -> bytes:
        """The signed bytes: canonical JSON, so any verifier rebuilds them exactly."""
        content = {
            "v": VERSION,
            "entry_id": self.entry_id,
            "hash": self.hash,
            "count": self.count,
            "at": self.at.isoformat(),
        }
        return json.dumps(content, sort_keys=True, separators=(",", ":")).encode()


def generate_key() -> bytes:
    """A new Ed25519 private key as unencrypted PKCS#8 PEM (keep it off the database host)."""
    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_private_key(path: Path) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} is not an Ed25519 private key")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    """A public key file, or the public half of a private key file."""
    data = path.read_bytes()
    if b"PRIVATE KEY" in data:
        return load_private_key(path).public_key()
    key = serialization.load_pem_public_key(data)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(f"{path} is not an Ed25519 public key")
    return key


def public_pem(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def head(*, session: Session, at: datetime) -> Checkpoint:
    """The chain's head now. One statement, so the id, hash and count come from one snapshot;
    entries commit in id order (the writers' lock), so no later commit lands below the head."""
    row = session.execute(
        text(
            "SELECT h.id, h.hash, (SELECT count(*) FROM audit_entry) AS entries"
            " FROM (SELECT NULL) AS one"
            " LEFT JOIN (SELECT id, hash FROM audit_entry ORDER BY id DESC LIMIT 1) h ON true"
        )
    ).one()
    return Checkpoint(entry_id=row.id or 0, hash=row.hash or "", count=int(row.entries), at=at)


def sign(checkpoint: Checkpoint, key: Ed25519PrivateKey) -> str:
    """The checkpoint as one line of the file, signature included."""
    line: dict[str, Any] = json.loads(checkpoint.payload())
    line["signature"] = base64.b64encode(key.sign(checkpoint.payload())).decode()
    return json.dumps(line, sort_keys=True, separators=(",", ":"))


def append(path: Path, line: str) -> None:
    """Appends one line and syncs it to disk before returning."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as out:
        out.write(line + "\n")
        out.flush()
        os.fsync(out.fileno())


def write(*, session: Session, key: Ed25519PrivateKey, path: Path, at: datetime) -> Checkpoint:
    checkpoint = head(session=session, at=at)
    append(path, sign(checkpoint, key))
    return checkpoint


@dataclass(frozen=True, slots=True)
class Finding:
    checked: int  # checkpoints that held
    problem: str = ""

    @property
    def ok(self) -> bool:
        return not self.problem


def read(path: Path, key: Ed25519PublicKey) -> tuple[list[Checkpoint], str]:
    """The checkpoints of a file whose signatures hold, and the first problem found, if any."""
    found: list[Checkpoint] = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            line = json.loads(raw)
            checkpoint = Checkpoint(
                entry_id=int(line["entry_id"]),
                hash=str(line["hash"]),
                count=int(line["count"]),
                at=datetime.fromisoformat(line["at"]),
            )
            key.verify(base64.b64decode(line["signature"]), checkpoint.payload())
        except InvalidSignature:
            return found, f"checkpoint line {number}: its signature does not verify"
        except (ValueError, KeyError, TypeError):
            return found, f"checkpoint line {number}: not a checkpoint"
        found.append(checkpoint)
    return found, ""


def check(*, session: Session, checkpoints: list[Checkpoint]) -> Finding:
    """Whether the chain in the database still holds every checkpointed head: the same hash at
    the same id, the same number of entries up to it, and never fewer entries than last time."""
    for done, checkpoint in enumerate(checkpoints):
        if checkpoint.entry_id == 0:
            continue
        row = session.execute(
            text(
                "SELECT (SELECT hash FROM audit_entry WHERE id = :id) AS hash,"
                " (SELECT count(*) FROM audit_entry WHERE id <= :id) AS entries"
            ),
            {"id": checkpoint.entry_id},
        ).one()
        when = checkpoint.at.isoformat()
        if row.hash is None:
            return Finding(done, f"entry {checkpoint.entry_id}, the head at {when}, is gone")
        if row.hash != checkpoint.hash:
            return Finding(
                done,
                f"entry {checkpoint.entry_id} no longer has the hash checkpointed at {when}:"
                " the chain up to it was rewritten",
            )
        if row.entries != checkpoint.count:
            return Finding(
                done,
                f"{row.entries} entries up to entry {checkpoint.entry_id}, {checkpoint.count} when"
                f" checkpointed at {when}: entries were removed or added below it",
            )
    return Finding(len(checkpoints))
