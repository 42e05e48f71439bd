"""The demo's equipping (配备更新): quotas for its units (one of them over its quota) and each
vehicle's purchase date and odometer, counted back from the seed's clock, so that the dashboard
shows the same vehicles due for renewal now, within 12 months, and by distance on any date.
Idempotent: only units without quotas get them, only vehicles without a purchase date get one."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from dispatch.equipping import add_months
from fleet import quota, registry
from fleet.auth import Actor
from fleet.models import OrgUnit, UnitQuota, Vehicle, VehicleCategory
from fleet.schemas import VehicleUpdate

G = VehicleCategory
# unit code -> quota per category; the police (GAJ) hold one enforcement car over theirs.
QUOTAS: dict[str, dict[VehicleCategory, int]] = {
    "CD": {G.GENERAL: 26, G.CONFIDENTIAL_COMMS: 4},
    "GAJ": {G.ENFORCEMENT: 6, G.SPECIAL: 1},
    "YJJ": {G.EMERGENCY: 5, G.SPECIAL: 1},
}
# By the vehicle's place in the registry, cycling: (years, days) since purchase, and km a day.
# The first is past 8 years (due now), the second due within 12 months, the fourth past the
# distance limit; the rest are younger.
AGES: tuple[tuple[int, int, float], ...] = (
    (8, 40, 50.0),
    (7, 200, 50.0),
    (2, 0, 60.0),
    (5, 100, 135.0),
    (3, 50, 55.0),
    (1, 10, 70.0),
    (6, 0, 45.0),
    (4, 120, 60.0),
    (0, 200, 80.0),
    (3, 300, 50.0),
)


def acquired(today: date, years: int, days: int) -> date:
    return add_months(today, -12 * years) - timedelta(days=days)


def seed(*, session: Session, zone_name: str, now: datetime) -> int:
    """Returns how many units and vehicles it changed."""
    units = {u.code: u for u in session.scalars(select(OrgUnit))}
    if "GOV" not in units:
        return 0
    system = Actor.system(units["GOV"])
    changed = 0
    with_quotas = set(session.scalars(select(UnitQuota.unit_id)))
    for code, quotas in QUOTAS.items():
        if code in units and units[code].id not in with_quotas:
            quota.set_quotas(session=session, actor=system, unit_id=units[code].id, quotas=quotas)
            changed += 1
    today = now.astimezone(ZoneInfo(zone_name)).date()
    vehicles = session.scalars(select(Vehicle).order_by(Vehicle.id)).all()
    for index, vehicle in enumerate(vehicles):
        if vehicle.acquired_on is not None:
            continue
        years, days, per_day = AGES[index % len(AGES)]
        bought = acquired(today, years, days)
        registry.update_vehicle(
            session=session,
            actor=system,
            vehicle_id=vehicle.id,
            data=VehicleUpdate.model_validate(
                {"acquired_on": bought, "odometer_km": round((today - bought).days * per_day, 1)}
            ),
            now=now,
        )
        changed += 1
    return changed
