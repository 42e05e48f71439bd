// Rule settings (the engine's thresholds, read-only; the approval rules, editable), the working
// calendar and each unit's working hours.
import { api, ApiError } from "./api.js";
import labels from "../labels/admin-settings.json" with { type: "json" };
import { extend, lang, t, when } from "./i18n.js";
import { calendarStatus, config, fill, notify, refreshCalendarBanner } from "./shell.js";
import {
  buildFields, button, createBody, el, emptyRow, fillOptions, readFields, submitting,
  turns, unitDepth, unitName, unitOptions, units, writeFields,
} from "./admin-common.js";

extend(labels);

const RULE_KINDS = [
  "no_order", "off_hours", "off_route", "region_exit", "prohibited_zone", "overnight_away",
  "overspeed", "signal_loss", "device_alarm", "fuel_over_capacity", "fuel_location_mismatch",
  "fuel_no_trip", "fuel_off_hours", "fuel_too_frequent", "fuel_consumption_high", "odometer_mismatch",
  "energy_consumption_high", "sealed_vehicle_moving", "maintenance_vehicle_moving",
];
const CONDITIONS = ["always", "out_of_region", "longer_than_days", "non_working_day", "night",
  "large_vehicle", "passengers_over"];

// ---- rules -----------------------------------------------------------------------------------

export function initRules(panel) {
  const thresholds = panel.querySelector("#threshold-rows");
  const form = panel.querySelector("#approval-form");
  const rows = panel.querySelector("#approval-rows");
  const fields = [
    { name: "unit_id", key: "field.unit", type: "select", options: unitOptions, numeric: true },
    { name: "condition", key: "admin.approval.condition", type: "select", options: CONDITIONS, prefix: "cond" },
    { name: "param", key: "admin.approval.param", type: "number", attrs: { min: 0 } },
    { name: "level", key: "admin.approval.level", type: "int", attrs: { min: 0, max: 10 } },
    { name: "name", key: "admin.approval.rule_name", type: "text", blank: "" },
  ];
  buildFields(form, fields);
  writeFields(form, fields, { condition: "always", level: 1 });
  let latest = new globalThis.Map();

  const thresholdTurn = turns();
  const ruleTurn = turns();

  async function loadThresholds() {
    const current = thresholdTurn();
    const page = await api("/api/v1/alerts?limit=500");
    if (!current()) return;
    latest = new globalThis.Map();
    for (const alert of page.items) if (!latest.has(alert.kind)) latest.set(alert.kind, alert);
    renderThresholds();
  }

  function renderThresholds() {
    thresholds.replaceChildren(...RULE_KINDS.map((kind) => {
      const alert = latest.get(kind);
      const values = alert ? Object.entries(alert.thresholds || {}) : [];
      return el("tr", { dataset: { kind } }, el("td", { i18n: `kind.${kind}` }),
        values.length ? el("td", {}, el("dl", { className: "values" },
          ...values.flatMap(([k, v]) => [el("dt", { className: "mono", text: k }),
            el("dd", { text: typeof v === "object" ? JSON.stringify(v) : String(v) })])))
          : el("td", { className: "muted", i18n: "admin.rules.no_alert" }),
        el("td", { text: alert ? when(alert.started_at, config.zone) : "—" }));
    }));
  }

  async function loadRules() {
    const current = ruleTurn();
    const { items } = await api("/api/v1/approval-rules");
    if (!current()) return;
    rows.replaceChildren(...(items.length ? items.map((r) => el("tr", { dataset: { id: r.id } },
      el("td", { text: unitName(r.unit_id) }), el("td", { i18n: `cond.${r.condition}` }),
      el("td", { className: "num", text: r.param ?? "—" }), el("td", { className: "num", text: r.level }),
      el("td", { text: r.name || "—" }),
      el("td", { className: "actions" }, button("admin.delete", () => remove(r))))) : [emptyRow(6)]));
  }

  async function remove(rule) {
    if (!window.confirm(`${t("admin.confirm_delete")} ${rule.name || ""}`)) return;
    try {
      await api(`/api/v1/approval-rules/${rule.id}`, { method: "DELETE" });
      notify(t("admin.deleted"), "ok");
    } catch (error) {
      notify(error.message, "error");
    }
    await loadRules();
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const rule = await submitting(form, () => api("/api/v1/approval-rules", {
      method: "POST", body: createBody(readFields(form, fields)) }));
    if (!rule) return;
    notify(`${t("admin.saved")}: ${rule.name || t(`cond.${rule.condition}`)}`, "ok");
    writeFields(form, fields, { unit_id: rule.unit_id, condition: "always", level: 1 });
    await loadRules();
  });
  window.addEventListener("fleet:units", () => fillOptions(form, fields[0]));
  window.addEventListener("fleet:lang", renderThresholds);
  loadThresholds();
  loadRules();
}

// ---- working calendar ------------------------------------------------------------------------

function iso(date) {
  return `${date.getUTCFullYear()}-${String(date.getUTCMonth() + 1).padStart(2, "0")}-${String(date.getUTCDate()).padStart(2, "0")}`;
}

function todayInZone() {
  return new Intl.DateTimeFormat("en-CA", { timeZone: config.zone || undefined }).format(new Date());
}

export function initCalendar(panel) {
  const yearInput = panel.querySelector("#calendar-year");
  const grid = panel.querySelector("#calendar-grid");
  const summary = panel.querySelector("#calendar-summary");
  const form = panel.querySelector("#calendar-form");
  const fields = [
    { name: "working", key: "admin.calendar.is_working", type: "checkbox" },
    { name: "note", key: "field.note", type: "text", blank: "", attrs: { maxlength: 200 } },
  ];
  buildFields(form, fields);
  const picked = form.querySelector("#calendar-picked");
  const days = new globalThis.Map(); // "YYYY-MM-DD" -> {working, note, source}
  let year = Number(todayInZone().slice(0, 4));
  let focusDay = todayInZone();
  let held = null;
  // While a notice is previewed, the grid shows its year as it would be saved.
  let preview = null; // the preview's answer
  const previewDays = new globalThis.Map(); // "YYYY-MM-DD" -> {working, note, change}

  const turn = turns();

  async function load() {
    const current = turn();
    const answer = await api(`/api/v1/calendar?year=${year}`);
    if (!current()) return;
    days.clear();
    for (const d of answer.days) days.set(d.day, d);
    held = answer;
    if (!focusDay.startsWith(`${year}-`)) focusDay = `${year}-01-01`;
    render();
  }

  function status(day) {
    const entry = (preview ? previewDays : days).get(day);
    if (!entry) return "unknown";
    return entry.working ? "working" : "off";
  }

  function dayLabel(day) {
    const date = new Date(`${day}T00:00:00Z`);
    const text = new Intl.DateTimeFormat(lang() === "en" ? "en-GB" : "zh-CN",
      { timeZone: "UTC", year: "numeric", month: "long", day: "numeric", weekday: "long" }).format(date);
    const state = status(day);
    const note = (preview ? previewDays : days).get(day)?.note;
    return `${text} · ${t(`admin.calendar.${state}`)}${note ? ` · ${note}` : ""}`;
  }

  function render() {
    const locale = lang() === "en" ? "en-GB" : "zh-CN";
    const monthName = new Intl.DateTimeFormat(locale, { timeZone: "UTC", month: "long" });
    const weekdayName = new Intl.DateTimeFormat(locale, { timeZone: "UTC", weekday: "narrow" });
    // 2024-01-01 was a Monday: the header runs Monday to Sunday, as Chinese calendars do.
    const header = Array.from({ length: 7 }, (_, i) => weekdayName.format(new Date(Date.UTC(2024, 0, 1 + i))));
    if (preview) summary.replaceChildren(el("strong", { i18n: "admin.calendar.preview_h" }));
    else {
      summary.replaceChildren(held.covered ? el("span", { i18n: "admin.calendar.covered" })
        : el("span", {}, el("span", { i18n: "admin.calendar.missing" }), `: ${held.missing_days}`));
    }
    grid.classList.toggle("previewing", Boolean(preview));
    for (const item of panel.querySelectorAll(".preview-only")) item.hidden = !preview;
    const months = [];
    for (let month = 0; month < 12; month += 1) {
      const first = new Date(Date.UTC(year, month, 1));
      const cells = [];
      for (let i = 0; i < (first.getUTCDay() + 6) % 7; i += 1) cells.push(el("span", { className: "pad" }));
      for (let d = first; d.getUTCMonth() === month; d = new Date(d.getTime() + 86_400_000)) {
        const day = iso(d);
        const entry = days.get(day);
        // Marked: what the calendar holds now and saving would change (new dates fill the gaps).
        const change = preview && previewDays.get(day)?.change === "changed" ? " changed" : "";
        const manual = !preview && entry?.source === "manual" ? " manual" : "";
        cells.push(el("button", {
          type: "button", className: `day ${status(day)}${manual}${change}${day === form.dataset.day && !preview ? " picked" : ""}`,
          dataset: { day }, tabindex: day === focusDay ? "0" : "-1", "aria-label": dayLabel(day),
          title: (preview ? previewDays : days).get(day)?.note || "", text: String(d.getUTCDate()),
        }));
      }
      months.push(el("section", { className: "month" },
        el("h3", { text: monthName.format(first) }),
        el("div", { className: "weekdays", "aria-hidden": "true" }, ...header.map((w) => el("span", { text: w }))),
        el("div", { className: "days" }, ...cells)));
    }
    grid.replaceChildren(...months);
  }

  function pick(day) {
    form.dataset.day = day;
    focusDay = day;
    const entry = days.get(day);
    picked.textContent = dayLabel(day);
    const weekend = [0, 6].includes(new Date(`${day}T00:00:00Z`).getUTCDay());
    writeFields(form, fields, entry || { working: !weekend, note: "" });
    form.hidden = false;
    for (const b of grid.querySelectorAll(".day.picked")) b.classList.remove("picked");
    grid.querySelector(`[data-day="${day}"]`)?.classList.add("picked");
    form.elements.working.focus();
  }

  function move(from, delta) {
    const next = new Date(Date.parse(`${from}T00:00:00Z`) + delta * 86_400_000);
    if (next.getUTCFullYear() !== year) return;
    const target = grid.querySelector(`[data-day="${iso(next)}"]`);
    grid.querySelector(`[data-day="${from}"]`).tabIndex = -1;
    target.tabIndex = 0;
    target.focus();
    focusDay = iso(next);
  }

  grid.addEventListener("click", (event) => {
    const target = event.target.closest("button.day");
    if (target && !preview) pick(target.dataset.day);
  });
  grid.addEventListener("keydown", (event) => {
    const target = event.target.closest("button.day");
    const delta = { ArrowLeft: -1, ArrowRight: 1, ArrowUp: -7, ArrowDown: 7 }[event.key];
    if (target && delta) {
      event.preventDefault();
      move(target.dataset.day, delta);
    }
  });
  panel.querySelector("#calendar-year-form").addEventListener("submit", (event) => {
    event.preventDefault();
    year = Number(yearInput.value) || year;
    form.hidden = true;
    endPreview();
    load();
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const day = form.dataset.day;
    const saved = await submitting(form, () => api(`/api/v1/calendar/${day}`, {
      method: "PUT", body: readFields(form, fields) }));
    if (!saved) return;
    days.set(day, saved);
    notify(`${t("admin.saved")}: ${dayLabel(day)}`, "ok");
    await load();
    grid.querySelector(`[data-day="${day}"]`)?.focus();
  });
  form.querySelector(".cancel").addEventListener("click", () => {
    form.hidden = true;
    grid.querySelector(`[data-day="${form.dataset.day}"]`)?.focus();
  });
  window.addEventListener("fleet:lang", () => {
    if (held) render();
    if (!form.hidden && form.dataset.day) picked.textContent = dayLabel(form.dataset.day);
    if (preview) renderPreview();
  });

  // ---- a year from the State Council's notice: preview, then save ----
  const notice = panel.querySelector("#notice-form");
  const problems = notice.querySelector("#notice-problems");
  const previewBox = notice.querySelector("#notice-preview");

  function dates(list) {
    if (!list.length) return "—";
    const runs = [];
    for (const day of list) {
      const last = runs.at(-1);
      if (last && Date.parse(`${day}T00:00:00Z`) - Date.parse(`${last.at(-1)}T00:00:00Z`) === 86_400_000) last.push(day);
      else runs.push([day]);
    }
    return runs.map((run) => (run.length > 1 ? `${run[0]} – ${run.at(-1)}` : run[0])).join(", ");
  }

  function remark(warning) {
    const key = `notice.${warning.code}`;
    return t(key) === key ? warning.message : fill(t(key), warning);
  }

  function renderPreview() {
    const s = preview.summary;
    notice.querySelector("#notice-summary").textContent = fill(t("admin.calendar.preview_summary"), {
      year: preview.year, off: s.days_off, holidays: s.holidays, working: s.working_days,
      adjusted: s.adjusted_working_days, new: s.new, changed: s.changed, same: s.same });
    notice.querySelector("#notice-holidays").replaceChildren(...preview.holidays.map((h) => el("tr", {},
      el("td", { text: h.name }),
      el("td", { text: `${dates(h.days_off)} (${fill(t("admin.calendar.days"), { n: h.days_off.length })})` }),
      el("td", { text: dates(h.working_days) }))));
    notice.querySelector("#notice-warnings").replaceChildren(
      ...preview.warnings.map((w) => el("li", { dataset: { code: w.code }, text: remark(w) })));
    const ignored = notice.querySelector("#notice-ignored");
    ignored.hidden = !preview.ignored.length;
    ignored.querySelector("ol").replaceChildren(...preview.ignored.map((line) => el("li", {
      text: `${fill(t("admin.calendar.problem"), line)}: ${line.text}` })));
  }

  function showProblems(error) {
    const listed = error instanceof ApiError ? error.body?.problems || [] : [];
    problems.replaceChildren(...listed.map((p) => el("li", {
      dataset: { line: p.line }, text: `${fill(t("admin.calendar.problem"), p)}: ${p.reason}` })));
    problems.hidden = !listed.length;
  }

  function endPreview() {
    preview = null;
    previewDays.clear();
    previewBox.hidden = true;
  }

  function body() {
    return { year: Number(notice.elements.year.value), text: notice.elements.text.value };
  }

  notice.addEventListener("submit", async (event) => {
    event.preventDefault();
    showProblems(null);
    const asked = body();
    const answer = await submitting(notice, () => api("/api/v1/calendar/notice/preview", {
      method: "POST", body: asked }).catch((error) => { showProblems(error); throw error; }));
    if (!answer) {
      endPreview();
      if (held) render();
      return;
    }
    preview = answer;
    previewDays.clear();
    for (const d of answer.days) previewDays.set(d.day, d);
    year = answer.year;
    yearInput.value = year;
    form.hidden = true;
    render();
    renderPreview();
    previewBox.hidden = false;
    previewBox.querySelector("#notice-save").focus();
  });

  notice.querySelector("#notice-save").addEventListener("click", async () => {
    const asked = { year: preview.year, text: notice.elements.text.value };
    const saved = await submitting(notice, () => api("/api/v1/calendar/notice", {
      method: "POST", body: asked }).catch((error) => { showProblems(error); throw error; }));
    if (!saved) return;
    notify(fill(t("admin.calendar.year_saved"), saved), "ok");
    endPreview();
    notice.elements.text.value = "";
    await load();
    await refreshCalendarBanner({ fresh: true });
  });
  notice.querySelector("#notice-cancel").addEventListener("click", () => {
    endPreview();
    render();
  });
  // What the notice is for: the first year the calendar lacks (warned of), else the next.
  notice.elements.year.value = year + 1;
  calendarStatus().then((status) => {
    if (status.warnings.length) notice.elements.year.value = status.warnings[0].year;
  });

  yearInput.value = year;
  load();
}

// ---- working hours ---------------------------------------------------------------------------

export function initHours(panel) {
  const list = panel.querySelector("#hours-list");
  const fields = [
    { name: "start", key: "admin.hours.start", type: "time" },
    { name: "end", key: "admin.hours.end", type: "time" },
  ];

  function unitForm(unit, hours) {
    const form = el("form", { className: "hours-row", id: `hours-${unit.id}`, novalidate: true, dataset: { unit: unit.id } },
      el("span", { className: "unit-name", style: `padding-left: ${unitDepth(unit) * 1.2}em`, text: unit.name }),
      el("div", { className: "fields" }),
      el("span", { className: "muted inherited", i18n: hours.inherited ? "admin.hours.inherited" : "admin.hours.own" }),
      el("button", { type: "submit", className: "primary", i18n: "admin.save" }),
      el("p", { className: "field-error", hidden: true, dataset: { errorFor: "__form" } }));
    buildFields(form, fields);
    writeFields(form, fields, hours);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const saved = await submitting(form, () => api(`/api/v1/units/${unit.id}/working-hours`, {
        method: "PUT", body: readFields(form, fields) }));
      if (!saved) return;
      notify(`${t("admin.saved")}: ${unit.name} ${saved.start}–${saved.end}`, "ok");
      await load();
    });
    return form;
  }

  const turn = turns();

  async function load() {
    const current = turn();
    const all = await Promise.all(units.list.map((u) => api(`/api/v1/units/${u.id}/working-hours`)));
    if (!current()) return;
    list.replaceChildren(...units.list.map((u, i) => unitForm(u, all[i])));
  }

  window.addEventListener("fleet:units", load);
  load();
}
