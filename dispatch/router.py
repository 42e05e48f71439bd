"""HTTP routes of dispatch: trip orders, approval and assignment."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, Request, Response, UploadFile, status
from fastapi import Path as Path_
from fastapi.responses import HTMLResponse
from sqlalchemy.orm import Session

from dispatch import costs, dossier, places, report, service, statistics
from dispatch.models import CostKind
from dispatch.orders import OrderStatus
from dispatch.schemas import (
    AssignIn,
    Comment,
    CostIn,
    OrderCreate,
    OrderOut,
    Orders,
    Places,
    PlanOut,
    Reading,
    RuleIn,
    RuleOut,
    Rules,
    Suggestions,
)
from fleet import access
from fleet.api import ActorDep, ClientDep, ListingDep, RedisDep, SessionDep
from fleet.db import utcnow
from fleet.schemas import Id, Moment, Page, Text
from geofence import service as geofence_service
from geofence.settings import clock_seconds

router = APIRouter(prefix="/api/v1", tags=["dispatch"])


def _settings(request: Request) -> Any:
    return request.app.state.dispatch_settings


@router.post("/orders", status_code=status.HTTP_201_CREATED, response_model=OrderOut)
def create_order(
    session: SessionDep, actor: ActorDep, request: Request, data: OrderCreate
) -> dict[str, Any]:
    """A trip order, saved as a draft; `POST /orders/{id}/submit` sends it for approval."""
    order = service.create_order(
        session=session, actor=actor, data=data, settings=_settings(request)
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
    return {
        "items": service.views(session=session, orders=items),
        "total": total,
        "limit": listing.limit,
        "offset": listing.offset,
    }


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
def submit(session: SessionDep, actor: ActorDep, request: Request, order_id: Id) -> dict[str, Any]:
    """Sends the order for approval; the answer lists the approval steps its unit's rules name."""
    geofence = request.app.state.geofence_settings
    order = service.submit(
        session=session,
        actor=actor,
        order_id=order_id,
        zone=request.app.state.settings.zone,
        night=(clock_seconds(geofence.night_start), clock_seconds(geofence.night_end)),
    )
    return service.view(session=session, order=order)


@router.get("/approvals/pending", response_model=Orders)
def pending(session: SessionDep, actor: ActorDep, request: Request) -> dict[str, Any]:
    """The orders waiting for the caller's decision (their current step is the caller's)."""
    items = service.pending_for(
        session=session,
        actor=actor,
        distinct_deciders=_settings(request).approval_distinct_deciders,
    )
    return {"items": service.views(session=session, orders=items)}


@router.get("/approvals/overdue", response_model=Orders)
def overdue(session: SessionDep, actor: ActorDep, request: Request) -> dict[str, Any]:
    """Emergency orders assigned before approval whose approval is overdue (flagged)."""
    items = service.overdue_emergencies(session=session, actor=actor, settings=_settings(request))
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
    request: Request,
    data: Comment | None = None,
) -> dict[str, Any]:
    """Decides the order's current step; 403 if the caller already decided a step of it and
    FLEET_APPROVAL_DISTINCT_DECIDERS is on."""
    order = service.decide(
        session=session,
        actor=actor,
        order_id=order_id,
        approve=True,
        data=data or Comment(),
        distinct_deciders=_settings(request).approval_distinct_deciders,
    )
    return service.view(session=session, order=order)


@router.post("/orders/{order_id}/reject", response_model=OrderOut)
def reject(
    session: SessionDep, actor: ActorDep, order_id: Id, data: Comment, request: Request
) -> dict[str, Any]:
    """A rejection needs a comment."""
    order = service.decide(
        session=session,
        actor=actor,
        order_id=order_id,
        approve=False,
        data=data,
        distinct_deciders=_settings(request).approval_distinct_deciders,
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
    request: Request,
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
        settings=_settings(request),
    )
    return service.view(session=session, order=order)


@router.post("/orders/{order_id}/start", response_model=OrderOut)
def start(
    session: SessionDep, actor: ActorDep, order_id: Id, data: Reading | None = None
) -> dict[str, Any]:
    """The driver sets off; `{"odometer_km"}` optional."""
    order = service.start(
        session=session,
        actor=actor,
        order_id=order_id,
        odometer_km=data.odometer_km if data else None,
    )
    return service.view(session=session, order=order)


@router.post("/orders/{order_id}/finish", response_model=OrderOut)
def finish(
    session: SessionDep, actor: ActorDep, order_id: Id, data: Reading | None = None
) -> dict[str, Any]:
    """The driver is back; `{"odometer_km"}` optional, not below the start's reading."""
    order = service.finish(
        session=session,
        actor=actor,
        order_id=order_id,
        odometer_km=data.odometer_km if data else None,
    )
    return service.view(session=session, order=order)


@router.get("/orders/{order_id}/suggestions", response_model=Suggestions)
def suggestions(
    session: SessionDep, redis: RedisDep, actor: ActorDep, request: Request, order_id: Id
) -> dict[str, Any]:
    """Ranked vehicles with the parts of each score, the vehicles left out and why, free drivers."""
    return service.suggestions(
        session=session, redis=redis, actor=actor, order_id=order_id, settings=_settings(request)
    )


@router.post("/dispatch/plan", response_model=PlanOut)
def plan(session: SessionDep, redis: RedisDep, actor: ActorDep, request: Request) -> dict[str, Any]:
    """An optimal assignment for the approved, unassigned orders in scope, to review; each pair is
    accepted with `POST /orders/{id}/assign`. The greedy nearest-first total is shown beside it."""
    return service.dispatch_plan(
        session=session, redis=redis, actor=actor, settings=_settings(request)
    )


# ---- costs ----------------------------------------------------------------------------------


def _check_setup(request: Request, session: Session) -> costs.CheckSetup:
    state = request.app.state
    return costs.CheckSetup(
        settings=state.dispatch_settings,
        calendar=geofence_service.working_calendar(
            session=session, settings=state.geofence_settings
        ),
        zone=state.settings.zone,
    )


def _cost_view(session: Session, record: Any) -> dict[str, Any]:
    return costs.view(record, costs.allocations_of(session, [record.id]).get(record.id, []))


@router.post("/costs", status_code=status.HTTP_201_CREATED, tags=["costs"])
def create_cost(
    session: SessionDep, actor: ActorDep, request: Request, data: CostIn
) -> dict[str, Any]:
    """A receipt entered by hand: fuel (litres), charging (kWh), maintenance, repair,
    insurance, inspection, toll, parking, washing. The answer shows the trip and order it was
    linked to, its allocation, and the ids of any alerts the fuel checks raised."""
    record, raised = costs.create(
        session=session,
        actor=actor,
        data=data,
        setup=_check_setup(request, session),
        now=utcnow(),
    )
    return {**_cost_view(session, record), "alerts": raised}


@router.get("/costs", tags=["costs"])
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
    return {
        "items": [costs.view(r, shared.get(r.id, [])) for r in items],
        "total": total,
        "limit": listing.limit,
        "offset": listing.offset,
    }


@router.get("/costs/statement-formats", tags=["costs"])
def statement_formats(actor: ActorDep, request: Request) -> dict[str, Any]:
    """The statement formats known (built-in and from `FLEET_STATEMENT_FORMATS_FILE`): for each
    issuer, the header names accepted for each field and the required fields."""
    del actor
    known = costs.formats(request.app.state.dispatch_settings)
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


@router.get("/costs/statements", tags=["costs"])
def list_statements(session: SessionDep, actor: ActorDep, listing: ListingDep) -> dict[str, Any]:
    return {"items": costs.list_statements(session=session, actor=actor, listing=listing)}


@router.post("/costs/statements", status_code=status.HTTP_201_CREATED, tags=["costs"])
def import_statement(
    session: SessionDep,
    actor: ActorDep,
    request: Request,
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
        setup=_check_setup(request, session),
        now=utcnow(),
    )
    if result["already_imported"]:
        response.status_code = status.HTTP_200_OK
    return result


@router.get("/costs/{cost_id}", tags=["costs"])
def get_cost(session: SessionDep, actor: ActorDep, cost_id: Id) -> dict[str, Any]:
    return _cost_view(session, costs.get(session=session, actor=actor, cost_id=cost_id))


# ---- the dossier, the vehicle file, statistics ----------------------------------------------


def _download(body: bytes, media_type: str, filename: str, *, inline: bool) -> Response:
    disposition = "inline" if inline else "attachment"
    return Response(
        body,
        media_type=media_type,
        headers={"Content-Disposition": f'{disposition}; filename="{filename}"'},
    )


def _font(request: Request) -> Path:
    return Path(request.app.state.dispatch_settings.report_font)


@router.get("/orders/{order_id}/dossier", tags=["reports"])
def order_dossier(
    session: SessionDep, actor: ActorDep, client: ClientDep, request: Request, order_id: Id
) -> dict[str, Any]:
    """The order's dossier as data: request, approvals, assignment, route and track, figures,
    costs, alerts and reviews, audit entries with the chain's verification. The read is
    recorded, as the assigned vehicle's."""
    data = dossier.order_dossier(
        session=session, actor=actor, order_id=order_id, anchors=request.app.state.audit_anchors
    )
    dossier.record_order_read(
        session=session, actor=actor, client=client, dossier=data, format="json"
    )
    return data


@router.get("/orders/{order_id}/dossier.html", tags=["reports"], response_class=HTMLResponse)
def order_dossier_html(
    session: SessionDep, actor: ActorDep, client: ClientDep, request: Request, order_id: Id
) -> HTMLResponse:
    data = dossier.order_dossier(
        session=session, actor=actor, order_id=order_id, anchors=request.app.state.audit_anchors
    )
    dossier.record_order_read(
        session=session, actor=actor, client=client, dossier=data, format="html"
    )
    return HTMLResponse(report.render_order_html(data, zone=request.app.state.settings.zone))


@router.get("/orders/{order_id}/dossier.pdf", tags=["reports"], response_class=Response)
def order_dossier_pdf(
    session: SessionDep, actor: ActorDep, client: ClientDep, request: Request, order_id: Id
) -> Response:
    data = dossier.order_dossier(
        session=session, actor=actor, order_id=order_id, anchors=request.app.state.audit_anchors
    )
    dossier.record_order_read(
        session=session, actor=actor, client=client, dossier=data, format="pdf"
    )
    pdf = report.render_order_pdf(
        data, zone=request.app.state.settings.zone, font_path=_font(request)
    )
    return _download(pdf, "application/pdf", f"order-{order_id}.pdf", inline=True)


@router.get("/vehicles/{vehicle_id}/file", tags=["reports"])
def vehicle_file(
    session: SessionDep, actor: ActorDep, client: ClientDep, request: Request, vehicle_id: Id
) -> dict[str, Any]:
    """The vehicle file (一车一档) as data; the read is recorded."""
    data = dossier.vehicle_file(
        session=session, actor=actor, vehicle_id=vehicle_id, zone=request.app.state.settings.zone
    )
    dossier.record_vehicle_file_read(
        session=session, actor=actor, client=client, vehicle_id=vehicle_id, format="json"
    )
    return data


@router.get("/vehicles/{vehicle_id}/file.html", tags=["reports"], response_class=HTMLResponse)
def vehicle_file_html(
    session: SessionDep, actor: ActorDep, client: ClientDep, request: Request, vehicle_id: Id
) -> HTMLResponse:
    zone = request.app.state.settings.zone
    data = dossier.vehicle_file(session=session, actor=actor, vehicle_id=vehicle_id, zone=zone)
    dossier.record_vehicle_file_read(
        session=session, actor=actor, client=client, vehicle_id=vehicle_id, format="html"
    )
    return HTMLResponse(report.render_vehicle_html(data, zone=zone))


@router.get("/vehicles/{vehicle_id}/file.pdf", tags=["reports"], response_class=Response)
def vehicle_file_pdf(
    session: SessionDep, actor: ActorDep, client: ClientDep, request: Request, vehicle_id: Id
) -> Response:
    zone = request.app.state.settings.zone
    data = dossier.vehicle_file(session=session, actor=actor, vehicle_id=vehicle_id, zone=zone)
    dossier.record_vehicle_file_read(
        session=session, actor=actor, client=client, vehicle_id=vehicle_id, format="pdf"
    )
    pdf = report.render_vehicle_pdf(data, zone=zone, font_path=_font(request))
    return _download(pdf, "application/pdf", f"vehicle-{vehicle_id}.pdf", inline=True)


EXPORTS = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


@router.get("/statistics/{name}", tags=["reports"], response_model=None)
def statistics_report(
    session: SessionDep,
    actor: ActorDep,
    client: ClientDep,
    request: Request,
    name: Annotated[Text, Path_(description="vehicles, units, alerts or costs")],
    since: Annotated[Moment, Query(description="Start of the period, ISO-8601 with a zone.")],
    until: Annotated[Moment, Query(description="End of the period (exclusive).")],
    format: Annotated[str, Query(pattern="^(json|csv|xlsx)$")] = "json",
) -> dict[str, Any] | Response:
    """Use per vehicle or unit (days used, trips, distance, hours, cost per km, consumption
    against norm, new-energy share), alerts per unit and kind with the confirmation rate, costs
    per unit and kind; as JSON, CSV or XLSX (an export, recorded with who, the period and the
    address it was asked from)."""
    rows, columns = statistics.report(
        session=session,
        actor=actor,
        name=name,
        since=since,
        until=until,
        zone=request.app.state.settings.zone,
    )
    if format == "json":
        return {
            "name": name,
            "since": since,
            "until": until,
            "columns": [{"key": c.key, "zh": c.zh, "en": c.en} for c in columns],
            "items": rows,
        }
    access.record(
        session=session,
        actor=actor,
        client=client,
        action=access.EXPORT,
        entity="statistics",
        entity_id=name,
        what="statistics",
        since=since,
        until=until,
        format=format,
    )
    body = (
        statistics.to_csv(rows, columns)
        if format == "csv"
        else statistics.to_xlsx(rows, columns, title=name)
    )
    return _download(body, EXPORTS[format], f"{name}.{format}", inline=False)
