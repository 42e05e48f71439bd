// The registry tabs: units, users and roles, vehicles, drivers, devices (with the trackers the
// gateways heard from but nobody registered).
import { api } from "./api.js";
import labels from "../labels/admin-registry.json" with { type: "json" };
import { extend, t, when } from "./i18n.js";
import { config, notify } from "./shell.js";
import {
  VOCAB, buildFields, turns, button, changedBody, createBody, el, emptyRow, fetchAll, fillOptions,
  loadUnits, pager, readFields, submitting, unitName, unitOptions, units, vocabCell, writeFields,
} from "./admin-common.js";

extend(labels);

const PROTOCOLS = { jt808: "JT/T 808", osmand: "OsmAnd", api: "HTTP API" };

function listing(path, filters) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(filters)) if (value !== null && value !== "") query.set(key, value);
  return `${path}?${query}`;
}

// A registry table a page at a time: `query()` gives the filters, `row` draws an item; an answer
// to a request that a newer one has overtaken is dropped.
function pagedTable(panel, name, path, columns, row, query = () => ({})) {
  const body = panel.querySelector(`#${name}-rows`);
  const turn = turns();
  const pages = pager(panel.querySelector(`#${name}-pager`), load);
  async function load() {
    const current = turn();
    const page = await api(listing(path, { ...query(), limit: pages.limit, offset: pages.offset }));
    if (!current()) return;
    pages.update(page);
    body.replaceChildren(...(page.items.length ? page.items.map(row) : [emptyRow(columns)]));
  }
  return { pages, load };
}

// ---- units -----------------------------------------------------------------------------------

export function initUnits(panel) {
  const form = panel.querySelector("#unit-form");
  const fields = [
    { name: "name", key: "field.name", type: "text" },
    { name: "code", key: "field.code", type: "text" },
    { name: "parent_id", key: "field.parent", type: "select", options: unitOptions, numeric: true },
  ];
  buildFields(form, fields);
  const tree = panel.querySelector("#unit-tree");

  function node(u) {
    return el("li", { dataset: { unit: u.id } },
      el("span", { className: "unit-name", text: u.name }), " ",
      el("code", { className: "muted", text: u.code }), " ",
      el("button", { type: "button", className: "link", i18n: "admin.units.pick",
        onclick: () => { form.elements.parent_id.value = u.id; form.elements.name.focus(); } }),
      branch(u.id));
  }

  function branch(parentId) {
    const children = units.list.filter((u) => u.parent_id === parentId);
    return children.length ? el("ul", {}, ...children.map(node)) : null;
  }

  function render() {
    // The roots of what the caller sees: units whose parent is out of scope.
    tree.replaceChildren(...units.list.filter((u) => !units.byId.has(u.parent_id)).map(node));
    fillOptions(form, fields[2]);
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const unit = await submitting(form, () => api("/api/v1/units", {
      method: "POST", body: createBody(readFields(form, fields)) }));
    if (!unit) return;
    notify(`${t("admin.saved")}: ${unit.name}`, "ok");
    form.elements.name.value = "";
    form.elements.code.value = "";
    await loadUnits();
  });
  window.addEventListener("fleet:units", render);
  render();
}

// ---- users -----------------------------------------------------------------------------------

export function initUsers(panel) {
  const form = panel.querySelector("#user-form");
  const fields = [
    { name: "username", key: "field.username", type: "text" },
    { name: "full_name", key: "field.full_name", type: "text", blank: "" },
    { name: "password", key: "field.password", type: "password", attrs: { autocomplete: "new-password" } },
    { name: "unit_id", key: "field.unit", type: "select", options: unitOptions, numeric: true },
    { name: "roles", key: "field.roles", type: "checks", options: VOCAB.role, prefix: "role" },
    { name: "language", key: "field.language", type: "select", options: ["zh", "en"], prefix: "lang" },
  ];
  buildFields(form, fields);
  const filter = panel.querySelector("#user-filter");
  const filterFields = [
    { name: "unit_id", key: "field.unit", type: "select", options: unitOptions, optional: true, optionalKey: "admin.any" },
    { name: "role", key: "field.roles", type: "select", options: VOCAB.role, prefix: "role", optional: true, optionalKey: "admin.any" },
    { name: "active", key: "admin.users.active_only", type: "checkbox", checked: false },
  ];
  buildFields(filter, filterFields);
  const { pages, load } = pagedTable(panel, "user", "/api/v1/users", 6, row, () => {
    const values = readFields(filter, filterFields);
    return { ...values, active: values.active ? "true" : null };
  });

  function row(user) {
    const roles = el("td", {}, ...user.roles.map((r) => el("span", { className: "tag", i18n: `role.${r}` })));
    const toggle = user.is_active
      ? button("admin.users.deactivate", () => deactivate(user))
      : button("admin.users.reactivate", () => reactivate(user));
    return el("tr", { dataset: { id: user.id }, className: user.is_active ? "" : "inactive" },
      el("td", { text: user.username }), el("td", { text: user.full_name || "—" }),
      el("td", { text: unitName(user.unit_id) }), roles,
      el("td", { i18n: user.is_active ? "admin.yes" : "admin.no" }), el("td", { className: "actions" }, toggle));
  }

  async function deactivate(user) {
    if (!window.confirm(t("admin.users.confirm_deactivate"))) return;
    try {
      await api(`/api/v1/users/${user.id}`, { method: "DELETE" });
      notify(`${t("admin.saved")}: ${user.username}`, "ok");
    } catch (error) {
      notify(error.message, "error");
    }
    await load();
  }

  async function reactivate(user) {
    try {
      await api(`/api/v1/users/${user.id}`, { method: "PATCH", body: { is_active: true } });
      notify(`${t("admin.saved")}: ${user.username}`, "ok");
    } catch (error) {
      notify(error.message, "error");
    }
    await load();
  }

  filter.addEventListener("change", () => { pages.offset = 0; load(); });
  filter.addEventListener("submit", (event) => { event.preventDefault(); pages.offset = 0; load(); });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const user = await submitting(form, () => api("/api/v1/users", {
      method: "POST", body: createBody(readFields(form, fields)) }));
    if (!user) return;
    notify(`${t("admin.saved")}: ${user.username}`, "ok");
    form.reset();
    await load();
  });
  window.addEventListener("fleet:units", () => {
    fillOptions(form, fields[3]);
    fillOptions(filter, filterFields[0]);
  });
  load();
}

// ---- vehicles --------------------------------------------------------------------------------

const VEHICLE_FIELDS = [
  { name: "plate", key: "field.plate", type: "text", attrs: { placeholder: "浙A·D12345" } },
  { name: "unit_id", key: "field.unit", type: "select", options: unitOptions, numeric: true },
  { name: "category", key: "field.category", type: "select", options: VOCAB.category, prefix: "cat", default: "general" },
  { name: "body_class", key: "field.body_class", type: "select", options: VOCAB.body, prefix: "body" },
  { name: "seats", key: "field.seats", type: "int", attrs: { min: 1, max: 60 } },
  { name: "energy", key: "field.energy", type: "select", options: VOCAB.energy, prefix: "energy" },
  { name: "tank_l", key: "field.tank_l", type: "number" },
  { name: "battery_kwh", key: "field.battery_kwh", type: "number" },
  { name: "fuel_norm_l_100km", key: "field.fuel_norm", type: "number" },
  { name: "energy_norm_kwh_100km", key: "field.energy_norm", type: "number" },
  { name: "fuel_card", key: "field.fuel_card", type: "text" },
  { name: "make_model", key: "field.make_model", type: "text", blank: "" },
  { name: "depot_name", key: "field.depot_name", type: "text", blank: "" },
  { name: "acquired_on", key: "field.acquired_on", type: "date" },
  { name: "odometer_km", key: "field.odometer_km", type: "number", attrs: { min: 0 } },
  { name: "status", key: "field.status", type: "select", options: VOCAB.vstatus, prefix: "vstatus" },
];

export function initVehicles(panel) {
  const form = panel.querySelector("#vehicle-form");
  buildFields(form, VEHICLE_FIELDS);
  const heading = form.querySelector("h2");
  const filter = panel.querySelector("#vehicle-filter");
  const any = { optional: true, optionalKey: "admin.any" };
  const filterFields = [
    { name: "plate", key: "admin.vehicles.plate_part", type: "text" },
    { name: "unit_id", key: "field.unit", type: "select", options: unitOptions, ...any },
    { name: "category", key: "field.category", type: "select", options: VOCAB.category, prefix: "cat", ...any },
    { name: "body_class", key: "field.body_class", type: "select", options: VOCAB.body, prefix: "body", ...any },
    { name: "energy", key: "field.energy", type: "select", options: VOCAB.energy, prefix: "energy", ...any },
    { name: "status", key: "field.status", type: "select", options: VOCAB.vstatus, prefix: "vstatus", ...any },
    { name: "min_seats", key: "field.min_seats", type: "int", attrs: { min: 1, max: 60 } },
  ];
  buildFields(filter, filterFields);
  const { pages, load } = pagedTable(
    panel, "vehicle", "/api/v1/vehicles", 8, row, () => readFields(filter, filterFields));
  let editing = null;

  function row(v) {
    const sealed = v.status === "sealed";
    return el("tr", { dataset: { id: v.id, plate: v.plate } },
      el("td", { className: "plate", text: v.plate }), el("td", { text: unitName(v.unit_id) }),
      vocabCell("cat", v.category), vocabCell("body", v.body_class), el("td", { className: "num", text: v.seats }),
      vocabCell("energy", v.energy), el("td", { className: `status ${v.status}`, i18n: `vstatus.${v.status}` }),
      el("td", { className: "actions" },
        button("admin.edit", () => edit(v), "edit"),
        sealed ? button("admin.vehicles.unseal", () => setStatus(v, "active"), "unseal")
          : button("admin.vehicles.seal", () => setStatus(v, "sealed"), "seal")));
  }

  function edit(v, focus = true) {
    editing = v;
    heading.dataset.i18n = v ? "admin.vehicles.edit" : "admin.vehicles.new";
    heading.textContent = t(heading.dataset.i18n);
    form.querySelector(".editing").textContent = v ? v.plate : "";
    writeFields(form, VEHICLE_FIELDS, v || { category: "general", body_class: "sedan", energy: "petrol", status: "active", seats: 4 });
    if (focus) form.elements.plate.focus();
  }

  async function setStatus(v, status) {
    try {
      await api(`/api/v1/vehicles/${v.id}`, { method: "PATCH", body: { status } });
      notify(`${t(status === "sealed" ? "admin.vehicles.sealed" : "admin.vehicles.unsealed")}: ${v.plate}`, "ok");
    } catch (error) {
      notify(error.message, "error");
    }
    await load();
  }

  filter.addEventListener("submit", (event) => { event.preventDefault(); pages.offset = 0; load(); });
  filter.addEventListener("change", (event) => {
    if (event.target.tagName === "SELECT") { pages.offset = 0; load(); }
  });
  filter.addEventListener("reset", () => setTimeout(() => { pages.offset = 0; load(); }));
  panel.querySelector("#vehicle-new").addEventListener("click", () => edit(null));
  form.querySelector(".cancel").addEventListener("click", () => edit(null));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const values = readFields(form, VEHICLE_FIELDS);
    const saved = await submitting(form, () => (editing
      ? api(`/api/v1/vehicles/${editing.id}`, { method: "PATCH", body: changedBody(values, editing) })
      : api("/api/v1/vehicles", { method: "POST", body: createBody(values) })));
    if (!saved) return;
    notify(`${t("admin.saved")}: ${saved.plate}`, "ok");
    edit(saved);
    await load();
  });
  window.addEventListener("fleet:units", () => {
    fillOptions(form, VEHICLE_FIELDS[1]);
    fillOptions(filter, filterFields[1]);
  });
  edit(null, false);
  load();
}

// ---- drivers ---------------------------------------------------------------------------------

export function initDrivers(panel) {
  const form = panel.querySelector("#driver-form");
  const heading = form.querySelector("h2");
  let accounts = [];
  const fields = [
    { name: "name", key: "field.full_name", type: "text" },
    { name: "licence_class", key: "field.licence_class", type: "select", options: VOCAB.licence, default: "C1" },
    { name: "licence_expires_on", key: "field.licence_expires_on", type: "date" },
    { name: "unit_id", key: "field.unit", type: "select", options: unitOptions, numeric: true },
    { name: "phone", key: "field.phone", type: "text", blank: "", attrs: { inputmode: "tel" } },
    { name: "user_id", key: "field.user", type: "select", numeric: true, optional: true,
      options: () => accounts.map((u) => ({ value: u.id, text: `${u.full_name || u.username} (${u.username})` })) },
    { name: "active", key: "field.active", type: "checkbox" },
  ];
  buildFields(form, fields);
  const { load } = pagedTable(panel, "driver", "/api/v1/drivers", 6, row);
  let editing = null;

  function row(d) {
    return el("tr", { dataset: { id: d.id }, className: d.active ? "" : "inactive" },
      el("td", { text: d.name }), el("td", { text: d.licence_class }),
      el("td", { text: d.licence_expires_on || "—" }), el("td", { text: unitName(d.unit_id) }),
      el("td", { text: d.phone || "—" }), el("td", { i18n: d.active ? "admin.yes" : "admin.no" }),
      el("td", { className: "actions" }, button("admin.edit", () => edit(d)), button("admin.delete", () => remove(d))));
  }

  function edit(d) {
    editing = d;
    heading.dataset.i18n = d ? "admin.drivers.edit" : "admin.drivers.new";
    heading.textContent = t(heading.dataset.i18n);
    writeFields(form, fields, d || { active: true, licence_class: "C1" });
    if (d) form.elements.name.focus();
  }

  async function remove(d) {
    if (!window.confirm(`${t("admin.confirm_delete")} ${d.name}`)) return;
    try {
      await api(`/api/v1/drivers/${d.id}`, { method: "DELETE" });
      notify(`${t("admin.deleted")}: ${d.name}`, "ok");
      if (editing?.id === d.id) edit(null);
    } catch (error) {
      notify(error.message, "error");
    }
    await load();
  }

  panel.querySelector("#driver-new").addEventListener("click", () => { edit(null); form.elements.name.focus(); });
  form.querySelector(".cancel").addEventListener("click", () => edit(null));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const values = readFields(form, fields);
    const saved = await submitting(form, () => (editing
      ? api(`/api/v1/drivers/${editing.id}`, { method: "PATCH", body: changedBody(values, editing) })
      : api("/api/v1/drivers", { method: "POST", body: createBody(values) })));
    if (!saved) return;
    notify(`${t("admin.saved")}: ${saved.name}`, "ok");
    edit(null);
    await load();
  });
  window.addEventListener("fleet:units", () => fillOptions(form, fields[3]));
  edit(null);
  // Filtered here, as in the user list above.
  fetchAll("/api/v1/users?active=true").then((items) => {
    accounts = items.filter((u) => u.roles.includes("driver"));
    fillOptions(form, fields[5]);
  });
  load();
}

// ---- devices ---------------------------------------------------------------------------------

export function initDevices(panel) {
  const form = panel.querySelector("#device-form");
  let vehicles = [];
  const plates = new globalThis.Map();
  const fields = [
    { name: "protocol", key: "field.protocol", type: "select", options: VOCAB.protocol.map((p) => ({ value: p, text: PROTOCOLS[p] })) },
    { name: "identifier", key: "field.identifier", type: "text", attrs: { spellcheck: "false" } },
    { name: "vehicle_id", key: "field.vehicle", type: "select", numeric: true, optional: true,
      optionalKey: "admin.devices.no_vehicle", options: () => vehicles.map((v) => ({ value: v.id, text: v.plate })) },
    { name: "enabled", key: "admin.enabled", type: "checkbox" },
  ];
  buildFields(form, fields);
  const { load } = pagedTable(panel, "device", "/api/v1/devices", 6, row);
  const unknown = panel.querySelector("#unknown-rows");
  const tokenBox = panel.querySelector("#device-token");
  let unknownItems = [];

  function row(d) {
    return el("tr", { dataset: { id: d.id }, className: d.enabled ? "" : "inactive" },
      el("td", { text: PROTOCOLS[d.protocol] || d.protocol }), el("td", { className: "mono", text: d.identifier }),
      el("td", d.vehicle_id ? { text: plates.get(d.vehicle_id) || `#${d.vehicle_id}` } : { i18n: "admin.devices.no_vehicle" }),
      el("td", { text: unitName(d.unit_id) }), el("td", { i18n: d.enabled ? "admin.enabled" : "admin.disabled" }),
      el("td", { className: "actions" },
        button(d.enabled ? "admin.disable" : "admin.enable", () => change(d, { enabled: !d.enabled })),
        d.protocol === "api" ? button("admin.devices.rotate", () => rotate(d)) : null,
        button("admin.delete", () => remove(d))));
  }

  const unknownTurn = turns();

  async function loadUnknown() {
    const current = unknownTurn();
    let page;
    try {
      page = await api("/api/v1/unknown-devices?limit=100");
    } catch (error) {
      // The gateways' list is the installation's: for administrators of a root unit only.
      if (error.status !== 403) throw error;
      unknown.closest("section").hidden = true;
      return;
    }
    if (!current()) return;
    unknownItems = page.items;
    renderUnknown();
  }

  function renderUnknown() {
    unknown.replaceChildren(...(unknownItems.length ? unknownItems.map((d) => el("tr", { dataset: { identifier: d.identifier } },
      el("td", { text: PROTOCOLS[d.protocol] || d.protocol }), el("td", { className: "mono", text: d.identifier }),
      el("td", { text: when(d.first_seen_at, config.zone) }), el("td", { text: when(d.last_seen_at, config.zone) }),
      el("td", { className: "num", text: d.attempts }), el("td", { className: "mono", text: d.remote_addr || "—" }),
      el("td", { className: "message", text: d.last_message || "—" }),
      el("td", { className: "actions" }, button("admin.devices.register", () => register(d), "register"))))
      : [emptyRow(8)]));
  }

  // Pre-fills the form; the administrator still picks the vehicle and saves.
  function register(d) {
    writeFields(form, fields, { protocol: d.protocol, identifier: d.identifier, enabled: true });
    form.elements.vehicle_id.focus();
  }

  function showToken(device) {
    tokenBox.hidden = !device.token;
    tokenBox.querySelector("output").textContent = device.token || "";
  }

  async function change(d, patch) {
    try {
      await api(`/api/v1/devices/${d.id}`, { method: "PATCH", body: patch });
      notify(`${t("admin.saved")}: ${d.identifier}`, "ok");
    } catch (error) {
      notify(error.message, "error");
    }
    await load();
  }

  async function rotate(d) {
    try {
      showToken(await api(`/api/v1/devices/${d.id}/token`, { method: "POST" }));
    } catch (error) {
      notify(error.message, "error");
    }
  }

  async function remove(d) {
    if (!window.confirm(`${t("admin.confirm_delete")} ${d.identifier}`)) return;
    try {
      await api(`/api/v1/devices/${d.id}`, { method: "DELETE" });
      notify(`${t("admin.deleted")}: ${d.identifier}`, "ok");
    } catch (error) {
      notify(error.message, "error");
    }
    await load();
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const device = await submitting(form, () => api("/api/v1/devices", {
      method: "POST", body: createBody(readFields(form, fields)) }));
    if (!device) return;
    notify(`${t("admin.saved")}: ${device.identifier}`, "ok");
    showToken(device);
    writeFields(form, fields, { protocol: device.protocol, enabled: true });
    await Promise.all([load(), loadUnknown()]);
  });
  window.addEventListener("fleet:lang", renderUnknown);
  writeFields(form, fields, { enabled: true });
  fetchAll("/api/v1/vehicles").then((items) => {
    vehicles = items;
    for (const v of items) plates.set(v.id, v.plate);
    fillOptions(form, fields[2]);
    load();
  });
  loadUnknown();
}

