// Equipping and renewal (配备更新): quotas against vehicles held, the vehicles due for renewal now
// and within 12 months, idle vehicles, the new-energy share of purchases (the dashboard and the
// admin page), and, on the admin page, setting quotas and taking requests to their disposal.
import { api } from "./api.js";
import labels from "../labels/equipping.json" with { type: "json" };
import { extend, lang, t } from "./i18n.js";
import { fill, notify } from "./shell.js";
import { VOCAB, clearErrors, el, emptyRow, submitting, turns, units } from "./admin-common.js";

extend(labels);

// For the tests: how many times each view was drawn.
window.fleetEquipping = { quotas: 0, renewals: 0, idle: 0, purchases: 0, requests: 0 };

function count(name) {
  window.fleetEquipping[name] += 1;
}

function number(value, digits = 0) {
  return new Intl.NumberFormat(lang() === "en" ? "en-GB" : "zh-CN",
    { maximumFractionDigits: digits, minimumFractionDigits: digits }).format(value);
}

const dash = () => el("td", { text: "—" });

// ---- quotas ------------------------------------------------------------------------------------

let quotaAnswer = null;

function quotaRow(unit) {
  const state = unit.over ? "eq.over" : unit.quota === null ? "eq.unset" : "eq.within";
  const detail = unit.categories.map((c) => `${t(`cat.${c.category}`)} ${c.held}/${c.quota ?? "—"}`).join("；");
  return el("tr", { class: unit.over ? "over" : "", dataset: { unit: unit.unit_code } },
    el("td", { text: unit.unit_name }),
    unit.quota === null ? dash() : el("td", { class: "num quota", text: number(unit.quota) }),
    el("td", { class: "num held", text: number(unit.held) }),
    el("td", { class: "detail", text: detail }),
    el("td", { class: `state ${unit.over ? "warn" : ""}`, i18n: state }));
}

function drawQuotas(host) {
  if (!quotaAnswer) return;
  const rows = quotaAnswer.units.filter((u) => u.quota !== null || u.held > 0);
  host.querySelector(".quota-rows").replaceChildren(...(rows.length ? rows.map(quotaRow) : [emptyRow(5)]));
  const { total } = quotaAnswer;
  host.querySelector(".quota-total").replaceChildren(el("tr", {},
    el("th", { i18n: "eq.total" }),
    el("td", { class: "num quota", text: number(total.quota) }),
    el("td", { class: "num held", text: number(total.held) }),
    el("td", {}),
    el("td", { class: `state ${total.over_units ? "warn" : ""}`,
      text: fill(t("eq.over_units"), { n: total.over_units }) })));
  count("quotas");
}

export async function loadQuotas(host) {
  quotaAnswer = await api("/api/v1/equipping/quotas");
  drawQuotas(host);
  return quotaAnswer;
}

// ---- renewal -----------------------------------------------------------------------------------

let renewalAnswer = null;

function dueRow(item, action) {
  return el("tr", { dataset: { plate: item.plate, vehicle: String(item.vehicle_id) } },
    el("td", { class: "plate", text: item.plate }),
    el("td", { text: item.unit_name }),
    el("td", { text: item.acquired_on || "—" }),
    item.distance_km === null ? dash() : el("td", { class: "num", text: number(item.distance_km) }),
    el("td", { class: "due", text: item.due_on }),
    el("td", { class: "reasons", text: item.reasons.map((r) => t(`eq.reason.${r}`)).join("、") }),
    action ? el("td", { class: "actions" }, action(item)) : null);
}

function drawRenewals(host, action) {
  if (!renewalAnswer) return;
  const columns = action ? 7 : 6;
  const rows = (items) => (items.length ? items.map((i) => dueRow(i, action)) : [emptyRow(columns)]);
  host.querySelector(".due-now-rows").replaceChildren(...rows(renewalAnswer.due_now));
  host.querySelector(".due-soon-rows").replaceChildren(...rows(renewalAnswer.due_within_12_months));
  host.querySelector(".renewal-rule").textContent = fill(t("eq.rule"),
    { years: renewalAnswer.age_years, km: number(renewalAnswer.distance_km) });
  count("renewals");
}

export async function loadRenewals(host, action = null) {
  renewalAnswer = await api("/api/v1/equipping/renewals");
  drawRenewals(host, action);
}

// ---- idle and purchases ------------------------------------------------------------------------

let idleAnswer = null;
let purchaseAnswer = null;

// The dashboard lists the least used first, this many; the count says how many there are in all.
const IDLE_SHOWN = 10;

function drawIdle(host, action = null) {
  if (!idleAnswer) return;
  host.querySelector(".idle-rule").textContent = fill(t("eq.idle_rule"),
    { month: idleAnswer.month, days: idleAnswer.min_days, n: idleAnswer.items.length });
  const shown = action ? idleAnswer.items : idleAnswer.items.slice(0, IDLE_SHOWN);
  host.querySelector(".idle-rows").replaceChildren(...(shown.length
    ? shown.map((i) => el("tr", { dataset: { plate: i.plate } },
      el("td", { class: "plate", text: i.plate }), el("td", { class: "unit", text: i.unit_name }),
      el("td", { i18n: `cat.${i.category}` }), el("td", { class: "num", text: String(i.days_used) }),
      action ? el("td", { class: "actions" }, action(i)) : null))
    : [emptyRow(action ? 5 : 4)]));
  count("idle");
}

function drawPurchases(host) {
  if (!purchaseAnswer) return;
  host.querySelector(".purchase-rows").replaceChildren(...(purchaseAnswer.items.length
    ? purchaseAnswer.items.map((y) => el("tr", { dataset: { year: String(y.year) } },
      el("td", { text: String(y.year) }), el("td", { class: "num", text: String(y.bought) }),
      el("td", { class: "num", text: String(y.new_energy) }),
      el("td", { class: "num share", text: `${number(y.share * 100, 1)}%` })))
    : [emptyRow(4)]));
  count("purchases");
}

// ---- the dashboard -----------------------------------------------------------------------------

export async function initEquippingDashboard(host) {
  const [idle, purchases] = await Promise.all([
    api("/api/v1/equipping/idle"), api("/api/v1/equipping/new-energy"),
    loadQuotas(host), loadRenewals(host)]);
  idleAnswer = idle;
  purchaseAnswer = purchases;
  drawIdle(host);
  drawPurchases(host);
  host.hidden = false;
  window.addEventListener("fleet:lang", () => {
    drawQuotas(host);
    drawRenewals(host, null);
    drawIdle(host);
    drawPurchases(host);
  });
}

// ---- the admin page: quotas, requests, disposal -----------------------------------------------

const requestTurn = turns();

async function loadRequests(panel) {
  const current = requestTurn();
  const page = await api("/api/v1/equipping/requests?limit=100");
  if (!current()) return;
  const form = panel.querySelector("#disposal-form");
  const rows = page.items.map((r) => el("tr", { dataset: { request: String(r.id), plate: r.plate } },
    el("td", { class: "plate", text: r.plate }),
    el("td", { text: r.unit_name }),
    el("td", { i18n: `eq.kind.${r.kind}` }),
    el("td", { class: "status", i18n: `eq.status.${r.status}` }),
    el("td", { class: "num", text: `${r.approvals_done}/${r.approval_steps.length}` }),
    el("td", { class: "disposal", text: r.disposal_method
      ? `${t(`eq.method.${r.disposal_method}`)} ${r.disposed_on} ${r.receiver}` : "" }),
    el("td", { class: "actions" },
      r.status === "submitted" ? el("button", { type: "button", class: "approve", i18n: "eq.approve",
        onclick: async () => {
          await api(`/api/v1/equipping/requests/${r.id}/approve`, { method: "POST", body: {} })
            .then(() => notify(`${r.plate} ${t("eq.approved")}`, "ok"))
            .catch((error) => notify(error.message, "error"));
          await reloadAdmin(panel);
        } }) : null,
      r.status === "approved" ? el("button", { type: "button", class: "dispose", i18n: "eq.dispose",
        onclick: () => {
          form.hidden = false;
          form.dataset.request = String(r.id);
          form.querySelector(".disposal-plate").textContent = r.plate;
          form.elements.method.focus();
        } }) : null)));
  panel.querySelector("#request-rows").replaceChildren(...(rows.length ? rows : [emptyRow(7)]));
  count("requests");
}

async function reloadAdmin(panel) {
  await Promise.all([loadQuotas(panel), loadRenewals(panel, requestButton(panel)), loadRequests(panel),
    api("/api/v1/equipping/idle").then((answer) => {
      idleAnswer = answer;
      drawIdle(panel, reallocateButton(panel));
    })]);
}

function reallocateButton(panel) {
  const form = panel.querySelector("#reallocate-form");
  return (item) => el("button", { type: "button", class: "reallocate", i18n: "eq.reallocate",
    onclick: () => {
      form.hidden = false;
      form.dataset.vehicle = String(item.vehicle_id);
      form.querySelector(".reallocate-plate").textContent = item.plate;
      const select = form.elements.unit_id;
      select.replaceChildren(...units.list.filter((u) => u.id !== item.unit_id)
        .map((u) => el("option", { value: String(u.id), text: u.name })));
      select.focus();
    } });
}

function reallocateForm(panel) {
  const form = panel.querySelector("#reallocate-form");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    submitting(form, async () => {
      const moved = await api(`/api/v1/equipping/vehicles/${form.dataset.vehicle}/reallocate`, {
        method: "POST", body: { unit_id: Number(form.elements.unit_id.value), reason: form.elements.reason.value } });
      notify(`${moved.plate} ${t("eq.reallocated")} ${units.byId.get(moved.unit_id)?.name ?? moved.unit_id}`, "ok");
      form.hidden = true;
      form.reset();
      await reloadAdmin(panel);
    });
  });
}

function requestButton(panel) {
  return (item) => (item.request_id ? el("span", { i18n: `eq.status.${item.request_status}` })
    : el("button", { type: "button", class: "request", i18n: "eq.request_renewal",
      onclick: async () => {
        try {
          await api("/api/v1/equipping/requests", { method: "POST",
            body: { vehicle_id: item.vehicle_id, kind: "renewal", reason: t("eq.renewal_reason") } });
          notify(`${item.plate} ${t("eq.requested")}`, "ok");
        } catch (error) {
          notify(error.message, "error");
        }
        await reloadAdmin(panel);
      } }));
}

function quotaForm(panel) {
  const form = panel.querySelector("#quota-form");
  const select = form.elements.unit_id;
  select.replaceChildren(...units.list.map((u) => el("option", { value: String(u.id), text: u.name })));
  const inputs = form.querySelector(".quota-inputs");
  inputs.replaceChildren(...VOCAB.category.map((category) => el("div", { class: "field" },
    el("label", { for: `quota-${category}`, i18n: `cat.${category}` }),
    el("input", { type: "number", id: `quota-${category}`, name: category, min: "0", max: "10000", step: "1",
      placeholder: t("eq.quota_hint") }),
    el("p", { class: "field-error", dataset: { errorFor: category }, hidden: true }))));
  const show = () => {
    const unit = quotaAnswer?.units.find((u) => String(u.unit_id) === select.value);
    for (const category of VOCAB.category) {
      const line = unit?.categories.find((c) => c.category === category);
      form.elements[category].value = line && line.quota !== null ? String(line.quota) : "";
    }
  };
  select.addEventListener("change", show);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    clearErrors(form);
    const quotas = Object.fromEntries(VOCAB.category.map((c) =>
      [c, form.elements[c].value === "" ? null : Number(form.elements[c].value)]));
    submitting(form, async () => {
      await api(`/api/v1/equipping/quotas/${select.value}`, { method: "PUT", body: { quotas } });
      notify(t("eq.saved"), "ok");
      await loadQuotas(panel);
    });
  });
  return show;
}

function disposalForm(panel) {
  const form = panel.querySelector("#disposal-form");
  form.elements.method.replaceChildren(...["auction", "scrap", "transfer"].map((m) =>
    el("option", { value: m, i18n: `eq.method.${m}` })));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    clearErrors(form);
    submitting(form, async () => {
      await api(`/api/v1/equipping/requests/${form.dataset.request}/dispose`, { method: "POST", body: {
        method: form.elements.method.value,
        disposed_on: form.elements.disposed_on.value,
        receiver: form.elements.receiver.value,
      } });
      notify(t("eq.disposed"), "ok");
      form.hidden = true;
      form.reset();
      await reloadAdmin(panel);
    });
  });
}

export async function initEquipping(panel) {
  const show = quotaForm(panel);
  disposalForm(panel);
  reallocateForm(panel);
  await reloadAdmin(panel);
  show();
  window.addEventListener("fleet:lang", () => {
    drawQuotas(panel);
    drawRenewals(panel, requestButton(panel));
    drawIdle(panel, reallocateButton(panel));
    for (const category of VOCAB.category) panel.querySelector(`#quota-${category}`).placeholder = t("eq.quota_hint");
  });
}
