"""Approval chains as data (pure): each unit's rules say which facts of an order call for an
approval and at which level above the order's unit (0: the unit itself, 1: its parent, ...).
Every order needs its own unit's approval; matching rules add steps at higher levels, one step per
level, lowest first, each step naming why it is needed."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Condition(StrEnum):
    ALWAYS = "always"
    OUT_OF_REGION = "out_of_region"
    LONGER_THAN_DAYS = "longer_than_days"  # param: days
    NON_WORKING_DAY = "non_working_day"  # the window touches a non-working (or unknown) day
    NIGHT = "night"  # the window touches the night window
    LARGE_VEHICLE = "large_vehicle"  # a minibus, bus or truck is asked for
    PASSENGERS_OVER = "passengers_over"  # param: passengers


LARGE_BODIES = frozenset({"minibus", "bus", "truck"})


@dataclass(frozen=True, slots=True)
class Traits:
    """The facts of an order that approval rules look at."""

    out_of_region: bool = False
    days: float = 0.0
    non_working_day: bool = False
    night: bool = False
    body_class: str | None = None
    passengers: int = 1


@dataclass(frozen=True, slots=True)
class Rule:
    condition: Condition
    level: int
    name: str = ""
    param: float | None = None


@dataclass(frozen=True, slots=True)
class Step:
    level: int
    reasons: tuple[str, ...] = field(default_factory=tuple)


def applies(rule: Rule, traits: Traits) -> bool:
    c = rule.condition
    if c == Condition.ALWAYS:
        return True
    if c == Condition.OUT_OF_REGION:
        return traits.out_of_region
    if c == Condition.LONGER_THAN_DAYS:
        return traits.days > (rule.param or 0)
    if c == Condition.NON_WORKING_DAY:
        return traits.non_working_day
    if c == Condition.NIGHT:
        return traits.night
    if c == Condition.LARGE_VEHICLE:
        return traits.body_class in LARGE_BODIES
    if c == Condition.PASSENGERS_OVER:
        return traits.passengers > (rule.param or 0)
    raise ValueError(f"unknown condition {c!r}")


def steps(traits: Traits, rules: list[Rule]) -> list[Step]:
    """The approvals an order needs, lowest level first."""
    reasons: dict[int, list[str]] = {0: ["本单位审批 / own unit"]}
    for rule in rules:
        if applies(rule, traits):
            reasons.setdefault(rule.level, []).append(rule.name or rule.condition.value)
    return [Step(level, tuple(reasons[level])) for level in sorted(reasons)]
