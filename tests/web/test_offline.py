"""Every page with the outside world cut off: the browser context refuses any address outside the
machine (and the test fails if a page asked for one), yet each page loads, and each map draws the
app's own roads from its own vector tiles, with its own fonts and no base map from elsewhere."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import text

from tests.web.conftest import CENTRE, PHONE, SCREENSHOTS, Stack, open_context, sign_in

CJK = re.compile(r"[\u4e00-\u9fff]")
VISIBLE_LABELS = "[...document.querySelectorAll('[data-i18n]')].filter(e => e.offsetParent)"
DESK = {"viewport": {"width": 1400, "height": 900}}
# page, who opens it, the browser's size, the flag the page raises when it is ready, its map.
PAGES = [
    ("desk", "dispatcher", DESK, "window.fleetDesk?.ready", "window.fleetDesk.map"),
    ("phone#new", "requester", PHONE, "window.fleetPhone?.mapReady", "window.fleetPhone.map"),
    (
        "review#alert-{alert}",
        "supervisor",
        DESK,
        "window.fleetReview?.ready",
        "window.fleetReview.map",
    ),
    ("admin#fences", "admin", DESK, "window.fleetAdmin?.fencesReady", "window.fleetAdmin.map"),
    ("dashboard", "admin", DESK, "window.fleetDashboard?.ready", None),
]


@pytest.fixture
def offline(browser: Any, stack: Stack) -> Iterator[Any]:
    stack.console.clear()
    stack.outside.clear()
    contexts: list[Any] = []

    def open_(**options: Any) -> Any:
        contexts.append(open_context(browser, stack, **options))
        return contexts[-1]

    yield open_
    for context in contexts:
        context.close()
    errors = [line for line in stack.console if line.startswith(("pageerror", "error"))]
    assert not errors, f"the page reported errors: {errors}"
    assert not stack.outside, f"pages asked for addresses outside the machine: {stack.outside}"


def test_the_login_page_loads_offline_in_either_language(offline: Any, stack: Stack) -> None:
    page = offline(**DESK).new_page()
    page.goto(f"{stack.url}/login")
    page.wait_for_selector("#username", state="visible")
    labels = f"{VISIBLE_LABELS}.map(e => e.textContent)"
    chinese = page.evaluate(labels)
    assert chinese
    assert all(CJK.search(label) for label in chinese), chinese
    page.screenshot(path=str(SCREENSHOTS / "offline-login.png"))
    page.click("#lang")
    english = page.evaluate(labels)
    assert len(english) == len(chinese)
    assert not [label for label in english if CJK.search(label)], english
    page.click("#lang")


@pytest.mark.parametrize(("path", "username", "size", "ready", "map_"), PAGES)
def test_every_page_loads_and_its_map_draws_roads_offline(
    offline: Any, stack: Stack, path: str, username: str, size: Any, ready: str, map_: str | None
) -> None:
    page = offline(**size).new_page()
    sign_in(page, stack, username)
    page.wait_for_url(lambda url: "/login" not in url, timeout=30_000)  # signed in: home
    if "{alert}" in path:  # the review page draws its map for an alert: the demo's
        with stack.engine.connect() as conn:
            alert = conn.execute(text("SELECT min(id) FROM alert")).scalar_one()
        path = path.format(alert=alert)
    page.goto("about:blank")  # a page and a hash apart: a load, not a hash change
    page.goto(f"{stack.url}/{path}")
    page.wait_for_function(f"Boolean({ready})", timeout=30_000)
    if map_ is not None:
        # Over the demo's roads (the review map has framed the alert's track, elsewhere).
        page.evaluate(f"{map_}.jumpTo({{center: {list(CENTRE)}, zoom: 14}})")
        page.wait_for_function(
            f"{map_}.loaded() && {map_}.queryRenderedFeatures({{layers: ['roads']}}).length > 0",
            timeout=30_000,
        )
    name = path.split("#")[0]
    page.screenshot(path=str(SCREENSHOTS / f"offline-{name}.png"))


def test_the_pages_datum_shift_agrees_with_the_servers(offline: Any, stack: Stack) -> None:
    """Over a GCJ-02 base map the pages shift live positions and unshift drawn fences in
    JavaScript; the tiles are shifted in Python. Both must agree, and a round trip must land
    within a metre of where it started."""
    from web import gcj02

    points = [(120.2106, 30.2452), (116.3975, 39.9087), (87.6168, 43.8256), (2.35, 48.85)]
    page = offline(**DESK).new_page()
    page.goto(f"{stack.url}/login")
    shifted = page.evaluate(
        """async (points) => {
            const { wgs84ToGcj02, gcj02ToWgs84 } = await import('/static/js/map.js');
            return points.map(([lon, lat]) => {
                const there = wgs84ToGcj02(lon, lat);
                return [there, gcj02ToWgs84(there[0], there[1])];
            });
        }""",
        points,
    )
    for (lon, lat), (there, back) in zip(points, shifted, strict=True):
        assert there == pytest.approx(gcj02.from_wgs84(lon, lat), abs=1e-9)
        assert back == pytest.approx((lon, lat), abs=1e-5)  # about a metre
