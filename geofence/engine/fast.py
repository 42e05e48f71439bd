"""The engine's fast loop (`Engine.run`): the pipeline's steps 1 to 3 worked out for the whole
batch at once (numpy), and which rules each fix could wake from rest (each rule's
`wakes_columns`); the loop then visits only the fixes where a rule is in an episode or could
start one, and steps only those rules. A live batch holds a fix or two of each of thousands of
vehicles, so what is done per vehicle is done as columns too: a vehicle whose rules all rest
and that no fix wakes costs only its new state."""

from __future__ import annotations

import gc
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from itertools import chain, repeat
from operator import itemgetter
from types import NoneType
from typing import TYPE_CHECKING, Any

import numpy as np

from geofence.engine import corridors
from geofence.engine.base import AlertRecord, Batch, Cover, Kinematics, Outcome, Scene
from geofence.engine.batch import kinematics, read
from geofence.engine.scene import cover_of, scene_of
from geofence.fences import VehicleInfo
from geofence.rules import REGISTERED, movement
from geofence.rules.base import ACTIVE, Columns, Context, Fix, Thresholds
from telematics.batch import or_none

if TYPE_CHECKING:
    from geofence.engine import Engine

BIT = {rule.kind: 1 << i for i, rule in enumerate(REGISTERED)}
# For each set of rules (one bit per rule, in the order of REGISTERED), those rules in that order.
RULES_OF: tuple[tuple[tuple[int, str, Any], ...], ...] = tuple(
    tuple((BIT[rule.kind], rule.kind, rule.step) for rule in REGISTERED if mask & BIT[rule.kind])
    for mask in range(1 << len(REGISTERED))
)
WORKING_OF = np.array([None, False, True], dtype=object)  # [w + 1] for w in -1, 0, 1
STATE_RULES, STATE_PREV = itemgetter("rules"), itemgetter("prev")
FIX_POSITION = itemgetter(1, 2)  # (lat, lon)
# The rules built on `movement.step`, by their bit: `steps` steps an open episode of one of them
# going on in line. A fix wakes one of them exactly when it violates it (`movement.rule`).
MOVEMENT_RULES = {BIT[r.kind]: r.kind for r in REGISTERED if r.movement_severity is not None}
MOVEMENT_BITS = {name: bit for bit, name in MOVEMENT_RULES.items()}
MOVEMENT_SEVERITY = {
    r.kind: r.movement_severity for r in REGISTERED if r.movement_severity is not None
}
# The rules that read a fix's distance from its corridor, by name and as bits
CORRIDOR_RULES = frozenset(r.kind for r in REGISTERED if r.reads_corridor)
CORRIDOR_BITS = sum(BIT[name] for name in CORRIDOR_RULES)
# a movement episode's numbers, as `carry` reads them
EPISODE = itemgetter(*movement.EPISODE_NUMBERS)
EPISODE_WIDTH = len(movement.EPISODE_NUMBERS)
CARRY_DEPTH = 16  # `carry` looks at each vehicle's first so many fixes of a batch
STEP_M = 6  # where a context's `step_m` is among its arguments


def run(
    engine: Engine,
    tracks: Mapping[int, Sequence[Fix]],
    states: Mapping[int, dict[str, Any]],
    vehicles: Mapping[int, VehicleInfo],
    columns: np.ndarray | None = None,
) -> Outcome:
    """`Engine.run`."""
    outcome = Outcome()
    th = engine.thresholds
    with _collector_paused():
        batch = read(engine.permits, tracks, states, vehicles, outcome, columns)
        if batch is None:
            return outcome
        kin = kinematics(batch, outcome, clock=engine.clock, calendar=engine.calendar, th=th)
        scene = scene_of(engine.fences, th, batch, kin.local)
        cover = cover_of(th, batch, kin.moving)
        woken = wake(th, batch, kin, scene, cover)
        outcome.alerts = steps(th, batch, kin, scene, cover, woken, outcome.states)
    outcome.evaluated = len(batch.fixes)
    return outcome


def wake(th: Thresholds, batch: Batch, kin: Kinematics, scene: Scene, cover: Cover) -> np.ndarray:
    """Per fix, the rules it could wake from rest (a bit each, see `BIT`): each rule's
    `wakes_columns`, for the whole batch at once."""
    columns = Columns(
        th=th,
        positioned=~np.isnan(batch.lat),
        speed_kmh=batch.speed,
        alarm_bits=batch.alarm,
        working=kin.working,
        moving=kin.moving,
        gap_s=kin.gap_s,
        depot=scene.depot,
        prohibited=scene.prohibited,
        in_region=scene.in_region,
        speed_limit_kmh=np.array(scene.limit, dtype=float),
        permits=cover.permits,
        permit=cover.which,
        permitted=cover.which >= 0,
        corridor_m=cover.corridor_m,
        at_place=cover.at_place,
        categories=[v.category for v in batch.vehicles],
        vehicle=batch.slot,
        statuses=[v.status for v in batch.vehicles],
        workshop=scene.workshop,
        status_now=batch.status_now,
    )
    bits = np.zeros(len(batch.fixes), dtype=np.int64)
    for rule in REGISTERED:
        bits |= rule.wakes_columns(columns).astype(np.int64) * BIT[rule.kind]
    return bits


def steps(
    th: Thresholds,
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
    # before the loop (`carry`), which then starts from the state they leave.
    handled, carried_events = carry(th, batch, kin, wake, rules_before, rules_after)
    seen &= ~handled
    flushed = 0  # `carried_events` inserted into `coalesced`, in the plain loop's order
    if seen.any():
        chosen = np.flatnonzero(seen)
        owner = slot[chosen].tolist()
        picks = chosen.tolist()
        if cover.near is not None:
            # Only the rules that read the distance (`Rule.reads_corridor`) need it: it is
            # measured where one of them may be stepped, from the first fix that wakes one (or
            # from the first, for a vehicle whose state holds one); the other contexts of
            # `near` fixes say None.
            route_from = np.minimum.reduceat(np.where(wake & CORRIDOR_BITS, index, n), batch.first)
            holds_route = ~np.fromiter(
                map(CORRIDOR_RULES.isdisjoint, rules_before), bool, len(before)
            )
            routed = seen & (holds_route[slot] | (index >= route_from[slot]))
            corridors.measure(cover.near, np.flatnonzero(routed), cover.corridor_m)
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
            [
                vehicles[k].status if now else ACTIVE
                for k, now in zip(owner, batch.status_now[chosen].tolist(), strict=True)
            ],
            scene.workshop[chosen].tolist(),
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


def carry(
    th: Thresholds,
    batch: Batch,
    kin: Kinematics,
    wake: np.ndarray,
    rules_before: list[dict[str, Any]],
    rules_after: list[dict[str, Any]],
) -> tuple[np.ndarray, list[tuple[int, AlertRecord]]]:
    """The fixes `steps` need not visit, and their outcome.

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
    numbers = np.full((count, EPISODE_WIDTH), np.nan)
    numbers[places] = np.fromiter(
        chain.from_iterable(map(EPISODE, episodes)), float, EPISODE_WIDTH * len(episodes)
    ).reshape(-1, EPISODE_WIDTH)
    start_of, last_of, dist_of, open_of, reported_of = numbers.T
    slot, first, t = batch.slot, batch.first, batch.t
    bit_of = np.zeros(count, dtype=np.int64)
    bit_of[places] = bits[chosen]
    index = np.arange(n)
    bit = bit_of[slot]
    woken = (wake & bit) != 0
    alone = (bit != 0) & ((wake & ~bit) == 0)
    # the episode's last violating fix before each fix: the latest woken one of the
    # vehicle's earlier fixes in the batch, else the state's (as in `batch.kinematics`)
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
        (dist >= th.movement_min_distance_m) & (t - start_of[slot] >= th.movement_min_duration_s),
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
        events.append((int(changed[j]), AlertRecord.of(vehicle, None, event, th)))
    return handled, events


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


def _as_fix(fix: Sequence[Any] | None) -> Fix | None:
    if fix is None or fix.__class__ is Fix:
        return fix  # type: ignore[return-value]
    return Fix(*fix) if fix else None
