"""Each rule on synthetic timelines: just under and just over its thresholds, and where an
episode starts and ends. No database, no clock."""

from __future__ import annotations

from shapely import LineString

from geofence.permits import Permit
from geofence.rules import (
    device_alarm,
    no_order,
    off_hours,
    off_route,
    overnight_away,
    overspeed,
    prohibited_zone,
    region_exit,
    signal_loss,
)
from geofence.rules.base import Fix
from geofence.rules.overnight_away import night_overlap
from tests.geofence.timeline import LAT, LON, T0, TH, closed, ctx, north, opened, run

# ---- no_order and off_hours -----------------------------------------------------------------


def drive(step_m: float, seconds: int, every: int = 10, **context: object) -> list:
    """A drive of `seconds`, a fix every `every` s, each `step_m` metres on from the last."""
    return [
        (Fix(T0 + s, north(step_m * s / every), LON, 40), ctx(step_m=step_m if s else 0, **context))
        for s in range(0, seconds + 1, every)
    ]


def test_no_order_fires_just_over_the_distance_and_not_under() -> None:
    # 10 fixes of 50 m after the first: 500 m in 100 s.
    _, events = run(no_order.step, drive(50, 100))
    assert len(opened(events)) == 1
    assert opened(events)[0].measured["distance_m"] == 500
    _, events = run(no_order.step, drive(49.9, 100))
    assert events == []


def test_no_order_needs_the_minimum_duration() -> None:
    _, events = run(no_order.step, drive(500, 50, every=50))  # 500 m in 50 s < 60 s
    assert events == []
    _, events = run(no_order.step, drive(500, 60, every=60))
    assert len(opened(events)) == 1


def test_no_order_episode_ends_after_the_end_time_without_movement() -> None:
    state, events = run(no_order.step, drive(100, 100))
    assert opened(events)[0].started_t == T0
    last = T0 + 100
    parked = Fix(last + TH.movement_end_s - 1, north(1000), LON, 0)
    state, events = no_order.step(state, parked, ctx(moving=False))
    assert events == ()
    assert state is not None
    parked = Fix(last + TH.movement_end_s, north(1000), LON, 0)
    state, events = no_order.step(state, parked, ctx(moving=False))
    assert state is None
    assert len(events) == 1
    assert events[0].ended_t == last
    assert events[0].started_t == T0


def test_no_order_is_quiet_with_a_permit_in_a_depot_or_off_hours() -> None:
    permit = Permit(vehicle_id=1, start_t=T0, end_t=T0 + 3600)
    for context in ({"permit": permit}, {"depot": True}, {"working": False}, {"working": None}):
        _, events = run(no_order.step, drive(100, 200, **context))
        assert events == [], context


def test_off_hours_fires_outside_working_time_unless_exempt_or_permitted() -> None:
    _, events = run(off_hours.step, drive(100, 100, working=False))
    assert [e.kind for e in opened(events)] == ["off_hours"]
    _, events = run(off_hours.step, drive(100, 100, working=True))
    assert events == []
    _, events = run(off_hours.step, drive(100, 100, working=False, category="emergency"))
    assert events == []
    permit = Permit(vehicle_id=1, start_t=T0, end_t=T0 + 3600)
    _, events = run(off_hours.step, drive(100, 100, working=False, permit=permit))
    assert events == []


def test_off_hours_never_guesses_an_uncovered_day() -> None:
    _, events = run(off_hours.step, drive(100, 200, working=None))
    assert events == []


# ---- off_route ------------------------------------------------------------------------------

PERMIT = Permit(
    vehicle_id=1,
    start_t=T0,
    end_t=T0 + 7200,
    order_id=7,
    places=((LAT, LON), (north(20_000), LON)),
    corridor=LineString([(LON, LAT), (LON, north(20_000))]),
)


def off_corridor(distance_m: float, seconds: int) -> list:
    return [
        (Fix(T0 + s, north(5000), LON + 0.02, 40), ctx(permit=PERMIT, corridor_m=distance_m))
        for s in range(0, seconds + 1, 10)
    ]


def test_off_route_fires_past_the_distance_for_the_duration() -> None:
    _, events = run(off_route.step, off_corridor(TH.off_route_distance_m + 1, 180))
    assert [e.key for e in opened(events)] == ["corridor"]
    assert opened(events)[0].measured["max_distance_m"] == TH.off_route_distance_m + 1
    _, events = run(off_route.step, off_corridor(TH.off_route_distance_m, 600))
    assert events == []
    _, events = run(off_route.step, off_corridor(TH.off_route_distance_m + 1, 170))
    assert events == []


def test_off_route_episode_ends_back_on_the_corridor_or_with_the_permit() -> None:
    state, _ = run(off_route.step, off_corridor(2000, 300))
    back = Fix(T0 + 310, north(5000), LON, 40)
    _, events = off_route.step(state, back, ctx(permit=PERMIT, corridor_m=50))
    assert [(e.key, e.ended_t) for e in events] == [("corridor", T0 + 300)]
    _, events = off_route.step(state, back, ctx(permit=None))
    assert [(e.key, e.ended_t) for e in events] == [("corridor", T0 + 300)]


def stopped_at(place_lat: float, seconds: int, **context: object) -> list:
    return [
        (
            Fix(T0 + s, place_lat, LON, 0),
            ctx(permit=PERMIT, corridor_m=10, moving=False, **context),
        )
        for s in range(0, seconds + 1, 60)
    ]


def test_off_route_flags_a_long_stop_away_from_every_destination() -> None:
    _, events = run(off_route.step, stopped_at(north(9000), 1200))
    assert [e.key for e in opened(events)] == ["stop"]
    _, events = run(off_route.step, stopped_at(north(9000), 1140))
    assert events == []
    _, events = run(off_route.step, stopped_at(north(20_000), 3600, at_place=True))
    assert events == []


def test_off_route_stop_ends_when_the_vehicle_leaves_the_spot() -> None:
    state, _ = run(off_route.step, stopped_at(north(9000), 1500))
    away = Fix(T0 + 1560, north(9000 + TH.stop_radius_m + 50), LON, 30)
    _, events = off_route.step(state, away, ctx(permit=PERMIT, corridor_m=10, moving=True))
    assert [(e.key, e.ended_t) for e in closed(events)] == [("stop", T0 + 1500)]


# ---- region_exit ----------------------------------------------------------------------------


def outside(seconds: int, **context: object) -> list:
    return [
        (Fix(T0 + s, LAT, LON, 60), ctx(**{"in_region": False, **context}))
        for s in range(0, seconds + 1, 10)
    ]


def test_region_exit_after_the_grace_time() -> None:
    _, events = run(region_exit.step, outside(int(TH.region_exit_grace_s)))
    assert [e.kind for e in opened(events)] == ["region_exit"]
    _, events = run(region_exit.step, outside(int(TH.region_exit_grace_s) - 10))
    assert events == []


def test_region_exit_is_quiet_when_approved_or_without_a_region() -> None:
    permit = Permit(vehicle_id=1, start_t=T0, end_t=T0 + 3600, out_of_region=True)
    assert run(region_exit.step, outside(600, permit=permit))[1] == []
    assert run(region_exit.step, outside(600, in_region=None))[1] == []


def test_region_exit_ends_back_inside() -> None:
    state, _ = run(region_exit.step, outside(120))
    _, events = region_exit.step(state, Fix(T0 + 130, LAT, LON, 60), ctx(in_region=True))
    assert [(e.started_t, e.ended_t) for e in events] == [(T0, T0 + 120)]


# ---- prohibited_zone ------------------------------------------------------------------------


def dwell_in(fence_ids: frozenset[int], seconds: int, start: int = 0) -> list:
    return [
        (Fix(T0 + s, LAT, LON, 0), ctx(prohibited=fence_ids, moving=False))
        for s in range(start, start + seconds + 1, 30)
    ]


def test_prohibited_zone_after_the_dwell_time_per_fence() -> None:
    _, events = run(prohibited_zone.step, dwell_in(frozenset({4}), 300))
    assert [(e.key, e.fence_id) for e in opened(events)] == [("4", 4)]
    _, events = run(prohibited_zone.step, dwell_in(frozenset({4}), 270))
    assert events == []


def test_prohibited_zone_exit_is_the_set_difference_of_fences() -> None:
    state, _ = run(prohibited_zone.step, dwell_in(frozenset({4, 5}), 600))
    state, events = prohibited_zone.step(
        state, Fix(T0 + 630, LAT, LON, 0), ctx(prohibited=frozenset({5}))
    )
    assert [(e.fence_id, e.ended_t) for e in events] == [(4, T0 + 600)]
    state, events = prohibited_zone.step(state, Fix(T0 + 660, LAT, LON, 0), ctx())
    assert [(e.fence_id, e.ended_t) for e in events] == [(5, T0 + 630)]
    assert state is None


# ---- overnight_away -------------------------------------------------------------------------

NIGHT = 22 * 3600  # local seconds of the day the night starts
DAY0 = 20_000 * 86_400  # a local midnight, in local epoch seconds


def parked(times_local: list[float], lat: float = LAT, **context: object) -> list:
    # UTC and local differ by 8 h; the rule only compares local times.
    return [
        (Fix(t - 8 * 3600, lat, LON, 0, False), ctx(local_t=t, moving=False, **context))
        for t in times_local
    ]


def test_night_overlap_counts_only_the_window() -> None:
    assert night_overlap(DAY0 + 21 * 3600, DAY0 + 23 * 3600, NIGHT, 6 * 3600) == 3600
    assert night_overlap(DAY0 + 20 * 3600, DAY0 + 86_400 + 8 * 3600, NIGHT, 6 * 3600) == 8 * 3600
    assert night_overlap(DAY0 + 7 * 3600, DAY0 + 21 * 3600, NIGHT, 6 * 3600) == 0


def test_overnight_away_fires_on_the_morning_fix_after_a_silent_night() -> None:
    _, events = run(overnight_away.step, parked([DAY0 + 21 * 3600, DAY0 + 86_400 + 7 * 3600]))
    assert len(opened(events)) == 1
    assert opened(events)[0].measured["night_parked_s"] == 8 * 3600
    assert opened(events)[0].started_t == DAY0 + 21 * 3600 - 8 * 3600


def test_overnight_away_needs_the_minimum_night_time() -> None:
    just_under = DAY0 + NIGHT + TH.overnight_min_s - 1
    _, events = run(overnight_away.step, parked([DAY0 + 21 * 3600, just_under]))
    assert events == []
    _, events = run(overnight_away.step, parked([DAY0 + 21 * 3600, just_under + 1]))
    assert len(events) == 1


def test_overnight_away_is_quiet_in_a_depot_with_a_permit_or_when_it_moved() -> None:
    times = [DAY0 + 21 * 3600, DAY0 + 86_400 + 7 * 3600]
    assert run(overnight_away.step, parked(times, depot=True))[1] == []
    permit = Permit(vehicle_id=1, start_t=0, end_t=4e9, overnight=True)
    assert run(overnight_away.step, parked(times, permit=permit))[1] == []
    moved = parked(times[:1]) + parked(times[1:], lat=north(TH.parked_radius_m + 10))
    assert run(overnight_away.step, moved)[1] == []


def test_overnight_away_ends_when_the_car_leaves() -> None:
    state, _ = run(overnight_away.step, parked([DAY0 + 21 * 3600, DAY0 + 86_400 + 7 * 3600]))
    leave = Fix(DAY0 + 86_400 + 7.5 * 3600 - 8 * 3600, north(2000), LON, 40, True)
    state, events = overnight_away.step(state, leave, ctx(local_t=DAY0 + 86_400 + 7.5 * 3600))
    assert len(closed(events)) == 1
    assert closed(events)[0].ended_t == DAY0 + 86_400 - 3600
    assert state is None  # driving: no new stay begins


# ---- overspeed ------------------------------------------------------------------------------


def speeding(speed: float, seconds: int, limit: float = 120) -> list:
    return [
        (Fix(T0 + s, LAT, LON, speed), ctx(speed_limit_kmh=limit)) for s in range(0, seconds + 1, 5)
    ]


def test_overspeed_just_over_for_the_duration() -> None:
    _, events = run(overspeed.step, speeding(120.1, 30))
    assert len(opened(events)) == 1
    assert opened(events)[0].measured == {
        "duration_s": 30,
        "max_speed_kmh": 120.1,
        "limit_kmh": 120,
    }
    assert run(overspeed.step, speeding(120.0, 300))[1] == []
    assert run(overspeed.step, speeding(130, 25))[1] == []


def test_overspeed_uses_the_fence_limit_and_grades_severity() -> None:
    _, events = run(overspeed.step, speeding(76, 60, limit=50))
    assert opened(events)[0].severity == "high"
    _, events = run(overspeed.step, speeding(70, 60, limit=50))
    assert opened(events)[0].severity == "medium"


def test_overspeed_ends_at_the_last_fix_over_the_limit() -> None:
    state, _ = run(overspeed.step, speeding(140, 60))
    _, events = overspeed.step(state, Fix(T0 + 65, LAT, LON, 100), ctx())
    assert [(e.started_t, e.ended_t) for e in events] == [(T0, T0 + 60)]


# ---- signal_loss ----------------------------------------------------------------------------


def test_signal_loss_with_the_ignition_on() -> None:
    prev = Fix(T0, LAT, LON, 40, True)
    gap = TH.signal_gap_s
    fix = Fix(T0 + gap, LAT, LON, 40, True)
    _, events = signal_loss.step(None, fix, ctx(prev=prev, gap_s=gap))
    assert [(e.started_t, e.ended_t) for e in events] == [(T0, T0 + gap)]
    _, events = signal_loss.step(None, fix, ctx(prev=prev, gap_s=gap - 1))
    assert events == ()


def test_signal_loss_with_the_ignition_off_needs_a_jump() -> None:
    prev = Fix(T0, LAT, LON, 0, False)
    fix = Fix(T0 + 3600, north(5000), LON, 0, False)
    context = ctx(prev=prev, gap_s=3600.0)
    _, events = signal_loss.step(None, fix, ctx(prev=prev, gap_s=3600, step_m=TH.signal_jump_m))
    assert [e.severity for e in events] == ["high"]
    _, events = signal_loss.step(None, fix, context)  # parked for an hour, tracker asleep
    assert events == ()


# ---- device_alarm ---------------------------------------------------------------------------


def test_device_alarm_opens_and_closes_with_its_bit_even_without_a_position() -> None:
    sos, power_cut = 1 << 0, 1 << 8
    state, events = device_alarm.step(None, Fix(T0, None, None, alarm_bits=sos), ctx())
    assert [(e.key, e.severity, e.ended_t) for e in events] == [("sos", "critical", None)]
    state, events = device_alarm.step(
        state, Fix(T0 + 10, LAT, LON, alarm_bits=sos | power_cut), ctx()
    )
    assert [(e.key, e.ended_t) for e in events] == [("power_cut", None)]
    state, events = device_alarm.step(state, Fix(T0 + 20, LAT, LON, alarm_bits=power_cut), ctx())
    assert [(e.key, e.started_t, e.ended_t) for e in events] == [("sos", T0, T0 + 20)]
    assert state is not None
    assert list(state) == ["8"]


def test_device_alarm_ignores_bits_left_to_other_rules() -> None:
    overspeed_bit = 1 << 1
    assert device_alarm.step(None, Fix(T0, LAT, LON, alarm_bits=overspeed_bit), ctx()) == (None, ())


# ---- the engine's wake flags never skip a rule that would act ----------------------------------

from dataclasses import replace as _replace  # noqa: E402

import numpy as np  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from geofence.rules import REGISTERED, RULES, wakes  # noqa: E402
from geofence.rules.base import Columns, Context  # noqa: E402

PERMITS = st.sampled_from(
    [
        None,
        PERMIT,
        Permit(vehicle_id=1, start_t=0, end_t=4e9, out_of_region=True, overnight=True),
    ]
)


@st.composite
def fixes_in_context(draw: st.DrawFn) -> tuple[Fix, Context]:
    """A fix and its context, the fields the wake conditions read drawn at random."""
    lat = draw(st.one_of(st.none(), st.floats(29, 31)))
    speed = draw(st.one_of(st.none(), st.floats(0, 250)))
    ignition = draw(st.one_of(st.none(), st.booleans()))
    alarm = draw(st.sampled_from([0, 1, 2, 1 << 8, 1 << 31, (1 << 32) - 1]))
    gap = draw(st.one_of(st.none(), st.floats(0, 5000)))
    permit = draw(PERMITS)
    corridor = draw(st.one_of(st.none(), st.floats(0, 5000)))
    fix = Fix(T0, lat, None if lat is None else LON, speed, ignition, alarm)
    context = _replace(
        ctx(),
        category=draw(st.sampled_from(["general", "emergency"])),
        working=draw(st.one_of(st.none(), st.booleans())),
        moving=draw(st.booleans()),
        gap_s=gap,
        prev=None if gap is None else Fix(T0 - gap, LAT, LON, 10, True),
        step_m=0.0 if gap is None else 2000.0,
        depot=draw(st.booleans()),
        in_region=draw(st.one_of(st.none(), st.booleans())),
        prohibited=draw(st.sampled_from([frozenset(), frozenset({3})])),
        speed_limit_kmh=draw(st.floats(20, 130)),
        permit=permit,
        corridor_m=corridor if permit is not None else None,
        at_place=draw(st.booleans()),
        status=draw(st.sampled_from(["active", "sealed", "maintenance", "disposed"])),
        workshop=draw(st.booleans()),
    )
    return fix, context


@settings(max_examples=1000, deadline=None)
@given(fixes_in_context())
def test_a_rule_the_engine_lets_rest_would_have_done_nothing(
    fix_in_context: tuple[Fix, Context],
) -> None:
    fix, context = fix_in_context
    for (name, step), wake in zip(RULES.items(), wakes(fix, context), strict=True):
        if not wake:
            assert step(None, fix, context) == (None, ()), name


def _as_columns(fix: Fix, context: Context, held: str | None = None) -> Columns:
    """The one fix as the engine's columns would have it (None as NaN or -1). `held`: the status
    the registry holds now, where it came after the fix (the context's status is then active)."""
    code = {None: -1, False: 0, True: 1}
    permits = [] if context.permit is None else [context.permit]
    return Columns(
        th=context.th,
        positioned=np.array([fix.lat is not None]),
        speed_kmh=np.array([np.nan if fix.speed_kmh is None else fix.speed_kmh]),
        alarm_bits=np.array([fix.alarm_bits], dtype=np.int64),
        working=np.array([code[context.working]], dtype=np.int8),
        moving=np.array([context.moving]),
        gap_s=np.array([np.nan if context.gap_s is None else context.gap_s]),
        depot=np.array([context.depot]),
        prohibited=np.array([bool(context.prohibited)]),
        in_region=np.array([code[context.in_region]], dtype=np.int8),
        speed_limit_kmh=np.array([context.speed_limit_kmh]),
        permits=permits,
        permit=np.array([len(permits) - 1]),
        permitted=np.array([bool(permits)]),
        corridor_m=np.array([np.nan if context.corridor_m is None else context.corridor_m]),
        at_place=np.array([context.at_place]),
        categories=[context.category],
        vehicle=np.array([0]),
        statuses=[context.status if held is None else held],
        workshop=np.array([context.workshop]),
        status_now=np.array([held is None]),
    )


@settings(max_examples=500, deadline=None)
@given(
    fixes_in_context(),
    st.one_of(st.none(), st.sampled_from(["active", "sealed", "maintenance", "disposed"])),
)
def test_a_rule_wakes_on_the_same_fixes_one_by_one_and_as_columns(
    fix_in_context: tuple[Fix, Context], held: str | None
) -> None:
    """`held`, where drawn: the vehicle's status now, which came after the fix (before its
    `status_since`), so the fix is judged as an active vehicle's."""
    fix, context = fix_in_context
    if held is not None:
        context = _replace(context, status="active")
    columns = _as_columns(fix, context, held)
    for rule in REGISTERED:
        assert bool(rule.wakes_columns(columns)[0]) == rule.wakes(fix, context), rule.kind
