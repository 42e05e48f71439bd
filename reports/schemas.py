"""The shapes of the reports, for the API's documentation. A dossier or a vehicle file is a
document the renderer draws as it comes, so the routes answer it as built (times as ISO-8601
strings) and these models describe it rather than validate it again."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ReviewStep(BaseModel):
    decision: str
    reason: str
    by: str
    at: str | None


class DossierAlert(BaseModel):
    id: int
    kind: str
    severity: str
    started_at: str | None
    ended_at: str | None
    measured: dict[str, Any]
    thresholds: dict[str, Any]
    review: str
    reviews: list[ReviewStep]


class Named(BaseModel):
    id: int
    name: str


class Requester(BaseModel):
    id: int
    username: str
    full_name: str


class DossierOrder(BaseModel):
    id: int
    status: str
    purpose: str
    passengers: int
    start_at: str
    end_at: str
    origin_name: str
    origin: list[float] = Field(description="[longitude, latitude].")
    destinations: list[dict[str, Any]] = Field(description="Each: name, lon, lat.")
    unit: Named
    requester: Requester
    emergency: bool
    out_of_region: bool
    overnight: bool
    approval: str
    notes: str
    created_at: str | None


class ApprovalStep(BaseModel):
    step: int
    unit_name: str
    reasons: list[str]
    approved: bool | None
    by: str | None
    at: str | None
    comment: str


class DossierAssignment(BaseModel):
    vehicle: dict[str, Any] = Field(description="id, plate, make_model, category, energy.")
    driver: dict[str, Any] = Field(description="id, name, phone.")
    from_: str = Field(alias="from")
    to: str
    reason: str
    assigned_by: str | None
    assigned_at: str | None
    route_source: str
    active: bool
    shared: list[dict[str, Any]] = Field(
        default_factory=list,
        description="A merged trip (合并用车): the orders it carries, each with order_id, purpose,"
        " unit_name, passengers and share (its part of the trip's costs); empty otherwise.",
    )
    share: float = Field(1.0, description="This order's part of the trip's costs (by passengers).")


class Route(BaseModel):
    planned: list[list[float]] | None = Field(description="The planned line, [lon, lat] pairs.")
    driven: list[list[list[float]]] = Field(description="Each trip's line, simplified.")


class DossierTrip(BaseModel):
    id: int
    start_at: str
    end_at: str
    distance_m: float
    duration_s: float
    max_speed_kmh: float | None


class Figures(BaseModel):
    planned_distance_m: float | None
    distance_m: float
    duration_s: float
    odometer_start_km: float | None
    odometer_end_km: float | None
    trips: list[DossierTrip]


class DossierCost(BaseModel):
    id: int
    kind: str
    at: str
    amount: float
    share: float
    allocated: float
    litres: float | None
    kwh: float | None
    station_name: str
    note: str


class DossierCosts(BaseModel):
    items: list[DossierCost]
    total: float


class AuditLine(BaseModel):
    id: int
    at: str
    actor: str
    action: str
    entity: str
    entity_id: str
    hash: str


class Verification(BaseModel):
    ok: bool
    checked: int = Field(description="Entries recomputed.")
    first_bad_id: int | None
    message: str
    since_checkpoint: dict[str, Any] | None = Field(
        description="The signed checkpoint the check started from (entry_id, at); null: the first"
        " entry."
    )


class DossierAudit(BaseModel):
    entries: list[AuditLine]
    verification: Verification


class DossierRating(BaseModel):
    stars: int = Field(description="1 to 5.")
    comment: str
    at: str


class Dossier(BaseModel):
    """Everything audit asks of one trip order."""

    generated_at: str
    order: DossierOrder
    approvals: list[ApprovalStep]
    assignment: DossierAssignment | None
    route: Route
    figures: Figures
    costs: DossierCosts
    alerts: list[DossierAlert]
    rating: DossierRating | None = Field(description="The requester's rating, once given.")
    audit: DossierAudit


class VehicleFile(BaseModel):
    """一车一档: a vehicle's whole life."""

    generated_at: str
    vehicle: dict[str, Any] = Field(
        description="The registry's record: plate, category, body, seats, energy, tank, battery,"
        " fuel and energy norms, make and model, fuel card, unit, depot, status, created_at,"
        " acquired_on, odometer_km, replaces_id (the disposed vehicle whose quota place it took)."
    )
    assignments: list[dict[str, Any]] = Field(
        description="Each: order_id (the lead order), order_ids (every order it carried: several"
        " for a merged trip), purpose, from, to, driver, status."
    )
    distance_by_month: list[dict[str, Any]]
    consumption: list[dict[str, Any]]
    costs: dict[str, Any] = Field(description="items, by_kind, total.")
    due: list[dict[str, Any]] = Field(description="Inspections, insurance, maintenance due.")
    alerts: list[dict[str, Any]]
    alert_outcomes: dict[str, dict[str, int]]
    status_changes: list[dict[str, Any]]


class DriverLicence(BaseModel):
    class_: str = Field(alias="class", description="The licence's class (准驾车型), as A1, C1.")
    covers: list[str] = Field(description="Every class it lets its holder drive, itself too.")
    expires_on: str | None
    state: str = Field(description="valid, expiring (within 30 days), expired or unknown.")
    days_left: int | None
    flagged: bool


class DriverRatings(BaseModel):
    count: int
    average: float | None
    items: list[dict[str, Any]] = Field(description="Each: order_id, purpose, stars, comment, at.")


class DriverFile(BaseModel):
    """A driver's file: their licence, assignments, use by month, alerts, ratings."""

    generated_at: str
    driver: dict[str, Any] = Field(
        description="The registry's record: id, name, phone, unit, active, created_at."
    )
    licence: DriverLicence
    assignments: list[dict[str, Any]] = Field(
        description="Each: order_id, purpose, from, to, vehicle (id, plate), status."
    )
    distance_by_month: list[dict[str, Any]] = Field(
        description="Each: month (local), distance_m, trips, hours driven."
    )
    alerts: list[DossierAlert] = Field(
        description="Raised on the vehicle they drove, within their assignments."
    )
    alert_outcomes: dict[str, dict[str, int]]
    ratings: DriverRatings


class StatisticsColumn(BaseModel):
    key: str
    zh: str
    en: str


class Statistics(BaseModel):
    name: str
    since: str
    until: str
    columns: list[StatisticsColumn]
    items: list[dict[str, Any]]
