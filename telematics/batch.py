"""Fixes as columns: the stream's binary entry, and the batch the ingest worker works on.

A stream entry holds the fixes of one gateway flush for one shard as packed little-endian
records (`RECORD`, field `f`) and, when any fix has attributes, their JSON texts one after
another (field `a`; each record says how long its text is, -1 for none). The worker reads an
entry with `np.frombuffer`: no JSON to parse per fix, and every step after it (checks, order,
duplicates, the binary COPY) is done on whole columns. NaN stands for a missing number, -1 for
a missing ignition.

Entries in the older format (field `p`: JSON rows, `telematics.stream.encode`) are still read,
so fixes a gateway of the previous release left in the stream are not lost on upgrade.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from telematics import stream
from telematics.stream import ATTRIBUTES, R_ATTRIBUTES, RECORD, RECORDS, ROWS, pack

_REAL_MAX = 3.0e38  # float4 columns
_MAX_MS = 253_402_300_799_999  # 9999-12-31


@dataclass(frozen=True, slots=True)
class FixBatch:
    """Fixes as `RECORD`s, with their attribute texts: `blob[offsets[i]:][:attr_len[i]]`.
    Taking a subset keeps the blob and picks offsets, so nothing per fix is copied but records."""

    records: np.ndarray
    offsets: np.ndarray  # int64, where each record's text starts in `blob`
    blob: np.ndarray  # uint8

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.records[name]  # type: ignore[no-any-return]

    def take(self, index: np.ndarray) -> FixBatch:
        return FixBatch(self.records[index], self.offsets[index], self.blob)

    def attributes(self, i: int) -> bytes | None:
        size = int(self.records["attr_len"][i])
        if size < 0:
            return None
        start = int(self.offsets[i])
        return self.blob[start : start + size].tobytes()

    def rows(self, index: Iterable[int] | None = None) -> list[list[Any]]:
        """Stream rows (None for what is missing) of the fixes at `index` (all by default)."""
        picked = self.records if index is None else self.records[np.asarray(index, np.int64)]
        positions = range(len(self)) if index is None else index
        texts = [self.attributes(i) for i in positions]
        columns = [
            or_none(picked[name]) if picked[name].dtype.kind == "f" else picked[name].tolist()
            for name in _ROW_FIELDS
        ]
        columns[_ROW_FIELDS.index("ignition")] = IGNITION_OF[picked["ignition"] + 1].tolist()
        columns.append([None if t is None else t.decode() for t in texts])
        return [list(row) for row in zip(*columns, strict=True)]

    def live_items(self, index: Sequence[int]) -> list[dict[str, Any]]:
        """`telematics.stream.live_item` of the fixes at `index`, made column by column."""
        r = self.records[np.asarray(index, dtype=np.int64)]
        fix_ms = r["fix_ms"]
        moment = fix_ms.astype("datetime64[ms]")
        # as `iso_utc` writes them: whole seconds without a fraction, else microseconds
        times = np.where(
            fix_ms % 1000 == 0,
            np.datetime_as_string(moment, unit="s"),
            np.datetime_as_string(moment.astype("datetime64[us]"), unit="us"),
        ).tolist()
        columns = zip(
            r["vehicle"].tolist(),
            r["unit"].tolist(),
            fix_ms.tolist(),
            times,
            r["received_ms"].tolist(),
            or_none(r["lat"]),
            or_none(r["lon"]),
            or_none(r["speed"]),
            or_none(r["heading"]),
            IGNITION_OF[r["ignition"] + 1].tolist(),
            strict=True,
        )
        return [
            {
                "vehicle_id": v,
                "unit_id": u,
                "fix_ms": ms,
                "fix_time": f"{t}Z",
                "received_ms": received,
                "lat": lat,
                "lon": lon,
                "speed_kmh": speed,
                "heading_deg": heading,
                "ignition": ignition,
            }
            for v, u, ms, t, received, lat, lon, speed, heading, ignition in columns
        ]

    @classmethod
    def from_rows(cls, rows: Sequence[Sequence[Any]]) -> FixBatch:
        records, texts = pack(rows)
        return cls.unpack(records, texts)

    @classmethod
    def unpack(cls, records: bytes, texts: bytes = b"") -> FixBatch:
        """Raises ValueError when the parts do not fit together (a damaged entry)."""
        if len(records) % RECORD.itemsize:
            raise ValueError("a stream entry's records are not whole")
        found = np.frombuffer(records, dtype=RECORD)
        sizes = np.maximum(found["attr_len"].astype(np.int64), 0)
        ends = np.cumsum(sizes)
        if (ends[-1] if len(ends) else 0) != len(texts):
            raise ValueError("a stream entry's attribute texts do not match its records")
        return cls(found, ends - sizes, np.frombuffer(texts, dtype=np.uint8))

    @classmethod
    def concat(cls, parts: Sequence[FixBatch]) -> FixBatch:
        if len(parts) == 1:
            return parts[0]
        if not parts:
            return cls.unpack(b"")
        bases = np.cumsum([0] + [len(p.blob) for p in parts[:-1]])
        return cls(
            np.concatenate([p.records for p in parts]),
            np.concatenate([p.offsets + base for p, base in zip(parts, bases, strict=True)]),
            np.concatenate([p.blob for p in parts]),
        )


_ROW_FIELDS = (
    "vehicle",
    "device",
    "unit",
    "fix_ms",
    "received_ms",
    "lat",
    "lon",
    "speed",
    "heading",
    "altitude",
    "ignition",
    "odometer",
    "fuel",
    "alarm",
    "status",
)


IGNITION_OF = np.array([None, False, True], dtype=object)  # [ignition + 1] for -1, 0, 1


def or_none(values: np.ndarray) -> list[float | None]:
    """As Python floats, NaN as None."""
    found: list[float | None] = values.astype(float).tolist()
    if np.isnan(values).any():
        found = [None if v != v else v for v in found]
    return found


def read_entry(fields: Mapping[bytes, bytes]) -> tuple[FixBatch, int]:
    """An entry's fixes and the number of its rows dropped as malformed (the older JSON format
    is checked row by row). Raises KeyError, ValueError or TypeError for an entry that cannot be
    read at all."""
    records = fields.get(RECORDS)
    if records is not None:
        return FixBatch.unpack(records, fields.get(ATTRIBUTES, b"")), 0
    rows = stream.decode(fields[ROWS])
    kept = [row for row in rows if well_formed(row)]
    return FixBatch.from_rows(kept), len(rows) - len(kept)


def entry_rows(fields: Mapping[bytes, bytes]) -> list[list[Any]]:
    """The well-formed rows of a stream entry (for tools and tests)."""
    return read_entry(fields)[0].rows()


def well_formed_mask(batch: FixBatch) -> np.ndarray:
    """Per fix, whether a gateway could have written it: anything else is counted and dropped,
    because one bad fix must not hold back the batch it came in."""
    r = batch.records
    lat, lon = r["lat"], r["lon"]
    no_position = np.isnan(lat) & np.isnan(lon)
    with np.errstate(invalid="ignore"):
        ok = (
            (r["vehicle"] > 0)
            & (r["device"] > 0)
            & (r["fix_ms"] >= 0)
            & (r["fix_ms"] <= _MAX_MS)
            & (r["received_ms"] >= 0)
            & (r["received_ms"] <= _MAX_MS)
            & (no_position | ((np.abs(lat) <= 90) & (np.abs(lon) <= 180)))
            & (r["ignition"] >= -1)
            & (r["ignition"] <= 1)
        )
        for name in ("speed", "heading", "altitude", "fuel"):
            value = r[name]
            ok &= np.isnan(value) | (np.abs(value) < _REAL_MAX)
        odometer = r["odometer"]
        ok &= np.isnan(odometer) | (np.abs(odometer) < 1e15)
    return ok  # type: ignore[no-any-return]


_NUMBER_TYPES = frozenset({int, float, type(None)})


def well_formed(row: Any) -> bool:
    """A row in the older JSON format a gateway could have written. (Per fix: plain checks.)"""
    if type(row) is not list or len(row) != R_ATTRIBUTES + 1:
        return False
    (
        vehicle,
        device,
        unit,
        fix_ms,
        received_ms,
        lat,
        lon,
        speed,
        heading,
        altitude,
        ignition,
        odometer,
        fuel,
        alarm,
        status,
        attributes,
    ) = row
    numbers = _NUMBER_TYPES
    return (
        type(vehicle) is int
        and type(device) is int
        and type(unit) is int
        and type(fix_ms) is int
        and type(received_ms) is int
        and type(alarm) is int
        and type(status) is int
        and 0 < vehicle < 2**31
        and 0 < device < 2**31
        and -(2**31) <= unit < 2**31
        and 0 <= fix_ms <= _MAX_MS
        and 0 <= received_ms <= _MAX_MS
        and type(speed) in numbers
        and type(heading) in numbers
        and type(altitude) in numbers
        and type(odometer) in numbers
        and type(fuel) in numbers
        and (speed is None or -_REAL_MAX < speed < _REAL_MAX)
        and (heading is None or -_REAL_MAX < heading < _REAL_MAX)
        and (altitude is None or -_REAL_MAX < altitude < _REAL_MAX)
        and (fuel is None or -_REAL_MAX < fuel < _REAL_MAX)
        and (odometer is None or -1e15 < odometer < 1e15)
        and (ignition is None or type(ignition) is bool)
        and (attributes is None or type(attributes) is str)
        and (
            (lat is None and lon is None)
            or (
                type(lat) in numbers
                and type(lon) in numbers
                and lat is not None
                and lon is not None
                and -90 <= lat <= 90
                and -180 <= lon <= 180
            )
        )
    )


def in_order(batch: FixBatch) -> tuple[FixBatch, np.ndarray]:
    """The batch in (vehicle, fix time) order with each (vehicle, fix time, device) once, the
    last one read kept (a re-sent fix); and where each vehicle's fixes start (plus the end)."""
    r = batch.records
    vehicle, fix_ms, device = r["vehicle"], r["fix_ms"], r["device"]
    order = np.lexsort((-np.arange(len(r)), device, fix_ms, vehicle))
    v, f, d = vehicle[order], fix_ms[order], device[order]
    repeat = (v[1:] == v[:-1]) & (f[1:] == f[:-1]) & (d[1:] == d[:-1])
    if repeat.any():
        keep = np.concatenate(([True], ~repeat))
        order, v = order[keep], v[keep]
    starts = np.flatnonzero(np.concatenate(([True], v[1:] != v[:-1]))) if len(v) else v[:0]
    return batch.take(order), np.append(starts, len(v)).astype(np.int64)
