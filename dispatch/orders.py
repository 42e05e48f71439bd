"""The life of a trip order: statuses and the moves between them (pure)."""

from __future__ import annotations

from enum import StrEnum

from fleet.errors import Conflict


class OrderStatus(StrEnum):
    DRAFT = "draft"
    SUBMITTED = "submitted"
    APPROVED = "approved"
    REJECTED = "rejected"
    ASSIGNED = "assigned"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


S = OrderStatus
TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    S.DRAFT: frozenset({S.SUBMITTED, S.CANCELLED}),
    # submitted -> assigned only for an emergency order (the service checks the flag)
    S.SUBMITTED: frozenset({S.APPROVED, S.REJECTED, S.CANCELLED, S.ASSIGNED}),
    S.APPROVED: frozenset({S.ASSIGNED, S.CANCELLED}),
    S.REJECTED: frozenset(),
    # assigned -> approved when a merged trip is un-merged before it starts
    S.ASSIGNED: frozenset({S.IN_PROGRESS, S.CANCELLED, S.APPROVED}),
    S.IN_PROGRESS: frozenset({S.COMPLETED}),
    S.COMPLETED: frozenset(),
    S.CANCELLED: frozenset(),
}
# Statuses whose assignment holds the vehicle and driver (and gives the geofence engine a permit).
HOLDING = frozenset({S.ASSIGNED, S.IN_PROGRESS, S.COMPLETED})


class IllegalMove(Conflict):
    code = "illegal_transition"


def move(current: OrderStatus | str, to: OrderStatus) -> OrderStatus:
    """The new status, or IllegalMove naming both ends."""
    current = OrderStatus(current)
    if to not in TRANSITIONS[current]:
        allowed = ", ".join(sorted(TRANSITIONS[current])) or "nothing"
        raise IllegalMove(
            f"an order that is {current.value} cannot become {to.value} (only {allowed})"
        )
    return to
