"""Fixes as columns: the stream's binary entries, the worker's checks and order, and the binary
COPY built from columns, held to a plain row-by-row encoder. Pure: no database, no Redis."""

from __future__ import annotations

import json
import math
import struct
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from telematics import stream
from telematics.batch import FixBatch, in_order, read_entry, well_formed_mask
from telematics.ingest import encode_copy
from telematics.stream import ATTRIBUTES, RECORD, RECORDS, entry

# ---- a plain encoder, row by row: the definition the columns are held to ----------------------

_EPOCH_MS = 946_684_800_000
_NULL = b"\xff\xff\xff\xff"


def reference_copy(rows: list[list[Any]]) -> bytes:
    """PostgreSQL's binary COPY for `position`, one row after another with struct."""
    out = [b"PGCOPY\n\xff\r\n\x00" + b"\x00" * 8]

    def word(value: int) -> int:
        value &= 0xFFFFFFFF
        return value - (1 << 32) if value >= 1 << 31 else value

    for r in rows:
        out.append(
            struct.pack(
                ">hiiiqiiiqiiii",
                14,
                4,
                r[0],
                8,
                (r[3] - _EPOCH_MS) * 1000,
                4,
                r[1],
                8,
                (r[4] - _EPOCH_MS) * 1000,
                4,
                word(r[13]),
                4,
                word(r[14]),
            )
        )
        if r[5] is None:
            out.append(_NULL)
        else:
            out.append(
                struct.pack(">i", 25) + struct.pack("<BIIdd", 1, 0x20000001, 4326, r[6], r[5])
            )
        for value in (r[7], r[8], r[9]):
            out.append(_NULL if value is None else struct.pack(">if", 4, value))
        out.append(_NULL if r[10] is None else struct.pack(">ib", 1, int(r[10])))
        out.append(_NULL if r[11] is None else struct.pack(">id", 8, r[11]))
        out.append(_NULL if r[12] is None else struct.pack(">if", 4, r[12]))
        if r[15] is None:
            out.append(_NULL)
        else:
            text = b"\x01" + r[15].encode()
            out.append(struct.pack(">i", len(text)) + text)
    out.append(b"\xff\xff")
    return b"".join(out)


def shape_of(row: list[Any]) -> tuple[int, int]:
    """The order `encode_copy` groups fixes in: by which columns are null, then text length."""
    present = [row[5], row[7], row[8], row[9], row[10], row[11], row[12], row[15]]
    bits = sum(1 << k for k, value in enumerate(present) if value is not None)
    return bits, len(row[15].encode()) if row[15] is not None else 0


# ---- rows as gateways make them ----------------------------------------------------------------

maybe_real = st.none() | st.floats(-1e6, 1e6, allow_nan=False, width=32)
texts = st.none() | st.dictionaries(
    st.sampled_from(["sat", "rssi", "note", "blind_area"]),
    st.integers(0, 99) | st.text(max_size=6) | st.booleans(),
    min_size=1,
    max_size=3,
).map(lambda d: json.dumps(d, ensure_ascii=False, separators=(",", ":")))


@st.composite
def rows(draw: Any) -> list[Any]:
    positioned = draw(st.booleans())
    return [
        draw(st.integers(1, 2**31 - 1)),
        draw(st.integers(1, 2**31 - 1)),
        draw(st.integers(1, 1000)),
        draw(st.integers(1_600_000_000_000, 1_900_000_000_000)),
        draw(st.integers(1_600_000_000_000, 1_900_000_000_000)),
        draw(st.floats(-90, 90)) if positioned else None,
        draw(st.floats(-180, 180)) if positioned else None,
        draw(maybe_real),
        draw(maybe_real),
        draw(maybe_real),
        draw(st.none() | st.booleans()),
        draw(st.none() | st.floats(0, 1e8)),
        draw(maybe_real),
        draw(st.integers(0, 2**32 - 1)),
        draw(st.integers(0, 2**32 - 1)),
        draw(texts),
    ]


@settings(max_examples=200, deadline=None)
@given(st.lists(rows(), max_size=30))
def test_rows_round_trip_through_an_entry(found):
    fields = entry(found)
    batch, dropped = read_entry(fields)
    assert dropped == 0
    assert batch.rows() == found
    assert well_formed_mask(batch).all()


@settings(max_examples=200, deadline=None)
@given(st.lists(rows(), max_size=30))
def test_copy_from_columns_equals_the_row_by_row_encoder(found):
    grouped = sorted(found, key=shape_of)  # a stable sort: the order within a shape stays
    assert encode_copy(FixBatch.from_rows(found)) == reference_copy(grouped)


def test_copy_of_an_unsigned_alarm_word_and_a_taken_subset():
    row = [7, 8, 1, 1_700_000_000_000, 1_700_000_000_500, 30.2, 120.1, 40.0, 90.0, 5.0, True,
           12.5, None, 0xFFFFFFFF, 2**31, '{"sat":9}']  # fmt: skip
    other = [*row[:3], row[3] + 1000, *row[4:15], None]
    batch = FixBatch.from_rows([other, row])
    assert encode_copy(batch.take(np.array([1]))) == reference_copy([row])
    assert batch.take(np.array([1])).attributes(0) == b'{"sat":9}'


def test_a_damaged_entry_is_refused():
    records, _ = entry([[1, 1, 1, 0, 0, None, None, None, None, None, None, None, None, 0, 0,
                         '{"a":1}']])[RECORDS], None  # fmt: skip
    with pytest.raises(ValueError, match="not whole"):
        read_entry({RECORDS: records[:-1]})
    with pytest.raises(ValueError, match="do not match"):
        read_entry({RECORDS: records, ATTRIBUTES: b'{"a":1'})
    with pytest.raises(KeyError):
        read_entry({b"q": b"[]"})
    with pytest.raises(orjson.JSONDecodeError):
        read_entry({b"p": b"{not json"})


def test_the_older_json_entries_are_read_and_their_bad_rows_counted():
    good = [3, 4, 1, 1_700_000_000_000, 1_700_000_000_001, 30.2, 120.1, 42.5, 90.0, None, True,
            1000.1, None, 5, 0, '{"sat":12}']  # fmt: skip
    bad = [["x"] * 16, [1] * 15, [0, *good[1:]]]
    batch, dropped = read_entry({b"p": stream.encode([good, *bad])})
    assert dropped == 3
    assert batch.rows() == [good]


def test_impossible_values_are_flagged():
    good = [3, 4, 1, 1_700_000_000_000, 1_700_000_000_001, 30.2, 120.1, 42.5, 90.0, None, True,
            1000.1, None, 5, 0, None]  # fmt: skip
    records = np.frombuffer(entry([good] * 7)[RECORDS], dtype=RECORD).copy()
    records["vehicle"][1] = 0
    records["lat"][2] = 91.0
    records["lat"][3] = math.nan  # a longitude without a latitude
    records["speed"][4] = math.inf
    records["ignition"][5] = 5
    records["fix_ms"][6] = -1
    batch = FixBatch.unpack(records.tobytes())
    assert well_formed_mask(batch).tolist() == [True] + [False] * 6


def test_order_by_vehicle_and_time_keeps_the_last_of_a_repeated_fix():
    def row(vehicle: int, second: int, device: int = 1, speed: float = 1.0) -> list[Any]:
        return [vehicle, device, 1, 1_700_000_000_000 + second * 1000, 0, 30.0, 120.0, speed,
                None, None, None, None, None, 0, 0, None]  # fmt: skip

    found = [row(2, 5), row(1, 9), row(2, 1), row(1, 9, speed=2.0), row(1, 9, device=2), row(2, 3)]
    ordered, starts = in_order(FixBatch.from_rows(found))
    assert [(r[0], r[3] % 100_000 // 1000, r[1], r[7]) for r in ordered.rows()] == [
        (1, 9, 1, 2.0),
        (1, 9, 2, 1.0),
        (2, 1, 1, 1.0),
        (2, 3, 1, 1.0),
        (2, 5, 1, 1.0),
    ]
    assert starts.tolist() == [0, 2, 5]
    empty, bounds = in_order(FixBatch.unpack(b""))
    assert len(empty) == 0
    assert bounds.tolist() == [0]


@settings(max_examples=200, deadline=None)
@given(st.lists(rows(), min_size=1, max_size=30), st.data())
def test_live_items_from_columns_equal_those_from_rows(found, data):
    batch = FixBatch.from_rows(found)
    index = data.draw(st.lists(st.integers(0, len(found) - 1), max_size=10))
    assert batch.live_items(index) == [stream.live_item(found[i]) for i in index]
