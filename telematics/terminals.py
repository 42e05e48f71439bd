"""JT/T 808 terminal identity, as the gateway checks it against the registry.

A device's first registration (0x0100) binds the terminal's identity to it: maker id, model,
terminal id, plate and plate colour (or an administrator entered the terminal id beforehand, and
only that terminal can bind). Another terminal that names the same number is refused (0x8100
result 3) and reported through a `MismatchSink`. Every registration gets a new random auth code;
only its digest is kept, in the database, so that any gateway process can check a 0x0102 and an
administrator can revoke it (`fleet.registry.rebind_device`, `revoke_auth_code`).

The functions take a session and never commit: the gateway runs each in a thread, in a
transaction of its own.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import asdict, dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from sqlalchemy import select, update
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


def register(
    *, session: Session, device_id: int, claimed: Identity, peer: str, now: datetime
) -> Registered:
    """Bind or recognise the terminal, and issue it a new auth code (which revokes the last)."""
    device = session.get(Device, device_id, with_for_update=True)  # two gateways, one terminal
    if device is None:
        return Registered(Verdict.MISMATCH)
    bound = _bound(device)
    expected = device.terminal_id if bound is None else None
    found = verdict(bound=bound, expected_terminal_id=expected, claimed=claimed)
    if found is Verdict.MISMATCH:
        return Registered(found, bound=bound, expected_terminal_id=expected)
    code = new_auth_code()
    device.auth_code_digest = code_digest(code)
    if found is Verdict.BIND:
        before = audit.snapshot(device)
        device.terminal_maker, device.terminal_model = claimed.maker, claimed.model
        device.terminal_id, device.terminal_plate = claimed.terminal_id, claimed.plate
        device.terminal_plate_colour, device.bound_at = claimed.plate_colour, now
        session.flush()
        audit.record(
            session=session,
            actor=terminal_actor(peer),
            action="bind",
            entity="device",
            entity_id=device.id,
            before=before,
            after=audit.snapshot(device),
        )
    session.flush()
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
    row = session.execute(
        select(Device.auth_code_digest, Device.imei, Device.software_version).where(
            Device.id == device_id
        )
    ).one_or_none()
    if row is None or row.auth_code_digest is None:
        return False
    if not hmac.compare_digest(row.auth_code_digest, code_digest(code)):
        return False
    reported = {
        "imei": imei[:15] if imei else None,
        "software_version": (software_version or "")[:20] or None,
    }
    changed = {k: v for k, v in reported.items() if v is not None and v != getattr(row, k)}
    if changed:
        session.execute(update(Device).where(Device.id == device_id).values(**changed))
        audit.record(
            session=session,
            actor=terminal_actor(peer),
            action="terminal_info",
            entity="device",
            entity_id=device_id,
            before={k: getattr(row, k) for k in changed},
            after=changed,
        )
    return True


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
