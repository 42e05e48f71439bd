// The supervisor's alert review: the queue (filters, paging, live arrivals), one alert's evidence
// on a map with track playback, the rule's figures, the decision, and the order dossier and the
// vehicle file one click away. An alert is addressed as #alert-ID, so it can be linked and the
// browser's back button returns to the previous one.
import { api, ApiError, token } from "./api.js";
import { el } from "./dom.js";
import { wallToInstant } from "./zone.js";
import { apply, lang, t, when } from "./i18n.js";
import { config, notify, start } from "./shell.js";
import { KINDS, duration, figure, known, label } from "./review-labels.js";

const PAGE = 20;
// Which decisions each review state still allows (the server holds the same table and refuses
// the rest; the buttons only spare the reviewer a refusal).
const MOVES = {
  pending: ["confirmed", "dismissed", "escalated"],
  escalated: ["confirmed", "dismissed"],
  confirmed: [],
  dismissed: [],
};

const $ = (id) => document.getElementById(id);
const queue = { offset: 0, total: 0, items: [], seen: new Set(), fresh: new Set() };
const shown = { alert: null, order: null, drawn: null };
let queueSeq = 0;
let openSeq = 0;
let refreshTimer = 0;
let evidence = null; // a promise of {map: EvidenceMap, playback: Playback}

// For the tests and for anyone poking at the page from the console.
window.fleetReview = { ready: false, live: false, drawn: null, map: null, marker: null, loads: 0 };

// ---- the queue ------------------------------------------------------------------------------

// Midnight of a calendar date in the display zone (the period filter is in local days).
function midnight(date, addDays = 0) {
  const [y, m, d] = date.split("-").map(Number);
  return new Date(wallToInstant(y, m, d + addDays, 0, 0, config.zone)).toISOString();
}

function query() {
  const params = new URLSearchParams({ limit: String(PAGE), offset: String(queue.offset) });
  const status = $("f-status").value;
  const kind = $("f-kind").value;
  if (status) params.set("status", status);
  if (kind) params.set("kind", kind);
  if ($("f-start").value) params.set("start", midnight($("f-start").value));
  if ($("f-end").value) params.set("end", midnight($("f-end").value, 1));
  return params;
}

async function loadQueue({ live = false } = {}) {
  const seq = ++queueSeq;
  let page;
  try {
    page = await api(`/api/v1/alerts?${query()}`);
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    notify(error.message, "error");
    return;
  }
  if (seq !== queueSeq) return; // a newer filter or page was asked for meanwhile
  if (!page.items.length && queue.offset > 0 && page.total > 0) {
    // A decision moved the last row of this page out of the filter.
    queue.offset = Math.max(0, Math.floor((page.total - 1) / PAGE) * PAGE);
    await loadQueue({ live });
    return;
  }
  // New arrivals stay marked until the reviewer asks for another view of the queue.
  if (!live) queue.fresh.clear();
  for (const a of page.items) {
    if (live && !queue.seen.has(a.id)) queue.fresh.add(a.id);
    queue.seen.add(a.id);
  }
  queue.items = page.items;
  queue.total = page.total;
  renderQueue();
  window.fleetReview.loads += 1;
}

function alertSpan(a) {
  const end = a.ended_at || a.last_at;
  return (Date.parse(end) - Date.parse(a.started_at)) / 1000;
}

function queueRow(a) {
  const link = el("a", { cls: `row sev-${a.severity}`, attrs: { href: `#alert-${a.id}` } });
  link.dataset.alert = a.id;
  if (queue.fresh.has(a.id)) link.classList.add("fresh");
  if (shown.alert && shown.alert.id === a.id) link.setAttribute("aria-current", "true");
  const top = el("span", { cls: "line" });
  top.append(
    el("span", { i18n: `severity.${a.severity}`, cls: `sev sev-${a.severity}` }),
    el("span", { text: a.plate, cls: "plate" }),
    el("span", { i18n: `kind.${a.kind}`, cls: "kind" }),
    el("span", { i18n: `review.state.${a.review}`, cls: `badge state state-${a.review}` }),
  );
  const bottom = el("span", { cls: "line muted" });
  bottom.append(el("span", { text: when(a.started_at, config.zone) }), " · ",
    el("span", { text: duration(alertSpan(a)) }));
  if (a.open) bottom.append(" · ", el("span", { i18n: "review.ongoing", cls: "ongoing" }));
  bottom.append(el("span", { text: `#${a.id}`, cls: "id" }));
  link.append(top, bottom);
  const li = el("li");
  li.append(link);
  return li;
}

function renderQueue() {
  $("queue").replaceChildren(...queue.items.map(queueRow));
  $("queue-empty").hidden = queue.items.length > 0;
  $("queue-total").textContent = String(queue.total);
  const first = queue.items.length ? queue.offset + 1 : 0;
  $("page-info").textContent = `${first}–${queue.offset + queue.items.length} / ${queue.total}`;
  $("page-prev").disabled = queue.offset === 0;
  $("page-next").disabled = queue.offset + PAGE >= queue.total;
}

function bindFilters() {
  const kinds = $("f-kind");
  for (const kind of KINDS) {
    const option = el("option", { i18n: `kind.${kind}` });
    option.value = kind;
    kinds.append(option);
  }
  const filters = $("filters");
  filters.addEventListener("change", () => {
    queue.offset = 0;
    loadQueue();
  });
  filters.addEventListener("submit", (event) => event.preventDefault());
  // A reset restores the defaults after this event; reload once it has.
  filters.addEventListener("reset", () => setTimeout(() => {
    queue.offset = 0;
    loadQueue();
  }));
  $("page-prev").addEventListener("click", () => {
    queue.offset = Math.max(0, queue.offset - PAGE);
    loadQueue();
  });
  $("page-next").addEventListener("click", () => {
    queue.offset += PAGE;
    loadQueue();
  });
}

// ---- live arrivals --------------------------------------------------------------------------

function onAlerts(items) {
  if (!items.length) return;
  const kinds = [...new Set(items.map((a) => t(`kind.${a.kind}`, a.kind)))];
  notify(`${t("review.new_alerts")} (${items.length}): ${kinds.join(lang() === "en" ? ", " : "、")}`,
    "warn");
  // A burst of episodes is one refresh, not one per message.
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(() => {
    loadQueue({ live: true });
    if (shown.alert && items.some((a) => a.vehicle_id === shown.alert.vehicle_id)) {
      openAlert(shown.alert.id, { quiet: true });
    }
  }, 250);
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(
    `${scheme}://${location.host}/ws/live?token=${encodeURIComponent(token())}`);
  socket.addEventListener("message", (event) => {
    const message = JSON.parse(event.data);
    if (message.type === "snapshot") window.fleetReview.live = true;
    else if (message.type === "alerts") onAlerts(message.items || []);
  });
  socket.addEventListener("close", (event) => {
    window.fleetReview.live = false;
    // 4401/4403: the token is no good; trying again would only be refused again.
    if (event.code !== 4401 && event.code !== 4403) setTimeout(connect, 3000);
  });
}

// ---- one alert ------------------------------------------------------------------------------

function routeId() {
  const match = location.hash.match(/^#alert-(\d+)$/);
  return match ? Number(match[1]) : null;
}

function evidenceMap() {
  if (!evidence) {
    evidence = Promise.all([
      import("./review-map.js"),
      import("./map.js").then(({ extent }) => extent(config, "fleet")),
    ]).then(async ([{ EvidenceMap, Playback }, fit]) => {
      const map = new EvidenceMap("review-map", config, { fit });
      window.fleetReview.map = map.map;
      const playback = new Playback({
        button: $("play"),
        slider: $("scrub"),
        rate: $("rate"),
        onMove: (here) => {
          window.fleetReview.marker = map.marker(here.lon, here.lat);
          showClock(here);
        },
        onState: (playing) => {
          const button = $("play");
          button.setAttribute("aria-pressed", String(playing));
          button.dataset.i18n = playing ? "review.pause" : "review.play";
          button.textContent = t(button.dataset.i18n);
        },
      });
      await map.ready;
      window.fleetReview.ready = true;
      return { map, playback };
    }).catch((error) => {
      notify(t("error.vendor"), "error");
      throw error;
    });
  }
  return evidence;
}

let clockAt = null;
function showClock(here) {
  clockAt = here;
  if (!here) {
    $("clock").textContent = "—";
    return;
  }
  const time = new Intl.DateTimeFormat(lang() === "en" ? "en-GB" : "zh-CN", {
    timeZone: config.zone || undefined, hour: "2-digit", minute: "2-digit", second: "2-digit",
    hour12: false,
  }).format(new Date(here.ms));
  const speed = here.speed_kmh != null ? ` · ${Math.round(here.speed_kmh)} km/h` : "";
  $("clock").textContent = `${time}${speed}`;
  $("clock").classList.toggle("flagged", Boolean(here.flagged));
}

async function openAlert(id, { quiet = false } = {}) {
  const seq = ++openSeq;
  let alert;
  let order = null;
  try {
    alert = await api(`/api/v1/alerts/${id}`);
    if (alert.order_id != null) {
      order = await api(`/api/v1/orders/${alert.order_id}`).catch((error) => {
        if (error instanceof ApiError) return null; // the alert still stands without it
        throw error;
      });
    }
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    if (seq === openSeq) {
      notify(error.message, "error");
      closeAlert();
    }
    return;
  }
  if (seq !== openSeq) return; // the reviewer has moved on to another alert
  const changed = !shown.alert || shown.alert.id !== alert.id;
  shown.alert = alert;
  shown.order = order;
  $("detail-empty").hidden = true;
  $("alert").hidden = false;
  if (changed) {
    $("reason").value = "";
    $("reason").removeAttribute("aria-invalid");
    $("decision-error").hidden = true;
  }
  renderDetail();
  for (const row of document.querySelectorAll("#queue a.row")) {
    if (Number(row.dataset.alert) === alert.id) row.setAttribute("aria-current", "true");
    else row.removeAttribute("aria-current");
  }
  if (changed && !quiet) $("detail-h").focus({ preventScroll: true });
  if (changed || shown.drawn !== alert.id) {
    const { map, playback } = await evidenceMap();
    if (seq !== openSeq) return;
    // The pane was hidden until now: let the map take its size before framing the evidence.
    map.map.resize();
    map.draw(alert, order?.assignment?.route || null);
    playback.load(alert.evidence?.points || []);
    $("no-track").hidden = Boolean(alert.evidence?.track);
    if (!alert.evidence?.track) showClock(null);
    shown.drawn = alert.id;
    window.fleetReview.drawn = alert.id;
  }
}

function closeAlert() {
  openSeq += 1;
  shown.alert = null;
  shown.order = null;
  $("alert").hidden = true;
  $("detail-empty").hidden = false;
  evidence?.then(({ playback }) => playback.pause()).catch(() => {});
  for (const row of document.querySelectorAll("#queue a.row[aria-current]")) {
    row.removeAttribute("aria-current");
  }
}

function fact(key, ...value) {
  const dd = el("dd");
  dd.append(...value);
  return [el("dt", { i18n: key }), dd];
}

function figureRows(group, values) {
  const rows = [el("tr", { cls: "group" })];
  rows[0].append(el("th", { i18n: group, attrs: { colspan: "2", scope: "colgroup" } }));
  const entries = Object.entries(values || {});
  if (!entries.length) {
    const tr = el("tr");
    tr.append(el("td", { i18n: "review.none", cls: "muted", attrs: { colspan: "2" } }));
    rows.push(tr);
  }
  for (const [key, value] of entries) {
    const tr = el("tr");
    // A key the table does not know is shown as it is rather than dropped.
    const th = known(key) ? el("th", { i18n: `fig.${key}` }) : el("th", { text: label(key) });
    th.setAttribute("scope", "row");
    th.title = key;
    tr.append(th, el("td", { text: figure(key, value) }));
    rows.push(tr);
  }
  return rows;
}

function renderDetail() {
  const a = shown.alert;
  if (!a) return;
  $("detail-h").textContent = `#${a.id} ${a.plate} · ${t(`kind.${a.kind}`, a.kind)}`;
  const severity = $("detail-severity");
  severity.className = `badge sev sev-${a.severity}`;
  severity.dataset.i18n = `severity.${a.severity}`;
  severity.textContent = t(severity.dataset.i18n);
  const state = $("detail-state");
  state.className = `badge state state-${a.review}`;
  state.dataset.i18n = `review.state.${a.review}`;
  state.textContent = t(state.dataset.i18n);

  const fence = a.evidence?.fence;
  const rows = [
    fact("fact.vehicle", a.plate),
    fact("fact.started", when(a.started_at, config.zone)),
    a.ended_at ? fact("fact.ended", when(a.ended_at, config.zone))
      : fact("fact.ended", el("span", { i18n: "review.ongoing", cls: "ongoing" })),
    fact("fact.duration", duration(alertSpan(a))),
  ];
  if (a.lat != null) rows.push(fact("fact.place", `${a.lat.toFixed(5)}, ${a.lon.toFixed(5)}`));
  if (fence) {
    const kind = fence.properties?.kind;
    rows.push(fact("fact.fence", `${fence.properties?.name ?? fence.id} · `,
      el("span", { i18n: `fence.${kind}` })));
  }
  $("facts").replaceChildren(...rows.flat());

  const variant = `rule.${a.kind}.${a.key}`;
  const rule = $("rule-text");
  rule.dataset.i18n = t(variant, "") ? variant : `rule.${a.kind}`;
  rule.textContent = t(rule.dataset.i18n, "");
  $("figures").tBodies[0].replaceChildren(
    ...figureRows("review.thresholds", a.thresholds),
    ...figureRows("review.measured", a.measured),
  );

  const orderLine = $("order-line");
  if (a.order_id != null) {
    const o = shown.order;
    orderLine.replaceChildren(el("span", { i18n: "review.order" }),
      ` #${a.order_id}${o ? ` · ${o.purpose}` : ""}`);
  } else orderLine.replaceChildren(el("span", { i18n: "review.no_order", cls: "muted" }));
  $("open-dossier").hidden = a.order_id == null;

  const reviews = a.reviews || [];
  $("history").replaceChildren(...reviews.map((r) => {
    const li = el("li");
    li.append(el("span", { i18n: `review.state.${r.decision}`, cls: `badge state state-${r.decision}` }),
      ` ${r.by} · ${when(r.at, config.zone)}`);
    if (r.reason) li.append(el("p", { text: r.reason, cls: "reason" }));
    return li;
  }));
  $("history-empty").hidden = reviews.length > 0;

  const allowed = MOVES[a.review] || [];
  for (const button of document.querySelectorAll("#decision [data-decision]")) {
    button.disabled = !allowed.includes(button.dataset.decision);
  }
  $("reason").disabled = !allowed.length;
  $("decided").hidden = allowed.length > 0;
  if (clockAt) showClock(clockAt);
}

async function decide(decision) {
  const a = shown.alert;
  if (!a) return;
  const reason = $("reason");
  const error = $("decision-error");
  error.hidden = true;
  reason.removeAttribute("aria-invalid");
  const buttons = [...document.querySelectorAll("#decision [data-decision]")];
  for (const button of buttons) button.disabled = true;
  const body = { decision, reason: reason.value.trim() };
  let decided;
  try {
    decided = await api(`/api/v1/alerts/${a.id}/review`, { method: "POST", body });
  } catch (failure) {
    if (!(failure instanceof ApiError)) throw failure;
    // The server's own words: it is the one that decides what a decision needs.
    error.textContent = `${t("review.refused")}: ${failure.message}`;
    error.hidden = false;
    const detail = failure.body?.detail;
    if (Array.isArray(detail) && detail.some((d) => d.loc?.at(-1) === "reason")) {
      reason.setAttribute("aria-invalid", "true");
      reason.focus();
    }
    renderDetail();
    return;
  }
  // The answer is the alert as it now stands. It is applied here rather than fetched again: the
  // server commits after it has answered, so an immediate read may still see the old state.
  Object.assign(a, decided);
  a.reviews = [...(a.reviews || []),
    { decision, reason: body.reason, by: me.username, at: new Date().toISOString() }];
  // The row stays where it is, marked with its new state, so the queue does not jump under the
  // reviewer's hand; the next refresh applies the filter.
  const row = queue.items.find((item) => item.id === a.id);
  if (row) row.review = decided.review;
  reason.value = "";
  renderDetail();
  renderQueue();
  notify(`${t("review.saved")}: #${a.id} ${t(`review.state.${decision}`)}`, "ok");
}

// ---- the dossier and the vehicle file -------------------------------------------------------

// The documents need the bearer token, so they are fetched here rather than linked.
async function fetchDocument(path) {
  const answer = await fetch(path, { headers: { Authorization: `Bearer ${token()}` } });
  if (answer.status === 401) {
    location.assign("/login");
    throw new ApiError(401, null);
  }
  if (!answer.ok) throw new ApiError(answer.status, await answer.json().catch(() => null));
  return answer;
}

const documentShown = { path: null, filename: null };

async function showDocument(kind, opener) {
  const a = shown.alert;
  if (!a) return;
  const [path, title, number] = kind === "dossier"
    ? [`/api/v1/orders/${a.order_id}/dossier`, "review.dossier", `#${a.order_id}`]
    : [`/api/v1/vehicles/${a.vehicle_id}/file`, "review.vehicle_file", a.plate];
  opener.setAttribute("aria-busy", "true");
  opener.disabled = true;
  try {
    const html = await (await fetchDocument(`${path}.html`)).text();
    documentShown.path = path;
    documentShown.filename = kind === "dossier" ? `order-${a.order_id}.pdf` : `vehicle-${a.vehicle_id}.pdf`;
    $("doc-title").replaceChildren(el("span", { i18n: title }), ` ${number}`);
    // Shown first, then filled: a frame loaded while its dialog is closed lays out at no size.
    $("doc-dialog").showModal();
    // sandbox="" with srcdoc: the document is shown, never run, and cannot reach the page.
    $("doc-frame").srcdoc = html;
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    notify(error.message, "error");
  } finally {
    opener.removeAttribute("aria-busy");
    opener.disabled = false;
  }
}

async function downloadPdf() {
  const button = $("doc-pdf");
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  try {
    const blob = await (await fetchDocument(`${documentShown.path}.pdf`)).blob();
    const url = URL.createObjectURL(blob);
    const link = el("a", { attrs: { href: url, download: documentShown.filename } });
    link.hidden = true;
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    notify(error.message, "error");
  } finally {
    button.disabled = false;
    button.removeAttribute("aria-busy");
  }
}

function bindDetail() {
  for (const button of document.querySelectorAll("#decision [data-decision]")) {
    button.addEventListener("click", () => decide(button.dataset.decision));
  }
  $("detail-close").addEventListener("click", (event) => {
    event.preventDefault();
    history.pushState(null, "", location.pathname + location.search);
    closeAlert();
  });
  $("open-dossier").addEventListener("click", (event) => showDocument("dossier", event.currentTarget));
  $("open-file").addEventListener("click", (event) => showDocument("file", event.currentTarget));
  $("doc-pdf").addEventListener("click", downloadPdf);
  $("doc-close").addEventListener("click", () => $("doc-dialog").close());
  window.addEventListener("hashchange", route);
}

function route() {
  const id = routeId();
  if (id) openAlert(id);
  else closeAlert();
}

// ---- start ----------------------------------------------------------------------------------

const me = await start();
if (me) {
  bindFilters();
  bindDetail();
  apply();
  window.addEventListener("fleet:lang", () => {
    renderQueue();
    renderDetail();
    apply();
  });
  await loadQueue();
  connect();
  route();
}
