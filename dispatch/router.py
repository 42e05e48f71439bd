"""HTTP routes of dispatch: trip orders, approval and assignment."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status
from sqlalchemy.orm import Session

from dispatch import places, service
from dispatch.models import TripOrder
from dispatch.orders import OrderStatus
from dispatch.schemas import (
    AssignIn,
    Comment,
    MergeIn,
    MergeOut,
    OrderCreate,
    OrderOut,
    Orders,
    Places,
    PlanOut,
    RatingIn,
    RatingOut,
    Reading,
    RuleIn,
    RuleOut,
    Rules,
    Suggestions,
)
from dispatch.settings import DispatchSettings, DispatchSettingsDep
from fleet.api import ActorDep, ListingDep, NowDep, RedisDep, SessionDep, ZoneDep
from fleet.auth import Actor
from fleet.schemas import Id, Page
from geofence.settings import GeofenceSettingsDep, clock_seconds

router = APIRouter(prefix="/api/v1", tags=["dispatch"])


@router.post("/orders", status_code=status.HTTP_201_CREATED, response_model=OrderOut)
def create_order(
    session: SessionDep, actor: ActorDep, dispatch_settings: DispatchSettingsDep, data: OrderCreate
) -> dict[str, Any]:
    """A trip order, saved as a draft; `POST /orders/{id}/submit` sends it for approval."""
    order = service.create_order(
        session=session, actor=actor, data=data, settings=dispatch_settings
    )
    return service.view(session=session, order=order)


@router.get("/orders", response_model=Page[OrderOut])
def list_orders(
    session: SessionDep,
    actor: ActorDep,
    listing: ListingDep,
    mine: Annotated[bool, Query(description="Only the caller's own orders.")] = False,
    status: OrderStatus | None = None,
) -> dict[str, Any]:
    items, total = service.list_orders(
        session=session, actor=actor, listing=listing, mine=mine, status=status
    )
    return listing.answer(service.views(session=session, orders=items), total)


@router.get("/places", response_model=Places)
def list_places(
    session: SessionDep,
    actor: ActorDep,
    limit: Annotated[int, Query(ge=1, le=50, description="How many places at most.")] = 12,
) -> dict[str, Any]:
    """Places to offer in one tap when filing an order: those the caller's unit's orders used,
    most used first, then the depots of the unit and the units above it."""
    return {"items": places.offered(session=session, actor=actor, limit=limit)}


@router.get("/orders/{order_id}", response_model=OrderOut)
def get_order(session: SessionDep, actor: ActorDep, order_id: Id) -> dict[str, Any]:
    order = service.get_order(session=session, actor=actor, order_id=order_id)
    return service.view(session=session, order=order)


@router.post("/orders/{order_id}/submit", response_model=OrderOut)
def submit(
    session: SessionDep,
    actor: ActorDep,
    geofence: GeofenceSettingsDep,
    zone: ZoneDep,
    order_id: Id,
) -> dict[str, Any]:
    """Sends the order for approval; the answer lists the approval steps its unit's rules name."""
    order = service.submit(
        session=session,
        actor=actor,
        order_id=order_id,
        zone=zone,
        night=(clock_seconds(geofence.night_start), clock_seconds(geofence.night_end)),
    )
    return service.view(session=session, order=order)


@router.get("/approvals/pending", response_model=Orders)
def pending(
    session: SessionDep, actor: ActorDep, dispatch_settings: DispatchSettingsDep
) -> dict[str, Any]:
    """The orders waiting for the caller's decision (their current step is the caller's)."""
    items = service.pending_for(
        session=session,
        actor=actor,
        distinct_deciders=dispatch_settings.approval_distinct_deciders,
    )
    return {"items": service.views(session=session, orders=items)}


@router.get("/approvals/overdue", response_model=Orders)
def overdue(
    session: SessionDep, actor: ActorDep, dispatch_settings: DispatchSettingsDep
) -> dict[str, Any]:
    """Emergency orders assigned before approval whose approval is overdue (flagged)."""
    items = service.overdue_emergencies(session=session, actor=actor, settings=dispatch_settings)
    return {"items": service.views(session=session, orders=items)}


@router.get("/approval-rules", response_model=Rules)
def list_rules(session: SessionDep, actor: ActorDep) -> dict[str, Any]:
    return {"items": service.list_rules(session=session, actor=actor)}


@router.post("/approval-rules", status_code=status.HTTP_201_CREATED, response_model=RuleOut)
def create_rule(session: SessionDep, actor: ActorDep, data: RuleIn) -> dict[str, Any]:
    """A rule of a unit's approval chain (administrators): `{"unit_id", "condition", "param"?,
    "level", "name"?}`; level 0 is the order's own unit, 1 its parent..."""
    return service.create_rule(session=session, actor=actor, data=data)


@router.delete("/approval-rules/{rule_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_rule(session: SessionDep, actor: ActorDep, rule_id: Id) -> Response:
    service.delete_rule(session=session, actor=actor, rule_id=rule_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/orders/{order_id}/approve", response_model=OrderOut)
def approve(
    session: SessionDep,
    actor: ActorDep,
    order_id: Id,
    dispatch_settings: DispatchSettingsDep,
    data: Comment | None = None,
) -> dict[str, Any]:
    """Decides the order's current step; 403 if the caller already decided a step of it and
    FLEET_APPROVAL_DISTINCT_DECIDERS is on."""
    return _decide(session, actor, order_id, dispatch_settings, approve=True, data=data)


@router.post("/orders/{order_id}/reject", response_model=OrderOut)
def reject(
    session: SessionDep,
    actor: ActorDep,
    order_id: Id,
    data: Comment,
    dispatch_settings: DispatchSettingsDep,
) -> dict[str, Any]:
    """A rejection needs a comment."""
    return _decide(session, actor, order_id, dispatch_settings, approve=False, data=data)


def _decide(
    session: Session,
    actor: Actor,
    order_id: int,
    dispatch_settings: DispatchSettings,
    *,
    approve: bool,
    data: Comment | None,
) -> dict[str, Any]:
    order = service.decide(
        session=session,
        actor=actor,
        order_id=order_id,
        approve=approve,
        data=data or Comment(),
        distinct_deciders=dispatch_settings.approval_distinct_deciders,
    )
    return service.view(session=session, order=order)


@router.post("/orders/{order_id}/cancel", response_model=OrderOut)
def cancel(
    session: SessionDep, actor: ActorDep, order_id: Id, data: Comment | None = None
) -> dict[str, Any]:
    order = service.cancel(session=session, actor=actor, order_id=order_id, data=data or Comment())
    return service.view(session=session, order=order)


@router.post("/orders/{order_id}/assign", response_model=OrderOut)
def assign(
    session: SessionDep,
    redis: RedisDep,
    actor: ActorDep,
    dispatch_settings: DispatchSettingsDep,
    order_id: Id,
    data: AssignIn,
) -> dict[str, Any]:
    """Holds the vehicle and driver; 409 when either is already taken in the window; 422 on
    `reason` when the vehicle is not the top suggestion and no reason is given."""
    order = service.assign(
        session=session,
        redis=redis,
        actor=actor,
        order_id=order_id,
        data=data,
        settings=dispatch_settings,
    )
    return service.view(session=session, order=order)


@router.post("/orders/{order_id}/start", response_model=OrderOut)
def start(
    session: SessionDep, actor: ActorDep, order_id: Id, data: Reading | None = None
) -> dict[str, Any]:
    """The driver sets off; `{"odometer_km"}` optional."""
    return _drive(service.start, session, actor, order_id, data)


@router.post("/orders/{order_id}/finish", response_model=OrderOut)
def finish(
    session: SessionDep, actor: ActorDep, order_id: Id, data: Reading | None = None
) -> dict[str, Any]:
    """The driver is back; `{"odometer_km"}` optional, not below the start's reading."""
    return _drive(service.finish, session, actor, order_id, data)


def _drive(
    move: Callable[..., TripOrder],
    session: Session,
    actor: Actor,
    order_id: int,
    data: Reading | None,
) -> dict[str, Any]:
    """`service.start` or `service.finish`, with the odometer read if the driver gave it."""
    order = move(
        session=session,
        actor=actor,
        order_id=order_id,
        odometer_km=data.odometer_km if data else None,
    )
    return service.view(session=session, order=order)


@router.post(
    "/orders/{order_id}/rating",
    status_code=status.HTTP_201_CREATED,
    response_model=RatingOut,
    responses={
        403: {"description": "Only the order's requester rates it."},
        404: {"description": "No such order in the caller's reach."},
        409: {"description": "Already rated, or not completed."},
    },
)
def rate(session: SessionDep, actor: ActorDep, now: NowDep, order_id: Id, data: RatingIn) -> Any:
    """The requester rates the completed trip (用车评价): `{"stars": 1-5, "comment"?}`, once."""
    return service.rate(session=session, actor=actor, order_id=order_id, data=data, now=now)


@router.get("/orders/{order_id}/suggestions", response_model=Suggestions)
def suggestions(
    session: SessionDep,
    redis: RedisDep,
    actor: ActorDep,
    dispatch_settings: DispatchSettingsDep,
    now: NowDep,
    zone: ZoneDep,
    order_id: Id,
) -> dict[str, Any]:
    """Ranked vehicles with the parts of each score, the vehicles left out and why, free drivers
    with their licences (flagged when expired, expiring within 30 days, or of no known expiry)."""
    return service.suggestions(
        session=session,
        redis=redis,
        actor=actor,
        order_id=order_id,
        settings=dispatch_settings,
        now=now.astimezone(zone),
    )


@router.post("/dispatch/plan", response_model=PlanOut)
def plan(
    session: SessionDep, redis: RedisDep, actor: ActorDep, dispatch_settings: DispatchSettingsDep
) -> dict[str, Any]:
    """An optimal assignment for the approved, unassigned orders in scope, to review; each pair is
    accepted with `POST /orders/{id}/assign`. The greedy nearest-first total is shown beside it."""
    return service.dispatch_plan(
        session=session, redis=redis, actor=actor, settings=dispatch_settings
    )


@router.post("/dispatch/merge", status_code=status.HTTP_201_CREATED, response_model=MergeOut)
def merge(
    session: SessionDep,
    actor: ActorDep,
    dispatch_settings: DispatchSettingsDep,
    data: MergeIn,
) -> dict[str, Any]:
    """A merged trip (合并用车): one assignment carrying the approved orders
    `{"order_ids": [...], "vehicle_id", "driver_id", "reason"?}`. 422 naming `order_ids` when
    their passengers outnumber the seats; 409 when an order is not approved, or the vehicle or
    driver is taken in the joined window; 404 for an order out of the caller's scope."""
    held, orders = service.merge(
        session=session, actor=actor, data=data, settings=dispatch_settings
    )
    return {"assignment_id": held.id, "items": service.views(session=session, orders=orders)}


@router.post("/dispatch/merge/{assignment_id}/unmerge", response_model=Orders)
def unmerge(
    session: SessionDep, actor: ActorDep, assignment_id: Id, data: Comment | None = None
) -> dict[str, Any]:
    """Undoes a merged trip before it starts: the vehicle and driver are released and its orders
    are approved again, to be assigned anew; 409 once the trip is under way."""
    orders = service.unmerge(
        session=session, actor=actor, assignment_id=assignment_id, data=data or Comment()
    )
    return {"items": service.views(session=session, orders=orders)}
