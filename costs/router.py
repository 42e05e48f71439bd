"""HTTP routes of costs: receipts, statements and their formats."""

from __future__ import annotations

from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, File, Form, Query, Response, UploadFile, status
from sqlalchemy.orm import Session

from costs import service as costs
from costs.models import CostKind
from costs.schemas import (
    CostCreated,
    CostIn,
    CostOut,
    StatementFormats,
    StatementImported,
    Statements,
)
from dispatch.settings import DispatchSettings, DispatchSettingsDep
from fleet.api import ActorDep, ListingDep, NowDep, SessionDep, ZoneDep
from fleet.schemas import Id, Moment, Page, Text
from geofence import service as geofence_service
from geofence.settings import GeofenceSettings, GeofenceSettingsDep

router = APIRouter(prefix="/api/v1", tags=["costs"])

# ---- costs ----------------------------------------------------------------------------------


def _check_setup(
    session: Session, settings: DispatchSettings, geofence: GeofenceSettings, zone: ZoneInfo
) -> costs.CheckSetup:
    return costs.CheckSetup(
        settings=settings,
        calendar=geofence_service.working_calendar(session=session, settings=geofence),
        zone=zone,
    )


def _cost_view(session: Session, record: Any) -> dict[str, Any]:
    return costs.view(record, costs.allocations_of(session, [record.id]).get(record.id, []))


@router.post("/costs", status_code=status.HTTP_201_CREATED, response_model=CostCreated)
def create_cost(
    session: SessionDep,
    actor: ActorDep,
    dispatch_settings: DispatchSettingsDep,
    geofence_settings: GeofenceSettingsDep,
    zone: ZoneDep,
    now: NowDep,
    data: CostIn,
) -> dict[str, Any]:
    """A receipt entered by hand: fuel (litres), charging (kWh), maintenance, repair,
    insurance, inspection, toll, parking, washing. The answer shows the trip and order it was
    linked to, its allocation, and the ids of any alerts the fuel and energy checks raised."""
    record, raised = costs.create(
        session=session,
        actor=actor,
        data=data,
        setup=_check_setup(session, dispatch_settings, geofence_settings, zone),
        now=now,
    )
    return {**_cost_view(session, record), "alerts": raised}


@router.get("/costs", response_model=Page[CostOut])
def list_costs(
    session: SessionDep,
    actor: ActorDep,
    listing: ListingDep,
    vehicle_id: Id | None = None,
    order_id: Annotated[
        Id | None, Query(description="Records of the order or shared out to it.")
    ] = None,
    kind: CostKind | None = None,
    since: Moment | None = None,
    until: Moment | None = None,
) -> dict[str, Any]:
    items, total = costs.list_(
        session=session,
        actor=actor,
        listing=listing,
        vehicle_id=vehicle_id,
        order_id=order_id,
        kind=kind,
        since=since,
        until=until,
    )
    shared = costs.allocations_of(session, [r.id for r in items])
    return listing.answer((costs.view(r, shared.get(r.id, [])) for r in items), total)


@router.get("/costs/statement-formats", response_model=StatementFormats)
def statement_formats(actor: ActorDep, dispatch_settings: DispatchSettingsDep) -> dict[str, Any]:
    """The statement formats known (built-in and from `FLEET_STATEMENT_FORMATS_FILE`): for each
    issuer, the header names accepted for each field and the required fields."""
    del actor
    known = costs.formats(dispatch_settings)
    return {
        "items": [
            {
                "issuer": f.issuer,
                "name": f.name,
                "kind": f.kind,
                "columns": {k: list(v) for k, v in f.columns.items()},
                "required": sorted(f.required),
                "time_formats": list(f.time_formats),
            }
            for f in known.values()
        ]
    }


@router.get("/costs/statements", response_model=Statements)
def list_statements(session: SessionDep, actor: ActorDep, listing: ListingDep) -> dict[str, Any]:
    return {"items": costs.list_statements(session=session, actor=actor, listing=listing)}


@router.post(
    "/costs/statements",
    status_code=status.HTTP_201_CREATED,
    response_model=StatementImported,
    responses={200: {"model": StatementImported, "description": "Imported before: nothing added"}},
)
def import_statement(
    session: SessionDep,
    actor: ActorDep,
    dispatch_settings: DispatchSettingsDep,
    geofence_settings: GeofenceSettingsDep,
    zone: ZoneDep,
    now: NowDep,
    response: Response,
    file: Annotated[UploadFile, File(description="The statement, CSV or XLSX.")],
    issuer: Annotated[Text, Form(description="Whose format: see /costs/statement-formats.")],
) -> dict[str, Any]:
    """Imports a fuel-card or charging statement, all or nothing: 422 with `problems` (line,
    field, reason) for every bad row; the same file again answers 200 and adds nothing. The
    request is at most FLEET_MAX_UPLOAD_BYTES (413 beyond, refused as it streams in)."""
    data = file.file.read()
    result = costs.import_statement(
        session=session,
        actor=actor,
        data=data,
        filename=file.filename or "statement",
        issuer=issuer,
        setup=_check_setup(session, dispatch_settings, geofence_settings, zone),
        now=now,
    )
    if result["already_imported"]:
        response.status_code = status.HTTP_200_OK
    return result


@router.get("/costs/{cost_id}", response_model=CostOut)
def get_cost(session: SessionDep, actor: ActorDep, cost_id: Id) -> dict[str, Any]:
    return _cost_view(session, costs.get(session=session, actor=actor, cost_id=cost_id))
