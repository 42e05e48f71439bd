"""The demo as `make run` leaves it, on a Saturday: the stack (`fleet seed demo`, the API, the
gateways, the ingest worker with the rules, both simulators) runs with its clock pinned to
Saturday 2026-12-05 10:00 in Hangzhou, the browser's clock too, and the dispatcher's desk shows the
demo's named roads, vehicles driving on them, orders waiting for a vehicle, and alerts arriving.

No FLEET_MAP_CENTER is given: the desk opens where the fleet is, as it does for `make run`.
One departure from `make run`: driving without an order raises its alert after 150 m and 15 s
rather than 500 m and 60 s, so the first alerts arrive within a minute of the simulators starting
(the thresholds themselves are the rules' tests' business).
Screenshots land in var/screenshots/."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from redis import Redis
from sqlalchemy import Engine, create_engine, text

from fleet import migrate
from fleet.settings import Settings
from telematics import roads
from tests.clock import SATURDAY, faketime
from tests.support import free_port, wait_healthy, wait_port
from tests.web.conftest import DEMO_ROADS, SCREENSHOTS, sign_in, watched

pytestmark = pytest.mark.slow

REDIS_DB = 9  # the page stacks use 10-14, the suite 15
NEAR_ROAD_M = 30


@dataclass
class DemoDay:
    url: str
    engine: Engine
    offset_s: float  # the stack's clock minus the wall clock
    outside: list[str]
    console: list[str]


def _run(command: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def demo_day(scratch_settings: Settings) -> Iterator[DemoDay]:
    settings = scratch_settings.model_copy(
        update={"redis_url": scratch_settings.redis_url.rsplit("/", 1)[0] + f"/{REDIS_DB}"}
    )
    migrate.upgrade(settings)
    engine = create_engine(settings.database_url)
    owner = create_engine(settings.owner_database)
    roads.import_pbf(owner, DEMO_ROADS)  # the owner's work, as `fleet roads import` does it
    owner.dispose()
    pinned = faketime(SATURDAY)
    offset = SATURDAY.timestamp() - time.time()
    ports = {name: free_port() for name in ("http", "jt808", "osmand")}
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("FLEET_MAP_CENTER", "FLEET_MAP_ZOOM")
    } | {
        "FLEET_DATABASE_URL": settings.database_url,
        "FLEET_REDIS_URL": settings.redis_url,
        "FLEET_ENVIRONMENT": "test",
        "FLEET_HTTP_HOST": "127.0.0.1",
        "FLEET_HTTP_PORT": str(ports["http"]),
        "FLEET_JT808_PORT": str(ports["jt808"]),
        "FLEET_OSMAND_PORT": str(ports["osmand"]),
        "FLEET_WORKER_NICE": "0",
        "FLEET_MOVEMENT_MIN_DISTANCE_M": "150",
        "FLEET_MOVEMENT_MIN_DURATION_S": "15",
    }
    redis = Redis.from_url(settings.redis_url)
    redis.flushdb()
    out = _run([*pinned, sys.executable, "-m", "app.cli", "seed", "demo"], env)
    assert "5 orders" in out, out
    fleet = [*pinned, sys.executable, "-m", "app.cli"]
    processes = {
        "serve": ["serve"],
        "gateway": ["gateway"],
        "worker": ["worker"],
        "sim-jt808": ["simulate", "--protocol", "jt808", "--vehicles", "100", "--interval", "1"],
        "sim-osmand": ["simulate", "--protocol", "osmand", "--vehicles", "100", "--interval", "2"],
    }
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    logs = {name: (SCREENSHOTS / f"demo-day-{name}.log").open("wb") for name in processes}
    children = []
    try:
        for name, args in processes.items():
            # A session of its own: faketime runs the process as its child, so the whole group
            # is stopped, not only faketime (a stray simulator would feed every later stack).
            children.append(
                subprocess.Popen(
                    [*fleet, *args],
                    env=env,
                    stdout=logs[name],
                    stderr=logs[name],
                    start_new_session=True,
                )
            )
            if name == "gateway":
                wait_port(ports["osmand"], children, "var/screenshots/demo-day-gateway.log")
        url = f"http://127.0.0.1:{ports['http']}"
        wait_healthy(url, children, "var/screenshots/demo-day-*")
        yield DemoDay(url, engine, offset, [], [])
    finally:
        for child in children:
            _signal_group(child, signal.SIGTERM)
        for child in children:
            try:
                child.wait(timeout=20)
            except subprocess.TimeoutExpired:
                _signal_group(child, signal.SIGKILL)
            _wait_group_gone(child.pid)
        for log in logs.values():
            log.close()
        redis.flushdb()
        redis.close()
        engine.dispose()


def _signal_group(child: subprocess.Popen[bytes], signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pid, signum)


def _wait_group_gone(group: int) -> None:
    """Until no process of the group is left (faketime's child outlives faketime by a moment)."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGKILL)


def _positions(page: Any) -> dict[int, tuple[float, float]]:
    """Every vehicle the desk draws in view, where it draws it (no GCJ-02 base map: WGS-84)."""
    features = page.evaluate(
        "[...new Set(window.fleetDesk.map.queryRenderedFeatures({layers: ['vehicles']})"
        ".map(f => f.properties.id))].map(id => [id, window.fleetDesk.feature(id).geometry"
        ".coordinates])"
    )
    return {int(id_): (lon, lat) for id_, (lon, lat) in features}


def _metres_to_road(engine: Engine, points: dict[int, tuple[float, float]]) -> dict[int, float]:
    if not points:
        return {}
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT p.id, (SELECT ST_Distance(r.geom::geography, p.g::geography) FROM road r"
                " ORDER BY r.geom <-> p.g LIMIT 1)"
                " FROM (SELECT (v->>0)::int AS id,"
                " ST_SetSRID(ST_MakePoint((v->>1)::float, (v->>2)::float), 4326) AS g"
                " FROM jsonb_array_elements(CAST(:points AS jsonb)) AS v) p"
            ),
            {"points": json.dumps([[i, lon, lat] for i, (lon, lat) in points.items()])},
        ).all()
    return {int(i): float(d) for i, d in rows}


def test_the_desk_on_a_saturday_shows_roads_cars_driving_on_them_orders_and_alerts(
    browser: Any, demo_day: DemoDay
) -> None:
    with watched(browser, demo_day, "demo-day") as context:
        # The page's clock is the stack's: Saturday, running on from the pinned instant.
        context.clock.set_fixed_time(time.time() + demo_day.offset_s)
        page = context.new_page()
        sign_in(page, demo_day, "dispatcher")
        page.wait_for_url("**/desk")
        page.wait_for_function("window.fleetDesk && window.fleetDesk.ready", timeout=30_000)
        # Named roads of the imported network, drawn in the viewport.
        page.wait_for_function(
            "window.fleetDesk.map.loaded() && window.fleetDesk.map.queryRenderedFeatures("
            "{layers: ['roads']}).filter(f => f.properties.name).length > 10",
            timeout=30_000,
        )
        names = page.evaluate(
            "[...new Set(window.fleetDesk.map.queryRenderedFeatures({layers: ['roads']})"
            ".map(f => f.properties.name).filter(Boolean))]"
        )
        with demo_day.engine.connect() as conn:
            imported = set(conn.scalars(text("SELECT DISTINCT name FROM road")))
        assert len(set(names) & imported) >= 5, names
        # ... and their names written along them.
        page.wait_for_function(
            "window.fleetDesk.map.queryRenderedFeatures({layers: ['road-labels']}).length > 0",
            timeout=30_000,
        )
        # Orders waiting for a vehicle, with the plan to accept.
        page.locator("#orders button.order").first.wait_for(timeout=30_000)
        assert page.is_hidden("#orders-empty")
        with demo_day.engine.connect() as conn:
            waiting = conn.scalar(text("SELECT count(*) FROM trip_order WHERE status = 'approved'"))
        assert page.locator("#orders button.order").count() == waiting == 2
        # Cars on the roads, driving: the same car drawn twice, apart, each time by a road.
        page.wait_for_function(
            "window.fleetDesk.map.queryRenderedFeatures({layers: ['vehicles']}).length >= 10",
            timeout=60_000,
        )
        first = _positions(page)
        page.wait_for_timeout(6_000)
        second = _positions(page)
        near_first = _metres_to_road(demo_day.engine, first)
        near_second = _metres_to_road(demo_day.engine, second)
        moved = [
            vehicle
            for vehicle, (lon, lat) in second.items()
            if vehicle in first
            and (abs(lon - first[vehicle][0]) + abs(lat - first[vehicle][1])) > 0.0002
            and near_first[vehicle] <= NEAR_ROAD_M
            and near_second[vehicle] <= NEAR_ROAD_M
        ]
        assert moved, (near_first, near_second)
        # Most cars are on a road or in their depot beside one, none far away.
        assert sum(d <= NEAR_ROAD_M for d in near_second.values()) >= 0.8 * len(near_second)
        # Cars driving on a Saturday without an approved order: alerts arrive on the desk.
        page.locator("#alerts li").first.wait_for(timeout=150_000)
        # The optimal plan pairs the waiting orders with cars.
        page.click("#plan-button")
        page.locator(".plan-pair").first.wait_for(timeout=30_000)
        # One picture of the desk with its alerts and the plan (a screenshot of the live map takes
        # tens of seconds of software rendering, so there is only the one).
        page.screenshot(path=str(SCREENSHOTS / "demo-day-plan.png"), timeout=90_000)
