"""Demo fences for the demo fleet, created idempotently (by name): the city as the permitted
region, each unit's depot, and a few places an official car has no business at, all on the demo's
road network in Xihu district (app/demo_data/hangzhou-xihu-roads.osm.pbf), so the simulated cars
pass them.

The places are approximate and for the demo only. When a road network of another area has been
imported instead, its area is a permitted region too, so the simulated cars are in a region and
the off-region rule is shown by leaving it, not by default.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from fleet.auth import Actor
from fleet.demo import UNITS
from fleet.models import OrgUnit
from geofence import service
from geofence.models import Fence
from geofence.schemas import FenceCreate

ROOT_UNIT = "GOV"
# (name, kind, GeoJSON geometry, radius_m, extra fields)
HANGZHOU = [[119.95, 30.10], [120.45, 30.10], [120.45, 30.45], [119.95, 30.45], [119.95, 30.10]]
DEPOT_AT = {name: lonlat for _, _, _, name, lonlat in UNITS}  # two units share one depot
DEPOTS: tuple[tuple[str, str, dict[str, Any], float | None, dict[str, Any]], ...] = tuple(
    (name, "depot", {"type": "Point", "coordinates": list(lonlat)}, 200, {})
    for name, lonlat in DEPOT_AT.items()
)
PLACES: tuple[tuple[str, str, dict[str, Any], float | None, dict[str, Any]], ...] = (
    (
        "杭州市域（演示）",
        "permitted_region",
        {"type": "Polygon", "coordinates": [HANGZHOU]},
        None,
        {},
    ),
    *DEPOTS,
    (
        "西溪湿地景区（演示）",
        "prohibited",
        {"type": "Point", "coordinates": [120.0740, 30.2625]},
        600,
        {"schedule": {"days": [1, 2, 3, 4, 5, 6, 7], "start": "00:00", "end": "24:00"}},
    ),
    (
        "私人会所（演示）",
        "prohibited",
        {"type": "Point", "coordinates": [120.0990, 30.3100]},
        300,
        {},
    ),
    (
        "学校路段限速（演示）",
        "custom",
        {"type": "Point", "coordinates": [120.1180, 30.2673]},
        300,
        {"speed_limit_kmh": 30},
    ),
)


def _road_area(session: Session) -> dict[str, Any] | None:
    """The imported road network's extent, when it lies outside the demo city."""
    row = session.execute(
        text(
            "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e)"
            " FROM (SELECT ST_Extent(geom) AS e FROM road) r WHERE e IS NOT NULL"
        )
    ).first()
    if row is None:
        return None
    x0, y0, x1, y1 = (float(v) for v in row)
    if (
        HANGZHOU[0][0] <= x0
        and x1 <= HANGZHOU[1][0]
        and HANGZHOU[0][1] <= y0
        and y1 <= HANGZHOU[2][1]
    ):
        return None
    pad = 0.02
    ring = [[x0 - pad, y0 - pad], [x1 + pad, y0 - pad], [x1 + pad, y1 + pad], [x0 - pad, y1 + pad]]
    return {"type": "Polygon", "coordinates": [[*ring, ring[0]]]}


def seed(*, session: Session) -> int:
    """Adds the demo fences that are missing; returns how many it added."""
    root = session.scalar(select(OrgUnit).where(OrgUnit.code == ROOT_UNIT))
    if root is None:
        return 0
    actor = Actor.system(root)
    have = set(session.scalars(select(Fence.name)))
    places = list(PLACES)
    road_area = _road_area(session)
    if road_area is not None:
        places.append(("演示路网区域", "permitted_region", road_area, None, {}))
    added = 0
    for name, kind, geometry, radius, extra in places:
        if name in have:
            continue
        service.create_fence(
            session=session,
            actor=actor,
            data=FenceCreate(name=name, kind=kind, geometry=geometry, radius_m=radius, **extra),
        )
        added += 1
    return added
