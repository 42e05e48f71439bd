"""Which vehicles can serve an order, how well, and the best plan for many orders (pure).

A candidate must fit (active, seats, category and body class asked for), have a tracker that
reported recently, and be free for the window. Candidates are ranked by a cost whose parts are
shown to the dispatcher:
- `distance_km`: from where the vehicle is (its last fix, else its depot) to the order's origin;
- `balance`: this month's distance against the pool's average (spread the use);
- `new_energy`: a bonus for a new-energy vehicle on an urban trip (the 2024 rule asks at least 30%
  of official-car use to be new-energy).
Lower total is better. Many orders at once: `plan` solves the assignment problem (Hungarian
method, `scipy.optimize.linear_sum_assignment`) with a penalty, not infinity, for pairs that cannot
be, so that an order nothing fits is reported unserved rather than breaking the solve.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from telematics.trips import haversine_m

EARTH_RADIUS_KM = 6371.0088
PENALTY = 1e6  # a pair that cannot be: far above any real cost, still a finite number


@dataclass(frozen=True, slots=True)
class Weights:
    per_km: float = 1.0
    balance: float = 5.0  # per 100% above (or below) the pool's average monthly distance
    new_energy: float = 3.0  # km-equivalent bonus on urban trips
    per_minute: float = 0.5  # km-equivalent per minute of travel, where the roads give a time


@dataclass(frozen=True, slots=True)
class OrderFacts:
    id: int
    passengers: int
    lat: float
    lon: float
    urban: bool  # not out of region
    category: str | None = None
    body_class: str | None = None


@dataclass(frozen=True, slots=True)
class VehicleFacts:
    id: int
    plate: str
    seats: int
    category: str
    body_class: str
    active: bool
    new_energy: bool
    lat: float | None  # where it is (last fix), else its depot; None if neither is known
    lon: float | None
    tracker_fresh: bool
    month_km: float = 0.0
    busy: frozenset[int] = frozenset()  # ids of orders it cannot also serve (overlapping holds)


@dataclass(frozen=True, slots=True)
class Candidate:
    vehicle_id: int
    plate: str
    cost: float
    parts: dict[str, float] = field(default_factory=dict)


def why_not(order: OrderFacts, vehicle: VehicleFacts) -> str | None:
    """The first reason a vehicle cannot serve an order, or None if it can."""
    if not vehicle.active:
        return "not active (sealed, in maintenance or disposed)"
    if vehicle.seats < order.passengers:
        return f"seats {vehicle.seats} < {order.passengers} passengers"
    if order.category is not None and vehicle.category != order.category:
        return f"category {vehicle.category}, asked {order.category}"
    if order.body_class is not None and vehicle.body_class != order.body_class:
        return f"body {vehicle.body_class}, asked {order.body_class}"
    if not vehicle.tracker_fresh:
        return "tracker not reporting"
    if order.id in vehicle.busy:
        return "assigned elsewhere in the window"
    if vehicle.lat is None or vehicle.lon is None:
        return "position unknown"
    return None


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    return haversine_m(lat1, lon1, lat2, lon2) / 1000


def cost(
    order: OrderFacts,
    vehicle: VehicleFacts,
    average_km: float,
    weights: Weights,
    travel_min: float | None = None,
) -> tuple[float, dict[str, float]]:
    """The cost and its parts; with a travel time on the roads, time replaces straight distance."""
    assert vehicle.lat is not None
    assert vehicle.lon is not None
    distance = distance_km(vehicle.lat, vehicle.lon, order.lat, order.lon)
    balance = (vehicle.month_km - average_km) / average_km if average_km > 0 else 0.0
    parts = {
        "distance_km": round(distance, 2),
        "distance": round(weights.per_km * distance, 2),
        "balance": round(weights.balance * balance, 2),
        "new_energy": -weights.new_energy if order.urban and vehicle.new_energy else 0.0,
    }
    reach = parts["distance"]
    if travel_min is not None:
        parts["travel_min"] = round(travel_min, 1)
        parts["travel"] = round(weights.per_minute * travel_min, 2)
        reach = parts["travel"]
    return reach + parts["balance"] + parts["new_energy"], parts


def rank(
    order: OrderFacts,
    vehicles: Sequence[VehicleFacts],
    weights: Weights = Weights(),
    travel_min: Mapping[int, float] | None = None,
) -> list[Candidate]:
    """Fitting vehicles, cheapest first. `travel_min` (by vehicle id) holds travel times on the
    road network where they could be computed; the others are ranked by straight distance."""
    average = _average_km(vehicles)
    ranked = []
    travel = travel_min or {}
    for vehicle in vehicles:
        if why_not(order, vehicle) is None:
            total, parts = cost(order, vehicle, average, weights, travel.get(vehicle.id))
            ranked.append(Candidate(vehicle.id, vehicle.plate, round(total, 2), parts))
    ranked.sort(key=lambda c: (c.cost, c.vehicle_id))
    return ranked


def _average_km(vehicles: Sequence[VehicleFacts]) -> float:
    return sum(v.month_km for v in vehicles) / len(vehicles) if vehicles else 0.0


@dataclass(frozen=True)
class Plan:
    pairs: list[tuple[int, int, float]]  # (order id, vehicle id, cost)
    unserved: list[int]  # order ids nothing could serve
    total_cost: float


def cost_matrix(
    orders: Sequence[OrderFacts], vehicles: Sequence[VehicleFacts], weights: Weights = Weights()
) -> np.ndarray:
    """Orders x vehicles; PENALTY where the pair cannot be. Vectorised over vehicles."""
    average = _average_km(vehicles)
    matrix = np.full((len(orders), len(vehicles)), PENALTY)
    if not orders or not vehicles:
        return matrix
    lat = np.array([np.nan if v.lat is None else v.lat for v in vehicles])
    lon = np.array([np.nan if v.lon is None else v.lon for v in vehicles])
    seats = np.array([v.seats for v in vehicles])
    usable = np.array([v.active and v.tracker_fresh and v.lat is not None for v in vehicles])
    categories = np.array([v.category for v in vehicles])
    bodies = np.array([v.body_class for v in vehicles])
    green = np.array([v.new_energy for v in vehicles])
    balance = (
        (np.array([v.month_km for v in vehicles]) - average) / average
        if average > 0
        else np.zeros(len(vehicles))
    )
    busy = [(j, v.busy) for j, v in enumerate(vehicles) if v.busy]
    p_lat, p_lon = np.radians(lat), np.radians(lon)
    for i, order in enumerate(orders):
        o_lat, o_lon = math.radians(order.lat), math.radians(order.lon)
        a = (
            np.sin((p_lat - o_lat) / 2) ** 2
            + np.cos(p_lat) * math.cos(o_lat) * np.sin((p_lon - o_lon) / 2) ** 2
        )
        distance = 2 * EARTH_RADIUS_KM * np.arcsin(np.minimum(1.0, np.sqrt(a)))
        total = weights.per_km * distance + weights.balance * balance
        if order.urban:
            total = total - weights.new_energy * green
        fits = usable & (seats >= order.passengers)
        if order.category is not None:
            fits &= categories == order.category
        if order.body_class is not None:
            fits &= bodies == order.body_class
        for j, orders_held in busy:
            if order.id in orders_held:
                fits[j] = False
        matrix[i] = np.where(fits, total, PENALTY)
    return matrix


def plan(
    orders: Sequence[OrderFacts], vehicles: Sequence[VehicleFacts], weights: Weights = Weights()
) -> Plan:
    """The assignment of vehicles to orders with the lowest total cost, one vehicle per order."""
    matrix = cost_matrix(orders, vehicles, weights)
    if not orders:
        return Plan([], [], 0.0)
    rows, cols = linear_sum_assignment(matrix) if vehicles else ([], [])
    pairs, served = [], set()
    for i, j in zip(rows, cols, strict=True):
        if matrix[i, j] < PENALTY:
            pairs.append((orders[i].id, vehicles[j].id, float(matrix[i, j])))
            served.add(i)
    unserved = [o.id for i, o in enumerate(orders) if i not in served]
    return Plan(pairs, unserved, round(sum(c for _, _, c in pairs), 2))


def greedy(
    orders: Sequence[OrderFacts], vehicles: Sequence[VehicleFacts], weights: Weights = Weights()
) -> Plan:
    """Nearest-first, order by order: the baseline the optimal plan is measured against."""
    matrix = cost_matrix(orders, vehicles, weights)
    taken: set[int] = set()
    pairs, unserved = [], []
    for i, order in enumerate(orders):
        row = matrix[i].copy()
        if taken:
            row[list(taken)] = PENALTY
        j = int(np.argmin(row)) if len(row) else -1
        if j < 0 or row[j] >= PENALTY:
            unserved.append(order.id)
            continue
        taken.add(j)
        pairs.append((order.id, vehicles[j].id, float(row[j])))
    return Plan(pairs, unserved, round(sum(c for _, _, c in pairs), 2))


@dataclass(frozen=True, slots=True)
class Trip:
    """An order as merging sees it: when, where to, how many, and the seats of its car if any."""

    id: int
    start_t: float
    end_t: float
    passengers: int
    destinations: tuple[tuple[float, float], ...]  # (lat, lon)
    seats: int | None = None  # the assigned vehicle's seats; None while unassigned
    vehicle_id: int | None = None


def merge_options(
    order: Trip,
    others: Sequence[Trip],
    *,
    radius_km: float = 1.0,
    slack_s: float = 1800,
    largest_seats: int = 0,
) -> list[dict[str, float | int | None]]:
    """Other orders going to the same place at about the same time with room to share a car
    (合并用车): an assigned one whose car has seats to spare, or an unassigned one the pool's
    largest car could carry together with this one."""
    options: list[dict[str, float | int | None]] = []
    for other in others:
        if other.id == order.id or abs(other.start_t - order.start_t) > slack_s:
            continue
        near = min(
            (
                distance_km(a[0], a[1], b[0], b[1])
                for a in order.destinations
                for b in other.destinations
            ),
            default=float("inf"),
        )
        if near > radius_km:
            continue
        if other.seats is not None:
            spare = other.seats - other.passengers
            if spare >= order.passengers:
                options.append(
                    {
                        "order_id": other.id,
                        "vehicle_id": other.vehicle_id,
                        "spare_seats": spare,
                        "apart_km": round(near, 2),
                    }
                )
        elif other.passengers + order.passengers <= largest_seats:
            options.append(
                {
                    "order_id": other.id,
                    "vehicle_id": None,
                    "together": other.passengers + order.passengers,
                    "apart_km": round(near, 2),
                }
            )
    return options
