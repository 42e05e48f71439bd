"""The rules of vehicles that should not move, on synthetic timelines: a sealed or disposed
vehicle that moves (`sealed_vehicle_moving`), a vehicle in maintenance that moves outside the
workshops (`maintenance_vehicle_moving`). No database, no clock."""

from __future__ import annotations

from geofence.permits import Permit
from geofence.rules import (
    REGISTERED,
    maintenance_vehicle_moving,
    no_order,
    off_hours,
    overnight_away,
    sealed_vehicle_moving,
)
from geofence.rules.base import Fix
from tests.geofence.timeline import LON, T0, TH, closed, ctx, north, opened, run


def drive(step_m: float, seconds: int, every: int = 10, **context: object) -> list:
    """A drive of `seconds`, a fix every `every` s, each `step_m` metres on from the last."""
    return [
        (Fix(T0 + s, north(step_m * s / every), LON, 40), ctx(step_m=step_m if s else 0, **context))
        for s in range(0, seconds + 1, every)
    ]


def test_a_sealed_vehicle_that_moves_raises_one_critical_episode() -> None:
    _, events = run(sealed_vehicle_moving.step, drive(50, 200, status="sealed"))
    first = opened(events)[0]
    assert (first.kind, first.severity, first.started_t) == (
        "sealed_vehicle_moving",
        "critical",
        T0,
    )
    assert first.measured["distance_m"] == 500  # opened on the fix that reached the distance
    assert {e.started_t for e in events} == {T0}  # its updates are the same episode


def test_a_disposed_vehicle_is_watched_as_a_sealed_one() -> None:
    _, events = run(sealed_vehicle_moving.step, drive(50, 100, status="disposed"))
    assert [e.kind for e in opened(events)] == ["sealed_vehicle_moving"]


def test_a_sealed_vehicle_moving_less_than_the_movement_threshold_raises_nothing() -> None:
    # under the distance: a parked car's jittery fixes, even with a speed over the noise
    _, events = run(sealed_vehicle_moving.step, drive(49.9, 100, status="sealed"))
    assert events == []
    # the distance, but in less than the minimum duration
    _, events = run(sealed_vehicle_moving.step, drive(500, 50, every=50, status="sealed"))
    assert events == []
    # one jump of a parked car (not moving: no speed over the threshold)
    _, events = run(
        sealed_vehicle_moving.step, drive(800, 120, every=60, status="sealed", moving=False)
    )
    assert events == []


def test_nothing_excuses_a_sealed_vehicle_moving() -> None:
    permit = Permit(vehicle_id=1, start_t=T0, end_t=T0 + 3600)
    for context in (
        {"permit": permit},
        {"depot": True},
        {"workshop": True},
        {"working": False},
        {"working": None},
        {"category": "emergency"},
    ):
        _, events = run(sealed_vehicle_moving.step, drive(100, 100, status="sealed", **context))
        assert [e.kind for e in opened(events)] == ["sealed_vehicle_moving"], context


def test_vehicles_in_other_statuses_are_not_the_sealed_rules() -> None:
    for status in ("active", "maintenance"):
        _, events = run(sealed_vehicle_moving.step, drive(100, 200, status=status))
        assert events == [], status


def test_the_sealed_episode_ends_after_the_movement_end_time() -> None:
    state, events = run(sealed_vehicle_moving.step, drive(100, 100, status="sealed"))
    assert [e.kind for e in opened(events)][:1] == ["sealed_vehicle_moving"]
    last = T0 + 100
    parked = Fix(last + TH.movement_end_s - 1, north(1000), LON, 0)
    state, fired = sealed_vehicle_moving.step(state, parked, ctx(moving=False, status="sealed"))
    assert fired == ()
    assert state is not None
    parked = Fix(last + TH.movement_end_s, north(1000), LON, 0)
    state, fired = sealed_vehicle_moving.step(state, parked, ctx(moving=False, status="sealed"))
    assert state is None
    assert [(e.started_t, e.ended_t, e.severity) for e in closed(list(fired))] == [
        (T0, last, "critical")
    ]


def test_a_vehicle_in_maintenance_moving_outside_the_workshops_raises_an_episode() -> None:
    _, events = run(maintenance_vehicle_moving.step, drive(50, 200, status="maintenance"))
    first = opened(events)[0]
    assert (first.kind, first.severity, first.started_t) == (
        "maintenance_vehicle_moving",
        "high",
        T0,
    )


def test_a_vehicle_in_maintenance_may_move_inside_a_workshop() -> None:
    _, events = run(
        maintenance_vehicle_moving.step, drive(50, 600, status="maintenance", workshop=True)
    )
    assert events == []


def test_only_the_distance_outside_the_workshop_counts() -> None:
    # 400 m inside the workshop's fence, then 100 m out of it and on: the episode starts at the
    # first fix outside, and opens once 500 m have been covered outside
    inside = drive(50, 80, status="maintenance", workshop=True)
    outside = [
        (
            Fix(T0 + 90 + s, north(400 + 50 * (s + 10) / 10), LON, 40),
            ctx(step_m=50, status="maintenance"),
        )
        for s in range(0, 101, 10)
    ]
    _, events = run(maintenance_vehicle_moving.step, inside + outside)
    first = opened(events)[0]
    assert first.started_t == T0 + 90
    assert first.measured["distance_m"] == 500
    assert first.lat == outside[0][0].lat


def test_the_maintenance_rule_leaves_other_statuses_and_parked_cars_alone() -> None:
    for status in ("active", "sealed", "disposed"):
        _, events = run(maintenance_vehicle_moving.step, drive(100, 200, status=status))
        assert events == [], status
    _, events = run(maintenance_vehicle_moving.step, drive(49.9, 100, status="maintenance"))
    assert events == []


def test_the_two_rules_run_with_the_others() -> None:
    kinds = [rule.kind for rule in REGISTERED]
    assert kinds[-2:] == ["sealed_vehicle_moving", "maintenance_vehicle_moving"]
    # the engine carries only the episodes of rules with no permit in play (no_order,
    # off_hours) on in line; these two are stepped like any other
    assert all(rule.movement_severity is None for rule in REGISTERED[-2:])


def test_no_order_and_off_hours_leave_a_vehicle_out_of_use_to_these_rules() -> None:
    """One alert for a sealed car that moves, not a `no_order` beside it; and a car in the
    workshop is test-driven there without an order."""
    for status in ("sealed", "disposed", "maintenance"):
        for rule, working in ((no_order, True), (off_hours, False)):
            _, events = run(rule.step, drive(100, 200, status=status, working=working))
            assert events == [], (rule.KIND, status)
    _, events = run(no_order.step, drive(100, 200, status="active"))
    assert [e.kind for e in opened(events)][:1] == ["no_order"]


def test_a_vehicle_in_maintenance_spends_the_night_in_the_workshop_without_an_alert() -> None:
    day0 = (T0 // 86_400) * 86_400
    night = [day0 + 21 * 3600, day0 + 86_400 + 7 * 3600]  # local times, a fix at each end

    def parked(**context: object) -> list:
        return [
            (Fix(t - 8 * 3600, north(0), LON, 0, False), ctx(local_t=t, moving=False, **context))
            for t in night
        ]

    assert run(overnight_away.step, parked(status="maintenance", workshop=True))[1] == []
    # a workshop is no depot for a vehicle in use, nor is anywhere else for one in maintenance
    for context in ({"status": "active", "workshop": True}, {"status": "maintenance"}):
        _, events = run(overnight_away.step, parked(**context))
        assert [e.kind for e in events] == ["overnight_away"], context
