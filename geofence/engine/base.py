"""What the engine's two loops share: the batch as columns, what is known of each fix, and what
comes out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from geofence.fences import VehicleInfo
from geofence.permits import Permit
from geofence.rules.base import Event, Fix, Thresholds

EMPTY: frozenset[int] = frozenset()
EARTH_RADIUS_M = 6_371_008.8


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

    @classmethod
    def of(
        cls, vehicle: VehicleInfo, permit: Permit | None, event: Event, th: Thresholds
    ) -> AlertRecord:
        """The record of a vehicle's event, under the permit covering its fix."""
        return cls(
            vehicle_id=vehicle.id,
            unit_id=vehicle.unit_id,
            order_id=permit.order_id if permit is not None else None,
            driver_id=permit.driver_id if permit is not None else None,
            event=event,
            thresholds=th.pick(*event.thresholds),
        )


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
    # per fix: whether its vehicle's status applies to it, the fix coming at or after the
    # vehicle's `status_since`; before it, the fix is judged as one of an active vehicle
    status_now: np.ndarray
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
    workshop: np.ndarray  # inside a workshop fence


class Cover(NamedTuple):
    """Each fix's permit, as an index into `permits` (-1: none), and its corridor distance."""

    permits: list[Permit]
    which: np.ndarray
    corridor_m: np.ndarray  # NaN: no corridor to measure from, or not measured yet (`near`)
    at_place: np.ndarray
    near: Near | None = None


class Near(NamedTuple):
    """The fixes known to be within `off_route_distance_m` of their corridor but not measured:
    only a fix `off_route` is stepped on needs the distance itself (see `fast.steps`)."""

    fixes: np.ndarray  # ascending
    points: np.ndarray  # each one's point in its corridor's plane
    lines: np.ndarray  # and that corridor, in the plane
