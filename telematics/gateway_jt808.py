"""The JT/T 808 gateway (TCP, port 5015): one session per terminal connection.

Flow: register (0x0100) -> auth code (0x8100) -> authenticate (0x0102) -> reports (0x0200,
0x0704) and heartbeats. The auth code is an HMAC of the terminal's identity, so any gateway
process can check it without shared state. Location replies are sent only once the fixes are in
Redis; when the stream cannot take them the terminal gets result 1 and sends them again.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
from dataclasses import dataclass

from fleet.models import DeviceProtocol
from telematics.devices import KnownDevice
from telematics.gateway import Intake
from telematics.protocols import jt808
from telematics.protocols.jt808 import MsgId, RegisterResult, Result
from telematics.settings import TelematicsSettings

log = logging.getLogger("fleet.gateway.jt808")
READ_SIZE = 65536


def auth_code(secret: str, identifier: str) -> str:
    digest = hmac.new(secret.encode(), f"jt808:{identifier.lstrip('0')}".encode(), hashlib.sha256)
    return digest.hexdigest()[:16]


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
    def __init__(self, intake: Intake, settings: TelematicsSettings, secret: str) -> None:
        self.intake = intake
        self.settings = settings
        self.secret = secret
        self._writers: set[asyncio.StreamWriter] = set()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        session = Session(peer=f"{peer[0]}:{peer[1]}" if peer else "")
        self._writers.add(writer)
        buffer = b""
        try:
            while not session.closing:
                try:
                    data = await asyncio.wait_for(
                        reader.read(READ_SIZE), self.settings.jt808_idle_timeout_s
                    )
                except TimeoutError:
                    self.intake.counters.add("closed_idle_jt808")
                    break
                if not data:
                    break
                frames, buffer = jt808.split_frames(buffer + data)
                if frames:
                    reply = await self.handle_frames(session, frames)
                    if reply:
                        writer.write(reply)
                        await writer.drain()
        except (ConnectionError, OSError):
            pass
        except Exception:  # one terminal's bug must never take the gateway down
            log.exception("terminal session %s failed", session.peer)
            self.intake.counters.add("session_errors_jt808")
        finally:
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def close_all(self) -> None:
        for writer in list(self._writers):
            writer.close()

    async def handle_frames(self, session: Session, frames: list[bytes]) -> bytes:
        """Replies to every frame of one read, in order. The fixes of all location frames go
        to the stream together, and their replies wait for it."""
        replies: list[bytes | tuple[jt808.Header, int]] = []
        rows: list[list] = []
        for frame in frames:
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

    async def _register(self, session: Session, message: jt808.Message) -> bytes:
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
        code = auth_code(self.secret, header.phone)
        return jt808.encode_register_reply(header, RegisterResult.OK, code, serial=serial)

    async def _authenticate(self, session: Session, message: jt808.Message) -> bytes:
        header = message.header
        known = await self._known(session, header.phone, f"0x0102 {message.body.hex()[:900]}")
        expected = auth_code(self.secret, header.phone)
        given = message.auth_code or ""
        if known is not None and known.target is not None and hmac.compare_digest(expected, given):
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
