"""The engine in the ingest worker: a `BatchObserver` that evaluates each batch's fixes, writes
the alerts in the batch's transaction, and keeps each vehicle's rule state in Redis.

Fences, the calendar and working hours are loaded once and reloaded when they change (checked
every `engine_refresh_s`). A vehicle's rule state is read from Redis the first time the worker
meets it, so a restarted worker goes on where the last one committed: an episode in progress is
neither lost nor raised twice (a batch evaluated twice names the same episodes, and alerts are
upserted by episode).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import orjson
import psycopg
from redis.exceptions import RedisError
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from fleet import channels
from fleet.db import make_session_factory, utcnow
from fleet.redis_client import RedisClient, RedisPipeline
from geofence import service, store
from geofence.calendar import LocalClock, date_of
from geofence.engine import Engine as RuleEngine
from geofence.engine import Outcome
from geofence.fences import VehicleInfo
from geofence.permits import NO_PERMITS, PermitSource
from geofence.rules.base import Fix, Thresholds
from geofence.settings import GeofenceSettings, clock_seconds
from telematics import stream
from telematics.batch import IGNITION_OF, FixBatch, or_none

log = logging.getLogger("fleet.geofence")

RULE_STATES = "fleet:rule-state"
SETTINGS = frozenset(GeofenceSettings.model_fields)


def thresholds(settings: GeofenceSettings) -> Thresholds:
    """The rules' thresholds: the settings of the same name, the exempt categories as sets and
    the night window in seconds of the day."""
    same = {f.name: getattr(settings, f.name) for f in fields(Thresholds) if f.name in SETTINGS}
    return Thresholds(
        **same,
        no_order_exempt=frozenset(settings.no_order_exempt_categories),
        off_hours_exempt=frozenset(settings.off_hours_exempt_categories),
        night_start_s=clock_seconds(settings.night_start),
        night_end_s=clock_seconds(settings.night_end),
    )


def fix_columns(batch: FixBatch) -> np.ndarray:
    """The worker's batch as the engine's columns (`geofence.engine.fix_columns`: a row per fix,
    the `Fix` fields, NaN for a missing value), made from the batch's own columns. Speeds are
    rounded as PostgreSQL's `real` column keeps them (through float32), so that live evaluation
    and a replay of the stored track compare the very same numbers with thresholds."""
    r = batch.records
    found = np.empty((len(r), len(Fix._fields)))
    found[:, 0] = r["fix_ms"] / 1000
    found[:, 1] = r["lat"]
    found[:, 2] = r["lon"]
    found[:, 3] = r["speed"].astype(np.float32)
    found[:, 4] = np.where(r["ignition"] < 0, np.nan, r["ignition"] != 0)
    found[:, 5] = r["alarm"]
    return found


def fixes_by_vehicle(
    batch: FixBatch, starts: np.ndarray, columns: np.ndarray | None = None
) -> dict[int, list[Fix]]:
    """The worker's batch (in vehicle, fix time order; vehicle k's fixes from `starts[k]`) as the
    engine's fixes, made from its `fix_columns` (passed in where the caller has them)."""
    r = batch.records
    if columns is None:
        columns = fix_columns(batch)
    fixes = list(
        map(
            Fix,
            columns[:, 0].tolist(),
            or_none(columns[:, 1]),
            or_none(columns[:, 2]),
            or_none(columns[:, 3]),
            IGNITION_OF[r["ignition"] + 1].tolist(),
            r["alarm"].tolist(),
        )
    )
    bounds = starts.tolist()
    vehicles = r["vehicle"][starts[:-1]].tolist()
    return {v: fixes[bounds[k] : bounds[k + 1]] for k, v in enumerate(vehicles)}


def state_json(state: dict[str, Any]) -> bytes:
    """A vehicle's state as JSON for Redis, by orjson: a live batch writes the state of every
    vehicle in it, and the standard library took longer over that than the engine over the
    rules. Reads back as `json.dumps` would have written it (a state holds no NaN: the worker's
    fixes carry None for a missing value)."""
    return orjson.dumps(state, default=_as_list)


def _as_list(value: Any) -> tuple[Any, ...]:
    """The tuples of other classes (the state's `prev`, a `Fix`) as JSON arrays."""
    if isinstance(value, tuple):
        return tuple(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def load_rule_engine(
    session: Session, settings: GeofenceSettings, zone: ZoneInfo, permits: PermitSource
) -> RuleEngine:
    return RuleEngine(
        fences=service.compiled_fences(session=session),
        calendar=service.working_calendar(session=session, settings=settings),
        clock=LocalClock(zone),
        thresholds=thresholds(settings),
        permits=permits,
    )


@dataclass
class GeofenceObserver:
    engine: Engine
    redis: RedisClient
    settings: GeofenceSettings
    zone: ZoneInfo
    permits: PermitSource = NO_PERMITS
    _rules: RuleEngine | None = None
    _version: tuple[Any, ...] = ()
    _checked_at: float = 0.0
    _states: dict[int, dict[str, Any]] = field(default_factory=dict)
    _vehicles: dict[int, VehicleInfo] = field(default_factory=dict)
    _reported_days: set[int] = field(default_factory=set)

    def _refresh(self) -> RuleEngine:
        now = time.monotonic()
        if self._rules is not None and now - self._checked_at < self.settings.engine_refresh_s:
            return self._rules
        with Session(self.engine) as session:
            version = service.engine_version(session=session)
            if self._rules is None or version != self._version:
                self._rules = load_rule_engine(session, self.settings, self.zone, self.permits)
                self._vehicles.clear()  # scopes are cached per vehicle inside the fence set
                self._version = version
                log.info("rules loaded: %d fences", len(self._rules.fences.fences))
        self._checked_at = now
        return self._rules

    def evaluate(self, batch: FixBatch, starts: np.ndarray) -> Outcome:
        rules = self._refresh()
        columns = fix_columns(batch)
        tracks = fixes_by_vehicle(batch, starts, columns)
        missing = [v for v in tracks if v not in self._states]
        if missing:
            for vehicle_id, raw in zip(
                missing, self.redis.hmget(RULE_STATES, missing), strict=True
            ):
                if raw:
                    self._states[vehicle_id] = json.loads(raw)
        unknown = [v for v in tracks if v not in self._vehicles]
        if unknown:
            with Session(self.engine) as session:
                self._vehicles.update(service.vehicle_infos(session=session, vehicle_ids=unknown))
        return rules.run(tracks, self._states, self._vehicles, columns)

    def write(self, conn: psycopg.Connection[Any], pending: Outcome) -> None:
        store.upsert_alerts(conn, pending.alerts)

    def after_commit(self, pipe: RedisPipeline, pending: Outcome) -> None:
        if pending.states:
            pipe.hset(RULE_STATES, mapping={v: state_json(s) for v, s in pending.states.items()})
        if pending.alerts:
            pipe.hincrby(stream.COUNTERS, "alert_events", len(pending.alerts))
        if pending.evaluated:
            pipe.hincrby(stream.COUNTERS, "rules_evaluated", pending.evaluated)
        if pending.late:
            pipe.hincrby(stream.COUNTERS, "rules_late_fix", pending.late)
        if pending.uncovered_days:
            pipe.hincrby(stream.COUNTERS, "rules_calendar_gap", len(pending.uncovered_days))

    def committed(self, pending: Outcome) -> None:
        self._states.update(pending.states)
        if pending.alerts:
            items = [store.live_item(r) for r in pending.alerts]
            try:
                self.redis.publish(channels.ALERTS, json.dumps({"type": "alerts", "items": items}))
            except RedisError as error:  # stored and acknowledged: only the push is lost
                log.warning("alerts not announced live: %s", error)
        for day in sorted(pending.uncovered_days - self._reported_days):
            # Loud, once per day and worker: the off-hours rules are silent for these fixes.
            log.error(
                "the working calendar does not cover %s: off-hours and no-order checks are"
                " suspended for it; enter the year from the State Council's notice (the"
                " administration page's working calendar, or `fleet calendar import`)",
                date_of(day).isoformat(),
            )
            self._reported_days.add(day)


def warn_calendar_years(
    engine: Engine, *, settings: GeofenceSettings, zone: ZoneInfo, now: datetime | None = None
) -> list[dict[str, Any]]:
    """Worker 0's daily look ahead (fleet.maintenance): a warning in the log for each year the
    working calendar lacks from `calendar_warning_days` before it starts, while the rules
    still have days to go (the per-fix error above comes only once they are silent)."""
    today = (now or utcnow()).astimezone(zone).date()
    with make_session_factory(engine)() as session:
        status = service.calendar_status(
            session=session, today=today, warning_days=settings.calendar_warning_days
        )
    for warning in status["warnings"]:
        log.warning("%s", warning["message"])
    return list(status["warnings"])
