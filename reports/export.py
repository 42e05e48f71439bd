"""Bulk export for a data-sharing and exchange platform (数据共享交换平台): positions, trips,
orders, alerts and cost records of the caller's units as CSV, GeoParquet or GeoJSON, streamed in
chunks read from a server-side cursor (and from the archive's GeoParquet files through DuckDB
for positions of archived months), so the server's memory does not grow with the export's size.

Each kind has a change key that only grows: positions their `received_at` (they are only ever
appended, and a late fix arrives with an old `fix_time`), trips their id (a trip is written
once), orders, alerts and cost records their `updated_at`. An export covers the rows whose key
lies below a high-water mark fixed before the first byte is sent (so it can go in a header):
for the time keys, the export's start less `FLEET_EXPORT_SETTLE_S`, which leaves room for the
transactions and ingest batches still in flight; for trips, one past the highest id then
committed. The cursor handed back is that mark, opaque; the next export with it covers the
rows from the mark up to its own, so pulling with each answer's cursor in turn hands out each
settled row (or each change of it) once.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from fleet import registry
from fleet.auth import Actor, require, units_in_scope
from fleet.errors import Invalid
from fleet.models import OrgUnit, Vehicle
from reports.statistics import MAX_PERIOD
from telematics import tracks
from telematics.archive import epoch_us, from_epoch_us, wkb_points

# Rows read and written at a time (and a Parquet row group): 5,000 positions are about 6 MB of
# Python objects, 20 MB of the process's memory at the peak with the driver's buffers.
CHUNK = 5_000
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(3000, 1, 1, tzinfo=UTC)

MEDIA_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "parquet": "application/vnd.apache.parquet",
    "geojson": "application/geo+json",
}
UTC_US = pa.timestamp("us", tz="UTC")
JSON = pa.string()  # a JSON value's text; in GeoJSON, embedded as the value itself


@dataclass(frozen=True)
class Column:
    name: str
    sql: str
    type: pa.DataType
    json: bool = False


def _columns(alias: str, spec: str) -> tuple[Column, ...]:
    """`name:type` pairs (int, float, text, time, bool, money, json) read from `alias`."""
    types = {
        "int": pa.int64(),
        "float": pa.float64(),
        "text": pa.string(),
        "time": UTC_US,
        "bool": pa.bool_(),
        "money": pa.decimal128(12, 2),
        "json": JSON,
    }
    out = []
    for pair in spec.split():
        name, kind = pair.split(":")
        sql = f"{alias}.{name}" + ("::text" if kind in ("json", "text") else "")
        out.append(Column(name, sql, types[kind], json=kind == "json"))
    return tuple(out)


@dataclass(frozen=True)
class Kind:
    """One exportable table: its columns, its geometry (None for positions, whose geometry
    is made from their lon and lat, the same for hot and archived rows), the column its
    period (`since`, `until`) applies to and its change key."""

    name: str
    table: str
    columns: tuple[Column, ...]
    geometry: str | None
    period: str
    key: str
    scope: str  # "unit": rows carry their unit; "vehicle": rows go by their vehicle's unit

    @property
    def by_id(self) -> bool:
        return self.key.endswith(".id")


KINDS = {
    kind.name: kind
    for kind in (
        Kind(
            "positions",
            "position p",
            _columns(
                "p",
                "vehicle_id:int device_id:int fix_time:time received_at:time lon:float"
                " lat:float speed_kmh:float heading_deg:float altitude_m:float ignition:bool"
                " odometer_km:float fuel_l:float alarm_bits:int status_bits:int"
                " attributes:json",
            ),
            None,
            "p.fix_time",
            "p.received_at",
            "vehicle",
        ),
        Kind(
            "trips",
            "trip t",
            _columns(
                "t",
                "id:int vehicle_id:int start_at:time end_at:time distance_m:float"
                " duration_s:float max_speed_kmh:float avg_speed_kmh:float"
                " odometer_start_km:float odometer_end_km:float",
            ),
            "t.path",
            "t.start_at",
            "t.id",
            "vehicle",
        ),
        Kind(
            "orders",
            "trip_order o",
            _columns(
                "o",
                "id:int unit_id:int requester_id:int status:text approval:text purpose:text"
                " passengers:int start_at:time end_at:time origin_name:text destinations:json"
                " category:text body_class:text out_of_region:bool overnight:bool"
                " emergency:bool odometer_start_km:float odometer_end_km:float"
                " created_at:time updated_at:time",
            ),
            "o.origin",
            "o.start_at",
            "o.updated_at",
            "unit",
        ),
        Kind(
            "alerts",
            "alert a",
            _columns(
                "a",
                "id:int kind:text severity:text unit_id:int vehicle_id:int driver_id:int"
                " order_id:int fence_id:int started_at:time last_at:time ended_at:time"
                " review:text measured:json thresholds:json created_at:time updated_at:time",
            ),
            "a.point",
            "a.started_at",
            "a.updated_at",
            "unit",
        ),
        Kind(
            "costs",
            "cost_record c",
            _columns(
                "c",
                "id:int kind:text unit_id:int vehicle_id:int at:time amount:money litres:float"
                " kwh:float unit_price:float product:text station_name:text fuel_card:text"
                " odometer_km:float vendor:text note:text issuer:text external_id:text"
                " statement_id:int trip_id:int order_id:int created_at:time updated_at:time",
            ),
            "c.station",
            "c.at",
            "c.updated_at",
            "unit",
        ),
    )
}
POSITION_SQL = {"lon": "ST_X(p.point)", "lat": "ST_Y(p.point)"}
GEOMETRY_SQL = {"csv": "ST_AsText({})", "parquet": "ST_AsBinary({})", "geojson": "ST_AsGeoJSON({})"}


# ---- the cursor ------------------------------------------------------------------------------


def encode_cursor(kind: str, mark: int) -> str:
    """The mark (epoch microseconds, or for trips an id) as an opaque token."""
    body = json.dumps({"v": 1, "kind": kind, "mark": mark}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(body).decode().rstrip("=")


def decode_cursor(kind: str, token: str) -> int:
    try:
        body = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        mark = body["mark"] if body.get("v") == 1 and body.get("kind") == kind else None
    except (ValueError, TypeError, KeyError, binascii.Error):
        mark = None
    if not isinstance(mark, int) or isinstance(mark, bool) or mark < 0:
        raise Invalid(f"cursor is not one an export of {kind} handed out", field="cursor")
    return mark


# ---- planning: everything checked before the first byte --------------------------------------


@dataclass(frozen=True)
class Plan:
    kind: Kind
    format: str
    since: datetime
    until: datetime
    start: int  # the change key's lower bound (inclusive): the cursor's mark, or 0
    mark: int  # its upper bound (exclusive)
    unit_ids: tuple[int, ...]
    vehicle_ids: tuple[int, ...]

    @property
    def next_cursor(self) -> str:
        return encode_cursor(self.kind.name, self.mark)

    @property
    def filename(self) -> str:
        return f"{self.kind.name}.{self.format}"


def plan(
    *,
    session: Session,
    actor: Actor,
    kind: str,
    format: str,
    since: datetime | None,
    until: datetime | None,
    unit_id: int | None,
    cursor: str | None,
    now: datetime,
    settle: timedelta,
) -> Plan:
    """Checks the request and fixes what the export covers: the caller's units (narrowed to
    `unit_id`'s subtree, 404 outside their scope), the period, the change key's window."""
    require(actor, "report", "read")
    if kind not in KINDS:
        raise Invalid(f"the exports are {', '.join(KINDS)}", field="kind")
    if format not in MEDIA_TYPES:
        raise Invalid(f"the formats are {', '.join(MEDIA_TYPES)}", field="format")
    spec = KINDS[kind]
    if cursor is None and (since is None or until is None):
        raise Invalid("a first export needs since and until (later ones, a cursor)", field="since")
    for name, moment in (("since", since), ("until", until)):
        if moment is not None and moment.tzinfo is None:
            raise Invalid(f"{name} needs a time zone", field=name)
    if since is not None and until is not None:
        if until <= since:
            raise Invalid("until must be after since", field="until")
        if until - since > MAX_PERIOD:
            raise Invalid(
                f"a period is at most {MAX_PERIOD.days} days a request; ask for each year in turn",
                field="until",
            )
    start = 0 if cursor is None else decode_cursor(kind, cursor)
    if spec.by_id:
        mark = session.scalar(text("SELECT coalesce(max(id), 0) + 1 FROM trip")) or 1
    else:
        mark = epoch_us(now - settle)
    units = select(OrgUnit.id).where(OrgUnit.id.in_(units_in_scope(actor)))
    if unit_id is not None:
        unit = registry.get_unit(session=session, actor=actor, unit_id=unit_id)
        units = units.where(OrgUnit.path.startswith(unit.path, autoescape=True))
    unit_ids = tuple(session.scalars(units.order_by(OrgUnit.id)))
    vehicle_ids: tuple[int, ...] = ()
    if spec.scope == "vehicle":
        vehicle_ids = tuple(
            session.scalars(
                select(Vehicle.id).where(Vehicle.unit_id.in_(unit_ids)).order_by(Vehicle.id)
            )
        )
    return Plan(
        kind=spec,
        format=format,
        since=since or EARLIEST,
        until=until or LATEST,
        start=start,
        mark=max(mark, start),
        unit_ids=unit_ids,
        vehicle_ids=vehicle_ids,
    )


# ---- reading ---------------------------------------------------------------------------------


def _key(plan: Plan, value: int) -> int | datetime:
    return value if plan.kind.by_id else from_epoch_us(value)


def rows(session: Session, plan: Plan) -> Iterator[list[tuple[Any, ...]]]:
    """The export's rows in chunks of at most CHUNK, through a server-side cursor; positions
    of archived months after the hot ones."""
    spec = plan.kind
    selected = [POSITION_SQL.get(c.name, c.sql) for c in spec.columns]
    if spec.geometry is not None:
        selected.append(GEOMETRY_SQL[plan.format].format(spec.geometry))
    alias = spec.table.split()[1]
    owner = (
        f"{alias}.vehicle_id = ANY(:vehicles)"
        if spec.scope == "vehicle"
        else f"{alias}.unit_id = ANY(:units)"
    )
    # positions in the order the partitions give them (a sort of millions buys nothing)
    order = {"positions": "", "trips": " ORDER BY t.id"}.get(
        spec.name, f" ORDER BY {spec.key}, {alias}.id"
    )
    query = text(
        f"SELECT {', '.join(selected)} FROM {spec.table} WHERE {owner}"
        f" AND {spec.key} >= :start AND {spec.key} < :mark"
        f" AND {spec.period} >= :since AND {spec.period} < :until{order}"
    )
    params = {
        "vehicles": list(plan.vehicle_ids),
        "units": list(plan.unit_ids),
        "start": _key(plan, plan.start),
        "mark": _key(plan, plan.mark),
        "since": plan.since,
        "until": plan.until,
    }
    result = session.execute(query, params, execution_options={"yield_per": CHUNK})
    for part in result.partitions(CHUNK):
        yield [tuple(row) for row in part]
    if spec.name == "positions":
        yield from tracks.archived_fixes(
            session,
            plan.since,
            plan.until,
            vehicle_ids=plan.vehicle_ids,
            received_from=from_epoch_us(plan.start),
            received_before=from_epoch_us(plan.mark),
            chunk=CHUNK,
        )


def stream(session: Session, plan: Plan) -> Iterator[bytes]:
    """The export's bytes, chunk by chunk."""
    writer = {"csv": _csv, "parquet": _parquet, "geojson": _geojson}[plan.format]
    return writer(plan.kind, rows(session, plan))


# ---- writing ---------------------------------------------------------------------------------


def _names(kind: Kind) -> list[str]:
    return [c.name for c in kind.columns] + (["geometry"] if kind.geometry else [])


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def _csv(kind: Kind, chunks: Iterator[list[tuple[Any, ...]]]) -> Iterator[bytes]:
    """Plain UTF-8 (no byte-order mark: the reader is a machine), a header line, RFC 4180
    quoting, times in ISO 8601 UTC, empty for null, geometries as WKT."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(_names(kind))
    for chunk in chunks:
        writer.writerows([_cell(v) for v in row] for row in chunk)
        yield out.getvalue().encode()
        out.seek(0)
        out.truncate()
    yield out.getvalue().encode()


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def _geojson(kind: Kind, chunks: Iterator[list[tuple[Any, ...]]]) -> Iterator[bytes]:
    """One FeatureCollection, written feature by feature (one a line); amounts of money as
    strings (exact), JSON columns as their values."""
    names = [c.name for c in kind.columns]
    json_at = [i for i, c in enumerate(kind.columns) if c.json]
    located = kind.geometry is None  # positions: a point from lon and lat
    lon, lat = (names.index("lon"), names.index("lat")) if located else (-1, -1)
    yield b'{"type":"FeatureCollection","features":[\n'
    first = True
    for chunk in chunks:
        lines = []
        for row in chunk:
            values = list(row)
            for i in json_at:
                if values[i] is not None:
                    values[i] = orjson.Fragment(values[i])
            if located:
                geometry = (
                    b"null"
                    if values[lon] is None
                    else orjson.dumps({"type": "Point", "coordinates": [values[lon], values[lat]]})
                )
                properties = dict(zip(names, values, strict=True))
                del properties["lon"], properties["lat"]
            else:
                geometry = b"null" if row[-1] is None else row[-1].encode()
                properties = dict(zip(names, values[:-1], strict=True))
            lines.append(
                b'{"type":"Feature","geometry":'
                + geometry
                + b',"properties":'
                + orjson.dumps(properties, default=_plain)
                + b"}"
            )
        if lines:
            yield (b"" if first else b",\n") + b",\n".join(lines)
            first = False
    yield b"\n]}\n"


class _Chunks(io.RawIOBase):
    """Where the Parquet writer writes: what it wrote is taken out after each row group."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.written = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        part = bytes(data)
        self.parts.append(part)
        self.written += len(part)
        return len(part)

    def tell(self) -> int:
        return self.written

    def take(self) -> bytes:
        out, self.parts = b"".join(self.parts), []
        return out


def _schema(kind: Kind) -> pa.Schema:
    fields = [pa.field(c.name, c.type) for c in kind.columns]
    fields.append(pa.field("geometry", pa.binary()))
    geometry_type = {"positions": "Point", "trips": "LineString"}.get(kind.name, "Point")
    geo = {
        "version": "1.1.0",
        "primary_column": "geometry",
        "columns": {"geometry": {"encoding": "WKB", "geometry_types": [geometry_type]}},
    }
    return pa.schema(fields, metadata={b"geo": json.dumps(geo).encode()})


def _parquet(kind: Kind, chunks: Iterator[list[tuple[Any, ...]]]) -> Iterator[bytes]:
    """GeoParquet 1.1 (zstd): the geometry as WKB in OGC:CRS84, one row group a chunk."""
    schema = _schema(kind)
    sink = _Chunks()
    writer = pq.ParquetWriter(sink, schema, compression="zstd")
    names = [c.name for c in kind.columns]
    try:
        for chunk in chunks:
            if not chunk:
                continue
            columns: list[Sequence[Any]] = list(zip(*chunk, strict=True))
            arrays = [
                pa.array(values, type=field.type)
                for values, field in zip(columns, schema, strict=False)
            ]
            if kind.geometry is None:
                lon = arrays[names.index("lon")]
                lat = arrays[names.index("lat")]
                arrays.append(wkb_points(lon, lat))
            writer.write_table(pa.Table.from_arrays(arrays, schema=schema))
            yield sink.take()
    finally:
        writer.close()
    yield sink.take()
