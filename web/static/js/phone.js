// The phone page: one page, a tab per job the user has (request a trip, follow my orders,
// approve, drive), kept current by the live channel.
import "./phone-labels.js";
import { api, token } from "./api.js";
import { start } from "./shell.js";
import { loadPlaces, setUp, showMap } from "./phone-form.js";
import { loadApprovals, loadMine, loadTrips, setContext } from "./phone-lists.js";
import { relabel } from "./phone-util.js";

// For the tests: when the page is ready, and the pick map.
window.fleetPhone = { ready: false, map: null, mapReady: false, live: false };

// Who may list vehicles and users (fleet/auth.py PERMISSIONS), to show plates and names.
const STAFF = ["admin", "dispatcher", "approver", "supervisor"];
// A driver's phone hears only of the driver's own requests on the live channel, so the trips
// are also re-read now and then.
const TRIPS_POLL_MS = 60_000;

const tabs = [...document.querySelectorAll("[role=tab]")];
const loaders = {};

function tabsFor(roles) {
  const shown = new Set();
  const onlyDriver = roles.length > 0 && roles.every((role) => role === "driver");
  if (!onlyDriver) shown.add("new").add("mine");
  if (roles.includes("approver") || roles.includes("admin")) shown.add("approvals");
  if (roles.includes("driver")) shown.add("trips");
  return shown;
}

function firstTab(roles, shown) {
  const asked = location.hash.slice(1);
  if (shown.has(asked)) return asked;
  if (roles.includes("driver") && shown.has("trips")) return "trips";
  if (roles.includes("approver") && shown.has("approvals")) return "approvals";
  return "new";
}

function select(name, { focus = false, load = true } = {}) {
  for (const tab of tabs) {
    const on = tab.dataset.tab === name;
    tab.setAttribute("aria-selected", String(on));
    tab.tabIndex = on ? 0 : -1;
    document.getElementById(tab.getAttribute("aria-controls")).hidden = !on;
    if (on && focus) tab.focus();
  }
  history.replaceState(null, "", `#${name}`);
  if (name === "new") showMap();
  else if (load) loaders[name]?.();
}

// Arrow keys move between tabs (the WAI-ARIA tabs pattern); Tab goes into the panel.
function onTabKey(event) {
  const visible = tabs.filter((tab) => !tab.hidden);
  const index = visible.indexOf(event.currentTarget);
  const moves = { ArrowRight: 1, ArrowLeft: -1, Home: -index, End: visible.length - 1 - index };
  if (!(event.key in moves)) return;
  event.preventDefault();
  const next = visible[(index + moves[event.key] + visible.length) % visible.length];
  select(next.dataset.tab, { focus: true });
}

let pending = 0;
function reloadSoon() {
  clearTimeout(pending);
  pending = setTimeout(() => {
    for (const load of Object.values(loaders)) load();
  }, 250);
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${location.host}/ws/live?token=${encodeURIComponent(token())}`);
  socket.addEventListener("open", () => { window.fleetPhone.live = true; });
  socket.addEventListener("message", (event) => {
    const message = JSON.parse(event.data);
    if (message.type === "orders") reloadSoon();
  });
  socket.addEventListener("close", (event) => {
    window.fleetPhone.live = false;
    // 4401/4403: the token is no good; the next API call sends the user to sign in.
    if (event.code === 4401 || event.code === 4403) return;
    setTimeout(() => { connect(); reloadSoon(); }, 3000);
  });
}

const me = await start();
if (me) {
  const roles = me.roles || [];
  const shown = tabsFor(roles);
  for (const tab of tabs) {
    tab.hidden = !shown.has(tab.dataset.tab);
    tab.addEventListener("click", () => select(tab.dataset.tab));
    tab.addEventListener("keydown", onTabKey);
  }
  let driverIds = new Set();
  if (shown.has("trips")) {
    const { items } = await api("/api/v1/drivers?limit=500");
    driverIds = new Set(items.filter((d) => d.user_id === me.id).map((d) => d.id));
  }
  setContext({
    readsVehicles: roles.some((r) => STAFF.includes(r) || r === "driver"),
    readsUsers: roles.some((r) => STAFF.includes(r)),
    driverIds,
  });
  if (shown.has("mine")) loaders.mine = () => loadMine();
  if (shown.has("approvals")) loaders.approvals = () => loadApprovals();
  if (shown.has("trips")) {
    loaders.trips = () => loadTrips();
    setInterval(() => { if (!document.hidden) loadTrips(); }, TRIPS_POLL_MS);
  }
  if (shown.has("new")) {
    setUp({
      onSent: async (order) => {
        select("mine", { load: false });
        await loadMine({ highlight: order.id });
      },
    });
    loaders.places = () => loadPlaces();
  }
  document.getElementById("mine-reload").addEventListener("click", () => loadMine());
  document.getElementById("approvals-reload").addEventListener("click", () => loadApprovals());
  document.getElementById("trips-reload").addEventListener("click", () => loadTrips());
  // A link to /phone#mine (or the notice of a new order) opens that tab.
  window.addEventListener("hashchange", () => {
    const asked = location.hash.slice(1);
    if (shown.has(asked)) select(asked);
  });
  document.addEventListener("visibilitychange", () => { if (!document.hidden) reloadSoon(); });
  // shell.js relabels the data-i18n labels; times and bilingual texts are the page's own.
  window.addEventListener("fleet:lang", () => relabel());
  await Promise.all(Object.values(loaders).map((load) => load()));
  select(firstTab(roles, shown), { load: false });
  connect();
  window.fleetPhone.ready = true;
}
