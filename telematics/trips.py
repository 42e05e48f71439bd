"""Trips and stops, segmented incrementally from one vehicle's fixes: a pure state machine.

`step(state, point, thresholds)` is fed each vehicle's points in time order and returns the new
state and the trips and stops it closed. The state is a plain value that round-trips through
JSON (`to_dict` / `from_dict`), so the ingest worker can keep it in Redis across restarts.

A point is moving when its speed (or, without one, its displacement since the last point) says
so and the ignition is not off. A trip starts with movement and ends once the vehicle has stood
still for `min_stop_duration_s`; it ends at the moment it stopped. A trip shorter than
`min_trip_distance_m` is not a trip: the stop around it simply goes on. A reporting gap longer
than `split_gap_s` ends the open trip at its last point.

`advance(states, starts, columns..., thresholds)` does the same for a batch of many vehicles held
in numpy columns, as the ingest worker reads them: the vehicles whose fixes only carry an open
trip on, or only prolong a stop, are worked out for the whole batch at once; the others are fed
to `step` fix by fix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np

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


# How `advance` handles a vehicle's fixes in a batch.
_STEP = 0  # fix by fix, with `step`
_KEEP = 1  # nothing to do: no fixes, or only re-sent ones
_CRUISE = 2  # an open trip that goes on: every new fix moving, no gap above `split_gap_s`
_STAND = 3  # a stop that goes on: no new fix moving

# Where numpy's figure for the speed from displacement is this close to the threshold, the moving
# decision is taken again with `step_m` itself: numpy's cos may differ from math's in the last bit.
_NEAR_THRESHOLD_REL = 1e-9


def _step_m_np(
    lat1: np.ndarray, lon1: np.ndarray, lat2: np.ndarray, lon2: np.ndarray
) -> np.ndarray:
    """`step_m` over arrays, in the same order of operations."""
    x = np.radians(lon2 - lon1) * np.cos(np.radians((lat1 + lat2) / 2))
    y = np.radians(lat2 - lat1)
    return _EARTH_RADIUS_M * np.sqrt(x * x + y * y)


_NO_STATE = State()
_NO_POSITION = (math.nan, math.nan)


def _state_columns(states: list[State | None]) -> tuple[np.ndarray, ...]:
    """What the batch needs of the states, as columns: the handling each allows, its last time
    and position, and the distance of its open trip (NaN for None).

    Gathered a field at a time: numpy reads a list of floats and Nones much faster than rows."""
    present = [_NO_STATE if s is None else s for s in states]
    last_t = np.array([s.last_t for s in present], dtype=np.float64)
    trip_t = np.array([s.trip_t for s in present], dtype=np.float64)
    stop_t = np.array([s.stop_t for s in present], dtype=np.float64)
    distance = np.array([s.distance_m for s in present], dtype=np.float64)
    positions = [s.last_pos or _NO_POSITION for s in present]
    lat = np.array([p[0] for p in positions], dtype=np.float64)
    lon = np.array([p[1] for p in positions], dtype=np.float64)
    mode = np.full(len(states), _STEP, dtype=np.int8)
    known = ~np.isnan(last_t)
    mode[known & ~np.isnan(stop_t)] = _STAND
    mode[known & ~np.isnan(trip_t)] = _CRUISE
    return mode, last_t, lat, lon, distance


def _step_fixes(
    state: State | None,
    columns: list[list[Any]],
    th: Thresholds,
    group: int,
    out: list[tuple[int, Segment]],
) -> State:
    """The reference: `step` on each fix, the columns' NaN and -1 read as None."""
    for t, lat, lon, speed, ignition, odometer in zip(*columns, strict=True):
        point = TrackPoint(
            t,
            None if lat != lat else lat,
            None if lon != lon else lon,
            None if speed != speed else speed,
            None if ignition < 0 else ignition > 0,
            None if odometer != odometer else odometer,
        )
        state, closed = step(state, point, th)
        out.extend((group, segment) for segment in closed)
    return State() if state is None else state


def advance(
    states: list[State | None],
    starts: np.ndarray,
    t: np.ndarray,
    lat: np.ndarray,
    lon: np.ndarray,
    speed: np.ndarray,
    ignition: np.ndarray,
    odometer: np.ndarray,
    th: Thresholds,
) -> tuple[list[State], list[tuple[int, Segment]]]:
    """Each group's state after its fixes and the segments they closed, (group index, segment)
    in group order then time order: the same as calling `step` on each fix in turn.

    Group k is one vehicle: its state before the batch is `states[k]` (None for a new vehicle;
    taken over and updated in place, as `step` does) and its fixes are `[starts[k], starts[k+1])`
    of the columns, in time order. Columns: `t` epoch seconds, `lat`/`lon` degrees, `speed` km/h,
    `odometer` km, all float64 with NaN for none; `ignition` int8, -1 unknown, 0 off, 1 on.
    A group with no fixes and no state comes back as `State()`, which `step` takes as it takes None.

    A fleet reporting live mostly carries on doing what it did: a vehicle in an open trip keeps
    moving, a parked one keeps standing. For those the batch is worked out with numpy at once
    (distance, top speed, odometer and last fix of a trip; last fix of a stop); every other
    vehicle (a trip starting or ending, a long gap, a new vehicle) goes through `step` fix by fix.
    The trip distance is summed in the same order as `step` sums it, but numpy's cos may differ
    from math's in the last bit, so the distance may too; every decision is the same as `step`'s.
    """
    starts = np.asarray(starts, dtype=np.int64)
    t = np.asarray(t, dtype=np.float64)
    lat, lon = np.asarray(lat, dtype=np.float64), np.asarray(lon, dtype=np.float64)
    speed = np.asarray(speed, dtype=np.float64)
    ignition = np.asarray(ignition, dtype=np.int8)
    odometer = np.asarray(odometer, dtype=np.float64)
    n, g = len(t), len(starts) - 1
    if g < 0 or len(states) != g:
        raise ValueError("starts must hold one more entry than states")
    if any(len(c) != n for c in (lat, lon, speed, ignition, odometer)):
        raise ValueError("the columns must have the same length")
    counts = np.diff(starts)
    if starts[0] != 0 or starts[-1] != n or (counts < 0).any():
        raise ValueError("starts must run from 0 to the number of fixes without going back")
    if n == 0:
        return [State() if s is None else s for s in states], []

    plan = _plan(states, starts, counts, t, lat, lon, speed, ignition, odometer, th)

    new_states: list[State] = []
    out: list[tuple[int, Segment]] = []
    # NaN in the plan: nothing of that kind among the group's fixes (x == x is False for NaN).
    for k, (s, how, last_t, last_lat, last_lon, last_odo, first_odo, distance, top) in enumerate(
        zip(states, *plan, strict=True)
    ):
        if how == _CRUISE:
            assert s is not None
            s.distance_m = distance
            if top == top:
                s.max_speed = max(s.max_speed or 0.0, top)
            if last_odo == last_odo:
                if s.odo_start is None:
                    s.odo_start = first_odo
                s.odo_end = s.last_odo = last_odo
            s.still_t = None
            if last_lat == last_lat:
                s.last_pos = [last_lat, last_lon]
            s.last_t = last_t
        elif how == _STAND:
            assert s is not None
            if last_lat == last_lat:
                s.last_pos = [last_lat, last_lon]
            if last_odo == last_odo:
                s.last_odo = last_odo
            s.last_t = last_t
        elif how == _STEP:
            a, b = int(starts[k]), int(starts[k + 1])
            fixes = [c[a:b].tolist() for c in (t, lat, lon, speed, ignition, odometer)]
            s = _step_fixes(s, fixes, th, k, out)
        assert s is not None  # _KEEP: a state that stays as it was
        new_states.append(s)
    return new_states, out


def _plan(
    states: list[State | None],
    starts: np.ndarray,
    counts: np.ndarray,
    t: np.ndarray,
    lat: np.ndarray,
    lon: np.ndarray,
    speed: np.ndarray,
    ignition: np.ndarray,
    odometer: np.ndarray,
    th: Thresholds,
) -> list[list[Any]]:
    """How each group is to be handled and, per group as Python lists, what the fast handlings
    set: the new last time, last position and odometer, first odometer, trip distance and top
    speed (NaN where a group has none).

    A fix that `step` would skip (not later than the vehicle's last) changes nothing, so it does
    not count; of the others, each one's gap and displacement are from the vehicle's last fix and
    last position before it, the state's for the first."""
    g, n = len(counts), len(t)
    mode, state_t, state_lat, state_lon, state_distance = _state_columns(states)
    group = np.repeat(np.arange(g), counts)
    index = np.arange(n)
    begin = starts[:-1][group]  # each fix's group's first fix
    first = index == begin

    before = np.concatenate(([np.nan], t[:-1]))  # the fix before, NaN for the first
    group_t = state_t[group]
    prev_t = np.where(first, group_t, np.fmax(before, group_t))
    # Out of order or without a time: not for the fast handlings, which assume neither.
    odd = np.isnan(t) | (~first & (t < before))
    new = t > prev_t
    gap = t - prev_t

    with_pos = new & ~np.isnan(lat) & ~np.isnan(lon)
    last_pos_ix = np.maximum.accumulate(np.where(with_pos, index, -1))
    prev_ix = np.concatenate(([-1], last_pos_ix[:-1]))
    from_state = prev_ix < begin
    prev_lat = np.where(from_state, state_lat[group], lat[prev_ix])
    prev_lon = np.where(from_state, state_lon[group], lon[prev_ix])
    measured = with_pos & ~np.isnan(prev_lat)
    th_kmh = th.moving_speed_kmh
    with np.errstate(divide="ignore", invalid="ignore"):
        moved = np.where(measured, _step_m_np(prev_lat, prev_lon, lat, lon), 0.0)
        figure = moved / gap * 3.6
    with_speed = ~np.isnan(speed)
    moving = (ignition != 0) & np.where(with_speed, speed > th_kmh, (gap > 0) & (figure > th_kmh))
    near = (
        new
        & (ignition != 0)
        & ~with_speed
        & (np.abs(figure - th_kmh) <= _NEAR_THRESHOLD_REL * abs(th_kmh) + 1e-12)
    )
    for i in np.flatnonzero(near).tolist():
        m = 0.0
        if measured[i]:
            m = step_m(float(prev_lat[i]), float(prev_lon[i]), float(lat[i]), float(lon[i]))
        moved[i] = m
        moving[i] = m / float(gap[i]) * 3.6 > th_kmh

    filled = counts > 0
    first_ix, end_ix = starts[:-1][filled], starts[1:][filled]

    def anywhere(mask: np.ndarray) -> np.ndarray:
        found = np.zeros(g, dtype=bool)
        found[group[mask]] = True
        return found

    def last_where(mask: np.ndarray) -> np.ndarray:
        """Per group, the index of its last fix in `mask`, or -1."""
        found = np.full(g, -1, dtype=np.int64)
        latest = np.maximum.accumulate(np.where(mask, index, -1))[end_ix - 1]
        found[filled] = np.where(latest >= first_ix, latest, -1)
        return found

    def first_where(mask: np.ndarray) -> np.ndarray:
        found = np.full(g, -1, dtype=np.int64)
        earliest = np.minimum.accumulate(np.where(mask, index, n)[::-1])[::-1][first_ix]
        found[filled] = np.where(earliest < end_ix, earliest, -1)
        return found

    def pick(values: np.ndarray, ix: np.ndarray) -> np.ndarray:
        return np.where(ix >= 0, values[ix], np.nan)

    kind = np.full(g, _STEP, dtype=np.int8)
    kind[(mode == _CRUISE) & ~anywhere(new & (~moving | (gap > th.split_gap_s)))] = _CRUISE
    kind[(mode == _STAND) & ~anywhere(new & moving)] = _STAND
    kind[(mode != _STEP) & ~anywhere(new)] = _KEEP
    kind[anywhere(odd)] = _STEP

    # Started from the trip's distance, so the sum runs in the same order as `step`'s.
    moved[first_ix] += state_distance[filled]
    distance = np.bincount(group, weights=moved, minlength=g)
    sped = new & with_speed
    top = np.full(g, np.nan)
    top[filled] = np.maximum.reduceat(np.where(sped, speed, -np.inf), first_ix)
    top[last_where(sped) < 0] = np.nan

    with_odo = new & ~np.isnan(odometer)
    last_pos = last_where(with_pos)
    columns = [
        kind,
        pick(t, last_where(new)),
        pick(lat, last_pos),
        pick(lon, last_pos),
        pick(odometer, last_where(with_odo)),
        pick(odometer, first_where(with_odo)),
        distance,
        top,
    ]
    return [c.tolist() for c in columns]
