// One's own settings: how notifications reach one (channels, addresses, language), over the
// unit's defaults, where they go now, and the latest messages; for an administrator, also the
// defaults of the units in their scope and the messages to their people that could not be
// delivered, each to send again.
import { api, ApiError } from "./api.js";
import labels from "../labels/profile.json" with { type: "json" };
import { el } from "./dom.js";
import { extend, t, when } from "./i18n.js";
import { config, notify, start } from "./shell.js";

extend(labels);

const ADDRESSES = ["email", "wecom_url", "dingtalk_url"];

// A form of channels and addresses (a person's or a unit's): shows a setting, and tells what
// the person changed, so that a robot URL shown masked is left as it is unless retyped.
function settingForm(form) {
  const inherit = form.querySelector("input[name=inherit]");
  const boxes = [...form.querySelectorAll("input[name=channel]")];
  const error = form.querySelector("[data-error-for=__form]");
  let shown = null;
  const paintBoxes = () => { for (const box of boxes) box.disabled = inherit.checked; };
  inherit.addEventListener("change", paintBoxes);
  return {
    paint(setting) {
      shown = setting;
      inherit.checked = setting.channels === null;
      for (const box of boxes) box.checked = (setting.channels || []).includes(box.value);
      for (const name of ADDRESSES) form.elements[name].value = setting[name] || "";
      form.elements.dingtalk_secret.value = "";
      error.hidden = true;
      paintBoxes();
    },
    changes() {
      const body = {};
      const channels = inherit.checked ? null : boxes.filter((b) => b.checked).map((b) => b.value);
      if (JSON.stringify(channels) !== JSON.stringify(shown.channels)) body.channels = channels;
      for (const name of ADDRESSES) {
        const value = form.elements[name].value.trim();
        if (value !== (shown[name] || "")) body[name] = value || null;
      }
      if (form.elements.dingtalk_secret.value) body.dingtalk_secret = form.elements.dingtalk_secret.value;
      return body;
    },
    async save(path, body) {
      error.hidden = true;
      try {
        const answer = await api(path, { method: "PATCH", body });
        notify(t("profile.saved"), "ok");
        return answer;
      } catch (failure) {
        if (!(failure instanceof ApiError)) throw failure;
        error.textContent = failure.message;
        error.hidden = false;
        return null;
      }
    },
  };
}

// ---- one's own --------------------------------------------------------------------------------

const own = document.getElementById("notify-form");
const ownForm = settingForm(own);
const effective = document.getElementById("effective");
let mine = null;

function paintEffective() {
  effective.replaceChildren();
  if (!mine.effective.length) {
    effective.append(Object.assign(document.createElement("li"), {
      className: "muted", textContent: t("profile.none") }));
    return;
  }
  for (const target of mine.effective) {
    const item = document.createElement("li");
    item.dataset.channel = target.channel;
    const source = target.from_unit_id === null ? t("profile.own") : t("profile.from_unit");
    item.textContent = `${t(`profile.channel.${target.channel}`)}: ${target.address} (${source})`;
    effective.append(item);
  }
}

function paintMine(settings) {
  mine = settings;
  own.elements.language.value = settings.language;
  ownForm.paint(settings.own);
  paintEffective();
}

own.addEventListener("submit", async (event) => {
  event.preventDefault();
  const body = ownForm.changes();
  if (own.elements.language.value !== mine.language) body.language = own.elements.language.value;
  const answer = await ownForm.save("/api/v1/me/notifications", body);
  if (answer) paintMine(answer);
});

// ---- the latest messages, and (administrators) those not delivered ---------------------------

const LATEST = 10;
const messages = document.querySelector("#messages tbody");
const dead = document.querySelector("#dead tbody");
let latest = [];
let undelivered = null;

const emptyRow = (key, span) => el("tr", { class: "empty" }, el("td", { i18n: key, colspan: span }));
const channelCell = (n) => el("td", { text: t(`profile.channel.${n.channel}`), title: n.address });

function paintMessages() {
  messages.replaceChildren(...(latest.length ? latest.map((n) => el(
    "tr", { dataset: { id: n.id, state: n.state } },
    el("td", { text: n.subject }),
    channelCell(n),
    el("td", { text: t(`profile.state.${n.state}`), title: n.last_error || "" }),
    el("td", { text: when(n.sent_at || n.created_at, config.zone) }),
  )) : [emptyRow("profile.no_messages", 4)]));
}

async function loadMessages() {
  latest = (await api(`/api/v1/me/notifications/sent?limit=${LATEST}`)).items;
  paintMessages();
}

async function retry(id) {
  try {
    await api(`/api/v1/notifications/${id}/retry`, { method: "POST" });
    notify(t("profile.retried"), "ok");
  } catch (failure) {
    if (!(failure instanceof ApiError)) throw failure;
    notify(failure.message, "error");
  }
  await Promise.all([loadDead(), loadMessages()]);
}

function paintDead() {
  if (undelivered === null) return;
  dead.replaceChildren(...(undelivered.length ? undelivered.map((n) => el(
    "tr", { dataset: { id: n.id } },
    el("td", { text: n.subject }),
    el("td", { text: n.user.username }),
    channelCell(n),
    el("td", { text: n.last_error || "—" }),
    el("td", {}, el("button", { type: "button", i18n: "profile.retry", onclick: () => retry(n.id) })),
  )) : [emptyRow("profile.no_dead", 5)]));
}

async function loadDead() {
  undelivered = (await api(`/api/v1/notifications?state=dead&limit=${LATEST}`)).items;
  document.getElementById("dead-section").hidden = false;
  paintDead();
}

// ---- a unit's defaults (administrators) -------------------------------------------------------

const unitForm = document.getElementById("unit-form");
const unitSetting = settingForm(unitForm);
const unitSelect = unitForm.elements.unit;

async function loadUnit() {
  unitSetting.paint(await api(`/api/v1/units/${unitSelect.value}/notifications`));
}

async function showUnits(me) {
  const page = await api("/api/v1/units?limit=500");
  const depth = (unit) => unit.path.split("/").filter(Boolean).length - 1;
  unitSelect.replaceChildren(...page.items.map((unit) => Object.assign(
    document.createElement("option"),
    { value: String(unit.id), textContent: `${"\u3000".repeat(depth(unit))}${unit.name}` })));
  unitSelect.value = String(me.unit_id);
  unitForm.hidden = false;
  unitSelect.addEventListener("change", () => loadUnit());
  unitForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const path = `/api/v1/units/${unitSelect.value}/notifications`;
    const answer = await unitSetting.save(path, unitSetting.changes());
    if (answer) {
      unitSetting.paint(answer);
      paintMine(await api("/api/v1/me/notifications"));
    }
  });
  await loadUnit();
}

const me = await start();
window.addEventListener("fleet:lang", () => { paintEffective(); paintMessages(); paintDead(); });
paintMine(await api("/api/v1/me/notifications"));
await loadMessages();
if (me.roles.includes("admin")) await Promise.all([showUnits(me), loadDead()]);
window.fleetProfile = { ready: true };
