"""The maps open where the fleet is when no centre is configured: the desk and the review fit the
vehicles in the caller's scope (their last positions, else their depots), the phone the depots of
the caller's unit (else of their organisation), never another unit's cars; and every map credits
OpenStreetMap beside the configured base map. Screenshots land in var/screenshots/.

The stack is conftest's (its database and Redis, seeded as every page test's are), served a
second time without FLEET_MAP_CENTER and FLEET_MAP_ZOOM. Where the demo's depots are is read from
the database, never written here.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx2 as httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from fleet import registry
from fleet.auth import Actor
from fleet.demo import DEMO_PASSWORD
from fleet.models import Energy, OrgUnit, Role
from fleet.schemas import UnitCreate, UserCreate
from telematics import stream
from tests.factories import add_vehicle
from tests.support import free_port, wait_healthy
from tests.web.conftest import SCREENSHOTS, Phones, Stack, bearer, sign_in, watched
from web.pages import ui_config
from web.settings import DEFAULT_MAP_CENTER, WebSettings

# What the pages opened at before (FLEET_MAP_CENTER's old default), and the settings' defaults.
OLD_DEFAULT = (120.16, 30.27, 11.0)
FIT_MAX_ZOOM = 15.0
BASEMAP_CREDIT = "测试底图 / test base map"
Point = tuple[float, float]


def _plain_tile() -> str:
    """A 256-pixel PNG as a data: URL: a base map that asks nothing of the outside world."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    rows = b"".join(b"\x00" + bytes((238, 234, 224)) * 256 for _ in range(256))
    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 256, 256, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(rows, 9))
        + chunk(b"IEND", b"")
    )
    return "data:image/png;base64," + base64.b64encode(png).decode()


@pytest.fixture(scope="module")
def stack(stack: Stack) -> Iterator[Stack]:
    """conftest's stack served again with no map centre (and a base map with a credit), so the
    fixtures built on `stack` (desk, phones) open these pages."""
    port = free_port()
    env = {k: v for k, v in stack.env.items() if k not in {"FLEET_MAP_CENTER", "FLEET_MAP_ZOOM"}}
    env |= {
        "FLEET_HTTP_PORT": str(port),
        "FLEET_BASEMAP_URL": _plain_tile(),
        "FLEET_BASEMAP_ATTRIBUTION": BASEMAP_CREDIT,
    }
    server_log = SCREENSHOTS / "server-map_fit-unset.log"
    with server_log.open("wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve"], env=env, stdout=log, stderr=log
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_healthy(url, [server], server_log)
            yield dataclasses.replace(stack, url=url, env=env, outside=[], console=[])
        finally:
            server.terminate()
            server.wait(timeout=20)


@pytest.fixture
def unheard(stack: Stack) -> Iterator[None]:
    """No vehicle has been heard from (the last positions the worker keeps are gone), before and
    after the test."""
    stack.redis.delete(stream.LAST_POSITIONS)
    yield
    stack.redis.delete(stream.LAST_POSITIONS)


@dataclass(frozen=True)
class Elsewhere:
    """A unit whose one car is kept far from the demo's, its dispatcher and requester, and a
    unit with no car and its requester."""

    depot: Point
    dispatcher: str
    requester: str
    carless_requester: str


@pytest.fixture
def elsewhere(stack: Stack) -> Iterator[Elsewhere]:
    with stack.engine.connect() as conn:
        east, lat = conn.execute(
            text("SELECT max(ST_XMax(depot)), avg(ST_Y(ST_PointOnSurface(depot))) FROM vehicle")
        ).one()
    depot = (round(float(east) + 0.4, 6), round(float(lat), 6))
    with Session(stack.engine) as session:
        root = session.scalars(select(OrgUnit).where(OrgUnit.parent_id.is_(None))).one()
        system = Actor.system(root)
        far = registry.create_unit(
            session=session,
            actor=system,
            data=UnitCreate(name="远郊测试单位", code="FIT-FAR", parent_id=root.id),
        )
        carless = registry.create_unit(
            session=session,
            actor=system,
            data=UnitCreate(name="无车测试单位", code="FIT-NOCAR", parent_id=root.id),
        )
        add_vehicle(
            session,
            far,
            "浙A·D98761",
            actor=system,
            energy=Energy.BEV,
            battery_kwh=60,
            depot_name="远郊测试车库",
            depot={"type": "Point", "coordinates": list(depot)},
        )
        for username, role, unit in (
            ("fit-dispatcher", Role.DISPATCHER, far),
            ("fit-requester", Role.REQUESTER, far),
            ("fit-carless", Role.REQUESTER, carless),
        ):
            registry.create_user(
                session=session,
                actor=None,
                data=UserCreate(
                    username=username, password=DEMO_PASSWORD, roles=[role], unit_id=unit.id
                ),
            )
        session.commit()
        units = [far.id, carless.id]
    try:
        yield Elsewhere(depot, "fit-dispatcher", "fit-requester", "fit-carless")
    finally:
        with stack.engine.begin() as conn:
            conn.execute(text("DELETE FROM user_account WHERE unit_id = ANY(:u)"), {"u": units})
            conn.execute(text("DELETE FROM vehicle WHERE unit_id = ANY(:u)"), {"u": units})
            conn.execute(text("DELETE FROM org_unit WHERE id = ANY(:u)"), {"u": units})


# ---- what the database says ----------------------------------------------------------------------

DEPOT_CORNERS = """
    SELECT DISTINCT ST_XMin(v.depot), ST_YMin(v.depot), ST_XMax(v.depot), ST_YMax(v.depot)
    FROM vehicle v JOIN org_unit o ON o.id = v.unit_id
    WHERE v.depot IS NOT NULL AND v.status <> 'disposed' AND {where}
"""


def _unit_path(stack: Stack, username: str) -> str:
    with stack.engine.connect() as conn:
        return str(
            conn.execute(
                text(
                    "SELECT o.path FROM user_account u JOIN org_unit o ON o.id = u.unit_id"
                    " WHERE u.username = :name"
                ),
                {"name": username},
            ).scalar_one()
        )


def _depots(stack: Stack, username: str, *, inside: bool = True) -> list[Point]:
    """The corners of the depots of the vehicles in the user's scope (or outside it)."""
    where = "o.path LIKE :path || '%'" if inside else "o.path NOT LIKE :path || '%'"
    with stack.engine.connect() as conn:
        rows = conn.execute(
            text(DEPOT_CORNERS.format(where=where)), {"path": _unit_path(stack, username)}
        ).all()
    return sorted({p for w, s, e, n in rows for p in ((w, s), (e, n))})


def _vehicles(stack: Stack, username: str, *, inside: bool = True) -> list[tuple[int, int]]:
    where = "o.path LIKE :path || '%'" if inside else "o.path NOT LIKE :path || '%'"
    with stack.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT v.id, v.unit_id FROM vehicle v JOIN org_unit o ON o.id = v.unit_id"
                f" WHERE v.status = 'active' AND {where} ORDER BY v.id"
            ),
            {"path": _unit_path(stack, username)},
        ).all()
    return [(int(r[0]), int(r[1])) for r in rows]


def _heard(stack: Stack, placed: dict[tuple[int, int], Point]) -> None:
    """Last positions as the ingest worker leaves them in Redis."""
    now_ms = int(time.time() * 1000)
    fixes = {
        vehicle_id: json.dumps(
            {
                "vehicle_id": vehicle_id,
                "unit_id": unit_id,
                "fix_ms": now_ms,
                "fix_time": datetime.fromtimestamp(now_ms / 1000, UTC).isoformat(),
                "received_ms": now_ms,
                "lon": lon,
                "lat": lat,
                "speed_kmh": 0.0,
                "heading_deg": 0.0,
                "ignition": False,
            }
        )
        for (vehicle_id, unit_id), (lon, lat) in placed.items()
    }
    stack.redis.hset(stream.LAST_POSITIONS, mapping=fixes)


# ---- what the map shows --------------------------------------------------------------------------


def _view(page: Any, map_expression: str, points: list[Point]) -> dict[str, Any]:
    """The map's camera, its canvas, and where `points` fall on it (CSS pixels)."""
    return dict(
        page.evaluate(
            f"""(points) => {{
              const map = {map_expression};
              const canvas = map.getCanvas();
              const centre = map.getCenter();
              return {{
                zoom: map.getZoom(), centre: [centre.lng, centre.lat],
                width: canvas.clientWidth, height: canvas.clientHeight,
                pixels: points.map((p) => {{ const at = map.project(p); return [at.x, at.y]; }}),
              }};
            }}""",
            [list(p) for p in points],
        )
    )


def _on_canvas(view: dict[str, Any], pixel: list[float]) -> bool:
    x, y = pixel
    return -1 <= x <= view["width"] + 1 and -1 <= y <= view["height"] + 1


def _assert_fitted(view: dict[str, Any], points: list[Point]) -> None:
    """Every point is on the map, and the map is fitted to them: they span at least half of it
    one way, or it is as close as a fitted map goes; and it is not where maps opened before."""
    assert points, "nothing to fit: the test set nothing up"
    off = [p for p, px in zip(points, view["pixels"], strict=True) if not _on_canvas(view, px)]
    assert not off, f"not on the map: {off} (view {view})"
    xs = [px[0] for px in view["pixels"]]
    ys = [px[1] for px in view["pixels"]]
    filled = max((max(xs) - min(xs)) / view["width"], (max(ys) - min(ys)) / view["height"])
    assert view["zoom"] <= FIT_MAX_ZOOM + 1e-6, view
    assert filled >= 0.5 or view["zoom"] >= FIT_MAX_ZOOM - 1e-6, (
        f"the points fill {filled:.0%} of a map at zoom {view['zoom']:.2f}: not fitted to them"
    )
    lon, lat, zoom = OLD_DEFAULT
    assert not (
        abs(view["centre"][0] - lon) < 1e-6
        and abs(view["centre"][1] - lat) < 1e-6
        and abs(view["zoom"] - zoom) < 1e-6
    ), "the map opened at the old default centre"


def _assert_not_shown(view: dict[str, Any], points: list[Point]) -> None:
    shown = [p for p, px in zip(points, view["pixels"], strict=True) if _on_canvas(view, px)]
    assert not shown, f"another unit's vehicles are on the map: {shown}"


def _open_desk(context: Any, stack: Stack, username: str) -> Any:
    page = context.new_page()
    sign_in(page, stack, username)
    page.wait_for_url("**/desk")
    page.wait_for_function("window.fleetDesk && window.fleetDesk.ready", timeout=30_000)
    return page


def _open_phone_map(phones: Phones, username: str) -> Any:
    page = phones.open(username, tab="new")
    page.wait_for_function("window.fleetPhone.mapReady", timeout=30_000)
    return page


def _extent(stack: Stack, username: str, of: str) -> httpx.Response:
    return httpx.get(
        f"{stack.url}/api/v1/map/extent", params={"of": of}, headers=bearer(stack, username)
    )


# ---- the tests -----------------------------------------------------------------------------------


def test_a_configured_centre_wins_and_none_asks_the_pages_to_fit() -> None:
    configured = ui_config(WebSettings(map_center=(120.21, 30.25), map_zoom=14), "Asia/Shanghai")
    assert (configured["center"], configured["zoom"], configured["fit"]) == (
        [120.21, 30.25],
        14,
        None,
    )
    unset = ui_config(WebSettings(map_center=None, map_zoom=11), "Asia/Shanghai")
    assert unset["center"] == list(DEFAULT_MAP_CENTER)
    assert unset["fit"] == {"max_zoom": WebSettings.model_fields["map_fit_max_zoom"].default}


def test_desk_fits_the_depots_of_the_dispatchers_vehicles_none_heard_yet(
    desk_context: Any, stack: Stack, unheard: None
) -> None:
    depots = _depots(stack, "dispatcher")
    page = _open_desk(desk_context, stack, "dispatcher")
    _assert_fitted(_view(page, "window.fleetDesk.map", depots), depots)
    page.wait_for_function(
        "document.querySelector('.maplibregl-ctrl-attrib-inner')?.textContent"
        ".includes('OpenStreetMap')",
        timeout=15_000,
    )
    credit = page.locator(".maplibregl-ctrl-attrib")
    assert "© OpenStreetMap contributors" in credit.inner_text()
    assert BASEMAP_CREDIT in credit.inner_text()
    assert "maplibregl-compact" in (credit.get_attribute("class") or "")
    page.screenshot(path=str(SCREENSHOTS / "map-fit-desk-depots.png"))


def test_desk_fits_the_last_positions_of_the_vehicles_in_scope(
    desk_context: Any, stack: Stack, unheard: None
) -> None:
    lon, lat = _depots(stack, "dispatcher")[0]
    mine = _vehicles(stack, "dispatcher")[:4]
    theirs = _vehicles(stack, "dispatcher", inside=False)[:1]
    assert len(mine) == 4
    assert theirs
    spots = [(round(lon + 0.02 * n, 6), round(lat + 0.01 * n, 6)) for n in range(4)]
    far = (round(lon + 0.5, 6), round(lat - 0.2, 6))
    _heard(stack, {**dict(zip(mine, spots, strict=True)), theirs[0]: far})
    page = _open_desk(desk_context, stack, "dispatcher")
    view = _view(page, "window.fleetDesk.map", [*spots, far])
    _assert_fitted({**view, "pixels": view["pixels"][:4]}, spots)
    _assert_not_shown({**view, "pixels": view["pixels"][4:]}, [far])
    page.screenshot(path=str(SCREENSHOTS / "map-fit-desk-positions.png"))


def test_phone_map_fits_the_requesters_unit_depots(
    phones: Phones, stack: Stack, unheard: None
) -> None:
    depots = _depots(stack, "requester")
    page = _open_phone_map(phones, "requester")
    _assert_fitted(_view(page, "window.fleetPhone.map", depots), depots)
    page.locator(".pick-frame").scroll_into_view_if_needed()
    page.screenshot(path=str(SCREENSHOTS / "map-fit-phone.png"))


def test_a_unit_elsewhere_sees_its_own_car_not_the_others(
    desk_context: Any, phones: Phones, stack: Stack, unheard: None, elsewhere: Elsewhere
) -> None:
    others = _depots(stack, elsewhere.dispatcher, inside=False)
    assert others
    desk = _open_desk(desk_context, stack, elsewhere.dispatcher)
    view = _view(desk, "window.fleetDesk.map", [elsewhere.depot, *others])
    _assert_fitted({**view, "pixels": view["pixels"][:1]}, [elsewhere.depot])
    _assert_not_shown({**view, "pixels": view["pixels"][1:]}, others)
    desk.screenshot(path=str(SCREENSHOTS / "map-fit-desk-elsewhere.png"))

    phone = _open_phone_map(phones, elsewhere.requester)
    view = _view(phone, "window.fleetPhone.map", [elsewhere.depot, *others])
    _assert_fitted({**view, "pixels": view["pixels"][:1]}, [elsewhere.depot])
    _assert_not_shown({**view, "pixels": view["pixels"][1:]}, others)


def test_extent_is_scoped_and_falls_back_to_the_organisations_depots(
    stack: Stack, unheard: None, elsewhere: Elsewhere
) -> None:
    lon, lat = elsewhere.depot
    for of in ("fleet", "depots"):
        answer = _extent(stack, elsewhere.dispatcher, of)
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"bbox": [lon, lat, lon, lat], "basis": "depots", "vehicles": 1}
    # Once heard from, the unit's car is where it was heard, and only the unit's car.
    [car] = _vehicles(stack, elsewhere.dispatcher)
    other = _vehicles(stack, elsewhere.dispatcher, inside=False)[0]
    heard_at = (round(lon + 0.01, 6), round(lat + 0.01, 6))
    _heard(stack, {car: heard_at, other: (round(lon - 1, 6), round(lat - 1, 6))})
    answer = _extent(stack, elsewhere.dispatcher, "fleet")
    assert answer.json() == {"bbox": [*heard_at, *heard_at], "basis": "positions", "vehicles": 1}
    # A requester may not read vehicles: no box of where they are.
    assert _extent(stack, elsewhere.requester, "fleet").status_code == 403
    # A unit without cars is served by its organisation's pool: every depot of the tree.
    answer = _extent(stack, elsewhere.carless_requester, "depots")
    assert answer.status_code == 200, answer.text
    every = _depots(stack, "admin")
    assert answer.json()["basis"] == "organisation_depots"
    west, south, east, north = answer.json()["bbox"]
    assert (west, south) == pytest.approx((min(p[0] for p in every), min(p[1] for p in every)))
    assert (east, north) == pytest.approx((max(p[0] for p in every), max(p[1] for p in every)))


def test_review_map_fits_the_supervisors_fleet_when_an_alert_has_nothing_to_draw(
    browser: Any, stack: Stack, unheard: None
) -> None:
    depots = _depots(stack, "supervisor")
    vehicle_id, unit_id = _vehicles(stack, "supervisor")[0]
    long_ago = datetime(2020, 1, 6, 2, tzinfo=UTC)
    with stack.engine.begin() as conn:
        alert_id = conn.execute(
            text(
                "INSERT INTO alert (kind, key, severity, vehicle_id, unit_id, started_at, last_at,"
                " ended_at) VALUES ('signal_loss', 'map-fit', 'low', :v, :u, :t, :t, :t)"
                " RETURNING id"
            ),
            {"v": vehicle_id, "u": unit_id, "t": long_ago},
        ).scalar_one()
    try:
        with watched(browser, stack, "map-fit-review") as context:
            page = context.new_page()
            sign_in(page, stack, "supervisor")
            page.wait_for_url("**/review")
            page.goto(f"{stack.url}/review#alert-{alert_id}")
            page.wait_for_function(f"window.fleetReview.drawn === {alert_id}", timeout=30_000)
            _assert_fitted(_view(page, "window.fleetReview.map", depots), depots)
            page.screenshot(path=str(SCREENSHOTS / "map-fit-review.png"))
    finally:
        with stack.engine.begin() as conn:
            conn.execute(text("DELETE FROM alert WHERE id = :id"), {"id": alert_id})
