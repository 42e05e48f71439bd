"""The OsmAnd HTTP protocol (Traccar Client apps and many devices): query/form and JSON forms.

Pure: parameters or a body in, `Fix`es out, `OsmandError` (answered with 400) for anything that
cannot be a fix. Every timestamp and speed variant the apps send is understood.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from telematics.fix import Fix

SPEED_TO_KMH = {"kn": 1.852, "kmh": 1.0, "mps": 3.6, "mph": 1.609344}
_KNOWN = {
    "id",
    "deviceid",
    "lat",
    "lon",
    "location",
    "timestamp",
    "speed",
    "bearing",
    "heading",
    "altitude",
    "ignition",
    "odometer",
    "fuel",
}


class OsmandError(ValueError):
    """The request cannot be a fix; the message says why (sent back with 400)."""


def parse_time(value: str | float | int, *, now: datetime) -> datetime:
    """Unix seconds, Unix milliseconds, ISO-8601, or `yyyy-MM-dd HH:mm:ss` (UTC)."""
    number = _as_number(value)
    if number is not None:
        if not math.isfinite(number):
            raise OsmandError(f"bad timestamp {value!r}")
        # Milliseconds since 1970 passed 1e12 in 2001; seconds will not reach it for millennia.
        seconds = number / 1000 if number > 1e11 else number
        try:
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):
            raise OsmandError(f"bad timestamp {value!r}") from None
    text = str(value).strip()
    if not text:
        return now
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace(" ", "T", 1))
    except ValueError:
        raise OsmandError(f"bad timestamp {value!r}") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _as_number(value: str | float | int) -> float | None:
    """The value as a number, if it is one (a number, or the text of one)."""
    try:
        return float(value)
    except ValueError:
        return None


def _number(value: Any, name: str) -> float | None:
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise OsmandError(f"{name} is not a number: {value!r}") from None
    if not math.isfinite(number):
        raise OsmandError(f"{name} is not a finite number")
    return number


def _flag(value: Any) -> bool | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("1", "true", "on", "yes")


def _attribute(value: str) -> object:
    number = _as_number(value)
    if number is not None and math.isfinite(number):
        return int(number) if number.is_integer() and "." not in value else number
    return value


def decode_query(
    params: Mapping[str, str] | Iterable[tuple[str, str]], *, now: datetime, speed_unit: str = "kn"
) -> list[Fix]:
    """The query string or form of one request. `cell`/`wifi` may repeat, and a request may carry
    them with no coordinates: that is a fix without a valid position."""
    pairs = list(params.items()) if isinstance(params, Mapping) else list(params)
    values: dict[str, str] = {}
    repeated: dict[str, list[str]] = {}
    for key, value in pairs:
        if key in ("cell", "wifi"):
            repeated.setdefault(key, []).append(value)
        else:
            values[key] = value
    attributes: dict[str, object] = dict(repeated)
    identifier = (values.get("id") or values.get("deviceid") or "").strip()
    if not identifier:
        raise OsmandError("missing id (device identifier)")
    lat = _number(values.get("lat"), "lat")
    lon = _number(values.get("lon"), "lon")
    if "location" in values and (lat is None or lon is None):
        parts = values["location"].split(",")
        if len(parts) != 2:
            raise OsmandError("location must be lat,lon")
        lat, lon = _number(parts[0], "lat"), _number(parts[1], "lon")
    if (lat is None) != (lon is None):
        raise OsmandError("lat and lon come together")
    if lat is not None and lon is not None and not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise OsmandError(f"impossible coordinates {lat},{lon}")
    speed = _number(values.get("speed"), "speed")
    if speed_unit not in SPEED_TO_KMH:
        raise OsmandError(f"unknown speed unit {speed_unit}")
    fix_time = parse_time(values["timestamp"], now=now) if "timestamp" in values else now
    for key, value in values.items():
        if key not in _KNOWN:
            attributes[key] = _attribute(value)
    odometer = _number(values.get("odometer"), "odometer")
    return [
        Fix(
            device_identifier=identifier,
            fix_time=fix_time,
            lat=lat,
            lon=lon,
            speed_kmh=None if speed is None or speed < 0 else speed * SPEED_TO_KMH[speed_unit],
            heading_deg=_number(values.get("bearing", values.get("heading")), "bearing"),
            altitude_m=_number(values.get("altitude"), "altitude"),
            ignition=_flag(values.get("ignition")),
            odometer_km=None if odometer is None else odometer / 1000,
            fuel_l=_number(values.get("fuel"), "fuel"),
            attributes=attributes,
            valid=lat is not None,
        )
    ]


def decode_json(body: bytes, *, now: datetime, speed_unit: str = "kn") -> list[Fix]:
    """The background-geolocation JSON the newer apps send: one location or a list of them."""
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise OsmandError("body is not JSON") from None
    if not isinstance(document, dict):
        raise OsmandError("JSON body must be an object")
    identifier = str(document.get("device_id") or document.get("id") or "").strip()
    if not identifier:
        raise OsmandError("missing device_id")
    locations = document.get("location", document.get("locations"))
    if isinstance(locations, dict):
        locations = [locations]
    if not isinstance(locations, list) or not locations:
        raise OsmandError("missing location")
    return [_json_location(identifier, item, now) for item in locations]


def _json_location(identifier: str, item: Any, now: datetime) -> Fix:
    if not isinstance(item, dict):
        raise OsmandError("each location must be an object")
    coords = item.get("coords")
    if not isinstance(coords, dict):
        raise OsmandError("location without coords")
    lat = _number(coords.get("latitude"), "latitude")
    lon = _number(coords.get("longitude"), "longitude")
    if lat is None or lon is None:
        raise OsmandError("coords need latitude and longitude")
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise OsmandError(f"impossible coordinates {lat},{lon}")
    speed = _number(coords.get("speed"), "speed")
    heading = _number(coords.get("heading"), "heading")
    odometer = _number(item.get("odometer"), "odometer")
    attributes: dict[str, object] = {}
    for key in ("accuracy", "altitude_accuracy", "speed_accuracy", "heading_accuracy"):
        if coords.get(key) is not None:
            attributes[key] = coords[key]
    battery = item.get("battery")
    if isinstance(battery, dict):
        if battery.get("level") is not None:
            level = _number(battery["level"], "battery level")
            attributes["batteryLevel"] = None if level is None else round(level * 100)
        if battery.get("is_charging") is not None:
            attributes["charge"] = bool(battery["is_charging"])
    for key in ("is_moving", "event"):
        if item.get(key) is not None:
            attributes["motion" if key == "is_moving" else key] = item[key]
    activity = item.get("activity")
    if isinstance(activity, dict) and activity.get("type"):
        attributes["activity"] = activity["type"]
    extras = item.get("extras")
    ignition = None
    if isinstance(extras, dict):
        ignition = _flag(extras.get("ignition"))
        attributes.update({k: v for k, v in extras.items() if k != "ignition"})
    return Fix(
        device_identifier=identifier,
        fix_time=parse_time(item["timestamp"], now=now) if item.get("timestamp") else now,
        lat=lat,
        lon=lon,
        speed_kmh=None if speed is None or speed < 0 else speed * 3.6,
        heading_deg=None if heading is None or heading < 0 else heading,
        altitude_m=_number(coords.get("altitude"), "altitude"),
        ignition=ignition,
        odometer_km=None if odometer is None else odometer / 1000,
        attributes=attributes,
        valid=True,
    )
