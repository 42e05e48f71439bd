"""The State Council's holiday notice read into a year: the notices of 2020-2026 (typed into
tests/data/holiday-notices/ from the published dates) day by day against the `chinesecalendar`
package, the variety of how the lines are written, and the errors that name a line."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geofence import notice
from geofence.calendar import official_days

NOTICES = Path(__file__).resolve().parents[1] / "data" / "holiday-notices"
D = dt.date

# The notice of November 2019 is what 2020 was planned by; on 26 January 2020 a second notice
# (国办发明电〔2020〕1号, against the epidemic) lengthened the Spring Festival to 2 February, and
# `chinesecalendar` holds the year as lengthened. The original notice's days, which the parser
# must give, differ from it on these dates and no other: (working here, working there).
EXTENDED_2020 = {
    D(2020, 1, 31): (True, False),  # a Friday: worked in the plan, off once lengthened
    D(2020, 2, 1): (True, False),  # a Saturday worked (调休上班) in the plan, off once lengthened
    D(2020, 2, 2): (False, False),  # a Sunday, off either way, named 春节 once lengthened
}
# Weekend dates that `chinesecalendar` names after a holiday of the notice of another year
# (元旦 beginning on the 31 December before it, 与周末连休 of the next year); this year's notice
# does not name them, so they stay 周末 (and off) here.
NAMED_BY_ANOTHER_NOTICE = {
    D(2022, 12, 31): "元旦",  # 2023's 元旦: 2022年12月31日至2023年1月2日
    D(2023, 12, 30): "元旦",  # 2024's 元旦: 1月1日放假，与周末连休
    D(2023, 12, 31): "元旦",
}
# How `chinesecalendar` names the holidays: 清明 for the notices' 清明节, and so on.
SHORT = {"清明节": "清明", "端午节": "端午", "中秋节": "中秋"}


def read(year: int) -> str:
    return (NOTICES / f"{year}.txt").read_text(encoding="utf-8")


def holiday_names(note: str) -> set[str]:
    """The holidays a note names: 国庆节、中秋节调休上班 -> {国庆节, 中秋}."""
    note = note.removesuffix("调休上班")
    if note in ("", "周末"):
        return set()
    return {SHORT.get(name, name) for name in note.split("、")}


@pytest.mark.parametrize("year", range(2020, 2027))
def test_each_notice_gives_the_year_chinesecalendar_holds(year: int) -> None:
    parsed = notice.parse(read(year), year=year)
    ours = {day: (working, note) for day, working, note in notice.year_days(parsed)}
    theirs = {day: (working, note) for day, working, note in official_days(range(year, year + 1))}
    assert len(ours) == len(theirs) == (366 if year in (2020, 2024) else 365)
    for day, (working, note) in ours.items():
        their_working, their_note = theirs[day]
        if day in EXTENDED_2020:
            assert (working, their_working) == EXTENDED_2020[day], day
            assert their_note == "春节"
            continue
        assert working == their_working, (day, note, their_note)
        named, their_named = holiday_names(note), holiday_names(their_note)
        if named:
            # A date the notice names is named for one of the same holidays there.
            assert their_named <= named, (day, note, their_note)
        elif their_named:
            assert NAMED_BY_ANOTHER_NOTICE.get(day) == their_note, (day, note, their_note)


def test_the_2026_notice_line_by_line() -> None:
    parsed = notice.parse(read(2026), year=2026)
    assert [h.name for h in parsed.holidays] == list(notice.STANDARD)
    spring = parsed.holidays[1]
    assert (spring.days_off[0], spring.days_off[-1], len(spring.days_off)) == (
        D(2026, 2, 15),
        D(2026, 2, 23),
        9,
    )
    assert spring.working_days == (D(2026, 2, 14), D(2026, 2, 28))
    national = parsed.holidays[6]
    assert national.working_days == (D(2026, 9, 20), D(2026, 10, 10))
    assert parsed.warnings == ()
    # The title, the number, the salutation, the preamble, the closing and the signature.
    assert [number for number, _ in parsed.ignored] == [1, 2, 4, 6, 22, 24, 25]


def test_2025_onward_rules_one_day_more_for_spring_festival_and_labour_day() -> None:
    """From 2025 the Spring Festival starts on New Year's Eve (除夕) and has four days by law,
    Labour Day two; 元旦 may stand alone (不调休)."""
    parsed = notice.parse(read(2025), year=2025)
    new_year, spring, _, labour, *_ = parsed.holidays
    assert (new_year.days_off, new_year.working_days) == ((D(2025, 1, 1),), ())
    assert (spring.days_off[0], len(spring.days_off)) == (D(2025, 1, 28), 8)
    assert labour.working_days == (D(2025, 4, 27),)


def test_the_2023_new_year_begins_in_2022_and_that_date_is_left_to_2022() -> None:
    parsed = notice.parse(read(2023), year=2023)
    assert parsed.holidays[0].days_off == (D(2022, 12, 31), D(2023, 1, 1), D(2023, 1, 2))
    assert [(w.code, w.day) for w in parsed.warnings] == [("outside_year", D(2022, 12, 31))]
    days = notice.year_days(parsed)
    assert days[0] == (D(2023, 1, 1), False, "元旦")
    assert {d.year for d, _, _ in days} == {2023}


def test_2024_encouragement_to_rest_on_new_years_eve_is_not_a_day_off() -> None:
    """鼓励…安排职工在除夕（2月9日）休息: encouraged, not ordered; 9 February stays a workday."""
    days = {d: (w, n) for d, w, n in notice.year_days(notice.parse(read(2024), year=2024))}
    assert days[D(2024, 2, 9)] == (True, "")
    assert days[D(2024, 2, 10)] == (False, "春节")
    assert days[D(2024, 6, 10)] == (False, "端午节")  # 6月10日放假，与周末连休
    assert days[D(2024, 6, 8)] == (False, "周末")


def one(line: str, year: int = 2026) -> notice.Holiday:
    return notice.parse(line, year=year).holidays[0]


@pytest.mark.parametrize(
    ("line", "off", "work"),
    [
        # ranges across months, with and without annotations
        ("四、国庆节：9月29日至10月6日放假调休，共8天。", (D(2026, 9, 29), D(2026, 10, 6)), ()),
        (
            "二、春节：2月15日（农历腊月二十八）至23日放假调休，共9天。2月14日（周六）、2月28日（周六）上班。",
            (D(2026, 2, 15), D(2026, 2, 23)),
            (D(2026, 2, 14), D(2026, 2, 28)),
        ),
        # single days
        ("三、清明节：4月4日放假。", (D(2026, 4, 4), D(2026, 4, 4)), ()),
        ("三、清明节：4月5日放假，共1天。", (D(2026, 4, 5), D(2026, 4, 5)), ()),
        ("一、元旦：1月1日（周四）放假1天，不调休。", (D(2026, 1, 1), D(2026, 1, 1)), ()),
        # 与…连休: the days joined are the other holiday's or the weekend's, not this line's
        ("六、中秋节：9月25日（周五）放假，与周末连休。", (D(2026, 9, 25), D(2026, 9, 25)), ()),
        (
            "七、国庆节：10月1日至7日放假调休，与中秋节连休，共8天。9月20日（星期日）上班。",
            (D(2026, 10, 1), D(2026, 10, 7)),
            (D(2026, 9, 20),),
        ),
        # full-width digits and half-width punctuation, 星期 for 周, spaces
        (
            "４．劳动节：５月１日（周五）至５日（周二）放假调休，共５天。５月９日（周六）上班。",
            (D(2026, 5, 1), D(2026, 5, 5)),
            (D(2026, 5, 9),),
        ),
        (
            "4、劳动节: 5月1日(星期五) 至 5日(星期二)放假调休, 共5天. 5月9日(星期六)上班",
            (D(2026, 5, 1), D(2026, 5, 5)),
            (D(2026, 5, 9),),
        ),
        ("（五）端午节：6月19日至21日放假，共3天。", (D(2026, 6, 19), D(2026, 6, 21)), ()),
        # no numbering at all, lunar annotations with the weekday inside
        (
            "春节：2月15日（农历腊月二十八、周日）至2月23日（农历正月初七、周一）放假调休，共9天。",
            (D(2026, 2, 15), D(2026, 2, 23)),
            (),
        ),
        # the year written out, 12月31日 before the 元旦 of the next year
        (
            "一、元旦：2026年12月31日至2027年1月2日放假调休，共3天。",
            (D(2026, 12, 31), D(2027, 1, 2)),
            (),
        ),
        ("一、元旦：12月31日至1月2日放假调休，共3天。", (D(2026, 12, 31), D(2027, 1, 2)), ()),
    ],
)
def test_the_ways_a_holiday_line_is_written(line: str, off: tuple, work: tuple) -> None:
    year = off[-1].year
    holiday = one(line, year)
    assert (holiday.days_off[0], holiday.days_off[-1]) == off
    assert (holiday.days_off[-1] - holiday.days_off[0]).days + 1 == len(holiday.days_off)
    assert holiday.working_days == work


def test_a_line_wrapped_mid_sentence_is_joined() -> None:
    text = (
        "二、春节：2月15日（农历腊月二十八、周日）至23日（农历正月初七、周一）放假调休，\n"
        "共9天。2月14日（周六）、\n"
        "2月28日（周六）上班。\n"
    )
    holiday = one(text)
    assert len(holiday.days_off) == 9
    assert holiday.working_days == (D(2026, 2, 14), D(2026, 2, 28))


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("一、元旦：1月1日（周五）至3日（周六）放假调休，共3天。", "written as 周五 but is a 周四"),
        ("二、春节：2月15日至23日放假调休，共8天。", "共8天, but the dates before it are 9 days"),
        ("三、清明节：4月4日至6日。", "no date followed by 放假 or 上班"),
        ("三、清明节：4月4日至6日放假，4月8日。", "4月8日 is followed by neither"),
        ("三、清明节：4月31日放假。", "4月31日 is not a date of 2026"),
        ("三、清明节：6日至8日放假。", "6日 has no month before it"),
        ("三、清明节：4月6日至4日放假。", "ends before it starts"),
        ("三、清明节 4月4日至6日放假", "expected the holiday's name, a colon and its dates"),
        ("三、清明节：放假三天。", "no date in it"),
        ("三、清明节：上班。4月4日放假", "上班 with no date before it"),
        ("国务院办公厅关于2025年部分节假日安排的通知", "the notice for 2025, not 2026"),
    ],
)
def test_a_line_that_cannot_be_read_is_named_with_why(line: str, reason: str) -> None:
    text = f"经国务院批准，现将安排通知如下。\n{line}\n五、端午节：6月19日至21日放假，共3天。\n"
    with pytest.raises(notice.NoticeInvalid) as raised:
        notice.parse(text, year=2026)
    [problem] = raised.value.problems
    assert problem.line == 2
    assert problem.text == notice.normalise(line)
    assert reason in problem.reason


def test_every_bad_line_is_named_at_once() -> None:
    text = "一、元旦：1月1日（周五）放假。\n二、春节：2月30日放假。\n三、清明节：4月4日放假。"
    with pytest.raises(notice.NoticeInvalid) as raised:
        notice.parse(text, year=2026)
    assert [p.line for p in raised.value.problems] == [1, 2]
    assert raised.value.message == "2 lines of the notice cannot be read"


def test_a_date_both_off_and_worked_is_refused() -> None:
    text = "一、元旦：1月1日至3日放假。\n二、春节：1月3日（周六）上班。"
    with pytest.raises(notice.NoticeInvalid) as raised:
        notice.parse(text, year=2026)
    [problem] = raised.value.problems
    assert problem.line == 2
    assert "2026-01-03 is a day off on line 1" in problem.reason


def test_text_without_a_holiday_line_is_refused_as_a_whole() -> None:
    with pytest.raises(notice.NoticeInvalid) as raised:
        notice.parse("国务院办公厅\n2025年11月4日\n", year=2026)
    assert raised.value.problems == []
    assert "no holiday line found" in raised.value.message


def test_odd_but_possible_lines_are_remarked_on() -> None:
    text = (
        "一、元旦：1月1日放假。1月5日（周一）上班。\n"
        "二、春节：2月15日至23日放假调休，共9天。鼓励在除夕（2月16日）休息，2月14日可以调整。"
    )
    parsed = notice.parse(text, year=2026)
    codes = [(w.code, w.line) for w in parsed.warnings]
    assert ("working_weekday", 1) in codes
    assert ("ignored_sentence", 2) in codes
    missing = {
        w.message.removeprefix("the notice names no ")
        for w in parsed.warnings
        if w.code == "missing_holiday"
    }
    assert missing == {"清明节", "劳动节", "端午节", "中秋节", "国庆节"}


def test_the_year_notes_what_each_date_is() -> None:
    days = {d: (w, n) for d, w, n in notice.year_days(notice.parse(read(2026), year=2026))}
    assert days[D(2026, 1, 1)] == (False, "元旦")
    assert days[D(2026, 1, 4)] == (True, "元旦调休上班")  # a Sunday worked
    assert days[D(2026, 1, 10)] == (False, "周末")
    assert days[D(2026, 1, 12)] == (True, "")
    assert days[D(2026, 10, 7)] == (False, "国庆节")


# Text made of what notices are made of, in any order: digits, dates' characters, keywords,
# brackets and punctuation of both widths, numbering and line breaks.
WORDS = (
    "周六 星期日 农历 放假 上班 调休 共 天 连休 一、 二、 元旦 春节 国庆节、中秋节 关于2026年节假日"
)
NOTICE_PIECES = st.sampled_from(
    [*"0123456789０１２３４５６７８９", *"月日年至-、，。：:（）() \n", *WORDS.split()]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(NOTICE_PIECES, max_size=80).map("".join))
def test_any_text_is_read_or_refused_never_crashes(text: str) -> None:
    try:
        parsed = notice.parse(text, year=2026)
    except notice.NoticeInvalid as error:
        refused: notice.NoticeInvalid | None = error
    else:
        refused = None
    if refused is not None:
        assert refused.message
        assert all(p.reason for p in refused.problems)
        return
    days = notice.year_days(parsed)
    assert len(days) == 365
    assert {d.year for d, _, _ in days} == {2026}


WIDE = str.maketrans("0123456789()：，。", "０１２３４５６７８９（）：，。")


def written(day: dt.date, *, month: bool, weekday: bool) -> str:
    """A date as a notice of 2026 writes it: the year only when it is another."""
    text = f"{day.month}月{day.day}日" if month else f"{day.day}日"
    text = f"{day.year}年{text}" if day.year != 2026 else text
    return text + (f"（{notice.WEEKDAY_NAMES[day.isoweekday()]}）" if weekday else "")


@st.composite
def holiday_lines(draw: st.DrawFn) -> tuple[str, list[dt.date], list[dt.date]]:
    """A holiday line as a notice could write it, with the dates it must give."""
    start = D(2026, 1, 1) + dt.timedelta(days=draw(st.integers(0, 340)))
    off = [start + dt.timedelta(days=i) for i in range(draw(st.integers(1, 9)))]
    weekends = [
        off[0] - dt.timedelta(days=i)
        for i in range(1, 8)
        if (off[0] - dt.timedelta(days=i)).isoweekday() >= 6
    ] + [
        off[-1] + dt.timedelta(days=i)
        for i in range(1, 8)
        if (off[-1] + dt.timedelta(days=i)).isoweekday() >= 6
    ]
    work = sorted(draw(st.lists(st.sampled_from(weekends), unique=True, max_size=2)))
    annotate = draw(st.booleans())
    text = f"{draw(st.sampled_from(notice.STANDARD))}："
    text += written(off[0], month=True, weekday=annotate)
    if len(off) > 1:
        same_month = off[-1].month == off[0].month
        text += draw(st.sampled_from(["至", "—", "-", " 至 "]))
        text += written(off[-1], month=not same_month or draw(st.booleans()), weekday=annotate)
    text += draw(st.sampled_from(["放假调休", "放假"]))
    text += draw(st.sampled_from([f"，共{len(off)}天。", "。", "，与周末连休。"]))
    if work:
        text += "、".join(written(d, month=True, weekday=annotate) for d in work) + "上班。"
    if draw(st.booleans()):
        text = text.translate(WIDE)
    numbering = draw(st.sampled_from(["", "一、", "（二）", "3. "]))
    return numbering + text, off, work


@settings(max_examples=300, deadline=None)
@given(holiday_lines())
def test_any_well_written_line_gives_its_dates(case: tuple[str, list[dt.date], list[dt.date]]):
    line, off, work = case
    holiday = one(line)
    assert list(holiday.days_off) == off
    assert list(holiday.working_days) == work
