// The volunteer app: sign in, go on or off duty, send the phone's position while on duty, see
// offers with a countdown to their deadline and accept or decline each in one tap, then follow the
// assignment: a navigation link (geo: URI and OpenStreetMap) and the status buttons en route, on
// scene, completed. Offers arrive over /v1/ws and are polled as a fallback; going on duty (a tap)
// asks for notification permission and registers Web Push, so offers reach a closed app too.
import { Api, ApiError, distanceM, esc, signInForm } from '/web/shared/api.js';
import { applyI18n, clock, distance, initI18n, onLanguage, t } from '/web/shared/i18n.js';
import { connectLive } from '/web/shared/live.js';
import { disablePush, enablePush } from '/web/shared/push.js';
import { initTraining, onTrainingMessage, showTab as showTrainingTab } from '/volunteer/training.js';
import { initPractitioner, showPractitioner } from '/volunteer/practitioner.js';
import { moveTeam, onTeamMessage, showTeam } from '/volunteer/team.js';
import { initCheckins, loadCheckins, onCheckinMessage, renderCheckins } from '/volunteer/checkin.js';

const DUTY = 'kreki.volunteer.duty';
const ASSIGNMENT = 'kreki.volunteer.assignment';
/** Positions are sent at most this often, in milliseconds, unless the phone moved far. */
const LOCATION_MIN_INTERVAL_MS = 10000;
/** A move this long is sent at once, in metres. */
const LOCATION_MIN_MOVE_M = 30;
/** The last position is sent again this often while standing still, so it stays fresh. */
const LOCATION_HEARTBEAT_MS = 60000;
const OFFERS_POLL_MS = 10000;
const ACTIVE = new Set(['accepted', 'en_route', 'on_scene']);

const api = new Api('volunteer');
const $ = (id) => document.getElementById(id);
const state = { offers: new Map(), duty: localStorage.getItem(DUTY) === 'true', kinds: [], watch: null, position: null, sent: null, live: null, timers: [] };

if ('serviceWorker' in navigator) {
  navigator.serviceWorker.register('/volunteer/sw.js', { scope: '/volunteer/' }).catch(() => {});
}
initI18n();
onLanguage(() => {
  render();
  locationLine();
  renderOutcome();
  renderCheckins();
});
api.onSignedOut = () => show('signin');
signInForm($('signin-form'), api, { role: 'volunteer', onError: (key, vars) => error(t(key, vars)), done: () => start() });
$('signout').addEventListener('click', async () => {
  if (state.duty) await setDuty(false).catch(() => {});
  await disablePush(api, 'volunteer');
  await api.signOut();
  localStorage.removeItem(ASSIGNMENT);
  location.reload();
});
$('duty').addEventListener('click', async () => {
  const goingOn = !state.duty;
  // Asked from the tap itself: browsers refuse a permission prompt that no gesture started.
  const push = goingOn ? enablePush(api, 'volunteer', { ask: true }).catch(() => 'failed') : null;
  await setDuty(goingOn).catch((failure) => problem(failure));
  if (push) showPush(await push);
});
for (const button of document.querySelectorAll('[data-status]')) {
  button.addEventListener('click', () => setStatus(button.dataset.status, button));
}
for (const tab of document.querySelectorAll('[data-tab]')) {
  tab.addEventListener('click', () => selectTab(tab.dataset.tab));
}
initTraining(api);
initPractitioner(api);
initCheckins(api);

/** Shows one tab of the app: duty and offers, training, certificates, or health-worker check. */
function selectTab(name) {
  for (const tab of document.querySelectorAll('[data-tab]')) {
    const on = tab.dataset.tab === name;
    tab.setAttribute('aria-selected', String(on));
    $(`panel-${tab.dataset.tab}`).hidden = !on;
  }
  document.body.dataset.tab = name;
  if (name === 'training' || name === 'certs') showTrainingTab(name);
  if (name === 'health') showPractitioner();
}

if (api.session && api.hasRole('volunteer')) start();
else show('signin');

function error(text) {
  $('error').textContent = text;
  $('error').hidden = !text;
}

function problem(failure) {
  if (failure instanceof ApiError && [404, 405, 501].includes(failure.status)) error(t('common.error.unavailable', { status: failure.status }));
  else if (failure instanceof ApiError && failure.status === 0) error(t('common.error.network'));
  else error(t('common.error.generic', { detail: failure.message }));
}

/** Says what became of Web Push (nothing when the server sends none or nobody was asked). */
function showPush(outcome) {
  const key = { on: 'push.on', denied: 'push.denied', failed: 'push.failed' }[outcome];
  const element = $('push');
  element.hidden = !key;
  if (!key) return;
  element.className = `message ${outcome === 'on' ? 'ok' : 'error'}`;
  element.dataset.push = outcome;
  element.dataset.i18n = key;
  element.textContent = t(key);
}

function show(screen) {
  $('signin').hidden = screen !== 'signin';
  $('main-screen').hidden = screen !== 'main';
  $('signout').hidden = screen === 'signin';
  $('live').hidden = screen === 'signin';
  document.body.dataset.screen = screen;
  applyI18n();
}

async function start() {
  show('main');
  error('');
  render();
  showTrainingTab(null);
  if (state.duty) {
    await setDuty(true).catch((failure) => problem(failure));
    // Renews a subscription allowed before (never prompts without a tap).
    enablePush(api, 'volunteer').then(showPush, () => {});
  }
  await loadOffers();
  loadCheckins();
  if (current()) loadTeam(current().alert.id);
  state.live = connectLive(api, {
    onMessage,
    onState: (on) => {
      const live = $('live');
      live.dataset.on = String(on);
      live.dataset.i18n = on ? 'common.live.on' : 'common.live.off';
      live.textContent = t(live.dataset.i18n);
    },
    onResync: () => {
      loadOffers();
      loadCheckins();
    },
  });
  state.timers.push(setInterval(() => state.duty && loadOffers(), OFFERS_POLL_MS));
  state.timers.push(setInterval(renderOffers, 1000));
  state.timers.push(setInterval(() => state.duty && state.position && sendPosition(true), LOCATION_HEARTBEAT_MS));
}

async function setDuty(on) {
  const button = $('duty');
  button.disabled = true;
  try {
    const answer = await api.request('PUT', '/v1/volunteers/me/duty', { body: { on_duty: on } });
    state.duty = Boolean(answer?.on_duty ?? on);
    state.kinds = answer?.eligible_kinds ?? [];
    localStorage.setItem(DUTY, String(state.duty));
    error('');
  } finally {
    button.disabled = false;
    render();
  }
  if (state.duty) {
    watchPosition();
    loadOffers();
  } else {
    stopWatching();
    state.offers.clear();
    renderOffers();
  }
}

function watchPosition() {
  if (state.watch !== null || !('geolocation' in navigator)) return;
  $('location').hidden = false;
  locationLine('message', 'vol.location.waiting');
  state.watch = navigator.geolocation.watchPosition((position) => {
    state.position = { lat: position.coords.latitude, lng: position.coords.longitude, accuracy_m: position.coords.accuracy, at: position.timestamp };
    sendPosition(false);
    moveTeam(state.position);
  }, (failure) => {
    if (failure.code === 1) {
      locationLine('message error', 'vol.location.denied');
    }
  }, { enableHighAccuracy: true, maximumAge: 5000, timeout: 30000 });
}

function stopWatching() {
  if (state.watch !== null) navigator.geolocation.clearWatch(state.watch);
  state.watch = null;
  $('location').hidden = true;
}

function movedM(a, b) {
  const rad = Math.PI / 180;
  const x = (b.lng - a.lng) * rad * Math.cos(((a.lat + b.lat) / 2) * rad);
  const y = (b.lat - a.lat) * rad;
  return Math.sqrt(x * x + y * y) * 6371008.8;
}

async function sendPosition(force) {
  const position = state.position;
  if (!position || !state.duty) return;
  const last = state.sent;
  if (!force && last && Date.now() - last.at < LOCATION_MIN_INTERVAL_MS && movedM(last, position) < LOCATION_MIN_MOVE_M) return;
  state.sent = { ...position, at: Date.now() };
  try {
    await api.request('POST', '/v1/volunteers/me/location', {
      body: { lat: position.lat, lng: position.lng, accuracy_m: Math.max(1, Math.round(position.accuracy_m)), recorded_at: new Date(position.at).toISOString() },
    });
    locationLine('message ok', 'vol.location.sent', new Date().toISOString());
  } catch (failure) {
    state.sent = last;
    if (failure.status !== 0) problem(failure);
  }
}

async function loadOffers() {
  try {
    const offers = await api.request('GET', '/v1/volunteers/me/offers');
    state.offers = new Map((offers ?? []).filter((o) => o.status === 'pending' || !o.status).map((o) => [o.id, o]));
  } catch (failure) {
    if (failure.status !== 0 && failure.status !== 403) problem(failure);
  }
  renderOffers();
}

function onMessage(message) {
  onTrainingMessage(message);
  if (message.type === 'responder.position') {
    // Counted for whoever checks that they stop when the assignment ends.
    document.body.dataset.responderFrames = String(Number(document.body.dataset.responderFrames ?? 0) + 1);
  }
  if (onCheckinMessage(message) || onTeamMessage(message)) return;
  switch (message.type) {
    case 'offer': {
      const offer = message.offer ?? message;
      if (offer.id && offer.expires_at && offer.alert) {
        state.offers.set(offer.id, offer);
        renderOffers();
        navigator.vibrate?.([300, 100, 300]);
      } else {
        loadOffers();
      }
      break;
    }
    case 'offer.withdrawn': {
      const id = message.offer_id ?? message.offer?.id ?? message.id;
      if (id) state.offers.delete(id);
      renderOffers();
      break;
    }
    case 'alert.updated': {
      // The coordinator recorded how it ended: those who responded see it.
      const alert = message.alert;
      if (alert?.outcome) {
        const line = $('outcome');
        line.hidden = false;
        line.dataset.alert = alert.id;
        line.dataset.outcome = alert.outcome;
        line.dataset.kind = alert.kind;
        renderOutcome();
      }
      break;
    }
    case 'assignment.updated': {
      const assignment = message.assignment ?? message;
      const kept = current();
      if (kept && assignment.id === kept.assignment.id && assignment.status) {
        if (!isOlder(assignment, kept.assignment)) {
          keep({ ...kept, assignment: { ...kept.assignment, ...assignment } });
          render();
        }
      } else if (!kept && ACTIVE.has(assignment.status) && assignment.volunteer?.id === api.user?.id) {
        adopt(assignment);
      }
      break;
    }
    default:
      break;
  }
}

/** An assignment made for this volunteer elsewhere (a coordinator assigned them): show it. */
async function adopt(assignment) {
  try {
    const alert = await api.request('GET', `/v1/alerts/${encodeURIComponent(assignment.alert_id)}`);
    // The accept's own answer (or a newer status) may have arrived meanwhile: that one stays.
    if (current()) return;
    keep({ assignment, alert });
    state.offers.delete([...state.offers.values()].find((o) => o.alert.id === alert.id)?.id);
    $('offers').dataset.ids = '';
    render();
    navigator.vibrate?.([300, 100, 300]);
  } catch (failure) {
    problem(failure);
  }
}

/** True when `update` is older than what is shown (messages and answers may cross on the wire). */
function isOlder(update, shown) {
  const a = Date.parse(update.updated_at);
  const b = Date.parse(shown.updated_at);
  return Number.isFinite(a) && Number.isFinite(b) && a < b;
}

function current() {
  try {
    return JSON.parse(localStorage.getItem(ASSIGNMENT) || 'null');
  } catch {
    return null;
  }
}

function keep(value) {
  if (value && !['completed', 'withdrawn'].includes(value.assignment.status)) localStorage.setItem(ASSIGNMENT, JSON.stringify(value));
  else localStorage.removeItem(ASSIGNMENT);
}

function render() {
  const button = $('duty');
  button.setAttribute('aria-pressed', String(state.duty));
  $('duty-text').dataset.i18n = state.duty ? 'vol.duty.on' : 'vol.duty.off';
  $('duty-text').textContent = t($('duty-text').dataset.i18n);
  $('kinds').textContent = state.duty && state.kinds.length ? t('vol.duty.kinds', { kinds: state.kinds.map((k) => t(`kind.${k}`)).join(', ') }) : '';
  renderAssignment();
  renderOffers();
}

function renderAssignment() {
  const kept = current();
  $('assignment').hidden = !kept;
  showTeam(kept, state.position);
  if (!kept) return;
  const { assignment, alert } = kept;
  const { lat, lng } = alert.location;
  $('assignment-kind').textContent = t(`kind.${alert.kind}`);
  $('assignment-drill').hidden = alert.drill !== true;
  // A coordinator's assignment carries no distance: measure it from here when the phone knows where here is.
  const away = typeof assignment.distance_m === 'number' ? assignment.distance_m : state.position ? distanceM(state.position, alert.location) : null;
  $('assignment-distance').textContent = away === null ? '' : t('vol.offer.distance', { distance: distance(away) });
  $('assignment-note').textContent = alert.note ?? '';
  $('assignment-note').hidden = !alert.note;
  $('assignment-status').textContent = t('vol.status.now', { status: t(`astatus.${assignment.status}`) });
  $('assignment-status').dataset.status = assignment.status;
  $('navigate').href = `geo:${lat},${lng}?q=${lat},${lng}`;
  const from = state.position ? `${state.position.lat},${state.position.lng}` : '';
  $('navigate-osm').href = `https://www.openstreetmap.org/directions?engine=fossgis_osrm_car&route=${from}%3B${lat}%2C${lng}#map=16/${lat}/${lng}`;
  for (const button of document.querySelectorAll('[data-status]')) {
    button.setAttribute('aria-pressed', String(button.dataset.status === assignment.status));
  }
}

function renderOffers() {
  const list = $('offers');
  if (!list) return;
  const offers = [...state.offers.values()].sort((a, b) => String(a.expires_at).localeCompare(String(b.expires_at)));
  if (offers.length === 0) {
    list.innerHTML = `<li class="muted">${esc(t('vol.offers.none'))}</li>`;
    return;
  }
  // Redraw only the countdowns when the same offers are shown, so focus stays on a button.
  const ids = offers.map((o) => o.id).join(',');
  if (list.dataset.ids === ids && list.dataset.lang === document.documentElement.lang) {
    for (const offer of offers) {
      const element = list.querySelector(`[data-countdown="${CSS.escape(offer.id)}"]`);
      if (element) element.textContent = countdown(offer);
    }
    return;
  }
  list.dataset.ids = ids;
  list.dataset.lang = document.documentElement.lang;
  list.innerHTML = offers.map((offer) => `
    <li class="card offer${offer.alert.drill === true ? ' drill' : ''}" data-offer="${esc(offer.id)}">
      ${drillBanner(offer.alert)}
      <h3>${esc(t(`kind.${offer.alert.kind}`))}</h3>
      <p>${esc(t('vol.offer.distance', { distance: distance(offer.distance_m) }))}</p>
      ${offer.alert.note ? `<p>${esc(offer.alert.note)}</p>` : ''}
      <p class="countdown" role="timer" data-countdown="${esc(offer.id)}">${esc(countdown(offer))}</p>
      <div class="row">
        <button type="button" class="good big" data-accept="${esc(offer.id)}">${esc(t('vol.offer.accept'))}</button>
        <button type="button" class="big" data-decline="${esc(offer.id)}">${esc(t('vol.offer.decline'))}</button>
      </div>
    </li>`).join('');
  for (const button of list.querySelectorAll('[data-accept]')) button.addEventListener('click', () => accept(button.dataset.accept, button));
  for (const button of list.querySelectorAll('[data-decline]')) button.addEventListener('click', () => decline(button.dataset.decline, button));
}

/** The banner of a drill (the alert's `drill` flag, never its note): the same two words in both
 * languages, so nobody mistakes a drill for a real emergency, with a sentence in the chosen one. */
function drillBanner(alert) {
  if (alert?.drill !== true) return '';
  return `<p class="drill-banner"><strong>LATIHAN / DRILL</strong> ${esc(t('vol.drill.text'))}</p>`;
}

function countdown(offer) {
  const left = Math.ceil((Date.parse(offer.expires_at) - Date.now()) / 1000);
  return left > 0 ? t('vol.offer.left', { s: left }) : t('vol.offer.expired');
}

async function accept(id, button) {
  const offer = state.offers.get(id);
  if (!offer) return;
  button.disabled = true;
  try {
    const assignment = await api.request('POST', `/v1/offers/${encodeURIComponent(id)}/accept`);
    state.offers.delete(id);
    const shown = current();
    if (!(shown && shown.assignment.id === assignment.id && isOlder(assignment, shown.assignment))) keep({ assignment, alert: offer.alert });
    error('');
    loadTeam(assignment.alert_id);
  } catch (failure) {
    if (failure.status === 409) {
      state.offers.delete(id);
      error(t('vol.offer.covered'));
    } else {
      problem(failure);
      button.disabled = false;
    }
  }
  $('offers').dataset.ids = '';
  render();
}

async function decline(id, button) {
  button.disabled = true;
  try {
    await api.request('POST', `/v1/offers/${encodeURIComponent(id)}/decline`, { body: {} });
  } catch (failure) {
    if (failure.status !== 409) problem(failure);
  }
  state.offers.delete(id);
  $('offers').dataset.ids = '';
  renderOffers();
}

async function setStatus(status, button) {
  const kept = current();
  if (!kept) return;
  button.disabled = true;
  try {
    const assignment = await api.request('POST', `/v1/assignments/${encodeURIComponent(kept.assignment.id)}/status`, { body: { status } });
    keep({ ...(current() ?? kept), assignment: { ...kept.assignment, ...assignment } });
    error('');
  } catch (failure) {
    problem(failure);
  } finally {
    button.disabled = false;
    render();
  }
}

/** The alert of the assignment shown, fetched again for who else responds (names and roles). */
async function loadTeam(alertId) {
  try {
    const alert = await api.request('GET', `/v1/alerts/${encodeURIComponent(alertId)}`);
    const kept = current();
    if (kept && kept.alert.id === alert.id) {
      keep({ ...kept, alert: { ...kept.alert, ...alert } });
      render();
    }
  } catch {
    // The offer's summary of the alert stays; positions still arrive over the WebSocket.
  }
}

/** The outcome line of the last alert this volunteer helped with, in the page's language. */
function renderOutcome() {
  const line = $('outcome');
  if (line.hidden || !line.dataset.outcome) return;
  line.textContent = t('vol.outcome', { kind: t(`kind.${line.dataset.kind}`), outcome: t(`outcome.${line.dataset.outcome}`) });
}

/** The position line: set with (className, key, the ISO time it names), or redrawn in the page's
 *  language with no arguments. */
function locationLine(className, key, at) {
  const line = $('location');
  if (key) Object.assign(line.dataset, { key, at: at ?? '' });
  if (className) line.className = className;
  if (!line.dataset.key) return;
  line.textContent = t(line.dataset.key, { time: clock(line.dataset.at || null) });
}
