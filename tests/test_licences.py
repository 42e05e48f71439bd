"""The licence table (fleet.licences): the official implication of classes, what each vehicle asks
for, and the expiry flag on a pinned date. Pure, no database."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from fleet import licences
from fleet.licences import LicenceState
from fleet.models import BodyClass


@pytest.mark.parametrize(
    ("held", "also"),
    [
        ("A1", {"A3", "B1", "B2", "C1", "C2", "C3", "C4"}),
        ("A2", {"B1", "B2", "C1", "C2", "C3", "C4", "C6"}),
        ("B1", {"C1", "C2", "C3", "C4"}),
        ("B2", {"C1", "C2", "C3", "C4"}),
        ("C1", {"C2", "C3"}),
        ("C2", set()),
    ],
)
def test_a_licence_covers_the_classes_the_official_table_lists_with_it(held, also) -> None:
    assert licences.covers(held) == {held} | also


def test_every_body_class_of_the_registry_has_a_row_in_the_table() -> None:
    assert set(licences.NEEDS) == {b.value for b in BodyClass}


@pytest.mark.parametrize(
    ("body", "seats", "accepted"),
    [
        ("sedan", 4, ("A1", "A2", "A3", "B1", "B2", "C1")),
        ("suv", 7, ("A1", "A2", "A3", "B1", "B2", "C1")),
        ("mpv", 7, ("A1", "A2", "A3", "B1", "B2", "C1")),
        ("minibus", 9, ("A1", "A2", "A3", "B1", "B2", "C1")),
        ("minibus", 13, ("A1", "A2", "B1")),
        ("bus", 32, ("A1", "A2", "B1")),
        ("truck", 2, ("A1", "A2", "B2")),
    ],
)
def test_each_vehicle_asks_for_the_classes_of_its_row(body, seats, accepted) -> None:
    assert licences.accepted(body, seats) == accepted
    assert all(licences.may_drive(c, body, seats) for c in accepted)
    refused = [c for c in licences.CLASSES if c not in accepted]
    assert not any(licences.may_drive(c, body, seats) for c in refused)


@pytest.mark.parametrize(
    ("expires_on", "state", "days_left"),
    [
        (None, LicenceState.UNKNOWN, None),
        (date(2026, 12, 4), LicenceState.EXPIRED, -1),
        (date(2026, 12, 5), LicenceState.EXPIRING, 0),
        (date(2027, 1, 4), LicenceState.EXPIRING, 30),
        (date(2027, 1, 5), LicenceState.VALID, 31),
    ],
)
def test_a_licence_is_flagged_once_expired_or_within_thirty_days(
    expires_on, state, days_left
) -> None:
    now = datetime(2026, 12, 5, 10, 0, tzinfo=UTC)
    expiry = licences.expiry(expires_on, now=now)
    assert (expiry.state, expiry.days_left) == (state, days_left)
    assert expiry.flagged is (state is not LicenceState.VALID)
