"""Pinned clocks for the processes a test starts (`fleet seed demo`, a whole stack), with
libfaketime from Debian's `faketime` package (make bootstrap installs it).

The clock is moved by a relative offset, not set to an instant: every process started with the
same offset agrees on the time, however far apart they start, and the clock still runs."""

from __future__ import annotations

import os
import shutil
import time
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

CHINA = ZoneInfo("Asia/Shanghai")
# The days on which the rules change what they do, as the issue that pinned them named them.
SATURDAY = datetime(2026, 12, 5, 10, 0, tzinfo=CHINA)
NATIONAL_DAY = datetime(2026, 10, 1, 10, 0, tzinfo=CHINA)
ADJUSTED_WORKING_SATURDAY = datetime(2026, 2, 14, 10, 0, tzinfo=CHINA)  # before Spring Festival
LATE_ON_A_WORKING_DAY = datetime(2026, 12, 3, 23, 30, tzinfo=CHINA)  # a Thursday
PINNED = {
    "saturday": SATURDAY,
    "national-day": NATIONAL_DAY,
    "adjusted-working-saturday": ADJUSTED_WORKING_SATURDAY,
    "23:30-working-day": LATE_ON_A_WORKING_DAY,
}


def real_time() -> float:
    """The wall clock, also when the suite itself runs under faketime (`make test-any-day` moves
    it by a relative offset in seconds, FAKETIME="+N"/"-N"): a child's own offset replaces the
    suite's, so it is counted from the real clock."""
    outer = os.environ.get("FAKETIME", "")
    try:
        shift = float(outer) if outer[:1] in ("+", "-") else 0.0
    except ValueError:
        shift = 0.0
    return time.time() - shift


def faketime(at: datetime) -> list[str]:
    """The command prefix that starts a process whose clock reads `at` now and runs on.

    When the suite itself runs under libfaketime (`make test-any-day`), its preloads (libfaketime
    and the timed-wait shim) pass to the child already, and only the offset is replaced; the
    `faketime` wrapper would preload libfaketime alone and run the command as its own child."""
    offset = f"{round(at.timestamp() - real_time()):+d}"
    if "faketime" in os.environ.get("LD_PRELOAD", ""):
        return ["env", f"FAKETIME={offset}"]
    binary = shutil.which("faketime")
    if binary is None:
        pytest.fail("faketime is missing: make bootstrap installs Debian's faketime package")
    return [binary, "-f", offset]
