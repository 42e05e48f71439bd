// Chinese (default) and English for every label the pages show. A key missing from the table
// shows itself, so a forgotten label is visible rather than silently blank.
import common from "../labels/common.json" with { type: "json" };

const TABLE = { ...common };

// Pages add their own labels: extend({"key": ["中文", "English"]}).
// A page's own labels join the table. A key given twice with other texts is a mistake that would
// otherwise go silent (the later module wins): it is reported on the console, where the page tests
// fail on it, and the first texts are kept.
export function extend(entries) {
  for (const [key, texts] of Object.entries(entries)) {
    const known = TABLE[key];
    if (known && (known[0] !== texts[0] || known[1] !== texts[1])) {
      console.error(`i18n: ${key} is defined twice: ${JSON.stringify(known)} and ${JSON.stringify(texts)}`);
      continue;
    }
    TABLE[key] = texts;
  }
}

export function lang() {
  return localStorage.getItem("fleet.lang") === "en" ? "en" : "zh";
}

export function t(key, fallback) {
  const entry = TABLE[key];
  if (!entry) return fallback ?? key;
  return entry[lang() === "en" ? 1 : 0];
}

export function apply(root = document) {
  document.documentElement.lang = lang() === "en" ? "en" : "zh";
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-placeholder]")) {
    el.placeholder = t(el.dataset.i18nPlaceholder);
  }
  for (const el of root.querySelectorAll("[data-i18n-label]")) {
    el.setAttribute("aria-label", t(el.dataset.i18nLabel));
  }
  const title = document.querySelector("h1.title");
  if (title) document.title = `${title.textContent} · Fleet`;
}

export function setLang(value) {
  localStorage.setItem("fleet.lang", value);
  apply();
  window.dispatchEvent(new CustomEvent("fleet:lang", { detail: value }));
}

// Dates in the display zone the server is configured with (the browser's own zone otherwise).
export function when(iso, zone) {
  if (!iso) return "—";
  const options = { year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit",
    minute: "2-digit", hour12: false, timeZone: zone || undefined };
  return new Intl.DateTimeFormat(lang() === "en" ? "en-GB" : "zh-CN", options).format(new Date(iso));
}
