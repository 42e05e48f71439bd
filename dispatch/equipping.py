"""Equipping and renewal (配备更新), pure: when a vehicle is due for renewal, when it is idle, and
the life of a renewal or disposal request. No database and no clock: `today` is a parameter.

A vehicle is due for renewal once it is `age_years` old (counted from the day it was bought) or
has run `distance_limit_km`. Whether it will be due within the horizon (12 months) is the age's
date, and for distance the day its average daily distance since purchase carries it past the
limit.
"""

from __future__ import annotations

import calendar
import math
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum

from fleet.errors import Conflict


class RequestKind(StrEnum):
    RENEWAL = "renewal"  # 更新: dispose of the old vehicle and buy a new one on its place
    DISPOSAL = "disposal"  # 处置: dispose of it, and the place stays free


class RequestStatus(StrEnum):
    SUBMITTED = "submitted"
    APPROVED = "approved"
    REJECTED = "rejected"
    DISPOSED = "disposed"


class DisposalMethod(StrEnum):
    AUCTION = "auction"  # 拍卖
    SCRAP = "scrap"  # 报废
    TRANSFER = "transfer"  # 调拨 / 划转


S = RequestStatus
TRANSITIONS: dict[RequestStatus, frozenset[RequestStatus]] = {
    S.SUBMITTED: frozenset({S.APPROVED, S.REJECTED}),
    S.APPROVED: frozenset({S.DISPOSED}),
    S.REJECTED: frozenset(),
    S.DISPOSED: frozenset(),
}
OPEN = frozenset({S.SUBMITTED, S.APPROVED})


class IllegalRequestMove(Conflict):
    code = "illegal_transition"


def move(current: RequestStatus | str, to: RequestStatus) -> RequestStatus:
    current = RequestStatus(current)
    if to not in TRANSITIONS[current]:
        allowed = ", ".join(sorted(TRANSITIONS[current])) or "nothing"
        raise IllegalRequestMove(
            f"a request that is {current.value} cannot become {to.value} (only {allowed})"
        )
    return to


def add_months(day: date, months: int) -> date:
    """The same day `months` later, or the month's last day where it is shorter."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return date(year, month + 1, min(day.day, last))


@dataclass(frozen=True, slots=True)
class Renewal:
    """When a vehicle is due: `due_on` is the earlier of the age's and the distance's dates
    (None: neither is known)."""

    due_on: date | None
    age_due_on: date | None
    distance_due_on: date | None
    age_years: float | None

    def due_by(self, day: date) -> bool:
        return self.due_on is not None and self.due_on <= day

    def reasons(self, day: date) -> list[str]:
        """What makes it due by `day`: `age`, `distance`, or both."""
        return [
            name
            for name, when in (("age", self.age_due_on), ("distance", self.distance_due_on))
            if when is not None and when <= day
        ]


def renewal(
    *,
    acquired_on: date | None,
    distance_km: float | None,
    today: date,
    age_years: int,
    distance_limit_km: float,
) -> Renewal:
    age_due = add_months(acquired_on, 12 * age_years) if acquired_on else None
    distance_due: date | None = None
    if distance_km is not None and distance_km >= distance_limit_km:
        distance_due = today
    elif distance_km and acquired_on and acquired_on < today:
        per_day = distance_km / (today - acquired_on).days
        distance_due = today + timedelta(
            days=math.ceil((distance_limit_km - distance_km) / per_day)
        )
    known = [d for d in (age_due, distance_due) if d is not None]
    due = min(known) if known else None
    age = None
    if acquired_on is not None:
        age = round((today - acquired_on).days / 365.25, 2)
    return Renewal(due, age_due, distance_due, age)


def is_idle(days_used: int, min_days: int) -> bool:
    """Idle (闲置) in a month: used on fewer than `min_days` of its days."""
    return days_used < min_days
