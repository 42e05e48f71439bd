"""Approval: the chain an order needs (from its unit's rules and its traits), the decisions on
it, the orders waiting for a decision, and the rules themselves."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from dispatch import approval
from dispatch.models import ApprovalRule, OrderDecision, TripOrder
from dispatch.orders import IllegalMove, OrderStatus, move
from dispatch.schemas import Comment, RuleIn
from dispatch.service.scope import get_order, record, scoped
from dispatch.settings import DispatchSettings
from fleet import audit
from fleet.auth import Actor, require, units_in_scope
from fleet.db import utcnow
from fleet.errors import Forbidden, Invalid, NotFound
from fleet.models import OrgUnit
from geofence.models import CalendarDay


def traits(
    *, session: Session, order: TripOrder, zone: ZoneInfo, night: tuple[int, int]
) -> approval.Traits:
    """What approval rules look at: computed from the order, the working calendar (a day it does
    not cover counts as non-working: the stricter chain) and the night window."""
    start, end = order.start_at.astimezone(zone), order.end_at.astimezone(zone)
    days = [start.date() + timedelta(days=n) for n in range((end.date() - start.date()).days + 1)]
    working = dict(
        session.execute(
            select(CalendarDay.day, CalendarDay.working).where(CalendarDay.day.in_(days))
        ).all()
    )
    night_start, night_end = night
    touches_night = False
    moment = start
    while moment < end and not touches_night:  # by the quarter hour: windows are short
        second = moment.hour * 3600 + moment.minute * 60
        touches_night = second >= night_start or second < night_end
        moment += timedelta(minutes=15)
    return approval.Traits(
        out_of_region=order.out_of_region,
        days=(order.end_at - order.start_at).total_seconds() / 86_400,
        non_working_day=any(not working.get(d, False) for d in days),
        night=touches_night,
        body_class=order.body_class,
        passengers=order.passengers,
    )


def approval_chain(
    session: Session, order: TripOrder, traits_: approval.Traits
) -> list[dict[str, Any]]:
    return chain_for_unit(session, order.unit_id, traits_)


def chain_for_unit(
    session: Session, unit_id: int, traits_: approval.Traits
) -> list[dict[str, Any]]:
    """The steps a request of `unit_id` with these traits needs, from the rules of the unit and
    the units above it: an order's, and a vehicle's renewal or disposal."""
    unit_path = session.scalar(select(OrgUnit.path).where(OrgUnit.id == unit_id)) or ""
    ancestors = [int(p) for p in unit_path.strip("/").split("/") if p]  # root first
    rules = [
        approval.Rule(condition=r.condition, level=r.level, name=r.name, param=r.param)
        for r in session.scalars(select(ApprovalRule).where(ApprovalRule.unit_id.in_(ancestors)))
    ]
    chain = []
    for step in approval.steps(traits_, rules):
        # The unit `level` steps above the order's own; past the root, the root.
        target = ancestors[max(0, len(ancestors) - 1 - step.level)]
        chain.append({"level": step.level, "unit_id": target, "reasons": list(step.reasons)})
    return chain


def may_decide(session: Session, actor: Actor, unit_id: int) -> bool:
    """An approver decides a step at their own unit or any unit below theirs."""
    path = session.scalar(select(OrgUnit.path).where(OrgUnit.id == unit_id)) or ""
    return path.startswith(actor.unit_path)


def _has_decided(session: Session, actor: Actor, order_id: int) -> bool:
    return (
        session.scalar(
            select(OrderDecision.id)
            .where(OrderDecision.order_id == order_id, OrderDecision.user_id == actor.user_id)
            .limit(1)
        )
        is not None
    )


def decide(
    *,
    session: Session,
    actor: Actor,
    order_id: int,
    approve: bool,
    data: Comment,
    distinct_deciders: bool,
) -> TripOrder:
    """Approves the order's current step (the last one approves the order) or rejects it.

    With `distinct_deciders` (segregation of duties) nobody decides two steps of one order."""
    require(actor, "order", "approve")
    order = get_order(session=session, actor=actor, order_id=order_id, lock=True)
    if order.requester_id == actor.user_id:
        raise Forbidden("an approver does not approve their own order")
    comment = data.comment.strip()
    if not approve and not comment:
        raise Invalid("a rejection needs a comment", field="comment")
    after_the_fact = order.emergency and order.status in (
        OrderStatus.ASSIGNED,
        OrderStatus.IN_PROGRESS,
        OrderStatus.COMPLETED,
    )
    if order.approval != "pending" or not (order.status == OrderStatus.SUBMITTED or after_the_fact):
        raise IllegalMove(
            f"an order that is {order.status} (approval {order.approval}) has nothing to decide"
        )
    if distinct_deciders and _has_decided(session, actor, order.id):
        raise Forbidden(
            "each step of an approval chain is decided by a different person: you already"
            " decided a step of this order"
        )
    steps = order.approval_steps or [{"level": 0, "unit_id": order.unit_id, "reasons": []}]
    step = steps[order.approvals_done]
    if not may_decide(session, actor, step["unit_id"]):
        raise Forbidden(
            f"step {order.approvals_done + 1} of {len(steps)} is for an approver of unit"
            f" {step['unit_id']} ({', '.join(step['reasons'])})"
        )
    before = audit.snapshot(order)
    if not approve:
        order.approval = "rejected"
        if not after_the_fact:  # an emergency trip already under way stays on record, flagged
            order.status = move(order.status, OrderStatus.REJECTED)
    else:
        order.approvals_done += 1
        if order.approvals_done == len(steps):
            order.approval = "approved"
            if not after_the_fact:
                order.status = move(order.status, OrderStatus.APPROVED)
    session.add(
        OrderDecision(
            order_id=order.id,
            step=order.approvals_done if approve else order.approvals_done + 1,
            approved=approve,
            comment=comment,
            user_id=actor.user_id,
            username=actor.username,
            at=utcnow(),
        )
    )
    session.flush()
    record(session, actor, order, "approve" if approve else "reject", before)
    return order


def overdue_emergencies(
    *, session: Session, actor: Actor, settings: DispatchSettings
) -> list[TripOrder]:
    """Emergency orders assigned before approval whose approval has not come in time."""
    require(actor, "order", "approve")
    due = utcnow() - timedelta(hours=settings.emergency_approval_due_h)
    return list(
        session.scalars(
            scoped(actor)
            .where(
                TripOrder.emergency,
                TripOrder.approval == "pending",
                TripOrder.status.in_(
                    [OrderStatus.ASSIGNED, OrderStatus.IN_PROGRESS, OrderStatus.COMPLETED]
                ),
                TripOrder.created_at < due,
            )
            .order_by(TripOrder.created_at)
        )
    )


def pending_for(*, session: Session, actor: Actor, distinct_deciders: bool) -> list[TripOrder]:
    """Submitted orders whose current step the actor may decide."""
    require(actor, "order", "approve")
    submitted = session.scalars(
        scoped(actor)
        .where(TripOrder.approval == "pending", TripOrder.status != OrderStatus.DRAFT)
        .where(TripOrder.status.not_in([OrderStatus.CANCELLED, OrderStatus.REJECTED]))
        .order_by(TripOrder.start_at)
    ).all()
    return [
        o
        for o in submitted
        if o.requester_id != actor.user_id
        and o.approvals_done < len(o.approval_steps)
        and may_decide(session, actor, o.approval_steps[o.approvals_done]["unit_id"])
        and not (distinct_deciders and _has_decided(session, actor, o.id))
    ]


def list_rules(*, session: Session, actor: Actor) -> list[dict[str, Any]]:
    require(actor, "order", "create")
    rules = session.scalars(
        select(ApprovalRule)
        .where(ApprovalRule.unit_id.in_(units_in_scope(actor)))
        .order_by(ApprovalRule.unit_id, ApprovalRule.level, ApprovalRule.id)
    ).all()
    return [_rule(r) for r in rules]


def _rule(rule: ApprovalRule) -> dict[str, Any]:
    return {
        "id": rule.id,
        "unit_id": rule.unit_id,
        "condition": rule.condition,
        "param": rule.param,
        "level": rule.level,
        "name": rule.name,
    }


def create_rule(*, session: Session, actor: Actor, data: RuleIn) -> dict[str, Any]:
    require(actor, "approval_rule", "write")
    if data.unit_id not in set(session.scalars(units_in_scope(actor))):
        raise Invalid(f"unknown unit {data.unit_id}", field="unit_id")
    needs_param = {approval.Condition.LONGER_THAN_DAYS, approval.Condition.PASSENGERS_OVER}
    if (data.condition in needs_param) != (data.param is not None):
        raise Invalid(
            "param is required for longer_than_days and passengers_over, and only for them",
            field="param",
        )
    rule = ApprovalRule(**data.model_dump())
    audit.created(session=session, actor=actor.ref, entity="approval_rule", obj=rule)
    return _rule(rule)


def delete_rule(*, session: Session, actor: Actor, rule_id: int) -> None:
    require(actor, "approval_rule", "write")
    rule = session.scalar(
        select(ApprovalRule).where(
            ApprovalRule.id == rule_id, ApprovalRule.unit_id.in_(units_in_scope(actor))
        )
    )
    if rule is None:
        raise NotFound(f"no approval rule {rule_id}")
    audit.deleted(session=session, actor=actor.ref, entity="approval_rule", obj=rule)
