"""HTTP routes of equipping and renewal (配备更新): quotas, reallocation, vehicles due for renewal,
idle vehicles, the new-energy share of purchases, and renewal or disposal requests."""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Query, status

from dispatch.equipping import RequestStatus
from dispatch.schemas import (
    Comment,
    DisposalIn,
    IdleVehicles,
    Purchases,
    QuotasIn,
    QuotasOut,
    QuotaSummary,
    ReallocateIn,
    RenewalRequestIn,
    RenewalRequestOut,
    Renewals,
)
from dispatch.service import equipping
from dispatch.settings import DispatchSettingsDep
from fleet import quota
from fleet.api import ActorDep, ListingDep, NowDep, SessionDep, ZoneDep
from fleet.errors import Invalid
from fleet.schemas import Id, Page, VehicleOut

router = APIRouter(prefix="/api/v1/equipping", tags=["equipping"])


@router.get("/quotas", response_model=QuotaSummary)
def quotas(session: SessionDep, actor: ActorDep) -> dict[str, Any]:
    """Each unit's quota (编制) per category against the vehicles it holds (not disposed of), per
    unit and in total; `over` flags a unit holding more than its quota in some category."""
    return quota.summary(session=session, actor=actor)


@router.put("/quotas/{unit_id}", response_model=QuotasOut)
def set_quotas(session: SessionDep, actor: ActorDep, unit_id: Id, data: QuotasIn) -> Any:
    """Sets a unit's quotas (administrators); the change is audited."""
    after = quota.set_quotas(session=session, actor=actor, unit_id=unit_id, quotas=data.quotas)
    return {"unit_id": unit_id, "quotas": after}


@router.post("/vehicles/{vehicle_id}/reallocate", response_model=VehicleOut)
def reallocate(session: SessionDep, actor: ActorDep, vehicle_id: Id, data: ReallocateIn) -> Any:
    """Moves the vehicle to another unit (统筹调剂) within that unit's quota (422 naming
    `unit_id` when it is full); the move and its reason are audited."""
    return quota.reallocate(
        session=session,
        actor=actor,
        vehicle_id=vehicle_id,
        unit_id=data.unit_id,
        reason=data.reason,
    )


@router.get("/renewals", response_model=Renewals)
def renewals(
    session: SessionDep,
    actor: ActorDep,
    dispatch_settings: DispatchSettingsDep,
    zone: ZoneDep,
    now: NowDep,
) -> dict[str, Any]:
    """The vehicles due for renewal now, by age (FLEET_RENEWAL_AGE_YEARS) or distance
    (FLEET_RENEWAL_DISTANCE_KM), and those that will be within 12 months."""
    return equipping.renewals(
        session=session,
        actor=actor,
        settings=dispatch_settings,
        today=now.astimezone(zone).date(),
    )


@router.get("/idle", response_model=IdleVehicles)
def idle(
    session: SessionDep,
    actor: ActorDep,
    dispatch_settings: DispatchSettingsDep,
    zone: ZoneDep,
    now: NowDep,
    month: Annotated[
        str | None,
        Query(
            pattern=r"^\d{4}-\d{2}$",
            description="YYYY-MM; the last whole month when left out.",
        ),
    ] = None,
) -> dict[str, Any]:
    """Active vehicles used on fewer than FLEET_IDLE_MIN_DAYS days of the month (闲置)."""
    if month is None:
        first = equipping.default_month(now, zone)
    else:
        found = re.fullmatch(r"(\d{4})-(\d{2})", month)
        year, number = (int(found[1]), int(found[2])) if found else (0, 0)
        if not (2000 <= year <= 2100 and 1 <= number <= 12):
            raise Invalid("a month from 2000-01 to 2100-12", field="month")
        first = date(year, number, 1)
    return equipping.idle(
        session=session, actor=actor, settings=dispatch_settings, month=first, zone=zone
    )


@router.get("/new-energy", response_model=Purchases)
def new_energy(session: SessionDep, actor: ActorDep) -> dict[str, Any]:
    """Per year of purchase, the vehicles bought and the new-energy share of them."""
    return {"items": equipping.new_energy_purchases(session=session, actor=actor)}


@router.post("/requests", status_code=status.HTTP_201_CREATED, response_model=RenewalRequestOut)
def create_request(session: SessionDep, actor: ActorDep, data: RenewalRequestIn) -> Any:
    """A renewal (更新) or disposal (处置) request for a vehicle, sent up its unit's approval
    chain; 409 when the vehicle has an open request."""
    request = equipping.create_request(
        session=session, actor=actor, vehicle_id=data.vehicle_id, kind=data.kind, reason=data.reason
    )
    return equipping.view(session=session, request=request)


@router.get("/requests", response_model=Page[RenewalRequestOut])
def list_requests(
    session: SessionDep,
    actor: ActorDep,
    listing: ListingDep,
    status: RequestStatus | None = None,
) -> dict[str, Any]:
    items, total = equipping.list_requests(
        session=session, actor=actor, listing=listing, status=status
    )
    return listing.answer([equipping.view(session=session, request=r) for r in items], total)


@router.get("/requests/{request_id}", response_model=RenewalRequestOut)
def get_request(session: SessionDep, actor: ActorDep, request_id: Id) -> Any:
    request = equipping.get_request(session=session, actor=actor, request_id=request_id)
    return equipping.view(session=session, request=request)


@router.post("/requests/{request_id}/approve", response_model=RenewalRequestOut)
def approve(
    session: SessionDep,
    actor: ActorDep,
    request_id: Id,
    dispatch_settings: DispatchSettingsDep,
    now: NowDep,
    data: Comment | None = None,
) -> Any:
    """Decides the request's current step, as for an order."""
    request = equipping.decide(
        session=session,
        actor=actor,
        request_id=request_id,
        approve=True,
        comment=data.comment if data else "",
        distinct_deciders=dispatch_settings.approval_distinct_deciders,
        now=now,
    )
    return equipping.view(session=session, request=request)


@router.post("/requests/{request_id}/reject", response_model=RenewalRequestOut)
def reject(
    session: SessionDep,
    actor: ActorDep,
    request_id: Id,
    dispatch_settings: DispatchSettingsDep,
    now: NowDep,
    data: Comment,
) -> Any:
    """A rejection needs a comment."""
    request = equipping.decide(
        session=session,
        actor=actor,
        request_id=request_id,
        approve=False,
        comment=data.comment,
        distinct_deciders=dispatch_settings.approval_distinct_deciders,
        now=now,
    )
    return equipping.view(session=session, request=request)


@router.post("/requests/{request_id}/dispose", response_model=RenewalRequestOut)
def dispose(
    session: SessionDep,
    actor: ActorDep,
    request_id: Id,
    zone: ZoneDep,
    now: NowDep,
    data: DisposalIn,
) -> Any:
    """Records the approved request's disposal: method, date, receiving party. The vehicle
    becomes disposed and its quota place free; register the new one with `replaces_id`."""
    request = equipping.dispose(
        session=session,
        actor=actor,
        request_id=request_id,
        method=data.method,
        disposed_on=data.disposed_on,
        receiver=data.receiver,
        today=now.astimezone(zone).date(),
        now=now,
    )
    return equipping.view(session=session, request=request)
