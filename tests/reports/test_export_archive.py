"""The positions export reads archived months from their GeoParquet files: the same rows, the
same values as PostGIS held before the month left it, beside the hot ones; the cursor applies
to both."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from fleet.auth import Actor
from fleet.models import OrgUnit
from reports import export
from telematics import archive
from telematics.ingest import partition_sql
from tests.telematics.conftest import Fleetlet, clean_tracks, fleetlet  # noqa: F401

AUGUST = date(2026, 8, 1)
START = datetime(2026, 8, 1, tzinfo=UTC)
SEPTEMBER = datetime(2026, 9, 1, tzinfo=UTC)
NOW = datetime(2026, 12, 5, tzinfo=UTC)
COLUMNS = (
    "vehicle_id, device_id, fix_time, received_at, ST_X(point), ST_Y(point), speed_kmh,"
    " heading_deg, altitude_m, ignition, odometer_km, fuel_l, alarm_bits, status_bits,"
    " attributes::text"
)


@pytest.fixture
def fresh(fleetlet: Fleetlet, clean_tracks: None) -> Iterator[Fleetlet]:  # noqa: F811
    owner = create_engine(fleetlet.settings.owner_database)
    with owner.begin() as conn:
        conn.execute(text("DELETE FROM archive_partition"))
        conn.execute(text("DROP TABLE IF EXISTS position_p202608"))
        conn.execute(text("DROP TABLE IF EXISTS position_p202609"))
    owner.dispose()
    return fleetlet


def _fill(fleet: Fleetlet, month: datetime, n: int, received: datetime) -> None:
    """`n` fixes a vehicle over the first day of `month`: some without a position, REAL values
    that a float32 does not print back as written, attributes."""
    with fleet.engine.begin() as conn:
        conn.execute(text(partition_sql(month)))
        conn.execute(
            text(
                "INSERT INTO position (vehicle_id, fix_time, device_id, received_at, point,"
                " speed_kmh, heading_deg, altitude_m, ignition, odometer_km, fuel_l,"
                " alarm_bits, status_bits, attributes)"
                " SELECT v, :month + k * interval '1 minute', 1, :received + k * interval '1 ms',"
                " CASE WHEN k % 13 = 0 THEN NULL ELSE ST_SetSRID(ST_MakePoint("
                "   120.1 + v * 0.01 + k * 0.000013, 30.2 + k * 0.0000071), 4326) END,"
                " CASE WHEN k % 11 = 0 THEN NULL ELSE (k % 120) * 0.1 END, (k * 7) % 360,"
                " 12.3 + (k % 5), k % 3 <> 0, 1000.05 + k * 0.0123, 45.6,"
                " CASE WHEN k % 50 = 0 THEN -2147483648 ELSE 0 END, 3,"
                " CASE WHEN k % 4 = 0 THEN jsonb_build_object('sat', k % 12, 'note', '一 \"x\"')"
                "  END"
                " FROM unnest(CAST(:vehicles AS int[])) v, generate_series(0, :n - 1) k"
            ),
            {
                "vehicles": sorted({t.vehicle_id for t in fleet.targets}),
                "n": n,
                "month": month,
                "received": received,
            },
        )


def _stored(fleet: Fleetlet) -> list[tuple[object, ...]]:
    with fleet.engine.connect() as conn:
        return sorted(tuple(r) for r in conn.execute(text(f"SELECT {COLUMNS} FROM position")))


def _exported(fleet: Fleetlet, cursor: str | None, now: datetime) -> tuple[list[tuple], str]:
    """The CSV export as the root's administrator, parsed back to typed tuples."""
    with Session(fleet.engine) as session:
        root = session.get(OrgUnit, fleet.unit_id)
        assert root is not None
        plan = export.plan(
            session=session,
            actor=Actor.system(root),
            kind="positions",
            format="csv",
            since=None if cursor else START,
            until=None if cursor else SEPTEMBER + timedelta(days=30),
            unit_id=None,
            cursor=cursor,
            now=now,
            settle=timedelta(seconds=120),
        )
        body = b"".join(export.stream(session, plan)).decode()
    rows = []
    for r in csv.DictReader(io.StringIO(body)):
        rows.append(
            (
                int(r["vehicle_id"]),
                int(r["device_id"]),
                datetime.fromisoformat(r["fix_time"]),
                datetime.fromisoformat(r["received_at"]),
                *(
                    None if r[name] == "" else float(r[name])
                    for name in ("lon", "lat", "speed_kmh", "heading_deg", "altitude_m")
                ),
                None if r["ignition"] == "" else r["ignition"] == "true",
                *(None if r[name] == "" else float(r[name]) for name in ("odometer_km", "fuel_l")),
                int(r["alarm_bits"]),
                int(r["status_bits"]),
                r["attributes"] or None,
            )
        )
    return sorted(rows), plan.next_cursor


def test_archived_months_are_exported_as_postgis_held_them_and_the_cursor_spans_both(
    fresh: Fleetlet, tmp_path: Path
):
    _fill(fresh, START, 200, received=START + timedelta(hours=1))
    august = _stored(fresh)
    archive.archive_month(fresh.engine, archive.Store.open(str(tmp_path / "a")), AUGUST)
    with fresh.engine.connect() as conn:
        hot = conn.scalar(
            text("SELECT count(*) FROM position WHERE fix_time < :e"), {"e": SEPTEMBER}
        )
    assert hot == 0  # August is only in its files now
    _fill(fresh, SEPTEMBER, 50, received=SEPTEMBER + timedelta(hours=1))
    september = sorted(set(_stored(fresh)))

    rows, cursor = _exported(fresh, None, NOW)

    assert len(rows) == len(august) + len(september) == 3 * 250
    assert rows == sorted(august + september)

    # A late fix for archived August received now: the next pull hands out that and nothing else;
    # the archive's rows are below the cursor.
    late = NOW + timedelta(hours=1)
    with fresh.engine.begin() as conn:
        conn.execute(text(partition_sql(START)))
        conn.execute(
            text(
                "INSERT INTO position (vehicle_id, fix_time, device_id, received_at, point)"
                " VALUES (:v, :t, 1, :r, ST_SetSRID(ST_MakePoint(120.5, 30.5), 4326))"
            ),
            {"v": fresh.targets[0].vehicle_id, "t": START + timedelta(days=3), "r": late},
        )
    again, _ = _exported(fresh, cursor, late + timedelta(minutes=5))
    assert [(r[0], r[2], r[3], r[4], r[5]) for r in again] == [
        (fresh.targets[0].vehicle_id, START + timedelta(days=3), late, 120.5, 30.5)
    ]
