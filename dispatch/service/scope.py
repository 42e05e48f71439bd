"""Which orders a caller reaches, and the record every change of one leaves: the audit entry and
the announcement to phones and desks."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from dispatch.models import Assignment, AssignmentOrder, TripOrder
from dispatch.orders import OrderStatus
from fleet import audit, channels, events
from fleet.auth import Actor, units_in_scope
from fleet.errors import Forbidden, NotFound
from fleet.models import Driver, Role
from fleet.paging import Listing


def record(session: Session, actor: Actor, order: TripOrder, action: str, before: Any) -> None:
    """The audit entry of a change, and its announcement to phones and desks after the commit
    (to the requester, the staff of the order's unit, and the driver last assigned, who hears
    of a cancellation too)."""
    driver_user_id = session.scalar(
        select(Driver.user_id)
        .join(Assignment, Assignment.driver_id == Driver.id)
        .join(AssignmentOrder, AssignmentOrder.assignment_id == Assignment.id)
        .where(AssignmentOrder.order_id == order.id)
        .order_by(Assignment.id.desc())
        .limit(1)
    )
    events.announce(
        session,
        channels.ORDERS,
        {
            "type": "orders",
            "items": [
                {
                    "id": order.id,
                    "status": order.status,
                    "action": action,
                    "unit_id": order.unit_id,
                    "requester_id": order.requester_id,
                    "driver_user_id": driver_user_id,
                    "start_at": order.start_at.isoformat(),
                    "approvals_done": order.approvals_done,
                }
            ],
        },
    )
    audit.record(
        session=session,
        actor=actor.ref,
        action=action,
        entity="trip_order",
        entity_id=order.id,
        before=before,
        after=audit.snapshot(order),
    )


def scoped(actor: Actor) -> Select[Any]:
    """Orders the actor may see: their own, for staff every order of their units, and for a
    driver the orders they are assigned to (a motor pool's driver serves other units' orders,
    and sees no other order of their own unit's)."""
    seen = TripOrder.requester_id == actor.user_id
    if actor.has(Role.ADMIN, Role.APPROVER, Role.DISPATCHER, Role.SUPERVISOR):
        seen = seen | TripOrder.unit_id.in_(units_in_scope(actor))
    if actor.has(Role.DRIVER):
        seen = seen | TripOrder.id.in_(_driven_by(actor.user_id))
    return select(TripOrder).where(seen)


def _driven_by(user_id: int | None) -> Select[Any]:
    """The orders whose active assignment names the user as the driver."""
    return (
        select(AssignmentOrder.order_id)
        .join(Assignment, Assignment.id == AssignmentOrder.assignment_id)
        .join(Driver, Driver.id == Assignment.driver_id)
        .where(Assignment.active, AssignmentOrder.active, Driver.user_id == user_id)
    )


def get_order(*, session: Session, actor: Actor, order_id: int, lock: bool = False) -> TripOrder:
    stmt = scoped(actor).where(TripOrder.id == order_id)
    order = session.scalar(stmt.with_for_update() if lock else stmt)
    if order is None:
        raise NotFound(f"no order {order_id}")
    return order


def list_orders(
    *,
    session: Session,
    actor: Actor,
    listing: Listing,
    mine: bool = False,
    status: OrderStatus | None = None,
) -> tuple[list[TripOrder], int]:
    stmt = scoped(actor)
    if mine:
        stmt = stmt.where(TripOrder.requester_id == actor.user_id)
    if status is not None:
        stmt = stmt.where(TripOrder.status == status)
    items, total = listing.page(
        session, stmt.order_by(TripOrder.start_at.desc(), TripOrder.id.desc())
    )
    return list(items), total


def owner_or(actor: Actor, order: TripOrder, *roles: Role) -> None:
    if order.requester_id != actor.user_id and not actor.has(*roles):
        raise Forbidden("only the requester (or a dispatcher) may do this to the order")
