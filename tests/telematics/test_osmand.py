"""The OsmAnd protocol: every parameter and timestamp variant the apps send."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from telematics.protocols.osmand import OsmandError, decode_json, decode_query, parse_time

NOW = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "value",
    [
        "1763798400",
        "1763798400000",
        "2025-11-22T08:00:00Z",
        "2025-11-22T16:00:00+08:00",
        "2025-11-22 08:00:00",
        1763798400,
        1763798400000.0,
    ],
)
def test_every_timestamp_form_means_the_same_moment(value):
    assert parse_time(value, now=NOW) == datetime(2025, 11, 22, 8, 0, tzinfo=UTC)


def test_query_form_with_knots_bearing_altitude_and_extras():
    fixes = decode_query(
        [
            ("id", "123456"),
            ("lat", "30.25"),
            ("lon", "120.2"),
            ("timestamp", "1763798400"),
            ("speed", "10"),
            ("bearing", "90.5"),
            ("altitude", "12"),
            ("accuracy", "5"),
            ("batt", "87"),
            ("ignition", "true"),
            ("cell", "460,0,1,2"),
            ("cell", "460,0,1,3"),
            ("driverUniqueId", "D42"),
            ("odometer", "1500"),
        ],
        now=NOW,
    )
    (fix,) = fixes
    assert fix.device_identifier == "123456"
    assert (fix.lat, fix.lon, fix.valid) == (30.25, 120.2, True)
    assert fix.speed_kmh == pytest.approx(18.52)
    assert fix.heading_deg == 90.5
    assert fix.altitude_m == 12
    assert fix.ignition is True
    assert fix.odometer_km == 1.5
    assert fix.attributes["cell"] == ["460,0,1,2", "460,0,1,3"]
    assert fix.attributes["batt"] == 87
    assert fix.attributes["driverUniqueId"] == "D42"


@pytest.mark.parametrize(("unit", "kmh"), [("kmh", 10), ("mps", 36), ("mph", 16.09344)])
def test_speed_unit_setting(unit, kmh):
    (fix,) = decode_query(
        {"id": "1", "lat": "1", "lon": "2", "speed": "10"}, now=NOW, speed_unit=unit
    )
    assert fix.speed_kmh == pytest.approx(kmh)


def test_deviceid_location_and_missing_time():
    (fix,) = decode_query({"deviceid": "abc", "location": "30.1,120.3"}, now=NOW)
    assert (fix.device_identifier, fix.lat, fix.lon, fix.fix_time) == ("abc", 30.1, 120.3, NOW)


def test_cells_without_coordinates_are_a_fix_without_position():
    (fix,) = decode_query([("id", "1"), ("cell", "460,0,1,2")], now=NOW)
    assert fix.valid is False
    assert fix.lat is None


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"lat": "1", "lon": "2"}, "missing id"),
        ({"id": "1", "lat": "91", "lon": "2"}, "impossible coordinates"),
        ({"id": "1", "lat": "x", "lon": "2"}, "lat is not a number"),
        ({"id": "1", "lat": "1"}, "lat and lon come together"),
        ({"id": "1", "lat": "1", "lon": "2", "timestamp": "yesterday"}, "bad timestamp"),
        ({"id": "1", "lat": "nan", "lon": "2"}, "finite"),
    ],
)
def test_bad_requests_say_what_is_wrong(params, message):
    with pytest.raises(OsmandError, match=message):
        decode_query(params, now=NOW)


def test_json_form_single_and_list():
    location = {
        "timestamp": "2025-11-22T08:00:00.000Z",
        "coords": {
            "latitude": 30.2,
            "longitude": 120.1,
            "speed": 10,
            "heading": -1,
            "accuracy": 4,
            "altitude": 20,
        },
        "is_moving": True,
        "odometer": 2500,
        "event": "motionchange",
        "battery": {"level": 0.55, "is_charging": False},
        "activity": {"type": "in_vehicle"},
        "extras": {"ignition": "1", "plate": "浙A"},
    }
    (fix,) = decode_json(json.dumps({"device_id": "p1", "location": location}).encode(), now=NOW)
    assert fix.speed_kmh == pytest.approx(36)
    assert fix.heading_deg is None
    assert fix.odometer_km == 2.5
    assert fix.ignition is True
    assert fix.attributes["batteryLevel"] == 55
    assert fix.attributes["activity"] == "in_vehicle"
    assert fix.attributes["plate"] == "浙A"
    many = decode_json(
        json.dumps(
            {
                "device_id": "p1",
                "location": [
                    location,
                    location | {"coords": {"latitude": 1, "longitude": 2, "speed": -1}},
                ],
            }
        ).encode(),
        now=NOW,
    )
    assert len(many) == 2
    assert many[1].speed_kmh is None


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"location": {}}',
        b'{"device_id": "x"}',
        b'{"device_id": "x", "location": {"coords": {"latitude": 100, "longitude": 1}}}',
    ],
)
def test_bad_json_bodies_are_refused(body):
    with pytest.raises(OsmandError):
        decode_json(body, now=NOW)


@settings(max_examples=1500, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(
                ["id", "lat", "lon", "timestamp", "speed", "bearing", "location", "cell", "x"]
            ),
            st.text(max_size=20),
        )
    )
)
def test_random_queries_raise_only_osmand_error(pairs):
    with contextlib.suppress(OsmandError):
        decode_query(pairs, now=NOW)


@settings(max_examples=1000, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.floats() | st.text(max_size=10),
        lambda children: (
            st.lists(children, max_size=3)
            | st.dictionaries(
                st.sampled_from(
                    [
                        "device_id",
                        "location",
                        "coords",
                        "latitude",
                        "longitude",
                        "timestamp",
                        "speed",
                        "battery",
                        "extras",
                    ]
                ),
                children,
                max_size=5,
            )
        ),
        max_leaves=20,
    )
)
def test_random_json_raises_only_osmand_error(document):
    with contextlib.suppress(OsmandError):
        decode_json(json.dumps(document).encode(), now=NOW)
