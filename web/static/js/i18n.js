// Chinese (default) and English for every label the pages show. A key missing from the table
// shows itself, so a forgotten label is visible rather than silently blank.
const TABLE = {
  "app.name": ["公务用车管理平台", "Official Vehicle Platform"],
  "page.login": ["登录", "Sign in"],
  "page.desk": ["调度台", "Dispatch desk"],
  "page.phone": ["用车", "Trips"],
  "page.review": ["告警复核", "Alert review"],
  "page.admin": ["系统管理", "Administration"],
  "page.dashboard": ["统计看板", "Dashboard"],
  "action.logout": ["退出", "Sign out"],
  "login.heading": ["登录", "Sign in"],
  "login.username": ["用户名", "Username"],
  "login.password": ["密码", "Password"],
  "login.submit": ["登录", "Sign in"],
  "login.failed": ["用户名或密码错误", "Wrong username or password"],
  "state.free": ["空闲", "Free"],
  "state.trip": ["执行任务", "On a trip"],
  "state.alert": ["告警", "Alert"],
  "state.offline": ["离线", "Offline"],
  "desk.vehicles": ["车辆", "Vehicles"],
  "desk.online": ["在线", "Online"],
  "desk.waiting": ["待派车订单", "Orders waiting for a vehicle"],
  "desk.no_orders": ["暂无待派车订单", "No orders waiting"],
  "desk.suggestions": ["推荐车辆", "Suggested vehicles"],
  "desk.driver": ["驾驶员", "Driver"],
  "desk.alerts": ["实时告警", "Live alerts"],
  "desk.vehicle": ["车辆", "Vehicle"],
  "desk.assign": ["派车", "Assign"],
  "desk.assigned": ["已派车", "Assigned"],
  "desk.reason_prompt": ["未选择首选车辆，请填写理由", "Not the top suggestion: give a reason"],
  "desk.excluded": ["不可用", "Left out"],
  "desk.no_candidates": ["无可用车辆", "No vehicle fits"],
  "desk.passengers": ["人", "passengers"],
  "part.distance_km": ["距离 km", "Distance km"],
  "part.distance": ["距离分", "Distance score"],
  "part.travel_min": ["路程 分钟", "Drive min"],
  "part.travel": ["路程分", "Drive score"],
  "part.balance": ["均衡分", "Balance score"],
  "part.new_energy": ["新能源分", "New-energy score"],
  "desk.plan": ["最优派车方案", "Optimal plan"],
  "desk.make_plan": ["生成方案", "Make the plan"],
  "desk.plan_summary": ["方案总成本 {total}（就近派车 {greedy}），未满足 {unserved} 单", "Plan cost {total} (nearest-first {greedy}), {unserved} orders unserved"],
  "desk.accept": ["采纳", "Accept"],
  "desk.plan_reason": ["按最优派车方案", "By the optimal plan"],
  "desk.playback": ["轨迹回放", "Track playback"],
  "desk.from": ["开始", "From"],
  "desk.to": ["结束", "To"],
  "desk.show_track": ["显示轨迹", "Show the track"],
  "desk.time": ["时间", "Time"],
  "desk.no_track": ["该时段无轨迹", "No track in this period"],
  "fact.plate": ["车牌", "Plate"],
  "fact.speed": ["车速", "Speed"],
  "fact.last_fix": ["最后定位", "Last fix"],
  "fact.status": ["状态", "Status"],
  "fact.order": ["订单", "Order"],
  "kind.no_order": ["无单出车", "No order"],
  "kind.off_hours": ["非工作时间用车", "Off hours"],
  "kind.off_route": ["偏离路线", "Off route"],
  "kind.region_exit": ["驶出辖区", "Left the region"],
  "kind.prohibited_zone": ["禁入区域", "Prohibited place"],
  "kind.overnight_away": ["夜间未回停车点", "Overnight away"],
  "kind.overspeed": ["超速", "Overspeed"],
  "kind.signal_loss": ["信号中断", "Signal loss"],
  "kind.device_alarm": ["终端报警", "Device alarm"],
  "kind.fuel_over_capacity": ["加油量超油箱容量", "Fill over tank size"],
  "kind.fuel_location_mismatch": ["加油地点与轨迹不符", "Fill away from track"],
  "kind.fuel_no_trip": ["加油无行程", "Fill without a trip"],
  "kind.fuel_off_hours": ["非工作时间加油", "Fill off hours"],
  "kind.fuel_too_frequent": ["加油过频", "Fills too frequent"],
  "kind.fuel_consumption_high": ["油耗超标", "Consumption over norm"],
  "kind.odometer_mismatch": ["里程不符", "Odometer mismatch"],
  "kind.device_identity_mismatch": ["终端身份冒用", "Terminal identity mismatch"],
  "error.network": ["网络错误", "Network error"],
  "error.vendor": ["地图组件未安装，请运行 make bootstrap", "Map package missing: run make bootstrap"],
};

// Pages add their own labels: extend({"key": ["中文", "English"]}).
// A page's own labels join the table. A key given twice with other texts is a mistake that would
// otherwise go silent (the later module wins): it is reported on the console, where the page tests
// fail on it, and the first texts are kept.
export function extend(entries) {
  for (const [key, texts] of Object.entries(entries)) {
    const known = TABLE[key];
    if (known && (known[0] !== texts[0] || known[1] !== texts[1])) {
      console.error(`i18n: ${key} is defined twice: ${JSON.stringify(known)} and ${JSON.stringify(texts)}`);
      continue;
    }
    TABLE[key] = texts;
  }
}

export function lang() {
  return localStorage.getItem("fleet.lang") === "en" ? "en" : "zh";
}

export function t(key, fallback) {
  const entry = TABLE[key];
  if (!entry) return fallback ?? key;
  return entry[lang() === "en" ? 1 : 0];
}

export function apply(root = document) {
  document.documentElement.lang = lang() === "en" ? "en" : "zh";
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-placeholder]")) {
    el.placeholder = t(el.dataset.i18nPlaceholder);
  }
  for (const el of root.querySelectorAll("[data-i18n-label]")) {
    el.setAttribute("aria-label", t(el.dataset.i18nLabel));
  }
  const title = document.querySelector("h1.title");
  if (title) document.title = `${title.textContent} · Fleet`;
}

export function setLang(value) {
  localStorage.setItem("fleet.lang", value);
  apply();
  window.dispatchEvent(new CustomEvent("fleet:lang", { detail: value }));
}

// Dates in the display zone the server is configured with (the browser's own zone otherwise).
export function when(iso, zone) {
  if (!iso) return "—";
  const options = { year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit",
    minute: "2-digit", hour12: false, timeZone: zone || undefined };
  return new Intl.DateTimeFormat(lang() === "en" ? "en-GB" : "zh-CN", options).format(new Date(iso));
}
