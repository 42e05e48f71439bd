// What the administration tabs share: their labels, the vocabulary of the registry, a small DOM
// builder, forms built from field lists, and the API's field errors shown next to the field.
import { ApiError, api } from "./api.js";
import { extend } from "./i18n.js";
import { notify } from "./shell.js";
import { el } from "./dom.js";

extend({
  "admin.to_dashboard": ["统计看板", "Dashboard"],
  "admin.tabs": ["管理项目", "Sections"],
  "admin.tab.units": ["单位", "Units"],
  "admin.tab.users": ["用户与角色", "Users and roles"],
  "admin.tab.vehicles": ["车辆", "Vehicles"],
  "admin.tab.drivers": ["驾驶员", "Drivers"],
  "admin.tab.devices": ["终端", "Devices"],
  "admin.tab.fences": ["电子围栏", "Fences"],
  "admin.tab.rules": ["规则设置", "Rules"],
  "admin.tab.calendar": ["工作日历", "Working calendar"],
  "admin.tab.hours": ["工作时间", "Working hours"],
  "admin.not_admin": ["此页面仅供系统管理员使用", "This page is for administrators"],
  "admin.saved": ["已保存", "Saved"],
  "admin.deleted": ["已删除", "Deleted"],
  "admin.confirm_delete": ["确定删除？", "Delete it?"],
  "admin.form_error": ["请检查标出的字段", "Check the fields marked"],
  "admin.none": ["无", "None"],
  "admin.empty": ["暂无记录", "Nothing here yet"],
  "admin.total": ["共", "Total"],
  "admin.prev": ["上一页", "Previous"],
  "admin.next": ["下一页", "Next"],
  "admin.actions": ["操作", "Actions"],
  "admin.edit": ["编辑", "Edit"],
  "admin.delete": ["删除", "Delete"],
  "admin.new": ["新建", "New"],
  "admin.save": ["保存", "Save"],
  "admin.cancel": ["取消", "Cancel"],
  "admin.filter": ["筛选", "Filter"],
  "admin.reset": ["重置", "Reset"],
  "admin.any": ["全部", "Any"],
  "admin.yes": ["是", "Yes"],
  "admin.no": ["否", "No"],
  "admin.enable": ["启用", "Enable"],
  "admin.disable": ["停用", "Disable"],
  "admin.enabled": ["已启用", "Enabled"],
  "admin.seats_short": ["座位", "Seats"],
  "admin.approval.param_short": ["参数", "Parameter"],
  "admin.disabled": ["已停用", "Disabled"],
  "field.name": ["名称", "Name"],
  "field.code": ["代码", "Code"],
  "field.parent": ["上级单位", "Parent unit"],
  "field.unit": ["所属单位", "Unit"],
  "field.username": ["用户名", "Username"],
  "field.password": ["初始密码", "Initial password"],
  "field.full_name": ["姓名", "Full name"],
  "field.roles": ["角色", "Roles"],
  "field.language": ["界面语言", "Language"],
  "field.active": ["有效", "Active"],
  "field.plate": ["车牌", "Plate"],
  "field.category": ["车辆类别", "Category"],
  "field.body_class": ["车身类型", "Body"],
  "field.seats": ["座位数（不含驾驶员）", "Seats (driver not counted)"],
  "field.min_seats": ["最少座位", "Min. seats"],
  "field.energy": ["能源类型", "Energy"],
  "field.tank_l": ["油箱容积 L", "Tank (L)"],
  "field.battery_kwh": ["电池容量 kWh", "Battery (kWh)"],
  "field.fuel_norm": ["油耗定额 L/100km", "Consumption norm (L/100 km)"],
  "field.fuel_card": ["加油卡号", "Fuel card"],
  "field.make_model": ["品牌型号", "Make and model"],
  "field.depot_name": ["停放地点", "Depot"],
  "field.status": ["状态", "Status"],
  "field.licence_class": ["准驾车型", "Licence class"],
  "field.phone": ["电话", "Phone"],
  "field.user": ["关联账号", "User account"],
  "field.protocol": ["协议", "Protocol"],
  "field.identifier": ["终端号", "Identifier"],
  "field.vehicle": ["车辆", "Vehicle"],
  "field.kind": ["类型", "Kind"],
  "field.note": ["备注", "Note"],
  "lang.zh": ["中文", "Chinese"],
  "lang.en": ["英文", "English"],
  "cat.confidential_comms": ["机要通信", "Confidential comms"],
  "cat.emergency": ["应急保障", "Emergency support"],
  "cat.enforcement": ["执法执勤", "Law enforcement"],
  "cat.special": ["特种专业技术", "Special technical"],
  "cat.general": ["其他公务", "General official"],
  "body.sedan": ["轿车", "Sedan"],
  "body.suv": ["越野车", "SUV"],
  "body.mpv": ["多用途车", "MPV"],
  "body.minibus": ["中型客车", "Minibus"],
  "body.bus": ["大型客车", "Bus"],
  "body.truck": ["货车", "Truck"],
  "energy.petrol": ["汽油", "Petrol"],
  "energy.diesel": ["柴油", "Diesel"],
  "energy.hybrid": ["油电混合", "Hybrid"],
  "energy.phev": ["插电混动", "Plug-in hybrid"],
  "energy.bev": ["纯电动", "Battery electric"],
  "vstatus.active": ["在用", "Active"],
  "vstatus.sealed": ["封存", "Sealed"],
  "vstatus.maintenance": ["维修", "In maintenance"],
  "vstatus.disposed": ["已处置", "Disposed"],
  "role.admin": ["系统管理员", "Administrator"],
  "role.requester": ["用车人", "Requester"],
  "role.approver": ["审批人", "Approver"],
  "role.dispatcher": ["调度员", "Dispatcher"],
  "role.driver": ["驾驶员", "Driver"],
  "role.supervisor": ["监督员", "Supervisor"],
});

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
    const type = { int: "number", number: "number", password: "password", time: "time" }[field.type];
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
