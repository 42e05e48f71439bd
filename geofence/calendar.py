"""Working time: the calendar of working and non-working days (with the adjusted working
weekends, 调休) and each unit's working hours. Pure; the service loads it from the database.

Days are counted as local epoch days (days since 1970-01-01 in the display zone), the form the
engine computes from each fix with one division.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

DAY = 86_400
EPOCH = dt.date(1970, 1, 1)


def epoch_day(day: dt.date) -> int:
    return (day - EPOCH).days


def date_of(epoch: int) -> dt.date:
    return EPOCH + dt.timedelta(days=epoch)


def year_length(year: int) -> int:
    """Days in a year: 366 in a leap year."""
    return (dt.date(year + 1, 1, 1) - dt.date(year, 1, 1)).days


def weekday(epoch: int) -> int:
    """ISO weekday (Monday 1 ... Sunday 7) of a local epoch day; 1970-01-01 was a Thursday."""
    return (epoch + 3) % 7 + 1


@dataclass
class LocalClock:
    """UTC epoch seconds -> local epoch seconds in a zone, the offset cached per hour."""

    zone: ZoneInfo
    _offsets: dict[int, int] = field(default_factory=dict)

    def local(self, t: float) -> float:
        hour = int(t // 3600)
        offset = self._offsets.get(hour)
        if offset is None:
            moment = dt.datetime.fromtimestamp(hour * 3600, dt.UTC).astimezone(self.zone)
            offset = int(moment.utcoffset().total_seconds())  # type: ignore[union-attr]
            if len(self._offsets) > 100_000:
                self._offsets.clear()
            self._offsets[hour] = offset
        return t + offset


@dataclass(frozen=True)
class WorkingCalendar:
    days: dict[int, bool]  # local epoch day -> working
    default_hours: tuple[int, int]  # (start, end) in seconds of the local day
    unit_hours: dict[int, tuple[int, int]] = field(default_factory=dict)


def official_days(years: range) -> list[tuple[dt.date, bool, str]]:
    """Every date of the years the `chinesecalendar` package knows: working or not, and why."""
    import chinese_calendar

    chinese = {h.value: h.chinese for h in chinese_calendar.Holiday}
    rows = []
    for year in years:
        day = dt.date(year, 1, 1)
        while day.year == year:
            try:
                holiday, name = chinese_calendar.get_holiday_detail(day)
            except NotImplementedError:
                break
            weekend = day.isoweekday() >= 6
            if holiday:
                note = chinese.get(name, name) if name else "周末"
            elif weekend:
                note = f"{chinese.get(name, name)}调休上班" if name else "调休上班"
            else:
                note = ""
            rows.append((day, not holiday, note))
            day += dt.timedelta(days=1)
    return rows
