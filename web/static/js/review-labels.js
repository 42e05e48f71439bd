// The review page's labels (zh, en) and the formatting of the rule figures. Thresholds and
// measured values arrive as open JSON objects: keys the table knows get a label and a unit,
// the rest are shown as they come, so a new rule's figures are never hidden.
import labels from "../labels/review.json" with { type: "json" };
import { extend, lang, t } from "./i18n.js";

// Every kind the API accepts, in the order the filter lists them.
export const KINDS = [
  "no_order", "off_hours", "off_route", "region_exit", "prohibited_zone", "overnight_away",
  "overspeed", "signal_loss", "device_alarm", "fuel_over_capacity", "fuel_location_mismatch",
  "fuel_no_trip", "fuel_off_hours", "fuel_too_frequent", "fuel_consumption_high",
  "odometer_mismatch", "energy_consumption_high", "device_identity_mismatch",
  "sealed_vehicle_moving", "maintenance_vehicle_moving",
];

extend(labels);

export function label(key) {
  return t(`fig.${key}`, key);
}

export function known(key) {
  return t(`fig.${key}`, "") !== "";
}

function number(value, digits = 1) {
  const rounded = Math.round(value * 10 ** digits) / 10 ** digits;
  return rounded.toLocaleString(lang() === "en" ? "en-GB" : "zh-CN");
}

export function duration(seconds) {
  if (seconds == null || Number.isNaN(seconds)) return "—";
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const rest = s % 60;
  const parts = [];
  if (h) parts.push(`${h}${t("unit.h")}`);
  if (m) parts.push(`${m}${t("unit.min")}`);
  if (rest || !parts.length) parts.push(`${rest}${t("unit.s")}`);
  return parts.join(lang() === "en" ? " " : "");
}

// Seconds of the local day, as the night thresholds are kept.
function clockOfDay(seconds) {
  const h = Math.floor(seconds / 3600) % 24;
  const m = Math.floor((seconds % 3600) / 60);
  return `${String(h).padStart(2, "0")}:${String(m).padStart(2, "0")}`;
}

// A figure's value with the unit its key names (`_m`, `_s`, `_kmh`...).
export function figure(key, value) {
  if (value === null || value === undefined) return "—";
  if (typeof value === "boolean") return t(value ? "yes" : "no");
  if (Array.isArray(value)) {
    return value.length ? value.map((v) => t(`category.${v}`, String(v))).join("、") : t("review.none");
  }
  if (typeof value === "object") return JSON.stringify(value);
  if (typeof value !== "number") return String(value);
  if (key === "night_start_s" || key === "night_end_s") return clockOfDay(value);
  if (key.endsWith("_id") || key === "bit") return String(value);
  const units = [
    ["kwh_100km", " kWh/100km"], ["_l_100km", " L/100km"], ["_kmh", " km/h"], ["_km", " km"],
    ["_pct", " %"], ["_min", " min"], ["_m", " m"], ["_l", " L"], ["kwh", " kWh"],
  ];
  if (key.endsWith("_s")) return duration(value);
  const unit = units.find(([suffix]) => key.endsWith(suffix));
  return unit ? `${number(value)}${unit[1]}` : number(value, 2);
}
