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

from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fpdf import FPDF
from fpdf.enums import XPos, YPos
from fpdf.fonts import FontFace
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from reports.documents import (
    _driver_document,
    _order_document,
    _vehicle_document,
)
from reports.layout import (
    DESTINATION_COLOUR,
    ORIGIN_COLOUR,
    PLANNED_COLOUR,
    SHANGHAI,
    TEMPLATES,
    TONE_COLOURS,
    TRACK_COLOURS,
    XY,
    BarChart,
    Block,
    Document,
    Field,
    Fields,
    Note,
    RouteMap,
    Section,
    Table,
    Tone,
    draw_chart,
    draw_map,
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


def render_driver_html(file: Mapping[str, Any], *, zone: ZoneInfo = SHANGHAI) -> str:
    return _render_html(_driver_document(file, zone))


def render_driver_pdf(
    file: Mapping[str, Any], *, zone: ZoneInfo = SHANGHAI, font_path: Path
) -> bytes:
    return _render_pdf(_driver_document(file, zone), font_path)
