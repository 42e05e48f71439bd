"""The engine: a batch of fixes -> fence membership -> each vehicle's rules in time order.

Pure: fences, calendar, permits and per-vehicle states come in, alert records and new states go
out. The ingest worker runs it on every batch (`geofence.worker`), `fleet replay` on stored
tracks; both feed the same fixes in the same order, so they raise the same episodes.

Per fix, in order:
1. fixes not newer than the vehicle's last evaluated fix are skipped (a re-sent batch, a
   blind-area upload: those go through `fleet replay`);
2. membership: the active fences in the vehicle's scope that contain the fix;
3. context: local time, working time (a day the calendar lacks is reported, never guessed),
   movement, the permit covering the moment and the distance from its corridor, the speed limit;
4. every rule's `step`, in the order of `geofence.rules.RULES`.

`Engine.run_plain` is that pipeline written fix by fix, every rule stepped on every fix: the
definition. `Engine.run`, which the worker and replay use, gives the same outcome faster: it
works out steps 1 to 3 for the whole batch at once (numpy), and which rules each fix could wake
from rest (`geofence.rules.wakes`); its loop then visits only the fixes where a rule is in an
episode or could start one, and steps only those rules. A live batch holds a fix or two of each
of thousands of vehicles, so what is done per vehicle is done as columns too: a vehicle whose
rules all rest and that no fix wakes costs only its new state. A test holds the two to the same
outcome on random timelines; the bench measures one beside the other.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import chain, repeat
from operator import attrgetter, contains, is_not, itemgetter
from types import NoneType
from typing import Any, NamedTuple

import numpy as np
import shapely

from geofence import geometry
from geofence.calendar import DAY, LocalClock, WorkingCalendar
from geofence.fences import FenceKind, FenceSet, VehicleInfo
from geofence.permits import Permit, PermitSource
from geofence.rules import RULES, device_alarm, movement, no_order, off_hours
from geofence.rules.base import Context, Event, Fix, Thresholds
from telematics.batch import or_none
from telematics.trips import step_m

EMPTY: frozenset[int] = frozenset()
RULE_LIST = tuple(RULES.items())
BIT = {name: 1 << i for i, name in enumerate(RULES)}
# For each set of rules (one bit per rule, in the order of RULES), those rules in that order.
RULES_OF: tuple[tuple[tuple[int, str, Any], ...], ...] = tuple(
    tuple((BIT[name], name, rule) for name, rule in RULE_LIST if mask & BIT[name])
    for mask in range(1 << len(RULE_LIST))
)
EARTH_RADIUS_M = 6_371_008.8
WORKING = {-1: None, 0: False, 1: True}
WORKING_OF = np.array([None, False, True], dtype=object)  # [w + 1] for w in -1, 0, 1
NO_POSITION = (np.nan, np.nan)
STATE_T, STATE_POS, STATE_RULES = itemgetter("t"), itemgetter("pos"), itemgetter("rules")
STATE_PREV = itemgetter("prev")
PERMIT_START, PERMIT_END = attrgetter("start_t"), attrgetter("end_t")
PERMIT_PLACES, CORRIDOR = attrgetter("places"), attrgetter("corridor")
PLANE_LAT0, PLANE_LON0, PLANE_K = attrgetter("lat0"), attrgetter("lon0"), attrgetter("k")
PLANE_LINE = attrgetter("plane")
FIX_POSITION = itemgetter(1, 2)  # (lat, lon)
PLANE_KEY = attrgetter("order_id", "vehicle_id", "start_t", "end_t")  # see `_plane`
# The rules built on `movement.step`, by their bit: `_steps` steps an open episode of one of them
# going on in line. A fix wakes one of them exactly when it violates it (`_wake`).
MOVEMENT_RULES = {BIT["no_order"]: "no_order", BIT["off_hours"]: "off_hours"}
MOVEMENT_BITS = {name: bit for bit, name in MOVEMENT_RULES.items()}
# a movement episode's numbers (see `movement.step`), as `_carry` reads them
EPISODE_KEYS = ("start", "last", "dist", "open", "reported")
EPISODE = itemgetter(*EPISODE_KEYS)
MOVEMENT_SEVERITY = {"no_order": no_order.SEVERITY, "off_hours": off_hours.SEVERITY}
CARRY_DEPTH = 16  # `_carry` looks at each vehicle's first so many fixes of a batch
STEP_M = 6  # where a context's `step_m` is among its arguments


class Kinematics(NamedTuple):
    """Per fix of a batch."""

    local: np.ndarray  # local epoch seconds
    working: np.ndarray  # 1 working time, 0 not, -1 the calendar does not cover the day
    moving: np.ndarray
    step_m: np.ndarray  # from the previous fix with a position
    gap_s: np.ndarray  # from the previous fix; NaN for a vehicle's first ever


class AlertRecord(NamedTuple):
    vehicle_id: int
    unit_id: int
    order_id: int | None
    driver_id: int | None
    event: Event
    thresholds: dict[str, Any]

    @property
    def identity(self) -> tuple[int, str, str, float]:
        return (self.vehicle_id, self.event.kind, self.event.key, self.event.started_t)


@dataclass
class Outcome:
    alerts: list[AlertRecord] = field(default_factory=list)
    states: dict[int, dict[str, Any]] = field(default_factory=dict)
    evaluated: int = 0
    late: int = 0  # older than the vehicle's last evaluated fix
    unknown_vehicle: int = 0
    uncovered_days: set[int] = field(default_factory=set)  # local epoch days


def new_state() -> dict[str, Any]:
    """A vehicle's state: its last evaluated fix (`prev`: the `Fix` itself, or the list JSON
    makes of it), that fix's time, the latest position seen, and each rule's state."""
    return {"t": None, "prev": None, "pos": None, "rules": {}}


@dataclass
class Batch:
    """The fresh fixes of a batch, flat: vehicle by vehicle, each vehicle's in time order."""

    vehicle_ids: list[int]
    vehicles: list[VehicleInfo]
    before: list[dict[str, Any]]  # each vehicle's state after its last evaluated fix
    fixes: list[Fix]
    starts: list[int]  # vehicle k's fixes are fixes[starts[k]:starts[k + 1]]
    first: np.ndarray  # starts[:-1]
    slot: np.ndarray  # per fix: k, its vehicle's place in `vehicles`
    t: np.ndarray
    lat: np.ndarray  # NaN: no position
    lon: np.ndarray
    speed: np.ndarray  # NaN: no speed
    ignition_off: np.ndarray
    alarm: np.ndarray  # the alarm bits
    state_t: np.ndarray  # per vehicle: its last evaluated fix time, NaN for none
    permits: Mapping[int, Sequence[Permit]]


class Scene(NamedTuple):
    """What the fences say of each fix of a batch: only fences in the vehicle's scope and active
    at the fix's local time count."""

    fences: list[frozenset[int]]  # the ids of the fences containing the fix
    banned: list[frozenset[int]]  # of those, the prohibited ones
    depot: np.ndarray
    prohibited: np.ndarray  # inside any prohibited fence
    limit: list[float]  # the speed limit in force
    in_region: np.ndarray  # 1 inside an active permitted region, 0 outside, -1 none applies


class Cover(NamedTuple):
    """Each fix's permit, as an index into `permits` (-1: none), and its corridor distance."""

    permits: list[Permit]
    which: np.ndarray
    corridor_m: np.ndarray  # NaN: no corridor to measure from, or not measured yet (`near`)
    at_place: np.ndarray
    near: Near | None = None


class Near(NamedTuple):
    """The fixes known to be within `off_route_distance_m` of their corridor but not measured:
    only a fix `off_route` is stepped on needs the distance itself (see `Engine._steps`)."""

    fixes: np.ndarray  # ascending
    points: np.ndarray  # each one's point in its corridor's plane
    lines: np.ndarray  # and that corridor, in the plane


@dataclass
class Engine:
    fences: FenceSet
    calendar: WorkingCalendar
    clock: LocalClock
    thresholds: Thresholds
    permits: PermitSource

    def run(
        self,
        tracks: Mapping[int, Sequence[Fix]],
        states: Mapping[int, dict[str, Any]],
        vehicles: Mapping[int, VehicleInfo],
        columns: np.ndarray | None = None,
    ) -> Outcome:
        """`tracks` holds each vehicle's fixes in time order; `states` what the engine left after
        the vehicle's last evaluated fix (missing: a vehicle seen for the first time).
        `columns`, where the caller has them (the ingest worker reads its batch as columns), are
        the same fixes, vehicle after vehicle, as a float array of a row per fix: the `Fix`
        fields, None as NaN (`fix_columns` of those fixes), so they need not be read back out
        of the tuples."""
        outcome = Outcome()
        with _collector_paused():
            batch = self._batch(tracks, states, vehicles, outcome, columns)
            if batch is None:
                return outcome
            kin = self._kinematics(batch, outcome)
            scene = self._scene(batch, kin.local)
            cover = self._cover(batch, kin.moving)
            wake = self._wake(batch, kin, scene, cover)
            outcome.alerts = self._steps(batch, kin, scene, cover, wake, outcome.states)
        outcome.evaluated = len(batch.fixes)
        return outcome

    def run_plain(
        self,
        tracks: Mapping[int, Sequence[Fix]],
        states: Mapping[int, dict[str, Any]],
        vehicles: Mapping[int, VehicleInfo],
    ) -> Outcome:
        """The same outcome as `run`, worked out fix by fix with every rule stepped on every fix."""
        outcome = Outcome()
        batch = self._batch(tracks, states, vehicles, outcome)
        if batch is None:
            return outcome
        flat = batch.fixes
        hits: dict[int, list[int]] = {}  # flat index of a fix -> indexes of fences containing it
        positioned = [i for i, f in enumerate(flat) if f.lat is not None]
        if positioned:
            lats = np.fromiter((flat[i].lat for i in positioned), float, len(positioned))
            lons = np.fromiter((flat[i].lon for i in positioned), float, len(positioned))
            for point, found in self.fences.containing(lons, lats).items():
                hits[positioned[point]] = found
        kin = self._kinematics(batch, outcome)
        covering: list[Permit | None] = [None] * len(flat)
        for slot, vehicle_id in enumerate(batch.vehicle_ids):
            held = batch.permits.get(vehicle_id)
            if held:
                for n in range(batch.starts[slot], batch.starts[slot + 1]):
                    t = flat[n].t
                    covering[n] = next((p for p in held if p.covers(t)), None)
        corridor = [0.0] * len(flat)
        index = [
            i
            for i, (fix, permit) in enumerate(zip(flat, covering, strict=True))
            if permit is not None and permit.corridor is not None and fix.lat is not None
        ]
        if index:
            distances = geometry.PlaneLine.distances_each(
                [_plane(covering[i]) for i in index],  # type: ignore[arg-type]
                np.arange(len(index)),
                np.array([flat[i].lat for i in index], dtype=float),
                np.array([flat[i].lon for i in index], dtype=float),
            )
            for i, d in zip(index, distances.tolist(), strict=True):
                corridor[i] = d
        coalesced: dict[tuple[int, str, str, float], AlertRecord] = {}
        for slot, vehicle_id in enumerate(batch.vehicle_ids):
            lo, hi = batch.starts[slot], batch.starts[slot + 1]
            outcome.states[vehicle_id] = self._vehicle_plain(
                batch.vehicles[slot],
                range(lo, hi),
                flat,
                kin,
                hits,
                covering,
                corridor,
                batch.before[slot],
                coalesced,
            )
        outcome.evaluated = len(flat)
        outcome.alerts = list(coalesced.values())
        return outcome

    def _batch(
        self,
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
            permits=self.permits.permits(vehicle_ids, float(t.min()), float(t.max())),
        )

    def _kinematics(self, batch: Batch, outcome: Outcome) -> Kinematics:
        """Local time, working time, distance and time from the previous fix, and movement, for
        every fix of the batch at once (numpy), each vehicle continuing from its state."""
        th = self.thresholds
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
        offsets = np.array([self.clock.local(h * 3600) - h * 3600 for h in hours.tolist()])
        local = t + offsets[hour_of]
        day = np.floor(local / DAY)
        second = local - day * DAY
        days, day_of = np.unique(day, return_inverse=True)
        known = [self.calendar.days.get(int(d)) for d in days.tolist()]
        outcome.uncovered_days |= {
            int(d) for d, k in zip(days.tolist(), known, strict=True) if k is None
        }
        working_day = np.array([-1 if k is None else int(k) for k in known])[day_of]
        unit_hours, default = self.calendar.unit_hours, self.calendar.default_hours
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

    def _scene(self, batch: Batch, local: np.ndarray) -> Scene:
        fences = self.fences
        n = len(batch.fixes)
        positioned = np.flatnonzero(~np.isnan(batch.lat))
        point, fence = fences.pairs(batch.lon[positioned], batch.lat[positioned])
        point = positioned[point]
        conditional = np.flatnonzero(fences.conditional[fence])
        if len(conditional):
            keep = np.ones(len(point), dtype=bool)
            for j in conditional.tolist():
                p, f = int(point[j]), int(fence[j])
                vehicle = batch.vehicles[batch.slot[p]]
                keep[j] = fences.applies(f, vehicle) and fences.fences[f].active(local[p])
            point, fence = point[keep], fence[keep]
        banned = fences.is_prohibited[fence]
        depot = np.zeros(n, dtype=bool)
        depot[point[fences.is_depot[fence]]] = True
        prohibited = np.zeros(n, dtype=bool)
        prohibited[point[banned]] = True
        limit = [self.thresholds.speed_limit_kmh] * n
        limited = fences.has_limit[fence]
        for p, f in zip(point[limited].tolist(), fence[limited].tolist(), strict=True):
            fence_limit = fences.fences[f].speed_limit_kmh
            if fence_limit < limit[p]:  # type: ignore[operator]
                limit[p] = fence_limit  # type: ignore[call-overload]
        inside = _sets(n, point, fences.ids[fence])
        in_region = np.full(n, -1, dtype=np.int8)
        if fences.is_region.any():
            region_hit = np.zeros(n, dtype=bool)
            region_hit[point[fences.is_region[fence]]] = True
            self._regions(batch, local, inside, region_hit, in_region)
        return Scene(
            fences=inside,
            banned=_sets(n, point[banned], fences.ids[fence[banned]]),
            depot=depot,
            prohibited=prohibited,
            limit=limit,
            in_region=in_region,
        )

    def _regions(
        self,
        batch: Batch,
        local: np.ndarray,
        inside: list[frozenset[int]],
        region_hit: np.ndarray,
        in_region: np.ndarray,
    ) -> None:
        """Fills `in_region`: 1 inside an active permitted region in the vehicle's scope, 0
        outside every one, -1 where none applies (left as it is)."""
        fences = self.fences
        regions = list(map(fences.regions_for, batch.vehicles))
        unscheduled = [
            bool(r) and all(fences.by_id[i].schedule is None for i in r) for r in regions
        ]
        # the vehicles whose regions always apply: the fence hits tell
        always = np.array(unscheduled)[batch.slot]
        in_region[always] = region_hit[always]
        starts = batch.starts
        for slot, found in enumerate(regions):
            if not found or unscheduled[slot]:
                continue
            for m in range(starts[slot], starts[slot + 1]):
                active = [r for r in found if fences.by_id[r].active(local[m])]
                if active:
                    in_region[m] = any(r in inside[m] for r in active)

    def _cover(self, batch: Batch, moving: np.ndarray) -> Cover:
        """Each fix's permit: the first of its vehicle's permits that covers the fix time."""
        n = len(batch.fixes)
        table: list[Permit] = []
        which = np.full(n, -1, dtype=np.int64)
        corridor_m = np.full(n, np.nan)
        at_place = np.zeros(n, dtype=bool)
        if not batch.permits:
            return Cover(table, which, corridor_m, at_place)
        held = list(map(batch.permits.get, batch.vehicle_ids, repeat(())))
        count = np.fromiter(map(len, held), np.int64, len(held))
        slot = batch.slot
        for rank in range(int(count.max())):
            owners = np.flatnonzero(count > rank)
            ranked = [held[k][rank] for k in owners.tolist()]
            number = np.full(len(held), -1, dtype=np.int64)
            number[owners] = np.arange(len(table), len(table) + len(owners))
            table.extend(ranked)
            start = np.full(len(held), np.nan)
            start[owners] = list(map(PERMIT_START, ranked))
            end = np.full(len(held), np.nan)
            end[owners] = list(map(PERMIT_END, ranked))
            covers = (which < 0) & (start[slot] <= batch.t) & (batch.t <= end[slot])
            which[covers] = number[slot][covers]
        permitted = which >= 0
        # the permits some fix falls under; and -1 last: what `[which]` gives the fixes
        # without a permit (-1)
        used = np.unique(which[permitted])
        planes = _planes([table[i] for i in used.tolist()])
        # as the plain loop has it: a permit's empty corridor is none; a fix without a position
        # under a corridor is 0 m from it
        line_of = np.full(len(table) + 1, -1)
        drawn = np.array([p is not None for p in planes], dtype=bool)
        line_of[used[drawn]] = np.arange(int(drawn.sum()))
        under = line_of[which] >= 0
        corridor_m[under] = 0.0
        measured = np.flatnonzero(under & ~np.isnan(batch.lat))
        near = None
        if len(measured):
            # Most fixes under an order are on its road: `dwithin` tells them apart from the
            # rest without the distance (it stops at the first segment near enough), and only
            # the others are measured now. The margin keeps "within" true of the distance
            # itself, whatever its last bit.
            points, lines = _plane_points(
                [p for p in planes if p is not None],
                line_of[which[measured]],
                batch.lat[measured],
                batch.lon[measured],
            )
            within = shapely.dwithin(
                points, lines, self.thresholds.off_route_distance_m * (1 - 1e-9)
            )
            far = ~within
            corridor_m[measured] = np.nan
            corridor_m[measured[far]] = shapely.distance(points[far], lines[far])
            near = Near(measured[within], points[within], lines[within])
        # Only a stopped car's place matters (an unplanned stop); a moving one is not asked.
        stopped = np.flatnonzero(permitted & ~moving & ~np.isnan(batch.lat) & ~np.isnan(batch.lon))
        if len(stopped):
            at_place[stopped] = self._at_place(batch, stopped, [table[i] for i in which[stopped]])
        return Cover(table, which, corridor_m, at_place, near)

    def _at_place(self, batch: Batch, stopped: np.ndarray, permits: list[Permit]) -> np.ndarray:
        """Whether each stopped fix is within the destination radius of one of its permit's
        places, by `step_m`: worked out in numpy, and again by `step_m` itself where numpy's
        rounding could fall on the other side of the radius."""
        radius = self.thresholds.destination_radius_m
        places = list(map(PERMIT_PLACES, permits))
        count = np.fromiter(map(len, places), np.int64, len(places))
        found = np.zeros(len(stopped), dtype=bool)
        if not count.any():
            return found
        place = np.array(list(chain.from_iterable(places)), dtype=float).reshape(-1, 2)
        fix = np.repeat(stopped, count)
        lat1, lon1 = place[:, 0], place[:, 1]
        lat2, lon2 = batch.lat[fix], batch.lon[fix]
        x = np.radians(lon2 - lon1) * np.cos(np.radians((lat1 + lat2) / 2))
        y = np.radians(lat2 - lat1)
        distance = EARTH_RADIUS_M * np.sqrt(x * x + y * y)
        near = distance <= radius * (1 - 1e-9)
        for j in np.flatnonzero(np.abs(distance - radius) <= radius * 1e-9).tolist():
            place_lat, place_lon = place[j].tolist()
            near[j] = step_m(place_lat, place_lon, float(lat2[j]), float(lon2[j])) <= radius
        shown = count > 0
        found[shown] = np.logical_or.reduceat(near, (np.cumsum(count) - count)[shown])
        return found

    def _wake(self, batch: Batch, kin: Kinematics, scene: Scene, cover: Cover) -> np.ndarray:
        """Per fix, the rules it could wake from rest (a bit each, see `BIT`): `wakes` for the
        whole batch at once (a test holds the two to the same outcome)."""
        th = self.thresholds
        positioned = ~np.isnan(batch.lat)
        moving, depot = kin.moving, scene.depot
        permitted = cover.which >= 0
        table = cover.permits
        # False last: what `[which]` gives the fixes without a permit (-1)
        overnight = np.array([p.overnight for p in table] + [False])[cover.which]
        unauthorised = moving & ~permitted & ~depot
        category = [v.category for v in batch.vehicles]
        alarm = (batch.alarm & device_alarm.WATCHED) != 0
        with np.errstate(invalid="ignore"):  # NaN: no corridor, no speed
            off_corridor = cover.corridor_m > th.off_route_distance_m
            overspeed = batch.speed > np.array(scene.limit, dtype=float)
        wakes = {
            "no_order": unauthorised
            & (kin.working == 1)
            & _outside(category, th.no_order_exempt, batch.slot),
            "off_hours": unauthorised
            & (kin.working == 0)
            & _outside(category, th.off_hours_exempt, batch.slot),
            "off_route": positioned
            & permitted
            & (off_corridor | (~moving & ~cover.at_place & ~depot)),
            "region_exit": positioned & (scene.in_region == 0),
            "prohibited_zone": positioned & scene.prohibited,
            "overnight_away": positioned & ~moving & ~depot & ~overnight,
            "overspeed": overspeed,
            "signal_loss": kin.gap_s >= th.signal_gap_s,
            "device_alarm": alarm,
        }
        bits = np.zeros(len(moving), dtype=np.int64)
        for name, woken in wakes.items():
            bits |= woken.astype(np.int64) * BIT[name]
        return bits

    def _steps(
        self,
        batch: Batch,
        kin: Kinematics,
        scene: Scene,
        cover: Cover,
        wake: np.ndarray,
        states: dict[int, dict[str, Any]],
    ) -> list[AlertRecord]:
        """Each vehicle's rules over its fixes of the batch: on each fix where a rule is in an
        episode or the fix wakes one, those rules. Fills `states`; returns the alert records,
        an episode's latest event replacing the batch's earlier ones."""
        th = self.thresholds
        fixes, starts, before, slot = batch.fixes, batch.starts, batch.before, batch.slot
        rules_before = list(map(STATE_RULES, before))
        # each vehicle's rules after the batch; a vehicle's dict is copied the first time one of
        # its rules changes state (the caller's stays as it was), and handed on as it is if none
        # does: most vehicles of a live batch keep theirs
        rules_after = rules_before.copy()
        coalesced: dict[tuple[int, str, str, float], AlertRecord] = {}
        # The fixes a rule may have to see: those of a vehicle with a rule in an episode, and
        # of the others those from the first that wakes a rule on. Before it, every rule rests.
        n = len(fixes)
        index = np.arange(n)
        held_before = np.fromiter(map(bool, rules_before), bool, len(before))
        woken_from = np.minimum.reduceat(np.where(wake != 0, index, n), batch.first)
        seen = held_before[slot] | (index >= woken_from[slot])
        # Each vehicle's fixes that only carry a movement episode on are worked out
        # before the loop (`_carry`), which then starts from the state they leave.
        handled, carried_events = self._carry(batch, kin, wake, rules_before, rules_after)
        seen &= ~handled
        flushed = 0  # `carried_events` inserted into `coalesced`, in the plain loop's order
        if seen.any():
            chosen = np.flatnonzero(seen)
            owner = slot[chosen].tolist()
            picks = chosen.tolist()
            if cover.near is not None:
                # Only `off_route` reads the distance: it is measured where that rule may be
                # stepped, from the first fix that wakes it (or from the first, for a vehicle
                # whose state holds it); the other contexts of `near` fixes say None.
                route_from = np.minimum.reduceat(
                    np.where(wake & BIT["off_route"], index, n), batch.first
                )
                holds_route = np.fromiter(
                    map(contains, rules_before, repeat("off_route")), bool, len(before)
                )
                routed = seen & (holds_route[slot] | (index >= route_from[slot]))
                _measure(cover.near, np.flatnonzero(routed), cover.corridor_m)
            prev: list[Any]  # each chosen fix's previous, Fix or (from JSON) a list or None
            if n == len(before):  # one fix of each vehicle (a fleet reporting live)
                prev = list(map(STATE_PREV, map(before.__getitem__, owner)))
            else:
                touched = np.flatnonzero(np.logical_or.reduceat(seen, batch.first)).tolist()
                previous: list[Any] = [None, *fixes[:-1]]
                for k in touched:
                    previous[starts[k]] = before[k]["prev"]
                prev = list(map(previous.__getitem__, picks))
            if not set(map(type, prev)) <= {Fix, NoneType}:
                prev = list(map(_as_fix, prev))  # states read back from JSON
            vehicles = batch.vehicles
            # the arguments of each of those fixes' context, made in one go from the columns
            # (a context itself is made only for a fix that steps a rule: see below)
            arguments = zip(
                [vehicles[k].id for k in owner],
                [vehicles[k].category for k in owner],
                repeat(th, len(picks)),
                kin.local[chosen].tolist(),
                WORKING_OF[kin.working[chosen] + 1].tolist(),
                kin.moving[chosen].tolist(),
                kin.step_m[chosen].tolist(),
                or_none(kin.gap_s[chosen]),
                prev,
                list(map(scene.fences.__getitem__, picks)),
                scene.depot[chosen].tolist(),
                WORKING_OF[scene.in_region[chosen] + 1].tolist(),
                list(map(scene.banned.__getitem__, picks)),
                list(map(scene.limit.__getitem__, picks)),
                np.array([*cover.permits, None], dtype=object)[cover.which[chosen]].tolist(),
                or_none(cover.corridor_m[chosen]),
                cover.at_place[chosen].tolist(),
                strict=True,
            )
            picked: dict[tuple[str, ...], dict[str, Any]] = {}
            end_s = th.movement_end_s
            current = -1
            rule_states: dict[str, Any] = {}
            copied = False  # whether `rule_states` is already the vehicle's own copy
            held = 0  # the rules with a state
            for k, fix, woken, args in zip(
                owner,
                map(fixes.__getitem__, picks),
                wake[chosen].tolist(),
                arguments,
                strict=True,
            ):
                if k != current:
                    current = k
                    rule_states = rules_after[k]
                    copied = rule_states is not rules_before[k]
                    held = 0
                    # a carried fix's event comes before any of the vehicle's fixes here
                    while flushed < len(carried_events) and carried_events[flushed][0] <= k:
                        record = carried_events[flushed][1]
                        coalesced[record.identity] = record
                        flushed += 1
                    for name in rule_states:
                        held |= BIT.get(name, 0)
                rules = woken | held
                if not rules:
                    continue
                if rules == held and held in MOVEMENT_RULES:
                    # One movement rule in an open episode and nothing else: the vehicle drives
                    # on (the fix wakes it: still violating) or pauses. What `movement.step`
                    # does then, without the call or a context, where no event is due.
                    name = MOVEMENT_RULES[held]
                    was = rule_states[name]
                    t = fix.t
                    if t - was["last"] < end_s and was["open"]:
                        if not woken:
                            continue  # a pause: the state stands as it is
                        if t - was["reported"] < movement.UPDATE_EVERY_S:
                            dist = was["dist"] + args[STEP_M]
                            now = was.copy()
                            now["last"] = t
                            now["dist"] = dist
                            if not copied:
                                rule_states = rules_after[k] = rule_states.copy()
                                copied = True
                            rule_states[name] = now
                            continue
                ctx = Context(*args)
                for bit, name, rule in RULES_OF[rules]:
                    was = rule_states.get(name)
                    rule_state, events = rule(was, fix, ctx)
                    if rule_state is not was:
                        if not copied:
                            rule_states = rules_after[k] = rule_states.copy()
                            copied = True
                        if rule_state is not None:
                            rule_states[name] = rule_state
                            held |= bit
                        else:
                            del rule_states[name]
                            held &= ~bit
                    for event in events:
                        shown = picked.get(event.thresholds)
                        if shown is None:
                            shown = picked[event.thresholds] = th.pick(*event.thresholds)
                        permit = ctx.permit
                        coalesced[
                            (ctx.vehicle_id, event.kind, event.key, event.started_t)  # identity
                        ] = AlertRecord(
                            ctx.vehicle_id,
                            vehicles[k].unit_id,
                            permit.order_id if permit is not None else None,
                            permit.driver_id if permit is not None else None,
                            event,
                            dict(shown),
                        )
        for _, record in carried_events[flushed:]:
            coalesced[record.identity] = record
        # every vehicle's state after its last fix, built in one go
        last = fixes if n == len(before) else [fixes[i - 1] for i in starts[1:]]
        position: list[tuple[Any, ...] | None] = list(map(FIX_POSITION, last))
        # NaN in the column: no position, or a NaN one (kept, as the fix has it)
        for k in np.flatnonzero(np.isnan(batch.lat[np.asarray(starts[1:]) - 1])).tolist():
            if last[k].lat is None:
                position[k] = _last_position(fixes, starts[k], starts[k + 1], before[k])
        states.update(
            zip(
                batch.vehicle_ids,
                [
                    {"t": f.t, "prev": f, "pos": p, "rules": r}
                    for f, p, r in zip(last, position, rules_after, strict=True)
                ],
                strict=True,
            )
        )
        return list(coalesced.values())

    def _carry(
        self,
        batch: Batch,
        kin: Kinematics,
        wake: np.ndarray,
        rules_before: list[dict[str, Any]],
        rules_after: list[dict[str, Any]],
    ) -> tuple[np.ndarray, list[tuple[int, AlertRecord]]]:
        """The fixes `_steps` need not visit, and their outcome.

        Those of a vehicle whose state holds one movement rule (`no_order`, `off_hours`) in an
        episode, and no other rule: from its first fix of the batch, each fix that wakes no
        other rule and comes within `movement_end_s` of the episode's last violating fix, and
        that either violates it too (wakes it: the vehicle drives on) with no event due, or
        does not (a pause); then the fix after them, if it is such a fix with the event due
        (the episode opens, or its minute's update). What `movement.step` makes of them is
        worked out here, for the whole batch at once (numpy), the state then made once per
        vehicle, in `rules_after`. Returns the fixes (a mask) and the events' alert records,
        each with its vehicle's place, in order."""
        n = len(batch.fixes)
        handled = np.zeros(n, dtype=bool)
        events: list[tuple[int, AlertRecord]] = []
        lone = [k for k, r in enumerate(rules_before) if len(r) == 1]
        if not lone:
            return handled, events
        alone_rules = list(map(rules_before.__getitem__, lone))
        names = list(chain.from_iterable(alone_rules))
        bits = np.fromiter(map(MOVEMENT_BITS.get, names, repeat(0)), np.int64, len(lone))
        chosen = np.flatnonzero(bits)
        if not len(chosen):
            return handled, events
        held = list(chain.from_iterable(map(dict.values, alone_rules)))
        episodes = list(map(held.__getitem__, chosen.tolist()))
        places = np.fromiter(lone, np.int64, len(lone))[chosen]
        count = len(rules_before)
        # the episodes' numbers, a row per vehicle (NaN for a vehicle not carried)
        numbers = np.full((count, len(EPISODE_KEYS)), np.nan)
        numbers[places] = np.fromiter(
            chain.from_iterable(map(EPISODE, episodes)), float, len(EPISODE_KEYS) * len(episodes)
        ).reshape(-1, len(EPISODE_KEYS))
        start_of, last_of, dist_of, open_of, reported_of = numbers.T
        th = self.thresholds
        slot, first, t = batch.slot, batch.first, batch.t
        bit_of = np.zeros(count, dtype=np.int64)
        bit_of[places] = bits[chosen]
        index = np.arange(n)
        bit = bit_of[slot]
        woken = (wake & bit) != 0
        alone = (bit != 0) & ((wake & ~bit) == 0)
        # the episode's last violating fix before each fix: the latest woken one of the
        # vehicle's earlier fixes in the batch, else the state's (as in `_kinematics`)
        latest = np.roll(np.maximum.accumulate(np.where(woken, index, -1)), 1)
        latest[first] = -1
        last = np.where(latest >= first[slot], t[np.maximum(latest, 0)], last_of[slot])
        going = alone & (t - last < th.movement_end_s)
        # the distance after each fix, added up fix by fix as the rule does (0 for a pause
        # changes nothing): a row per vehicle, its state's distance first, for its first
        # `CARRY_DEPTH` fixes (the loop carries an episode on after those)
        column = index - first[slot] + 1
        going &= column <= CARRY_DEPTH
        near = np.flatnonzero(going)
        sums = np.zeros((count, min(int(column.max()), CARRY_DEPTH) + 1))
        sums[:, 0] = dist_of
        sums[slot[near], column[near]] = np.where(woken[near], kin.step_m[near], 0.0)
        dist = np.full(n, np.nan)
        dist[near] = np.cumsum(sums, axis=1)[slot[near], column[near]]
        opened = open_of[slot] == 1
        due = woken & np.where(
            opened,
            t - reported_of[slot] >= movement.UPDATE_EVERY_S,
            (dist >= th.movement_min_distance_m)
            & (t - start_of[slot] >= th.movement_min_duration_s),
        )
        # a vehicle's fixes up to its first one that is not carried on, and that one if its
        # event is due
        stop = np.minimum.reduceat(np.where(going & ~due, n, index), first)
        handled = (index < stop[slot]) | ((index == stop[slot]) & going & due)
        # per vehicle, its last handled fix that moved the episode on: the state is that fix's
        moved = np.maximum.reduceat(np.where(handled & woken, index, -1), first)
        changed = np.flatnonzero(moved >= 0)
        if not len(changed):
            return handled, events  # pauses only: every state stands as it is
        fixes = moved[changed]
        # the new states, each a copy of the episode (key order kept) with the fix's numbers
        where = np.zeros(count, dtype=np.int64)
        where[places] = np.arange(len(places))
        at = where[changed].tolist()
        states = list(map(dict.copy, map(episodes.__getitem__, at)))
        list(map(dict.__setitem__, states, repeat("last"), t[fixes].tolist()))
        list(map(dict.__setitem__, states, repeat("dist"), dist[fixes].tolist()))
        kinds = list(map(names.__getitem__, chosen[at].tolist()))
        list(
            map(
                rules_after.__setitem__,
                changed.tolist(),
                [{kind: state} for kind, state in zip(kinds, states, strict=True)],
            )
        )
        vehicles = batch.vehicles
        for j in np.flatnonzero(due[fixes] & (stop[changed] == fixes)).tolist():
            now, name, vehicle = states[j], kinds[j], vehicles[changed[j]]
            now["open"] = True
            now["reported"] = now["last"]
            event = movement.event(name, MOVEMENT_SEVERITY[name], now, None)
            # a fix that violates a movement rule has no permit
            record = AlertRecord(
                vehicle.id, vehicle.unit_id, None, None, event, th.pick(*event.thresholds)
            )
            events.append((int(changed[j]), record))
        return handled, events

    def _vehicle_plain(
        self,
        vehicle: VehicleInfo,
        numbers: range,
        flat: list[Fix],
        kin: Kinematics,
        hits: dict[int, list[int]],
        covering: list[Permit | None],
        corridor: list[float],
        state: dict[str, Any],
        coalesced: dict[tuple[int, str, str, float], AlertRecord],
    ) -> dict[str, Any]:
        th = self.thresholds
        fences = self.fences
        regions = fences.regions_for(vehicle)
        rule_states: dict[str, Any] = dict(state["rules"])  # the caller's state stays as it was
        prev = Fix(*state["prev"]) if state["prev"] else None
        pos = state["pos"]
        for n in numbers:
            fix = flat[n]
            local_t = float(kin.local[n])
            inside: frozenset[int] = EMPTY
            depot = False
            prohibited: frozenset[int] = EMPTY
            limit = th.speed_limit_kmh
            if n in hits:
                found: set[int] = set()
                banned: set[int] = set()
                for index in hits[n]:
                    fence = fences.fences[index]
                    if not (fences.applies(index, vehicle) and fence.active(local_t)):
                        continue
                    found.add(fence.id)
                    if fence.kind == FenceKind.DEPOT:
                        depot = True
                    elif fence.kind == FenceKind.PROHIBITED:
                        banned.add(fence.id)
                    if fence.speed_limit_kmh is not None and fence.speed_limit_kmh < limit:
                        limit = fence.speed_limit_kmh
                inside, prohibited = frozenset(found), frozenset(banned)
            in_region = None
            if regions:
                active = [r for r in regions if fences.by_id[r].active(local_t)]
                if active:
                    in_region = any(r in inside for r in active)
            if fix.lat is not None:
                pos = (fix.lat, fix.lon)
            moving = bool(kin.moving[n])
            permit = covering[n]
            at_place = False
            if permit is not None and not moving and fix.lat is not None and fix.lon is not None:
                radius = th.destination_radius_m
                at_place = any(
                    step_m(lat, lon, fix.lat, fix.lon) <= radius for lat, lon in permit.places
                )
            gap = float(kin.gap_s[n])
            ctx = Context(
                vehicle_id=vehicle.id,
                category=vehicle.category,
                th=th,
                local_t=local_t,
                working=WORKING[int(kin.working[n])],
                moving=moving,
                step_m=float(kin.step_m[n]),
                gap_s=None if gap != gap else gap,
                prev=prev,
                fences=inside,
                depot=depot,
                in_region=in_region,
                prohibited=prohibited,
                speed_limit_kmh=limit,
                permit=permit,
                corridor_m=corridor[n] if permit and permit.corridor else None,
                at_place=at_place,
            )
            for name, rule in RULE_LIST:
                rule_state, events = rule(rule_states.get(name), fix, ctx)
                if rule_state is not None:
                    rule_states[name] = rule_state
                elif name in rule_states:
                    del rule_states[name]
                for event in events:
                    _record(coalesced, vehicle, permit, event, th)
            prev = fix
        return {
            "t": prev.t if prev is not None else None,
            "prev": prev,
            "pos": tuple(pos) if pos is not None else None,
            "rules": rule_states,
        }


def _record(
    coalesced: dict[tuple[int, str, str, float], AlertRecord],
    vehicle: VehicleInfo,
    permit: Permit | None,
    event: Event,
    th: Thresholds,
) -> None:
    """An episode's latest event replaces the batch's earlier ones."""
    record = AlertRecord(
        vehicle_id=vehicle.id,
        unit_id=vehicle.unit_id,
        order_id=permit.order_id if permit is not None else None,
        driver_id=permit.driver_id if permit is not None else None,
        event=event,
        thresholds=th.pick(*event.thresholds),
    )
    coalesced[record.identity] = record


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pauses Python's cycle collector while a batch is evaluated. The loop makes and drops
    several objects per fix (contexts, rule states, events), none in a cycle, so reference
    counting frees them; but their number sets the collector off again and again, and each
    full pass walks the whole heap: that cost more than the rules themselves."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _last_position(
    fixes: list[Fix], lo: int, hi: int, before: dict[str, Any]
) -> tuple[Any, ...] | None:
    """The position of the latest of fixes[lo:hi] that has one, else the state's."""
    for n in range(hi - 1, lo - 1, -1):
        fix = fixes[n]
        if fix.lat is not None:
            return (fix.lat, fix.lon)
    pos = before["pos"]
    return tuple(pos) if pos is not None else None


def fix_columns(flat: Sequence[Fix]) -> np.ndarray:
    """The fields of `flat` as floats, a row per fix, None as NaN. `fromiter` is the quicker
    of the two but refuses None, which only some fixes carry (no position, no speed)."""
    width = len(Fix._fields)
    try:
        found = np.fromiter(chain.from_iterable(flat), float, width * len(flat))
    except (TypeError, ValueError):
        found = np.array(list(chain.from_iterable(flat)), dtype=float)
    return found.reshape(-1, width)


def _as_fix(fix: Sequence[Any] | None) -> Fix | None:
    if fix is None or fix.__class__ is Fix:
        return fix  # type: ignore[return-value]
    return Fix(*fix) if fix else None


def _sets(n: int, point: np.ndarray, ids: np.ndarray) -> list[frozenset[int]]:
    """Per point of `n`, the set of `ids[j]` for the pairs j of that point (`point` ascending)."""
    found = [EMPTY] * n
    if len(point):
        shown, begin = np.unique(point, return_index=True)
        bounds = [*begin.tolist(), len(point)]
        listed = ids.tolist()
        for k, p in enumerate(shown.tolist()):
            found[p] = frozenset(listed[bounds[k] : bounds[k + 1]])
    return found


def _outside(categories: list[str], exempt: frozenset[str], slot: np.ndarray) -> Any:
    """Per fix, whether its vehicle's category is not exempt."""
    if exempt.isdisjoint(categories):
        return True
    return np.array([c not in exempt for c in categories])[slot]


_PLANES: dict[tuple[Any, ...], geometry.PlaneLine] = {}


def _planes(permits: list[Permit]) -> list[geometry.PlaneLine | None]:
    """`_plane` of each permit, None for a permit without a corridor or with an empty one."""
    found: list[geometry.PlaneLine | None] = list(
        map(_PLANES.get, map(PLANE_KEY, permits))  # type: ignore[arg-type]
    )
    if all(map(is_not, found, repeat(None))) and all(
        map(is_not, map(CORRIDOR, permits), repeat(None))
    ):
        return found  # the usual case: every one projected in an earlier batch
    for i, permit in enumerate(permits):
        if permit.corridor is None:
            found[i] = None
        elif found[i] is None and permit.corridor:
            found[i] = _plane(permit)
    return found


def _measure(near: Near, chosen: np.ndarray, corridor_m: np.ndarray) -> None:
    """Fills in the corridor distance of the fixes in `near` that are `chosen`."""
    wanted = np.isin(near.fixes, chosen, assume_unique=True)
    if wanted.any():
        corridor_m[near.fixes[wanted]] = shapely.distance(near.points[wanted], near.lines[wanted])


def _plane_points(
    planes: list[geometry.PlaneLine], which: np.ndarray, lats: np.ndarray, lons: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Point i in the plane of `planes[which[i]]`, and that line: the first half of
    `PlaneLine.distances_each`, the very same arithmetic, so the distances are its own."""
    count = len(planes)
    lat0 = np.fromiter(map(PLANE_LAT0, planes), float, count)[which]
    lon0 = np.fromiter(map(PLANE_LON0, planes), float, count)[which]
    k = np.fromiter(map(PLANE_K, planes), float, count)[which]
    xs = (lons - lon0) * geometry.METRES_PER_DEGREE * k
    ys = (lats - lat0) * geometry.METRES_PER_DEGREE
    lines = np.empty(len(planes), dtype=object)
    lines[:] = list(map(PLANE_LINE, planes))
    return shapely.points(xs, ys), lines[which]


def _plane(permit: Permit) -> geometry.PlaneLine:
    """The permit's corridor in its metric plane, projected once per order (permits are fetched
    anew for every batch, their routes do not change)."""
    assert permit.corridor is not None
    key: tuple[Any, ...] = (permit.order_id, permit.vehicle_id, permit.start_t, permit.end_t)
    if permit.order_id is None:
        key = (id(permit.corridor), *key)
    plane = _PLANES.get(key)
    if plane is None:
        if len(_PLANES) > 50_000:
            _PLANES.clear()
        plane = _PLANES[key] = geometry.PlaneLine(permit.corridor)
    return plane
