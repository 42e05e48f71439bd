"""`region_exit`: outside every permitted-region fence that applies to the vehicle for
`region_exit_grace_s`, with no assignment approved for out-of-region travel covering it.
Vehicles no permitted region applies to are not checked. A fix without a position changes nothing.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from geofence.rules import dwell
from geofence.rules.base import NO_EVENTS, Columns, Context, Event, Fix, Rule, Severity

KIND = "region_exit"
THRESHOLDS = ("region_exit_grace_s",)


def wakes(fix: Fix, ctx: Context) -> bool:
    return fix.lat is not None and ctx.in_region is False


def wakes_columns(columns: Columns) -> np.ndarray:
    return columns.positioned & (columns.in_region == 0)


def step(
    state: dict[str, Any] | None, fix: Fix, ctx: Context
) -> tuple[dict[str, Any] | None, tuple[Event, ...]]:
    if fix.lat is None or (state is None and ctx.in_region is not False):
        return state, NO_EVENTS
    approved = ctx.permit is not None and ctx.permit.out_of_region
    outside = ctx.in_region is False and not approved
    return dwell.step(
        state,
        fix,
        holds=outside,
        after_s=ctx.th.region_exit_grace_s,
        kind=KIND,
        severity=Severity.HIGH,
        thresholds=THRESHOLDS,
    )


RULE = Rule(KIND, step, wakes, wakes_columns)
