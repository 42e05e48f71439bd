// Fences drawn on the map: a polygon by clicking its corners, or a circle by its centre and a
// point on its edge (or a typed radius). The map may be a GCJ-02 base map; what is stored is
// always WGS-84, so drawn points are converted back before they are sent.
import { api } from "./api.js";
import labels from "../labels/admin-fences.json" with { type: "json" };
import { extend, t } from "./i18n.js";
import { config, notify } from "./shell.js";
import {
  buildFields, button, createBody, el, emptyRow, readFields, submitting, turns, writeFields,
} from "./admin-common.js";

extend(labels);

const KINDS = ["prohibited", "permitted_region", "depot", "workshop", "custom"];
const COLOURS = ["match", ["get", "kind"], "prohibited", "#d62728", "depot", "#2ca02c",
  "workshop", "#8c564b", "permitted_region", "#1f77b4", "#9467bd"];
const METRES_PER_DEGREE = 111_319.49;
const EMPTY = { type: "FeatureCollection", features: [] };

const FIELDS = [
  { name: "name", key: "field.name", type: "text" },
  { name: "kind", key: "field.kind", type: "select", options: KINDS, prefix: "fkind" },
  { name: "radius_m", key: "admin.fences.radius", type: "number", attrs: { min: 1 } },
  { name: "speed_limit_kmh", key: "admin.fences.speed", type: "number", attrs: { min: 1, max: 200 } },
  { name: "note", key: "field.note", type: "text", blank: "" },
];

function metres([lon1, lat1], [lon2, lat2]) {
  const rad = Math.PI / 180;
  const a = Math.sin(((lat2 - lat1) * rad) / 2) ** 2
    + Math.cos(lat1 * rad) * Math.cos(lat2 * rad) * Math.sin(((lon2 - lon1) * rad) / 2) ** 2;
  return 2 * 6_371_008.8 * Math.asin(Math.sqrt(a));
}

// Only for the preview: the server buffers the real circle the same way.
function circle([lon, lat], radius) {
  const k = Math.cos((lat * Math.PI) / 180);
  const ring = [];
  for (let i = 0; i <= 64; i += 1) {
    const angle = (i / 64) * 2 * Math.PI;
    ring.push([lon + (radius * Math.cos(angle)) / (METRES_PER_DEGREE * k),
      lat + (radius * Math.sin(angle)) / METRES_PER_DEGREE]);
  }
  return ring;
}

function mapCoordinates(geometry, fn) {
  const walk = (c) => (typeof c[0] === "number" ? fn(c[0], c[1]) : c.map(walk));
  return { ...geometry, coordinates: walk(geometry.coordinates) };
}

export async function initFences(panel) {
  const form = panel.querySelector("#fence-form");
  buildFields(form, FIELDS);
  writeFields(form, FIELDS, { kind: "prohibited" });
  const rows = panel.querySelector("#fence-rows");
  const pointList = panel.querySelector("#draft-points");
  const drawButton = panel.querySelector("#fence-draw");
  const hint = panel.querySelector("#fence-hint");
  const container = panel.querySelector("#fence-map");
  const draft = { shape: "polygon", drawing: false, points: [] }; // points as shown on the map
  let fences = [];
  window.fleetAdmin.fenceDraft = draft;

  const mapModule = await import("./map.js").catch(() => null);
  if (!mapModule) {
    notify(t("error.vendor"), "error");
    return;
  }
  const { createMap, display, gcj02ToWgs84 } = mapModule;
  const shown = display(config);
  const stored = config.basemap.crs === "gcj02" ? gcj02ToWgs84 : (lon, lat) => [lon, lat];
  const map = createMap(container, config);
  window.fleetAdmin.map = map;

  function draftData() {
    const features = [];
    const pts = draft.points;
    if (draft.shape === "polygon") {
      if (pts.length >= 3) features.push({ type: "Feature", properties: {}, geometry: { type: "Polygon", coordinates: [[...pts, pts[0]]] } });
      else if (pts.length === 2) features.push({ type: "Feature", properties: {}, geometry: { type: "LineString", coordinates: pts } });
    } else if (pts.length) {
      const radius = Number(form.elements.radius_m.value);
      if (radius > 0) features.push({ type: "Feature", properties: {}, geometry: { type: "Polygon", coordinates: [circle(pts[0], radius)] } });
    }
    for (const p of pts) features.push({ type: "Feature", properties: {}, geometry: { type: "Point", coordinates: p } });
    return { type: "FeatureCollection", features };
  }

  function renderDraft() {
    map.getSource("draft")?.setData(draftData());
    pointList.replaceChildren(...draft.points.map((p) => {
      const [lon, lat] = stored(p[0], p[1]);
      return el("li", { text: `${lon.toFixed(6)}, ${lat.toFixed(6)}` });
    }));
    panel.querySelector("#fence-undo").disabled = !draft.points.length;
    panel.querySelector("#fence-clear").disabled = !draft.points.length;
  }

  function addPoint(lngLat) {
    const p = [lngLat.lng, lngLat.lat];
    if (draft.shape === "polygon" || !draft.points.length) draft.points.push(p);
    else {
      const [a, b] = [stored(...draft.points[0]), stored(...p)];
      form.elements.radius_m.value = Math.max(1, Math.round(metres(a, b)));
    }
    renderDraft();
  }

  function setDrawing(on) {
    draft.drawing = on;
    drawButton.setAttribute("aria-pressed", String(on));
    drawButton.dataset.i18n = on ? "admin.fences.stop" : "admin.fences.draw";
    drawButton.textContent = t(drawButton.dataset.i18n);
    container.classList.toggle("drawing", on);
    // A double click would otherwise zoom between two corners clicked quickly.
    if (on) map.doubleClickZoom.disable();
    else map.doubleClickZoom.enable();
  }

  function setShape(shape) {
    draft.shape = shape;
    draft.points = [];
    form.querySelector(".f-radius_m").hidden = shape !== "circle";
    hint.dataset.i18n = shape === "circle" ? "admin.fences.hint_circle" : "admin.fences.hint_polygon";
    hint.textContent = t(hint.dataset.i18n);
    renderDraft();
  }

  function geometry() {
    if (!draft.points.length) return undefined;
    if (draft.shape === "circle") return { type: "Point", coordinates: stored(...draft.points[0]) };
    const ring = draft.points.map((p) => stored(p[0], p[1]));
    return { type: "Polygon", coordinates: [[...ring, ring[0]]] };
  }

  function fenceData() {
    return { type: "FeatureCollection", features: fences.map((f) => ({
      type: "Feature", id: f.id,
      properties: { id: f.id, name: f.properties.name, kind: f.properties.kind, enabled: f.properties.enabled },
      geometry: mapCoordinates(f.properties.area || f.geometry, shown),
    })) };
  }

  const turn = turns();

  async function load() {
    const current = turn();
    const collection = await api("/api/v1/fences");
    if (!current()) return;
    fences = collection.features;
    map.getSource("admin-fences")?.setData(fenceData());
    rows.replaceChildren(...(fences.length ? fences.map(row) : [emptyRow(4)]));
  }

  function row(f) {
    const p = f.properties;
    return el("tr", { dataset: { id: f.id }, className: p.enabled ? "" : "inactive" },
      el("td", {}, el("button", { type: "button", className: "link", text: p.name, onclick: () => locate(f) })),
      el("td", {}, el("span", { i18n: `fkind.${p.kind}` }), el("br"),
        el("span", { className: "muted", i18n: `fshape.${p.shape}` })),
      el("td", { i18n: p.enabled ? "admin.enabled" : "admin.disabled" }),
      el("td", { className: "actions" },
        button(p.enabled ? "admin.disable" : "admin.enable", () => toggle(f)),
        button("admin.delete", () => remove(f))));
  }

  function locate(f) {
    const area = mapCoordinates(f.properties.area || f.geometry, shown);
    const flat = JSON.stringify(area.coordinates).match(/-?\d+(\.\d+)?(e-?\d+)?/g).map(Number);
    const xs = flat.filter((_, i) => i % 2 === 0);
    const ys = flat.filter((_, i) => i % 2 === 1);
    map.fitBounds([[Math.min(...xs), Math.min(...ys)], [Math.max(...xs), Math.max(...ys)]],
      { padding: 60, maxZoom: 16, duration: 500 });
  }

  async function toggle(f) {
    try {
      await api(`/api/v1/fences/${f.id}`, { method: "PATCH", body: { enabled: !f.properties.enabled } });
      notify(`${t("admin.saved")}: ${f.properties.name}`, "ok");
    } catch (error) {
      notify(error.message, "error");
    }
    await load();
  }

  async function remove(f) {
    if (!window.confirm(`${t("admin.confirm_delete")} ${f.properties.name}`)) return;
    try {
      await api(`/api/v1/fences/${f.id}`, { method: "DELETE" });
      notify(`${t("admin.deleted")}: ${f.properties.name}`, "ok");
    } catch (error) {
      notify(error.status === 409 ? `${t("admin.fences.in_use")}: ${error.message}` : error.message, "error");
    }
    await load();
  }

  map.on("load", () => {
    // The tiles' own fence layers lag behind edits (they are cached); this page draws the list.
    for (const id of ["fences-fill", "fences-line"]) {
      if (map.getLayer(id)) map.setLayoutProperty(id, "visibility", "none");
    }
    map.addSource("admin-fences", { type: "geojson", data: fenceData() });
    map.addLayer({ id: "admin-fences-fill", type: "fill", source: "admin-fences",
      paint: { "fill-color": COLOURS, "fill-opacity": ["case", ["get", "enabled"], 0.2, 0.05] } });
    map.addLayer({ id: "admin-fences-line", type: "line", source: "admin-fences",
      paint: { "line-color": COLOURS, "line-width": 1.5, "line-opacity": ["case", ["get", "enabled"], 1, 0.4] } });
    map.addSource("draft", { type: "geojson", data: EMPTY });
    map.addLayer({ id: "draft-fill", type: "fill", source: "draft", filter: ["==", ["geometry-type"], "Polygon"],
      paint: { "fill-color": "#ff9800", "fill-opacity": 0.25 } });
    map.addLayer({ id: "draft-line", type: "line", source: "draft", filter: ["!=", ["geometry-type"], "Point"],
      paint: { "line-color": "#e65100", "line-width": 2 } });
    map.addLayer({ id: "draft-points", type: "circle", source: "draft", filter: ["==", ["geometry-type"], "Point"],
      paint: { "circle-radius": 5, "circle-color": "#fff", "circle-stroke-color": "#e65100", "circle-stroke-width": 2 } });
    renderDraft();
    window.fleetAdmin.fencesReady = true;
  });
  map.on("click", (event) => {
    if (draft.drawing) {
      addPoint(event.lngLat);
      return;
    }
    const hit = map.getLayer("admin-fences-fill")
      && map.queryRenderedFeatures(event.point, { layers: ["admin-fences-fill"] })[0];
    const tr = hit && rows.querySelector(`tr[data-id="${hit.properties.id}"] button`);
    if (tr) tr.focus();
  });
  map.getCanvasContainer().addEventListener("keydown", (event) => {
    if (!draft.drawing) return;
    if (event.key === "Enter") {
      event.preventDefault();
      addPoint(map.getCenter());
    } else if (event.key === "Backspace" || event.key === "Delete") {
      event.preventDefault();
      draft.points.pop();
      renderDraft();
    } else if (event.key === "Escape") setDrawing(false);
  });

  for (const radio of form.querySelectorAll("input[name=shape]")) {
    radio.addEventListener("change", () => setShape(radio.value));
  }
  drawButton.addEventListener("click", () => {
    setDrawing(!draft.drawing);
    if (draft.drawing) map.getCanvas().focus();
  });
  panel.querySelector("#fence-undo").addEventListener("click", () => { draft.points.pop(); renderDraft(); });
  panel.querySelector("#fence-clear").addEventListener("click", () => { draft.points = []; renderDraft(); });
  form.elements.radius_m.addEventListener("input", renderDraft);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const values = readFields(form, FIELDS);
    if (draft.shape !== "circle") values.radius_m = null;
    const fence = await submitting(form, () => api("/api/v1/fences", {
      method: "POST", body: createBody({ ...values, geometry: geometry() }) }));
    if (!fence) return;
    notify(`${t("admin.saved")}: ${fence.properties.name}`, "ok");
    setDrawing(false);
    draft.points = [];
    writeFields(form, FIELDS, { kind: values.kind });
    renderDraft();
    await load();
  });
  setShape("polygon");
  setDrawing(false);
  await load();
}
