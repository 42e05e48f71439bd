"""Stored tracks through the current rules: after a rule or threshold change, or for a new fence.

Each vehicle's fixes of the period are fed to the same engine the worker runs, in time order,
from an empty state at the start of the period. Episodes are named by (vehicle, kind, key,
start), so replaying what the live engine saw lands on the very alerts it stored, and a replay
adds only what the live engine did not raise. (Live, a fix older than the vehicle's last
evaluated one is skipped; a replay takes every stored fix in order, so it can find more.)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from geofence import service, store
from geofence.engine import AlertRecord, new_state
from geofence.permits import NO_PERMITS, PermitSource
from geofence.rules.base import Fix
from geofence.settings import GeofenceSettings
from geofence.worker import load_rule_engine
from telematics import tracks

CHUNK = 20_000


@dataclass
class ReplayReport:
    vehicles: int = 0
    fixes: int = 0
    alerts: list[AlertRecord] = field(default_factory=list)
    new: int = 0  # episodes the store did not hold
    uncovered_days: set[int] = field(default_factory=set)


def replay(
    *,
    engine: Engine,
    settings: GeofenceSettings,
    zone: ZoneInfo,
    start: datetime,
    end: datetime,
    vehicle_ids: Sequence[int] | None = None,
    permits: PermitSource = NO_PERMITS,
    write: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> ReplayReport:
    report = ReplayReport()
    with Session(engine) as session:
        rules = load_rule_engine(session, settings, zone, permits)
        if vehicle_ids is None:
            vehicle_ids = tracks.vehicles(session, start, end)
        vehicles = service.vehicle_infos(session=session, vehicle_ids=vehicle_ids)
    found: dict[tuple[int, str, str, float], AlertRecord] = {}
    for done, vehicle_id in enumerate(vehicle_ids, 1):
        state: dict[str, Any] = new_state()
        for fixes in _track(engine, vehicle_id, start, end):
            outcome = rules.run({vehicle_id: fixes}, {vehicle_id: state}, vehicles)
            state = outcome.states.get(vehicle_id, state)
            report.fixes += len(fixes)
            report.uncovered_days |= outcome.uncovered_days
            for record in outcome.alerts:
                found[record.identity] = record
        report.vehicles += 1
        if progress is not None:
            progress(done, len(vehicle_ids))
    report.alerts = sorted(found.values(), key=lambda r: r.identity)
    with engine.connect() as sa_conn:
        conn: psycopg.Connection[Any] = sa_conn.connection.driver_connection  # type: ignore[assignment]
        known = {
            (v, k, key, s)
            for v, k, key, s in conn.execute(
                "SELECT vehicle_id, kind, key, extract(epoch FROM started_at)::float8 FROM alert"
                " WHERE vehicle_id = ANY(%s) AND started_at >= %s AND started_at < %s",
                (list(vehicle_ids), start, end),
            )
        }
        report.new = sum(1 for r in report.alerts if r.identity not in known)
        if write:
            store.upsert_alerts(conn, report.alerts)
            conn.commit()
    return report


def _track(engine: Engine, vehicle_id: int, start: datetime, end: datetime) -> Any:
    """One vehicle's stored fixes of the period, in time order, in chunks: streamed from PostGIS,
    or month by month (telematics.tracks) when the period meets archived months."""
    with engine.connect() as conn:
        if tracks.archived_files(conn, start, end):
            for low, high in tracks.months(start, end):
                fixes = [
                    Fix(f.fix_time.timestamp(), f.lat, f.lon, f.speed_kmh, f.ignition, f.alarm_bits)
                    for f in tracks.fixes(conn, vehicle_id, low, high)
                ]
                for first in range(0, len(fixes), CHUNK):
                    yield fixes[first : first + CHUNK]
            return
        result = conn.execution_options(yield_per=CHUNK).execute(
            text(
                "SELECT extract(epoch FROM fix_time)::float8, ST_Y(point), ST_X(point),"
                " speed_kmh, ignition, alarm_bits FROM position"
                " WHERE vehicle_id = :v AND fix_time >= :s AND fix_time < :e"
                " ORDER BY fix_time, device_id"
            ),
            {"v": vehicle_id, "s": start, "e": end},
        )
        for rows in result.partitions(CHUNK):
            yield [Fix(*row) for row in rows]
