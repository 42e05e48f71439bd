"""HTTP routes of the geofence domain: fences, the working calendar and hours, alerts, review."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Response, status

from fleet.api import ActorDep, ListingDep, NowDep, SessionDep, ZoneDep
from fleet.auth import require
from fleet.errors import Invalid
from fleet.schemas import Day, Id, Moment, Page, Text
from geofence import service
from geofence.models import FenceKind
from geofence.rules import KINDS
from geofence.schemas import (
    AlertDetail,
    AlertOut,
    CalendarDayIn,
    CalendarDayOut,
    CalendarStatusOut,
    CalendarYearOut,
    FenceCollection,
    FenceCreate,
    FenceFeature,
    FencesImported,
    FenceUpdate,
    NoticeIn,
    NoticePreviewOut,
    NoticeSavedOut,
    ReviewIn,
    WorkingHoursIn,
    WorkingHoursOut,
)
from geofence.settings import GeofenceSettingsDep

router = APIRouter(prefix="/api/v1", tags=["geofence"])


@router.post("/fences", status_code=status.HTTP_201_CREATED, response_model=FenceFeature)
def create_fence(session: SessionDep, actor: ActorDep, data: FenceCreate) -> dict[str, Any]:
    """A fence from GeoJSON: Polygon/MultiPolygon, Point + radius_m (circle), or
    LineString + width_m (corridor). Bad geometry is a 422 naming what is wrong."""
    return service.fence_feature(service.create_fence(session=session, actor=actor, data=data))


@router.post("/fences/import", status_code=status.HTTP_201_CREATED, response_model=FencesImported)
def import_fences(
    session: SessionDep,
    actor: ActorDep,
    collection: Annotated[dict[str, Any], Body(description="A GeoJSON FeatureCollection.")],
) -> dict[str, Any]:
    """Each feature's properties hold the fence fields (name, kind, radius_m...). All or none."""
    fences = service.import_fences(session=session, actor=actor, collection=collection)
    return {"imported": len(fences), "ids": [f.id for f in fences]}


@router.get("/fences", response_model=FenceCollection)
def list_fences(
    session: SessionDep,
    actor: ActorDep,
    kind: FenceKind | None = None,
    enabled: bool | None = None,
) -> dict[str, Any]:
    """A GeoJSON FeatureCollection of the fences the caller can see."""
    fences = service.list_fences(session=session, actor=actor, kind=kind, enabled=enabled)
    return {"type": "FeatureCollection", "features": [service.fence_feature(f) for f in fences]}


# `:int`: `/fences/import` is that route's alone, never a fence id.
@router.get("/fences/{fence_id:int}", response_model=FenceFeature)
def get_fence(session: SessionDep, actor: ActorDep, fence_id: Id) -> dict[str, Any]:
    return service.fence_feature(service.get_fence(session=session, actor=actor, fence_id=fence_id))


@router.patch("/fences/{fence_id:int}", response_model=FenceFeature)
def update_fence(
    session: SessionDep, actor: ActorDep, fence_id: Id, data: FenceUpdate
) -> dict[str, Any]:
    fence = service.update_fence(session=session, actor=actor, fence_id=fence_id, data=data)
    return service.fence_feature(fence)


@router.delete("/fences/{fence_id:int}", status_code=status.HTTP_204_NO_CONTENT)
def delete_fence(session: SessionDep, actor: ActorDep, fence_id: Id) -> Response:
    service.delete_fence(session=session, actor=actor, fence_id=fence_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/calendar", response_model=CalendarYearOut)
def calendar(
    session: SessionDep,
    actor: ActorDep,
    year: Annotated[int, Query(ge=1900, le=2200, description="Calendar year.")],
) -> dict[str, Any]:
    """Every date of the year that the calendar holds; `covered` is false while dates are
    missing (the engine reports them rather than guess)."""
    require(actor, "calendar", "read")
    return service.calendar_year(session=session, year=year)


@router.get("/calendar/status", response_model=CalendarStatusOut)
def calendar_status(
    session: SessionDep,
    actor: ActorDep,
    geofence_settings: GeofenceSettingsDep,
    zone: ZoneDep,
    now: NowDep,
) -> dict[str, Any]:
    """How far ahead the calendar reaches, and a warning for a year it lacks from
    FLEET_CALENDAR_WARNING_DAYS before that year starts (the pages show it as a banner)."""
    require(actor, "calendar", "read")
    return service.calendar_status(
        session=session,
        today=now.astimezone(zone).date(),
        warning_days=geofence_settings.calendar_warning_days,
    )


@router.post("/calendar/notice/preview", response_model=NoticePreviewOut)
def preview_notice(session: SessionDep, actor: ActorDep, data: NoticeIn) -> dict[str, Any]:
    """The year as the State Council's notice makes it, date by date, against what the calendar
    holds; nothing is saved. A line that cannot be read is a 422 naming it (`problems`)."""
    return service.preview_notice(session=session, actor=actor, year=data.year, text=data.text)


@router.post("/calendar/notice", response_model=NoticeSavedOut)
def import_notice(session: SessionDep, actor: ActorDep, data: NoticeIn) -> dict[str, Any]:
    """Saves the year as the notice makes it; each date added or changed is audited. Only
    administrators of a root unit."""
    return service.import_notice(session=session, actor=actor, year=data.year, text=data.text)


@router.put("/calendar/{day}", response_model=CalendarDayOut)
def set_calendar_day(
    session: SessionDep, actor: ActorDep, day: Day, data: CalendarDayIn
) -> dict[str, Any]:
    """Every unit shares the calendar: only administrators of a root unit edit it."""
    row = service.set_calendar_day(session=session, actor=actor, day=day, data=data)
    return {"day": row.day, "working": row.working, "note": row.note, "source": row.source}


@router.get("/units/{unit_id}/working-hours", response_model=WorkingHoursOut)
def working_hours(
    session: SessionDep, actor: ActorDep, geofence_settings: GeofenceSettingsDep, unit_id: Id
) -> dict[str, Any]:
    return service.get_working_hours(
        session=session,
        actor=actor,
        unit_id=unit_id,
        settings=geofence_settings,
    )


@router.put("/units/{unit_id}/working-hours", response_model=WorkingHoursOut)
def set_working_hours(
    session: SessionDep,
    actor: ActorDep,
    geofence_settings: GeofenceSettingsDep,
    unit_id: Id,
    data: WorkingHoursIn,
) -> dict[str, Any]:
    service.set_working_hours(session=session, actor=actor, unit_id=unit_id, data=data)
    return service.get_working_hours(
        session=session,
        actor=actor,
        unit_id=unit_id,
        settings=geofence_settings,
    )


@router.get("/alerts", response_model=Page[AlertOut])
def list_alerts(
    session: SessionDep,
    actor: ActorDep,
    listing: ListingDep,
    status: Annotated[
        Text | None,
        Query(description="open, closed, or a review state: pending, confirmed, dismissed..."),
    ] = None,
    kind: Annotated[Text | None, Query(description="A rule name.")] = None,
    vehicle_id: Id | None = None,
    unit_id: Id | None = None,
    start: Annotated[Moment | None, Query(description="Alerts lasting past this.")] = None,
    end: Annotated[Moment | None, Query(description="Alerts started before this.")] = None,
) -> dict[str, Any]:
    if kind is not None and kind not in KINDS:
        raise Invalid(f"kind is one of {', '.join(KINDS)}", field="kind")
    items, total = service.list_alerts(
        session=session,
        actor=actor,
        listing=listing,
        status=status,
        kind=kind,
        vehicle_id=vehicle_id,
        unit_id=unit_id,
        start=start,
        end=end,
    )
    return listing.answer(items, total)


@router.get("/alerts/{alert_id}", response_model=AlertDetail)
def get_alert(session: SessionDep, actor: ActorDep, alert_id: Id) -> dict[str, Any]:
    return service.get_alert(session=session, actor=actor, alert_id=alert_id)


@router.post("/alerts/{alert_id}/review", response_model=AlertOut)
def review_alert(
    session: SessionDep, actor: ActorDep, alert_id: Id, data: ReviewIn
) -> dict[str, Any]:
    """confirmed, dismissed (a reason is required) or escalated; each decision is audited."""
    return service.review_alert(session=session, actor=actor, alert_id=alert_id, data=data)
