"""The pages: HTML shells (the data comes from the API with the token the login page keeps),
the static files, the front-end packages from node_modules, and the map's vector tiles.

Nothing a page loads comes from outside the machine.
"""

from __future__ import annotations

import json
import mimetypes
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape

from fleet.api import ActorDep, SessionDep
from web import tiles
from web.settings import WebSettings

# ES modules must be served as JavaScript; not every Python knows .mjs.
mimetypes.add_type("text/javascript", ".mjs")

HERE = Path(__file__).resolve().parent
CHECKOUT = HERE.parent
# Each page: its template, its script, the title (zh, en), and who it is for.
PAGES: dict[str, tuple[str, str, str]] = {
    "login": ("登录", "Sign in", "everyone"),
    "desk": ("调度台", "Dispatch desk", "dispatcher"),
    "phone": ("用车", "Trips", "requester, approver, driver (phones)"),
    "review": ("告警复核", "Alert review", "supervisor"),
    "admin": ("系统管理", "Administration", "administrator"),
    "dashboard": ("统计看板", "Dashboard", "staff"),
}
# Front-end packages as npm installs them: URL prefix -> folder inside node_modules.
VENDOR = {"maplibre-gl": "maplibre-gl/dist", "echarts": "echarts/dist"}

router = APIRouter(include_in_schema=False)
templates = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html"]),
    auto_reload=False,
)


def node_modules(settings: WebSettings) -> Path:
    return Path(settings.node_modules) if settings.node_modules else CHECKOUT / "node_modules"


def mount_static(app: FastAPI, settings: WebSettings) -> None:
    """Static files and the vendor packages. A missing package is a clear page error (the
    script fails to load, the page says to run make bootstrap), not a crash at start-up."""
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    modules = node_modules(settings)
    for prefix, folder in VENDOR.items():
        app.mount(
            f"/vendor/{prefix}",
            StaticFiles(directory=modules / folder, check_dir=False),
            name=f"vendor-{prefix}",
        )


def ui_config(settings: WebSettings, zone: str) -> dict[str, Any]:
    return {
        "zone": zone,
        "basemap": {
            "url": settings.basemap_url,
            "crs": settings.basemap_crs,
            "attribution": settings.basemap_attribution,
        },
        "center": list(settings.map_center),
        "zoom": settings.map_zoom,
    }


@router.get("/")
def home() -> RedirectResponse:
    return RedirectResponse("/login", status_code=303)


@router.get("/tiles/{z}/{x}/{y}.pbf")
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
    )
    return HTMLResponse(body, headers={"Cache-Control": "no-cache"})


def _add_page(name: str) -> None:
    def show(request: Request) -> HTMLResponse:
        return _page(name, request)

    router.add_api_route(f"/{name}", show, methods=["GET"], response_class=HTMLResponse)


for _name in PAGES:
    if (HERE / "templates" / f"{_name}.html").exists():
        _add_page(_name)
