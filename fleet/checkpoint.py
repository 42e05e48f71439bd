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
import bisect
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

from fleet import audit
from fleet.settings import Settings

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


class ChainBroken(RuntimeError):
    """The chain since the last checkpoint does not verify: no checkpoint is signed over it."""


def write(*, session: Session, key: Ed25519PrivateKey, path: Path, at: datetime) -> Checkpoint:
    """Appends a signed checkpoint of the head, once the chain from the file's last checkpoint
    (its first entry, for the first checkpoint) up to the head verifies: a checkpoint attests
    that its stretch of the chain held when it was signed, so later checks start from it."""
    now = head(session=session, at=at)
    known = [c for c in _parsed(path) if c.checkpoint.entry_id > 0] if path.exists() else []
    last = _trusted(known[-1], key.public_key()) if known else None
    after = None if last is None else (last.entry_id, last.hash)
    if last is not None and _stored_hash(session, last.entry_id) != last.hash:
        raise ChainBroken(f"entry {last.entry_id} no longer has the hash last checkpointed")
    found = audit.verify(session=session, after=after, upto=now.entry_id)
    if not found.ok:
        raise ChainBroken(f"audit log entry {found.first_bad_id} does not verify: {found.reason}")
    append(path, sign(now, key))
    return now


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


# ---- verifying from checkpoints -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Signed:
    checkpoint: Checkpoint
    signature: str


def _parsed(path: Path) -> list[Signed]:
    """The file's lines that parse, sorted by entry, signatures not yet checked (a line that does
    not parse is skipped: only signed lines are ever relied on)."""
    found = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        try:
            line = json.loads(raw)
            point = Checkpoint(
                entry_id=int(line["entry_id"]),
                hash=str(line["hash"]),
                count=int(line["count"]),
                at=datetime.fromisoformat(line["at"]),
            )
            found.append(Signed(point, str(line["signature"])))
        except (ValueError, KeyError, TypeError):
            continue
    return sorted(found, key=lambda s: s.checkpoint.entry_id)


def _trusted(signed: Signed, key: Ed25519PublicKey) -> Checkpoint | None:
    try:
        key.verify(base64.b64decode(signed.signature), signed.checkpoint.payload())
    except (InvalidSignature, ValueError):
        return None
    return signed.checkpoint


def _stored_hash(session: Session, entry_id: int) -> str | None:
    return session.scalar(text("SELECT hash FROM audit_entry WHERE id = :id"), {"id": entry_id})


@dataclass(frozen=True, slots=True)
class Anchors:
    """Where the signed checkpoints are, and the public key that checks them."""

    path: Path
    key: Ed25519PublicKey


def anchors(settings: Settings) -> Anchors | None:
    """The configured checkpoints and their key (the verify key, else the signing key's public
    half); None when no key is configured. A key that cannot be read is a clear error."""
    key_file = settings.audit_verify_key_file or settings.audit_signing_key_file
    if not key_file or not settings.audit_checkpoint_file:
        return None
    try:
        key = load_public_key(Path(key_file))
    except (OSError, ValueError) as error:
        raise ValueError(f"the audit checkpoints' key {key_file}: {error}") from None
    return Anchors(Path(settings.audit_checkpoint_file), key)


@dataclass(frozen=True, slots=True)
class Attestation:
    """What a reader (a dossier) is told of the chain around the entries it shows."""

    ok: bool
    checked: int  # entries recomputed
    first_bad_id: int | None
    message: str
    since: Checkpoint | None  # the latest checkpoint the check started from; None: the first entry

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checked": self.checked,
            "first_bad_id": self.first_bad_id,
            "message": self.message,
            "since_checkpoint": None
            if self.since is None
            else {"entry_id": self.since.entry_id, "at": self.since.at.isoformat()},
        }


def attest(*, session: Session, anchors: Anchors | None, entry_ids: list[int]) -> Attestation:
    """Verifies the chain where it vouches for `entry_ids`, starting from signed checkpoints
    rather than from the first entry.

    Each checkpoint was signed only once its stretch of the chain verified (`write`), so an
    entry at or below a checkpoint is proved by recomputing its stretch, from the checkpoint
    before it to the one at or after it, whose hash must still be the signed one; entries after
    the latest checkpoint are proved by recomputing from it to the head. With no checkpoint (or
    no key) the whole chain is recomputed, as `fleet audit verify` does."""
    points = _parsed(anchors.path) if anchors is not None and anchors.path.exists() else []
    points = [p for p in points if p.checkpoint.entry_id > 0]
    if anchors is None or not points:
        whole = audit.verify(session=session)
        why = "no checkpoints configured" if anchors is None else "no checkpoint yet"
        return Attestation(
            whole.ok,
            whole.checked,
            whole.first_bad_id,
            f"chain intact from the first entry ({why})" if whole.ok else whole.reason,
            None,
        )
    ids = [p.checkpoint.entry_id for p in points]
    latest = points[-1]
    stretches: set[tuple[int, int | None]] = {(len(points) - 1, None)}  # latest .. head
    for entry_id in entry_ids:
        at = bisect.bisect_left(ids, entry_id)
        if at < len(points):
            stretches.add((at - 1, at))  # from the checkpoint before (-1: the first entry)
    checked = 0
    for start, end in sorted(stretches, key=lambda s: (s[0], s[1] is None, s[1])):
        begin = None if start < 0 else _trusted(points[start], anchors.key)
        finish = None if end is None else _trusted(points[end], anchors.key)
        if (start >= 0 and begin is None) or (end is not None and finish is None):
            return Attestation(
                False, checked, None, "a checkpoint's signature does not verify", latest.checkpoint
            )
        for point in (begin, finish):
            if point is not None and _stored_hash(session, point.entry_id) != point.hash:
                return Attestation(
                    False,
                    checked,
                    point.entry_id,
                    f"entry {point.entry_id} no longer has the hash checkpointed at"
                    f" {point.at.isoformat()}: the chain up to it was rewritten",
                    latest.checkpoint,
                )
        found = audit.verify(
            session=session,
            after=None if begin is None else (begin.entry_id, begin.hash),
            upto=None if finish is None else finish.entry_id,
        )
        checked += found.checked
        if not found.ok:
            return Attestation(False, checked, found.first_bad_id, found.reason, latest.checkpoint)
    return Attestation(
        True,
        checked,
        None,
        f"chain intact from the checkpoint of {latest.checkpoint.at.isoformat()}",
        latest.checkpoint,
    )
