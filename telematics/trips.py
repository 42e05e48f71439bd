"""Trips and stops, segmented incrementally from one vehicle's fixes: a pure state machine.

`step(state, point, thresholds)` is fed each vehicle's points in time order and returns the new
state and the trips and stops it closed. The state is a plain value that round-trips through
JSON (`to_dict` / `from_dict`), so the ingest worker can keep it in Redis across restarts.

A point is moving when its speed (or, without one, its displacement since the last point) says
so and the ignition is not off. A trip starts with movement and ends once the vehicle has stood
still for `min_stop_duration_s`; it ends at the moment it stopped. A trip shorter than
`min_trip_distance_m` is not a trip: the stop around it simply goes on. A reporting gap longer
than `split_gap_s` ends the open trip at its last point.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from typing import Any

_EARTH_RADIUS_M = 6_371_008.8


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * _EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def step_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Distance between two close fixes (equirectangular): within 0.01% of the haversine for
    the few hundred metres between fixes, at a fraction of its cost."""
    x = math.radians(lon2 - lon1) * math.cos(math.radians((lat1 + lat2) / 2))
    y = math.radians(lat2 - lat1)
    return _EARTH_RADIUS_M * math.sqrt(x * x + y * y)


@dataclass(frozen=True, slots=True)
class TrackPoint:
    t: float  # epoch seconds, UTC
    lat: float | None
    lon: float | None
    speed_kmh: float | None = None
    ignition: bool | None = None
    odometer_km: float | None = None

    @classmethod
    def at(
        cls,
        fix_time: datetime,
        lat: float | None,
        lon: float | None,
        speed_kmh: float | None = None,
        ignition: bool | None = None,
        odometer_km: float | None = None,
    ) -> TrackPoint:
        return cls(fix_time.timestamp(), lat, lon, speed_kmh, ignition, odometer_km)


@dataclass(frozen=True, slots=True)
class Thresholds:
    min_trip_distance_m: float = 200.0
    min_stop_duration_s: float = 180.0
    split_gap_s: float = 3600.0
    moving_speed_kmh: float = 5.0


@dataclass(frozen=True, slots=True)
class Trip:
    """A closed trip. Its line is not kept here: the track is in PostGIS already, so the worker
    draws it there (`ST_MakeLine` over the trip's fixes) and this state stays small."""

    start_at: datetime
    end_at: datetime
    start: tuple[float, float]
    end: tuple[float, float]
    distance_m: float
    duration_s: float
    max_speed_kmh: float | None
    avg_speed_kmh: float | None
    odometer_start_km: float | None
    odometer_end_km: float | None


@dataclass(frozen=True, slots=True)
class Stop:
    start_at: datetime
    end_at: datetime
    lat: float
    lon: float
    duration_s: float


Segment = Trip | Stop


@dataclass(slots=True)
class State:
    """Times are epoch seconds, positions [lat, lon] lists, so the state is JSON as it stands,
    and it has the same small size however long a trip runs."""

    last_t: float | None = None
    last_pos: list[float] | None = None
    last_odo: float | None = None
    # the open trip
    trip_t: float | None = None
    start_pos: list[float] | None = None
    distance_m: float = 0.0
    max_speed: float | None = None
    odo_start: float | None = None
    odo_end: float | None = None
    # standing still inside the trip since when, where, and how far the trip had come by then
    still_t: float | None = None
    still_pos: list[float] | None = None
    still_distance_m: float = 0.0
    still_odo: float | None = None
    # the open stop (between trips)
    stop_t: float | None = None
    stop_pos: list[float] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _STATE_FIELDS}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> State:
        return cls(**{k: v for k, v in data.items() if k in _STATE_FIELDS})


_STATE_FIELDS = tuple(f.name for f in fields(State))


def _dt(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def _close_trip(
    s: State,
    end_t: float,
    end_pos: list[float] | None,
    distance: float,
    odo_end: float | None,
    th: Thresholds,
    out: list[Segment],
) -> None:
    """End the open trip at `end_t`; report it (and the stop before it) if it was long enough."""
    start_pos = s.start_pos
    if (
        s.trip_t is not None
        and start_pos is not None
        and end_pos is not None
        and (distance >= th.min_trip_distance_m)
    ):
        if (
            s.stop_t is not None
            and s.stop_pos is not None
            and s.trip_t - s.stop_t >= th.min_stop_duration_s
        ):
            out.append(
                Stop(
                    _dt(s.stop_t), _dt(s.trip_t), s.stop_pos[0], s.stop_pos[1], s.trip_t - s.stop_t
                )
            )
        duration = max(end_t - s.trip_t, 0.0)
        out.append(
            Trip(
                start_at=_dt(s.trip_t),
                end_at=_dt(end_t),
                start=(start_pos[0], start_pos[1]),
                end=(end_pos[0], end_pos[1]),
                distance_m=distance,
                duration_s=duration,
                max_speed_kmh=s.max_speed,
                avg_speed_kmh=distance / duration * 3.6 if duration > 0 else None,
                odometer_start_km=s.odo_start,
                odometer_end_km=odo_end,
            )
        )
        s.stop_t, s.stop_pos = end_t, list(end_pos)
    elif s.stop_t is None:
        # Too short to be a trip: the vehicle has been standing since the trip began.
        s.stop_t, s.stop_pos = s.trip_t, start_pos or s.last_pos
    s.trip_t, s.start_pos, s.distance_m, s.max_speed = None, None, 0.0, None
    s.odo_start = s.odo_end = None
    s.still_t, s.still_pos, s.still_distance_m, s.still_odo = None, None, 0.0, None


def _close_open_trip(s: State, th: Thresholds, out: list[Segment]) -> None:
    """Close at the moment it stopped, if it had; else at its last fix."""
    if s.still_t is not None:
        _close_trip(s, s.still_t, s.still_pos, s.still_distance_m, s.still_odo, th, out)
    elif s.last_t is not None:
        _close_trip(s, s.last_t, s.last_pos, s.distance_m, s.odo_end, th, out)


def step(state: State | None, point: TrackPoint, th: Thresholds) -> tuple[State, list[Segment]]:
    """The state after `point`. The state passed in is taken over (updated in place and
    returned); keep a `to_dict()` snapshot where an earlier state must survive."""
    s = State() if state is None else state
    out: list[Segment] = []
    t = point.t
    if s.last_t is not None and t <= s.last_t:
        return s, out  # a re-sent or older point: already accounted for
    gap = None if s.last_t is None else t - s.last_t
    if gap is not None and gap > th.split_gap_s and s.trip_t is not None:
        _close_open_trip(s, th, out)
    pos = [point.lat, point.lon] if point.lat is not None and point.lon is not None else None
    moved_m = 0.0
    if pos is not None and s.last_pos is not None:
        moved_m = step_m(s.last_pos[0], s.last_pos[1], pos[0], pos[1])
    if point.ignition is False:
        moving = False
    elif point.speed_kmh is not None:
        moving = point.speed_kmh > th.moving_speed_kmh
    else:
        moving = gap is not None and gap > 0 and moved_m / gap * 3.6 > th.moving_speed_kmh
    if s.stop_t is None and s.trip_t is None:
        s.stop_t, s.stop_pos = t, pos or s.last_pos
    if moving and s.trip_t is None and (pos is not None or s.last_pos is not None):
        recent = s.last_t is not None and gap is not None and gap <= th.split_gap_s
        s.trip_t = s.last_t if recent else t
        s.start_pos = s.last_pos or pos
        s.distance_m, s.max_speed = 0.0, None
        # The trip starts where the vehicle last stood, and so does its odometer reading.
        s.odo_start = s.odo_end = s.last_odo if s.last_odo is not None else point.odometer_km
        if s.start_pos is pos:
            moved_m = 0.0
    if s.trip_t is not None:
        s.distance_m += moved_m
        if point.speed_kmh is not None and moving:
            s.max_speed = max(s.max_speed or 0.0, point.speed_kmh)
        if point.odometer_km is not None:
            if s.odo_start is None:
                s.odo_start = point.odometer_km
            s.odo_end = point.odometer_km
        if moving:
            s.still_t = None
        elif s.still_t is None:
            s.still_t, s.still_pos = t, pos or s.last_pos
            s.still_distance_m, s.still_odo = s.distance_m, s.odo_end
        elif t - s.still_t >= th.min_stop_duration_s:
            _close_trip(s, s.still_t, s.still_pos, s.still_distance_m, s.still_odo, th, out)
    if pos is not None:
        s.last_pos = pos
    if point.odometer_km is not None:
        s.last_odo = point.odometer_km
    s.last_t = t
    return s, out


def flush(state: State, th: Thresholds, now: datetime) -> tuple[State, list[Segment]]:
    """Close a trip whose vehicle stopped reporting more than `split_gap_s` ago."""
    s = replace(state)
    out: list[Segment] = []
    if (
        s.trip_t is not None
        and s.last_t is not None
        and now.timestamp() - s.last_t > th.split_gap_s
    ):
        _close_open_trip(s, th, out)
    return s, out
