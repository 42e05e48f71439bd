"""HTTP routes of reports: the order dossier, the vehicle and driver files, statistics."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query, Response
from fastapi import Path as Path_
from fastapi.responses import HTMLResponse, StreamingResponse
from sqlalchemy.orm import Session

from dispatch.settings import DispatchSettingsDep
from fleet import access, checkpoint
from fleet.api import (
    ActorDep,
    ClientDep,
    FastJSON,
    NowDep,
    ReadSessionDep,
    SessionDep,
    SettingsDep,
    StreamSessionDep,
    ZoneDep,
    from_state,
)
from fleet.auth import Actor
from fleet.schemas import Id, Moment, Text
from reports import dossier, export, statistics
from reports import render as report
from reports.schemas import Dossier, DriverFile, Statistics, VehicleFile

router = APIRouter(prefix="/api/v1", tags=["reports"])

BINARY = {"schema": {"type": "string", "format": "binary"}}
PDF: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/pdf": BINARY}, "description": "The document, A4, as PDF."}
}
EXPORTS = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}

# ---- the dossier, the vehicle file, statistics ----------------------------------------------


def _download(body: bytes, media_type: str, filename: str, *, inline: bool) -> Response:
    disposition = "inline" if inline else "attachment"
    return Response(
        body,
        media_type=media_type,
        headers={"Content-Disposition": f'{disposition}; filename="{filename}"'},
    )


AnchorsDep = Annotated[checkpoint.Anchors | None, Depends(from_state("audit_anchors"))]


def _order(
    session: Session,
    reading: Session,
    actor: Actor,
    client: str,
    anchors: checkpoint.Anchors | None,
    order_id: int,
    format: str,
) -> dict[str, Any]:
    """The order's dossier, read from `reading` (the replica, if any), its read recorded in
    `format` on the primary."""
    data = dossier.order_dossier(session=reading, actor=actor, order_id=order_id, anchors=anchors)
    dossier.record_order_read(
        session=session, actor=actor, client=client, dossier=data, format=format
    )
    return data


def _vehicle_file(
    session: Session,
    reading: Session,
    actor: Actor,
    client: str,
    zone: ZoneInfo,
    vehicle_id: int,
    format: str,
) -> dict[str, Any]:
    """The vehicle file, read from `reading` (the replica, if any), its read recorded in
    `format` on the primary."""
    data = dossier.vehicle_file(session=reading, actor=actor, vehicle_id=vehicle_id, zone=zone)
    dossier.record_vehicle_file_read(
        session=session, actor=actor, client=client, vehicle_id=vehicle_id, format=format
    )
    return data


@router.get("/orders/{order_id}/dossier", response_model=None, responses={200: {"model": Dossier}})
def order_dossier(
    session: SessionDep,
    reading: ReadSessionDep,
    actor: ActorDep,
    client: ClientDep,
    anchors: AnchorsDep,
    order_id: Id,
) -> dict[str, Any]:
    """The order's dossier as data: request, approvals, assignment, route and track, figures,
    costs, alerts and reviews, audit entries with the chain's verification. The read is
    recorded, as the assigned vehicle's."""
    data = _order(session, reading, actor, client, anchors, order_id, "json")
    return data


@router.get("/orders/{order_id}/dossier.html", response_class=HTMLResponse)
def order_dossier_html(
    session: SessionDep,
    reading: ReadSessionDep,
    actor: ActorDep,
    client: ClientDep,
    zone: ZoneDep,
    anchors: AnchorsDep,
    order_id: Id,
) -> HTMLResponse:
    data = _order(session, reading, actor, client, anchors, order_id, "html")
    return HTMLResponse(report.render_order_html(data, zone=zone))


@router.get("/orders/{order_id}/dossier.pdf", response_class=Response, responses=PDF)
def order_dossier_pdf(
    session: SessionDep,
    reading: ReadSessionDep,
    actor: ActorDep,
    client: ClientDep,
    zone: ZoneDep,
    anchors: AnchorsDep,
    dispatch_settings: DispatchSettingsDep,
    order_id: Id,
) -> Response:
    data = _order(session, reading, actor, client, anchors, order_id, "pdf")
    pdf = report.render_order_pdf(data, zone=zone, font_path=Path(dispatch_settings.report_font))
    return _download(pdf, "application/pdf", f"order-{order_id}.pdf", inline=True)


@router.get(
    "/vehicles/{vehicle_id}/file", response_model=None, responses={200: {"model": VehicleFile}}
)
def vehicle_file(
    session: SessionDep,
    reading: ReadSessionDep,
    actor: ActorDep,
    client: ClientDep,
    zone: ZoneDep,
    vehicle_id: Id,
) -> dict[str, Any]:
    """The vehicle file (一车一档) as data; the read is recorded."""
    data = _vehicle_file(session, reading, actor, client, zone, vehicle_id, "json")
    return data


@router.get("/vehicles/{vehicle_id}/file.html", response_class=HTMLResponse)
def vehicle_file_html(
    session: SessionDep,
    reading: ReadSessionDep,
    actor: ActorDep,
    client: ClientDep,
    zone: ZoneDep,
    vehicle_id: Id,
) -> HTMLResponse:
    data = _vehicle_file(session, reading, actor, client, zone, vehicle_id, "html")
    return HTMLResponse(report.render_vehicle_html(data, zone=zone))


@router.get("/vehicles/{vehicle_id}/file.pdf", response_class=Response, responses=PDF)
def vehicle_file_pdf(
    session: SessionDep,
    reading: ReadSessionDep,
    actor: ActorDep,
    client: ClientDep,
    zone: ZoneDep,
    dispatch_settings: DispatchSettingsDep,
    vehicle_id: Id,
) -> Response:
    data = _vehicle_file(session, reading, actor, client, zone, vehicle_id, "pdf")
    pdf = report.render_vehicle_pdf(data, zone=zone, font_path=Path(dispatch_settings.report_font))
    return _download(pdf, "application/pdf", f"vehicle-{vehicle_id}.pdf", inline=True)


def _driver_file(
    session: Session,
    reading: Session,
    actor: Actor,
    client: str,
    zone: ZoneInfo,
    now: datetime,
    driver_id: int,
    format: str,
) -> dict[str, Any]:
    """The driver's file, read from `reading` (the replica, if any), its read recorded in
    `format` on the primary."""
    data = dossier.driver_file(
        session=reading, actor=actor, driver_id=driver_id, zone=zone, now=now
    )
    dossier.record_driver_file_read(
        session=session, actor=actor, client=client, driver_id=driver_id, format=format
    )
    return data


@router.get(
    "/drivers/{driver_id}/file", response_model=None, responses={200: {"model": DriverFile}}
)
def driver_file(
    session: SessionDep,
    reading: ReadSessionDep,
    actor: ActorDep,
    client: ClientDep,
    zone: ZoneDep,
    now: NowDep,
    driver_id: Id,
) -> dict[str, Any]:
    """The driver's file as data: licence (flagged when expired or expiring within 30 days),
    assignments, distance and hours by month, alerts while they drove with outcomes, ratings;
    the read is recorded."""
    return _driver_file(session, reading, actor, client, zone, now, driver_id, "json")


@router.get("/drivers/{driver_id}/file.html", response_class=HTMLResponse)
def driver_file_html(
    session: SessionDep,
    reading: ReadSessionDep,
    actor: ActorDep,
    client: ClientDep,
    zone: ZoneDep,
    now: NowDep,
    driver_id: Id,
) -> HTMLResponse:
    data = _driver_file(session, reading, actor, client, zone, now, driver_id, "html")
    return HTMLResponse(report.render_driver_html(data, zone=zone))


@router.get("/drivers/{driver_id}/file.pdf", response_class=Response, responses=PDF)
def driver_file_pdf(
    session: SessionDep,
    reading: ReadSessionDep,
    actor: ActorDep,
    client: ClientDep,
    zone: ZoneDep,
    now: NowDep,
    dispatch_settings: DispatchSettingsDep,
    driver_id: Id,
) -> Response:
    data = _driver_file(session, reading, actor, client, zone, now, driver_id, "pdf")
    pdf = report.render_driver_pdf(data, zone=zone, font_path=Path(dispatch_settings.report_font))
    return _download(pdf, "application/pdf", f"driver-{driver_id}.pdf", inline=True)


@router.get(
    "/statistics/{name}",
    response_model=None,
    responses={
        200: {
            "model": Statistics,
            "content": {media: BINARY for media in EXPORTS.values()},
        }
    },
)
def statistics_report(
    session: SessionDep,
    reading: ReadSessionDep,
    actor: ActorDep,
    client: ClientDep,
    zone: ZoneDep,
    name: Annotated[Text, Path_(description="vehicles, units, drivers, alerts or costs")],
    since: Annotated[Moment, Query(description="Start of the period, ISO-8601 with a zone.")],
    until: Annotated[Moment, Query(description="End of the period (exclusive).")],
    format: Annotated[str, Query(pattern="^(json|csv|xlsx)$")] = "json",
) -> Response:
    """Use per vehicle or unit (days used, trips, distance, hours, cost per km, consumption
    against norm, new-energy share, requesters' average rating), per driver (assignments,
    distance, hours, average rating), alerts per unit and kind with the confirmation rate, costs
    per unit and kind; as JSON, CSV or XLSX (an export, recorded with who, the period and the
    address it was asked from)."""
    rows, columns = statistics.report(
        session=reading,
        actor=actor,
        name=name,
        since=since,
        until=until,
        zone=zone,
    )
    if format == "json":
        return FastJSON(
            {
                "name": name,
                "since": since,
                "until": until,
                "columns": [{"key": c.key, "zh": c.zh, "en": c.en} for c in columns],
                "items": rows,
            }
        )
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


# ---- bulk export for the exchange platform ---------------------------------------------------

NEXT_CURSOR = "Fleet-Next-Cursor"
EXPORT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {
            export.MEDIA_TYPES["csv"]: {"schema": {"type": "string"}},
            export.MEDIA_TYPES["parquet"]: BINARY,
            export.MEDIA_TYPES["geojson"]: {"schema": {"type": "string"}},
        },
        "description": "The rows, streamed: CSV, GeoParquet or a GeoJSON FeatureCollection.",
        "headers": {
            NEXT_CURSOR: {
                "description": "Pass as `cursor` for the rows changed after this export.",
                "schema": {"type": "string"},
            }
        },
    },
}


@router.get("/export/{kind}", response_class=Response, responses=EXPORT_RESPONSES)
def bulk_export(
    session: SessionDep,
    reading: StreamSessionDep,
    actor: ActorDep,
    client: ClientDep,
    settings: SettingsDep,
    now: NowDep,
    kind: Annotated[Text, Path_(description="positions, trips, orders, alerts or costs")],
    since: Annotated[
        Moment | None, Query(description="Start of the period (the rows' own time), ISO-8601.")
    ] = None,
    until: Annotated[Moment | None, Query(description="End of the period (exclusive).")] = None,
    unit_id: Annotated[Id | None, Query(description="Only this unit and those below it.")] = None,
    format: Annotated[str, Query(pattern="^(csv|parquet|geojson)$")] = "csv",
    cursor: Annotated[
        str | None,
        Query(max_length=200, description="The previous export's Fleet-Next-Cursor."),
    ] = None,
) -> Response:
    """Every row of a kind in the caller's units, streamed for a data-sharing and exchange
    platform; the `Fleet-Next-Cursor` header is the cursor of the next incremental pull (the
    README's "Bulk export" tells what each kind's cursor follows). Recorded as an export."""
    plan = export.plan(
        session=reading,
        actor=actor,
        kind=kind,
        format=format,
        since=since,
        until=until,
        unit_id=unit_id,
        cursor=cursor,
        now=now,
        settle=timedelta(seconds=settings.export_settle_s),
    )
    access.record(
        session=session,
        actor=actor,
        client=client,
        action=access.EXPORT,
        entity="export",
        entity_id=kind,
        what=kind,
        since=since,
        until=until,
        format=format,
        unit_id=unit_id,
        cursor=cursor,
        next_cursor=plan.next_cursor,
    )
    return StreamingResponse(
        export.stream(reading, plan),
        media_type=export.MEDIA_TYPES[format],
        headers={
            NEXT_CURSOR: plan.next_cursor,
            "Content-Disposition": f'attachment; filename="{plan.filename}"',
        },
    )
