// The map: MapLibre over the app's own vector tiles (roads, fences, depots), optionally over an
// intranet raster base map. No glyph server: labels use local fonts (MapLibre's TinySDF path).
import { AttributionControl, Map, NavigationControl, ScaleControl, setWorkerUrl }
  from "/vendor/maplibre-gl/maplibre-gl.mjs";
import { api, token } from "./api.js";

setWorkerUrl("/vendor/maplibre-gl/maplibre-gl-worker.mjs");

const FONT = ["Noto Sans CJK SC", "Droid Sans Fallback", "sans-serif"];
// The app's roads are an OpenStreetMap extract (fleet roads import), so its tiles carry the
// credit; a link is not a request, the page still asks nothing of the outside world.
const OSM_CREDIT = '<a href="https://www.openstreetmap.org/copyright" target="_blank" rel="noopener">'
  + "© OpenStreetMap contributors</a>";
// Room kept around what a map is fitted to, in pixels (a phone's pick map is about 300 wide).
const FIT_PADDING = 40;

function style(config) {
  const sources = {
    fleet: {
      type: "vector",
      tiles: [`${location.origin}/tiles/{z}/{x}/{y}.pbf${config.basemap.crs === "gcj02" ? "?crs=gcj02" : ""}`],
      minzoom: 0,
      maxzoom: 16,
      attribution: OSM_CREDIT,
    },
  };
  const layers = [{ id: "background", type: "background", paint: { "background-color": "#f4f1ea" } }];
  if (config.basemap.url) {
    sources.basemap = { type: "raster", tiles: [config.basemap.url], tileSize: 256,
      attribution: config.basemap.attribution || "" };
    layers.push({ id: "basemap", type: "raster", source: "basemap" });
  }
  const major = ["match", ["get", "highway"],
    ["motorway", "motorway_link", "trunk", "trunk_link"], 1, 0];
  layers.push(
    { id: "fences-fill", type: "fill", source: "fleet", "source-layer": "fences",
      paint: { "fill-color": ["match", ["get", "kind"], "prohibited", "#d62728",
        "depot", "#2ca02c", "workshop", "#8c564b", "permitted_region", "#1f77b4", "#9467bd"],
      "fill-opacity": ["match", ["get", "kind"], "permitted_region", 0.04, 0.18] } },
    { id: "fences-line", type: "line", source: "fleet", "source-layer": "fences",
      paint: { "line-color": ["match", ["get", "kind"], "prohibited", "#d62728",
        "depot", "#2ca02c", "workshop", "#8c564b", "permitted_region", "#1f77b4", "#9467bd"], "line-width": 1.2 } },
    { id: "roads-casing", type: "line", source: "fleet", "source-layer": "roads",
      paint: { "line-color": "#c9c2b4", "line-width": ["interpolate", ["linear"], ["zoom"],
        10, ["+", 1, ["*", 2, major]], 16, ["+", 5, ["*", 4, major]]] } },
    { id: "roads", type: "line", source: "fleet", "source-layer": "roads",
      paint: { "line-color": ["case", ["==", major, 1], "#f6c36b", "#ffffff"],
        "line-width": ["interpolate", ["linear"], ["zoom"],
          10, ["+", 0.5, ["*", 1.5, major]], 16, ["+", 3.5, ["*", 3, major]]] } },
    { id: "road-labels", type: "symbol", source: "fleet", "source-layer": "roads", minzoom: 12,
      layout: { "symbol-placement": "line", "text-field": ["get", "name"], "text-font": FONT,
        "text-size": 11, "text-max-angle": 30, "symbol-spacing": 300 },
      paint: { "text-color": "#5d4037", "text-halo-color": "#fff", "text-halo-width": 1.2 } },
    { id: "depots", type: "circle", source: "fleet", "source-layer": "depots",
      paint: { "circle-radius": 6, "circle-color": "#2ca02c", "circle-stroke-color": "#fff",
        "circle-stroke-width": 2 } },
    { id: "depot-labels", type: "symbol", source: "fleet", "source-layer": "depots",
      minzoom: 11, layout: { "text-field": ["get", "name"], "text-font": FONT,
        "text-size": 12, "text-offset": [0, 1.2], "text-anchor": "top" },
      paint: { "text-color": "#1b5e20", "text-halo-color": "#fff", "text-halo-width": 1.5 } },
  );
  return { version: 8, sources, layers };
}

/**
 * A map in `container`. It opens at `config.center` when one is configured; otherwise it opens on
 * `fit` ([west, south, east, north] in WGS-84, see `extent`), or at the default centre when that
 * is null.
 */
export function createMap(container, config, { fit = null } = {}) {
  const bounds = config.fit && fit ? displayBounds(config, fit) : null;
  const map = new Map({
    container,
    style: style(config),
    center: config.center,
    zoom: config.zoom,
    ...(bounds ? { bounds, fitBoundsOptions: fitOptions(config) } : {}),
    // The credit control is added below: the sources' credits (the app's tiles, the base map),
    // without the link to MapLibre's site the default control adds.
    attributionControl: false,
    localIdeographFontFamily: "'Droid Sans Fallback', sans-serif",
    transformRequest: (url) => (url.startsWith(`${location.origin}/tiles/`)
      ? { url, headers: { Authorization: `Bearer ${token()}` } } : { url }),
  });
  map.addControl(new NavigationControl({ showCompass: false }), "top-left");
  map.addControl(new ScaleControl({ unit: "metric" }), "bottom-left");
  map.addControl(new AttributionControl({ compact: true }), "bottom-right");
  return map;
}

/**
 * What a map should open on when no centre is configured (null when one is, or when there is
 * nothing to fit): the box GET /api/v1/map/extent answers, `of` "fleet" (the vehicles in the
 * caller's scope) or "depots" (the caller's unit's depots). A failed answer is no box: the map
 * still opens, at the default centre.
 */
export async function extent(config, of) {
  if (!config.fit) return null;
  try {
    return (await api(`/api/v1/map/extent?of=${of}`)).bbox;
  } catch {
    return null;
  }
}

/** The box around `points` ([lon, lat] in WGS-84), or null for none. */
export function boxAround(points) {
  if (!points.length) return null;
  const lons = points.map((p) => p[0]);
  const lats = points.map((p) => p[1]);
  return [Math.min(...lons), Math.min(...lats), Math.max(...lons), Math.max(...lats)];
}

/** Fits `map` to `fit` (a WGS-84 box) at once, as createMap would have opened it. */
export function fitTo(map, config, fit) {
  if (config.fit && fit) map.fitBounds(displayBounds(config, fit), { ...fitOptions(config), duration: 0 });
}

function fitOptions(config) {
  return { padding: FIT_PADDING, maxZoom: config.fit.max_zoom };
}

function displayBounds(config, [west, south, east, north]) {
  const move = display(config);
  return [move(west, south), move(east, north)];
}

// GCJ-02 (the datum of most Chinese base maps) from and to WGS-84, for drawing on such a map.
const A = 6378245.0;
const EE = 0.006693421622965943; // 0.00669342162296594323, as a double

function outOfChina(lon, lat) {
  return lon < 72.004 || lon > 137.8347 || lat < 0.8293 || lat > 55.8271;
}

function delta(lon, lat) {
  const x = lon - 105.0;
  const y = lat - 35.0;
  let dLat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * Math.sqrt(Math.abs(x));
  dLat += ((20.0 * Math.sin(6.0 * x * Math.PI) + 20.0 * Math.sin(2.0 * x * Math.PI)) * 2.0) / 3.0;
  dLat += ((20.0 * Math.sin(y * Math.PI) + 40.0 * Math.sin((y / 3.0) * Math.PI)) * 2.0) / 3.0;
  dLat += ((160.0 * Math.sin((y / 12.0) * Math.PI) + 320 * Math.sin((y * Math.PI) / 30.0)) * 2.0) / 3.0;
  let dLon = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * Math.sqrt(Math.abs(x));
  dLon += ((20.0 * Math.sin(6.0 * x * Math.PI) + 20.0 * Math.sin(2.0 * x * Math.PI)) * 2.0) / 3.0;
  dLon += ((20.0 * Math.sin(x * Math.PI) + 40.0 * Math.sin((x / 3.0) * Math.PI)) * 2.0) / 3.0;
  dLon += ((150.0 * Math.sin((x / 12.0) * Math.PI) + 300.0 * Math.sin((x / 30.0) * Math.PI)) * 2.0) / 3.0;
  const radLat = (lat / 180.0) * Math.PI;
  let magic = Math.sin(radLat);
  magic = 1 - EE * magic * magic;
  const sqrtMagic = Math.sqrt(magic);
  dLat = (dLat * 180.0) / (((A * (1 - EE)) / (magic * sqrtMagic)) * Math.PI);
  dLon = (dLon * 180.0) / ((A / sqrtMagic) * Math.cos(radLat) * Math.PI);
  return [dLon, dLat];
}

export function wgs84ToGcj02(lon, lat) {
  if (outOfChina(lon, lat)) return [lon, lat];
  const [dLon, dLat] = delta(lon, lat);
  return [lon + dLon, lat + dLat];
}

export function gcj02ToWgs84(lon, lat) {
  // Iterated inverse: two rounds bring it within a few centimetres.
  let [x, y] = [lon, lat];
  for (let i = 0; i < 3; i += 1) {
    const [gx, gy] = wgs84ToGcj02(x, y);
    x -= gx - lon;
    y -= gy - lat;
  }
  return [x, y];
}

// Positions as the base map expects them: shifted for a GCJ-02 base map, as they are otherwise.
export function display(config) {
  return config.basemap.crs === "gcj02" ? wgs84ToGcj02 : (lon, lat) => [lon, lat];
}
