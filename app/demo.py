"""The whole demo, in the order its parts depend on: units, people and vehicles; fences; orders
and their trips; the completed trip's receipts. Idempotent: only what is missing is added."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from costs import demo as costs_demo
from dispatch import demo as dispatch_demo
from dispatch import equipping_demo
from dispatch.settings import DispatchSettings
from fleet import demo
from fleet.redis_client import RedisClient
from geofence import demo as geofence_demo

# The road network the demo's depots, places and fences lie on (central Xihu district, Hangzhou;
# its provenance and licence in the folder's README): package data, so an installed Fleet has it
# too. `fleet roads import` loads it before the seed (make run does).
ROADS = Path(__file__).resolve().parent / "demo_data" / "hangzhou-xihu-roads.osm.pbf"


def seed(*, session: Session, redis: RedisClient, zone_name: str, now: datetime) -> demo.SeedReport:
    """Seeds every part in the caller's transaction; the report counts all that was added."""
    report = demo.seed(session=session, today=now.astimezone(ZoneInfo(zone_name)).date())
    added = {"fences": geofence_demo.seed(session=session)}
    settings = DispatchSettings()
    added.update(
        dispatch_demo.seed(
            session=session, settings=settings, zone_name=zone_name, redis=redis, now=now
        )
    )
    added["equipping"] = equipping_demo.seed(session=session, zone_name=zone_name, now=now)
    added["costs"] = costs_demo.seed(
        session=session, settings=settings, zone_name=zone_name, now=now
    )
    for kind, count in added.items():
        if count:
            report.created[kind] += count
    return report
