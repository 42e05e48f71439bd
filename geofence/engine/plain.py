"""The engine's reference loop (`Engine.run_plain`): the pipeline written fix by fix, every rule
stepped on every fix. It defines the outcome; the fast loop (`geofence.engine.fast`) is held to
it by a test on random timelines, and the bench measures one beside the other."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from geofence import geometry
from geofence.engine import corridors
from geofence.engine.base import EMPTY, AlertRecord, Kinematics, Outcome
from geofence.engine.batch import kinematics, read
from geofence.fences import FenceKind, FenceSet, VehicleInfo
from geofence.permits import Permit
from geofence.rules import RULES
from geofence.rules.base import ACTIVE, Context, Fix, Thresholds
from telematics.trips import step_m

if TYPE_CHECKING:
    from geofence.engine import Engine

RULE_LIST = tuple(RULES.items())
WORKING = {-1: None, 0: False, 1: True}


def run(
    engine: Engine,
    tracks: Mapping[int, Sequence[Fix]],
    states: Mapping[int, dict[str, Any]],
    vehicles: Mapping[int, VehicleInfo],
) -> Outcome:
    """`Engine.run_plain`."""
    outcome = Outcome()
    batch = read(engine.permits, tracks, states, vehicles, outcome)
    if batch is None:
        return outcome
    flat = batch.fixes
    hits: dict[int, list[int]] = {}  # flat index of a fix -> indexes of fences containing it
    positioned = [i for i, f in enumerate(flat) if f.lat is not None]
    if positioned:
        lats = np.fromiter((flat[i].lat for i in positioned), float, len(positioned))
        lons = np.fromiter((flat[i].lon for i in positioned), float, len(positioned))
        for point, found in engine.fences.containing(lons, lats).items():
            hits[positioned[point]] = found
    kin = kinematics(
        batch, outcome, clock=engine.clock, calendar=engine.calendar, th=engine.thresholds
    )
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
            [corridors.plane(covering[i]) for i in index],  # type: ignore[arg-type]
            np.arange(len(index)),
            np.array([flat[i].lat for i in index], dtype=float),
            np.array([flat[i].lon for i in index], dtype=float),
        )
        for i, d in zip(index, distances.tolist(), strict=True):
            corridor[i] = d
    coalesced: dict[tuple[int, str, str, float], AlertRecord] = {}
    for slot, vehicle_id in enumerate(batch.vehicle_ids):
        lo, hi = batch.starts[slot], batch.starts[slot + 1]
        outcome.states[vehicle_id] = _vehicle(
            engine.fences,
            engine.thresholds,
            batch.vehicles[slot],
            range(lo, hi),
            batch.status_now,
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


def _vehicle(
    fences: FenceSet,
    th: Thresholds,
    vehicle: VehicleInfo,
    numbers: range,
    status_now: np.ndarray,
    flat: list[Fix],
    kin: Kinematics,
    hits: dict[int, list[int]],
    covering: list[Permit | None],
    corridor: list[float],
    state: dict[str, Any],
    coalesced: dict[tuple[int, str, str, float], AlertRecord],
) -> dict[str, Any]:
    regions = fences.regions_for(vehicle)
    rule_states: dict[str, Any] = dict(state["rules"])  # the caller's state stays as it was
    prev = Fix(*state["prev"]) if state["prev"] else None
    pos = state["pos"]
    for n in numbers:
        fix = flat[n]
        local_t = float(kin.local[n])
        inside: frozenset[int] = EMPTY
        depot = False
        workshop = False
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
                elif fence.kind == FenceKind.WORKSHOP:
                    workshop = True
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
            status=vehicle.status if status_now[n] else ACTIVE,
            workshop=workshop,
        )
        for name, rule in RULE_LIST:
            rule_state, events = rule(rule_states.get(name), fix, ctx)
            if rule_state is not None:
                rule_states[name] = rule_state
            elif name in rule_states:
                del rule_states[name]
            for event in events:
                # an episode's latest event replaces the batch's earlier ones
                record = AlertRecord.of(vehicle, permit, event, th)
                coalesced[record.identity] = record
        prev = fix
    return {
        "t": prev.t if prev is not None else None,
        "prev": prev,
        "pos": tuple(pos) if pos is not None else None,
        "rules": rule_states,
    }
