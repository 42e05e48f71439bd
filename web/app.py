"""The app factory: one FastAPI application with every domain's routes and the error table."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse, Response
from psycopg import errors as pg_errors
from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError
from starlette.exceptions import HTTPException
from starlette.routing import Match

from costs import router as costs_router
from dispatch import equipping_router
from dispatch import router as dispatch_router
from dispatch.settings import DispatchSettings
from fleet import checkpoint, events, oidc
from fleet import router as kernel_router
from fleet.db import make_engine, make_read_engine, make_session_factory
from fleet.errors import Conflict, FleetError, Rejected, Throttled, http_status
from fleet.settings import Settings
from geofence import router as geofence_router
from geofence import service as geofence_service
from geofence.settings import GeofenceSettings
from reports import router as reports_router
from telematics import router as telematics_router
from telematics.settings import TelematicsSettings
from web import live, pages, signon
from web.body_limit import BodyLimit
from web.live import LiveHub
from web.settings import WebSettings


class ErrorOut(BaseModel):
    """Every error answer: `detail` is a message, or a list of the fields at fault (`loc`, `msg`,
    `type`); `problems` lists the bad rows of a refused file."""

    detail: str | list[dict[str, Any]]
    problems: list[dict[str, Any]] | None = None


# Documented on every operation: what any of them may answer besides its success.
# The content is named: errors are JSON also where the success is HTML or PDF.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {
        "model": ErrorOut,
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}},
    }
    for status, description in (
        (400, "Malformed request (a body that cannot be parsed)."),
        (401, "No valid token: POST /api/v1/auth/token."),
        (403, "Your roles do not allow this."),
        (404, "No such object within your units."),
        (409, "Conflicts with the current state, or other rows still refer to the object."),
        (413, "The body is larger than FLEET_MAX_BODY_BYTES (uploads: FLEET_MAX_UPLOAD_BYTES)."),
        (422, "Invalid input; the answer names the field and why."),
        (429, "Too many attempts; see Retry-After."),
        (503, "A store is unavailable or the ingest backlog is full; send again later."),
    )
}


def error_body(error: FleetError) -> dict[str, object]:
    if isinstance(error, Rejected):
        return {"detail": error.message, "problems": error.problems}
    if error.field:
        return {
            "detail": [{"loc": ["body", error.field], "msg": error.message, "type": error.code}]
        }
    return {"detail": error.message}


async def fleet_error_handler(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, FleetError)
    status = http_status(error)
    headers: dict[str, str] = {}
    if isinstance(error, Throttled):
        headers["Retry-After"] = str(error.retry_after_s)
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse(error_body(error), status_code=status, headers=headers)


def _still_referenced(error: IntegrityError) -> Conflict | None:
    """A delete that rows of another table still refer to (a driver with assignments, a vehicle
    with alerts), named by the table that holds it."""
    cause = error.orig
    if not isinstance(cause, pg_errors.ForeignKeyViolation):
        return None
    detail = cause.diag.message_detail or ""
    primary = cause.diag.message_primary or ""
    if "is still referenced" not in detail:
        return None
    deleted = re.search(r'on table "([^"]+)"', primary)
    key = re.search(r"=\(([^)]*)\)", detail)
    what = f"{deleted.group(1) if deleted else 'row'} {key.group(1) if key else ''}".strip()
    return Conflict(
        f"{what} is still held by rows of {cause.diag.table_name}; remove or reassign them first"
    )


async def integrity_error_handler(request: Request, error: Exception) -> Response:
    assert isinstance(error, IntegrityError)
    conflict = _still_referenced(error)
    if conflict is None:
        raise error
    return await fleet_error_handler(request, conflict)


async def method_not_allowed_handler(request: Request, error: Exception) -> Response:
    """Starlette's 405 names the methods of the first route that matched the path; `Allow` lists
    those of every route of the path (`/units/{id}`: GET, PATCH, DELETE)."""
    assert isinstance(error, HTTPException)
    if error.status_code == 405:
        # Asked of the router itself, so path convertors (`{fence_id:int}`) count as they route.
        methods = [
            method
            for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
            if any(
                route.matches({**request.scope, "method": method})[0] == Match.FULL
                for route in request.app.router.routes
            )
        ]
        error.headers = {**(error.headers or {}), "Allow": ", ".join(methods)}
    return await http_exception_handler(request, error)


def create_app(
    settings: Settings,
    *,
    telematics_settings: TelematicsSettings | None = None,
    geofence_settings: GeofenceSettings | None = None,
    dispatch_settings: DispatchSettings | None = None,
    web_settings: WebSettings | None = None,
    live_keepalive_s: float = 15.0,
) -> FastAPI:
    engine = make_engine(settings)
    read_engine = make_read_engine(settings)
    redis = settings.redis.connect(socket_timeout=2, socket_connect_timeout=2)

    hub = LiveHub(
        settings.redis,
        keepalive_s=live_keepalive_s,
        token_recheck_s=settings.live_token_recheck_s,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await hub.start()
        yield
        await hub.stop()
        redis.close()
        engine.dispose()
        if read_engine is not None:
            read_engine.dispose()

    app = FastAPI(
        title="Fleet",
        summary="Telematics and dispatch for government official-vehicle pools (公务用车管理平台)",
        version="0.1.0",
        lifespan=lifespan,
        responses=ERROR_RESPONSES,
    )
    app.state.settings = settings
    app.state.audit_anchors = checkpoint.anchors(settings)
    app.state.engine = engine
    app.state.session_factory = make_session_factory(engine)
    app.state.read_session_factory = (
        None if read_engine is None else make_session_factory(read_engine)
    )
    events.install(app.state.session_factory, redis)
    app.state.redis = redis
    app.state.live_hub = hub
    app.state.telematics_settings = telematics_settings or TelematicsSettings()
    app.state.geofence_settings = geofence_settings or GeofenceSettings()
    app.state.dispatch_settings = dispatch_settings or DispatchSettings()
    app.state.web_settings = web_settings or WebSettings()
    app.state.oidc_provider = oidc.Provider(settings) if settings.oidc_issuer else None
    warning_days = app.state.geofence_settings.calendar_warning_days
    app.state.health_checks = [
        lambda session, now: geofence_service.calendar_status(
            session=session,
            today=now.astimezone(settings.zone).date(),
            warning_days=warning_days,
        )["warnings"]
    ]
    app.add_exception_handler(FleetError, fleet_error_handler)
    app.add_exception_handler(IntegrityError, integrity_error_handler)
    app.add_exception_handler(HTTPException, method_not_allowed_handler)
    upload = (settings.max_upload_bytes, "FLEET_MAX_UPLOAD_BYTES")
    app.add_middleware(
        BodyLimit,
        max_bytes=settings.max_body_bytes,
        setting="FLEET_MAX_BODY_BYTES",
        larger={
            ("POST", "/api/v1/costs/statements"): upload,
            ("POST", "/api/v1/fences/import"): upload,
        },
    )
    app.include_router(kernel_router.health_router)
    app.include_router(kernel_router.router)
    app.include_router(telematics_router.router)
    app.include_router(geofence_router.router)
    app.include_router(dispatch_router.router)
    app.include_router(equipping_router.router)
    app.include_router(costs_router.router)
    app.include_router(reports_router.router)
    app.include_router(live.router)
    app.include_router(signon.router)
    app.include_router(pages.router)
    pages.mount_static(app, app.state.web_settings)
    return app
