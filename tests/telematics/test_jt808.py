"""The JT/T 808 codec against the real frames in shared/protocols/vectors and its own encoder."""

from __future__ import annotations

import contextlib
import json
import struct
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from telematics.fix import Fix
from telematics.protocols import jt808

VECTORS_FILE = Path(__file__).resolve().parents[1] / "data" / "jt808-frames.json"
VECTORS = json.loads(VECTORS_FILE.read_text())["vectors"]
HEX_VECTORS = [v for v in VECTORS if v["message"]["encoding"] == "hex"]
STANDARD_ITEMS = {"0x01", "0x02", "0x03", "0x04", "0x25", "0x2a", "0x2b", "0x30", "0x31"}


def packet(vector: dict[str, Any]) -> bytes:
    return bytes.fromhex(vector["message"]["data"])


def decode_either(vector: dict[str, Any]) -> jt808.Message:
    """Strictly when the check byte is right; a wrong one must be refused, then lenient."""
    data = packet(vector)
    if vector["derived"].get("checksumOk") is False or _bad_check(data):
        with pytest.raises(jt808.FrameError) as refused:
            jt808.decode_packet(data)
        assert refused.value.reason == "bad_checksum"
        return jt808.decode_packet(data, lenient_checksum=True)
    return jt808.decode_packet(data)


def _bad_check(data: bytes) -> bool:
    inner = jt808.unescape(data[1:-1])
    return jt808.check_byte(inner[:-1]) != inner[-1]


@pytest.mark.parametrize("vector", HEX_VECTORS, ids=lambda v: f"{v['index']}-{v['check']}")
def test_real_frame_is_handled_as_its_entry_says(vector: dict[str, Any]):
    derived = vector["derived"]
    if derived.get("version2019Flag") is None and derived.get("msgId") not in ("0x0200", "0x0704"):
        # Vendor framings (text, or a non-standard header): never crash, and give no position.
        try:
            message = jt808.decode_packet(packet(vector), lenient_checksum=True)
        except jt808.FrameError:
            return
        assert message.fixes == ()
        return
    message = decode_either(vector)
    assert f"{message.msg_id:#06x}" == derived["msgId"]
    check = vector["check"]
    if check == "verifyNull":
        assert message.fixes == ()
    elif check in ("verifyPosition", "verifyPositions"):
        assert message.fixes
        location = derived.get("location")
        if location and location.get("positioned"):
            first = message.fixes[0]
            assert first.valid
            assert first.lat == pytest.approx(location["latitude"], abs=1e-6)
            assert first.lon == pytest.approx(location["longitude"], abs=1e-6)
            expected = datetime.fromisoformat(location["time_utc_assuming_gmt8"]).replace(
                tzinfo=UTC
            )
            assert first.fix_time == expected
            assert first.speed_kmh == pytest.approx(location["speed_kmh"])
        if check == "verifyPositions":
            assert len(message.fixes) > 1
    elif check == "verifyAttribute":
        _check_attribute(vector, message)
    else:
        assert message is not None


def _check_attribute(vector: dict[str, Any], message: jt808.Message) -> None:
    name, value = vector["expect"]["attribute"], vector["expect"]["value"]
    if name == "sat":
        assert message.fixes[0].attributes["sat"] == value
        return
    location = vector["derived"].get("location") or {}
    if name == "alarm" and value == "sos" and int(location.get("alarmFlags", "0"), 16) & 1:
        assert "sos" in message.fixes[0].attributes["alarms"]
        return
    if message.msg_id != jt808.MsgId.LOCATION:
        return  # vendor messages (0x0900 pass-through, 0x6006...) are answered, not decoded
    # A vendor-specific attribute: Fleet keeps every non-standard item raw, unchanged.
    items = vector["derived"]["location"]["additionalInfo"]
    attributes = message.fixes[0].attributes if message.fixes else message.attributes
    kept = [i for i in items if i["id"] not in STANDARD_ITEMS]
    for item in kept:
        key = f"x{int(item['id'], 16):02x}"
        assert attributes[key] == item["hex"], key


def test_location_fields_of_a_known_frame():
    vector = next(v for v in VECTORS if v["index"] == 5)
    message = jt808.decode_packet(packet(vector))
    assert message.batch_kind is not None
    fix = message.fixes[0]
    assert (fix.lat, fix.lon) == (pytest.approx(-27.263378), pytest.approx(153.037383))
    assert fix.attributes["sat"] == 14


def test_position_invalid_flag_keeps_alarms_and_ignition_but_no_coordinates():
    fix = Fix(
        "13912345678",
        datetime(2026, 11, 22, 8, tzinfo=UTC),
        30.0,
        120.0,
        ignition=True,
        alarm_bits=1,
        valid=False,
    )
    body = jt808.location_body(fix)
    decoded, _ = jt808.decode_location("013912345678", body)
    assert decoded is not None
    assert (decoded.lat, decoded.lon, decoded.valid) == (None, None, False)
    assert decoded.ignition is True
    assert decoded.attributes["alarms"] == ["sos"]


@pytest.mark.parametrize("version2019", [False, True])
def test_own_frames_round_trip(version2019: bool):
    fix = Fix(
        device_identifier="13912345678",
        fix_time=datetime(2026, 11, 22, 1, 2, 3, tzinfo=UTC),
        lat=-30.123456,
        lon=-120.654321,
        speed_kmh=72.5,
        heading_deg=271,
        altitude_m=-12,
        ignition=True,
        odometer_km=12345.6,
        fuel_l=40.2,
        alarm_bits=(1 << 0) | (1 << 27),
        attributes={"sat": 9},
        valid=True,
    )
    frame = jt808.encode_frame(
        jt808.MsgId.LOCATION,
        "13912345678",
        0x7E7D,
        jt808.location_body(fix),
        version2019=version2019,
    )
    frames, rest = jt808.split_frames(frame)
    assert rest == b"\x7e"
    assert len(frames) == 1
    message = jt808.decode(frames[0])
    assert message.header.serial == 0x7E7D  # survived escaping
    assert message.header.version2019 is version2019
    assert message.header.phone.lstrip("0") == "13912345678"
    got = message.fixes[0]
    assert (got.lat, got.lon) == (pytest.approx(-30.123456), pytest.approx(-120.654321))
    assert got.fix_time == fix.fix_time
    assert got.speed_kmh == pytest.approx(72.5)
    assert got.altitude_m == -12
    assert got.odometer_km == pytest.approx(12345.6)
    assert got.fuel_l == pytest.approx(40.2)
    assert got.attributes["alarms"] == ["sos", "illegal_ignition"]


def test_batch_and_blind_area_resend():
    fixes = [
        Fix("1", datetime(2026, 3, 1, 0, i, tzinfo=UTC), 30 + i / 100, 120, speed_kmh=10.0)
        for i in range(5)
    ]
    frame = jt808.encode_frame(jt808.MsgId.BATCH, "1", 1, jt808.batch_body(fixes, blind=True))
    message = jt808.decode_packet(frame)
    assert message.batch_kind == 1
    assert [f.fix_time for f in message.fixes] == [f.fix_time for f in fixes]
    assert all(f.attributes["blind_area"] for f in message.fixes)


def test_register_and_authenticate_bodies():
    reg = jt808.encode_frame(
        jt808.MsgId.REGISTER,
        "13912345678",
        1,
        jt808.register_body("浙A·D12345", version2019=True),
        version2019=True,
    )
    message = jt808.decode_packet(reg)
    assert message.registration is not None
    assert message.registration.plate == "浙A·D12345"
    auth = jt808.encode_frame(
        jt808.MsgId.AUTHENTICATE,
        "13912345678",
        2,
        jt808.authenticate_body(
            "abc123", version2019=True, imei="861234567890123", software_version="V2.1.7"
        ),
        version2019=True,
    )
    decoded = jt808.decode_packet(auth)
    assert (decoded.auth_code, decoded.imei, decoded.software_version) == (
        "abc123",
        "861234567890123",
        "V2.1.7",
    )
    assert (
        jt808.decode_packet(
            jt808.encode_frame(jt808.MsgId.AUTHENTICATE, "1", 3, jt808.authenticate_body("xyz"))
        ).auth_code
        == "xyz"
    )


def test_registration_identity_fields_2013_and_2019():
    for version2019, terminal_id in ((False, "7654321"), (True, "TERMINAL-ID-OF-THIRTY-BYTES-XX")):
        frame = jt808.encode_frame(
            jt808.MsgId.REGISTER,
            "13912345678",
            1,
            jt808.register_body("浙A·D12345", terminal_id=terminal_id, version2019=version2019),
            version2019=version2019,
        )
        registration = jt808.decode_packet(frame).registration
        assert registration is not None
        assert (registration.maker, registration.model, registration.terminal_id) == (
            "FLEET",
            "SIM-808",
            terminal_id,
        )
        assert (registration.plate, registration.plate_colour) == ("浙A·D12345", 2)


def test_replies_echo_serial_message_and_header_version():
    frame = jt808.encode_frame(jt808.MsgId.HEARTBEAT, "13912345678", 77, version2019=True)
    header = jt808.decode_packet(frame).header
    reply = jt808.decode_packet(jt808.encode_reply(header, jt808.Result.BAD_MESSAGE, serial=5))
    assert reply.msg_id == jt808.MsgId.PLATFORM_REPLY
    assert reply.header.version2019
    assert reply.header.phone == header.phone
    assert reply.body == bytes([0, 77, 0x00, 0x02, 2])
    registered = jt808.decode_packet(
        jt808.encode_register_reply(header, jt808.RegisterResult.OK, "CODE9")
    )
    assert registered.body == bytes([0, 77, 0]) + b"CODE9"


def test_bad_check_byte_is_refused_unless_lenient():
    frame = bytearray(jt808.encode_frame(jt808.MsgId.HEARTBEAT, "1", 1))
    frame[-2] ^= 0x01
    with pytest.raises(jt808.FrameError) as refused:
        jt808.decode_packet(bytes(frame))
    assert refused.value.reason == "bad_checksum"
    assert jt808.header_of(bytes(frame[1:-1])) is not None
    lenient = jt808.decode_packet(bytes(frame), lenient_checksum=True)
    assert lenient.checksum_ok is False


def test_split_frames_handles_halves_runs_and_noise():
    one = jt808.encode_frame(jt808.MsgId.HEARTBEAT, "1", 1)
    two = jt808.encode_frame(jt808.MsgId.HEARTBEAT, "1", 2)
    stream = b"noise" + one + two
    frames, rest = jt808.split_frames(stream[:9])
    assert frames == []
    frames, rest = jt808.split_frames(rest + stream[9:])
    assert [jt808.decode(f).header.serial for f in frames] == [1, 2]
    assert rest == b"\x7e"
    frames, rest = jt808.split_frames(b"\x7e" + b"\x01" * (jt808.MAX_FRAME + 1))
    assert (frames, rest) == ([], b"")


def test_sub_packet_is_answerable_without_positions():
    body = b"\x00" * 10
    data = bytearray(jt808.encode_frame(jt808.MsgId.LOCATION, "1", 9, body))
    inner = jt808.unescape(bytes(data[1:-1]))
    props = int.from_bytes(inner[2:4], "big") | 0x2000
    rebuilt = (
        inner[:2] + props.to_bytes(2, "big") + inner[4:12] + b"\x00\x02\x00\x01" + inner[12:-1]
    )
    frame = jt808.escape(rebuilt + bytes([jt808.check_byte(rebuilt)]))
    message = jt808.decode(frame)
    assert message.header.packet == (2, 1)
    assert message.fixes == ()


@settings(max_examples=3000, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_never_raise_anything_but_frame_error(data: bytes):
    frames, _ = jt808.split_frames(data)
    for frame in [*frames, data]:
        with contextlib.suppress(jt808.FrameError):
            jt808.decode(frame, lenient_checksum=True)


@settings(max_examples=2000, deadline=None)
@given(st.sampled_from(HEX_VECTORS), st.integers(0, 400), st.integers(0, 255), st.booleans())
def test_mutated_real_frames_never_raise_anything_but_frame_error(vector, position, byte, cut):
    data = bytearray(packet(vector))
    if cut:
        data = data[: position % (len(data) + 1)]
    elif data:
        data[position % len(data)] = byte
    with contextlib.suppress(jt808.FrameError):
        jt808.decode_packet(bytes(data), lenient_checksum=True)


IMEI_FIELD = bytes.fromhex("4eb6fb4ad628")  # a real terminal's number field: not BCD


def test_luhn_check_digits_of_known_numbers():
    assert jt808.luhn_digit(7992739871) == 3
    assert jt808.luhn_digit(49015420323751) == 8  # IMEI 490154203237518
    assert jt808.luhn_digit(86547807000104) == 7


def test_a_number_field_that_is_not_bcd_reads_as_the_imei_and_replies_echo_it():
    assert jt808.terminal_number(IMEI_FIELD) == "865478070001047"
    assert jt808.terminal_number(bytes.fromhex("013912345678")) == "013912345678"
    frame = jt808.encode_frame(jt808.MsgId.HEARTBEAT, IMEI_FIELD.hex(), 9)
    header = jt808.decode_packet(frame).header
    assert (header.phone, header.number) == ("865478070001047", IMEI_FIELD)
    reply = jt808.decode_packet(jt808.encode_reply(header, jt808.Result.OK, serial=1))
    assert reply.header.number == IMEI_FIELD
    assert jt808.unescape(jt808.encode_reply(header, jt808.Result.OK)[1:-1])[4:10] == IMEI_FIELD


@pytest.mark.parametrize(
    "vector",
    [v for v in HEX_VECTORS if packet(v)[5:11] == IMEI_FIELD],
    ids=lambda v: str(v["index"]),
)
def test_real_frames_with_an_imei_in_the_number_field_name_the_imei(vector: dict[str, Any]):
    message = decode_either(vector)
    assert message.header.phone == "865478070001047"
    assert all(fix.device_identifier == "865478070001047" for fix in message.fixes)


# ---- a raw 0x7E inside a frame ---------------------------------------------------------------

RAW_7E_VECTOR = next(v for v in HEX_VECTORS if v["index"] == 97)  # 0x7E raw in item 0xEC
FIX = Fix("13912345678", datetime(2026, 11, 22, 1, 2, 3, tzinfo=UTC), 30.26, 120.19, valid=True)


def careless(frame: bytes) -> bytes:
    """`frame` as a terminal that does not escape 0x7E sends it (it still escapes 0x7D)."""
    return b"\x7e" + frame[1:-1].replace(b"\x7d\x02", b"\x7e") + b"\x7e"


def heartbeat(serial: int) -> bytes:
    return jt808.encode_frame(jt808.MsgId.HEARTBEAT, "13912345678", serial)


def location(
    raw_7e: int = 1, *, version2019: bool = False, subpackaged: bool = False, serial: int = 5
) -> bytes:
    """A location frame whose vendor item 0xEC holds `raw_7e` bytes 0x7E, as a careless
    terminal sends it."""
    body = jt808.location_body(FIX, extra=b"\xec" + bytes([2 * raw_7e]) + b"\x7e\x01" * raw_7e)
    frame = jt808.encode_frame(
        jt808.MsgId.LOCATION, "13912345678", serial, body, version2019=version2019
    )
    if subpackaged:
        frame = sub_packet(frame, total=2, index=1)
    return careless(frame)


def sub_packet(frame: bytes, *, total: int, index: int) -> bytes:
    """`frame` (2013 header) re-made as packet `index` of `total` (header bit 13 and the two
    words after the serial)."""
    inner = jt808.unescape(frame[1:-1])
    props = int.from_bytes(inner[2:4], "big") | 0x2000
    rebuilt = (
        inner[:2]
        + props.to_bytes(2, "big")
        + inner[4:12]
        + total.to_bytes(2, "big")
        + index.to_bytes(2, "big")
        + inner[12:-1]
    )
    return b"\x7e" + jt808.escape(rebuilt + bytes([jt808.check_byte(rebuilt)])) + b"\x7e"


def test_a_real_frame_with_a_raw_7e_inside_is_joined_and_decodes():
    data = packet(RAW_7E_VECTOR)
    assert data[1:-1].count(0x7E) == 1
    frames, rest = jt808.split_frames(heartbeat(1) + data + heartbeat(2))
    assert rest == b"\x7e"
    assert [jt808.rejoined(f) for f in frames] == [False, True, False]
    message = jt808.decode(frames[1])
    assert (message.msg_id, message.header.serial, message.length_ok) == (0x0200, 115, True)
    assert "7e" in str(message.fixes[0].attributes["xec"])
    assert [jt808.decode(f).header.serial for f in (frames[0], frames[2])] == [1, 2]


def test_a_frame_cut_by_a_raw_7e_is_joined_wherever_the_reads_end():
    stream = heartbeat(1) + packet(RAW_7E_VECTOR) + heartbeat(2)
    for cut in range(len(stream) + 1):
        first, rest = jt808.split_frames(stream[:cut])
        second, rest = jt808.split_frames(rest + stream[cut:])
        assert [jt808.decode(f).header.serial for f in first + second] == [1, 115, 2], cut
        assert rest == b"\x7e"


@pytest.mark.parametrize(
    ("version2019", "subpackaged"),
    [(False, False), (True, False), (False, True)],
    ids=["2013", "2019", "sub-packet"],
)
def test_a_raw_7e_is_joined_whatever_the_header(version2019: bool, subpackaged: bool):
    frames, _ = jt808.split_frames(location(version2019=version2019, subpackaged=subpackaged))
    assert len(frames) == 1
    assert jt808.rejoined(frames[0])
    message = jt808.decode(frames[0])
    assert message.header.version2019 is version2019
    assert message.header.packet == ((2, 1) if subpackaged else None)
    assert message.length_ok
    if not subpackaged:  # a sub-packet's body is kept raw
        assert message.fixes[0].attributes["xec"] == "7e01"


def test_a_raw_7e_as_the_check_byte_is_joined():
    serial = next(s for s in range(1, 2000) if jt808.unescape(heartbeat(s)[1:-1])[-1] == 0x7E)
    frames, _ = jt808.split_frames(careless(heartbeat(serial)) + heartbeat(1))
    assert [jt808.decode(f).header.serial for f in frames] == [serial, 1]
    assert jt808.rejoined(frames[0])


def test_at_most_max_parts_are_joined():
    most = jt808.MAX_PARTS - 1
    frames, _ = jt808.split_frames(location(most) + heartbeat(1))
    assert [jt808.rejoined(f) for f in frames] == [True, False]
    assert jt808.decode(frames[0]).fixes[0].attributes["xec"] == "7e01" * most
    frames, _ = jt808.split_frames(location(most + 1) + heartbeat(1))
    assert not any(jt808.rejoined(f) for f in frames)
    assert len(frames) == jt808.MAX_PARTS + 2  # each part on its own, then the heartbeat
    for part in frames[:-1]:
        with pytest.raises(jt808.FrameError):
            jt808.decode(part)
    assert jt808.decode(frames[-1]).header.serial == 1


def test_a_broken_frame_with_a_raw_7e_is_not_joined_and_counts_as_broken():
    data = bytearray(location())
    data[20] ^= 0x01  # a byte of the fixed location fields: the check byte no longer holds
    frames, _ = jt808.split_frames(bytes(data) + heartbeat(1))
    assert not any(jt808.rejoined(f) for f in frames)
    assert len(frames) == 3
    for part in frames[:2]:
        with pytest.raises(jt808.FrameError):
            jt808.decode(part)
    assert jt808.decode(frames[2]).header.serial == 1


def test_a_join_whose_length_is_not_the_headers_is_not_taken():
    """Its check byte is right, but its header gives one byte more of body than it holds."""
    body = jt808.location_body(FIX, extra=b"\xec\x02\x7e\x01")
    data = struct.pack(">HH", 0x0200, len(body) + 1) + bytes.fromhex("013912345678") + b"\x00\x05"
    data += body
    frame = careless(b"\x7e" + jt808.escape(data + bytes([jt808.check_byte(data)])) + b"\x7e")
    frames, rest = jt808.split_frames(frame + heartbeat(1)[1:])  # one delimiter between
    assert not any(jt808.rejoined(f) for f in frames)
    assert jt808.decode(frames[-1]).header.serial == 1
    assert rest == b"\x7e"


@pytest.mark.parametrize("check_ok", [True, False], ids=["check-byte-right", "check-byte-wrong"])
def test_a_whole_frame_is_never_taken_into_a_join(check_ok: bool):
    """A long frame whose end was lost, then a heartbeat that would fit in what it misses (its
    check byte wrong too, as some terminals always send it): the heartbeat is a frame of its own."""
    body = jt808.location_body(FIX, extra=b"\xec\x02\x7e\x01\xed\xc8" + bytes(200))
    frame = careless(jt808.encode_frame(jt808.MsgId.LOCATION, "13912345678", 5, body))
    cut = frame[: frame.index(b"\x7e", 1)]  # the first part alone
    beat = bytearray(heartbeat(1))
    if not check_ok:
        beat[-2] ^= 0x01
    frames, rest = jt808.split_frames(cut + bytes(beat))
    assert frames == [cut[1:], bytes(beat[1:-1])]
    assert rest == b"\x7e"


def test_a_part_the_next_read_may_complete_is_kept_only_while_it_can_be():
    cut = location()[: location().index(b"\x7e", 1) + 1]  # the first part, then silence
    frames, rest = jt808.split_frames(cut)
    assert (frames, rest) == ([], cut)
    frames, rest = jt808.split_frames(rest + b"\x00" * 200)  # more than its header gives
    assert frames == [cut[1:-1]]
    assert rest == b"\x7e" + b"\x00" * 200
    with pytest.raises(jt808.FrameError):
        jt808.decode(frames[0])


def _checks_only_raw(data: bytes) -> bool:
    """Delimited, its check byte wrong once unescaped and right over the bytes as sent."""
    return data[0] == 0x7E and _bad_check(data) and jt808.check_byte(data[1:-2]) == data[-2]


@pytest.mark.parametrize(
    "vector",
    [v for v in HEX_VECTORS if _checks_only_raw(packet(v))],
    ids=lambda v: str(v["index"]),
)
def test_a_frame_of_a_terminal_that_never_escapes_is_not_held_back(vector: dict[str, Any]):
    """Read unescaped it is a byte short of its header's length, and its check byte fails; as
    sent, unescaped by nobody, it checks out: it is whole, and answered at once."""
    data = packet(vector)
    frames, rest = jt808.split_frames(data)
    assert (frames, rest) == ([data[1:-1]], b"\x7e")
    assert jt808.decode(frames[0], lenient_checksum=True).checksum_ok is False
