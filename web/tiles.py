"""Vector tiles made by PostGIS (`ST_AsMVT`) from the app's own data: the imported roads, the
fences the caller may see, and the depots of the caller's vehicles. The pages' map needs nothing
from outside the machine.

Each tile is one query with three layers (`roads`, `fences`, `depots`), in Web Mercator, extent
4096. Small zooms carry only the major roads.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session

from fleet.auth import Actor
from fleet.errors import Invalid

MAX_ZOOM = 22
# Zooms below this draw only these classes (a city's residential streets at z8 are noise).
DETAIL_ZOOM = 12
MAJOR = ["motorway", "motorway_link", "trunk", "trunk_link", "primary", "primary_link",
         "secondary", "secondary_link"]  # fmt: skip

TILE = text(
    """
    WITH bounds AS (
      SELECT ST_TileEnvelope(:z, :x, :y) AS merc,
             ST_Transform(ST_TileEnvelope(:z, :x, :y, margin => 0.015625), 4326) AS wgs
    ),
    scope AS (SELECT id, path FROM org_unit WHERE path LIKE :path || '%'),
    roads AS (
      SELECT ST_AsMVTGeom(ST_Transform(r.geom, 3857), b.merc, 4096, 64, true) AS geom,
             r.name, r.highway
      FROM road r, bounds b
      WHERE r.geom && b.wgs AND (:z >= :detail OR r.highway = ANY(:major))
    ),
    fences AS (
      SELECT ST_AsMVTGeom(ST_Transform(f.area, 3857), b.merc, 4096, 64, true) AS geom,
             f.id, f.name, f.kind, f.enabled
      FROM fence f JOIN org_unit o ON o.id = f.owner_unit_id, bounds b
      WHERE f.area && b.wgs
        AND (f.owner_unit_id IN (SELECT id FROM scope) OR starts_with(:path, o.path))
    ),
    depots AS (
      SELECT ST_AsMVTGeom(ST_Transform(ST_PointOnSurface(v.depot), 3857), b.merc, 4096, 64, true)
               AS geom,
             v.depot_name AS name, count(*) AS vehicles
      FROM vehicle v, bounds b
      WHERE v.depot IS NOT NULL AND v.depot && b.wgs AND v.unit_id IN (SELECT id FROM scope)
      GROUP BY v.depot_name, ST_PointOnSurface(v.depot), b.merc
    )
    SELECT (SELECT coalesce(ST_AsMVT(roads, 'roads', 4096, 'geom'), '') FROM roads
            WHERE geom IS NOT NULL)
        || (SELECT coalesce(ST_AsMVT(fences, 'fences', 4096, 'geom'), '') FROM fences
            WHERE geom IS NOT NULL)
        || (SELECT coalesce(ST_AsMVT(depots, 'depots', 4096, 'geom'), '') FROM depots
            WHERE geom IS NOT NULL)
    """
)


def tile(*, session: Session, actor: Actor, z: int, x: int, y: int) -> bytes:
    """One Mapbox Vector Tile (possibly empty) for the caller."""
    if not 0 <= z <= MAX_ZOOM:
        raise Invalid(f"zoom is 0 to {MAX_ZOOM}", field="z")
    if not (0 <= x < 2**z and 0 <= y < 2**z):
        raise Invalid(f"tile {z}/{x}/{y} does not exist", field="x")
    data = session.scalar(
        TILE,
        {
            "z": z,
            "x": x,
            "y": y,
            "path": actor.unit_path,
            "detail": DETAIL_ZOOM,
            "major": MAJOR,
        },
    )
    return bytes(data or b"")
