"""Track queries: a vehicle's positions and trips, the live picture, unknown devices, counters."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import Field
from shapely import LineString
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fleet import channels, registry
from fleet.auth import Actor, is_root_admin, require, units_in_scope
from fleet.errors import Conflict, Forbidden, Invalid, NotAuthenticated, StoreUnavailable
from fleet.models import Device, Vehicle
from fleet.paging import Listing
from fleet.redis_client import RedisClient
from fleet.schemas import Strict
from telematics import stream, tracks
from telematics.fix import Fix, check_fix
from telematics.models import Trip, UnknownDevice
from telematics.settings import TelematicsSettings

MAX_RANGE = timedelta(days=31)
MAX_POINTS = 200_000


def _check_range(start: datetime, end: datetime) -> None:
    if start.tzinfo is None or end.tzinfo is None:
        raise Invalid("start and end need a time zone (e.g. 2026-11-22T08:00:00Z)", field="start")
    if end <= start:
        raise Invalid("end must be after start", field="end")
    if end - start > MAX_RANGE:
        raise Invalid(f"at most {MAX_RANGE.days} days per request", field="end")


def positions(
    *,
    session: Session,
    actor: Actor,
    vehicle_id: int,
    start: datetime,
    end: datetime,
    simplify_m: float | None = None,
) -> dict[str, Any]:
    """The fixes of one vehicle as a GeoJSON FeatureCollection of points, in time order.

    With `simplify_m`, points that a Douglas-Peucker pass at that tolerance (metres) would drop
    are left out; fixes without a valid position are always left out of a simplified track."""
    registry.get_vehicle(session=session, actor=actor, vehicle_id=vehicle_id)
    _check_range(start, end)
    rows: list[Any] = tracks.fixes(session, vehicle_id, start, end, limit=MAX_POINTS + 1)
    truncated = len(rows) > MAX_POINTS
    rows = list(rows[:MAX_POINTS])
    if simplify_m is not None:
        rows = _simplified(rows, simplify_m)
    features = [
        {
            "type": "Feature",
            "geometry": None if r[1] is None else {"type": "Point", "coordinates": [r[1], r[2]]},
            "properties": {
                "fix_time": stream.iso_utc(r[0]),
                "speed_kmh": r[3],
                "heading_deg": r[4],
                "altitude_m": r[5],
                "ignition": r[6],
                "odometer_km": r[7],
                "fuel_l": r[8],
                "alarm_bits": r[9] & 0xFFFFFFFF,
                "status_bits": r[10] & 0xFFFFFFFF,
                "attributes": r[11] or {},
            },
        }
        for r in rows
    ]
    return {
        "type": "FeatureCollection",
        "features": features,
        "vehicle_id": vehicle_id,
        "truncated": truncated,
    }


def _simplified(rows: list[Any], tolerance_m: float) -> list[Any]:
    located = [r for r in rows if r[1] is not None]
    if len(located) < 3:
        return located
    # Degrees of latitude are ~111 km; good enough for a display tolerance.
    line = LineString([(r[1], r[2]) for r in located]).simplify(
        tolerance_m / 111_000, preserve_topology=False
    )
    kept = set(line.coords)
    last = len(located) - 1
    return [r for i, r in enumerate(located) if i in (0, last) or (r[1], r[2]) in kept]


def trips(
    *, session: Session, actor: Actor, vehicle_id: int, start: datetime, end: datetime
) -> list[dict[str, Any]]:
    registry.get_vehicle(session=session, actor=actor, vehicle_id=vehicle_id)
    _check_range(start, end)
    rows = session.execute(
        select(Trip, func.ST_AsGeoJSON(Trip.path))
        .where(Trip.vehicle_id == vehicle_id, Trip.start_at < end, Trip.end_at > start)
        .order_by(Trip.start_at)
    ).all()
    return [
        {
            "id": trip.id,
            "vehicle_id": trip.vehicle_id,
            "start_at": stream.iso_utc(trip.start_at),
            "end_at": stream.iso_utc(trip.end_at),
            "distance_m": trip.distance_m,
            "duration_s": trip.duration_s,
            "max_speed_kmh": trip.max_speed_kmh,
            "avg_speed_kmh": trip.avg_speed_kmh,
            "odometer_start_km": trip.odometer_start_km,
            "odometer_end_km": trip.odometer_end_km,
            "odometer_distance_km": (
                trip.odometer_end_km - trip.odometer_start_km
                if trip.odometer_end_km is not None and trip.odometer_start_km is not None
                else None
            ),
            "path": json.loads(path),
        }
        for trip, path in rows
    ]


def scope_unit_ids(*, session: Session, actor: Actor) -> frozenset[int]:
    return frozenset(session.scalars(units_in_scope(actor)))


def live(*, session: Session, redis: RedisClient, actor: Actor) -> list[dict[str, Any]]:
    """The latest position of every vehicle in the caller's scope, with plate and status."""
    require(actor, "vehicle", "read")
    vehicles = session.execute(
        select(Vehicle.id, Vehicle.plate, Vehicle.status, Vehicle.unit_id).where(
            Vehicle.unit_id.in_(units_in_scope(actor))
        )
    ).all()
    if not vehicles:
        return []
    raw = redis.hmget(stream.LAST_POSITIONS, [v.id for v in vehicles])
    items = []
    for vehicle, last in zip(vehicles, raw, strict=True):
        item: dict[str, Any] = {
            "vehicle_id": vehicle.id,
            "plate": vehicle.plate,
            "status": vehicle.status,
            "unit_id": vehicle.unit_id,
            "position": None,
        }
        if last:
            item["position"] = json.loads(last)
        items.append(item)
    return items


def last_positions(*, redis: RedisClient, vehicle_ids: list[int]) -> dict[int, dict[str, Any]]:
    """Each vehicle's latest fix as the worker left it in Redis (vehicles never heard: absent)."""
    if not vehicle_ids:
        return {}
    raw = redis.hmget(stream.LAST_POSITIONS, vehicle_ids)
    return {v: json.loads(r) for v, r in zip(vehicle_ids, raw, strict=True) if r}


def snapshot_for_units(redis: RedisClient, unit_ids: frozenset[int]) -> list[dict[str, Any]]:
    return [
        item
        for item in (json.loads(v) for v in redis.hvals(stream.LAST_POSITIONS))
        if item.get("unit_id") in unit_ids
    ]


def list_unknown_devices(
    *, session: Session, actor: Actor, listing: Listing
) -> tuple[Sequence[UnknownDevice], int]:
    if not is_root_admin(actor):
        raise Forbidden("only administrators of a root unit see the gateways' unknown devices")
    return listing.page(session, select(UnknownDevice).order_by(UnknownDevice.last_seen_at.desc()))


def counters(*, redis: RedisClient, actor: Actor) -> dict[str, int]:
    if not is_root_admin(actor):
        raise Forbidden("only administrators of a root unit read the ingest counters")
    raw: Any = redis.hgetall(stream.COUNTERS)
    return {k.decode(): int(v) for k, v in raw.items()}


class TelemetryFix(Strict):
    """One fix of the JSON batch API (units in the names, as everywhere in Fleet)."""

    fix_time: datetime
    lat: float | None = Field(None, ge=-90, le=90)
    lon: float | None = Field(None, ge=-180, le=180)
    speed_kmh: float | None = Field(None, ge=0)
    heading_deg: float | None = Field(None, ge=0, lt=360)
    altitude_m: float | None = None
    ignition: bool | None = None
    odometer_km: float | None = Field(None, ge=0)
    fuel_l: float | None = Field(None, ge=0)
    attributes: dict[str, Any] = Field(default_factory=dict)


class TelemetryBatch(Strict):
    fixes: list[TelemetryFix] = Field(min_length=1, max_length=1000)


def accept_batch(
    *,
    session: Session,
    redis: RedisClient,
    settings: TelematicsSettings,
    token: str,
    batch: TelemetryBatch,
) -> dict[str, Any]:
    """Validate and append an integration's fixes to the stream; answer what was accepted and
    why anything was dropped. The reply comes only once the accepted fixes are in Redis."""
    device = session.scalar(
        select(Device).where(Device.token_digest == registry.device_token_digest(token))
    )
    if device is None or not device.enabled:
        raise NotAuthenticated("unknown or disabled device token")
    if device.vehicle_id is None:
        raise Conflict("this device is not fitted to a vehicle")
    vehicle = session.get(Vehicle, device.vehicle_id)
    assert vehicle is not None
    target = stream.Target(device_id=device.id, vehicle_id=vehicle.id, unit_id=vehicle.unit_id)
    now = datetime.now(UTC)
    received_ms = stream.now_ms()
    rows: list[list[Any]] = []
    dropped: list[dict[str, Any]] = []
    for index, item in enumerate(batch.fixes):
        if item.fix_time.tzinfo is None:
            dropped.append({"index": index, "reason": "fix_time needs a time zone"})
            continue
        fix = Fix(
            device_identifier=device.identifier,
            fix_time=item.fix_time.astimezone(UTC),
            lat=item.lat,
            lon=item.lon,
            speed_kmh=item.speed_kmh,
            heading_deg=item.heading_deg,
            altitude_m=item.altitude_m,
            ignition=item.ignition,
            odometer_km=item.odometer_km,
            fuel_l=item.fuel_l,
            attributes=item.attributes,
            valid=item.lat is not None and item.lon is not None,
        )
        reason = check_fix(
            fix,
            now=now,
            max_future_s=settings.max_future_s,
            max_past_s=settings.max_past_days * 86_400,
            max_speed_kmh=settings.max_speed_kmh,
        )
        if reason is not None:
            dropped.append({"index": index, "reason": reason})
            continue
        rows.append(stream.to_row(fix, target, received_ms))
    with redis.pipeline(transaction=False) as pipe:
        for shard in range(settings.stream_shards):
            pipe.xlen(stream.stream_key(shard))
        backlog = sum(pipe.execute())
    if backlog > settings.stream_max_backlog:
        raise StoreUnavailable("the ingest backlog is full; send again later")
    if rows:
        redis.xadd(
            stream.stream_key(stream.shard_of(target.vehicle_id, settings.stream_shards)),
            stream.entry(rows),  # type: ignore[arg-type]
        )
        live = stream.live_message(rows)
        if live is not None:
            redis.publish(channels.LIVE, live)
    with redis.pipeline(transaction=False) as pipe:
        pipe.hincrby(stream.COUNTERS, "received_api", len(rows))
        for drop in dropped:
            pipe.hincrby(stream.COUNTERS, f"dropped_{drop['reason'].split()[0]}", 1)
        pipe.execute()
    return {"accepted": len(rows), "dropped": dropped}
