"""Progress of long commands (an archived month, a restore, a replay, a big import): a bar on a
terminal (tqdm), and otherwise a log line at most every LOG_EVERY_S seconds with the count, the
rate and the time left, so a job run from cron or systemd says how far it is."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

log = logging.getLogger("fleet.progress")

LOG_EVERY_S = 10.0


class Report(Protocol):
    def __call__(self, done: int, total: int) -> None: ...


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class _Lines:
    """Log lines: `what: done/total unit (n %), rate/s, about m:ss left`."""

    def __init__(self, what: str, unit: str, clock: Any = time.monotonic) -> None:
        self.what, self.unit, self.clock = what, unit, clock
        self.started = clock()
        self.last = -LOG_EVERY_S
        self.line = ""

    def __call__(self, done: int, total: int) -> None:
        now = self.clock()
        if now - self.last < LOG_EVERY_S and done < total:
            return
        self.last = now
        elapsed = max(now - self.started, 1e-9)
        rate = done / elapsed
        share = f" ({100 * done / total:.0f} %)" if total else ""
        left = f", about {_duration((total - done) / rate)} left" if rate and done < total else ""
        self.line = (
            f"{self.what}: {done:,}/{total:,} {self.unit}{share}, {rate:,.0f} {self.unit}/s{left}"
        )
        log.info("%s", self.line)


@contextmanager
def progress(what: str, unit: str, *, terminal: bool | None = None) -> Iterator[Report]:
    """A `(done, total)` callback showing the work's progress until the block ends."""
    if terminal is None:
        terminal = sys.stderr.isatty()
    if not terminal:
        yield _Lines(what, unit)
        return
    from tqdm import tqdm

    with tqdm(desc=what, unit=f" {unit}", unit_scale=True, file=sys.stderr) as bar:

        def report(done: int, total: int) -> None:
            if bar.total != total:
                bar.total = total
            bar.update(done - bar.n)

        yield report
