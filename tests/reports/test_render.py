"""Order dossiers and vehicle files rendered from plain dicts: what the HTML and the PDF must show,
and the projection the route map is drawn with (no database)."""

from __future__ import annotations

import copy
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pypdfium2 as pdfium
import pytest

from dispatch.orders import OrderStatus
from fleet.models import Energy, VehicleCategory, VehicleStatus
from reports import layout
from reports import render as report

FONT = Path("/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf")
PLATE = "浙A·D10001"
OVERRIDE = "推荐车辆正在保养，改派同型号车辆"
DISMISSAL = "施工绕行，经核实属实际路况所致"
HEADINGS = (
    "申请 Request",
    "审批 Approvals",
    "派车 Assignment",
    "路线与轨迹 Route and track",
    "费用 Costs",
    "告警 Alerts",
    "审计日志 Audit log",
)
VEHICLE_HEADINGS = (
    "车辆信息 Vehicle",
    "用车记录 Assignments",
    "月度里程 Distance by month",
    "能耗 Consumption",
    "费用 Costs",
    "到期提醒 Due dates",
    "告警 Alerts",
    "状态变更 Status changes",
)


def dossier() -> dict[str, Any]:
    """A completed trip: two approvals, an override, two trips, fuel, one dismissed alert."""
    planned = [[120.2106, 30.2452], [120.2150, 30.2600], [120.2131, 30.2907]]
    return {
        "generated_at": "2026-11-25T02:00:00+00:00",
        "order": {
            "id": 12,
            "status": "completed",
            "purpose": "市场监管联合检查 <script>alert(1)</script>",
            "passengers": 3,
            "start_at": "2026-11-24T00:30:00+00:00",
            "end_at": "2026-11-24T04:00:00+00:00",
            "origin_name": "市政府大院",
            "origin": [120.2106, 30.2452],
            "destinations": [{"name": "东站市场", "lon": 120.2131, "lat": 30.2907}],
            "unit": {"id": 2, "name": "市财政局"},
            "requester": {"id": 5, "username": "zhang", "full_name": "张科员"},
            "emergency": False,
            "out_of_region": False,
            "overnight": False,
            "approval": "approved",
            "notes": "携带检查文书",
            "created_at": "2026-11-22T08:00:00+00:00",
        },
        "approvals": [
            {
                "step": 1,
                "unit_name": "市财政局",
                "reasons": ["本单位审批 / own unit"],
                "approved": True,
                "by": "boss",
                "at": "2026-11-22T09:00:00+00:00",
                "comment": "同意",
            },
            {
                "step": 2,
                "unit_name": "市政府办公厅",
                "reasons": ["non_working_day"],
                "approved": True,
                "by": "office",
                "at": "2026-11-22T10:15:00+00:00",
                "comment": "请按规定路线行驶",
            },
        ],
        "assignment": {
            "vehicle": {
                "id": 1,
                "plate": PLATE,
                "make_model": "比亚迪 汉",
                "category": "general",
                "energy": "bev",
            },
            "driver": {"id": 1, "name": "陈师傅", "phone": "13800000001"},
            "from": "2026-11-24T00:15:00+00:00",
            "to": "2026-11-24T04:15:00+00:00",
            "reason": OVERRIDE,
            "assigned_by": "desk",
            "assigned_at": "2026-11-23T01:00:00+00:00",
            "route_source": "roads",
        },
        "route": {
            "planned": planned,
            "driven": [
                [
                    [120.2106, 30.2452],
                    [120.2180, 30.2550],
                    [120.2160, 30.2750],
                    [120.2131, 30.2907],
                ],
                [[120.2131, 30.2907], [120.2200, 30.2700], [120.2106, 30.2452]],
            ],
        },
        "figures": {
            "planned_distance_m": 5400.0,
            "distance_m": 11890.0,
            "duration_s": 2580.0,
            "odometer_start_km": 12345.0,
            "odometer_end_km": 12357.1,
            "trips": [
                {
                    "id": 1,
                    "start_at": "2026-11-24T00:32:00+00:00",
                    "end_at": "2026-11-24T00:55:00+00:00",
                    "distance_m": 5900.0,
                    "duration_s": 1380.0,
                    "max_speed_kmh": 62.0,
                },
                {
                    "id": 2,
                    "start_at": "2026-11-24T03:30:00+00:00",
                    "end_at": "2026-11-24T03:50:00+00:00",
                    "distance_m": 5990.0,
                    "duration_s": 1200.0,
                    "max_speed_kmh": None,
                },
            ],
        },
        "costs": {
            "items": [
                {
                    "id": 3,
                    "kind": "charging",
                    "at": "2026-11-24T05:00:00+00:00",
                    "amount": 320.5,
                    "share": 0.42,
                    "allocated": 134.61,
                    "litres": None,
                    "kwh": 40.2,
                    "station_name": "国网钱江新城充电站",
                    "note": "",
                },
                {
                    "id": 4,
                    "kind": "parking",
                    "at": "2026-11-24T02:00:00+00:00",
                    "amount": 1234.5,
                    "share": 1.0,
                    "allocated": 1234.5,
                    "litres": None,
                    "kwh": None,
                    "station_name": "",
                    "note": "东站停车场",
                },
            ],
            "total": 1369.11,
        },
        "alerts": [
            {
                "id": 9,
                "kind": "off_route",
                "severity": "medium",
                "started_at": "2026-11-24T00:40:00+00:00",
                "ended_at": "2026-11-24T00:46:00+00:00",
                "measured": {"distance_m": 1320.5, "duration_s": 360},
                "thresholds": {"distance_m": 1000, "duration_s": 180},
                "review": "dismissed",
                "reviews": [
                    {
                        "decision": "dismissed",
                        "reason": DISMISSAL,
                        "by": "sup",
                        "at": "2026-11-24T08:00:00+00:00",
                    }
                ],
            }
        ],
        "audit": {
            "entries": [
                {
                    "id": 100,
                    "at": "2026-11-23T01:00:00+00:00",
                    "actor": "desk",
                    "action": "assign",
                    "entity": "trip_order",
                    "entity_id": "12",
                    "hash": "ab12cd34ef56" + "0" * 52,
                }
            ],
            "verification": {
                "ok": True,
                "checked": 2345,
                "first_bad_id": None,
                "message": "ok",
                "since_checkpoint": {"entry_id": 9001, "at": "2026-11-25T01:00:00+00:00"},
            },
        },
    }


def bare_dossier() -> dict[str, Any]:
    """An order that was never assigned: no route, no costs, no alerts, no audit entries."""
    bare = dossier()
    bare["order"]["status"] = "submitted"
    bare["order"]["approval"] = "pending"
    bare["approvals"] = []
    bare["assignment"] = None
    bare["route"] = {"planned": None, "driven": []}
    bare["figures"] = {
        "planned_distance_m": None,
        "distance_m": 0.0,
        "duration_s": 0.0,
        "odometer_start_km": None,
        "odometer_end_km": None,
        "trips": [],
    }
    bare["costs"] = {"items": [], "total": 0.0}
    bare["alerts"] = []
    bare["audit"] = {"entries": [], "verification": None}
    return bare


def vehicle_file() -> dict[str, Any]:
    months = ("2026-07", "2026-08", "2026-09", "2026-10", "2026-11")
    return {
        "generated_at": "2026-11-25T02:00:00+00:00",
        "vehicle": {
            "id": 1,
            "plate": PLATE,
            "category": "general",
            "body_class": "sedan",
            "seats": 4,
            "energy": "phev",
            "tank_l": 48.0,
            "battery_kwh": 18.3,
            "fuel_norm_l_100km": 6.5,
            "make_model": "比亚迪 秦PLUS DM-i",
            "unit": {"id": 2, "name": "市财政局"},
            "depot_name": "市政府车库",
            "status": "active",
            "created_at": "2024-03-01T02:00:00+00:00",
        },
        "assignments": [
            {
                "order_id": 12,
                "purpose": "市场监管联合检查",
                "from": "2026-11-24T00:15:00+00:00",
                "to": "2026-11-24T04:15:00+00:00",
                "driver": "陈师傅",
                "status": "completed",
            }
        ],
        "distance_by_month": [
            {"month": m, "distance_m": d, "trips": t, "hours": h}
            for m, d, t, h in zip(
                months,
                (820e3, 1010e3, 640e3, 1205e3, 415e3),
                (31, 40, 25, 47, 16),
                (38.5, 44.0, 29.0, 52.5, 18.0),
                strict=True,
            )
        ],
        "consumption": [
            {
                "month": m,
                "litres": litres,
                "kwh": 120.0,
                "distance_m": 1000e3,
                "l_100km": litres / 10,
                "kwh_100km": 12.0,
                "norm_l_100km": 6.5,
                "over_norm_pct": (litres / 10 - 6.5) / 6.5 * 100,
            }
            for m, litres in zip(months, (55.0, 61.0, 58.0, 79.0, 60.0), strict=True)
        ],
        "costs": {
            "items": [
                {
                    "id": 3,
                    "kind": "fuel",
                    "at": "2026-11-20T01:00:00+00:00",
                    "amount": 320.5,
                    "litres": 40.2,
                    "kwh": None,
                    "station_name": "中石化文三路加油站",
                    "note": "",
                    "order_id": None,
                },
                {
                    "id": 5,
                    "kind": "insurance",
                    "at": "2026-03-01T01:00:00+00:00",
                    "amount": 4200.0,
                    "litres": None,
                    "kwh": None,
                    "station_name": "",
                    "note": "交强险及商业险",
                    "order_id": None,
                },
            ],
            "by_kind": {"fuel": 320.5, "insurance": 4200.0},
            "total": 4520.5,
        },
        "due": [
            {"kind": "inspection", "due_on": "2026-11-01", "days_left": -24, "overdue": True},
            {"kind": "insurance", "due_on": "2027-03-01", "days_left": 96, "overdue": False},
        ],
        "alerts": [
            {
                "id": 9,
                "kind": "fuel_too_frequent",
                "severity": "medium",
                "started_at": "2026-11-20T01:00:00+00:00",
                "review": "confirmed",
            }
        ],
        "alert_outcomes": {
            "off_route": {"total": 3, "confirmed": 1, "dismissed": 1, "escalated": 0, "pending": 1}
        },
        "status_changes": [
            {
                "at": "2026-06-01T01:00:00+00:00",
                "actor": "admin",
                "from": "active",
                "to": "maintenance",
            }
        ],
    }


def pdf_text(data: bytes) -> str:
    document = pdfium.PdfDocument(data)
    return "\n".join(page.get_textpage().get_text_range() for page in document)


def page_image(data: bytes, index: int = 0) -> np.ndarray:
    page = pdfium.PdfDocument(data)[index]
    return np.asarray(page.render(scale=1).to_pil().convert("RGB")).astype(int)


def reddish(image: np.ndarray) -> np.ndarray:
    r, g, b = image[..., 0], image[..., 1], image[..., 2]
    return (r > 150) & (r - g > 70) & (r - b > 90)


@pytest.fixture(scope="module")
def order_pdf() -> bytes:
    return report.render_order_pdf(dossier(), font_path=FONT)


@pytest.fixture(scope="module")
def vehicle_pdf() -> bytes:
    return report.render_vehicle_pdf(vehicle_file(), font_path=FONT)


# ---- the projection ---------------------------------------------------------------------------


def test_project_keeps_a_square_in_metres_square() -> None:
    lat = 30.25
    side = 0.01  # degrees of latitude; the same metres east take 1 / cos(lat) as many degrees
    east = side / math.cos(math.radians(lat))
    square = [(120.0, lat), (120.0 + east, lat), (120.0 + east, lat + side), (120.0, lat + side)]
    (projected,), _ = layout.project([square], 300, 200, 10)
    xs, ys = [p[0] for p in projected], [p[1] for p in projected]
    assert max(xs) - min(xs) == pytest.approx(max(ys) - min(ys), rel=1e-3)
    assert max(ys) - min(ys) == pytest.approx(180)  # the height is what limits it


def test_project_fits_the_box_within_its_margins_and_centres() -> None:
    track = [(120.10, 30.20), (120.35, 30.22), (120.30, 30.31)]
    (projected,), _ = layout.project([track], 400, 300, 20)
    xs, ys = [p[0] for p in projected], [p[1] for p in projected]
    assert min(xs) >= 20 - 1e-9
    assert max(xs) <= 380 + 1e-9
    assert min(ys) >= 20 - 1e-9
    assert max(ys) <= 280 + 1e-9
    assert (min(xs) + max(xs)) / 2 == pytest.approx(200)
    assert (min(ys) + max(ys)) / 2 == pytest.approx(150)
    assert min(xs) == pytest.approx(20) or min(ys) == pytest.approx(20)  # touches one margin


def test_project_puts_north_up() -> None:
    (projected,), _ = layout.project([[(120.0, 30.0), (120.0, 30.1)]], 100, 100, 10)
    assert projected[1][1] < projected[0][1]


def test_project_scale_matches_the_ground_distance() -> None:
    a, b = (120.0, 30.0), (120.05, 30.0)
    (projected,), metres_per_unit = layout.project([[a, b]], 500, 300, 25)
    ground_m = math.radians(0.05) * math.cos(math.radians(30.0)) * layout.EARTH_RADIUS_M
    units = projected[1][0] - projected[0][0]
    assert metres_per_unit is not None
    assert units * metres_per_unit == pytest.approx(ground_m, rel=1e-9)


def test_project_centres_a_single_point_in_a_box_of_min_span() -> None:
    (point,), metres_per_unit = layout.project([[(120.2, 30.2)]], 300, 200, 20)
    assert point[0] == pytest.approx((150, 100))
    assert metres_per_unit == pytest.approx(layout.MIN_SPAN_M / 160)


def test_project_handles_empty_input_and_lines() -> None:
    assert layout.project([], 100, 100, 10) == layout.Projection((), None)
    assert layout.project([[], []], 100, 100, 10) == layout.Projection(((), ()), None)


def test_project_keeps_one_output_line_per_input_line() -> None:
    lines = [[], [(120.0, 30.0), (120.1, 30.0)], [(120.05, 30.0)]]
    projected, _ = layout.project(lines, 200, 100, 10)
    assert [len(line) for line in projected] == [0, 2, 1]
    assert projected[2][0][1] == pytest.approx(50)  # an east-west line sits mid-height


def test_project_refuses_a_box_without_room() -> None:
    with pytest.raises(ValueError, match="no room"):
        layout.project([[(120.0, 30.0)]], 20, 100, 10)


def test_scale_bar_is_a_round_number_of_km_that_fits() -> None:
    units, text = layout.scale_bar(metres_per_unit=20.0, max_units=180)  # 3.6 km available
    assert (units, text) == (pytest.approx(100.0), "2 km")
    units, text = layout.scale_bar(metres_per_unit=1.0, max_units=700)
    assert (units, text) == (pytest.approx(500.0), "0.5 km")


def test_bar_rects_scale_to_the_largest_value() -> None:
    rects = layout.bar_rects([10.0, None, 20.0, -5.0], 400, 100)
    heights = [h for _, _, _, h in rects]
    assert heights == [50.0, 0.0, 100.0, 0.0]
    assert all(y + h == pytest.approx(100) for _, y, _, h in rects)
    assert [x for x, _, _, _ in rects] == sorted(x for x, _, _, _ in rects)
    assert layout.bar_rects([], 400, 100) == []


# ---- vocabularies and formats -------------------------------------------------------------------


def test_labels_cover_every_status_category_and_energy_the_models_know() -> None:
    for vocabulary, values in (
        ("order_status", OrderStatus),
        ("vehicle_status", VehicleStatus),
        ("category", VehicleCategory),
        ("energy", Energy),
    ):
        assert {v.value for v in values} <= set(layout.LABELS[vocabulary]), vocabulary
    for vocabulary, labels in layout.LABELS.items():
        for value, (zh, en) in labels.items():
            assert re.fullmatch(r"[\u4e00-\u9fff]+", zh), (vocabulary, value)
            assert re.fullmatch(r"[A-Za-z][A-Za-z -]*", en), (vocabulary, value)


def test_formats_times_money_and_distances_for_the_reader() -> None:
    assert layout.format_time("2026-11-24T00:30:00+00:00") == "2026-11-24 08:30"
    assert layout.format_time("2026-11-24T00:30:00Z") == "2026-11-24 08:30"
    assert layout.format_time("2026-11-24T00:30:00") == "2026-11-24 08:30"  # naive means UTC
    assert layout.format_time(None) == "—"
    assert layout.format_money(123.4) == "¥123.40"
    assert layout.format_money(1234.5) == "¥1,234.50"
    assert layout.format_money(None) == "—"
    assert layout.format_distance(11890.0) == "11.9 km"
    assert layout.format_duration(2580.0) == "43 min"
    assert layout.format_duration(5400.0) == "1 h 30 min"
    assert layout.label("alert_kind", "off_route") == "偏离路线 Off route"
    assert layout.label("alert_kind", "new_kind") == "new_kind"


# ---- the order dossier --------------------------------------------------------------------------


def test_order_html_shows_every_section_and_what_audit_asks() -> None:
    html = report.render_order_html(dossier())
    assert html.startswith("<!doctype html>")
    assert '<html lang="zh">' in html
    assert '<meta charset="utf-8">' in html
    assert "@media print" in html
    for heading in HEADINGS:
        assert f"<h2>{heading}</h2>" in html
    for expected in (
        PLATE,
        "市场监管联合检查",
        OVERRIDE,
        "同意 Approved",
        "非工作日用车 Non-working day",
        "请按规定路线行驶",
        "¥1,369.11",
        "偏离路线 Off route",
        "排除 Dismissed",
        DISMISSAL,
        "链完整 Chain intact, 自签名检查点（条目 9001，2026-11-25T01:00:00+00:00）起 from the"
        " signed checkpoint of entry 9001 (2,345 entries checked)",
        "2026-11-24 08:30",  # the start, in Shanghai time
        "ab12cd34ef56<",  # the hash, shortened to 12 hex
        '<th scope="col">',
    ):
        assert expected in html, expected
    assert "ab12cd34ef560" not in html


def test_order_html_escapes_what_users_typed() -> None:
    html = report.render_order_html(dossier())
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_order_html_needs_no_network() -> None:
    html = report.render_order_html(dossier())
    assert "http://" not in html
    assert "https://" not in html
    assert not re.search(r"<(link|script|img)\b", html)


def test_order_html_map_draws_the_plan_dashed_and_one_line_per_trip() -> None:
    html = report.render_order_html(dossier())
    svg = html[html.index("<svg") : html.index("</svg>")]
    assert len(re.findall(r'<polyline class="driven"', svg)) == 2
    assert re.search(r'<polyline class="planned"[^>]*stroke-dasharray', svg)
    assert "起 市政府大院" in svg
    assert "1 东站市场" in svg
    assert "计划路线 Planned route" in svg
    assert "实际轨迹 Driven track" in svg
    assert re.search(r">\d+(\.\d+)? km</text>", svg)  # the scale bar
    assert "无轨迹 No track" not in svg


def test_order_html_shows_a_broken_chain_in_red() -> None:
    broken = dossier()
    broken["audit"]["verification"] = {
        "ok": False,
        "checked": 120,
        "first_bad_id": 57,
        "message": "hash does not match the row",
    }
    html = report.render_order_html(broken)
    assert (
        '<p class="note bad">链断裂 Chain broken at entry 57: hash does not match the row</p>'
        in html
    )


def test_order_html_marks_a_rejection() -> None:
    rejected = dossier()
    rejected["approvals"][1].update(approved=False, comment="节假日不宜")
    rejected["approvals"].append(
        {**rejected["approvals"][0], "step": 3, "approved": None, "by": None, "at": None}
    )
    html = report.render_order_html(rejected)
    assert re.search(r'<tr class="bad"><td>2</td>.*驳回 Rejected.*节假日不宜', html)
    assert re.search(r'<tr class="muted"><td>3</td>.*未决 Not decided', html)


def test_bare_order_html_keeps_every_heading_and_says_none() -> None:
    html = report.render_order_html(bare_dossier())
    for heading in HEADINGS:
        assert f"<h2>{heading}</h2>" in html
    assert html.count("无 None") >= 5  # approvals, assignment, trips, costs, alerts, audit
    assert "未派车 Not assigned" in html
    assert "无轨迹 No track" in html
    assert "¥0.00" in html
    assert "未校验 Not verified" in html
    assert '<polyline class="driven"' not in html


def test_order_html_with_no_geometry_at_all_draws_the_empty_box() -> None:
    nowhere = bare_dossier()
    nowhere["order"]["origin"] = None
    nowhere["order"]["destinations"] = []
    html = report.render_order_html(nowhere)
    svg = html[html.index("<svg") : html.index("</svg>")]
    assert 'text-anchor="middle" font-size="18" fill="#6b7280">无轨迹 No track' in svg
    assert "<circle cx" not in svg.split('<g class="legend"')[0]


def test_order_pdf_is_an_a4_document_with_the_cjk_text_embedded(order_pdf: bytes) -> None:
    assert order_pdf.startswith(b"%PDF")
    document = pdfium.PdfDocument(order_pdf)
    assert len(document) >= 1
    width, height = document[0].get_size()
    assert (round(width), round(height)) == (595, 842)  # A4 in points
    text = pdf_text(order_pdf)
    for expected in (
        PLATE,
        "审批",
        "市场监管联合检查",
        OVERRIDE,
        "¥1,369.11",
        "链完整 Chain intact",
    ):
        assert expected in text, expected
    assert "第 1 页 Page 1" in text


def map_region(data: bytes) -> tuple[int, int]:
    """Pixel rows (at scale 1) of the map on page 1: from the route heading down a map's height."""
    page = pdfium.PdfDocument(data)[0]
    textpage = page.get_textpage()
    found = textpage.search("路线与轨迹").get_next()
    assert found is not None, "the route heading is not on page 1"
    _, bottom, _, _ = textpage.get_charbox(found[0])
    top_row = round(page.get_height() - bottom)
    map_mm = report.PDF_MAP[0] + report.PDF_MAP_LEGEND_MM + 12  # with the heading's own height
    return top_row, top_row + round(map_mm * 72 / 25.4)


def test_order_pdf_page_one_draws_the_track_in_red(order_pdf: bytes) -> None:
    image = page_image(order_pdf)
    assert (image.min(axis=2) < 200).mean() > 0.03  # not blank
    first, last = map_region(order_pdf)
    assert last <= image.shape[0]
    red = reddish(image)
    rows, columns = np.nonzero(red[first:last])
    assert len(rows) > 300
    # Lines across the map, not a red word.
    assert rows.max() - rows.min() > 60
    assert columns.max() - columns.min() > 30


def test_bare_order_pdf_has_no_track_to_draw() -> None:
    data = report.render_order_pdf(bare_dossier(), font_path=FONT)
    first, last = map_region(data)
    red = reddish(page_image(data))[first:last]
    assert red.sum() < 150  # the legend's sample line only


def test_bare_order_pdf_renders_every_heading() -> None:
    data = report.render_order_pdf(bare_dossier(), font_path=FONT)
    assert data.startswith(b"%PDF")
    text = pdf_text(data)
    for heading in HEADINGS:
        assert heading in text, heading
    assert "无 None" in text
    assert "无轨迹 No track" in text


# ---- the vehicle file ---------------------------------------------------------------------------


def test_vehicle_html_shows_every_section_charts_and_overdue_in_red() -> None:
    html = report.render_vehicle_html(vehicle_file())
    assert html.startswith("<!doctype html>")
    assert "http://" not in html
    assert "https://" not in html
    for heading in VEHICLE_HEADINGS:
        assert f"<h2>{heading}</h2>" in html
    for expected in (
        PLATE,
        "插电混动 Plug-in hybrid",
        "在用 Active",
        "维修中 In maintenance",
        "加油过频 Fuel too often",
        "属实 Confirmed",
        "¥4,520.50",
        "1,205.0 km",
    ):
        assert expected in html, expected
    assert re.search(r'<tr class="bad"><td>年检 Inspection</td><td>2026-11-01</td>', html)
    assert re.search(r"<tr><td>保险 Insurance</td><td>2027-03-01</td>", html)
    charts = re.findall(r'<figure class="chart">.*?</figure>', html, re.S)
    assert len(charts) == 2
    assert all(chart.count("<rect") == 5 for chart in charts)
    assert "#c62828" in charts[1]  # October's consumption was over the norm


def test_empty_vehicle_file_keeps_every_heading() -> None:
    empty = {"generated_at": None, "vehicle": {"plate": PLATE}}
    html = report.render_vehicle_html(empty)
    for heading in VEHICLE_HEADINGS:
        assert f"<h2>{heading}</h2>" in html
    assert "<svg" not in html
    assert html.count("无 None") >= 7


def test_vehicle_pdf_is_readable_and_not_blank(vehicle_pdf: bytes) -> None:
    assert vehicle_pdf.startswith(b"%PDF")
    text = pdf_text(vehicle_pdf)
    for expected in (PLATE, "一车一档", "到期提醒", "已逾期 Overdue", "¥4,520.50"):
        assert expected in text, expected
    image = page_image(vehicle_pdf)
    assert (image.min(axis=2) < 200).mean() > 0.03


# ---- the font -----------------------------------------------------------------------------------


def test_pdf_without_its_font_says_which_and_where_from(tmp_path: Path) -> None:
    missing = tmp_path / "DroidSansFallbackFull.ttf"
    with pytest.raises(report.ReportFontMissing, match="fonts-droid-fallback") as raised:
        report.render_order_pdf(dossier(), font_path=missing)
    assert str(missing) in str(raised.value)
    with pytest.raises(report.ReportFontMissing):
        report.render_vehicle_pdf(vehicle_file(), font_path=missing)


def test_renderers_leave_their_input_alone() -> None:
    given = dossier()
    kept = copy.deepcopy(given)
    report.render_order_html(given)
    assert given == kept
