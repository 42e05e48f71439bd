// The three lists of the phone page: my orders, the approvals waiting for me, my trips as a
// driver. Lists are re-read whenever the live channel says an order moved; a card whose order
// did not change is kept as it is, so a comment being typed survives the reload.
import { api } from "./api.js";
import { t } from "./i18n.js";
import { notify } from "./shell.js";
import {
  bilingualEl, busy, clearError, el, label, messageOf, showError, spanEl,
} from "./phone-util.js";

const CANCELLABLE = new Set(["draft", "submitted", "approved", "assigned"]);
let context = { readsVehicles: false, readsUsers: false, driverIds: new Set() };

export function setContext(next) {
  context = { ...context, ...next };
}

// ---- the parts of a card ----------------------------------------------------------------------

function head(order) {
  return el("div", { class: "card-head" },
    el("b", { class: "purpose", text: order.purpose }),
    el("span", { class: "order-no", text: `#${order.id}` }),
    label(`status.${order.status}`, "span", { class: `status s-${order.status}` }));
}

function facts(order) {
  const places = [order.origin_name, ...order.destinations.map((d) => d.name)].join(" → ");
  const flags = ["out_of_region", "overnight", "emergency"].filter((flag) => order[flag]);
  return [
    el("p", { class: "when" }, spanEl(order.start_at, order.end_at)),
    el("p", { class: "route", text: places }),
    el("p", { class: "meta" },
      label("phone.passengers"), el("span", { text: ` ${order.passengers}` }),
      ...flags.map((flag) => label(`phone.${flag}`, "span", { class: `flag f-${flag}` }))),
  ];
}

function stepState(order, index) {
  if (index < order.approvals_done) return "done";
  if (index > order.approvals_done) return "waiting";
  if (order.approval === "rejected") return "rejected";
  if (order.approval === "pending" && !["draft", "cancelled"].includes(order.status)) return "current";
  return "waiting";
}

function steps(order) {
  const chain = order.approval_steps || [];
  if (!chain.length) return null;
  // Decisions come one per step, in order, and stop at a rejection.
  return el("ol", { class: "steps" }, ...chain.map((step, index) => {
    const state = stepState(order, index);
    const decision = order.decisions?.[index];
    return el("li", { class: `step ${state}`, dataset: { step: index + 1 } },
      el("span", { class: "step-head" },
        label("phone.step"), el("span", { text: ` ${index + 1}/${chain.length} ` }),
        label(`step.${state}`, "span", { class: "step-state" })),
      el("span", { class: "reasons" }, ...step.reasons.flatMap((reason, n) => [
        n ? el("span", { text: " · " }) : null, bilingualEl(reason)])),
      decision && (decision.by || decision.comment)
        ? el("span", { class: "decision", text: [decision.by, decision.comment].filter(Boolean).join(" · ") })
        : null);
  }));
}

// Plates come from one listing of the vehicles in the caller's scope (asking for a vehicle
// outside it would be an error); a vehicle not in it shows as its number.
let plateBook = null;

function plate(vehicleId) {
  const slot = el("span", { class: "plate", text: `#${vehicleId}` });
  if (!context.readsVehicles) return slot;
  plateBook ??= api("/api/v1/vehicles?limit=500")
    .then(({ items }) => new Map(items.map((v) => [v.id, v.plate])))
    .catch(() => new Map());
  plateBook.then((book) => { if (book.has(vehicleId)) slot.textContent = book.get(vehicleId); });
  return slot;
}

// The same for the requester's name on an approver's card (the order carries only the id).
let nameBook = null;

function requester(order) {
  const slot = el("span", { class: "requester-name", text: `#${order.requester_id}` });
  if (context.readsUsers) {
    nameBook ??= api("/api/v1/users?limit=500")
      .then(({ items }) => new Map(items.map((u) => [u.id, u.full_name || u.username])))
      .catch(() => new Map());
    nameBook.then((book) => { if (book.has(order.requester_id)) slot.textContent = book.get(order.requester_id); });
  }
  return el("p", { class: "requester" }, label("phone.requester"), el("span", { text: " " }), slot);
}

function vehicle(order) {
  if (!order.assignment) return null;
  return el("p", { class: "vehicle" }, label("phone.vehicle"), el("span", { text: " " }),
    plate(order.assignment.vehicle_id));
}

function errorSlot() {
  return el("p", { class: "field-error", role: "alert", hidden: true });
}

// Each list is re-read on every live message, so answers can arrive out of order: only the
// latest read of a list is drawn.
function sequence() {
  let last = 0;
  return () => {
    const mine = ++last;
    return () => mine === last;
  };
}

// Keeps the nodes that did not change in place (a focused input keeps its focus).
function place(list, nodes) {
  nodes.forEach((node, index) => {
    if (list.children[index] !== node) list.insertBefore(node, list.children[index] || null);
  });
  while (list.children.length > nodes.length) list.lastChild.remove();
}

function render(list, empty, items, cache, build) {
  const kept = new Map();
  const nodes = items.map((order) => {
    const key = [order.status, order.approval, order.approvals_done, order.updated_at,
      order.assignment?.vehicle_id, order.rating?.stars].join("|");
    const held = cache.get(order.id);
    const node = held && held.key === key ? held.node : build(order);
    kept.set(order.id, { key, node });
    return node;
  });
  cache.clear();
  for (const [id, entry] of kept) cache.set(id, entry);
  place(list, nodes);
  empty.hidden = items.length > 0;
}

// ---- my orders ------------------------------------------------------------------------------

const mineCards = new Map();
const mineTurn = sequence();
let highlighted = null;

function cancelBox(order, slot) {
  const reason = el("textarea", { id: `cancel-${order.id}`, rows: 2, maxlength: 2000 });
  const box = el("div", { class: "confirm", hidden: true },
    el("label", { for: reason.id }, label("phone.cancel_reason")),
    reason,
    el("div", { class: "actions" },
      el("button", { type: "button", class: "danger confirm-cancel", onclick: (event) => busy(event.currentTarget, async () => {
        try {
          await api(`/api/v1/orders/${order.id}/cancel`, { method: "POST", body: { comment: reason.value.trim() } });
          notify(`${t("phone.cancelled_note")} #${order.id}`, "ok");
          await loadMine();
        } catch (error) {
          showError(slot, { text: messageOf(error) });
        }
      }) }, label("phone.cancel_confirm")),
      el("button", { type: "button", class: "keep", onclick: () => { box.hidden = true; opener.hidden = false; opener.focus(); } },
        label("phone.keep"))));
  const opener = el("button", { type: "button", class: "cancel", onclick: () => {
    box.hidden = false;
    opener.hidden = true;
    reason.focus();
  } }, label("phone.cancel"));
  return [opener, box];
}

// The requester's rating of a completed trip (用车评价): five stars and an optional comment,
// once; a rated trip shows what was given.
function starsText(stars) {
  return `${"★".repeat(stars)}${"☆".repeat(5 - stars)}`;
}

function rated(rating) {
  return el("p", { class: "rating rated", dataset: { stars: rating.stars } },
    label("phone.rating"), el("span", { text: " " }),
    el("span", { class: "stars", text: starsText(rating.stars), attrs: { "aria-label": `${rating.stars}/5` } }),
    rating.comment ? el("span", { class: "rating-comment", text: ` ${rating.comment}` }) : null);
}

function ratingBox(order, slot) {
  if (order.rating) return [rated(order.rating)];
  let chosen = 0;
  const stars = [1, 2, 3, 4, 5].map((n) => el("button", {
    type: "button", class: "star", dataset: { stars: n },
    attrs: { "aria-pressed": "false", "aria-label": `${n}/5` },
    text: "☆",
    onclick: () => {
      chosen = n;
      stars.forEach((star, index) => {
        star.textContent = index < n ? "★" : "☆";
        star.setAttribute("aria-pressed", String(index < n));
      });
      clearError(slot);
    },
  }));
  const comment = el("textarea", { id: `rating-${order.id}`, class: "rating-comment", rows: 2, maxlength: 500 });
  const send = el("button", { type: "button", class: "primary rate", onclick: (event) => busy(event.currentTarget, async () => {
    if (!chosen) {
      showError(slot, { key: "phone.rating_needs_stars" });
      stars[0].focus();
      return;
    }
    try {
      await api(`/api/v1/orders/${order.id}/rating`, { method: "POST", body: { stars: chosen, comment: comment.value.trim() } });
      notify(`${t("phone.rated_note")} #${order.id}`, "ok");
      await loadMine();
    } catch (error) {
      showError(slot, { text: messageOf(error) });
    }
  }) }, label("phone.rate"));
  return [el("fieldset", { class: "rating-form" },
    el("legend", {}, label("phone.rate_trip")),
    el("div", { class: "stars", role: "group" }, ...stars),
    el("label", { for: comment.id }, label("phone.rating_comment")), comment,
    el("div", { class: "actions" }, send))];
}

function mineCard(order) {
  const slot = errorSlot();
  const actions = el("div", { class: "actions" });
  if (order.status === "draft") {
    actions.append(el("button", { type: "button", class: "primary send-draft", onclick: (event) => busy(event.currentTarget, async () => {
      try {
        await api(`/api/v1/orders/${order.id}/submit`, { method: "POST" });
        notify(`${t("phone.submitted")} #${order.id}`, "ok");
        await loadMine();
      } catch (error) {
        showError(slot, { text: messageOf(error) });
      }
    }) }, label("phone.send")));
  }
  const extra = [];
  if (order.status === "completed") extra.push(...ratingBox(order, slot));
  if (CANCELLABLE.has(order.status)) {
    const [opener, box] = cancelBox(order, slot);
    actions.append(opener);
    extra.push(box);
  }
  return el("li", { class: "card order-card", dataset: { order: order.id, status: order.status } },
    head(order), ...facts(order), steps(order), vehicle(order),
    actions.children.length ? actions : null, ...extra, slot);
}

export async function loadMine({ highlight } = {}) {
  if (highlight) highlighted = highlight;
  const current = mineTurn();
  const { items } = await api("/api/v1/orders?mine=true&limit=100");
  if (!current()) return items;
  const list = document.getElementById("mine-list");
  render(list, document.getElementById("mine-empty"), items, mineCards, mineCard);
  const card = highlighted && list.querySelector(`[data-order="${highlighted}"]`);
  if (card && !card.classList.contains("fresh")) {
    card.classList.add("fresh");
    card.scrollIntoView({ block: "nearest" });
  }
  return items;
}

// ---- approvals ------------------------------------------------------------------------------

const approvalCards = new Map();
const approvalsTurn = sequence();

async function decide(order, approve, comment, slot) {
  const text = comment.value.trim();
  if (!approve && !text) {
    showError(slot, { key: "phone.reject_needs_comment" });
    comment.setAttribute("aria-invalid", "true");
    comment.focus();
    return;
  }
  clearError(slot);
  comment.removeAttribute("aria-invalid");
  try {
    await api(`/api/v1/orders/${order.id}/${approve ? "approve" : "reject"}`,
      { method: "POST", body: { comment: text } });
    notify(`${t(approve ? "phone.approved_note" : "phone.rejected_note")} #${order.id}`, "ok");
    await loadApprovals();
  } catch (error) {
    showError(slot, { text: messageOf(error) });
  }
}

function approvalCard(order) {
  const slot = errorSlot();
  const comment = el("textarea", { id: `comment-${order.id}`, class: "comment", rows: 2, maxlength: 2000 });
  return el("li", { class: "card approval-card", dataset: { order: order.id } },
    head(order), requester(order), ...facts(order), steps(order),
    el("label", { for: comment.id }, label("phone.comment")), comment,
    el("div", { class: "actions" },
      el("button", { type: "button", class: "primary approve",
        onclick: (event) => busy(event.currentTarget, () => decide(order, true, comment, slot)) },
      label("phone.approve")),
      el("button", { type: "button", class: "danger reject",
        onclick: (event) => busy(event.currentTarget, () => decide(order, false, comment, slot)) },
      label("phone.reject"))),
    slot);
}

export async function loadApprovals() {
  const current = approvalsTurn();
  const { items } = await api("/api/v1/approvals/pending");
  if (!current()) return items;
  render(document.getElementById("approvals-list"), document.getElementById("approvals-empty"),
    items, approvalCards, approvalCard);
  const badge = document.getElementById("approvals-count");
  badge.textContent = items.length;
  badge.hidden = items.length === 0;
  return items;
}

// ---- a driver's trips -------------------------------------------------------------------------

const tripCards = new Map();
const tripsTurn = sequence();

function tripCard(order) {
  const slot = errorSlot();
  const starting = order.status === "assigned";
  const reading = el("input", { id: `odometer-${order.id}`, class: "odometer", type: "number",
    inputmode: "decimal", min: 0, step: "0.1" });
  const go = el("button", { type: "button", class: `primary ${starting ? "start-trip" : "finish-trip"}`,
    onclick: (event) => busy(event.currentTarget, async () => {
      const body = reading.value === "" ? {} : { odometer_km: Number(reading.value) };
      try {
        await api(`/api/v1/orders/${order.id}/${starting ? "start" : "finish"}`, { method: "POST", body });
        notify(`${t(starting ? "phone.started_note" : "phone.finished_note")} #${order.id}`, "ok");
        await loadTrips();
      } catch (error) {
        showError(slot, { text: messageOf(error) });
      }
    }) }, label(starting ? "phone.start_trip" : "phone.finish_trip"));
  return el("li", { class: "card trip-card", dataset: { order: order.id, status: order.status } },
    head(order), ...facts(order), vehicle(order),
    el("label", { for: reading.id }, label("phone.odometer")), reading,
    el("div", { class: "actions" }, go), slot);
}

export async function loadTrips() {
  const empty = document.getElementById("trips-empty");
  if (!context.driverIds.size) {
    document.getElementById("trips-list").replaceChildren();
    empty.hidden = false;
    document.getElementById("trips-unlinked").hidden = false;
    return [];
  }
  const current = tripsTurn();
  const pages = await Promise.all(["assigned", "in_progress"].map(
    (status) => api(`/api/v1/orders?status=${status}&limit=500`)));
  if (!current()) return [];
  const items = pages.flatMap((page) => page.items)
    .filter((order) => order.assignment && context.driverIds.has(order.assignment.driver_id))
    // The trip under way first, then the next ones in time order.
    .sort((a, b) => (a.status === "in_progress" ? 0 : 1) - (b.status === "in_progress" ? 0 : 1)
      || Date.parse(a.start_at) - Date.parse(b.start_at));
  render(document.getElementById("trips-list"), empty, items, tripCards, tripCard);
  const badge = document.getElementById("trips-count");
  badge.textContent = items.length;
  badge.hidden = items.length === 0;
  return items;
}
