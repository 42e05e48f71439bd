"""`trips.advance` over numpy columns gives what `step` gives fix by fix (no database, no clock)."""

from __future__ import annotations

import copy
import math
from dataclasses import fields

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from telematics import trips
from telematics.trips import (
    Segment,
    State,
    Stop,
    Thresholds,
    TrackPoint,
    Trip,
    advance,
    step,
    step_m,
)

T0 = 1_795_305_600.0  # 2026-11-22 00:00 UTC
TH = Thresholds()
M_PER_DEG_LAT = 111_195.0
ON, OFF, UNKNOWN = 1, 0, -1
NAN = math.nan

# One fix as the worker's columns hold it: t, lat, lon, speed_kmh, ignition, odometer_km.
Fix = tuple[float, float, float, float, int, float]
Result = tuple[list[State], list[tuple[int, Segment]]]


def columns(batch: list[list[Fix]]) -> tuple[np.ndarray, ...]:
    """`advance`'s arguments after the states: group k holds `batch[k]`."""
    starts = np.cumsum([0, *(len(fixes) for fixes in batch)], dtype=np.int64)
    rows = np.array([f for fixes in batch for f in fixes], dtype=np.float64).reshape(-1, 6)
    t, lat, lon, speed, ignition, odometer = rows.T
    return starts, t, lat, lon, speed, ignition.astype(np.int8), odometer


def point(fix: Fix) -> TrackPoint:
    t, lat, lon, speed, ignition, odometer = fix

    def given_(x: float) -> float | None:
        return None if math.isnan(x) else x

    ign = None if ignition == UNKNOWN else ignition == ON
    return TrackPoint(t, given_(lat), given_(lon), given_(speed), ign, given_(odometer))


def reference(states: list[State | None], batch: list[list[Fix]], th: Thresholds = TH) -> Result:
    """The loop `advance` stands for. A vehicle with neither state nor fixes gets `State()`,
    which `step` takes as it takes None."""
    new_states, segments = [], []
    for k, (state, fixes) in enumerate(zip(states, batch, strict=True)):
        for fix in fixes:
            state, closed = step(state, point(fix), th)
            segments += [(k, s) for s in closed]
        new_states.append(State() if state is None else state)
    return new_states, segments


def both(
    states: list[State | None], batch: list[list[Fix]], th: Thresholds = TH
) -> tuple[Result, Result]:
    """(advance's result, the loop's), each from its own copy of the states."""
    got = advance(copy.deepcopy(states), *columns(batch), th)
    return got, reference(copy.deepcopy(states), batch, th)


def same_float(a: object, b: object) -> bool:
    return type(a) is float and type(b) is float and math.isclose(a, b, rel_tol=1e-9)


def assert_same_states(got: list[State], want: list[State]) -> None:
    assert len(got) == len(want)
    for k, (mine, theirs) in enumerate(zip(got, want, strict=True)):
        for name in (f.name for f in fields(State)):
            a, b = getattr(mine, name), getattr(theirs, name)
            if isinstance(b, float):
                assert same_float(a, b), (k, name, a, b)
            elif isinstance(b, list):
                assert isinstance(a, list), (k, name, a, b)
                assert len(a) == len(b), (k, name, a, b)
                assert all(same_float(x, y) for x, y in zip(a, b, strict=True)), (k, name, a, b)
            else:
                assert a == b, (k, name, a, b)


def assert_same_segments(got: list[tuple[int, Segment]], want: list[tuple[int, Segment]]) -> None:
    """Equal, but for a trip's distance and so its average speed, summed maybe in other bits."""
    assert [(k, type(s)) for k, s in got] == [(k, type(s)) for k, s in want]
    for (_, mine), (_, theirs) in zip(got, want, strict=True):
        if isinstance(mine, Trip) and isinstance(theirs, Trip):
            assert math.isclose(mine.distance_m, theirs.distance_m, rel_tol=1e-9)
            if theirs.avg_speed_kmh is None:
                assert mine.avg_speed_kmh is None
            else:
                assert mine.avg_speed_kmh is not None
                assert math.isclose(mine.avg_speed_kmh, theirs.avg_speed_kmh, rel_tol=1e-9)
            mine = type(mine)(**{**_as_dict(mine), "distance_m": 0.0, "avg_speed_kmh": None})
            theirs = type(theirs)(**{**_as_dict(theirs), "distance_m": 0.0, "avg_speed_kmh": None})
        assert mine == theirs


def _as_dict(segment: Segment) -> dict[str, object]:
    return {f.name: getattr(segment, f.name) for f in fields(segment)}


def assert_same(result: tuple[Result, Result]) -> None:
    (got_states, got_segments), (want_states, want_segments) = result
    assert_same_states(got_states, want_states)
    assert_same_segments(got_segments, want_segments)


def standing(t: float, n: int, lat: float, *, ignition: int = OFF, odo: float = 100.0) -> list[Fix]:
    """`n` fixes 10 s apart, parked at `lat`."""
    return [(t + i * 10, lat, 120.0, 0.0, ignition, odo) for i in range(n)]


def driving(t: float, n: int, lat: float, *, odo: float = 100.0) -> list[Fix]:
    """`n` fixes 10 s apart after `t`, each 100 m further north at 36 km/h."""
    return [
        (t + (i + 1) * 10, lat + (i + 1) * 100 / M_PER_DEG_LAT, 120.0, 36.0, ON, odo + (i + 1) / 10)
        for i in range(n)
    ]


def forbid_stepping(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_: object) -> None:
        raise AssertionError("stepped fix by fix")

    monkeypatch.setattr(trips, "step", refuse)


def cruising_state() -> tuple[State, list[Fix]]:
    """A vehicle 5 legs into a trip after standing 5 minutes, and its fixes so far."""
    fixes = standing(T0, 30, 30.0)
    fixes += driving(fixes[-1][0], 5, 30.0)
    (state,), _ = reference([None], [fixes])
    return state, fixes


def test_a_cruising_vehicle_goes_on_without_stepping_each_fix(monkeypatch):
    state, before = cruising_state()
    last = before[-1]
    batch = [driving(last[0], 16, last[1], odo=last[5])]
    want_states, want_segments = reference([copy.deepcopy(state)], batch)
    forbid_stepping(monkeypatch)

    (got,), segments = advance([state], *columns(batch), TH)

    assert segments == want_segments == []
    assert_same_states([got], want_states)
    assert got.distance_m == pytest.approx(2100, rel=1e-3)
    assert (got.max_speed, got.odo_end, got.last_t) == (36.0, pytest.approx(102.1), last[0] + 160)


def test_a_parked_vehicle_only_updates_its_last_fix_without_stepping(monkeypatch):
    (state,), _ = reference([None], [standing(T0, 30, 30.0)])
    batch = [standing(T0 + 300, 8, 30.0, ignition=UNKNOWN, odo=NAN)]
    want_states, _ = reference([copy.deepcopy(state)], batch)
    forbid_stepping(monkeypatch)

    (got,), segments = advance([state], *columns(batch), TH)

    assert segments == []
    assert_same_states([got], want_states)
    assert (got.stop_t, got.last_t, got.last_odo) == (T0, T0 + 370, 100.0)


def test_a_trip_closing_inside_a_batch_is_reported_with_its_stop_and_group():
    state, before = cruising_state()
    last = before[-1]
    arrive = driving(last[0], 20, last[1], odo=last[5])
    batch = [
        standing(T0, 3, 31.0),
        arrive + standing(arrive[-1][0] + 10, 30, arrive[-1][1], odo=arrive[-1][5]),
    ]
    result = both([None, state], batch)
    assert_same(result)

    (_, parked), segments = result[0]
    assert [(k, type(s)) for k, s in segments] == [(1, Stop), (1, Trip)]
    trip = segments[1][1]
    assert isinstance(trip, Trip)
    assert trip.distance_m == pytest.approx(2500, rel=1e-3)
    assert parked.trip_t is None
    assert parked.stop_t == trip.end_at.timestamp()


def test_re_sent_and_repeated_fixes_are_skipped_on_the_fast_path(monkeypatch):
    state, before = cruising_state()
    last = before[-1]
    ahead = driving(last[0], 3, last[1], odo=last[5])
    batch = [[before[-3], before[-2], last, ahead[0], ahead[0], ahead[1], ahead[1], ahead[2]]]
    want = reference([copy.deepcopy(state)], batch)
    forbid_stepping(monkeypatch)

    got = advance([state], *columns(batch), TH)

    assert_same((got, want))


def crawl_at_threshold(after: Fix, side: int) -> Fix:
    """A fix 10 s after `after`, with no speed, north of it by one of the two adjacent latitudes
    between which `step`, by `step_m`, turns from standing (side 0) to moving (side 1)."""
    t, lat, lon = after[0], after[1], after[2]

    def kmh(north: float) -> float:
        return step_m(lat, lon, north, lon) / 10 * 3.6

    standing_lat, moving_lat = lat, lat + 1e-3
    while (mid := (standing_lat + moving_lat) / 2) not in (standing_lat, moving_lat):
        if kmh(mid) <= TH.moving_speed_kmh:
            standing_lat = mid
        else:
            moving_lat = mid
    assert kmh(standing_lat) <= TH.moving_speed_kmh < kmh(moving_lat)
    return (t + 10, (standing_lat, moving_lat)[side], lon, NAN, ON, NAN)


@pytest.mark.parametrize("side", [0, 1])
def test_a_displacement_at_the_threshold_is_judged_as_step_judges_it(side):
    first = (T0, 30.0, 120.0, NAN, ON, NAN)
    (stopped,), _ = reference([None], [[first]])
    cruising, before = cruising_state()
    batch = [[crawl_at_threshold(first, side)], [crawl_at_threshold(before[-1], side)]]
    assert_same(both([stopped, cruising], batch))


def test_a_vehicle_with_neither_state_nor_fixes_gets_an_empty_state():
    states, segments = advance([None], *columns([[]]), TH)
    assert (states, segments) == ([State()], [])


def test_an_empty_batch_changes_nothing():
    state, _ = cruising_state()
    kept = copy.deepcopy(state)
    assert advance([state], *columns([[]]), TH) == ([kept], [])
    assert advance([], *columns([]), TH) == ([], [])


def test_starts_that_do_not_cover_the_columns_are_refused():
    starts, *rest = columns([standing(T0, 3, 30.0)])
    with pytest.raises(ValueError, match="starts"):
        advance([None], np.array([0, 2]), *rest, TH)
    with pytest.raises(ValueError, match="starts"):
        advance([None, None], starts, *rest, TH)


# Random fleets: legs of driving, standing, parked with the ignition off and crawling (no speed
# reported, so moving or not by displacement), with fixes missing a position, speed, ignition or
# odometer, repeated times, pauses, long gaps and re-sent old fixes; cut into successive batches.

LEG = st.tuples(
    st.sampled_from(["drive", "drive", "stand", "off", "crawl"]),  # driving the most
    st.integers(1, 12),  # fixes
    st.sampled_from([10.0, 0.0, 1.0, 30.0, 200.0]),  # seconds between them
    st.floats(0, 130),  # km/h (a tenth of it when crawling)
)
# Before a leg: none, a pause, a gap long enough to split a trip, a re-sent past.
BREAK_S = st.sampled_from([0.0, 60.0, 4000.0, -30.0, 400.0])
# What a fix reports of position, speed, ignition and odometer.
REPORTS = st.sampled_from(
    [
        *[(True, True, True, True)] * 4,  # all of it, the most
        (False, True, True, True),
        (True, False, True, True),
        (True, True, False, True),
        (True, True, True, False),
        (False, False, False, False),
        (True, False, False, False),
    ]
)
THRESHOLDS = st.sampled_from(
    [
        TH,
        Thresholds(
            min_trip_distance_m=50, min_stop_duration_s=60, split_gap_s=300, moving_speed_kmh=3
        ),
    ]
)


@st.composite
def timelines(draw: st.DrawFn) -> list[Fix]:
    t, lat, odo = T0 + draw(st.integers(0, 600)), 30.0, 1000.0
    fixes: list[Fix] = []
    for kind, count, every_s, kmh in draw(st.lists(LEG, max_size=6)):
        t += draw(BREAK_S)
        speed = kmh / 10 if kind == "crawl" else kmh if kind == "drive" else 0.0
        for _ in range(count):
            t += every_s
            lat += speed / 3.6 * every_s / M_PER_DEG_LAT
            odo += speed / 3600 * every_s
            has_pos, has_speed, has_ignition, has_odo = draw(REPORTS)
            ignition = OFF if kind == "off" else ON
            fixes.append(
                (
                    t,
                    lat if has_pos else NAN,
                    120.0 if has_pos else NAN,
                    speed if has_speed and kind != "crawl" else NAN,
                    ignition if has_ignition else UNKNOWN,
                    round(odo, 3) if has_odo else NAN,
                )
            )
    return fixes


@st.composite
def fleets_in_batches(draw: st.DrawFn) -> list[list[list[Fix]]]:
    """Batches of the fleet's fixes; in each, group k is vehicle k (maybe with no fixes)."""
    vehicles = draw(st.lists(timelines(), min_size=1, max_size=6))
    n_batches = draw(st.integers(1, 10))
    bounds = []
    for fixes in vehicles:
        cuts = st.lists(st.integers(0, len(fixes)), min_size=n_batches - 1, max_size=n_batches - 1)
        bounds.append([0, *sorted(draw(cuts)), len(fixes)])
    return [
        [fixes[cut[b] : cut[b + 1]] for fixes, cut in zip(vehicles, bounds, strict=True)]
        for b in range(n_batches)
    ]


def assert_same_over(batches: list[list[list[Fix]]], th: Thresholds) -> None:
    """Each batch from the states the one before left, by `advance` and by the loop alike."""
    mine: list[State | None] = [None] * len(batches[0])
    theirs: list[State | None] = [None] * len(batches[0])
    for batch in batches:
        got = advance(copy.deepcopy(mine), *columns(batch), th)
        want = reference(copy.deepcopy(theirs), batch, th)
        assert_same((got, want))
        mine, theirs = list(got[0]), list(want[0])


@settings(max_examples=400, deadline=None)
@given(fleets_in_batches(), THRESHOLDS)
def test_advance_is_the_loop_over_successive_batches(batches, th):
    assert_same_over(batches, th)


@settings(max_examples=100, deadline=None)
@given(fleets_in_batches(), THRESHOLDS, st.randoms(use_true_random=False))
def test_advance_is_the_loop_whatever_the_order_of_fixes_in_a_group(batches, th, rng):
    """Out of order is outside the contract, but `step` copes with it, and so must `advance`."""
    for batch in batches[1:]:
        for fixes in batch:
            rng.shuffle(fixes)
    assert_same_over(batches, th)
