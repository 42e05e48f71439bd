"""Places a requester's phone offers in one tap: the ones their unit's orders went from and to
(most used first, then most recent), then the depots of their unit and the units above it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from fleet.auth import Actor

# How many of the unit's latest orders the places are read from: enough to know its habits,
# few enough to answer at once.
RECENT_ORDERS = 500

_USED = text(
    """
    WITH recent AS (
        SELECT origin, origin_name, destinations, created_at FROM trip_order
        WHERE unit_id = :unit ORDER BY id DESC LIMIT :recent
    ), used AS (
        SELECT origin_name AS name, ST_X(origin) AS lon, ST_Y(origin) AS lat, created_at AS at
        FROM recent
        UNION ALL
        SELECT d->>'name', (d->>'lon')::float, (d->>'lat')::float, created_at
        FROM recent, jsonb_array_elements(destinations) AS d
    )
    SELECT name, (array_agg(lon ORDER BY at DESC))[1] AS lon,
           (array_agg(lat ORDER BY at DESC))[1] AS lat, count(*) AS uses
    FROM used WHERE coalesce(btrim(name), '') <> ''
    GROUP BY name ORDER BY count(*) DESC, max(at) DESC LIMIT :limit
    """
)

_DEPOTS = text(
    """
    SELECT name, ST_X(p) AS lon, ST_Y(p) AS lat FROM (
        SELECT name, ST_PointOnSurface(area) AS p, owner_unit_id FROM fence
        WHERE kind = 'depot' AND enabled AND owner_unit_id = ANY(:units)
    ) AS depot ORDER BY array_position(:units, owner_unit_id) DESC, name LIMIT :limit
    """
)


def _point(lon: float, lat: float) -> dict[str, Any]:
    return {"type": "Point", "coordinates": [round(lon, 6), round(lat, 6)]}


def offered(*, session: Session, actor: Actor, limit: int = 12) -> list[dict[str, Any]]:
    """The places, each once by name: `used` ones with how often, then `depot` ones (the
    nearest unit's first)."""
    places: dict[str, dict[str, Any]] = {}
    for row in session.execute(
        _USED, {"unit": actor.unit_id, "recent": RECENT_ORDERS, "limit": limit}
    ):
        places[row.name] = {
            "name": row.name, "kind": "used", "uses": row.uses, "point": _point(row.lon, row.lat)
        }  # fmt: skip
    units = [int(part) for part in actor.unit_path.split("/") if part]
    for row in session.execute(_DEPOTS, {"units": units, "limit": limit}):
        places.setdefault(
            row.name,
            {"name": row.name, "kind": "depot", "uses": 0, "point": _point(row.lon, row.lat)},
        )
    return list(places.values())[:limit]
