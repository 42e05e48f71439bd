"""The order dossier and the vehicle file through the API, on the demo's completed order."""

from __future__ import annotations

from typing import Any

import numpy as np
import pypdfium2
import pytest
from redis import Redis
from sqlalchemy import select
from sqlalchemy.orm import Session

from app import demo as app_demo
from dispatch.models import Assignment, TripOrder
from fleet.db import utcnow
from fleet.demo import DEMO_PASSWORD


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
