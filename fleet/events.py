"""Announcements that go out only once the transaction that made them has committed.

A service calls `announce(session, channel, message)`; the message waits in the session and is
published to Redis after the commit (and dropped on a rollback), so nobody hears of a change that
did not happen. `install(factory, redis)` wires a session factory to a Redis client.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from redis.exceptions import RedisError
from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker

from fleet.redis_client import RedisClient

log = logging.getLogger("fleet.events")
_KEY = "fleet.announce"


def announce(session: Session, channel: str, message: dict[str, Any]) -> None:
    session.connection()  # begin the transaction now, so that its rollback is always seen
    session.info.setdefault(_KEY, []).append((channel, message))


def pending(session: Session) -> list[tuple[str, dict[str, Any]]]:
    return list(session.info.get(_KEY, []))


def install(factory: sessionmaker[Session], redis: RedisClient) -> None:
    def publish(session: Session) -> None:
        for channel, message in session.info.pop(_KEY, []):
            try:
                redis.publish(channel, json.dumps(message, default=str, ensure_ascii=False))
            except RedisError as error:  # the change is committed; only the push is lost
                log.warning("could not announce on %s: %s", channel, error)

    def forget(session: Session, previous: SessionTransaction) -> None:
        # Any rollback but a savepoint's (a caught duplicate, say) drops what was announced,
        # including rollback() on a session that had not yet touched the database.
        if not previous.nested:
            session.info.pop(_KEY, None)

    event.listen(factory, "after_commit", publish)
    event.listen(factory, "after_soft_rollback", forget)
