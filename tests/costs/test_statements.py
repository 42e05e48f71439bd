"""Fuel-card and charging statements: CSV (UTF-8, GB18030) and XLSX files built in memory, good and
bad, read into rows or named errors without a database."""

from __future__ import annotations

import csv
import io
import re
import tracemalloc
import zipfile
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openpyxl import Workbook

from costs.statements import (
    BUILTIN_FORMATS,
    FIELDS,
    MAX_CELLS,
    MAX_COLUMNS,
    MAX_ROWS,
    RowError,
    StatementFormat,
    StatementRow,
    StatementUnreadable,
    _sheet_too_large,
    load_formats,
    parse,
)

ZONE = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 1, 12, 0, tzinfo=ZONE)
SINOPEC = BUILTIN_FORMATS["sinopec"]
GENERIC = BUILTIN_FORMATS["generic"]

SINOPEC_TITLE = ["中国石化加油卡消费明细 2026年10月"]
SINOPEC_HEADER = [
    "交易流水号",
    "交易时间",
    "车牌号",
    "卡号",
    "加油站",
    "油品",
    "数量(升)",
    "单价",
    "金额",
    "里程",
]
SINOPEC_ROWS = [
    [
        "SP202610050001",
        "2026-10-05 08:31:12",
        "浙A·D10001",
        "1000113300012345",
        "中国石化杭州文一路加油站",
        "92#汽油",
        "40.00",
        "7.50",
        "300.00",
        "12345",
    ],
    [
        "SP202610060002",
        "2026/10/06 17:05",
        "浙A·D10002",
        "1000113300012346",
        "中国石化杭州古墩路加油站",
        "0#柴油",
        "52.3",
        "7.10",
        "371.33",
        "8020.5",
    ],
]
SINOPEC_TOTAL = ["合计", "", "", "", "", "", "92.30", "", "671.33", ""]


def sinopec_row(line: int, **changes: Any) -> StatementRow:
    base: dict[str, Any] = {
        "line": line,
        "transaction_id": "SP202610050001",
        "at": datetime(2026, 10, 5, 0, 31, 12, tzinfo=UTC),
        "plate": "浙A·D10001",
        "card": "1000113300012345",
        "station_name": "中国石化杭州文一路加油站",
        "station_lat": None,
        "station_lon": None,
        "product": "92#汽油",
        "litres": 40.0,
        "kwh": None,
        "unit_price": 7.5,
        "amount": Decimal("300.00"),
        "odometer_km": 12345.0,
    }
    base.update(changes)
    return StatementRow(**base)


SECOND_SINOPEC_ROW = {
    "transaction_id": "SP202610060002",
    "at": datetime(2026, 10, 6, 9, 5, tzinfo=UTC),
    "plate": "浙A·D10002",
    "card": "1000113300012346",
    "station_name": "中国石化杭州古墩路加油站",
    "product": "0#柴油",
    "litres": 52.3,
    "unit_price": 7.1,
    "amount": Decimal("371.33"),
    "odometer_km": 8020.5,
}


def csv_bytes(
    lines: Sequence[Sequence[object]], *, encoding: str = "utf-8", delimiter: str = ","
) -> bytes:
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter, lineterminator="\r\n").writerows(lines)
    return out.getvalue().encode(encoding)


def xlsx_bytes(lines: Sequence[Sequence[object]]) -> bytes:
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    for cells in lines:
        sheet.append(list(cells))
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def read(
    data: bytes, fmt: StatementFormat = SINOPEC, filename: str = "statement.csv"
) -> tuple[list[StatementRow], list[RowError]]:
    return parse(data, filename, fmt, zone=ZONE, now=NOW)


# ---- whole files ---------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gb18030"])
@pytest.mark.parametrize("delimiter", [",", ";", "\t"])
def test_sinopec_csv_with_title_blank_and_total_lines_parses(encoding: str, delimiter: str) -> None:
    data = csv_bytes(
        [SINOPEC_TITLE, [], SINOPEC_HEADER, *SINOPEC_ROWS, [], SINOPEC_TOTAL],
        encoding=encoding,
        delimiter=delimiter,
    )

    rows, errors = read(data)

    assert errors == []
    assert rows == [sinopec_row(4), sinopec_row(5, **SECOND_SINOPEC_ROW)]


def test_gb18030_file_is_not_valid_utf8_yet_reads() -> None:
    data = csv_bytes([SINOPEC_HEADER, SINOPEC_ROWS[0]], encoding="gb18030")
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")

    rows, errors = read(data)

    assert (rows, errors) == ([sinopec_row(2)], [])


def test_sinopec_xlsx_reads_datetime_and_number_cells_with_spreadsheet_row_numbers() -> None:
    data = xlsx_bytes(
        [
            SINOPEC_TITLE,
            [],
            SINOPEC_HEADER,
            [
                "SP202610050001",
                datetime(2026, 10, 5, 8, 31, 12),
                "浙A·D10001",
                "1000113300012345",
                "中国石化杭州文一路加油站",
                "92#汽油",
                40,
                7.5,
                300,
                12345,
            ],
            [],
            ["合计", None, None, None, None, None, "=SUM(G4:G4)", None, "=SUM(I4:I4)"],
        ]
    )

    rows, errors = read(data, filename="statement.xlsx")

    assert (rows, errors) == ([sinopec_row(4)], [])


def test_file_type_comes_from_content_not_name() -> None:
    data = xlsx_bytes([SINOPEC_HEADER, SINOPEC_ROWS[0]])

    assert read(data, filename="statement.csv") == ([sinopec_row(2)], [])
    assert read(csv_bytes([SINOPEC_HEADER, SINOPEC_ROWS[0]]), filename="x.xlsx") == (
        [sinopec_row(2)],
        [],
    )


def test_petrochina_xlsx_with_text_cells_alternative_headers_and_units() -> None:
    header = [
        "凭证号",
        "交易日期",
        "车牌号码",
        "加油卡卡号",
        "油站名称",
        "油品名称",
        "升数",
        " 单价（元） ",
        "实付金额",
        "公里数",
    ]
    data = xlsx_bytes(
        [
            ["中国石油昆仑加油卡 交易明细"],
            ["卡号: 9030000012345678", "期间: 2026-10-01 至 2026-10-31"],
            header,
            [
                "KL0001",
                "2026/10/05 08:31",
                " 浙a·d 10001 ",
                "9030 0000 1234 5678",
                "中国石油杭州转塘加油站",
                "95#汽油",
                "40升",
                "¥8.00",
                "320元",
                "1,234.5",
            ],
            ["总计", "", "", "", "", "", "40", "", "320"],
        ]
    )

    rows, errors = read(data, BUILTIN_FORMATS["petrochina"], "昆仑.xlsx")

    assert errors == []
    assert rows == [
        StatementRow(
            line=4,
            transaction_id="KL0001",
            at=datetime(2026, 10, 5, 0, 31, tzinfo=UTC),
            plate="浙A·D10001",
            card="9030000012345678",
            station_name="中国石油杭州转塘加油站",
            station_lat=None,
            station_lon=None,
            product="95#汽油",
            litres=40.0,
            kwh=None,
            unit_price=8.0,
            amount=Decimal("320.00"),
            odometer_km=1234.5,
        )
    ]


def test_charging_statement_reads_kwh() -> None:
    data = csv_bytes(
        [
            ["充电订单明细 2026-10"],
            ["订单号", "充电开始时间", "车牌号", "充电站", "充电量(度)", "综合单价", "总金额"],
            ["CD001", "2026-10-05 12:00:00", "浙A·D10003", "城西充电站", "35.2", "1.35", "47.52"],
            ["CD002", "2026-10-06 12:00:00", "浙A·D10003", "城西充电站", "", "1.35", "0"],
            ["CD003", "2026-10-07 12:00:00", "浙A·D10003", "城西充电站", "2500", "", "10"],
        ],
        encoding="gb18030",
    )

    rows, errors = read(data, BUILTIN_FORMATS["charging"])

    assert rows == [
        StatementRow(
            line=3,
            transaction_id="CD001",
            at=datetime(2026, 10, 5, 4, 0, tzinfo=UTC),
            plate="浙A·D10003",
            card=None,
            station_name="城西充电站",
            station_lat=None,
            station_lon=None,
            product="",
            litres=None,
            kwh=35.2,
            unit_price=1.35,
            amount=Decimal("47.52"),
            odometer_km=None,
        )
    ]
    assert errors == [
        RowError(4, "kwh", "kwh is empty"),
        RowError(5, "kwh", "kwh '2500' must be less than 2000"),
    ]


def test_generic_headers_match_whatever_their_case_and_spacing() -> None:
    data = csv_bytes(
        [
            [
                "Transaction_ID",
                " TIME ",
                "Plate",
                "CARD",
                "Station",
                "Lat",
                "Lon",
                "Product",
                "Litres",
                "kWh",
                "Unit_Price",
                "Amount",
                "Odometer_KM",
            ],
            [
                "G1",
                "2026-10-05T08:31:12",
                "",
                "ab-12 34",
                "Depot pump",
                "30.25",
                "120.2",
                "diesel",
                "10",
                "",
                "7",
                "70",
                "0",
            ],
            ["Total", "", "", "", "", "", "", "", "10", "", "", "70", ""],
        ]
    )

    rows, errors = read(data, GENERIC)

    assert errors == []
    assert rows == [
        StatementRow(
            line=2,
            transaction_id="G1",
            at=datetime(2026, 10, 5, 0, 31, 12, tzinfo=UTC),
            plate=None,
            card="AB1234",
            station_name="Depot pump",
            station_lat=30.25,
            station_lon=120.2,
            product="diesel",
            litres=10.0,
            kwh=None,
            unit_price=7.0,
            amount=Decimal("70.00"),
            odometer_km=0.0,
        )
    ]


@pytest.mark.parametrize("issuer", sorted(BUILTIN_FORMATS))
@pytest.mark.parametrize("pick", [0, -1], ids=["first-names", "last-names"])
def test_every_builtin_format_reads_each_of_its_header_names(issuer: str, pick: int) -> None:
    fmt = BUILTIN_FORMATS[issuer]
    sample = {
        "transaction_id": "X1",
        "at": "2026-10-05 08:31:12",
        "plate": "浙A·D10001",
        "card": "1000113300012345",
        "station_name": "S",
        "station_lat": "30.25",
        "station_lon": "120.2",
        "product": "P",
        "litres": "40",
        "kwh": "40",
        "unit_price": "7.5",
        "amount": "300",
        "odometer_km": "100",
    }
    fields = list(fmt.columns)
    data = csv_bytes([[fmt.columns[f][pick] for f in fields], [sample[f] for f in fields]])

    rows, errors = read(data, fmt)

    assert errors == []
    assert [(row.line, row.amount, row.litres or row.kwh) for row in rows] == [
        (2, Decimal("300.00"), 40.0)
    ]


def test_rows_with_errors_are_left_out_and_the_others_kept() -> None:
    bad = [*SINOPEC_ROWS[0][:6], "-5", *SINOPEC_ROWS[0][7:]]
    data = csv_bytes([SINOPEC_HEADER, bad, SINOPEC_ROWS[1]])

    rows, errors = read(data)

    assert rows == [sinopec_row(3, **SECOND_SINOPEC_ROW)]
    assert errors == [RowError(2, "litres", "litres '-5' must be more than 0")]


def test_a_quoted_cell_over_two_lines_keeps_later_line_numbers_true() -> None:
    station = "中国石化杭州\n文一路加油站"
    data = csv_bytes(
        [SINOPEC_HEADER, [*SINOPEC_ROWS[0][:4], station, *SINOPEC_ROWS[0][5:]], SINOPEC_ROWS[1]]
    )

    rows, _ = read(data)

    assert [(row.line, row.station_name) for row in rows] == [
        (2, "中国石化杭州 文一路加油站"),
        (4, "中国石化杭州古墩路加油站"),
    ]


# ---- one row's checks (generic format, English headers) ------------------------------------------

GENERIC_HEADER = [
    "transaction_id",
    "time",
    "plate",
    "card",
    "station",
    "lat",
    "lon",
    "product",
    "litres",
    "unit_price",
    "amount",
    "odometer_km",
]
GOOD = {
    "transaction_id": "T1",
    "time": "2026-10-05 08:31:12",
    "plate": "浙A·D10001",
    "card": "",
    "station": "S",
    "lat": "",
    "lon": "",
    "product": "92#汽油",
    "litres": "40",
    "unit_price": "7.5",
    "amount": "300",
    "odometer_km": "",
}


def generic_file(*rows: Mapping[str, str]) -> bytes:
    return csv_bytes([GENERIC_HEADER, *([{**GOOD, **r}[h] for h in GENERIC_HEADER] for r in rows)])


def problems(**changes: str) -> list[tuple[str, str]]:
    rows, errors = read(generic_file(changes), GENERIC)
    assert all(error.line == 2 for error in errors)
    assert len(rows) == (0 if errors else 1)
    return [(error.field, error.reason) for error in errors]


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        pytest.param({"litres": ""}, [("litres", "litres is empty")], id="litres-empty"),
        pytest.param({"amount": " "}, [("amount", "amount is empty")], id="amount-empty"),
        pytest.param({"time": ""}, [("at", "at is empty")], id="time-empty"),
        pytest.param(
            {"time": "2026-13-05 08:00"},
            [
                (
                    "at",
                    "at '2026-13-05 08:00' is not a time in a known format,"
                    " such as '2026-10-05T08:31:12'",
                )
            ],
            id="time-unparseable",
        ),
        pytest.param(
            {"time": "2026-11-02 12:00:01"},
            [("at", "at '2026-11-02 12:00:01' is in the future")],
            id="time-more-than-a-day-ahead",
        ),
        pytest.param({"time": "2026-11-02 12:00:00"}, [], id="time-a-day-ahead"),
        pytest.param(
            {"litres": "-5"}, [("litres", "litres '-5' must be more than 0")], id="litres-negative"
        ),
        pytest.param(
            {"litres": "0"}, [("litres", "litres '0' must be more than 0")], id="litres-0"
        ),
        pytest.param(
            {"litres": "2000", "unit_price": ""},
            [("litres", "litres '2000' must be less than 2000")],
            id="litres-2000",
        ),
        pytest.param(
            {"litres": "四十"}, [("litres", "litres '四十' is not a number")], id="litres-words"
        ),
        pytest.param(
            {"amount": "-3.00"},
            [("amount", "amount '-3.00' must not be negative")],
            id="amount-negative",
        ),
        pytest.param({"amount": "0", "unit_price": ""}, [], id="amount-0"),
        pytest.param(
            {"amount": "1000000", "unit_price": ""},
            [("amount", "amount '1000000' must be less than 1000000")],
            id="amount-million",
        ),
        pytest.param(
            {"amount": "45,2"}, [("amount", "amount '45,2' is not a number")], id="decimal-comma"
        ),
        pytest.param(
            {"unit_price": "0"},
            [("unit_price", "unit_price '0' must be more than 0")],
            id="unit-price-0",
        ),
        pytest.param({"amount": "303.00"}, [], id="amount-off-by-1-percent"),
        pytest.param(
            {"amount": "303.01"},
            [("amount", "amount 303.01 does not match litres 40 × unit_price 7.5 = 300.00")],
            id="amount-off-by-more-than-1-percent",
        ),
        pytest.param({"litres": "0.5", "unit_price": "7", "amount": "3.55"}, [], id="within-5-fen"),
        pytest.param(
            {"litres": "0.5", "unit_price": "7", "amount": "3.56"},
            [("amount", "amount 3.56 does not match litres 0.5 × unit_price 7 = 3.50")],
            id="over-5-fen",
        ),
        pytest.param({"lat": "-90", "lon": "180"}, [], id="lat-lon-at-limits"),
        pytest.param(
            {"lat": "95", "lon": "120"},
            [("station_lat", "station_lat '95' must be at most 90")],
            id="lat-over-90",
        ),
        pytest.param(
            {"lat": "30", "lon": "-181"},
            [("station_lon", "station_lon '-181' must be at least -180")],
            id="lon-under-180",
        ),
        pytest.param(
            {"lat": "30.1"},
            [("station_lon", "station_lon is empty but station_lat is given")],
            id="lat-without-lon",
        ),
        pytest.param(
            {"lon": "120.1"},
            [("station_lat", "station_lat is empty but station_lon is given")],
            id="lon-without-lat",
        ),
        pytest.param(
            {"odometer_km": "-1"},
            [("odometer_km", "odometer_km '-1' must not be negative")],
            id="odometer-negative",
        ),
        pytest.param(
            {"odometer_km": "10000000"},
            [("odometer_km", "odometer_km '10000000' must be less than 10000000")],
            id="odometer-ten-million",
        ),
        pytest.param(
            {"plate": "", "card": ""},
            [("plate", "neither plate nor card is given")],
            id="no-plate-nor-card",
        ),
        pytest.param({"plate": "", "card": "1000****5678"}, [], id="masked-card"),
        pytest.param(
            {"card": "卡1234"},
            [("card", "card '卡1234' must be letters and digits")],
            id="card-hanzi",
        ),
    ],
)
def test_row_check(changes: dict[str, str], expected: list[tuple[str, str]]) -> None:
    assert problems(**changes) == expected


def test_every_problem_of_a_row_is_named_at_once() -> None:
    assert problems(
        time="yesterday", plate="", litres="-5", amount="abc", lat="95", product=""
    ) == [
        (
            "at",
            "at 'yesterday' is not a time in a known format, such as '2026-10-05T08:31:12'",
        ),
        ("plate", "neither plate nor card is given"),
        ("station_lat", "station_lat '95' must be at most 90"),
        ("station_lon", "station_lon is empty but station_lat is given"),
        ("litres", "litres '-5' must be more than 0"),
        ("amount", "amount 'abc' is not a number"),
    ]


@pytest.mark.parametrize(
    ("written", "amount"),
    [
        ("1,234.50", Decimal("1234.50")),
        ("¥300.00", Decimal("300.00")),
        ("￥300", Decimal("300.00")),
        ("300元", Decimal("300.00")),
        (" 45.2 ", Decimal("45.20")),
        ("RMB 12.345", Decimal("12.35")),
        ("12.344", Decimal("12.34")),
        ("-0", Decimal("0.00")),
    ],
)
def test_amounts_are_read_with_separators_currency_and_units(written: str, amount: Decimal) -> None:
    rows, errors = read(generic_file({"amount": written, "unit_price": ""}), GENERIC)

    assert errors == []
    assert [row.amount for row in rows] == [amount]


@pytest.mark.parametrize(
    ("written", "litres"), [("40升", 40.0), ("40 L", 40.0), ("４０．５", 40.5), (".5", 0.5)]
)
def test_quantities_are_read_with_units_and_full_width_digits(written: str, litres: float) -> None:
    rows, errors = read(generic_file({"litres": written, "unit_price": ""}), GENERIC)

    assert errors == []
    assert [row.litres for row in rows] == [litres]


def test_plate_and_card_are_normalised() -> None:
    rows, _ = read(generic_file({"plate": " 浙a·d 10001 ", "card": "1000 1133-0001 abcd"}), GENERIC)

    assert [(row.plate, row.card) for row in rows] == [("浙A·D10001", "100011330001ABCD")]


def test_duplicate_transaction_id_names_the_earlier_line() -> None:
    data = generic_file(
        {"transaction_id": "T1"}, {"transaction_id": "T2"}, {"transaction_id": " T1 "}
    )

    rows, errors = read(data, GENERIC)

    assert [row.transaction_id for row in rows] == ["T1", "T2"]
    assert errors == [RowError(4, "transaction_id", "transaction_id 'T1' repeats line 2")]


def test_excel_number_card_that_lost_digits_is_refused() -> None:
    data = xlsx_bytes(
        [SINOPEC_HEADER, [*SINOPEC_ROWS[0][:3], 1.000113300012345e18, *SINOPEC_ROWS[0][4:]]]
    )

    rows, errors = read(data, filename="s.xlsx")

    assert rows == []
    assert errors == [
        RowError(
            2,
            "card",
            "card 1.000113300012345e+18 was stored as a number and has lost digits;"
            " the column must be formatted as text",
        )
    ]


def test_xlsx_time_cell_is_local_to_the_zone_given() -> None:
    data = xlsx_bytes(
        [SINOPEC_HEADER, [SINOPEC_ROWS[0][0], datetime(2026, 10, 1, 0, 30), *SINOPEC_ROWS[0][2:]]]
    )

    rows, _ = parse(data, "s.xlsx", SINOPEC, zone=ZoneInfo("Asia/Urumqi"), now=NOW)

    assert [row.at for row in rows] == [datetime(2026, 9, 30, 18, 30, tzinfo=UTC)]


# ---- files that cannot be used -------------------------------------------------------------------


def test_missing_required_column_raises_naming_it_in_chinese_and_as_field() -> None:
    header = [name for name in SINOPEC_HEADER if name not in ("卡号", "金额")]
    data = csv_bytes([SINOPEC_TITLE, header])

    with pytest.raises(StatementUnreadable) as raised:
        read(data)

    message = str(raised.value)
    assert "卡号/加油卡号/副卡卡号 (card)" in message
    assert "金额/金额(元)/实付金额/交易金额 (amount)" in message
    assert "交易时间" not in message


def test_header_below_the_first_twenty_rows_needs_header_row() -> None:
    preamble = [[f"说明 {n}"] for n in range(24)]
    data = csv_bytes([*preamble, SINOPEC_HEADER, SINOPEC_ROWS[0]])
    with pytest.raises(StatementUnreadable, match="first 20 rows"):
        read(data)

    fixed = load_formats(
        {
            "sinopec": {
                "name": "Sinopec, long preamble",
                "columns": dict(SINOPEC.columns),
                "required": sorted(SINOPEC.required),
                "header_row": 25,
            }
        }
    )["sinopec"]

    assert read(data, fixed) == ([sinopec_row(26)], [])


def test_file_with_only_a_header_has_no_rows_and_no_errors() -> None:
    assert read(csv_bytes([SINOPEC_TITLE, SINOPEC_HEADER, SINOPEC_TOTAL])) == ([], [])


def foreign_zip() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("readme.txt", "not a workbook")
    return out.getvalue()


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        pytest.param(b"", "the file is empty", id="empty"),
        pytest.param(b" \r\n\t\r\n", "the file is empty", id="whitespace"),
        pytest.param(b",,,\r\n, ,\r\n", "the file has no rows", id="only-delimiters"),
        pytest.param(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1\x00\x00", "old Excel .xls", id="xls"),
        pytest.param(b"PK\x03\x04 broken", "not a readable XLSX workbook", id="broken-zip"),
        pytest.param(foreign_zip(), "not a readable XLSX workbook", id="foreign-zip"),
        pytest.param(b"\x00\x01\x02binary\xff", "neither an XLSX workbook nor CSV", id="binary"),
        pytest.param(b"\x81\x30", "neither an XLSX workbook nor CSV", id="undecodable"),
        pytest.param("日期,金额\n".encode(), "缺少必需列", id="not-this-issuer"),
    ],
)
def test_unusable_file_raises_statement_unreadable(data: bytes, reason: str) -> None:
    with pytest.raises(StatementUnreadable, match=reason):
        read(data)


def test_openpyxl_warnings_on_odd_workbooks_do_not_escape() -> None:
    good = zipfile.ZipFile(io.BytesIO(xlsx_bytes([SINOPEC_HEADER, SINOPEC_ROWS[0]])))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as odd:
        for name in good.namelist():
            # An empty stylesheet, as some generators write, makes openpyxl warn.
            empty = (
                b'<styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"/>'
            )
            odd.writestr(name, empty if name == "xl/styles.xml" else good.read(name))

    assert read(out.getvalue(), filename="odd.xlsx") == ([sinopec_row(2)], [])


def test_a_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        parse(b"", "s.csv", SINOPEC, zone=ZONE, now=datetime(2026, 11, 1))


# ---- formats from configuration ------------------------------------------------------------------

MY_COLUMNS = {"at": ["时间"], "amount": ["金额"], "litres": ["升"], "plate": "车牌"}


def test_load_formats_adds_and_overrides_by_issuer() -> None:
    formats = load_formats(
        {
            "local": {
                "name": "本地油库",
                "columns": MY_COLUMNS,
                "time_formats": ["%Y.%m.%d %H:%M"],
            },
            "generic": {"columns": {**MY_COLUMNS, "card": ["卡"]}, "kind": "fuel"},
        }
    )

    assert set(formats) == {*BUILTIN_FORMATS, "local"}
    assert formats["sinopec"] is SINOPEC
    assert formats["generic"].columns["card"] == ("卡",)
    assert formats["generic"].required == {"at", "amount", "litres"}
    data = csv_bytes(
        [["时间", "车牌", "升", "金额"], ["2026.10.05 08:31", "浙A·D10001", "40", "300"]]
    )
    rows, errors = read(data, formats["local"])
    assert errors == []
    assert [(row.at, row.plate, row.amount) for row in rows] == [
        (datetime(2026, 10, 5, 0, 31, tzinfo=UTC), "浙A·D10001", Decimal("300.00"))
    ]


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ("fuel", "the definition must be a mapping"),
        ({"colums": MY_COLUMNS}, "unknown key 'colums'"),
        ({}, "columns must be a non-empty mapping"),
        ({"columns": {**MY_COLUMNS, "colour": ["颜色"]}}, "unknown field 'colour'"),
        ({"columns": {**MY_COLUMNS, "card": []}}, "field 'card' has no header names"),
        ({"columns": {**MY_COLUMNS, "card": [""]}}, "field 'card' has an empty"),
        ({"columns": {**MY_COLUMNS, "card": ["升"]}}, "header '升' is given for both 'litres'"),
        ({"columns": {**MY_COLUMNS, "card": [3]}}, "must be a string or a list of strings"),
        ({"columns": MY_COLUMNS, "kind": "diesel"}, "kind 'diesel' is not one of fuel, charging"),
        ({"columns": MY_COLUMNS, "kind": "charging"}, "required field 'kwh' has no column"),
        ({"columns": MY_COLUMNS, "required": ["at", "amount"]}, "must include 'litres'"),
        (
            {"columns": MY_COLUMNS, "required": ["at", "amount", "litres", "card"]},
            "required field 'card' has no column",
        ),
        ({"columns": {k: v for k, v in MY_COLUMNS.items() if k != "amount"}}, "'amount' has no"),
        ({"columns": {k: v for k, v in MY_COLUMNS.items() if k != "plate"}}, "a plate or a card"),
        ({"columns": MY_COLUMNS, "time_formats": []}, "no time formats"),
        ({"columns": MY_COLUMNS, "time_formats": ["hello"]}, "time format 'hello' does not read"),
        ({"columns": MY_COLUMNS, "header_row": 0}, "header_row 0 is not a row number"),
        ({"columns": MY_COLUMNS, "name": 7}, "name must be a string"),
    ],
)
def test_load_formats_refuses_bad_config_naming_issuer_and_problem(
    spec: object, problem: str
) -> None:
    with pytest.raises(ValueError, match=r"statement format 'mine'") as raised:
        load_formats({"mine": spec})

    assert problem in str(raised.value)


def test_builtin_formats_cover_the_contract() -> None:
    assert {"sinopec", "petrochina", "charging", "generic"} <= set(BUILTIN_FORMATS)
    assert BUILTIN_FORMATS["charging"].kind == "charging"
    assert all(set(fmt.columns) <= set(FIELDS) for fmt in BUILTIN_FORMATS.values())


# ---- properties ----------------------------------------------------------------------------------

HEADER_LINE = ",".join(SINOPEC_HEADER) + "\n"


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=400),
        st.binary(max_size=400).map(lambda tail: b"PK\x03\x04" + tail),
        st.text(max_size=400).map(lambda tail: (HEADER_LINE + tail).encode()),
        st.text(alphabet=',;\t\n\r"0123456789.-:/ 合计元¥', max_size=200).map(
            lambda tail: (HEADER_LINE + tail).encode("gb18030")
        ),
    )
)
def test_parse_raises_nothing_but_statement_unreadable(data: bytes) -> None:
    try:
        rows, errors = read(data)
    except StatementUnreadable:
        return
    assert all(isinstance(row, StatementRow) for row in rows)
    assert all(error.field in (*FIELDS, "row") for error in errors)


@settings(max_examples=200, deadline=None)
@given(
    cents=st.integers(0, 99_999_999),
    style=st.sampled_from(["{:.2f}", "{:,.2f}", "¥{:,.2f}", "{:.2f}元", " {:.2f} "]),
)
def test_amount_written_any_accepted_way_reads_back_exactly(cents: int, style: str) -> None:
    amount = Decimal(cents) / 100
    rows, errors = read(generic_file({"amount": style.format(amount), "unit_price": ""}), GENERIC)

    assert errors == []
    assert [row.amount for row in rows] == [amount.quantize(Decimal("0.01"))]


def xfd_bytes(rows: int, *, dimension: bool) -> bytes:
    """A small workbook with one cell at column XFD (16,384) in each row: a few KB packed, 263 MB
    once read row by row at full width. Without `dimension` the sheet does not declare its size."""
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    for row in range(1, rows + 1):
        sheet.cell(row=row, column=16_384, value=1)
    out = io.BytesIO()
    workbook.save(out)
    if dimension:
        return out.getvalue()
    packed = io.BytesIO()
    with zipfile.ZipFile(out) as source, zipfile.ZipFile(packed, "w", zipfile.ZIP_DEFLATED) as copy:
        for entry in source.infolist():
            content = source.read(entry)
            if entry.filename.startswith("xl/worksheets/"):
                content = re.sub(rb"<dimension[^>]*/>", b"", content)
            copy.writestr(entry, content)
    return packed.getvalue()


@pytest.mark.parametrize(
    ("dimension", "refusal"),
    [
        (True, f"declares 2000 rows × 16384 columns; .* {MAX_COLUMNS} columns"),
        # Undeclared, the cells past the bound are never read: no row holds anything.
        (False, "has no rows"),
    ],
)
def test_xlsx_wider_than_the_bound_is_refused_before_its_cells_are_read(
    dimension: bool, refusal: str
) -> None:
    data = xfd_bytes(2_000, dimension=dimension)
    assert len(data) < 64 * 1024
    tracemalloc.start()
    try:
        with pytest.raises(StatementUnreadable, match=refusal):
            read(data, filename="wide.xlsx")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 30 * 1024 * 1024, f"reading took {peak / 2**20:.0f} MiB"


def test_xlsx_with_more_cells_than_the_bound_is_refused() -> None:
    rows = MAX_CELLS // MAX_COLUMNS + 1
    assert _sheet_too_large(10_000, (rows, MAX_COLUMNS)) is not None
    assert _sheet_too_large(10_000, (rows - 1, MAX_COLUMNS)) is None
    assert _sheet_too_large(10_000, (MAX_ROWS + 1, 1)) is not None
