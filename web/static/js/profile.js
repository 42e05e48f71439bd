// One's own settings: how notifications reach one (channels, addresses, language), over the
// unit's defaults, and where they go now.
import { api, ApiError } from "./api.js";
import labels from "../labels/profile.json" with { type: "json" };
import { extend, t } from "./i18n.js";
import { notify, start } from "./shell.js";

extend(labels);

const form = document.getElementById("notify-form");
const error = document.getElementById("notify-error");
const effective = document.getElementById("effective");
const useUnit = document.getElementById("use-unit");
const boxes = [...form.querySelectorAll("input[name=channel]")];
const ADDRESSES = ["email", "wecom_url", "dingtalk_url"];
let shown = null;

function paintChannels() {
  for (const box of boxes) box.disabled = useUnit.checked;
}

function paintEffective() {
  effective.replaceChildren();
  if (!shown.effective.length) {
    effective.append(Object.assign(document.createElement("li"), {
      className: "muted", textContent: t("profile.none") }));
    return;
  }
  for (const target of shown.effective) {
    const item = document.createElement("li");
    item.dataset.channel = target.channel;
    const source = target.from_unit_id === null ? t("profile.own") : t("profile.from_unit");
    item.textContent = `${t(`profile.channel.${target.channel}`)}: ${target.address} (${source})`;
    effective.append(item);
  }
}

function paint(settings) {
  shown = settings;
  form.language.value = settings.language;
  useUnit.checked = settings.own.channels === null;
  for (const box of boxes) box.checked = (settings.own.channels || []).includes(box.value);
  for (const name of ADDRESSES) form[name].value = settings.own[name] || "";
  form.dingtalk_secret.value = "";
  paintChannels();
  paintEffective();
}

// Only what changed is sent: a robot URL shown masked is left as it is unless retyped.
function changes() {
  const body = {};
  if (form.language.value !== shown.language) body.language = form.language.value;
  const channels = useUnit.checked ? null : boxes.filter((b) => b.checked).map((b) => b.value);
  if (JSON.stringify(channels) !== JSON.stringify(shown.own.channels)) body.channels = channels;
  for (const name of ADDRESSES) {
    const value = form[name].value.trim();
    if (value !== (shown.own[name] || "")) body[name] = value || null;
  }
  if (form.dingtalk_secret.value) body.dingtalk_secret = form.dingtalk_secret.value;
  return body;
}

async function save(event) {
  event.preventDefault();
  error.hidden = true;
  try {
    paint(await api("/api/v1/me/notifications", { method: "PATCH", body: changes() }));
    notify(t("profile.saved"), "ok");
  } catch (failure) {
    if (!(failure instanceof ApiError)) throw failure;
    error.textContent = failure.message;
    error.hidden = false;
  }
}

await start();
useUnit.addEventListener("change", paintChannels);
form.addEventListener("submit", save);
window.addEventListener("fleet:lang", () => paintEffective());
paint(await api("/api/v1/me/notifications"));
window.fleetProfile = { ready: true };
