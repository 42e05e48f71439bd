"""Progress of long commands off a terminal (app/cli/progress.py): a log line with the count, the
share, the rate and the time left, at most every LOG_EVERY_S seconds, and always at the end."""

from __future__ import annotations

import logging

import pytest

from app.cli.progress import LOG_EVERY_S, _Lines, progress


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 5_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def logged(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """The progress lines logged (`.messages`)."""
    caplog.set_level(logging.INFO, logger="fleet.progress")
    return caplog


def test_a_line_tells_the_count_share_rate_and_time_left(logged: pytest.LogCaptureFixture):
    clock = Clock()
    lines = _Lines("archiving 2026-08", "rows", clock=clock)
    lines(0, 12_000)
    clock.now += 30
    lines(3_000, 12_000)
    assert logged.messages == [
        "archiving 2026-08: 0/12,000 rows (0 %), 0 rows/s",
        "archiving 2026-08: 3,000/12,000 rows (25 %), 100 rows/s, about 1:30 left",
    ]


def test_hours_left_are_written_with_hours(logged: pytest.LogCaptureFixture):
    clock = Clock()
    lines = _Lines("replaying", "vehicles", clock=clock)
    clock.now += 60
    lines(12, 30_000)  # 0.2 a second: 29,988 left take 41 h 39 min
    assert logged.messages == [
        "replaying: 12/30,000 vehicles (0 %), 0 vehicles/s, about 41:39:00 left"
    ]


def test_lines_come_at_most_every_log_every_s_and_always_at_the_end(
    logged: pytest.LogCaptureFixture,
):
    clock = Clock()
    lines = _Lines("reading roads", "ways", clock=clock)
    for done in range(0, 900, 10):  # 20 calls in each LOG_EVERY_S
        lines(done, 1_000)
        clock.now += LOG_EVERY_S / 20
    shown = [int(line.split(": ")[1].split("/")[0].replace(",", "")) for line in logged.messages]
    assert shown == [0, 200, 400, 600, 800]
    lines(1_000, 1_000)  # the end, half LOG_EVERY_S after the last line
    assert logged.messages[-1].startswith("reading roads: 1,000/1,000 ways (100 %), ")
    assert lines.line == logged.messages[-1]


def test_off_a_terminal_the_block_reports_by_log_lines(logged: pytest.LogCaptureFixture):
    with progress("storing the roads", "ways", terminal=False) as report:
        report(7, 7)
    assert len(logged.messages) == 1
    assert logged.messages[0].startswith("storing the roads: 7/7 ways (100 %), ")


def test_on_a_terminal_the_block_draws_a_bar(
    logged: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
):
    with progress("storing the roads", "ways", terminal=True) as report:
        report(3, 7)
        report(7, 7)
    bar = capsys.readouterr().err
    assert "storing the roads: 100%" in bar
    assert "7.00/7.00" in bar
    assert logged.messages == []
