// What the administration tabs share: their labels, the vocabulary of the registry, a small DOM
// builder, forms built from field lists, and the API's field errors shown next to the field.
import { ApiError, api } from "./api.js";
import labels from "../labels/admin-common.json" with { type: "json" };
import { extend } from "./i18n.js";
import { notify } from "./shell.js";
import { el } from "./dom.js";

extend(labels);

export const VOCAB = {
  category: ["confidential_comms", "emergency", "enforcement", "special", "general"],
  body: ["sedan", "suv", "mpv", "minibus", "bus", "truck"],
  energy: ["petrol", "diesel", "hybrid", "phev", "bev"],
  vstatus: ["active", "sealed", "maintenance", "disposed"],
  role: ["admin", "requester", "approver", "dispatcher", "driver", "supervisor"],
  licence: ["A1", "A2", "A3", "B1", "B2", "C1", "C2", "C3", "C4", "C5", "C6", "D", "E", "F"],
  protocol: ["jt808", "osmand", "api"],
};

let serial = 0;
export function uid(prefix) {
  serial += 1;
  return `${prefix}-${serial}`;
}

// el("td", {i18n: "cat.general"}) keeps the label switching language with the page.
export { el };

export function button(key, onclick, className = "") {
  return el("button", { type: "button", i18n: key, className, onclick });
}

export function vocabCell(prefix, value) {
  return value ? el("td", { i18n: `${prefix}.${value}` }) : el("td", { text: "—" });
}

// Lists reload after every change and on every filter, and answers may come back out of order:
// each load takes a turn, and shows its answer only if no later load has started since.
//   const turn = turns(); ... const current = turn(); await ...; if (!current()) return;
export function turns() {
  let latest = 0;
  return () => {
    const mine = ++latest;
    return () => mine === latest;
  };
}

const unitTurn = turns();

// ---- units, shared by every tab that picks one -------------------------------------------------

export const units = { list: [], byId: new globalThis.Map() };

export async function loadUnits() {
  const current = unitTurn();
  const page = await api("/api/v1/units?limit=500");
  if (!current()) return units.list;
  units.list = page.items;
  units.byId = new globalThis.Map(page.items.map((u) => [u.id, u]));
  window.dispatchEvent(new CustomEvent("fleet:units"));
  return units.list;
}

export function unitDepth(unit) {
  return unit.path.split("/").filter(Boolean).length - 1;
}

export function unitName(id) {
  return units.byId.get(id)?.name ?? (id == null ? "—" : `#${id}`);
}

// Indented so the select reads as the tree it is.
export function unitOptions() {
  return units.list.map((u) => ({ value: u.id, text: `${"\u3000".repeat(unitDepth(u))}${u.name}` }));
}

// ---- forms -----------------------------------------------------------------------------------

// A field: {name, key, type: text|password|number|int|select|checks|checkbox|time, options,
// prefix (i18n prefix of the options), blank (what an empty value means: null or ""),
// optional (offer an empty choice), attrs}.
export function buildFields(form, fields, host = form.querySelector(".fields")) {
  host.replaceChildren(...fields.map((field) => fieldNode(form, field)));
  for (const field of fields) if (field.options) fillOptions(form, field);
}

function fieldNode(form, field) {
  const id = uid(`${form.id}-${field.name}`);
  const error = el("p", { className: "field-error", id: `${id}-error`, hidden: true,
    dataset: { errorFor: field.name } });
  if (field.type === "checks") {
    return el("fieldset", { className: `field checks f-${field.name}`, "aria-describedby": error.id },
      el("legend", { i18n: field.key }), el("div", { className: "choices" }), error);
  }
  if (field.type === "checkbox") {
    const input = el("input", { type: "checkbox", id, name: field.name, "aria-describedby": error.id });
    input.checked = field.checked ?? true;
    return el("div", { className: `field check f-${field.name}` },
      el("label", { for: id }, input, el("span", { i18n: field.key })), error);
  }
  let control;
  if (field.type === "select") control = el("select", { id, name: field.name });
  else {
    const type = { int: "number", number: "number", password: "password", time: "time", date: "date" }[field.type];
    control = el("input", { id, name: field.name, type: type || "text",
      step: field.type === "number" ? "any" : undefined, autocomplete: "off" });
  }
  control.setAttribute("aria-describedby", error.id);
  for (const [key, value] of Object.entries(field.attrs || {})) control.setAttribute(key, value);
  return el("div", { className: `field f-${field.name}` },
    el("label", { for: id, i18n: field.key }), control, error);
}

// Re-run when the choices change (units added, vehicles loaded).
export function fillOptions(form, field) {
  const options = typeof field.options === "function" ? field.options() : field.options;
  const items = options.map((o) => (typeof o === "object" ? o : { value: o }));
  const label = (o) => (o.text !== undefined ? { text: o.text }
    : field.prefix ? { i18n: `${field.prefix}.${o.value}` } : { text: String(o.value) });
  if (field.type === "checks") {
    const box = form.querySelector(`.f-${field.name} .choices`);
    box.replaceChildren(...items.map((o) => el("label", {},
      el("input", { type: "checkbox", name: field.name, value: o.value }), el("span", label(o)))));
    return;
  }
  const select = form.elements[field.name];
  const kept = select.value;
  const blank = field.optional ? [el("option", { value: "", i18n: field.optionalKey || "admin.none" })] : [];
  select.replaceChildren(...blank, ...items.map((o) => el("option", { value: o.value, ...label(o) })));
  if ([...select.options].some((o) => o.value === kept)) select.value = kept;
}

export function readFields(form, fields) {
  const values = {};
  for (const field of fields) {
    if (field.type === "checks") {
      values[field.name] = [...form.querySelectorAll(`input[name="${field.name}"]:checked`)]
        .map((i) => i.value);
      continue;
    }
    const control = form.elements[field.name];
    if (field.type === "checkbox") {
      values[field.name] = control.checked;
      continue;
    }
    const raw = control.value.trim();
    if (raw === "") values[field.name] = field.blank === "" ? "" : null;
    else if (field.type === "number" || field.type === "int" || field.numeric) values[field.name] = Number(raw);
    else values[field.name] = raw;
  }
  return values;
}

export function writeFields(form, fields, record) {
  for (const field of fields) {
    const value = record ? record[field.name] : undefined;
    if (field.type === "checks") {
      for (const box of form.querySelectorAll(`input[name="${field.name}"]`)) {
        box.checked = Array.isArray(value) && value.includes(box.value);
      }
    } else if (field.type === "checkbox") {
      form.elements[field.name].checked = value ?? field.checked ?? true;
    } else {
      const control = form.elements[field.name];
      if (value === undefined || value === null) {
        control.value = control.tagName === "SELECT" && !field.optional && control.options.length
          ? (field.default ?? control.options[0].value) : "";
      } else control.value = String(value);
    }
  }
}

// Without nulls: the API's own defaults apply to what was left empty.
export function createBody(values) {
  return Object.fromEntries(Object.entries(values).filter(([, v]) => v !== null));
}

// Only what changed, so a PATCH neither rewrites nor audits untouched fields.
export function changedBody(values, record) {
  return Object.fromEntries(Object.entries(values).filter(([key, value]) => {
    const before = record[key] ?? null;
    return JSON.stringify(before) !== JSON.stringify(value === "" && before === null ? null : value);
  }));
}

export function clearErrors(form) {
  for (const slot of form.querySelectorAll("[data-error-for]")) {
    slot.hidden = true;
    slot.textContent = "";
  }
  for (const control of form.querySelectorAll("[aria-invalid]")) control.removeAttribute("aria-invalid");
}

// The API names the field at fault as the last string in `loc` (["body", "plate"]); an error
// without a field, or naming one this form does not show, goes to the form's own error line.
export function showErrors(form, error) {
  clearErrors(form);
  if (!(error instanceof ApiError)) throw error;
  const detail = error.body?.detail;
  const items = Array.isArray(detail) ? detail : [{ loc: [], msg: detail || error.message }];
  let first = null;
  for (const item of items) {
    const names = (item.loc || []).filter((part) => typeof part === "string").reverse();
    let slot = null;
    for (const name of names) {
      slot = form.querySelector(`[data-error-for="${CSS.escape(name)}"]`);
      if (slot) break;
    }
    slot = slot || form.querySelector('[data-error-for="__form"]');
    if (!slot) {
      notify(item.msg, "error");
      continue;
    }
    // Pydantic prefixes a validator's own words with its exception's name; the words are enough.
    const message = String(item.msg).replace(/^Value error, /, "");
    slot.textContent = slot.textContent ? `${slot.textContent}; ${message}` : message;
    slot.hidden = false;
    const field = slot.closest(".field");
    const control = field?.querySelector("input, select, textarea");
    if (control) control.setAttribute("aria-invalid", "true");
    first = first || control || slot;
  }
  if (first) {
    if (!first.matches("input, select, textarea, button")) first.tabIndex = -1;
    first.focus();
  }
}

// Runs a save; on an API error the messages go next to their fields and the form stays open.
export async function submitting(form, action) {
  const submit = form.querySelector("button[type=submit]");
  if (submit) submit.disabled = true;
  try {
    clearErrors(form);
    const result = await action();
    return result;
  } catch (error) {
    showErrors(form, error);
    return undefined;
  } finally {
    if (submit) submit.disabled = false;
  }
}

// A list page: the table's body, the count and the previous/next buttons under it.
export function pager(root, onPage) {
  const state = { offset: 0, limit: 50, total: 0 };
  const count = el("span", { className: "muted count" });
  const prev = button("admin.prev", () => { state.offset = Math.max(0, state.offset - state.limit); onPage(); });
  const next = button("admin.next", () => { state.offset += state.limit; onPage(); });
  root.replaceChildren(prev, count, next);
  state.update = (page) => {
    state.total = page.total;
    const end = Math.min(page.offset + page.items.length, page.total);
    count.textContent = `${page.total ? page.offset + 1 : 0}–${end} / ${page.total}`;
    prev.disabled = page.offset === 0;
    next.disabled = end >= page.total;
  };
  return state;
}

export function emptyRow(columns) {
  return el("tr", { className: "empty" }, el("td", { colspan: columns, i18n: "admin.empty" }));
}

export async function fetchAll(path) {
  const items = [];
  for (let offset = 0; ; offset += 500) {
    const page = await api(`${path}${path.includes("?") ? "&" : "?"}limit=500&offset=${offset}`);
    items.push(...page.items);
    if (items.length >= page.total || !page.items.length) return items;
  }
}
