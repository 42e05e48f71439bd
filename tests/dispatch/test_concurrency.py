"""Assignment against the database itself, with real concurrent connections, and the permits it
gives the geofence engine."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from redis import Redis
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from dispatch import service
from dispatch.permits import OrderPermits
from dispatch.schemas import AssignIn, Comment, OrderCreate
from dispatch.settings import DispatchSettings
from fleet import migrate, registry
from fleet.auth import Actor
from fleet.db import make_engine
from fleet.errors import Conflict
from fleet.models import Role
from fleet.schemas import UserCreate
from fleet.settings import Settings
from geofence.calendar import LocalClock, WorkingCalendar
from geofence.engine import Engine as RuleEngine
from geofence.fences import FenceSet, VehicleInfo
from geofence.rules.base import Fix, Thresholds
from tests.dispatch.conftest import order_json, tomorrow
from tests.factories import add_driver, add_vehicle

SETTINGS = DispatchSettings()


@pytest.fixture(scope="module")
def world(scratch_settings: Settings) -> Iterator[dict[str, Any]]:
    migrate.upgrade(scratch_settings)
    engine = make_engine(scratch_settings, pool_size=6)
    with Session(engine) as session, session.begin():
        root = registry.create_root_unit(session=session, code="DSP", name="调度测试")
        system = Actor.system(root)
        vehicle = add_vehicle(session, root, "浙A·D20001", actor=system, energy="bev")
        drivers = [add_driver(session, root, f"司机{n}", actor=system).id for n in range(2)]
        asker = registry.create_user(
            session=session,
            actor=None,
            data=UserCreate(
                username="dsp-asker",
                password="correct-horse-9",
                roles=["requester"],
                unit_id=root.id,
            ),
        )
        requester = Actor(asker.id, "dsp-asker", root.id, root.path, frozenset({Role.REQUESTER}))
        boss = Actor(
            None, "dsp-boss", root.id, root.path, frozenset({Role.APPROVER, Role.DISPATCHER})
        )
        ids = {"vehicle": vehicle.id, "drivers": drivers, "unit": root.id}
    redis = Redis.from_url(scratch_settings.redis_url)
    yield {
        "engine": engine,
        "requester": requester,
        "boss": boss,
        "redis": redis,
        "settings": scratch_settings,
        **ids,
    }
    redis.close()
    engine.dispose()


def approved(world: dict[str, Any], start_hour: int, end_hour: int) -> int:
    with Session(world["engine"]) as session, session.begin():
        order = service.create_order(
            session=session,
            actor=world["requester"],
            data=OrderCreate(
                purpose="检查",
                passengers=2,
                start_at=tomorrow(start_hour),
                end_at=tomorrow(end_hour),
                origin={"type": "Point", "coordinates": [120.20, 30.25]},
                origin_name="单位",
                destinations=[
                    {"point": {"type": "Point", "coordinates": [120.20, 30.35]}, "name": "北边"}
                ],
            ),
            settings=SETTINGS,
        )
        service.submit(
            session=session,
            actor=world["requester"],
            order_id=order.id,
            zone=ZoneInfo("Asia/Shanghai"),
            night=(22 * 3600, 6 * 3600),
        )
        service.decide(
            session=session,
            actor=world["boss"],
            order_id=order.id,
            approve=True,
            data=Comment(),
            distinct_deciders=True,
        )
        return order.id


@pytest.fixture(autouse=True)
def clean(world: dict[str, Any]) -> Iterator[None]:
    yield
    with world["engine"].begin() as conn:
        conn.execute(text("UPDATE assignment SET active = false"))


def test_two_dispatchers_racing_for_one_vehicle_exactly_one_wins(world):
    orders = [approved(world, 1, 4), approved(world, 2, 6)]
    barrier = threading.Barrier(2)
    results: dict[int, str] = {}

    def race(n: int) -> None:
        engine: Engine = world["engine"]
        with Session(engine) as session:
            try:
                with session.begin():
                    barrier.wait(timeout=10)
                    service.assign(
                        session=session,
                        actor=world["boss"],
                        order_id=orders[n],
                        data=AssignIn(
                            vehicle_id=world["vehicle"],
                            driver_id=world["drivers"][n],
                            reason="测试",
                        ),
                        redis=world["redis"],
                        settings=SETTINGS,
                    )
                results[n] = "assigned"
            except Conflict as error:
                results[n] = f"409 {error.message}"

    threads = [threading.Thread(target=race, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(r.split()[0] for r in results.values()) == ["409", "assigned"], results
    with world["engine"].connect() as conn:
        held = conn.execute(
            text("SELECT count(*) FROM assignment WHERE active AND vehicle_id = :v"),
            {"v": world["vehicle"]},
        ).scalar_one()
    assert held == 1


def test_permits_from_an_assignment_silence_no_order_for_that_drive_only(world):
    order_id = approved(world, 2, 4)
    with Session(world["engine"]) as session, session.begin():
        service.assign(
            session=session,
            actor=world["boss"],
            order_id=order_id,
            data=AssignIn(
                vehicle_id=world["vehicle"], driver_id=world["drivers"][0], reason="测试"
            ),
            settings=SETTINGS,
            redis=world["redis"],
        )
    start = tomorrow(2).timestamp()
    drive = [Fix(start + 10 * i, 30.25 + i * 0.0005, 120.20, 40.0, True) for i in range(120)]
    permits = OrderPermits(world["engine"])
    found = permits.permits([world["vehicle"]], start, start + 1200)[world["vehicle"]]
    assert [p.order_id for p in found] == [order_id]
    assert (
        found[0].start_t == (tomorrow(2) - timedelta(minutes=SETTINGS.turnaround_min)).timestamp()
    )
    car = VehicleInfo(id=world["vehicle"], unit_id=world["unit"], unit_path="", category="general")
    calendar = WorkingCalendar(
        days=dict.fromkeys(range(15_000, 30_000), True), default_hours=(0, 86_400)
    )

    def kinds(source) -> set[str]:
        engine = RuleEngine(
            fences=FenceSet([]),
            calendar=calendar,
            clock=LocalClock(ZoneInfo("Asia/Shanghai")),
            thresholds=Thresholds(),
            permits=source,
        )
        outcome = engine.run({car.id: drive}, {}, {car.id: car})
        return {a.event.kind for a in outcome.alerts}

    from geofence.permits import NO_PERMITS

    assert "no_order" not in kinds(permits)
    assert "no_order" in kinds(NO_PERMITS)
    with Session(world["engine"]) as session, session.begin():
        service.cancel(session=session, actor=world["boss"], order_id=order_id, data=Comment())
    assert permits.permits([world["vehicle"]], start, start + 1200) == {}


def test_order_changes_reach_the_requesters_phone_after_the_commit_only(world):
    from fastapi.testclient import TestClient

    from web.app import create_app

    with Session(world["engine"]) as session, session.begin():
        if not session.scalar(text("SELECT 1 FROM user_account WHERE username = 'dsp-other'")):
            registry.create_user(
                session=session,
                actor=None,
                data=UserCreate(
                    username="dsp-other",
                    password="correct-horse-9",
                    roles=["requester"],
                    unit_id=world["unit"],
                ),
            )

    def token(api: TestClient, username: str) -> str:
        reply = api.post(
            "/api/v1/auth/token", data={"username": username, "password": "correct-horse-9"}
        )
        return reply.json()["access_token"]

    api = TestClient(create_app(world["settings"], live_keepalive_s=0.2))
    with api:
        mine, theirs = token(api, "dsp-asker"), token(api, "dsp-other")
        headers = {"Authorization": f"Bearer {mine}"}
        with (
            api.websocket_connect(f"/ws/live?token={mine}") as phone,
            api.websocket_connect(f"/ws/live?token={theirs}") as other,
        ):
            assert phone.receive_json() == {"type": "snapshot", "items": []}  # no positions
            assert other.receive_json()["type"] == "snapshot"
            body = order_json(start_at=tomorrow(9).isoformat(), end_at=tomorrow(10).isoformat())
            order_id = api.post("/api/v1/orders", json=body, headers=headers).json()["id"]
            api.post(f"/api/v1/orders/{order_id}/submit", headers=headers)
            seen: list[dict] = []
            for _ in range(10):
                message = phone.receive_json()
                if message["type"] == "orders":
                    seen += message["items"]
                    if any(i["status"] == "submitted" for i in seen):
                        break
            assert {(i["id"], i["status"]) for i in seen} >= {(order_id, "submitted")}
            assert all(other.receive_json()["type"] == "keepalive" for _ in range(3))


def test_a_rolled_back_change_is_never_announced(world):
    from fleet import events
    from fleet.db import make_session_factory

    factory = make_session_factory(world["engine"])
    events.install(factory, world["redis"])
    pubsub = world["redis"].pubsub()
    pubsub.subscribe("fleet:test-announce")
    pubsub.get_message(timeout=1)
    with factory() as session:
        events.announce(session, "fleet:test-announce", {"n": 1})
        session.rollback()
        events.announce(session, "fleet:test-announce", {"n": 2})
        session.commit()
    message = pubsub.get_message(timeout=2)
    assert message is not None
    assert message["data"] == b'{"n": 2}'
    assert pubsub.get_message(timeout=0.5) is None
    pubsub.close()
