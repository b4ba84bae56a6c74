// The AED screen of the dashboard, for custodians and admins: the registry around the map's
// centre (GET /v1/aeds?near=&radius_m=: admins see every device, custodians theirs and the
// verified ones), each with its place, weekly hours (Asia/Jakarta) and state; an admin adds one
// (a tap on the map fills its position) with its weekly hours and verifies it; a custodian or an
// admin takes one out of service and back. Every refusal shows the server's field error beside
// the field (`hours[1].close`, `lat`).
/* global L */
import { Api, esc } from '/web/shared/api.js';
import { initI18n, onLanguage, t } from '/web/shared/i18n.js';
import { openConsole } from '/web/shared/console.js';
import { clearFieldErrors, say, showProblem } from '/web/shared/forms.js';
import { createMap } from '/web/shared/map.js';

/** Central Jakarta (Monas): where the screen opens. */
const START = { lat: -6.1754, lng: 106.8272 };
/** How far around the map's centre devices are listed, in metres (the API allows 10 km). */
const LIST_RADIUS_M = 10000;
const DAYS = [0, 1, 2, 3, 4, 5, 6];

const api = new Api('dashboard');
const $ = (id) => document.getElementById(id);
const state = { aeds: [], hours: [], map: null, markers: null };

initI18n();
onLanguage(() => {
  renderHours();
  renderList();
});
$('aed-reload').addEventListener('click', () => loadAeds());
$('aed-add-hours').addEventListener('click', () => {
  readHours();
  const last = state.hours.at(-1);
  state.hours.push(last ? { ...last, day: (last.day + 1) % 7 } : { day: 1, open: '08:00', close: '17:00' });
  renderHours();
});
$('aed-every-day').addEventListener('click', () => {
  readHours();
  const first = state.hours[0] ?? { open: '08:00', close: '17:00' };
  state.hours = DAYS.map((day) => ({ day, open: first.open, close: first.close }));
  renderHours();
});
$('aed-hours-rows').addEventListener('click', (event) => {
  const index = event.target.closest('[data-remove-hours]')?.dataset.removeHours;
  if (index === undefined) return;
  readHours();
  state.hours.splice(Number(index), 1);
  renderHours();
});
$('aed-form').addEventListener('submit', create);
$('aed-list').addEventListener('click', onListClick);
renderHours();

const { error } = openConsole(api, null, start);

async function start() {
  $('aed-create').hidden = !api.hasRole('admin');
  if (!state.map) {
    state.map = await createMap($('aed-map'), { center: START, zoom: 14, label: t('aed.map') });
    state.markers = L.layerGroup().addTo(state.map);
    state.map.on('click', (event) => {
      $('aed-lat').value = event.latlng.lat.toFixed(6);
      $('aed-lng').value = event.latlng.lng.toFixed(6);
    });
    state.map.on('moveend', () => loadAeds());
  }
  await loadAeds();
}

async function loadAeds() {
  const center = state.map?.getCenter() ?? START;
  try {
    state.aeds = await api.request('GET', `/v1/aeds?near=${center.lat.toFixed(6)},${center.lng.toFixed(6)}&radius_m=${LIST_RADIUS_M}`);
    error('');
  } catch (failure) {
    error(t('common.error.generic', { detail: failure.message }));
  }
  renderList();
}

/** "Sen 08:00–17:00, Sel 08:00–17:00" in the page's language, or "never open". */
function hoursText(hours) {
  if (!hours?.length) return t('aed.hours.none');
  return hours.map((h) => `${t(`day.${h.day}`)} ${h.open}–${h.close}`).join(', ');
}

function stateBadges(aed) {
  const badges = [];
  badges.push(aed.verified ? `<span class="badge ok">${esc(t('aed.verified'))}</span>` : `<span class="badge">${esc(t('aed.unverified'))}</span>`);
  if (aed.out_of_service) badges.push(`<span class="badge bad">${esc(t('aed.out'))}</span>`);
  badges.push(aed.available_now ? `<span class="badge ok">${esc(t('aed.available'))}</span>` : `<span class="badge">${esc(t('aed.unavailable'))}</span>`);
  return badges.join(' ');
}

function renderList() {
  const list = $('aed-list');
  list.innerHTML = state.aeds.length === 0 ? `<li class="muted">${esc(t('aed.none'))}</li>` : state.aeds.map((aed) => `
    <li class="card" data-aed="${esc(aed.id)}" data-available="${aed.available_now}" data-out-of-service="${aed.out_of_service}" data-verified="${aed.verified}">
      <strong>${esc(aed.description)}</strong><br>
      ${stateBadges(aed)}<br>
      <small>${esc(hoursText(aed.hours))}</small><br>
      <small class="muted">${aed.lat.toFixed(5)}, ${aed.lng.toFixed(5)}</small>
      <div class="row">
        ${api.hasRole('admin') && !aed.verified ? `<button type="button" class="primary" data-verify="${esc(aed.id)}">${esc(t('aed.verify'))}</button>` : ''}
        ${mayChange(aed) ? `<button type="button" data-out-of-service="${esc(aed.id)}" data-set="${!aed.out_of_service}">${esc(t(aed.out_of_service ? 'aed.back_in_service' : 'aed.take_out'))}</button>` : ''}
      </div>
      <p class="message" role="status" data-aed-message hidden></p>
    </li>`).join('');
  if (!state.markers) return;
  state.markers.clearLayers();
  for (const aed of state.aeds) {
    L.marker([aed.lat, aed.lng], { icon: aedIcon(aed), title: aed.description, keyboard: true }).addTo(state.markers);
  }
}

/** Admins change every device, custodians theirs (their ids are shown to them). */
function mayChange(aed) {
  return api.hasRole('admin') || (aed.custodian_ids ?? []).includes(api.user?.id);
}

/** The AED pin: the letters AED, hollow when it is not available now. */
function aedIcon(aed) {
  return L.divIcon({ className: '', html: `<span class="pin pin-aed${aed.available_now ? '' : ' off'}">AED</span>`, iconSize: null, iconAnchor: [20, 14] });
}

async function onListClick(event) {
  const button = event.target.closest('button');
  if (!button) return;
  const id = button.dataset.verify ?? button.dataset.outOfService;
  if (!id) return;
  const body = button.dataset.verify ? { verified: true } : { out_of_service: button.dataset.set === 'true' };
  const row = button.closest('[data-aed]');
  button.disabled = true;
  try {
    const saved = await api.request('PATCH', `/v1/aeds/${encodeURIComponent(id)}`, { body });
    state.aeds = state.aeds.map((aed) => (aed.id === saved.id ? saved : aed));
    renderList();
  } catch (failure) {
    button.disabled = false;
    showProblem(row, failure, row.querySelector('[data-aed-message]'));
  }
}

// ------------------------------------------------------------ weekly hours

function renderHours() {
  $('aed-hours-rows').innerHTML = state.hours.map((h, i) => `<div class="hours-row row" data-hours="${i}">
    <div><label for="h-day-${i}">${esc(t('aed.hours.day'))}</label>
      <select id="h-day-${i}" data-field="hours[${i}].day">${DAYS.map((d) => `<option value="${d}" ${d === h.day ? 'selected' : ''}>${esc(t(`day.${d}`))}</option>`).join('')}</select></div>
    <div><label for="h-open-${i}">${esc(t('aed.hours.open'))}</label>
      <input id="h-open-${i}" data-field="hours[${i}].open" value="${esc(h.open)}" placeholder="08:00" inputmode="numeric" size="5"></div>
    <div><label for="h-close-${i}">${esc(t('aed.hours.close'))}</label>
      <input id="h-close-${i}" data-field="hours[${i}].close" value="${esc(h.close)}" placeholder="17:00" inputmode="numeric" size="5"></div>
    <div><button type="button" data-remove-hours="${i}">${esc(t('trainer.remove'))}</button></div></div>`).join('');
}

function readHours() {
  state.hours = [...$('aed-hours-rows').querySelectorAll('[data-hours]')].map((row) => {
    const i = row.dataset.hours;
    const field = (name) => row.querySelector(`[data-field="hours[${i}].${name}"]`).value.trim();
    return { day: Number(field('day')), open: field('open'), close: field('close') };
  });
}

async function create(event) {
  event.preventDefault();
  const form = $('aed-form');
  readHours();
  const number = (id) => ($(id).value.trim() === '' ? null : Number($(id).value));
  const custodians = $('aed-custodians').value.split(',').map((s) => s.trim()).filter(Boolean);
  const body = { lat: number('aed-lat'), lng: number('aed-lng'), description: $('aed-description').value.trim(), hours: state.hours };
  if (custodians.length) body.custodian_ids = custodians;
  const button = form.querySelector('button[type=submit]');
  button.disabled = true;
  try {
    const made = await api.request('POST', '/v1/aeds', { body });
    clearFieldErrors(form);
    form.reset();
    state.hours = [];
    renderHours();
    say($('aed-message'), t('aed.saved', { description: made.description }));
    $('aed-message').dataset.aed = made.id;
    state.map?.panTo([made.lat, made.lng]);
    await loadAeds();
  } catch (failure) {
    showProblem(form, failure, $('aed-message'));
  } finally {
    button.disabled = false;
  }
}
