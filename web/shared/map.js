// The map: Leaflet (SVG, so it draws in any browser without a GPU) over the bundled offline
// basemap (Natural Earth countries around Indonesia), or over raster tiles when the operator set
// `web.tile_url` (GET /web/config.json). Markers carry text as well as colour, so their meaning
// survives colour blindness, glare and screen readers.
/* global L */

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
