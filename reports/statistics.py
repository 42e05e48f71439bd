"""Statistics for dashboards and exports: use per vehicle and per unit, cost per km,
consumption against norm, alerts per unit and kind with their confirmation rate, the new-energy
share of use, and per driver their assignments, driving and the requesters' ratings. Computed in
PostgreSQL over a period; exported as JSON, CSV or XLSX.

A trip counts in the period it starts in; a vehicle is "used" on a local day a trip of it starts.
An assignment and a rating count in the period their order starts in; a rating counts for the
driver it names and for that driver's unit (the unit that served the trip).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.orm import Session

from costs import checks
from fleet.auth import Actor, require
from fleet.errors import Invalid
from fleet.models import Energy


@dataclass(frozen=True)
class Column:
    key: str
    zh: str
    en: str


VEHICLE_USE = text(
    """
    WITH scope AS (SELECT id FROM org_unit WHERE path LIKE :path || '%'),
    t AS (
      SELECT vehicle_id, count(*) AS trips, sum(distance_m) AS distance_m,
             sum(duration_s) AS duration_s,
             count(DISTINCT (start_at AT TIME ZONE :zone)::date) AS days_used
      FROM trip WHERE start_at >= :since AND start_at < :until GROUP BY vehicle_id),
    c AS (
      SELECT vehicle_id, sum(amount) AS cost, sum(litres) AS litres, sum(kwh) AS kwh
      FROM cost_record WHERE at >= :since AND at < :until GROUP BY vehicle_id)
    SELECT v.id AS vehicle_id, v.plate, u.name AS unit, v.energy,
           v.energy IN ('phev', 'bev') AS new_energy,
           coalesce(t.days_used, 0) AS days_used, coalesce(t.trips, 0) AS trips,
           coalesce(t.distance_m, 0) / 1000.0 AS distance_km,
           coalesce(t.duration_s, 0) / 3600.0 AS hours,
           coalesce(c.cost, 0) AS cost, coalesce(c.litres, 0) AS litres,
           coalesce(c.kwh, 0) AS kwh, v.fuel_norm_l_100km AS norm_l_100km,
           v.energy_norm_kwh_100km AS norm_kwh_100km
    FROM vehicle v JOIN org_unit u ON u.id = v.unit_id
    LEFT JOIN t ON t.vehicle_id = v.id LEFT JOIN c ON c.vehicle_id = v.id
    WHERE v.unit_id IN (SELECT id FROM scope)
    ORDER BY u.name, v.plate
    """
)

DRIVERS = text(
    """
    WITH scope AS (SELECT id FROM org_unit WHERE path LIKE :path || '%'),
    held AS (
      SELECT a.driver_id, count(*) AS assignments
      FROM assignment a JOIN trip_order o ON o.id = a.order_id
      WHERE a.active AND o.start_at >= :since AND o.start_at < :until GROUP BY a.driver_id),
    t AS (
      SELECT a.driver_id, sum(t.distance_m) AS distance_m, sum(t.duration_s) AS duration_s
      FROM assignment a JOIN trip t ON t.vehicle_id = a.vehicle_id
           AND t.start_at < upper(a.period) AND t.end_at > lower(a.period)
      WHERE a.active AND t.start_at >= :since AND t.start_at < :until GROUP BY a.driver_id),
    r AS (
      SELECT r.driver_id, count(*) AS ratings, avg(r.stars) AS average_rating
      FROM trip_rating r JOIN trip_order o ON o.id = r.order_id
      WHERE o.start_at >= :since AND o.start_at < :until GROUP BY r.driver_id)
    SELECT d.id AS driver_id, d.name, u.name AS unit, d.licence_class,
           coalesce(held.assignments, 0) AS assignments,
           coalesce(t.distance_m, 0) / 1000.0 AS distance_km,
           coalesce(t.duration_s, 0) / 3600.0 AS hours,
           coalesce(r.ratings, 0) AS ratings, r.average_rating
    FROM driver d JOIN org_unit u ON u.id = d.unit_id
    LEFT JOIN held ON held.driver_id = d.id LEFT JOIN t ON t.driver_id = d.id
    LEFT JOIN r ON r.driver_id = d.id
    WHERE d.unit_id IN (SELECT id FROM scope)
    ORDER BY u.name, d.name, d.id
    """
)

UNIT_RATINGS = text(
    """
    SELECT u.name AS unit, count(*) AS ratings, avg(r.stars) AS average_rating
    FROM trip_rating r JOIN driver d ON d.id = r.driver_id JOIN org_unit u ON u.id = d.unit_id
    JOIN trip_order o ON o.id = r.order_id
    WHERE u.path LIKE :path || '%' AND o.start_at >= :since AND o.start_at < :until
    GROUP BY u.name
    """
)

ALERTS = text(
    """
    SELECT u.name AS unit, a.kind, count(*) AS total,
           count(*) FILTER (WHERE a.review = 'confirmed') AS confirmed,
           count(*) FILTER (WHERE a.review = 'dismissed') AS dismissed,
           count(*) FILTER (WHERE a.review = 'escalated') AS escalated,
           count(*) FILTER (WHERE a.review = 'pending') AS pending
    FROM alert a JOIN org_unit u ON u.id = a.unit_id
    WHERE u.path LIKE :path || '%' AND a.started_at >= :since AND a.started_at < :until
    GROUP BY u.name, a.kind ORDER BY u.name, a.kind
    """
)

COSTS = text(
    """
    SELECT u.name AS unit, c.kind, count(*) AS records, sum(c.amount) AS amount,
           coalesce(sum(c.litres), 0) AS litres, coalesce(sum(c.kwh), 0) AS kwh
    FROM cost_record c JOIN org_unit u ON u.id = c.unit_id
    WHERE u.path LIKE :path || '%' AND c.at >= :since AND c.at < :until
    GROUP BY u.name, c.kind ORDER BY u.name, c.kind
    """
)


def _ratio(numerator: float, denominator: float, scale: float = 1.0) -> float | None:
    return None if denominator <= 0 else round(numerator / denominator * scale, 4)


def vehicles(
    session: Session, path: str, since: datetime, until: datetime, zone: ZoneInfo
) -> list[dict[str, Any]]:
    rows = []
    for r in session.execute(
        VEHICLE_USE, {"path": path, "since": since, "until": until, "zone": zone.key}
    ).mappings():
        distance = float(r["distance_km"])
        litres = float(r["litres"])
        kwh = float(r["kwh"])
        per_100 = _ratio(litres, distance, 100) if litres > 0 else None
        # Judged as the month's consumption check judges it: an electric car's charging against
        # its energy norm, a plug-in hybrid's charging and fills together.
        over = checks.over_norm_pct(
            energy=Energy(r["energy"]),
            litres=litres,
            kwh=kwh,
            distance_km=distance,
            norm_l_100km=r["norm_l_100km"],
            norm_kwh_100km=r["norm_kwh_100km"],
        )
        rows.append(
            {
                "vehicle_id": r["vehicle_id"],
                "plate": r["plate"],
                "unit": r["unit"],
                "energy": r["energy"],
                "new_energy": bool(r["new_energy"]),
                "days_used": int(r["days_used"]),
                "trips": int(r["trips"]),
                "distance_km": round(distance, 3),
                "hours": round(float(r["hours"]), 3),
                "cost": float(r["cost"]),
                "cost_per_km": _ratio(float(r["cost"]), distance),
                "litres": round(litres, 2),
                "kwh": round(kwh, 2),
                "l_100km": per_100,
                "kwh_100km": _ratio(kwh, distance, 100) if kwh > 0 else None,
                "norm_l_100km": r["norm_l_100km"],
                "norm_kwh_100km": r["norm_kwh_100km"],
                "over_norm_pct": None if over is None else round(over, 2),
            }
        )
    return rows


def _average(value: Any) -> float | None:
    return None if value is None else round(float(value), 2)


def drivers(
    session: Session, path: str, since: datetime, until: datetime, zone: ZoneInfo
) -> list[dict[str, Any]]:
    del zone
    return [
        {
            "driver_id": r["driver_id"],
            "name": r["name"],
            "unit": r["unit"],
            "licence_class": r["licence_class"],
            "assignments": int(r["assignments"]),
            "distance_km": round(float(r["distance_km"]), 3),
            "hours": round(float(r["hours"]), 3),
            "ratings": int(r["ratings"]),
            "average_rating": _average(r["average_rating"]),
        }
        for r in session.execute(DRIVERS, {"path": path, "since": since, "until": until}).mappings()
    ]


def _unit_row(name: str) -> dict[str, Any]:
    return {
        "unit": name,
        "vehicles": 0,
        "vehicles_used": 0,
        "vehicle_days": 0,
        "trips": 0,
        "distance_km": 0.0,
        "hours": 0.0,
        "cost": 0.0,
        "new_energy_km": 0.0,
        "ratings": 0,
        "average_rating": None,
    }


def units(
    session: Session, path: str, since: datetime, until: datetime, zone: ZoneInfo
) -> list[dict[str, Any]]:
    grouped: dict[str, dict[str, Any]] = {}
    for v in vehicles(session, path, since, until, zone):
        unit = grouped.setdefault(v["unit"], _unit_row(v["unit"]))
        unit["vehicles"] += 1
        unit["vehicles_used"] += v["trips"] > 0
        unit["vehicle_days"] += v["days_used"]
        unit["trips"] += v["trips"]
        unit["distance_km"] += v["distance_km"]
        unit["hours"] += v["hours"]
        unit["cost"] += v["cost"]
        if v["new_energy"]:
            unit["new_energy_km"] += v["distance_km"]
    for r in session.execute(
        UNIT_RATINGS, {"path": path, "since": since, "until": until}
    ).mappings():
        unit = grouped.setdefault(r["unit"], _unit_row(r["unit"]))
        unit["ratings"] = int(r["ratings"])
        unit["average_rating"] = _average(r["average_rating"])
    rows = []
    for unit in grouped.values():
        unit["distance_km"] = round(unit["distance_km"], 3)
        unit["hours"] = round(unit["hours"], 3)
        unit["cost"] = round(unit["cost"], 2)
        unit["cost_per_km"] = _ratio(unit["cost"], unit["distance_km"])
        unit["new_energy_share"] = _ratio(unit["new_energy_km"], unit["distance_km"])
        unit["new_energy_km"] = round(unit["new_energy_km"], 3)
        rows.append(unit)
    return rows


def alerts(
    session: Session, path: str, since: datetime, until: datetime, zone: ZoneInfo
) -> list[dict[str, Any]]:
    """Confirmation rate: confirmed of those decided (confirmed or dismissed)."""
    del zone
    return [
        {
            **dict(r),
            "confirmation_rate": _ratio(r["confirmed"], r["confirmed"] + r["dismissed"]),
        }
        for r in session.execute(ALERTS, {"path": path, "since": since, "until": until}).mappings()
    ]


def costs(
    session: Session, path: str, since: datetime, until: datetime, zone: ZoneInfo
) -> list[dict[str, Any]]:
    del zone
    return [
        {
            "unit": r["unit"],
            "kind": r["kind"],
            "records": int(r["records"]),
            "amount": float(r["amount"]),
            "litres": round(float(r["litres"]), 2),
            "kwh": round(float(r["kwh"]), 2),
        }
        for r in session.execute(COSTS, {"path": path, "since": since, "until": until}).mappings()
    ]


Report = Callable[[Session, str, datetime, datetime, ZoneInfo], list[dict[str, Any]]]

REPORTS: dict[str, tuple[Report, tuple[Column, ...]]] = {
    "vehicles": (
        vehicles,
        (
            Column("plate", "车牌", "Plate"),
            Column("unit", "单位", "Unit"),
            Column("energy", "能源", "Energy"),
            Column("days_used", "使用天数", "Days used"),
            Column("trips", "行程数", "Trips"),
            Column("distance_km", "里程(km)", "Distance (km)"),
            Column("hours", "时长(h)", "Hours"),
            Column("cost", "费用(元)", "Cost (CNY)"),
            Column("cost_per_km", "每公里费用", "Cost per km"),
            Column("litres", "加油(L)", "Fuel (L)"),
            Column("kwh", "充电(kWh)", "Charging (kWh)"),
            Column("l_100km", "油耗(L/100km)", "L/100 km"),
            Column("kwh_100km", "电耗(kWh/100km)", "kWh/100 km"),
            Column("norm_l_100km", "定额(L/100km)", "Norm L/100 km"),
            Column("norm_kwh_100km", "电耗定额(kWh/100km)", "Norm kWh/100 km"),
            Column("over_norm_pct", "超定额(%)", "Over norm (%)"),
        ),
    ),
    "units": (
        units,
        (
            Column("unit", "单位", "Unit"),
            Column("vehicles", "车辆数", "Vehicles"),
            Column("vehicles_used", "使用车辆", "Vehicles used"),
            Column("vehicle_days", "车日", "Vehicle-days"),
            Column("trips", "行程数", "Trips"),
            Column("distance_km", "里程(km)", "Distance (km)"),
            Column("hours", "时长(h)", "Hours"),
            Column("cost", "费用(元)", "Cost (CNY)"),
            Column("cost_per_km", "每公里费用", "Cost per km"),
            Column("new_energy_km", "新能源里程(km)", "New-energy km"),
            Column("new_energy_share", "新能源占比", "New-energy share"),
            Column("ratings", "评价数", "Ratings"),
            Column("average_rating", "平均评分", "Average rating"),
        ),
    ),
    "drivers": (
        drivers,
        (
            Column("name", "驾驶员", "Driver"),
            Column("unit", "单位", "Unit"),
            Column("licence_class", "准驾车型", "Licence class"),
            Column("assignments", "派车数", "Assignments"),
            Column("distance_km", "里程(km)", "Distance (km)"),
            Column("hours", "时长(h)", "Hours"),
            Column("ratings", "评价数", "Ratings"),
            Column("average_rating", "平均评分", "Average rating"),
        ),
    ),
    "alerts": (
        alerts,
        (
            Column("unit", "单位", "Unit"),
            Column("kind", "类型", "Kind"),
            Column("total", "总数", "Total"),
            Column("confirmed", "属实", "Confirmed"),
            Column("dismissed", "排除", "Dismissed"),
            Column("escalated", "上报", "Escalated"),
            Column("pending", "待审", "Pending"),
            Column("confirmation_rate", "属实率", "Confirmation rate"),
        ),
    ),
    "costs": (
        costs,
        (
            Column("unit", "单位", "Unit"),
            Column("kind", "类型", "Kind"),
            Column("records", "笔数", "Records"),
            Column("amount", "金额(元)", "Amount (CNY)"),
            Column("litres", "加油(L)", "Fuel (L)"),
            Column("kwh", "充电(kWh)", "Charging (kWh)"),
        ),
    ),
}


# A request covers at most a year (a leap year's worth): at province size a longer one scans
# billions of positions, and reports are read per month, quarter or year.
MAX_PERIOD = timedelta(days=366)


def report(
    *,
    session: Session,
    actor: Actor,
    name: str,
    since: datetime,
    until: datetime,
    zone: ZoneInfo,
) -> tuple[list[dict[str, Any]], tuple[Column, ...]]:
    require(actor, "report", "read")
    if name not in REPORTS:
        raise Invalid(f"the reports are {', '.join(REPORTS)}", field="name")
    if since.tzinfo is None or until.tzinfo is None:
        raise Invalid("since and until need a time zone", field="since")
    if until <= since:
        raise Invalid("until must be after since", field="until")
    if until - since > MAX_PERIOD:
        raise Invalid(
            f"a period is at most {MAX_PERIOD.days} days a request; ask for each year in turn",
            field="until",
        )
    build, columns = REPORTS[name]
    return build(session, actor.unit_path, since, until, zone), columns


def to_csv(rows: Sequence[dict[str, Any]], columns: Sequence[Column]) -> bytes:
    """UTF-8 with a byte-order mark: Excel on Chinese Windows then opens it correctly."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([c.key for c in columns])
    for row in rows:
        writer.writerow(["" if row.get(c.key) is None else row.get(c.key) for c in columns])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def to_xlsx(rows: Sequence[dict[str, Any]], columns: Sequence[Column], title: str) -> bytes:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = title[:31]
    sheet.append([f"{c.zh} {c.en}" for c in columns])
    for row in rows:
        sheet.append([row.get(c.key) for c in columns])
    for index, column in enumerate(columns, start=1):
        letter = sheet.cell(row=1, column=index).column_letter
        sheet.column_dimensions[letter].width = max(12, len(column.en) + 4)
    sheet.freeze_panes = "A2"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
