"""Vehicles that should not move, through the ingest pipeline (Redis stream -> PostGIS -> the
engine -> the one alert writer): a sealed vehicle's drive is one critical episode, a vehicle in
maintenance raises one outside its workshop fence and none inside, and a status changed while
the worker runs is followed."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from fleet import registry
from fleet.auth import Actor
from fleet.models import OrgUnit
from fleet.redis_client import RedisClient
from fleet.schemas import VehicleUpdate
from geofence.replay import replay
from geofence.settings import GeofenceSettings
from geofence.worker import GeofenceObserver
from telematics import stream
from telematics.ingest import IngestWorker
from telematics.settings import TelematicsSettings
from tests.factories import add_circle
from tests.telematics.conftest import Fleetlet, drive
from tests.telematics.test_ingest import drain, make_worker, push

# Friday 2026-11-20, 10:00 in Beijing: working time, when a car in use driving without an
# order would be `no_order` (so its absence below says the status rules took its place).
T0 = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
WORKSHOP = (120.2, 30.26)  # (lon, lat): a 3 km circle holds a drive north from 30.25 of 2 km
OUT_THERE = 30.40  # where the car in maintenance outside the workshop drives from


def _clear(fleetlet: Fleetlet) -> None:
    owner = create_engine(fleetlet.settings.owner_database)  # the processes' role cannot TRUNCATE
    with owner.begin() as conn:
        conn.execute(text("TRUNCATE alert_review, alert, fence RESTART IDENTITY CASCADE"))
    owner.dispose()


def set_status(
    fleetlet: Fleetlet, vehicle: int, status: str, at: datetime = T0 - timedelta(days=1)
) -> None:
    """Through the registry's service, as an administrator's PATCH would (audited), `at` the
    time of the change (by default the day before the drives below)."""
    with Session(fleetlet.engine) as session, session.begin():
        root = session.get(OrgUnit, fleetlet.unit_id)
        assert root is not None
        registry.update_vehicle(
            session=session,
            actor=Actor.system(root),
            vehicle_id=fleetlet.targets[vehicle].vehicle_id,
            data=VehicleUpdate(status=status),
            now=at,
        )


@pytest.fixture
def workshop(fleetlet: Fleetlet) -> Iterator[int]:
    _clear(fleetlet)
    with Session(fleetlet.engine) as session, session.begin():
        root = session.get(OrgUnit, fleetlet.unit_id)
        assert root is not None
        fence_id = add_circle(session, root, "定点维修厂", "workshop", WORKSHOP, 3000).id
    yield fence_id
    _clear(fleetlet)
    for vehicle in range(len(fleetlet.targets)):
        set_status(fleetlet, vehicle, "active")


def worker(fleetlet: Fleetlet, redis: RedisClient, tsettings: TelematicsSettings) -> IngestWorker:
    observer = GeofenceObserver(
        engine=fleetlet.engine,
        redis=redis,
        # looks for changes on every batch: the test changes a status between two
        settings=GeofenceSettings(engine_refresh_s=1e-9),
        zone=ZoneInfo("Asia/Shanghai"),
    )
    return make_worker(
        fleetlet,
        redis,
        tsettings,
        observers=[observer],
        clock=lambda: (T0 + timedelta(days=1)).timestamp(),
    )


def rows(fleetlet: Fleetlet, vehicle: int, n: int, *, start: datetime = T0, lat0: float = 30.25):
    """`n` fixes of the vehicle's phone heading north at 40 km/h, one every 10 s."""
    target = fleetlet.targets[vehicle]
    fixes = drive(f"phone-{vehicle}", start, n, lat0=lat0)
    return [stream.to_row(f, target, stream.now_ms()) for f in fixes]


def alerts(fleetlet: Fleetlet) -> list[tuple]:
    with fleetlet.engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                text(
                    "SELECT vehicle_id, kind, severity, started_at, review FROM alert"
                    " ORDER BY vehicle_id, kind, started_at"
                )
            )
        ]


@pytest.mark.usefixtures("clean_tracks")
def test_sealed_and_maintenance_vehicles_moving_raise_one_episode_each(
    fleetlet, redis, tsettings, workshop
):
    sealed, outside = (t.vehicle_id for t in fleetlet.targets[:2])
    set_status(fleetlet, 0, "sealed")
    set_status(fleetlet, 1, "maintenance")
    set_status(fleetlet, 2, "maintenance")
    # 3 minutes and 2 km each, fed in several batches: each still one episode
    pushed = rows(fleetlet, 0, 20) + rows(fleetlet, 1, 20, lat0=OUT_THERE) + rows(fleetlet, 2, 20)
    push(redis, pushed, tsettings.stream_shards)
    drain(worker(fleetlet, redis, tsettings))
    assert alerts(fleetlet) == [
        (sealed, "sealed_vehicle_moving", "critical", T0, "pending"),
        (outside, "maintenance_vehicle_moving", "high", T0, "pending"),
    ]
    # the later fixes of the same drive continue those episodes
    more = rows(fleetlet, 0, 30) + rows(fleetlet, 1, 30, lat0=OUT_THERE) + rows(fleetlet, 2, 30)
    push(redis, more[20:30] + more[50:60] + more[80:90], tsettings.stream_shards)
    drain(worker(fleetlet, redis, tsettings))
    assert [a[:4] for a in alerts(fleetlet)] == [
        (sealed, "sealed_vehicle_moving", "critical", T0),
        (outside, "maintenance_vehicle_moving", "high", T0),
    ]


@pytest.mark.usefixtures("clean_tracks")
def test_a_vehicle_sealed_while_the_worker_runs_is_watched_from_then_on(
    fleetlet, redis, tsettings, workshop
):
    vehicle = fleetlet.targets[0].vehicle_id
    running = worker(fleetlet, redis, tsettings)
    push(redis, rows(fleetlet, 0, 20), tsettings.stream_shards)
    drain(running)
    assert [a[1] for a in alerts(fleetlet)] == ["no_order"]  # in use: driving without an order
    later = T0 + timedelta(seconds=200)  # the drive goes on, the car now sealed
    set_status(fleetlet, 0, "sealed", at=later)
    push(redis, rows(fleetlet, 0, 20, start=later, lat0=30.27), tsettings.stream_shards)
    drain(running)
    assert alerts(fleetlet)[1:] == [
        (vehicle, "sealed_vehicle_moving", "critical", later, "pending"),
    ]


@pytest.mark.usefixtures("clean_tracks")
def test_a_replay_after_the_seal_judges_the_earlier_drive_as_in_use(
    fleetlet, redis, tsettings, workshop
):
    """The car drove while in use (a `no_order`), was sealed the day after; a replay of the
    drive's period, run then, raises that `no_order` again and no `sealed_vehicle_moving`."""
    vehicle = fleetlet.targets[0].vehicle_id
    push(redis, rows(fleetlet, 0, 20), tsettings.stream_shards)
    drain(worker(fleetlet, redis, tsettings))
    live = alerts(fleetlet)
    assert live == [(vehicle, "no_order", "medium", T0, "pending")]
    set_status(fleetlet, 0, "sealed", at=T0 + timedelta(days=1))
    report = replay(
        engine=fleetlet.engine,
        settings=GeofenceSettings(),
        zone=ZoneInfo("Asia/Shanghai"),
        start=T0 - timedelta(hours=1),
        end=T0 + timedelta(hours=1),
        write=True,
    )
    assert [(r.vehicle_id, r.event.kind, r.event.started_t) for r in report.alerts] == [
        (vehicle, "no_order", T0.timestamp())
    ]
    assert report.new == 0
    assert alerts(fleetlet) == live
