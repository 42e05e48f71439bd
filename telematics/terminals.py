"""JT/T 808 terminal identity, as the gateway checks it against the registry.

A device's first registration (0x0100) binds the terminal's identity to it: maker id, model,
terminal id, plate and plate colour (or an administrator entered the terminal id beforehand, and
only that terminal can bind). Another terminal that names the same number is refused (0x8100
result 3) and reported through a `MismatchSink`. Every registration gets a new random auth code;
only its digest is kept, in the database, so that any gateway process can check a 0x0102 and an
administrator can revoke it (`fleet.registry.rebind_device`, `revoke_auth_code`).

The functions take a session and never commit. The gateway gathers the registrations (and
authentications) that arrive together and runs each gathering in a thread, in one transaction:
after a restart thousands of terminals register within seconds, and one transaction each, all
appending to the one audit chain, queued them past their timeouts.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol, cast

from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from fleet import audit
from fleet.models import Device
from telematics.protocols.jt808 import Registration


@dataclass(frozen=True, slots=True)
class Identity:
    """What a terminal says it is in 0x0100, cut to what the device record keeps."""

    maker: str
    model: str
    terminal_id: str
    plate: str
    plate_colour: int

    @classmethod
    def of(cls, registration: Registration) -> Identity:
        return cls(
            maker=registration.maker[:11],
            model=registration.model[:30],
            terminal_id=registration.terminal_id[:30],
            plate=registration.plate[:32],
            plate_colour=registration.plate_colour,
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Verdict(StrEnum):
    BIND = "bind"  # the device's first terminal: bind it
    MATCH = "match"  # the bound terminal registering again
    MISMATCH = "mismatch"  # another terminal naming a bound (or reserved) number


def verdict(
    *, bound: Identity | None, expected_terminal_id: str | None, claimed: Identity
) -> Verdict:
    if bound is not None:
        return Verdict.MATCH if claimed == bound else Verdict.MISMATCH
    if expected_terminal_id is not None and claimed.terminal_id != expected_terminal_id:
        return Verdict.MISMATCH
    return Verdict.BIND


def new_auth_code() -> str:
    """64 random bits as 16 hex characters: as long as the codes field terminals already hold."""
    return secrets.token_hex(8)


def code_digest(code: str) -> str:
    # The code is random, so a plain hash is as good as a slow one (as for device tokens).
    return hashlib.sha256(code.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Registered:
    verdict: Verdict
    code: str | None = None  # for BIND and MATCH
    bound: Identity | None = None  # the identity the device holds (for a mismatch's report)
    expected_terminal_id: str | None = None


def _bound(device: Device) -> Identity | None:
    if device.bound_at is None:
        return None
    return Identity(
        maker=device.terminal_maker or "",
        model=device.terminal_model or "",
        terminal_id=device.terminal_id or "",
        plate=device.terminal_plate or "",
        plate_colour=device.terminal_plate_colour or 0,
    )


@dataclass(frozen=True, slots=True)
class Claim:
    """One 0x0100: the device the number names and the identity the terminal claims."""

    device_id: int
    claimed: Identity
    peer: str
    now: datetime


@dataclass(frozen=True, slots=True)
class Attempt:
    """One 0x0102: the code a terminal gives for a device, and what a 2019 terminal reports."""

    device_id: int
    code: str
    imei: str | None
    software_version: str | None
    peer: str


def register(
    *, session: Session, device_id: int, claimed: Identity, peer: str, now: datetime
) -> Registered:
    """Bind or recognise the terminal, and issue it a new auth code (which revokes the last)."""
    return register_many(session=session, claims=[Claim(device_id, claimed, peer, now)])[0]


def register_many(*, session: Session, claims: Sequence[Claim]) -> list[Registered]:
    """`register` for many terminals in one transaction (a reconnection storm), with the same
    outcome as registering them one after another in the order given.

    A bound terminal registering again is recognised and issued its code by one conditional
    UPDATE for all of them: no row is loaded, and a re-bind committed meanwhile makes the
    condition fail. The rest (first bindings, impostors, a number named twice) are locked in id
    order, so two gateways cannot deadlock on them, and decided one by one; each binding is an
    audit entry of its own, appended in this one transaction."""
    codes = [new_auth_code() for _ in claims]
    results: list[Registered | None] = [None] * len(claims)
    first: dict[int, int] = {}  # device id -> the index of its first claim
    for i, claim in enumerate(claims):
        first.setdefault(claim.device_id, i)
    recognised = _recognise(session, [(i, claims[i], codes[i]) for i in first.values()])
    for i in recognised:
        results[i] = Registered(Verdict.MATCH, code=codes[i])
    rest = [i for i in range(len(claims)) if results[i] is None]
    if not rest:
        return cast(list[Registered], results)
    ids = sorted({claims[i].device_id for i in rest})
    devices = {
        device.id: device
        for device in session.scalars(
            select(Device).where(Device.id.in_(ids)).order_by(Device.id).with_for_update()
        )
    }
    bindings: list[tuple[Device, Claim, dict[str, Any]]] = []
    for i in rest:
        device = devices.get(claims[i].device_id)
        results[i] = _decide(device, claims[i], codes[i], bindings)
    session.flush()  # every binding at once, before the audit entries that name them
    audit.record_many(
        session=session,
        changes=[
            audit.Change(
                actor=terminal_actor(claim.peer),
                action="bind",
                entity="device",
                entity_id=device.id,
                before=before,
                after=audit.snapshot(device),
            )
            for device, claim, before in bindings
        ],
    )
    return cast(list[Registered], results)


# The claims as arrays, one element per claim: one statement, compiled once, whatever the batch.
_RECOGNISE = text(
    """
    UPDATE device d SET auth_code_digest = c.digest
    FROM unnest(
        CAST(:n AS int[]), CAST(:device_id AS bigint[]), CAST(:digest AS text[]),
        CAST(:maker AS text[]), CAST(:model AS text[]), CAST(:terminal_id AS text[]),
        CAST(:plate AS text[]), CAST(:plate_colour AS int[])
    ) AS c(n, device_id, digest, maker, model, terminal_id, plate, plate_colour)
    WHERE d.id = c.device_id
      AND d.bound_at IS NOT NULL
      AND coalesce(d.terminal_maker, '') = c.maker
      AND coalesce(d.terminal_model, '') = c.model
      AND coalesce(d.terminal_id, '') = c.terminal_id
      AND coalesce(d.terminal_plate, '') = c.plate
      AND coalesce(d.terminal_plate_colour, 0) = c.plate_colour
    RETURNING c.n
    """
)


def _recognise(session: Session, claims: list[tuple[int, Claim, str]]) -> set[int]:
    """Issue the new codes of the claims whose device is bound to exactly the identity claimed
    (a missing part of the identity read as empty, as `_bound` reads a device); the indices of
    those. Rows are updated in device id order, as the bindings lock them."""
    if not claims:
        return set()
    ordered = sorted(claims, key=lambda claim: claim[1].device_id)
    identities = [c.claimed for _, c, _ in ordered]
    params = {
        "n": [i for i, _, _ in ordered],
        "device_id": [c.device_id for _, c, _ in ordered],
        "digest": [code_digest(code) for _, _, code in ordered],
        "maker": [i.maker for i in identities],
        "model": [i.model for i in identities],
        "terminal_id": [i.terminal_id for i in identities],
        "plate": [i.plate for i in identities],
        "plate_colour": [i.plate_colour for i in identities],
    }
    return set(session.scalars(_RECOGNISE, params).all())


def _decide(
    device: Device | None,
    claim: Claim,
    code: str,
    bindings: list[tuple[Device, Claim, dict[str, Any]]],
) -> Registered:
    """One claim against the device as it stands (after the claims before it in the batch);
    a binding is appended to `bindings` with the device's snapshot before it."""
    if device is None:
        return Registered(Verdict.MISMATCH)
    bound = _bound(device)
    expected = device.terminal_id if bound is None else None
    found = verdict(bound=bound, expected_terminal_id=expected, claimed=claim.claimed)
    if found is Verdict.MISMATCH:
        return Registered(found, bound=bound, expected_terminal_id=expected)
    device.auth_code_digest = code_digest(code)
    if found is Verdict.BIND:
        claimed = claim.claimed
        bindings.append((device, claim, audit.snapshot(device)))
        device.terminal_maker, device.terminal_model = claimed.maker, claimed.model
        device.terminal_id, device.terminal_plate = claimed.terminal_id, claimed.plate
        device.terminal_plate_colour, device.bound_at = claimed.plate_colour, claim.now
    return Registered(found, code=code)


def authenticate(
    *,
    session: Session,
    device_id: int,
    code: str,
    imei: str | None,
    software_version: str | None,
    peer: str,
) -> bool:
    """Whether `code` is the device's current auth code; records the IMEI and software version a
    2019 terminal reports (when they change)."""
    attempt = Attempt(device_id, code, imei, software_version, peer)
    return authenticate_many(session=session, attempts=[attempt])[0]


def authenticate_many(*, session: Session, attempts: Sequence[Attempt]) -> list[bool]:
    """`authenticate` for many terminals: one query for all their digests, then a change of
    IMEI or software version written (and audited) for each terminal that reports one."""
    ids = sorted({a.device_id for a in attempts})
    rows = session.execute(
        select(Device.id, Device.auth_code_digest, Device.imei, Device.software_version).where(
            Device.id.in_(ids)
        )
    ).all()
    current = {
        row.id: {
            "digest": row.auth_code_digest,
            "imei": row.imei,
            "software_version": row.software_version,
        }
        for row in rows
    }
    results = []
    for attempt in attempts:
        row = current.get(attempt.device_id)
        ok = (
            row is not None
            and row["digest"] is not None
            and hmac.compare_digest(row["digest"], code_digest(attempt.code))
        )
        results.append(ok)
        if not ok or row is None:
            continue
        reported = {
            "imei": attempt.imei[:15] if attempt.imei else None,
            "software_version": (attempt.software_version or "")[:20] or None,
        }
        changed = {k: v for k, v in reported.items() if v is not None and v != row[k]}
        if changed:
            session.execute(update(Device).where(Device.id == attempt.device_id).values(**changed))
            audit.record(
                session=session,
                actor=terminal_actor(attempt.peer),
                action="terminal_info",
                entity="device",
                entity_id=attempt.device_id,
                before={k: row[k] for k in changed},
                after=changed,
            )
            row.update(changed)
    return results


def terminal_actor(peer: str) -> audit.ActorRef:
    """Who the audit log names for a terminal's own changes: the gateway, and where it was."""
    return audit.ActorRef(id=None, name=f"jt808 terminal {peer}"[:64])


@dataclass(frozen=True, slots=True)
class Mismatch:
    """A registration refused because the number is bound to (or reserved for) another
    terminal: the evidence an alert is made of."""

    device_id: int
    vehicle_id: int
    unit_id: int
    phone: str
    remote_addr: str
    at: datetime
    claimed: Identity
    bound: Identity | None
    expected_terminal_id: str | None


class MismatchSink(Protocol):
    """Who hears of a refused impostor. Telematics cannot import the alert writer; the composition
    root plugs in the geofence domain's (`geofence.terminals.IdentityAlerts`), as it plugs the
    rule engine into the ingest worker. Called in a thread; opens its own transaction."""

    def report(self, mismatch: Mismatch) -> None: ...
