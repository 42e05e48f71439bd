"""Vector tiles made by PostGIS (`ST_AsMVT`) from the app's own data: the imported roads, the
fences the caller may see (none unless their roles may read fences), and the depots of the
caller's vehicles. The pages' map needs nothing from outside the machine.

Each tile is one query with three layers (`roads`, `fences`, `depots`), in Web Mercator, extent
4096. Small zooms carry only the major roads.

For a GCJ-02 base map the tile is shifted by the GCJ-02 offset at its centre: the offset changes
by metres over a city-sized tile, so one translation per tile draws the roads where the base map
has them, with the data left in WGS-84.
"""

from __future__ import annotations

import math

from sqlalchemy import text
from sqlalchemy.orm import Session

from fleet.auth import PERMISSIONS, Actor
from fleet.errors import Invalid
from web import gcj02

MAX_ZOOM = 22
# Zooms below this draw only these classes (a city's residential streets at z8 are noise).
DETAIL_ZOOM = 12
MAJOR = ["motorway", "motorway_link", "trunk", "trunk_link", "primary", "primary_link",
         "secondary", "secondary_link"]  # fmt: skip

TILE = text(
    """
    WITH bounds AS (
      SELECT ST_TileEnvelope(:z, :x, :y) AS merc,
             ST_Translate(ST_Transform(ST_TileEnvelope(:z, :x, :y, margin => 0.015625), 4326),
                          -:dx, -:dy) AS wgs
    ),
    scope AS (SELECT id, path FROM org_unit WHERE path LIKE :path || '%'),
    roads AS (
      SELECT ST_AsMVTGeom(ST_Transform(ST_Translate(r.geom, :dx, :dy), 3857), b.merc,
                          4096, 64, true) AS geom,
             r.name, r.highway
      FROM road r, bounds b
      WHERE r.geom && b.wgs AND (:z >= :detail OR r.highway = ANY(:major))
    ),
    fences AS (
      SELECT ST_AsMVTGeom(ST_Transform(ST_Translate(f.area, :dx, :dy), 3857), b.merc,
                          4096, 64, true) AS geom,
             f.id, f.name, f.kind, f.enabled
      FROM fence f JOIN org_unit o ON o.id = f.owner_unit_id, bounds b
      WHERE :fences AND f.area && b.wgs
        AND (f.owner_unit_id IN (SELECT id FROM scope) OR starts_with(:path, o.path))
    ),
    depots AS (
      SELECT ST_AsMVTGeom(ST_Transform(ST_Translate(ST_PointOnSurface(v.depot), :dx, :dy), 3857),
                          b.merc, 4096, 64, true) AS geom,
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


def tile_centre(z: int, x: int, y: int) -> tuple[float, float]:
    """Longitude and latitude of a Web Mercator tile's centre."""
    n = 2**z
    lon = (x + 0.5) / n * 360.0 - 180.0
    lat = math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * (y + 0.5) / n))))
    return lon, lat


def tile(
    *, session: Session, actor: Actor, z: int, x: int, y: int, shift_gcj02: bool = False
) -> bytes:
    """One Mapbox Vector Tile (possibly empty) for the caller; the fence layer only for those
    who may read fences."""
    if not 0 <= z <= MAX_ZOOM:
        raise Invalid(f"zoom is 0 to {MAX_ZOOM}", field="z")
    if not (0 <= x < 2**z and 0 <= y < 2**z):
        raise Invalid(f"tile {z}/{x}/{y} does not exist", field="x")
    dx = dy = 0.0
    if shift_gcj02:
        lon, lat = tile_centre(z, x, y)
        shifted = gcj02.from_wgs84(lon, lat)
        dx, dy = shifted[0] - lon, shifted[1] - lat
    data = session.scalar(
        TILE,
        {
            "dx": dx,
            "dy": dy,
            "z": z,
            "x": x,
            "y": y,
            "path": actor.unit_path,
            "fences": actor.has(*PERMISSIONS[("fence", "read")]),
            "detail": DETAIL_ZOOM,
            "major": MAJOR,
        },
    )
    return bytes(data or b"")
