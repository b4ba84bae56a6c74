// The map: Leaflet (SVG, so it draws in any browser without a GPU) over what the operator set in
// `[web]` (GET /web/config.json): raster tiles (`web.tile_url`), or a PMTiles basemap served by
// kreki itself (`web.basemap_pmtiles`: vector tiles drawn by protomaps-leaflet on a canvas, or
// raster tiles through pmtiles' Leaflet layer), streets included and no internet needed; with
// neither (or when the basemap cannot be read) the bundled Natural Earth outlines. Markers carry text as well as colour, so their meaning
// survives colour blindness, glare and screen readers.
/* global L, pmtiles, protomapsL */

/** Greater Jakarta, where the demo and the benchmark data live. */
export const JAKARTA = { lat: -6.2, lng: 106.85 };

/** Short, language-neutral letters for each alert kind (the legend explains them). */
export const KIND_CODE = {
  medical: 'MED', cardiac_arrest: 'CPR', accident: 'ACC', fire: 'FIRE', disaster: 'DIS', security: 'SEC', other: '?',
};

/**
 * Makes a map in `element`, centred on `center`. Resolves once the basemap (or the tile layer) is
 * in place, so screenshots and tests see a drawn map. Returns the Leaflet map.
 */
export async function createMap(element, { center = JAKARTA, zoom = 10, label = '' } = {}) {
  const map = L.map(element, { preferCanvas: false, zoomControl: true, attributionControl: true, minZoom: 4, maxZoom: 18 })
    .setView([center.lat, center.lng], zoom);
  element.setAttribute('role', 'region');
  if (label) element.setAttribute('aria-label', label);
  let config = {};
  try {
    const response = await fetch('/web/config.json', { cache: 'no-store' });
    if (response.ok) config = await response.json();
  } catch {
    config = {};
  }
  if (config.tile_url) {
    L.tileLayer(config.tile_url, { maxZoom: 19, attribution: config.tile_attribution || '' }).addTo(map);
    element.dataset.basemap = 'tiles';
  } else if (config.pmtiles_url && await pmtilesLayer(map, config)) {
    element.dataset.basemap = 'pmtiles';
  } else {
    element.classList.add('kreki-offline-basemap');
    try {
      const response = await fetch('/web/vendor/basemap.geojson');
      const basemap = await response.json();
      L.geoJSON(basemap, {
        interactive: false,
        style: { color: '#4a4a4a', weight: 1, fillColor: '#f3efe3', fillOpacity: 1 },
      }).addTo(map);
      map.attributionControl.addAttribution(basemap.attribution || 'Natural Earth');
      element.dataset.basemap = 'offline';
    } catch {
      element.dataset.basemap = 'none';
    }
  }
  return map;
}

/** Loads a vendored script once (a classic script: the libraries set a global). */
function loadScript(src) {
  loadScript.loaded ??= new Map();
  if (!loadScript.loaded.has(src)) {
    loadScript.loaded.set(src, new Promise((resolve, reject) => {
      const script = document.createElement('script');
      script.src = src;
      script.onload = resolve;
      script.onerror = reject;
      document.head.append(script);
    }));
  }
  return loadScript.loaded.get(src);
}

/** Adds the PMTiles basemap; false when it cannot be read (the outlines are drawn instead). */
async function pmtilesLayer(map, config) {
  try {
    await loadScript('/web/vendor/pmtiles.js');
    const archive = new pmtiles.PMTiles(config.pmtiles_url);
    const header = await archive.getHeader();
    const attribution = config.pmtiles_attribution || '';
    if (header.tileType === pmtiles.TileType.Mvt) {
      await loadScript('/web/vendor/protomaps-leaflet.js');
      const lang = document.documentElement.lang === 'en' ? 'en' : 'id';
      protomapsL.leafletLayer({ url: config.pmtiles_url, flavor: 'light', lang, attribution, maxDataZoom: header.maxZoom }).addTo(map);
    } else {
      pmtiles.leafletRasterLayer(archive, { attribution, maxNativeZoom: header.maxZoom, maxZoom: 19 }).addTo(map);
    }
    map.getContainer().dataset.basemapZoom = `${header.minZoom}-${header.maxZoom}`;
    return true;
  } catch (error) {
    console.warn('PMTiles basemap not drawn; using the outlines', error);
    return false;
  }
}

/** A marker icon: a labelled pin whose text names the kind and whose border shape shows status. */
export function alertIcon(alert) {
  const code = KIND_CODE[alert.kind] ?? '?';
  return L.divIcon({
    className: '',
    html: `<span class="pin pin-alert kind-${alert.kind} status-${alert.status}${alert.drill === true ? ' drill' : ''}">${code}</span>`,
    iconSize: null,
    iconAnchor: [22, 16],
  });
}

/** A volunteer icon: a round badge, hollow when free, filled with a bar when busy. */
export function volunteerIcon(volunteer) {
  return L.divIcon({
    className: '',
    html: `<span class="pin pin-volunteer ${volunteer.busy ? 'busy' : 'free'}">${volunteer.busy ? 'V•' : 'V'}</span>`,
    iconSize: null,
    iconAnchor: [16, 16],
  });
}
