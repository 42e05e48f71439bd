"""Requesters' ratings of their completed trips (用车评价): 1 to 5 stars and a comment, once."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from dispatch.models import Assignment, AssignmentOrder, TripRating
from dispatch.orders import OrderStatus
from dispatch.schemas import RatingIn
from dispatch.service.scope import get_order
from fleet import audit
from fleet.auth import Actor
from fleet.errors import Conflict, Forbidden


class NotRateable(Conflict):
    code = "not_rateable"


class AlreadyRated(Conflict):
    code = "already_rated"


def rate(
    *, session: Session, actor: Actor, order_id: int, data: RatingIn, now: datetime
) -> TripRating:
    """The requester rates their completed order, once: a second rating, or one of an order not
    completed, is a Conflict; anyone else than the requester is Forbidden (and one who cannot
    see the order gets NotFound, as for every read)."""
    order = get_order(session=session, actor=actor, order_id=order_id, lock=True)
    if order.requester_id != actor.user_id:
        raise Forbidden("only the order's requester rates the trip")
    if order.status != OrderStatus.COMPLETED:
        raise NotRateable(f"an order is rated once completed; this one is {order.status}")
    if session.scalar(select(TripRating.id).where(TripRating.order_id == order.id)) is not None:
        raise AlreadyRated(f"order {order.id} is already rated")
    driver_id = session.scalar(
        select(Assignment.driver_id)
        .join(AssignmentOrder, AssignmentOrder.assignment_id == Assignment.id)
        .where(AssignmentOrder.order_id == order.id)  # a merged trip's other orders too
        .order_by(Assignment.active.desc(), Assignment.id.desc())
        .limit(1)
    )
    if driver_id is None:  # a completed order was assigned; the check keeps the types honest
        raise NotRateable(f"order {order.id} was never assigned a driver")
    rating = TripRating(
        order_id=order.id,
        requester_id=order.requester_id,
        driver_id=driver_id,
        stars=data.stars,
        comment=data.comment.strip(),
        at=now,
    )
    return audit.created(session=session, actor=actor.ref, entity="trip_rating", obj=rating)
