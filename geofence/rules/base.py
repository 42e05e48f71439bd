"""What every rule sees and returns.

A rule is a pure state machine, `step(state, fix, context) -> (state, events)`, fed one vehicle's
fixes in time order. Its state is None or a small JSON-able dict, so the engine can keep it in
Redis across worker restarts. An episode is named by (kind, key, started_t): a rule that sees the
same fixes from the same state names the same episodes, which is what makes a re-run batch and a
replay land on the alerts the live engine stored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from geofence.permits import Permit


class Severity:
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class Fix(NamedTuple):
    """A tuple, because the engine makes one per fix and reads it field by field."""

    t: float  # epoch seconds, UTC
    lat: float | None
    lon: float | None
    speed_kmh: float | None = None
    ignition: bool | None = None
    alarm_bits: int = 0


@dataclass(frozen=True, slots=True)
class Thresholds:
    """The engine's settings in the units rules compute with (seconds of the local day)."""

    moving_speed_kmh: float = 5
    movement_min_distance_m: float = 500
    movement_min_duration_s: float = 60
    movement_end_s: float = 300
    no_order_exempt: frozenset[str] = frozenset()
    off_hours_exempt: frozenset[str] = frozenset({"emergency", "enforcement", "confidential_comms"})
    off_route_distance_m: float = 1000
    off_route_duration_s: float = 180
    destination_radius_m: float = 300
    unplanned_stop_s: float = 1200
    stop_radius_m: float = 100
    region_exit_grace_s: float = 60
    prohibited_dwell_s: float = 300
    night_start_s: int = 22 * 3600
    night_end_s: int = 6 * 3600
    overnight_min_s: float = 7200
    parked_radius_m: float = 300
    speed_limit_kmh: float = 120
    overspeed_duration_s: float = 30
    signal_gap_s: float = 600
    signal_jump_m: float = 1000

    def pick(self, *names: str) -> dict[str, Any]:
        """The named thresholds as JSON values (cached: every alert record asks)."""
        cache = _PICKED.get(self)
        if cache is None:
            cache = _PICKED[self] = {}
        found = cache.get(names)
        if found is None:
            found = cache[names] = {name: _plain(getattr(self, name)) for name in names}
        return dict(found)


_PICKED: dict[Thresholds, dict[tuple[str, ...], dict[str, Any]]] = {}


def _plain(value: Any) -> Any:
    return sorted(value) if isinstance(value, frozenset) else value


# The status a fix is judged by where its vehicle's status is not known then (before its
# `VehicleInfo.status_since`)
ACTIVE = "active"


@dataclass(slots=True)
class Context:
    """What the engine knows about one fix beyond the fix itself."""

    vehicle_id: int
    category: str
    th: Thresholds
    local_t: float  # the fix time as local epoch seconds (display zone)
    working: bool | None  # working time; None where the calendar does not cover the day
    moving: bool
    step_m: float  # distance from the vehicle's previous fix with a position
    gap_s: float | None  # time since the vehicle's previous fix; None for its first
    prev: Fix | None
    fences: frozenset[int] = frozenset()  # active fences in scope that contain the fix
    depot: bool = False
    in_region: bool | None = None  # None: no permitted region applies to this vehicle
    prohibited: frozenset[int] = frozenset()
    speed_limit_kmh: float = 120
    permit: Permit | None = None
    corridor_m: float | None = None  # distance from the permit's corridor
    at_place: bool = False  # within the destination radius of the permit's origin or a destination
    # the vehicle's registry status (`fleet.models.VehicleStatus`) at the fix: the status it
    # holds now from its `status_since` on, `ACTIVE` before
    status: str = ACTIVE
    workshop: bool = False  # inside a workshop fence that applies to the vehicle


class Event(NamedTuple):
    """The state of one episode as a rule last saw it; `ended_t` None while it lasts. A tuple:
    rules make one on nearly every fix of an episode, and a frozen dataclass costs several times
    as much to build."""

    kind: str
    key: str
    started_t: float
    last_t: float
    ended_t: float | None
    severity: str
    lat: float | None
    lon: float | None
    measured: dict[str, Any]
    thresholds: tuple[str, ...] = ()
    fence_id: int | None = None


NO_EVENTS: tuple[Event, ...] = ()


def episode_event(
    state: dict[str, Any],
    ended: float | None,
    *,
    kind: str,
    severity: str,
    measured: dict[str, Any],
    key: str = "",
    thresholds: tuple[str, ...] = (),
    fence_id: int | None = None,
) -> Event:
    """The event of an episode whose state holds its `start`, `last` and place (`lat`, `lon`)."""
    return Event(
        kind=kind,
        key=key,
        started_t=state["start"],
        last_t=state["last"],
        ended_t=ended,
        severity=severity,
        lat=state["lat"],
        lon=state["lon"],
        measured=measured,
        thresholds=thresholds,
        fence_id=fence_id,
    )


@dataclass(frozen=True, slots=True)
class Columns:
    """What `Fix` and `Context` say of every fix of a batch, as columns (an entry per fix), for
    the rules' wake conditions: the engine asks them of a whole batch at once."""

    th: Thresholds
    positioned: np.ndarray
    speed_kmh: np.ndarray  # NaN: no speed
    alarm_bits: np.ndarray
    working: np.ndarray  # 1 working time, 0 not, -1 the calendar does not cover the day
    moving: np.ndarray
    gap_s: np.ndarray  # NaN: the vehicle's first fix
    depot: np.ndarray
    prohibited: np.ndarray  # inside any prohibited fence
    in_region: np.ndarray  # 1 inside an active permitted region, 0 outside, -1 none applies
    speed_limit_kmh: np.ndarray
    permits: list[Permit]
    permit: np.ndarray  # an index into `permits`, -1 for none
    permitted: np.ndarray  # permit >= 0
    corridor_m: np.ndarray  # NaN: no corridor, or known to be within `off_route_distance_m`
    at_place: np.ndarray
    categories: list[str]  # per vehicle
    vehicle: np.ndarray  # per fix, its vehicle's place in `categories` and `statuses`
    statuses: list[str]  # per vehicle, its registry status
    workshop: np.ndarray  # inside a workshop fence that applies to the vehicle
    # per fix, whether it comes at or after its vehicle's `status_since` (before: `ACTIVE`)
    status_now: np.ndarray

    def status_in(self, statuses: frozenset[str], *, negate: bool = False) -> Any:
        """Per fix, whether its status (`Context.status`) is one of `statuses` (or, `negate`,
        is not); a plain False (True) for all where no fix's is."""
        earlier = (ACTIVE in statuses) != negate
        if statuses.isdisjoint(self.statuses) and ACTIVE not in statuses:
            return negate
        now = np.array([(s in statuses) != negate for s in self.statuses])[self.vehicle]
        return np.where(self.status_now, now, earlier)

    def outside(self, exempt: frozenset[str]) -> Any:
        """Per fix, whether its vehicle's category is not in `exempt` (True for all: none is)."""
        if exempt.isdisjoint(self.categories):
            return True
        return np.array([c not in exempt for c in self.categories])[self.vehicle]


Step = Callable[
    [dict[str, Any] | None, Fix, Context], tuple[dict[str, Any] | None, tuple[Event, ...]]
]


class Rule(NamedTuple):
    """A rule as the engine runs it: its step, and whether a fix could wake it from rest, asked
    of one fix (`wakes`) or of a batch's columns (`wakes_columns`). The engine skips a resting
    rule on a fix that does not wake it, so a wake condition must be True whenever
    `step(None, fix, ctx)` would return a state or an event (a test holds each rule to it),
    and its two forms must agree (the engine's two loops are held to the same outcome)."""

    kind: str
    step: Step
    wakes: Callable[[Fix, Context], bool]
    wakes_columns: Callable[[Columns], np.ndarray]
    # Whether the step reads `Context.corridor_m`: the engine measures the distance only for
    # the fixes such a rule may be stepped on (other contexts may say None instead).
    reads_corridor: bool = False
    # For a rule built on `movement.step`, its episodes' severity: the engine carries such an
    # episode on in line, without the step (`movement.rule` says why it may).
    movement_severity: str | None = None
