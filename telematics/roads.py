"""The road network: `fleet roads import FILE.osm.pbf` and routes over it with pgRouting.

Ways with a drivable `highway` tag are cut at every junction (a node shared by two ways, or a
way's end), so each row of `road` is an edge between two OSM node ids with travel costs in
seconds; pgRouting needs no topology step of its own.
"""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, text

from telematics.trips import haversine_m

# Typical urban speeds (km/h) by road class, where the way has no usable maxspeed tag.
CLASS_SPEED_KMH = {
    "motorway": 100,
    "trunk": 80,
    "primary": 60,
    "secondary": 50,
    "tertiary": 40,
    "unclassified": 30,
    "residential": 30,
    "living_street": 10,
    "service": 15,
    "road": 30,
}


def road_class(highway: str) -> str | None:
    base = highway.removesuffix("_link")
    return base if base in CLASS_SPEED_KMH else None


def _speed(tags: dict[str, str], klass: str) -> float:
    raw = tags.get("maxspeed", "").split(";")[0].strip().lower()
    try:
        value = float(raw.removesuffix("mph").strip()) * (1.609344 if raw.endswith("mph") else 1)
    except ValueError:
        return float(CLASS_SPEED_KMH[klass])
    return value if 3 <= value <= 150 else float(CLASS_SPEED_KMH[klass])


def _oneway(tags: dict[str, str], klass: str) -> int:
    """1 forward only, -1 backward only, 0 both ways."""
    value = tags.get("oneway", "").lower()
    if value in ("yes", "true", "1"):
        return 1
    if value == "-1":
        return -1
    if value == "no":
        return 0
    return 1 if klass == "motorway" or tags.get("junction") == "roundabout" else 0


@dataclass(frozen=True)
class ImportReport:
    ways: int
    edges: int
    length_km: float


@dataclass(frozen=True)
class _Way:
    osm_id: int
    tags: dict[str, str]
    klass: str
    nodes: list[tuple[int, float, float]]  # (node id, lat, lon)


def _ways(path: Path) -> Iterator[_Way]:
    import osmium

    processor = (
        osmium.FileProcessor(str(path))
        .with_locations()
        .with_filter(osmium.filter.KeyFilter("highway"))
    )
    for obj in processor:
        if not isinstance(obj, osmium.osm.Way):
            continue
        klass = road_class(obj.tags.get("highway") or "")
        if klass is None or obj.tags.get("area") == "yes":
            continue
        nodes = []
        for node in obj.nodes:
            if node.location.valid():
                nodes.append((node.ref, node.lat, node.lon))
        if len(nodes) >= 2:
            yield _Way(obj.id, dict(obj.tags), klass, nodes)


def edges_of(ways: list[_Way]) -> Iterator[dict[str, Any]]:
    uses: Counter[int] = Counter()
    for way in ways:
        uses.update(n[0] for n in way.nodes)
        uses.update((way.nodes[0][0], way.nodes[-1][0]))
    for way in ways:
        speed = _speed(way.tags, way.klass)
        direction = _oneway(way.tags, way.klass)
        start = 0
        for i in range(1, len(way.nodes)):
            if i == len(way.nodes) - 1 or uses[way.nodes[i][0]] > 1:
                part = way.nodes[start : i + 1]
                start = i
                length = sum(
                    haversine_m(a[1], a[2], b[1], b[2]) for a, b in itertools.pairwise(part)
                )
                if length <= 0:
                    continue
                cost = length / (speed / 3.6)
                yield {
                    "osm_id": way.osm_id,
                    "name": way.tags.get("name:zh") or way.tags.get("name", ""),
                    "highway": way.tags["highway"][:32],
                    "oneway": direction != 0,
                    "maxspeed_kmh": speed,
                    "source": part[0][0],
                    "target": part[-1][0],
                    "length_m": length,
                    "cost_s": cost if direction >= 0 else -1.0,
                    "reverse_cost_s": cost if direction <= 0 else -1.0,
                    "wkt": "SRID=4326;LINESTRING("
                    + ",".join(f"{lon} {lat}" for _, lat, lon in part)
                    + ")",
                }


def import_pbf(engine: Engine, path: Path) -> ImportReport:
    """Replace the road network with the one in `path`, in one transaction."""
    ways = list(_ways(path))
    edges = list(edges_of(ways))
    columns = (
        "osm_id, name, highway, oneway, maxspeed_kmh, source, target, length_m, cost_s,"
        " reverse_cost_s, geom"
    )
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE road RESTART IDENTITY"))
        raw = conn.connection.driver_connection
        assert raw is not None
        with raw.cursor() as cur, cur.copy(f"COPY road ({columns}) FROM STDIN") as copy:
            for e in edges:
                copy.write_row(
                    (
                        e["osm_id"],
                        e["name"],
                        e["highway"],
                        e["oneway"],
                        e["maxspeed_kmh"],
                        e["source"],
                        e["target"],
                        e["length_m"],
                        e["cost_s"],
                        e["reverse_cost_s"],
                        e["wkt"],
                    )
                )
        conn.execute(text("ANALYZE road"))
    return ImportReport(
        ways=len(ways), edges=len(edges), length_km=sum(e["length_m"] for e in edges) / 1000
    )


ROUTE_SQL = text(
    """
    WITH near AS (
        SELECT source FROM road
        ORDER BY geom <-> ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) LIMIT 1
    ), far AS (
        SELECT target FROM road
        ORDER BY geom <-> ST_SetSRID(ST_MakePoint(:dlon, :dlat), 4326) LIMIT 1
    )
    SELECT p.seq, p.node, r.source, ST_AsText(r.geom)
    FROM pgr_dijkstra(
        'SELECT id, source, target, cost_s AS cost, reverse_cost_s AS reverse_cost FROM road',
        (SELECT source FROM near), (SELECT target FROM far), directed => true
    ) p JOIN road r ON r.id = p.edge
    ORDER BY p.seq
    """
)


def loaded(conn: Connection) -> bool:
    """Whether a road network has been imported."""
    return bool(conn.execute(text("SELECT EXISTS (SELECT 1 FROM road)")).scalar())


NODE_SQL = text(
    """
    SELECT node,
           ST_Distance(point::geography, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)::geography)
    FROM (
        SELECT source AS node, ST_StartPoint(geom) AS point FROM road
        UNION ALL SELECT target, ST_EndPoint(geom) FROM road
    ) ends
    ORDER BY point <-> ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) LIMIT 1
    """
)
PATH_SQL = text(
    """
    SELECT p.node, r.source, ST_AsText(r.geom)
    FROM pgr_dijkstra(
        'SELECT id, source, target, cost_s AS cost, reverse_cost_s AS reverse_cost FROM road',
        CAST(:a AS bigint), CAST(:b AS bigint), directed => true
    ) p JOIN road r ON r.id = p.edge
    ORDER BY p.seq
    """
)


def path_between(
    conn: Connection, a: tuple[float, float], b: tuple[float, float], max_snap_m: float = 500
) -> list[tuple[float, float]] | None:
    """The fastest path on the imported roads from a to b, as (lat, lon) points, each end joined
    to the nearest road junction; None when no junction lies within `max_snap_m` of either end
    or the network does not connect them."""
    nodes = []
    for lat, lon in (a, b):
        found = conn.execute(NODE_SQL, {"lat": lat, "lon": lon}).first()
        if found is None or found[1] > max_snap_m:
            return None
        nodes.append(found[0])
    if nodes[0] == nodes[1]:
        return [a, b]
    rows = conn.execute(PATH_SQL, {"a": nodes[0], "b": nodes[1]}).all()
    if not rows:
        return None
    path: list[tuple[float, float]] = [a]
    for node, source, wkt in rows:
        coords = _coords(wkt)
        path += coords if node == source else coords[::-1]
    return [*path, b]


TRAVEL_SQL = text(
    """
    SELECT start_vid, agg_cost FROM pgr_dijkstraCost(
        'SELECT id, source, target, cost_s AS cost, reverse_cost_s AS reverse_cost FROM road',
        CAST(:starts AS bigint[]), CAST(:goal AS bigint), directed => true
    )
    """
)


def travel_seconds(
    conn: Connection,
    starts: list[tuple[float, float]],
    goal: tuple[float, float],
    max_snap_m: float = 500,
) -> list[float | None]:
    """Driving time on the imported roads from each start to the goal, in seconds (one
    many-to-one Dijkstra); None for a start too far from the network or not connected to it."""
    goal_node = conn.execute(NODE_SQL, {"lat": goal[0], "lon": goal[1]}).first()
    if goal_node is None or goal_node[1] > max_snap_m:
        return [None] * len(starts)
    nodes: list[int | None] = []
    for lat, lon in starts:
        found = conn.execute(NODE_SQL, {"lat": lat, "lon": lon}).first()
        nodes.append(found[0] if found is not None and found[1] <= max_snap_m else None)
    wanted = sorted({n for n in nodes if n is not None and n != goal_node[0]})
    costs: dict[int, float] = {goal_node[0]: 0.0}
    if wanted:
        rows = conn.execute(TRAVEL_SQL, {"starts": wanted, "goal": goal_node[0]}).all()
        costs.update({int(node): float(cost) for node, cost in rows})
    return [costs.get(n) if n is not None else None for n in nodes]


def _coords(wkt: str) -> list[tuple[float, float]]:
    inner = wkt[wkt.index("(") + 1 : wkt.rindex(")")]
    return [(float(y), float(x)) for x, y in (p.split() for p in inner.split(","))]


@dataclass
class RoadRoutes:
    """Routes between the road vertex nearest a start and one near a random point."""

    engine: Engine
    centre: tuple[float, float]
    radius_m: float

    @classmethod
    def load(cls, engine: Engine) -> RoadRoutes | None:
        with engine.connect() as conn:
            row = conn.execute(
                text(
                    "SELECT count(*), ST_Y(ST_Centroid(ST_Extent(geom))),"
                    " ST_X(ST_Centroid(ST_Extent(geom))),"
                    " ST_Length(ST_BoundingDiagonal(ST_Extent(geom))::geography) FROM road"
                )
            ).one()
        if not row[0]:
            return None
        return cls(engine, (row[1], row[2]), max(row[3] / 3, 500.0))

    def route(self, start: tuple[float, float], rng: random.Random) -> list[tuple[float, float]]:
        if haversine_m(*start, *self.centre) > 4 * self.radius_m:
            start = self.centre  # a vehicle far from the imported area starts in it
        bearing = rng.uniform(0, 2 * math.pi)
        distance = rng.uniform(0.2, 1.0) * self.radius_m
        dlat = self.centre[0] + distance * math.cos(bearing) / 111_320
        dlon = self.centre[1] + distance * math.sin(bearing) / (
            111_320 * math.cos(math.radians(self.centre[0]))
        )
        with self.engine.connect() as conn:
            rows = conn.execute(
                ROUTE_SQL, {"lat": start[0], "lon": start[1], "dlat": dlat, "dlon": dlon}
            ).all()
        path: list[tuple[float, float]] = [start]
        for _, node, source, wkt in rows:
            coords = _coords(wkt)
            path += coords if node == source else coords[::-1]
        return path if len(path) > 1 else [start, (dlat, dlon)]
