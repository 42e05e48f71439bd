"""Tiered storage: a month of positions archived to verified GeoParquet and read back through
DuckDB exactly as PostGIS gave it; restored; a late fix made a second part; a crash at every step
leaving the partition or a verified archive; the database refusing what it was not shown."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import DBAPIError, ProgrammingError

from telematics import archive, tracks
from telematics.ingest import partition_sql
from tests.telematics.conftest import Fleetlet

AUGUST = date(2026, 8, 1)
START = datetime(2026, 8, 1, tzinfo=UTC)
END = datetime(2026, 9, 1, tzinfo=UTC)


def _fill(engine: Engine, vehicles: list[int], month: datetime = START, per_day: int = 40) -> None:
    """Fixes over the month for each vehicle: some without a position, REAL values that a
    float32 does not print back as written, attributes, two devices at one moment."""
    with engine.begin() as conn:
        conn.execute(text(partition_sql(month)))
        conn.execute(
            text(
                "INSERT INTO position (vehicle_id, fix_time, device_id, received_at, point,"
                " speed_kmh, heading_deg, altitude_m, ignition, odometer_km, fuel_l, alarm_bits,"
                " status_bits, attributes)"
                " SELECT v, t, CASE WHEN k % 97 = 0 THEN 2 ELSE 1 END, t + interval '1.25 s',"
                " CASE WHEN k % 13 = 0 THEN NULL ELSE ST_SetSRID(ST_MakePoint("
                "   120.1 + v * 0.01 + k * 0.000013, 30.2 + k * 0.0000071), 4326) END,"
                " CASE WHEN k % 11 = 0 THEN NULL ELSE (k % 120) * 0.1 END,"
                " (k * 7) % 360, 12.3 + (k % 5), k % 3 <> 0, 1000.05 + k * 0.0123,"
                " CASE WHEN k % 7 = 0 THEN NULL ELSE 45.6 END,"
                " CASE WHEN k % 50 = 0 THEN -2147483648 ELSE 0 END, 3,"
                " CASE WHEN k % 4 = 0 THEN jsonb_build_object('sat', k % 12, 'note', '一 \"x\"')"
                "  END"
                " FROM unnest(CAST(:vehicles AS int[])) v,"
                " generate_series(0, :n - 1) k,"
                " LATERAL (SELECT :start + k * (interval '1 month' / :n)"
                "  + CASE WHEN k % 97 = 0 THEN interval '0' ELSE interval '0.000001 s' END) s(t)"
            ),
            {"vehicles": vehicles, "n": per_day * 30, "start": month},
        )
        # A second device reporting the very same moment as the first (k % 97 = 0 is device 2
        # at a whole moment; device 1 there too).
        conn.execute(
            text(
                "INSERT INTO position (vehicle_id, fix_time, device_id, received_at)"
                " SELECT vehicle_id, fix_time, 1, received_at FROM position"
                " WHERE device_id = 2 AND fix_time >= :s AND fix_time < :s + interval '1 month'"
            ),
            {"s": month},
        )


def _everything(engine: Engine, vehicles: list[int]) -> dict[int, list[tracks.Fix]]:
    with engine.connect() as conn:
        return {v: tracks.fixes(conn, v, START, END) for v in vehicles}


def _dump(engine: Engine) -> list[tuple[object, ...]]:
    with engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                text(
                    "SELECT vehicle_id, fix_time, device_id, received_at, ST_AsEWKB(point),"
                    " speed_kmh, heading_deg, altitude_m, ignition, odometer_km, fuel_l,"
                    " alarm_bits, status_bits, attributes FROM position"
                    " WHERE fix_time >= :s AND fix_time < :e"
                    " ORDER BY vehicle_id, fix_time, device_id"
                ),
                {"s": START, "e": END},
            )
        ]


def _partitions(engine: Engine) -> list[date]:
    from sqlalchemy.orm import Session

    with Session(engine) as session:
        return archive.hot_partitions(session)


def _states(engine: Engine) -> list[tuple[int, str]]:
    with engine.connect() as conn:
        return [
            (r.part, r.state)
            for r in conn.execute(
                text("SELECT part, state FROM archive_partition WHERE month = :m ORDER BY part"),
                {"m": AUGUST},
            )
        ]


@pytest.fixture
def fresh(fleetlet: Fleetlet, clean_tracks: None) -> Iterator[Fleetlet]:
    owner = create_engine(fleetlet.settings.owner_database)
    with owner.begin() as conn:
        conn.execute(text("DELETE FROM archive_partition"))
        conn.execute(text("DROP TABLE IF EXISTS position_p202608"))
    owner.dispose()
    return fleetlet


@pytest.fixture
def store(tmp_path: Path) -> archive.Store:
    return archive.Store.open(str(tmp_path / "archive"))


def _vehicles(fleet: Fleetlet) -> list[int]:
    return sorted({t.vehicle_id for t in fleet.targets})


def test_a_month_is_archived_verified_and_read_back_as_it_was(
    fresh: Fleetlet, store: archive.Store
):
    vehicles = _vehicles(fresh)
    _fill(fresh.engine, vehicles)
    before = _everything(fresh.engine, vehicles)
    assert sum(len(v) for v in before.values()) == 3 * 1200 + 3 * 13  # the doubled moments
    steps: list[str] = []
    progress: list[tuple[int, int]] = []

    done = archive.archive_month(
        fresh.engine,
        store,
        AUGUST,
        step=steps.append,
        progress=lambda d, t: progress.append((d, t)),
    )

    assert steps == list(archive.STEPS)
    assert progress[-1] == (done.rows, done.rows)
    assert done.rows == 3 * 1200 + 3 * 13
    assert AUGUST not in _partitions(fresh.engine)
    assert _states(fresh.engine) == [(1, "archived")]
    after = _everything(fresh.engine, vehicles)
    assert after == before  # every value, every type, the same order
    assert [type(x) for x in after[vehicles[0]][0]] == [type(x) for x in before[vehicles[0]][0]]

    # Hive-partitioned by month, GeoParquet, zstd, sorted by vehicle and time; nothing left over.
    files = sorted((Path(store.root) / "position").rglob("*.parquet"))
    assert [f.relative_to(store.root).as_posix() for f in files] == [
        "position/month=2026-08/part-1-0000.parquet"
    ]
    assert not (Path(store.root) / "_incoming" / "position" / "month=2026-08").exists()
    parquet = pq.ParquetFile(files[0])
    geo = json.loads(parquet.schema_arrow.metadata[b"geo"])
    assert geo["primary_column"] == "point"
    assert geo["columns"]["point"]["encoding"] == "WKB"
    assert parquet.metadata.row_group(0).column(0).compression == "ZSTD"
    keys = parquet.read(columns=["vehicle_id", "fix_time", "device_id"]).to_pylist()
    assert keys == sorted(keys, key=lambda r: (r["vehicle_id"], r["fix_time"], r["device_id"]))
    with fresh.engine.connect() as conn:
        recorded = conn.execute(text("SELECT files, rows FROM archive_partition")).one()
        entry = conn.execute(
            text("SELECT actor, action, entity, entity_id FROM audit_entry ORDER BY id DESC")
        ).first()
    assert recorded.rows == done.rows
    assert recorded.files[0]["sha256"] == store.sha256(str(files[0]))
    assert tuple(entry) == ("system", "archive", "position", "2026-08")

    # A window of the month, located fixes only, a limit: the same as PostGIS would answer.
    with fresh.engine.connect() as conn:
        window = tracks.fixes(
            conn,
            vehicles[1],
            START + timedelta(days=3),
            START + timedelta(days=4),
            located=True,
            limit=17,
        )
    expected = [
        f
        for f in before[vehicles[1]]
        if START + timedelta(days=3) <= f.fix_time
        and f.fix_time < START + timedelta(days=4)
        and f.lon is not None
    ][:17]
    assert window == expected


def test_restore_brings_the_month_back_row_for_row(fresh: Fleetlet, store: archive.Store):
    vehicles = _vehicles(fresh)
    _fill(fresh.engine, vehicles, per_day=10)
    rows = _dump(fresh.engine)
    archive.archive_month(fresh.engine, store, AUGUST)
    assert _dump(fresh.engine) == []

    restored = archive.restore_month(fresh.engine, store, AUGUST)

    assert restored == len(rows)
    assert _dump(fresh.engine) == rows
    assert AUGUST in _partitions(fresh.engine)
    assert _states(fresh.engine) == [(1, "restored")]
    with fresh.engine.connect() as conn:
        assert tracks.archived_files(conn, START, END) == []
    # Archived again, it is the month's second part.
    archive.archive_month(fresh.engine, store, AUGUST)
    assert _states(fresh.engine) == [(1, "restored"), (2, "archived")]
    with pytest.raises(Exception, match="not archived"):
        archive.restore_month(fresh.engine, store, date(2026, 7, 1))


def test_a_late_fix_for_an_archived_month_is_kept_and_archived_as_the_next_part(
    fresh: Fleetlet, store: archive.Store
):
    vehicles = _vehicles(fresh)
    _fill(fresh.engine, vehicles, per_day=5)
    archive.archive_month(fresh.engine, store, AUGUST)
    late = datetime(2026, 8, 15, 12, 0, 0, 500, tzinfo=UTC)
    with fresh.engine.begin() as conn:
        conn.execute(text(partition_sql(START)))
        conn.execute(
            text(
                "INSERT INTO position (vehicle_id, fix_time, device_id, received_at, point)"
                " VALUES (:v, :t, 1, :t, ST_SetSRID(ST_MakePoint(120.5, 30.5), 4326))"
            ),
            {"v": vehicles[0], "t": late},
        )
    with fresh.engine.connect() as conn:
        both = tracks.fixes(conn, vehicles[0], START, END)
    assert late in [f.fix_time for f in both]
    assert [f.fix_time for f in both] == sorted(f.fix_time for f in both)

    archive.archive_month(fresh.engine, store, AUGUST)

    assert _states(fresh.engine) == [(1, "archived"), (2, "archived")]
    with fresh.engine.connect() as conn:
        assert tracks.fixes(conn, vehicles[0], START, END) == both


def test_the_database_checks_what_the_archiver_says(fresh: Fleetlet, store: archive.Store):
    vehicles = _vehicles(fresh)
    _fill(fresh.engine, vehicles, per_day=2)
    record = "SELECT fleet_archive_record(:m, 1, :rows, :first, :last, '[]', 0, 'x')"
    with fresh.engine.connect() as conn:
        rows, first, last = conn.execute(
            text(
                "SELECT count(*), min(fix_time), max(fix_time) FROM position"
                " WHERE fix_time >= :s AND fix_time < :e"
            ),
            {"s": START, "e": END},
        ).one()
    with pytest.raises(DBAPIError, match="holds"), fresh.engine.begin() as conn:
        conn.execute(text(record), {"m": AUGUST, "rows": rows - 1, "first": first, "last": last})
    with pytest.raises(DBAPIError, match="not a verified archive"), fresh.engine.begin() as conn:
        conn.execute(text("SELECT fleet_archive_drop(:m, 1)"), {"m": AUGUST})
    with fresh.engine.begin() as conn:
        conn.execute(text(record), {"m": AUGUST, "rows": rows, "first": first, "last": last})
    # A fix since the record: the drop is refused and the partition stays.
    with fresh.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO position (vehicle_id, fix_time, device_id, received_at)"
                " VALUES (:v, :t, 1, :t)"
            ),
            {"v": vehicles[0], "t": datetime(2026, 8, 20, tzinfo=UTC)},
        )
    with pytest.raises(DBAPIError, match="changed since"), fresh.engine.begin() as conn:
        conn.execute(text("SELECT fleet_archive_drop(:m, 1)"), {"m": AUGUST})
    assert AUGUST in _partitions(fresh.engine)
    # The processes' role cannot write the record itself.
    with pytest.raises(ProgrammingError, match="permission denied"), fresh.engine.begin() as conn:
        conn.execute(text("UPDATE archive_partition SET state = 'archived'"))
    # The archiver starts the month over and archives what is there now.
    archive.archive_month(fresh.engine, store, AUGUST)
    assert _states(fresh.engine) == [(1, "archived")]


def test_an_archive_on_another_filesystem_goes_through_the_same_path(fresh: Fleetlet):
    """fsspec's in-memory filesystem stands for S3: written, verified, read back by DuckDB
    through the filesystem registered with it."""
    vehicles = _vehicles(fresh)
    _fill(fresh.engine, vehicles, per_day=3)
    before = _everything(fresh.engine, vehicles)
    remote = archive.Store.open("memory://fleet-archive-test")
    assert not remote.local

    archive.archive_month(fresh.engine, remote, AUGUST)

    assert remote.fs.exists("/fleet-archive-test/position/month=2026-08/part-1-0000.parquet")
    assert _everything(fresh.engine, vehicles) == before


# ---- a crash at every step ----------------------------------------------------------------------

DRIVER = """
import os, signal, sys
from datetime import date
from fleet.db import make_engine
from fleet.settings import Settings
from telematics import archive

settings = Settings(database_url=sys.argv[1])
store = archive.Store.open(sys.argv[2])
def step(name):
    if name == sys.argv[3]:
        os.kill(os.getpid(), signal.SIGKILL)
archive.archive_month(make_engine(settings), store, date(2026, 8, 1), step=step)
"""


@pytest.mark.parametrize("crash_after", archive.STEPS[:-1])
def test_a_crash_at_any_step_leaves_the_partition_or_a_verified_archive(
    fresh: Fleetlet, store: archive.Store, crash_after: str
):
    vehicles = _vehicles(fresh)
    _fill(fresh.engine, vehicles, per_day=8)
    before = _everything(fresh.engine, vehicles)
    rows = _dump(fresh.engine)
    url = fresh.settings.database_url

    killed = subprocess.run(
        [sys.executable, "-c", DRIVER, url, store.root, crash_after],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )

    assert killed.returncode == -signal.SIGKILL, killed.stderr
    states = _states(fresh.engine)
    if crash_after == "recorded":
        assert states == [(1, "verified")]
    else:
        assert states == []
    assert _dump(fresh.engine) == rows  # the partition is whole
    assert _everything(fresh.engine, vehicles) == before

    archive.archive_month(fresh.engine, store, AUGUST)  # the next run finishes the month

    assert _states(fresh.engine) == [(1, "archived")]
    assert AUGUST not in _partitions(fresh.engine)
    assert _everything(fresh.engine, vehicles) == before
    assert sorted(p.name for p in (Path(store.root) / "position").rglob("*.parquet")) == [
        "part-1-0000.parquet"
    ]


def test_months_due_keep_the_hot_months(fresh: Fleetlet):
    from sqlalchemy.orm import Session

    _fill(fresh.engine, _vehicles(fresh), per_day=1)
    now = datetime(2026, 12, 5, 3, tzinfo=UTC)
    with Session(fresh.engine) as session:
        assert AUGUST in archive.months_due(session, now, 3)  # September to November are hot
        assert AUGUST not in archive.months_due(session, now, 4)
        assert AUGUST not in archive.months_due(session, datetime(2026, 8, 31, tzinfo=UTC), 0)
        assert AUGUST in archive.months_due(session, datetime(2026, 9, 1, tzinfo=UTC), 0)
    assert archive.month_of("2026-08") == AUGUST
    with pytest.raises(Exception, match="not a month"):
        archive.month_of("2026-13")


def test_the_command_line_archives_lists_verifies_and_restores(
    fresh: Fleetlet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from typer.testing import CliRunner

    from app.cli import app

    runner = CliRunner()
    vehicles = _vehicles(fresh)
    _fill(fresh.engine, vehicles, per_day=4)
    rows = _dump(fresh.engine)
    monkeypatch.setenv("FLEET_ARCHIVE_URL", str(tmp_path / "cli-archive"))
    # The command's clock, pinned after August: which months it may archive depends on today.
    monkeypatch.setattr("app.cli.archive.utcnow", lambda: datetime(2026, 12, 5, 2, tzinfo=UTC))

    def fleet(*args: str) -> str:
        result = runner.invoke(app, list(args), obj=fresh.settings)
        assert result.exit_code == 0, result.output
        return result.output

    assert "2026-08: 366 rows in 1 files" in fleet("archive", "--month", "2026-08")
    assert "nothing to archive" in fleet("archive", "--hot-months", "0")  # nothing left
    listed = fleet("archive", "list")
    assert "2026-08\tpart 1\tarchived\t366 rows" in listed
    assert "part 1: intact" in fleet("archive", "verify")

    assert "2026-08: 366 rows restored" in fleet("archive", "restore", "2026-08")
    assert _dump(fresh.engine) == rows
    bad = runner.invoke(app, ["archive", "restore", "2026-13"], obj=fresh.settings)
    assert bad.exit_code == 1
    assert "not a month" in bad.output

    assert "part 2" in fleet("archive", "--hot-months", "0")
    file = next((tmp_path / "cli-archive").rglob("part-2-*.parquet"))
    file.write_bytes(file.read_bytes()[:-9] + b"corrupted")
    broken = runner.invoke(app, ["archive", "verify"], obj=fresh.settings)
    assert broken.exit_code == 1
    assert "SHA-256" in broken.output


def test_the_daily_maintenance_archives_what_is_due(fresh: Fleetlet, tmp_path: Path):
    from telematics.settings import TelematicsSettings

    _fill(fresh.engine, _vehicles(fresh), per_day=1)
    settings = TelematicsSettings(hot_months=3, archive_url=str(tmp_path / "daily"))

    assert archive.archive_due(fresh.engine, settings, datetime(2026, 11, 30, tzinfo=UTC)) == []
    done = archive.archive_due(fresh.engine, settings, datetime(2026, 12, 1, tzinfo=UTC))

    assert [(d.month, d.part) for d in done] == [(AUGUST, 1)]
    assert (tmp_path / "daily" / "position" / "month=2026-08").is_dir()


def test_an_archive_storage_that_cannot_be_opened_is_a_clear_error(
    fresh: Fleetlet, monkeypatch: pytest.MonkeyPatch
):
    from typer.testing import CliRunner

    from app.cli import app

    with pytest.raises(Exception, match="cannot be opened"):
        archive.Store.open("nosuchscheme://bucket/archive")
    monkeypatch.setenv("FLEET_ARCHIVE_URL", "nosuchscheme://bucket/archive")
    result = CliRunner().invoke(app, ["archive", "--hot-months", "0"], obj=fresh.settings)
    assert result.exit_code == 1
    assert "cannot be opened" in result.output


def test_a_damaged_archive_file_is_refused_whole_naming_the_file(
    fresh: Fleetlet, store: archive.Store
):
    from fleet.errors import http_status

    vehicles = _vehicles(fresh)
    _fill(fresh.engine, vehicles, per_day=4)
    archive.archive_month(fresh.engine, store, AUGUST)
    file = next(Path(store.root).rglob("part-1-*.parquet"))
    file.write_bytes(file.read_bytes()[: len(file.read_bytes()) // 2])  # a truncated copy

    with fresh.engine.connect() as conn:
        with pytest.raises(tracks.ArchiveUnreadable) as read:
            tracks.fixes(conn, vehicles[0], START, END)
        with pytest.raises(tracks.ArchiveUnreadable):
            tracks.vehicles(conn, START, END)
        # A window that no archived month meets is read from PostGIS as ever.
        assert tracks.fixes(conn, vehicles[0], END, END + timedelta(days=1)) == []
    assert "month=2026-08/part-1-0000.parquet" in read.value.message
    assert "fleet archive verify" in read.value.message
    assert http_status(read.value) == 503

    file.unlink()  # gone altogether
    with fresh.engine.connect() as conn, pytest.raises(tracks.ArchiveUnreadable, match="part-1"):
        tracks.fixes(conn, vehicles[0], START, END)
