"""What the dossier and the vehicle file are drawn from: the vocabularies (zh, en), the
formatting of times, money and distances, the map's projection and scale, and the layout both
outputs draw (a `Document` of sections holding fields, tables, notes, a route map and bar
charts), with the map and the charts laid out once in a box's own units."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Literal, NamedTuple
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")
TEMPLATES = Path(__file__).parent / "templates"
MISSING = "—"
NONE_NOTE = "无 None"
NO_TRACK = "无轨迹 No track"

# ---- vocabularies ----------------------------------------------------------------------------

# The words of each vocabulary, Chinese and English (reports/vocabulary.json: data a translator
# edits, as the pages' labels are).
LABELS: dict[str, dict[str, tuple[str, str]]] = {
    name: {key: (zh, en) for key, (zh, en) in words.items()}
    for name, words in json.loads(
        (Path(__file__).parent / "vocabulary.json").read_text(encoding="utf-8")
    ).items()
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
