"""Telematics tests that need real commits run on the module's scratch database."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session

from fleet import migrate, registry
from fleet.auth import Actor
from fleet.db import make_engine
from fleet.redis_client import RedisClient
from fleet.schemas import DeviceCreate
from fleet.settings import Settings
from telematics.fix import Fix
from telematics.settings import TelematicsSettings
from telematics.stream import Target
from tests.factories import add_vehicle


@dataclass
class Fleetlet:
    engine: Engine
    settings: Settings
    targets: list[Target]
    unit_id: int


@pytest.fixture(scope="module")
def fleetlet(scratch_settings: Settings) -> Iterator[Fleetlet]:
    """A committed root unit with three vehicles, each with an OsmAnd and a JT/T 808 device."""
    migrate.upgrade(scratch_settings)
    engine = make_engine(scratch_settings, pool_size=4)
    targets = []
    with Session(engine) as session, session.begin():
        root = registry.create_root_unit(session=session, code="TEL", name="遥测测试")
        system = Actor.system(root)
        for n in range(3):
            vehicle = add_vehicle(session, root, f"浙A·D7000{n}", actor=system, energy="bev")
            device = registry.create_device(
                session=session,
                actor=system,
                data=DeviceCreate(
                    protocol="osmand", identifier=f"phone-{n}", vehicle_id=vehicle.id
                ),
            )
            registry.create_device(
                session=session,
                actor=system,
                data=DeviceCreate(
                    protocol="jt808", identifier=f"01390000000{n}", vehicle_id=vehicle.id
                ),
            )
            targets.append(Target(device_id=device.id, vehicle_id=vehicle.id, unit_id=root.id))
        unit_id = root.id
    yield Fleetlet(engine, scratch_settings, targets, unit_id)
    engine.dispose()


@pytest.fixture
def clean_tracks(fleetlet: Fleetlet) -> None:
    owner = create_engine(fleetlet.settings.owner_database)  # the processes' role cannot TRUNCATE
    with owner.begin() as conn:
        conn.execute(text("TRUNCATE position, trip, stop, unknown_device, cost_record CASCADE"))
    owner.dispose()


@pytest.fixture
def tsettings() -> TelematicsSettings:
    return TelematicsSettings(
        stream_shards=4, ingest_claim_idle_s=0.5, ingest_batch_entries=50, ingest_linger_ms=20
    )


@pytest.fixture
def sync_redis(redis: RedisClient) -> RedisClient:
    return redis


def drive(
    identifier: str, start: datetime, n: int, *, step_s: float = 10.0, lat0: float = 30.25
) -> list[Fix]:
    """`n` fixes heading north at ~40 km/h, one every `step_s` seconds."""
    return [
        Fix(
            device_identifier=identifier,
            fix_time=start + timedelta(seconds=i * step_s),
            lat=lat0 + i * 0.001,
            lon=120.2,
            speed_kmh=40.0,
            heading_deg=0.0,
            ignition=True,
            odometer_km=1000 + i * 0.111,
            attributes={"sat": 9, "x_e1": "0a0b"},
            valid=True,
        )
        for i in range(n)
    ]


T0 = datetime(2026, 11, 20, 1, 0, tzinfo=UTC)


def a_day_after_t0() -> float:
    """The ingest worker's clock (epoch seconds) in tests that replay tracks dated from T0: their
    fixes stay inside the allowed time window whatever day the tests run."""
    return (T0 + timedelta(days=1)).timestamp()
