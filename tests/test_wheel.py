"""The package a user installs: the wheel, built from the checkout and installed into a clean
virtual environment, run from a folder outside the checkout, migrates a database, imports the
demo's road network it carries, and serves the pages with every script and style they load, the
front-end packages included.

The clean environment gets its third-party dependencies from the development environment's
site-packages (a plain path in a .pth file: that folder's own .pth files, among them the one that
puts the checkout on sys.path, are not read), and Fleet itself from the wheel alone."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx2 as httpx
import pytest

from fleet.settings import Settings
from tests.support import free_port, wait_healthy
from web.pages import PAGES

pytestmark = pytest.mark.slow

CHECKOUT = Path(__file__).resolve().parents[1]
# What a page or a module loads: <script src>, <link href>, static and dynamic imports (modules,
# and the label tables as JSON modules), and the map's worker (setWorkerUrl).
PAGE_REFERENCE = re.compile(r"""<(?:script|link)\b[^>]*?\b(?:src|href)="([^"]+)\"""")
MODULE_REFERENCE = re.compile(
    r"""(?:\bfrom\s*|\bimport\s*\(?\s*|setWorkerUrl\(\s*)["']([^"']+\.(?:m?js|css|json))["']"""
)


@dataclass
class Installed:
    venv: Path
    cwd: Path  # a folder of its own, outside the checkout
    env: dict[str, str]

    def run(self, program: str, *args: str) -> str:
        return _run(self.venv / "bin" / program, *args, cwd=self.cwd, env=self.env)


def _run(*args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, f"{args} exited {done.returncode}:\n{done.stdout}{done.stderr}"
    return done.stdout


def _source_tree(target: Path) -> Path:
    """The files git knows (tracked, or new and not ignored) as they are now, and node_modules: a
    build from the source, not from a stale build/ folder or files left lying around."""
    git = shutil.which("git") or "git"
    listed = _run(git, "ls-files", "-z", "--cached", "--others", "--exclude-standard", cwd=CHECKOUT)
    for name in filter(None, listed.split("\0")):
        source = CHECKOUT / name
        if source.is_file():  # not one deleted in the working tree
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    (target / "node_modules").symlink_to(CHECKOUT / "node_modules")
    return target


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory, scratch_settings: Settings) -> Installed:
    work = tmp_path_factory.mktemp("wheel")
    source = _source_tree(work / "source")
    pip = (sys.executable, "-m", "pip", "-q")
    _run(*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", work / "dist", source, cwd=work)
    (wheel,) = (work / "dist").glob("fleet-*.whl")
    venv = work / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=work)
    _run(*pip, "--python", venv / "bin" / "python", "install", "--no-deps", wheel, cwd=work)
    # Third-party dependencies only: the development environment's site-packages as plain paths.
    site = Path(sysconfig.get_path("purelib", "venv", vars={"base": venv, "platbase": venv}))
    dependencies = sorted({sysconfig.get_path("purelib"), sysconfig.get_path("platlib")})
    (site / "dependencies.pth").write_text("".join(f"{path}\n" for path in dependencies))
    cwd = work / "elsewhere"
    cwd.mkdir()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("FLEET_", "PYTHON", "VIRTUAL_ENV"))
    }
    env.update(
        FLEET_DATABASE_URL=scratch_settings.database_url,
        FLEET_DATABASE_OWNER=scratch_settings.database_owner,
        FLEET_REDIS_URL=scratch_settings.redis_url,
        FLEET_ENVIRONMENT="test",
    )
    return Installed(venv, cwd, env)


def test_fleet_is_imported_from_the_wheel_not_the_checkout(installed: Installed):
    out = installed.run(
        "python", "-c", "import sys, app, fleet, web; print(fleet.__file__, web.__file__,"
        " app.__file__, sep='\\n'); print(*sys.path, sep='\\n')",
    )  # fmt: skip
    modules, path = out.splitlines()[:3], out.splitlines()[3:]
    for module in modules:
        assert Path(module).is_relative_to(installed.venv), module
    assert str(CHECKOUT) not in path


def test_installed_fleet_migrates_imports_the_demo_roads_and_serves_every_page(
    installed: Installed,
):
    installed.run("fleet", "db", "upgrade")
    roads = installed.run("python", "-c", "from app.demo import ROADS; print(ROADS)").strip()
    assert Path(roads).is_relative_to(installed.venv)
    assert "km" in installed.run("fleet", "roads", "import", "--if-empty", roads)

    port = free_port()
    env = {**installed.env, "FLEET_HTTP_HOST": "127.0.0.1", "FLEET_HTTP_PORT": str(port)}
    log_path = installed.cwd / "serve.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [installed.venv / "bin" / "fleet", "serve"],
            cwd=installed.cwd,
            env=env,
            stdout=log,
            stderr=log,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_healthy(url, [server], log_path)
            loaded = _every_file_the_pages_load(url)
        finally:
            server.terminate()
            server.wait(timeout=20)
    failed = {path: answer for path, answer in loaded.items() if answer[0] != 200}
    assert failed == {}, log_path.read_text()[-2000:]
    # The front-end packages are served from the wheel's copy, as JavaScript (module scripts refuse
    # any other type).
    for path in ("/vendor/maplibre-gl/maplibre-gl.mjs", "/vendor/echarts/echarts.esm.min.js"):
        assert loaded[path][1].startswith("text/javascript"), (path, loaded[path])
    assert "/vendor/maplibre-gl/maplibre-gl-worker.mjs" in loaded
    assert loaded["/vendor/maplibre-gl/maplibre-gl.css"][1].startswith("text/css")
    # JSON modules load only as JSON.
    labels = {path: kind for path, (_, kind) in loaded.items() if path.endswith(".json")}
    assert labels
    assert all(kind.startswith("application/json") for kind in labels.values()), labels


def _every_file_the_pages_load(url: str) -> dict[str, tuple[int, str]]:
    """Each page, then every script and style it references, and the modules those import: path
    -> (status, content type). A reference to another host is answered "outside" (and fails)."""
    loaded: dict[str, tuple[int, str]] = {}
    host = urlsplit(url).netloc
    with httpx.Client(timeout=10) as client:
        todo = [(f"{url}/{page}", PAGE_REFERENCE) for page in PAGES]
        while todo:
            address, pattern = todo.pop()
            path = urlsplit(address).path
            if urlsplit(address).netloc != host:
                loaded[address] = (0, "outside")
                continue
            if path in loaded:
                continue
            try:
                reply = client.get(address)
            except httpx.HTTPError as error:  # a missing folder behind a mount resets the reply
                loaded[path] = (0, repr(error))
                continue
            loaded[path] = (reply.status_code, reply.headers.get("content-type", ""))
            if reply.status_code == 200 and (pattern is PAGE_REFERENCE or path.endswith("js")):
                todo += [
                    (urljoin(address, ref), MODULE_REFERENCE) for ref in pattern.findall(reply.text)
                ]
    return loaded
