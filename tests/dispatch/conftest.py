"""Dispatch tests: a small pool (vehicles, drivers) and the people of the loop in the test unit."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session

from fleet.auth import Actor
from fleet.models import Driver, OrgUnit, Role, Vehicle
from tests.factories import add_driver, add_vehicle


@pytest.fixture
def pool(db: Session, root_unit: OrgUnit) -> dict[str, Any]:
    system = Actor.system(root_unit)
    vehicles: dict[str, Vehicle] = {}
    for key, plate, seats, body, status in (
        ("sedan", "浙A·D10001", 4, "sedan", "active"),
        ("mpv", "浙A·D10002", 7, "mpv", "active"),
        ("sealed", "浙A·D10003", 7, "mpv", "sealed"),
    ):
        vehicles[key] = add_vehicle(
            db,
            root_unit,
            plate,
            actor=system,
            body_class=body,
            seats=seats,
            energy="bev",
            status=status,
        )
    drivers: list[Driver] = [
        add_driver(db, root_unit, name, actor=system) for name in ("陈师傅", "刘师傅")
    ]
    db.commit()
    return {"vehicles": vehicles, "drivers": drivers}


@pytest.fixture
def people(root_unit: OrgUnit, make_user, login) -> dict[str, dict[str, str]]:
    for name, role in (
        ("asker", Role.REQUESTER),
        ("boss", Role.APPROVER),
        ("desk", Role.DISPATCHER),
    ):
        make_user(name, root_unit, role)
    return {name: login(name) for name in ("asker", "boss", "desk")}


def tomorrow(hour: int) -> datetime:
    day = datetime.now(UTC).date() + timedelta(days=1)
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def order_json(**changes: Any) -> dict[str, Any]:
    """The body of `POST /orders`: tomorrow 01:00 to 05:00 UTC, three passengers, one stop."""
    return {
        "purpose": "市场监管检查",
        "passengers": 3,
        "start_at": tomorrow(1).isoformat(),
        "end_at": tomorrow(5).isoformat(),
        "origin": {"type": "Point", "coordinates": [120.2106, 30.2452]},
        "origin_name": "市民中心",
        "destinations": [
            {"point": {"type": "Point", "coordinates": [120.1688, 30.2770]}, "name": "某市场"}
        ],
        **changes,
    }


@pytest.fixture
def order_body() -> Callable[..., dict[str, Any]]:
    return order_json
