"""The cost checks run again: `fleet costs check --since` after norms change (counts by kind,
nothing raised twice), and a month checked again after it was archived out of PostGIS gives the
answer it gave before. A database of the module's own: the command commits."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from geoalchemy2.shape import from_shape
from shapely.geometry import LineString, Point
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from app.cli import app
from costs import service as costs
from costs.schemas import CostIn
from dispatch.settings import DispatchSettings
from fleet import migrate, registry
from fleet.auth import Actor
from fleet.db import make_engine
from fleet.models import AuditEntry, OrgUnit, Vehicle
from fleet.schemas import VehicleUpdate
from fleet.settings import Settings
from geofence import service as geofence_service
from geofence.models import Alert
from geofence.settings import GeofenceSettings
from telematics import archive, tracks
from telematics.ingest import partition_sql
from telematics.models import Trip
from tests.factories import add_vehicle

CHINA = ZoneInfo("Asia/Shanghai")
MARCH = datetime(2026, 3, 1, tzinfo=CHINA)
# The command's clock: after the March records, before the December of the last test.
NOW = datetime(2026, 3, 20, 9, tzinfo=CHINA)
HERE = (120.2106, 30.2452)
runner = CliRunner()


@pytest.fixture(scope="module")
def engine(scratch_settings: Settings) -> Iterator[Engine]:
    migrate.upgrade(scratch_settings)
    made = make_engine(scratch_settings, pool_size=2)
    yield made
    made.dispose()


def _setup(session: Session) -> costs.CheckSetup:
    return costs.CheckSetup(
        settings=DispatchSettings(),
        calendar=geofence_service.working_calendar(session=session, settings=GeofenceSettings()),
        zone=CHINA,
    )


def _trips(session: Session, vehicle: Vehicle, start: datetime, km: float, count: int) -> None:
    line = LineString([HERE, (HERE[0] + 0.05, HERE[1])])
    for day in range(count):
        begin = start + timedelta(days=day, hours=9)
        session.add(
            Trip(
                vehicle_id=vehicle.id,
                start_at=begin,
                end_at=begin + timedelta(hours=2),
                start_point=from_shape(Point(line.coords[0]), srid=4326),
                end_point=from_shape(Point(line.coords[-1]), srid=4326),
                path=from_shape(line, srid=4326),
                distance_m=km * 1000,
                duration_s=7200,
            )
        )
    session.flush()


def _enter(
    session: Session,
    unit: OrgUnit,
    vehicle: Vehicle,
    at: datetime,
    now: datetime = NOW,
    **what: Any,
) -> None:
    kind = "charging" if "kwh" in what else "fuel"
    costs.create(
        session=session,
        actor=Actor.system(unit),
        data=CostIn(kind=kind, vehicle_id=vehicle.id, at=at, amount=Decimal("100.00"), **what),
        setup=_setup(session),
        now=now,
    )


def fleet(settings: Settings, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args), obj=settings)
    return result.exit_code, result.output


def test_costs_check_reports_what_it_added_and_updated_and_never_repeats(
    scratch_settings: Settings,
    engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr("app.cli.data.utcnow", lambda: NOW.astimezone(UTC))
    with Session(engine) as session, session.begin():
        unit = registry.create_root_unit(session=session, code="RC", name="复核测试")
        ev = add_vehicle(
            session, unit, "浙A·D20001", energy="bev", battery_kwh=60, energy_norm_kwh_100km=20
        )
        phev = add_vehicle(
            session,
            unit,
            "浙A·D20002",
            energy="phev",
            tank_l=50,
            fuel_norm_l_100km=7,
            energy_norm_kwh_100km=25,
        )
        _trips(session, ev, MARCH, 100, 5)  # 500 km
        _trips(session, phev, MARCH, 100, 10)  # 1,000 km
        _enter(session, unit, ev, MARCH + timedelta(days=10, hours=12), kwh=100)
        _enter(session, unit, phev, MARCH + timedelta(days=11, hours=12), kwh=100)
        # A fill on a Friday, half an hour after a trip: nothing wrong with it by itself.
        _enter(session, unit, phev, MARCH + timedelta(days=5, hours=11, minutes=30), litres=42)
        ids = (unit.id, ev.id, phev.id)
    caplog.set_level(logging.INFO, logger="fleet.progress")

    code, out = fleet(scratch_settings, "costs", "check", "--since", "2026-03-01", "--unit", "RC")
    assert code == 0, out
    assert "checked 2 vehicles: 0 alerts added, 0 updated, 0 unchanged" in out

    # The norms lowered: the EV's 20 kWh/100 km is a third over 15; the PHEV's 400 km of
    # charging and 600 km of fuel at 25 and 7 are 1,356 km at 18 and 5.25.
    with Session(engine) as session, session.begin():
        system = Actor.system(session.get(OrgUnit, ids[0]))
        for vehicle_id, norms in (
            (ids[1], {"energy_norm_kwh_100km": 15}),
            (ids[2], {"energy_norm_kwh_100km": 18, "fuel_norm_l_100km": 5.25}),
        ):
            registry.update_vehicle(
                session=session,
                actor=system,
                vehicle_id=vehicle_id,
                data=VehicleUpdate.model_validate(norms),
                now=NOW,
            )
    code, out = fleet(scratch_settings, "costs", "check", "--since", "2026-03-01", "--unit", "RC")
    assert code == 0, out
    assert "checked 2 vehicles: 2 alerts added, 0 updated, 0 unchanged" in out
    assert "  added energy_consumption_high: 2" in out
    progress = [m for m in caplog.messages if m.startswith("checking costs: ")]
    assert progress[-1].startswith("checking costs: 2/2 vehicles (100 %), ")

    code, out = fleet(scratch_settings, "costs", "check", "--since", "2026-03-01", "--unit", "RC")
    assert code == 0, out
    assert "checked 2 vehicles: 0 alerts added, 0 updated, 2 unchanged" in out

    with Session(engine) as session, session.begin():
        session.get(Vehicle, ids[1]).energy_norm_kwh_100km = 14  # type: ignore[union-attr]
    code, out = fleet(scratch_settings, "costs", "check", "--unit", "RC")  # every record
    assert code == 0, out
    assert "checked 2 vehicles: 0 alerts added, 1 updated, 1 unchanged" in out
    assert "  updated energy_consumption_high: 1" in out

    with Session(engine) as session:
        alerts = session.execute(
            select(Alert.vehicle_id, Alert.kind, Alert.measured["over_norm_pct"].as_float())
            .where(Alert.vehicle_id.in_(ids[1:]))
            .order_by(Alert.vehicle_id)
        ).all()
        assert [tuple(a) for a in alerts] == [
            (ids[1], "energy_consumption_high", pytest.approx(42.9, abs=0.05)),
            (ids[2], "energy_consumption_high", pytest.approx(35.6, abs=0.05)),
        ]
        audited = session.scalars(
            select(AuditEntry.after)
            .where(AuditEntry.action == "check", AuditEntry.entity == "cost_record")
            .order_by(AuditEntry.id)
        ).all()
        assert len(audited) == 4
        assert audited[1]["added"] == {"energy_consumption_high": 2}
        assert audited[1]["since"] == "2026-03-01T00:00:00+08:00"

    code, out = fleet(scratch_settings, "costs", "check", "--since", "2026-03-15", "--unit", "RC")
    assert code == 0, out
    assert "checked 0 vehicles" in out
    # A day past the command's clock is refused, whatever the wall clock says.
    code, out = fleet(scratch_settings, "costs", "check", "--since", "2026-03-21", "--unit", "RC")
    assert code == 1
    assert "in the future" in out
    code, out = fleet(scratch_settings, "costs", "check", "--since", "March", "--unit", "RC")
    assert code == 1
    assert "neither a day nor an ISO 8601 moment" in out


def _station(session: Session, metres: float) -> dict[str, Any]:
    """A point `metres` due north of HERE on the spheroid."""
    lon, lat = session.execute(
        text(
            "SELECT ST_X(g), ST_Y(g) FROM (SELECT ST_Project("
            "ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)::geography, :m, 0)::geometry AS g) p"
        ),
        {"lon": HERE[0], "lat": HERE[1], "m": metres},
    ).one()
    return {"type": "Point", "coordinates": [lon, lat]}


def test_an_archived_month_checked_again_gives_the_same_answer(
    engine: Engine, tmp_path: Path
) -> None:
    august = datetime(2026, 8, 4, 10, tzinfo=CHINA)
    with Session(engine) as session, session.begin():
        unit = registry.create_root_unit(session=session, code="AR", name="归档测试")
        car = add_vehicle(session, unit, "浙A·C20003", tank_l=60, fuel_norm_l_100km=8)
        session.execute(text(partition_sql(datetime(2026, 8, 1, tzinfo=UTC))))
        for minutes in (-12, 3, 20):  # the nearest, 3 min after the fill, places the car
            session.execute(
                text(
                    "INSERT INTO position (vehicle_id, fix_time, device_id, received_at, point)"
                    " VALUES (:v, :t, 0, :t, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326))"
                ),
                {
                    "v": car.id,
                    "t": august + timedelta(minutes=minutes),
                    "lon": HERE[0] + (0.01 if minutes != 3 else 0),
                    "lat": HERE[1],
                },
            )
        _trips(session, car, august.replace(hour=0) - timedelta(days=1), 20, 2)
        _enter(session, unit, car, august, august, litres=30, station=_station(session, 650))
        car_id = car.id

    def distance() -> float:
        with Session(engine) as session:
            measured = session.scalar(
                select(Alert.measured).where(
                    Alert.vehicle_id == car_id, Alert.kind == "fuel_location_mismatch"
                )
            )
        assert measured is not None
        return float(measured["distance_m"])

    assert distance() == pytest.approx(650, abs=0.5)
    hot = distance()
    with Session(engine) as session:
        near = tracks.nearest(
            session,
            car_id,
            [
                august,
                august + timedelta(minutes=11, seconds=30),
                august + timedelta(minutes=35),
                august + timedelta(minutes=36),
            ],
            timedelta(minutes=15),
        )
    before_archive = [None if f is None else f.fix_time for f in near]
    assert before_archive == [
        august + timedelta(minutes=3),
        august + timedelta(minutes=3),
        august + timedelta(minutes=20),
        None,
    ]
    archive.archive_month(engine, archive.Store.open(str(tmp_path / "archive")), date(2026, 8, 1))
    with Session(engine) as session:
        assert session.scalar(text("SELECT count(*) FROM position")) == 0

    with Session(engine) as session:
        # The reader's nearest fixes, the archived month's as PostGIS gave them: the fill's, a
        # tie (the earlier wins), a window's end (included), nothing near.
        moments = [
            august,
            august + timedelta(minutes=11, seconds=30),
            august + timedelta(minutes=35),
            august + timedelta(minutes=36),
        ]
        near = tracks.nearest(session, car_id, moments, timedelta(minutes=15))
        assert [None if f is None else f.fix_time for f in near] == before_archive
    with Session(engine) as session, session.begin():
        counts = costs.recheck(
            session=session, vehicle_id=car_id, since=None, setup=_setup(session)
        )
    assert counts["added"] == {}
    assert counts["updated"] == {}
    assert counts["unchanged"]["fuel_location_mismatch"] == 1
    assert distance() == hot
    with Session(engine) as session:
        assert session.scalar(
            select(func.count()).select_from(Alert).where(Alert.vehicle_id == car_id)
        ) == sum(counts["unchanged"].values())
