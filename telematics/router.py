"""HTTP routes of telematics: tracks, trips, the live picture, unknown devices, counters."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from sqlalchemy.orm import Session

from fleet import access
from fleet.api import (
    ActorDep,
    ClientDep,
    FastJSON,
    ListingDep,
    RedisDep,
    SessionDep,
    current_token,
)
from fleet.auth import Actor
from fleet.schemas import Id, Moment, Page
from telematics import service
from telematics.schemas import Live, TelemetryAccepted, Track, Trips, UnknownDeviceOut
from telematics.settings import TelematicsSettingsDep

router = APIRouter(prefix="/api/v1", tags=["telematics"])


def _record_read(
    session: Session,
    actor: Actor,
    client: str,
    vehicle_id: int,
    what: str,
    start: datetime,
    end: datetime,
) -> None:
    """Who read which of the vehicle's records, for which period (GET /vehicles/{id}/reads)."""
    access.record(
        session=session,
        actor=actor,
        client=client,
        action=access.READ,
        entity="vehicle",
        entity_id=vehicle_id,
        what=what,
        since=start,
        until=end,
    )


Start = Annotated[Moment, Query(description="ISO-8601 with a zone, inclusive.")]
End = Annotated[Moment, Query(description="ISO-8601 with a zone, exclusive.")]


@router.get(
    "/vehicles/{vehicle_id}/positions", response_model=None, responses={200: {"model": Track}}
)
def positions(
    session: SessionDep,
    actor: ActorDep,
    client: ClientDep,
    vehicle_id: Id,
    start: Start,
    end: End,
    simplify_m: Annotated[
        float | None, Query(gt=0, le=10_000, description="Douglas-Peucker tolerance, metres.")
    ] = None,
) -> Response:
    """The vehicle's fixes in [start, end); the read is recorded (GET /vehicles/{id}/reads)."""
    track = service.positions(
        session=session,
        actor=actor,
        vehicle_id=vehicle_id,
        start=start,
        end=end,
        simplify_m=simplify_m,
    )
    _record_read(session, actor, client, vehicle_id, "positions", start, end)
    return FastJSON(track)


@router.get("/vehicles/{vehicle_id}/trips", response_model=None, responses={200: {"model": Trips}})
def trips(
    session: SessionDep, actor: ActorDep, client: ClientDep, vehicle_id: Id, start: Start, end: End
) -> Response:
    """The vehicle's trips overlapping [start, end); the read is recorded."""
    items = service.trips(session=session, actor=actor, vehicle_id=vehicle_id, start=start, end=end)
    _record_read(session, actor, client, vehicle_id, "trips", start, end)
    return FastJSON({"items": items})


@router.get("/live", response_model=None, responses={200: {"model": Live}})
def live(session: SessionDep, redis: RedisDep, actor: ActorDep) -> Response:
    return FastJSON({"items": service.live(session=session, redis=redis, actor=actor)})


@router.get("/unknown-devices", response_model=Page[UnknownDeviceOut])
def unknown_devices(session: SessionDep, actor: ActorDep, listing: ListingDep) -> dict[str, Any]:
    items, total = service.list_unknown_devices(session=session, actor=actor, listing=listing)
    return listing.answer(items, total)


@router.post("/telemetry", status_code=202, response_model=TelemetryAccepted)
def telemetry(
    session: SessionDep,
    redis: RedisDep,
    telematics_settings: TelematicsSettingsDep,
    batch: service.TelemetryBatch,
    token: Annotated[str, Depends(current_token)],
) -> dict[str, Any]:
    """The JSON batch API for integrations: `Authorization: Bearer <device token>` (a device of
    protocol `api`). 202 with how many fixes were accepted and why any were dropped."""
    return service.accept_batch(
        session=session,
        redis=redis,
        settings=telematics_settings,
        token=token,
        batch=batch,
    )


@router.get("/telemetry/counters")
def counters(redis: RedisDep, actor: ActorDep) -> dict[str, int]:
    return service.counters(redis=redis, actor=actor)
