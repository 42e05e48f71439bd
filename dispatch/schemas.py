"""Request and response shapes of the dispatch API (small: requesters use phones)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
    field_validator,
)

from dispatch.approval import Condition
from dispatch.equipping import DisposalMethod, RequestKind, RequestStatus
from dispatch.orders import OrderStatus
from fleet.licences import LicenceState
from fleet.models import BodyClass, Energy, VehicleCategory
from fleet.schemas import Day, Id, Moment, Strict

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


def _point(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict) or value.get("type") != "Point":
        raise ValueError("expected a GeoJSON Point")
    coordinates = value.get("coordinates")
    if (
        not isinstance(coordinates, list | tuple)
        or len(coordinates) != 2
        or not all(isinstance(c, int | float) and not isinstance(c, bool) for c in coordinates)
    ):
        raise ValueError("a Point's coordinates are [longitude, latitude]")
    lon, lat = float(coordinates[0]), float(coordinates[1])
    if not (-180 <= lon <= 180 and -90 <= lat <= 90):
        raise ValueError(f"[{lon}, {lat}] is not a longitude and latitude on Earth")
    return {"type": "Point", "coordinates": [lon, lat]}


class Destination(Strict):
    point: dict[str, Any]
    name: Name

    _check_point = field_validator("point")(classmethod(lambda cls, v: _point(v)))


class OrderCreate(Strict):
    purpose: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
    passengers: int = Field(ge=1, le=60, description="People travelling, the driver not counted.")
    start_at: Moment = Field(description="Start of the window, ISO-8601 with a zone.")
    end_at: Moment = Field(description="End of the window, ISO-8601 with a zone.")
    origin: dict[str, Any] = Field(description="GeoJSON Point, WGS-84.")
    origin_name: Name
    destinations: list[Destination] = Field(min_length=1)
    category: VehicleCategory | None = None
    body_class: BodyClass | None = None
    out_of_region: StrictBool = False
    overnight: StrictBool = False
    emergency: StrictBool = Field(
        False, description="May be assigned before approval; the approval is then due after."
    )
    notes: str = Field("", max_length=2000)

    _check_origin = field_validator("origin")(classmethod(lambda cls, v: _point(v)))

    @field_validator("start_at", "end_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("give the time zone (e.g. 2026-11-24T09:00:00+08:00)")
        return value


class Comment(Strict):
    comment: str = Field("", max_length=2000)


class Reading(Strict):
    odometer_km: float | None = Field(
        None, ge=0, le=10_000_000, description="The dashboard's odometer, km (optional)."
    )


class AssignIn(Strict):
    vehicle_id: Id
    driver_id: Id
    reason: str = Field("", max_length=2000, description="Why, when overriding the top suggestion.")


class MergeIn(Strict):
    order_ids: list[Id] = Field(
        min_length=2, max_length=8, description="The approved orders one car is to carry."
    )
    vehicle_id: Id
    driver_id: Id
    reason: str = Field("", max_length=2000, description="Why (optional).")


class RatingIn(Strict):
    stars: int = Field(ge=1, le=5, description="1 (poor) to 5 (excellent) stars.")
    comment: str = Field("", max_length=500, description="Optional words for the pool.")


class RuleIn(Strict):
    unit_id: Id
    condition: Condition
    param: float | None = Field(None, ge=0, description="Days or passengers, for those conditions.")
    level: int = Field(ge=0, le=10, description="0: the order's own unit, 1: its parent, ...")
    name: str = Field("", max_length=200)


# ---- responses ------------------------------------------------------------------------------


class PointOut(BaseModel):
    type: Literal["Point"] = "Point"
    coordinates: list[float] = Field(description="[longitude, latitude], WGS-84.")


class DestinationOut(BaseModel):
    point: PointOut
    name: str


class DecisionOut(BaseModel):
    approved: bool
    comment: str
    by: str
    at: datetime


class AssignmentOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    vehicle_id: int
    driver_id: int
    from_: datetime = Field(alias="from", description="The hold's start (the window with slack).")
    to: datetime
    reason: str
    route: dict[str, Any] | None = Field(description="GeoJSON LineString of the planned route.")
    route_source: str = Field(description="roads or straight.")
    id: int = Field(description="The assignment (a merged trip is un-merged by it).")
    order_ids: list[int] = Field(
        description="The orders it carries: this one alone, or the orders of a merged trip."
    )
    passengers: int = Field(description="The passengers of all the orders it carries.")
    share: float = Field(
        description="This order's part of the trip's costs: its passengers over all of them."
    )


class OrderTripOut(BaseModel):
    id: int
    start_at: datetime
    end_at: datetime
    distance_m: float
    duration_s: float


class ActualOut(BaseModel):
    distance_m: float
    duration_s: float


class RatingOut(BaseModel):
    """The requester's rating of the completed trip (用车评价)."""

    model_config = ConfigDict(from_attributes=True)

    order_id: int
    driver_id: int
    stars: int
    comment: str
    at: datetime


class OrderOut(BaseModel):
    """A trip order with its decisions, its assignment and the trips driven under it."""

    id: int
    status: OrderStatus
    purpose: str
    passengers: int
    start_at: datetime
    end_at: datetime
    origin: PointOut
    origin_name: str
    destinations: list[DestinationOut]
    category: VehicleCategory | None
    body_class: BodyClass | None
    out_of_region: bool
    overnight: bool
    notes: str
    requester_id: int
    unit_id: int
    approval_steps: list[dict[str, Any]] = Field(
        description="The chain: each step's level, deciding unit and the reasons it is there."
    )
    approvals_done: int
    approval: str
    emergency: bool
    odometer_start_km: float | None
    odometer_end_km: float | None
    updated_at: datetime
    decisions: list[DecisionOut]
    assignment: AssignmentOut | None
    trips: list[OrderTripOut]
    actual: ActualOut | None = Field(None, description="Distance and time driven, once assigned.")
    rating: RatingOut | None = Field(None, description="The requester's rating, once given.")


class Orders(BaseModel):
    items: list[OrderOut]


class MergeOut(BaseModel):
    assignment_id: int
    items: list[OrderOut] = Field(description="The orders the trip carries, as each now shows.")


class PlaceOut(BaseModel):
    name: str
    kind: str = Field(description="used (a recent destination of the unit) or depot.")
    uses: int
    point: PointOut


class Places(BaseModel):
    items: list[PlaceOut]


class RuleOut(BaseModel):
    id: int
    unit_id: int
    condition: str
    param: float | None
    level: int
    name: str


class Rules(BaseModel):
    items: list[RuleOut]


class CandidateOut(BaseModel):
    vehicle_id: int
    plate: str
    seats: int
    cost: float
    parts: dict[str, float] = Field(description="The cost's parts (distance or time, size...).")


class ExcludedOut(BaseModel):
    vehicle_id: int
    plate: str
    reason: str


class DriverChoice(BaseModel):
    id: int
    name: str
    licence_class: str
    licence_expires_on: date | None
    licence_state: LicenceState = Field(
        description="valid; expiring (within 30 days); expired; unknown (no expiry recorded)."
    )
    licence_days_left: int | None = Field(description="Days until the licence expires, local.")


class MergeOption(BaseModel):
    order_id: int
    vehicle_id: int | None
    spare_seats: int | None = None
    together: int | None = None
    apart_km: float


class Suggestions(BaseModel):
    order_id: int
    status: OrderStatus
    merge: list[MergeOption]
    candidates: list[CandidateOut]
    excluded: list[ExcludedOut]
    drivers: list[DriverChoice]


class PlanPair(BaseModel):
    order_id: int
    vehicle_id: int
    plate: str
    driver_id: int | None
    cost: float


class PlanOut(BaseModel):
    pairs: list[PlanPair]
    unserved: list[int]
    total_cost: float
    greedy_total_cost: float
    greedy_unserved: list[int] = []


# ---- equipping and renewal (配备更新) -----------------------------------------------------------

Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]


class QuotaLine(BaseModel):
    category: VehicleCategory
    quota: int | None = Field(description="Vehicles the unit may hold; null: not limited.")
    held: int = Field(description="Vehicles of the unit in the category, not disposed of.")
    free: int | None = Field(description="Places free; null where not limited.")
    over: bool


class UnitQuotaOut(BaseModel):
    unit_id: int
    unit_code: str
    unit_name: str
    categories: list[QuotaLine]
    quota: int | None = Field(description="The unit's quotas added up; null: none set.")
    held: int
    over: bool = Field(description="Over its quota in at least one category.")


class QuotaTotal(BaseModel):
    quota: int
    held: int
    over_units: int


class QuotaSummary(BaseModel):
    units: list[UnitQuotaOut]
    total: QuotaTotal


class QuotasIn(Strict):
    quotas: dict[VehicleCategory, Annotated[int, Field(ge=0, le=10_000)] | None] = Field(
        description="Quota per category; null removes the limit. Categories left out stay."
    )


class QuotasOut(BaseModel):
    unit_id: int
    quotas: dict[str, int]


class ReallocateIn(Strict):
    unit_id: Id = Field(description="The receiving unit.")
    reason: Reason


class RenewalDue(BaseModel):
    vehicle_id: int
    plate: str
    unit_id: int
    unit_name: str
    category: VehicleCategory
    energy: Energy
    make_model: str
    acquired_on: date | None
    age_years: float | None
    distance_km: float | None
    due_on: date
    age_due_on: date | None
    distance_due_on: date | None = Field(
        description="Past the distance limit, or when the average daily distance since purchase"
        " carries it there."
    )
    reasons: list[Literal["age", "distance"]]
    request_id: int | None = Field(description="Its open renewal or disposal request, if any.")
    request_status: RequestStatus | None


class Renewals(BaseModel):
    today: date
    horizon: date
    age_years: int
    distance_km: float
    due_now: list[RenewalDue]
    due_within_12_months: list[RenewalDue]


class IdleVehicle(BaseModel):
    vehicle_id: int
    plate: str
    unit_id: int
    unit_name: str
    category: VehicleCategory
    days_used: int


class IdleVehicles(BaseModel):
    month: str = Field(description="YYYY-MM, in the display zone.")
    min_days: int
    items: list[IdleVehicle]


class PurchaseYear(BaseModel):
    year: int
    bought: int
    new_energy: int
    share: float = Field(description="New-energy vehicles of those bought, 0..1.")


class Purchases(BaseModel):
    items: list[PurchaseYear]


class RenewalRequestIn(Strict):
    vehicle_id: Id
    kind: RequestKind
    reason: Reason


class DisposalIn(Strict):
    method: DisposalMethod = Field(description="auction 拍卖, scrap 报废, transfer 调拨.")
    disposed_on: Day
    receiver: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)
    ] = Field(description="The buyer, the scrapyard, or the unit receiving the vehicle.")


class RenewalRequestOut(BaseModel):
    id: int
    vehicle_id: int
    plate: str
    category: VehicleCategory | None
    unit_id: int
    unit_name: str
    kind: RequestKind
    reason: str
    requester_id: int | None
    status: RequestStatus
    approval_steps: list[dict[str, Any]]
    approvals_done: int
    decisions: list[dict[str, Any]]
    disposal_method: DisposalMethod | None
    disposed_on: date | None
    receiver: str
    replacement_id: int | None = Field(description="The vehicle registered on its place.")
    created_at: datetime
    updated_at: datetime
