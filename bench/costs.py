"""Importing a month's fuel-card statement for a large pool.

A statement of ROWS fills for VEHICLES vehicles, each with two trips a working day in the month:
parsing alone (the baseline), then the whole import (vehicle lookup, insert, linking to trips and
orders, the seven fuel checks) into a database of its own; rows per second and the ratio.

    python -m bench.costs [--vehicles 500] [--rows 5000]
"""

from __future__ import annotations

import random
import sys
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from geoalchemy2.shape import from_shape
from shapely.geometry import LineString, Point
from sqlalchemy import text
from sqlalchemy.orm import Session

from bench._support import bench_settings, options, parse, table
from costs import service as costs
from costs import statements
from dispatch.settings import DispatchSettings
from fleet import registry
from fleet.auth import Actor
from fleet.db import make_engine
from fleet.models import OrgUnit
from fleet.schemas import VehicleCreate
from geofence import service as geofence_service
from geofence.settings import GeofenceSettings
from telematics.models import Trip

ZONE = ZoneInfo("Asia/Shanghai")
MONTH = datetime(2026, 10, 1, tzinfo=ZONE)
HEADER = "交易流水号,交易时间,车牌号,卡号,加油站,油品,数量(升),单价,金额,里程,纬度,经度"


def statement(plates: list[str], rows: int, rng: random.Random) -> bytes:
    lines = ["中国石化加油卡消费明细 2026年10月", HEADER]
    for n in range(rows):
        plate = plates[n % len(plates)]
        at = MONTH + timedelta(days=rng.randrange(31), hours=rng.uniform(7, 19))
        litres = round(rng.uniform(15, 55), 2)
        price = 7.58
        lines.append(
            f"B{n:07d},{at:%Y-%m-%d %H:%M:%S},{plate},{1_000_000 + n % len(plates)},"
            f"中国石化 第{n % 97}加油站,92#,{litres:.2f},{price},{litres * price:.2f},,"
            f"{30.25 + rng.uniform(-0.05, 0.05):.6f},{120.17 + rng.uniform(-0.05, 0.05):.6f}"
        )
    return "\n".join(lines).encode("utf-8")


def fleet(session: Session, vehicles: int, rng: random.Random) -> list[str]:
    root = registry.create_root_unit(session=session, code="BENCH", name="基准单位")
    system = Actor.system(root)
    plates = []
    line = from_shape(LineString([(120.17, 30.25), (120.20, 30.26)]), srid=4326)
    point = from_shape(Point(120.17, 30.25), srid=4326)
    for v in range(vehicles):
        plate = f"浙A·B{v:05d}"
        vehicle = registry.create_vehicle(
            session=session,
            actor=system,
            data=VehicleCreate(
                plate=plate,
                category="general",
                body_class="sedan",
                seats=4,
                energy="petrol",
                tank_l=60,
                fuel_norm_l_100km=8,
                unit_id=root.id,
            ),
        )
        plates.append(plate)
        trips = []
        for day in range(31):
            for hour in (9, 14):
                start = (MONTH + timedelta(days=day, hours=hour)).astimezone(UTC)
                trips.append(
                    Trip(
                        vehicle_id=vehicle.id,
                        start_at=start,
                        end_at=start + timedelta(hours=1),
                        start_point=point,
                        end_point=point,
                        path=line,
                        distance_m=rng.uniform(5_000, 40_000),
                        duration_s=3600.0,
                    )
                )
        session.add_all(trips)
    session.commit()
    return plates


def main(argv: list[str] | None = None) -> None:
    parser = options(__doc__)
    parser.add_argument("--vehicles", type=int, default=500)
    parser.add_argument("--rows", type=int, default=5000)
    args = parse(parser, argv)
    rng = random.Random(6)
    settings = bench_settings()
    engine = make_engine(settings)
    try:
        with Session(engine) as session:
            plates = fleet(session, args.vehicles, rng)
            data = statement(plates, args.rows, rng)
            fmt = statements.BUILTIN_FORMATS["sinopec"]
            start = time.perf_counter()
            rows, errors = statements.parse(
                data, "bench.csv", fmt, zone=ZONE, now=datetime.now(UTC)
            )
            parse_s = time.perf_counter() - start
            assert not errors, errors[:3]
            root = session.execute(text("SELECT id FROM org_unit WHERE code = 'BENCH'")).scalar()
            unit = session.get(OrgUnit, root)
            assert unit is not None
            actor = Actor.system(unit)
            setup = costs.CheckSetup(
                settings=DispatchSettings(),
                calendar=geofence_service.working_calendar(
                    session=session, settings=GeofenceSettings()
                ),
                zone=ZONE,
            )
            start = time.perf_counter()
            result = costs.import_statement(
                session=session,
                actor=actor,
                data=data,
                filename="bench.csv",
                issuer="sinopec",
                setup=setup,
                now=datetime.now(UTC),
            )
            session.commit()
            import_s = time.perf_counter() - start
    finally:
        engine.dispose()
    print(
        f"statement of {len(rows):,} fills for {args.vehicles:,} vehicles"
        f" ({args.vehicles * 62:,} trips in the month); {len(result['alerts']):,} alerts raised"
    )
    print(
        table(
            [
                ("step", "seconds", "rows/s", "x parse"),
                ("parse (baseline)", f"{parse_s:.2f}", f"{len(rows) / parse_s:,.0f}", "1.0"),
                (
                    "import: link + checks",
                    f"{import_s:.2f}",
                    f"{len(rows) / import_s:,.0f}",
                    f"{import_s / parse_s:.1f}",
                ),
            ]
        )
    )


if __name__ == "__main__":
    main(sys.argv[1:])
