"""The app factory: one FastAPI application with every domain's routes and the error table."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from redis import Redis

from dispatch import router as dispatch_router
from dispatch.settings import DispatchSettings
from fleet import events
from fleet import router as kernel_router
from fleet.db import make_engine, make_session_factory
from fleet.errors import FleetError, Rejected, Throttled, http_status
from fleet.settings import Settings
from geofence import router as geofence_router
from geofence.settings import GeofenceSettings
from telematics import router as telematics_router
from telematics.settings import TelematicsSettings
from web import live, pages
from web.live import LiveHub
from web.settings import WebSettings


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
    redis = Redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)

    hub = LiveHub(settings.redis_url, keepalive_s=live_keepalive_s)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await hub.start()
        yield
        await hub.stop()
        redis.close()
        engine.dispose()

    app = FastAPI(
        title="Fleet",
        summary="Telematics and dispatch for government official-vehicle pools (公务用车管理平台)",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.session_factory = make_session_factory(engine)
    events.install(app.state.session_factory, redis)
    app.state.redis = redis
    app.state.live_hub = hub
    app.state.telematics_settings = telematics_settings or TelematicsSettings()
    app.state.geofence_settings = geofence_settings or GeofenceSettings()
    app.state.dispatch_settings = dispatch_settings or DispatchSettings()
    app.state.web_settings = web_settings or WebSettings()
    app.add_exception_handler(FleetError, fleet_error_handler)
    app.include_router(kernel_router.health_router)
    app.include_router(kernel_router.router)
    app.include_router(telematics_router.router)
    app.include_router(geofence_router.router)
    app.include_router(dispatch_router.router)
    app.include_router(live.router)
    app.include_router(pages.router)
    pages.mount_static(app, app.state.web_settings)
    return app
