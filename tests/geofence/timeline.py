"""Synthetic timelines for the rules: fixes with the context the engine would have built."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from geofence.rules import Step
from geofence.rules.base import Context, Event, Fix, Thresholds

T0 = 1_790_000_000.0  # a fixed instant: rules never read the clock
TH = Thresholds()
LAT, LON = 30.25, 120.17
M_PER_DEG_LAT = 111_195.0


def north(metres: float) -> float:
    """The latitude `metres` north of LAT."""
    return LAT + metres / M_PER_DEG_LAT


def ctx(**changes: Any) -> Context:
    base = Context(
        vehicle_id=1,
        category="general",
        th=TH,
        local_t=T0 + 8 * 3600,
        working=True,
        moving=True,
        step_m=0.0,
        gap_s=None,
        prev=None,
    )
    return replace(base, **changes)


def run(
    step: Step, points: Iterable[tuple[Fix, Context]], state: dict[str, Any] | None = None
) -> tuple[dict[str, Any] | None, list[Event]]:
    events: list[Event] = []
    for fix, context in points:
        state, fired = step(state, fix, context)
        events += fired
    return state, events


def opened(events: list[Event]) -> list[Event]:
    """Events of episodes still going on (the opening one and its updates)."""
    return [e for e in events if e.ended_t is None]


def closed(events: list[Event]) -> list[Event]:
    return [e for e in events if e.ended_t is not None]
