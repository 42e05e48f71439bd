"""Fuel-card and charging statements (加油卡 / 充电 消费明细) read into validated rows (pure).

A fuel-card company (中国石化, 中国石油 昆仑, ...) or a charging operator sends a monthly statement
as CSV or XLSX. `parse` turns one file into `StatementRow`s, or names every bad row and why as
`RowError`s; a file that cannot be read at all raises `StatementUnreadable`. Matching rows to
vehicles, refusing a file with any bad row and deduplicating against earlier imports are the
service's work, not this module's.

How a file is read:
- The type comes from the content: an XLSX workbook is a zip (b"PK"); anything else is tried as
  CSV, decoded as UTF-8 (with or without BOM), UTF-16 with a BOM, else GB18030 (what Chinese Excel
  writes), with the delimiter (`,` `;` tab) under which the header is found.
- The header is the first of the first 20 rows holding every required column (statements carry
  title lines above it), unless the format fixes its row. Headers match after Unicode NFKC (so
  full-width `（升）` is `(升)`), without whitespace, case-insensitively.
- Blank rows and summary rows (first filled cell starting 合计, 总计, 小计 or Total) are skipped.
- Times are local to the `zone` given and returned in UTC; money is CNY as `Decimal` to 0.01.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import unicodedata
import warnings
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo

import openpyxl

FIELDS = (
    "transaction_id",
    "at",
    "plate",
    "card",
    "station_name",
    "station_lat",
    "station_lon",
    "product",
    "litres",
    "kwh",
    "unit_price",
    "amount",
    "odometer_km",
)
KINDS = ("fuel", "charging")
QUANTITY = {"fuel": "litres", "charging": "kwh"}
HEADER_SEARCH_ROWS = 20
# An XLSX sheet is bounded before its cells are read: by the size it declares (<dimension>), by
# the sheet's unpacked XML, and, as rows are read, by the cells actually found. A row of a few
# bytes can name column XFD (16,384 cells) when read; a statement has tens of columns.
MAX_ROWS = 100_000
MAX_COLUMNS = 100
MAX_CELLS = 1_000_000
MAX_SHEET_XML_BYTES = 200 * 1024 * 1024
DELIMITERS = (",", ";", "\t")
SUMMARY_PREFIXES = ("合计", "总计", "小计", "total")
DEFAULT_TIME_FORMATS = (
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y/%m/%d %H:%M:%S",
    "%Y/%m/%d %H:%M",
    "%Y%m%d%H%M%S",
    "%Y年%m月%d日 %H:%M:%S",
    "%Y年%m月%d日 %H:%M",
    "%Y-%m-%d",
    "%Y/%m/%d",
)
# Excel keeps 15 significant digits: a card or serial number of 16 or more digits typed into a
# number cell has already lost its last digits, and must not be matched as if it were exact.
EXCEL_EXACT_BELOW = 10**15
EXAMPLE_TIME = datetime(2026, 10, 5, 8, 31, 12)
CENT = Decimal("0.01")
AMOUNT_TOLERANCE = Decimal("0.05")  # CNY, or 1% of quantity × unit price if that is more
AMOUNT_TOLERANCE_SHARE = Decimal("0.01")


class StatementUnreadable(ValueError):
    """The whole file cannot be used: not CSV or XLSX, empty, undecodable, or without a column that
    the format requires."""


@dataclass(frozen=True)
class StatementFormat:
    """How one issuer's statements look. Invalid definitions raise ValueError on construction."""

    issuer: str
    name: str
    columns: Mapping[str, tuple[str, ...]]  # field -> header names accepted, preferred first
    required: frozenset[str]
    time_formats: tuple[str, ...]
    kind: str = "fuel"
    header_row: int | None = None  # 1-based, as `StatementRow.line` counts; None: search for it

    def __post_init__(self) -> None:
        # Read-only and of the declared types, whatever sequences the caller passed.
        columns = {field: _names(names) for field, names in self.columns.items()}
        object.__setattr__(self, "columns", MappingProxyType(columns))
        object.__setattr__(self, "required", frozenset(self.required))
        object.__setattr__(self, "time_formats", tuple(self.time_formats))
        problem = _format_problem(self)
        if problem:
            raise ValueError(f"statement format {self.issuer!r}: {problem}")

    @property
    def quantity(self) -> str:
        """The field that holds what was bought: litres for fuel, kWh for charging."""
        return QUANTITY[self.kind]


@dataclass(frozen=True)
class StatementRow:
    line: int  # 1-based row as a person sees it: spreadsheet row, or CSV line counting all lines
    transaction_id: str | None
    at: datetime  # aware, UTC
    plate: str | None
    card: str | None
    station_name: str
    station_lat: float | None
    station_lon: float | None
    product: str
    litres: float | None
    kwh: float | None
    unit_price: float | None  # CNY per litre or per kWh
    amount: Decimal  # CNY, to 0.01
    odometer_km: float | None


@dataclass(frozen=True)
class RowError:
    line: int
    field: str  # from FIELDS, or "row" for a problem of the whole row
    reason: str


@dataclass(frozen=True)
class _Bounds:
    above: Decimal | None = None
    at_least: Decimal | None = None
    below: Decimal | None = None
    at_most: Decimal | None = None

    def problem(self, value: Decimal) -> str | None:
        if self.above is not None and not value > self.above:
            return f"must be more than {self.above}"
        if self.at_least is not None and value < self.at_least:
            return (
                "must not be negative"
                if self.at_least == 0
                else f"must be at least {self.at_least}"
            )
        if self.below is not None and not value < self.below:
            return f"must be less than {self.below}"
        if self.at_most is not None and value > self.at_most:
            return f"must be at most {self.at_most}"
        return None


BOUNDS = {
    "station_lat": _Bounds(at_least=Decimal(-90), at_most=Decimal(90)),
    "station_lon": _Bounds(at_least=Decimal(-180), at_most=Decimal(180)),
    "litres": _Bounds(above=Decimal(0), below=Decimal(2000)),
    "kwh": _Bounds(above=Decimal(0), below=Decimal(2000)),
    "unit_price": _Bounds(above=Decimal(0)),
    # Refunds are entered by hand, so a statement never carries a negative amount.
    "amount": _Bounds(at_least=Decimal(0), below=Decimal(1_000_000)),
    "odometer_km": _Bounds(at_least=Decimal(0), below=Decimal(10_000_000)),
}


def _text(cell: object) -> str:
    """A cell as the text a person reads in it: NFKC-normalised, whitespace runs collapsed."""
    if cell is None:
        return ""
    if isinstance(cell, float) and cell.is_integer() and abs(cell) < EXCEL_EXACT_BELOW:
        return str(int(cell))
    if isinstance(cell, datetime):
        return cell.isoformat(sep=" ")
    return " ".join(unicodedata.normalize("NFKC", str(cell)).split())


def _header_key(cell: object) -> str:
    return "".join(_text(cell).split()).casefold()


def _names(names: str | Sequence[str]) -> tuple[str, ...]:
    return (names,) if isinstance(names, str) else tuple(names)


def _format_problem(fmt: StatementFormat) -> str | None:
    if fmt.kind not in KINDS:
        return f"kind {fmt.kind!r} is not one of {', '.join(KINDS)}"
    unknown = sorted((set(fmt.columns) | fmt.required) - set(FIELDS))
    if unknown:
        return f"unknown field {unknown[0]!r} (fields are {', '.join(FIELDS)})"
    owner: dict[str, str] = {}
    for field, names in fmt.columns.items():
        if not names:
            return f"field {field!r} has no header names"
        for name in names:
            if not isinstance(name, str) or not _header_key(name):
                return f"field {field!r} has an empty or non-text header name {name!r}"
            earlier = owner.setdefault(_header_key(name), field)
            if earlier != field:
                return f"header {name!r} is given for both {earlier!r} and {field!r}"
    for field in ("at", "amount", fmt.quantity):
        if field not in fmt.required:
            return f"required fields must include {field!r} ({fmt.kind} statements need it)"
    for field in sorted(fmt.required):
        if field not in fmt.columns:
            return f"required field {field!r} has no column"
    if "plate" not in fmt.columns and "card" not in fmt.columns:
        return "a plate or a card column is needed to tell whose the rows are"
    if not fmt.time_formats:
        return "no time formats"
    sample = datetime(2026, 10, 5)
    for time_format in fmt.time_formats:
        try:
            read_back = datetime.strptime(sample.strftime(time_format), time_format)
        except (TypeError, ValueError):
            read_back = None
        if read_back != sample:
            return f"time format {time_format!r} does not read back what it writes"
    if fmt.header_row is not None and (
        isinstance(fmt.header_row, bool)
        or not isinstance(fmt.header_row, int)
        or fmt.header_row < 1
    ):
        return f"header_row {fmt.header_row!r} is not a row number from 1"
    return None


def _fuel_card_columns(**overrides: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    columns = {
        "transaction_id": ("交易流水号", "流水号", "交易号"),
        "at": ("交易时间", "交易日期", "消费时间"),
        "plate": ("车牌号", "车牌号码", "车牌"),
        "card": ("卡号", "加油卡号", "副卡卡号"),
        "station_name": ("加油站", "网点名称", "交易地点", "加油站名称"),
        "station_lat": ("纬度",),
        "station_lon": ("经度",),
        "product": ("油品", "商品名称", "油品名称"),
        "litres": ("数量(升)", "数量", "加油量(升)", "加油量"),
        "unit_price": ("单价", "单价(元)", "单价(元/升)"),
        # Where a statement has both, 金额 (quantity × list price) is preferred to 实付金额
        # (after discount), because it is the figure that agrees with the unit price.
        "amount": ("金额", "金额(元)", "实付金额", "交易金额"),
        "odometer_km": ("里程", "里程数", "公里数", "里程(公里)"),
    }
    columns.update(overrides)
    return columns


GENERIC_COLUMNS: dict[str, tuple[str, ...]] = {
    "transaction_id": ("transaction_id", "transaction"),
    "at": ("time", "at", "datetime"),
    "plate": ("plate",),
    "card": ("card",),
    "station_name": ("station", "station_name"),
    "station_lat": ("lat", "station_lat", "latitude"),
    "station_lon": ("lon", "station_lon", "longitude", "lng"),
    "product": ("product",),
    "litres": ("litres", "liters"),
    "kwh": ("kwh",),
    "unit_price": ("unit_price",),
    "amount": ("amount",),
    "odometer_km": ("odometer_km", "odometer"),
}

BUILTIN_FORMATS: dict[str, StatementFormat] = {
    fmt.issuer: fmt
    for fmt in (
        StatementFormat(
            issuer="sinopec",
            name="中国石化加油卡 Sinopec fuel card",
            columns=_fuel_card_columns(),
            required=frozenset({"at", "card", "litres", "amount"}),
            time_formats=DEFAULT_TIME_FORMATS,
        ),
        StatementFormat(
            issuer="petrochina",
            name="中国石油昆仑加油卡 PetroChina Kunlun fuel card",
            columns=_fuel_card_columns(
                transaction_id=("交易流水号", "流水号", "凭证号"),
                at=("交易时间", "交易日期", "交易日期时间"),
                card=("卡号", "加油卡号", "加油卡卡号"),
                station_name=("加油站", "油站名称", "网点名称", "交易地点"),
                litres=("数量(升)", "数量", "升数", "加油量(升)", "加油量"),
                amount=("金额", "金额(元)", "应付金额", "实付金额", "交易金额"),
            ),
            required=frozenset({"at", "card", "litres", "amount"}),
            time_formats=DEFAULT_TIME_FORMATS,
        ),
        StatementFormat(
            issuer="charging",
            name="充电消费明细 EV charging statement",
            columns={
                "transaction_id": ("订单号", "订单编号", "充电订单号", "交易流水号"),
                # The start is when the vehicle was at the charger, which is what a track shows.
                "at": ("充电开始时间", "开始时间", "交易时间"),
                "plate": ("车牌号", "车牌号码", "车牌"),
                "card": ("充电卡号", "卡号"),
                "station_name": ("充电站", "电站名称", "充电站名称", "站点名称"),
                "station_lat": ("纬度",),
                "station_lon": ("经度",),
                "kwh": ("充电量(kWh)", "充电量(度)", "充电量", "电量(度)", "电量"),
                # All-in price per kWh (electricity and service fee), so that it agrees with the
                # total amount.
                "unit_price": ("综合单价", "单价(元/度)", "单价(元/kWh)", "单价"),
                "amount": ("总金额", "订单金额", "金额", "金额(元)", "实付金额"),
                "odometer_km": ("里程", "里程数", "表显里程"),
            },
            required=frozenset({"at", "kwh", "amount"}),
            time_formats=DEFAULT_TIME_FORMATS,
            kind="charging",
        ),
        StatementFormat(
            issuer="generic",
            name="Generic fuel statement (English headers)",
            columns=GENERIC_COLUMNS,
            required=frozenset({"at", "litres", "amount"}),
            time_formats=("%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", *DEFAULT_TIME_FORMATS),
        ),
        StatementFormat(
            issuer="generic_charging",
            name="Generic charging statement (English headers)",
            columns=GENERIC_COLUMNS,
            required=frozenset({"at", "kwh", "amount"}),
            time_formats=("%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", *DEFAULT_TIME_FORMATS),
            kind="charging",
        ),
    )
}

CONFIG_KEYS = frozenset({"name", "kind", "columns", "required", "time_formats", "header_row"})


def load_formats(extra: Mapping[str, Any] | None = None) -> dict[str, StatementFormat]:
    """The built-in formats plus, overriding by issuer key, formats given as JSON-like data:
    `{"myissuer": {"name": ..., "kind": "fuel", "columns": {"at": ["交易时间"], ...},
    "required": [...], "time_formats": [...], "header_row": null}}`. Only `columns` must be given:
    `name` defaults to the key, `kind` to fuel, `required` to what the kind needs (at, amount and
    litres or kwh), `time_formats` to common Chinese statement formats.

    A bad definition raises ValueError naming the issuer and the problem."""
    formats = dict(BUILTIN_FORMATS)
    for issuer, spec in (extra or {}).items():
        formats[issuer] = _format_from_config(issuer, spec)
    return formats


def _format_from_config(issuer: object, spec: object) -> StatementFormat:
    if not isinstance(issuer, str) or not issuer.strip():
        raise ValueError(f"statement format {issuer!r}: the issuer key must be a non-empty string")

    def bad(problem: str) -> ValueError:
        return ValueError(f"statement format {issuer!r}: {problem}")

    def strings(value: object, what: str) -> tuple[str, ...]:
        if isinstance(value, str):
            return (value,)
        if isinstance(value, Sequence) and all(isinstance(item, str) for item in value):
            return tuple(value)
        raise bad(f"{what} must be a string or a list of strings, not {value!r}")

    if not isinstance(spec, Mapping):
        raise bad("the definition must be a mapping")
    unknown = sorted(set(spec) - CONFIG_KEYS)
    if unknown:
        raise bad(f"unknown key {unknown[0]!r} (keys are {', '.join(sorted(CONFIG_KEYS))})")
    columns = spec.get("columns")
    if not isinstance(columns, Mapping) or not columns:
        raise bad("columns must be a non-empty mapping of field to header names")
    kind = spec.get("kind", "fuel")
    name = spec.get("name", issuer)
    if not isinstance(name, str):
        raise bad(f"name must be a string, not {name!r}")
    if not isinstance(kind, str):
        raise bad(f"kind must be a string, not {kind!r}")
    default_required = ("at", "amount", QUANTITY.get(kind, "litres"))
    return StatementFormat(
        issuer=issuer,
        name=name,
        kind=kind,
        columns={
            str(field): strings(names, f"the header names of {field!r}")
            for field, names in columns.items()
        },
        required=frozenset(strings(spec.get("required", default_required), "required")),
        time_formats=strings(spec.get("time_formats", DEFAULT_TIME_FORMATS), "time_formats"),
        header_row=spec.get("header_row"),
    )


# ---- reading the file into rows of cells ---------------------------------------------------------

Record = tuple[int, Sequence[object]]  # (line, cells)


@dataclass(frozen=True)
class _Header:
    position: int  # index of the header record
    columns: dict[str, int]  # field -> cell index
    missing: tuple[str, ...]  # required fields without a column


def parse(
    data: bytes, filename: str, fmt: StatementFormat, *, zone: ZoneInfo, now: datetime
) -> tuple[list[StatementRow], list[RowError]]:
    """The statement's rows, and every problem found in them; rows with a problem are left out.

    `zone` is where the statement's times are local; `now` (aware) bounds them: a time more than a
    day after it is refused. Raises StatementUnreadable if the file as a whole cannot be used."""
    if now.utcoffset() is None:
        raise ValueError("now must be an aware datetime")
    records, header = _table(data, filename, fmt)
    latest = now + timedelta(days=1)
    rows: list[StatementRow] = []
    errors: list[RowError] = []
    first_line: dict[str, int] = {}
    for line, cells in records[header.position + 1 :]:
        if _skipped(cells):
            continue
        values = {
            field: cells[index] if index < len(cells) else None
            for field, index in header.columns.items()
        }
        row, row_errors, transaction_id = _read_row(line, values, fmt, zone, latest)
        if transaction_id is not None:
            earlier = first_line.setdefault(transaction_id, line)
            if earlier != line:
                row_errors.append(
                    RowError(
                        line,
                        "transaction_id",
                        f"transaction_id '{transaction_id}' repeats line {earlier}",
                    )
                )
                row = None
        errors.extend(row_errors)
        if row is not None:
            rows.append(row)
    return rows, errors


def _table(data: bytes, filename: str, fmt: StatementFormat) -> tuple[list[Record], _Header]:
    if data.startswith(b"PK"):
        candidates: Iterator[list[Record]] = iter([_xlsx_records(data, filename)])
    elif data.startswith(b"\xd0\xcf\x11\xe0"):
        raise StatementUnreadable(
            f"{filename}: an old Excel .xls workbook; save it as .xlsx or CSV and upload again"
        )
    else:
        text = _decode(data, filename)
        candidates = (_csv_records(text, delimiter, filename) for delimiter in DELIMITERS)
    best: tuple[list[Record], _Header] | None = None
    for records in candidates:
        if not any(not _blank(cells) for _, cells in records):
            raise StatementUnreadable(f"{filename}: the file has no rows")
        header = _find_header(records, fmt)
        if not header.missing:
            return records, header
        if best is None or len(header.missing) < len(best[1].missing):
            best = records, header
    assert best is not None
    missing = ", ".join(f"{'/'.join(fmt.columns[field])} ({field})" for field in best[1].missing)
    where = (
        f"row {fmt.header_row}"
        if fmt.header_row is not None
        else f"the first {HEADER_SEARCH_ROWS} rows"
    )
    raise StatementUnreadable(
        f"{filename}: not a {fmt.name} statement: no header in {where} has the required columns"
        f" 缺少必需列 {missing}"
    )


def _decode(data: bytes, filename: str) -> str:
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        # Excel's "Unicode text" export: UTF-16 with a BOM, tab-separated.
        encodings: tuple[str, ...] = ("utf-16",)
    else:
        encodings = ("utf-8-sig", "gb18030")
    for encoding in encodings:
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        if "\x00" in text:
            break
        if not text.strip():
            raise StatementUnreadable(f"{filename}: the file is empty")
        return text
    raise StatementUnreadable(
        f"{filename}: neither an XLSX workbook nor CSV text in UTF-8 or GB18030"
    )


def _csv_records(text: str, delimiter: str, filename: str) -> list[Record]:
    records: list[Record] = []
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    last_line = 0
    try:
        for cells in reader:
            # A quoted cell may span lines; the record is where it starts.
            records.append((last_line + 1, cells))
            last_line = reader.line_num
    except csv.Error as exc:
        raise StatementUnreadable(f"{filename}: not readable as CSV: {exc}") from exc
    return records


def _xlsx_records(data: bytes, filename: str) -> list[Record]:
    try:
        unpacked = sum(entry.file_size for entry in zipfile.ZipFile(io.BytesIO(data)).infolist())
        # openpyxl warns about features of other writers that it drops (styles, extensions); they
        # do not change the values read, and a warning must not fail an import.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
            try:
                sheet = workbook.worksheets[0]
                declared = (sheet.max_row or 0, sheet.max_column or 0)
                # Some writers record a wrong sheet size; reading to the real end is safer.
                sheet.reset_dimensions()
                too_large = _sheet_too_large(unpacked, declared)
                if too_large is None:
                    return _bounded_rows(sheet.iter_rows(max_col=MAX_COLUMNS + 1, values_only=True))
            finally:
                workbook.close()
    except _SheetTooLarge as exc:
        too_large = str(exc)
    except Exception as exc:  # openpyxl raises many kinds on a damaged or foreign zip
        raise StatementUnreadable(f"{filename}: not a readable XLSX workbook ({exc})") from exc
    raise StatementUnreadable(f"{filename}: {too_large}")


class _SheetTooLarge(Exception):
    pass


def _limits() -> str:
    return (
        f"a statement sheet has at most {MAX_ROWS} rows, {MAX_COLUMNS} columns and"
        f" {MAX_CELLS} cells"
    )


def _sheet_too_large(unpacked: int, declared: tuple[int, int]) -> str | None:
    rows, columns = declared
    if unpacked > MAX_SHEET_XML_BYTES:
        return f"the workbook unpacks to {unpacked} bytes, more than {MAX_SHEET_XML_BYTES}"
    if rows > MAX_ROWS or columns > MAX_COLUMNS or rows * columns > MAX_CELLS:
        return f"the sheet declares {rows} rows × {columns} columns; {_limits()}"
    return None


def _bounded_rows(rows: Iterator[tuple[object, ...]]) -> list[Record]:
    """The rows read, refused as soon as one passes a bound (the sheet's declared size can lie).
    Rows arrive cut at MAX_COLUMNS + 1 cells: a value in the last one is a column too many."""
    records: list[Record] = []
    cells = 0
    for line, row in enumerate(rows, start=1):
        last = len(row)
        while last and row[last - 1] is None:
            last -= 1
        cells += last
        if line > MAX_ROWS or last > MAX_COLUMNS or cells > MAX_CELLS:
            raise _SheetTooLarge(f"row {line} passes a bound: {_limits()}")
        records.append((line, row[:last]))
    return records


def _find_header(records: list[Record], fmt: StatementFormat) -> _Header:
    best = _Header(-1, {}, tuple(field for field in FIELDS if field in fmt.required))
    for position, (line, cells) in enumerate(records):
        if fmt.header_row is not None and line != fmt.header_row:
            continue
        if fmt.header_row is None and position >= HEADER_SEARCH_ROWS:
            break
        columns = _match_columns(cells, fmt)
        missing = tuple(field for field in FIELDS if field in fmt.required - set(columns))
        if not missing:
            return _Header(position, columns, ())
        if len(missing) < len(best.missing):
            best = _Header(position, columns, missing)
    return best


def _match_columns(cells: Sequence[object], fmt: StatementFormat) -> dict[str, int]:
    index_of: dict[str, int] = {}
    for position, cell in enumerate(cells):
        index_of.setdefault(_header_key(cell), position)
    index_of.pop("", None)
    columns: dict[str, int] = {}
    for field, names in fmt.columns.items():
        found = next((index_of[key] for key in map(_header_key, names) if key in index_of), None)
        if found is not None:
            columns[field] = found
    return columns


def _blank(cells: Sequence[object]) -> bool:
    return all(_text(cell) == "" for cell in cells)


def _skipped(cells: Sequence[object]) -> bool:
    first = next((text for text in map(_text, cells) if text), None)
    return first is None or first.casefold().startswith(SUMMARY_PREFIXES)


# ---- one row -------------------------------------------------------------------------------------

NUMBER = re.compile(
    r"(?P<sign>[+-]?)(?:¥|rmb|cny)?(?P<inner_sign>[+-]?)"
    r"(?P<digits>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d*)?|\.\d+)"
    r"(?:元|升|l|kwh|度|km|公里)?",
    re.IGNORECASE | re.ASCII,
)
CARD = re.compile(r"[0-9A-Z*]+")  # masked digits (*) appear on some issuers' statements


def _number(cell: object) -> Decimal | None:
    """The cell as a number, accepting 1,234.50, ¥300.00, 300元, 45.2升; None if it is not one."""
    if isinstance(cell, bool):
        return None
    if isinstance(cell, int | float):
        value = Decimal(repr(cell)) if isinstance(cell, float) else Decimal(cell)
        return value if value.is_finite() else None
    if not isinstance(cell, str):
        return None
    match = NUMBER.fullmatch("".join(unicodedata.normalize("NFKC", cell).split()))
    if match is None or (match["sign"] and match["inner_sign"]):
        return None
    return Decimal(match["sign"] + match["inner_sign"] + match["digits"].replace(",", ""))


def _read_row(
    line: int,
    values: Mapping[str, object],
    fmt: StatementFormat,
    zone: ZoneInfo,
    latest: datetime,
) -> tuple[StatementRow | None, list[RowError], str | None]:
    """The row (None if it has a problem), its problems, and its transaction id for the duplicate
    check."""
    errors: list[RowError] = []

    def fail(field: str, reason: str) -> None:
        errors.append(RowError(line, field, reason))

    shown = {field: _text(values.get(field)) for field in FIELDS}
    for field in FIELDS:
        if field in fmt.required and not shown[field]:
            fail(field, f"{field} is empty")

    def identifier(field: str) -> str | None:
        cell = values.get(field)
        if isinstance(cell, float) and abs(cell) >= EXCEL_EXACT_BELOW:
            fail(
                field,
                f"{field} {cell!r} was stored as a number and has lost digits;"
                " the column must be formatted as text",
            )
            return None
        return shown[field] or None

    def number(field: str) -> Decimal | None:
        if not shown[field]:
            return None
        value = _number(values.get(field))
        if value is None:
            fail(field, f"{field} '{shown[field]}' is not a number")
            return None
        problem = BOUNDS[field].problem(value)
        if problem:
            fail(field, f"{field} '{shown[field]}' {problem}")
            return None
        return value

    transaction_id = identifier("transaction_id")
    at = _time(values.get("at"), shown["at"], fmt, zone, fail) if shown["at"] else None
    if at is not None and at > latest:
        fail("at", f"at '{shown['at']}' is in the future")

    plate = identifier("plate")
    if plate is not None:
        plate = "".join(plate.split()).upper()
    card = identifier("card")
    if card is not None:
        card = "".join(card.split()).replace("-", "").upper()
        if not CARD.fullmatch(card):
            fail("card", f"card '{shown['card']}' must be letters and digits")
    if not shown["plate"] and not shown["card"] and not {"plate", "card"} & fmt.required:
        fail("plate", "neither plate nor card is given")

    lat, lon = number("station_lat"), number("station_lon")
    for field, other in (("station_lat", "station_lon"), ("station_lon", "station_lat")):
        if shown[other] and not shown[field]:
            fail(field, f"{field} is empty but {other} is given")

    litres, kwh = number("litres"), number("kwh")
    unit_price = number("unit_price")
    amount = number("amount")
    quantity = litres if fmt.kind == "fuel" else kwh
    if quantity is not None and unit_price is not None and amount is not None:
        expected = quantity * unit_price
        if abs(amount - expected) > max(AMOUNT_TOLERANCE, expected * AMOUNT_TOLERANCE_SHARE):
            fail(
                "amount",
                f"amount {amount} does not match {fmt.quantity} {quantity} × unit_price"
                f" {unit_price} = {expected.quantize(CENT, ROUND_HALF_UP)}",
            )
    odometer_km = number("odometer_km")

    if errors or at is None or amount is None:
        return None, errors, transaction_id
    row = StatementRow(
        line=line,
        transaction_id=transaction_id,
        at=at,
        plate=plate,
        card=card,
        station_name=shown["station_name"],
        station_lat=_float(lat),
        station_lon=_float(lon),
        product=shown["product"],
        litres=_float(litres),
        kwh=_float(kwh),
        unit_price=_float(unit_price),
        amount=amount.quantize(CENT, ROUND_HALF_UP),
        odometer_km=_float(odometer_km),
    )
    return row, errors, transaction_id


def _time(
    cell: object,
    shown: str,
    fmt: StatementFormat,
    zone: ZoneInfo,
    fail: Callable[[str, str], None],
) -> datetime | None:
    local: datetime | None = None
    if isinstance(cell, datetime):
        local = cell
    elif isinstance(cell, date):
        local = datetime(cell.year, cell.month, cell.day)
    else:
        for time_format in fmt.time_formats:
            try:
                local = datetime.strptime(shown, time_format)
            except ValueError:
                continue
            break
    if local is None:
        example = EXAMPLE_TIME.strftime(fmt.time_formats[0])
        fail("at", f"at '{shown}' is not a time in a known format, such as '{example}'")
        return None
    try:
        return (local if local.tzinfo else local.replace(tzinfo=zone)).astimezone(UTC)
    except (OverflowError, ValueError):
        fail("at", f"at '{shown}' is out of range")
        return None


def _float(value: Decimal | None) -> float | None:
    return None if value is None else float(value)
