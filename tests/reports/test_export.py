"""The bulk export: each kind in each format holds exactly the rows written here (read back
independently of the export's SQL), only the caller's units, and the cursor hands out on the next
pull exactly what changed after the last one."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pyarrow.parquet as pq
import pytest
import shapely
from fastapi.testclient import TestClient
from geoalchemy2.shape import from_shape
from shapely.geometry import LineString, Point
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from costs.models import CostRecord
from dispatch.models import TripOrder
from fleet.api import get_now, get_stream_session
from fleet.auth import Actor
from fleet.models import AuditEntry, OrgUnit, Role, UserAccount, Vehicle
from geofence.models import Alert
from reports import export
from telematics.ingest import partition_sql
from telematics.models import Trip
from tests.factories import add_vehicle

MAY = datetime(2026, 5, 1, tzinfo=UTC)
JUNE = datetime(2026, 6, 1, tzinfo=UTC)
NOW = datetime(2026, 6, 10, 8, 0, tzinfo=UTC)
PERIOD = {"since": MAY.isoformat(), "until": JUNE.isoformat()}
FIXES = 30  # a vehicle's


@pytest.fixture
def world(
    client: TestClient,
    db: Session,
    root_unit: OrgUnit,
    make_unit: Callable[..., OrgUnit],
    make_user: Callable[..., UserAccount],
    login: Callable[[str], dict[str, str]],
) -> dict[str, Any]:
    """Two sibling units with a vehicle each, and their positions, trips, orders, alerts and
    costs in May (changed before NOW); a supervisor of the first unit."""
    ours, theirs = make_unit("T-OURS"), make_unit("T-THEIRS")
    system = Actor.system(root_unit)
    vehicles = {
        unit.id: add_vehicle(db, unit, f"浙A·E000{n}", actor=system)
        for n, unit in enumerate((ours, theirs))
    }
    requester = make_user("exp-req", ours)
    db.execute(text(partition_sql(MAY)))
    for n, vehicle in enumerate(vehicles.values()):
        _positions(db, vehicle, MAY + timedelta(days=2), received=MAY + timedelta(days=3), seed=n)
        for k in range(3):
            start = MAY + timedelta(days=5 + k, hours=n)
            _trip(db, vehicle, start)
            _order(db, requester, vehicle.unit_id, start, changed=NOW - timedelta(days=k + 1))
            _alert(db, vehicle, start, changed=NOW - timedelta(hours=k + 1))
            _cost(db, vehicle, start, Decimal("123.45") + k, changed=NOW - timedelta(minutes=30))
    # one of each kind outside the period: never in a May export
    _trip(db, vehicles[ours.id], JUNE + timedelta(days=1))
    _alert(db, vehicles[ours.id], JUNE + timedelta(days=1), changed=NOW - timedelta(hours=1))
    db.commit()
    make_user("exp-sup", ours, Role.SUPERVISOR)
    client.app.dependency_overrides[get_stream_session] = lambda: db  # type: ignore[attr-defined]
    client.app.dependency_overrides[get_now] = lambda: NOW  # type: ignore[attr-defined]
    return {
        "ours": ours,
        "theirs": theirs,
        "vehicle": vehicles[ours.id],
        "other": vehicles[theirs.id],
        "requester": requester,
        "headers": login("exp-sup"),
    }


def _positions(db: Session, vehicle: Vehicle, start: datetime, received: datetime, seed: int):
    """FIXES fixes a minute apart: every fifth without a position, every third with
    attributes, a REAL speed that float32 does not print as written."""
    db.execute(
        text(
            "INSERT INTO position (vehicle_id, fix_time, device_id, received_at, point,"
            " speed_kmh, attributes)"
            " SELECT :v, :start + k * interval '1 minute', 1, :received + k * interval '1 s',"
            " CASE WHEN k % 5 = 0 THEN NULL"
            "  ELSE ST_SetSRID(ST_MakePoint(120.1 + k * 0.001 + :seed, 30.2), 4326) END,"
            " k * 1.1, CASE WHEN k % 3 = 0 THEN jsonb_build_object('sat', k, 'note', '一') END"
            " FROM generate_series(0, :n - 1) k"
        ),
        {"v": vehicle.id, "start": start, "received": received, "n": FIXES, "seed": seed},
    )


def _trip(db: Session, vehicle: Vehicle, start: datetime) -> Trip:
    path = LineString([(120.0, 30.0), (120.05, 30.01), (120.1, 30.02)])
    trip = Trip(
        vehicle_id=vehicle.id,
        start_at=start,
        end_at=start + timedelta(minutes=40),
        start_point=from_shape(Point(path.coords[0]), srid=4326),
        end_point=from_shape(Point(path.coords[-1]), srid=4326),
        path=from_shape(path, srid=4326),
        distance_m=10_500.5,
        duration_s=2400.0,
    )
    db.add(trip)
    db.flush()
    return trip


def _order(
    db: Session, requester: UserAccount, unit_id: int, start: datetime, changed: datetime
) -> TripOrder:
    order = TripOrder(
        requester_id=requester.id,
        unit_id=unit_id,
        purpose='调研 "quoted", comma',
        passengers=2,
        start_at=start,
        end_at=start + timedelta(hours=2),
        origin=from_shape(Point(120.15, 30.25), srid=4326),
        origin_name="机关大院",
        destinations=[{"name": "西湖区", "lon": 120.1, "lat": 30.2}],
        created_at=changed - timedelta(days=1),
        updated_at=changed,
    )
    db.add(order)
    db.flush()
    return order


def _alert(db: Session, vehicle: Vehicle, start: datetime, changed: datetime) -> Alert:
    alert = Alert(
        kind="off_hours",
        key=start.isoformat(),
        severity="medium",
        vehicle_id=vehicle.id,
        unit_id=vehicle.unit_id,
        started_at=start,
        last_at=start,
        point=from_shape(Point(120.2, 30.3), srid=4326),
        measured={"speed_kmh": 88.5},
        review="pending",
        created_at=changed,
        updated_at=changed,
    )
    db.add(alert)
    db.flush()
    return alert


def _cost(db: Session, vehicle: Vehicle, at: datetime, amount: Decimal, changed: datetime):
    record = CostRecord(
        kind="fuel",
        vehicle_id=vehicle.id,
        unit_id=vehicle.unit_id,
        at=at,
        amount=amount,
        litres=30.5,
        created_at=changed,
        updated_at=changed,
    )
    db.add(record)
    db.flush()
    return record


def _get(client: TestClient, world: dict[str, Any], kind: str, **params: Any):
    return client.get(f"/api/v1/export/{kind}", params=params, headers=world["headers"])


def _csv(answer: Any) -> list[dict[str, str]]:
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "text/csv; charset=utf-8"
    assert not answer.content.startswith(b"\xef\xbb\xbf")  # plain UTF-8
    return list(csv.DictReader(io.StringIO(answer.content.decode())))


def _stored_positions(db: Session, vehicle_id: int) -> dict[tuple[int, str], tuple[Any, ...]]:
    """The vehicle's May fixes, read here with SQL of the test's own."""
    return {
        (r[0], r[1].isoformat()): tuple(r)
        for r in db.execute(
            text(
                "SELECT device_id, fix_time, received_at, ST_X(point), ST_Y(point), speed_kmh,"
                " attributes FROM position WHERE vehicle_id = :v"
            ),
            {"v": vehicle_id},
        )
    }


# ---- each kind, each format ----------------------------------------------------------------------


def test_positions_as_csv_hold_the_callers_fixes_exactly(client, db, world):
    rows = _csv(_get(client, world, "positions", **PERIOD))
    stored = _stored_positions(db, world["vehicle"].id)
    assert len(rows) == len(stored) == FIXES
    assert list(rows[0]) == [c.name for c in export.KINDS["positions"].columns]
    for row in rows:
        assert int(row["vehicle_id"]) == world["vehicle"].id
        _, _, received, lon, lat, speed, attributes = stored[
            (int(row["device_id"]), datetime.fromisoformat(row["fix_time"]).isoformat())
        ]
        assert datetime.fromisoformat(row["received_at"]) == received
        assert row["lon"] == ("" if lon is None else repr(lon))
        assert row["lat"] == ("" if lat is None else repr(lat))
        assert float(row["speed_kmh"]) == pytest.approx(speed, rel=1e-6)
        assert (json.loads(row["attributes"]) if row["attributes"] else None) == attributes


def test_positions_as_geoparquet_and_geojson_hold_the_same_fixes(client, db, world):
    stored = _stored_positions(db, world["vehicle"].id)
    answer = _get(client, world, "positions", format="parquet", **PERIOD)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/vnd.apache.parquet"
    table = pq.read_table(io.BytesIO(answer.content))
    assert json.loads(table.schema.metadata[b"geo"])["primary_column"] == "geometry"
    got = table.to_pylist()
    assert len(got) == FIXES
    for row in got:
        _, _, received, lon, lat, _, attributes = stored[(1, row["fix_time"].isoformat())]
        assert row["received_at"] == received
        if lon is None:
            assert row["geometry"] is None
            assert row["lon"] is None
        else:
            assert shapely.from_wkb(row["geometry"]).coords[0] == (lon, lat)
        assert (json.loads(row["attributes"]) if row["attributes"] else None) == attributes

    answer = _get(client, world, "positions", format="geojson", **PERIOD)
    assert answer.headers["content-type"] == "application/geo+json"
    collection = json.loads(answer.content)
    assert collection["type"] == "FeatureCollection"
    assert len(collection["features"]) == FIXES
    for feature in collection["features"]:
        props = feature["properties"]
        _, _, _, lon, lat, _, attributes = stored[(1, props["fix_time"])]
        expected = None if lon is None else {"type": "Point", "coordinates": [lon, lat]}
        assert feature["geometry"] == expected
        assert props["attributes"] == attributes
        assert "lon" not in props


def test_trips_orders_alerts_and_costs_as_csv_are_the_callers_rows_of_the_period(client, db, world):
    ours = world["ours"].id
    expected = {
        "trips": set(
            db.scalars(
                select(Trip.id).where(Trip.vehicle_id == world["vehicle"].id, Trip.start_at < JUNE)
            )
        ),
        "orders": set(db.scalars(select(TripOrder.id).where(TripOrder.unit_id == ours))),
        "alerts": set(
            db.scalars(select(Alert.id).where(Alert.unit_id == ours, Alert.started_at < JUNE))
        ),
        "costs": set(db.scalars(select(CostRecord.id).where(CostRecord.unit_id == ours))),
    }
    for kind, ids in expected.items():
        rows = _csv(_get(client, world, kind, **PERIOD))
        assert len(ids) == 3
        assert [int(r["id"]) for r in rows] == sorted(ids) or kind != "trips"
        assert {int(r["id"]) for r in rows} == ids, kind
        assert list(rows[0])[-1] == "geometry"
    trips = _csv(_get(client, world, "trips", **PERIOD))
    assert shapely.from_wkt(trips[0]["geometry"]).coords[:] == [
        (120.0, 30.0),
        (120.05, 30.01),
        (120.1, 30.02),
    ]
    assert float(trips[0]["distance_m"]) == 10_500.5
    orders = _csv(_get(client, world, "orders", **PERIOD))
    assert orders[0]["purpose"] == '调研 "quoted", comma'
    assert json.loads(orders[0]["destinations"]) == [{"name": "西湖区", "lon": 120.1, "lat": 30.2}]
    # oldest change first
    assert [r["updated_at"] for r in orders] == sorted(r["updated_at"] for r in orders)
    costs = _csv(_get(client, world, "costs", **PERIOD))
    assert sorted(r["amount"] for r in costs) == ["123.45", "124.45", "125.45"]


def test_alerts_as_geojson_and_costs_as_parquet(client, db, world):
    collection = json.loads(_get(client, world, "alerts", format="geojson", **PERIOD).content)
    alerts = db.scalars(
        select(Alert).where(Alert.unit_id == world["ours"].id, Alert.started_at < JUNE)
    ).all()
    assert {f["properties"]["id"] for f in collection["features"]} == {a.id for a in alerts}
    for feature in collection["features"]:
        assert feature["geometry"] == {"type": "Point", "coordinates": [120.2, 30.3]}
        assert feature["properties"]["measured"] == {"speed_kmh": 88.5}
        assert feature["properties"]["unit_id"] == world["ours"].id

    answer = _get(client, world, "costs", format="parquet", **PERIOD)
    table = pq.read_table(io.BytesIO(answer.content))
    assert sorted(table.column("amount").to_pylist()) == [
        Decimal("123.45"),
        Decimal("124.45"),
        Decimal("125.45"),
    ]
    assert set(table.column("unit_id").to_pylist()) == {world["ours"].id}
    assert table.column("geometry").to_pylist() == [None] * 3  # no station given


def test_an_empty_export_is_still_a_whole_file(client, world):
    empty = {"since": "2020-01-01T00:00:00Z", "until": "2020-02-01T00:00:00Z"}
    assert _csv(_get(client, world, "alerts", **empty)) == []
    assert json.loads(_get(client, world, "alerts", format="geojson", **empty).content) == {
        "type": "FeatureCollection",
        "features": [],
    }
    table = pq.read_table(
        io.BytesIO(_get(client, world, "trips", format="parquet", **empty).content)
    )
    assert table.num_rows == 0
    assert "geometry" in table.column_names


def test_rows_come_from_the_database_a_chunk_at_a_time(db, world):
    """The export never holds more than a chunk of rows: the server-side cursor is read in
    chunks of export.CHUNK, not all at once."""
    many = 2 * export.CHUNK + 7
    db.execute(
        text(
            "INSERT INTO position (vehicle_id, fix_time, device_id, received_at)"
            " SELECT :v, :start + k * interval '1 s', 2, :start FROM generate_series(1, :n) k"
        ),
        {"v": world["vehicle"].id, "start": MAY + timedelta(days=20), "n": many},
    )
    root = db.get(OrgUnit, world["ours"].parent_id)
    assert root is not None
    plan = export.plan(
        session=db,
        actor=Actor.system(root),
        kind="positions",
        format="csv",
        since=MAY,
        until=JUNE,
        unit_id=world["ours"].id,
        cursor=None,
        now=NOW,
        settle=timedelta(seconds=120),
    )
    sizes = [len(chunk) for chunk in export.rows(db, plan)]
    assert sum(sizes) == many + FIXES
    assert max(sizes) == export.CHUNK
    assert len(sizes) >= 3


# ---- scope ---------------------------------------------------------------------------------------


def test_another_units_rows_never_appear_and_its_unit_is_not_found(client, db, world):
    for kind in export.KINDS:
        rows = _csv(_get(client, world, kind, **PERIOD))
        assert rows
        for row in rows:
            if "unit_id" in row:
                assert int(row["unit_id"]) == world["ours"].id
            if "vehicle_id" in row:
                assert int(row["vehicle_id"]) == world["vehicle"].id
    refused = _get(client, world, "orders", unit_id=world["theirs"].id, **PERIOD)
    assert refused.status_code == 404


def test_unit_id_narrows_a_wider_scope(client, db, world, root_unit, make_user, login):
    make_user("exp-admin", root_unit, Role.ADMIN)
    headers = login("exp-admin")
    url = "/api/v1/export/costs"
    everyone = _csv(client.get(url, params=PERIOD, headers=headers))
    assert {int(r["unit_id"]) for r in everyone} == {world["ours"].id, world["theirs"].id}
    narrowed = _csv(
        client.get(url, params={**PERIOD, "unit_id": world["theirs"].id}, headers=headers)
    )
    assert {int(r["unit_id"]) for r in narrowed} == {world["theirs"].id}
    positions = _csv(
        client.get(
            "/api/v1/export/positions",
            params={**PERIOD, "unit_id": world["theirs"].id},
            headers=headers,
        )
    )
    assert {int(r["vehicle_id"]) for r in positions} == {world["other"].id}


def test_a_requester_may_not_export(client, world, login):
    answer = client.get("/api/v1/export/orders", params=PERIOD, headers=login("exp-req"))
    assert answer.status_code == 403


def test_an_export_is_recorded_with_its_period_format_and_cursor(client, db, world):
    answer = _get(client, world, "alerts", format="geojson", **PERIOD)
    assert answer.status_code == 200
    entry = db.scalars(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(1)).one()
    assert (entry.action, entry.entity, entry.entity_id) == ("export", "export", "alerts")
    assert entry.after["format"] == "geojson"
    assert entry.after["what"] == "alerts"
    assert entry.after["next_cursor"] == answer.headers["Fleet-Next-Cursor"]


# ---- the cursor ----------------------------------------------------------------------------------


def test_positions_cursor_hands_out_only_the_fixes_received_since(client, db, world):
    first = _get(client, world, "positions", **PERIOD)
    assert len(_csv(first)) == FIXES
    cursor = first.headers["Fleet-Next-Cursor"]
    # A late fix of early May, received after the first pull, and one not yet settled.
    later = NOW + timedelta(hours=1)
    _positions(db, world["vehicle"], MAY + timedelta(days=1), received=later, seed=0)
    client.app.dependency_overrides[get_now] = lambda: later + timedelta(seconds=120 + FIXES // 2)
    again = _get(client, world, "positions", cursor=cursor, **PERIOD)
    rows = _csv(again)
    # settled: received at least FLEET_EXPORT_SETTLE_S (120 s) before now; the rest next time
    settled = later + timedelta(seconds=FIXES // 2)
    sent = [later + timedelta(seconds=k) for k in range(FIXES)]
    received = sorted(datetime.fromisoformat(r["received_at"]) for r in rows)
    assert received == [at for at in sent if at < settled]
    assert len(received) == FIXES // 2
    assert all(r["fix_time"].startswith("2026-05-02") for r in rows)
    client.app.dependency_overrides[get_now] = lambda: later + timedelta(hours=1)
    rest = _csv(_get(client, world, "positions", cursor=again.headers["Fleet-Next-Cursor"]))
    assert sorted(datetime.fromisoformat(r["received_at"]) for r in rest) == [
        at for at in sent if at >= settled
    ]


def test_orders_cursor_hands_out_new_and_changed_orders(client, db, world):
    first = _get(client, world, "orders", **PERIOD)
    assert len(_csv(first)) == 3
    changed = db.scalars(
        select(TripOrder).where(TripOrder.unit_id == world["ours"].id).order_by(TripOrder.id)
    ).first()
    assert changed is not None
    changed.status = "cancelled"
    changed.updated_at = NOW + timedelta(minutes=5)
    added = _order(
        db,
        world["requester"],
        world["ours"].id,
        MAY + timedelta(days=20),
        NOW + timedelta(minutes=6),
    )
    _order(db, world["requester"], world["theirs"].id, MAY, NOW + timedelta(minutes=6))
    db.commit()
    client.app.dependency_overrides[get_now] = lambda: NOW + timedelta(hours=1)
    rows = _csv(_get(client, world, "orders", cursor=first.headers["Fleet-Next-Cursor"]))
    assert [(int(r["id"]), r["status"]) for r in rows] == [
        (changed.id, "cancelled"),
        (added.id, "draft"),
    ]


def test_trips_cursor_hands_out_the_trips_written_since(client, db, world):
    first = _get(client, world, "trips", **PERIOD)
    assert len(_csv(first)) == 3
    new = _trip(db, world["vehicle"], MAY + timedelta(days=25))
    _trip(db, world["other"], MAY + timedelta(days=25))
    db.commit()
    second = _get(client, world, "trips", cursor=first.headers["Fleet-Next-Cursor"], **PERIOD)
    assert [int(r["id"]) for r in _csv(second)] == [new.id]
    third = _get(client, world, "trips", cursor=second.headers["Fleet-Next-Cursor"], **PERIOD)
    assert _csv(third) == []
    assert third.headers["Fleet-Next-Cursor"] == second.headers["Fleet-Next-Cursor"]


def test_a_cursor_round_trips_and_refuses_forgery():
    token = export.encode_cursor("alerts", 1_780_000_000_000_000)
    assert export.decode_cursor("alerts", token) == 1_780_000_000_000_000
    for kind, bad in (("orders", token), ("alerts", "not-a-cursor"), ("alerts", token[:-3])):
        with pytest.raises(Exception, match="cursor is not one"):
            export.decode_cursor(kind, bad)


# ---- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "params", "message"),
    [
        ("orders", {"since": JUNE.isoformat(), "until": MAY.isoformat()}, "until must be after"),
        ("nonsense", PERIOD, "the exports are positions, trips, orders, alerts, costs"),
        ("orders", {**PERIOD, "format": "xml"}, "csv|parquet|geojson"),
        ("orders", {"since": MAY.isoformat()}, "needs since and until"),
        ("orders", {"since": "2024-01-01T00:00:00Z", "until": MAY.isoformat()}, "366 days"),
        ("orders", {**PERIOD, "cursor": export.encode_cursor("trips", 5)}, "cursor is not one"),
        ("orders", {"since": "2026-05-01T00:00:00", "until": MAY.isoformat()}, "time zone"),
    ],
)
def test_bad_input_is_refused_with_what_is_wrong(client, world, kind, params, message):
    answer = _get(client, world, kind, **params)
    assert answer.status_code == 422
    assert message in answer.text
