"""The command line against a database of its own: migrations, users, demo seed, audit verify."""

from __future__ import annotations

import logging
import re
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from app.cli import Exit, app
from fleet.models import Device, Energy, OrgUnit, UserAccount, Vehicle
from fleet.settings import Settings

runner = CliRunner()


def fleet(settings: Settings, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args), obj=settings)
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def cli_settings(scratch_settings: Settings) -> Settings:
    code, out = fleet(scratch_settings, "db", "upgrade")
    assert code == 0, out
    return scratch_settings


def test_unreachable_database_is_a_clear_error(settings: Settings):
    nowhere = settings.model_copy(
        update={"database_url": "postgresql+psycopg://postgres@127.0.0.1:9/fleet"}
    )
    code, out = fleet(nowhere, "db", "upgrade")
    assert code == Exit.DATABASE_UNREACHABLE
    assert "unreachable at 127.0.0.1:9/fleet" in out
    code, out = fleet(nowhere, "audit", "verify")
    assert code == Exit.DATABASE_UNREACHABLE


def create_user(settings: Settings, username: str, *roles: str) -> tuple[int, str]:
    args = ["user", "create", "--username", username, "--password", "long-enough"]
    for role in roles:
        args += ["--role", role]
    return fleet(settings, *args)


def test_user_create_makes_a_root_unit_on_an_empty_installation(cli_settings: Settings):
    code, out = create_user(cli_settings, "boss", "admin", "supervisor")
    assert code == 0, out
    assert "created user boss" in out
    code, out = create_user(cli_settings, "boss", "admin")
    assert code == Exit.FAILED
    assert "username is taken" in out
    code, out = create_user(cli_settings, "x1", "king")
    assert code != 0


def test_seed_demo_is_idempotent_and_believable(cli_settings: Settings):
    code, out = fleet(cli_settings, "seed", "demo")
    assert code == 0, out
    engine = create_engine(cli_settings.database_url)
    with Session(engine) as session:
        vehicles = session.scalars(select(Vehicle)).all()
        first = (len(vehicles), session.query(Device).count(), session.query(UserAccount).count())
    code, out = fleet(cli_settings, "seed", "demo")
    assert code == 0
    assert "nothing new" in out
    with Session(engine) as session:
        vehicles = session.scalars(select(Vehicle)).all()
        again = (len(vehicles), session.query(Device).count(), session.query(UserAccount).count())
        roles = Counter(r for u in session.scalars(select(UserAccount)) for r in u.roles)
        protocols = {d.protocol for d in session.scalars(select(Device))}
        units = session.query(OrgUnit).count()
        fence_kinds = Counter(session.scalars(text("SELECT kind FROM fence")))
        order_states = Counter(session.scalars(text("SELECT status FROM trip_order")))
        rules = session.scalar(text("SELECT count(*) FROM approval_rule"))
    engine.dispose()
    assert first == again
    assert fence_kinds["permitted_region"] >= 1
    assert fence_kinds["depot"] == 4
    assert fence_kinds["prohibited"] >= 1
    assert order_states == {"approved": 2, "submitted": 2, "completed": 1}
    assert rules == 4
    assert 35 <= len(vehicles) <= 45
    assert {v.category for v in vehicles} >= {
        "confidential_comms",
        "emergency",
        "enforcement",
        "special",
        "general",
    }
    assert {v.body_class for v in vehicles} >= {"sedan", "suv", "mpv", "minibus", "bus", "truck"}
    new_energy = sum(1 for v in vehicles if Energy(v.energy).new_energy)
    assert new_energy / len(vehicles) >= 0.30
    # Each car charged from the grid has an energy norm to check its charging against.
    assert all(
        (v.energy_norm_kwh_100km is not None) == Energy(v.energy).new_energy for v in vehicles
    )
    assert all(
        roles[r] >= 1
        for r in ("admin", "requester", "approver", "dispatcher", "driver", "supervisor")
    )
    assert protocols == {"jt808", "osmand"}
    assert units >= 4


def test_report_order_writes_the_dossier_of_the_completed_demo_order(
    cli_settings: Settings, tmp_path
):
    import json as jsonlib

    import numpy as np
    import pypdfium2

    fleet(cli_settings, "seed", "demo")
    engine = create_engine(cli_settings.database_url)
    with engine.connect() as conn:
        order_id = conn.execute(
            text("SELECT id FROM trip_order WHERE status = 'completed'")
        ).scalar_one()
        plate = conn.execute(
            text(
                "SELECT v.plate FROM assignment a JOIN vehicle v ON v.id = a.vehicle_id"
                " WHERE a.order_id = :o"
            ),
            {"o": order_id},
        ).scalar_one()
    engine.dispose()
    target = tmp_path / "dossier.json"
    code, out = fleet(
        cli_settings, "report", "order", str(order_id), "--format", "json", "--out", str(target)
    )
    assert code == 0, out
    dossier = jsonlib.loads(target.read_text(encoding="utf-8"))
    assert dossier["order"]["status"] == "completed"
    assert dossier["approvals"]
    assert all(a["approved"] for a in dossier["approvals"])
    assert dossier["assignment"]["vehicle"]["plate"] == plate
    assert dossier["assignment"]["reason"]  # the dispatcher overrode the suggestion
    assert dossier["route"]["planned"]
    assert len(dossier["route"]["driven"]) == 2
    assert dossier["figures"]["distance_m"] > 5_000
    kinds = {c["kind"] for c in dossier["costs"]["items"]}
    assert kinds == {"fuel", "parking"}
    assert dossier["costs"]["total"] == pytest.approx(
        sum(c["allocated"] for c in dossier["costs"]["items"])
    )
    [alert] = dossier["alerts"]
    assert alert["review"] == "dismissed"
    assert alert["reviews"][0]["reason"]
    actions = [e["action"] for e in dossier["audit"]["entries"] if e["entity"] == "trip_order"]
    assert actions[:2] == ["create", "submit"]
    assert actions[-2:] == ["start", "finish"]
    assert {"assign", "approve"} <= set(actions)
    assert {e["entity"] for e in dossier["audit"]["entries"]} == {
        "trip_order",
        "alert",
        "cost_record",
    }
    assert dossier["audit"]["verification"]["ok"] is True
    assert dossier["audit"]["verification"]["since_checkpoint"] is None  # no key configured

    # With a signing key and a checkpoint, the chain is verified from that checkpoint on.
    key, checkpoints = tmp_path / "key.pem", tmp_path / "checkpoints.jsonl"
    signed = cli_settings.model_copy(
        update={"audit_signing_key_file": str(key), "audit_checkpoint_file": str(checkpoints)}
    )
    assert fleet(signed, "audit", "keygen", str(key))[0] == 0
    code, out = fleet(signed, "audit", "checkpoint")
    assert code == 0, out
    code, out = fleet(
        signed, "report", "order", str(order_id), "--format", "json", "--out", str(target)
    )
    assert code == 0, out
    pinned = jsonlib.loads(target.read_text(encoding="utf-8"))["audit"]["verification"]
    assert pinned["ok"] is True
    assert pinned["since_checkpoint"]["entry_id"] > 0
    assert "from the checkpoint" in pinned["message"]
    # Each export from the command line is itself recorded, as the vehicle's read.
    engine = create_engine(cli_settings.database_url)
    with engine.connect() as conn:
        reads = (
            conn.execute(
                text(
                    "SELECT after FROM audit_entry WHERE action IN ('read', 'export')"
                    " AND after->>'what' = 'order_dossier' ORDER BY id"
                )
            )
            .scalars()
            .all()
        )
    engine.dispose()
    assert len(reads) == 2
    assert reads[-1]["client"].startswith("command line (")
    assert reads[-1]["order_id"] == order_id

    pdf = tmp_path / "dossier.pdf"
    code, out = fleet(cli_settings, "report", "order", str(order_id), "--out", str(pdf))
    assert code == 0, out
    document = pypdfium2.PdfDocument(pdf.read_bytes())
    try:
        page = document[0]
        pixels = page.render(scale=1).to_numpy()
        text_of_pages = "".join(
            document[i].get_textpage().get_text_range() for i in range(len(document))
        )
    finally:
        document.close()
    ink = (pixels[..., :3] < 200).any(axis=-1).mean()
    assert ink > 0.01, f"page 1 is nearly blank ({ink:.2%} ink)"
    assert plate in text_of_pages
    assert np.asarray(pixels).shape[0] > 500


def test_audit_verify_passes_then_names_a_tampered_entry(cli_settings: Settings):
    fleet(cli_settings, "seed", "demo")
    code, out = fleet(cli_settings, "audit", "verify")
    assert code == 0, out
    assert "audit log intact" in out
    engine = create_engine(cli_settings.owner_database)  # someone with the owner's access
    with engine.begin() as conn:
        target = conn.execute(
            text("SELECT id FROM audit_entry ORDER BY id OFFSET 5 LIMIT 1")
        ).scalar()
        conn.execute(text("ALTER TABLE audit_entry DISABLE TRIGGER USER"))
        conn.execute(
            text("UPDATE audit_entry SET actor = 'mallory' WHERE id = :id"), {"id": target}
        )
        conn.execute(text("ALTER TABLE audit_entry ENABLE TRIGGER USER"))
    engine.dispose()
    code, out = fleet(cli_settings, "audit", "verify")
    assert code == Exit.FAILED
    assert f"audit log entry {target} does not verify" in out


def test_replay_and_fence_import_from_the_command_line(cli_settings: Settings, tmp_path):
    import json as jsonlib

    fleet(cli_settings, "seed", "demo")
    good = tmp_path / "fences.geojson"
    good.write_text(
        jsonlib.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    {
                        "type": "Feature",
                        "properties": {"name": "临时管制区", "kind": "prohibited", "radius_m": 300},
                        "geometry": {"type": "Point", "coordinates": [120.15, 30.26]},
                    }
                ],
            },
            ensure_ascii=False,
        ),
        encoding="utf-8",
    )
    code, out = fleet(cli_settings, "fences", "import", str(good), "--unit", "GOV")
    assert (code, out.strip()) == (0, "imported 1 fences")
    bad = tmp_path / "bad.geojson"
    bad.write_text('{"type": "FeatureCollection", "features": [{"type": "Feature"}]}')
    code, out = fleet(cli_settings, "fences", "import", str(bad), "--unit", "GOV")
    assert code == 1
    assert "feature 0" in out
    code, out = fleet(
        cli_settings,
        "replay",
        "--start",
        "2026-11-01T00:00:00+08:00",
        "--end",
        "2026-11-02T00:00:00+08:00",
        "--dry-run",
    )
    assert code == 0, out
    assert "replayed 0 fixes of 0 vehicles: 0 alerts, would add 0" in out
    code, out = fleet(cli_settings, "replay", "--start", "2026-11-02", "--end", "2026-11-01")
    assert code == 1
    assert "--end must be after --start" in out


def test_calendar_import_previews_then_enters_a_year_from_the_notice(
    cli_settings: Settings, tmp_path
):
    from pathlib import Path

    fleet(cli_settings, "seed", "demo")
    notices = Path(__file__).resolve().parent / "data" / "holiday-notices"
    notice = (notices / "invented-2027.txt").read_text(encoding="utf-8")
    file = tmp_path / "2027.txt"
    file.write_bytes(notice.encode("gb18030"))  # as a Windows editor saves it
    engine = create_engine(cli_settings.database_url)
    held_2027 = "SELECT count(*) FROM calendar_day WHERE day >= '2027-01-01'"

    code, out = fleet(
        cli_settings,
        "calendar",
        "import",
        str(file),
        "--year",
        "2027",
        "--dry-run",
        "--unit",
        "GOV",
    )
    assert code == 0, out
    assert "2027: 117 days off (29 holiday dates), 248 working days" in out
    assert "  春节: off 2027-02-05 – 2027-02-13 (9 days); worked: 2月14日" in out
    assert "against the calendar: 365 new, 0 changed, 0 the same" in out
    assert out.rstrip().endswith("dry run: nothing saved")
    with engine.connect() as conn:
        assert conn.execute(text(held_2027)).scalar() == 0

    code, out = fleet(
        cli_settings, "calendar", "import", str(file), "--year", "2027", "--unit", "GOV"
    )
    assert code == 0, out
    assert "working calendar 2027: 365 dates added, 0 changed, 0 already so" in out
    with engine.connect() as conn:
        assert conn.execute(text(held_2027)).scalar() == 365
        assert (
            conn.execute(
                text(
                    "SELECT count(*) FROM audit_entry WHERE entity = 'calendar_day'"
                    " AND entity_id LIKE '2027-%' AND actor = 'system'"
                )
            ).scalar()
            == 365
        )
        assert conn.execute(
            text("SELECT working, note, source FROM calendar_day WHERE day = '2027-10-09'")
        ).one() == (True, "国庆节调休上班", "notice")

    bad = tmp_path / "bad.txt"
    bad.write_text(notice.replace("4月3日（周六）", "4月3日（周日）"), encoding="utf-8")
    code, out = fleet(
        cli_settings, "calendar", "import", str(bad), "--year", "2027", "--unit", "GOV"
    )
    assert code == Exit.FAILED
    assert "1 line of the notice cannot be read" in out
    assert "line 11: text: 「三、清明节:4月3日(周日)至5日(周一)放假,共3天。」" in out
    assert "4月3日 is written as 周日 but is a 周六 in 2027" in out
    engine.dispose()


def progress_lines(caplog: pytest.LogCaptureFixture, what: str) -> list[str]:
    return [m for m in caplog.messages if m.startswith(f"{what}: ")]


def test_replay_logs_its_progress_off_a_terminal(
    cli_settings: Settings, caplog: pytest.LogCaptureFixture
):
    fleet(cli_settings, "seed", "demo")  # the completed order's track
    engine = create_engine(cli_settings.database_url)
    with engine.connect() as conn:
        first, last, vehicles = conn.execute(
            text("SELECT min(fix_time), max(fix_time), count(DISTINCT vehicle_id) FROM position")
        ).one()
    engine.dispose()
    assert vehicles >= 1
    caplog.set_level(logging.INFO, logger="fleet.progress")
    code, out = fleet(
        cli_settings,
        "replay",
        "--start",
        first.isoformat(),
        "--end",
        (last + timedelta(seconds=1)).isoformat(),
        "--dry-run",
    )
    assert code == 0, out
    assert f" of {vehicles} vehicles: " in out
    assert progress_lines(caplog, "replaying")[-1].startswith(
        f"replaying: {vehicles}/{vehicles} vehicles (100 %), "
    )


def test_costs_import_logs_its_progress_off_a_terminal(
    cli_settings: Settings, caplog: pytest.LogCaptureFixture, tmp_path
):
    fleet(cli_settings, "seed", "demo")
    engine = create_engine(cli_settings.database_url)
    with engine.connect() as conn:
        plates = list(
            conn.execute(
                text(
                    "SELECT v.plate FROM vehicle v JOIN org_unit u ON u.id = v.unit_id"
                    " WHERE u.path LIKE (SELECT path FROM org_unit WHERE code = 'GOV') || '%'"
                    " ORDER BY v.id LIMIT 2"
                )
            ).scalars()
        )
    engine.dispose()
    statement = tmp_path / "statement.csv"
    statement.write_text(
        "transaction_id,time,plate,litres,amount\n"
        + "".join(f"P{n},2025-12-0{n} 08:30:00,{plates[n % 2]},40,300\n" for n in range(1, 4)),
        encoding="utf-8",
    )
    caplog.set_level(logging.INFO, logger="fleet.progress")
    code, out = fleet(
        cli_settings, "costs", "import", str(statement), "--issuer", "generic", "--unit", "GOV"
    )
    assert code == 0, out
    assert "imported 3 of 3 rows" in out
    assert progress_lines(caplog, "checking statement.csv")[-1].startswith(
        "checking statement.csv: 3/3 rows (100 %), "
    )


def test_roads_import_logs_its_progress_off_a_terminal(
    cli_settings: Settings, caplog: pytest.LogCaptureFixture
):
    from app.demo import ROADS

    caplog.set_level(logging.INFO, logger="fleet.progress")
    code, out = fleet(cli_settings, "roads", "import", str(ROADS))
    assert code == 0, out
    found = re.search(r"roads: (\d+) ways, (\d+) edges", out)
    assert found is not None, out
    ways = int(found[1])
    assert int(found[2]) > ways > 1_000
    # Every way with a highway tag is read, the drivable ones among them stored.
    read = re.fullmatch(
        rf"reading {re.escape(ROADS.name)}: ([\d,]+)/\1 ways \(100 %\), .*",
        progress_lines(caplog, f"reading {ROADS.name}")[-1],
    )
    assert read is not None
    assert int(read[1].replace(",", "")) >= ways
    assert progress_lines(caplog, "storing the roads")[-1].startswith(
        f"storing the roads: {ways:,}/{ways:,} ways (100 %), "
    )
    code, out = fleet(cli_settings, "roads", "import", "--if-empty", str(ROADS))
    assert (code, out.strip()) == (0, "roads already loaded")
