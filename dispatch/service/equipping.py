"""Equipping and renewal (配备更新): the vehicles due for renewal now and within 12 months, idle
vehicles, the new-energy share of each year's purchases, and renewal or disposal requests, which
go up the same approval chains as trip orders and end with the vehicle's disposal.

Here rather than in the kernel because a vehicle's distance comes from its trips (telematics) and
the odometer its drivers read (orders), and because the approval chains are dispatch's. The
quotas themselves are the kernel's (`fleet.quota`): the registry refuses a vehicle over them.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from dispatch import approval, equipping
from dispatch.equipping import DisposalMethod, RequestKind, RequestStatus
from dispatch.models import Assignment, RenewalRequest, TripOrder
from dispatch.service.approvals import chain_for_unit, may_decide
from dispatch.settings import DispatchSettings
from fleet import audit
from fleet.auth import Actor, require, units_in_scope
from fleet.errors import Conflict, Forbidden, Invalid, NotFound
from fleet.models import OrgUnit, Vehicle, VehicleStatus
from fleet.paging import Listing
from telematics.models import Trip

HORIZON_MONTHS = 12


def distances_km(session: Session, vehicle_ids: list[int]) -> dict[int, float | None]:
    """Each vehicle's distance: the highest odometer known for it, whether read by hand into the
    registry, reported by its tracker at the end of a trip, or read by a driver at the end of an
    order (None where none is known)."""
    if not vehicle_ids:
        return {}
    tracked = (
        select(func.max(Trip.odometer_end_km))
        .where(Trip.vehicle_id == Vehicle.id)
        .correlate(Vehicle)
        .scalar_subquery()
    )
    read = (
        select(func.max(TripOrder.odometer_end_km))
        .join(Assignment, Assignment.order_id == TripOrder.id)
        .where(Assignment.vehicle_id == Vehicle.id)
        .correlate(Vehicle)
        .scalar_subquery()
    )
    rows = session.execute(
        select(Vehicle.id, func.greatest(Vehicle.odometer_km, tracked, read)).where(
            Vehicle.id.in_(vehicle_ids)
        )
    )
    return {vehicle_id: None if km is None else float(km) for vehicle_id, km in rows}


def _held(actor: Actor) -> Select[Vehicle, str]:
    return (
        select(Vehicle, OrgUnit.name)
        .join(OrgUnit, OrgUnit.id == Vehicle.unit_id)
        .where(Vehicle.unit_id.in_(units_in_scope(actor)), Vehicle.status != VehicleStatus.DISPOSED)
    )


def _open_requests(session: Session, vehicle_ids: list[int]) -> dict[int, RenewalRequest]:
    return {
        r.vehicle_id: r
        for r in session.scalars(
            select(RenewalRequest).where(
                RenewalRequest.vehicle_id.in_(vehicle_ids),
                RenewalRequest.status.in_(list(equipping.OPEN)),
            )
        )
    }


def renewals(
    *, session: Session, actor: Actor, settings: DispatchSettings, today: date
) -> dict[str, Any]:
    """The caller's vehicles (not disposed) due for renewal by `today`, and those that will be
    within the next 12 months, earliest first."""
    require(actor, "vehicle", "read")
    held = session.execute(_held(actor).order_by(Vehicle.plate)).all()
    ids = [vehicle.id for vehicle, _ in held]
    distance = distances_km(session, ids)
    requests = _open_requests(session, ids)
    horizon = equipping.add_months(today, HORIZON_MONTHS)
    due_now: list[dict[str, Any]] = []
    due_soon: list[dict[str, Any]] = []
    for vehicle, unit_name in held:
        due = equipping.renewal(
            acquired_on=vehicle.acquired_on,
            distance_km=distance[vehicle.id],
            today=today,
            age_years=settings.renewal_age_years,
            distance_limit_km=settings.renewal_distance_km,
        )
        if not due.due_by(horizon):
            continue
        request = requests.get(vehicle.id)
        item = {
            "vehicle_id": vehicle.id,
            "plate": vehicle.plate,
            "unit_id": vehicle.unit_id,
            "unit_name": unit_name,
            "category": vehicle.category,
            "energy": vehicle.energy,
            "make_model": vehicle.make_model,
            "acquired_on": vehicle.acquired_on,
            "age_years": due.age_years,
            "distance_km": distance[vehicle.id],
            "due_on": due.due_on,
            "age_due_on": due.age_due_on,
            "distance_due_on": due.distance_due_on,
            "reasons": due.reasons(today if due.due_by(today) else horizon),
            "request_id": request.id if request else None,
            "request_status": request.status if request else None,
        }
        (due_now if due.due_by(today) else due_soon).append(item)
    for items in (due_now, due_soon):
        items.sort(key=lambda i: (i["due_on"], i["plate"]))
    return {
        "today": today,
        "horizon": horizon,
        "age_years": settings.renewal_age_years,
        "distance_km": settings.renewal_distance_km,
        "due_now": due_now,
        "due_within_12_months": due_soon,
    }


def idle(
    *,
    session: Session,
    actor: Actor,
    settings: DispatchSettings,
    month: date,
    zone: ZoneInfo,
) -> dict[str, Any]:
    """The caller's active vehicles used on fewer than FLEET_IDLE_MIN_DAYS days of `month` (a
    vehicle is used on a local day a trip of it starts, as in the statistics), so the pool can
    reallocate them. A vehicle bought during the month or later is not judged on it."""
    require(actor, "vehicle", "read")
    first = month.replace(day=1)
    following = equipping.add_months(first, 1)
    since = datetime.combine(first, time(), zone)
    until = datetime.combine(following, time(), zone)
    local_day = func.date(func.timezone(zone.key, Trip.start_at))
    used = (
        select(Trip.vehicle_id, func.count(func.distinct(local_day)).label("days"))
        .where(Trip.start_at >= since, Trip.start_at < until)
        .group_by(Trip.vehicle_id)
        .subquery()
    )
    rows = session.execute(
        select(Vehicle, OrgUnit.name, func.coalesce(used.c.days, 0))
        .join(OrgUnit, OrgUnit.id == Vehicle.unit_id)
        .outerjoin(used, used.c.vehicle_id == Vehicle.id)
        .where(
            Vehicle.unit_id.in_(units_in_scope(actor)),
            Vehicle.status == VehicleStatus.ACTIVE,
            (Vehicle.acquired_on.is_(None)) | (Vehicle.acquired_on <= first),
        )
        .order_by(func.coalesce(used.c.days, 0), Vehicle.plate)
    ).all()
    items = [
        {
            "vehicle_id": vehicle.id,
            "plate": vehicle.plate,
            "unit_id": vehicle.unit_id,
            "unit_name": unit_name,
            "category": vehicle.category,
            "days_used": int(days),
        }
        for vehicle, unit_name, days in rows
        if equipping.is_idle(int(days), settings.idle_min_days)
    ]
    return {
        "month": first.strftime("%Y-%m"),
        "min_days": settings.idle_min_days,
        "items": items,
    }


def new_energy_purchases(*, session: Session, actor: Actor) -> list[dict[str, Any]]:
    """Per year of purchase, the vehicles of the caller's units bought (disposed ones too) and
    the new-energy share of them (BEV and PHEV; 新能源汽车)."""
    require(actor, "vehicle", "read")
    year = func.extract("year", Vehicle.acquired_on)
    new_energy = Vehicle.energy.in_(["bev", "phev"])
    rows = session.execute(
        select(year, func.count(), func.count().filter(new_energy))
        .where(Vehicle.unit_id.in_(units_in_scope(actor)), Vehicle.acquired_on.is_not(None))
        .group_by(year)
        .order_by(year)
    ).all()
    return [
        {
            "year": int(y),
            "bought": int(bought),
            "new_energy": int(green),
            "share": round(int(green) / int(bought), 4),
        }
        for y, bought, green in rows
    ]


# ---- renewal and disposal requests ------------------------------------------------------------


def _scoped_requests(actor: Actor) -> Select[RenewalRequest]:
    return select(RenewalRequest).where(RenewalRequest.unit_id.in_(units_in_scope(actor)))


def get_request(
    *, session: Session, actor: Actor, request_id: int, lock: bool = False
) -> RenewalRequest:
    require(actor, "vehicle", "read")
    stmt = _scoped_requests(actor).where(RenewalRequest.id == request_id)
    request = session.scalar(stmt.with_for_update() if lock else stmt)
    if request is None:
        raise NotFound(f"renewal request {request_id} not found")
    return request


def list_requests(
    *, session: Session, actor: Actor, listing: Listing, status: RequestStatus | None = None
) -> tuple[list[RenewalRequest], int]:
    require(actor, "vehicle", "read")
    stmt = _scoped_requests(actor).order_by(RenewalRequest.id.desc())
    if status is not None:
        stmt = stmt.where(RenewalRequest.status == status)
    items, total = listing.page(session, stmt)
    return list(items), total


def view(*, session: Session, request: RenewalRequest) -> dict[str, Any]:
    vehicle = session.get(Vehicle, request.vehicle_id)
    unit_name = session.scalar(select(OrgUnit.name).where(OrgUnit.id == request.unit_id))
    replacement = session.scalar(
        select(Vehicle.id).where(Vehicle.replaces_id == request.vehicle_id)
    )
    return {
        "id": request.id,
        "vehicle_id": request.vehicle_id,
        "plate": vehicle.plate if vehicle else "",
        "category": vehicle.category if vehicle else None,
        "unit_id": request.unit_id,
        "unit_name": unit_name or "",
        "kind": request.kind,
        "reason": request.reason,
        "requester_id": request.requester_id,
        "status": request.status,
        "approval_steps": request.approval_steps,
        "approvals_done": request.approvals_done,
        "decisions": request.decisions,
        "disposal_method": request.disposal_method,
        "disposed_on": request.disposed_on,
        "receiver": request.receiver,
        "replacement_id": replacement,
        "created_at": request.created_at,
        "updated_at": request.updated_at,
    }


def _record(session: Session, actor: Actor, request: RenewalRequest, action: str, before: Any):
    audit.record(
        session=session,
        actor=actor.ref,
        action=action,
        entity="renewal_request",
        entity_id=request.id,
        before=before,
        after=audit.snapshot(request),
    )


def create_request(
    *, session: Session, actor: Actor, vehicle_id: int, kind: RequestKind, reason: str
) -> RenewalRequest:
    """A request to renew or dispose of a vehicle, sent up its unit's approval chain at once:
    the same rules as an order's (those that always apply, and large_vehicle for a minibus, bus
    or truck)."""
    require(actor, "vehicle", "write")
    vehicle = session.scalar(
        select(Vehicle)
        .where(Vehicle.id == vehicle_id, Vehicle.unit_id.in_(units_in_scope(actor)))
        .with_for_update()
    )
    if vehicle is None:
        raise Invalid(f"unknown vehicle {vehicle_id}", field="vehicle_id")
    if vehicle.status == VehicleStatus.DISPOSED:
        raise Invalid(f"vehicle {vehicle.plate} is disposed of already", field="vehicle_id")
    if _open_requests(session, [vehicle.id]):
        raise Conflict(f"vehicle {vehicle.plate} has an open request already", field="vehicle_id")
    traits = approval.Traits(body_class=vehicle.body_class)
    request = RenewalRequest(
        vehicle_id=vehicle.id,
        unit_id=vehicle.unit_id,
        kind=kind,
        reason=reason,
        requester_id=actor.user_id,
        approval_steps=chain_for_unit(session, vehicle.unit_id, traits),
        approvals_done=0,
        decisions=[],
        status=RequestStatus.SUBMITTED,
    )
    audit.created(session=session, actor=actor.ref, entity="renewal_request", obj=request)
    return request


def decide(
    *,
    session: Session,
    actor: Actor,
    request_id: int,
    approve: bool,
    comment: str,
    distinct_deciders: bool,
    now: datetime,
) -> RenewalRequest:
    """Approves the request's current step (the last approves the request) or rejects it, under
    the rules of an order's approval: an approver of the step's unit or above, never the
    requester, and (with FLEET_APPROVAL_DISTINCT_DECIDERS) one step per person."""
    require(actor, "order", "approve")
    request = get_request(session=session, actor=actor, request_id=request_id, lock=True)
    if request.requester_id == actor.user_id:
        raise Forbidden("an approver does not approve their own request")
    comment = comment.strip()
    if not approve and not comment:
        raise Invalid("a rejection needs a comment", field="comment")
    if request.status != RequestStatus.SUBMITTED:
        equipping.move(request.status, RequestStatus.APPROVED)  # raises, naming the status
    if distinct_deciders and any(d["user_id"] == actor.user_id for d in request.decisions):
        raise Forbidden(
            "each step of an approval chain is decided by a different person: you already"
            " decided a step of this request"
        )
    steps = request.approval_steps
    step = steps[request.approvals_done]
    if not may_decide(session, actor, step["unit_id"]):
        raise Forbidden(
            f"step {request.approvals_done + 1} of {len(steps)} is for an approver of unit"
            f" {step['unit_id']} ({', '.join(step['reasons'])})"
        )
    before = audit.snapshot(request)
    decision = {
        "step": request.approvals_done + 1,
        "approved": approve,
        "comment": comment,
        "user_id": actor.user_id,
        "username": actor.username,
        "at": now.isoformat(),
    }
    request.decisions = [*request.decisions, decision]
    if not approve:
        request.status = equipping.move(request.status, RequestStatus.REJECTED)
    else:
        request.approvals_done += 1
        if request.approvals_done == len(steps):
            request.status = equipping.move(request.status, RequestStatus.APPROVED)
    session.flush()
    _record(session, actor, request, "approve" if approve else "reject", before)
    return request


def dispose(
    *,
    session: Session,
    actor: Actor,
    request_id: int,
    method: DisposalMethod,
    disposed_on: date,
    receiver: str,
    today: date,
    now: datetime,
) -> RenewalRequest:
    """Records the disposal (处置) of an approved request's vehicle: how, on which day (not after
    today), to whom. The vehicle becomes disposed, which frees its quota place; for a renewal, a
    new vehicle is then registered with `replaces_id` naming the old one. Its `status_since` is
    `now`, as for any status change (`fleet.registry.update_vehicle`)."""
    require(actor, "vehicle", "write")
    request = get_request(session=session, actor=actor, request_id=request_id, lock=True)
    if disposed_on > today:
        raise Invalid("the disposal date is in the future", field="disposed_on")
    before = audit.snapshot(request)
    request.status = equipping.move(request.status, RequestStatus.DISPOSED)
    request.disposal_method = method
    request.disposed_on = disposed_on
    request.receiver = receiver
    vehicle = session.get(Vehicle, request.vehicle_id, with_for_update=True)
    if vehicle is None:  # RESTRICT keeps it; a request outlives no vehicle
        raise NotFound(f"vehicle {request.vehicle_id} not found")
    with audit.changing(
        session=session, actor=actor.ref, entity="vehicle", obj=vehicle, action="dispose"
    ):
        if vehicle.status != VehicleStatus.DISPOSED:
            vehicle.status_since = now
        vehicle.status = VehicleStatus.DISPOSED
    session.flush()
    _record(session, actor, request, "dispose", before)
    return request


def default_month(now: datetime, zone: ZoneInfo) -> date:
    """The last whole month before `now`, in the display zone."""
    first = now.astimezone(zone).date().replace(day=1)
    return (first - timedelta(days=1)).replace(day=1)
