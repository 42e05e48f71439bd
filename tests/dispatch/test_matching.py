"""Matching without a database: who fits, how they rank, and the optimal plan against greedy."""

from __future__ import annotations

import random

import numpy as np

from dispatch.matching import (
    PENALTY,
    OrderFacts,
    VehicleFacts,
    cost_matrix,
    greedy,
    plan,
    rank,
    why_not,
)

ORIGIN = (30.25, 120.20)


def vehicle(vid: int, **changes) -> VehicleFacts:
    base = {
        "id": vid,
        "plate": f"浙A·D{vid:05d}",
        "seats": 4,
        "category": "general",
        "body_class": "sedan",
        "active": True,
        "new_energy": False,
        "lat": ORIGIN[0] + 0.01 * vid,
        "lon": ORIGIN[1],
        "tracker_fresh": True,
    }
    base.update(changes)
    return VehicleFacts(**base)


def order(oid: int = 1, **changes) -> OrderFacts:
    base = {"id": oid, "passengers": 2, "lat": ORIGIN[0], "lon": ORIGIN[1], "urban": True}
    base.update(changes)
    return OrderFacts(**base)


def test_seven_passengers_never_get_a_five_seat_car_nor_a_sealed_one():
    pool = [vehicle(1, seats=5), vehicle(2, seats=7, active=False), vehicle(3, seats=7)]
    assert [c.vehicle_id for c in rank(order(passengers=7), pool)] == [3]
    assert why_not(order(passengers=7), pool[0]) == "seats 5 < 7 passengers"
    assert "not active" in (why_not(order(passengers=7), pool[1]) or "")


def test_nearest_first_then_new_energy_and_balance_show_in_the_parts():
    pool = [vehicle(1), vehicle(2, new_energy=True), vehicle(3, month_km=5000)]
    ranked = rank(order(), pool)
    # 1.1 km, 2.2 km less the 3 km-equivalent new-energy bonus, 3.3 km and heavily used
    assert [c.vehicle_id for c in ranked] == [2, 1, 3]
    assert [c.vehicle_id for c in rank(order(urban=False), pool)] == [1, 2, 3]
    green = next(c for c in ranked if c.vehicle_id == 2)
    assert green.parts["new_energy"] < 0
    worn = next(c for c in ranked if c.vehicle_id == 3)
    assert worn.parts["balance"] > 0
    assert set(green.parts) == {"distance_km", "distance", "balance", "new_energy"}
    # out of region: no new-energy bonus
    assert (
        next(c for c in rank(order(urban=False), pool) if c.vehicle_id == 2).parts["new_energy"]
        == 0
    )


def test_busy_stale_and_unplaced_vehicles_are_left_out_with_a_reason():
    pool = [
        vehicle(1, busy=frozenset({1})),
        vehicle(2, tracker_fresh=False),
        vehicle(3, lat=None, lon=None),
        vehicle(4, category="emergency"),
    ]
    wanted = order(category="general")
    assert rank(wanted, pool) == []
    reasons = [why_not(wanted, v) for v in pool]
    assert all(reasons), reasons


def test_the_matrix_and_the_ranking_agree_on_who_fits():
    rng = random.Random(3)
    pool = [
        vehicle(
            i,
            seats=rng.choice([4, 5, 7, 12]),
            active=rng.random() > 0.1,
            tracker_fresh=rng.random() > 0.1,
            category=rng.choice(["general", "emergency"]),
            body_class=rng.choice(["sedan", "mpv"]),
            busy=frozenset({rng.randrange(20)}),
            month_km=rng.uniform(0, 3000),
            new_energy=rng.random() > 0.5,
        )
        for i in range(60)
    ]
    orders = [
        order(
            o,
            passengers=rng.randint(1, 10),
            category=rng.choice([None, "general"]),
            body_class=rng.choice([None, "mpv"]),
            urban=rng.random() > 0.3,
        )
        for o in range(20)
    ]
    matrix = cost_matrix(orders, pool)
    for i, wanted in enumerate(orders):
        fits = {pool[j].id for j in np.flatnonzero(matrix[i] < PENALTY)}
        ranked = rank(wanted, pool)
        assert fits == {c.vehicle_id for c in ranked}
        for c in ranked:
            j = next(k for k, v in enumerate(pool) if v.id == c.vehicle_id)
            assert abs(matrix[i, j] - c.cost) < 0.02


def test_the_plan_beats_greedy_where_greedy_is_short_sighted():
    # Order 1 is next to both cars; order 2 is next to car A only. Greedy gives A to order 1.
    car_a = vehicle(1, lat=30.25, lon=120.20)
    car_b = vehicle(2, lat=30.25, lon=120.215)
    orders = [order(1, lat=30.25, lon=120.205), order(2, lat=30.25, lon=120.18)]
    best, baseline = plan(orders, [car_a, car_b]), greedy(orders, [car_a, car_b])
    assert sorted(best.pairs)[0][:2] == (1, 2)
    assert best.total_cost < baseline.total_cost


def test_the_plan_is_never_worse_than_greedy_and_reports_the_unserved():
    rng = random.Random(11)
    for _ in range(20):
        pool = [
            vehicle(i, lat=30 + rng.random(), lon=120 + rng.random(), seats=rng.choice([4, 7]))
            for i in range(30)
        ]
        orders = [
            order(o, lat=30 + rng.random(), lon=120 + rng.random(), passengers=rng.randint(1, 8))
            for o in range(25)
        ]
        best, baseline = plan(orders, pool), greedy(orders, pool)
        assert len(best.pairs) >= len(baseline.pairs)
        if len(best.pairs) == len(baseline.pairs):
            assert best.total_cost <= baseline.total_cost + 1e-6
        assert {o.id for o in orders if o.passengers == 8} <= set(best.unserved)
        assert len({v for _, v, _ in best.pairs}) == len(best.pairs)


def test_merge_options_are_same_place_same_time_with_room():
    from dispatch.matching import Trip, merge_options

    here = ((30.2770, 120.1688),)
    mine = Trip(1, 0.0, 3600.0, 2, here)
    others = [
        Trip(2, 600.0, 4000.0, 3, ((30.2780, 120.1690),), seats=7, vehicle_id=9),  # room for 2+
        Trip(3, 600.0, 4000.0, 5, here, seats=7, vehicle_id=8),  # 2 spare seats: just enough
        Trip(4, 600.0, 4000.0, 6, here, seats=7, vehicle_id=7),  # 1 spare: too few
        Trip(5, 7200.0, 9000.0, 1, here, seats=7, vehicle_id=6),  # two hours later
        Trip(6, 0.0, 3600.0, 1, ((30.40, 120.30),), seats=7, vehicle_id=5),  # elsewhere
        Trip(7, 300.0, 3600.0, 4, here),  # unassigned: 6 together fits the pool's 7 seats
        Trip(8, 300.0, 3600.0, 6, here),  # unassigned: 8 together does not
    ]
    found = {o["order_id"] for o in merge_options(mine, others, largest_seats=7)}
    assert found == {2, 3, 7}
