"""The worker's periodic maintenance, beside ingest: positions past their retention deleted
daily (telematics.retention.prune_expired, wired by the CLI), a year the working calendar lacks
warned of daily (geofence.worker.warn_calendar_years), and (with a signing key) the audit
chain's head checkpointed outside the database every FLEET_AUDIT_CHECKPOINT_INTERVAL_MIN. All
run in worker 0 only, on a thread of their own with their own sessions; a failure is logged and
tried again at the next turn, never stopping ingest."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Engine

from fleet import checkpoint
from fleet.db import make_session_factory, utcnow
from fleet.settings import Settings

log = logging.getLogger("fleet.maintenance")

DAY_S = 86_400.0


def checkpoint_audit(engine: Engine, settings: Settings) -> checkpoint.Checkpoint:
    """Appends a signed checkpoint of the audit chain's head (the key is read each time, so a
    rotated key file is picked up)."""
    key = checkpoint.load_private_key(Path(settings.audit_signing_key_file))
    with make_session_factory(engine)() as session:
        head = checkpoint.write(
            session=session, key=key, path=Path(settings.audit_checkpoint_file), at=utcnow()
        )
    log.info("audit checkpoint: entry %d, %d entries", head.entry_id, head.count)
    return head


class Periodic:
    """Jobs that each run at once and then every `interval_s`, until `stop` is set."""

    def __init__(self, stop: threading.Event, tick_s: float = 30.0) -> None:
        self.stop = stop
        self.tick_s = tick_s
        self.jobs: list[tuple[str, float, Callable[[], object]]] = []

    def every(self, interval_s: float, name: str, job: Callable[[], object]) -> None:
        self.jobs.append((name, interval_s, job))

    def run(self) -> None:
        due = {name: 0.0 for name, _, _ in self.jobs}
        while not self.stop.is_set():
            for name, interval_s, job in self.jobs:
                if time.monotonic() >= due[name]:
                    try:
                        job()
                    except Exception:
                        log.exception("maintenance job %s failed; tried again later", name)
                    due[name] = time.monotonic() + interval_s
            self.stop.wait(self.tick_s)

    def start(self) -> threading.Thread | None:
        if not self.jobs:
            return None
        thread = threading.Thread(target=self.run, name="fleet-maintenance", daemon=True)
        thread.start()
        return thread
