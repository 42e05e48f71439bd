"""The gateways on real sockets: JT/T 808 over TCP and OsmAnd over HTTP, into real Redis."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx2 as httpx
import pytest
import uvloop
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.orm import Session as DbSession

from fleet import channels, registry
from fleet.auth import Actor
from fleet.models import OrgUnit
from fleet.redis_client import RedisAddress, RedisClient
from fleet.schemas import DeviceCreate
from telematics import gateway, stream
from telematics.batch import entry_rows
from telematics.devices import DeviceDirectory
from telematics.fix import Fix
from telematics.gateway_jt808 import JT808Server, Session
from telematics.protocols import jt808
from telematics.protocols.jt808 import MsgId, RegisterResult, Result
from telematics.settings import TelematicsSettings
from tests.redis_cluster import SINGLE_AND_CLUSTER
from tests.support import free_port
from tests.telematics.conftest import Fleetlet
from tests.telematics.test_jt808 import HEX_VECTORS, careless, packet

PHONE = "013900000000"  # fleetlet's JT/T 808 device for vehicle 0
# Fixes are dated within the allowed window (FLEET_MAX_PAST_DAYS) whatever day the tests run.
RECENT = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=1)


@pytest.fixture
def gw_settings() -> TelematicsSettings:
    return TelematicsSettings(
        gateway_host="127.0.0.1", jt808_port=free_port(), osmand_port=free_port(), stream_shards=4
    )


@asynccontextmanager
async def running(
    fleetlet: Fleetlet, gw_settings: TelematicsSettings, redis_address: RedisAddress
) -> AsyncIterator[None]:
    ready, stop = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(
        gateway.serve(gw_settings, fleetlet.engine, redis_address, ready, stop)
    )
    await asyncio.wait_for(ready.wait(), 10)
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


class Terminal:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer, self.buffer, self.serial = reader, writer, b"", 0

    async def send(
        self,
        msg_id: int,
        body: bytes = b"",
        *,
        phone: str = PHONE,
        v2019: bool = False,
        raw: bytes | None = None,
    ) -> jt808.Message:
        self.serial += 1
        frame = raw or jt808.encode_frame(msg_id, phone, self.serial, body, version2019=v2019)
        self.writer.write(frame)
        await self.writer.drain()
        while True:
            frames, self.buffer = jt808.split_frames(self.buffer)
            if frames:
                self.buffer = b"".join(b"\x7e" + f + b"\x7e" for f in frames[1:]) + self.buffer
                return jt808.decode(frames[0])
            chunk = await asyncio.wait_for(self.reader.read(4096), 5)
            assert chunk, "gateway closed the connection"
            self.buffer += chunk


async def terminal(port: int) -> Terminal:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    return Terminal(reader, writer)


def result_of(reply: jt808.Message) -> int:
    assert reply.msg_id == MsgId.PLATFORM_REPLY
    return reply.body[4]


def a_fix(minute: int = 0) -> Fix:
    """A fix of the last hour: the gateway refuses one from the future by its own clock."""
    hour = (datetime.now(UTC) - timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)
    return Fix(
        PHONE,
        hour + timedelta(minutes=minute),
        30.26,
        120.19,
        speed_kmh=35.0,
        heading_deg=10,
        ignition=True,
        odometer_km=88.8,
        valid=True,
    )


def stream_rows(redis: RedisClient, shards: int) -> list[list]:
    rows = []
    for shard in range(shards):
        for _, fields in redis.xrange(stream.stream_key(shard)):
            rows += entry_rows(fields)
    return rows


def run_on(loop: str, scenario: Callable[[], Any]) -> Any:
    """Runs a scenario on the standard event loop or on uvloop, which `fleet gateway` uses (its
    transports are not asyncio's classes). In a thread of its own, bounded: when a protocol
    callback raises, uvloop's `close` can wait forever, and the test must fail, not hang."""
    factory = uvloop.new_event_loop if loop == "uvloop" else None
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            with asyncio.Runner(loop_factory=factory) as runner:
                result["value"] = runner.run(asyncio.wait_for(scenario(), 60))
        except BaseException as error:  # handed to the test's thread
            result["error"] = error

    thread = threading.Thread(target=run, name=f"scenario on {loop}", daemon=True)
    thread.start()
    thread.join(90)
    assert not thread.is_alive(), f"the scenario on {loop} did not end within 90 s"
    if "error" in result:
        raise result["error"]
    return result.get("value")


@SINGLE_AND_CLUSTER
@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_jt808_register_authenticate_report(fleetlet, redis, gw_settings, loop, redis_address):
    async def scenario() -> None:
        async with running(fleetlet, gw_settings, redis_address):
            t = await terminal(gw_settings.jt808_port)
            registered = await t.send(MsgId.REGISTER, jt808.register_body("浙A·D70000"))
            assert registered.msg_id == MsgId.REGISTER_REPLY
            assert registered.body[2] == RegisterResult.OK
            code = registered.body[3:].decode()
            assert len(code) == 16
            assert (
                result_of(await t.send(MsgId.AUTHENTICATE, jt808.authenticate_body("wrong")))
                == Result.FAILURE
            )
            assert (
                result_of(await t.send(MsgId.AUTHENTICATE, jt808.authenticate_body(code)))
                == Result.OK
            )
            assert (
                result_of(await t.send(MsgId.LOCATION, jt808.location_body(a_fix()))) == Result.OK
            )
            batch = jt808.batch_body([a_fix(1), a_fix(2)], blind=True)
            assert result_of(await t.send(MsgId.BATCH, batch)) == Result.OK
            assert result_of(await t.send(MsgId.HEARTBEAT)) == Result.OK
            assert result_of(await t.send(0x0F0F, b"\x01")) == Result.UNSUPPORTED
            bad = bytearray(jt808.encode_frame(MsgId.HEARTBEAT, PHONE, 99))
            bad[-2] ^= 0x55
            assert result_of(await t.send(0, raw=bytes(bad))) == Result.BAD_MESSAGE
            assert result_of(await t.send(MsgId.LOGOUT)) == Result.OK
            t.writer.close()

    run_on(loop, scenario)
    rows = stream_rows(redis, gw_settings.stream_shards)
    assert len(rows) == 3
    assert {r[stream.R_VEHICLE] for r in rows} == {fleetlet.targets[0].vehicle_id}
    assert rows[0][stream.R_LAT] == pytest.approx(30.26)
    assert rows[0][stream.R_SPEED] == pytest.approx(35.0)
    assert json.loads(rows[1][stream.R_ATTRIBUTES])["blind_area"] is True
    counters = redis.hgetall(stream.COUNTERS)
    assert int(counters[b"received_jt808"]) == 3
    assert int(counters[b"dropped_bad_checksum"]) == 1


def test_jt808_2019_header_and_reports_before_authentication(
    fleetlet, redis, gw_settings, redis_address
):
    async def scenario() -> None:
        async with running(fleetlet, gw_settings, redis_address):
            t = await terminal(gw_settings.jt808_port)
            early = await t.send(MsgId.LOCATION, jt808.location_body(a_fix()), v2019=True)
            assert early.header.version2019
            assert result_of(early) == Result.FAILURE
            registered = await t.send(
                MsgId.REGISTER, jt808.register_body("浙A·D70000", version2019=True), v2019=True
            )
            assert registered.body[2] == RegisterResult.OK
            body = jt808.authenticate_body(
                registered.body[3:].decode(),
                version2019=True,
                imei="861234567890123",
                software_version="V3.0.1",
            )
            assert result_of(await t.send(MsgId.AUTHENTICATE, body, v2019=True)) == Result.OK
            assert (
                result_of(await t.send(MsgId.LOCATION, jt808.location_body(a_fix()), v2019=True))
                == Result.OK
            )
            t.writer.close()

    asyncio.run(scenario())
    assert len(stream_rows(redis, gw_settings.stream_shards)) == 1
    assert int(redis.hget(stream.COUNTERS, "refused_unauthenticated")) == 1
    with fleetlet.engine.connect() as conn:
        reported = conn.execute(
            text("SELECT imei, software_version FROM device WHERE identifier = '13900000000'")
        ).one()
    assert tuple(reported) == ("861234567890123", "V3.0.1")


def test_a_terminal_with_its_imei_in_the_number_field_registers_by_that_imei(
    fleetlet, redis, gw_settings, redis_address
):
    """The header's number field holds `4e b6 fb 4a d6 28`, not BCD: the terminal is the device
    an administrator registered as IMEI 865478070001047, and the replies echo the field."""
    field = bytes.fromhex("4eb6fb4ad628")
    with fleetlet.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO device (protocol, identifier, vehicle_id, unit_id)"
                " VALUES ('jt808', '865478070001047', :v, :u)"
            ),
            {"v": fleetlet.targets[1].vehicle_id, "u": fleetlet.unit_id},
        )

    async def scenario() -> tuple[jt808.Message, jt808.Message, jt808.Message]:
        async with running(fleetlet, gw_settings, redis_address):
            t = await terminal(gw_settings.jt808_port)
            registered = await t.send(MsgId.REGISTER, jt808.register_body(), phone=field.hex())
            code = registered.body[3:].decode()
            body = jt808.authenticate_body(code)
            authenticated = await t.send(MsgId.AUTHENTICATE, body, phone=field.hex())
            body = jt808.location_body(a_fix())
            reported = await t.send(MsgId.LOCATION, body, phone=field.hex())
            t.writer.close()
            return registered, authenticated, reported

    try:
        registered, authenticated, reported = asyncio.run(scenario())
    finally:
        with fleetlet.engine.begin() as conn:
            conn.execute(text("DELETE FROM device WHERE identifier = '865478070001047'"))
    assert registered.body[2] == RegisterResult.OK
    assert result_of(authenticated) == Result.OK
    assert result_of(reported) == Result.OK
    assert {registered.header.number, reported.header.number} == {field}
    (row,) = stream_rows(redis, gw_settings.stream_shards)
    assert row[stream.R_VEHICLE] == fleetlet.targets[1].vehicle_id


def test_unknown_terminal_is_refused_and_recorded(
    fleetlet, redis, gw_settings, clean_tracks, redis_address
):
    async def scenario() -> None:
        async with running(fleetlet, gw_settings, redis_address):
            t = await terminal(gw_settings.jt808_port)
            reply = await t.send(MsgId.REGISTER, jt808.register_body(), phone="018812345678")
            assert reply.body[2] == RegisterResult.NO_SUCH_TERMINAL
            t.writer.close()

    asyncio.run(scenario())
    with fleetlet.engine.connect() as conn:
        row = conn.execute(text("SELECT protocol, identifier, attempts FROM unknown_device")).one()
    assert tuple(row) == ("jt808", "18812345678", 1)


def test_a_meshtastic_node_reports_under_its_id_percent_encoded_or_not(
    fleetlet, redis, gw_settings, clean_tracks, redis_address
):
    """The mesh2traccar bridge sends ids like `!a1b2c3d4`; registered so through the registry,
    the node is found whether the `!` comes written out or as `%21`."""
    with DbSession(fleetlet.engine) as session, session.begin():
        root = session.get(OrgUnit, fleetlet.unit_id)
        registry.create_device(
            session=session,
            actor=Actor.system(root),
            data=DeviceCreate(
                protocol="osmand", identifier="!a1b2c3d4", vehicle_id=fleetlet.targets[2].vehicle_id
            ),
        )
    fix = "lat=30.27&lon=120.15&timestamp=" + str(int(RECENT.timestamp()))

    async def scenario() -> list[int]:
        async with running(fleetlet, gw_settings, redis_address):
            base = f"http://127.0.0.1:{gw_settings.osmand_port}/"
            async with httpx.AsyncClient() as client:
                return [
                    (await client.get(f"{base}?id={spelling}&{fix}")).status_code
                    for spelling in ("!a1b2c3d4", "%21a1b2c3d4")
                ]

    try:
        assert asyncio.run(scenario()) == [200, 200]
    finally:
        with fleetlet.engine.begin() as conn:
            conn.execute(text("DELETE FROM device WHERE identifier = '!a1b2c3d4'"))
    rows = stream_rows(redis, gw_settings.stream_shards)
    assert [row[stream.R_VEHICLE] for row in rows] == [fleetlet.targets[2].vehicle_id] * 2


@SINGLE_AND_CLUSTER
def test_osmand_accepts_refuses_and_records(
    fleetlet, redis, gw_settings, clean_tracks, redis_address
):
    async def scenario() -> None:
        async with running(fleetlet, gw_settings, redis_address):
            base = f"http://127.0.0.1:{gw_settings.osmand_port}/"
            async with httpx.AsyncClient() as client:
                ok = await client.get(
                    base,
                    params={
                        "id": "phone-1",
                        "lat": "30.27",
                        "lon": "120.15",
                        "timestamp": str(int(RECENT.timestamp())),
                        "speed": "10",
                    },
                )
                assert (ok.status_code, ok.text) == (200, "")
                posted = await client.post(
                    base, data={"id": "phone-1", "lat": "30.28", "lon": "120.15"}
                )
                assert posted.status_code == 200
                body = {
                    "device_id": "phone-2",
                    "location": {
                        "timestamp": RECENT.isoformat(),
                        "coords": {"latitude": 30.3, "longitude": 120.1, "speed": 5},
                    },
                }
                as_json = await client.post(base, json=body)
                assert as_json.status_code == 200
                unknown = await client.get(base, params={"id": "stranger", "lat": "1", "lon": "2"})
                assert unknown.status_code == 403
                bad = await client.get(base, params={"id": "phone-1", "lat": "99", "lon": "2"})
                assert bad.status_code == 400
                assert "impossible coordinates" in bad.text
                future = await client.get(
                    base,
                    params={"id": "phone-1", "lat": "1", "lon": "2", "timestamp": "4102444800"},
                )
                assert future.status_code == 400

    asyncio.run(scenario())
    rows = stream_rows(redis, gw_settings.stream_shards)
    assert len(rows) == 3
    assert rows[0][stream.R_SPEED] == pytest.approx(18.52)
    with fleetlet.engine.connect() as conn:
        assert conn.execute(text("SELECT identifier FROM unknown_device")).scalar() == "stranger"
    assert int(redis.hget(stream.COUNTERS, "dropped_future_time")) == 1


@pytest.fixture
def jt808_server(fleetlet, gw_settings, redis_address) -> Callable[[], JT808Server]:
    """A gateway's JT/T 808 handler on a real Redis stream, for feeding frames directly."""

    def make() -> JT808Server:
        redis = redis_address.connect_async()
        directory = DeviceDirectory(fleetlet.engine, refresh_s=60)
        writer = stream.StreamWriter(redis, shards=4, max_backlog=10_000)
        intake = gateway.Intake(gw_settings, writer, directory, gateway.Counters(redis))
        return JT808Server(intake, gw_settings, fleetlet.engine)

    return make


VECTOR_PACKETS = [packet(v) for v in HEX_VECTORS]


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_random_and_mutated_frames_never_crash_the_session(jt808_server, data):
    """Each batch of junk gets replies or counted drops, and the session still answers after."""
    frames = data.draw(
        st.lists(
            st.one_of(
                st.binary(max_size=120),
                st.sampled_from(VECTOR_PACKETS).map(lambda p: p[1:-1]),
                st.tuples(
                    st.sampled_from(VECTOR_PACKETS), st.integers(0, 300), st.integers(0, 255)
                ).map(
                    lambda t: bytes(
                        b if i != t[1] % len(t[0]) else t[2] for i, b in enumerate(t[0])
                    )[1:-1]
                ),
            ),
            max_size=8,
        )
    )

    async def feed() -> bytes:
        server = jt808_server()
        try:
            session = Session(peer="fuzz")
            await server.handle_frames(session, [f for f in frames if f])
            heartbeat = jt808.encode_frame(MsgId.HEARTBEAT, PHONE, 1)
            return await server.handle_frames(session, jt808.split_frames(heartbeat)[0])
        finally:
            await server.intake.counters.redis.aclose()

    reply = asyncio.run(feed())
    assert result_of(jt808.decode_packet(reply)) == Result.OK


def test_a_silent_terminal_is_disconnected_after_the_idle_timeout(fleetlet, redis, redis_address):
    settings = TelematicsSettings(
        gateway_host="127.0.0.1",
        jt808_port=free_port(),
        osmand_port=free_port(),
        jt808_idle_timeout_s=0.5,
    )

    async def scenario() -> bytes:
        async with running(fleetlet, settings, redis_address):
            talkative = await terminal(settings.jt808_port)
            assert result_of(await talkative.send(MsgId.HEARTBEAT)) == Result.OK
            silent = await terminal(settings.jt808_port)
            closed = await asyncio.wait_for(silent.reader.read(100), 5)
            for client in (talkative, silent):
                client.writer.close()
                await client.writer.wait_closed()
            return closed

    closed = asyncio.run(scenario())
    assert closed == b""  # the gateway hung up
    assert int(redis.hget(stream.COUNTERS, "closed_idle_jt808")) >= 1


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_burst_of_frames_and_a_frame_split_across_reads_are_answered_in_order(
    fleetlet, redis, gw_settings, loop, redis_address
):
    """Many frames in one write (more than the gateway queues before it stops reading), then one
    frame in two writes: every frame gets its reply, in the order sent."""

    async def scenario() -> list[int]:
        async with running(fleetlet, gw_settings, redis_address):
            reader, writer = await asyncio.open_connection("127.0.0.1", gw_settings.jt808_port)
            frames = [
                jt808.encode_frame(MsgId.HEARTBEAT, PHONE, serial, b"") for serial in range(1, 202)
            ]
            writer.write(b"".join(frames[:200]))
            writer.write(frames[200][:5])
            await writer.drain()
            await asyncio.sleep(0.05)
            writer.write(frames[200][5:])
            await writer.drain()
            answered: list[int] = []
            buffer = b""
            while len(answered) < 201:
                chunk = await asyncio.wait_for(reader.read(65536), 5)
                assert chunk, "gateway closed the connection"
                found, buffer = jt808.split_frames(buffer + chunk)
                answered += [int.from_bytes(jt808.decode(f).body[:2], "big") for f in found]
            writer.close()
            await writer.wait_closed()
            return answered

    assert run_on(loop, scenario) == list(range(1, 202))


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_report_with_a_raw_7e_inside_is_joined_stored_acknowledged_and_counted(
    fleetlet, redis, gw_settings, loop, redis_address
):
    """A terminal that does not escape 0x7E sends one inside a report (in a vendor item), in two
    writes cut just after it: the gateway joins the two parts, acknowledges the report, puts its
    fix in the stream and counts the frame as recovered."""
    body = jt808.location_body(a_fix(), extra=b"\xec\x02\x7e\x01")
    frame = careless(jt808.encode_frame(MsgId.LOCATION, PHONE, 7, body))
    cut = frame.index(b"\x7e", 1) + 1

    async def scenario() -> jt808.Message:
        async with running(fleetlet, gw_settings, redis_address):
            t = await terminal(gw_settings.jt808_port)
            registered = await t.send(MsgId.REGISTER, jt808.register_body("浙A·D70000"))
            code = registered.body[3:].decode()
            authenticated = await t.send(MsgId.AUTHENTICATE, jt808.authenticate_body(code))
            assert result_of(authenticated) == Result.OK
            t.writer.write(frame[:cut])
            await t.writer.drain()
            await asyncio.sleep(0.05)  # the first part arrives alone
            reply = await t.send(0, raw=frame[cut:])
            t.writer.close()
            return reply

    reply = run_on(loop, scenario)
    assert reply.body[:2] == (7).to_bytes(2, "big")  # the report's serial
    assert result_of(reply) == Result.OK
    (row,) = stream_rows(redis, gw_settings.stream_shards)
    assert row[stream.R_VEHICLE] == fleetlet.targets[0].vehicle_id
    assert json.loads(row[stream.R_ATTRIBUTES])["xec"] == "7e01"
    counters = redis.hgetall(stream.COUNTERS)
    assert int(counters[b"recovered_unescaped"]) == 1
    assert not any(name.startswith(b"dropped_") for name in counters)


@SINGLE_AND_CLUSTER
def test_a_fix_goes_live_as_it_enters_the_stream_with_no_worker_running(
    fleetlet, redis, gw_settings, clean_tracks, redis_address
):
    """The live channel is fed by the gateway once the fix is in Redis: the map does not wait for
    the worker's batch, PostGIS or the rules. An old fix (a blind-area re-send) is stored, not
    shown live."""
    live = redis.pubsub()
    live.subscribe(channels.LIVE)
    live.get_message(timeout=1)  # the subscription's confirmation
    now = int(time.time())

    async def scenario() -> None:
        async with running(fleetlet, gw_settings, redis_address):
            base = f"http://127.0.0.1:{gw_settings.osmand_port}/"
            async with httpx.AsyncClient() as client:
                for at, lat in ((now - 3600, "30.20"), (now, "30.27")):
                    params = {"id": "phone-1", "lat": lat, "lon": "120.15", "timestamp": str(at)}
                    assert (await client.get(base, params=params)).status_code == 200

    asyncio.run(scenario())
    shown = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not shown:
        message = live.get_message(timeout=0.2)
        if message and message["type"] == "message":
            shown += json.loads(message["data"])["items"]
    assert live.get_message(timeout=0.5) is None  # the hour-old fix was not shown
    live.close()
    assert [(item["lat"], item["fix_ms"]) for item in shown] == [(30.27, now * 1000)]
    assert len(stream_rows(redis, gw_settings.stream_shards)) == 2  # both are stored


@SINGLE_AND_CLUSTER
def test_past_the_backlog_limit_a_fix_is_refused_not_dropped(
    fleetlet, redis, redis_address, clean_tracks
):
    """The backlog is every shard's waiting entries, which a cluster keeps on several masters:
    past FLEET_STREAM_MAX_BACKLOG the gateway answers 503 and adds nothing, so the phone sends
    the fix again; once the entries are taken, the fix is acknowledged."""
    shards, limit = 4, 100
    gw_settings = TelematicsSettings(
        gateway_host="127.0.0.1",
        jt808_port=free_port(),
        osmand_port=free_port(),
        stream_shards=shards,
        stream_max_backlog=limit,
    )
    waiting = stream.entry([stream.to_row(a_fix(), fleetlet.targets[0], stream.now_ms())])
    for n in range(limit + 1):
        redis.xadd(stream.stream_key(n % shards), waiting)
    params = {"id": "phone-1", "lat": "30.27", "lon": "120.15", "timestamp": str(int(time.time()))}

    async def scenario() -> tuple[int, int]:
        async with running(fleetlet, gw_settings, redis_address):
            base = f"http://127.0.0.1:{gw_settings.osmand_port}/"
            async with httpx.AsyncClient() as client:
                refused = (await client.get(base, params=params)).status_code
                for shard in range(shards):
                    await asyncio.to_thread(redis.delete, stream.stream_key(shard))
                # The gateway counts the backlog again within a second of its last count.
                for _ in range(200):  # a liveness bound
                    accepted = (await client.get(base, params=params)).status_code
                    if accepted != 503:
                        break
                    await asyncio.sleep(0.05)
                return refused, accepted

    assert asyncio.run(scenario()) == (503, 200)
    assert int(redis.hget(stream.COUNTERS, "deferred_backlog")) >= 1
    rows = stream_rows(redis, shards)
    assert [(r[stream.R_VEHICLE], r[stream.R_LAT]) for r in rows] == [
        (fleetlet.targets[1].vehicle_id, 30.27)
    ]


def test_live_messages_show_each_vehicles_newest_recent_fix_once():
    def row(vehicle: int, fix_ms: int, lat: float | None = 30.2) -> list:
        return [vehicle, 1, 1, fix_ms, 1_000_000_000, lat, 120.1 if lat else None, 10.0, 0.0,
                None, True, None, None, 0, 0, None]  # fmt: skip

    shown: dict[int, int] = {}
    first = stream.live_message(
        [
            row(1, 999_999_000),
            row(1, 999_998_000),
            row(2, 999_990_000, lat=None),
            row(3, 1_000_000_000 - stream.LIVE_MAX_AGE_MS),
        ],
        shown,
    )
    assert first is not None
    assert [(i["vehicle_id"], i["fix_ms"]) for i in json.loads(first)["items"]] == [
        (1, 999_999_000)
    ]
    assert stream.live_message([row(1, 999_998_500)], shown) is None  # older than shown
    assert stream.live_message([], shown) is None
