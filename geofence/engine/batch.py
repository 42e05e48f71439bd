"""A batch of fixes as columns, and the kinematics of every fix worked out from them (the
pipeline's step 1 and part of step 3): both of the engine's loops start from these."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import chain, repeat
from operator import is_not, itemgetter
from typing import Any

import numpy as np

from geofence.calendar import DAY, LocalClock, WorkingCalendar
from geofence.engine.base import EARTH_RADIUS_M, Batch, Kinematics, Outcome, new_state
from geofence.fences import VehicleInfo
from geofence.permits import PermitSource
from geofence.rules.base import Fix, Thresholds

NO_POSITION = (np.nan, np.nan)
STATE_T, STATE_POS = itemgetter("t"), itemgetter("pos")


def fix_columns(flat: Sequence[Fix]) -> np.ndarray:
    """The fields of `flat` as floats, a row per fix, None as NaN. `fromiter` is the quicker
    of the two but refuses None, which only some fixes carry (no position, no speed)."""
    width = len(Fix._fields)
    try:
        found = np.fromiter(chain.from_iterable(flat), float, width * len(flat))
    except (TypeError, ValueError):
        found = np.array(list(chain.from_iterable(flat)), dtype=float)
    return found.reshape(-1, width)


def read(
    permits: PermitSource,
    tracks: Mapping[int, Sequence[Fix]],
    states: Mapping[int, dict[str, Any]],
    vehicles: Mapping[int, VehicleInfo],
    outcome: Outcome,
    given: np.ndarray | None = None,
) -> Batch | None:
    """The fixes to evaluate (counting the late and the unknown in `outcome`), as columns.
    Worked out for all vehicles at once: a live batch holds a fix or two of thousands."""
    vehicle_ids = list(tracks)
    held = list(tracks.values())
    infos = list(map(vehicles.get, vehicle_ids))
    before = [s or new_state() for s in map(states.get, vehicle_ids)]
    sizes = np.fromiter(map(len, held), np.int64, len(held))
    flat: list[Fix] = list(chain.from_iterable(held))
    if not flat:
        return None
    # (t, lat, lon, speed, ignition, alarm bits) per fix, None becoming NaN
    if given is None:
        given = fix_columns(flat)
    elif given.shape != (len(flat), len(Fix._fields)):
        raise ValueError(f"columns of shape {given.shape} for {len(flat)} fixes")
    columns = given.T.copy()
    state_t = np.array(list(map(STATE_T, before)), dtype=float)
    slot = np.repeat(np.arange(len(held)), sizes)
    starts = np.concatenate(([0], np.cumsum(sizes)))
    t = columns[0]
    known = np.fromiter(map(is_not, infos, repeat(None)), bool, len(infos))
    # In time order, so when a vehicle's first fix is newer than its state all are (the
    # usual case); when it is not, its fixes not newer are late.
    stale = np.zeros(len(held), dtype=bool)
    shown = sizes > 0
    stale[shown] = t[starts[:-1][shown]] <= state_t[shown]
    unknown = ~known[slot]
    late = stale[slot] & (t <= state_t[slot]) & ~unknown
    outcome.unknown_vehicle += int(unknown.sum())
    outcome.late += int(late.sum())
    fresh = ~(unknown | late)
    if not fresh.all() or not shown.all():
        index = np.flatnonzero(fresh)
        if not len(index):
            return None
        flat = [flat[i] for i in index.tolist()]
        columns, slot = columns[:, index], slot[index]
        counts = np.bincount(slot, minlength=len(held))
        kept = np.flatnonzero(counts).tolist()
        vehicle_ids = [vehicle_ids[k] for k in kept]
        infos = [infos[k] for k in kept]
        before = [before[k] for k in kept]
        state_t = state_t[kept]
        sizes = counts[kept]
        slot = np.repeat(np.arange(len(kept)), sizes)
        starts = np.concatenate(([0], np.cumsum(sizes)))
    t, lat, lon, speed, ignition, alarm = columns
    return Batch(
        vehicle_ids=vehicle_ids,
        vehicles=infos,  # type: ignore[arg-type]  # the unknown are left out above
        before=before,
        fixes=flat,
        starts=starts.tolist(),
        first=starts[:-1],
        slot=slot,
        t=t,
        lat=lat,
        lon=lon,
        speed=speed,
        ignition_off=ignition == 0,
        alarm=alarm.astype(np.int64),
        state_t=state_t,
        status_now=status_now(infos, slot, t),  # type: ignore[arg-type]
        permits=permits.permits(vehicle_ids, float(t.min()), float(t.max())),
    )


def status_now(vehicles: Sequence[VehicleInfo], slot: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Per fix, whether it comes at or after its vehicle's `status_since` (None: always). The
    one place either loop learns which status a fix is judged by: the vehicle's status from
    then on, `rules.base.ACTIVE` before."""
    since = [v.status_since for v in vehicles]
    if not any(s is not None for s in since):
        return np.ones(len(t), dtype=bool)
    return t >= np.array([-np.inf if s is None else s for s in since], dtype=float)[slot]


def kinematics(
    batch: Batch,
    outcome: Outcome,
    *,
    clock: LocalClock,
    calendar: WorkingCalendar,
    th: Thresholds,
) -> Kinematics:
    """Local time, working time, distance and time from the previous fix, and movement, for
    every fix of the batch at once (numpy), each vehicle continuing from its state."""
    first, slot, before, t, lat, lon = (
        batch.first,
        batch.slot,
        batch.before,
        batch.t,
        batch.lat,
        batch.lon,
    )
    n = len(t)
    # local time: the zone's offset looked up once per distinct hour
    hours, hour_of = np.unique(np.floor(t / 3600), return_inverse=True)
    offsets = np.array([clock.local(h * 3600) - h * 3600 for h in hours.tolist()])
    local = t + offsets[hour_of]
    day = np.floor(local / DAY)
    second = local - day * DAY
    days, day_of = np.unique(day, return_inverse=True)
    known = [calendar.days.get(int(d)) for d in days.tolist()]
    outcome.uncovered_days |= {
        int(d) for d, k in zip(days.tolist(), known, strict=True) if k is None
    }
    working_day = np.array([-1 if k is None else int(k) for k in known])[day_of]
    unit_hours, default = calendar.unit_hours, calendar.default_hours
    hours = np.array([default], dtype=float)  # (begin, end); one row serves every fix
    if unit_hours:
        hours = np.array([unit_hours.get(v.unit_id, default) for v in batch.vehicles])[slot]
    begin, end = hours[:, 0], hours[:, 1]
    working = np.where(
        working_day < 0, -1, (working_day == 1) & (second >= begin) & (second < end)
    ).astype(np.int8)
    # the previous fix (for the gap) and the previous fix with a position (for the step)
    prev_t = np.roll(t, 1)
    prev_t[first] = batch.state_t
    gap = t - prev_t
    has_pos = ~np.isnan(lat)
    index = np.where(has_pos, np.arange(n), -1)
    last_pos = np.maximum.accumulate(index)  # latest positioned fix at or before each
    prev_pos = np.roll(last_pos, 1)
    prev_pos[first] = -1
    prev_lat = np.where(prev_pos >= 0, lat[np.maximum(prev_pos, 0)], np.nan)
    prev_lon = np.where(prev_pos >= 0, lon[np.maximum(prev_pos, 0)], np.nan)
    # a vehicle's first positioned fix of the batch continues from its state's position
    own = (prev_pos < first[slot]) | (prev_pos < 0)
    positions = list(map(STATE_POS, before))
    if None in positions:
        positions = [p or NO_POSITION for p in positions]
    state_pos = np.fromiter(chain.from_iterable(positions), float, 2 * len(before))
    state_lat, state_lon = state_pos[0::2][slot], state_pos[1::2][slot]
    prev_lat = np.where(own, state_lat, prev_lat)
    prev_lon = np.where(own, state_lon, prev_lon)
    k = np.cos(np.radians((lat + prev_lat) / 2))
    dx = np.radians(lon - prev_lon) * k
    dy = np.radians(lat - prev_lat)
    step = np.nan_to_num(EARTH_RADIUS_M * np.sqrt(dx * dx + dy * dy), nan=0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        derived = np.where(gap > 0, step / gap * 3.6, 0.0)
    moving = np.where(np.isnan(batch.speed), derived, batch.speed) >= th.moving_speed_kmh
    moving &= ~batch.ignition_off
    return Kinematics(local=local, working=working, moving=moving, step_m=step, gap_s=gap)
