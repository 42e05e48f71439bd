"""Alerts about terminals: a JT/T 808 registration refused because another terminal holds the
number (`device_identity_mismatch`), for supervisors to review like any other alert.

The telematics gateway cannot import this domain; it defines `telematics.terminals.MismatchSink`
and the composition root (`fleet gateway`) plugs `IdentityAlerts` into it.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from fleet import channels
from fleet.redis_client import RedisClient
from geofence import store
from geofence.engine import AlertRecord
from geofence.rules.base import Event
from telematics.terminals import Mismatch

KIND = "device_identity_mismatch"
# Attempts on one vehicle's number are one episode while it waits for review and the impostor
# keeps trying at least once a day: an attacker who retries (or varies what it claims) fills
# one alert, not the queue.
EPISODE_GAP = timedelta(days=1)
_OPEN_EPISODE = (
    "SELECT extract(epoch FROM started_at) FROM alert"
    " WHERE vehicle_id = %s AND kind = %s AND key = '' AND review = 'pending'"
    " AND last_at > %s ORDER BY started_at DESC LIMIT 1"
)


def alert_record(mismatch: Mismatch, started: datetime | None = None) -> AlertRecord:
    """The alert for a refused registration: what the impostor claimed, what the device holds,
    and where the attempt came from."""
    at = mismatch.at.timestamp()
    measured: dict[str, Any] = {
        "phone": mismatch.phone,
        "remote_addr": mismatch.remote_addr,
        "claimed": mismatch.claimed.as_dict(),
        "bound": mismatch.bound.as_dict() if mismatch.bound is not None else None,
        "expected_terminal_id": mismatch.expected_terminal_id,
        "device_id": mismatch.device_id,
    }
    event = Event(
        kind=KIND,
        key="",
        started_t=started.timestamp() if started is not None else at,
        last_t=at,
        ended_t=at,
        severity="critical",
        lat=None,
        lon=None,
        measured=measured,
    )
    return AlertRecord(
        vehicle_id=mismatch.vehicle_id,
        unit_id=mismatch.unit_id,
        order_id=None,
        driver_id=None,
        event=event,
        thresholds={},
    )


class IdentityAlerts:
    """`telematics.terminals.MismatchSink`: each refused impostor into the alert queue, through
    the one alert writer, and onto the live alert channel."""

    def __init__(self, engine: Engine, redis: RedisClient | None = None) -> None:
        self.engine = engine
        self.redis = redis

    def report(self, mismatch: Mismatch) -> None:
        with self.engine.begin() as sa_conn:
            conn: Any = sa_conn.connection.driver_connection
            with conn.cursor() as cur:
                cur.execute(_OPEN_EPISODE, (mismatch.vehicle_id, KIND, mismatch.at - EPISODE_GAP))
                found = cur.fetchone()
            started = datetime.fromtimestamp(float(found[0]), mismatch.at.tzinfo) if found else None
            record = alert_record(mismatch, started)
            store.upsert_alerts(conn, [record])
        if self.redis is not None:
            message = {"type": "alerts", "items": [store.live_item(record)]}
            self.redis.publish(channels.ALERTS, json.dumps(message))
