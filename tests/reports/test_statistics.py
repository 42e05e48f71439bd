"""Statistics agree with sums computed here, independently, from the raw rows; the CSV and XLSX
exports hold the same figures."""

from __future__ import annotations

import csv
import io
import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from geoalchemy2.shape import from_shape
from openpyxl import load_workbook
from shapely.geometry import LineString, Point
from sqlalchemy.orm import Session

from costs.models import CostRecord
from fleet.auth import Actor
from fleet.models import OrgUnit, Vehicle
from geofence.models import Alert
from reports import statistics
from telematics.models import Trip
from tests.factories import add_vehicle

ZONE = ZoneInfo("Asia/Shanghai")
SINCE = datetime(2026, 5, 1, tzinfo=ZONE)
UNTIL = datetime(2026, 6, 1, tzinfo=ZONE)


@pytest.fixture
def raw(db: Session, root_unit: OrgUnit, make_unit) -> dict[str, Any]:
    """Two units, four vehicles, random trips, costs and alerts in and around May."""
    rng = random.Random(8)
    child = make_unit("T-CHILD", name="子单位")
    system = Actor.system(root_unit)
    vehicles: list[Vehicle] = []
    for n, (unit, energy) in enumerate(
        [(root_unit, "petrol"), (root_unit, "bev"), (child, "diesel"), (child, "phev")]
    ):
        vehicles.append(
            add_vehicle(
                db,
                unit,
                f"浙A·S0000{n}",
                actor=system,
                energy=energy,
                tank_l=None if energy == "bev" else 60,
                battery_kwh=60 if energy in ("bev", "phev") else None,
                fuel_norm_l_100km=None if energy == "bev" else 8,
                energy_norm_kwh_100km=15 if energy == "bev" else None,
            )
        )
    trips, records, alerts = [], [], []
    line = from_shape(LineString([(120.0, 30.0), (120.1, 30.0)]), srid=4326)
    end = from_shape(Point(120.1, 30.0), srid=4326)
    for vehicle in vehicles[:3]:  # the fourth is never used
        for _ in range(12):
            # Some before and after the period, some across local midnight.
            start = SINCE + timedelta(days=rng.uniform(-3, 34), hours=rng.uniform(0, 23))
            trip = Trip(
                vehicle_id=vehicle.id,
                start_at=start.astimezone(UTC),
                end_at=(start + timedelta(minutes=rng.uniform(5, 180))).astimezone(UTC),
                start_point=end,
                end_point=end,
                path=line,
                distance_m=rng.uniform(500, 90_000),
                duration_s=0.0,
            )
            trip.duration_s = (trip.end_at - trip.start_at).total_seconds()
            trips.append(trip)
        for _ in range(5):
            kind = rng.choice(["fuel", "toll", "repair"]) if vehicle.energy != "bev" else "charging"
            records.append(
                CostRecord(
                    kind=kind,
                    vehicle_id=vehicle.id,
                    unit_id=vehicle.unit_id,
                    at=(SINCE + timedelta(days=rng.uniform(-2, 33))).astimezone(UTC),
                    amount=Decimal(rng.randint(100, 90_000)) / 100,
                    litres=round(rng.uniform(5, 55), 2) if kind == "fuel" else None,
                    kwh=round(rng.uniform(5, 55), 2) if kind == "charging" else None,
                )
            )
        for n in range(6):
            at = (SINCE + timedelta(days=rng.uniform(-2, 33))).astimezone(UTC)
            alerts.append(
                Alert(
                    kind=rng.choice(["off_hours", "overspeed"]),
                    key=str(n),
                    severity="medium",
                    vehicle_id=vehicle.id,
                    unit_id=vehicle.unit_id,
                    started_at=at,
                    last_at=at,
                    review=rng.choice(["pending", "confirmed", "dismissed", "escalated"]),
                )
            )
    db.add_all(trips + records + alerts)
    db.flush()
    return {
        "vehicles": vehicles,
        "trips": trips,
        "records": records,
        "alerts": alerts,
        "actor": system,
        "units": {root_unit.id: root_unit.name, child.id: child.name},
    }


def _in(at: datetime) -> bool:
    return SINCE <= at < UNTIL


def _report(db: Session, raw: dict[str, Any], name: str) -> list[dict[str, Any]]:
    rows, _ = statistics.report(
        session=db, actor=raw["actor"], name=name, since=SINCE, until=UNTIL, zone=ZONE
    )
    return rows


def test_vehicle_use_matches_the_raw_rows(db, raw) -> None:
    rows = {r["plate"]: r for r in _report(db, raw, "vehicles")}
    assert len(rows) == 4
    for vehicle in raw["vehicles"]:
        trips = [t for t in raw["trips"] if t.vehicle_id == vehicle.id and _in(t.start_at)]
        records = [r for r in raw["records"] if r.vehicle_id == vehicle.id and _in(r.at)]
        km = sum(t.distance_m for t in trips) / 1000
        cost = sum(r.amount for r in records)
        litres = sum(r.litres or 0 for r in records)
        row = rows[vehicle.plate]
        assert row["trips"] == len(trips)
        assert row["days_used"] == len({t.start_at.astimezone(ZONE).date() for t in trips})
        assert row["distance_km"] == pytest.approx(km, abs=1e-3)
        assert row["hours"] == pytest.approx(sum(t.duration_s for t in trips) / 3600, abs=1e-3)
        assert Decimal(str(row["cost"])) == cost
        assert row["litres"] == pytest.approx(litres, abs=0.01)
        if km:
            assert row["cost_per_km"] == pytest.approx(float(cost) / km, rel=1e-3)
        else:
            assert row["cost_per_km"] is None
        if litres and km:
            per_100 = litres / km * 100
            assert row["l_100km"] == pytest.approx(per_100, rel=1e-3)
            assert row["over_norm_pct"] == pytest.approx((per_100 / 8 - 1) * 100, abs=0.01)
        kwh = sum(r.kwh or 0 for r in records)
        if vehicle.energy == "bev" and kwh and km:
            # An electric car is judged on its charging against its energy norm.
            assert row["kwh_100km"] == pytest.approx(kwh / km * 100, rel=1e-3)
            assert row["norm_kwh_100km"] == 15
            assert row["over_norm_pct"] == pytest.approx((kwh / km * 100 / 15 - 1) * 100, abs=0.01)
        elif vehicle.energy == "bev":
            pytest.fail("the electric car has charging and trips in the period")


def test_unit_use_and_new_energy_share_match_the_raw_rows(db, raw) -> None:
    rows = {r["unit"]: r for r in _report(db, raw, "units")}
    assert set(rows) == set(raw["units"].values())
    for unit_id, name in raw["units"].items():
        mine = {v.id: v for v in raw["vehicles"] if v.unit_id == unit_id}
        trips = [t for t in raw["trips"] if t.vehicle_id in mine and _in(t.start_at)]
        km = sum(t.distance_m for t in trips) / 1000
        green = sum(t.distance_m for t in trips if mine[t.vehicle_id].new_energy) / 1000
        cost = sum(r.amount for r in raw["records"] if r.vehicle_id in mine and _in(r.at))
        row = rows[name]
        assert row["vehicles"] == len(mine)
        assert row["vehicles_used"] == len({t.vehicle_id for t in trips})
        assert row["trips"] == len(trips)
        assert row["distance_km"] == pytest.approx(km, abs=1e-2)
        assert row["cost"] == pytest.approx(float(cost), abs=0.01)
        assert row["new_energy_share"] == pytest.approx(green / km, abs=1e-3)


def test_alerts_per_unit_and_kind_with_confirmation_rate(db, raw) -> None:
    expected: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for a in raw["alerts"]:
        if _in(a.started_at):
            counts = expected[(raw["units"][a.unit_id], a.kind)]
            counts["total"] += 1
            counts[a.review] += 1
    rows = _report(db, raw, "alerts")
    assert {(r["unit"], r["kind"]) for r in rows} == set(expected)
    for row in rows:
        counts = expected[(row["unit"], row["kind"])]
        for key in ("total", "confirmed", "dismissed", "escalated", "pending"):
            assert row[key] == counts[key], key
        decided = counts["confirmed"] + counts["dismissed"]
        rate = counts["confirmed"] / decided if decided else None
        assert row["confirmation_rate"] == (None if rate is None else pytest.approx(rate, abs=1e-4))


def test_costs_per_unit_and_kind(db, raw) -> None:
    expected: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for r in raw["records"]:
        if _in(r.at):
            expected[(raw["units"][r.unit_id], r.kind)] += r.amount
    rows = _report(db, raw, "costs")
    assert {(r["unit"], r["kind"]): Decimal(str(r["amount"])) for r in rows} == expected


def test_exports_hold_the_same_figures(db, raw) -> None:
    rows, columns = statistics.report(
        session=db, actor=raw["actor"], name="vehicles", since=SINCE, until=UNTIL, zone=ZONE
    )
    text = statistics.to_csv(rows, columns).decode("utf-8")
    assert text.startswith("\ufeff")
    parsed = list(csv.DictReader(io.StringIO(text.lstrip("\ufeff"))))
    assert [p["plate"] for p in parsed] == [r["plate"] for r in rows]
    assert [float(p["distance_km"]) for p in parsed] == [r["distance_km"] for r in rows]
    book = load_workbook(io.BytesIO(statistics.to_xlsx(rows, columns, title="vehicles")))
    sheet = book.active
    assert sheet is not None
    values = list(sheet.iter_rows(values_only=True))
    assert values[0][0] == "车牌 Plate"
    assert [v[0] for v in values[1:]] == [r["plate"] for r in rows]
    distance = [c.key for c in columns].index("distance_km")
    assert [v[distance] for v in values[1:]] == [r["distance_km"] for r in rows]


def test_statistics_api_exports_csv_and_refuses_an_unknown_report(
    client, db, raw, make_user, root_unit, login
) -> None:
    from fleet.models import Role

    make_user("sup", root_unit, Role.SUPERVISOR)
    headers = login("sup")
    params = {"since": SINCE.isoformat(), "until": UNTIL.isoformat()}
    answer = client.get("/api/v1/statistics/units", params=params, headers=headers)
    assert answer.status_code == 200, answer.text
    assert {r["unit"] for r in answer.json()["items"]} == set(raw["units"].values())
    exported = client.get(
        "/api/v1/statistics/alerts", params={**params, "format": "csv"}, headers=headers
    )
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("text/csv")
    assert exported.content.decode("utf-8-sig").splitlines()[0].startswith("unit,kind,total")
    wrong = client.get("/api/v1/statistics/nonsense", params=params, headers=headers)
    assert wrong.status_code == 422


def test_statistics_refuse_a_period_longer_than_a_year(client, db, make_user, root_unit, login):
    from fleet.models import Role

    make_user("sup2", root_unit, Role.SUPERVISOR)
    headers = login("sup2")
    since = SINCE.replace(year=2020)
    longest = {"since": since.isoformat(), "until": (since + timedelta(days=366)).isoformat()}
    answer = client.get("/api/v1/statistics/units", params=longest, headers=headers)
    assert answer.status_code == 200, answer.text
    longer = {**longest, "until": (since + timedelta(days=367)).isoformat()}
    refused = client.get("/api/v1/statistics/units", params=longer, headers=headers)
    assert refused.status_code == 422
    assert "366 days" in refused.text


def test_with_a_replica_the_statistics_read_it_and_the_export_is_recorded_on_the_primary(
    client, db, raw, make_user, root_unit, login, scratch_settings
) -> None:
    """FLEET_READ_DATABASE_URL: the statistics come from the replica's rows (here a database of
    its own, migrated and empty, standing for a replica that has not caught up), while the
    export's record goes to the primary."""
    from sqlalchemy import func, select

    from fleet import migrate
    from fleet.db import make_read_engine, make_session_factory
    from fleet.models import AuditEntry, Role

    make_user("sup3", root_unit, Role.SUPERVISOR)
    headers = login("sup3")
    params = {"since": SINCE.isoformat(), "until": UNTIL.isoformat()}
    assert client.get("/api/v1/statistics/vehicles", params=params, headers=headers).json()["items"]
    migrate.upgrade(scratch_settings)
    replica = make_read_engine(
        scratch_settings.model_copy(update={"read_database_url": scratch_settings.database_url})
    )
    assert replica is not None
    client.app.state.read_session_factory = make_session_factory(replica)  # type: ignore[attr-defined]
    try:
        recorded = db.scalar(select(func.count()).select_from(AuditEntry))
        read = client.get("/api/v1/statistics/vehicles", params=params, headers=headers)
        exported = client.get(
            "/api/v1/statistics/vehicles", params={**params, "format": "csv"}, headers=headers
        )
    finally:
        client.app.state.read_session_factory = None  # type: ignore[attr-defined]
        replica.dispose()
    assert read.status_code == 200
    assert read.json()["items"] == []  # the replica holds none of the primary's rows
    assert exported.content.decode("utf-8-sig").splitlines()[1:] == []
    assert db.scalar(select(func.count()).select_from(AuditEntry)) == recorded + 1
