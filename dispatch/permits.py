"""The geofence engine's `PermitSource`, answered from assignments: an order that holds a vehicle
permits it to move for the assignment's period (the window and its turnaround buffer), towards the
order's places, along its planned corridor, out of region or overnight if the order says so.

The corridor is the route planned at assignment (on the roads where loaded, else straight legs).
A merged trip (合并用车) is one permit: its joined window, the places of every order it carries,
its route through all their destinations, out of region or overnight if any of them says so.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import shapely
from shapely import LineString
from sqlalchemy import Engine, text

from dispatch.orders import HOLDING
from geofence.permits import Permit

QUERY = text(
    "SELECT a.vehicle_id, extract(epoch FROM lower(a.period))::float8,"
    " extract(epoch FROM upper(a.period))::float8,"
    " (array_agg(o.id ORDER BY o.start_at, o.id))[1], a.driver_id,"
    " jsonb_agg(jsonb_build_object('lat', ST_Y(o.origin), 'lon', ST_X(o.origin),"
    " 'destinations', o.destinations) ORDER BY o.start_at, o.id),"
    " bool_or(o.out_of_region), bool_or(o.overnight), ST_AsBinary(a.route)"
    " FROM assignment a JOIN assignment_order ao ON ao.assignment_id = a.id AND ao.active"
    " JOIN trip_order o ON o.id = ao.order_id"
    " WHERE a.active AND o.status = ANY(:holding) AND a.vehicle_id = ANY(:vehicles)"
    " AND a.period && tstzrange(:start, :end, '[]')"
    " GROUP BY a.id"
)


@dataclass(frozen=True)
class OrderPermits:
    engine: Engine

    def permits(
        self, vehicle_ids: Iterable[int], start_t: float, end_t: float
    ) -> Mapping[int, Sequence[Permit]]:
        found: dict[int, list[Permit]] = {}
        with self.engine.connect() as conn:
            rows = conn.execute(
                QUERY,
                {
                    "holding": [s.value for s in HOLDING],
                    "vehicles": list(vehicle_ids),
                    "start": datetime.fromtimestamp(start_t, UTC),
                    "end": datetime.fromtimestamp(end_t, UTC),
                },
            ).all()
        for vehicle, low, high, order, driver, carried, away, night, wkb in rows:
            places = tuple(
                point
                for o in carried
                for point in (
                    (o["lat"], o["lon"]),
                    *((d["lat"], d["lon"]) for d in o["destinations"]),
                )
            )
            first = carried[0]
            straight = [(lat, lon)[::-1] for lat, lon in places] + [(first["lon"], first["lat"])]
            route = shapely.from_wkb(bytes(wkb)) if wkb is not None else LineString(straight)
            found.setdefault(vehicle, []).append(
                Permit(
                    vehicle_id=vehicle,
                    start_t=low,
                    end_t=high,
                    order_id=order,
                    driver_id=driver,
                    places=places,
                    corridor=route,
                    out_of_region=away,
                    overnight=night,
                )
            )
        return found
