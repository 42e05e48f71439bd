"""The label table refuses a key given twice with other texts: it says so on the console (where
the page tests fail on it) and keeps the first texts. Run in Node, the table being a plain ES
module."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

I18N = Path(__file__).resolve().parents[2] / "web" / "static" / "js" / "i18n.js"

SCRIPT = """
globalThis.localStorage = { getItem: () => "en" };
const { extend, t } = await import(process.argv[1]);
extend({ "app.name": ["公务用车管理平台", "Official Vehicle Platform"] });  // the same: fine
extend({ "probe.new": ["新", "New"] });
extend({ "app.name": ["别的", "Something else"] });  // a collision
console.log(JSON.stringify([t("app.name"), t("probe.new")]));
"""


def test_a_key_given_twice_with_other_texts_is_reported_and_the_first_kept():
    node = shutil.which("node")
    assert node, "Node.js runs the pages' module tests"
    done = subprocess.run(
        [node, "--input-type=module", "-e", SCRIPT, I18N.as_uri()],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == '["Official Vehicle Platform","New"]'
    assert done.stderr.count("i18n: app.name is defined twice") == 1
