"""The supervisor's review page in headless Chromium: the queue filters and pages, an off-route
alert's evidence is drawn and played back, a dismissal needs a reason, new alerts arrive live,
the order dossier opens from an alert, every label switches language. Screenshots land in
var/screenshots/."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx2 as httpx
import pytest
from sqlalchemy import Connection, text

from dispatch.demo import COMPLETED, OFFICES
from fleet import channels
from fleet.demo import DEMO_PASSWORD
from telematics.ingest import partition_sql
from tests.web.conftest import SCREENSHOTS, Stack, sign_in, watched

CJK = re.compile(r"[\u4e00-\u9fff]")
# The refusal the dismissal test provokes on purpose; Chromium logs every 4xx as a console error.
EXPECTED_REFUSAL = "status of 422"
VISIBLE_LABELS = "[...document.querySelectorAll('[data-i18n]')].filter(e => e.offsetParent)"


@dataclass(frozen=True)
class Trip:
    """The demo's completed order: the one trip with an order, a vehicle and an alert."""

    order_id: int
    vehicle_id: int
    unit_id: int
    plate: str
    start_at: datetime


@pytest.fixture
def review_context(browser: Any, stack: Stack) -> Iterator[Any]:
    with watched(
        browser, stack, "review", allowed=re.escape(EXPECTED_REFUSAL), locale="zh-CN"
    ) as context:
        yield context


@pytest.fixture
def trip(stack: Stack) -> Trip:
    with stack.engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT o.id, a.vehicle_id, v.unit_id, v.plate, o.start_at FROM trip_order o"
                " JOIN assignment a ON a.order_id = o.id AND a.active"
                " JOIN vehicle v ON v.id = a.vehicle_id WHERE o.purpose = :purpose"
            ),
            {"purpose": COMPLETED},
        ).one()
    return Trip(*row)


def _month(at: datetime) -> datetime:
    return at.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _positions(
    conn: Connection, vehicle_id: int, fixes: list[tuple[datetime, float, float]]
) -> None:
    """Fixes as the ingest worker stores them, in the month partitions they need."""
    for start in sorted({_month(at) for at, _, _ in fixes}):
        conn.execute(text(partition_sql(start)))
    conn.execute(
        text(
            "INSERT INTO position (vehicle_id, fix_time, device_id, received_at, point,"
            " speed_kmh, ignition) VALUES (:v, :t, 0, :t,"
            " ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), :speed, true)"
            " ON CONFLICT DO NOTHING"
        ),
        [
            {"v": vehicle_id, "t": at, "lon": lon, "lat": lat, "speed": 45.0}
            for at, lon, lat in fixes
        ],
    )


def _corridor_fence(stack: Stack, name: str, line: list[list[float]]) -> int:
    """The planned corridor, drawn by the administrator through the API (which buffers it)."""
    with httpx.Client(base_url=stack.url, timeout=10) as client:
        answer = client.post(
            "/api/v1/auth/token", data={"username": "admin", "password": DEMO_PASSWORD}
        )
        answer.raise_for_status()
        headers = {"Authorization": f"Bearer {answer.json()['access_token']}"}
        # The server commits a request's transaction after it has answered (FastAPI's
        # request-scoped dependencies), so the token may not be usable at once.
        _eventually(lambda: client.get("/api/v1/me", headers=headers).status_code, 200)
        created = client.post(
            "/api/v1/fences",
            headers=headers,
            json={
                "name": name,
                "kind": "custom",
                "geometry": {"type": "LineString", "coordinates": line},
                "width_m": 300,
            },
        )
        created.raise_for_status()
        return int(created.json()["id"])


def _eventually(probe: Callable[[], Any], expected: Any, within_s: float = 10.0) -> None:
    deadline = time.monotonic() + within_s
    while (found := probe()) != expected:
        assert time.monotonic() < deadline, f"still {found!r}, not {expected!r}"
        time.sleep(0.1)


def _alert(conn: Connection, trip: Trip, **fields: Any) -> int:
    values = {
        "key": "",
        "severity": "medium",
        "order_id": None,
        "fence_id": None,
        "ended_at": fields.get("last_at"),
        "lon": 120.2,
        "lat": 30.25,
        "measured": {},
        "thresholds": {},
        **fields,
    }
    return int(
        conn.execute(
            text(
                "INSERT INTO alert (kind, key, severity, vehicle_id, unit_id, order_id, fence_id,"
                " started_at, last_at, ended_at, point, measured, thresholds) VALUES (:kind,"
                " :key, :severity, :vehicle_id, :unit_id, :order_id, :fence_id, :started_at,"
                " :last_at, :ended_at, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326),"
                " CAST(:measured AS jsonb), CAST(:thresholds AS jsonb)) RETURNING id"
            ),
            {
                **values,
                "vehicle_id": trip.vehicle_id,
                "unit_id": trip.unit_id,
                "measured": json.dumps(values["measured"]),
                "thresholds": json.dumps(values["thresholds"]),
            },
        ).scalar_one()
    )


def _off_route(stack: Stack, trip: Trip, minute: int) -> int:
    """During the demo order, `minute` minutes in (between its two recorded trips, 10-45 and
    130-170): ten minutes of track heading west along the corridor, with a northward detour in
    the middle that the rule flagged."""
    begin = trip.start_at + timedelta(minutes=minute)
    lon, lat = OFFICES  # where the order's planned route sets off, west along 文二路
    fixes = []
    for n in range(31):
        bend = 0.006 * max(0.0, 1 - abs(n - 15) / 5) if 10 <= n <= 20 else 0.0
        fixes.append((begin + timedelta(seconds=20 * n), lon - 0.0008 * n, lat + bend))
    fence = _corridor_fence(stack, f"核查路线走廊 {minute}", [[lon, lat], [lon - 0.0008 * 30, lat]])
    with stack.engine.begin() as conn:
        _positions(conn, trip.vehicle_id, fixes)
        return _alert(
            conn,
            trip,
            kind="off_route",
            key="corridor",
            order_id=trip.order_id,
            fence_id=fence,
            started_at=fixes[10][0],
            last_at=fixes[20][0],
            lon=fixes[15][1],
            lat=fixes[15][2],
            measured={"duration_s": 200.0, "max_distance_m": 667.2, "corridor_version": 3},
            thresholds={"off_route_distance_m": 500, "off_route_duration_s": 180},
        )


def _open_queue(page: Any, stack: Stack) -> None:
    sign_in(page, stack, "supervisor")
    page.wait_for_url("**/review")
    page.wait_for_function("window.fleetReview && window.fleetReview.loads > 0", timeout=15_000)


def _queue_and_overspeed(context: Any, stack: Stack, trip: Trip) -> tuple[Any, int]:
    """The supervisor's queue in a new page, and the demo trip's dismissed overspeed alert."""
    alert_id = _demo_overspeed(stack, trip)
    page = context.new_page()
    _open_queue(page, stack)
    return page, alert_id


def _filter(page: Any, selector: str, value: str) -> None:
    loads = page.evaluate("window.fleetReview.loads")
    page.select_option(selector, value)
    page.wait_for_function(f"window.fleetReview.loads > {loads}", timeout=15_000)


def _open_alert(page: Any, alert_id: int) -> None:
    page.locator(f"#queue a[data-alert='{alert_id}']").click()
    page.wait_for_function(f"window.fleetReview.drawn === {alert_id}", timeout=30_000)


def _rendered(page: Any, layer: str) -> int:
    return int(
        page.evaluate(
            f"window.fleetReview.map.queryRenderedFeatures({{layers: ['{layer}']}}).length"
        )
    )


def _review(stack: Stack, alert_id: int) -> tuple[str, list[str]]:
    with stack.engine.connect() as conn:
        state = conn.execute(
            text("SELECT review FROM alert WHERE id = :id"), {"id": alert_id}
        ).scalar_one()
        reasons = conn.execute(
            text("SELECT reason FROM alert_review WHERE alert_id = :id ORDER BY id"),
            {"id": alert_id},
        ).scalars()
        return str(state), list(reasons)


def test_supervisor_reviews_an_off_route_alert_from_the_queue(
    review_context, stack: Stack, trip: Trip
) -> None:
    alert_id = _off_route(stack, trip, minute=70)
    with stack.engine.begin() as conn:
        other = _alert(
            conn,
            trip,
            kind="signal_loss",
            started_at=trip.start_at + timedelta(minutes=70),
            last_at=trip.start_at + timedelta(minutes=82),
        )
    page = review_context.new_page()
    _open_queue(page, stack)
    _filter(page, "#f-kind", "signal_loss")
    assert page.locator(f"#queue a[data-alert='{other}']").count() == 1
    _filter(page, "#f-kind", "off_route")
    kinds = page.eval_on_selector_all(
        "#queue a.row .kind", "nodes => nodes.map(n => n.dataset.i18n)"
    )
    assert kinds
    assert set(kinds) == {"kind.off_route"}
    assert page.locator(f"#queue a[data-alert='{other}']").count() == 0
    row = page.locator(f"#queue a[data-alert='{alert_id}']")
    assert trip.plate in (row.text_content() or "")
    assert "偏离路线" in (row.text_content() or "")
    page.screenshot(path=str(SCREENSHOTS / "review-queue.png"))

    _open_alert(page, alert_id)
    assert row.get_attribute("aria-current") == "true"
    for layer in ("review-track", "review-flagged", "review-fence-fill", "review-route"):
        page.wait_for_function(
            f"window.fleetReview.map.queryRenderedFeatures({{layers: ['{layer}']}}).length > 0",
            timeout=15_000,
        )
    figures = page.text_content("#figures") or ""
    assert "偏离距离阈值" in figures
    assert "最大偏离距离" in figures
    assert "667.2 m" in figures
    assert "corridor_version" in figures  # a figure the page has no label for, as it came
    assert f"#{trip.order_id}" in (page.text_content("#order-line") or "")

    start = page.evaluate("window.fleetReview.marker")
    assert page.get_attribute("#scrub", "max") == "600"
    page.click("#play")
    assert page.get_attribute("#play", "aria-pressed") == "true"
    page.wait_for_function(
        f"window.fleetReview.marker[0] < {start[0] - 0.001}"
        " && Number(document.getElementById('scrub').value) > 60",
        timeout=15_000,
    )
    assert _rendered(page, "review-marker") == 1
    page.click("#play")
    assert page.get_attribute("#play", "aria-pressed") == "false"
    page.screenshot(path=str(SCREENSHOTS / "review-alert.png"))

    page.click("#decision [data-decision='dismissed']")
    refusal = page.locator("#decision-error")
    refusal.wait_for(state="visible", timeout=15_000)
    assert "a dismissal needs a reason" in (refusal.text_content() or "")
    assert page.get_attribute("#reason", "aria-invalid") == "true"
    assert _review(stack, alert_id) == ("pending", [])
    page.screenshot(path=str(SCREENSHOTS / "review-refused.png"))

    reason = "司机绕行避开施工封闭路段，已电话核实 / detour around road works, confirmed by phone"
    page.fill("#reason", reason)
    page.click("#decision [data-decision='dismissed']")
    page.wait_for_selector(".notice.ok", timeout=15_000)
    _eventually(lambda: _review(stack, alert_id), ("dismissed", [reason]))
    page.wait_for_function(
        "document.querySelector('#detail-state').dataset.i18n === 'review.state.dismissed'",
        timeout=15_000,
    )
    assert refusal.is_hidden()
    assert page.locator("#decision [data-decision]:enabled").count() == 0
    assert reason in (page.text_content("#history") or "")
    # The row stays in place, marked with its new state, until the queue is asked for again.
    assert row.locator(".state").get_attribute("data-i18n") == "review.state.dismissed"
    _filter(page, "#f-status", "dismissed")
    assert row.count() == 1
    page.screenshot(path=str(SCREENSHOTS / "review-dismissed.png"))


def test_new_alerts_appear_in_the_queue_without_reload(
    review_context, stack: Stack, trip: Trip
) -> None:
    page = review_context.new_page()
    _open_queue(page, stack)
    page.wait_for_function("window.fleetReview.live", timeout=15_000)
    loads = page.evaluate("window.fleetReview.loads")
    started = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    with stack.engine.begin() as conn:
        alert_id = _alert(
            conn, trip, kind="prohibited_zone", severity="high", started_at=started,
            last_at=started + timedelta(minutes=4), ended_at=None,
        )  # fmt: skip
    item = {
        "vehicle_id": trip.vehicle_id,
        "unit_id": trip.unit_id,
        "kind": "prohibited_zone",
        "key": "",
        "severity": "high",
        "fence_id": None,
        "order_id": None,
        "started_t": started.timestamp(),
        "ended_t": None,
        "lat": 30.25,
        "lon": 120.2,
        "measured": {},
    }
    stack.redis.publish(channels.ALERTS, json.dumps({"type": "alerts", "items": [item]}))
    row = page.locator(f"#queue a[data-alert='{alert_id}']")
    row.wait_for(timeout=15_000)
    assert "fresh" in (row.get_attribute("class") or "")
    assert "sev-high" in (row.get_attribute("class") or "")
    assert "禁入区域" in (page.text_content(".notice.warn") or "")
    assert page.evaluate("window.fleetReview.loads") > loads
    assert page.locator("#queue a.row").first.get_attribute("data-alert") == str(alert_id)
    page.screenshot(path=str(SCREENSHOTS / "review-live.png"))


def test_queue_pages_and_filters_by_local_days(review_context, stack: Stack, trip: Trip) -> None:
    first = trip.start_at + timedelta(hours=4)
    with stack.engine.begin() as conn:
        ids = [
            _alert(
                conn,
                trip,
                kind="device_alarm",
                key=f"bit{n}",
                severity="critical",
                started_at=first + timedelta(minutes=n),
                last_at=first + timedelta(minutes=n, seconds=30),
                measured={"alarm": "sos", "bit": 0, "duration_s": 30.0},
            )
            for n in range(23)
        ]
    page = review_context.new_page()
    _open_queue(page, stack)
    _filter(page, "#f-kind", "device_alarm")
    assert page.text_content("#queue-total") == "23"
    assert page.text_content("#page-info") == "1–20 / 23"
    shown = page.eval_on_selector_all("#queue a.row", "rows => rows.map(r => r.dataset.alert)")
    assert shown == [str(i) for i in reversed(ids[3:])]  # newest first
    assert page.is_disabled("#page-prev")
    loads = page.evaluate("window.fleetReview.loads")
    page.click("#page-next")
    page.wait_for_function(f"window.fleetReview.loads > {loads}")
    assert page.text_content("#page-info") == "21–23 / 23"
    assert page.is_disabled("#page-next")

    # The period is in local days, the end day included.
    day = trip.start_at.astimezone(ZoneInfo("Asia/Shanghai")).date()
    for field, value, total in (
        ("#f-start", day + timedelta(days=1), "0"),
        ("#f-start", day, "23"),
        ("#f-end", day, "23"),
        ("#f-end", day - timedelta(days=1), "0"),
        ("#f-start", None, "0"),
    ):
        loads = page.evaluate("window.fleetReview.loads")
        page.fill(field, value.isoformat() if value else "")
        page.wait_for_function(f"window.fleetReview.loads > {loads}")
        assert page.text_content("#queue-total") == total, (field, value)
    assert page.is_visible("#queue-empty")
    loads = page.evaluate("window.fleetReview.loads")
    page.click("#f-reset")
    page.wait_for_function(f"window.fleetReview.loads > {loads}")
    assert page.input_value("#f-kind") == ""
    page.select_option("#f-kind", "device_alarm")
    page.wait_for_function("document.getElementById('queue-total').textContent === '23'")
    assert page.text_content("#page-info") == "1–20 / 23"  # a new filter starts at page one

    # Keyboard only: the rows are links, Enter opens one.
    page.locator(f"#queue a[data-alert='{ids[-1]}']").focus()
    page.keyboard.press("Enter")
    page.wait_for_function(f"window.fleetReview.drawn === {ids[-1]}", timeout=30_000)
    assert page.evaluate("document.activeElement.id") == "detail-h"
    assert "sos" in (page.text_content("#figures") or "")


def _demo_overspeed(stack: Stack, trip: Trip) -> int:
    with stack.engine.connect() as conn:
        return int(
            conn.execute(
                text("SELECT id FROM alert WHERE kind = 'overspeed' AND order_id = :o"),
                {"o": trip.order_id},
            ).scalar_one()
        )


def test_dossier_and_vehicle_file_open_from_the_alert(
    review_context, stack: Stack, trip: Trip
) -> None:
    page, alert_id = _queue_and_overspeed(review_context, stack, trip)
    _filter(page, "#f-status", "dismissed")
    _filter(page, "#f-kind", "overspeed")
    _open_alert(page, alert_id)
    assert page.evaluate("location.hash") == f"#alert-{alert_id}"
    assert page.is_visible("#decided")  # a dismissed alert is final
    assert "高架限速路段标志已更新" in (page.text_content("#history") or "")

    page.click("#open-dossier")
    page.wait_for_selector("#doc-dialog[open]", timeout=15_000)
    frame = page.frame_locator("#doc-frame")
    frame.locator("h2", has_text="审批").first.wait_for(timeout=15_000)
    assert COMPLETED in (frame.locator("body").text_content() or "")
    page.screenshot(path=str(SCREENSHOTS / "review-dossier.png"))
    with page.expect_download(timeout=30_000) as fetched:
        page.click("#doc-pdf")
    download = fetched.value
    assert download.suggested_filename == f"order-{trip.order_id}.pdf"
    with open(download.path(), "rb") as pdf:
        assert pdf.read(5) == b"%PDF-"
    page.keyboard.press("Escape")
    page.wait_for_selector("#doc-dialog:not([open])", state="attached", timeout=5_000)

    page.click("#open-file")
    page.wait_for_selector("#doc-dialog[open]", timeout=15_000)
    heading = page.frame_locator("#doc-frame").locator("h1")
    heading.wait_for(timeout=15_000)
    assert trip.plate in (heading.text_content() or "")
    page.click("#doc-close")


def test_switching_language_changes_every_visible_label(
    review_context, stack: Stack, trip: Trip
) -> None:
    page, alert_id = _queue_and_overspeed(review_context, stack, trip)
    page.goto(f"{stack.url}/review#alert-{alert_id}")
    page.wait_for_function(f"window.fleetReview && window.fleetReview.drawn === {alert_id}")
    chinese = page.evaluate(f"{VISIBLE_LABELS}.map(e => e.textContent)")
    assert len(chinese) > 30
    assert all(CJK.search(t) for t in chinese), [t for t in chinese if not CJK.search(t)]
    page.click("#lang")
    english = page.evaluate(f"{VISIBLE_LABELS}.map(e => e.textContent)")
    assert len(english) == len(chinese)
    assert not [t for t in english if CJK.search(t)]
    assert "Top speed" in (page.text_content("#figures") or "")
    assert page.evaluate("document.documentElement.lang") == "en"
    page.screenshot(path=str(SCREENSHOTS / "review-en.png"))
    page.reload()  # the choice is kept
    page.wait_for_function(f"window.fleetReview && window.fleetReview.drawn === {alert_id}")
    assert page.text_content("h1.title") == "Alert review"
    page.click("#lang")
    assert page.text_content("h1.title") == "告警复核"


def test_a_sealed_vehicle_moving_is_filtered_labelled_and_reviewed(
    review_context, stack: Stack, trip: Trip
) -> None:
    """The demo's sealed car moved: the queue's filter offers the kind, its row and detail name
    it in both languages at critical severity, and the supervisor confirms it."""
    with stack.engine.begin() as conn:
        vehicle_id, unit_id, plate = conn.execute(
            text("SELECT id, unit_id, plate FROM vehicle WHERE status = 'sealed' ORDER BY id")
        ).first()  # type: ignore[misc]
        sealed = Trip(0, vehicle_id, unit_id, plate, trip.start_at)
        start = trip.start_at + timedelta(hours=6)
        alert_id = _alert(
            conn,
            sealed,
            kind="sealed_vehicle_moving",
            severity="critical",
            started_at=start,
            last_at=start + timedelta(minutes=4),
            measured={"distance_m": 2150.0, "duration_s": 240.0},
            thresholds={"moving_speed_kmh": 5, "movement_min_distance_m": 500},
        )
    page = review_context.new_page()
    _open_queue(page, stack)
    offered = page.eval_on_selector_all("#f-kind option", "os => os.map(o => o.value)")
    assert {"sealed_vehicle_moving", "maintenance_vehicle_moving"} <= set(offered)
    _filter(page, "#f-kind", "sealed_vehicle_moving")
    assert page.text_content("#queue-total") == "1"
    row = page.locator(f"#queue a[data-alert='{alert_id}']")
    assert row.locator(".kind").text_content() == "封存车辆移动"
    assert row.locator(".sev").text_content() == "严重"
    _open_alert(page, alert_id)
    assert page.text_content("#detail-h") == f"#{alert_id} {plate} · 封存车辆移动"
    assert page.text_content("#rule-text") == "已封存或已处置的车辆发生移动。"
    page.click("#lang")
    assert page.text_content("#detail-h") == f"#{alert_id} {plate} · Sealed vehicle moving"
    assert page.text_content("#rule-text") == "A sealed or disposed vehicle moved."
    page.click("#lang")
    page.click("#decision [data-decision='confirmed']")
    page.wait_for_selector(".notice.ok", timeout=15_000)
    _eventually(lambda: _review(stack, alert_id), ("confirmed", [""]))
    assert row.locator(".state").get_attribute("data-i18n") == "review.state.confirmed"


def test_an_energy_alert_shows_its_figures_with_their_units(
    review_context, stack: Stack, trip: Trip
) -> None:
    month = trip.start_at.astimezone(ZoneInfo("Asia/Shanghai")).replace(
        day=1, hour=0, minute=0, second=0, microsecond=0
    )
    with stack.engine.begin() as conn:
        alert_id = _alert(
            conn,
            trip,
            kind="energy_consumption_high",
            key=f"month:{month:%Y-%m}",
            started_at=month,
            last_at=trip.start_at,
            measured={
                "kwh": 101.0,
                "distance_km": 1000.0,
                "kwh_100km": 10.1,
                "norm_kwh_100km": 20,
                "litres": 45.5,
                "norm_l_100km": 6.5,
                "norm_km": 1205.0,
                "over_norm_pct": 20.5,
            },
            thresholds={
                "energy_consumption_margin_pct": 20,
                "consumption_min_km": 100,
                "allowed_norm_km": 1200.0,
            },
        )
    page = review_context.new_page()
    _open_queue(page, stack)
    _filter(page, "#f-kind", "energy_consumption_high")
    page.locator(f"#queue a[data-alert='{alert_id}']").click()
    page.wait_for_function(f"window.fleetReview.drawn === {alert_id}", timeout=30_000)
    assert "超过核定能耗" in (page.text_content("#rule-text") or "")
    figures = page.text_content("#figures") or ""
    for shown in ("核定电耗", "20 kWh/100km", "充电量", "101 kWh", "按定额可行驶里程", "1,205 km"):
        assert shown in figures, shown
