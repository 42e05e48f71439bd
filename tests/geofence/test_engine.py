"""The engine on a batch, without a database: membership, scope and schedule, calendar gaps,
late fixes, and state carried from batch to batch."""

from __future__ import annotations

import random
from dataclasses import replace
from zoneinfo import ZoneInfo

import numpy as np
import pytest
import shapely
from shapely import Point, Polygon, box

from fleet.errors import Invalid
from geofence import geometry
from geofence.calendar import LocalClock, WorkingCalendar, epoch_day
from geofence.engine import Engine, new_state
from geofence.fences import CompiledFence, FenceSet, Schedule, VehicleInfo
from geofence.permits import FixedPermits, Permit
from geofence.rules.base import Fix, Thresholds
from tests.geofence.timeline import LAT, LON, T0

ZONE = ZoneInfo("Asia/Shanghai")
CAR = VehicleInfo(id=1, unit_id=10, unit_path="1/10/", category="general")
OTHER_UNIT = VehicleInfo(id=2, unit_id=20, unit_path="1/20/", category="general")


def calendar_all_working(first_day: int = 0, last_day: int = 40_000) -> WorkingCalendar:
    return WorkingCalendar(
        days=dict.fromkeys(range(first_day, last_day), True), default_hours=(0, 86_400)
    )


def make_engine(
    fences: list[CompiledFence], calendar: WorkingCalendar | None = None, **kw
) -> Engine:
    return Engine(
        fences=FenceSet(fences),
        calendar=calendar or calendar_all_working(),
        clock=LocalClock(ZONE),
        thresholds=Thresholds(),
        permits=kw.get("permits", FixedPermits()),
    )


def circle(fence_id: int, kind: str, radius_m: float = 200, **kw) -> CompiledFence:
    area = geometry.area(Point(LON, LAT), radius_m=radius_m, width_m=None)
    return CompiledFence(id=fence_id, name=f"f{fence_id}", kind=kind, area=area, **kw)


def parked(n: int, every: float = 30, lat: float = LAT, start: float = T0) -> list[Fix]:
    return [Fix(start + i * every, lat, LON, 0.0, False) for i in range(n)]


def test_membership_matches_a_plain_loop_over_every_fence() -> None:
    rng = random.Random(7)
    polygons = []
    for _ in range(300):
        x, y = rng.uniform(120, 121), rng.uniform(30, 31)
        polygons.append(
            shapely.Polygon(
                [(x + 0.02 * np.cos(a), y + 0.015 * np.sin(a)) for a in np.linspace(0, 6.2, 7)]
            )
        )
    fences = [CompiledFence(id=i, name="", kind="custom", area=p) for i, p in enumerate(polygons)]
    lons = np.array([rng.uniform(120, 121) for _ in range(5000)])
    lats = np.array([rng.uniform(30, 31) for _ in range(5000)])
    hits = FenceSet(fences).containing(lons, lats)
    inside = np.array([shapely.contains_xy(p, lons, lats) for p in polygons])
    expected = [sorted(np.flatnonzero(inside[:, n]).tolist()) for n in range(len(lons))]
    assert [sorted(hits.get(n, [])) for n in range(len(lons))] == expected
    assert sum(map(len, expected)) > 100  # the case is not trivially empty


def test_circle_area_is_within_a_metre_of_its_radius() -> None:
    area = geometry.area(Point(LON, LAT), radius_m=500, width_m=None)
    boundary = np.array(area.geoms[0].exterior.coords)
    from telematics.trips import haversine_m

    distances = [haversine_m(LAT, LON, lat, lon) for lon, lat in boundary]
    assert min(distances) > 499
    assert max(distances) < 501


def test_a_prohibited_dwell_raises_one_episode_across_batches() -> None:
    engine = make_engine([circle(5, "prohibited")])
    fixes = parked(25)  # 12 minutes
    state = {}
    alerts = []
    for chunk in (fixes[:8], fixes[8:16], fixes[16:]):
        outcome = engine.run({1: chunk}, state, {1: CAR})
        state = outcome.states
        alerts += outcome.alerts
    kinds = {(a.event.kind, a.event.started_t) for a in alerts}
    assert kinds == {("prohibited_zone", T0)}


def test_fences_out_of_scope_or_schedule_do_not_count() -> None:
    scoped = circle(5, "prohibited", unit_paths=("1/20/",))
    outcome = make_engine([scoped]).run({1: parked(25)}, {}, {1: CAR})
    assert outcome.alerts == []
    outcome = make_engine([scoped]).run({2: parked(25)}, {}, {2: OTHER_UNIT})
    assert [a.event.kind for a in outcome.alerts] == ["prohibited_zone"]
    # T0 is Monday 2026-09-21 22:13 in Beijing; the dwell lasts till 22:25.
    mornings = circle(6, "prohibited", schedule=Schedule(start_s=8 * 3600, end_s=12 * 3600))
    assert make_engine([mornings]).run({1: parked(25)}, {}, {1: CAR}).alerts == []
    tuesdays = circle(6, "prohibited", schedule=Schedule(days=frozenset({2})))
    assert make_engine([tuesdays]).run({1: parked(25)}, {}, {1: CAR}).alerts == []
    nights = circle(7, "prohibited", schedule=Schedule(frozenset({1}), 22 * 3600, 6 * 3600))
    assert len(make_engine([nights]).run({1: parked(25)}, {}, {1: CAR}).alerts) == 1


def test_fence_speed_limit_applies_inside_it() -> None:
    school = circle(8, "custom", radius_m=2000, speed_limit_kmh=30)
    fixes = [Fix(T0 + i * 5, LAT, LON, 45.0, True) for i in range(10)]
    outcome = make_engine([school]).run({1: fixes}, {}, {1: CAR})
    assert [(a.event.kind, a.event.measured["limit_kmh"]) for a in outcome.alerts] == [
        ("overspeed", 30)
    ]
    assert make_engine([]).run({1: fixes}, {}, {1: CAR}).alerts == []


def test_leaving_the_permitted_region() -> None:
    region = CompiledFence(
        id=9,
        name="市域",
        kind="permitted_region",
        area=box(LON - 0.1, LAT - 0.1, LON + 0.1, LAT + 0.1),
    )
    inside = [Fix(T0 + i * 10, LAT, LON + 0.09, 60.0, True) for i in range(3)]
    outside = [Fix(T0 + 30 + i * 10, LAT, LON + 0.11 + i * 0.002, 60.0, True) for i in range(8)]
    outcome = make_engine([region]).run({1: inside + outside}, {}, {1: CAR})
    assert [a.event.kind for a in outcome.alerts if a.event.kind == "region_exit"] == [
        "region_exit"
    ]
    permit = Permit(vehicle_id=1, start_t=T0, end_t=T0 + 3600, out_of_region=True)
    engine = make_engine([region], permits=FixedPermits((permit,)))
    outcome = engine.run({1: inside + outside}, {}, {1: CAR})
    assert [a for a in outcome.alerts if a.event.kind == "region_exit"] == []


def test_a_day_the_calendar_lacks_is_reported_not_guessed() -> None:
    local_day = epoch_day(__import__("datetime").date(2026, 9, 21))  # T0, local
    calendar = calendar_all_working(0, local_day)  # ends the day before
    fixes = [Fix(T0 + i * 10, LAT + i * 0.001, LON, 40.0, True) for i in range(60)]
    outcome = make_engine([], calendar).run({1: fixes}, {}, {1: CAR})
    assert outcome.uncovered_days == {local_day}
    assert [a for a in outcome.alerts if a.event.kind in ("no_order", "off_hours")] == []
    covered = make_engine([], calendar_all_working()).run({1: fixes}, {}, {1: CAR})
    assert [a.event.kind for a in covered.alerts] == ["no_order"]


def test_fixes_not_newer_than_the_last_evaluated_are_skipped() -> None:
    engine = make_engine([circle(5, "prohibited")])
    first = engine.run({1: parked(10)}, {}, {1: CAR})
    again = engine.run({1: parked(12)}, first.states, {1: CAR})
    assert again.late == 10
    assert again.evaluated == 2


def test_unknown_vehicles_are_counted_not_evaluated() -> None:
    outcome = make_engine([]).run({99: parked(3)}, {}, {1: CAR})
    assert outcome.unknown_vehicle == 3
    assert outcome.states == {}


def test_state_round_trips_through_json() -> None:
    import json

    engine = make_engine([circle(5, "prohibited")])
    whole = engine.run({1: parked(25)}, {}, {1: CAR}).alerts
    first = engine.run({1: parked(25)[:9]}, {}, {1: CAR})
    revived = json.loads(json.dumps(first.states))
    rest = engine.run({1: parked(25)}, {int(k): v for k, v in revived.items()}, {1: CAR})
    assert {a.identity for a in rest.alerts} == {a.identity for a in whole}
    assert new_state()["t"] is None


SQUARE = [[120, 30], [120.1, 30], [120.1, 30.1], [120, 30.1], [120, 30]]


def test_a_valid_polygon_parses() -> None:
    assert isinstance(geometry.parse({"type": "Polygon", "coordinates": [SQUARE]}), Polygon)


@pytest.mark.parametrize(
    "coordinates",
    [
        pytest.param([[*SQUARE[:-1], [120, 30.05]]], id="unclosed"),
        pytest.param([[[120, 30], [120.1, 30.1], [120.1, 30], [120, 30.1], [120, 30]]], id="bow"),
        pytest.param([[[120, 30], [190, 30], [190, 31], [120, 30]]], id="off-the-earth"),
        pytest.param([[[120, 30], [120.1, 30], [120, 30]]], id="too-few"),
        pytest.param([[[120, 30], [120.1, 30], [120.2, 30], [120, 30]]], id="no-area"),
    ],
)
def test_bad_polygons_are_refused(coordinates: list) -> None:
    with pytest.raises(Invalid):
        geometry.parse({"type": "Polygon", "coordinates": coordinates})


def test_the_engine_measures_the_corridor_for_each_fix_of_the_batch() -> None:
    from shapely import LineString

    # Two cars on orders along the same meridian; one keeps to it, one drifts 2 km east.
    corridor = LineString([(LON, LAT), (LON, LAT + 0.2)])
    permits = FixedPermits(
        tuple(
            Permit(vehicle_id=v, start_t=T0, end_t=T0 + 3600, order_id=v, corridor=corridor)
            for v in (1, 2)
        )
    )
    east = 2000 / (111_319.49 * np.cos(np.radians(LAT)))
    on = [Fix(T0 + 10 * i, LAT + i * 0.001, LON, 40.0, True) for i in range(40)]
    off = [Fix(T0 + 10 * i, LAT + i * 0.001, LON + east, 40.0, True) for i in range(40)]
    other = VehicleInfo(id=2, unit_id=10, unit_path="1/10/", category="general")
    outcome = make_engine([], permits=permits).run({1: on, 2: off}, {}, {1: CAR, 2: other})
    found = [(a.vehicle_id, a.event.kind, a.order_id) for a in outcome.alerts]
    assert found == [(2, "off_route", 2)]
    measured = outcome.alerts[0].event.measured["max_distance_m"]
    assert 1990 < measured < 2010


def test_a_sealed_car_is_judged_active_before_its_status_since() -> None:
    """The registry holds the car as sealed since T0 + 600 s: its drive before then is an active
    car's (a `no_order`, working time all day here), and only its drive after raises
    `sealed_vehicle_moving` (and no `no_order`); both loops, one batch or a fix at a time."""
    from tests.geofence.timeline import north

    since = T0 + 600
    car = VehicleInfo(
        id=1, unit_id=10, unit_path="1/10/", category="general", status="sealed", status_since=since
    )
    # 40 km/h north, a fix every 10 s: 10 minutes before the seal, 10 minutes after
    track = [Fix(T0 + 10 * i, north(111 * i), LON, 40.0, True) for i in range(120)]
    engine = make_engine([])
    for run in (engine.run, engine.run_plain):
        for chunk in ([track], [[fix] for fix in track]):
            states: dict = {}
            found = []
            for fixes in chunk:
                outcome = run({1: fixes}, states, {1: car})
                states = outcome.states
                found += outcome.alerts
            kinds = {(a.event.kind, a.event.started_t) for a in found}
            assert kinds == {("no_order", T0), ("sealed_vehicle_moving", since)}, run
    # the same car sealed since always (None), or before the drive: sealed from its first fix
    for always in (None, T0 - 1):
        sealed = replace(car, status_since=always)
        outcome = engine.run({1: track}, {}, {1: sealed})
        assert {(a.event.kind, a.event.started_t) for a in outcome.alerts} == {
            ("sealed_vehicle_moving", T0)
        }
