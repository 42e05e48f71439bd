"""Trip and stop segmentation on synthetic timelines (no database, no clock)."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from telematics import trips
from telematics.trips import State, Stop, Thresholds, TrackPoint, Trip, haversine_m, step

T0 = datetime(2026, 11, 22, 0, 0, tzinfo=UTC).timestamp()
TH = Thresholds()
NORTH_100M = 100 / 111_195  # degrees of latitude per 100 m


def parked(t: float, seconds: int, lat: float, *, ignition: bool = False, odo: float = 0.0):
    return [TrackPoint(t + i * 10, lat, 120.0, 0.0, ignition, odo) for i in range(seconds // 10)]


def drive(t: float, legs: int, lat: float, *, odo: float = 0.0):
    """`legs` x 100 m north, one fix every 10 s at 36 km/h."""
    return [
        TrackPoint(
            t + (i + 1) * 10, lat + (i + 1) * NORTH_100M, 120.0, 36.0, True, odo + (i + 1) / 10
        )
        for i in range(legs)
    ]


def run(points, state=None):
    segments = []
    for point in points:
        state, closed = step(state, point, TH)
        segments += closed
    return state, segments


def timeline(park1=300, legs=30, park2=300):
    points = parked(T0, park1, 30.0, odo=100.0)
    t = points[-1].t
    points += drive(t, legs, 30.0, odo=100.0)
    t, lat = points[-1].t, points[-1].lat
    points += [
        TrackPoint(t + (i + 1) * 10, lat, 120.0, 0.0, False, 100 + legs / 10)
        for i in range(park2 // 10)
    ]
    return points


def test_haversine_one_degree_of_latitude():
    assert haversine_m(30, 120, 31, 120) == pytest.approx(111_195, rel=1e-3)


def test_a_drive_between_two_stops_is_one_trip_with_its_stops():
    _, segments = run(timeline())
    kinds = [type(s) for s in segments]
    assert kinds == [Stop, Trip]
    trip = segments[1]
    assert isinstance(trip, Trip)
    assert trip.distance_m == pytest.approx(3000, rel=0.01)
    # From the last fix standing before it to the first fix standing after it.
    assert trip.duration_s == pytest.approx(310)
    assert trip.max_speed_kmh == 36.0
    assert trip.avg_speed_kmh == pytest.approx(3000 / 310 * 3.6, rel=0.01)
    assert (trip.odometer_start_km, trip.odometer_end_km) == (100.0, pytest.approx(103.0))
    assert segments[0].duration_s == pytest.approx(290)


def test_a_150_m_creep_is_not_a_trip():
    _, segments = run(timeline(legs=1) + drive(T0 + 10_000, 0, 30))
    assert not any(isinstance(s, Trip) for s in segments)


def test_a_long_gap_splits_a_drive_into_two_trips():
    first = parked(T0, 300, 30.0) + drive(T0 + 290, 20, 30.0)
    later = first[-1].t + TH.split_gap_s + 60
    second = drive(later, 20, first[-1].lat)
    second += parked(second[-1].t + 10, 300, second[-1].lat)
    _, segments = run(first + second)
    trips_found = [s for s in segments if isinstance(s, Trip)]
    assert len(trips_found) == 2
    assert trips_found[0].end_at < trips_found[1].start_at


@pytest.mark.parametrize(("off_s", "trips_expected"), [(240, 2), (120, 1)])
def test_ignition_off_long_enough_ends_a_trip(off_s, trips_expected):
    points = parked(T0, 300, 30.0)
    points += drive(points[-1].t, 20, 30.0)
    lat = points[-1].lat
    points += [
        TrackPoint(points[-1].t + (i + 1) * 10, lat, 120.0, 0.0, False, 0.0)
        for i in range(off_s // 10)
    ]
    points += drive(points[-1].t, 20, lat)
    points += parked(points[-1].t + 10, 400, points[-1].lat)
    _, segments = run(points)
    assert sum(isinstance(s, Trip) for s in segments) == trips_expected


def test_points_without_position_still_carry_ignition():
    points = timeline()
    blind = [
        TrackPoint(p.t, None, None, p.speed_kmh, p.ignition, p.odometer_km) if 40 <= i < 45 else p
        for i, p in enumerate(points)
    ]
    _, segments = run(blind)
    (trip,) = [s for s in segments if isinstance(s, Trip)]
    assert trip.distance_m == pytest.approx(3000, rel=0.01)


def test_a_refed_older_point_is_ignored():
    points = timeline()
    with_echo = [*points[:40], points[20], *points[40:]]
    assert run(with_echo)[1] == run(points)[1]


def test_state_survives_json_mid_trip_with_the_same_result():
    points = timeline()
    state, first = run(points[:45])
    restored = State.from_dict(json.loads(json.dumps(state.to_dict())))
    _, rest = run(points[45:], restored)
    assert first + rest == run(points)[1]


def test_flush_closes_a_trip_that_stopped_reporting():
    points = parked(T0, 300, 30.0) + drive(T0 + 290, 20, 30.0)
    state, segments = run(points)
    assert not any(isinstance(s, Trip) for s in segments)
    later = datetime.fromtimestamp(points[-1].t + TH.split_gap_s + 1, UTC)
    _, closed = trips.flush(state, TH, later)
    assert [type(s) for s in closed] == [Stop, Trip]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(1, 4000),
            st.floats(-0.01, 0.01),
            st.floats(0, 120),
            st.sampled_from([True, False, None]),
        ),
        max_size=120,
    )
)
def test_random_timelines_never_raise_and_trips_do_not_overlap(moves):
    t, lat, state, segments = T0, 30.0, None, []
    for dt, dlat, speed, ignition in moves:
        t += dt
        lat += dlat
        state, closed = step(state, TrackPoint(t, lat, 120.0, speed, ignition, None), TH)
        segments += closed
    found = [s for s in segments if isinstance(s, Trip)]
    assert all(s.distance_m >= TH.min_trip_distance_m for s in found)
    assert all(a.end_at <= b.start_at for a, b in itertools.pairwise(found))
