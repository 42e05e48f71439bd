"""The pages: HTML shells (the data comes from the API with the token the login page keeps),
the static files, the front-end packages (web/vendor.py), the map's vector tiles, and the
extent a page's map opens on.

Nothing a page loads comes from outside the machine.
"""

from __future__ import annotations

import json
import mimetypes
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, FastAPI, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import BaseModel, Field
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from fleet.api import ActorDep, RedisDep, SessionDep
from fleet.auth import Actor, require, units_in_scope
from fleet.models import OrgUnit, Vehicle, VehicleStatus
from fleet.redis_client import RedisClient
from telematics import service as telematics_service
from web import tiles, vendor
from web.settings import DEFAULT_MAP_CENTER, WebSettings

# ES modules must be served as JavaScript; not every Python knows .mjs.
mimetypes.add_type("text/javascript", ".mjs")

HERE = Path(__file__).resolve().parent
# Each page: its template, its script, the title (zh, en), and who it is for.
PAGES: dict[str, tuple[str, str, str]] = {
    "login": ("登录", "Sign in", "everyone"),
    "desk": ("调度台", "Dispatch desk", "dispatcher"),
    "phone": ("用车", "Trips", "requester, approver, driver (phones)"),
    "review": ("告警复核", "Alert review", "supervisor"),
    "admin": ("系统管理", "Administration", "administrator"),
    "dashboard": ("统计看板", "Dashboard", "staff"),
    "profile": ("个人设置", "Profile", "everyone"),
}

# The pages and tiles are no part of the API's contract; the map's extent is (see the end).
page_router = APIRouter(include_in_schema=False)
api_router = APIRouter(prefix="/api/v1", tags=["map"])
templates = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html"]),
    auto_reload=False,
)


def node_modules(settings: WebSettings) -> Path:
    """The folder holding the front-end packages: the one set, else the installed wheel's own (web/
    node_modules, just the files the pages load), else node_modules beside the checkout."""
    if settings.node_modules:
        return Path(settings.node_modules)
    carried = HERE / "node_modules"
    return carried if carried.is_dir() else HERE.parent / "node_modules"


def mount_static(app: FastAPI, settings: WebSettings) -> None:
    """Static files and the vendor packages. A missing package is a clear page error (the
    script fails to load, the page says to run make bootstrap), not a crash at start-up."""
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    modules = node_modules(settings)
    for name, package in vendor.PACKAGES.items():
        app.mount(
            f"/vendor/{name}",
            StaticFiles(directory=modules / name / package.served, check_dir=False),
            name=f"vendor-{name}",
        )


def ui_config(settings: WebSettings, zone: str) -> dict[str, Any]:
    return {
        "zone": zone,
        "basemap": {
            "url": settings.basemap_url,
            "crs": settings.basemap_crs,
            "attribution": settings.basemap_attribution,
        },
        "center": list(settings.map_center or DEFAULT_MAP_CENTER),
        "zoom": settings.map_zoom,
        # With no centre set, the desk, review and phone maps fit GET /api/v1/map/extent.
        "fit": None if settings.map_center else {"max_zoom": settings.map_fit_max_zoom},
    }


@page_router.get("/")
def home() -> RedirectResponse:
    return RedirectResponse("/login", status_code=303)


@page_router.get("/tiles/{z}/{x}/{y}.pbf")
def vector_tile(
    session: SessionDep, actor: ActorDep, z: int, x: int, y: int, crs: str = "wgs84"
) -> Response:
    """Roads, fences and depots; `crs=gcj02` draws them where a GCJ-02 base map has them."""
    data = tiles.tile(session=session, actor=actor, z=z, x=x, y=y, shift_gcj02=crs == "gcj02")
    return Response(
        data,
        media_type="application/vnd.mapbox-vector-tile",
        headers={"Cache-Control": "private, max-age=60"},
    )


def _page(name: str, request: Request) -> HTMLResponse:
    zh, en, _ = PAGES[name]
    settings: WebSettings = request.app.state.web_settings
    body = templates.get_template(f"{name}.html").render(
        page=name,
        title_zh=zh,
        title_en=en,
        config=json.dumps(
            ui_config(settings, request.app.state.settings.display_timezone), ensure_ascii=False
        ),
        # The login page offers 统一身份认证 when an identity provider is configured, and keeps
        # the password form folded away for the break-glass administrators once passwords are off.
        signon=bool(request.app.state.settings.oidc_issuer),
        local_login=request.app.state.settings.local_login,
    )
    return HTMLResponse(body, headers={"Cache-Control": "no-cache"})


def _add_page(name: str) -> None:
    def show(request: Request) -> HTMLResponse:
        return _page(name, request)

    page_router.add_api_route(f"/{name}", show, methods=["GET"], response_class=HTMLResponse)


for _name in PAGES:
    if (HERE / "templates" / f"{_name}.html").exists():
        _add_page(_name)


# ---- the extent a map opens on ----------------------------------------------------------------


# [west, south, east, north], WGS-84 degrees
Box = tuple[float, float, float, float]


class MapExtent(BaseModel):
    """What a page's map fits when no centre is configured."""

    # A list of four, not a tuple: OpenAPI 3.0 has no prefixItems, and a schema that uses them
    # does not validate (schemathesis refused it).
    bbox: list[float] | None = Field(
        min_length=4,
        max_length=4,
        description="[west, south, east, north], WGS-84 degrees; null: nothing to fit (the map"
        " opens at the default centre).",
    )
    basis: Literal["positions", "depots", "organisation_depots", "none"] = Field(
        description="What the box holds: the vehicles' last positions, their depots, the depots"
        " of the caller's organisation (the root unit's tree; `of=depots` only), or nothing."
    )
    vehicles: int = Field(description="How many vehicles the box was made from.")


NOTHING = MapExtent(bbox=None, basis="none", vehicles=0)


def _depot_box(session: Session, units: Select[int]) -> tuple[Box | None, int]:
    """The box around the depots of the vehicles of `units` (disposed ones aside), and how many
    vehicles have one."""
    box = func.ST_Extent(Vehicle.depot)
    west, south, east, north, count = session.execute(
        select(
            func.ST_XMin(box), func.ST_YMin(box), func.ST_XMax(box), func.ST_YMax(box),
            func.count(Vehicle.depot),
        ).where(
            Vehicle.unit_id.in_(units),
            Vehicle.status != VehicleStatus.DISPOSED,
            Vehicle.depot.is_not(None),
        )
    ).one()  # fmt: skip
    return ((west, south, east, north) if count else None), int(count)


def fleet_extent(*, session: Session, redis: RedisClient, actor: Actor) -> MapExtent:
    """The box around the last positions of the vehicles in the caller's scope, or, when none
    has one, around their depots."""
    require(actor, "vehicle", "read")
    vehicle_ids = list(
        session.scalars(
            select(Vehicle.id).where(
                Vehicle.unit_id.in_(units_in_scope(actor)),
                Vehicle.status != VehicleStatus.DISPOSED,
            )
        )
    )
    fixes = [
        (fix["lon"], fix["lat"])
        for fix in telematics_service.last_positions(redis=redis, vehicle_ids=vehicle_ids).values()
        if fix.get("lon") is not None and fix.get("lat") is not None
    ]
    if fixes:
        lons, lats = zip(*fixes, strict=True)
        heard = (min(lons), min(lats), max(lons), max(lats))
        return MapExtent(bbox=heard, basis="positions", vehicles=len(fixes))
    depots, count = _depot_box(session, units_in_scope(actor))
    return MapExtent(bbox=depots, basis="depots", vehicles=count) if depots else NOTHING


def depot_extent(*, session: Session, actor: Actor) -> MapExtent:
    """The box around the depots of the vehicles of the caller's units, or, when they keep none,
    of their organisation's (the pool serving a unit is usually a sibling unit's, as for
    dispatch's seat check). Any role may ask: the answer is where the cars start from, one box,
    nothing of the vehicles themselves."""
    depots, count = _depot_box(session, units_in_scope(actor))
    if depots:
        return MapExtent(bbox=depots, basis="depots", vehicles=count)
    root_path = actor.unit_path.split("/", 1)[0] + "/"
    organisation = select(OrgUnit.id).where(OrgUnit.path.startswith(root_path, autoescape=True))
    depots, count = _depot_box(session, organisation)
    if depots:
        return MapExtent(bbox=depots, basis="organisation_depots", vehicles=count)
    return NOTHING


@api_router.get("/map/extent", response_model=MapExtent)
def map_extent(
    session: SessionDep,
    redis: RedisDep,
    actor: ActorDep,
    of: Annotated[
        Literal["fleet", "depots"],
        Query(
            description="`fleet`: the vehicles in the caller's scope (the desk, the review);"
            " `depots`: the depots of the caller's unit (the phone)."
        ),
    ] = "fleet",
) -> MapExtent:
    """Where a page's map opens when FLEET_MAP_CENTER is unset. `of=fleet` is refused (403) to
    a caller who may not read vehicles, a requester; `of=depots` answers any role."""
    if of == "depots":
        return depot_extent(session=session, actor=actor)
    return fleet_extent(session=session, redis=redis, actor=actor)


# What the app includes: made last, as include_router copies the routes there are by then.
router = APIRouter()
router.include_router(page_router)
router.include_router(api_router)
