"""The road network: `fleet roads import FILE.osm.pbf` and routes over it with pgRouting.

Ways with a drivable `highway` tag are cut at every junction (a node shared by two ways, or a
way's end), so each row of `road` is an edge between two OSM node ids with travel costs in
seconds; pgRouting needs no topology step of its own.
"""

from __future__ import annotations

import itertools
import logging
import math
import random
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import OperationalError

from telematics.trips import haversine_m

log = logging.getLogger("fleet.roads")

Progress = Callable[[int, int], None]

# Ways read or stored between two reports of progress, which keeps the reports' cost out of
# sight.
REPORT_EVERY = 1000

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
class Way:
    osm_id: int
    tags: dict[str, str]
    klass: str
    nodes: list[tuple[int, float, float]]  # (node id, lat, lon)


def _highway_ways(path: Path) -> int:
    """The ways with a `highway` tag in the file: a quick pass without node locations, so that
    the reading has a total to show its progress against."""
    import osmium

    processor = osmium.FileProcessor(str(path), osmium.osm.WAY).with_filter(
        osmium.filter.KeyFilter("highway")
    )
    return sum(1 for _ in processor)


def _ways(path: Path, progress: Progress | None = None) -> Iterator[Way]:
    import osmium

    total = _highway_ways(path) if progress is not None else 0
    processor = (
        osmium.FileProcessor(str(path))
        .with_locations()
        .with_filter(osmium.filter.KeyFilter("highway"))
    )
    read = 0
    for obj in processor:
        if not isinstance(obj, osmium.osm.Way):
            continue
        read += 1
        if progress is not None and read % REPORT_EVERY == 0 and read < total:
            progress(read, total)
        klass = road_class(obj.tags.get("highway") or "")
        if klass is None or obj.tags.get("area") == "yes":
            continue
        nodes = []
        for node in obj.nodes:
            if node.location.valid():
                nodes.append((node.ref, node.lat, node.lon))
        if len(nodes) >= 2:
            yield Way(obj.id, dict(obj.tags), klass, nodes)
    if progress is not None:
        progress(read, max(read, total))


def edges_of(ways: list[Way], progress: Progress | None = None) -> Iterator[dict[str, Any]]:
    uses: Counter[int] = Counter()
    for way in ways:
        uses.update(n[0] for n in way.nodes)
        uses.update((way.nodes[0][0], way.nodes[-1][0]))
    for done, way in enumerate(ways, 1):
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
        if progress is not None and (done % REPORT_EVERY == 0 or done == len(ways)):
            progress(done, len(ways))


def read_ways(path: Path, progress: Progress | None = None) -> list[Way]:
    """The drivable ways of an extract, with their nodes' locations. `progress(done, total)`
    follows the ways with a `highway` tag read (a quick first pass counts them for the total)."""
    return list(_ways(path, progress))


def import_pbf(engine: Engine, path: Path) -> ImportReport:
    """Replace the road network with the one in `path`, in one transaction."""
    return store(engine, read_ways(path))


def store(engine: Engine, ways: list[Way], progress: Progress | None = None) -> ImportReport:
    """Replace the road network with `ways` cut at junctions, in one transaction.
    `progress(done, total)` follows the ways stored."""
    edges, length_m = 0, 0.0
    columns = (
        "osm_id, name, highway, oneway, maxspeed_kmh, source, target, length_m, cost_s,"
        " reverse_cost_s, geom"
    )
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE road RESTART IDENTITY"))
        raw = conn.connection.driver_connection
        assert raw is not None
        with raw.cursor() as cur, cur.copy(f"COPY road ({columns}) FROM STDIN") as copy:
            for e in edges_of(ways, progress):
                edges += 1
                length_m += e["length_m"]
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
    return ImportReport(ways=len(ways), edges=edges, length_km=length_m / 1000)


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
    return [a, *_joined(rows), b]


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


def _joined(rows: Sequence[Sequence[Any]]) -> list[tuple[float, float]]:
    """The edge geometries of a pgr_dijkstra path (node, edge source, WKT) end to end, each
    turned to run the way the path goes, as (lat, lon) points."""
    path: list[tuple[float, float]] = []
    for node, source, wkt in rows:
        coords = _coords(wkt)
        path += coords if node == source else coords[::-1]
    return path


# Only the largest strongly connected part of the network is driven: from any of its junctions
# every other one can be reached and left again. An extract cut out of a bigger map always has
# one-way stubs at its edge that lead nowhere, and a tour that went there could not come back.
JUNCTIONS_SQL = text(
    """
    WITH part AS (
        SELECT component, node FROM pgr_strongComponents(
            'SELECT id, source, target, cost_s AS cost, reverse_cost_s AS reverse_cost FROM road'
        )
    ), main AS (
        SELECT component FROM part GROUP BY component ORDER BY count(*) DESC, component LIMIT 1
    ), ends AS (
        SELECT source AS node, ST_StartPoint(geom) AS point FROM road
        UNION ALL SELECT target, ST_EndPoint(geom) FROM road
    )
    SELECT e.node, min(ST_Y(e.point)), min(ST_X(e.point)), count(*)
    FROM ends e JOIN part p ON p.node = e.node
    WHERE p.component = (SELECT component FROM main)
    GROUP BY e.node
    ORDER BY e.node
    """
)
EXTENT_CENTRE_SQL = text(
    "SELECT ST_Y(ST_Centroid(ST_Extent(geom))), ST_X(ST_Centroid(ST_Extent(geom))) FROM road"
)

# A depot this far from every junction is not on the imported map (another city's extract, or a
# depot the user never placed): its vehicles live at the network's centre instead.
FAR_FROM_NETWORK_M = 2000.0
# Destinations at least this far from home, where the network allows: a tour round the block
# shows nothing on the map.
MIN_TOUR_REACH_M = 1000.0
DESTINATION_DRAWS = 10


@dataclass(frozen=True)
class Junction:
    node: int
    lat: float
    lon: float
    degree: int  # edge ends meeting here: 3 or more is a crossing, 2 a way joining the next


@dataclass
class RoadRoutes:
    """Tours over the imported roads (a `simulator.RouteSource`): a vehicle's home is its depot,
    or the junction nearest the network's centre when the depot is off the map; destinations are
    crossings of the network's main part; paths are pgRouting's fastest, edge geometry by edge
    geometry. The junctions are held in memory, so only `path` queries the database."""

    engine: Engine
    junctions: Sequence[Junction]  # the main part's, never empty
    extent_centre: tuple[float, float]  # of the whole network's bounding box, (lat, lon)
    far_m: float = FAR_FROM_NETWORK_M
    min_reach_m: float = MIN_TOUR_REACH_M
    centre: tuple[float, float] = field(init=False)  # the junction nearest `extent_centre`
    _lat: npt.NDArray[np.float64] = field(init=False, repr=False)
    _lon: npt.NDArray[np.float64] = field(init=False, repr=False)
    _crossings: list[Junction] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._lat = np.array([j.lat for j in self.junctions])
        self._lon = np.array([j.lon for j in self.junctions])
        # A network of nothing but bends (a test's single street) still has somewhere to go.
        self._crossings = [j for j in self.junctions if j.degree >= 3] or list(self.junctions)
        middle = self.nearest(self.extent_centre)
        self.centre = (middle.lat, middle.lon)

    @classmethod
    def load(cls, engine: Engine) -> RoadRoutes | None:
        """The imported network, or None when there is none."""
        with engine.connect() as conn:
            rows = conn.execute(JUNCTIONS_SQL).all()
            if not rows:
                return None
            lat, lon = conn.execute(EXTENT_CENTRE_SQL).one()
        junctions = [Junction(int(n), float(y), float(x), int(d)) for n, y, x, d in rows]
        return cls(engine, junctions, (float(lat), float(lon)))

    def nearest(self, point: tuple[float, float]) -> Junction:
        """The main part's junction nearest `point` (flat-earth distances: plenty at city scale
        for telling which is nearest)."""
        squeeze = math.cos(math.radians(point[0]))
        d2 = (self._lat - point[0]) ** 2 + ((self._lon - point[1]) * squeeze) ** 2
        return self.junctions[int(np.argmin(d2))]

    def home(self, depot: tuple[float, float]) -> tuple[float, float]:
        junction = self.nearest(depot)
        if haversine_m(*depot, junction.lat, junction.lon) <= self.far_m:
            return depot
        return self.centre

    def destination(self, home: tuple[float, float], rng: random.Random) -> tuple[float, float]:
        """A random crossing, not round the corner from home if a few draws find one further."""
        choice = rng.choice(self._crossings)
        for _ in range(DESTINATION_DRAWS):
            if haversine_m(*home, choice.lat, choice.lon) >= self.min_reach_m:
                break
            choice = rng.choice(self._crossings)
        return (choice.lat, choice.lon)

    def path(
        self, a: tuple[float, float], b: tuple[float, float]
    ) -> list[tuple[float, float]] | None:
        """The fastest path from a to b, each end joined straight to its nearest junction of the
        main part; None when pgRouting finds none (a network re-imported since it was loaded)
        or the database cannot be reached (the simulator then drives straight)."""
        start, end = self.nearest(a), self.nearest(b)
        if start.node == end.node:
            return [a, b]
        try:
            with self.engine.connect() as conn:
                rows = conn.execute(PATH_SQL, {"a": start.node, "b": end.node}).all()
        except OperationalError as error:
            log.warning("no route from %s to %s: %s", a, b, error)
            return None
        if not rows:
            return None
        return [a, *_joined(rows), b]
