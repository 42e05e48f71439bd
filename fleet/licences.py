"""Driving licences (驾驶证): which classes a licence lets its holder drive, which class a vehicle
needs, and when a licence is flagged for its expiry. Pure; the README's licence table is this
module written out.

The implication is the official 准驾车型 table (机动车驾驶证申领和使用规定, 公安部令第162号,
附件1): a licence of a class covers the classes listed with it, so an A1 holder may drive a
sedan. The registry does not record a transmission, so a sedan asks for C1 (a C2 licence is for
automatic cars only and is not accepted).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum

# Class -> the other classes it covers (准驾的其他准驾车型), as the 2022 table lists them.
IMPLIES: dict[str, frozenset[str]] = {
    "A1": frozenset({"A3", "B1", "B2", "C1", "C2", "C3", "C4"}),
    "A2": frozenset({"B1", "B2", "C1", "C2", "C3", "C4", "C6"}),
    "A3": frozenset({"C1", "C2", "C3", "C4"}),
    "B1": frozenset({"C1", "C2", "C3", "C4"}),
    "B2": frozenset({"C1", "C2", "C3", "C4"}),
    "C1": frozenset({"C2", "C3"}),
    "C2": frozenset(),
    "C3": frozenset({"C4"}),
    "C4": frozenset(),
    "C5": frozenset(),
    "C6": frozenset(),
    "D": frozenset({"E", "F"}),
    "E": frozenset({"F"}),
    "F": frozenset(),
}
CLASSES = tuple(IMPLIES)

# A passenger car of more seats than this (the driver not counted) is a 中型载客汽车 and asks for
# a bus licence (B1), whatever its body.
SMALL_CAR_SEATS = 9

# Body class -> (the class it asks for up to SMALL_CAR_SEATS seats, above). One row per body
# class of the registry (fleet.models.BodyClass); any class that covers the one named will do.
NEEDS: dict[str, tuple[str, str]] = {
    "sedan": ("C1", "B1"),
    "suv": ("C1", "B1"),
    "mpv": ("C1", "B1"),
    "minibus": ("C1", "B1"),
    "bus": ("B1", "B1"),
    "truck": ("B2", "B2"),
}

# A licence that expires within this many days of now is flagged as expiring.
EXPIRY_WARNING_DAYS = 30


def covers(licence_class: str) -> frozenset[str]:
    """Every class a licence of `licence_class` lets its holder drive, itself included."""
    held = licence_class.upper()
    return frozenset({held}) | IMPLIES.get(held, frozenset())


def needed(body_class: str, seats: int) -> str:
    """The class a vehicle asks for: the lowest any licence that covers it must cover."""
    small, large = NEEDS[str(body_class)]
    return small if seats <= SMALL_CAR_SEATS else large


def accepted(body_class: str, seats: int) -> tuple[str, ...]:
    """The classes whose licences cover the vehicle, in the table's order (for messages)."""
    wanted = needed(body_class, seats)
    return tuple(c for c in CLASSES if wanted in covers(c))


def may_drive(licence_class: str, body_class: str, seats: int) -> bool:
    return needed(body_class, seats) in covers(licence_class)


class LicenceState(StrEnum):
    VALID = "valid"
    EXPIRING = "expiring"  # within EXPIRY_WARNING_DAYS of now
    EXPIRED = "expired"
    UNKNOWN = "unknown"  # no expiry date recorded


@dataclass(frozen=True)
class Expiry:
    state: LicenceState
    days_left: int | None

    @property
    def flagged(self) -> bool:
        return self.state is not LicenceState.VALID


def expiry(expires_on: date | None, *, now: datetime | date) -> Expiry:
    """How a licence stands on `now`'s date (a datetime is taken in its own zone): expired the
    day after its expiry date, expiring from EXPIRY_WARNING_DAYS days before it."""
    if expires_on is None:
        return Expiry(LicenceState.UNKNOWN, None)
    today = now.date() if isinstance(now, datetime) else now
    days_left = (expires_on - today).days
    if days_left < 0:
        return Expiry(LicenceState.EXPIRED, days_left)
    if days_left <= EXPIRY_WARNING_DAYS:
        return Expiry(LicenceState.EXPIRING, days_left)
    return Expiry(LicenceState.VALID, days_left)
