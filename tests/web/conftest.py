"""Page tests: a real running stack (`fleet serve` on a database of the module's own, the demo
seeded, the demo's road network) driven by Playwright in Debian's Chromium (no browser download).

Every page is opened in a context that refuses any address outside the machine and records it;
a test that saw one fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx2 as httpx
import pytest
from redis import Redis
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session

from app import demo as app_demo
from fleet import migrate
from fleet.db import utcnow
from fleet.demo import DEMO_PASSWORD
from fleet.settings import Settings
from telematics import roads
from tests.clock import faketime
from tests.conftest import drop_database, recreate_database
from tests.support import free_port, wait_healthy, wait_port

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"
LOCAL_HOSTS = {"127.0.0.1", "localhost"}
PHONE = {"viewport": {"width": 360, "height": 740}, "is_mobile": True, "has_touch": True}
# The demo's road network (Xihu district, Hangzhou), as make run imports it.
DEMO_ROADS = app_demo.ROADS
# Where the map opens, and spots around the demo's offices on that network to place cars at.
CENTRE = (120.115, 30.285)
GRID = [(120.105 + 0.005 * i, 30.275 + 0.005 * j) for i in range(5) for j in range(5)]


@dataclass
class Stack:
    url: str
    settings: Settings
    engine: Engine
    redis: Redis
    env: dict[str, str] = field(default_factory=dict)
    outside: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)

    def row(self, sql: str, **params: Any) -> tuple[Any, ...]:
        """The one row a query of the stack's database returns (a test's set-up or check)."""
        with self.engine.connect() as conn:
            found = conn.execute(text(sql), params).one_or_none()
        assert found is not None, f"no row for {sql} {params}"
        return tuple(found)

    def value(self, sql: str, **params: Any) -> Any:
        """The first value of the first row a query returns; there must be one."""
        with self.engine.connect() as conn:
            found = conn.execute(text(sql), params).scalar()
        assert found is not None, f"the database has no row for: {sql} {params}"
        return found


@pytest.fixture(scope="session")
def demo_database(settings: Settings) -> Iterator[str]:
    """The stacks' database, made once a session: migrated, the demo's roads imported (the
    owner's work, as `fleet roads import` does it) and the demo seeded. Each module's stack runs
    on a copy of its own: the modules change what they are given, and some attack it (rewrite the
    audit chain, deactivate people), so sharing one would make each depend on the others."""
    made = settings.with_database_name(f"{settings.database.database}_demo_{os.getpid()}")
    recreate_database(made)
    migrate.upgrade(made)
    owner = create_engine(made.owner_database)
    roads.import_pbf(owner, DEMO_ROADS)
    owner.dispose()
    engine = create_engine(made.database_url)
    redis = Redis.from_url(settings.redis_url)  # read only: the seed asks for live positions
    with Session(engine) as session:
        app_demo.seed(session=session, redis=redis, zone_name="Asia/Shanghai", now=utcnow())
        session.commit()
    redis.close()
    engine.dispose()  # a template has no one connected
    yield made.database.database
    drop_database(made)


@pytest.fixture(scope="module")
def stack_env() -> dict[str, str]:
    """What a module adds to its stack's environment (a module overrides this fixture): settings,
    and `FLEET_HTTP_PORT` when something must know the stack's address before it starts (an
    identity provider's registered redirect URI)."""
    return {}


@pytest.fixture(scope="module")
def stack(
    scratch_settings: Settings,
    demo_database: str,
    stack_env: dict[str, str],
    request: pytest.FixtureRequest,
) -> Iterator[Stack]:
    # A Redis database of the module's own (10-14), as the scratch database is.
    index = 10 + zlib.crc32(request.module.__name__.encode()) % 5
    scratch_settings = scratch_settings.model_copy(
        update={"redis_url": scratch_settings.redis_url.rsplit("/", 1)[0] + f"/{index}"}
    )
    recreate_database(scratch_settings, template=demo_database)
    engine = create_engine(scratch_settings.database_url)
    redis = Redis.from_url(scratch_settings.redis_url)
    redis.flushdb()
    port = int(stack_env.get("FLEET_HTTP_PORT") or free_port())
    env = {
        **os.environ,
        "FLEET_DATABASE_URL": scratch_settings.database_url,
        "FLEET_REDIS_URL": scratch_settings.redis_url,
        "FLEET_HTTP_HOST": "127.0.0.1",
        "FLEET_HTTP_PORT": str(port),
        "FLEET_ENVIRONMENT": "test",
        "FLEET_MAP_CENTER": json.dumps(CENTRE),
        "FLEET_MAP_ZOOM": "14",
        **stack_env,
    }
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    server_log = SCREENSHOTS / f"server-{request.module.__name__.rsplit('.', 1)[-1]}.log"
    log = server_log.open("wb")
    # A module may pin the server's clock (STACK_CLOCK, an aware datetime): it then runs under
    # faketime, whose wrapper is the parent of the server, so the whole group is stopped.
    clock: datetime | None = getattr(request.module, "STACK_CLOCK", None)
    server = subprocess.Popen(
        [*(faketime(clock) if clock else []), sys.executable, "-m", "app.cli", "serve"],
        env=env,
        stdout=log,
        stderr=log,
        start_new_session=clock is not None,
    )
    url = f"http://127.0.0.1:{port}"
    wait_healthy(url, [server], server_log)
    try:
        yield Stack(url, scratch_settings, engine, redis, env)
    finally:
        if clock is None:
            server.terminate()
        else:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=20)
        log.close()
        redis.flushdb()
        redis.close()
        engine.dispose()


@dataclass
class Trackers:
    """The gateways and an ingest worker (with the geofence engine) beside the stack's server."""

    osmand_url: str
    jt808_port: int


@pytest.fixture(scope="module")
def trackers(stack: Stack) -> Iterator[Trackers]:
    osmand, jt808 = free_port(), free_port()
    env = {**stack.env, "FLEET_OSMAND_PORT": str(osmand), "FLEET_JT808_PORT": str(jt808)}
    logs = [(SCREENSHOTS / f"{name}.log").open("wb") for name in ("gateway", "worker")]
    children = [
        subprocess.Popen([sys.executable, "-m", "app.cli", name], env=env, stdout=log, stderr=log)
        for name, log in zip(("gateway", "worker"), logs, strict=True)
    ]
    wait_port(osmand, children, SCREENSHOTS / "gateway.log")
    try:
        yield Trackers(f"http://127.0.0.1:{osmand}", jt808)
    finally:
        for child in children:
            child.terminate()
        for child in children:
            child.wait(timeout=20)
        for log in logs:
            log.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: make bootstrap installs Debian's chromium")
    with sync_playwright() as play:
        chromium = play.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--use-angle=swiftshader",
                "--enable-unsafe-swiftshader",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--disable-quic",
            ],
        )
        yield chromium
        chromium.close()


def open_context(browser: Any, stack: Stack, **options: Any) -> Any:
    """A browser context that lets only this machine through, and records anything else."""
    context = browser.new_context(**options)

    def guard(route: Any) -> None:
        host = urlparse(route.request.url).hostname or ""
        if route.request.url.startswith(("data:", "blob:")) or host in LOCAL_HOSTS:
            route.continue_()
        else:
            stack.outside.append(route.request.url)
            route.abort()

    context.route("**/*", guard)
    context.on(
        "page",
        lambda page: (
            page.on("console", lambda m: stack.console.append(f"{m.type}: {m.text}")),
            page.on("pageerror", lambda e: stack.console.append(f"pageerror: {e}")),
        ),
    )
    return context


@contextmanager
def watched(
    browser: Any, stack: Stack, name: str, *, allowed: str | None = None, **options: Any
) -> Iterator[Any]:
    """A browser context for one test that fails it on any page or console error (but those
    matching the `allowed` pattern, which the test provokes) and on any address outside the
    machine; the console is kept in var/screenshots/console-NAME.log."""
    context = open_context(
        browser, stack, **{"viewport": {"width": 1400, "height": 900}, **options}
    )
    stack.console.clear()
    yield context
    context.close()
    (SCREENSHOTS / f"console-{name}.log").write_text("\n".join(stack.console), encoding="utf-8")
    errors = [
        line
        for line in stack.console
        if line.startswith(("pageerror", "error")) and not (allowed and re.search(allowed, line))
    ]
    assert not errors, f"the page reported errors: {errors}"
    assert not stack.outside, f"pages asked for addresses outside the machine: {stack.outside}"


@pytest.fixture
def desk_context(browser: Any, stack: Stack) -> Iterator[Any]:
    with watched(browser, stack, "desk") as context:
        yield context


def bearer(stack: Stack, username: str, password: str = DEMO_PASSWORD) -> dict[str, str]:
    """The Authorization header of a fresh sign-in through the stack's API."""
    answer = httpx.post(
        f"{stack.url}/api/v1/auth/token",
        data={"username": username, "password": password},
        timeout=30,
    )
    answer.raise_for_status()
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def api_client(stack: Stack, username: str, password: str = DEMO_PASSWORD) -> httpx.Client:
    """A client of the stack's API (`/api/v1`), signed in as `username`."""
    return httpx.Client(
        base_url=f"{stack.url}/api/v1", headers=bearer(stack, username, password), timeout=30
    )


def sign_in(page: Any, stack: Stack, username: str) -> None:
    page.goto(f"{stack.url}/login")
    page.fill("#username", username)
    page.fill("#password", DEMO_PASSWORD)
    page.click("button[type=submit]")


@dataclass
class Phones:
    """Signed-in phones for a test; console errors the test provokes on purpose are named."""

    browser: Any
    stack: Stack
    contexts: list[Any] = field(default_factory=list)
    expected_errors: list[str] = field(default_factory=list)

    def open(self, username: str, *, tab: str | None = None) -> Any:
        context = open_context(self.browser, self.stack, **PHONE)
        self.contexts.append(context)
        page = context.new_page()
        sign_in(page, self.stack, username)
        page.wait_for_url("**/phone**")
        if tab:
            page.goto(f"{self.stack.url}/phone#{tab}")
        page.wait_for_function("window.fleetPhone && window.fleetPhone.ready", timeout=30_000)
        return page


@pytest.fixture
def phones(browser: Any, stack: Stack) -> Iterator[Phones]:
    stack.console.clear()
    opened = Phones(browser, stack)
    yield opened
    for context in opened.contexts:
        context.close()
    (SCREENSHOTS / "console-phone.log").write_text("\n".join(stack.console), encoding="utf-8")
    errors = [
        line
        for line in stack.console
        if line.startswith(("pageerror", "error"))
        and not any(expected in line for expected in opened.expected_errors)
    ]
    assert not errors, f"the page reported errors: {errors}"
    assert not stack.outside, f"pages asked for addresses outside the machine: {stack.outside}"
