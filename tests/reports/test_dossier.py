"""The order dossier and the vehicle file through the API, on the demo's completed order."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pypdfium2
import pytest
from geoalchemy2.shape import from_shape
from redis import Redis
from shapely.geometry import LineString, Point
from sqlalchemy import select
from sqlalchemy.orm import Session

from app import demo as app_demo
from costs.models import CostRecord
from dispatch.models import Assignment, TripOrder
from fleet.db import utcnow
from fleet.demo import DEMO_PASSWORD
from fleet.models import Role
from telematics.models import Trip
from tests.factories import add_vehicle


@pytest.fixture
def seeded(db: Session, redis: Redis) -> dict[str, Any]:
    app_demo.seed(session=db, redis=redis, zone_name="Asia/Shanghai", now=utcnow())
    db.commit()
    order = db.scalar(select(TripOrder).where(TripOrder.status == "completed"))
    assert order is not None
    held = db.scalar(select(Assignment).where(Assignment.order_id == order.id))
    assert held is not None
    return {"order_id": order.id, "vehicle_id": held.vehicle_id}


def _login(client, username: str) -> dict[str, str]:
    answer = client.post(
        "/api/v1/auth/token", data={"username": username, "password": DEMO_PASSWORD}
    )
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def _pdf_page_ink(data: bytes) -> tuple[float, str]:
    document = pypdfium2.PdfDocument(data)
    try:
        pixels = np.asarray(document[0].render(scale=1).to_numpy())
        text = "".join(document[i].get_textpage().get_text_range() for i in range(len(document)))
    finally:
        document.close()
    return float((pixels[..., :3] < 200).any(axis=-1).mean()), text


def test_dossier_of_the_completed_demo_order_shows_every_section(client, seeded) -> None:
    headers = _login(client, "supervisor")
    url = f"/api/v1/orders/{seeded['order_id']}/dossier"
    data = client.get(url, headers=headers).json()
    plate = data["assignment"]["vehicle"]["plate"]
    page = client.get(url + ".html", headers=headers)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    html = page.text
    for heading in ("申请", "审批", "派车", "路线与轨迹", "费用", "告警", "审计日志"):
        assert heading in html, heading
    assert plate in html
    assert data["assignment"]["reason"].split(" / ")[0] in html
    assert data["alerts"][0]["reviews"][0]["reason"].split(" / ")[0] in html
    assert "<svg" in html
    assert "http://" not in html
    assert "https://" not in html
    pdf = client.get(url + ".pdf", headers=headers)
    assert pdf.status_code == 200
    assert pdf.headers["content-type"] == "application/pdf"
    ink, text = _pdf_page_ink(pdf.content)
    assert ink > 0.01
    assert plate in text


def test_vehicle_file_shows_use_costs_due_dates_and_status_changes(
    client, seeded, db: Session
) -> None:
    admin = _login(client, "admin")
    vehicle_id = seeded["vehicle_id"]
    due = client.post(
        "/api/v1/costs",
        headers=admin,
        json={
            "kind": "inspection",
            "vehicle_id": vehicle_id,
            "at": "2026-01-15T10:00:00+08:00",
            "amount": "180.00",
            "vendor": "机动车检测站",
            "next_due_on": "2027-01-15",
        },
    )
    assert due.status_code == 201, due.text
    sealed = client.patch(
        f"/api/v1/vehicles/{vehicle_id}", headers=admin, json={"status": "sealed"}
    )
    assert sealed.status_code == 200, sealed.text
    file = client.get(f"/api/v1/vehicles/{vehicle_id}/file", headers=admin).json()
    assert file["assignments"][0]["order_id"] == seeded["order_id"]
    assert sum(m["distance_m"] for m in file["distance_by_month"]) > 5_000
    assert {"fuel", "parking", "inspection"} <= set(file["costs"]["by_kind"])
    assert file["costs"]["total"] == pytest.approx(sum(file["costs"]["by_kind"].values()))
    assert any(c["litres"] for c in file["consumption"])
    assert file["due"] == [
        {
            "kind": "inspection",
            "due_on": "2027-01-15",
            "days_left": file["due"][0]["days_left"],
            "overdue": file["due"][0]["days_left"] < 0,
        }
    ]
    assert file["status_changes"][-1]["from"] == "active"
    assert file["status_changes"][-1]["to"] == "sealed"
    assert file["alert_outcomes"]["overspeed"]["dismissed"] == 1
    page = client.get(f"/api/v1/vehicles/{vehicle_id}/file.html", headers=admin)
    assert page.status_code == 200
    assert file["vehicle"]["plate"] in page.text
    pdf = client.get(f"/api/v1/vehicles/{vehicle_id}/file.pdf", headers=admin)
    ink, text = _pdf_page_ink(pdf.content)
    assert ink > 0.01
    assert file["vehicle"]["plate"] in text


def test_requesters_and_other_units_do_not_see_dossiers(client, seeded) -> None:
    requester = _login(client, "requester")
    answer = client.get(f"/api/v1/orders/{seeded['order_id']}/dossier", headers=requester)
    assert answer.status_code == 403
    answer = client.get(
        f"/api/v1/orders/{seeded['order_id'] + 9999}/dossier", headers=_login(client, "supervisor")
    )
    assert answer.status_code == 404


def test_vehicle_file_judges_an_electric_car_against_its_energy_norm(
    client, db: Session, root_unit, make_user, login
) -> None:
    make_user("file-reader", root_unit, Role.ADMIN)
    headers = login("file-reader")
    ev = add_vehicle(
        db, root_unit, "浙A·D30001", energy="bev", battery_kwh=60, energy_norm_kwh_100km=15
    )
    line = LineString([(120.21, 30.25), (120.26, 30.25)])
    start = datetime(2026, 3, 2, 9, tzinfo=ZoneInfo("Asia/Shanghai"))
    db.add(
        Trip(
            vehicle_id=ev.id,
            start_at=start,
            end_at=start + timedelta(hours=8),
            start_point=from_shape(Point(line.coords[0]), srid=4326),
            end_point=from_shape(Point(line.coords[-1]), srid=4326),
            path=from_shape(line, srid=4326),
            distance_m=400_000,
            duration_s=8 * 3600,
        )
    )
    db.add(
        CostRecord(
            kind="charging",
            vehicle_id=ev.id,
            unit_id=root_unit.id,
            at=start + timedelta(hours=9),
            amount=Decimal("60.00"),
            kwh=66,
        )
    )
    db.commit()
    file = client.get(f"/api/v1/vehicles/{ev.id}/file", headers=headers).json()
    assert file["vehicle"]["energy_norm_kwh_100km"] == 15
    assert file["consumption"] == [
        {
            "month": "2026-03",
            "litres": 0.0,
            "kwh": 66.0,
            "distance_m": 400_000.0,
            "l_100km": None,
            "kwh_100km": 16.5,
            "norm_l_100km": None,
            "norm_kwh_100km": 15,
            "over_norm_pct": 10.0,  # 16.5 kWh/100 km against 15
        }
    ]
    html = client.get(f"/api/v1/vehicles/{ev.id}/file.html", headers=headers).text
    assert "电耗定额 Energy norm" in html
    assert "+10.0%" in html
