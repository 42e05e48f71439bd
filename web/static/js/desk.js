// The dispatcher's desk: every vehicle in scope live on the map, the orders waiting for a
// vehicle with ranked suggestions, assignment by a click, live alert notices.
import { api, ApiError, token } from "./api.js";
import { apply, t, when } from "./i18n.js";
import { config, notify, start } from "./shell.js";
import { parseWall } from "./zone.js";

const OFFLINE_MS = 10 * 60 * 1000;
const ALERT_HOLD_MS = 30 * 60 * 1000;
const COLOURS = { free: "#2e7d32", trip: "#1565c0", alert: "#c62828", offline: "#9e9e9e" };

const vehicles = new globalThis.Map(); // id -> {plate, status, position, onTrip, alertUntil}
const features = new globalThis.Map(); // id -> GeoJSON feature
const dirty = new Set();
let frame = 0;
// For bench/web.py and the tests: how long the last batch of positions took to apply.
// lastApplyMs: main-thread time to apply a batch; lastDrawMs: from then until the map has drawn it;
// lastWaitMs: how long its oldest position waited for it (the coalescing, and the update before).
window.fleetDesk = { applied: 0, drawn: 0, lastApplyMs: 0, lastDrawMs: 0, lastWaitMs: 0, ready: false,
  feature: (id) => features.get(id) };
let drawPending = 0;

function state(v, now) {
  if (v.alertUntil && v.alertUntil > now) return "alert";
  if (!v.position || now - v.position.fix_ms > OFFLINE_MS) return "offline";
  return v.onTrip ? "trip" : "free";
}

// What the map's layers use and nothing more (every property is copied to the map's worker and
// into each of its tiles): the id for a click, the plate for the label, the state for the colour.
function feature(id, v, now) {
  const p = v.position;
  return {
    type: "Feature",
    id,
    geometry: { type: "Point", coordinates: shift(p.lon, p.lat) },
    properties: { id, plate: v.plate, state: state(v, now) },
  };
}

// Whether the map shows `b` as it shows `a`: same place, plate and state.
function same(a, b) {
  const [x, y] = a.geometry.coordinates;
  const [u, w] = b.geometry.coordinates;
  return x === u && y === w && a.properties.state === b.properties.state && a.properties.plate === b.properties.plate;
}

let shift = (lon, lat) => [lon, lat];
let map = null;

// The map's GeoJSON worker re-tiles every vehicle on each update (sending it only the vehicles
// that changed, GeoJSONSource.updateData, measured no faster with every car moving and grew the
// page's heap), so an update goes only when some vehicle's place, plate or state changed. One
// update is in flight at a time: changes arriving meanwhile wait and go together once the map has
// drawn the last one, so a province's 30,000 cars never queue updates the worker cannot finish
// (the time on screen would grow without end). At most one update a second (the trackers' own
// rate); should the map not report a drawing within STALL_MS, the next update goes anyway.
const MIN_UPDATE_MS = 1000;
const STALL_MS = 5000;
let lastUpdate = -Infinity;
let timer = 0;
let waitingSince = 0; // when the oldest change not yet handed to the map arrived

function schedule(ids) {
  for (const id of ids) {
    dirty.add(id);
    if (!waitingSince) waitingSince = performance.now();
  }
  if (frame || timer || !dirty.size) return;
  const now = performance.now();
  const stalled = drawPending ? drawPending + STALL_MS - now : 0;
  if (stalled > 0) {
    timer = setTimeout(() => { timer = 0; schedule([]); }, stalled);
    return;
  }
  const wait = lastUpdate + MIN_UPDATE_MS - now;
  if (wait <= 0) frame = requestAnimationFrame(flush);
  else timer = setTimeout(() => { timer = 0; frame = requestAnimationFrame(flush); }, wait);
}

function flush() {
  frame = 0;
  const began = performance.now();
  lastUpdate = began;
  const now = Date.now();
  let changed = 0;
  for (const id of dirty) {
    const v = vehicles.get(id);
    if (!v || !v.position || v.position.lat == null) continue;
    const next = feature(id, v, now);
    const shown = features.get(id);
    if (shown && same(shown, next)) continue;
    features.set(id, next);
    changed += 1;
  }
  dirty.clear();
  const source = map && map.getSource("vehicles");
  if (source && changed) {
    source.setData({ type: "FeatureCollection", features: [...features.values()] });
    drawPending = began;
    window.fleetDesk.lastWaitMs = waitingSince ? began - waitingSince : 0;
  }
  waitingSince = 0;
  window.fleetDesk.lastApplyMs = performance.now() - began;
  window.fleetDesk.applied += 1;
  let online = 0;
  for (const v of vehicles.values()) if (v.position && now - v.position.fix_ms <= OFFLINE_MS) online += 1;
  document.getElementById("vehicle-count").textContent = vehicles.size;
  document.getElementById("online-count").textContent = online;
}

function addVehicleLayers() {
  // The vehicles drawn before the map was ready. No tile buffer: a point is drawn by the one tile
  // it lies in (MapLibre skips circles and point labels outside their tile), so the copies a
  // buffer puts into the neighbouring tiles would only be tiled and skipped.
  map.addSource("vehicles", { type: "geojson", buffer: 0,
    data: { type: "FeatureCollection", features: [...features.values()] } });
  map.addLayer({ id: "vehicles", type: "circle", source: "vehicles",
    paint: { "circle-radius": ["interpolate", ["linear"], ["zoom"], 8, 3, 14, 7],
      "circle-color": ["match", ["get", "state"], "free", COLOURS.free, "trip", COLOURS.trip,
        "alert", COLOURS.alert, COLOURS.offline],
      "circle-stroke-color": "#fff", "circle-stroke-width": 1.5 } });
  map.addLayer({ id: "vehicle-labels", type: "symbol", source: "vehicles", minzoom: 12,
    layout: { "text-field": ["get", "plate"], "text-size": 11, "text-offset": [0, 1.1],
      "text-anchor": "top", "text-font": ["Droid Sans Fallback", "sans-serif"] },
    paint: { "text-color": "#263238", "text-halo-color": "#fff", "text-halo-width": 1.5 } });
  map.on("render", () => {
    if (drawPending && map.isSourceLoaded("vehicles")) {
      window.fleetDesk.lastDrawMs = performance.now() - drawPending;
      window.fleetDesk.drawn += 1;
      drawPending = 0;
      if (timer) { clearTimeout(timer); timer = 0; }
      schedule([]); // what arrived while this update was drawn
    }
  });
  map.on("click", "vehicles", (event) => showVehicle(event.features[0].properties.id));
  map.on("mouseenter", "vehicles", () => { map.getCanvas().style.cursor = "pointer"; });
  map.on("mouseleave", "vehicles", () => { map.getCanvas().style.cursor = ""; });
}

function showVehicle(id) {
  const v = vehicles.get(id);
  if (!v) return;
  shownVehicle = id;
  const now = new Date();
  document.getElementById("playback-from").value = localInput(new Date(now - 2 * 3600 * 1000));
  document.getElementById("playback-to").value = localInput(now);
  const card = document.getElementById("vehicle-card");
  const facts = document.getElementById("vehicle-facts");
  const rows = [
    ["fact.plate", v.plate],
    ["fact.status", t(`state.${state(v, Date.now())}`)],
    ["fact.speed", v.position?.speed_kmh != null ? `${Math.round(v.position.speed_kmh)} km/h` : "—"],
    ["fact.last_fix", when(v.position?.fix_time, config.zone)],
    ["fact.order", v.order ? `#${v.order.id} ${v.order.purpose}` : "—"],
  ];
  facts.replaceChildren(...rows.flatMap(([key, value]) => {
    const dt = document.createElement("dt");
    dt.dataset.i18n = key;
    dt.textContent = t(key);
    const dd = document.createElement("dd");
    dd.textContent = value;
    return [dt, dd];
  }));
  card.hidden = false;
}

async function loadVehicles() {
  const { items } = await api("/api/v1/live");
  for (const item of items) {
    vehicles.set(item.vehicle_id, { plate: item.plate, status: item.status, position: item.position });
  }
  schedule(vehicles.keys());
}

function onPositions(items) {
  for (const p of items) {
    const v = vehicles.get(p.vehicle_id);
    if (!v) continue;
    if (!v.position || p.fix_ms >= v.position.fix_ms) v.position = p;
  }
  schedule(items.map((p) => p.vehicle_id));
}

// One line per alert episode, updated in place as the episode goes on.
const alertRows = new globalThis.Map();

function onAlerts(items) {
  const list = document.getElementById("alerts");
  for (const a of items) {
    const v = vehicles.get(a.vehicle_id);
    if (v && !a.ended_t) v.alertUntil = Date.now() + ALERT_HOLD_MS;
    const episode = `${a.vehicle_id}|${a.kind}|${a.key}|${a.started_t}`;
    let li = alertRows.get(episode);
    if (!li) {
      li = document.createElement("li");
      alertRows.set(episode, li);
    }
    li.className = `alert ${a.severity}`;
    li.textContent = `${v ? v.plate : a.vehicle_id} · ${t(`kind.${a.kind}`, a.kind)}`;
    list.prepend(li);
    while (list.children.length > 50) {
      const last = list.lastChild;
      for (const [key, row] of alertRows) if (row === last) alertRows.delete(key);
      last.remove();
    }
  }
  schedule(items.map((a) => a.vehicle_id));
  if (items.length) notify(`${t("desk.alerts")}: ${items.length}`, "warn");
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${location.host}/ws/live?token=${encodeURIComponent(token())}`);
  socket.addEventListener("message", (event) => {
    const message = JSON.parse(event.data);
    if (message.type === "snapshot" || message.type === "positions") onPositions(message.items);
    else if (message.type === "alerts") onAlerts(message.items);
    else if (message.type === "orders") loadOrders();
  });
  socket.addEventListener("close", () => setTimeout(connect, 3000));
}

// ---- orders and assignment ----------------------------------------------------------------

async function loadOrders() {
  const [waiting, running] = await Promise.all([
    api("/api/v1/orders?status=approved&limit=100"),
    Promise.all(["assigned", "in_progress"].map((s) => api(`/api/v1/orders?status=${s}&limit=500`))),
  ]);
  for (const v of vehicles.values()) { v.onTrip = false; v.order = null; }
  const now = Date.now();
  for (const order of running.flatMap((page) => page.items)) {
    const held = order.assignment;
    const v = held && vehicles.get(held.vehicle_id);
    if (v && new Date(held.from).getTime() <= now && now < new Date(held.to).getTime()) {
      v.onTrip = true;
      v.order = order;
    }
  }
  schedule(vehicles.keys());
  const list = document.getElementById("orders");
  list.replaceChildren(...waiting.items.map((order) => {
    const li = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.className = "order";
    button.dataset.order = order.id;
    const place = order.destinations.map((d) => d.name).join("、");
    button.textContent = `#${order.id} ${order.purpose} · ${when(order.start_at, config.zone)} · ${order.passengers} ${t("desk.passengers")} · ${place}`;
    button.addEventListener("click", () => suggest(order));
    li.append(button);
    return li;
  }));
  document.getElementById("orders-empty").hidden = waiting.items.length > 0;
}

// A driver as offered: name and licence class, and a flag when the licence has expired, expires
// within 30 days, or has no expiry on record (the API judges it on the server's clock).
function licenceNote(d) {
  if (d.licence_state === "valid") return "";
  const days = d.licence_days_left;
  return t(`desk.licence_${d.licence_state}`)
    .replace("{date}", d.licence_expires_on ?? "")
    .replace("{days}", days == null ? "" : Math.abs(days));
}

function driverOption(d) {
  const note = licenceNote(d);
  const option = new Option(`${d.name} · ${d.licence_class}${note ? ` ⚠ ${note}` : ""}`, d.id);
  option.dataset.licence = d.licence_state;
  return option;
}

function showLicence(select, drivers) {
  const flag = document.getElementById("driver-licence");
  const chosen = drivers.find((d) => String(d.id) === select.value);
  const note = chosen ? licenceNote(chosen) : "";
  flag.textContent = note ? `⚠ ${t("desk.licence")}: ${note}` : "";
  flag.dataset.licence = chosen?.licence_state ?? "";
  flag.hidden = !note;
}

async function suggest(order) {
  const answer = await api(`/api/v1/orders/${order.id}/suggestions`);
  const pane = document.getElementById("suggest");
  pane.hidden = false;
  document.getElementById("suggest-order").textContent = `#${order.id} ${order.purpose}`;
  const drivers = document.getElementById("driver");
  drivers.replaceChildren(...answer.drivers.map(driverOption));
  showLicence(drivers, answer.drivers);
  drivers.onchange = () => showLicence(drivers, answer.drivers);
  showMerges(order, answer, drivers);
  const list = document.getElementById("candidates");
  if (!answer.candidates.length) {
    const li = document.createElement("li");
    li.textContent = t("desk.no_candidates");
    list.replaceChildren(li);
    return;
  }
  list.replaceChildren(...answer.candidates.slice(0, 10).map((c, rank) => {
    const li = document.createElement("li");
    li.className = "candidate";
    const why = Object.entries(c.parts).map(([k, v]) => `${t(`part.${k}`, k)} ${v}`).join(" · ");
    const head = document.createElement("div");
    head.innerHTML = "<b></b> <span class='muted'></span>";
    head.querySelector("b").textContent = c.plate;
    head.querySelector("span").textContent = why;
    li.append(head);
    let reason = null;
    if (rank > 0) {
      reason = document.createElement("input");
      reason.className = "reason";
      reason.placeholder = t("desk.reason_prompt");
      reason.dataset.i18nPlaceholder = "desk.reason_prompt";
      li.append(reason);
    }
    const go = document.createElement("button");
    go.type = "button";
    go.className = "primary assign";
    go.dataset.i18n = "desk.assign";
    go.textContent = t("desk.assign");
    go.addEventListener("click", () => assign(order, c, drivers.value, reason));
    li.append(go);
    return li;
  }));
  const plates = new Set(answer.candidates.slice(0, 10).map((c) => c.vehicle_id));
  const top = answer.candidates[0];
  const v = vehicles.get(top.vehicle_id);
  if (v?.position && map) map.flyTo({ center: shift(v.position.lon, v.position.lat), zoom: Math.max(map.getZoom(), 12) });
  return plates;
}

async function assign(order, candidate, driverId, reasonInput) {
  const body = { vehicle_id: candidate.vehicle_id, driver_id: Number(driverId) };
  if (reasonInput && reasonInput.value.trim()) body.reason = reasonInput.value.trim();
  try {
    await api(`/api/v1/orders/${order.id}/assign`, { method: "POST", body });
    notify(`${t("desk.assigned")}: #${order.id} → ${candidate.plate}`, "ok");
    document.getElementById("suggest").hidden = true;
    await loadOrders();
  } catch (error) {
    if (error instanceof ApiError) {
      notify(error.message, "error");
      if (reasonInput) reasonInput.focus();
    } else throw error;
  }
}

// ---- merged trips (合并用车) ----------------------------------------------------------------

// The orders `suggestions` says this one could share a car with: one already assigned with seats
// to spare (its car and driver take this one aboard), or one still waiting (the best suggested
// car seating both, with the chosen driver).
function showMerges(order, answer, drivers) {
  const pane = document.getElementById("merge-pane");
  pane.hidden = !answer.merge.length;
  document.getElementById("merges").replaceChildren(...answer.merge.map((m) => {
    const li = document.createElement("li");
    li.className = "candidate merge";
    li.dataset.order = m.order_id;
    const head = document.createElement("div");
    head.innerHTML = "<b></b> <span class='muted'></span>";
    head.querySelector("b").textContent = `${t("desk.merge_with")} #${m.order_id}`;
    const room = m.spare_seats != null
      ? `${t("desk.spare_seats")} ${m.spare_seats}`
      : `${t("desk.together")} ${m.together} ${t("desk.passengers")}`;
    head.querySelector("span").textContent = `${room} · ${t("desk.apart_km")} ${m.apart_km}`;
    li.append(head);
    const go = document.createElement("button");
    go.type = "button";
    go.className = "primary merge";
    go.dataset.i18n = "desk.merge";
    go.textContent = t("desk.merge");
    go.addEventListener("click", () => mergeWith(order, m, answer, drivers.value));
    li.append(go);
    return li;
  }));
}

async function mergeWith(order, option, answer, driverId) {
  try {
    const other = await api(`/api/v1/orders/${option.order_id}`);
    const held = other.assignment;
    const fits = answer.candidates.find((c) => c.seats >= (option.together ?? 0));
    const body = {
      order_ids: [order.id, ...(held ? held.order_ids : [other.id])],
      vehicle_id: held ? held.vehicle_id : fits?.vehicle_id,
      driver_id: held ? held.driver_id : Number(driverId),
    };
    if (!body.vehicle_id) {
      notify(t("desk.no_candidates"), "error");
      return;
    }
    const trip = await api("/api/v1/dispatch/merge", { method: "POST", body });
    const ids = trip.items.map((o) => `#${o.id}`).join(" + ");
    notify(`${t("desk.merged")}: ${ids}`, "ok");
    document.getElementById("suggest").hidden = true;
    await loadOrders();
  } catch (error) {
    if (error instanceof ApiError) notify(error.message, "error");
    else throw error;
  }
}

// ---- the optimal plan ------------------------------------------------------------------------

async function makePlan() {
  const plan = await api("/api/v1/dispatch/plan", { method: "POST" });
  document.getElementById("plan-summary").textContent = t("desk.plan_summary")
    .replace("{total}", plan.total_cost).replace("{greedy}", plan.greedy_total_cost)
    .replace("{unserved}", plan.unserved.length);
  const list = document.getElementById("plan");
  list.replaceChildren(...plan.pairs.map((pair) => {
    const li = document.createElement("li");
    li.className = "candidate plan-pair";
    li.textContent = `#${pair.order_id} → ${pair.plate} (${pair.cost})`;
    const go = document.createElement("button");
    go.type = "button";
    go.className = "primary";
    go.dataset.i18n = "desk.accept";
    go.textContent = t("desk.accept");
    go.disabled = pair.driver_id == null;
    go.addEventListener("click", async () => {
      try {
        await api(`/api/v1/orders/${pair.order_id}/assign`, { method: "POST",
          body: { vehicle_id: pair.vehicle_id, driver_id: pair.driver_id, reason: t("desk.plan_reason") } });
        notify(`${t("desk.assigned")}: #${pair.order_id} → ${pair.plate}`, "ok");
        li.remove();
        await loadOrders();
      } catch (error) {
        if (error instanceof ApiError) notify(error.message, "error"); else throw error;
      }
    });
    li.append(" ", go);
    return li;
  }));
}

// ---- track playback -----------------------------------------------------------------------

let shownVehicle = null;
let track = [];

function localInput(date) {
  // datetime-local wants the wall time of the display zone, without an offset.
  const parts = new Intl.DateTimeFormat("sv-SE", { timeZone: config.zone, year: "numeric",
    month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", hour12: false })
    .format(date);
  return parts.replace(" ", "T");
}

function zoned(value) {
  // The wall time typed in the display zone, as an instant.
  return new Date(parseWall(value, config.zone));
}

function drawTrack(points) {
  const line = { type: "Feature", geometry: { type: "LineString",
    coordinates: points.map((p) => shift(p.lon, p.lat)) }, properties: {} };
  const data = { type: "FeatureCollection", features: points.length > 1 ? [line] : [] };
  if (map.getSource("track")) map.getSource("track").setData(data);
  else {
    map.addSource("track", { type: "geojson", data });
    map.addLayer({ id: "track", type: "line", source: "track",
      paint: { "line-color": "#6a1b9a", "line-width": 3 } }, "vehicles");
    map.addSource("track-head", { type: "geojson", data: { type: "FeatureCollection", features: [] } });
    map.addLayer({ id: "track-head", type: "circle", source: "track-head",
      paint: { "circle-radius": 7, "circle-color": "#6a1b9a", "circle-stroke-color": "#fff",
        "circle-stroke-width": 2 } });
  }
}

function moveHead(index) {
  const p = track[index];
  if (!p) return;
  map.getSource("track-head").setData({ type: "FeatureCollection", features: [{ type: "Feature",
    geometry: { type: "Point", coordinates: shift(p.lon, p.lat) }, properties: {} }] });
  document.getElementById("playback-time").textContent =
    `${when(p.fix_time, config.zone)} · ${p.speed_kmh != null ? Math.round(p.speed_kmh) : "—"} km/h`;
}

async function playback(event) {
  event.preventDefault();
  if (shownVehicle == null) return;
  const start = zoned(document.getElementById("playback-from").value).toISOString();
  const end = zoned(document.getElementById("playback-to").value).toISOString();
  const answer = await api(`/api/v1/vehicles/${shownVehicle}/positions?start=${encodeURIComponent(start)}&end=${encodeURIComponent(end)}&simplify_m=5`);
  track = answer.features.filter((f) => f.geometry).map((f) => ({
    lon: f.geometry.coordinates[0], lat: f.geometry.coordinates[1],
    fix_time: f.properties.fix_time, speed_kmh: f.properties.speed_kmh }));
  drawTrack(track);
  const slider = document.getElementById("playback-slider");
  slider.max = Math.max(0, track.length - 1);
  slider.value = 0;
  slider.disabled = track.length === 0;
  if (!track.length) {
    notify(t("desk.no_track"), "warn");
    return;
  }
  moveHead(0);
  const lons = track.map((p) => shift(p.lon, p.lat)[0]);
  const lats = track.map((p) => shift(p.lon, p.lat)[1]);
  map.fitBounds([[Math.min(...lons), Math.min(...lats)], [Math.max(...lons), Math.max(...lats)]],
    { padding: 60, maxZoom: 16 });
}

// ---- start ----------------------------------------------------------------------------------

// What the map opens on when no centre is configured: the cars where they were last heard, from
// the positions just loaded; when none has been heard, their depots (the server's extent).
async function fleetBox(extent, boxAround) {
  if (!config.fit) return null;
  const heard = [...vehicles.values()]
    .filter((v) => v.status !== "disposed" && v.position && v.position.lat != null && v.position.lon != null)
    .map((v) => [v.position.lon, v.position.lat]);
  return heard.length ? boxAround(heard) : extent(config, "fleet");
}

// Controls answer from the first paint, even while the data is still loading.
document.getElementById("plan-button").addEventListener("click", makePlan);
document.getElementById("playback-form").addEventListener("submit", playback);
document.getElementById("playback-slider").addEventListener("input",
  (event) => moveHead(Number(event.target.value)));

const me = await start();
if (me) {
  const { createMap, display, extent, boxAround } = await import("./map.js").catch(() => {
    notify(t("error.vendor"), "error");
    return {};
  });
  shift = display ? display(config) : shift;
  await loadVehicles();
  if (createMap) {
    map = createMap("map", config, { fit: await fleetBox(extent, boxAround) });
    window.fleetDesk.map = map;
    map.on("load", () => {
      addVehicleLayers();
      schedule(vehicles.keys());
      window.fleetDesk.ready = true;
    });
  }
  await loadOrders();
  connect();
  window.fleetDesk.showVehicle = showVehicle;
  window.addEventListener("fleet:lang", () => apply());
}
