"""Terminal identity and phone credentials at the gateways: the pure binding rule, and the
gateways on real sockets (a terminal id entered beforehand, the sink an impostor is reported to,
a phone's key never stored, bodies refused while they stream in)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import httpx2 as httpx
import pytest
from sqlalchemy import text

from telematics import gateway, stream
from telematics.protocols import jt808
from telematics.protocols.jt808 import MsgId, RegisterResult, Result
from telematics.settings import TelematicsSettings
from telematics.terminals import Identity, Mismatch, Verdict, code_digest, verdict
from tests.support import free_port
from tests.telematics.conftest import Fleetlet
from tests.telematics.test_gateway import result_of, stream_rows, terminal

PHONE = "013900000001"  # fleetlet's JT/T 808 device for vehicle 1
REAL = Identity("70111", "KM-01", "T000001", "浙A·D70001", 2)


@pytest.mark.parametrize(
    ("bound", "expected", "claimed", "found"),
    [
        (None, None, REAL, Verdict.BIND),
        (None, "T000001", REAL, Verdict.BIND),
        (None, "T000009", REAL, Verdict.MISMATCH),
        (REAL, None, REAL, Verdict.MATCH),
        (REAL, None, Identity("70111", "KM-01", "T000002", "浙A·D70001", 2), Verdict.MISMATCH),
        (REAL, None, Identity("70111", "KM-01", "T000001", "浙A·D70009", 2), Verdict.MISMATCH),
        (REAL, None, Identity("70111", "KM-01", "T000001", "浙A·D70001", 1), Verdict.MISMATCH),
    ],
)
def test_the_first_terminal_binds_and_any_other_is_a_mismatch(bound, expected, claimed, found):
    assert verdict(bound=bound, expected_terminal_id=expected, claimed=claimed) is found


def test_codes_are_kept_as_digests():
    assert code_digest("abc") == code_digest("abc") != code_digest("abd")
    assert len(code_digest("abc")) == 64


class Sink:
    def __init__(self) -> None:
        self.reported: list[Mismatch] = []

    def report(self, mismatch: Mismatch) -> None:
        self.reported.append(mismatch)


@pytest.fixture
def gw_settings() -> TelematicsSettings:
    return TelematicsSettings(
        gateway_host="127.0.0.1", jt808_port=free_port(), osmand_port=free_port(), stream_shards=4
    )


async def serving(fleetlet: Fleetlet, settings: TelematicsSettings, sink: Sink | None = None):
    ready, stop = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(
        gateway.serve(
            settings, fleetlet.engine, fleetlet.settings.redis, ready, stop, mismatches=sink
        )
    )
    await asyncio.wait_for(ready.wait(), 10)
    return stop, task


def test_a_terminal_id_entered_beforehand_admits_only_that_terminal(
    fleetlet, redis, gw_settings, clean_tracks
):
    with fleetlet.engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE device SET terminal_id = 'T000001', bound_at = NULL"
                " WHERE identifier = '13900000001'"
            )
        )
    sink = Sink()

    async def scenario() -> tuple[int, int, str]:
        stop, task = await serving(fleetlet, gw_settings, sink)
        try:
            t = await terminal(gw_settings.jt808_port)
            other = await t.send(
                MsgId.REGISTER,
                jt808.register_body("浙A·D70001", terminal_id="T000009"),
                phone=PHONE,
            )
            real = await t.send(
                MsgId.REGISTER,
                jt808.register_body("浙A·D70001", terminal_id="T000001"),
                phone=PHONE,
            )
            code = real.body[3:].decode()
            authenticated = result_of(
                await t.send(MsgId.AUTHENTICATE, jt808.authenticate_body(code), phone=PHONE)
            )
            t.writer.close()
            return other.body[2], real.body[2], str(authenticated)
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)

    other, real, authenticated = asyncio.run(scenario())
    assert (other, real, authenticated) == (
        RegisterResult.TERMINAL_TAKEN,
        RegisterResult.OK,
        str(Result.OK),
    )
    (reported,) = sink.reported
    assert (reported.claimed.terminal_id, reported.expected_terminal_id) == ("T000009", "T000001")
    assert reported.remote_addr.startswith("127.0.0.1:")
    with fleetlet.engine.connect() as conn:
        bound = conn.execute(
            text(
                "SELECT terminal_id, terminal_maker, terminal_plate, bound_at IS NOT NULL"
                " FROM device WHERE identifier = '13900000001'"
            )
        ).one()
        actions = conn.execute(
            text("SELECT action, actor FROM audit_entry WHERE action = 'bind'")
        ).all()
    assert tuple(bound) == ("T000001", "FLEET", "浙A·D70001", True)
    assert [a for a, _ in actions] == ["bind"]
    assert actions[0][1].startswith("jt808 terminal 127.0.0.1:")
    assert int(redis.hget(stream.COUNTERS, "refused_identity_mismatch")) == 1


def test_a_phone_key_is_checked_and_never_kept_as_an_attribute(
    fleetlet, redis, gw_settings, clean_tracks
):
    from fleet.registry import device_secret_digest

    with fleetlet.engine.begin() as conn:
        conn.execute(
            text("UPDATE device SET secret_digest = :d WHERE identifier = 'phone-2'"),
            {"d": device_secret_digest("the-right-key-0123")},
        )
    at = str(int((datetime.now(UTC) - timedelta(hours=1)).timestamp()))

    async def scenario() -> list[int]:
        stop, task = await serving(fleetlet, gw_settings)
        try:
            base = f"http://127.0.0.1:{gw_settings.osmand_port}/"
            fix = {"id": "phone-2", "lat": "30.2", "lon": "120.1", "timestamp": at}
            async with httpx.AsyncClient() as client:
                codes = [
                    (await client.get(base, params=fix)).status_code,
                    (await client.get(base, params={**fix, "key": "wrong"})).status_code,
                    (
                        await client.post(base, data={**fix, "key": "the-right-key-0123"})
                    ).status_code,
                ]
                body = {
                    "device_id": "phone-2",
                    "location": {
                        "timestamp": datetime.now(UTC).isoformat(),
                        "coords": {"latitude": 30.3, "longitude": 120.1},
                    },
                }
                codes.append((await client.post(base, json=body)).status_code)
                keyed = await client.post(base, json=body, params={"key": "the-right-key-0123"})
                codes.append(keyed.status_code)
            return codes
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)

    try:
        assert asyncio.run(scenario()) == [403, 403, 200, 403, 200]
    finally:
        with fleetlet.engine.begin() as conn:
            conn.execute(text("UPDATE device SET secret_digest = NULL"))
    rows = stream_rows(redis, gw_settings.stream_shards)
    assert len(rows) == 2
    for row in rows:
        assert "key" not in json.loads(row[stream.R_ATTRIBUTES] or "{}")
    with fleetlet.engine.connect() as conn:
        message = conn.execute(
            text("SELECT last_message FROM unknown_device WHERE identifier = 'phone-2'")
        ).scalar_one()
    assert message.startswith("missing or wrong key: ")
    assert "key=" not in message


def test_bodies_over_the_limit_are_refused_declared_or_streamed(fleetlet, redis, gw_settings):
    """A chunked body (no Content-Length) is refused once it passes the limit, not read to its
    end; a declared one before any of it is read."""

    async def send(head: bytes, body: bytes) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", gw_settings.osmand_port)
        writer.write(head + body)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(4096), 10)
        writer.close()
        return answer

    async def scenario() -> list[bytes]:
        stop, task = await serving(fleetlet, gw_settings)
        try:
            chunk = b"10000\r\n" + b"x" * 0x10000 + b"\r\n"  # 64 KiB
            streamed = await send(
                b"POST /?id=phone-0 HTTP/1.1\r\nHost: g\r\nTransfer-Encoding: chunked\r\n\r\n",
                chunk * 16,  # 1 MiB and never a last chunk
            )
            declared = await send(
                b"POST /?id=phone-0 HTTP/1.1\r\nHost: g\r\nContent-Length: 1000001\r\n\r\n",
                b"",
            )
            return [streamed, declared]
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)

    answers = asyncio.run(scenario())
    assert [a[:12] for a in answers] == [b"HTTP/1.1 413"] * 2
    assert int(redis.hget(stream.COUNTERS, "refused_body_too_large")) == 2
