from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from telematics.fix import Fix, check_fix

NOW = datetime(2026, 11, 22, 8, tzinfo=UTC)


def check(**changes: object) -> str | None:
    fields: dict[str, object] = {
        "device_identifier": "1",
        "fix_time": NOW,
        "lat": 30.0,
        "lon": 120.0,
        "speed_kmh": 50.0,
    }
    fields.update(changes)
    return check_fix(
        Fix(**fields),  # type: ignore[arg-type]
        now=NOW,
        max_future_s=300,
        max_past_s=30 * 86_400,
        max_speed_kmh=300,
    )


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({}, None),
        ({"lat": 91.0}, "bad_coordinates"),
        ({"lon": float("nan")}, "bad_coordinates"),
        ({"lat": None, "lon": None, "valid": False}, None),
        ({"fix_time": NOW + timedelta(seconds=299)}, None),
        ({"fix_time": NOW + timedelta(seconds=301)}, "future_time"),
        ({"fix_time": NOW - timedelta(days=30)}, None),
        ({"fix_time": NOW - timedelta(days=30, seconds=1)}, "too_old"),
        ({"fix_time": datetime(1970, 1, 1, tzinfo=UTC)}, "too_old"),
        ({"speed_kmh": 300.0}, None),
        ({"speed_kmh": 300.5}, "impossible_speed"),
        ({"altitude_m": 1e300}, "impossible_value"),
        ({"heading_deg": 361.0}, "impossible_value"),
        ({"fuel_l": -1.0}, "impossible_value"),
    ],
)
def test_check_fix_reasons(changes, reason):
    assert check(**changes) == reason
