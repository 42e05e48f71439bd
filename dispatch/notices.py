"""Who hears of an order's move outside the page, read from the order's outbox event by
`fleet forward`'s notifier (fleet/notifications.py):

- the approvers of the step that now awaits a decision (those of the step's unit, or of the
  nearest unit above it that has any), when the order is submitted or a step before it approved;
- the requester, when their order is approved (the last step), rejected or assigned;
- the driver, when a trip is assigned to them, and when their trip is cancelled.

Each message names the order and links to the phone page's tab that acts on it."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from dispatch.models import Assignment, AssignmentOrder, OrderDecision
from dispatch.orders import OrderStatus
from fleet.models import Driver, OutboxEvent, Role, Vehicle
from fleet.notifications import Notice, nearest_with_role

CLOSED = frozenset({OrderStatus.DRAFT, OrderStatus.CANCELLED, OrderStatus.REJECTED})


def awaiting_step(state: dict[str, Any], action: str) -> dict[str, Any] | None:
    """The approval step that now waits for a decision after `action`, if one does."""
    steps = state.get("approval_steps") or []
    done = int(state.get("approvals_done") or 0)
    if (
        action in ("submit", "approve")
        and state.get("approval") == "pending"
        and state.get("status") not in CLOSED
        and done < len(steps)
    ):
        return dict(steps[done])
    return None


def _when(state: dict[str, Any], zone: ZoneInfo) -> str:
    return datetime.fromisoformat(str(state["start_at"])).astimezone(zone).strftime("%m-%d %H:%M")


def _assignment(session: Session, order_id: int) -> tuple[str, str, int | None] | None:
    """The plate, the driver's name and user of the order's latest assignment."""
    found = session.execute(
        select(Vehicle.plate, Driver.name, Driver.user_id)
        .select_from(Assignment)
        .join(Vehicle, Vehicle.id == Assignment.vehicle_id)
        .join(Driver, Driver.id == Assignment.driver_id)
        .join(AssignmentOrder, AssignmentOrder.assignment_id == Assignment.id)
        .where(AssignmentOrder.order_id == order_id)  # a merged trip's every order
        .order_by(Assignment.id.desc())
        .limit(1)
    ).first()
    return (found[0], found[1], found[2]) if found else None


def order_notices(session: Session, event: OutboxEvent, zone: ZoneInfo) -> list[Notice]:
    payload = event.payload
    state: dict[str, Any] = payload.get("state") or {}
    action = str(payload.get("action"))
    if not state:
        return []
    order_id = int(payload["id"])
    requester = int(state["requester_id"])
    when, purpose = _when(state, zone), str(state.get("purpose", ""))[:40]
    notices = []
    step = awaiting_step(state, action)
    if step is not None:
        approvers = tuple(
            u
            for u in nearest_with_role(session, int(step["unit_id"]), Role.APPROVER)
            if u != requester
        )
        notices.append(
            Notice(
                "approval_pending",
                approvers,
                "/phone#approvals",
                {
                    "zh": (
                        f"待审批：用车申请 #{order_id}",
                        f"用车申请 #{order_id}（{purpose}）{when} 出发，等待您审批。",
                    ),
                    "en": (
                        f"Approval needed: trip order #{order_id}",
                        f"Trip order #{order_id} ({purpose}), leaving {when}, awaits your"
                        " approval.",
                    ),
                },
            )
        )
    if action == "approve" and state.get("approval") == "approved":
        notices.append(
            Notice(
                "order_approved",
                (requester,),
                "/phone#mine",
                {
                    "zh": (
                        f"已批准：用车申请 #{order_id}",
                        f"您 {when} 的用车申请 #{order_id} 已批准，等待派车。",
                    ),
                    "en": (
                        f"Approved: trip order #{order_id}",
                        f"Your trip order #{order_id} for {when} is approved; a car will be"
                        " assigned.",
                    ),
                },
            )
        )
    if action == "reject":
        comment = session.scalar(
            select(OrderDecision.comment)
            .where(OrderDecision.order_id == order_id, ~OrderDecision.approved)
            .order_by(OrderDecision.id.desc())
            .limit(1)
        )
        reason = str(comment or "")[:100]
        notices.append(
            Notice(
                "order_rejected",
                (requester,),
                "/phone#mine",
                {
                    "zh": (
                        f"已驳回：用车申请 #{order_id}",
                        f"您 {when} 的用车申请 #{order_id} 未获批准：{reason}",
                    ),
                    "en": (
                        f"Rejected: trip order #{order_id}",
                        f"Your trip order #{order_id} for {when} was rejected: {reason}",
                    ),
                },
            )
        )
    # A merge assigns each order it carries; an unmerge takes the trip from the driver.
    held = (
        _assignment(session, order_id)
        if action in ("assign", "merge", "cancel", "unmerge")
        else None
    )
    if action in ("assign", "merge") and held is not None:
        plate, driver, driver_user = held
        notices.append(
            Notice(
                "order_assigned",
                (requester,),
                "/phone#mine",
                {
                    "zh": (
                        f"已派车：用车申请 #{order_id}",
                        f"您 {when} 的用车申请 #{order_id} 已派车：{plate}，驾驶员 {driver}。",
                    ),
                    "en": (
                        f"Assigned: trip order #{order_id}",
                        f"Your trip order #{order_id} for {when}: {plate}, driver {driver}.",
                    ),
                },
            )
        )
        if driver_user is not None:
            origin = str(state.get("origin_name", ""))[:40]
            notices.append(
                Notice(
                    "trip_assigned",
                    (driver_user,),
                    "/phone#trips",
                    {
                        "zh": (
                            f"新任务：#{order_id} {plate}",
                            f"任务 #{order_id}：{when} 从 {origin} 出发，车辆 {plate}。",
                        ),
                        "en": (
                            f"New trip: #{order_id} {plate}",
                            f"Trip #{order_id}: {plate}, leaving {origin} at {when}.",
                        ),
                    },
                )
            )
    if action in ("cancel", "unmerge") and held is not None and held[2] is not None:
        plate = held[0]
        notices.append(
            Notice(
                "trip_changed",
                (held[2],),
                "/phone#trips",
                {
                    "zh": (
                        f"任务取消：#{order_id} {plate}",
                        f"任务 #{order_id}（{when}，{plate}）已取消。",
                    ),
                    "en": (
                        f"Trip cancelled: #{order_id} {plate}",
                        f"Trip #{order_id} ({when}, {plate}) is cancelled.",
                    ),
                },
            )
        )
    return notices
