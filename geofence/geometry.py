"""Fence geometry: GeoJSON in, checked, and the area a fence covers as a WGS-84 polygon.

Pure functions. Circles (a centre and a radius) and corridors (a line and a width) become
polygons by buffering in a local equirectangular plane around the shape, which is within a
fraction of a percent of the true distance over the tens of kilometres a fence spans.
"""

from __future__ import annotations

import math
from operator import attrgetter
from typing import Any

import numpy as np
import shapely
from shapely import LineString, MultiPolygon, Point, Polygon
from shapely.geometry.base import BaseGeometry
from shapely.validation import explain_validity

from fleet.errors import Invalid

METRES_PER_DEGREE = 111_319.49  # along the equator and along every meridian, near enough
MAX_RADIUS_M = 200_000
MAX_WIDTH_M = 20_000
MAX_VERTICES = 100_000  # of one fence
CIRCLE_SEGMENTS = 16  # per quarter circle: 64 sides, within 0.1% of the true radius


class Shape:
    POLYGON = "polygon"
    CIRCLE = "circle"
    CORRIDOR = "corridor"


def _position(value: Any, field: str) -> tuple[float, float]:
    if (
        not isinstance(value, list | tuple)
        or len(value) not in (2, 3)
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
    ):
        raise Invalid(f"a position is [longitude, latitude], not {value!r}", field=field)
    lon, lat = float(value[0]), float(value[1])
    if not (math.isfinite(lon) and math.isfinite(lat) and -180 <= lon <= 180 and -90 <= lat <= 90):
        raise Invalid(f"[{lon}, {lat}] is not a longitude and latitude on Earth", field=field)
    return lon, lat


def _ring(value: Any, field: str) -> list[tuple[float, float]]:
    if not isinstance(value, list) or len(value) < 4:
        raise Invalid(
            "a polygon ring needs at least 4 positions, the last equal to the first", field=field
        )
    ring = [_position(p, field) for p in value]
    if ring[0] != ring[-1]:
        raise Invalid(
            "a polygon ring must be closed: its last position equal to its first", field=field
        )
    return ring


def _polygon(coordinates: Any, field: str) -> Polygon:
    if not isinstance(coordinates, list) or not coordinates:
        raise Invalid("a polygon's coordinates are a list of rings", field=field)
    rings = [_ring(r, field) for r in coordinates]
    return Polygon(rings[0], rings[1:])


def positions(geometry: Any) -> int:
    """How many positions a GeoJSON geometry's coordinates hold, counted before any is read."""
    if not isinstance(geometry, dict):
        return 0

    def count(value: Any, depth: int) -> int:
        if not isinstance(value, list) or not value or depth > 3:
            return 0
        if not isinstance(value[0], list):
            return 1
        return sum(count(item, depth + 1) for item in value)

    return count(geometry.get("coordinates"), 0)


def parse(geometry: Any, *, field: str = "geometry") -> BaseGeometry:
    """A GeoJSON geometry (Point, LineString, Polygon or MultiPolygon) as Shapely, or Invalid."""
    if not isinstance(geometry, dict) or "type" not in geometry or "coordinates" not in geometry:
        raise Invalid("geometry must be a GeoJSON object with type and coordinates", field=field)
    if positions(geometry) > MAX_VERTICES:
        raise Invalid(f"a fence has at most {MAX_VERTICES} vertices", field=field)
    kind, coordinates = geometry["type"], geometry["coordinates"]
    shape: BaseGeometry
    if kind == "Point":
        shape = Point(_position(coordinates, field))
    elif kind == "LineString":
        if not isinstance(coordinates, list) or len(coordinates) < 2:
            raise Invalid("a line needs at least two positions", field=field)
        shape = LineString([_position(p, field) for p in coordinates])
        if shape.length == 0:
            raise Invalid("a line needs two distinct positions", field=field)
    elif kind == "Polygon":
        shape = _polygon(coordinates, field)
    elif kind == "MultiPolygon":
        if not isinstance(coordinates, list) or not coordinates:
            raise Invalid("a multipolygon's coordinates are a list of polygons", field=field)
        shape = MultiPolygon([_polygon(p, field) for p in coordinates])
    else:
        raise Invalid(
            f"geometry type {kind!r} is not a fence shape"
            " (Point, LineString, Polygon, MultiPolygon)",
            field=field,
        )
    if shapely.get_num_coordinates(shape) > MAX_VERTICES:
        raise Invalid(f"a fence has at most {MAX_VERTICES} vertices", field=field)
    if isinstance(shape, Polygon | MultiPolygon):
        if not shape.is_valid:
            raise Invalid(f"the polygon is not valid: {explain_validity(shape)}", field=field)
        if shape.area == 0:
            raise Invalid("the polygon encloses no area", field=field)
    return shape


def shape_of(geometry: BaseGeometry) -> str:
    if isinstance(geometry, Point):
        return Shape.CIRCLE
    if isinstance(geometry, LineString):
        return Shape.CORRIDOR
    return Shape.POLYGON


def check_size(shape: str, *, radius_m: float | None, width_m: float | None) -> None:
    _check_metres(radius_m, "radius_m", MAX_RADIUS_M, shape == Shape.CIRCLE, "circle", "Point")
    _check_metres(
        width_m, "width_m", MAX_WIDTH_M, shape == Shape.CORRIDOR, "corridor", "LineString"
    )


def _check_metres(
    value: float | None, field: str, most: float, wanted: bool, shape: str, geometry: str
) -> None:
    """A size in metres that one shape of fence needs (1 to `most`) and the others refuse."""
    if wanted:
        if value is None or not (1 <= value <= most):
            raise Invalid(
                f"a {shape} (a {geometry}) needs {field} between 1 and {most:,} metres",
                field=field,
            )
    elif value is not None:
        raise Invalid(f"{field} is for {shape}s (a {geometry} geometry) only", field=field)


def _to_plane(geometry: BaseGeometry, lat0: float, lon0: float) -> BaseGeometry:
    k = math.cos(math.radians(lat0))
    return shapely.transform(
        geometry,
        lambda xy: (xy - (lon0, lat0)) * (METRES_PER_DEGREE * k, METRES_PER_DEGREE),
    )


def _from_plane(geometry: BaseGeometry, lat0: float, lon0: float) -> BaseGeometry:
    k = math.cos(math.radians(lat0))
    return shapely.transform(
        geometry, lambda xy: xy / (METRES_PER_DEGREE * k, METRES_PER_DEGREE) + (lon0, lat0)
    )


def area(geometry: BaseGeometry, *, radius_m: float | None, width_m: float | None) -> MultiPolygon:
    """The ground a fence covers, as a WGS-84 multipolygon."""
    if isinstance(geometry, Point | LineString):
        centre = geometry.centroid
        lat0, lon0 = centre.y, centre.x
        distance = radius_m if isinstance(geometry, Point) else (width_m or 0) / 2
        buffered = _to_plane(geometry, lat0, lon0).buffer(distance, quad_segs=CIRCLE_SEGMENTS)
        geometry = _from_plane(buffered, lat0, lon0)
    if isinstance(geometry, Polygon):
        return MultiPolygon([geometry])
    assert isinstance(geometry, MultiPolygon)
    return geometry


class PlaneLine:
    """A line projected once into its local metric plane, for many distance questions."""

    __slots__ = ("k", "lat0", "lon0", "plane")

    def __init__(self, line: LineString) -> None:
        centre = line.centroid
        self.lat0, self.lon0 = centre.y, centre.x
        self.k = math.cos(math.radians(self.lat0))
        self.plane = _to_plane(line, self.lat0, self.lon0)
        shapely.prepare(self.plane)

    def distances_m(self, lats: Any, lons: Any) -> Any:
        """Distances in metres from points to the line (vectorised)."""
        xs = (lons - self.lon0) * METRES_PER_DEGREE * self.k
        ys = (lats - self.lat0) * METRES_PER_DEGREE
        return shapely.distance(shapely.points(xs, ys), self.plane)

    @staticmethod
    def distances_each(planes: list[PlaneLine], which: Any, lats: Any, lons: Any) -> Any:
        """Distances in metres, point i to the line `planes[which[i]]` (one vectorised call)."""
        return shapely.distance(*PlaneLine.points_each(planes, which, lats, lons))

    @staticmethod
    def points_each(
        planes: list[PlaneLine], which: Any, lats: Any, lons: Any
    ) -> tuple[np.ndarray, np.ndarray]:
        """Point i in the plane of `planes[which[i]]`, and that line in the plane."""
        count = len(planes)
        lat0 = np.fromiter(map(_LAT0, planes), float, count)[which]
        lon0 = np.fromiter(map(_LON0, planes), float, count)[which]
        k = np.fromiter(map(_K, planes), float, count)[which]
        xs = (lons - lon0) * METRES_PER_DEGREE * k
        ys = (lats - lat0) * METRES_PER_DEGREE
        lines = np.empty(count, dtype=object)
        lines[:] = list(map(_PLANE, planes))
        return shapely.points(xs, ys), lines[which]


_LAT0, _LON0, _K, _PLANE = (
    attrgetter("lat0"),
    attrgetter("lon0"),
    attrgetter("k"),
    attrgetter("plane"),
)
