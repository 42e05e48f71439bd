"""Sessions (issue 16, item 6), against the running API on the demo database: a live socket
that outlives its token, a token written to the server's log, a user locked out from one
address, a password sprayed across usernames; each attack, and the refusal asserted.

The stack's server trusts `X-Forwarded-For` from 127.0.0.1 (uvicorn's default, as behind a
reverse proxy on the same machine), which is how these tests speak from other addresses.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import timedelta
from types import SimpleNamespace

import httpx2 as httpx
import pytest
from sqlalchemy import create_engine, text
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from fleet import channels
from fleet.db import make_session_factory, utcnow
from fleet.demo import DEMO_PASSWORD
from tests.web.conftest import SCREENSHOTS, Stack
from web.live import LiveClient, LiveHub, _token_watch

# The stack checks tokens every few seconds rather than every 30 (the default), so an expiry,
# which nothing announces, is seen without a half-minute wait; the deadline leaves it room.
RECHECK_S = 3
RECHECK_DEADLINE_S = 30


@pytest.fixture(scope="module")
def stack_env() -> dict[str, str]:
    return {"FLEET_LIVE_TOKEN_RECHECK_S": str(RECHECK_S)}


def _token(stack: Stack, username: str, *, address: str = "127.0.0.1") -> str:
    answer = httpx.post(
        f"{stack.url}/api/v1/auth/token",
        data={"username": username, "password": DEMO_PASSWORD},
        headers={"X-Forwarded-For": address},
    )
    answer.raise_for_status()
    return str(answer.json()["access_token"])


def _attempt(stack: Stack, username: str, password: str, address: str) -> httpx.Response:
    return httpx.post(
        f"{stack.url}/api/v1/auth/token",
        data={"username": username, "password": password},
        headers={"X-Forwarded-For": address},
        timeout=30,
    )


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@contextmanager
def _live(stack: Stack, token: str) -> Iterator[ClientConnection]:
    with connect(f"ws{stack.url.removeprefix('http')}/ws/live?token={token}") as socket:
        assert '"snapshot"' in str(socket.recv(timeout=10))
        yield socket


@pytest.fixture(scope="module")
def admin(stack: Stack) -> Iterator[httpx.Client]:
    client = httpx.Client(
        base_url=f"{stack.url}/api/v1",
        headers={"Authorization": f"Bearer {_token(stack, 'admin')}"},
        timeout=30,
    )
    yield client
    client.close()


def _user(stack: Stack, admin: httpx.Client, username: str) -> int:
    unit = admin.get("/me").json()["unit_id"]
    made = admin.post(
        "/users",
        json={
            "username": username,
            "password": DEMO_PASSWORD,
            "roles": ["dispatcher"],
            "unit_id": unit,
        },
    )
    assert made.status_code == 201, made.text
    return int(made.json()["id"])


def test_an_open_live_socket_closes_on_logout_expiry_and_deactivation(
    stack: Stack, admin: httpx.Client
) -> None:
    logged_out = _token(stack, "dispatcher")
    _user(stack, admin, "expiring")
    expiring = _token(stack, "expiring")
    leaver = _user(stack, admin, "leaver")
    deactivated = _token(stack, "leaver")
    with ExitStack() as opened:
        sockets = {
            why: opened.enter_context(_live(stack, token))
            for why, token in (
                ("logout", logged_out),
                ("expiry", expiring),
                ("deactivation", deactivated),
            )
        }
        out = httpx.post(
            f"{stack.url}/api/v1/auth/logout", headers={"Authorization": f"Bearer {logged_out}"}
        )
        assert out.status_code == 204
        with stack.engine.begin() as conn:
            conn.execute(
                text(
                    "UPDATE auth_token SET expires_at = :t WHERE user_id ="
                    " (SELECT id FROM user_account WHERE username = 'expiring')"
                ),
                {"t": utcnow() - timedelta(seconds=1)},
            )
        assert admin.patch(f"/users/{leaver}", json={"is_active": False}).status_code == 200
        closed: dict[str, int | None] = {}
        deadline = time.monotonic() + RECHECK_DEADLINE_S
        while len(closed) < len(sockets) and time.monotonic() < deadline:
            for why, socket in sockets.items():
                if why in closed:
                    continue
                try:
                    socket.recv(timeout=0.3)  # positions and keepalives while it lasts
                except TimeoutError:
                    pass
                except ConnectionClosed as error:
                    closed[why] = error.rcvd.code if error.rcvd else None
        assert closed == {"logout": 4401, "expiry": 4401, "deactivation": 4401}


def test_a_live_socket_token_never_reaches_the_server_log(stack: Stack) -> None:
    token = _token(stack, "supervisor")
    with _live(stack, token):
        pass
    log = SCREENSHOTS / "server-test_sessions.log"
    deadline = time.monotonic() + 5
    while "/ws/live?token=" not in log.read_text(errors="replace"):
        assert time.monotonic() < deadline, "the server logged no live socket"
        time.sleep(0.2)
    written = log.read_text(errors="replace")
    assert token not in written
    assert "/ws/live?token=[redacted]" in written


def test_failures_from_one_address_do_not_lock_the_user_out_elsewhere(stack: Stack) -> None:
    limit = stack.settings.login_max_failures
    for _ in range(limit):
        assert _attempt(stack, "approver", "wrong-password", "203.0.113.7").status_code == 401
    assert _attempt(stack, "approver", DEMO_PASSWORD, "203.0.113.7").status_code == 429
    assert _attempt(stack, "approver", DEMO_PASSWORD, "198.51.100.2").status_code == 200


def test_a_password_spray_across_usernames_is_throttled_per_address_before_hashing(
    stack: Stack,
) -> None:
    sprayer = "203.0.113.9"
    hashed: list[float] = []
    refused = None
    for n in range(200):
        started = time.monotonic()
        answer = _attempt(stack, f"spray-{n}", "Password1!", sprayer)
        if answer.status_code == 429:
            refused = n
            break
        assert answer.status_code == 401
        hashed.append(time.monotonic() - started)
    assert refused is not None, "200 usernames sprayed from one address, none throttled"
    assert refused <= 100
    # Throttled attempts cost no argon2 hash: they answer well within one hashed attempt.
    throttled = []
    for n in range(10):
        started = time.monotonic()
        assert _attempt(stack, f"more-{n}", "Password1!", sprayer).status_code == 429
        throttled.append(time.monotonic() - started)
    assert statistics.median(throttled) < statistics.median(hashed) / 2
    # The users sprayed at, and the address's neighbours, are not locked out.
    assert _attempt(stack, "requester", DEMO_PASSWORD, "203.0.113.10").status_code == 200


def test_a_logout_is_announced_so_open_sockets_check_at_once(stack: Stack) -> None:
    """The socket need not wait for its periodic check: the committed logout is announced (the
    user's id, never the token) and the hub wakes that user's sockets."""
    token = _token(stack, "approver")
    with stack.engine.connect() as conn:
        user_id = conn.execute(
            text("SELECT id FROM user_account WHERE username = 'approver'")
        ).scalar_one()
    pubsub = stack.redis.pubsub()
    pubsub.subscribe(channels.REVOKED)
    try:
        assert pubsub.get_message(timeout=5)["type"] == "subscribe"
        out = httpx.post(f"{stack.url}/api/v1/auth/logout", headers=_bearer(token))
        assert out.status_code == 204
        heard = pubsub.get_message(timeout=10)
    finally:
        pubsub.close()
    assert heard is not None
    assert json.loads(heard["data"]) == {"type": "revoked", "user_id": user_id}
    assert token not in str(heard["data"])


def test_the_hub_wakes_only_the_revoked_users_sockets_and_they_close_without_waiting(
    stack: Stack,
) -> None:
    """With a periodic check an hour away, only the announcement can end the watch: a woken
    socket whose token no longer authenticates returns at once; another user's is not woken."""
    hub = LiveHub(stack.settings.redis, token_recheck_s=3600)
    mine, other = LiveClient(frozenset(), user_id=7), LiveClient(frozenset(), user_id=8)
    hub.clients.update({mine, other})
    engine = create_engine(stack.settings.database_url)
    socket = SimpleNamespace(
        app=SimpleNamespace(
            state=SimpleNamespace(
                session_factory=make_session_factory(engine), settings=stack.settings
            )
        )
    )

    async def scenario() -> None:
        watch = asyncio.create_task(_token_watch(socket, mine, "revoked-token", 3600))  # type: ignore[arg-type]
        await asyncio.sleep(0.1)
        hub.dispatch({"type": "revoked", "user_id": 7})
        assert not other.recheck.is_set()
        await asyncio.wait_for(watch, timeout=30)  # an hour, were it not woken

    try:
        asyncio.run(scenario())
    finally:
        engine.dispose()
