// The dashboards: use, costs and alerts of the caller's units over a period, drawn with ECharts
// from the statistics API, and the same reports as CSV or XLSX downloads.
import { api, ApiError, token } from "./api.js";
import labels from "../labels/dashboard.json" with { type: "json" };
import { extend, lang, t } from "./i18n.js";
import { calendarStatus, config, fill, notify, start } from "./shell.js";
import { clearErrors, el, showErrors, turns } from "./admin-common.js";
import { parseWall } from "./zone.js";
import { initEquippingDashboard } from "./equipping.js";

extend(labels);

const REPORTS = ["units", "vehicles", "alerts", "costs"];
const FONT = "'Droid Sans Fallback', 'Noto Sans CJK SC', system-ui, sans-serif";
const PALETTE = ["#1565c0", "#2e7d32", "#ef6c00", "#6a1b9a", "#00838f", "#c62828", "#5d4037",
  "#9e9d24", "#37474f", "#ad1457"];

// For the tests and for anyone at the console: the chart instances and the data they show.
window.fleetDashboard = { charts: {}, data: {}, ready: false, loads: 0 };

// ---- the period, as dates in the display zone --------------------------------------------------

// Midnight starting a local date in the display zone, as an instant (ISO-8601, UTC).
function startOf(date, zone) {
  return new Date(parseWall(date, zone)).toISOString();
}

function addDays(date, days) {
  const [y, m, d] = date.split("-").map(Number);
  return new Date(Date.UTC(y, m - 1, d + days)).toISOString().slice(0, 10);
}

function today() {
  return new Intl.DateTimeFormat("en-CA", { timeZone: config.zone || undefined }).format(new Date());
}

function preset(name) {
  const now = today();
  const [y, m] = now.split("-").map(Number);
  const first = (year, month) => new Date(Date.UTC(year, month - 1, 1)).toISOString().slice(0, 10);
  if (name === "last_month") return [first(y, m - 1), addDays(first(y, m), -1)];
  if (name === "year") return [first(y, 1), addDays(first(y + 1, 1), -1)];
  return [first(y, m), addDays(first(y, m + 1), -1)];
}

const form = document.getElementById("period");

function period() {
  const since = form.elements.since.value;
  const until = form.elements.until.value;
  return { since, until, query: new URLSearchParams({ since: since && startOf(since, config.zone),
    until: until && startOf(addDays(until, 1), config.zone) }) };
}

// ---- data --------------------------------------------------------------------------------------

let reports = null;
const turn = turns();

async function load() {
  const current = turn();
  const { since, until, query } = period();
  clearErrors(form);
  // Caught here rather than by the API so that the message is in the page's language.
  if (since && until && until < since) {
    showErrors(form, new ApiError(422, { detail: [{ loc: ["until"], msg: t("dash.reversed") }] }));
    return;
  }
  try {
    const answers = await Promise.all(REPORTS.map((name) => api(`/api/v1/statistics/${name}?${query}`)));
    if (!current()) return;
    reports = Object.fromEntries(REPORTS.map((name, i) => [name, answers[i]]));
  } catch (error) {
    if (error instanceof ApiError && (error.status === 422 || error.status === 400)) {
      showErrors(form, error);
      return;
    }
    throw error;
  }
  window.fleetDashboard.data = reports;
  window.fleetDashboard.loads += 1;
  draw();
  renderExports();
}

function label(report, key) {
  const column = reports[report].columns.find((c) => c.key === key);
  return column ? column[lang()] : key;
}

function sum(rows, key) {
  return rows.reduce((total, row) => total + (Number(row[key]) || 0), 0);
}

function number(value, digits = 0) {
  return new Intl.NumberFormat(lang() === "en" ? "en-GB" : "zh-CN",
    { maximumFractionDigits: digits, minimumFractionDigits: digits }).format(value);
}

// ---- charts ------------------------------------------------------------------------------------

let echarts = null;

function chart(name) {
  const dom = document.getElementById(`chart-${name}`);
  const existing = window.fleetDashboard.charts[name];
  if (existing && !existing.isDisposed()) return existing;
  // The locale fixes ECharts' own words (tooltips, the aria description): made anew per language.
  const instance = echarts.init(dom, null, { renderer: "canvas", locale: lang() === "en" ? "EN" : "ZH" });
  instance.on("finished", () => { dom.dataset.drawn = String(Number(dom.dataset.drawn || 0) + 1); });
  window.fleetDashboard.charts[name] = instance;
  return instance;
}

function show(name, option) {
  const dom = document.getElementById(`chart-${name}`);
  const empty = dom.parentElement.querySelector(".chart-empty");
  empty.hidden = option !== null;
  dom.hidden = option === null;
  if (option === null) {
    window.fleetDashboard.charts[name]?.clear();
    return;
  }
  const instance = chart(name);
  instance.resize(); // it may have been hidden (no data) when last laid out
  instance.setOption({
    color: PALETTE,
    textStyle: { fontFamily: FONT },
    aria: { enabled: true },
    animationDuration: 400,
    tooltip: {},
    ...option,
  }, { notMerge: true });
}

function drawDistance() {
  const rows = reports.units.items.filter((r) => r.distance_km > 0 || r.trips > 0);
  if (!rows.length) return show("distance", null);
  rows.sort((a, b) => a.distance_km - b.distance_km);
  show("distance", {
    grid: { left: 8, right: 40, top: 28, bottom: 30, containLabel: true },
    tooltip: { trigger: "axis", axisPointer: { type: "shadow" } },
    legend: { top: 0 },
    xAxis: { type: "value", name: label("units", "distance_km"), nameLocation: "middle", nameGap: 26 },
    yAxis: { type: "category", data: rows.map((r) => r.unit), axisLabel: { width: 150, overflow: "truncate" } },
    series: [
      { name: label("units", "distance_km"), type: "bar", data: rows.map((r) => r.distance_km), barMaxWidth: 36,
        label: { show: true, position: "right", formatter: ({ value }) => number(value, 1) } },
    ],
  });
}

function drawCosts() {
  const byKind = new globalThis.Map();
  for (const row of reports.costs.items) byKind.set(row.kind, (byKind.get(row.kind) || 0) + row.amount);
  const data = [...byKind].filter(([, amount]) => amount > 0)
    .map(([kind, amount]) => ({ name: t(`cost.${kind}`, kind), value: Math.round(amount * 100) / 100 }));
  if (!data.length) return show("costs", null);
  show("costs", {
    tooltip: { trigger: "item", formatter: ({ name, value, percent }) => `${name}: ${number(value, 2)} (${percent}%)` },
    legend: { type: "scroll", bottom: 0 },
    series: [{ name: label("costs", "amount"), type: "pie", radius: ["35%", "65%"], center: ["50%", "46%"],
      data, label: { formatter: "{b}\n{d}%" } }],
  });
}

function drawAlerts() {
  const byKind = new globalThis.Map();
  for (const row of reports.alerts.items) {
    const kind = byKind.get(row.kind) || { total: 0, confirmed: 0, dismissed: 0 };
    kind.total += row.total;
    kind.confirmed += row.confirmed;
    kind.dismissed += row.dismissed;
    byKind.set(row.kind, kind);
  }
  if (!byKind.size) return show("alerts", null);
  const kinds = [...byKind.keys()];
  // As the API computes it: confirmed of those decided (confirmed or dismissed).
  const rate = kinds.map((k) => {
    const { confirmed, dismissed } = byKind.get(k);
    return confirmed + dismissed ? Math.round((confirmed / (confirmed + dismissed)) * 1000) / 10 : null;
  });
  show("alerts", {
    grid: { left: 8, right: 8, top: 40, bottom: 8, containLabel: true },
    tooltip: { trigger: "axis" },
    legend: { top: 0 },
    xAxis: { type: "category", data: kinds.map((k) => t(`kind.${k}`, k)),
      axisLabel: { interval: 0, rotate: kinds.length > 4 ? 30 : 0 } },
    yAxis: [
      { type: "value", name: label("alerts", "total"), minInterval: 1 },
      { type: "value", name: t("dash.confirmation_rate"), min: 0, max: 100, splitLine: { show: false } },
    ],
    series: [
      { name: label("alerts", "total"), type: "bar", data: kinds.map((k) => byKind.get(k).total), barMaxWidth: 40 },
      { name: t("dash.confirmation_rate"), type: "line", yAxisIndex: 1, data: rate, connectNulls: true,
        symbolSize: 8, label: { show: true, formatter: ({ value }) => (value == null ? "" : `${value}%`) } },
    ],
  });
}

function drawEnergy() {
  const rows = reports.units.items;
  const total = sum(rows, "distance_km");
  const green = sum(rows, "new_energy_km");
  if (total <= 0) return show("energy", null);
  show("energy", {
    tooltip: { trigger: "item", formatter: ({ name, value, percent }) => `${name}: ${number(value, 1)} km (${percent}%)` },
    legend: { bottom: 0 },
    title: { text: `${number((green / total) * 100, 1)}%`, left: "center", top: "40%",
      textStyle: { fontSize: 22, fontFamily: FONT } },
    series: [{ name: t("dash.chart.energy"), type: "pie", radius: ["45%", "65%"], center: ["50%", "46%"],
      label: { formatter: "{b}\n{d}%" },
      data: [
        { name: t("dash.new_energy"), value: Math.round(green * 10) / 10, itemStyle: { color: "#2e7d32" } },
        { name: t("dash.conventional"), value: Math.round((total - green) * 10) / 10, itemStyle: { color: "#90a4ae" } },
      ] }],
  });
}

function drawKpis() {
  const units = reports.units.items;
  const distance = sum(units, "distance_km");
  document.getElementById("kpi-vehicles").textContent = `${number(sum(units, "vehicles_used"))} / ${number(sum(units, "vehicles"))}`;
  document.getElementById("kpi-trips").textContent = number(sum(units, "trips"));
  document.getElementById("kpi-distance").textContent = number(distance, 1);
  document.getElementById("kpi-cost").textContent = number(sum(reports.costs.items, "amount"), 2);
  document.getElementById("kpi-alerts").textContent = number(sum(reports.alerts.items, "total"));
  document.getElementById("kpi-new-energy").textContent = distance > 0
    ? `${number((sum(units, "new_energy_km") / distance) * 100, 1)}%` : "—";
}

function draw() {
  if (!reports) return;
  drawKpis();
  if (!echarts) return;
  drawDistance();
  drawCosts();
  drawAlerts();
  drawEnergy();
  window.fleetDashboard.ready = true;
}

// ---- exports -----------------------------------------------------------------------------------

async function download(link) {
  try {
    const answer = await fetch(link.href, { headers: { Authorization: `Bearer ${token()}` } });
    if (!answer.ok) throw new ApiError(answer.status, await answer.json().catch(() => null));
    const url = URL.createObjectURL(await answer.blob());
    const save = el("a", { href: url, download: link.dataset.filename, hidden: true });
    document.body.append(save);
    save.click();
    save.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
  } catch (error) {
    notify(`${t("dash.download_failed")}: ${error.message}`, "error");
  }
}

function renderExports() {
  const { since, until, query } = period();
  document.getElementById("export-rows").replaceChildren(...REPORTS.map((name) => el("tr", {},
    el("td", { i18n: `dash.report.${name}` }),
    ...["csv", "xlsx"].map((format) => el("td", {}, el("a", {
      href: `/api/v1/statistics/${name}?${query}&format=${format}`,
      dataset: { report: name, format, filename: `${name}-${since}-${until}.${format}` },
      text: format.toUpperCase(),
      "aria-label": `${t(`dash.report.${name}`)} ${format.toUpperCase()}`,
      onclick: (event) => { event.preventDefault(); download(event.currentTarget); },
    }))))));
}

// ---- start -------------------------------------------------------------------------------------

form.addEventListener("submit", (event) => {
  event.preventDefault();
  load();
});
for (const button of form.querySelectorAll("[data-preset]")) {
  button.addEventListener("click", () => {
    [form.elements.since.value, form.elements.until.value] = preset(button.dataset.preset);
    load();
  });
}
// ---- the working calendar's reach ---------------------------------------------------------------

const calendarLine = document.getElementById("calendar-line");
let calendar = null;

function renderCalendar() {
  if (!calendar) return;
  const reach = calendar.covered_through
    ? fill(t("dash.calendar_through"), { year: calendar.covered_through }) : t("dash.calendar_none");
  calendarLine.replaceChildren(el("strong", { i18n: "dash.calendar" }), ` ${reach}`,
    ...calendar.warnings.map((w) => ` · ${fill(t(w.days_left > 0 ? "dash.calendar_soon" : "dash.calendar_now"),
      { year: w.year, days: w.days_left, missing: w.missing_days })}`));
  calendarLine.classList.toggle("warn", calendar.warnings.length > 0);
  calendarLine.hidden = false;
}

async function loadCalendar() {
  calendar = await calendarStatus();
  renderCalendar();
}

window.addEventListener("fleet:lang", () => {
  renderCalendar();
  for (const instance of Object.values(window.fleetDashboard.charts)) instance.dispose();
  window.fleetDashboard.charts = {};
  draw();
  if (reports) renderExports();
});
window.addEventListener("resize", () => {
  for (const instance of Object.values(window.fleetDashboard.charts)) instance.resize();
});

const me = await start();
if (me) {
  document.querySelector(".page-links a[href='/admin']").hidden = !me.roles.includes("admin");
  [form.elements.since.value, form.elements.until.value] = preset("month");
  loadCalendar();
  initEquippingDashboard(document.getElementById("equipping")).catch((error) => notify(error.message, "error"));
  echarts = await import("/vendor/echarts/echarts.esm.min.js").catch(() => {
    notify(t("error.vendor"), "error");
    return null;
  });
  await load();
}
