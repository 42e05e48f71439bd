"""Archived months read the same: on the demo, every reader of stored tracks (the positions and
trips APIs, alert evidence, order dossiers, vehicle files, the statistics, `fleet replay`)
answers byte for byte as it did before the months went from PostGIS to GeoParquet."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlencode

from sqlalchemy import text
from sqlalchemy.orm import Session

from telematics import archive
from tests.web.conftest import Stack, api_client

LOG_LINE = re.compile(rb"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} \S+ .*\n", re.MULTILINE)


def _comparable(body: bytes) -> bytes:
    """The answer without what is not deterministic: when a dossier or vehicle file was made,
    and how many audit entries its chain check counted (the reads and the archiving append)."""
    if not body.startswith(b'{"generated_at"'):
        return body
    data = json.loads(body)
    data.pop("generated_at")
    if "audit" in data:  # a vehicle file has none
        data["audit"]["verification"].pop("checked")
    return json.dumps(data, ensure_ascii=False).encode()


def _questions(stack: Stack) -> tuple[list[str], dict[str, str]]:
    """What the readers are asked: every vehicle's track, trips and file, every alert, every
    dossier, every statistic over the demo's whole span; and the span."""
    with stack.engine.connect() as conn:
        first, last = conn.execute(text("SELECT min(fix_time), max(fix_time) FROM position")).one()
        vehicles = list(conn.scalars(text("SELECT DISTINCT vehicle_id FROM position ORDER BY 1")))
        alerts = list(conn.scalars(text("SELECT id FROM alert ORDER BY id")))
        orders = list(conn.scalars(text("SELECT order_id FROM assignment ORDER BY order_id")))
    span = {
        "start": (first - timedelta(days=1)).isoformat(),
        "end": (last + timedelta(days=1)).isoformat(),
    }
    period = {"since": span["start"], "until": span["end"]}
    asked = [f"/vehicles/{v}/positions?{urlencode(span)}" for v in vehicles]
    asked += [f"/vehicles/{v}/positions?{urlencode({**span, 'simplify_m': 15})}" for v in vehicles]
    asked += [f"/vehicles/{v}/trips?{urlencode(span)}" for v in vehicles]
    asked += [f"/alerts/{a}" for a in alerts]
    asked += [f"/orders/{o}/dossier" for o in orders]
    asked += [f"/vehicles/{v}/file" for v in vehicles]
    asked += [
        f"/statistics/{name}?{urlencode({**period, 'format': form})}"
        for name in ("vehicles", "units", "alerts", "costs")
        for form in ("json", "csv")
    ]
    return asked, span


def _answers(stack: Stack, asked: list[str], span: dict[str, str]) -> dict[str, bytes]:
    answers = {}
    with api_client(stack, "supervisor") as client:
        for path in asked:
            reply = client.get(path)
            assert reply.status_code == 200, (path, reply.text)
            answers[path] = reply.content
    replay = subprocess.run(
        [
            sys.executable,
            "-m",
            "app.cli",
            "replay",
            "--start",
            span["start"],
            "--end",
            span["end"],
            "--dry-run",
        ],
        env=stack.env,
        capture_output=True,
        timeout=300,
        check=False,
    )
    assert replay.returncode == 0, replay.stderr
    # Its log lines (progress: times and rates) are not part of the answer.
    said = LOG_LINE.sub(b"", replay.stderr)
    assert said != replay.stderr  # the progress was logged
    answers["fleet replay"] = replay.stdout + said
    return answers


def test_every_reader_answers_the_same_once_the_months_are_archived(stack: Stack, tmp_path: Path):
    asked, span = _questions(stack)
    before = _answers(stack, asked, span)
    assert b'"coordinates"' in before[next(k for k in before if "/positions?" in k)]
    with Session(stack.engine) as session:
        months = archive.hot_partitions(session)
    assert months  # the demo has tracks
    store = archive.Store.open(str(tmp_path / "archive"))

    archived = [archive.archive_month(stack.engine, store, month) for month in months]

    assert sum(a.rows for a in archived) > 100
    with Session(stack.engine) as session:
        assert archive.hot_partitions(session) == []
    after = _answers(stack, asked, span)
    assert after.keys() == before.keys()
    differing = [path for path in before if _comparable(after[path]) != _comparable(before[path])]
    assert differing == []
