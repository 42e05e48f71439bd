"""The worker's periodic maintenance: each job runs at once, then on its interval; a failing job
is logged and does not stop the others."""

from __future__ import annotations

import threading

from fleet.maintenance import Periodic


def test_jobs_run_at_once_and_a_failure_does_not_stop_the_others():
    stop = threading.Event()
    ran: list[str] = []

    def broken() -> None:
        ran.append("broken")
        raise RuntimeError("store away")

    def fine() -> None:
        ran.append("fine")
        if ran.count("fine") == 2:
            stop.set()

    periodic = Periodic(stop, tick_s=0.01)
    periodic.every(0.0, "broken", broken)
    periodic.every(0.0, "fine", fine)
    thread = periodic.start()
    assert thread is not None
    thread.join(timeout=5)
    assert ran == ["broken", "fine", "broken", "fine"]


def test_nothing_to_do_starts_no_thread():
    assert Periodic(threading.Event()).start() is None
