// The administrator's pages: one tab per part of the registry and the settings. A tab is built
// the first time it is opened, so the page starts with one request per visible list.
import { t } from "./i18n.js";
import { notify, start } from "./shell.js";
import { loadUnits } from "./admin-common.js";
import { initDevices, initDrivers, initUnits, initUsers, initVehicles } from "./admin-registry.js";
import { initFences } from "./admin-fences.js";
import { initCalendar, initHours, initRules } from "./admin-settings.js";
import { initEquipping } from "./equipping.js";

const INIT = {
  units: initUnits,
  users: initUsers,
  vehicles: initVehicles,
  drivers: initDrivers,
  devices: initDevices,
  fences: initFences,
  rules: initRules,
  calendar: initCalendar,
  hours: initHours,
  equipping: initEquipping,
};

// For the tests: which tabs are built, and the fence map once it exists.
window.fleetAdmin = { ready: false, opened: [], map: null, fencesReady: false };

const tabs = [...document.querySelectorAll("#admin-tabs [role=tab]")];

function panelOf(tab) {
  return document.getElementById(tab.getAttribute("aria-controls"));
}

async function select(name, { focus = false } = {}) {
  const chosen = tabs.find((tab) => tab.dataset.tab === name) || tabs[0];
  for (const tab of tabs) {
    const on = tab === chosen;
    tab.setAttribute("aria-selected", String(on));
    tab.tabIndex = on ? 0 : -1;
    panelOf(tab).hidden = !on;
  }
  if (focus) chosen.focus();
  history.replaceState(null, "", `#${chosen.dataset.tab}`);
  const opened = window.fleetAdmin.opened;
  if (!opened.includes(chosen.dataset.tab)) {
    opened.push(chosen.dataset.tab);
    await INIT[chosen.dataset.tab](panelOf(chosen));
  }
}

// Arrow keys move between tabs, as the WAI-ARIA tabs pattern has it; Tab goes into the panel.
document.getElementById("admin-tabs").addEventListener("keydown", (event) => {
  const index = tabs.indexOf(document.activeElement);
  if (index < 0) return;
  const next = { ArrowRight: index + 1, ArrowLeft: index - 1, Home: 0, End: tabs.length - 1 }[event.key];
  if (next === undefined) return;
  event.preventDefault();
  select(tabs[(next + tabs.length) % tabs.length].dataset.tab, { focus: true });
});
for (const tab of tabs) tab.addEventListener("click", () => select(tab.dataset.tab));
// The banner's link (/admin#calendar) opens its tab on this page too.
window.addEventListener("hashchange", () => {
  if (window.fleetAdmin.ready) select(location.hash.slice(1));
});

const me = await start();
if (me) {
  if (!me.roles.includes("admin")) {
    notify(t("admin.not_admin"), "error");
    document.getElementById("admin-main").hidden = true;
    document.getElementById("admin-denied").hidden = false;
  } else {
    await loadUnits();
    await select(location.hash.slice(1));
    window.fleetAdmin.ready = true;
  }
}
