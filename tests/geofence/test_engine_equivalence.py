"""`Engine.run` (the batch worked out as columns, resting rules skipped) gives the outcome of
`Engine.run_plain` (every rule stepped on every fix) on random timelines: fences of every kind
with schedules, scopes and speed limits, permits with corridors and places, fixes without a
position, speed or ignition, gaps, alarms, late fixes, and state carried from batch to batch."""

from __future__ import annotations

import copy
import json
import math
from dataclasses import replace
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from shapely import LineString, Point, box

from geofence import geometry
from geofence.calendar import DAY, LocalClock, WorkingCalendar
from geofence.engine import Engine, Outcome
from geofence.fences import CompiledFence, FenceSet, Schedule, VehicleInfo
from geofence.permits import FixedPermits, Permit
from geofence.rules.base import Fix, Thresholds
from tests.geofence.timeline import LAT, LON, M_PER_DEG_LAT, T0

M_PER_DEG_LON = M_PER_DEG_LAT * math.cos(math.radians(LAT))
CARS = (
    VehicleInfo(id=1, unit_id=10, unit_path="1/10/", category="general"),
    VehicleInfo(id=2, unit_id=20, unit_path="1/20/", category="emergency"),
    VehicleInfo(id=3, unit_id=10, unit_path="1/10/", category="general"),
    VehicleInfo(id=4, unit_id=10, unit_path="1/10/", category="general", status="sealed"),
    VehicleInfo(id=5, unit_id=20, unit_path="1/20/", category="general", status="maintenance"),
)
NIGHTS = Schedule(start_s=22 * 3600, end_s=6 * 3600)
WEEKDAYS = Schedule(days=frozenset(range(1, 6)), start_s=8 * 3600, end_s=18 * 3600)


def status_since(track: list[Fix]) -> st.SearchStrategy[float | None]:
    """When a car came to hold its status: always (None), at one of its fixes, or anywhere
    about its track."""
    times = [f.t for f in track] or [T0]
    return st.one_of(
        st.none(),
        st.sampled_from(times),
        st.floats(times[0] - 60, times[-1] + 60, allow_nan=False),
    )


def at(east_m: float, north_m: float) -> tuple[float, float]:
    """(lon, lat) so many metres east and north of (LAT, LON)."""
    return LON + east_m / M_PER_DEG_LON, LAT + north_m / M_PER_DEG_LAT


def circle(fence_id: int, kind: str, east_m: float, radius_m: float, **kw: Any) -> CompiledFence:
    area = geometry.area(Point(*at(east_m, 0)), radius_m=radius_m, width_m=None)
    return CompiledFence(id=fence_id, name=f"f{fence_id}", kind=kind, area=area, **kw)


# Along the road the cars drive (east from LON), overlapping here and there.
PALETTE = (
    circle(1, "depot", 0, 300),
    circle(2, "prohibited", 800, 400, speed_limit_kmh=30),
    circle(3, "prohibited", 1000, 300, schedule=NIGHTS),
    circle(4, "custom", 1500, 900, speed_limit_kmh=50.0, schedule=WEEKDAYS),
    circle(5, "custom", 2500, 600, speed_limit_kmh=40, unit_paths=("1/20/",)),
    circle(6, "prohibited", 3000, 500, categories=frozenset({"general"})),
    circle(7, "depot", 4000, 200, unit_paths=("1/10/",)),
    CompiledFence(
        id=8, name="市域", kind="permitted_region", area=box(*at(-500, -3000), *at(3500, 3000))
    ),
    CompiledFence(
        id=9,
        name="夜间",
        kind="permitted_region",
        area=box(*at(-500, -3000), *at(5000, 3000)),
        schedule=NIGHTS,
        categories=frozenset({"emergency"}),
    ),
    circle(10, "workshop", 1200, 500),
    circle(11, "workshop", 3500, 800, unit_paths=("1/20/",)),
)

STEPS = st.tuples(
    st.sampled_from([1, 10, 30, 90, 400, 700, 4000, 9000]),  # seconds since the last fix
    st.sampled_from([0.0, 3.0, 40.0, 150.0, 600.0]),  # metres driven east
    st.sampled_from([0.0, 0.0, 2.0, 30.0, -60.0]),  # metres north
    # speeds at and just over the moving threshold and the limits in force
    st.one_of(st.none(), st.sampled_from([0.0, 5.0, 30.0, 30.5, 40.0, 45.0, 50.5, 120.5, 130])),
    st.one_of(st.none(), st.booleans()),
    st.sampled_from([0, 0, 0, 1, 1 << 8, 1 << 1]),
    st.integers(0, 9),  # 0: no position in this fix
)


def drive(start_t: float, steps: list[tuple[Any, ...]]) -> list[Fix]:
    fixes, t, east, north = [], start_t, 0.0, 0.0
    for seconds, d_east, d_north, speed, ignition, alarm, located in steps:
        t, east, north = t + seconds, east + d_east, north + d_north
        lon, lat = at(east, north)
        fixes.append(
            Fix(t, lat if located else None, lon if located else None, speed, ignition, alarm)
        )
    return fixes


@st.composite
def permits_for(draw: st.DrawFn, vehicle_id: int, track: list[Fix]) -> list[Permit]:
    chosen = []
    for order_id in range(draw(st.integers(0, 2))):
        first, last = sorted(draw(st.lists(st.integers(0, len(track) - 1), min_size=2, max_size=2)))
        shift = draw(st.sampled_from([0.0, 900.0, 3000.0]))  # metres the plan is off the road
        places = tuple((lat, lon) for lon, lat in (at(0, shift), at(2000, shift), at(4000, 0)))
        chosen.append(
            Permit(
                vehicle_id=vehicle_id,
                start_t=track[first].t,
                end_t=track[last].t,
                order_id=vehicle_id * 10 + order_id,
                driver_id=draw(st.sampled_from([None, 7])),
                places=draw(st.sampled_from([(), places])),
                corridor=draw(st.sampled_from([None, LineString([at(0, shift), at(5000, shift)])])),
                out_of_region=draw(st.booleans()),
                overnight=draw(st.booleans()),
            )
        )
    return chosen


def same(fast: Outcome, plain: Outcome) -> None:
    assert fast.alerts == plain.alerts
    assert json.dumps(fast.states, sort_keys=True) == json.dumps(plain.states, sort_keys=True)
    assert fast.states == plain.states
    assert (fast.evaluated, fast.late, fast.unknown_vehicle, fast.uncovered_days) == (
        plain.evaluated,
        plain.late,
        plain.unknown_vehicle,
        plain.uncovered_days,
    )


def movement_engine(
    fences: list[CompiledFence] | tuple[()] = (), thresholds: Thresholds | None = None
) -> Engine:
    """An engine with no permits, a calendar of the days around T0 and the default hours: the
    setting of the movement-episode tests below."""
    first_day = int((T0 + 8 * 3600) // DAY)
    return Engine(
        fences=FenceSet(list(fences)),
        calendar=WorkingCalendar(
            days={d: d % 7 not in (2, 3) for d in range(first_day - 1, first_day + 3)},
            default_hours=(8 * 3600 + 1800, 17 * 3600 + 1800),
        ),
        clock=LocalClock(ZoneInfo("Asia/Shanghai")),
        thresholds=thresholds or Thresholds(),
        permits=FixedPermits(()),
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_run_gives_the_outcome_of_the_plain_loop(data: st.DataObject) -> None:
    start_t = T0 + data.draw(st.sampled_from([0, 10 * 3600, 36 * 3600, 5 * DAY]), label="start")
    tracks = {
        car.id: drive(start_t, data.draw(st.lists(STEPS, min_size=1, max_size=40)))
        for car in CARS[: data.draw(st.integers(1, len(CARS)), label="cars")]
    }
    permits = [p for v, track in tracks.items() for p in data.draw(permits_for(v, track))]
    fences = data.draw(st.lists(st.sampled_from(PALETTE), unique=True), label="fences")
    first_day = int((start_t + 8 * 3600) // DAY)
    calendar = WorkingCalendar(
        # the calendar ends on a random day: later fixes fall on days it does not cover
        days={
            d: d % 7 not in (2, 3)
            for d in range(first_day - 1, first_day + data.draw(st.integers(0, 6)))
        },
        default_hours=(8 * 3600 + 1800, 17 * 3600 + 1800),
        unit_hours=data.draw(st.sampled_from([{}, {20: (7 * 3600, 23 * 3600)}])),
    )
    engine = Engine(
        fences=FenceSet(fences),
        calendar=calendar,
        clock=LocalClock(ZoneInfo("Asia/Shanghai")),
        thresholds=Thresholds(no_order_exempt=frozenset({"emergency"})),
        permits=FixedPermits(tuple(permits)),
    )
    # each car's status held since a drawn time (None: always): its fixes before it are judged
    # as an active car's
    cars = {
        car.id: replace(car, status_since=data.draw(status_since(tracks.get(car.id, []))))
        for car in CARS
    }
    vehicles = {v: car for v, car in cars.items() if v != 1}  # car 1 is unknown till batch 2
    fast_states: dict[int, dict[str, Any]] = {}
    plain_states: dict[int, dict[str, Any]] = {}
    cut = 0
    while any(len(t) > cut for t in tracks.values()):
        size = data.draw(st.integers(1, 15), label="batch")
        # a batch may repeat the last fix evaluated (a re-sent batch)
        back = data.draw(st.integers(0, 1), label="resent") if cut else 0
        batch = {v: t[cut - back : cut + size] for v, t in tracks.items()}
        handed = copy.deepcopy(fast_states)
        fast = engine.run(batch, fast_states, vehicles)
        plain = engine.run_plain(batch, plain_states, vehicles)
        same(fast, plain)
        # the states handed in stay as they were (the engine copies a rule dict it changes)
        assert fast_states == handed
        # state goes through Redis as JSON between batches
        fast_states.update({v: json.loads(json.dumps(s)) for v, s in fast.states.items()})
        plain_states.update({v: json.loads(json.dumps(s)) for v, s in plain.states.items()})
        vehicles[1] = cars[1]
        cut += size


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_run_gives_the_outcome_of_the_plain_loop_on_a_fleet_reporting_live(
    data: st.DataObject,
) -> None:
    """Many vehicles, a fix or two of each per batch (how a live fleet reports), each vehicle's
    state carried to the next batch either as the engine left it or read back from JSON (a
    restarted worker)."""
    start_t = T0 + data.draw(st.sampled_from([0, 10 * 3600, 36 * 3600]), label="start")
    count = data.draw(st.integers(2, 24), label="vehicles")
    fleet = [
        VehicleInfo(
            id=v,
            unit_id=10 * (1 + v % 2),
            unit_path=f"1/{10 * (1 + v % 2)}/",
            category="emergency" if v % 3 == 2 else "general",
            status=("active", "active", "active", "sealed", "maintenance", "disposed")[v % 6],
        )
        for v in range(1, count + 1)
    ]
    tracks = {
        car.id: drive(start_t, data.draw(st.lists(STEPS, min_size=1, max_size=8))) for car in fleet
    }
    fleet = [replace(car, status_since=data.draw(status_since(tracks[car.id]))) for car in fleet]
    permits = [p for v, track in tracks.items() for p in data.draw(permits_for(v, track))]
    first_day = int((start_t + 8 * 3600) // DAY)
    engine = Engine(
        fences=FenceSet(data.draw(st.lists(st.sampled_from(PALETTE), unique=True))),
        calendar=WorkingCalendar(
            days={d: d % 7 not in (2, 3) for d in range(first_day - 1, first_day + 3)},
            default_hours=(8 * 3600 + 1800, 17 * 3600 + 1800),
        ),
        clock=LocalClock(ZoneInfo("Asia/Shanghai")),
        thresholds=Thresholds(),
        permits=FixedPermits(tuple(permits)),
    )
    vehicles = {car.id: car for car in fleet}
    fast_states: dict[int, dict[str, Any]] = {}
    plain_states: dict[int, dict[str, Any]] = {}
    cut = 0
    while any(len(t) > cut for t in tracks.values()):
        size = data.draw(st.sampled_from([1, 1, 1, 2]), label="batch")
        batch = {v: t[cut : cut + size] for v, t in tracks.items()}
        fast = engine.run(batch, fast_states, vehicles)
        plain = engine.run_plain(batch, plain_states, vehicles)
        same(fast, plain)
        revived = set(data.draw(st.lists(st.sampled_from(sorted(fast.states)))))
        for states, outcome in ((fast_states, fast), (plain_states, plain)):
            states.update(
                (v, json.loads(json.dumps(s)) if v in revived else s)
                for v, s in outcome.states.items()
            )
        cut += size


def test_long_movement_episodes_fix_by_fix_equal_the_plain_loop() -> None:
    """Cars driving on for minutes without an order, in and out of working time, a fix per batch:
    the episode opens, is updated every minute, pauses at lights, ends after a long stop; half the
    states go through JSON between batches. Every batch's outcome equals the plain loop's, and the
    episodes really open and update (so the engine's in-line handling of a movement episode that
    goes on is exercised, not skipped)."""
    fleet = {
        v: VehicleInfo(id=v, unit_id=10, unit_path="1/10/", category="general") for v in (1, 2)
    }
    # vehicle 1 after hours (no_order's twin, off_hours), vehicle 2 in working time (no_order)
    starts = {1: T0 + 22 * 3600, 2: T0 + 11 * 3600}  # 20:13 and 09:13 local, a working day
    pattern = [(10, 150.0, 0.0, 54.0, True, 0, 1)] * 30 + [(10, 0.0, 0.0, 0.0, True, 0, 1)] * 6
    pattern += [(10, 150.0, 0.0, 54.0, True, 0, 1)] * 20
    # a fix after a long gap that wakes nothing but the movement rule (no position: no parking
    # rule wakes), ending the episode and starting the next
    pattern += [(400, 0.0, 0.0, 54.0, True, 0, 0)] + [(10, 150.0, 0.0, 54.0, True, 0, 1)] * 12
    # and a standing fix after a long gap that wakes nothing either: the episode ends there
    pattern += [(400, 0.0, 0.0, 0.0, True, 0, 0)] + [(10, 150.0, 0.0, 54.0, True, 0, 1)] * 12
    pattern += [(400, 0.0, 0.0, 0.0, False, 0, 1)] + [(10, 150.0, 0.0, 54.0, True, 0, 1)] * 12
    tracks = {v: drive(start, pattern) for v, start in starts.items()}
    engine = movement_engine()
    fast_states: dict[int, dict[str, Any]] = {}
    plain_states: dict[int, dict[str, Any]] = {}
    seen: list[tuple[str, float | None]] = []
    for n in range(len(pattern)):
        batch = {v: t[n : n + 1] for v, t in tracks.items()}
        fast = engine.run(batch, fast_states, fleet)
        plain = engine.run_plain(batch, plain_states, fleet)
        same(fast, plain)
        seen += [(r.event.kind, r.event.ended_t) for r in fast.alerts]
        for states, outcome in ((fast_states, fast), (plain_states, plain)):
            states.update(
                (v, json.loads(json.dumps(s)) if (v + n) % 2 else s)
                for v, s in outcome.states.items()
            )
    kinds = [kind for kind, _ in seen]
    assert kinds.count("off_hours") >= 4  # opened, then updated
    assert kinds.count("no_order") >= 4
    assert any(ended is not None for _, ended in seen)  # and ended


# A car in a movement episode: driving on (each step at 54 km/h), pausing (standing, with or
# without a position), or raising a terminal alarm; the seconds between fixes add up to the
# episode's thresholds exactly (a minute's update, `movement_end_s`) as often as not.
EPISODE_STEPS = st.tuples(
    st.sampled_from([10, 20, 30, 50, 60, 100, 150, 300]),
    st.sampled_from(["drive", "drive", "drive", "pause", "pause_blind", "alarm"]),
)


def episode_drive(start_t: float, steps: list[tuple[int, str]]) -> list[Fix]:
    lead = [(10, "drive")] * 8  # the episode opens on these
    fixes, t, east = [], start_t, 0.0
    for seconds, kind in lead + steps:
        t += seconds
        if kind in ("drive", "alarm"):
            east += 150.0
        elif kind == "pause":
            east += 4.0  # the position drifts while the car stands: a step, but no movement
        lon, lat = at(east, 0.0)
        if kind == "pause_blind":
            lat = lon = None  # type: ignore[assignment]
        speed = 0.0 if kind.startswith("pause") else 54.0
        fixes.append(Fix(t, lat, lon, speed, True, 1 if kind == "alarm" else 0))
    return fixes


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_movement_episodes_carried_on_in_batches_equal_the_plain_loop(
    data: st.DataObject,
) -> None:
    """Many cars each in a movement episode (off-hours for some, no order for the others), a fix
    or a few of each per batch: the fixes that only carry an episode on (driving on, pausing,
    the minute's update) at and around the exact thresholds, among fixes that wake another rule,
    with states through JSON or not. Every batch's outcome, alerts in order included, equals the
    plain loop's."""
    count = data.draw(st.integers(2, 8), label="vehicles")
    fleet = {
        v: VehicleInfo(id=v, unit_id=10, unit_path="1/10/", category="general")
        for v in range(1, count + 1)
    }
    tracks = {
        v: episode_drive(
            T0 + data.draw(st.sampled_from([11 * 3600, 22 * 3600]), label="clock"),
            data.draw(st.lists(EPISODE_STEPS, min_size=1, max_size=30), label="steps"),
        )
        for v in fleet
    }
    engine = movement_engine(
        # depots along the road: moving in one is no violation, standing in one wakes nothing
        data.draw(
            st.sampled_from([[], [PALETTE[0]], [circle(10, "depot", 2000, 600), PALETTE[6]]]),
            label="depots",
        )
    )
    fast_states: dict[int, dict[str, Any]] = {}
    plain_states: dict[int, dict[str, Any]] = {}
    seen: set[str] = set()
    cut = 0
    while any(len(t) > cut for t in tracks.values()):
        size = data.draw(st.sampled_from([1, 1, 1, 2, 4]), label="batch")
        batch = {v: t[cut : cut + size] for v, t in tracks.items()}
        handed = copy.deepcopy(fast_states)
        fast = engine.run(batch, fast_states, fleet)
        plain = engine.run_plain(batch, plain_states, fleet)
        same(fast, plain)
        assert fast_states == handed
        seen |= {r.event.kind for r in fast.alerts}
        revived = set(data.draw(st.lists(st.sampled_from(sorted(fast.states))), label="json"))
        for states, outcome in ((fast_states, fast), (plain_states, plain)):
            states.update(
                (v, json.loads(json.dumps(s)) if v in revived else s)
                for v, s in outcome.states.items()
            )
        cut += size
    assert seen & {"no_order", "off_hours"}  # the episodes did open


def test_an_episode_opens_on_the_fix_that_reaches_the_distance_exactly() -> None:
    """`movement_min_distance_m` set to the very distance an episode has covered at one fix (the
    sum of its steps, as the plain loop adds them): the episode opens on that fix, fed a fix per
    batch and three per batch, in `run` as in `run_plain`."""
    fleet = {1: VehicleInfo(id=1, unit_id=10, unit_path="1/10/", category="general")}
    steps = [(10, "drive")] * 3 + [(10, "pause")] + [(10, "drive")] * 8
    track = episode_drive(T0 + 22 * 3600, steps)[8:]  # from the start of an episode
    # the distance the episode has covered at each fix, as the rule adds it up
    covered, states = [], {}
    probe = movement_engine(thresholds=Thresholds(movement_min_distance_m=1e9))
    for fix in track:
        outcome = probe.run_plain({1: [fix]}, states, fleet)
        states.update(outcome.states)
        covered.append(outcome.states[1]["rules"]["off_hours"]["dist"])
    at = 9  # 90 s into the episode: past `movement_min_duration_s`, the distance decides
    exact = movement_engine(thresholds=Thresholds(movement_min_distance_m=covered[at]))
    assert covered[at - 1] < covered[at]
    for size in (1, 3):
        fast_states: dict[int, dict[str, Any]] = {}
        plain_states: dict[int, dict[str, Any]] = {}
        opened = []
        for cut in range(0, len(track), size):
            batch = {1: track[cut : cut + size]}
            fast = exact.run(batch, fast_states, fleet)
            plain = exact.run_plain(batch, plain_states, fleet)
            same(fast, plain)
            opened += [r.event.last_t for r in fast.alerts if r.event.kind == "off_hours"]
            fast_states.update(fast.states)
            plain_states.update(plain.states)
        assert opened[0] == track[at].t


def test_a_pause_in_a_depot_adds_nothing_to_the_episode_carried_on() -> None:
    """A car in an episode stops in a depot (standing there wakes no rule) while its position
    drifts a few metres, then drives on: batches of several fixes carry the episode over the
    pause, and the drift is no distance driven, in `run` as in `run_plain`."""
    fleet = {1: VehicleInfo(id=1, unit_id=10, unit_path="1/10/", category="general")}
    steps = [(10, "drive")] * 3 + [(10, "pause")] * 3 + [(10, "drive")] * 6
    track = episode_drive(T0 + 22 * 3600, steps)
    pause = track[8 + 3 + 1]
    depot = CompiledFence(
        id=11,
        name="depot",
        kind="depot",
        area=geometry.area(Point(pause.lon, pause.lat), radius_m=30, width_m=None),
    )
    engine = movement_engine([depot])
    for size in (2, 4, 5):
        fast_states: dict[int, dict[str, Any]] = {}
        plain_states: dict[int, dict[str, Any]] = {}
        for cut in range(0, len(track), size):
            batch = {1: track[cut : cut + size]}
            fast = engine.run(batch, fast_states, fleet)
            plain = engine.run_plain(batch, plain_states, fleet)
            same(fast, plain)
            fast_states.update(fast.states)
            plain_states.update(plain.states)
        assert fast_states[1]["rules"]["off_hours"]["open"]
