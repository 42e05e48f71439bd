"""The order dossier and the vehicle file (一车一档) as HTML and PDF, from plain dicts (pure: no
database; `reports.dossier` builds the dicts).

Both outputs are drawn from one layout, a `Document` of sections holding fields, tables, notes, a
route map and bar charts, so the page on screen and the PDF an auditor files cannot disagree. The
map and the charts are laid out once (`draw_map`, `draw_chart`, in the box's own units) and each
output only strokes what it is given.

PDF text: Droid Sans Fallback, the CJK font Debian ships, has no Latin glyphs at all, not even
digits. Every character it lacks in Latin-1 is drawn with the PDF's built-in Helvetica (a fallback
font through fpdf2's documented `get_fallback_font` hook), so no second font file is needed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any, ClassVar, Literal, NamedTuple
from zoneinfo import ZoneInfo

from fpdf import FPDF
from fpdf.enums import XPos, YPos
from fpdf.fonts import FontFace
from jinja2 import Environment, FileSystemLoader, StrictUndefined

SHANGHAI = ZoneInfo("Asia/Shanghai")
TEMPLATES = Path(__file__).parent / "templates"
MISSING = "—"
NONE_NOTE = "无 None"
NO_TRACK = "无轨迹 No track"

# ---- vocabularies ----------------------------------------------------------------------------

LABELS: dict[str, dict[str, tuple[str, str]]] = {
    "order_status": {
        "draft": ("草稿", "Draft"),
        "submitted": ("待审批", "Submitted"),
        "approved": ("已批准", "Approved"),
        "rejected": ("已驳回", "Rejected"),
        "assigned": ("已派车", "Assigned"),
        "in_progress": ("执行中", "In progress"),
        "completed": ("已完成", "Completed"),
        "cancelled": ("已取消", "Cancelled"),
    },
    "approval": {
        "pending": ("待审批", "Pending"),
        "approved": ("已批准", "Approved"),
        "rejected": ("已驳回", "Rejected"),
    },
    "decision": {
        "approved": ("同意", "Approved"),
        "rejected": ("驳回", "Rejected"),
        "undecided": ("未决", "Not decided"),
    },
    "condition": {
        "always": ("本单位审批", "Own unit"),
        "out_of_region": ("出市用车", "Out of region"),
        "longer_than_days": ("多日用车", "Several days"),
        "non_working_day": ("非工作日用车", "Non-working day"),
        "night": ("夜间用车", "At night"),
        "large_vehicle": ("中大型客车", "Large vehicle"),
        "passengers_over": ("乘车人数较多", "Many passengers"),
    },
    "vehicle_status": {
        "active": ("在用", "Active"),
        "sealed": ("封存", "Sealed"),
        "maintenance": ("维修中", "In maintenance"),
        "disposed": ("已处置", "Disposed"),
    },
    "category": {
        "confidential_comms": ("机要通信", "Confidential communications"),
        "emergency": ("应急保障", "Emergency support"),
        "enforcement": ("执法执勤", "Law enforcement"),
        "special": ("特种专业技术", "Special technical"),
        "general": ("其他公务", "General official use"),
    },
    "body_class": {
        "sedan": ("轿车", "Sedan"),
        "suv": ("越野车", "SUV"),
        "mpv": ("多用途车", "MPV"),
        "minibus": ("中型客车", "Minibus"),
        "bus": ("大型客车", "Bus"),
        "truck": ("货车", "Truck"),
    },
    "energy": {
        "petrol": ("汽油", "Petrol"),
        "diesel": ("柴油", "Diesel"),
        "hybrid": ("混合动力", "Hybrid"),
        "phev": ("插电混动", "Plug-in hybrid"),
        "bev": ("纯电动", "Battery electric"),
    },
    "cost_kind": {
        "fuel": ("加油", "Fuel"),
        "charging": ("充电", "Charging"),
        "maintenance": ("保养", "Maintenance"),
        "repair": ("维修", "Repair"),
        "insurance": ("保险", "Insurance"),
        "inspection": ("年检", "Inspection"),
        "toll": ("通行费", "Toll"),
        "parking": ("停车费", "Parking"),
        "washing": ("洗车", "Washing"),
        "other": ("其他", "Other"),
    },
    "alert_kind": {
        "no_order": ("无单出车", "Driving without an order"),
        "off_hours": ("非工作时间用车", "Use outside working hours"),
        "off_route": ("偏离路线", "Off route"),
        "region_exit": ("驶出辖区", "Left the region"),
        "prohibited_zone": ("禁入区域", "Prohibited zone"),
        "overnight_away": ("夜间未回停车点", "Not back at the depot overnight"),
        "overspeed": ("超速", "Overspeed"),
        "signal_loss": ("信号中断", "Signal lost"),
        "device_alarm": ("终端报警", "Device alarm"),
        "fuel_over_capacity": ("加油量超油箱容量", "Fuel over tank capacity"),
        "fuel_location_mismatch": ("加油地点与轨迹不符", "Fuel station off the track"),
        "fuel_no_trip": ("加油无行程", "Fuel without a trip"),
        "fuel_off_hours": ("非工作时间加油", "Fuel outside working hours"),
        "fuel_too_frequent": ("加油过频", "Fuel too often"),
        "fuel_consumption_high": ("油耗超标", "Consumption over the norm"),
        "odometer_mismatch": ("里程不符", "Odometer mismatch"),
        "device_identity_mismatch": ("终端身份冒用", "Terminal identity mismatch"),
    },
    "severity": {
        "low": ("低", "Low"),
        "medium": ("中", "Medium"),
        "high": ("高", "High"),
        "critical": ("严重", "Critical"),
    },
    "review": {
        "pending": ("待审", "Pending"),
        "confirmed": ("属实", "Confirmed"),
        "dismissed": ("排除", "Dismissed"),
        "escalated": ("上报", "Escalated"),
    },
    "route_source": {
        "roads": ("道路规划", "Road network"),
        "straight": ("直线", "Straight line"),
    },
    "yes_no": {
        "yes": ("是", "Yes"),
        "no": ("否", "No"),
    },
}


def label(vocabulary: str, value: object) -> str:
    """The "中文 English" label of a value; a value the vocabulary does not know is shown as it is,
    so a kind added later still prints."""
    if value is None or value == "":
        return MISSING
    known = LABELS[vocabulary].get(str(value))
    return f"{known[0]} {known[1]}" if known else str(value)


# ---- formatting ------------------------------------------------------------------------------


def format_time(value: str | datetime | None, zone: ZoneInfo = SHANGHAI) -> str:
    """An ISO-8601 instant (UTC when it carries no offset) as local "YYYY-MM-DD HH:MM"."""
    if value is None or value == "":
        return MISSING
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M")


def format_money(amount: float | None) -> str:
    if amount is None:
        return MISSING
    sign = "-" if amount < 0 else ""
    return f"{sign}¥{abs(amount):,.2f}"


def format_distance(metres: float | None) -> str:
    return MISSING if metres is None else f"{metres / 1000:,.1f} km"


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return MISSING
    hours, minutes = divmod(round(seconds / 60), 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min"


def _text(value: object) -> str:
    return MISSING if value is None or value == "" else str(value)


def _number(value: object, unit: str = "", digits: int = 1) -> str:
    if value is None or value == "":
        return MISSING
    if isinstance(value, int | float) and not isinstance(value, bool):
        shown = f"{value:,.{digits}f}" if isinstance(value, float) else f"{value:,}"
        return f"{shown} {unit}".rstrip()
    return str(value)


def _yes_no(value: object) -> str:
    return label("yes_no", "yes" if value else "no")


def _facts(values: Mapping[str, Any] | None) -> str:
    """A rule's measured values or thresholds, one "key: value" a line."""
    if not values:
        return MISSING
    lines = []
    for key, value in values.items():
        if isinstance(value, float):
            value = f"{value:,.2f}".rstrip("0").rstrip(".")
        lines.append(f"{key}: {value}")
    return "\n".join(lines)


# ---- geometry shared by the SVG and the PDF ----------------------------------------------------

EARTH_RADIUS_M = 6_371_008.8
MIN_SPAN_M = 1_000.0  # a lone point or a parked cluster is shown in a box at least this wide

LonLat = Sequence[float]
XY = tuple[float, float]


class Projection(NamedTuple):
    lines: tuple[tuple[XY, ...], ...]  # one per input line, in box units, y down
    metres_per_unit: float | None  # None when there was nothing to project


def project(
    lines: Sequence[Sequence[LonLat]], width: float, height: float, margin: float
) -> Projection:
    """Lines of (lon, lat) into a width × height box, y down.

    Equirectangular, longitudes scaled by the cosine of the middle latitude, one scale for both axes
    so that shapes keep their aspect, centred and at least `margin` from every edge. The box never
    shows less than MIN_SPAN_M across, so one point alone sits in its centre."""
    inner_w, inner_h = width - 2 * margin, height - 2 * margin
    if inner_w <= 0 or inner_h <= 0:
        raise ValueError(f"a {width} × {height} box leaves no room inside a margin of {margin}")
    points = [point for line in lines for point in line]
    if not points:
        return Projection(tuple(() for _ in lines), None)
    lats = [p[1] for p in points]
    shrink = math.cos(math.radians((min(lats) + max(lats)) / 2))
    metres_per_degree = math.pi * EARTH_RADIUS_M / 180

    def metres(point: LonLat) -> XY:
        return point[0] * shrink * metres_per_degree, point[1] * metres_per_degree

    xs, ys = zip(*(metres(p) for p in points), strict=True)
    spans = ((inner_w, max(xs) - min(xs)), (inner_h, max(ys) - min(ys)))
    fits = [room / span for room, span in spans if span > 0]
    units_per_metre = min([*fits, min(inner_w, inner_h) / MIN_SPAN_M])
    centre_x, centre_y = (max(xs) + min(xs)) / 2, (max(ys) + min(ys)) / 2

    def place(point: LonLat) -> XY:
        x, y = metres(point)
        return (
            width / 2 + (x - centre_x) * units_per_metre,
            height / 2 - (y - centre_y) * units_per_metre,
        )

    return Projection(tuple(tuple(place(p) for p in line) for line in lines), 1 / units_per_metre)


def scale_bar(metres_per_unit: float, max_units: float) -> tuple[float, str]:
    """The longest round length (1, 2 or 5 × 10ⁿ m) that fits in max_units: (its length in
    units, its label in km)."""
    budget = metres_per_unit * max_units
    power = 10 ** math.floor(math.log10(budget))
    metres = next(step * power for step in (5, 2, 1) if step * power <= budget)
    return metres / metres_per_unit, f"{metres / 1000:g} km"


def bar_rects(
    values: Sequence[float | None], width: float, height: float, gap: float = 0.3
) -> list[tuple[float, float, float, float]]:
    """(x, y, w, h) of one bar per value in a width × height plot, y down with the baseline at the
    bottom, the largest value reaching the top; a missing or non-positive value has no height."""
    if not values:
        return []
    slot = width / len(values)
    top = max((v for v in values if v is not None and v > 0), default=0.0)
    bar_w = slot * (1 - gap)
    rects = []
    for i, value in enumerate(values):
        h = height * value / top if top and value is not None and value > 0 else 0.0
        rects.append((i * slot + (slot - bar_w) / 2, height - h, bar_w, h))
    return rects


# ---- the layout both outputs draw ------------------------------------------------------------

Tone = Literal["", "ok", "bad", "muted", "total", "caption"]


@dataclass(frozen=True, slots=True)
class Field:
    label: str
    value: str
    wide: bool = False  # takes a whole row: long free text


@dataclass(frozen=True, slots=True)
class Fields:
    kind: ClassVar[str] = "fields"
    items: tuple[Field, ...]


@dataclass(frozen=True, slots=True)
class Table:
    kind: ClassVar[str] = "table"
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    widths: tuple[float, ...]  # relative; the PDF needs them, a browser works them out itself
    tones: tuple[Tone, ...] = ()  # one a row, or none

    def tone(self, index: int) -> Tone:
        return self.tones[index] if index < len(self.tones) else ""


@dataclass(frozen=True, slots=True)
class Note:
    kind: ClassVar[str] = "note"
    text: str
    tone: Tone = "muted"


@dataclass(frozen=True, slots=True)
class Marker:
    label: str
    lon: float
    lat: float
    origin: bool


@dataclass(frozen=True, slots=True)
class RouteMap:
    kind: ClassVar[str] = "map"
    planned: tuple[LonLat, ...]
    driven: tuple[tuple[LonLat, ...], ...]
    markers: tuple[Marker, ...]


@dataclass(frozen=True, slots=True)
class Bar:
    label: str
    value: float | None
    text: str
    tone: Tone = ""


@dataclass(frozen=True, slots=True)
class BarChart:
    kind: ClassVar[str] = "chart"
    title: str
    bars: tuple[Bar, ...]


Block = Fields | Table | Note | RouteMap | BarChart


@dataclass(frozen=True, slots=True)
class Section:
    title: str
    blocks: tuple[Block, ...]


@dataclass(frozen=True, slots=True)
class Document:
    title: str
    subtitle: str
    generated: str
    sections: tuple[Section, ...]


def _table_or_none(
    columns: Sequence[str],
    rows: Sequence[Sequence[str]],
    widths: Sequence[float],
    tones: Sequence[Tone] = (),
    nothing: str = "",
) -> Block:
    """Empty data still says so: the auditor must see that nothing was there, not a gap."""
    if not rows:
        return Note(f"{NONE_NOTE}: {nothing}" if nothing else NONE_NOTE)
    return Table(tuple(columns), tuple(tuple(r) for r in rows), tuple(widths), tuple(tones))


# ---- the map and the charts, laid out in a box ------------------------------------------------

PLANNED_COLOUR = "#1f5fbf"
TRACK_COLOURS = ("#d62728", "#f07010")  # trips alternate red and orange
ORIGIN_COLOUR = "#2a9d3f"
DESTINATION_COLOUR = "#6a3d9a"
BAR_COLOUR = "#4e79a7"
TONE_COLOURS: dict[str, str] = {
    "": "#222222",
    "total": "#222222",
    "ok": "#1b7f3b",
    "bad": "#c62828",
    "muted": "#6b7280",
    "caption": "#6b7280",
}


@dataclass(frozen=True, slots=True)
class Track:
    points: tuple[XY, ...]
    colour: str


@dataclass(frozen=True, slots=True)
class PlacedMarker:
    x: float
    y: float
    label: str
    colour: str
    label_left: bool  # near the right edge the label goes on the left of the dot


@dataclass(frozen=True, slots=True)
class MapDrawing:
    width: float
    height: float
    planned: tuple[XY, ...]
    driven: tuple[Track, ...]
    markers: tuple[PlacedMarker, ...]
    scale_units: float  # 0 when there is nothing to scale
    scale_label: str
    scale_x: float
    scale_y: float
    notice: str  # NO_TRACK when no trip was driven, else ""
    notice_x: float
    notice_y: float
    notice_centred: bool


def draw_map(route: RouteMap, width: float, height: float, margin: float) -> MapDrawing:
    """The route map in a width × height box. The markers are projected with the lines, as
    one-point lines, so that an origin off the track still lands inside the box."""
    lines: list[Sequence[LonLat]] = [route.planned, *route.driven]
    lines += [[(m.lon, m.lat)] for m in route.markers]
    projection = project(lines, width, height, margin)
    planned, *rest = projection.lines
    driven = rest[: len(route.driven)]
    spots = rest[len(route.driven) :]
    markers = tuple(
        PlacedMarker(
            x=spot[0][0],
            y=spot[0][1],
            label=m.label,
            colour=ORIGIN_COLOUR if m.origin else DESTINATION_COLOUR,
            label_left=spot[0][0] > width * 0.7,
        )
        for m, spot in zip(route.markers, spots, strict=True)
    )
    scale_units, scale_label = 0.0, ""
    if projection.metres_per_unit is not None:
        scale_units, scale_label = scale_bar(projection.metres_per_unit, width / 4)
    nothing = projection.metres_per_unit is None
    return MapDrawing(
        width=width,
        height=height,
        planned=planned,
        driven=tuple(
            Track(line, TRACK_COLOURS[i % len(TRACK_COLOURS)]) for i, line in enumerate(driven)
        ),
        markers=markers,
        scale_units=scale_units,
        scale_label=scale_label,
        scale_x=margin / 2,
        scale_y=height - margin / 2,
        notice="" if any(len(line) for line in driven) else NO_TRACK,
        notice_x=width / 2 if nothing else margin / 2,
        notice_y=height / 2 if nothing else margin / 2,
        notice_centred=nothing,
    )


@dataclass(frozen=True, slots=True)
class PlacedBar:
    x: float
    y: float
    w: float
    h: float
    label: str
    text: str
    colour: str


@dataclass(frozen=True, slots=True)
class ChartDrawing:
    width: float
    height: float
    baseline: float
    bars: tuple[PlacedBar, ...]


def draw_chart(chart: BarChart, width: float, height: float) -> ChartDrawing:
    """Bars with room above for their values and below for their labels."""
    value_band, label_band = height * 0.14, height * 0.16
    plot = height - value_band - label_band
    rects = bar_rects([b.value for b in chart.bars], width, plot)
    # A long series keeps its labels legible by dropping the century: "26-11".
    short = len(chart.bars) > 12
    return ChartDrawing(
        width=width,
        height=height,
        baseline=value_band + plot,
        bars=tuple(
            PlacedBar(
                x=x,
                y=value_band + y,
                w=w,
                h=h,
                label=bar.label[2:] if short else bar.label,
                text=bar.text,
                colour=TONE_COLOURS["bad"] if bar.tone == "bad" else BAR_COLOUR,
            )
            for bar, (x, y, w, h) in zip(chart.bars, rects, strict=True)
        ),
    )


# ---- the order dossier ------------------------------------------------------------------------

H_REQUEST = "申请 Request"
H_APPROVALS = "审批 Approvals"
H_ASSIGNMENT = "派车 Assignment"
H_ROUTE = "路线与轨迹 Route and track"
H_COSTS = "费用 Costs"
H_ALERTS = "告警 Alerts"
H_AUDIT = "审计日志 Audit log"


def _lon_lat(value: object) -> tuple[float, float] | None:
    if isinstance(value, Sequence) and len(value) >= 2 and None not in (value[0], value[1]):
        return float(value[0]), float(value[1])
    return None


def _request(order: Mapping[str, Any], zone: ZoneInfo) -> tuple[Block, ...]:
    requester = order.get("requester") or {}
    who = requester.get("full_name") or requester.get("username")
    if requester.get("full_name") and requester.get("username"):
        who = f"{requester['full_name']} ({requester['username']})"
    origin = _lon_lat(order.get("origin"))
    where = _text(order.get("origin_name"))
    if origin:
        where += f" ({origin[0]:.5f}, {origin[1]:.5f})"
    destinations = "\n".join(
        f"{i}. {_text(d.get('name'))}" for i, d in enumerate(order.get("destinations") or [], 1)
    )
    return (
        Fields(
            (
                Field("单号 Order", f"#{_text(order.get('id'))}"),
                Field("状态 Status", label("order_status", order.get("status"))),
                Field("用途 Purpose", _text(order.get("purpose")), wide=True),
                Field("用车单位 Unit", _text((order.get("unit") or {}).get("name"))),
                Field("申请人 Requester", _text(who)),
                Field("乘车人数 Passengers", _number(order.get("passengers"))),
                Field("审批结果 Approval", label("approval", order.get("approval"))),
                Field("开始 Start", format_time(order.get("start_at"), zone)),
                Field("结束 End", format_time(order.get("end_at"), zone)),
                Field("出发地 Origin", where, wide=True),
                Field("目的地 Destinations", _text(destinations), wide=True),
                Field("紧急用车 Emergency", _yes_no(order.get("emergency"))),
                Field("出市 Out of region", _yes_no(order.get("out_of_region"))),
                Field("过夜 Overnight", _yes_no(order.get("overnight"))),
                Field("提交时间 Created", format_time(order.get("created_at"), zone)),
                Field("备注 Notes", _text(order.get("notes")), wide=True),
            )
        ),
    )


APPROVAL_TONES: dict[bool | None, Tone] = {True: "", False: "bad", None: "muted"}
REVIEW_TONES: dict[str, Tone] = {"confirmed": "bad", "escalated": "bad", "dismissed": "muted"}


def _decision(approved: bool | None) -> str:
    return label("decision", {True: "approved", False: "rejected", None: "undecided"}[approved])


def _approvals(approvals: Sequence[Mapping[str, Any]], zone: ZoneInfo) -> tuple[Block, ...]:
    rows: list[tuple[str, ...]] = []
    tones: list[Tone] = []
    for step in approvals:
        grounds = [
            label("condition", r) if r in LABELS["condition"] else r for r in step["reasons"]
        ]
        rows.append(
            (
                _text(step.get("step")),
                _text(step.get("unit_name")),
                _text("\n".join(grounds)),
                _decision(step.get("approved")),
                _text(step.get("by")),
                format_time(step.get("at"), zone),
                _text(step.get("comment")),
            )
        )
        tones.append(APPROVAL_TONES[step.get("approved")])
    columns = (
        "步骤 Step",
        "审批单位 Unit",
        "审批依据 Grounds",
        "决定 Decision",
        "审批人 By",
        "时间 At",
        "意见 Comment",
    )
    return (_table_or_none(columns, rows, (8, 16, 23, 13, 10, 16, 22), tones),)


def _assignment(assignment: Mapping[str, Any] | None, zone: ZoneInfo) -> tuple[Block, ...]:
    if not assignment:
        return (Note(f"{NONE_NOTE}: 未派车 Not assigned"),)
    vehicle = assignment.get("vehicle") or {}
    driver = assignment.get("driver") or {}
    return (
        Fields(
            (
                Field("车辆 Vehicle", _text(vehicle.get("plate"))),
                Field("品牌型号 Make and model", _text(vehicle.get("make_model"))),
                Field("车辆类别 Category", label("category", vehicle.get("category"))),
                Field("能源 Energy", label("energy", vehicle.get("energy"))),
                Field("驾驶员 Driver", _text(driver.get("name"))),
                Field("电话 Phone", _text(driver.get("phone"))),
                Field("占用开始 Held from", format_time(assignment.get("from"), zone)),
                Field("占用结束 Held to", format_time(assignment.get("to"), zone)),
                Field("派车人 Assigned by", _text(assignment.get("assigned_by"))),
                Field("派车时间 Assigned at", format_time(assignment.get("assigned_at"), zone)),
                Field(
                    "路线来源 Route source", label("route_source", assignment.get("route_source"))
                ),
                Field("人工指派理由 Override reason", _text(assignment.get("reason")), wide=True),
            )
        ),
    )


def _route(
    order: Mapping[str, Any],
    route: Mapping[str, Any],
    figures: Mapping[str, Any],
    zone: ZoneInfo,
) -> tuple[Block, ...]:
    markers = []
    origin = _lon_lat(order.get("origin"))
    if origin:
        markers.append(Marker(f"起 {_text(order.get('origin_name'))}", *origin, origin=True))
    for i, d in enumerate(order.get("destinations") or [], 1):
        spot = _lon_lat((d.get("lon"), d.get("lat")))
        if spot:
            markers.append(Marker(f"{i} {_text(d.get('name'))}", *spot, origin=False))
    route_map = RouteMap(
        planned=tuple(route.get("planned") or ()),
        driven=tuple(tuple(line) for line in route.get("driven") or ()),
        markers=tuple(markers),
    )
    planned_m, driven_m = figures.get("planned_distance_m"), figures.get("distance_m")
    against_plan = MISSING
    if planned_m and driven_m is not None:
        against_plan = f"{(driven_m - planned_m) / planned_m:+.1%}"
    start_km, end_km = figures.get("odometer_start_km"), figures.get("odometer_end_km")
    odometer_km = None if start_km is None or end_km is None else end_km - start_km
    trips = figures.get("trips") or []
    return (
        route_map,
        Fields(
            (
                Field("计划里程 Planned distance", format_distance(planned_m)),
                Field("实际里程 Driven distance", format_distance(driven_m)),
                Field("与计划相差 Against plan", against_plan),
                Field("行驶时长 Driving time", format_duration(figures.get("duration_s"))),
                Field("里程表起 Odometer start", _number(start_km, "km")),
                Field("里程表止 Odometer end", _number(end_km, "km")),
                Field("里程表差 Odometer distance", _number(odometer_km, "km")),
                Field("行程数 Trips", str(len(trips))),
            )
        ),
        _table_or_none(
            (
                "行程 Trip",
                "开始 Start",
                "结束 End",
                "里程 Distance",
                "时长 Duration",
                "最高速度 Max speed",
            ),
            [
                (
                    f"#{_text(t.get('id'))}",
                    format_time(t.get("start_at"), zone),
                    format_time(t.get("end_at"), zone),
                    format_distance(t.get("distance_m")),
                    format_duration(t.get("duration_s")),
                    _number(t.get("max_speed_kmh"), "km/h"),
                )
                for t in trips
            ],
            (10, 19, 19, 16, 16, 20),
            nothing="无行程 No trips",
        ),
    )


def _quantity(item: Mapping[str, Any]) -> str:
    parts = [
        _number(item[key], unit) for key, unit in (("litres", "L"), ("kwh", "kWh")) if item.get(key)
    ]
    return " / ".join(parts) or MISSING


def _order_costs(costs: Mapping[str, Any], zone: ZoneInfo) -> tuple[Block, ...]:
    items = costs.get("items") or []
    rows = [
        (
            format_time(c.get("at"), zone),
            label("cost_kind", c.get("kind")),
            format_money(c.get("amount")),
            MISSING if c.get("share") is None else f"{c['share']:.1%}",
            format_money(c.get("allocated")),
            _quantity(c),
            _text(c.get("station_name")),
            _text(c.get("note")),
        )
        for c in items
    ]
    columns = (
        "时间 At",
        "类别 Kind",
        "金额 Amount",
        "分摊比例 Share",
        "本单分摊 Allocated",
        "数量 Quantity",
        "站点 Station",
        "备注 Note",
    )
    return (
        _table_or_none(columns, rows, (15, 11, 12, 10, 12, 11, 16, 13)),
        Note(
            f"本单费用合计 Total allocated to this order: {format_money(costs.get('total'))}",
            "total",
        ),
    )


def _review_history(reviews: Iterable[Mapping[str, Any]], zone: ZoneInfo) -> str:
    lines = [
        f"{label('review', r.get('decision'))}: {_text(r.get('reason'))}"
        f" ({_text(r.get('by'))}, {format_time(r.get('at'), zone)})"
        for r in reviews
    ]
    return "\n".join(lines) or MISSING


def _review_tone(review: object) -> Tone:
    return REVIEW_TONES.get(str(review), "")


def _order_alerts(alerts: Sequence[Mapping[str, Any]], zone: ZoneInfo) -> tuple[Block, ...]:
    rows = [
        (
            f"#{_text(a.get('id'))}",
            label("alert_kind", a.get("kind")),
            label("severity", a.get("severity")),
            format_time(a.get("started_at"), zone),
            format_time(a.get("ended_at"), zone),
            _facts(a.get("measured")),
            _facts(a.get("thresholds")),
            label("review", a.get("review")),
            _review_history(a.get("reviews") or [], zone),
        )
        for a in alerts
    ]
    columns = (
        "编号 #",
        "类型 Kind",
        "等级 Severity",
        "开始 Started",
        "结束 Ended",
        "实测 Measured",
        "阈值 Thresholds",
        "复核 Review",
        "复核记录 Review history",
    )
    tones = [_review_tone(a.get("review")) for a in alerts]
    return (_table_or_none(columns, rows, (6, 12, 8, 11, 11, 14, 14, 11, 19), tones),)


def _verification(verification: Mapping[str, Any] | None) -> Note:
    if not verification:
        return Note("未校验 Not verified")
    since = verification.get("since_checkpoint")
    start = (
        f"自签名检查点（条目 {_text(since.get('entry_id'))}，{_text(since.get('at'))}）起"
        f" from the signed checkpoint of entry {_text(since.get('entry_id'))}"
        if since
        else "自首条起 from the first entry"
    )
    if verification.get("ok"):
        checked = _number(verification.get("checked"))
        return Note(f"链完整 Chain intact, {start} ({checked} entries checked)", "ok")
    return Note(
        f"链断裂 Chain broken at entry {_text(verification.get('first_bad_id'))}: "
        f"{_text(verification.get('message'))}",
        "bad",
    )


def _audit(audit: Mapping[str, Any], zone: ZoneInfo) -> tuple[Block, ...]:
    rows = [
        (
            f"#{_text(e.get('id'))}",
            format_time(e.get("at"), zone),
            _text(e.get("actor")),
            _text(e.get("action")),
            f"{_text(e.get('entity'))} {_text(e.get('entity_id'))}",
            _text((e.get("hash") or "")[:12]),
        )
        for e in audit.get("entries") or []
    ]
    columns = ("编号 #", "时间 At", "操作人 Actor", "操作 Action", "对象 Entity", "哈希 Hash")
    return (
        _verification(audit.get("verification")),
        _table_or_none(columns, rows, (9, 17, 13, 17, 22, 18), nothing="无日志 No entries"),
    )


def _order_document(dossier: Mapping[str, Any], zone: ZoneInfo) -> Document:
    order = dossier.get("order") or {}
    return Document(
        title=f"用车档案 Trip order dossier #{_text(order.get('id'))}",
        subtitle=_text(order.get("purpose")),
        generated=_generated(dossier.get("generated_at"), zone),
        sections=(
            Section(H_REQUEST, _request(order, zone)),
            Section(H_APPROVALS, _approvals(dossier.get("approvals") or [], zone)),
            Section(H_ASSIGNMENT, _assignment(dossier.get("assignment"), zone)),
            Section(
                H_ROUTE,
                _route(order, dossier.get("route") or {}, dossier.get("figures") or {}, zone),
            ),
            Section(H_COSTS, _order_costs(dossier.get("costs") or {}, zone)),
            Section(H_ALERTS, _order_alerts(dossier.get("alerts") or [], zone)),
            Section(H_AUDIT, _audit(dossier.get("audit") or {}, zone)),
        ),
    )


def _generated(at: str | None, zone: ZoneInfo) -> str:
    return f"生成时间 Generated {format_time(at, zone)} ({zone.key})"


# ---- the vehicle file -------------------------------------------------------------------------

H_VEHICLE = "车辆信息 Vehicle"
H_ASSIGNMENTS = "用车记录 Assignments"
H_DISTANCE = "月度里程 Distance by month"
H_CONSUMPTION = "能耗 Consumption"
H_DUE = "到期提醒 Due dates"
H_STATUS = "状态变更 Status changes"
DUE_SOON_DAYS = 30


def _vehicle(vehicle: Mapping[str, Any], zone: ZoneInfo) -> tuple[Block, ...]:
    return (
        Fields(
            (
                Field("号牌 Plate", _text(vehicle.get("plate"))),
                Field("品牌型号 Make and model", _text(vehicle.get("make_model"))),
                Field("车辆类别 Category", label("category", vehicle.get("category"))),
                Field("车身 Body", label("body_class", vehicle.get("body_class"))),
                Field("座位 Seats", _number(vehicle.get("seats"))),
                Field("能源 Energy", label("energy", vehicle.get("energy"))),
                Field("油箱 Tank", _number(vehicle.get("tank_l"), "L")),
                Field("电池 Battery", _number(vehicle.get("battery_kwh"), "kWh")),
                Field("油耗定额 Fuel norm", _number(vehicle.get("fuel_norm_l_100km"), "L/100 km")),
                Field("状态 Status", label("vehicle_status", vehicle.get("status"))),
                Field("所属单位 Unit", _text((vehicle.get("unit") or {}).get("name"))),
                Field("停放点 Depot", _text(vehicle.get("depot_name"))),
                Field("登记时间 Registered", format_time(vehicle.get("created_at"), zone)),
            )
        ),
    )


def _driver_name(driver: object) -> str:
    if isinstance(driver, Mapping):
        return _text(driver.get("name"))
    return _text(driver)


def _assignments(rows: Sequence[Mapping[str, Any]], zone: ZoneInfo) -> tuple[Block, ...]:
    columns = ("单号 Order", "用途 Purpose", "开始 From", "结束 To", "驾驶员 Driver", "状态 Status")
    return (
        _table_or_none(
            columns,
            [
                (
                    f"#{_text(a.get('order_id'))}",
                    _text(a.get("purpose")),
                    format_time(a.get("from"), zone),
                    format_time(a.get("to"), zone),
                    _driver_name(a.get("driver")),
                    label("order_status", a.get("status")),
                )
                for a in rows
            ],
            (9, 33, 16, 16, 12, 14),
        ),
    )


def _distance_by_month(months: Sequence[Mapping[str, Any]]) -> tuple[Block, ...]:
    rows = [
        (
            _text(m.get("month")),
            format_distance(m.get("distance_m")),
            _number(m.get("trips")),
            _number(m.get("hours"), "h"),
        )
        for m in months
    ]
    table = _table_or_none(
        ("月份 Month", "里程 Distance", "行程数 Trips", "时长 Hours"), rows, (1, 1, 1, 1)
    )
    if not months:
        return (table,)
    chart = BarChart(
        "月度里程 (km) Distance by month (km)",
        tuple(
            Bar(
                _text(m.get("month")),
                None if m.get("distance_m") is None else m["distance_m"] / 1000,
                MISSING if m.get("distance_m") is None else f"{m['distance_m'] / 1000:,.0f}",
            )
            for m in months
        ),
    )
    return chart, table


def _consumption(months: Sequence[Mapping[str, Any]]) -> tuple[Block, ...]:
    rows: list[tuple[str, ...]] = []
    tones: list[Tone] = []
    for m in months:
        over = m.get("over_norm_pct")
        rows.append(
            (
                _text(m.get("month")),
                _number(m.get("litres"), "L"),
                _number(m.get("kwh"), "kWh"),
                format_distance(m.get("distance_m")),
                _number(m.get("l_100km"), "L/100 km"),
                _number(m.get("kwh_100km"), "kWh/100 km"),
                _number(m.get("norm_l_100km"), "L/100 km"),
                MISSING if over is None else f"{over:+.1f}%",
            )
        )
        tones.append("bad" if over is not None and over > 0 else "")
    columns = (
        "月份 Month",
        "加油 Fuel",
        "充电 Charge",
        "里程 Distance",
        "百公里油耗 Fuel use",
        "百公里电耗 Power use",
        "定额 Norm",
        "超定额 Over norm",
    )
    table = _table_or_none(columns, rows, (10, 11, 12, 12, 15, 16, 14, 10), tones)
    # Litres when the vehicle burns any fuel (a plug-in hybrid's norm is in litres), else kWh.
    key, unit = ("l_100km", "L/100 km")
    if not any(m.get("l_100km") is not None for m in months):
        key, unit = ("kwh_100km", "kWh/100 km")
    if not any(m.get(key) is not None for m in months):
        return (table,)
    chart = BarChart(
        f"百公里能耗 ({unit}) Consumption ({unit}), 超定额为红 red when over the norm",
        tuple(
            Bar(_text(m.get("month")), m.get(key), _number(m.get(key)), tone)
            for m, tone in zip(months, tones, strict=True)
        ),
    )
    return chart, table


def _vehicle_costs(costs: Mapping[str, Any], zone: ZoneInfo) -> tuple[Block, ...]:
    by_kind = sorted((costs.get("by_kind") or {}).items(), key=lambda kv: -kv[1])
    items = costs.get("items") or []
    return (
        Note("按类别 By kind", "caption"),
        _table_or_none(
            ("类别 Kind", "金额 Amount"),
            [(label("cost_kind", kind), format_money(amount)) for kind, amount in by_kind],
            (1, 1),
        ),
        Note(f"合计 Total: {format_money(costs.get('total'))}", "total"),
        Note("明细 Items", "caption"),
        _table_or_none(
            (
                "时间 At",
                "类别 Kind",
                "金额 Amount",
                "数量 Quantity",
                "站点 Station",
                "用车单 Order",
                "备注 Note",
            ),
            [
                (
                    format_time(c.get("at"), zone),
                    label("cost_kind", c.get("kind")),
                    format_money(c.get("amount")),
                    _quantity(c),
                    _text(c.get("station_name")),
                    MISSING if c.get("order_id") is None else f"#{c['order_id']}",
                    _text(c.get("note")),
                )
                for c in items
            ],
            (16, 11, 12, 12, 20, 10, 19),
        ),
    )


def _due(due: Sequence[Mapping[str, Any]]) -> tuple[Block, ...]:
    rows: list[tuple[str, ...]] = []
    tones: list[Tone] = []
    for d in due:
        days = d.get("days_left")
        tone: Tone
        if d.get("overdue"):
            state, tone = "已逾期 Overdue", "bad"
        elif days is not None and days <= DUE_SOON_DAYS:
            state, tone = "即将到期 Due soon", ""
        else:
            state, tone = "正常 OK", ""
        rows.append(
            (label("cost_kind", d.get("kind")), _text(d.get("due_on")), _number(days), state)
        )
        tones.append(tone)
    columns = ("项目 Item", "到期日 Due on", "剩余天数 Days left", "状态 State")
    return (_table_or_none(columns, rows, (1, 1, 1, 1), tones),)


def _vehicle_alerts(
    alerts: Sequence[Mapping[str, Any]], outcomes: Mapping[str, Mapping[str, Any]], zone: ZoneInfo
) -> tuple[Block, ...]:
    listed = _table_or_none(
        ("编号 #", "类型 Kind", "等级 Severity", "开始 Started", "复核 Review"),
        [
            (
                f"#{_text(a.get('id'))}",
                label("alert_kind", a.get("kind")),
                label("severity", a.get("severity")),
                format_time(a.get("started_at"), zone),
                label("review", a.get("review")),
            )
            for a in alerts
        ],
        (10, 34, 14, 22, 20),
        [_review_tone(a.get("review")) for a in alerts],
    )
    if not outcomes:
        return (listed,)
    # The outcomes say how often this vehicle's alerts of each kind turned out to be real.
    counts = ("total", "confirmed", "dismissed", "escalated", "pending")
    summary = Table(
        (
            "类型 Kind",
            "总数 Total",
            "属实 Confirmed",
            "排除 Dismissed",
            "上报 Escalated",
            "待审 Pending",
        ),
        tuple(
            (label("alert_kind", kind), *(_number(o.get(c, 0)) for c in counts))
            for kind, o in outcomes.items()
        ),
        (30, 14, 14, 14, 14, 14),
    )
    return (
        Note("复核结果 Review outcomes", "caption"),
        summary,
        Note("告警列表 Alerts", "caption"),
        listed,
    )


def _status_changes(changes: Sequence[Mapping[str, Any]], zone: ZoneInfo) -> tuple[Block, ...]:
    return (
        _table_or_none(
            ("时间 At", "操作人 Actor", "原状态 From", "新状态 To"),
            [
                (
                    format_time(c.get("at"), zone),
                    _text(c.get("actor")),
                    label("vehicle_status", c.get("from")),
                    label("vehicle_status", c.get("to")),
                )
                for c in changes
            ],
            (1, 1, 1, 1),
        ),
    )


def _vehicle_document(file: Mapping[str, Any], zone: ZoneInfo) -> Document:
    vehicle = file.get("vehicle") or {}
    return Document(
        title=f"一车一档 Vehicle file {_text(vehicle.get('plate'))}",
        subtitle=" · ".join(
            part
            for part in (
                _text(vehicle.get("make_model")),
                label("category", vehicle.get("category")),
                _text((vehicle.get("unit") or {}).get("name")),
            )
            if part != MISSING
        ),
        generated=_generated(file.get("generated_at"), zone),
        sections=(
            Section(H_VEHICLE, _vehicle(vehicle, zone)),
            Section(H_ASSIGNMENTS, _assignments(file.get("assignments") or [], zone)),
            Section(H_DISTANCE, _distance_by_month(file.get("distance_by_month") or [])),
            Section(H_CONSUMPTION, _consumption(file.get("consumption") or [])),
            Section(H_COSTS, _vehicle_costs(file.get("costs") or {}, zone)),
            Section(H_DUE, _due(file.get("due") or [])),
            Section(
                H_ALERTS,
                _vehicle_alerts(file.get("alerts") or [], file.get("alert_outcomes") or {}, zone),
            ),
            Section(H_STATUS, _status_changes(file.get("status_changes") or [], zone)),
        ),
    )


# ---- HTML -------------------------------------------------------------------------------------

SVG_MAP = (720.0, 400.0, 28.0)  # width, height, margin in CSS pixels
SVG_CHART = (720.0, 170.0)


@cache
def _environment() -> Environment:
    environment = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["n"] = lambda value: f"{value:.1f}"
    environment.filters["points"] = lambda points: " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    environment.globals.update(
        svg_map=lambda route: draw_map(route, *SVG_MAP),
        svg_chart=lambda chart: draw_chart(chart, *SVG_CHART),
        colours={
            "planned": PLANNED_COLOUR,
            "track": TRACK_COLOURS[0],
            "origin": ORIGIN_COLOUR,
            "destination": DESTINATION_COLOUR,
        },
    )
    return environment


def _render_html(document: Document) -> str:
    return _environment().get_template("report.html").render(doc=document)


# ---- PDF --------------------------------------------------------------------------------------

FONT = "cjk"
LATIN = "helvetica"
PDF_MAP = (78.0, 7.0)  # height and margin in mm; the width is the page's
PDF_MAP_LEGEND_MM = 7.0
PDF_CHART_MM = 40.0
PDF_CHART_CAPTION_MM = 5.0
BODY_PT = 8.0


class ReportFontMissing(RuntimeError):
    pass


def _rgb(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


# fpdf2 only maps text to the core fonts' WinAnsi bytes when a core font is the current font; a
# Helvetica fallback run inside CJK text needs it done here, or "—" and "…" would be lost.
_WIN_ANSI = {
    ord(bytes([code]).decode("cp1252")): chr(code)
    for code in range(0x80, 0xA0)
    if code not in (0x81, 0x8D, 0x8F, 0x90, 0x9D)
}


class _ReportPDF(FPDF):
    def __init__(self, document: Document, font_path: Path) -> None:
        super().__init__(orientation="portrait", unit="mm", format="A4")
        self.document = document
        self.set_margins(15, 14, 15)
        self.set_auto_page_break(auto=True, margin=16)
        self.add_font(FONT, "", str(font_path))
        self.set_font(LATIN)  # registers the core font, which set_fallback_fonts insists on
        self.set_font(FONT, size=BODY_PT)
        self.set_fallback_fonts([LATIN])
        self.set_title(document.title)
        self.set_lang("zh")

    def get_fallback_font(self, char: str, style: str = "") -> str | None:
        return LATIN if ord(char) < 0x100 else None

    def normalize_text(self, text: str) -> str:
        return super().normalize_text(text.translate(_WIN_ANSI))

    def header(self) -> None:
        self.set_text_color(*_rgb(TONE_COLOURS[""]))
        self.set_font(FONT, size=12)
        self.cell(0, 6, self.document.title, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_font(FONT, size=7.5)
        self.set_text_color(*_rgb(TONE_COLOURS["muted"]))
        self.cell(0, 4, self.document.generated, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_draw_color(160, 160, 160)
        self.set_line_width(0.3)
        self.line(self.l_margin, self.get_y() + 1, self.w - self.r_margin, self.get_y() + 1)
        self.set_y(self.get_y() + 3.5)
        self.set_text_color(*_rgb(TONE_COLOURS[""]))
        self.set_font(FONT, size=BODY_PT)

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font(FONT, size=7.5)
        self.set_text_color(*_rgb(TONE_COLOURS["muted"]))
        page = self.page_no()
        self.cell(0, 5, f"第 {page} 页 Page {page}", align="C")


TABLE_HEAD_FACE = FontFace(fill_color=(236, 240, 245))
LABEL_FACE = FontFace(color=_rgb(TONE_COLOURS["muted"]), fill_color=(247, 248, 250))


def _face(tone: Tone) -> FontFace | None:
    return FontFace(color=_rgb(TONE_COLOURS[tone])) if tone else None


def _pdf_reset(pdf: _ReportPDF) -> None:
    """fpdf2's tables take their cells' fill from the current state: a map leaves it coloured."""
    pdf.set_font(FONT, size=BODY_PT)
    pdf.set_text_color(*_rgb(TONE_COLOURS[""]))
    pdf.set_fill_color(255, 255, 255)
    pdf.set_draw_color(0, 0, 0)
    pdf.set_line_width(0.2)


def _pdf_room(block: Block) -> float:
    """Height (mm) a block needs below its heading: a map or a chart is never split."""
    if isinstance(block, RouteMap):
        return PDF_MAP[0] + PDF_MAP_LEGEND_MM + 2
    if isinstance(block, BarChart):
        return PDF_CHART_MM + PDF_CHART_CAPTION_MM + 2
    return 14.0


def _pdf_heading(pdf: _ReportPDF, section: Section) -> None:
    # A heading alone at the foot of a page says nothing; it goes over with its first block.
    room = _pdf_room(section.blocks[0]) if section.blocks else 0.0
    if pdf.will_page_break(8.5 + room):
        pdf.add_page()
    pdf.set_font(FONT, size=11)
    pdf.set_fill_color(236, 240, 245)
    pdf.set_text_color(*_rgb(TONE_COLOURS[""]))
    pdf.cell(0, 7, section.title, fill=True, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(1.5)


def _pdf_fields(pdf: _ReportPDF, fields: Fields) -> None:
    rows: list[list[Field]] = []
    for item in fields.items:
        if item.wide or not rows or rows[-1][0].wide or len(rows[-1]) == 2:
            rows.append([item])
        else:
            rows[-1].append(item)
    with pdf.table(
        col_widths=(20, 30, 20, 30),
        first_row_as_headings=False,
        text_align="LEFT",
        line_height=pdf.font_size * 1.45,
        padding=(0.6, 1.2),
    ) as table:
        for row in rows:
            cells = table.row()
            for item in row:
                cells.cell(item.label, style=LABEL_FACE)
                cells.cell(item.value, colspan=3 if item.wide else 1)
            if len(row) == 1 and not row[0].wide:
                cells.cell("", style=LABEL_FACE)
                cells.cell("")


def _pdf_table(pdf: _ReportPDF, table: Table) -> None:
    with pdf.table(
        col_widths=table.widths,
        text_align="LEFT",
        line_height=pdf.font_size * 1.45,
        padding=(0.6, 1.2),
        headings_style=TABLE_HEAD_FACE,
    ) as drawn:
        drawn.row(list(table.columns))
        for i, row in enumerate(table.rows):
            cells = drawn.row()
            for text in row:
                cells.cell(text, style=_face(table.tone(i)))


def _pdf_note(pdf: _ReportPDF, note: Note) -> None:
    pdf.set_text_color(*_rgb(TONE_COLOURS[note.tone]))
    fill = {"ok": (232, 245, 233), "bad": (253, 236, 234)}.get(note.tone)
    if fill:
        pdf.set_fill_color(*fill)
        pdf.set_draw_color(*_rgb(TONE_COLOURS[note.tone]))
    pdf.multi_cell(
        0,
        4.5 if note.tone == "caption" else 5.5,
        note.text,
        border=1 if fill else 0,
        fill=fill is not None,
        align="R" if note.tone == "total" else "L",
        new_x=XPos.LMARGIN,
        new_y=YPos.NEXT,
    )
    pdf.set_text_color(*_rgb(TONE_COLOURS[""]))


def _pdf_label(pdf: _ReportPDF, x: float, y: float, text: str, *, right: bool = False) -> None:
    """Text whose left edge (or right edge) is at x, its middle at y; fpdf2's text() does not use
    fallback fonts, so labels are cells."""
    width = 60.0
    pdf.set_xy(x - width if right else x, y - 2)
    pdf.cell(width, 4, text, align="R" if right else "L")


def _pdf_map(pdf: _ReportPDF, route: RouteMap) -> None:
    height, margin = PDF_MAP
    legend = PDF_MAP_LEGEND_MM
    if pdf.will_page_break(height + legend + 2):
        pdf.add_page()
    x0, y0, width = pdf.l_margin, pdf.get_y(), pdf.epw
    drawing = draw_map(route, width, height, margin)

    def at(points: Iterable[XY]) -> list[XY]:
        return [(x0 + x, y0 + y) for x, y in points]

    pdf.set_line_width(0.3)
    pdf.set_draw_color(192, 199, 207)
    pdf.set_fill_color(250, 251, 252)
    pdf.rect(x0, y0, width, height, style="DF")
    if len(drawing.planned) >= 2:
        pdf.set_draw_color(*_rgb(PLANNED_COLOUR))
        pdf.set_line_width(0.6)
        pdf.set_dash_pattern(dash=2.2, gap=1.4)
        pdf.polyline(at(drawing.planned))
        pdf.set_dash_pattern()
    pdf.set_line_width(0.8)
    for track in drawing.driven:
        if len(track.points) >= 2:
            pdf.set_draw_color(*_rgb(track.colour))
            pdf.polyline(at(track.points))
    pdf.set_font(FONT, size=7)
    pdf.set_line_width(0.3)
    pdf.set_draw_color(255, 255, 255)
    for marker in drawing.markers:
        pdf.set_fill_color(*_rgb(marker.colour))
        pdf.ellipse(x0 + marker.x - 1.4, y0 + marker.y - 1.4, 2.8, 2.8, style="DF")
        offset = -2.2 if marker.label_left else 2.2
        _pdf_label(
            pdf, x0 + marker.x + offset, y0 + marker.y, marker.label, right=marker.label_left
        )
    if drawing.notice:
        pdf.set_font(FONT, size=11 if drawing.notice_centred else 7.5)
        pdf.set_text_color(*_rgb(TONE_COLOURS["muted"]))
        if drawing.notice_centred:
            pdf.set_xy(x0, y0 + drawing.notice_y - 3)
            pdf.cell(width, 6, drawing.notice, align="C")
        else:
            _pdf_label(pdf, x0 + drawing.notice_x, y0 + drawing.notice_y, drawing.notice)
        pdf.set_text_color(*_rgb(TONE_COLOURS[""]))
        pdf.set_font(FONT, size=7)
    if drawing.scale_units:
        left, base = x0 + drawing.scale_x, y0 + drawing.scale_y
        pdf.set_draw_color(40, 40, 40)
        pdf.set_line_width(0.4)
        pdf.line(left, base, left + drawing.scale_units, base)
        for tick in (left, left + drawing.scale_units):
            pdf.line(tick, base - 1.2, tick, base)
        _pdf_label(pdf, left, base - 2.6, drawing.scale_label)
    _pdf_legend(pdf, x0, y0 + height + legend / 2)
    pdf.set_font(FONT, size=BODY_PT)
    pdf.set_xy(pdf.l_margin, y0 + height + legend + 1)


def _pdf_legend(pdf: _ReportPDF, x: float, y: float) -> None:
    pdf.set_line_width(0.6)
    pdf.set_draw_color(*_rgb(PLANNED_COLOUR))
    pdf.set_dash_pattern(dash=2.2, gap=1.4)
    pdf.line(x, y, x + 9, y)
    pdf.set_dash_pattern()
    _pdf_label(pdf, x + 11, y, "计划路线 Planned route")
    x += 48
    pdf.set_line_width(0.8)
    pdf.set_draw_color(*_rgb(TRACK_COLOURS[0]))
    pdf.line(x, y, x + 9, y)
    _pdf_label(pdf, x + 11, y, "实际轨迹 Driven track")
    x += 48
    pdf.set_line_width(0.3)
    pdf.set_draw_color(255, 255, 255)
    for colour, text in (
        (ORIGIN_COLOUR, "起点 Origin"),
        (DESTINATION_COLOUR, "目的地 Destination"),
    ):
        pdf.set_fill_color(*_rgb(colour))
        pdf.ellipse(x + 3, y - 1.4, 2.8, 2.8, style="DF")
        _pdf_label(pdf, x + 8, y, text)
        x += 38


def _pdf_chart(pdf: _ReportPDF, chart: BarChart) -> None:
    caption = PDF_CHART_CAPTION_MM
    if pdf.will_page_break(PDF_CHART_MM + caption + 2):
        pdf.add_page()
    pdf.set_font(FONT, size=8)
    pdf.set_text_color(*_rgb(TONE_COLOURS["muted"]))
    pdf.cell(0, caption, chart.title, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    x0, y0 = pdf.l_margin, pdf.get_y()
    drawing = draw_chart(chart, pdf.epw, PDF_CHART_MM)
    pdf.set_font(FONT, size=6.5)
    for bar in drawing.bars:
        if bar.h > 0:
            pdf.set_fill_color(*_rgb(bar.colour))
            pdf.rect(x0 + bar.x, y0 + bar.y, bar.w, bar.h, style="F")
        for text, y in ((bar.text, bar.y - 2.5), (bar.label, drawing.baseline + 2.6)):
            pdf.set_xy(x0 + bar.x - 3, y0 + y - 1.5)
            pdf.cell(bar.w + 6, 3, text, align="C")
    pdf.set_draw_color(120, 120, 120)
    pdf.set_line_width(0.3)
    pdf.line(x0, y0 + drawing.baseline, x0 + drawing.width, y0 + drawing.baseline)
    pdf.set_text_color(*_rgb(TONE_COLOURS[""]))
    pdf.set_font(FONT, size=BODY_PT)
    pdf.set_xy(pdf.l_margin, y0 + PDF_CHART_MM + 1)


def _render_pdf(document: Document, font_path: Path) -> bytes:
    if not font_path.is_file():
        raise ReportFontMissing(
            f"the CJK font for PDF reports, {font_path}, is missing: Debian's "
            "fonts-droid-fallback package provides it (make bootstrap installs it)"
        )
    pdf = _ReportPDF(document, font_path)
    # No subtitle: it repeats the first section's fields, and the first page is kept for the
    # request, its approvals, the assignment and the map.
    pdf.add_page()
    for section in document.sections:
        _pdf_heading(pdf, section)
        for block in section.blocks:
            _pdf_reset(pdf)
            if isinstance(block, Fields):
                _pdf_fields(pdf, block)
            elif isinstance(block, Table):
                _pdf_table(pdf, block)
            elif isinstance(block, Note):
                _pdf_note(pdf, block)
            elif isinstance(block, RouteMap):
                _pdf_map(pdf, block)
            else:
                _pdf_chart(pdf, block)
            pdf.ln(1.5)
        pdf.ln(2)
    return bytes(pdf.output())


# ---- the API ----------------------------------------------------------------------------------


def render_order_html(dossier: Mapping[str, Any], *, zone: ZoneInfo = SHANGHAI) -> str:
    return _render_html(_order_document(dossier, zone))


def render_order_pdf(
    dossier: Mapping[str, Any], *, zone: ZoneInfo = SHANGHAI, font_path: Path
) -> bytes:
    return _render_pdf(_order_document(dossier, zone), font_path)


def render_vehicle_html(file: Mapping[str, Any], *, zone: ZoneInfo = SHANGHAI) -> str:
    return _render_html(_vehicle_document(file, zone))


def render_vehicle_pdf(
    file: Mapping[str, Any], *, zone: ZoneInfo = SHANGHAI, font_path: Path
) -> bytes:
    return _render_pdf(_vehicle_document(file, zone), font_path)
