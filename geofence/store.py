"""The one alert writer. Alerts go into PostGIS one row per episode, upserted by its identity
(vehicle, kind, key, start), so a batch evaluated twice or a replay of the same fixes lands on the
same rows, and an older view of an episode never overwrites a newer one. The ingest worker and the
gateways' refused-terminal alerts write on their own connection (`upsert_alerts`) and publish
`live_item`s themselves; the fuel checks write in their session's transaction (`write`), which
announces the same items once it commits. Either way a trigger on `alert` (migration 0016) puts
an outbox event in the writer's transaction when an episode opens or ends."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import psycopg
from sqlalchemy.orm import Session

from fleet import audit, channels, events
from geofence.engine import AlertRecord

UPSERT = (
    "INSERT INTO alert (kind, key, severity, vehicle_id, unit_id, driver_id, order_id, fence_id,"
    " started_at, last_at, ended_at, point, measured, thresholds)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, to_timestamp(%s), to_timestamp(%s),"
    " to_timestamp(%s), CASE WHEN %s::float8 IS NULL THEN NULL"
    " ELSE ST_SetSRID(ST_MakePoint(%s, %s), 4326) END, %s::jsonb, %s::jsonb)"
    " ON CONFLICT ON CONSTRAINT uq_alert_episode DO UPDATE SET"
    # An older view of the episode (a batch evaluated again) never overwrites a newer one.
    " severity = CASE WHEN EXCLUDED.last_at >= alert.last_at THEN EXCLUDED.severity"
    " ELSE alert.severity END,"
    " ended_at = CASE WHEN EXCLUDED.last_at >= alert.last_at THEN EXCLUDED.ended_at"
    " ELSE alert.ended_at END,"
    " measured = CASE WHEN EXCLUDED.last_at >= alert.last_at THEN EXCLUDED.measured"
    " ELSE alert.measured END,"
    " order_id = coalesce(alert.order_id, EXCLUDED.order_id),"
    " driver_id = coalesce(alert.driver_id, EXCLUDED.driver_id),"
    " last_at = greatest(alert.last_at, EXCLUDED.last_at),"
    " updated_at = now()"
)


def _params(record: AlertRecord) -> tuple[Any, ...]:
    event = record.event
    return (
        event.kind,
        event.key,
        event.severity,
        record.vehicle_id,
        record.unit_id,
        record.driver_id,
        record.order_id,
        event.fence_id,
        event.started_t,
        event.last_t,
        event.ended_t,
        event.lon,
        event.lon,
        event.lat,
        json.dumps(event.measured),
        json.dumps(record.thresholds),
    )


def _hold_chain(cur: psycopg.Cursor[Any]) -> None:
    """The audit chain's lock, before any alert row: the trigger on `alert` writes the outbox
    under it (fleet/outbox.py), and a review takes it before the alert's row as well, so the two
    locks are always taken in the same order."""
    cur.execute("SELECT pg_advisory_xact_lock(%s)", (audit.CHAIN_LOCK,))


def upsert_alerts(conn: psycopg.Connection[Any], records: Sequence[AlertRecord]) -> None:
    if not records:
        return
    with conn.cursor() as cur:
        _hold_chain(cur)
        cur.executemany(UPSERT, [_params(r) for r in records])


def live_item(record: AlertRecord) -> dict[str, Any]:
    """An alert as the live channel publishes it."""
    event = record.event
    return {
        "vehicle_id": record.vehicle_id,
        "unit_id": record.unit_id,
        "kind": event.kind,
        "key": event.key,
        "severity": event.severity,
        "fence_id": event.fence_id,
        "order_id": record.order_id,
        "started_t": event.started_t,
        "ended_t": event.ended_t,
        "lat": event.lat,
        "lon": event.lon,
        "measured": event.measured,
    }


def write(session: Session, records: Sequence[AlertRecord]) -> list[int]:
    """The same writer in a session's transaction, for alerts raised by a request or a command
    (the fuel checks): the same statement and conflict rule, the ids back in
    the records' order, and the same live item (with its id) announced once the transaction
    commits."""
    if not records:
        return []
    conn: psycopg.Connection[Any] = session.connection().connection.driver_connection  # type: ignore[assignment]
    ids: list[int] = []
    with conn.cursor() as cur:
        _hold_chain(cur)
        cur.executemany(UPSERT + " RETURNING id", [_params(r) for r in records], returning=True)
        while True:
            row = cur.fetchone()
            assert row is not None
            ids.append(int(row[0]))
            if not cur.nextset():
                break
    items = [{**live_item(r), "id": i} for r, i in zip(records, ids, strict=True)]
    events.announce(session, channels.ALERTS, {"type": "alerts", "items": items})
    return ids
