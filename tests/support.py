"""The waits and ports the tests share: a free TCP port, a condition polled until it holds, and a
started process waited for until it answers (on `/healthz`, or on a TCP port).

Each wait has a deadline that is a liveness bound, never a speed claim: it is minutes where the
thing takes seconds, and it fails naming what did not happen and where its log is."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import httpx2 as httpx

T = TypeVar("T")


def free_port() -> int:
    """A TCP port nothing listens on now (the OS picks it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until(check: Callable[[], T], what: str, timeout: float = 20, every: float = 0.2) -> T:
    """Polls `check` until it returns something truthy, and returns that."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(every)


def _alive(children: Iterable[subprocess.Popen[Any]], what: str, log: object) -> None:
    for child in children:
        if child.poll() is not None:
            raise RuntimeError(f"{what} exited ({child.returncode}); see {log}")


def _wait_started(
    ready: Callable[[], bool],
    what: str,
    children: Iterable[subprocess.Popen[Any]],
    log: object,
    timeout: float,
) -> None:
    """Until `ready()`; fails early, naming `log`, when a child exits, and at the deadline."""
    children = list(children)

    def check() -> bool:
        _alive(children, what, log)
        return ready()

    try:
        wait_until(check, what, timeout)
    except AssertionError:
        raise RuntimeError(f"{what} did not start; see {log}") from None


def wait_healthy(
    url: str, children: Iterable[subprocess.Popen[Any]], log: object, timeout: float = 60
) -> None:
    """Until `url`/healthz answers 200; fails early, naming `log`, when a child exits."""

    def healthy() -> bool:
        try:
            return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    _wait_started(healthy, f"the server at {url}", children, log, timeout)


def wait_port(
    port: int, children: Iterable[subprocess.Popen[Any]], log: object, timeout: float = 60
) -> None:
    """Until something accepts connections on 127.0.0.1:`port`; fails early when a child exits."""

    def listening() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            return False

    _wait_started(listening, f"the process listening on port {port}", children, log, timeout)
