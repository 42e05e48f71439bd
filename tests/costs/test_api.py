"""The costs API: receipts by hand, statements imported all or nothing and only once."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from geoalchemy2.shape import from_shape
from openpyxl import Workbook
from shapely.geometry import LineString, Point
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from costs.models import CostRecord, CostStatement
from fleet.api import get_now
from fleet.auth import Actor
from fleet.models import OrgUnit, OutboxEvent, Role, Vehicle
from geofence.models import Alert
from telematics.models import Trip
from tests.factories import add_vehicle


def _last_month() -> date:
    """The first of the month before this one in China time: a statement's rows must be past
    by the clock the app reads (a row in the future is refused), on whatever day tests run."""
    first = datetime.now(ZoneInfo("Asia/Shanghai")).date().replace(day=1)
    return (first - timedelta(days=1)).replace(day=1)


LAST_MONTH = _last_month()
MONTH = f"{LAST_MONTH:%Y-%m}"
HEADER = "交易流水号,交易时间,车牌号,卡号,加油站,油品,数量(升),单价,金额,里程"
CARD_1, CARD_2, CARD_X = "1000113300001234", "1000113300005678", "1000113300009999"
GOOD = [
    f"T0001,{MONTH}-05 08:31:12,浙A·C00001,{CARD_1},中国石化 文三路站,92#,40.00,7.50,300.00,",
    f"T0002,{MONTH}-12 17:02:45,浙A·C00001,{CARD_1},中国石化 天目山路站,92#,35.50,7.60,269.80,",
    f"T0003,{MONTH}-20 09:15:00,,{CARD_2},中国石化 古墩路站,95#,30.00,8.10,243.00,",
]


def statement(*rows: str, title: bool = True) -> bytes:
    heading = f"中国石化加油卡消费明细 {LAST_MONTH.year}年{LAST_MONTH.month}月"
    lines = ([heading] if title else []) + [HEADER, *rows]
    return ("\n".join(lines) + "\n合计,,,,,,105.50,,812.80,\n").encode("utf-8")


@pytest.fixture
def cars(db: Session, root_unit: OrgUnit) -> list[Vehicle]:
    system = Actor.system(root_unit)
    made = [
        add_vehicle(
            db, root_unit, plate, actor=system, tank_l=60, fuel_norm_l_100km=8, fuel_card=card
        )
        for plate, card in (("浙A·C00001", CARD_1), ("浙A·C00002", CARD_2))
    ]
    db.commit()
    return made


@pytest.fixture
def desk(root_unit, make_user, login) -> dict[str, str]:
    make_user("desk", root_unit, Role.DISPATCHER)
    return login("desk")


def upload(client, headers, data: bytes, name: str = f"{MONTH}.csv", issuer: str = "sinopec"):
    return client.post(
        "/api/v1/costs/statements",
        headers=headers,
        files={"file": (name, data, "text/csv")},
        data={"issuer": issuer},
    )


def _count(db: Session) -> int:
    return int(db.scalar(select(func.count()).select_from(CostRecord)) or 0)


def test_statement_with_bad_rows_is_refused_naming_each(client, db, cars, desk) -> None:
    bad = statement(
        GOOD[0],
        f"T0002,{MONTH}-12 17:02:45,浙A·Z99999,{CARD_X},中国石化 东站,92#,35.50,7.60,269.80,",
        f"T0003,{MONTH}-20 09:15:00,浙A·C00001,{CARD_1},中国石化 古墩路站,95#,-3,8.10,243.00,",
        f"T0001,{MONTH}-21 09:15:00,浙A·C00001,{CARD_1},中国石化 古墩路站,95#,30.00,8.10,243.00,",
    )
    answer = upload(client, desk, bad)
    assert answer.status_code == 422, answer.text
    problems = answer.json()["problems"]
    by_line = {(p["line"], p["field"]) for p in problems}
    # Line 1 is the title, 2 the header: the data starts on line 3.
    assert (4, "plate") in by_line  # no such vehicle
    assert (5, "litres") in by_line  # negative
    assert (6, "transaction_id") in by_line  # T0001 again
    assert all(p["reason"] for p in problems)
    assert not any(line == 3 for line, _ in by_line)
    assert "nothing was imported" in answer.json()["detail"]
    assert _count(db) == 0
    assert db.scalar(select(func.count()).select_from(CostStatement)) == 0


def test_good_statement_twice_is_stored_once(client, db, cars, desk) -> None:
    data = statement(*GOOD)
    first = upload(client, desk, data)
    assert first.status_code == 201, first.text
    assert (first.json()["rows"], first.json()["added"]) == (3, 3)
    again = upload(client, desk, data, name="copy.csv")
    assert again.status_code == 200
    assert again.json()["already_imported"] is True
    assert again.json()["added"] == 0
    assert _count(db) == 3
    # The row without a plate went to the vehicle holding its fuel card.
    record = db.scalar(select(CostRecord).where(CostRecord.external_id == "T0003"))
    assert record is not None
    assert record.vehicle_id == cars[1].id
    # An overlapping statement (another file with one row in common) adds only the new rows.
    overlap = statement(
        GOOD[2],
        f"T0004,{MONTH}-28 10:00:00,浙A·C00002,{CARD_2},中国石化 古墩路站,95#,20.00,8.10,162.00,",
    )
    third = upload(client, desk, overlap, name=f"{MONTH}-late.csv")
    assert third.status_code == 201, third.text
    assert (third.json()["added"], third.json()["duplicates"]) == (1, 1)
    assert _count(db) == 4


def test_xlsx_statement_imports(client, db, cars, desk) -> None:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(HEADER.split(","))
    for row in GOOD[:2]:
        cells: list[Any] = row.split(",")
        sheet.append([c if c else None for c in cells])
    out = io.BytesIO()
    book.save(out)
    answer = upload(client, desk, out.getvalue(), name=f"{MONTH}.xlsx")
    assert answer.status_code == 201, answer.text
    assert answer.json()["added"] == 2
    listed = client.get("/api/v1/costs", params={"vehicle_id": cars[0].id}, headers=desk)
    assert listed.json()["total"] == 2
    assert {i["external_id"] for i in listed.json()["items"]} == {"T0001", "T0002"}


def test_unknown_issuer_and_unreadable_file_are_clear_errors(client, cars, desk) -> None:
    answer = upload(client, desk, statement(*GOOD), issuer="nobody")
    assert answer.status_code == 422
    assert "unknown issuer" in answer.text
    answer = upload(client, desk, b"\x00\x01garbage", name="x.csv")
    assert answer.status_code == 422
    formats = client.get("/api/v1/costs/statement-formats", headers=desk)
    assert {"sinopec", "petrochina", "charging"} <= {f["issuer"] for f in formats.json()["items"]}


def test_receipt_by_hand_and_who_may_enter_it(client, cars, desk, root_unit, make_user, login):
    body = {
        "kind": "fuel",
        "vehicle_id": cars[0].id,
        "at": f"{MONTH}-05T08:31:00+08:00",
        "amount": "300.00",
        "litres": 40,
        "station": {"type": "Point", "coordinates": [120.15, 30.28]},
    }
    answer = client.post("/api/v1/costs", json=body, headers=desk)
    assert answer.status_code == 201, answer.text
    assert answer.json()["amount"] == 300.0
    # No trip near the fill: the check says so.
    assert answer.json()["alerts"]
    no_litres = client.post("/api/v1/costs", json={**body, "litres": None}, headers=desk)
    assert no_litres.status_code == 422
    make_user("asker", root_unit, Role.REQUESTER)
    refused = client.post("/api/v1/costs", json=body, headers=login("asker"))
    assert refused.status_code == 403


def test_a_statement_of_thousands_of_rows_imports(db, cars, root_unit) -> None:
    """More rows than one INSERT may carry parameters for (65,535 / 17 columns)."""
    from zoneinfo import ZoneInfo

    from costs import service as costs
    from dispatch.settings import DispatchSettings
    from geofence import service as geofence_service
    from geofence.settings import GeofenceSettings

    rows = [
        f"L{n:05d},{MONTH}-{1 + n % 28:02d} {8 + n % 10:02d}:{n % 60:02d}:00,浙A·C0000{1 + n % 2},"
        f"{CARD_1 if n % 2 == 0 else CARD_2},中国石化 文三路站,92#,20.00,7.50,150.00,"
        for n in range(4_000)
    ]
    setup = costs.CheckSetup(
        settings=DispatchSettings(),
        calendar=geofence_service.working_calendar(session=db, settings=GeofenceSettings()),
        zone=ZoneInfo("Asia/Shanghai"),
    )
    result = costs.import_statement(
        session=db,
        actor=Actor.system(root_unit),
        data=statement(*rows),
        filename="big.csv",
        issuer="sinopec",
        setup=setup,
        now=datetime.now(UTC),
    )
    assert (result["rows"], result["added"]) == (4_000, 4_000)
    assert _count(db) == 4_000


def test_each_imported_record_is_a_costs_event(client, db, cars, desk, root_unit) -> None:
    mark = db.scalar(select(func.max(OutboxEvent.id))) or 0
    reply = upload(client, desk, statement(*GOOD))
    assert reply.status_code == 201, reply.text
    events = db.scalars(
        select(OutboxEvent).where(OutboxEvent.id > mark, OutboxEvent.kind == "costs")
    ).all()
    records = db.scalars(select(CostRecord.id).order_by(CostRecord.id)).all()
    assert [e.object_id for e in events] == [str(r) for r in records]
    assert {e.unit_code for e in events} == {root_unit.code}
    assert events[0].payload["state"]["external_id"] == "T0001"


# ---- electric and plug-in hybrid vehicles -----------------------------------------------------

CHINA = ZoneInfo("Asia/Shanghai")
CHECKED_MONTH = datetime(2026, 3, 1, tzinfo=CHINA)
ENTERED = datetime(2026, 3, 17, 9, tzinfo=CHINA)  # the API's clock in these tests


def _month_of_trips(db: Session, vehicle_id: int, km: float) -> None:
    """Ten trips of `km` km each in March 2026."""
    line = LineString([(120.21, 30.25), (120.26, 30.25)])
    for day in range(10):
        start = CHECKED_MONTH + timedelta(days=day + 1, hours=9)
        db.add(
            Trip(
                vehicle_id=vehicle_id,
                start_at=start,
                end_at=start + timedelta(hours=2),
                start_point=from_shape(Point(line.coords[0]), srid=4326),
                end_point=from_shape(Point(line.coords[-1]), srid=4326),
                path=from_shape(line, srid=4326),
                distance_m=km * 1000,
                duration_s=7200,
            )
        )
    db.commit()


def test_energy_norms_are_kept_and_charges_checked_against_them(
    client, db, root_unit, make_user, login, desk
) -> None:
    make_user("fleet-admin", root_unit, Role.ADMIN)
    admin = login("fleet-admin")
    client.app.dependency_overrides[get_now] = lambda: ENTERED  # type: ignore[attr-defined]
    common = {"category": "general", "body_class": "sedan", "seats": 4, "unit_id": root_unit.id}
    made = client.post(
        "/api/v1/vehicles",
        json={**common, "plate": "浙A·D10001", "energy": "bev", "energy_norm_kwh_100km": 16},
        headers=admin,
    )
    assert made.status_code == 201, made.text
    ev = made.json()
    assert ev["energy_norm_kwh_100km"] == 16
    changed = client.patch(
        f"/api/v1/vehicles/{ev['id']}", json={"energy_norm_kwh_100km": 15}, headers=admin
    )
    assert changed.status_code == 200, changed.text
    assert (
        client.get(f"/api/v1/vehicles/{ev['id']}", headers=admin).json()["energy_norm_kwh_100km"]
        == 15
    )
    phev = client.post(
        "/api/v1/vehicles",
        json={
            **common,
            "plate": "浙A·D10002",
            "energy": "phev",
            "tank_l": 50,
            "fuel_norm_l_100km": 6.5,
            "energy_norm_kwh_100km": 20,
        },
        headers=admin,
    ).json()
    _month_of_trips(db, ev["id"], 50)  # 500 km: 90 kWh at 15 kWh/100 km + 20 %
    _month_of_trips(db, phev["id"], 100)  # 1,000 km: 1,200 km's worth of energy at the norms

    def enter(vehicle: dict[str, Any], day: int, **what: float) -> list[str]:
        kind = "charging" if "kwh" in what else "fuel"
        at = (CHECKED_MONTH + timedelta(days=day, hours=12)).isoformat()
        body = {"kind": kind, "vehicle_id": vehicle["id"], "at": at, "amount": "80.00", **what}
        answer = client.post("/api/v1/costs", json=body, headers=desk)
        assert answer.status_code == 201, answer.text
        ids = answer.json()["alerts"]
        return sorted(db.scalars(select(Alert.kind).where(Alert.id.in_(ids))))

    assert enter(ev, 3, kwh=90) == []
    assert enter(ev, 4, kwh=0.2) == ["energy_consumption_high"]
    assert enter(phev, 3, kwh=100) == []
    assert enter(phev, 4, litres=45.5) == []
    assert enter(phev, 5, kwh=0.5) == ["energy_consumption_high"]
    # The clock the API answers by is the pinned one: two days past it is the future.
    late = {"kind": "charging", "vehicle_id": ev["id"], "kwh": 10, "amount": "8.00"}
    late["at"] = (ENTERED + timedelta(days=2)).isoformat()
    assert client.post("/api/v1/costs", json=late, headers=desk).status_code == 422


def test_a_car_not_charged_from_the_grid_has_no_energy_norm(
    client, db, root_unit, make_user, login
) -> None:
    make_user("fleet-admin", root_unit, Role.ADMIN)
    admin = login("fleet-admin")
    body = {
        "plate": "浙A·C10003",
        "category": "general",
        "body_class": "sedan",
        "seats": 4,
        "unit_id": root_unit.id,
        "energy": "hybrid",
        "energy_norm_kwh_100km": 12,
    }
    refused = client.post("/api/v1/vehicles", json=body, headers=admin)
    assert refused.status_code == 422, refused.text
    assert "energy_norm_kwh_100km" in refused.text
    made = client.post(
        "/api/v1/vehicles", json={**body, "energy_norm_kwh_100km": None}, headers=admin
    )
    assert made.status_code == 201, made.text
    patched = client.patch(
        f"/api/v1/vehicles/{made.json()['id']}", json={"energy_norm_kwh_100km": 5}, headers=admin
    )
    assert patched.status_code == 422


def test_a_charging_statement_is_checked_against_the_energy_norm(
    client, db, root_unit, desk
) -> None:
    ev = add_vehicle(
        db, root_unit, "浙A·D10004", energy="bev", battery_kwh=60, energy_norm_kwh_100km=15
    )
    db.commit()
    _month_of_trips(db, ev.id, 50)  # 500 km: 90 kWh at 15 kWh/100 km + 20 %
    client.app.dependency_overrides[get_now] = lambda: ENTERED  # type: ignore[attr-defined]
    data = (
        "订单号,充电开始时间,车牌号,充电站,充电量(kWh),金额\n"
        "C0001,2026-03-05 12:00:00,浙A·D10004,国家电网 文三路充电站,60,72.00\n"
        "C0002,2026-03-08 12:00:00,浙A·D10004,国家电网 文三路充电站,40,48.00\n"
    ).encode()
    answer = upload(client, desk, data, name="2026-03-charging.csv", issuer="charging")
    assert answer.status_code == 201, answer.text
    alerts = db.scalars(select(Alert).where(Alert.id.in_(answer.json()["alerts"]))).all()
    assert [(a.kind, a.key, a.measured["kwh_100km"]) for a in alerts] == [
        ("energy_consumption_high", "month:2026-03", 20.0)
    ]
