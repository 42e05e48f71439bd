"""Request and response shapes of the geofence API."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StrictBool, StringConstraints, field_validator

from fleet.models import VehicleCategory
from fleet.schemas import OMITTED, Id, Strict
from geofence.models import FenceKind, Review
from geofence.settings import clock_seconds

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Clock = Annotated[str, StringConstraints(pattern=r"^\d{1,2}:\d{2}$")]


class ScheduleIn(Strict):
    days: list[Annotated[int, Field(ge=1, le=7)]] = Field(
        default_factory=lambda: [1, 2, 3, 4, 5, 6, 7], description="ISO weekdays, Monday 1."
    )
    start: Clock = Field("00:00", description="Local time the fence becomes active (HH:MM).")
    end: Clock = Field("24:00", description="Local time it stops (HH:MM; before start: overnight).")

    @field_validator("start", "end")
    @classmethod
    def _clock(cls, value: str) -> str:
        if value == "24:00":
            return value
        clock_seconds(value)
        return value

    @field_validator("days")
    @classmethod
    def _days(cls, value: list[int]) -> list[int]:
        if not value:
            raise ValueError("a schedule needs at least one day")
        return sorted(set(value))


class FenceCreate(Strict):
    name: Name
    kind: FenceKind
    geometry: dict[str, Any] = Field(
        description="GeoJSON Polygon or MultiPolygon; a Point with radius_m for a circle; a"
        " LineString with width_m for a corridor. WGS-84 [longitude, latitude]."
    )
    radius_m: float | None = Field(None, description="Circle radius, metres.")
    width_m: float | None = Field(None, description="Corridor width, metres (half each side).")
    schedule: ScheduleIn | None = None
    unit_ids: list[Id] = Field(
        default_factory=list,
        description="Units (with their sub-units) it applies to, within the owner's subtree; empty:"
        " the owner's unit and its sub-units (every unit for a root unit's fence).",
    )
    categories: list[VehicleCategory] = Field(
        default_factory=list, description="Vehicle categories it applies to; empty: all."
    )
    speed_limit_kmh: float | None = Field(None, gt=0, le=200, description="km/h inside it.")
    enabled: StrictBool = True
    note: str = Field("", max_length=2000)


class FenceUpdate(Strict):
    name: Annotated[Name, OMITTED]
    kind: Annotated[FenceKind, OMITTED]
    geometry: Annotated[dict[str, Any], OMITTED]
    radius_m: float | None = None
    width_m: float | None = None
    schedule: ScheduleIn | None = None
    unit_ids: Annotated[list[Id], OMITTED]
    categories: Annotated[list[VehicleCategory], OMITTED]
    speed_limit_kmh: float | None = Field(None, gt=0, le=200)
    enabled: Annotated[StrictBool, OMITTED]
    note: Annotated[str, Field(default=None, max_length=2000)]


class CalendarDayIn(Strict):
    working: StrictBool
    note: str = Field("", max_length=200)


class CalendarDayOut(BaseModel):
    day: date
    working: bool
    note: str
    source: str


class CalendarYearOut(BaseModel):
    year: int
    covered: bool = Field(description="Whether every day of the year is in the calendar.")
    missing_days: int
    days: list[CalendarDayOut]


class CalendarWarningOut(BaseModel):
    code: Literal["calendar_year_missing"]
    year: int
    starts_on: date = Field(description="The year's first day.")
    days_left: int = Field(description="Days from today until it starts; 0 once it has.")
    missing_days: int = Field(description="Dates of the year the calendar does not hold.")
    message: str


class CalendarStatusOut(BaseModel):
    today: date = Field(description="Today in the display zone.")
    covered_through: int | None = Field(
        description="The last year held whole, counting on from this one; null if this one is not."
    )
    warnings: list[CalendarWarningOut] = Field(
        description="A year the calendar lacks that has begun or begins within"
        " FLEET_CALENDAR_WARNING_DAYS."
    )


class NoticeIn(Strict):
    year: int = Field(ge=1900, le=2200, description="The year the notice arranges.")
    text: str = Field(
        min_length=1,
        max_length=20_000,
        description="The notice as published (国务院办公厅关于 N 年部分节假日安排的通知),"
        " pasted whole or only its holiday lines.",
    )


class NoticeHolidayOut(BaseModel):
    name: str = Field(description="As the notice writes it (国庆节、中秋节).")
    line: int = Field(description="Its line in the text.")
    days_off: list[date]
    working_days: list[date] = Field(description="Weekend days worked instead (调休上班).")


class NoticeDayOut(BaseModel):
    day: date
    working: bool
    note: str
    change: Literal["new", "changed", "same"] = Field(
        description="Against what the calendar holds for the date now."
    )
    before: CalendarDayOut | None = Field(description="What it holds now, for a changed date.")


class NoticeSummaryOut(BaseModel):
    days_off: int
    working_days: int
    holidays: int = Field(description="Days off the notice names (weekends not counted).")
    adjusted_working_days: int
    new: int
    changed: int
    same: int


class NoticeRemarkOut(BaseModel):
    code: Literal[
        "outside_year",
        "working_weekday",
        "missing_holiday",
        "ignored_sentence",
        "count_differs",
        "listed_twice",
    ]
    message: str
    line: int | None
    day: date | None
    name: str | None = Field(description="The holiday it is about (missing_holiday).")


class NoticeLineOut(BaseModel):
    line: int
    text: str


class NoticePreviewOut(BaseModel):
    year: int
    holidays: list[NoticeHolidayOut]
    days: list[NoticeDayOut] = Field(description="Every date of the year, as it would be saved.")
    summary: NoticeSummaryOut
    warnings: list[NoticeRemarkOut] = Field(description="Odd but possible: worth a look.")
    ignored: list[NoticeLineOut] = Field(
        description="Lines naming no holiday (title, salutation, preamble, signature)."
    )


class NoticeSavedOut(BaseModel):
    year: int
    created: int = Field(description="Dates the calendar did not hold.")
    updated: int = Field(description="Dates changed (each audited).")
    unchanged: int
    covered: bool


class WorkingHoursOut(BaseModel):
    unit_id: int
    start: str = Field(description="Local time the working day starts (HH:MM).")
    end: str = Field(description="Local time it ends (HH:MM).")
    inherited: bool = Field(description="True when the unit has no hours of its own.")


class FenceProperties(BaseModel):
    id: int
    name: str
    kind: FenceKind
    shape: str = Field(description="polygon, circle or corridor.")
    radius_m: float | None
    width_m: float | None
    schedule: dict[str, Any] | None
    unit_ids: list[int]
    categories: list[str]
    speed_limit_kmh: float | None
    enabled: bool
    owner_unit_id: int
    note: str
    updated_at: datetime
    area: dict[str, Any] | None = Field(
        None, description="The area the fence covers, as GeoJSON (a circle or corridor buffered)."
    )


class FenceFeature(BaseModel):
    """A fence as a GeoJSON Feature: the geometry as drawn, the rest in its properties."""

    type: Literal["Feature"] = "Feature"
    id: int
    geometry: dict[str, Any]
    properties: FenceProperties


class FenceCollection(BaseModel):
    type: Literal["FeatureCollection"] = "FeatureCollection"
    features: list[FenceFeature]


class FencesImported(BaseModel):
    imported: int
    ids: list[int]


class WorkingHoursIn(Strict):
    start: Clock = Field(description="Local time the working day starts (HH:MM).")
    end: Clock = Field(description="Local time it ends (HH:MM), after the start.")

    @field_validator("start", "end")
    @classmethod
    def _clock(cls, value: str) -> str:
        clock_seconds(value)
        return value


class ReviewIn(Strict):
    decision: Review = Field(description="confirmed, dismissed (reason required) or escalated.")
    reason: str = Field("", max_length=4000)


class AlertOut(BaseModel):
    id: int
    kind: str
    key: str
    severity: str
    vehicle_id: int
    plate: str
    unit_id: int
    driver_id: int | None
    order_id: int | None
    fence_id: int | None
    started_at: datetime
    last_at: datetime
    ended_at: datetime | None
    open: bool
    review: Review
    lat: float | None
    lon: float | None
    measured: dict[str, Any]
    thresholds: dict[str, Any]


class ReviewOut(BaseModel):
    decision: Review
    reason: str
    by: str
    at: datetime


class EvidencePoint(BaseModel):
    fix_time: datetime
    lon: float
    lat: float
    speed_kmh: float | None
    ignition: bool | None
    flagged: bool = Field(description="Whether the fix falls inside the flagged episode.")


class Evidence(BaseModel):
    track: dict[str, Any] | None = Field(description="GeoJSON LineString around the episode.")
    flagged: dict[str, Any] | None = Field(description="GeoJSON LineString of the episode.")
    points: list[EvidencePoint]
    fence: FenceFeature | None
    measured: dict[str, Any]
    thresholds: dict[str, Any]


class AlertDetail(AlertOut):
    """An alert with its evidence and the history of its review."""

    evidence: Evidence
    reviews: list[ReviewOut]
