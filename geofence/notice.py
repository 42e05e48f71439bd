"""The State Council's holiday notice (国务院办公厅关于 N 年部分节假日安排的通知) read into a year's
days off and adjusted working days. Pure: text in, dates out; the service previews and saves.

A notice gives each holiday a line of its own:

    二、春节：2月15日（农历腊月二十八、周日）至23日（农历正月初七、周一）放假调休，共9天。
    2月14日（周六）、2月28日（周六）上班。

Dates before 放假 are days off, dates before 上班 are working days (调休上班); a weekday in brackets
is checked against the date, and 共N天 against the days counted, so a mistyped date is an error
naming its line rather than a wrong calendar. Full-width and half-width digits and punctuation
read alike. Lines that name no holiday (the title, the salutation, the preamble, the closing and
the signature) are returned as ignored, for the preview to show.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from dataclasses import dataclass, field

# The holidays of the 全国年节及纪念日放假办法; a notice without one of them is suspicious.
STANDARD = ("元旦", "春节", "清明节", "劳动节", "端午节", "中秋节", "国庆节")
MAX_RANGE_DAYS = 31
MAX_LINES = 500
WEEKDAYS = {"一": 1, "二": 2, "三": 3, "四": 4, "五": 5, "六": 6, "日": 7, "天": 7}
WEEKDAY_NAMES = ("", "周一", "周二", "周三", "周四", "周五", "周六", "周日")

# After NFKC: （）：，；～ are ( ) : , ; ~ and the digits are ASCII; 、 and 。 stay as they are.
NUMBERING = re.compile(
    r"^(?:[一二三四五六七八九十]+\s*[、.]|\(\s*[一二三四五六七八九十\d]+\s*\)|\d+\s*[、.)])\s*"
)
ITEM = re.compile(r"^(?P<name>[^\d:,;。()]{1,16}?)\s*:\s*(?P<body>.*)$")
TITLE_YEAR = re.compile(r"关于\s*(\d{4})\s*年.*节假日")
_DATE = r"(?:(?P<y{n}>\d{{4}})\s*年\s*)?(?:(?P<m{n}>\d{{1,2}})\s*月\s*)?(?P<d{n}>\d{{1,2}})\s*日"
_NOTE = r"(?:\s*\((?P<note{n}>[^()]*)\))?"
TOKEN = re.compile(
    "(?P<span>"
    + _DATE.format(n=1)
    + _NOTE.format(n=1)
    + r"(?:\s*(?:至|到|~|-|—|–)\s*"
    + _DATE.format(n=2)
    + _NOTE.format(n=2)
    + ")?)"
    r"|(?P<paren>\([^()]*\))"
    r"|放假\s*(?P<off_count>\d+)\s*天"
    r"|(?P<off>放假)"
    r"|(?P<work>上班)"
    r"|共\s*(?P<count>\d+)\s*天"
)
HAS_DATE = re.compile(r"\d{1,2}\s*日")
WEEKDAY_NOTE = re.compile(r"(?:周|星期|礼拜)([一二三四五六日天])")
SENTENCE_END = re.compile(r"[。;]")


@dataclass(frozen=True)
class Holiday:
    """One holiday line: its name as the notice writes it (国庆节、中秋节), its line number."""

    name: str
    line: int
    days_off: tuple[dt.date, ...]
    working_days: tuple[dt.date, ...]


@dataclass(frozen=True)
class Remark:
    """Something the preview should show the administrator: `code` names it for the pages."""

    code: str
    message: str
    line: int | None = None
    day: dt.date | None = None
    name: str | None = None  # the holiday it is about


@dataclass(frozen=True)
class Problem:
    line: int
    text: str
    reason: str


@dataclass(frozen=True)
class Notice:
    year: int
    holidays: tuple[Holiday, ...]
    warnings: tuple[Remark, ...] = ()
    ignored: tuple[tuple[int, str], ...] = ()  # (line number, text) of lines naming no holiday


class NoticeInvalid(ValueError):
    """The notice cannot be read: `problems` names each bad line (empty when the text as a
    whole is at fault, as the message says)."""

    def __init__(self, message: str, problems: list[Problem] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.problems = problems or []


class _LineError(ValueError):
    pass


@dataclass
class _Item:
    """A holiday line being read. A date without its year is in the notice's (`year`); one
    without its month (至3日) is in the month of the date before it."""

    year: int
    month: int | None = None
    off: list[dt.date] = field(default_factory=list)
    work: list[dt.date] = field(default_factory=list)
    warnings: list[Remark] = field(default_factory=list)


def normalise(text: str) -> str:
    """Full-width letters, digits and punctuation as half-width (NFKC), spaces squeezed."""
    text = unicodedata.normalize("NFKC", text).replace("\u3000", " ")
    return re.sub(r"[ \t]+", " ", text).strip()


def _date(match: re.Match[str], n: int, item: _Item) -> dt.date:
    year = int(match[f"y{n}"]) if match[f"y{n}"] else item.year
    month = int(match[f"m{n}"]) if match[f"m{n}"] else item.month
    day = int(match[f"d{n}"])
    if month is None:
        raise _LineError(f"{day}日 has no month before it")
    try:
        date = dt.date(year, month, day)
    except ValueError:
        raise _LineError(f"{month}月{day}日 is not a date of {year}") from None
    note = match[f"note{n}"]
    weekday = WEEKDAY_NOTE.search(note or "")
    if weekday and WEEKDAYS[weekday[1]] != date.isoweekday():
        raise _LineError(
            f"{month}月{day}日 is written as {weekday[0]} but is a"
            f" {WEEKDAY_NAMES[date.isoweekday()]} in {year}"
        )
    item.month = month
    return date


def _span(match: re.Match[str], item: _Item) -> list[dt.date]:
    start = _date(match, 1, item)
    if match["d2"] is None:
        return [start]
    end = _date(match, 2, item)
    if end < start and not match["y1"] and (start.month, end.month) == (12, 1):
        # 12月31日至1月2日 in the notice of the year the range ends in
        start = start.replace(year=start.year - 1)
    if end < start:
        raise _LineError(f"the range {match['span'].strip()} ends before it starts")
    length = (end - start).days + 1
    if length > MAX_RANGE_DAYS:
        raise _LineError(f"the range {match['span'].strip()} is {length} days long")
    return [start + dt.timedelta(days=i) for i in range(length)]


def _sentence(text: str, item: _Item, line: int) -> None:
    """Dates pending until a 放假 (days off) or 上班 (working days) claims them."""
    pending: list[dt.date] = []
    last_off: list[dt.date] | None = None
    keyword = False
    for match in TOKEN.finditer(text):
        if match["span"]:
            pending += _span(match, item)
        elif match["off"] or match["off_count"]:
            keyword = True
            if not pending:
                raise _LineError("放假 with no date before it")
            item.off += pending
            last_off, pending = pending, []
            if match["off_count"]:
                _check_count(int(match["off_count"]), last_off, text, item, line)
        elif match["work"]:
            keyword = True
            if not pending:
                raise _LineError("上班 with no date before it")
            item.work += pending
            pending = []
        elif match["count"] and last_off is not None:
            _check_count(int(match["count"]), last_off, text, item, line)
    if pending and keyword:
        raise _LineError(
            f"{_days(pending)} {'is' if len(pending) == 1 else 'are'} followed by neither"
            " 放假 nor 上班"
        )
    if pending:
        item.warnings.append(
            Remark(
                "ignored_sentence",
                f"line {line}: 「{text}」 names {_days(pending)} without 放假 or 上班; it was"
                " not read",
                line=line,
            )
        )


def _check_count(stated: int, days: list[dt.date], text: str, item: _Item, line: int) -> None:
    if stated == len(days):
        return
    message = f"共{stated}天, but the dates before it are {len(days)} days"
    if "连休" in text:
        # 与中秋节连休: the count may take in the days of the holiday it joins.
        item.warnings.append(Remark("count_differs", f"line {line}: {message}", line=line))
        return
    raise _LineError(message)


def _days(days: list[dt.date]) -> str:
    if len(days) > 2 and (days[-1] - days[0]).days == len(days) - 1:
        return f"{days[0].month}月{days[0].day}日至{days[-1].month}月{days[-1].day}日"
    return "、".join(f"{d.month}月{d.day}日" for d in days)


def _read_item(name: str, body: str, year: int, line: int) -> tuple[Holiday, list[Remark]]:
    item = _Item(year=year)
    for sentence in SENTENCE_END.split(body):
        if sentence.strip():
            _sentence(sentence.strip(), item, line)
    if not item.off and not item.work:
        raise _LineError("no date followed by 放假 or 上班")
    return (
        Holiday(name=name, line=line, days_off=tuple(item.off), working_days=tuple(item.work)),
        item.warnings,
    )


def _lines(text: str) -> list[tuple[int, str]]:
    """Non-blank lines with their numbers; a holiday line wrapped mid-sentence (it does not end
    with 。, and the next line starts no new item) is joined with its continuation."""
    joined: list[tuple[int, str]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = normalise(raw)
        if not line:
            continue
        if (
            joined
            and not joined[-1][1].endswith("。")
            and _is_item(joined[-1][1])
            and not NUMBERING.match(line)
            and not ITEM.match(line)
        ):
            joined[-1] = (joined[-1][0], joined[-1][1] + line)
            continue
        joined.append((number, line))
    return joined


def _is_item(line: str) -> bool:
    rest = NUMBERING.sub("", line, count=1)
    found = ITEM.match(rest)
    return bool(found and HAS_DATE.search(found["body"]) and _named(found["name"]))


def _named(name: str) -> bool:
    return bool(re.search(r"[\u4e00-\u9fff]", name)) and not re.search(r"\s", name.strip())


def parse(text: str, *, year: int) -> Notice:
    """The notice's holidays for `year`; raises NoticeInvalid naming every line it cannot read."""
    lines = _lines(text)
    if len(lines) > MAX_LINES:
        raise NoticeInvalid(f"the text has {len(lines)} lines; a notice has fewer than {MAX_LINES}")
    holidays: list[Holiday] = []
    warnings: list[Remark] = []
    ignored: list[tuple[int, str]] = []
    problems: list[Problem] = []
    for number, line in lines:
        title = TITLE_YEAR.search(line)
        if title and int(title[1]) != year:
            problems.append(Problem(number, line, f"this is the notice for {title[1]}, not {year}"))
            continue
        numbered = NUMBERING.match(line)
        rest = line[numbered.end() :] if numbered else line
        found = ITEM.match(rest)
        is_item = bool(found and _named(found["name"]) and HAS_DATE.search(found["body"]))
        if not is_item:
            if numbered:
                reason = (
                    "no date in it"
                    if found and _named(found["name"])
                    else "expected the holiday's name, a colon and its dates"
                    " (二、春节：2月15日至23日放假)"
                )
                problems.append(Problem(number, line, reason))
            else:
                ignored.append((number, line))
            continue
        assert found is not None
        try:
            holiday, remarks = _read_item(found["name"].strip(), found["body"], year, number)
        except _LineError as error:
            problems.append(Problem(number, line, str(error)))
            continue
        holidays.append(holiday)
        warnings += remarks
    if problems:
        raise NoticeInvalid(
            f"{len(problems)} line{'s' if len(problems) > 1 else ''} of the notice cannot be read",
            problems,
        )
    if not holidays:
        raise NoticeInvalid(
            "no holiday line found: paste the notice's lines such as"
            " 一、元旦：1月1日（周四）至3日（周六）放假调休，共3天。1月4日（周日）上班。"
        )
    warnings += _checks(holidays, year, dict(lines), problems)
    if problems:
        raise NoticeInvalid("the notice contradicts itself", problems)
    return Notice(year, tuple(holidays), tuple(warnings), tuple(ignored))


def _checks(
    holidays: list[Holiday], year: int, texts: dict[int, str], problems: list[Problem]
) -> list[Remark]:
    """Across the lines: no date both off and worked; remarks for what is odd but possible."""
    remarks: list[Remark] = []
    off: dict[dt.date, Holiday] = {}
    work: dict[dt.date, Holiday] = {}
    for holiday in holidays:
        for day in holiday.days_off:
            if day in work:
                problems.append(_conflict(holiday, day, work[day], texts, "a working day"))
            elif day in off and off[day] is not holiday:
                remarks.append(
                    Remark(
                        "listed_twice",
                        f"line {holiday.line}: {day} is already a day off on line {off[day].line}",
                        line=holiday.line,
                        day=day,
                    )
                )
            off.setdefault(day, holiday)
        for day in holiday.working_days:
            if day in off:
                problems.append(_conflict(holiday, day, off[day], texts, "a day off"))
                continue
            work[day] = holiday
            if day.isoweekday() <= 5:
                remarks.append(
                    Remark(
                        "working_weekday",
                        f"line {holiday.line}: {day} is a {WEEKDAY_NAMES[day.isoweekday()]},"
                        " a working day anyway",
                        line=holiday.line,
                        day=day,
                    )
                )
    for day, holiday in sorted({**off, **work}.items()):
        if day.year != year:
            remarks.append(
                Remark(
                    "outside_year",
                    f"line {holiday.line}: {day} belongs to {day.year}, not to {year}'s calendar;"
                    f" it is left as {day.year} holds it",
                    line=holiday.line,
                    day=day,
                )
            )
    names = "、".join(h.name for h in holidays)
    for standard in STANDARD:
        if standard.removesuffix("节") not in names:
            remarks.append(
                Remark("missing_holiday", f"the notice names no {standard}", name=standard)
            )
    return remarks


def _conflict(
    holiday: Holiday, day: dt.date, other: Holiday, texts: dict[int, str], what: str
) -> Problem:
    return Problem(
        holiday.line,
        texts[holiday.line],
        f"{day} is {what} on line {other.line} ({other.name}) and cannot also be"
        f" {'a day off' if what == 'a working day' else 'a working day'}",
    )


def year_days(notice: Notice) -> list[tuple[dt.date, bool, str]]:
    """Every date of the notice's year: working or not, and why, noted as the seeded calendar
    notes them (the holiday's name, 周末, or …调休上班)."""
    off: dict[dt.date, str] = {}
    work: dict[dt.date, str] = {}
    for holiday in notice.holidays:
        for day in holiday.days_off:
            off.setdefault(day, holiday.name)
        for day in holiday.working_days:
            work[day] = holiday.name
    rows = []
    day = dt.date(notice.year, 1, 1)
    while day.year == notice.year:
        if day in off:
            rows.append((day, False, off[day]))
        elif day in work:
            rows.append((day, True, f"{work[day]}调休上班"))
        elif day.isoweekday() >= 6:
            rows.append((day, False, "周末"))
        else:
            rows.append((day, True, ""))
        day += dt.timedelta(days=1)
    return rows
