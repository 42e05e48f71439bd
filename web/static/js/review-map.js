// The evidence map of one alert: the track around the episode, the part the rule flagged, the
// fence, the order's planned route, the alert's own position, and a marker that plays the track
// back. Loaded on demand, because it pulls in MapLibre.
import { createMap, display, fitTo } from "./map.js";

const EMPTY = { type: "FeatureCollection", features: [] };
const FENCE_COLOUR = ["match", ["get", "kind"], "prohibited", "#d62728", "depot", "#2ca02c",
  "workshop", "#8c564b", "permitted_region", "#1f77b4", "#9467bd"];
// Layer ids the tests query with queryRenderedFeatures.
export const LAYERS = {
  fenceFill: "review-fence-fill",
  fenceLine: "review-fence-line",
  route: "review-route",
  track: "review-track",
  flagged: "review-flagged",
  flaggedPoints: "review-flagged-points",
  point: "review-point",
  marker: "review-marker",
};

function collection(...features) {
  return { type: "FeatureCollection", features: features.filter(Boolean) };
}

function feature(geometry, properties = {}) {
  return geometry ? { type: "Feature", geometry, properties } : null;
}

export class EvidenceMap {
  /** `fit`: the box around the caller's vehicles, where the map opens and returns to when an
   * alert has nothing to draw (see createMap). */
  constructor(container, config, { fit = null } = {}) {
    this.map = createMap(container, config, { fit });
    this.config = config;
    this.home = fit;
    this.move = display(config);
    this.ready = new Promise((resolve) => {
      this.map.on("load", () => {
        this.addLayers();
        resolve(this);
      });
    });
  }

  shift(geometry) {
    if (!geometry) return null;
    const walk = (c) => (typeof c[0] === "number" ? this.move(c[0], c[1]) : c.map(walk));
    return { ...geometry, coordinates: walk(geometry.coordinates) };
  }

  addLayers() {
    const map = this.map;
    for (const name of ["fence", "route", "track", "flagged", "point", "marker"]) {
      map.addSource(`review-${name}`, { type: "geojson", data: EMPTY });
    }
    const polygons = ["==", ["geometry-type"], "Polygon"];
    map.addLayer({ id: LAYERS.fenceFill, type: "fill", source: "review-fence", filter: polygons,
      paint: { "fill-color": FENCE_COLOUR, "fill-opacity": 0.15 } });
    map.addLayer({ id: LAYERS.fenceLine, type: "line", source: "review-fence",
      paint: { "line-color": FENCE_COLOUR, "line-width": 2 } });
    map.addLayer({ id: LAYERS.route, type: "line", source: "review-route",
      layout: { "line-cap": "round" },
      paint: { "line-color": "#2e7d32", "line-width": 3, "line-dasharray": [2, 1.5], "line-opacity": 0.8 } });
    map.addLayer({ id: LAYERS.track, type: "line", source: "review-track",
      layout: { "line-cap": "round", "line-join": "round" },
      paint: { "line-color": "#1565c0", "line-width": 3.5 } });
    map.addLayer({ id: LAYERS.flagged, type: "line", source: "review-flagged",
      filter: ["==", ["geometry-type"], "LineString"],
      layout: { "line-cap": "round", "line-join": "round" },
      paint: { "line-color": "#d62728", "line-width": 7, "line-opacity": 0.85 } });
    map.addLayer({ id: LAYERS.flaggedPoints, type: "circle", source: "review-flagged",
      filter: ["==", ["geometry-type"], "Point"],
      paint: { "circle-radius": 5, "circle-color": "#d62728" } });
    map.addLayer({ id: LAYERS.point, type: "circle", source: "review-point",
      paint: { "circle-radius": 9, "circle-color": "rgba(0,0,0,0)", "circle-stroke-color": "#d62728",
        "circle-stroke-width": 3 } });
    map.addLayer({ id: LAYERS.marker, type: "circle", source: "review-marker",
      paint: { "circle-radius": 7, "circle-color": "#ffffff", "circle-stroke-color": "#102a43",
        "circle-stroke-width": 3 } });
  }

  set(name, data) {
    this.map.getSource(`review-${name}`).setData(data);
  }

  /** Draws the alert's evidence and frames it; `route` is the order's planned route, if any. */
  draw(alert, route) {
    const evidence = alert.evidence || {};
    this.set("track", collection(feature(this.shift(evidence.track))));
    let flagged = feature(this.shift(evidence.flagged));
    if (!flagged) {
      // One flagged fix makes no line; show it as a dot rather than nothing.
      const dots = (evidence.points || []).filter((p) => p.flagged);
      flagged = dots.length ? feature(this.shift({ type: "MultiPoint",
        coordinates: dots.map((p) => [p.lon, p.lat]) })) : null;
    }
    this.set("flagged", collection(flagged));
    const fence = evidence.fence;
    const fenceFeatures = [];
    if (fence) {
      const props = { kind: fence.properties?.kind, name: fence.properties?.name };
      fenceFeatures.push(feature(this.shift(fence.properties?.area || fence.geometry), props));
      // A corridor's centre line says more than its buffer alone.
      if (fence.properties?.area && fence.geometry?.type === "LineString") {
        fenceFeatures.push(feature(this.shift(fence.geometry), props));
      }
    }
    this.set("fence", collection(...fenceFeatures));
    this.set("route", collection(feature(this.shift(route))));
    const place = alert.lon != null && alert.lat != null
      ? { type: "Point", coordinates: [alert.lon, alert.lat] } : null;
    this.set("point", collection(feature(this.shift(place))));
    this.set("marker", EMPTY);
    this.frame([evidence.track, evidence.flagged, place], fence);
  }

  // Frames the track and the alert's place; a fence (a whole city, say) only when nothing else is;
  // the caller's vehicles when there is nothing at all.
  frame(geometries, fence) {
    const coords = [];
    const collect = (c) => (typeof c[0] === "number" ? coords.push(this.move(c[0], c[1])) : c.forEach(collect));
    for (const g of geometries) if (g) collect(g.coordinates);
    if (!coords.length && fence) collect((fence.properties?.area || fence.geometry).coordinates);
    if (!coords.length) {
      fitTo(this.map, this.config, this.home);
      return;
    }
    const lons = coords.map((c) => c[0]);
    const lats = coords.map((c) => c[1]);
    const bounds = [[Math.min(...lons), Math.min(...lats)], [Math.max(...lons), Math.max(...lats)]];
    if (bounds[0][0] === bounds[1][0] && bounds[0][1] === bounds[1][1]) {
      this.map.jumpTo({ center: bounds[0], zoom: 15 });
    } else {
      this.map.fitBounds(bounds, { padding: 48, maxZoom: 17, duration: 0 });
    }
  }

  marker(lon, lat) {
    const at = this.move(lon, lat);
    this.set("marker", collection(feature({ type: "Point", coordinates: at })));
    return at;
  }
}

/** Plays a track back: a slider over its seconds and a play/pause button driving `onMove`. */
export class Playback {
  constructor({ button, slider, rate, onMove, onState }) {
    this.button = button;
    this.slider = slider;
    this.rate = rate;
    this.onMove = onMove;
    this.onState = onState;
    this.points = [];
    this.playing = false;
    this.at = 0; // seconds since the first fix
    this.frame = 0;
    button.addEventListener("click", () => (this.playing ? this.pause() : this.play()));
    slider.addEventListener("input", () => {
      this.pause();
      this.seek(Number(slider.value));
    });
  }

  load(points) {
    this.pause();
    this.points = points
      .map((p) => ({ ...p, ms: Date.parse(p.fix_time) }))
      .filter((p) => Number.isFinite(p.ms) && p.lon != null && p.lat != null);
    const usable = this.points.length >= 2;
    this.span = usable ? (this.points.at(-1).ms - this.points[0].ms) / 1000 : 0;
    this.slider.max = String(Math.ceil(this.span));
    this.slider.disabled = !usable;
    this.button.disabled = !usable;
    this.seek(0);
  }

  // The position at `seconds`, between the two fixes around it.
  sample(seconds) {
    const points = this.points;
    if (!points.length) return null;
    const ms = points[0].ms + seconds * 1000;
    let lo = 0;
    let hi = points.length - 1;
    if (ms >= points[hi].ms) return { ...points[hi], ms: points[hi].ms };
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      if (points[mid].ms <= ms) lo = mid;
      else hi = mid;
    }
    const a = points[lo];
    const b = points[hi];
    const f = b.ms === a.ms ? 0 : (ms - a.ms) / (b.ms - a.ms);
    return { lon: a.lon + (b.lon - a.lon) * f, lat: a.lat + (b.lat - a.lat) * f, ms,
      speed_kmh: a.speed_kmh, flagged: a.flagged && b.flagged };
  }

  seek(seconds) {
    this.at = Math.min(Math.max(seconds, 0), this.span || 0);
    this.slider.value = String(Math.floor(this.at));
    const here = this.sample(this.at);
    if (here) this.onMove(here);
  }

  play() {
    if (this.points.length < 2) return;
    if (this.at >= this.span) this.seek(0);
    this.playing = true;
    this.onState(true);
    let last = performance.now();
    const tick = (now) => {
      if (!this.playing) return;
      const dt = (now - last) / 1000;
      last = now;
      this.seek(this.at + dt * Number(this.rate.value || 30));
      if (this.at >= this.span) {
        this.pause();
        return;
      }
      this.frame = requestAnimationFrame(tick);
    };
    this.frame = requestAnimationFrame(tick);
  }

  pause() {
    cancelAnimationFrame(this.frame);
    if (this.playing) {
      this.playing = false;
      this.onState(false);
    }
  }
}
