"""Simulated tours on a real road network: the demo's Xihu extract imported into PostGIS, routed
by pgRouting. Vehicles leave their depot on the roads, come back and park at the depot; a depot
off the imported map is replaced by the network's central junction."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
from sqlalchemy import Engine, text

from app.demo import ROADS as PBF
from fleet import migrate
from fleet.db import make_engine
from fleet.settings import Settings
from telematics import roads, simulator
from telematics.simulator import LatLon, Motion, Phase
from telematics.trips import haversine_m
from tests.telematics.conftest import T0

DEPOT: LatLon = (30.28506, 120.12571)  # on a junction
BOX_CENTRE: LatLon = ((30.255 + 30.316) / 2, (120.060 + 120.135) / 2)
SHANGHAI: LatLon = (31.2304, 121.4737)
EAST_OF_THE_BOX: LatLon = (30.2855, 120.19)  # about 5 km beyond its east edge
ON_ROAD_M = 30.0


@dataclass
class Network:
    engine: Engine
    routes: roads.RoadRoutes


@pytest.fixture(scope="module")
def network(scratch_settings: Settings) -> Iterator[Network]:
    """The demo extract, imported the way `fleet roads import` does (it commits)."""
    migrate.upgrade(scratch_settings)
    engine = make_engine(scratch_settings, pool_size=2)
    owner = make_engine(scratch_settings.as_owner(), pool_size=1)
    roads.import_pbf(owner, PBF)  # the owner's work, as `fleet roads import` does it
    owner.dispose()
    routes = roads.RoadRoutes.load(engine)
    assert routes is not None
    yield Network(engine, routes)
    engine.dispose()


def off_road(engine: Engine, points: list[LatLon], metres: float = ON_ROAD_M) -> list[LatLon]:
    """The points farther than `metres` from every road edge (geodesic distance)."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT p.lat, p.lon"
                " FROM unnest(CAST(:lat AS float8[]), CAST(:lon AS float8[])) AS p(lat, lon)"
                " WHERE NOT EXISTS (SELECT 1 FROM road r"
                "  WHERE r.geom && ST_Expand(ST_SetSRID(ST_MakePoint(p.lon, p.lat), 4326), 0.01)"
                "  AND ST_DWithin(r.geom::geography,"
                "   ST_SetSRID(ST_MakePoint(p.lon, p.lat), 4326)::geography, :m))"
            ),
            {"lat": [p[0] for p in points], "lon": [p[1] for p in points], "m": metres},
        ).all()
    return [(lat, lon) for lat, lon in rows]


def edge_ends_at(engine: Engine, point: LatLon) -> int:
    """How many road edges start or end within a metre of `point`."""
    with engine.connect() as conn:
        return int(
            conn.execute(
                text(
                    "SELECT count(*) FROM road, LATERAL (VALUES (ST_StartPoint(geom)),"
                    " (ST_EndPoint(geom))) AS e(point)"
                    " WHERE ST_DWithin(e.point::geography,"
                    "  ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)::geography, 1)"
                ),
                {"lat": point[0], "lon": point[1]},
            ).scalar_one()
        )


def reported(point: LatLon) -> LatLon:
    """`point` as a fix carries it (to the micro-degree)."""
    return (round(point[0], 6), round(point[1], 6))


@dataclass(frozen=True)
class Report:
    phase: Phase
    point: LatLon
    ignition: bool
    speed_kmh: float


def drive(motion: Motion, *, tours: int, step_s: float = 5.0) -> list[Report]:
    """Every fix `motion` reports, every `step_s` simulated seconds, until it has parked
    `tours` times."""
    reports = []
    now = 0.0
    for _ in range(50_000):  # a bound, so that a vehicle that never gets home fails, not hangs
        motion.advance(now, step_s)
        fix = motion.fix("sim", T0 + timedelta(seconds=now))
        reports.append(
            Report(motion.phase, (fix.lat, fix.lon), bool(fix.ignition), fix.speed_kmh or 0.0)
        )
        if motion.tours >= tours:
            return reports
        now += step_s
    raise AssertionError(f"not home after {len(reports)} steps: {motion.phase}")


def test_route_source_is_the_road_network_once_one_is_imported(network: Network) -> None:
    source = simulator.route_source(network.engine)
    assert isinstance(source, roads.RoadRoutes)
    assert len(source.junctions) > 1000


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tours_keep_to_the_roads_and_park_at_the_depot(network: Network, seed: int) -> None:
    motion = Motion(position=DEPOT, rng=random.Random(seed), routes=network.routes)
    reports = drive(motion, tours=2)
    moving = [r for r in reports if r.phase is not Phase.PARKED]
    assert any(r.speed_kmh > 0 for r in moving)
    assert off_road(network.engine, [r.point for r in moving]) == []
    # It went somewhere worth the drive, and came back.
    assert max(haversine_m(*DEPOT, *r.point) for r in moving) > roads.MIN_TOUR_REACH_M
    parked = [r for r in reports if r.phase is Phase.PARKED]
    assert {(r.point, r.ignition, r.speed_kmh) for r in parked} == {(DEPOT, False, 0.0)}
    assert reports[-1] == Report(Phase.PARKED, DEPOT, False, 0.0)
    assert motion.tours == 2


def test_destinations_are_crossings_reachable_there_and_back(network: Network) -> None:
    rng = random.Random(11)
    for _ in range(8):
        destination = network.routes.destination(DEPOT, rng)
        assert edge_ends_at(network.engine, destination) >= 3
        there = network.routes.path(DEPOT, destination)
        back = network.routes.path(destination, DEPOT)
        assert there is not None
        assert back is not None
        assert (there[0], there[-1], back[0], back[-1]) == (DEPOT, destination, destination, DEPOT)
        assert off_road(network.engine, there + back, metres=1.0) == []


@pytest.mark.parametrize("depot", [SHANGHAI, EAST_OF_THE_BOX], ids=["shanghai", "5km-east"])
def test_a_depot_off_the_map_is_replaced_by_the_central_junction(
    network: Network, depot: LatLon
) -> None:
    centre = network.routes.centre
    assert network.routes.home(depot) == centre
    assert edge_ends_at(network.engine, centre) >= 1
    assert haversine_m(*centre, *BOX_CENTRE) < 1000
    motion = Motion(position=depot, rng=random.Random(3), routes=network.routes)
    assert motion.position == centre
    reports = drive(motion, tours=1)
    assert off_road(network.engine, [r.point for r in reports]) == []
    assert reports[-1] == Report(Phase.PARKED, reported(centre), False, 0.0)


def test_a_depot_beside_the_road_is_where_the_vehicle_leaves_from_and_parks(
    network: Network,
) -> None:
    beside = (DEPOT[0] + 0.0006, DEPOT[1])  # 67 m north of the junction, 59 m from any road
    assert off_road(network.engine, [beside]) == [beside]
    assert network.routes.home(beside) == beside
    motion = Motion(position=beside, rng=random.Random(4), routes=network.routes)
    motion.advance(0.0, 0.0)
    assert motion.path[0] == beside
    joined = network.routes.nearest(beside)
    assert haversine_m(*motion.path[1], joined.lat, joined.lon) < 1.0
    reports = drive(motion, tours=1)
    assert reports[-1] == Report(Phase.PARKED, beside, False, 0.0)


def test_with_no_route_found_the_tour_is_driven_straight(network: Network) -> None:
    # Junctions the road table does not have (a network re-imported since it was loaded):
    # pgRouting finds no path, so after a few destinations the tour goes straight.
    stale = [
        roads.Junction(-1, DEPOT[0], DEPOT[1], 3),
        roads.Junction(-2, DEPOT[0] + 0.02, DEPOT[1], 3),
    ]
    routes = roads.RoadRoutes(network.engine, stale, BOX_CENTRE)
    assert routes.path(DEPOT, (DEPOT[0] + 0.02, DEPOT[1])) is None
    motion = Motion(position=DEPOT, rng=random.Random(5), routes=routes)
    motion.advance(0.0, 5.0)
    assert motion.path == [DEPOT, (DEPOT[0] + 0.02, DEPOT[1])]
    reports = drive(motion, tours=1)
    assert reports[-1] == Report(Phase.PARKED, DEPOT, False, 0.0)
