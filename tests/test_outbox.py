"""The outbox: every change other systems hear of leaves an event in its own transaction, through
the audited write (registry, orders, costs, reviews) or the trigger on `alert` (the geofence
worker's raw SQL), and none for a change rolled back or a read."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from sqlalchemy import select
from sqlalchemy.orm import Session

from costs import service as costs
from costs.schemas import CostIn
from dispatch import service as dispatch
from dispatch.schemas import Comment, OrderCreate
from dispatch.settings import DispatchSettings
from fleet import access, outbox, registry
from fleet.auth import Actor
from fleet.models import OrgUnit, OutboxEvent, Role
from fleet.schemas import VehicleUpdate
from geofence import service as geofence
from geofence import store
from geofence.engine import AlertRecord
from geofence.rules.base import Event
from geofence.schemas import ReviewIn
from geofence.settings import GeofenceSettings
from tests.dispatch.conftest import tomorrow
from tests.factories import add_vehicle

ZONE = ZoneInfo("Asia/Shanghai")
ENTERED = datetime(2026, 3, 17, 9, tzinfo=ZONE)


def events_after(db: Session, mark: int) -> list[OutboxEvent]:
    return list(db.scalars(select(OutboxEvent).where(OutboxEvent.id > mark).order_by("id")))


def newest(db: Session) -> int:
    return db.scalar(select(OutboxEvent.id).order_by(OutboxEvent.id.desc()).limit(1)) or 0


def test_registry_changes_give_events_of_their_unit(db: Session, make_unit):
    unit = make_unit("OB-A")
    mark = newest(db)
    vehicle = add_vehicle(db, unit, "浙A·B5001")
    registry.update_vehicle(
        session=db,
        actor=Actor.system(unit),
        vehicle_id=vehicle.id,
        data=VehicleUpdate(seats=5),
        now=ENTERED,
    )
    found = events_after(db, mark)
    assert [(e.kind, e.unit_code, e.object_type, e.payload["action"]) for e in found] == [
        ("registry", "OB-A", "vehicle", "create"),
        ("registry", "OB-A", "vehicle", "update"),
    ]
    assert found[1].payload["id"] == vehicle.id
    assert found[1].payload["state"]["seats"] == 5
    envelope = outbox.envelope(found[1])
    assert envelope["version"] == 1
    assert envelope["id"] == found[1].id
    assert envelope["object"]["type"] == "vehicle"


def test_a_new_unit_is_an_event_of_itself(db: Session, make_unit):
    mark = newest(db)
    unit = make_unit("OB-NEW")
    [event] = events_after(db, mark)
    assert (event.kind, event.unit_code, event.unit_id) == ("registry", "OB-NEW", unit.id)


def test_a_rolled_back_change_leaves_no_event(db: Session, make_unit):
    unit = make_unit("OB-RB")
    mark = newest(db)
    savepoint = db.begin_nested()
    add_vehicle(db, unit, "浙A·B5002")
    savepoint.rollback()
    assert events_after(db, mark) == []


def test_a_read_leaves_no_event(db: Session, make_unit):
    unit = make_unit("OB-RD")
    vehicle = add_vehicle(db, unit, "浙A·B5003")
    mark = newest(db)
    access.record(
        session=db,
        actor=Actor.system(unit),
        client="test",
        action=access.READ,
        entity="vehicle",
        entity_id=vehicle.id,
        what="vehicle file",
    )
    assert events_after(db, mark) == []


def test_an_order_and_its_moves_give_order_events(db: Session, make_unit, make_user):
    unit = make_unit("OB-ORD")
    user = make_user("ob-asker", unit, Role.REQUESTER)
    asker = Actor(user.id, user.username, unit.id, unit.path, frozenset({Role.REQUESTER}))
    add_vehicle(db, unit, "浙A·B5006")
    mark = newest(db)
    order = dispatch.create_order(
        session=db,
        actor=asker,
        data=OrderCreate(
            purpose="检查",
            passengers=2,
            start_at=tomorrow(1),
            end_at=tomorrow(3),
            origin={"type": "Point", "coordinates": [120.20, 30.25]},
            origin_name="单位",
            destinations=[
                {"point": {"type": "Point", "coordinates": [120.20, 30.35]}, "name": "北边"}
            ],
        ),
        settings=DispatchSettings(),
    )
    dispatch.cancel(session=db, actor=asker, order_id=order.id, data=Comment())
    found = events_after(db, mark)
    assert [(e.kind, e.unit_code, e.payload["action"]) for e in found] == [
        ("orders", "OB-ORD", "create"),
        ("orders", "OB-ORD", "cancel"),
    ]
    assert found[1].payload["state"]["status"] == "cancelled"


def _alert(vehicle_id: int, unit_id: int, ended_t: float | None) -> AlertRecord:
    event = Event(
        kind="overspeed",
        key="",
        started_t=1_780_000_000.0,
        last_t=1_780_000_060.0,
        ended_t=ended_t,
        severity="high",
        lat=30.25,
        lon=120.2,
        measured={"speed_kmh": 130},
    )
    return AlertRecord(vehicle_id, unit_id, None, None, event, {})


def test_alerts_written_by_raw_sql_give_an_event_when_opened_and_when_ended(db: Session, make_unit):
    unit = make_unit("OB-AL")
    vehicle = add_vehicle(db, unit, "浙A·B5004")
    db.commit()
    mark = newest(db)
    conn: psycopg.Connection[Any] = db.connection().connection.driver_connection  # type: ignore[assignment]
    store.upsert_alerts(conn, [_alert(vehicle.id, unit.id, None)])
    store.upsert_alerts(conn, [_alert(vehicle.id, unit.id, None)])  # the episode goes on
    store.upsert_alerts(conn, [_alert(vehicle.id, unit.id, 1_780_000_060.0)])
    found = events_after(db, mark)
    assert [(e.kind, e.unit_code, e.payload["action"]) for e in found] == [
        ("alerts", "OB-AL", "open"),
        ("alerts", "OB-AL", "end"),
    ]
    state = found[0].payload["state"]
    assert (state["vehicle_id"], state["kind"], state["lat"]) == (vehicle.id, "overspeed", 30.25)
    assert found[0].object_id == found[1].object_id


def test_an_alert_review_is_an_alert_event(db: Session, make_unit, root_unit: OrgUnit):
    unit = make_unit("OB-RV")
    vehicle = add_vehicle(db, unit, "浙A·B5005")
    [alert_id] = store.write(db, [_alert(vehicle.id, unit.id, None)])
    mark = newest(db)
    geofence.review_alert(
        session=db,
        actor=Actor.system(root_unit),
        alert_id=alert_id,
        data=ReviewIn(decision="confirmed"),
    )
    [event] = events_after(db, mark)
    assert (event.kind, event.unit_code, event.object_id) == ("alerts", "OB-RV", str(alert_id))
    assert event.payload["action"] == "review"
    assert event.payload["state"]["review"] == "confirmed"


def test_a_cost_record_is_a_costs_event(db: Session, make_unit, root_unit: OrgUnit):
    unit = make_unit("OB-CO")
    vehicle = add_vehicle(db, unit, "浙A·B5007")
    mark = newest(db)
    record, _ = costs.create(
        session=db,
        actor=Actor.system(root_unit),
        data=CostIn(kind="parking", vehicle_id=vehicle.id, at=ENTERED, amount=Decimal("12.00")),
        setup=costs.CheckSetup(
            settings=DispatchSettings(),
            calendar=geofence.working_calendar(session=db, settings=GeofenceSettings()),
            zone=ZONE,
        ),
        now=ENTERED,
    )
    found = [e for e in events_after(db, mark) if e.kind == "costs"]
    assert [(e.unit_code, e.object_type, e.object_id) for e in found] == [
        ("OB-CO", "cost_record", str(record.id))
    ]
    assert found[0].payload["state"]["amount"] == 12.0
    assert found[0].payload["actor"] == "system"


def test_a_deleted_unit_is_told_with_its_code(db: Session, make_unit, root_unit: OrgUnit):
    unit = make_unit("OB-GONE")
    mark = newest(db)
    registry.delete_unit(session=db, actor=Actor.system(root_unit), unit_id=unit.id)
    [event] = events_after(db, mark)
    assert (event.unit_code, event.payload["action"]) == ("OB-GONE", "delete")
