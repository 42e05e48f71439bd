"""The packages' layering: each imports only the packages before it, so a domain never reaches
into a later one, and the kernel into none. The composition root (`app`: the CLI and the model
registry; and the app factory) is the one place allowed to wire them all. Imports inside
functions count too."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ORDER = ("fleet", "telematics", "geofence", "dispatch", "costs", "reports", "web", "app")
# The composition root is the package `app`, last in the order, so it may import every domain;
# the app factory (web/app.py) mounts every domain's router from the last domain before it.
COMPOSITION: set[str] = set()


def _imported(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def test_each_package_imports_only_those_before_it():
    breaches = []
    for rank, package in enumerate(ORDER):
        later = set(ORDER[rank + 1 :])
        for path in sorted((ROOT / package).rglob("*.py")):
            name = str(path.relative_to(ROOT))
            if name in COMPOSITION:
                continue
            for module in sorted(_imported(path) & later):
                breaches.append(f"{name} imports {module}")
    assert breaches == []


def test_the_check_sees_a_breach(tmp_path: Path):
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from reports import dossier\n    import costs.models\n")
    assert _imported(probe) >= {"reports", "costs"}
