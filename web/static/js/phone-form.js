// A new trip order in a few taps: the places come from a tap on the map or a saved place, the
// times are prefilled (tomorrow morning), the order is created and sent for approval at once.
import { api, ApiError } from "./api.js";
import { t } from "./i18n.js";
import { config, notify } from "./shell.js";
import { busy, clearError, el, messageOf, showError, zonedIso, zonedLocal } from "./phone-util.js";

const RECENT = "fleet.phone.places";
const RECENT_KEPT = 6;
// The places the unit's orders used and its depots (GET /api/v1/places), offered after the ones
// this phone used last.
let offered = [];
// The API's field (loc[1]) -> the slot its message is shown in.
const SLOTS = {
  purpose: "purpose", passengers: "passengers", start_at: "start", end_at: "end",
  origin: "origin", origin_name: "origin", destinations: "destination", notes: "notes",
};

const picks = { origin: null, destination: null }; // {lon, lat} in WGS-84
let target = "origin";
let map = null;
let toMap = (lon, lat) => [lon, lat];
let fromMap = (lon, lat) => [lon, lat];

const $ = (id) => document.getElementById(id);

function recent() {
  try {
    const stored = JSON.parse(localStorage.getItem(RECENT) || "[]");
    return Array.isArray(stored) ? stored.filter((p) => p && p.name && Number.isFinite(p.lon)) : [];
  } catch {
    return [];
  }
}

function remember(...places) {
  const kept = [...places, ...recent()];
  const seen = new Set();
  const unique = kept.filter((p) => !seen.has(p.name) && seen.add(p.name));
  localStorage.setItem(RECENT, JSON.stringify(unique.slice(0, RECENT_KEPT)));
  renderPlaces();
}

function renderPlaces() {
  const seen = new Set();
  const places = [...recent(), ...offered].filter((p) => !seen.has(p.name) && seen.add(p.name));
  $("places").replaceChildren(...places.map((place) => el("button", {
    type: "button", class: "chip", text: place.name, dataset: { place: place.name },
    onclick: () => choose(place.lon, place.lat, place.name, { fly: true }),
  })));
}

function setTarget(which) {
  target = which;
  for (const button of document.querySelectorAll("button.pick")) {
    button.setAttribute("aria-pressed", String(button.dataset.target === which));
  }
}

function mapPointName(lon, lat) {
  return `${t("phone.map_point")} ${lat.toFixed(4)}, ${lon.toFixed(4)}`;
}

// Sets the place being picked; after the start, the destination is next.
function choose(lon, lat, name, { fly = false } = {}) {
  const which = target;
  picks[which] = { lon, lat };
  const input = $(`${which}-name`);
  if (name) {
    input.value = name;
    delete input.dataset.auto;
  } else if (!input.value || input.dataset.auto) {
    input.value = mapPointName(lon, lat);
    input.dataset.auto = `${lon},${lat}`;
  }
  clearError($(`err-${which}`));
  drawPicks();
  if (fly && map) map.easeTo({ center: toMap(lon, lat) });
  if (which === "origin" && !picks.destination) setTarget("destination");
}

function drawPicks() {
  const source = map && map.getSource("picks");
  if (!source) return;
  source.setData({
    type: "FeatureCollection",
    features: Object.entries(picks).filter(([, p]) => p).map(([which, p]) => ({
      type: "Feature", properties: { which }, geometry: { type: "Point", coordinates: toMap(p.lon, p.lat) },
    })),
  });
}

async function makeMap() {
  const module = await import("./map.js").catch(() => null);
  if (!module) {
    notify(t("error.vendor"), "error");
    return null;
  }
  toMap = module.display(config);
  if (config.basemap.crs === "gcj02") fromMap = module.gcj02ToWgs84;
  // Opens on where the unit's cars start from, the likeliest origin (no centre configured).
  const made = module.createMap("pick-map", config, { fit: await module.extent(config, "depots") });
  made.on("load", () => {
    made.addSource("picks", { type: "geojson", data: { type: "FeatureCollection", features: [] } });
    made.addLayer({ id: "picks", type: "circle", source: "picks", paint: {
      "circle-radius": 8, "circle-stroke-width": 3, "circle-stroke-color": "#fff",
      "circle-color": ["match", ["get", "which"], "origin", "#2e7d32", "#c62828"] } });
    drawPicks();
    window.fleetPhone.mapReady = true;
  });
  made.on("click", (event) => {
    const [lon, lat] = fromMap(event.lngLat.lng, event.lngLat.lat);
    choose(Number(lon.toFixed(6)), Number(lat.toFixed(6)));
  });
  map = made;
  window.fleetPhone.map = made;
  return made;
}

// The map is made the first time its tab shows (a hidden container has no size), once even
// when the tab is shown again before the module has loaded.
let making = null;
export async function showMap() {
  const first = !making;
  making ??= makeMap();
  const made = await making;
  if (made && !first) made.resize();
}

function useCentre() {
  if (!map) return;
  const centre = map.getCenter();
  const [lon, lat] = fromMap(centre.lng, centre.lat);
  choose(Number(lon.toFixed(6)), Number(lat.toFixed(6)));
}

function clearErrors() {
  for (const slot of document.querySelectorAll("#order-form .field-error")) clearError(slot);
}

// Checks what the API cannot be asked without (places, times); the rest is the API's to judge.
function missing() {
  const form = $("order-form");
  const gaps = [];
  if (!form.purpose.value.trim()) gaps.push(["purpose", "need.purpose"]);
  if (!(Number(form.passengers.value) >= 1)) gaps.push(["passengers", "need.passengers"]);
  if (!form.start.value) gaps.push(["start", "need.start"]);
  if (!form.end.value) gaps.push(["end", "need.end"]);
  if (!picks.origin || !form["origin-name"].value.trim()) gaps.push(["origin", "need.origin"]);
  if (!picks.destination || !form["destination-name"].value.trim()) {
    gaps.push(["destination", "need.destination"]);
  }
  return gaps;
}

function showApiError(error) {
  const detail = error instanceof ApiError ? error.body?.detail : null;
  if (Array.isArray(detail)) {
    let first = null;
    for (const item of detail) {
      const field = Array.isArray(item.loc) ? item.loc.find((part) => SLOTS[part]) : null;
      const slot = $(`err-${field ? SLOTS[field] : "form"}`);
      const text = slot.hidden ? item.msg : `${slot.textContent}; ${item.msg}`;
      showError(slot, { text });
      first = first || slot;
    }
    first?.scrollIntoView({ block: "center" });
    return;
  }
  showError($("err-form"), { text: messageOf(error) });
}

async function send(onSent) {
  clearErrors();
  const gaps = missing();
  if (gaps.length) {
    for (const [slot, key] of gaps) showError($(`err-${slot}`), { key });
    $(`err-${gaps[0][0]}`).scrollIntoView({ block: "center" });
    return;
  }
  const form = $("order-form");
  const point = (p) => ({ type: "Point", coordinates: [p.lon, p.lat] });
  const body = {
    purpose: form.purpose.value.trim(),
    passengers: Number(form.passengers.value),
    start_at: zonedIso(form.start.value),
    end_at: zonedIso(form.end.value),
    origin: point(picks.origin),
    origin_name: form["origin-name"].value.trim(),
    destinations: [{ point: point(picks.destination), name: form["destination-name"].value.trim() }],
    out_of_region: form.out_of_region.checked,
    overnight: form.overnight.checked,
    emergency: form.emergency.checked,
    notes: form.notes.value.trim(),
  };
  let order;
  try {
    order = await api("/api/v1/orders", { method: "POST", body });
  } catch (error) {
    showApiError(error);
    return;
  }
  remember(
    { name: body.destinations[0].name, ...picks.destination },
    { name: body.origin_name, ...picks.origin },
  );
  try {
    order = await api(`/api/v1/orders/${order.id}/submit`, { method: "POST" });
  } catch (error) {
    // The draft stays in "my orders" with a button to send it again.
    notify(`${t("phone.draft_kept")}: ${messageOf(error)}`, "error");
    onSent(order);
    return;
  }
  notify(`${t("phone.submitted")} #${order.id}`, "ok");
  form.purpose.value = "";
  form.notes.value = "";
  onSent(order);
}

// Reads the places to offer; without them the map and the phone's own places still serve.
export async function loadPlaces() {
  try {
    const { items } = await api("/api/v1/places");
    offered = items.map((p) => ({ name: p.name, lon: p.point.coordinates[0], lat: p.point.coordinates[1] }));
  } catch (error) {
    notify(`${t("phone.places_failed")}: ${messageOf(error)}`, "error");
  }
  renderPlaces();
}

export function setUp({ onSent }) {
  const form = $("order-form");
  form.start.value = zonedLocal(1, 9);
  form.end.value = zonedLocal(1, 11);
  // Keep the window's length when the start moves, so one change is enough.
  let last = form.start.value;
  form.start.addEventListener("change", () => {
    if (form.start.value && form.end.value && last) {
      const moved = Date.parse(`${form.start.value}Z`) - Date.parse(`${last}Z`);
      form.end.value = new Date(Date.parse(`${form.end.value}Z`) + moved).toISOString().slice(0, 16);
    }
    last = form.start.value;
  });
  for (const button of document.querySelectorAll("button.pick")) {
    button.addEventListener("click", () => setTarget(button.dataset.target));
  }
  for (const which of ["origin", "destination"]) {
    $(`${which}-name`).addEventListener("input", (event) => { delete event.target.dataset.auto; });
  }
  $("use-centre").addEventListener("click", useCentre);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    busy($("send"), () => send(onSent));
  });
  renderPlaces();
  setTarget("origin");
  window.addEventListener("fleet:lang", () => {
    for (const which of ["origin", "destination"]) {
      const input = $(`${which}-name`);
      if (input.dataset.auto) {
        const [lon, lat] = input.dataset.auto.split(",").map(Number);
        input.value = mapPointName(lon, lat);
      }
    }
  });
}
