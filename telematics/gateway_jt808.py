"""The JT/T 808 gateway (TCP, port 5015): one session per terminal connection.

Flow: register (0x0100) -> auth code (0x8100) -> authenticate (0x0102) -> reports (0x0200,
0x0704) and heartbeats. The first registration binds the terminal's identity to its device; an
impostor naming the same number gets result 3 and no code, and is reported (`telematics.terminals`).
Auth codes are random per registration and checked against the digest in the database, so any
gateway process can check them; registrations (and authentications) arriving together are
written in one transaction, in a thread, so a reconnection storm neither queues them past the
terminals' timeouts nor stalls the reports. Location replies are sent only once the fixes are in
Redis; when the stream cannot take them the terminal gets result 1 and sends them again.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import cast

from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session as DbSession

from fleet.models import DeviceProtocol
from telematics import terminals
from telematics.batching import Batcher
from telematics.devices import KnownDevice
from telematics.gateway import Intake
from telematics.protocols import jt808
from telematics.protocols.jt808 import MsgId, RegisterResult, Result
from telematics.settings import TelematicsSettings
from telematics.terminals import Attempt, Claim, Identity, Mismatch, MismatchSink, Verdict

log = logging.getLogger("fleet.gateway.jt808")
# A terminal that sends faster than its replies go out, or reads none of them, is paused, and
# closed once this much waits to be sent to it.
MAX_QUEUED_FRAMES = 64
MAX_UNSENT_BYTES = 1 << 20
# Registrations (and authentications) arriving within this window, or while the batch before
# is written, go into one transaction, at most this many.
BATCH_WINDOW_S = 0.02
MAX_BATCH = 500


@dataclass
class Session:
    peer: str
    phone: str | None = None
    device: KnownDevice | None = None
    serial: int = 0
    closing: bool = False

    def next_serial(self) -> int:
        self.serial = (self.serial + 1) & 0xFFFF
        return self.serial


class JT808Server:
    def __init__(
        self,
        intake: Intake,
        settings: TelematicsSettings,
        engine: Engine,
        mismatches: MismatchSink | None = None,
    ) -> None:
        self.intake = intake
        self.settings = settings
        self.engine = engine
        self.mismatches = mismatches
        self._connections: set[_Connection] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._registrations: Batcher[Claim, terminals.Registered] = Batcher(
            self._register_batch,
            window_s=BATCH_WINDOW_S,
            max_size=MAX_BATCH,
            transient=(OperationalError, OSError),
        )
        self._authentications: Batcher[Attempt, bool] = Batcher(
            self._authenticate_batch,
            window_s=BATCH_WINDOW_S,
            max_size=MAX_BATCH,
            transient=(OperationalError, OSError),
        )

    async def start(self, host: str, port: int) -> asyncio.Server:
        # A deep accept queue: after a restart thousands of terminals reconnect within seconds.
        # With FLEET_JT808_SHARED_PORT several gateway processes share the port.
        return await asyncio.get_running_loop().create_server(
            lambda: _Connection(self),
            host,
            port,
            reuse_address=True,
            reuse_port=self.settings.jt808_shared_port,
            backlog=4096,
        )

    async def close_all(self) -> None:
        for connection in list(self._connections):
            connection.close()

    async def handle_frames(self, session: Session, frames: list[bytes]) -> bytes:
        """Replies to every frame of one read, in order. The fixes of all location frames go
        to the stream together, and their replies wait for it."""
        replies: list[bytes | tuple[jt808.Header, int]] = []
        rows: list[list] = []
        for frame in frames:
            if jt808.rejoined(frame):  # cut by a raw 0x7E inside, and whole once joined
                self.intake.counters.add("recovered_unescaped")
            try:
                message = jt808.decode(frame, lenient_checksum=self.settings.jt808_lenient_checksum)
            except jt808.FrameError as error:
                self.intake.counters.add(f"dropped_{error.reason}")
                header = jt808.header_of(frame)
                if header is not None:
                    replies.append(jt808.encode_reply(header, Result.BAD_MESSAGE))
                continue
            reply = await self._dispatch(session, message, rows)
            if reply is not None:
                replies.append(reply)
        located_ok = True
        if rows:
            try:
                await self.intake.writer.append(rows)
            except Exception as error:
                log.warning("stream refused %d fixes: %s", len(rows), error)
                self.intake.counters.add("deferred_stream_jt808", len(rows))
                located_ok = False
        out = []
        for reply in replies:
            if isinstance(reply, tuple):
                header, count = reply
                result = Result.OK if located_ok or count == 0 else Result.FAILURE
                out.append(jt808.encode_reply(header, result, serial=session.next_serial()))
            else:
                out.append(reply)
        return b"".join(out)

    async def _dispatch(
        self, session: Session, message: jt808.Message, rows: list[list]
    ) -> bytes | tuple[jt808.Header, int] | None:
        header = message.header
        msg_id = header.msg_id
        if header.packet is not None:
            return jt808.encode_reply(header, Result.OK, serial=session.next_serial())
        if msg_id == MsgId.REGISTER:
            return await self._register(session, message)
        if msg_id == MsgId.AUTHENTICATE:
            return await self._authenticate(session, message)
        if msg_id == MsgId.HEARTBEAT:
            return jt808.encode_reply(header, Result.OK, serial=session.next_serial())
        if msg_id == MsgId.LOGOUT:
            session.closing = True
            return jt808.encode_reply(header, Result.OK, serial=session.next_serial())
        if msg_id in (MsgId.LOCATION, MsgId.BATCH):
            return await self._locations(session, message, rows)
        if msg_id == MsgId.GENERAL_REPLY:
            return None  # the terminal answering a command of ours
        self.intake.counters.add("unsupported_jt808")
        return jt808.encode_reply(header, Result.UNSUPPORTED, serial=session.next_serial())

    async def _known(self, session: Session, phone: str, what: str) -> KnownDevice | None:
        known = await self.intake.directory.lookup(DeviceProtocol.JT808, phone)
        if known is None:
            self.intake.counters.add("refused_unknown_device")
            await self.intake.directory.record_unknown(
                DeviceProtocol.JT808, phone.lstrip("0") or phone, session.peer, what
            )
        return known

    # Run in a thread by the batchers, each batch in a transaction of its own (the gateway is
    # its boundary): the codes are committed before any terminal is told one.
    def _register_batch(self, claims: list[Claim]) -> list[terminals.Registered]:
        with DbSession(self.engine) as db, db.begin():
            return terminals.register_many(session=db, claims=claims)

    def _authenticate_batch(self, attempts: list[Attempt]) -> list[bool]:
        with DbSession(self.engine) as db, db.begin():
            return terminals.authenticate_many(session=db, attempts=attempts)

    async def _register(self, session: Session, message: jt808.Message) -> bytes | None:
        header = message.header
        known = await self._known(session, header.phone, f"0x0100 {message.body.hex()[:900]}")
        serial = session.next_serial()
        if known is None or not known.enabled:
            return jt808.encode_register_reply(
                header, RegisterResult.NO_SUCH_TERMINAL, serial=serial
            )
        if known.vehicle_id is None:
            return jt808.encode_register_reply(
                header, RegisterResult.NO_SUCH_VEHICLE, serial=serial
            )
        if message.registration is None:  # sub-packaged or encrypted: nothing to bind
            return jt808.encode_reply(header, Result.BAD_MESSAGE, serial=serial)
        claimed = Identity.of(message.registration)
        now = datetime.now(UTC)
        try:
            registered = await self._registrations.submit(
                Claim(device_id=known.device_id, claimed=claimed, peer=session.peer, now=now)
            )
        except (OperationalError, OSError) as error:
            # No code can be issued without the registry: no answer, and the terminal retries.
            log.warning("registration of %s deferred: %s", header.phone, error)
            self.intake.counters.add("deferred_register_jt808")
            session.closing = True
            return None
        if registered.verdict is Verdict.MISMATCH:
            await self._refuse_impostor(session, header.phone, known, claimed, registered, now)
            return jt808.encode_register_reply(header, RegisterResult.TERMINAL_TAKEN, serial=serial)
        return jt808.encode_register_reply(
            header, RegisterResult.OK, registered.code or "", serial=serial
        )

    async def _refuse_impostor(
        self,
        session: Session,
        phone: str,
        known: KnownDevice,
        claimed: Identity,
        registered: terminals.Registered,
        now: datetime,
    ) -> None:
        """Count, record (with the remote address) and report a terminal that named a number
        bound to another terminal."""
        self.intake.counters.add("refused_identity_mismatch")
        await self.intake.directory.record_unknown(
            DeviceProtocol.JT808,
            phone.lstrip("0") or phone,
            session.peer,
            f"0x0100 from another terminal: {claimed.as_dict()}",
        )
        if self.mismatches is None or known.vehicle_id is None:
            return
        mismatch = Mismatch(
            device_id=known.device_id,
            vehicle_id=known.vehicle_id,
            unit_id=known.unit_id,
            phone=phone.lstrip("0") or phone,
            remote_addr=session.peer,
            at=now,
            claimed=claimed,
            bound=registered.bound,
            expected_terminal_id=registered.expected_terminal_id,
        )
        try:
            await asyncio.to_thread(self.mismatches.report, mismatch)
        except Exception:  # the refusal stands; a lost report must not take the session down
            log.exception("could not report the identity mismatch of %s", phone)
            self.intake.counters.add("mismatch_report_errors")

    async def _authenticate(self, session: Session, message: jt808.Message) -> bytes:
        header = message.header
        known = await self._known(session, header.phone, f"0x0102 {message.body.hex()[:900]}")
        ok = False
        if known is not None and known.target is not None and message.auth_code:
            attempt = Attempt(
                device_id=known.device_id,
                code=message.auth_code,
                imei=message.imei,
                software_version=message.software_version,
                peer=session.peer,
            )
            try:
                ok = await self._authentications.submit(attempt)
            except (OperationalError, OSError) as error:
                log.warning("authentication of %s deferred: %s", header.phone, error)
                self.intake.counters.add("deferred_authenticate_jt808")
        if ok:
            session.phone, session.device = header.phone, known
            return jt808.encode_reply(header, Result.OK, serial=session.next_serial())
        self.intake.counters.add("refused_bad_auth_code")
        return jt808.encode_reply(header, Result.FAILURE, serial=session.next_serial())

    async def _locations(
        self, session: Session, message: jt808.Message, rows: list[list]
    ) -> bytes | tuple[jt808.Header, int]:
        header = message.header
        device = session.device if session.phone == header.phone else None
        if device is None and self.settings.jt808_allow_unauthenticated:
            device = await self._known(
                session, header.phone, f"{header.msg_id:#06x} unauthenticated"
            )
        target = device.target if device is not None else None
        if target is None:
            self.intake.counters.add("refused_unauthenticated")
            return jt808.encode_reply(header, Result.FAILURE, serial=session.next_serial())
        if message.dropped:
            self.intake.counters.add("dropped_bad_location", message.dropped)
        admitted, dropped = self.intake.admit(message.fixes, target, "jt808")
        if not admitted and (dropped or message.dropped):
            return jt808.encode_reply(header, Result.BAD_MESSAGE, serial=session.next_serial())
        rows.extend(admitted)
        return (header, len(admitted))


class _Connection(asyncio.Protocol):
    """One terminal's TCP connection, driven by the event loop's callbacks: no task, future or
    timer per read (thousands of terminals each send a report every few seconds, and the
    streams API made all three for every one of them). Frames are answered in order, by one
    task while the fixes they carry go to the stream; the idle timer is one per connection."""

    def __init__(self, server: JT808Server) -> None:
        self.server = server
        self.buffer = b""
        self.pending: list[bytes] = []
        self.busy = False
        self.paused = False
        self.session = Session(peer="")
        self.transport: asyncio.Transport | None = None
        self.loop = asyncio.get_running_loop()
        self.last = self.loop.time()
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # a stream transport (uvloop's is not an asyncio.Transport subclass: no isinstance)
        self.transport = cast(asyncio.Transport, transport)
        peer = self.transport.get_extra_info("peername")
        self.session = Session(peer=f"{peer[0]}:{peer[1]}" if peer else "")
        self.server._connections.add(self)
        self.timer = self.loop.call_later(self.server.settings.jt808_idle_timeout_s, self._idle)

    def _idle(self) -> None:
        limit = self.server.settings.jt808_idle_timeout_s
        quiet = self.loop.time() - self.last
        if quiet >= limit:
            self.server.intake.counters.add("closed_idle_jt808")
            self.close()
        else:
            self.timer = self.loop.call_later(limit - quiet, self._idle)

    def data_received(self, data: bytes) -> None:
        self.last = self.loop.time()
        frames, self.buffer = jt808.split_frames(self.buffer + data)
        if not frames:
            return
        self.pending += frames
        if self.busy:
            if len(self.pending) > MAX_QUEUED_FRAMES and not self.paused:
                assert self.transport is not None
                self.transport.pause_reading()
                self.paused = True
            return
        self.busy = True
        task = self.loop.create_task(self._answer())
        self.server._tasks.add(task)
        task.add_done_callback(self.server._tasks.discard)

    async def _answer(self) -> None:
        transport = self.transport
        assert transport is not None
        try:
            while self.pending and not transport.is_closing():
                frames, self.pending = self.pending, []
                if self.paused:
                    transport.resume_reading()
                    self.paused = False
                reply = await self.server.handle_frames(self.session, frames)
                if reply:
                    transport.write(reply)
                if self.session.closing:
                    self.close()
                elif transport.get_write_buffer_size() > MAX_UNSENT_BYTES:
                    self.server.intake.counters.add("closed_slow_jt808")
                    self.close()
        except Exception:  # one terminal's bug must never take the gateway down
            log.exception("terminal session %s failed", self.session.peer)
            self.server.intake.counters.add("session_errors_jt808")
            self.close()
        finally:
            self.busy = False

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.server._connections.discard(self)
        self.pending = []
