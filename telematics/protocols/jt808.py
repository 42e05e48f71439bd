"""JT/T 808 (2011, 2013 and 2019 headers): framing, decoding, replies, and a terminal's encoder.

Pure functions only: the gateway owns sockets, sessions and the registry. Every malformed input
ends in `FrameError` (with a reason code for the counters) or in a `Message` the gateway answers
with a result code; nothing else escapes.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import IntEnum

from telematics.fix import Fix

DELIMITER = 0x7E
MAX_FRAME = 4096  # escaped bytes; the body is at most 1023, so a real frame is far smaller
MAX_PARTS = 4  # a frame cut by raw 0x7E bytes is joined from at most this many parts
GMT8 = timedelta(hours=8)


class MsgId(IntEnum):
    GENERAL_REPLY = 0x0001
    HEARTBEAT = 0x0002
    LOGOUT = 0x0003
    REGISTER = 0x0100
    AUTHENTICATE = 0x0102
    LOCATION = 0x0200
    BATCH = 0x0704
    PLATFORM_REPLY = 0x8001
    REGISTER_REPLY = 0x8100


class Result(IntEnum):
    OK = 0
    FAILURE = 1
    BAD_MESSAGE = 2
    UNSUPPORTED = 3
    ALARM_ACK = 4


class RegisterResult(IntEnum):
    OK = 0
    VEHICLE_TAKEN = 1
    NO_SUCH_VEHICLE = 2
    TERMINAL_TAKEN = 3
    NO_SUCH_TERMINAL = 4


# Alarm bits of 0x0200 (JT/T 808-2019 table 24) by name, for attributes and the rule engine.
ALARM_BITS = {
    0: "sos",
    1: "overspeed",
    2: "fatigue",
    3: "danger_warning",
    4: "gnss_fault",
    5: "antenna_cut",
    6: "antenna_short",
    7: "power_low",
    8: "power_cut",
    9: "display_fault",
    10: "tts_fault",
    11: "camera_fault",
    12: "ic_card_fault",
    13: "overspeed_warning",
    14: "fatigue_warning",
    18: "driving_time_exceeded",
    19: "parking_overtime",
    20: "area_in_out",
    21: "route_in_out",
    22: "route_segment_time",
    23: "route_deviation",
    24: "vss_fault",
    25: "abnormal_fuel",
    26: "stolen",
    27: "illegal_ignition",
    28: "illegal_displacement",
    29: "collision",
    30: "rollover",
    31: "illegal_door_open",
}


class FrameError(Exception):
    """A frame that cannot be a message. `reason` is a short code for the drop counters."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Header:
    msg_id: int
    # The terminal's number: BCD digits as sent, leading zeros kept; or, where the field is not
    # BCD (terminals that put their IMEI there), the IMEI it holds (`terminal_number`).
    phone: str
    serial: int
    version2019: bool = False
    protocol_version: int = 1
    encryption: int = 0
    packet: tuple[int, int] | None = None  # (total, index) when sub-packaged
    body_length: int = 0
    number: bytes = b""  # the number field as received, which replies echo


@dataclass(frozen=True, slots=True)
class Registration:
    province: int
    city: int
    maker: str
    model: str
    terminal_id: str
    plate_colour: int
    plate: str


@dataclass(frozen=True, slots=True)
class Message:
    header: Header
    body: bytes
    checksum_ok: bool = True
    length_ok: bool = True
    fixes: tuple[Fix, ...] = ()
    dropped: int = 0  # location items that could not become a fix (bad time, truncated)
    registration: Registration | None = None
    auth_code: str | None = None
    imei: str | None = None  # 2019 0x0102
    software_version: str | None = None  # 2019 0x0102
    batch_kind: int | None = None  # 0 normal, 1 blind-area re-send
    attributes: dict[str, object] = field(default_factory=dict)

    @property
    def msg_id(self) -> int:
        return self.header.msg_id


# ---- framing ----------------------------------------------------------------------------------


def split_frames(buffer: bytes) -> tuple[list[bytes], bytes]:
    """Escaped frames between 0x7E delimiters, and the unfinished rest to keep for the next read.

    Bytes before the first delimiter are noise and dropped. Every 0x7E delimits, so a lost byte
    costs one frame and the stream resynchronises at the next delimiter. An unfinished rest longer
    than any real frame is dropped too, so a peer cannot make us buffer without bound.

    Some terminals send a 0x7E inside a frame unescaped, which cuts the frame in two. A part that
    fails its check byte while its header's body length says the frame goes on is joined with
    the parts after it (with the 0x7E between them, at most MAX_PARTS in all), and the join is
    taken only if its length is the one the header gives and its check byte is right; a part that
    is a whole frame by itself is never taken into a join. Such a frame keeps its raw 0x7E, which
    no other frame holds (`rejoined`). A part the bytes not yet received may still complete stays
    in the rest, so a broken frame at the end of a read is answered when more arrives."""
    start = buffer.find(DELIMITER)
    if start < 0:
        return [], b""
    parts = buffer[start + 1 :].split(b"\x7e")
    rest = parts.pop()
    frames: list[bytes] = []
    i = 0
    while i < len(parts):
        part = parts[i]
        wanted = _cut_short(part) if part else None
        if wanted is None:
            if part:
                frames.append(part)
            i += 1
            continue
        joined, last = part, i  # parts i..last, joined
        while last + 1 < len(parts) and last - i + 2 <= MAX_PARTS:
            follower = parts[last + 1]
            if _whole(follower) or len(unescape(joined + b"\x7e" + follower)) > wanted:
                break
            joined, last = joined + b"\x7e" + follower, last + 1
        data = unescape(joined)
        if last > i and len(data) == wanted and _checks(data):
            frames.append(joined)
            i = last + 1
            continue
        if (
            last + 1 == len(parts)
            and last - i + 2 <= MAX_PARTS
            and len(unescape(joined + b"\x7e" + rest)) <= wanted
        ):
            return frames, b"\x7e" + joined + b"\x7e" + rest  # it may go on in the next read
        frames.append(part)  # broken: it fails its check byte on its own
        i += 1
    if len(rest) > MAX_FRAME:
        return frames, b""
    return frames, b"\x7e" + rest


def rejoined(frame: bytes) -> bool:
    """Whether `split_frames` joined this frame across a raw 0x7E (no other frame holds one)."""
    return DELIMITER in frame


def _checks(data: bytes) -> bool:
    return len(data) > 1 and check_byte(data[:-1]) == data[-1]


def _wanted(data: bytes) -> int:
    """The length of a whole frame with this (unescaped) header: header, body and check byte."""
    props = int.from_bytes(data[2:4], "big")
    header = 4 + (11 if props & 0x4000 else 6) + 2 + (4 if props & 0x2000 else 0)
    return header + (props & 0x3FF) + 1


def _whole(part: bytes) -> bool:
    """A part that is a frame by itself: the length its header gives (its check byte may be
    wrong: some terminals always get it wrong, and FLEET_JT808_LENIENT_CHECKSUM takes them)."""
    data = unescape(part)
    return len(data) >= 4 and len(data) == _wanted(data)


def _cut_short(part: bytes) -> int | None:
    """The length its header gives, for a part that may be a frame cut by a raw 0x7E: shorter
    than that, and its check byte wrong, escaped or raw (some terminals never escape). None for
    any other part, which is a frame or noise as it is."""
    data = unescape(part)
    if len(data) < 4:
        return None
    wanted = _wanted(data)
    if len(data) >= wanted or _checks(data) or _checks(part):
        return None
    return wanted


def unescape(data: bytes) -> bytes:
    # A 0x7D not followed by 0x01/0x02 is left as it is (terminals in the field send them); the
    # check byte then decides whether the frame is whole.
    if b"\x7d" not in data:
        return data
    return data.replace(b"\x7d\x02", b"\x7e").replace(b"\x7d\x01", b"\x7d")


def escape(data: bytes) -> bytes:
    return data.replace(b"\x7d", b"\x7d\x01").replace(b"\x7e", b"\x7d\x02")


def check_byte(data: bytes) -> int:
    """XOR of every byte, folded as one big integer (far faster than a loop over the bytes)."""
    value = int.from_bytes(data, "little")
    bits = len(data) * 8
    while bits > 8:
        half = ((bits // 8 + 1) // 2) * 8
        value = (value >> half) ^ (value & ((1 << half) - 1))
        bits = half
    return value & 0xFF


# ---- decoding ---------------------------------------------------------------------------------

_HEAD = struct.Struct(">HH")
_LOCATION = struct.Struct(">IIIIhHH6s")
_BCD = re.compile(r"^\d{12}$")


_TIME_CACHE: dict[bytes, datetime] = {}


def _bcd_time(raw: bytes) -> datetime:
    """Thousands of terminals report the same second: parse each BCD time once."""
    cached = _TIME_CACHE.get(raw)
    if cached is not None:
        return cached
    moment = _parse_bcd_time(raw)
    if len(_TIME_CACHE) >= 4096:
        _TIME_CACHE.clear()
    _TIME_CACHE[raw] = moment
    return moment


def _parse_bcd_time(raw: bytes) -> datetime:
    text = raw.hex()
    if not _BCD.match(text):
        raise ValueError(f"not BCD time: {text}")
    local = datetime(
        2000 + int(text[0:2]),
        int(text[2:4]),
        int(text[4:6]),
        int(text[6:8]),
        int(text[8:10]),
        int(text[10:12]),
        tzinfo=UTC,
    )
    return local - GMT8  # the terminal's clock is GMT+8


def _text(raw: bytes) -> str:
    return raw.rstrip(b"\x00 ").decode("gbk", errors="replace")


def parse_header(data: bytes) -> tuple[Header, int]:
    if len(data) < 12 + 1:
        raise FrameError("too_short", f"{len(data)} bytes")
    msg_id, props = _HEAD.unpack_from(data, 0)
    version2019 = bool(props & 0x4000)
    offset = 4
    version = 1
    if version2019:
        version = data[4]
        phone_raw, offset = data[5:15], 15
    else:
        phone_raw, offset = data[4:10], 10
    serial = int.from_bytes(data[offset : offset + 2], "big")
    offset += 2
    packet = None
    if props & 0x2000:
        if len(data) < offset + 4 + 1:
            raise FrameError("too_short", "sub-packet header")
        packet = (
            int.from_bytes(data[offset : offset + 2], "big"),
            int.from_bytes(data[offset + 2 : offset + 4], "big"),
        )
        offset += 4
    if len(data) < offset + 1:
        raise FrameError("too_short", "no check byte")
    header = Header(
        msg_id=msg_id,
        phone=terminal_number(phone_raw),
        serial=serial,
        version2019=version2019,
        protocol_version=version,
        encryption=(props >> 10) & 0x7,
        packet=packet,
        body_length=props & 0x3FF,
        number=bytes(phone_raw),
    )
    return header, offset


def terminal_number(field: bytes) -> str:
    """The header's number field as an identifier: its BCD digits (leading zeros kept), or, where
    it is not BCD, what terminals that put their IMEI there mean: the IMEI's first 14 digits as
    a binary number, completed by its Luhn check digit (as the reference open-source server
    reads it), e.g. `4e b6 fb 4a d6 28` is IMEI 865478070001047."""
    digits = field.hex()
    if digits.isdigit():
        return digits
    number = int.from_bytes(field, "big")
    return f"{number}{luhn_digit(number)}"


def luhn_digit(number: int) -> int:
    """The Luhn check digit to append to `number` (as on an IMEI)."""
    total = 0
    for position, char in enumerate(reversed(str(number))):
        digit = int(char) * (2 if position % 2 == 0 else 1)
        total += digit - 9 if digit > 9 else digit
    return (10 - total % 10) % 10


def decode(frame: bytes, *, lenient_checksum: bool = False) -> Message:
    """One escaped frame (delimiters removed) -> one message.

    A wrong check byte raises FrameError('bad_checksum') unless `lenient_checksum`, in which case
    the message decodes with `checksum_ok=False`. Use `header_of` to answer a rejected frame."""
    data = unescape(frame)
    checksum_ok = len(data) > 1 and check_byte(data[:-1]) == data[-1]
    if not checksum_ok:
        if not lenient_checksum:
            found = f"{check_byte(data[:-1]):#04x} != {data[-1]:#04x}" if len(data) > 1 else ""
            raise FrameError("bad_checksum", found)
        if data != frame and check_byte(frame[:-1]) == frame[-1]:
            # Some terminals never escape: their raw bytes are the message, and check out.
            data = frame
    header, offset = parse_header(data)
    body = data[offset:-1]
    base = Message(
        header=header,
        body=body,
        checksum_ok=checksum_ok,
        length_ok=len(body) == header.body_length,
    )
    if header.packet is not None or header.encryption:
        # Sub-packets are answered and kept raw; reassembly is for media, which Fleet does not take.
        return base
    try:
        return _decode_body(header, body, base)
    except (IndexError, ValueError, struct.error) as error:
        raise FrameError("bad_body", f"{header.msg_id:#06x}: {error}") from None


def decode_packet(packet: bytes, *, lenient_checksum: bool = False) -> Message:
    """A whole packet as one datagram or capture holds it, delimiters included. Unlike a TCP
    stream, its bounds are known, so an unescaped 0x7E inside (some vendors send one) is data."""
    if len(packet) >= 2 and packet[0] == DELIMITER and packet[-1] == DELIMITER:
        packet = packet[1:-1]
    return decode(packet, lenient_checksum=lenient_checksum)


def header_of(frame: bytes) -> Header | None:
    """The header of a frame that failed to decode, if it has one, so it can still be answered."""
    try:
        return parse_header(unescape(frame))[0]
    except FrameError:
        return None


def _with(base: Message, **fields: object) -> Message:
    """`base` with more fields set (dataclasses.replace costs several times more per frame)."""
    return Message(
        header=base.header,
        body=base.body,
        checksum_ok=base.checksum_ok,
        length_ok=base.length_ok,
        **fields,  # type: ignore[arg-type]
    )


def _decode_body(header: Header, body: bytes, base: Message) -> Message:
    msg_id = header.msg_id
    if msg_id == MsgId.LOCATION:
        fix, attributes = decode_location(header.phone, body)
        return _with(
            base, fixes=(fix,) if fix else (), dropped=0 if fix else 1, attributes=attributes
        )
    if msg_id == MsgId.BATCH:
        count, kind = struct.unpack_from(">HB", body, 0)
        offset, fixes, dropped = 3, [], 0
        for _ in range(count):
            if offset + 2 > len(body):
                dropped += 1
                break
            length = int.from_bytes(body[offset : offset + 2], "big")
            item = body[offset + 2 : offset + 2 + length]
            offset += 2 + length
            try:
                fix, _ = decode_location(header.phone, item, blind=kind == 1)
            except (IndexError, ValueError, struct.error):
                fix = None
            if fix is None:
                dropped += 1
            else:
                fixes.append(fix)
        return _with(base, fixes=tuple(fixes), dropped=dropped, batch_kind=kind)
    if msg_id == MsgId.REGISTER:
        return _with(base, registration=_registration(header, body))
    if msg_id == MsgId.AUTHENTICATE:
        if header.version2019 and body:
            length = body[0]
            code = _text(body[1 : 1 + length])
            imei = _text(body[1 + length : 16 + length]) or None
            software = _text(body[16 + length : 36 + length]) or None
            return _with(base, auth_code=code, imei=imei, software_version=software)
        return _with(base, auth_code=_text(body))
    return base


def _registration(header: Header, body: bytes) -> Registration:
    province, city = struct.unpack_from(">HH", body, 0)
    if header.version2019:
        maker, model, terminal = body[4:15], body[15:45], body[45:75]
        rest = body[75:]
    else:
        maker, model, terminal = body[4:9], body[9:29], body[29:36]
        rest = body[36:]
    colour = rest[0] if rest else 0
    return Registration(
        province=province,
        city=city,
        maker=_text(maker),
        model=_text(model),
        terminal_id=_text(terminal),
        plate_colour=colour,
        plate=_text(rest[1:]),
    )


def decode_location(
    phone: str, body: bytes, *, blind: bool = False
) -> tuple[Fix | None, dict[str, object]]:
    """The 28 fixed bytes and the additional items of a 0x0200 body.

    Returns (None, attributes) when the time is not a real BCD time: such an item cannot be
    placed on a track. A fix with status bit 1 clear keeps its alarms and ignition but is not a
    position (`valid=False`)."""
    alarm, status, lat_raw, lon_raw, altitude, speed, heading, bcd = _LOCATION.unpack_from(body, 0)
    attributes: dict[str, object] = {}
    try:
        fix_time = _bcd_time(bcd)
    except ValueError:
        return None, attributes
    odometer = fuel = None
    offset = 28
    while offset + 2 <= len(body):
        item_id, length = body[offset], body[offset + 1]
        value = body[offset + 2 : offset + 2 + length]
        if len(value) < length:
            attributes["truncated_items"] = True
            break
        offset += 2 + length
        if item_id == 0x01 and length == 4:
            odometer = int.from_bytes(value, "big") / 10
        elif item_id == 0x02 and length == 2:
            fuel = int.from_bytes(value, "big") / 10
        elif item_id == 0x03 and length == 2:
            attributes["tachograph_speed_kmh"] = int.from_bytes(value, "big") / 10
        elif item_id == 0x04 and length == 2:
            attributes["alarm_event_id"] = int.from_bytes(value, "big")
        elif item_id == 0x25 and length == 4:
            attributes["vehicle_signals"] = int.from_bytes(value, "big")
        elif item_id == 0x2A and length == 2:
            attributes["io_status"] = int.from_bytes(value, "big")
        elif item_id == 0x2B and length == 4:
            attributes["analog"] = int.from_bytes(value, "big")
        elif item_id == 0x30 and length == 1:
            attributes["rssi"] = value[0]
        elif item_id == 0x31 and length == 1:
            attributes["sat"] = value[0]
        else:
            # 0x11-0x13 (overspeed, area, route extras) and vendor items 0xE1-0xFF: kept raw.
            attributes[f"x{item_id:02x}"] = value.hex()
    if blind:
        attributes["blind_area"] = True
    if alarm:
        attributes["alarms"] = [name for bit, name in ALARM_BITS.items() if alarm >> bit & 1]
    valid = bool(status & 0x02)
    lat = lat_raw / 1e6 * (-1 if status & 0x04 else 1)
    lon = lon_raw / 1e6 * (-1 if status & 0x08 else 1)
    fix = Fix(
        device_identifier=phone,
        fix_time=fix_time,
        lat=lat if valid else None,
        lon=lon if valid else None,
        speed_kmh=speed / 10,
        heading_deg=float(heading),
        altitude_m=float(altitude),
        ignition=bool(status & 0x01),
        odometer_km=odometer,
        fuel_l=fuel,
        alarm_bits=alarm,
        status_bits=status,
        attributes=attributes,
        valid=valid,
    )
    return fix, attributes


# ---- encoding ---------------------------------------------------------------------------------


def _phone_bcd(phone: str, version2019: bool) -> bytes:
    # Replies echo whatever the terminal sent, BCD or not, so any hex digits are taken as they are.
    digits = phone.rjust(20 if version2019 else 12, "0")
    if len(digits) > (20 if version2019 else 12):
        raise ValueError(f"terminal phone number too long: {phone!r}")
    try:
        return bytes.fromhex(digits)
    except ValueError:
        raise ValueError(f"not a terminal phone number: {phone!r}") from None


def encode_frame(
    msg_id: int,
    phone: str,
    serial: int,
    body: bytes = b"",
    *,
    version2019: bool = False,
    protocol_version: int = 1,
) -> bytes:
    """A whole frame, delimiters included, escaped, with its check byte."""
    number = _phone_bcd(phone, version2019)
    return _frame(msg_id, number, serial, body, version2019, protocol_version)


def _frame(
    msg_id: int,
    number: bytes,
    serial: int,
    body: bytes,
    version2019: bool,
    protocol_version: int,
) -> bytes:
    props = len(body) & 0x3FF
    if version2019:
        props |= 0x4000
        head = struct.pack(">HHB", msg_id, props, protocol_version)
    else:
        head = struct.pack(">HH", msg_id, props)
    data = head + number + struct.pack(">H", serial & 0xFFFF) + body
    return b"\x7e" + escape(data + bytes([check_byte(data)])) + b"\x7e"


def _reply_to(header: Header, msg_id: int, serial: int, body: bytes) -> bytes:
    """A reply to the message with `header`, its number field echoed byte for byte."""
    number = header.number or _phone_bcd(header.phone, header.version2019)
    return _frame(msg_id, number, serial, body, header.version2019, header.protocol_version)


def encode_reply(header: Header, result: Result, *, serial: int = 0) -> bytes:
    """0x8001, the platform's general reply to the message with `header`."""
    body = struct.pack(">HHB", header.serial, header.msg_id, int(result))
    return _reply_to(header, MsgId.PLATFORM_REPLY, serial, body)


def encode_register_reply(
    header: Header, result: RegisterResult, auth_code: str = "", *, serial: int = 0
) -> bytes:
    body = struct.pack(">HB", header.serial, int(result))
    if result == RegisterResult.OK:
        body += auth_code.encode("gbk")
    return _reply_to(header, MsgId.REGISTER_REPLY, serial, body)


def _bcd_now(moment: datetime) -> bytes:
    return bytes.fromhex((moment.astimezone(UTC) + GMT8).strftime("%y%m%d%H%M%S"))


def location_body(fix: Fix, *, extra: bytes = b"") -> bytes:
    """A 0x0200 body for `fix` (what a terminal sends), with odometer, fuel and satellites."""
    status = (fix.status_bits & ~0x0F) | (0x01 if fix.ignition else 0)
    lat = fix.lat or 0.0
    lon = fix.lon or 0.0
    if fix.valid and fix.lat is not None:
        status |= 0x02
    if lat < 0:
        status |= 0x04
    if lon < 0:
        status |= 0x08
    body = _LOCATION.pack(
        fix.alarm_bits & 0xFFFFFFFF,
        status & 0xFFFFFFFF,
        round(abs(lat) * 1e6),
        round(abs(lon) * 1e6),
        round(fix.altitude_m or 0),
        min(round((fix.speed_kmh or 0) * 10), 0xFFFF),
        round(fix.heading_deg or 0) % 360,
        _bcd_now(fix.fix_time),
    )
    if fix.odometer_km is not None:
        body += b"\x01\x04" + round(fix.odometer_km * 10).to_bytes(4, "big")
    if fix.fuel_l is not None:
        body += b"\x02\x02" + round(fix.fuel_l * 10).to_bytes(2, "big")
    sat = fix.attributes.get("sat") if fix.attributes else None
    if isinstance(sat, int):
        body += b"\x31\x01" + bytes([sat & 0xFF])
    return body + extra


def batch_body(fixes: list[Fix], *, blind: bool = False) -> bytes:
    body = struct.pack(">HB", len(fixes), 1 if blind else 0)
    for fix in fixes:
        item = location_body(fix)
        body += struct.pack(">H", len(item)) + item
    return body


def register_body(
    plate: str = "", *, terminal_id: str = "FLEET01", version2019: bool = False
) -> bytes:
    def pad(text: str, size: int) -> bytes:
        return text.encode("gbk")[:size].ljust(size, b"\x00")

    if version2019:
        fields = pad("FLEET", 11) + pad("SIM-808", 30) + pad(terminal_id, 30)
    else:
        fields = pad("FLEET", 5) + pad("SIM-808", 20) + pad(terminal_id, 7)
    return struct.pack(">HH", 33, 100) + fields + bytes([2 if plate else 0]) + plate.encode("gbk")


def authenticate_body(
    code: str, *, version2019: bool = False, imei: str = "", software_version: str = ""
) -> bytes:
    raw = code.encode("gbk")
    if version2019:
        return (
            bytes([len(raw)])
            + raw
            + imei.encode()[:15].ljust(15, b"\x00")
            + software_version.encode()[:20].ljust(20, b"\x00")
        )
    return raw
