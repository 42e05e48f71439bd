"""The order dossier, the vehicle file and the driver's file as `Document`s (reports.layout),
from the plain dicts `reports.dossier` builds: which sections, which fields and tables, in which
tones."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from zoneinfo import ZoneInfo

from reports.layout import (
    LABELS,
    MISSING,
    NONE_NOTE,
    Bar,
    BarChart,
    Block,
    Document,
    Field,
    Fields,
    Marker,
    Note,
    RouteMap,
    Section,
    Table,
    Tone,
    _facts,
    _number,
    _table_or_none,
    _text,
    _yes_no,
    format_distance,
    format_duration,
    format_money,
    format_time,
    label,
)

# ---- the order dossier ------------------------------------------------------------------------

H_REQUEST = "申请 Request"
H_APPROVALS = "审批 Approvals"
H_ASSIGNMENT = "派车 Assignment"
H_ROUTE = "路线与轨迹 Route and track"
H_COSTS = "费用 Costs"
H_ALERTS = "告警 Alerts"
H_AUDIT = "审计日志 Audit log"
H_RATING = "用车评价 Rating"


def _lon_lat(value: object) -> tuple[float, float] | None:
    if isinstance(value, Sequence) and len(value) >= 2 and None not in (value[0], value[1]):
        return float(value[0]), float(value[1])
    return None


def _request(order: Mapping[str, Any], zone: ZoneInfo) -> tuple[Block, ...]:
    requester = order.get("requester") or {}
    who = requester.get("full_name") or requester.get("username")
    if requester.get("full_name") and requester.get("username"):
        who = f"{requester['full_name']} ({requester['username']})"
    origin = _lon_lat(order.get("origin"))
    where = _text(order.get("origin_name"))
    if origin:
        where += f" ({origin[0]:.5f}, {origin[1]:.5f})"
    destinations = "\n".join(
        f"{i}. {_text(d.get('name'))}" for i, d in enumerate(order.get("destinations") or [], 1)
    )
    return (
        Fields(
            (
                Field("单号 Order", f"#{_text(order.get('id'))}"),
                Field("状态 Status", label("order_status", order.get("status"))),
                Field("用途 Purpose", _text(order.get("purpose")), wide=True),
                Field("用车单位 Unit", _text((order.get("unit") or {}).get("name"))),
                Field("申请人 Requester", _text(who)),
                Field("乘车人数 Passengers", _number(order.get("passengers"))),
                Field("审批结果 Approval", label("approval", order.get("approval"))),
                Field("开始 Start", format_time(order.get("start_at"), zone)),
                Field("结束 End", format_time(order.get("end_at"), zone)),
                Field("出发地 Origin", where, wide=True),
                Field("目的地 Destinations", _text(destinations), wide=True),
                Field("紧急用车 Emergency", _yes_no(order.get("emergency"))),
                Field("出市 Out of region", _yes_no(order.get("out_of_region"))),
                Field("过夜 Overnight", _yes_no(order.get("overnight"))),
                Field("提交时间 Created", format_time(order.get("created_at"), zone)),
                Field("备注 Notes", _text(order.get("notes")), wide=True),
            )
        ),
    )


APPROVAL_TONES: dict[bool | None, Tone] = {True: "", False: "bad", None: "muted"}
REVIEW_TONES: dict[str, Tone] = {"confirmed": "bad", "escalated": "bad", "dismissed": "muted"}


def _decision(approved: bool | None) -> str:
    return label("decision", {True: "approved", False: "rejected", None: "undecided"}[approved])


def _approvals(approvals: Sequence[Mapping[str, Any]], zone: ZoneInfo) -> tuple[Block, ...]:
    rows: list[tuple[str, ...]] = []
    tones: list[Tone] = []
    for step in approvals:
        grounds = [
            label("condition", r) if r in LABELS["condition"] else r for r in step["reasons"]
        ]
        rows.append(
            (
                _text(step.get("step")),
                _text(step.get("unit_name")),
                _text("\n".join(grounds)),
                _decision(step.get("approved")),
                _text(step.get("by")),
                format_time(step.get("at"), zone),
                _text(step.get("comment")),
            )
        )
        tones.append(APPROVAL_TONES[step.get("approved")])
    columns = (
        "步骤 Step",
        "审批单位 Unit",
        "审批依据 Grounds",
        "决定 Decision",
        "审批人 By",
        "时间 At",
        "意见 Comment",
    )
    return (_table_or_none(columns, rows, (8, 16, 23, 13, 10, 16, 22), tones),)


def _assignment(assignment: Mapping[str, Any] | None, zone: ZoneInfo) -> tuple[Block, ...]:
    if not assignment:
        return (Note(f"{NONE_NOTE}: 未派车 Not assigned"),)
    vehicle = assignment.get("vehicle") or {}
    driver = assignment.get("driver") or {}
    return (
        Fields(
            (
                Field("车辆 Vehicle", _text(vehicle.get("plate"))),
                Field("品牌型号 Make and model", _text(vehicle.get("make_model"))),
                Field("车辆类别 Category", label("category", vehicle.get("category"))),
                Field("能源 Energy", label("energy", vehicle.get("energy"))),
                Field("驾驶员 Driver", _text(driver.get("name"))),
                Field("电话 Phone", _text(driver.get("phone"))),
                Field("占用开始 Held from", format_time(assignment.get("from"), zone)),
                Field("占用结束 Held to", format_time(assignment.get("to"), zone)),
                Field("派车人 Assigned by", _text(assignment.get("assigned_by"))),
                Field("派车时间 Assigned at", format_time(assignment.get("assigned_at"), zone)),
                Field(
                    "路线来源 Route source", label("route_source", assignment.get("route_source"))
                ),
                Field("人工指派理由 Override reason", _text(assignment.get("reason")), wide=True),
                *_shared(assignment),
            )
        ),
    )


def _shared(assignment: Mapping[str, Any]) -> tuple[Field, ...]:
    """A merged trip's orders and how its costs are shared (by passengers)."""
    shared = assignment.get("shared") or []
    if not shared:
        return ()
    riders = "; ".join(
        f"#{s['order_id']} {s['unit_name']} {s['purpose']}"
        f" ({s['passengers']}人 / pax, {s['share'] * 100:.0f}%)"
        for s in shared
    )
    return (
        Field("合并用车 Shared trip", riders, wide=True),
        Field("本单分摊 This order's share", f"{float(assignment.get('share', 1.0)) * 100:.0f}%"),
    )


def _route(
    order: Mapping[str, Any],
    route: Mapping[str, Any],
    figures: Mapping[str, Any],
    zone: ZoneInfo,
) -> tuple[Block, ...]:
    markers = []
    origin = _lon_lat(order.get("origin"))
    if origin:
        markers.append(Marker(f"起 {_text(order.get('origin_name'))}", *origin, origin=True))
    for i, d in enumerate(order.get("destinations") or [], 1):
        spot = _lon_lat((d.get("lon"), d.get("lat")))
        if spot:
            markers.append(Marker(f"{i} {_text(d.get('name'))}", *spot, origin=False))
    route_map = RouteMap(
        planned=tuple(route.get("planned") or ()),
        driven=tuple(tuple(line) for line in route.get("driven") or ()),
        markers=tuple(markers),
    )
    planned_m, driven_m = figures.get("planned_distance_m"), figures.get("distance_m")
    against_plan = MISSING
    if planned_m and driven_m is not None:
        against_plan = f"{(driven_m - planned_m) / planned_m:+.1%}"
    start_km, end_km = figures.get("odometer_start_km"), figures.get("odometer_end_km")
    odometer_km = None if start_km is None or end_km is None else end_km - start_km
    trips = figures.get("trips") or []
    return (
        route_map,
        Fields(
            (
                Field("计划里程 Planned distance", format_distance(planned_m)),
                Field("实际里程 Driven distance", format_distance(driven_m)),
                Field("与计划相差 Against plan", against_plan),
                Field("行驶时长 Driving time", format_duration(figures.get("duration_s"))),
                Field("里程表起 Odometer start", _number(start_km, "km")),
                Field("里程表止 Odometer end", _number(end_km, "km")),
                Field("里程表差 Odometer distance", _number(odometer_km, "km")),
                Field("行程数 Trips", str(len(trips))),
            )
        ),
        _table_or_none(
            (
                "行程 Trip",
                "开始 Start",
                "结束 End",
                "里程 Distance",
                "时长 Duration",
                "最高速度 Max speed",
            ),
            [
                (
                    f"#{_text(t.get('id'))}",
                    format_time(t.get("start_at"), zone),
                    format_time(t.get("end_at"), zone),
                    format_distance(t.get("distance_m")),
                    format_duration(t.get("duration_s")),
                    _number(t.get("max_speed_kmh"), "km/h"),
                )
                for t in trips
            ],
            (10, 19, 19, 16, 16, 20),
            nothing="无行程 No trips",
        ),
    )


def _quantity(item: Mapping[str, Any]) -> str:
    parts = [
        _number(item[key], unit) for key, unit in (("litres", "L"), ("kwh", "kWh")) if item.get(key)
    ]
    return " / ".join(parts) or MISSING


def _order_costs(costs: Mapping[str, Any], zone: ZoneInfo) -> tuple[Block, ...]:
    items = costs.get("items") or []
    rows = [
        (
            format_time(c.get("at"), zone),
            label("cost_kind", c.get("kind")),
            format_money(c.get("amount")),
            MISSING if c.get("share") is None else f"{c['share']:.1%}",
            format_money(c.get("allocated")),
            _quantity(c),
            _text(c.get("station_name")),
            _text(c.get("note")),
        )
        for c in items
    ]
    columns = (
        "时间 At",
        "类别 Kind",
        "金额 Amount",
        "分摊比例 Share",
        "本单分摊 Allocated",
        "数量 Quantity",
        "站点 Station",
        "备注 Note",
    )
    return (
        _table_or_none(columns, rows, (15, 11, 12, 10, 12, 11, 16, 13)),
        Note(
            f"本单费用合计 Total allocated to this order: {format_money(costs.get('total'))}",
            "total",
        ),
    )


def _review_history(reviews: Iterable[Mapping[str, Any]], zone: ZoneInfo) -> str:
    lines = [
        f"{label('review', r.get('decision'))}: {_text(r.get('reason'))}"
        f" ({_text(r.get('by'))}, {format_time(r.get('at'), zone)})"
        for r in reviews
    ]
    return "\n".join(lines) or MISSING


def _review_tone(review: object) -> Tone:
    return REVIEW_TONES.get(str(review), "")


def _order_alerts(alerts: Sequence[Mapping[str, Any]], zone: ZoneInfo) -> tuple[Block, ...]:
    rows = [
        (
            f"#{_text(a.get('id'))}",
            label("alert_kind", a.get("kind")),
            label("severity", a.get("severity")),
            format_time(a.get("started_at"), zone),
            format_time(a.get("ended_at"), zone),
            _facts(a.get("measured")),
            _facts(a.get("thresholds")),
            label("review", a.get("review")),
            _review_history(a.get("reviews") or [], zone),
        )
        for a in alerts
    ]
    columns = (
        "编号 #",
        "类型 Kind",
        "等级 Severity",
        "开始 Started",
        "结束 Ended",
        "实测 Measured",
        "阈值 Thresholds",
        "复核 Review",
        "复核记录 Review history",
    )
    tones = [_review_tone(a.get("review")) for a in alerts]
    return (_table_or_none(columns, rows, (6, 12, 8, 11, 11, 14, 14, 11, 19), tones),)


def _stars(stars: object) -> str:
    if not isinstance(stars, int) or not 1 <= stars <= 5:
        return MISSING
    return f"{'★' * stars}{'☆' * (5 - stars)} {stars}/5"


def _rating(rating: Mapping[str, Any] | None, zone: ZoneInfo) -> tuple[Block, ...]:
    if not rating:
        return (Note(f"{NONE_NOTE}: 未评价 Not rated"),)
    return (
        Fields(
            (
                Field("评分 Stars", _stars(rating.get("stars"))),
                Field("评价时间 Rated at", format_time(rating.get("at"), zone)),
                Field("评语 Comment", _text(rating.get("comment")), wide=True),
            )
        ),
    )


def _verification(verification: Mapping[str, Any] | None) -> Note:
    if not verification:
        return Note("未校验 Not verified")
    since = verification.get("since_checkpoint")
    start = (
        f"自签名检查点（条目 {_text(since.get('entry_id'))}，{_text(since.get('at'))}）起"
        f" from the signed checkpoint of entry {_text(since.get('entry_id'))}"
        if since
        else "自首条起 from the first entry"
    )
    if verification.get("ok"):
        checked = _number(verification.get("checked"))
        return Note(f"链完整 Chain intact, {start} ({checked} entries checked)", "ok")
    return Note(
        f"链断裂 Chain broken at entry {_text(verification.get('first_bad_id'))}: "
        f"{_text(verification.get('message'))}",
        "bad",
    )


def _audit(audit: Mapping[str, Any], zone: ZoneInfo) -> tuple[Block, ...]:
    rows = [
        (
            f"#{_text(e.get('id'))}",
            format_time(e.get("at"), zone),
            _text(e.get("actor")),
            _text(e.get("action")),
            f"{_text(e.get('entity'))} {_text(e.get('entity_id'))}",
            _text((e.get("hash") or "")[:12]),
        )
        for e in audit.get("entries") or []
    ]
    columns = ("编号 #", "时间 At", "操作人 Actor", "操作 Action", "对象 Entity", "哈希 Hash")
    return (
        _verification(audit.get("verification")),
        _table_or_none(columns, rows, (9, 17, 13, 17, 22, 18), nothing="无日志 No entries"),
    )


def _order_document(dossier: Mapping[str, Any], zone: ZoneInfo) -> Document:
    order = dossier.get("order") or {}
    return Document(
        title=f"用车档案 Trip order dossier #{_text(order.get('id'))}",
        subtitle=_text(order.get("purpose")),
        generated=_generated(dossier.get("generated_at"), zone),
        sections=(
            Section(H_REQUEST, _request(order, zone)),
            Section(H_APPROVALS, _approvals(dossier.get("approvals") or [], zone)),
            Section(H_ASSIGNMENT, _assignment(dossier.get("assignment"), zone)),
            Section(
                H_ROUTE,
                _route(order, dossier.get("route") or {}, dossier.get("figures") or {}, zone),
            ),
            Section(H_COSTS, _order_costs(dossier.get("costs") or {}, zone)),
            Section(H_ALERTS, _order_alerts(dossier.get("alerts") or [], zone)),
            Section(H_RATING, _rating(dossier.get("rating"), zone)),
            Section(H_AUDIT, _audit(dossier.get("audit") or {}, zone)),
        ),
    )


def _generated(at: str | None, zone: ZoneInfo) -> str:
    return f"生成时间 Generated {format_time(at, zone)} ({zone.key})"


# ---- the vehicle file -------------------------------------------------------------------------

H_VEHICLE = "车辆信息 Vehicle"
H_ASSIGNMENTS = "用车记录 Assignments"
H_DISTANCE = "月度里程 Distance by month"
H_CONSUMPTION = "能耗 Consumption"
H_DUE = "到期提醒 Due dates"
H_STATUS = "状态变更 Status changes"
DUE_SOON_DAYS = 30


def _vehicle(vehicle: Mapping[str, Any], zone: ZoneInfo) -> tuple[Block, ...]:
    return (
        Fields(
            (
                Field("号牌 Plate", _text(vehicle.get("plate"))),
                Field("品牌型号 Make and model", _text(vehicle.get("make_model"))),
                Field("车辆类别 Category", label("category", vehicle.get("category"))),
                Field("车身 Body", label("body_class", vehicle.get("body_class"))),
                Field("座位 Seats", _number(vehicle.get("seats"))),
                Field("能源 Energy", label("energy", vehicle.get("energy"))),
                Field("油箱 Tank", _number(vehicle.get("tank_l"), "L")),
                Field("电池 Battery", _number(vehicle.get("battery_kwh"), "kWh")),
                Field("油耗定额 Fuel norm", _number(vehicle.get("fuel_norm_l_100km"), "L/100 km")),
                Field(
                    "电耗定额 Energy norm",
                    _number(vehicle.get("energy_norm_kwh_100km"), "kWh/100 km"),
                ),
                Field("状态 Status", label("vehicle_status", vehicle.get("status"))),
                Field("所属单位 Unit", _text((vehicle.get("unit") or {}).get("name"))),
                Field("停放点 Depot", _text(vehicle.get("depot_name"))),
                Field("登记时间 Registered", format_time(vehicle.get("created_at"), zone)),
            )
        ),
    )


def _driver_name(driver: object) -> str:
    if isinstance(driver, Mapping):
        return _text(driver.get("name"))
    return _text(driver)


def _assignments(rows: Sequence[Mapping[str, Any]], zone: ZoneInfo) -> tuple[Block, ...]:
    columns = ("单号 Order", "用途 Purpose", "开始 From", "结束 To", "驾驶员 Driver", "状态 Status")
    return (
        _table_or_none(
            columns,
            [
                (
                    " + ".join(f"#{i}" for i in (a.get("order_ids") or [a.get("order_id")])),
                    _text(a.get("purpose")),
                    format_time(a.get("from"), zone),
                    format_time(a.get("to"), zone),
                    _driver_name(a.get("driver")),
                    label("order_status", a.get("status")),
                )
                for a in rows
            ],
            (9, 33, 16, 16, 12, 14),
        ),
    )


def _distance_by_month(months: Sequence[Mapping[str, Any]]) -> tuple[Block, ...]:
    rows = [
        (
            _text(m.get("month")),
            format_distance(m.get("distance_m")),
            _number(m.get("trips")),
            _number(m.get("hours"), "h"),
        )
        for m in months
    ]
    table = _table_or_none(
        ("月份 Month", "里程 Distance", "行程数 Trips", "时长 Hours"), rows, (1, 1, 1, 1)
    )
    if not months:
        return (table,)
    chart = BarChart(
        "月度里程 (km) Distance by month (km)",
        tuple(
            Bar(
                _text(m.get("month")),
                None if m.get("distance_m") is None else m["distance_m"] / 1000,
                MISSING if m.get("distance_m") is None else f"{m['distance_m'] / 1000:,.0f}",
            )
            for m in months
        ),
    )
    return chart, table


def _norms(month: Mapping[str, Any]) -> str:
    """The norms the month is judged against: litres, kWh, or both for a plug-in hybrid."""
    norms = [
        _number(month.get(key), unit)
        for key, unit in (("norm_l_100km", "L/100 km"), ("norm_kwh_100km", "kWh/100 km"))
        if month.get(key) is not None
    ]
    return " + ".join(norms) if norms else MISSING


def _consumption(months: Sequence[Mapping[str, Any]]) -> tuple[Block, ...]:
    rows: list[tuple[str, ...]] = []
    tones: list[Tone] = []
    for m in months:
        over = m.get("over_norm_pct")
        rows.append(
            (
                _text(m.get("month")),
                _number(m.get("litres"), "L"),
                _number(m.get("kwh"), "kWh"),
                format_distance(m.get("distance_m")),
                _number(m.get("l_100km"), "L/100 km"),
                _number(m.get("kwh_100km"), "kWh/100 km"),
                _norms(m),
                MISSING if over is None else f"{over:+.1f}%",
            )
        )
        tones.append("bad" if over is not None and over > 0 else "")
    columns = (
        "月份 Month",
        "加油 Fuel",
        "充电 Charge",
        "里程 Distance",
        "百公里油耗 Fuel use",
        "百公里电耗 Power use",
        "定额 Norm",
        "超定额 Over norm",
    )
    table = _table_or_none(columns, rows, (10, 11, 12, 12, 15, 16, 14, 10), tones)
    # Litres when the vehicle burns any fuel (a plug-in hybrid's norm is in litres), else kWh.
    key, unit = ("l_100km", "L/100 km")
    if not any(m.get("l_100km") is not None for m in months):
        key, unit = ("kwh_100km", "kWh/100 km")
    if not any(m.get(key) is not None for m in months):
        return (table,)
    chart = BarChart(
        f"百公里能耗 ({unit}) Consumption ({unit}), 超定额为红 red when over the norm",
        tuple(
            Bar(_text(m.get("month")), m.get(key), _number(m.get(key)), tone)
            for m, tone in zip(months, tones, strict=True)
        ),
    )
    return chart, table


def _vehicle_costs(costs: Mapping[str, Any], zone: ZoneInfo) -> tuple[Block, ...]:
    by_kind = sorted((costs.get("by_kind") or {}).items(), key=lambda kv: -kv[1])
    items = costs.get("items") or []
    return (
        Note("按类别 By kind", "caption"),
        _table_or_none(
            ("类别 Kind", "金额 Amount"),
            [(label("cost_kind", kind), format_money(amount)) for kind, amount in by_kind],
            (1, 1),
        ),
        Note(f"合计 Total: {format_money(costs.get('total'))}", "total"),
        Note("明细 Items", "caption"),
        _table_or_none(
            (
                "时间 At",
                "类别 Kind",
                "金额 Amount",
                "数量 Quantity",
                "站点 Station",
                "用车单 Order",
                "备注 Note",
            ),
            [
                (
                    format_time(c.get("at"), zone),
                    label("cost_kind", c.get("kind")),
                    format_money(c.get("amount")),
                    _quantity(c),
                    _text(c.get("station_name")),
                    MISSING if c.get("order_id") is None else f"#{c['order_id']}",
                    _text(c.get("note")),
                )
                for c in items
            ],
            (16, 11, 12, 12, 20, 10, 19),
        ),
    )


def _due(due: Sequence[Mapping[str, Any]]) -> tuple[Block, ...]:
    rows: list[tuple[str, ...]] = []
    tones: list[Tone] = []
    for d in due:
        days = d.get("days_left")
        tone: Tone
        if d.get("overdue"):
            state, tone = "已逾期 Overdue", "bad"
        elif days is not None and days <= DUE_SOON_DAYS:
            state, tone = "即将到期 Due soon", ""
        else:
            state, tone = "正常 OK", ""
        rows.append(
            (label("cost_kind", d.get("kind")), _text(d.get("due_on")), _number(days), state)
        )
        tones.append(tone)
    columns = ("项目 Item", "到期日 Due on", "剩余天数 Days left", "状态 State")
    return (_table_or_none(columns, rows, (1, 1, 1, 1), tones),)


def _vehicle_alerts(
    alerts: Sequence[Mapping[str, Any]], outcomes: Mapping[str, Mapping[str, Any]], zone: ZoneInfo
) -> tuple[Block, ...]:
    listed = _table_or_none(
        ("编号 #", "类型 Kind", "等级 Severity", "开始 Started", "复核 Review"),
        [
            (
                f"#{_text(a.get('id'))}",
                label("alert_kind", a.get("kind")),
                label("severity", a.get("severity")),
                format_time(a.get("started_at"), zone),
                label("review", a.get("review")),
            )
            for a in alerts
        ],
        (10, 34, 14, 22, 20),
        [_review_tone(a.get("review")) for a in alerts],
    )
    if not outcomes:
        return (listed,)
    # The outcomes say how often this vehicle's alerts of each kind turned out to be real.
    counts = ("total", "confirmed", "dismissed", "escalated", "pending")
    summary = Table(
        (
            "类型 Kind",
            "总数 Total",
            "属实 Confirmed",
            "排除 Dismissed",
            "上报 Escalated",
            "待审 Pending",
        ),
        tuple(
            (label("alert_kind", kind), *(_number(o.get(c, 0)) for c in counts))
            for kind, o in outcomes.items()
        ),
        (30, 14, 14, 14, 14, 14),
    )
    return (
        Note("复核结果 Review outcomes", "caption"),
        summary,
        Note("告警列表 Alerts", "caption"),
        listed,
    )


def _status_changes(changes: Sequence[Mapping[str, Any]], zone: ZoneInfo) -> tuple[Block, ...]:
    return (
        _table_or_none(
            ("时间 At", "操作人 Actor", "原状态 From", "新状态 To"),
            [
                (
                    format_time(c.get("at"), zone),
                    _text(c.get("actor")),
                    label("vehicle_status", c.get("from")),
                    label("vehicle_status", c.get("to")),
                )
                for c in changes
            ],
            (1, 1, 1, 1),
        ),
    )


def _vehicle_document(file: Mapping[str, Any], zone: ZoneInfo) -> Document:
    vehicle = file.get("vehicle") or {}
    return Document(
        title=f"一车一档 Vehicle file {_text(vehicle.get('plate'))}",
        subtitle=" · ".join(
            part
            for part in (
                _text(vehicle.get("make_model")),
                label("category", vehicle.get("category")),
                _text((vehicle.get("unit") or {}).get("name")),
            )
            if part != MISSING
        ),
        generated=_generated(file.get("generated_at"), zone),
        sections=(
            Section(H_VEHICLE, _vehicle(vehicle, zone)),
            Section(H_ASSIGNMENTS, _assignments(file.get("assignments") or [], zone)),
            Section(H_DISTANCE, _distance_by_month(file.get("distance_by_month") or [])),
            Section(H_CONSUMPTION, _consumption(file.get("consumption") or [])),
            Section(H_COSTS, _vehicle_costs(file.get("costs") or {}, zone)),
            Section(H_DUE, _due(file.get("due") or [])),
            Section(
                H_ALERTS,
                _vehicle_alerts(file.get("alerts") or [], file.get("alert_outcomes") or {}, zone),
            ),
            Section(H_STATUS, _status_changes(file.get("status_changes") or [], zone)),
        ),
    )


# ---- the driver's file ------------------------------------------------------------------------

H_DRIVER = "驾驶员信息 Driver"
H_LICENCE = "驾驶证 Licence"
H_DRIVEN = "月度里程与时长 Distance and hours by month"
H_RATINGS = "用车评价 Ratings"

LICENCE_STATES: dict[str, tuple[str, Tone]] = {
    "valid": ("有效 Valid", "ok"),
    "expiring": ("即将到期 Expires within 30 days", "bad"),
    "expired": ("已过期 Expired", "bad"),
    "unknown": ("未登记有效期 Expiry not recorded", "muted"),
}


def _driver(driver: Mapping[str, Any], zone: ZoneInfo) -> tuple[Block, ...]:
    return (
        Fields(
            (
                Field("姓名 Name", _text(driver.get("name"))),
                Field("电话 Phone", _text(driver.get("phone"))),
                Field("所属单位 Unit", _text((driver.get("unit") or {}).get("name"))),
                Field("在岗 Active", _yes_no(driver.get("active"))),
                Field("登记时间 Registered", format_time(driver.get("created_at"), zone)),
            )
        ),
    )


def _licence(licence: Mapping[str, Any]) -> tuple[Block, ...]:
    state, tone = LICENCE_STATES.get(str(licence.get("state")), (MISSING, "muted"))
    days = licence.get("days_left")
    if days is not None:
        state += f" ({days} 天 days)" if days >= 0 else f" ({-days} 天前 days ago)"
    return (
        Fields(
            (
                Field("准驾车型 Class", _text(licence.get("class"))),
                Field("可驾车型 Covers", _text(" ".join(licence.get("covers") or []))),
                Field("有效期至 Valid until", _text(licence.get("expires_on"))),
            )
        ),
        Note(f"状态 State: {state}", tone),
    )


def _driver_assignments(rows: Sequence[Mapping[str, Any]], zone: ZoneInfo) -> tuple[Block, ...]:
    columns = ("单号 Order", "用途 Purpose", "开始 From", "结束 To", "车辆 Vehicle", "状态 Status")
    return (
        _table_or_none(
            columns,
            [
                (
                    f"#{_text(a.get('order_id'))}",
                    _text(a.get("purpose")),
                    format_time(a.get("from"), zone),
                    format_time(a.get("to"), zone),
                    _text((a.get("vehicle") or {}).get("plate")),
                    label("order_status", a.get("status")),
                )
                for a in rows
            ],
            (9, 33, 16, 16, 12, 14),
        ),
    )


def _driver_ratings(ratings: Mapping[str, Any], zone: ZoneInfo) -> tuple[Block, ...]:
    items = ratings.get("items") or []
    average = ratings.get("average")
    summary = (
        f"平均 Average {average:.2f}/5, {ratings.get('count', 0)} 条 ratings"
        if average is not None
        else f"{NONE_NOTE}: 暂无评价 No ratings yet"
    )
    return (
        Note(summary, "total"),
        _table_or_none(
            ("单号 Order", "用途 Purpose", "评分 Stars", "评语 Comment", "时间 At"),
            [
                (
                    f"#{_text(r.get('order_id'))}",
                    _text(r.get("purpose")),
                    _stars(r.get("stars")),
                    _text(r.get("comment")),
                    format_time(r.get("at"), zone),
                )
                for r in items
            ],
            (10, 26, 16, 30, 18),
        ),
    )


def _driver_document(file: Mapping[str, Any], zone: ZoneInfo) -> Document:
    driver = file.get("driver") or {}
    licence = file.get("licence") or {}
    return Document(
        title=f"驾驶员档案 Driver's file {_text(driver.get('name'))}",
        subtitle=" · ".join(
            part
            for part in (
                _text(licence.get("class")),
                _text((driver.get("unit") or {}).get("name")),
            )
            if part != MISSING
        ),
        generated=_generated(file.get("generated_at"), zone),
        sections=(
            Section(H_DRIVER, _driver(driver, zone)),
            Section(H_LICENCE, _licence(licence)),
            Section(H_ASSIGNMENTS, _driver_assignments(file.get("assignments") or [], zone)),
            Section(H_DRIVEN, _distance_by_month(file.get("distance_by_month") or [])),
            Section(
                H_ALERTS,
                _vehicle_alerts(file.get("alerts") or [], file.get("alert_outcomes") or {}, zone),
            ),
            Section(H_RATINGS, _driver_ratings(file.get("ratings") or {}, zone)),
        ),
    )
