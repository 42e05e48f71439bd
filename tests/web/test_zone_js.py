"""The pages' one wall-clock conversion (web/static/js/zone.js), run in Node: a time typed in the
display zone becomes the instant it names, across daylight-saving changes too."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

ZONE_JS = Path(__file__).resolve().parents[2] / "web" / "static" / "js" / "zone.js"

SCRIPT = """
const { parseWall, zonedIso } = await import(process.argv[1]);
const cases = JSON.parse(process.argv[2]);
console.log(JSON.stringify(cases.map(([local, zone]) => [
  new Date(parseWall(local, zone)).toISOString(),
  zonedIso(local.includes("T") ? local : local + "T00:00", zone),
])));
"""

CASES = [
    # China: no daylight saving.
    (
        ("2026-11-24T09:00", "Asia/Shanghai"),
        ("2026-11-24T01:00:00.000Z", "2026-11-24T09:00:00+08:00"),
    ),
    (("2026-12-05", "Asia/Shanghai"), ("2026-12-04T16:00:00.000Z", "2026-12-05T00:00:00+08:00")),
    # Berlin, the night the clocks go forward (02:00 -> 03:00): the day still starts at 00:00 +01.
    (("2026-03-29", "Europe/Berlin"), ("2026-03-28T23:00:00.000Z", "2026-03-29T00:00:00+01:00")),
    # ...and after the change, +02.
    (
        ("2026-03-29T12:00", "Europe/Berlin"),
        ("2026-03-29T10:00:00.000Z", "2026-03-29T12:00:00+02:00"),
    ),
    # New York, the evening after the clocks go back: -05 (one pass would still say -04).
    (
        ("2026-11-01T20:00", "America/New_York"),
        ("2026-11-02T01:00:00.000Z", "2026-11-01T20:00:00-05:00"),
    ),
]


def test_wall_clock_times_become_the_instants_they_name():
    node = shutil.which("node")
    assert node, "Node.js runs the pages' module tests"
    done = subprocess.run(
        [
            node,
            "--input-type=module",
            "-e",
            SCRIPT,
            ZONE_JS.as_uri(),
            json.dumps([list(c[0]) for c in CASES]),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert [tuple(r) for r in json.loads(done.stdout)] == [c[1] for c in CASES]
