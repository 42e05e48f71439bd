// The review page's labels (zh, en) and the formatting of the rule figures. Thresholds and
// measured values arrive as open JSON objects: keys the table knows get a label and a unit,
// the rest are shown as they come, so a new rule's figures are never hidden.
import { extend, lang, t } from "./i18n.js";

// Every kind the API accepts, in the order the filter lists them.
export const KINDS = [
  "no_order", "off_hours", "off_route", "region_exit", "prohibited_zone", "overnight_away",
  "overspeed", "signal_loss", "device_alarm", "fuel_over_capacity", "fuel_location_mismatch",
  "fuel_no_trip", "fuel_off_hours", "fuel_too_frequent", "fuel_consumption_high",
  "odometer_mismatch", "device_identity_mismatch",
];

extend({
  "review.queue": ["告警队列", "Alert queue"],
  "review.status": ["状态", "Status"],
  "review.kind": ["类型", "Kind"],
  "review.from": ["开始日期", "From"],
  "review.to": ["结束日期", "To"],
  "review.reset": ["清除条件", "Clear filters"],
  "review.all": ["全部", "All"],
  "review.all_kinds": ["全部类型", "All kinds"],
  "review.open": ["进行中", "Ongoing"],
  "review.closed": ["已结束", "Ended"],
  "review.total": ["共计", "Total"],
  "review.empty": ["没有符合条件的告警", "No alerts match"],
  "review.prev": ["上一页", "Previous"],
  "review.next": ["下一页", "Next"],
  "review.pick": ["从左侧队列选择一条告警，查看轨迹证据并复核",
    "Pick an alert from the queue to see its evidence and review it"],
  "review.close": ["关闭", "Close"],
  "review.state.pending": ["待复核", "Pending"],
  "review.state.confirmed": ["属实", "Confirmed"],
  "review.state.dismissed": ["已排除", "Dismissed"],
  "review.state.escalated": ["已上报", "Escalated"],
  "review.legend.track": ["轨迹", "Track"],
  "review.legend.flagged": ["告警区段", "Flagged part"],
  "review.legend.fence": ["围栏", "Fence"],
  "review.legend.route": ["计划路线", "Planned route"],
  "review.legend.marker": ["回放位置", "Playback"],
  "review.no_track": ["该时段无轨迹记录", "No track recorded for this period"],
  "review.play": ["播放", "Play"],
  "review.pause": ["暂停", "Pause"],
  "review.scrub": ["回放时间", "Playback time"],
  "review.rate": ["倍速", "Speed"],
  "review.facts": ["概况", "Summary"],
  "review.rule": ["规则", "Rule"],
  "review.item": ["项目", "Item"],
  "review.value": ["数值", "Value"],
  "review.thresholds": ["阈值", "Thresholds"],
  "review.measured": ["实测", "Measured"],
  "review.none": ["无", "None"],
  "review.records": ["档案", "Records"],
  "review.dossier": ["订单档案", "Order dossier"],
  "review.vehicle_file": ["车辆档案", "Vehicle file"],
  "review.no_order": ["未关联订单", "No order attached"],
  "review.order": ["订单", "Order"],
  "review.history": ["复核记录", "Reviews"],
  "review.no_history": ["尚未复核", "Not reviewed yet"],
  "review.decision": ["复核结论", "Decision"],
  "review.reason": ["理由（排除时必填）", "Reason (required to dismiss)"],
  "review.confirm": ["确认属实", "Confirm"],
  "review.dismiss": ["排除", "Dismiss"],
  "review.escalate": ["上报", "Escalate"],
  "review.decided": ["已有最终结论，不能再更改", "Decided: this alert cannot change any more"],
  "review.refused": ["未能提交", "Refused"],
  "review.saved": ["复核已保存", "Review saved"],
  "review.new_alerts": ["新告警", "New alerts"],
  "review.pdf": ["下载 PDF", "Download PDF"],
  "review.loading": ["正在加载…", "Loading…"],
  "review.ongoing": ["持续中", "ongoing"],
  "fact.kind": ["类型", "Kind"],
  "fact.severity": ["级别", "Severity"],
  "fact.review": ["复核状态", "Review"],
  "fact.started": ["开始", "Started"],
  "fact.ended": ["结束", "Ended"],
  "fact.duration": ["持续", "Duration"],
  "fact.vehicle": ["车辆", "Vehicle"],
  "fact.fence": ["围栏", "Fence"],
  "fact.place": ["位置", "Place"],
  "severity.low": ["低", "Low"],
  "severity.medium": ["中", "Medium"],
  "severity.high": ["高", "High"],
  "severity.critical": ["严重", "Critical"],
  "unit.h": ["小时", " h"],
  "unit.min": ["分", " min"],
  "unit.s": ["秒", " s"],
  "yes": ["是", "yes"],
  "no": ["否", "no"],
  "fence.permitted_region": ["允许区域", "Permitted region"],
  "fence.prohibited": ["禁入区域", "Prohibited place"],
  "fence.depot": ["停车点", "Depot"],
  "fence.custom": ["自定义", "Custom"],
  "category.confidential_comms": ["机要通信", "Confidential comms"],
  "category.emergency": ["应急保障", "Emergency"],
  "category.enforcement": ["执法执勤", "Enforcement"],
  "category.special": ["特种专业技术", "Special"],
  "category.general": ["其他公务", "General"],
  // What each rule watches for, so the reviewer judges the episode against the rule itself.
  "rule.no_order": ["车辆在没有有效用车订单的情况下行驶。",
    "The vehicle moved without an order covering it."],
  "rule.off_hours": ["非工作时间（含节假日）无订单用车。",
    "The vehicle was used outside working hours (or on a holiday) without an order."],
  "rule.off_route": ["执行订单期间偏离计划路线。", "During an order the vehicle left its planned route."],
  "rule.off_route.corridor": ["执行订单期间，车辆距计划路线走廊超过偏离距离阈值，且持续超过规定时长。",
    "During an order the vehicle was farther from the planned corridor than the distance threshold, for longer than allowed."],
  "rule.off_route.stop": ["执行订单期间，在起点、目的地和停车点以外的地点停留超过规定时长。",
    "During an order the vehicle stopped for too long at a place that is neither the origin, a destination nor a depot."],
  "rule.region_exit": ["车辆驶出允许行驶区域，超过宽限时间。",
    "The vehicle left its permitted region for longer than the grace period."],
  "rule.prohibited_zone": ["车辆进入禁入区域并停留超过规定时长。",
    "The vehicle stayed in a prohibited place for longer than allowed."],
  "rule.overnight_away": ["夜间车辆未停放在停车点。", "The vehicle spent the night away from its depot."],
  "rule.overspeed": ["车速超过限速并持续超过规定时长。",
    "The vehicle drove above the speed limit for longer than allowed."],
  "rule.signal_loss": ["定位信号中断超过规定时长或位置跳变。",
    "The tracker went silent for too long, or the position jumped."],
  "rule.device_alarm": ["车载终端上报报警。", "The tracker raised an alarm."],
  "rule.fuel_over_capacity": ["单次加油量超过油箱容量。", "A fill larger than the tank can hold."],
  "rule.fuel_location_mismatch": ["加油站位置与车辆当时的轨迹不符。",
    "The station is far from where the track puts the vehicle at the time of the fill."],
  "rule.fuel_no_trip": ["加油前后没有该车的行程。", "No trip of the vehicle near the time of the fill."],
  "rule.fuel_off_hours": ["非工作时间且无订单时加油。", "A fill outside working hours and without an order."],
  "rule.fuel_too_frequent": ["同一天加油次数过多。", "Too many fills on one day."],
  "rule.fuel_consumption_high": ["月度油耗超过核定油耗。", "The month's consumption exceeds the vehicle's norm."],
  "rule.odometer_mismatch": ["加油单里程与轨迹里程不符。",
    "The odometer readings on the receipts disagree with the tracked distance."],
  "rule.device_identity_mismatch": ["另一台终端以已绑定的号码注册，已被拒绝（0x8100 结果 3）。",
    "Another terminal registered with a bound number and was refused (0x8100 result 3)."],
  "fig.phone": ["终端手机号", "Terminal number"],
  "fig.remote_addr": ["来源地址", "From address"],
  "fig.claimed": ["冒用者声称的身份", "Identity claimed"],
  "fig.bound": ["绑定的身份", "Identity bound"],
  "fig.expected_terminal_id": ["预设终端 ID", "Terminal id entered"],
  "fig.device_id": ["设备编号", "Device"],
  // Figures: thresholds the rules name and the values they measure.
  "fig.moving_speed_kmh": ["行驶判定车速", "Moving above"],
  "fig.movement_min_distance_m": ["最短行驶距离", "Shortest movement"],
  "fig.movement_min_duration_s": ["最短行驶时长", "Briefest movement"],
  "fig.off_route_distance_m": ["偏离距离阈值", "Off-route distance"],
  "fig.off_route_duration_s": ["偏离持续时长阈值", "Off-route duration"],
  "fig.destination_radius_m": ["目的地半径", "Destination radius"],
  "fig.unplanned_stop_s": ["计划外停车时长", "Unplanned stop after"],
  "fig.stop_radius_m": ["停车半径", "Stop radius"],
  "fig.region_exit_grace_s": ["驶出辖区宽限", "Region exit grace"],
  "fig.prohibited_dwell_s": ["禁入区域停留时长", "Prohibited dwell"],
  "fig.night_start_s": ["夜间开始", "Night starts"],
  "fig.night_end_s": ["夜间结束", "Night ends"],
  "fig.overnight_min_s": ["夜间停放时长阈值", "Overnight after"],
  "fig.parked_radius_m": ["停放半径", "Parked radius"],
  "fig.speed_limit_kmh": ["限速", "Speed limit"],
  "fig.overspeed_duration_s": ["超速持续时长阈值", "Overspeed duration"],
  "fig.signal_gap_s": ["信号中断阈值", "Signal gap"],
  "fig.signal_jump_m": ["位置跳变阈值", "Position jump"],
  "fig.no_order_exempt": ["无单豁免类别", "No-order exempt"],
  "fig.off_hours_exempt": ["非工作时间豁免类别", "Off-hours exempt"],
  "fig.duration_s": ["持续时长", "Duration"],
  "fig.max_distance_m": ["最大偏离距离", "Farthest off route"],
  "fig.distance_m": ["距离", "Distance"],
  "fig.max_speed_kmh": ["最高车速", "Top speed"],
  "fig.limit_kmh": ["适用限速", "Limit applied"],
  "fig.alarm": ["报警", "Alarm"],
  "fig.bit": ["报警位", "Alarm bit"],
  "fig.night_parked_s": ["夜间停放时长", "Parked at night"],
  "fig.parked_s": ["停放时长", "Parked"],
  "fig.gap_s": ["中断时长", "Gap"],
  "fig.jump_m": ["跳变距离", "Jump"],
  "fig.ignition_on": ["中断前点火", "Ignition on before"],
  "fig.litres": ["加油量", "Litres"],
  "fig.tank_l": ["油箱容量", "Tank"],
  "fig.over_l": ["超出", "Over by"],
  "fig.tank_margin_pct": ["油箱容差", "Tank margin"],
  "fig.allowed_l": ["允许加油量", "Allowed fill"],
  "fig.fix_offset_s": ["定位时差", "Fix offset"],
  "fig.station_distance_m": ["加油站距离阈值", "Station distance"],
  "fig.trips_near": ["附近行程数", "Trips near"],
  "fig.trip_window_min": ["行程时间窗", "Trip window"],
  "fig.local_time": ["当地时间", "Local time"],
  "fig.working_time": ["工作时间", "Working time"],
  "fig.order": ["有订单", "Order"],
  "fig.fills": ["当日加油次数", "Fills that day"],
  "fig.max_fills_per_day": ["每日加油次数上限", "Fills per day at most"],
  "fig.distance_km": ["行驶里程", "Distance"],
  "fig.l_100km": ["百公里油耗", "Consumption"],
  "fig.norm_l_100km": ["核定油耗", "Norm"],
  "fig.over_norm_pct": ["超出核定", "Over the norm"],
  "fig.consumption_margin_pct": ["油耗容差", "Consumption margin"],
  "fig.allowed_l_100km": ["允许油耗", "Allowed consumption"],
  "fig.consumption_min_km": ["最少统计里程", "Least distance counted"],
  "fig.receipt_km": ["单据里程", "Receipt distance"],
  "fig.tracked_km": ["轨迹里程", "Tracked distance"],
  "fig.difference_km": ["差值", "Difference"],
  "fig.odometer_pct": ["里程容差", "Odometer margin"],
  "fig.odometer_min_km": ["最小容差里程", "Least margin"],
  "fig.allowed_km": ["允许差值", "Allowed difference"],
  "fig.cost_id": ["费用记录", "Cost record"],
  "fig.since_cost_id": ["上一费用记录", "Previous cost record"],
  "fig.day": ["日期", "Day"],
  "fig.month": ["月份", "Month"],
});

export function label(key) {
  return t(`fig.${key}`, key);
}

export function known(key) {
  return t(`fig.${key}`, "") !== "";
}

function number(value, digits = 1) {
  const rounded = Math.round(value * 10 ** digits) / 10 ** digits;
  return rounded.toLocaleString(lang() === "en" ? "en-GB" : "zh-CN");
}

export function duration(seconds) {
  if (seconds == null || Number.isNaN(seconds)) return "—";
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const rest = s % 60;
  const parts = [];
  if (h) parts.push(`${h}${t("unit.h")}`);
  if (m) parts.push(`${m}${t("unit.min")}`);
  if (rest || !parts.length) parts.push(`${rest}${t("unit.s")}`);
  return parts.join(lang() === "en" ? " " : "");
}

// Seconds of the local day, as the night thresholds are kept.
function clockOfDay(seconds) {
  const h = Math.floor(seconds / 3600) % 24;
  const m = Math.floor((seconds % 3600) / 60);
  return `${String(h).padStart(2, "0")}:${String(m).padStart(2, "0")}`;
}

// A figure's value with the unit its key names (`_m`, `_s`, `_kmh`...).
export function figure(key, value) {
  if (value === null || value === undefined) return "—";
  if (typeof value === "boolean") return t(value ? "yes" : "no");
  if (Array.isArray(value)) {
    return value.length ? value.map((v) => t(`category.${v}`, String(v))).join("、") : t("review.none");
  }
  if (typeof value === "object") return JSON.stringify(value);
  if (typeof value !== "number") return String(value);
  if (key === "night_start_s" || key === "night_end_s") return clockOfDay(value);
  if (key.endsWith("_id") || key === "bit") return String(value);
  const units = [
    ["_l_100km", " L/100km"], ["_kmh", " km/h"], ["_km", " km"], ["_pct", " %"], ["_min", " min"],
    ["_m", " m"], ["_l", " L"],
  ];
  if (key.endsWith("_s")) return duration(value);
  const unit = units.find(([suffix]) => key.endsWith(suffix));
  return unit ? `${number(value)}${unit[1]}` : number(value, 2);
}
