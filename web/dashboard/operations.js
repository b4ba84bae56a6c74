// The operations centre on the dashboard: the triage queue (alerts from accounts a region does not
// trust yet, waiting for a coordinator: Release or Close as a false alarm, with the countdown to
// the automatic release), the escalation alarm (a banner and a beep loop that stay until a
// coordinator acknowledges; an acknowledged escalation leaves every dashboard through its live
// frame), notices of refused panic presses with Block, and the region filter with the regions'
// outlines on the map. State: GET /v1/alerts?status=triage, GET /v1/escalations?status=open,
// GET /v1/regions, kept current by WebSocket `alert.updated`, `escalation` and `panic.limited`.
/* global L */
import { esc } from '/web/shared/api.js';
import { clock, t } from '/web/shared/i18n.js';
import { say } from '/web/shared/forms.js';
import { KIND_CODE } from '/web/shared/map.js';

const $ = (id) => document.getElementById(id);
/** How often the countdowns and waiting times are redrawn, in milliseconds. */
const TICK_MS = 1000;
/** The alarm: one beep every BEEP_EVERY_MS while an escalation is open. */
const BEEP_EVERY_MS = 1500;
const BEEP_HZ = 880;
const BEEP_S = 0.35;
/** How long after an alert changed the open escalations are fetched again, in milliseconds. */
const ESCALATION_RELOAD_MS = 400;
/** Most refused-press notices kept on screen. */
const MAX_LIMITED = 10;

const state = {
  api: null,
  alerts: () => new Map(),
  upsert: () => {},
  select: () => {},
  onFilter: () => {},
  map: null,
  outlines: null,
  regions: [],
  region: '',
  autoRelease: new Map(),
  escalations: new Map(),
  limited: new Map(),
  audio: null,
  beep: null,
};

/**
 * Wires the screens. `alerts()` answers the dashboard's alerts by id, `upsert(alert)` stores one
 * there, `select(id)` opens one in the detail, `onFilter()` redraws the map and lists after the
 * region changes.
 */
export function initOperations(api, { alerts, upsert, select, onFilter }) {
  Object.assign(state, { api, alerts, upsert, select, onFilter });
  $('filter-region').addEventListener('change', () => {
    state.region = $('filter-region').value;
    drawOutlines(true);
    state.onFilter();
    renderOperations();
  });
  $('triage-list').addEventListener('click', onTriageClick);
  $('escalations').addEventListener('click', onEscalationClick);
  setInterval(tick, TICK_MS);
  // Browsers start sound only after a gesture: any click on the page unlocks the alarm.
  document.addEventListener('pointerdown', () => state.audio?.resume?.().catch(() => {}), { passive: true });
}

/** The regions this coordinator is assigned to; empty for a national coordinator. Live frames
 *  reach every coordinator, so a regional one's dashboard leaves out the other regions' alerts. */
function mine() {
  const me = state.api.user?.id;
  return new Set(state.regions.filter((r) => (r.coordinator_ids ?? []).includes(me)).map((r) => r.id));
}

/** True when an alert or escalation of `regionId` is this coordinator's to see (no region: everyone's). */
function ours(regionId) {
  const regions = mine();
  return !regionId || regions.size === 0 || regions.has(regionId);
}

/** True when `alert` passes the region filter (an alert without a region shows under every one). */
export function inRegion(alert) {
  if (!ours(alert.region_id)) return false;
  return !state.region || !alert.region_id || alert.region_id === state.region;
}

/** Fetches regions, the triage queue and the open escalations; `map` is the dashboard's map. */
export async function loadOperations(map) {
  state.map = map;
  await Promise.all([loadRegions(), loadTriage(), loadEscalations()]);
  renderOperations();
}

async function loadRegions() {
  try {
    state.regions = (await state.api.request('GET', '/v1/regions')) ?? [];
  } catch {
    state.regions = [];
  }
  const select = $('filter-region');
  select.innerHTML = [`<option value="">${esc(t('ops.region.all'))}</option>`]
    .concat(state.regions.map((r) => `<option value="${esc(r.id)}">${esc(r.name)}</option>`)).join('');
  if (!state.regions.some((r) => r.id === state.region)) state.region = '';
  select.value = state.region;
  $('region-filter').hidden = state.regions.length === 0;
  drawOutlines(false);
}

/** The regions' outlines on the map; the chosen one stronger, and framed when `frame`. */
function drawOutlines(frame) {
  if (!state.map) return;
  if (!state.outlines) state.outlines = L.layerGroup().addTo(state.map);
  state.outlines.clearLayers();
  let chosen = null;
  for (const region of state.regions) {
    const on = region.id === state.region;
    const shape = L.geoJSON(region.area, {
      interactive: false,
      style: {
        color: on ? '#0b4f9c' : '#5b6573', weight: on ? 4 : 2, dashArray: on ? null : '6 6',
        fillOpacity: on ? 0.06 : 0, className: `region-outline${on ? ' chosen' : ''}`,
      },
    }).addTo(state.outlines);
    if (on) chosen = shape;
  }
  $('map').dataset.regions = String(state.regions.length);
  if (frame && chosen) state.map.fitBounds(chosen.getBounds().pad(0.1), { maxZoom: 15, animate: false });
}

async function loadTriage() {
  try {
    const waiting = (await state.api.request('GET', '/v1/alerts?status=triage')) ?? [];
    for (const alert of waiting) state.upsert(alert);
  } catch {
    // The dashboard's own list still shows them; the next poll tries again.
  }
}

async function loadEscalations() {
  try {
    const open = (await state.api.request('GET', '/v1/escalations?status=open')) ?? [];
    state.escalations = new Map(open.map((e) => [e.id, e]));
  } catch {
    // A server without escalations: nothing to sound.
  }
}

/** A live message; answers true when this module consumed it. */
export function onOperationsMessage(message) {
  if (message.type === 'escalation' && message.escalation?.id) {
    const escalation = message.escalation;
    if (escalation.acknowledged_at) state.escalations.delete(escalation.id);
    else {
      if (!state.escalations.has(escalation.id)) $('announce').textContent = t('ops.esc.new', { what: reasonText(escalation) });
      state.escalations.set(escalation.id, escalation);
    }
    renderEscalations();
    return true;
  }
  if (message.type === 'alert.updated') {
    // Releasing, re-dispatching or closing an alert acknowledges its escalations on the server
    // without an `escalation` frame: the open list is fetched again once the changes settle.
    reloadEscalationsSoon();
    return false;
  }
  if (message.type === 'panic.limited' && message.citizen?.id) {
    state.limited.set(message.citizen.id, { ...message, at: Date.now() });
    while (state.limited.size > MAX_LIMITED) state.limited.delete(state.limited.keys().next().value);
    renderEscalations();
    return true;
  }
  return false;
}

function reloadEscalationsSoon() {
  clearTimeout(state.escalationReload);
  state.escalationReload = setTimeout(async () => {
    await loadEscalations();
    renderEscalations();
  }, ESCALATION_RELOAD_MS);
}

/** Redraws the triage queue and the alarm (after any change of the dashboard's alerts). */
export function renderOperations() {
  renderTriage();
  renderEscalations();
}

function waitingAlerts() {
  return [...state.alerts().values()]
    .filter((a) => a.status === 'triage' && inRegion(a))
    .sort((a, b) => String(a.created_at).localeCompare(String(b.created_at)));
}

function place(alert) {
  const region = state.regions.find((r) => r.id === alert.region_id);
  const at = t('ops.place', { lat: alert.location.lat.toFixed(5), lng: alert.location.lng.toFixed(5) });
  return region ? `${region.name} · ${at}` : at;
}

function renderTriage() {
  const list = waitingAlerts();
  for (const alert of list) if (!state.autoRelease.has(alert.id)) fetchAutoRelease(alert.id);
  const section = $('triage');
  section.classList.toggle('bad', list.length > 0);
  section.dataset.count = String(list.length);
  $('triage-count').textContent = String(list.length);
  $('triage-list').innerHTML = list.length === 0 ? `<li class="muted">${esc(t('ops.triage.none'))}</li>` : list.map((alert) => `
    <li class="triage-item" data-alert="${esc(alert.id)}">
      <p><span class="badge bad">${esc(KIND_CODE[alert.kind] ?? '?')}</span> <strong>${esc(t(`kind.${alert.kind}`))}</strong>
        <small class="muted">${esc(clock(alert.created_at))}</small></p>
      <p>${esc(place(alert))}${alert.citizen?.name ? `<br>${esc(t('ops.triage.caller', { name: alert.citizen.name }))}${alert.citizen.trust ? ` (${esc(t(`trust.${alert.citizen.trust}`))})` : ''}` : ''}</p>
      <p><span data-waiting></span> · <strong data-countdown></strong></p>
      <div class="row">
        <button type="button" class="primary big" data-release="${esc(alert.id)}">${esc(t('ops.triage.release'))}</button>
        <button type="button" class="danger" data-false="${esc(alert.id)}">${esc(t('ops.triage.false'))}</button>
        <button type="button" class="link" data-open-alert="${esc(alert.id)}">${esc(t('ops.open'))}</button>
      </div>
    </li>`).join('');
  tick();
}

/** The `auto_release_at` of the alert's `triaged` timeline entry. */
async function fetchAutoRelease(id) {
  state.autoRelease.set(id, null);
  try {
    const timeline = (await state.api.request('GET', `/v1/alerts/${encodeURIComponent(id)}/timeline`)) ?? [];
    const triaged = timeline.filter((e) => e.type === 'triaged').pop();
    state.autoRelease.set(id, triaged?.data?.auto_release_at ?? null);
    tick();
  } catch {
    state.autoRelease.delete(id);
  }
}

/** Minutes and seconds, m:ss. */
function minutes(s) {
  const whole = Math.max(0, Math.floor(s));
  return `${Math.floor(whole / 60)}:${String(whole % 60).padStart(2, '0')}`;
}

/** Redraws the running times in place (the buttons keep their focus). */
function tick() {
  const now = Date.now();
  for (const item of document.querySelectorAll('#triage-list [data-alert]')) {
    const alert = state.alerts().get(item.dataset.alert);
    if (!alert) continue;
    item.querySelector('[data-waiting]').textContent = t('ops.triage.waiting', { time: minutes((now - Date.parse(alert.created_at)) / 1000) });
    const due = Date.parse(state.autoRelease.get(alert.id) ?? '');
    const countdown = item.querySelector('[data-countdown]');
    if (Number.isFinite(due)) {
      const left = Math.ceil((due - now) / 1000);
      countdown.textContent = left > 0 ? t('ops.triage.countdown', { s: left }) : t('ops.triage.due');
      countdown.dataset.seconds = String(Math.max(0, left));
    }
  }
}

async function onTriageClick(event) {
  const open = event.target.closest('button[data-open-alert]');
  if (open) {
    state.select(open.dataset.openAlert);
    return;
  }
  const release = event.target.closest('button[data-release]');
  const close = event.target.closest('button[data-false]');
  const button = release ?? close;
  if (!button) return;
  const id = release ? release.dataset.release : close.dataset.false;
  button.disabled = true;
  try {
    const alert = release
      ? await state.api.request('POST', `/v1/alerts/${encodeURIComponent(id)}/release`)
      : await state.api.request('POST', `/v1/alerts/${encodeURIComponent(id)}/resolve`, { body: { outcome: 'false_alarm' } });
    if (alert?.id) state.upsert(alert);
    say($('triage-message'), t(release ? 'ops.triage.released' : 'ops.triage.closed'));
    reloadEscalationsSoon();
  } catch (error) {
    say($('triage-message'), t('common.error.generic', { detail: error.message }), false);
    button.disabled = false;
  }
  state.onFilter();
  renderOperations();
}

function reasonText(escalation) {
  return t(`ops.esc.reason.${escalation.reason}`);
}

function renderEscalations() {
  // Not narrowed by the filter: an escalation anywhere a coordinator covers must not go unheard.
  const open = [...state.escalations.values()]
    .filter((e) => ours(e.region_id))
    .sort((a, b) => String(a.raised_at).localeCompare(String(b.raised_at)));
  const limited = [...state.limited.values()].reverse();
  const banner = $('escalations');
  banner.hidden = open.length === 0 && limited.length === 0;
  banner.dataset.count = String(open.length);
  banner.innerHTML = (open.length ? `<h2>${esc(t('ops.esc.title'))} <span class="badge">${open.length}</span></h2>` : '')
    + limited.map((n) => `<div class="escalation limited" data-limited="${esc(n.citizen.id)}">
        <p>${esc(t('ops.limited', { name: n.citizen.name ?? '', s: n.retry_after_s }))}</p>
        ${n.blocked ? `<p>${esc(t('ops.limited.blocked', { name: n.citizen.name ?? '' }))}</p>`
    : `<button type="button" class="danger" data-block="${esc(n.citizen.id)}">${esc(t('ops.limited.block'))}</button>`}
        <button type="button" data-dismiss="${esc(n.citizen.id)}">${esc(t('ops.limited.dismiss'))}</button>
      </div>`).join('')
    + open.map((e) => {
      const alert = state.alerts().get(e.alert_id);
      const what = reasonText(e);
      return `<div class="escalation" data-escalation="${esc(e.id)}" data-reason="${esc(e.reason)}">
        <p><strong>${esc(what)}</strong>${alert ? ` — ${esc(t(`kind.${alert.kind}`))}, ${esc(place(alert))}` : ''}
          <small>${esc(t('ops.esc.raised', { time: clock(e.raised_at) }))}</small></p>
        ${e.alert_id ? `<button type="button" class="link" data-open-alert="${esc(e.alert_id)}">${esc(t('ops.open'))}</button>` : ''}
        <button type="button" class="primary" data-ack="${esc(e.id)}" aria-label="${esc(t('ops.esc.ack.aria', { what }))}">${esc(t('ops.esc.ack'))}</button>
      </div>`;
    }).join('')
    + '<p id="escalation-message" class="message" role="status" hidden></p>';
  alarm(open.length > 0);
}

/** Starts or stops the beep loop; `data-alarm` on the banner says which (tests read it). */
function alarm(on) {
  const banner = $('escalations');
  banner.dataset.alarm = on ? 'on' : 'off';
  if (!on) {
    clearInterval(state.beep);
    state.beep = null;
    return;
  }
  if (state.beep) return;
  const Context = window.AudioContext ?? window.webkitAudioContext;
  if (!state.audio && Context) state.audio = new Context();
  const beep = () => {
    const audio = state.audio;
    if (!audio) return;
    audio.resume?.().catch(() => {});
    const oscillator = audio.createOscillator();
    const gain = audio.createGain();
    oscillator.frequency.value = BEEP_HZ;
    gain.gain.value = 0.3;
    oscillator.connect(gain).connect(audio.destination);
    oscillator.start();
    oscillator.stop(audio.currentTime + BEEP_S);
    banner.dataset.beeps = String(Number(banner.dataset.beeps ?? 0) + 1);
  };
  beep();
  state.beep = setInterval(beep, BEEP_EVERY_MS);
}

async function onEscalationClick(event) {
  const open = event.target.closest('button[data-open-alert]');
  if (open) {
    state.select(open.dataset.openAlert);
    return;
  }
  const dismiss = event.target.closest('button[data-dismiss]');
  if (dismiss) {
    state.limited.delete(dismiss.dataset.dismiss);
    renderEscalations();
    return;
  }
  const ack = event.target.closest('button[data-ack]');
  const block = event.target.closest('button[data-block]');
  if (!ack && !block) return;
  (ack ?? block).disabled = true;
  try {
    if (ack) {
      await state.api.request('POST', `/v1/escalations/${encodeURIComponent(ack.dataset.ack)}/ack`);
      state.escalations.delete(ack.dataset.ack);
    } else {
      await state.api.request('PUT', `/v1/admin/users/${encodeURIComponent(block.dataset.block)}/trust`, { body: { trust: 'blocked' } });
      const notice = state.limited.get(block.dataset.block);
      if (notice) notice.blocked = true;
    }
    renderEscalations();
    if (ack) $('announce').textContent = t('ops.esc.acked');
  } catch (error) {
    if (ack && error.status === 409) {
      // Someone else acknowledged it first: it is handled.
      state.escalations.delete(ack.dataset.ack);
      renderEscalations();
      return;
    }
    (ack ?? block).disabled = false;
    say($('escalation-message'), t('common.error.generic', { detail: error.message }), false);
  }
}
