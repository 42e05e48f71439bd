"""The set-up script from a private folder: `scripts/dev.sh services` in a 0700 folder (as
`mktemp -d` makes and as /root is) starts a PostgreSQL and a Redis that answer, and `stop` stops
them. As root, initdb and postgres run as the postgres user, which cannot enter such a folder."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import psycopg
import pytest
from redis import Redis

from tests.support import free_port

pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "dev.sh"


def _exported(env_file: Path) -> dict[str, str]:
    values = {}
    for line in env_file.read_text().splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        values[name] = value
    return values


def test_services_start_from_a_folder_only_its_owner_can_enter(tmp_path: Path):
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    private.chmod(0o700)  # whatever the umask
    checkout = private / "checkout"
    (checkout / "scripts").mkdir(parents=True)
    shutil.copy2(SCRIPT, checkout / "scripts" / "dev.sh")
    # The stores run on the real clock, as make test-any-day starts its own outside faketime.
    unset = ("FLEET_DATABASE_URL", "FLEET_REDIS_URL", "LD_PRELOAD", "FAKETIME")
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env |= {"FLEET_LOCAL_PG_PORT": str(free_port()), "FLEET_LOCAL_REDIS_PORT": str(free_port())}
    dev = ["bash", str(checkout / "scripts" / "dev.sh")]
    outside = Path("/var/lib/fleet") / hashlib.sha1(str(checkout).encode()).hexdigest()[:12]  # noqa: S324 - the script's folder name, not security
    try:
        started = subprocess.run(
            [*dev, "services"], env=env, capture_output=True, text=True, timeout=180, check=False
        )
        initdb_log = checkout / "var" / "pg-initdb.log"
        assert started.returncode == 0, started.stderr + (
            initdb_log.read_text() if initdb_log.exists() else ""
        )
        urls = _exported(checkout / "var" / "services.env")
        database = urls["FLEET_DATABASE_URL"].replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(database.rsplit("/", 1)[0] + "/postgres") as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        with Redis.from_url(urls["FLEET_REDIS_URL"]) as redis:
            assert redis.ping()
        if os.geteuid() == 0:
            # postgres could not enter the folder: the cluster lives outside, linked into var/.
            assert (checkout / "var" / "pg").is_symlink()
            assert (outside / "data" / "PG_VERSION").exists()
        stopped = subprocess.run(
            [*dev, "stop"], env=env, capture_output=True, text=True, timeout=120, check=False
        )
        assert stopped.returncode == 0, stopped.stderr
        assert "stopping the local PostgreSQL" in stopped.stderr
        assert "stopping the local Redis" in stopped.stderr
    finally:
        subprocess.run([*dev, "stop"], env=env, capture_output=True, timeout=120, check=False)
        shutil.rmtree(outside, ignore_errors=True)
