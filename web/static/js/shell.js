// What every page shares: the header (who, language, sign out), notices, the config.
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
  document.getElementById("who").textContent = me.full_name || me.username;
  out.hidden = false;
  window.addEventListener("unhandledrejection", (event) => {
    notify(event.reason?.message || t("error.network"), "error");
  });
  return me;
}
