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

import bisect
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from geofence import geometry
from geofence.calendar import DAY, LocalClock, WorkingCalendar
from geofence.fences import FenceKind, FenceSet, VehicleInfo
from geofence.permits import Permit, PermitSource
from geofence.rules import RULES
from geofence.rules.base import Context, Event, Fix, Thresholds
from telematics.trips import step_m

EMPTY: frozenset[int] = frozenset()


@dataclass(frozen=True, slots=True)
class AlertRecord:
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
        todo: dict[int, list[Fix]] = {}
        for vehicle_id, fixes in tracks.items():
            if vehicle_id not in vehicles:
                outcome.unknown_vehicle += len(fixes)
                continue
            last = (states.get(vehicle_id) or new_state())["t"]
            fresh = [f for f in fixes if last is None or f.t > last]
            outcome.late += len(fixes) - len(fresh)
            if fresh:
                todo[vehicle_id] = fresh
        if not todo:
            return outcome
        flat = [f for fixes in todo.values() for f in fixes]
        positioned = [i for i, f in enumerate(flat) if f.lat is not None]
        # Fence hits per vehicle, keyed by the fix's place in that vehicle's list.
        starts = list(itertools.accumulate((len(f) for f in todo.values()), initial=0))
        hits_by_vehicle: list[dict[int, list[int]]] = [{} for _ in todo]
        if positioned:
            lats = np.fromiter((flat[i].lat for i in positioned), float, len(positioned))
            lons = np.fromiter((flat[i].lon for i in positioned), float, len(positioned))
            for point, hits in self.fences.containing(lons, lats).items():
                n = positioned[point]
                slot = bisect.bisect_right(starts, n) - 1
                hits_by_vehicle[slot][n - starts[slot]] = hits
        permits = self.permits.permits(todo, min(f.t for f in flat), max(f.t for f in flat))
        coalesced: dict[tuple[int, str, str, float], AlertRecord] = {}
        for slot, (vehicle_id, fixes) in enumerate(todo.items()):
            state = self._vehicle(
                vehicles[vehicle_id],
                fixes,
                hits_by_vehicle[slot],
                permits.get(vehicle_id, ()),
                dict(states.get(vehicle_id) or new_state()),
                coalesced,
                outcome,
            )
            outcome.states[vehicle_id] = state
        outcome.alerts = list(coalesced.values())
        return outcome

    def _vehicle(
        self,
        vehicle: VehicleInfo,
        fixes: Sequence[Fix],
        hits: dict[int, list[int]],
        permits: Sequence[Permit],
        state: dict[str, Any],
        coalesced: dict[tuple[int, str, str, float], AlertRecord],
        outcome: Outcome,
    ) -> dict[str, Any]:
        th = self.thresholds
        fences = self.fences
        regions = fences.regions_for(vehicle)
        covering: list[Permit | None] = (
            [next((p for p in permits if p.covers(f.t)), None) for f in fixes]
            if permits
            else [None] * len(fixes)
        )
        corridor = _corridor_distances(fixes, covering) if permits else None
        rule_states: dict[str, Any] = dict(state["rules"])
        prev = Fix(*state["prev"]) if state["prev"] else None
        pos = state["pos"]
        for n, fix in enumerate(fixes):
            local_t = self.clock.local(fix.t)
            working = self.calendar.working(vehicle.unit_id, local_t)
            if working is None:
                outcome.uncovered_days.add(int(local_t // DAY))
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
            moved = 0.0
            if fix.lat is not None and fix.lon is not None:
                if pos is not None:
                    moved = step_m(pos[0], pos[1], fix.lat, fix.lon)
                pos = (fix.lat, fix.lon)
            gap = fix.t - prev.t if prev is not None else None
            if fix.speed_kmh is not None:
                moving = fix.speed_kmh >= th.moving_speed_kmh
            else:
                moving = bool(gap) and moved / gap * 3.6 >= th.moving_speed_kmh  # type: ignore[operator]
            moving = moving and fix.ignition is not False
            permit = covering[n]
            at_place = False
            if permit is not None and fix.lat is not None and fix.lon is not None:
                radius = th.destination_radius_m
                at_place = any(
                    step_m(lat, lon, fix.lat, fix.lon) <= radius for lat, lon in permit.places
                )
            ctx = Context(
                vehicle_id=vehicle.id,
                category=vehicle.category,
                th=th,
                local_t=local_t,
                working=working,
                moving=moving,
                step_m=moved,
                gap_s=gap,
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
            for name, rule in RULES.items():
                rule_state, events = rule(rule_states.get(name), fix, ctx)
                if rule_state is None:
                    rule_states.pop(name, None)
                else:
                    rule_states[name] = rule_state
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
            outcome.evaluated += 1
        return {
            "t": prev.t if prev is not None else None,
            "prev": _fix_tuple(prev),
            "pos": list(pos) if pos is not None else None,
            "rules": rule_states,
        }


def _corridor_distances(fixes: Sequence[Fix], covering: Sequence[Permit | None]) -> list[float]:
    """Each fix's distance from the corridor of the permit covering it (vectorised per permit)."""
    distances = [0.0] * len(fixes)
    groups: dict[int, tuple[Permit, list[int]]] = {}
    for i, (fix, permit) in enumerate(zip(fixes, covering, strict=True)):
        if permit is not None and permit.corridor is not None and fix.lat is not None:
            groups.setdefault(id(permit), (permit, []))[1].append(i)
    for permit, index in groups.values():
        assert permit.corridor is not None
        lats = np.fromiter((fixes[i].lat for i in index), float, len(index))
        lons = np.fromiter((fixes[i].lon for i in index), float, len(index))
        for i, d in zip(index, geometry.distance_m(permit.corridor, lats, lons), strict=True):
            distances[i] = float(d)
    return distances


def _fix_tuple(fix: Fix | None) -> list[Any] | None:
    if fix is None:
        return None
    return [fix.t, fix.lat, fix.lon, fix.speed_kmh, fix.ignition, fix.alarm_bits]
