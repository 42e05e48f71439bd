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
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from geofence import geometry
from geofence.calendar import DAY, LocalClock, WorkingCalendar
from geofence.fences import FenceKind, FenceSet, VehicleInfo
from geofence.permits import Permit, PermitSource
from geofence.rules import RULES, wakes
from geofence.rules.base import Context, Event, Fix, Thresholds
from telematics.trips import step_m

EMPTY: frozenset[int] = frozenset()
RULE_LIST = tuple(RULES.items())
EARTH_RADIUS_M = 6_371_008.8
WORKING = {-1: None, 0: False, 1: True}


class Kinematics(NamedTuple):
    """Per fix of a batch (or of one vehicle's slice of it)."""

    local: list[float]  # local epoch seconds
    working: list[bool | None]  # None: the calendar does not cover the day
    moving: list[bool]
    step_m: list[float]  # from the previous fix with a position
    gap_s: list[float | None]  # from the previous fix; None for a vehicle's first ever


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
        todo: dict[int, Sequence[Fix]] = {}
        for vehicle_id, fixes in tracks.items():
            if vehicle_id not in vehicles:
                outcome.unknown_vehicle += len(fixes)
                continue
            if not fixes:
                continue
            state = states.get(vehicle_id)
            last = state["t"] if state else None
            # In time order, so when the first is newer all are (the usual case): nothing to copy.
            fresh = fixes if last is None or fixes[0].t > last else [f for f in fixes if f.t > last]
            outcome.late += len(fixes) - len(fresh)
            if fresh:
                todo[vehicle_id] = fresh
        if not todo:
            return outcome
        flat = [f for fixes in todo.values() for f in fixes]
        positioned = [i for i, f in enumerate(flat) if f.lat is not None]
        starts = list(itertools.accumulate((len(f) for f in todo.values()), initial=0))
        hits: dict[int, list[int]] = {}  # flat index of a fix -> indexes of fences containing it
        if positioned:
            lats = np.fromiter((flat[i].lat for i in positioned), float, len(positioned))
            lons = np.fromiter((flat[i].lon for i in positioned), float, len(positioned))
            for point, found in self.fences.containing(lons, lats).items():
                hits[positioned[point]] = found
        permits = self.permits.permits(todo, min(f.t for f in flat), max(f.t for f in flat))
        before = [states.get(v) or new_state() for v in todo]
        kin = self._kinematics(flat, starts, [vehicles[v] for v in todo], before, outcome)
        covering: list[Permit | None] = [None] * len(flat)
        for slot, vehicle_id in enumerate(todo):
            held = permits.get(vehicle_id)
            if held:
                for n in range(starts[slot], starts[slot + 1]):
                    t = flat[n].t
                    covering[n] = next((p for p in held if p.covers(t)), None)
        corridor = _corridor_distances(flat, covering) if permits else None
        coalesced: dict[tuple[int, str, str, float], AlertRecord] = {}
        for slot, (vehicle_id, fixes) in enumerate(todo.items()):
            outcome.states[vehicle_id] = self._vehicle(
                vehicles[vehicle_id],
                fixes,
                starts[slot],
                kin,
                hits,
                covering,
                corridor,
                before[slot],
                coalesced,
            )
        outcome.evaluated = len(flat)
        outcome.alerts = list(coalesced.values())
        return outcome

    def _kinematics(
        self,
        flat: list[Fix],
        starts: list[int],
        vehicles: list[VehicleInfo],
        before: list[dict[str, Any]],
        outcome: Outcome,
    ) -> Kinematics:
        """Local time, working time, distance and time from the previous fix, and movement, for
        every fix of the batch at once (numpy), each vehicle continuing from its state."""
        th = self.thresholds
        n = len(flat)
        lengths = np.diff(starts)
        slot = np.repeat(np.arange(len(vehicles)), lengths)
        first = np.zeros(n, dtype=bool)
        first[starts[:-1]] = True
        t = np.fromiter((f.t for f in flat), float, n)
        lat = np.fromiter((np.nan if f.lat is None else f.lat for f in flat), float, n)
        lon = np.fromiter((np.nan if f.lon is None else f.lon for f in flat), float, n)
        speed = np.fromiter(
            (np.nan if f.speed_kmh is None else f.speed_kmh for f in flat), float, n
        )
        ignition_off = np.fromiter((f.ignition is False for f in flat), bool, n)
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
        hours_of = [
            self.calendar.unit_hours.get(v.unit_id, self.calendar.default_hours) for v in vehicles
        ]
        begin = np.array([h[0] for h in hours_of], dtype=float)[slot]
        end = np.array([h[1] for h in hours_of], dtype=float)[slot]
        working = np.where(
            working_day < 0, -1, (working_day == 1) & (second >= begin) & (second < end)
        ).astype(np.int8)
        # the previous fix (for the gap) and the previous fix with a position (for the step)
        prev_t = np.roll(t, 1)
        state_t = np.array([np.nan if s["t"] is None else s["t"] for s in before])
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
        own = (prev_pos < np.repeat(np.asarray(starts[:-1]), lengths)) | (prev_pos < 0)
        state_lat = np.array([np.nan if s["pos"] is None else s["pos"][0] for s in before])[slot]
        state_lon = np.array([np.nan if s["pos"] is None else s["pos"][1] for s in before])[slot]
        prev_lat = np.where(own, state_lat, prev_lat)
        prev_lon = np.where(own, state_lon, prev_lon)
        k = np.cos(np.radians((lat + prev_lat) / 2))
        dx = np.radians(lon - prev_lon) * k
        dy = np.radians(lat - prev_lat)
        step = np.nan_to_num(EARTH_RADIUS_M * np.sqrt(dx * dx + dy * dy), nan=0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            derived = np.where(gap > 0, step / gap * 3.6, 0.0)
        moving = np.where(np.isnan(speed), derived, speed) >= th.moving_speed_kmh
        moving &= ~ignition_off
        return Kinematics(
            local=local.tolist(),
            working=[WORKING[w] for w in working.tolist()],
            moving=moving.tolist(),
            step_m=step.tolist(),
            gap_s=[None if g != g else g for g in gap.tolist()],
        )

    def _vehicle(
        self,
        vehicle: VehicleInfo,
        fixes: Sequence[Fix],
        base: int,
        kin: Kinematics,
        hits: dict[int, list[int]],
        covering: list[Permit | None],
        corridor: list[float] | None,
        state: dict[str, Any],
        coalesced: dict[tuple[int, str, str, float], AlertRecord],
    ) -> dict[str, Any]:
        th = self.thresholds
        fences = self.fences
        regions = fences.regions_for(vehicle)
        rule_states: dict[str, Any] = dict(state["rules"])  # the caller's state stays as it was
        prev = Fix(*state["prev"]) if state["prev"] else None
        pos = state["pos"]
        rules = RULE_LIST
        local, working, moving, step, gap = kin
        for n, fix in enumerate(fixes, base):
            local_t = local[n]
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
            permit = covering[n]
            at_place = False
            # Only a stopped car's place matters (an unplanned stop); a moving one is not asked.
            if permit is not None and not moving[n] and fix.lat is not None and fix.lon is not None:
                radius = th.destination_radius_m
                at_place = any(
                    step_m(lat, lon, fix.lat, fix.lon) <= radius for lat, lon in permit.places
                )
            ctx = Context(
                vehicle_id=vehicle.id,
                category=vehicle.category,
                th=th,
                local_t=local_t,
                working=working[n],
                moving=moving[n],
                step_m=step[n],
                gap_s=gap[n],
                prev=prev,
                fences=inside,
                depot=depot,
                in_region=in_region,
                prohibited=prohibited,
                speed_limit_kmh=limit,
                permit=permit,
                corridor_m=corridor[n] if corridor and permit and permit.corridor else None,
                at_place=at_place,
            )
            flags = wakes(fix, ctx)
            if not rule_states and not any(flags):
                prev = fix  # every rule rests and nothing in this fix wakes one
                continue
            for (name, rule), wake in zip(rules, flags, strict=True):
                current = rule_states.get(name)
                if current is None and not wake:
                    continue  # resting, and nothing here to wake it
                rule_state, events = rule(current, fix, ctx)
                if rule_state is not None:
                    rule_states[name] = rule_state
                elif name in rule_states:
                    del rule_states[name]
                for event in events:
                    record = AlertRecord(
                        vehicle_id=vehicle.id,
                        unit_id=vehicle.unit_id,
                        order_id=permit.order_id if permit is not None else None,
                        driver_id=permit.driver_id if permit is not None else None,
                        event=event,
                        thresholds=th.pick(*event.thresholds),
                    )
                    coalesced[record.identity] = record
            prev = fix
        return {
            "t": prev.t if prev is not None else None,
            "prev": _fix_tuple(prev),
            "pos": list(pos) if pos is not None else None,
            "rules": rule_states,
        }


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


def _corridor_distances(fixes: Sequence[Fix], covering: Sequence[Permit | None]) -> list[float]:
    """Each fix's distance from the corridor of the permit covering it, in metres: every fix of
    the batch in one vectorised call, each in its corridor's own metric plane."""
    distances = [0.0] * len(fixes)
    index, planes = [], []
    for i, (fix, permit) in enumerate(zip(fixes, covering, strict=True)):
        if permit is not None and permit.corridor is not None and fix.lat is not None:
            index.append(i)
            planes.append(_plane(permit))
    if not index:
        return distances
    lats = np.fromiter((fixes[i].lat for i in index), float, len(index))
    lons = np.fromiter((fixes[i].lon for i in index), float, len(index))
    for i, d in zip(index, geometry.PlaneLine.distances_many(planes, lats, lons), strict=True):
        distances[i] = d
    return distances


def _fix_tuple(fix: Fix | None) -> list[Any] | None:
    if fix is None:
        return None
    return [fix.t, fix.lat, fix.lon, fix.speed_kmh, fix.ignition, fix.alarm_bits]
