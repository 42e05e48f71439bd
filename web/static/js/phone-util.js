// Small pieces the phone modules share: DOM building, times in the display zone, API errors.
import { ApiError } from "./api.js";
import { lang, t } from "./i18n.js";
import { config } from "./shell.js";
import { zonedIso as zonedWallIso } from "./zone.js";
import { el } from "./dom.js";

export const zone = config.zone || Intl.DateTimeFormat().resolvedOptions().timeZone;

export { el };

// A label that apply() relabels when the language changes.
export function label(key, tag = "span", attrs = {}) {
  return el(tag, { ...attrs, dataset: { ...(attrs.dataset || {}), i18n: key }, text: t(key) });
}

// ---- times: datetime-local inputs hold wall-clock time in the display zone, not the browser's

function wallParts(ms) {
  const parts = new Intl.DateTimeFormat("en-US", {
    timeZone: zone, hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit",
  }).formatToParts(new Date(ms));
  const get = (type) => Number(parts.find((p) => p.type === type).value);
  return { year: get("year"), month: get("month"), day: get("day"), hour: get("hour"),
    minute: get("minute"), second: get("second") };
}

const pad = (n) => String(n).padStart(2, "0");

// "2026-11-24T09:00" read in the display zone -> "2026-11-24T09:00:00+08:00".
export function zonedIso(local) {
  return zonedWallIso(local, zone);
}

// The wall-clock date in the display zone `days` from now, at `hour`:00, for datetime-local.
export function zonedLocal(days, hour) {
  const w = wallParts(Date.now());
  const date = new Date(Date.UTC(w.year, w.month - 1, w.day + days));
  return `${date.getUTCFullYear()}-${pad(date.getUTCMonth() + 1)}-${pad(date.getUTCDate())}T${pad(hour)}:00`;
}

// A window in the display zone, the end's date left out when it is the start's.
export function span(startIso, endIso) {
  const locale = lang() === "en" ? "en-GB" : "zh-CN";
  const day = { month: "2-digit", day: "2-digit", timeZone: zone };
  const clock = { hour: "2-digit", minute: "2-digit", hour12: false, timeZone: zone };
  const start = new Date(startIso);
  const end = new Date(endIso);
  const dayOf = (d) => new Intl.DateTimeFormat(locale, day).format(d);
  const clockOf = (d) => new Intl.DateTimeFormat(locale, clock).format(d);
  const tail = dayOf(start) === dayOf(end) ? clockOf(end) : `${dayOf(end)} ${clockOf(end)}`;
  return `${dayOf(start)} ${clockOf(start)} – ${tail}`;
}

// A time span element that re-renders itself when the language changes (see relabel()).
export function spanEl(startIso, endIso) {
  return el("span", { class: "span", dataset: { start: startIso, end: endIso }, text: span(startIso, endIso) });
}

// Texts the server writes in both languages as "中文 / English" show the current one.
export function bilingual(text) {
  const halves = String(text).split(" / ");
  if (halves.length !== 2) return text;
  return lang() === "en" ? halves[1] : halves[0];
}

export function bilingualEl(text, tag = "span", attrs = {}) {
  return el(tag, { ...attrs, dataset: { bilingual: text }, text: bilingual(text) });
}

// What apply() cannot relabel: formatted times and bilingual server texts.
export function relabel(root = document) {
  for (const node of root.querySelectorAll("[data-start][data-end]")) {
    node.textContent = span(node.dataset.start, node.dataset.end);
  }
  for (const node of root.querySelectorAll("[data-bilingual]")) {
    node.textContent = bilingual(node.dataset.bilingual);
  }
}

// The message of an API error for a person: the field messages joined, or the detail.
export function messageOf(error) {
  if (error instanceof ApiError) return error.message;
  return t("error.network");
}

// Shows a message in an error slot; a key is relabelled on a language switch, API text is not.
export function showError(slot, { key, text }) {
  if (key) {
    slot.dataset.i18n = key;
    slot.textContent = t(key);
  } else {
    delete slot.dataset.i18n;
    slot.textContent = text;
  }
  slot.hidden = false;
}

export function clearError(slot) {
  delete slot.dataset.i18n;
  slot.textContent = "";
  slot.hidden = true;
}

// Runs an action with its button disabled, so a double tap does not send it twice.
export async function busy(button, action) {
  if (button.disabled) return undefined;
  button.disabled = true;
  try {
    return await action();
  } finally {
    button.disabled = false;
  }
}
