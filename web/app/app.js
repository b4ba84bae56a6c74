// The citizen app: sign in or register, then one large panic button with a choice of kind. A press
// is kept in localStorage with its own Idempotency-Key before anything is sent, and sent again with
// that same key (backing off 1 s .. 15 s) until the server acknowledges it, across a flaky
// connection and even a closed tab; the server turns every retry into the same alert. Then a status
// view: who is coming and how far, kept current over /v1/ws with a slow poll behind it, and
// "while help comes": the first-aid guides for the alert's kind, kept for offline use.
import { Api, esc, signInForm } from '/web/shared/api.js';
import { applyI18n, distance, initI18n, onLanguage, t } from '/web/shared/i18n.js';
import { connectLive } from '/web/shared/live.js';
import { disablePush, enablePush, pushPermission, pushSupported } from '/web/shared/push.js';
import { showProblem } from '/web/shared/forms.js';
import { guidanceFor, guidancePage, prefetchGuidance } from '/web/shared/guidance.js';
import { loadNearbyAeds, renderNearbyAeds, showNearbyAeds } from '/app/aeds.js';

const KINDS = ['medical', 'cardiac_arrest', 'accident', 'fire', 'disaster', 'security', 'other'];
const PENDING = 'kreki.app.pending';
const CURRENT = 'kreki.app.alert';
/** The kind of the current alert, so its guides show even offline. */
const CURRENT_KIND = 'kreki.app.alert-kind';
const RETRY_MIN_MS = 1000;
const RETRY_MAX_MS = 15000;
/** A position older than this is asked for again before a panic is sent, in milliseconds. */
const FIX_MAX_AGE_MS = 120000;
const STATUS_POLL_MS = 5000;
const ACTIVE = new Set(['accepted', 'en_route', 'on_scene']);

const api = new Api('app');
const $ = (id) => document.getElementById(id);
let fix = null;
let live = null;
let statusPoll = null;
let sending = false;

if ('serviceWorker' in navigator) {
  navigator.serviceWorker.register('/app/sw.js', { scope: '/app/' }).catch(() => {});
}
initI18n();
renderKinds();
onLanguage(() => {
  renderKinds();
  renderLocation();
  renderNearbyAeds();
  prefetchGuidance();
  if (!$('status-screen').hidden) {
    loadStatus();
    renderGuide();
  }
});
$('guide-list').addEventListener('click', (event) => {
  const link = event.target.closest('[data-guide]');
  if (link) openGuide(link.dataset.guide);
});
$('guide-back').addEventListener('click', () => showStatus());
api.onSignedOut = () => show('signin');

signInForm($('signin-form'), api, { onError: (key, vars) => error(t(key, vars)), done: () => route() });
$('register-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const data = new FormData(event.target);
  try {
    await api.register(String(data.get('phone')).trim(), String(data.get('password')), String(data.get('name')).trim());
    route();
  } catch (failure) {
    showProblem(event.target, failure, $('error'));
  }
});
for (const [tab, form, other, otherForm] of [['tab-signin', 'signin-form', 'tab-register', 'register-form'], ['tab-register', 'register-form', 'tab-signin', 'signin-form']]) {
  $(tab).addEventListener('click', () => {
    $(form).hidden = false;
    $(otherForm).hidden = true;
    for (const [id, on] of [[tab, true], [other, false]]) {
      $(id).setAttribute('aria-selected', String(on));
      $(id).setAttribute('aria-pressed', String(on));
    }
  });
}
$('signout').addEventListener('click', async () => {
  await disablePush(api, 'app');
  await api.signOut();
  localStorage.removeItem(CURRENT);
  location.reload();
});
$('panic-form').addEventListener('submit', (event) => {
  event.preventDefault();
  press();
});
$('cancel').addEventListener('click', cancel);
$('notify').addEventListener('click', notifyMe);
$('new-call').addEventListener('click', () => {
  localStorage.removeItem(CURRENT);
  localStorage.removeItem(CURRENT_KIND);
  route();
});
window.addEventListener('online', () => {
  if (pending()) sendPending();
});

route();

function error(text) {
  $('error').textContent = text;
  $('error').hidden = !text;
}

function show(screen) {
  for (const id of ['signin', 'panic-screen', 'sending-screen', 'status-screen', 'guide-screen']) $(id).hidden = id !== screen;
  $('signout').hidden = screen === 'signin';
  document.body.dataset.screen = screen;
  showNearbyAeds(screen === 'panic-screen' || screen === 'status-screen');
  applyI18n();
}

function pending() {
  try {
    return JSON.parse(localStorage.getItem(PENDING) || 'null');
  } catch {
    return null;
  }
}

/** Which screen: a panic not yet acknowledged first, then a current alert, then the button. */
function route() {
  error('');
  if (!api.session) {
    show('signin');
    return;
  }
  if (pending()) {
    show('sending-screen');
    sendPending();
  } else if (localStorage.getItem(CURRENT)) {
    showStatus();
  } else {
    show('panic-screen');
    locate().then((at) => loadNearbyAeds(api, at), () => {});
    listen();
  }
  // Kept now, while there is a network, for the moment after a panic when there may be none.
  prefetchGuidance();
}

function renderKinds() {
  const fieldset = $('kinds');
  const chosen = fieldset.querySelector('input:checked')?.value ?? 'medical';
  fieldset.innerHTML = `<legend>${esc(t('app.kind'))}</legend>` + KINDS.map((kind) =>
    `<label><input type="radio" name="kind" value="${kind}" ${kind === chosen ? 'checked' : ''}> ${esc(t(`kind.${kind}`))}</label>`).join('');
}

function renderLocation(state = renderLocation.last) {
  renderLocation.last = state;
  const element = $('location');
  if (!state) return;
  element.className = state.ok ? 'message ok' : 'message error';
  element.textContent = state.ok ? t('app.location.ok', { n: Math.round(state.accuracy_m) }) : t(state.key);
}

/** The current position (asking for permission the first time); rejects when it cannot be had. */
function locate() {
  if (fix && Date.now() - fix.at < FIX_MAX_AGE_MS) return Promise.resolve(fix);
  if (!('geolocation' in navigator)) {
    renderLocation({ ok: false, key: 'app.location.unavailable' });
    return Promise.reject(new Error('no geolocation'));
  }
  $('location').className = 'message';
  $('location').textContent = t('app.location.asking');
  return new Promise((resolve, reject) => {
    navigator.geolocation.getCurrentPosition((position) => {
      fix = { lat: position.coords.latitude, lng: position.coords.longitude, accuracy_m: position.coords.accuracy, at: Date.now() };
      renderLocation({ ok: true, accuracy_m: fix.accuracy_m });
      resolve(fix);
    }, (failure) => {
      renderLocation({ ok: false, key: failure.code === 1 ? 'app.location.denied' : 'app.location.unavailable' });
      reject(failure);
    }, { enableHighAccuracy: true, timeout: 10000, maximumAge: 30000 });
  });
}

/** A press: fix the position, keep the panic with a new key, then send it until acknowledged. */
async function press() {
  if (pending()) return;
  const button = $('panic');
  button.disabled = true;
  try {
    const position = await locate();
    const kind = $('kinds').querySelector('input:checked')?.value ?? 'medical';
    const panic = {
      key: crypto.randomUUID(),
      kind,
      location: { lat: position.lat, lng: position.lng, accuracy_m: Math.max(1, Math.round(position.accuracy_m)) },
      pressed_at: new Date().toISOString(),
    };
    localStorage.setItem(PENDING, JSON.stringify(panic));
    show('sending-screen');
    sendPending();
  } catch {
    // The location message says what is wrong.
  } finally {
    button.disabled = false;
  }
}

/** Sends the kept panic with its one key until the server answers it, then shows its status. */
async function sendPending() {
  if (sending) return;
  sending = true;
  let attempt = 0;
  try {
    for (;;) {
      const panic = pending();
      if (!panic) return;
      attempt += 1;
      $('sending-attempt').textContent = attempt === 1 ? t('app.sending') : t('app.sending.retry', { n: attempt });
      document.body.dataset.attempts = String(attempt);
      try {
        const alert = await api.request('POST', '/v1/alerts', {
          headers: { 'Idempotency-Key': panic.key },
          body: { kind: panic.kind, location: panic.location },
        });
        localStorage.setItem(CURRENT, alert.id);
        localStorage.setItem(CURRENT_KIND, alert.kind);
        localStorage.removeItem(PENDING);
        showStatus(alert);
        return;
      } catch (failure) {
        if (failure.status === 401 && !api.session) {
          // Signed out meanwhile: keep the panic; it goes out after the next sign-in.
          show('signin');
          return;
        }
        if (!failure.retryable && failure.status !== 401) {
          localStorage.removeItem(PENDING);
          show('panic-screen');
          error(t('common.error.generic', { detail: failure.message }));
          return;
        }
      }
      const wait = Math.min(RETRY_MIN_MS * 2 ** (attempt - 1), RETRY_MAX_MS);
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, wait);
        window.addEventListener('online', () => {
          clearTimeout(timer);
          resolve();
        }, { once: true });
      });
    }
  } finally {
    sending = false;
  }
}

/** Once help is on its way, a citizen may ask to hear of it by notification when the app is
 *  closed (from a tap: never a prompt in the middle of an emergency). */
function offerPush() {
  const asked = pushPermission() !== 'default';
  $('notify').hidden = !pushSupported() || asked;
  if (pushPermission() === 'granted') enablePush(api, 'app').catch(() => {});
}

async function notifyMe() {
  $('notify').disabled = true;
  const outcome = await enablePush(api, 'app', { ask: true }).catch(() => 'failed');
  $('notify').disabled = false;
  $('notify').hidden = outcome !== 'default';
  const key = { on: 'app.push.on', denied: 'push.denied', failed: 'push.failed' }[outcome];
  $('push').hidden = !key;
  if (!key) return;
  $('push').className = `message ${outcome === 'on' ? 'ok' : 'error'}`;
  $('push').dataset.push = outcome;
  $('push').dataset.i18n = key;
  $('push').textContent = t(key);
}

function showStatus(alert) {
  show('status-screen');
  if (alert?.kind) localStorage.setItem(CURRENT_KIND, alert.kind);
  renderGuide();
  offerPush();
  if (alert) renderStatus(alert);
  loadStatus();
  clearInterval(statusPoll);
  statusPoll = setInterval(loadStatus, STATUS_POLL_MS);
  listen();
}

/** The live channel: updates of the shown alert, and alerts made for this citizen elsewhere
 *  (an MQTT panic device, another phone), which the app then shows. */
function listen() {
  if (live) return;
  live = connectLive(api, {
    onMessage: (message) => {
      if (!['alert.updated', 'assignment.updated'].includes(message.type)) return;
      const alert = message.alert;
      const open = alert && !['resolved', 'cancelled'].includes(alert.status);
      if (open && !localStorage.getItem(CURRENT) && !pending() && alert.citizen?.id === api.user?.id) {
        localStorage.setItem(CURRENT, alert.id);
        showStatus(alert);
        return;
      }
      loadStatus();
    },
    onResync: () => loadStatus(),
  });
}

async function loadStatus() {
  const id = localStorage.getItem(CURRENT);
  if (!id) return;
  try {
    renderStatus(await api.request('GET', `/v1/alerts/${encodeURIComponent(id)}`));
    error('');
  } catch (failure) {
    if (failure.status === 404) {
      localStorage.removeItem(CURRENT);
      route();
    } else if (failure.status === 0) {
      error(t('common.error.network'));
    }
  }
}

function renderStatus(alert) {
  if (!renderStatus.aedsFor || renderStatus.aedsFor !== alert.id) {
    renderStatus.aedsFor = alert.id;
    loadNearbyAeds(api, alert.location);
  }
  $('alert-kind').textContent = t(`kind.${alert.kind}`);
  $('alert-status').textContent = t(`status.${alert.status}`);
  $('alert-status').dataset.status = alert.status;
  const coming = (alert.assignments ?? []).filter((a) => ACTIVE.has(a.status));
  $('responders').innerHTML = coming.map((a) =>
    `<li class="card responder"><strong>${esc(t('app.status.coming', { name: a.volunteer?.name ?? '', distance: distance(a.distance_m) }))}</strong>
      <br><span class="badge">${esc(t(`astatus.${a.status}`))}</span></li>`).join('');
  const closed = ['resolved', 'cancelled'].includes(alert.status);
  $('status-hint').hidden = coming.length > 0 || closed;
  $('status-hint').className = alert.status === 'unmatched' ? 'message error' : 'message';
  $('status-hint').textContent = alert.status === 'unmatched' ? t('app.status.unmatched') : t('app.status.searching');
  $('cancel').hidden = closed;
  $('new-call').hidden = !closed;
  if (closed) clearInterval(statusPoll);
}

/** How long the second press that confirms a cancel may take, in milliseconds. */
const CANCEL_CONFIRM_MS = 5000;
let cancelArmedAt = 0;

/** Cancelling help takes two presses, so a stray tap does not send the volunteers home. */
async function cancel() {
  const id = localStorage.getItem(CURRENT);
  if (!id) return;
  const button = $('cancel');
  if (Date.now() - cancelArmedAt > CANCEL_CONFIRM_MS) {
    cancelArmedAt = Date.now();
    button.dataset.i18n = 'app.status.cancel.confirm';
    button.textContent = t(button.dataset.i18n);
    setTimeout(() => {
      button.dataset.i18n = 'app.status.cancel';
      button.textContent = t(button.dataset.i18n);
    }, CANCEL_CONFIRM_MS);
    return;
  }
  cancelArmedAt = 0;
  $('cancel').disabled = true;
  try {
    renderStatus(await api.request('POST', `/v1/alerts/${encodeURIComponent(id)}/cancel`, { body: {} }));
  } catch (failure) {
    error(t('common.error.generic', { detail: failure.message }));
  } finally {
    $('cancel').disabled = false;
  }
}

/** "While help comes": links to the guides for the current alert's kind (kept copies offline). */
async function renderGuide() {
  const kind = localStorage.getItem(CURRENT_KIND);
  if (!kind) {
    $('guide').hidden = true;
    return;
  }
  const pages = await guidanceFor(kind);
  // The page for the kind itself first, the general one after.
  pages.sort((a, b) => a.kinds.length - b.kinds.length);
  $('guide').hidden = pages.length === 0;
  $('guide-list').innerHTML = pages.map((page) => `<li><button type="button" class="big guide-link" data-guide="${esc(page.slug)}"
    aria-label="${esc(t('guide.open', { title: page.title }))}">${esc(page.title)}</button></li>`).join('');
}

/** Opens one guide in the app (its HTML is sanitised by the server). */
async function openGuide(slug) {
  const page = await guidancePage(slug);
  show('guide-screen');
  const article = $('guide-page');
  if (!page) {
    article.innerHTML = `<p class="message error">${esc(t('guide.none'))}</p>`;
    return;
  }
  article.lang = page.lang;
  article.dataset.slug = page.slug;
  article.innerHTML = `<h2>${esc(page.title)}</h2>${page.body_html}`;
  $('guide-back').focus();
}
