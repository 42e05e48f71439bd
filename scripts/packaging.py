"""The wheel's build step (pyproject.toml, [tool.setuptools.cmdclass]): besides the packages and
their data, the wheel carries
- the migrations, from the checkout's top-level migrations/ into fleet/migrations/, where
  fleet/migrate.py looks first;
- the front-end packages the pages load, copied from node_modules (`npm ci`, which make bootstrap
  runs) into web/node_modules/ (web/vendor.py lists them). They are not committed: in a checkout
  the pages load them from the checkout's node_modules.

Build from a checkout that has node_modules: `pip wheel --no-deps -w dist .`
"""

from __future__ import annotations

import runpy
import shutil
from pathlib import Path
from typing import Any

from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent.parent


def _packages() -> dict[str, Any]:
    """web/vendor.py's table, read without importing Fleet (not installed while it is built)."""
    return runpy.run_path(str(ROOT / "web" / "vendor.py"))["PACKAGES"]


class BuildPy(build_py):
    def run(self) -> None:
        super().run()
        if self.editable_mode:  # make bootstrap's install: the checkout's own folders serve
            return
        shutil.copytree(
            ROOT / "migrations",
            Path(self.build_lib) / "fleet" / "migrations",
            ignore=shutil.ignore_patterns("__pycache__"),
            dirs_exist_ok=True,
        )
        modules = ROOT / "node_modules"
        target = Path(self.build_lib) / "web" / "node_modules"
        missing = []
        for name, package in _packages().items():
            wanted = [f"{package.served}/{file}" for file in package.files] + list(package.licence)
            for relative in wanted:
                source = modules / name / relative
                if not source.is_file():
                    missing.append(str(source))
                    continue
                (target / name / relative).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, target / name / relative)
        if missing:
            raise SystemExit(
                "the front-end packages are missing (run `make bootstrap`, or `npm ci`): "
                + ", ".join(missing)
            )
