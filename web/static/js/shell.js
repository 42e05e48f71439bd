// What every page shares: the header (who, language, sign out), notices, the config, and on the
// staff pages the banner for a year the working calendar lacks.
import { api, logout, token } from "./api.js";
import { apply, lang, setLang, t } from "./i18n.js";

export const config = JSON.parse(document.getElementById("fleet-config").textContent);

export function notify(message, kind = "info") {
  const box = document.getElementById("notice");
  box.textContent = message;
  box.className = `notice ${kind}`;
  box.hidden = false;
  clearTimeout(notify.timer);
  notify.timer = setTimeout(() => { box.hidden = true; }, 6000);
}

// "{year} ..." with the values put in.
export function fill(template, values) {
  return template.replace(/\{(\w+)\}/g, (whole, name) => (name in values ? String(values[name]) : whole));
}

// The calendar's reach and its warnings (GET /api/v1/calendar/status), asked once per page load
// unless `fresh` (after a year is entered).
let calendarAsked = null;
export function calendarStatus({ fresh = false } = {}) {
  if (fresh || !calendarAsked) calendarAsked = api("/api/v1/calendar/status");
  return calendarAsked;
}

// One warning of the calendar status, in the page's language.
export function calendarWarningText(warning) {
  const key = warning.days_left > 0 ? "banner.calendar_soon" : "banner.calendar_now";
  return fill(t(key), { year: warning.year, missing: warning.missing_days,
    days: warning.days_left, date: warning.starts_on });
}

let bannerFor = null;

function paintBanner(status) {
  const box = document.getElementById("calendar-banner");
  box.replaceChildren();
  for (const warning of status.warnings) {
    box.append(Object.assign(document.createElement("span"), {
      className: "banner-text", textContent: calendarWarningText(warning) }));
  }
  if (status.warnings.length) {
    const admin = bannerFor?.roles.includes("admin");
    const action = document.createElement(admin ? "a" : "span");
    action.dataset.i18n = admin ? "banner.calendar_enter" : "banner.calendar_ask";
    action.textContent = t(action.dataset.i18n);
    if (admin) action.href = "/admin#calendar";
    box.append(action);
  }
  box.dataset.years = status.warnings.map((w) => w.year).join(" ");
  box.hidden = !status.warnings.length;
  // The full-height pages leave the banner its room.
  document.documentElement.style.setProperty("--banner-h", `${box.offsetHeight}px`);
}

// The banner on every staff page (the phone pages are the requesters' and the drivers', and the
// profile is everyone's).
export async function refreshCalendarBanner({ fresh = false } = {}) {
  if (!bannerFor || document.body.matches(".page-phone, .page-profile")) return;
  paintBanner(await calendarStatus({ fresh }));
}

function paintLangButton() {
  document.getElementById("lang").textContent = lang() === "en" ? "中文" : "EN";
}

export async function start({ needsLogin = true } = {}) {
  apply();
  paintLangButton();
  document.getElementById("lang").addEventListener("click", () => {
    setLang(lang() === "en" ? "zh" : "en");
    paintLangButton();
  });
  const out = document.getElementById("logout");
  out.addEventListener("click", () => logout());
  if (!needsLogin) return null;
  if (!token()) {
    location.assign("/login");
    return null;
  }
  const me = await api("/api/v1/me");
  const who = document.getElementById("who");
  who.textContent = me.full_name || me.username;
  who.hidden = false;  // a link to one's own settings (/profile)
  out.hidden = false;
  window.addEventListener("unhandledrejection", (event) => {
    notify(event.reason?.message || t("error.network"), "error");
  });
  bannerFor = me;
  refreshCalendarBanner();
  window.addEventListener("fleet:lang", () => refreshCalendarBanner());
  window.addEventListener("resize", () => {
    const box = document.getElementById("calendar-banner");
    document.documentElement.style.setProperty("--banner-h", `${box.hidden ? 0 : box.offsetHeight}px`);
  });
  return me;
}
