"""Shared by the benchmarks: a database of their own, built by the migrations, and a timer."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Callable

from sqlalchemy import create_engine, text

from fleet import migrate
from fleet.settings import Settings


def bench_settings() -> Settings:
    """The benchmarks' database, reached as the schema's owner: they empty and copy tables, which
    the processes' role may not (the grants cost nothing per row, so the figures hold for it)."""
    base = Settings()
    settings = base.with_database_name(f"{base.database.database}_bench").as_owner()
    admin = create_engine(settings.database.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{settings.database.database}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{settings.database.database}"'))
    admin.dispose()
    migrate.upgrade(settings)
    return settings


def timed(fn: Callable[[], object], repeat: int = 3) -> float:
    """Best of `repeat` wall-clock runs, in seconds (the machine is shared; best is steadiest)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows)


def options(doc: str | None) -> argparse.ArgumentParser:
    """A benchmark's command line, its module's docstring as the help."""
    return argparse.ArgumentParser(description=doc, formatter_class=argparse.RawTextHelpFormatter)


def parse(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """The options given. None given means the defaults: `python -m bench` runs each benchmark
    so, and a module run alone passes its command line (`main(sys.argv[1:])`)."""
    return parser.parse_args(argv if argv is not None else [])


def serve(database_url: str, redis_url: str, **env: str) -> tuple[subprocess.Popen[bytes], str]:
    """`fleet serve` on the bench's database and Redis on a free port, with more FLEET_ settings
    in `env`; returns the process and its base URL once /healthz answers (60 s at most)."""
    import httpx2 as httpx

    from bench.ingest import free_port

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve"],
        env={
            **os.environ,
            "FLEET_DATABASE_URL": database_url,
            "FLEET_REDIS_URL": redis_url,
            "FLEET_HTTP_PORT": str(port),
            "FLEET_HTTP_HOST": "127.0.0.1",
            **env,
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.2)
    return server, base
