// The coordinator dashboard: sign in, then a live map of open alerts, on-duty volunteers and the
// lines between each alert and its responders; a filterable alert list; the selected alert's detail
// with its timeline, manual assignment (free volunteers nearest first) and cancel; live figures.
// State comes from HTTP (GET /v1/alerts, GET /v1/volunteers?bbox=) and is kept current by /v1/ws;
// a slow poll covers what a missed message would leave stale.
//
// Drills (the alert's `drill` flag, set by `kreki simulate` or an exercise) are shown with a badge
// and kept out of the figures: a coordinator reads "open", "unmatched" and the median as the state
// of real emergencies, and sees the open drills counted apart beneath them.
//
// SATUSEHAT sync failures (sync.js), check-ins asking for support (support.js) and recording an
// outcome (resolve.js) have modules of their own; the AED screen is aeds.html. The operations centre
// (triage queue, escalation alarm, region filter: operations.js) and the coordinator's tools in the
// detail (notes, hand-off, re-dispatch: tools.js) too.
/* global L */
import { Api, ApiError, distanceM, esc, signInForm } from '/web/shared/api.js';
import { applyI18n, clock, distance, initI18n, onLanguage, t } from '/web/shared/i18n.js';
import { connectLive } from '/web/shared/live.js';
import { alertIcon, createMap, KIND_CODE, volunteerIcon } from '/web/shared/map.js';
import { initSupport, loadSupport, onSupportMessage, renderSupport } from '/dashboard/support.js';
import { initResolve, renderResolve } from '/dashboard/resolve.js';
import { initSync, loadSyncFailures, onSyncClick, renderSync, syncFailuresOf } from '/dashboard/sync.js';
import { clearFieldErrors, showProblem } from '/web/shared/forms.js';
import '/dashboard/operations-text.js';
import { initOperations, inRegion, loadOperations, onOperationsMessage, renderOperations } from '/dashboard/operations.js';
import { initTools, renderTools } from '/dashboard/tools.js';
import { initCallback, renderCallback } from '/dashboard/callback.js';
import { initWarnings, onWarningsMessage, warningCorners, warningMark } from '/dashboard/warnings.js';
import { describe } from '/dashboard/timeline.js';

const KINDS = ['medical', 'cardiac_arrest', 'accident', 'fire', 'disaster', 'security', 'other'];
const STATUSES = ['triage', 'dispatching', 'assigned', 'on_scene', 'unmatched', 'resolved', 'cancelled'];
const OPEN = new Set(['triage', 'dispatching', 'assigned', 'on_scene', 'unmatched']);
const ACTIVE_ASSIGNMENT = new Set(['accepted', 'en_route', 'on_scene']);
/** How often state is refetched even when the live channel is quiet, in milliseconds. */
const POLL_MS = 20000;
/** True for a drill: the flag the platform stores, never anything a citizen typed. */
const isDrill = (alert) => alert.drill === true;
/** The drill badge, or nothing. */
const drillBadge = (alert) => (isDrill(alert)
  ? ` <span class="badge drill" aria-label="${esc(t('dash.drill.aria'))}">${esc(t('dash.drill'))}</span>` : '');
/** How far around an alert free volunteers are looked for, in degrees (~15 km at the equator). */
const SUGGEST_RADIUS_DEG = 0.15;
/** Most suggestions shown. */
const SUGGEST_MAX = 8;

const api = new Api('dashboard');
const $ = (id) => document.getElementById(id);
const state = {
  alerts: new Map(),
  volunteers: new Map(),
  selected: null,
  map: null,
  layers: null,
  markers: new Map(),
  volunteerMarkers: new Map(),
  live: null,
  poll: null,
};

initI18n();
initSupport(api, { select: (id) => select(id) });
initSync({ api, alerts: () => state.alerts, selected: () => state.selected, select: (id) => select(id), renderDetail: () => renderDetail() });
initResolve(api, {
  onResolved: (alert) => {
    state.alerts.set(alert.id, alert);
    render();
    renderDetail();
  },
});
initOperations(api, {
  alerts: () => state.alerts,
  upsert: (alert) => state.alerts.set(alert.id, { ...state.alerts.get(alert.id), ...alert }),
  select: (id) => select(id),
  onFilter: () => render(),
});
initTools(api, {
  onChanged: (alert, id) => {
    if (alert) state.alerts.set(alert.id, alert);
    loadDetail(id);
  },
});
initCallback(api, { onViewed: (id) => loadDetail(id) });
fillFilters();
onLanguage(() => {
  fillFilters();
  render();
  renderSupport();
  if (state.selected) renderDetail();
});
api.onSignedOut = () => showSignIn();
signInForm($('signin-form'), api, {
  role: 'coordinator',
  onError: (key, vars) => showError($('signin-error'), t(key, vars)),
  done: () => start(),
});
$('signout').addEventListener('click', async () => {
  await api.signOut();
  location.reload();
});
$('filter-status').addEventListener('change', renderList);
$('filter-kind').addEventListener('change', renderList);
$('detail-close').addEventListener('click', () => select(null));
$('cancel-form').addEventListener('submit', cancelSelected);
$('sync-list').addEventListener('click', onSyncClick);
$('detail-body').addEventListener('click', onSyncClick);

if (api.session && api.hasRole('coordinator')) start();
else showSignIn();

function showSignIn() {
  state.live?.close();
  clearInterval(state.poll);
  $('dash').hidden = true;
  $('signin').hidden = false;
  $('login').focus();
}

function showError(element, text) {
  element.textContent = text;
  element.hidden = !text;
}

function fillFilters() {
  const status = $('filter-status');
  const kind = $('filter-kind');
  const keepStatus = status.value || 'open';
  const keepKind = kind.value || '';
  status.innerHTML = [`<option value="open">${esc(t('dash.filter.open'))}</option>`, `<option value="">${esc(t('dash.filter.all'))}</option>`]
    .concat(STATUSES.map((s) => `<option value="${s}">${esc(t(`status.${s}`))}</option>`)).join('');
  kind.innerHTML = [`<option value="">${esc(t('dash.filter.all'))}</option>`]
    .concat(KINDS.map((k) => `<option value="${k}">${esc(t(`kind.${k}`))} (${KIND_CODE[k]})</option>`)).join('');
  status.value = keepStatus;
  kind.value = keepKind;
}

async function start() {
  $('signin').hidden = true;
  $('dash').hidden = false;
  $('who').textContent = api.user?.name ?? '';
  applyI18n();
  if (!state.map) {
    state.map = await createMap($('map'), { label: t('dash.map') });
    state.layers = {
      lines: L.layerGroup().addTo(state.map),
      volunteers: L.layerGroup().addTo(state.map),
      alerts: L.layerGroup().addTo(state.map),
    };
    state.map.on('moveend', () => loadVolunteers());
    state.map.on('zoomend', () => { $('map').dataset.zoom = String(state.map.getZoom()); });
    // The coordinator's own hand on the map (drag, wheel, zoom buttons, keys) ends the automatic
    // framing. DOM events, not Leaflet's zoomstart, which our own animated fits fire a frame later.
    for (const type of ['pointerdown', 'wheel', 'keydown']) {
      $('map').addEventListener(type, () => { state.userMoved = true; }, { passive: true });
    }
  }
  await refresh();
  await loadOperations(state.map);
  await initWarnings(api, state.map, () => renderList());
  render();
  await fitToWhatMatters();
  loadSupport();
  state.live = connectLive(api, {
    onMessage: onLive,
    onState: (on) => {
      const live = $('live');
      live.dataset.on = String(on);
      live.dataset.i18n = on ? 'common.live.on' : 'common.live.off';
      live.textContent = t(live.dataset.i18n);
    },
    onResync: () => {
      refresh().then(() => loadOperations(state.map));
      loadSupport();
    },
  });
  clearInterval(state.poll);
  state.poll = setInterval(refresh, POLL_MS);
}

/**
 * Opens the map on the coordinator's own picture: every open alert and every on-duty volunteer
 * they can see (all of them, not only those in today's view), not the whole country. Jakarta
 * stays the view when there is nothing yet.
 */
async function fitToWhatMatters() {
  if (state.userMoved) return;
  let volunteers = [];
  try {
    volunteers = (await api.request('GET', '/v1/volunteers')) ?? [];
  } catch {
    volunteers = [...state.volunteers.values()];
  }
  const points = [
    ...[...state.alerts.values()].filter((a) => OPEN.has(a.status)).map((a) => [a.location.lat, a.location.lng]),
    ...volunteers.filter((v) => v.on_duty && typeof v.lat === 'number').map((v) => [v.lat, v.lng]),
    ...warningCorners(),
  ];
  if (points.length === 0) return;
  state.framed = state.markers.size;
  state.map.fitBounds(L.latLngBounds(points).pad(0.2), { maxZoom: 15, animate: false });
  $('map').dataset.zoom = String(state.map.getZoom());
  $('map').dataset.fitted = String(points.length);
}

async function refresh() {
  await Promise.all([loadAlerts(), loadVolunteers(), loadSyncFailures()]);
  if (state.selected) loadDetail(state.selected);
}

function serviceProblem(error) {
  if (error instanceof ApiError && [404, 405, 501].includes(error.status)) {
    showError($('service-error'), t('common.error.unavailable', { status: error.status }));
  } else if (error instanceof ApiError && error.status === 0) {
    showError($('service-error'), t('common.error.network'));
  } else {
    showError($('service-error'), t('common.error.generic', { detail: error.message }));
  }
}

async function loadAlerts() {
  try {
    const alerts = await api.request('GET', '/v1/alerts');
    state.alerts = new Map((alerts ?? []).map((alert) => [alert.id, alert]));
    showError($('service-error'), '');
  } catch (error) {
    serviceProblem(error);
  }
  render();
}

function bboxOf(bounds) {
  const r = (n) => n.toFixed(5);
  return [r(bounds.getWest()), r(bounds.getSouth()), r(bounds.getEast()), r(bounds.getNorth())].join(',');
}

async function fetchVolunteers(bbox) {
  const list = await api.request('GET', `/v1/volunteers?bbox=${bbox}`);
  return list ?? [];
}

async function loadVolunteers() {
  if (!state.map) return;
  try {
    const list = await fetchVolunteers(bboxOf(state.map.getBounds().pad(0.2)));
    state.volunteers = new Map(list.map((v) => [v.id, v]));
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 0)) serviceProblem(error);
  }
  render();
}

/** One message from /v1/ws. Fields are read leniently: the whole object when sent, else its id. */
function onLive(message) {
  if (onSupportMessage(message) || onOperationsMessage(message) || onWarningsMessage(message)) return;
  switch (message.type) {
    case 'alert.updated': {
      const alert = message.alert ?? (message.kind && message.status ? message : null);
      if (alert?.id) {
        const isNew = !state.alerts.has(alert.id);
        state.alerts.set(alert.id, { ...state.alerts.get(alert.id), ...alert });
        if (isNew) announce(alert);
        render();
        if (state.selected === alert.id) loadDetail(alert.id);
      } else {
        refetchAlert(message.alert_id ?? message.id);
      }
      break;
    }
    case 'assignment.updated': {
      const assignment = message.assignment ?? message;
      refetchAlert(assignment.alert_id ?? message.alert_id);
      reloadVolunteersSoon(); // busy or free now
      break;
    }
    case 'volunteer.position': {
      const position = message.volunteer ?? message;
      const id = position.volunteer_id ?? position.user_id ?? position.id;
      if (!id || typeof position.lat !== 'number') break;
      if (!state.volunteers.has(id)) reloadVolunteersSoon();
      const known = state.volunteers.get(id) ?? { id, name: position.name ?? '', on_duty: true, busy: false };
      state.volunteers.set(id, { ...known, ...pick(position, ['lat', 'lng', 'busy', 'on_duty', 'name', 'updated_at']) });
      state.positions = (state.positions ?? 0) + 1;
      $('map').dataset.positions = String(state.positions);
      renderMap();
      break;
    }
    default:
      break;
  }
}

/** A volunteer the page does not know yet moved: fetch the list (names, busy) once things settle. */
function reloadVolunteersSoon() {
  clearTimeout(state.volunteerReload);
  state.volunteerReload = setTimeout(loadVolunteers, 500);
}

function pick(object, keys) {
  return Object.fromEntries(keys.filter((key) => object[key] !== undefined).map((key) => [key, object[key]]));
}

async function refetchAlert(id) {
  if (!id) return;
  try {
    const alert = await api.request('GET', `/v1/alerts/${encodeURIComponent(id)}`);
    const isNew = !state.alerts.has(alert.id);
    state.alerts.set(alert.id, alert);
    if (isNew) announce(alert);
    render();
    if (state.selected === alert.id) loadDetail(alert.id);
  } catch {
    // The next poll catches up.
  }
}

function announce(alert) {
  $('announce').textContent = `${t(`kind.${alert.kind}`)} — ${t(`status.${alert.status}`)}${isDrill(alert) ? ` (${t('dash.drill')})` : ''}`;
}

function render() {
  renderMap();
  renderList();
  renderFigures();
  renderSync();
  renderOperations();
}

function activeAssignments(alert) {
  return (alert.assignments ?? []).filter((a) => ACTIVE_ASSIGNMENT.has(a.status));
}

function renderMap() {
  if (!state.layers) return;
  const seen = new Set();
  for (const alert of state.alerts.values()) {
    if (!OPEN.has(alert.status) && alert.id !== state.selected) continue;
    if (!inRegion(alert) && alert.id !== state.selected) continue;
    seen.add(alert.id);
    const at = [alert.location.lat, alert.location.lng];
    const title = `${t(`kind.${alert.kind}`)} — ${t(`status.${alert.status}`)}${isDrill(alert) ? ` (${t('dash.drill')})` : ''}`;
    let marker = state.markers.get(alert.id);
    if (!marker) {
      marker = L.marker(at, { icon: alertIcon(alert), title, alt: title, keyboard: true, riseOnHover: true, zIndexOffset: 1000 });
      marker.on('click', () => select(alert.id));
      marker.addTo(state.layers.alerts);
      state.markers.set(alert.id, marker);
    } else {
      marker.setLatLng(at);
      marker.setIcon(alertIcon(alert));
    }
    const element = marker.getElement();
    if (element) {
      element.dataset.alertId = alert.id;
      element.setAttribute('aria-label', title);
      element.title = title;
    }
  }
  for (const [id, marker] of state.markers) {
    if (!seen.has(id)) {
      marker.remove();
      state.markers.delete(id);
    }
  }

  const seenVolunteers = new Set();
  for (const volunteer of state.volunteers.values()) {
    if (!volunteer.on_duty || typeof volunteer.lat !== 'number') continue;
    seenVolunteers.add(volunteer.id);
    const title = `${volunteer.name} — ${t(volunteer.busy ? 'dash.volunteer.busy' : 'dash.volunteer.free')}`;
    let marker = state.volunteerMarkers.get(volunteer.id);
    if (!marker) {
      marker = L.marker([volunteer.lat, volunteer.lng], { icon: volunteerIcon(volunteer), title, alt: title, keyboard: false });
      marker.addTo(state.layers.volunteers);
      state.volunteerMarkers.set(volunteer.id, marker);
    } else {
      marker.setLatLng([volunteer.lat, volunteer.lng]);
      marker.setIcon(volunteerIcon(volunteer));
    }
    const element = marker.getElement();
    if (element) {
      element.dataset.volunteerId = volunteer.id;
      element.dataset.at = `${volunteer.lat},${volunteer.lng}`;
      element.title = title;
    }
  }
  for (const [id, marker] of state.volunteerMarkers) {
    if (!seenVolunteers.has(id)) {
      marker.remove();
      state.volunteerMarkers.delete(id);
    }
  }

  state.layers.lines.clearLayers();
  for (const alert of state.alerts.values()) {
    if (!OPEN.has(alert.status)) continue;
    for (const assignment of activeAssignments(alert)) {
      const volunteer = state.volunteers.get(assignment.volunteer?.id);
      if (!volunteer || typeof volunteer.lat !== 'number') continue;
      L.polyline([[volunteer.lat, volunteer.lng], [alert.location.lat, alert.location.lng]], {
        color: '#0b4f9c', weight: 4, dashArray: '8 6', className: 'responder-line', interactive: false,
      }).addTo(state.layers.lines);
    }
  }
  if (!state.userMoved && state.markers.size > (state.framed ?? 0)) {
    // Each time there is more to see, show all of it, until the coordinator moves the map.
    state.framed = state.markers.size;
    state.map.fitBounds(L.featureGroup([...state.markers.values()]).getBounds().pad(0.3), { maxZoom: 13 });
  }
  $('map').dataset.alerts = String(state.markers.size);
  $('map').dataset.volunteers = String(state.volunteerMarkers.size);
}

function filtered() {
  const status = $('filter-status').value;
  const kind = $('filter-kind').value;
  return [...state.alerts.values()]
    .filter((a) => (status === 'open' ? OPEN.has(a.status) : !status || a.status === status))
    .filter((a) => !kind || a.kind === kind)
    .filter((a) => inRegion(a))
    .sort((a, b) => String(b.created_at).localeCompare(String(a.created_at)));
}

function renderList() {
  const list = filtered();
  $('alerts').innerHTML = list.length === 0
    ? `<li class="muted">${esc(t('dash.list.empty'))}</li>`
    : list.map((alert) => {
      const responders = activeAssignments(alert).map((a) => a.volunteer?.name).filter(Boolean).join(', ');
      return `<li><button type="button" data-id="${esc(alert.id)}" aria-current="${alert.id === state.selected}">
        <span><span class="badge">${esc(KIND_CODE[alert.kind] ?? '?')}</span> ${esc(t(`kind.${alert.kind}`))}${drillBadge(alert)}${warningMark(alert)}<br>
        <small>${esc(clock(alert.created_at))}${responders ? ` · ${esc(responders)}` : ''}</small></span>
        <span class="badge">${esc(t(`status.${alert.status}`))}</span></button></li>`;
    }).join('');
  for (const button of $('alerts').querySelectorAll('button[data-id]')) {
    button.addEventListener('click', () => select(button.dataset.id));
  }
}

/** The calendar day in Asia/Jakarta of an ISO time, as YYYY-MM-DD. */
function jakartaDay(date) {
  return new Date(date).toLocaleDateString('en-CA', { timeZone: 'Asia/Jakarta' });
}

function renderFigures() {
  const all = [...state.alerts.values()];
  // The figures are about real emergencies; open drills are counted apart, beneath them.
  const alerts = all.filter((a) => !isDrill(a));
  const drills = all.filter((a) => isDrill(a) && OPEN.has(a.status)).length;
  $('fig-drills').textContent = t('dash.fig.drills', { n: drills });
  $('fig-drills').hidden = drills === 0;
  $('fig-open').textContent = String(alerts.filter((a) => OPEN.has(a.status)).length);
  $('fig-unmatched').textContent = String(alerts.filter((a) => a.status === 'unmatched').length);
  const today = jakartaDay(Date.now());
  const waits = alerts
    .filter((a) => a.created_at && jakartaDay(a.created_at) === today)
    .map((a) => {
      const accepts = (a.assignments ?? []).map((x) => Date.parse(x.accepted_at)).filter(Number.isFinite);
      return accepts.length ? (Math.min(...accepts) - Date.parse(a.created_at)) / 1000 : null;
    })
    .filter((s) => s !== null && s >= 0)
    .sort((x, y) => x - y);
  let median = null;
  if (waits.length) {
    const mid = Math.floor(waits.length / 2);
    median = waits.length % 2 ? waits[mid] : (waits[mid - 1] + waits[mid]) / 2;
  }
  $('fig-median').textContent = median === null ? '—'
    : median < 10 ? `${median.toFixed(1)} s` : median < 60 ? `${Math.round(median)} s` : `${Math.floor(median / 60)}:${String(Math.round(median % 60)).padStart(2, '0')}`;
  $('fig-volunteers').textContent = String([...state.volunteers.values()].filter((v) => v.on_duty).length);
}

function select(id) {
  state.selected = id;
  $('detail').hidden = !id;
  if (!id) {
    renderResolve(null);
    renderTools(null);
    renderCallback(null);
  }
  showError($('detail-message'), '');
  renderList();
  if (id) {
    renderDetail();
    loadDetail(id);
    const alert = state.alerts.get(id);
    if (alert && state.map) state.map.panTo([alert.location.lat, alert.location.lng]);
    $('detail-title').focus?.();
  }
}

async function loadDetail(id) {
  try {
    const [alert, timeline] = await Promise.all([
      api.request('GET', `/v1/alerts/${encodeURIComponent(id)}`),
      api.request('GET', `/v1/alerts/${encodeURIComponent(id)}/timeline`).catch(() => []),
    ]);
    state.alerts.set(alert.id, alert);
    state.timeline = timeline ?? [];
    await loadSuggestions(alert);
  } catch (error) {
    showError($('detail-message'), t('common.error.generic', { detail: error.message }));
  }
  if (state.selected === id) renderDetail();
  render();
}

async function loadSuggestions(alert) {
  const { lat, lng } = alert.location;
  const d = SUGGEST_RADIUS_DEG;
  let nearby = [];
  try {
    nearby = await fetchVolunteers([lng - d, lat - d, lng + d, lat + d].map((n) => n.toFixed(5)).join(','));
  } catch {
    nearby = [...state.volunteers.values()];
  }
  const assigned = new Set(activeAssignments(alert).map((a) => a.volunteer?.id));
  state.suggestions = nearby
    .filter((v) => v.on_duty && !v.busy && !assigned.has(v.id) && typeof v.lat === 'number')
    .map((v) => ({ ...v, distance_m: distanceM(alert.location, v) }))
    .sort((a, b) => a.distance_m - b.distance_m)
    .slice(0, SUGGEST_MAX);
}

function renderDetail() {
  const alert = state.alerts.get(state.selected);
  if (!alert) return;
  const responders = (alert.assignments ?? []).map((a) =>
    `<li>${esc(a.volunteer?.name ?? '')}${a.role ? ` (${esc(t(`responder.rolename.${a.role}`))})` : ''} — ${esc(t(`astatus.${a.status}`))}${typeof a.distance_m === 'number' ? `, ${esc(distance(a.distance_m))}` : ''}</li>`).join('');
  renderResolve(alert);
  renderTools(alert);
  renderCallback(alert);
  $('detail-body').innerHTML = `
    <p><span class="badge">${esc(KIND_CODE[alert.kind] ?? '?')}</span> <strong>${esc(t(`kind.${alert.kind}`))}</strong>
      — <span class="badge" id="detail-status">${esc(t(`status.${alert.status}`))}</span>${drillBadge(alert)}</p>
    <p>${esc(t('dash.detail.citizen'))}: ${esc(alert.citizen?.name ?? '—')}<br>
      ${esc(t('dash.detail.created'))}: ${esc(clock(alert.created_at))}<br>
      ${alert.location.lat.toFixed(5)}, ${alert.location.lng.toFixed(5)}</p>
    ${alert.note ? `<p>${esc(t('dash.detail.note'))}: ${esc(alert.note)}</p>` : ''}
    ${isDrill(alert) ? `<p class="muted" id="detail-drill">${esc(t('dash.detail.drill'))}</p>` : ''}
    ${syncFailuresOf(alert.id).map((f) => `<div class="message error sync-failure" id="detail-sync">
      <p>${esc(t('dash.sync.detail', { action: t(`dash.sync.action.${f.action}`) }))}${f.last_error ? `<br><small>${esc(f.last_error)}</small>` : ''}</p>
      <button type="button" class="primary" data-retry="${esc(f.id)}">${esc(t('dash.sync.retry'))}</button></div>`).join('')}
    <h2>${esc(t('dash.detail.responders'))}</h2>
    <ul id="responders">${responders || `<li class="muted">${esc(t('dash.detail.none'))}</li>`}</ul>`;
  const open = OPEN.has(alert.status);
  $('cancel-form').hidden = !open;
  const suggestions = state.suggestions ?? [];
  $('suggestions').innerHTML = !open ? '' : suggestions.length === 0
    ? `<li class="muted">${esc(t('dash.assign.none'))}</li>`
    : suggestions.map((v) => `<li><span>${esc(v.name)} — ${esc(distance(v.distance_m))}</span>
        <button type="button" class="primary" data-volunteer="${esc(v.id)}" data-name="${esc(v.name)}">${esc(t('dash.assign.button', { name: v.name }))}</button></li>`).join('');
  for (const button of $('suggestions').querySelectorAll('button[data-volunteer]')) {
    button.addEventListener('click', () => assign(alert.id, button.dataset.volunteer, button.dataset.name, button));
  }
  $('timeline').innerHTML = (state.timeline ?? []).map((event) => {
    const actor = actorName(alert, event.actor);
    return `<li><time datetime="${esc(event.at)}">${esc(clock(event.at))}</time>${esc(describe(event))}${actor ? ` — ${esc(actor)}` : ''}</li>`;
  }).join('');
}

/** Who an event's actor id is, from what the page knows: the citizen, a responder, a volunteer, or you. */
function actorName(alert, actor) {
  if (!actor) return '';
  if (typeof actor === 'object') return actor.name ?? '';
  if (actor === alert.citizen?.id) return alert.citizen.name;
  const responder = (alert.assignments ?? []).find((a) => a.volunteer?.id === actor);
  if (responder) return responder.volunteer.name;
  if (state.volunteers.has(actor)) return state.volunteers.get(actor).name;
  if (actor === api.user?.id) return t('tl.you');
  return '';
}

async function assign(alertId, volunteerId, name, button) {
  button.disabled = true;
  try {
    const alert = await api.request('POST', `/v1/alerts/${encodeURIComponent(alertId)}/assign`, { body: { volunteer_id: volunteerId } });
    if (alert?.id) state.alerts.set(alert.id, alert);
    const message = $('detail-message');
    message.className = 'message ok';
    showError(message, t('dash.assign.done', { name }));
    await Promise.all([loadDetail(alertId), loadVolunteers()]);
  } catch (error) {
    const message = $('detail-message');
    message.className = 'message error';
    showError(message, t('common.error.generic', { detail: error.message }));
    button.disabled = false;
  }
}

async function cancelSelected(event) {
  event.preventDefault();
  const id = state.selected;
  if (!id) return;
  const reason = $('cancel-reason').value.trim();
  try {
    const alert = await api.request('POST', `/v1/alerts/${encodeURIComponent(id)}/cancel`, { body: reason ? { reason } : {} });
    if (alert?.id) state.alerts.set(alert.id, alert);
    const message = $('detail-message');
    message.className = 'message ok';
    showError(message, t('dash.cancel.done'));
    clearFieldErrors($('cancel-form'));
    $('cancel-reason').value = '';
    await loadDetail(id);
  } catch (error) {
    // A refused reason is named beside its field, in the server's words.
    showProblem($('cancel-form'), error, $('detail-message'));
  }
}
