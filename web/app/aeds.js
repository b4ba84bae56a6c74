// AEDs near the citizen: verified devices, in service and inside their opening hours now (the
// registry's `available_now`), nearest first, each with the exact place described, how far it is
// and a link to walk there. Shown under the panic button and while help comes, so someone nearby
// can fetch one; the registry answers within 1 km.
import { distanceM, esc } from '/web/shared/api.js';
import { distance, t } from '/web/shared/i18n.js';

const $ = (id) => document.getElementById(id);
/** How far around the citizen devices are asked for, in metres. */
const NEAR_RADIUS_M = 1000;
/** Most devices listed. */
const MAX_SHOWN = 5;
const state = { list: [], from: null, visible: false };

/** Asks for the devices around `from` ({lat, lng}); keeps the last list when offline. */
export async function loadNearbyAeds(api, from) {
  if (!from) return;
  state.from = from;
  try {
    const aeds = await api.request('GET', `/v1/aeds?near=${from.lat.toFixed(6)},${from.lng.toFixed(6)}&radius_m=${NEAR_RADIUS_M}`);
    state.list = (aeds ?? []).filter((aed) => aed.verified && !aed.out_of_service && aed.available_now).slice(0, MAX_SHOWN);
  } catch {
    // Offline or a server without the registry: nothing new to show.
  }
  renderNearbyAeds();
}

/** Shows the section on the screens where it helps (the panic button, the status). */
export function showNearbyAeds(visible) {
  state.visible = visible;
  renderNearbyAeds();
}

export function renderNearbyAeds() {
  const section = $('aeds');
  section.hidden = !state.visible || state.list.length === 0;
  $('aed-nearby').innerHTML = state.list.map((aed) => {
    const away = state.from ? distanceM(state.from, aed) : null;
    return `<li class="card" data-aed="${esc(aed.id)}">
      <strong>AED</strong> · ${esc(aed.description)}<br>
      <span>${esc(away === null ? '' : t('app.aed.away', { distance: distance(away) }))}</span>
      <span class="badge ok">${esc(t('aed.available'))}</span>
      <a class="button" href="https://www.openstreetmap.org/directions?engine=fossgis_osrm_foot&route=${state.from ? `${state.from.lat},${state.from.lng}` : ''}%3B${aed.lat}%2C${aed.lng}" target="_blank" rel="noopener">${esc(t('app.aed.walk'))}</a>
    </li>`;
  }).join('');
}
