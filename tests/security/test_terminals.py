"""Attacks at the device edge, against the running gateways, worker and API: an impostor JT/T 808
terminal, guessed and stale auth codes, re-binding, OsmAnd fixes from 1970 or months back, phone
secrets, and a body declared at 3 GB. Each asserts the refusal and what it leaves behind."""

from __future__ import annotations

import hashlib
import hmac
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx2 as httpx
import pytest
from sqlalchemy import text

from fleet.demo import DEMO_PASSWORD
from fleet.settings import DEVELOPMENT_SECRET
from telematics import stream
from telematics.fix import Fix
from telematics.protocols import jt808
from telematics.protocols.jt808 import MsgId, RegisterResult, Result
from tests.support import free_port, wait_until
from tests.web.conftest import Stack, Trackers

pytestmark = pytest.mark.usefixtures("trackers")


class Terminal:
    """A JT/T 808 terminal on a blocking socket: one request, one reply."""

    def __init__(self, port: int, phone: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.phone, self.serial, self.buffer = phone, 0, b""
        host, local_port = self.sock.getsockname()[:2]
        self.address = f"{host}:{local_port}"

    def send(self, msg_id: int, body: bytes = b"") -> jt808.Message:
        self.serial += 1
        self.sock.sendall(jt808.encode_frame(msg_id, self.phone, self.serial, body))
        while True:
            frames, self.buffer = jt808.split_frames(self.buffer)
            if frames:
                self.buffer = b"".join(b"\x7e" + f + b"\x7e" for f in frames[1:]) + self.buffer
                return jt808.decode(frames[0])
            chunk = self.sock.recv(4096)
            assert chunk, "the gateway closed the connection"
            self.buffer += chunk

    def register(self, terminal_id: str) -> tuple[int, str]:
        """(0x8100 result, auth code: empty unless result 0)."""
        reply = self.send(MsgId.REGISTER, jt808.register_body(terminal_id=terminal_id))
        assert reply.msg_id == MsgId.REGISTER_REPLY
        return reply.body[2], reply.body[3:].decode()

    def authenticate(self, code: str) -> int:
        return result_of(self.send(MsgId.AUTHENTICATE, jt808.authenticate_body(code)))

    def report(self, fix_time: datetime) -> int:
        fix = Fix(self.phone, fix_time, 30.27, 120.12, speed_kmh=20.0, ignition=True)
        return result_of(self.send(MsgId.LOCATION, jt808.location_body(fix)))

    def close(self) -> None:
        self.sock.close()


def result_of(reply: jt808.Message) -> int:
    assert reply.msg_id == MsgId.PLATFORM_REPLY
    return reply.body[4]


@pytest.fixture
def terminal(trackers: Trackers) -> Iterator[Callable[..., Terminal]]:
    opened: list[Terminal] = []

    def connect(phone: str, port: int = trackers.jt808_port) -> Terminal:
        opened.append(Terminal(port, phone))
        return opened[-1]

    yield connect
    for t in opened:
        t.close()


_taken: set[int] = set()


def demo_device(stack: Stack, protocol: str) -> tuple[int, str, int]:
    """(device id, identifier, vehicle id) of a demo device no other test here has used."""
    with stack.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT id, identifier, vehicle_id FROM device WHERE protocol = :p AND enabled"
                " AND vehicle_id IS NOT NULL ORDER BY id"
            ),
            {"p": protocol},
        ).all()
    row = next(r for r in rows if r[0] not in _taken)
    _taken.add(row[0])
    return row[0], row[1], row[2]


def login(stack: Stack, username: str) -> dict[str, str]:
    reply = httpx.post(
        f"{stack.url}/api/v1/auth/token",
        data={"username": username, "password": DEMO_PASSWORD},
        timeout=10,
    )
    assert reply.status_code == 200, reply.text
    return {"Authorization": f"Bearer {reply.json()['access_token']}"}


def counter(stack: Stack, name: str) -> int:
    return int(stack.redis.hget(stream.COUNTERS, name) or 0)


def stored_at(stack: Stack, vehicle_id: int, fix_time: datetime) -> int:
    with stack.engine.connect() as conn:
        return int(
            conn.execute(
                text("SELECT count(*) FROM position WHERE vehicle_id = :v AND fix_time = :t"),
                {"v": vehicle_id, "t": fix_time},
            ).scalar_one()
        )


def a_minute_ago(offset_s: int = 0) -> datetime:
    return datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=60 - offset_s)


# ---- JT/T 808 -------------------------------------------------------------------------------


def test_an_impostor_naming_a_registered_number_is_refused_reported_and_not_stored(stack, terminal):
    _, phone, vehicle_id = demo_device(stack, "jt808")
    genuine = terminal(phone)
    result, code = genuine.register("REAL001")
    assert (result, genuine.authenticate(code)) == (RegisterResult.OK, Result.OK)

    impostor = terminal(phone)
    result, code = impostor.register("EVIL001")
    assert (result, code) == (RegisterResult.TERMINAL_TAKEN, "")
    forged_at, genuine_at = a_minute_ago(), a_minute_ago(10)
    assert impostor.report(forged_at) == Result.FAILURE
    assert genuine.report(genuine_at) == Result.OK
    # Once the genuine fix sent after it is stored, the forged one would have been too.
    wait_until(lambda: stored_at(stack, vehicle_id, genuine_at), "the genuine fix")
    assert stored_at(stack, vehicle_id, forged_at) == 0

    with stack.engine.connect() as conn:
        recorded = conn.execute(
            text("SELECT remote_addr FROM unknown_device WHERE identifier = :i"),
            {"i": phone.lstrip("0")},
        ).scalar()
    assert recorded == impostor.address

    supervisor = login(stack, "supervisor")

    def alert() -> list[dict[str, Any]]:
        reply = httpx.get(
            f"{stack.url}/api/v1/alerts",
            params={"kind": "device_identity_mismatch", "vehicle_id": vehicle_id},
            headers=supervisor,
            timeout=10,
        )
        return reply.json()["items"] if reply.status_code == 200 else []

    (found,) = wait_until(alert, "the device_identity_mismatch alert")
    assert found["measured"]["remote_addr"] == impostor.address
    assert found["measured"]["claimed"]["terminal_id"] == "EVIL001"
    assert found["measured"]["bound"]["terminal_id"] == "REAL001"
    assert found["review"] == "pending"


def test_wrong_stale_and_derivable_auth_codes_are_refused_and_counted(stack, terminal):
    _, phone, _ = demo_device(stack, "jt808")
    t = terminal(phone)
    _, first = t.register("T-CODES")
    _, current = t.register("T-CODES")
    # Codes are random per registration: the last one revokes the one before.
    assert first != current
    # What the code used to be: an HMAC of the number with the server's key (here the
    # development default, which anyone can read in the source).
    derived = hmac.new(
        DEVELOPMENT_SECRET.encode(), f"jt808:{phone.lstrip('0')}".encode(), hashlib.sha256
    ).hexdigest()[:16]
    before = counter(stack, "refused_bad_auth_code")
    for wrong in ("0" * 16, first, derived):
        assert t.authenticate(wrong) == Result.FAILURE
    wait_until(lambda: counter(stack, "refused_bad_auth_code") >= before + 3, "the counter")
    assert t.authenticate(current) == Result.OK


@pytest.fixture
def second_gateway(stack: Stack) -> Iterator[int]:
    """Another `fleet gateway` process on the same database and Redis; its JT/T 808 port."""
    jt808, osmand = free_port(), free_port()
    env = {**stack.env, "FLEET_JT808_PORT": str(jt808), "FLEET_OSMAND_PORT": str(osmand)}
    child = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "gateway"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=os.getcwd(),
    )

    def listening() -> bool:
        try:
            socket.create_connection(("127.0.0.1", osmand), timeout=1).close()
        except OSError:
            return child.poll() is not None
        return True

    try:
        wait_until(listening, "the second gateway", timeout=60)
        assert child.poll() is None, "the second gateway did not start"
        yield jt808
    finally:
        child.terminate()
        child.wait(timeout=20)


def test_a_code_issued_by_one_gateway_process_is_checked_by_another(
    stack, trackers, terminal, second_gateway
):
    _, phone, _ = demo_device(stack, "jt808")
    here = terminal(phone)
    _, stale = here.register("T-TWO")
    _, code = here.register("T-TWO")
    assert stale != code
    there = terminal(phone, second_gateway)
    assert there.authenticate(stale) == Result.FAILURE
    assert there.authenticate(code) == Result.OK
    assert there.report(a_minute_ago()) == Result.OK


def test_only_an_administrator_rebinds_and_then_a_replacement_terminal_registers(stack, terminal):
    device_id, phone, _ = demo_device(stack, "jt808")
    old = terminal(phone)
    assert old.register("OLD0001")[0] == RegisterResult.OK
    replacement = terminal(phone)
    assert replacement.register("NEW0001")[0] == RegisterResult.TERMINAL_TAKEN

    url = f"{stack.url}/api/v1/devices/{device_id}/rebind"
    refused = httpx.post(url, json={}, headers=login(stack, "dispatcher"), timeout=10)
    assert refused.status_code == 403
    assert replacement.register("NEW0001")[0] == RegisterResult.TERMINAL_TAKEN

    admin = login(stack, "admin")
    rebound = httpx.post(url, json={"terminal_id": "NEW0001"}, headers=admin, timeout=10)
    assert rebound.status_code == 200, rebound.text
    assert old.register("OLD0001")[0] == RegisterResult.TERMINAL_TAKEN  # only NEW0001 may bind
    result, code = replacement.register("NEW0001")
    assert result == RegisterResult.OK
    assert replacement.authenticate(code) == Result.OK
    audit = httpx.get(
        f"{stack.url}/api/v1/audit",
        params={"entity": "device", "entity_id": str(device_id)},
        headers=admin,
        timeout=10,
    ).json()["items"]
    actions = [e["action"] for e in audit]
    assert "rebind" in actions
    (rebind,) = [e for e in audit if e["action"] == "rebind"]
    assert rebind["actor"] == "admin"
    assert rebind["before"]["terminal_id"] == "OLD0001"


# ---- OsmAnd ---------------------------------------------------------------------------------


def no_partition(stack: Stack, name: str) -> bool:
    with stack.engine.connect() as conn:
        return not conn.execute(
            text("SELECT 1 FROM pg_class WHERE relname = :n"), {"n": name}
        ).first()


def test_an_osmand_fix_dated_1970_is_refused_counted_and_makes_no_partition(stack, trackers):
    _, identifier, vehicle_id = demo_device(stack, "osmand")
    before = counter(stack, "dropped_too_old")
    for timestamp in ("0", "1970-01-01T00:00:00Z"):
        reply = httpx.get(
            trackers.osmand_url,
            params={"id": identifier, "lat": "30.27", "lon": "120.12", "timestamp": timestamp},
            timeout=10,
        )
        assert reply.status_code == 400
    now = a_minute_ago()
    params = {"id": identifier, "lat": "30.27", "lon": "120.12"}
    ok = httpx.get(trackers.osmand_url, params={**params, "timestamp": str(int(now.timestamp()))})
    assert ok.status_code == 200
    wait_until(lambda: stored_at(stack, vehicle_id, now), "the fix sent after them")
    assert no_partition(stack, "position_p197001")
    wait_until(lambda: counter(stack, "dropped_too_old") >= before + 2, "the too_old counter")


def test_an_osmand_fix_older_than_the_window_is_counted_too_old(stack, trackers):
    _, identifier, vehicle_id = demo_device(stack, "osmand")
    before = counter(stack, "dropped_too_old")
    old = datetime.now(UTC).replace(microsecond=0) - timedelta(days=31)
    reply = httpx.get(
        trackers.osmand_url,
        params={
            "id": identifier,
            "lat": "30.27",
            "lon": "120.12",
            "timestamp": str(int(old.timestamp())),
        },
        timeout=10,
    )
    assert reply.status_code == 400
    wait_until(lambda: counter(stack, "dropped_too_old") >= before + 1, "the too_old counter")
    assert stored_at(stack, vehicle_id, old) == 0


def test_a_phone_with_a_secret_needs_its_key_and_refusals_reveal_no_ids(stack, trackers):
    _, _, vehicle_id = demo_device(stack, "osmand")
    secret = "phone-key-" + os.urandom(8).hex()
    created = httpx.post(
        f"{stack.url}/api/v1/devices",
        json={
            "protocol": "osmand",
            "identifier": "keyed-phone-1",
            "vehicle_id": vehicle_id,
            "secret": secret,
        },
        headers=login(stack, "admin"),
        timeout=10,
    )
    assert created.status_code == 201, created.text
    fix = {"lat": "30.27", "lon": "120.12"}

    def send(**params: str) -> httpx.Response:
        return httpx.get(trackers.osmand_url, params={**fix, **params}, timeout=10)

    missing = send(id="keyed-phone-1")
    wrong = send(id="keyed-phone-1", key=secret[:-1] + "x")
    unknown = send(id="no-such-phone-7", key=secret)
    assert [r.status_code for r in (missing, wrong, unknown)] == [403, 403, 403]
    assert missing.text == wrong.text == unknown.text
    assert send(id="keyed-phone-1", key=secret).status_code == 200

    with stack.engine.connect() as conn:
        recorded = dict(
            conn.execute(
                text(
                    "SELECT identifier, last_message FROM unknown_device WHERE identifier IN"
                    " ('keyed-phone-1', 'no-such-phone-7')"
                )
            ).all()
        )
    assert set(recorded) == {"keyed-phone-1", "no-such-phone-7"}
    assert not any(secret[:-1] in message for message in recorded.values())


def test_a_body_declared_at_3_gb_gets_413_before_any_of_it_is_sent(trackers):
    host, port = trackers.osmand_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"POST /?id=big HTTP/1.1\r\nHost: gateway\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: 3000000000\r\n\r\n"
        )
        answer = sock.recv(4096)  # not a byte of the body sent
    assert answer.startswith(b"HTTP/1.1 413"), answer[:100]
