"""The geofence engine's `PermitSource`, answered from assignments: an order that holds a vehicle
permits it to move for the assignment's period (the window and its turnaround buffer), towards the
order's places, along its planned corridor, out of region or overnight if the order says so.

The corridor is the route planned at assignment (on the roads where loaded, else straight legs).
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
    " extract(epoch FROM upper(a.period))::float8, o.id, a.driver_id,"
    " ST_Y(o.origin), ST_X(o.origin), o.destinations, o.out_of_region, o.overnight,"
    " ST_AsBinary(a.route)"
    " FROM assignment a JOIN trip_order o ON o.id = a.order_id"
    " WHERE a.active AND o.status = ANY(:holding) AND a.vehicle_id = ANY(:vehicles)"
    " AND a.period && tstzrange(:start, :end, '[]')"
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
        for vehicle, low, high, order, driver, lat, lon, destinations, away, night, wkb in rows:
            places = ((lat, lon), *((d["lat"], d["lon"]) for d in destinations))
            straight = [(lon, lat), *((d["lon"], d["lat"]) for d in destinations), (lon, lat)]
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
