"""`signal_loss`: the tracker went silent for `signal_gap_s` while the ignition was on, or came
back from such a gap `signal_jump_m` or more from where it went silent (a removed or shielded
tracker). The episode is the gap itself, so it opens and ends at once."""

from __future__ import annotations

from typing import Any

import numpy as np

from geofence.rules.base import NO_EVENTS, Columns, Context, Event, Fix, Rule, Severity

KIND = "signal_loss"
THRESHOLDS = ("signal_gap_s", "signal_jump_m")


def wakes(fix: Fix, ctx: Context) -> bool:
    return ctx.gap_s is not None and ctx.gap_s >= ctx.th.signal_gap_s


def wakes_columns(columns: Columns) -> np.ndarray:
    return columns.gap_s >= columns.th.signal_gap_s  # NaN: a first fix, never


def step(
    state: dict[str, Any] | None, fix: Fix, ctx: Context
) -> tuple[dict[str, Any] | None, tuple[Event, ...]]:
    prev, gap = ctx.prev, ctx.gap_s
    if prev is None or gap is None or gap < ctx.th.signal_gap_s:
        return None, NO_EVENTS
    jumped = fix.lat is not None and ctx.step_m >= ctx.th.signal_jump_m
    if not (prev.ignition is True or jumped):
        return None, NO_EVENTS
    return None, (
        Event(
            kind=KIND,
            key="",
            started_t=prev.t,
            last_t=fix.t,
            ended_t=fix.t,
            severity=Severity.HIGH if jumped else Severity.MEDIUM,
            lat=prev.lat,
            lon=prev.lon,
            measured={
                "gap_s": round(gap, 1),
                "jump_m": round(ctx.step_m, 1) if fix.lat is not None else None,
                "ignition_on": prev.ignition is True,
            },
            thresholds=THRESHOLDS,
        ),
    )


RULE = Rule(KIND, step, wakes, wakes_columns)
