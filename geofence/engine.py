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
works out steps 2 and 3 for the whole batch at once (numpy), and which rules each fix could wake
from rest (`geofence.rules.wakes`); its loop then visits only the fixes where a rule is in an
episode or could start one, and steps only those rules. A test holds the two to the same
outcome on random timelines; the bench measures one beside the other.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any, NamedTuple

import numpy as np

from geofence import geometry
from geofence.calendar import DAY, LocalClock, WorkingCalendar
from geofence.fences import FenceKind, FenceSet, VehicleInfo
from geofence.permits import Permit, PermitSource
from geofence.rules import RULES, device_alarm
from geofence.rules.base import Context, Event, Fix, Thresholds
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
NO_POSITION = (np.nan, np.nan)
IN_REGION = WORKING


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
    return {"t": None, "prev": None, "pos": None, "rules": {}}


@dataclass
class Batch:
    """The fresh fixes of a batch, flat: vehicle by vehicle, each vehicle's in time order."""

    vehicle_ids: list[int]
    vehicles: list[VehicleInfo]
    before: list[dict[str, Any]]  # each vehicle's state after its last evaluated fix
    fixes: list[Fix]
    starts: list[int]  # vehicle k's fixes are fixes[starts[k]:starts[k + 1]]
    slot: np.ndarray  # per fix: k, its vehicle's place in `vehicles`
    t: np.ndarray
    lat: np.ndarray  # NaN: no position
    lon: np.ndarray
    speed: np.ndarray  # NaN: no speed
    permits: Mapping[int, Sequence[Permit]]


class Scene(NamedTuple):
    """What the fences say of each fix of a batch: only fences in the vehicle's scope and active
    at the fix's local time count. The fence ids containing fix n are `ids[ptr[n]:ptr[n + 1]]`,
    the prohibited ones `banned_ids[banned_ptr[n]:banned_ptr[n + 1]]`."""

    ptr: list[int]
    ids: list[int]
    banned_ptr: list[int]
    banned_ids: list[int]
    depot: np.ndarray
    prohibited: np.ndarray  # inside any prohibited fence
    limit: list[float]  # the speed limit in force
    in_region: np.ndarray  # 1 inside an active permitted region, 0 outside, -1 none applies


class Cover(NamedTuple):
    """Each fix's permit, as an index into `permits` (-1: none), and its corridor distance."""

    permits: list[Permit]
    which: np.ndarray
    corridor_m: list[float | None]
    at_place: list[bool]


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
    ) -> Outcome:
        """`tracks` holds each vehicle's fixes in time order; `states` what the engine left after
        the vehicle's last evaluated fix (missing: a vehicle seen for the first time)."""
        outcome = Outcome()
        with _collector_paused():
            batch = self._batch(tracks, states, vehicles, outcome)
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
    ) -> Batch | None:
        """The fixes to evaluate (counting the late and the unknown in `outcome`), as columns."""
        vehicle_ids: list[int] = []
        infos: list[VehicleInfo] = []
        before: list[dict[str, Any]] = []
        flat: list[Fix] = []
        starts = [0]
        for vehicle_id, fixes in tracks.items():
            vehicle = vehicles.get(vehicle_id)
            if vehicle is None:
                outcome.unknown_vehicle += len(fixes)
                continue
            state = states.get(vehicle_id) or new_state()
            last = state["t"]
            # In time order, so when the first is newer all are (the usual case): nothing to copy.
            if fixes and last is not None and fixes[0].t <= last:
                fresh = [f for f in fixes if f.t > last]
                outcome.late += len(fixes) - len(fresh)
                fixes = fresh
            if not fixes:
                continue
            vehicle_ids.append(vehicle_id)
            infos.append(vehicle)
            before.append(state)
            flat.extend(fixes)
            starts.append(len(flat))
        if not flat:
            return None
        # None becomes NaN
        t, lat, lon, speed = (
            np.array(list(map(itemgetter(k), flat)), dtype=float) for k in range(4)
        )
        return Batch(
            vehicle_ids=vehicle_ids,
            vehicles=infos,
            before=before,
            fixes=flat,
            starts=starts,
            slot=np.repeat(np.arange(len(vehicle_ids)), np.diff(starts)),
            t=t,
            lat=lat,
            lon=lon,
            speed=speed,
            permits=self.permits.permits(vehicle_ids, float(t.min()), float(t.max())),
        )

    def _kinematics(self, batch: Batch, outcome: Outcome) -> Kinematics:
        """Local time, working time, distance and time from the previous fix, and movement, for
        every fix of the batch at once (numpy), each vehicle continuing from its state."""
        th = self.thresholds
        starts, slot, before, t, lat, lon = (
            batch.starts,
            batch.slot,
            batch.before,
            batch.t,
            batch.lat,
            batch.lon,
        )
        n = len(t)
        first = np.zeros(n, dtype=bool)
        first[starts[:-1]] = True
        ignition_off = np.fromiter((f.ignition is False for f in batch.fixes), bool, n)
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
        state_t = np.array([s["t"] for s in before], dtype=float)  # None becomes NaN
        prev_t[first] = state_t
        gap = t - prev_t
        has_pos = ~np.isnan(lat)
        index = np.where(has_pos, np.arange(n), -1)
        last_pos = np.maximum.accumulate(index)  # latest positioned fix at or before each
        prev_pos = np.roll(last_pos, 1)
        prev_pos[first] = -1
        prev_lat = np.where(prev_pos >= 0, lat[np.maximum(prev_pos, 0)], np.nan)
        prev_lon = np.where(prev_pos >= 0, lon[np.maximum(prev_pos, 0)], np.nan)
        # a vehicle's first positioned fix of the batch continues from its state's position
        own = (prev_pos < np.asarray(starts[:-1])[slot]) | (prev_pos < 0)
        state_pos = np.array([s["pos"] or NO_POSITION for s in before], dtype=float)[slot]
        state_lat, state_lon = state_pos[:, 0], state_pos[:, 1]
        prev_lat = np.where(own, state_lat, prev_lat)
        prev_lon = np.where(own, state_lon, prev_lon)
        k = np.cos(np.radians((lat + prev_lat) / 2))
        dx = np.radians(lon - prev_lon) * k
        dy = np.radians(lat - prev_lat)
        step = np.nan_to_num(EARTH_RADIUS_M * np.sqrt(dx * dx + dy * dy), nan=0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            derived = np.where(gap > 0, step / gap * 3.6, 0.0)
        moving = np.where(np.isnan(batch.speed), derived, batch.speed) >= th.moving_speed_kmh
        moving &= ~ignition_off
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
        ptr = np.searchsorted(point, np.arange(n + 1)).tolist()
        ids = fences.ids[fence].tolist()
        in_region = np.full(n, -1, dtype=np.int8)
        region_hit = np.zeros(n, dtype=bool)
        region_hit[point[fences.is_region[fence]]] = True
        for slot, vehicle in enumerate(batch.vehicles if fences.is_region.any() else ()):
            regions = fences.regions_for(vehicle)
            if not regions:
                continue
            lo, hi = batch.starts[slot], batch.starts[slot + 1]
            if all(fences.by_id[r].schedule is None for r in regions):
                in_region[lo:hi] = region_hit[lo:hi]
                continue
            for m in range(lo, hi):
                active = [r for r in regions if fences.by_id[r].active(local[m])]
                if active:
                    inside = ids[ptr[m] : ptr[m + 1]]
                    in_region[m] = any(r in inside for r in active)
        return Scene(
            ptr=ptr,
            ids=ids,
            banned_ptr=np.searchsorted(point[banned], np.arange(n + 1)).tolist(),
            banned_ids=fences.ids[fence[banned]].tolist(),
            depot=depot,
            prohibited=prohibited,
            limit=limit,
            in_region=in_region,
        )

    def _cover(self, batch: Batch, moving: np.ndarray) -> Cover:
        """Each fix's permit: the first of its vehicle's permits that covers the fix time."""
        n = len(batch.fixes)
        held = [batch.permits.get(v) or () for v in batch.vehicle_ids]
        table: list[Permit] = []
        which = np.full(n, -1, dtype=np.int64)
        for rank in range(max(map(len, held))):
            owners = [k for k, h in enumerate(held) if len(h) > rank]
            number = np.full(len(held), -1, dtype=np.int64)
            number[owners] = np.arange(len(table), len(table) + len(owners))
            table.extend(held[k][rank] for k in owners)
            start = np.full(len(held), np.nan)
            start[owners] = [held[k][rank].start_t for k in owners]
            end = np.full(len(held), np.nan)
            end[owners] = [held[k][rank].end_t for k in owners]
            slot = batch.slot
            covers = (which < 0) & (start[slot] <= batch.t) & (batch.t <= end[slot])
            which[covers] = number[slot][covers]
        corridor_m: list[float | None] = [None] * n
        at_place = [False] * n
        if not table:
            return Cover(table, which, corridor_m, at_place)
        permitted = which >= 0
        lined = [i for i, p in enumerate(table) if p.corridor is not None]
        # per permit, its corridor's place in `lined`; and -1 last, what `[which]` gives the
        # fixes without a permit (-1)
        line_of = np.full(len(table) + 1, -1)
        line_of[lined] = np.arange(len(lined))
        measured = np.flatnonzero((line_of[which] >= 0) & ~np.isnan(batch.lat))
        distances = np.zeros(n)
        if len(measured):
            distances[measured] = geometry.PlaneLine.distances_each(
                [_plane(table[i]) for i in lined],
                line_of[which[measured]],
                batch.lat[measured],
                batch.lon[measured],
            )
        # as the plain loop has it: a permit's empty corridor is none; a fix without a position
        # under a corridor is 0 m from it
        drawn = np.array([bool(p.corridor) for p in table] + [False])[which]
        for i, d in zip(np.flatnonzero(drawn).tolist(), distances[drawn].tolist(), strict=True):
            corridor_m[i] = d
        radius = self.thresholds.destination_radius_m
        fixes = batch.fixes
        # Only a stopped car's place matters (an unplanned stop); a moving one is not asked.
        for i in np.flatnonzero(permitted & ~moving).tolist():
            fix = fixes[i]
            if fix.lat is not None and fix.lon is not None:
                at_place[i] = any(
                    step_m(lat, lon, fix.lat, fix.lon) <= radius
                    for lat, lon in table[which[i]].places
                )
        return Cover(table, which, corridor_m, at_place)

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
        corridor = np.array([np.nan if c is None else c for c in cover.corridor_m], dtype=float)
        unauthorised = moving & ~permitted & ~depot
        category = [v.category for v in batch.vehicles]
        no_order = np.array([c not in th.no_order_exempt for c in category])[batch.slot]
        off_hours = np.array([c not in th.off_hours_exempt for c in category])[batch.slot]
        alarm = np.fromiter(
            ((f.alarm_bits & device_alarm.WATCHED) != 0 for f in batch.fixes), bool, len(moving)
        )
        wakes = {
            "no_order": unauthorised & (kin.working == 1) & no_order,
            "off_hours": unauthorised & (kin.working == 0) & off_hours,
            "off_route": positioned
            & permitted
            & (
                (corridor > th.off_route_distance_m)
                | (~moving & ~np.array(cover.at_place) & ~depot)
            ),
            "region_exit": positioned & (scene.in_region == 0),
            "prohibited_zone": positioned & scene.prohibited,
            "overnight_away": positioned & ~moving & ~depot & ~overnight,
            "overspeed": batch.speed > np.array(scene.limit, dtype=float),
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
        # What the loop reads per fix, as lists: indexing a list is what Python does fastest.
        local = kin.local.tolist()
        working = [WORKING[w] for w in kin.working.tolist()]
        moving = kin.moving.tolist()
        step = kin.step_m.tolist()
        gap = [None if g != g else g for g in kin.gap_s.tolist()]
        depot = scene.depot.tolist()
        in_region = [IN_REGION[r] for r in scene.in_region.tolist()]
        which = cover.which.tolist()
        woken = wake.tolist()
        ptr, ids, limit = scene.ptr, scene.ids, scene.limit
        banned_ptr, banned_ids = scene.banned_ptr, scene.banned_ids
        table, corridor, at_place = cover.permits, cover.corridor_m, cover.at_place
        fixes, starts, before = batch.fixes, batch.starts, batch.before
        # A vehicle whose rules all rest and none of whose fixes wakes one is left alone.
        busy = np.logical_or.reduceat(wake != 0, starts[:-1]).tolist()
        picked: dict[tuple[str, ...], dict[str, Any]] = {}
        coalesced: dict[tuple[int, str, str, float], AlertRecord] = {}
        for slot, vehicle_id in enumerate(batch.vehicle_ids):
            lo, hi = starts[slot], starts[slot + 1]
            state = before[slot]
            rule_states: dict[str, Any] = {}
            if state["rules"] or busy[slot]:
                rule_states.update(state["rules"])  # the caller's state stays as it was
                vehicle = batch.vehicles[slot]
                held = 0  # the rules with a state
                for name in rule_states:
                    held |= BIT.get(name, 0)
                for n in range(lo, hi):
                    rules = woken[n] | held
                    if not rules:
                        continue
                    fix = fixes[n]
                    if n > lo:
                        prev: Fix | None = fixes[n - 1]
                    else:
                        prev = Fix(*state["prev"]) if state["prev"] else None
                    a, b = ptr[n], ptr[n + 1]
                    c, d = banned_ptr[n], banned_ptr[n + 1]
                    permit = table[which[n]] if which[n] >= 0 else None
                    ctx = Context(
                        vehicle.id,
                        vehicle.category,
                        th,
                        local[n],
                        working[n],
                        moving[n],
                        step[n],
                        gap[n],
                        prev,
                        frozenset(ids[a:b]) if b > a else EMPTY,
                        depot[n],
                        in_region[n],
                        frozenset(banned_ids[c:d]) if d > c else EMPTY,
                        limit[n],
                        permit,
                        corridor[n],
                        at_place[n],
                    )
                    for bit, name, rule in RULES_OF[rules]:
                        rule_state, events = rule(rule_states.get(name), fix, ctx)
                        if rule_state is not None:
                            rule_states[name] = rule_state
                            held |= bit
                        elif held & bit:
                            del rule_states[name]
                            held &= ~bit
                        for event in events:
                            shown = picked.get(event.thresholds)
                            if shown is None:
                                shown = picked[event.thresholds] = th.pick(*event.thresholds)
                            record = AlertRecord(
                                vehicle.id,
                                vehicle.unit_id,
                                permit.order_id if permit is not None else None,
                                permit.driver_id if permit is not None else None,
                                event,
                                dict(shown),
                            )
                            coalesced[record.identity] = record
            last = fixes[hi - 1]
            pos: list[Any] | None = None
            if last.lat is not None:
                pos = [last.lat, last.lon]
            else:
                pos = _last_position(fixes, lo, hi, state["pos"])
            states[vehicle_id] = {"t": last.t, "prev": list(last), "pos": pos, "rules": rule_states}
        return list(coalesced.values())

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
            "prev": _fix_tuple(prev),
            "pos": list(pos) if pos is not None else None,
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
    fixes: list[Fix], lo: int, hi: int, before: list[Any] | None
) -> list[Any] | None:
    """The position of the latest of fixes[lo:hi] that has one, else the one before them."""
    for n in range(hi - 1, lo - 1, -1):
        fix = fixes[n]
        if fix.lat is not None:
            return [fix.lat, fix.lon]
    return list(before) if before is not None else None


_PLANES: dict[tuple[Any, ...], geometry.PlaneLine] = {}


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


def _fix_tuple(fix: Fix | None) -> list[Any] | None:
    if fix is None:
        return None
    return [fix.t, fix.lat, fix.lon, fix.speed_kmh, fix.ignition, fix.alarm_bits]
