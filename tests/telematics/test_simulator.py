"""The simulator drives registered vehicles through a real gateway; the worker stores what it
sends, and a dispatcher whose scope covers the vehicles sees them move on the WebSocket. Each
vehicle drives tours from its depot and back (`Motion`, tested here without a database against
made-up route sources; on real roads in test_simulator_roads.py)."""

from __future__ import annotations

import asyncio
import itertools
import math
import random
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session

from fleet import registry
from fleet.schemas import UserCreate
from telematics import gateway, simulator
from telematics.ingest import IngestWorker
from telematics.settings import TelematicsSettings
from telematics.simulator import LatLon, Motion, Phase
from telematics.trips import haversine_m
from tests.conftest import PASSWORD
from tests.support import free_port
from tests.telematics.conftest import T0
from web.app import create_app


@pytest.mark.usefixtures("clean_tracks")
def test_simulated_terminals_reach_postgis_and_the_live_socket(fleetlet, redis):
    with Session(fleetlet.engine) as session, session.begin():
        registry.create_user(
            session=session,
            actor=None,
            data=UserCreate(
                username="sim-watcher",
                password=PASSWORD,
                roles=["dispatcher"],
                unit_id=fleetlet.unit_id,
            ),
        )
    tsettings = TelematicsSettings(
        gateway_host="127.0.0.1",
        jt808_port=free_port(),
        osmand_port=free_port(),
        stream_shards=4,
        ingest_linger_ms=0,
    )
    vehicles = simulator.registered(fleetlet.engine, "jt808", 3)
    assert len(vehicles) == 3
    stop_worker = threading.Event()
    worker = IngestWorker(engine=fleetlet.engine, redis=redis, settings=tsettings, block_ms=100)
    worker_thread = threading.Thread(target=worker.run, args=(stop_worker,), daemon=True)
    outcome: dict[str, simulator.Stats] = {}

    async def drive() -> None:
        ready, stop = asyncio.Event(), asyncio.Event()
        serving = asyncio.create_task(
            gateway.serve(tsettings, fleetlet.engine, fleetlet.settings.redis, ready, stop)
        )
        await asyncio.wait_for(ready.wait(), 10)
        outcome["stats"] = await simulator.simulate(
            vehicles,
            protocol="jt808",
            host="127.0.0.1",
            port=tsettings.jt808_port,
            routes=simulator.StraightLegs(simulator.DEFAULT_CENTRE),
            interval_s=0.5,
            duration_s=4,
            fix_step_s=1.0,  # JT/T 808 times are whole seconds: two a second would be one fix
        )
        stop.set()
        await serving

    with TestClient(create_app(fleetlet.settings, live_keepalive_s=0.5)) as api:
        token = api.post(
            "/api/v1/auth/token", data={"username": "sim-watcher", "password": PASSWORD}
        ).json()["access_token"]
        worker_thread.start()
        driver = threading.Thread(target=lambda: asyncio.run(drive()), daemon=True)
        with api.websocket_connect(f"/ws/live?token={token}") as socket_:
            assert socket_.receive_json()["type"] == "snapshot"
            driver.start()
            seen: set[int] = set()
            for _ in range(100):
                message = socket_.receive_json()
                if message["type"] == "positions":
                    seen |= {i["vehicle_id"] for i in message["items"]}
                if len(seen) == 3:
                    break
        driver.join(timeout=30)
        deadline = time.monotonic() + 30
        while stored_count(fleetlet) < outcome["stats"].acked and time.monotonic() < deadline:
            time.sleep(0.1)
        stop_worker.set()
        worker_thread.join(timeout=30)
    stats = outcome["stats"]
    assert stats.connected == 3
    assert stats.refused == 0
    assert stats.acked == stats.sent > 10
    assert seen == {t.vehicle_id for t in fleetlet.targets}
    assert stored_count(fleetlet) == stats.acked


def stored_count(fleetlet) -> int:
    with fleetlet.engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM position")).scalar_one())


# ---- tours, without a database -----------------------------------------------------------------

HOME: LatLon = (30.28506, 120.12571)


@dataclass
class Streets:
    """A made-up town whose streets run east-west then north-south: every path is an L, so a
    position off the L is a vehicle off the road. Destinations come from `places` in turn."""

    places: list[LatLon] = field(default_factory=lambda: [(30.30, 120.10), (30.26, 120.13)])
    moved_home: LatLon | None = None
    dead_ends: set[tuple[LatLon, LatLon]] = field(default_factory=set)  # (a, b) with no path
    asked: list[LatLon] = field(default_factory=list)

    def home(self, depot: LatLon) -> LatLon:
        return self.moved_home or depot

    def destination(self, home: LatLon, rng: random.Random) -> LatLon:
        place = self.places[len(self.asked) % len(self.places)]
        self.asked.append(place)
        return place

    def path(self, a: LatLon, b: LatLon) -> list[LatLon] | None:
        if (a, b) in self.dead_ends:
            return None
        corner = (a[0], b[1])
        # Points doubled where edges meet and at the ends, as in paths made by pgRouting.
        return [a, a, corner, corner, b, b]


@dataclass(frozen=True)
class Moment:
    now: float
    phase: Phase
    path: tuple[LatLon, ...]  # the one being driven, if any
    lat: float
    lon: float
    ignition: bool
    speed_kmh: float
    heading_deg: float


def tour(
    motion: Motion, *, tours: int = 1, step_s: float = 5.0, start: float = 0.0
) -> list[Moment]:
    """Advance `motion` until it has parked `tours` times, recording each reported fix."""
    moments = []
    now = start
    for _ in range(50_000):  # a bound, so that a vehicle that never gets home fails, not hangs
        motion.advance(now, step_s)
        fix = motion.fix("sim", T0 + timedelta(seconds=now))
        moments.append(
            Moment(
                now,
                motion.phase,
                tuple(motion.path),
                fix.lat,
                fix.lon,
                bool(fix.ignition),
                fix.speed_kmh or 0.0,
                fix.heading_deg or 0.0,
            )
        )
        if motion.tours >= tours:
            return moments
        now += step_s
    raise AssertionError(f"not home after {len(moments)} steps: {motion.phase}")


def off_path_m(lat: float, lon: float, path: tuple[LatLon, ...]) -> float:
    """Distance from a point to a polyline, in metres (flat earth: a town's scale)."""
    k = math.cos(math.radians(lat)) * 111_320

    def xy(p: LatLon) -> tuple[float, float]:
        return ((p[1] - lon) * k, (p[0] - lat) * 111_320)

    best = math.inf
    for a, b in itertools.pairwise(path):
        (ax, ay), (bx, by) = xy(a), xy(b)
        dx, dy = bx - ax, by - ay
        length2 = dx * dx + dy * dy
        t = 0.0 if length2 == 0 else max(0.0, min(1.0, -(ax * dx + ay * dy) / length2))
        best = min(best, math.hypot(ax + t * dx, ay + t * dy))
    return best


def test_a_tour_drives_the_paths_out_and_back_and_parks_at_home() -> None:
    streets = Streets()
    moments = tour(Motion(position=HOME, rng=random.Random(1), routes=streets))
    phases = [m.phase for m in moments]
    assert [p for n, p in enumerate(phases) if n == 0 or phases[n - 1] != p] == [
        Phase.OUTBOUND,
        Phase.CALLING,
        Phase.INBOUND,
        Phase.PARKED,
    ]
    driving = [m for m in moments if m.phase in (Phase.OUTBOUND, Phase.INBOUND)]
    assert driving
    assert all(m.ignition and m.speed_kmh > 0 for m in driving)
    assert max(off_path_m(m.lat, m.lon, m.path) for m in driving) < 1.0
    assert all(m.path[0] == HOME for m in driving if m.phase is Phase.OUTBOUND)
    calling = [m for m in moments if m.phase is Phase.CALLING]
    assert {(m.lat, m.lon) for m in calling} == {streets.places[0]}
    assert {m.speed_kmh for m in calling} == {0.0}
    last = moments[-1]
    assert (last.phase, (last.lat, last.lon), last.ignition, last.speed_kmh) == (
        Phase.PARKED,
        HOME,
        False,
        0.0,
    )


def test_a_parked_vehicle_stands_at_home_until_its_next_tour() -> None:
    motion = Motion(position=HOME, rng=random.Random(2), routes=Streets())
    first = tour(motion)
    parked_until = motion.standing_until
    assert parked_until > first[-1].now
    moments = tour(motion, start=first[-1].now + 5.0, tours=2)
    standing = [m for m in moments if m.now < parked_until]
    assert standing
    assert {(m.lat, m.lon, m.ignition, m.speed_kmh) for m in standing} == {(*HOME, False, 0.0)}
    leaving = next(m for m in moments if m.now >= parked_until)
    assert (leaving.phase, leaving.ignition) == (Phase.OUTBOUND, True)
    assert (leaving.lat, leaving.lon) != HOME
    assert (moments[-1].lat, moments[-1].lon, moments[-1].ignition) == (*HOME, False)


def test_heading_follows_the_path_across_points_shared_by_two_edges() -> None:
    # The L goes east then south, its points doubled where edges meet and at both ends (as
    # pgRouting's paths are): the vehicle faces 90 then 180, and still faces south when it
    # stops at the destination, not a spurious north from a step of no length.
    streets = Streets(places=[(30.27, 120.14)])
    moments = tour(Motion(position=HOME, rng=random.Random(3), routes=streets), step_s=1.0)
    outbound = [m for m in moments if m.phase is Phase.OUTBOUND]
    east = [m for m in outbound if m.lat == HOME[0] and m.lon < 120.14]
    assert east
    assert {round(m.heading_deg) for m in east} == {90}
    calling = [m for m in moments if m.phase is Phase.CALLING]
    assert calling
    assert {round(m.heading_deg) for m in calling} == {180}


def test_a_destination_with_no_way_back_is_swapped_for_another() -> None:
    there, elsewhere = (30.30, 120.10), (30.26, 120.13)
    streets = Streets(places=[there, elsewhere], dead_ends={(there, HOME)})
    motion = Motion(position=HOME, rng=random.Random(4), routes=streets)
    moments = tour(motion)
    assert streets.asked == [there, elsewhere]
    assert {(m.lat, m.lon) for m in moments if m.phase is Phase.CALLING} == {elsewhere}
    assert (moments[-1].lat, moments[-1].lon) == HOME


def test_with_no_route_anywhere_a_few_destinations_are_tried_then_driven_straight() -> None:
    places = [(30.30, 120.10), (30.26, 120.13), (30.27, 120.09)]
    streets = Streets(
        places=places, dead_ends={(HOME, p) for p in places} | {(p, HOME) for p in places}
    )
    motion = Motion(position=HOME, rng=random.Random(5), routes=streets)
    motion.advance(0.0, 5.0)
    assert len(streets.asked) == simulator.ROUTE_TRIES
    assert motion.path == [HOME, streets.asked[-1]]
    moments = tour(motion, start=5.0)
    assert max(off_path_m(m.lat, m.lon, m.path) for m in moments if m.path) < 1.0
    assert (moments[-1].phase, moments[-1].lat, moments[-1].lon) == (Phase.PARKED, *HOME)
    assert len(streets.asked) == simulator.ROUTE_TRIES


def test_a_tour_leaves_from_home_and_parks_there_even_if_the_paths_stop_short() -> None:
    class Junctions(Streets):
        def path(self, a: LatLon, b: LatLon) -> list[LatLon] | None:
            return [(a[0] + 0.001, a[1]), (b[0] + 0.001, b[1])]  # junctions near each end

    motion = Motion(position=HOME, rng=random.Random(6), routes=Junctions())
    moments = tour(motion)
    assert moments[0].path[0] == HOME
    assert next(m.path[-1] for m in moments if m.phase is Phase.INBOUND) == HOME
    assert (moments[-1].lat, moments[-1].lon, moments[-1].ignition) == (*HOME, False)


def test_a_vehicle_lives_where_the_route_source_puts_its_depot() -> None:
    junction = (30.2855, 120.0975)
    streets = Streets(moved_home=junction)
    motion = Motion(position=(31.2304, 121.4737), rng=random.Random(7), routes=streets)
    assert motion.position == motion.home == junction
    moments = tour(motion)
    assert moments[0].path[0] == junction
    assert (moments[-1].lat, moments[-1].lon, moments[-1].ignition) == (*junction, False)


def test_without_roads_a_tour_is_straight_to_a_point_in_town_and_back() -> None:
    centre = simulator.DEFAULT_CENTRE
    legs = simulator.StraightLegs(centre, radius_m=3000)
    motion = Motion(position=HOME, rng=random.Random(8), routes=legs)
    assert motion.home == HOME
    moments = tour(motion, tours=3)
    paths = {m.path for m in moments if m.path}
    outbound = [p for p in paths if p[0] == HOME]
    assert len(outbound) == 3
    assert all(len(p) == 2 for p in paths)
    for _, destination in outbound:
        assert (destination, HOME) in paths
        assert haversine_m(*centre, *destination) <= 3000 + 1
    assert max(off_path_m(m.lat, m.lon, m.path) for m in moments if m.path) < 1.0
    assert (moments[-1].lat, moments[-1].lon, moments[-1].ignition) == (*HOME, False)
