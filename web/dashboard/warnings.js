// Warnings on the coordinator's map (issue 19): the CAP 1.2 warnings KREKI reads from BMKG's
// feeds (GET /v1/warnings) drawn as areas coloured by severity, with severity, urgency, certainty
// and the instruction in a list beside the map; alerts raised inside a warning's area are marked
// with it (`warningsAt`); and a short broadcast, in Bahasa Indonesia and English, to the volunteers
// (or everyone) inside a warning's area (POST /v1/broadcasts), answered with how many it reached.
// Kept current by the WebSocket `warning` and `warning.removed` frames, and a slow poll.
import { esc } from '/web/shared/api.js';
import { addTexts, clock, lang, onLanguage, t } from '/web/shared/i18n.js';

addTexts({
  id: {
    'warn.title': 'Peringatan dini (BMKG)',
    'warn.none': 'Tidak ada peringatan aktif.',
    'warn.severity.Extreme': 'Ekstrem', 'warn.severity.Severe': 'Parah', 'warn.severity.Moderate': 'Sedang',
    'warn.severity.Minor': 'Ringan', 'warn.severity.Unknown': 'Tidak diketahui',
    'warn.urgency': 'Urgensi: {v}', 'warn.certainty': 'Kepastian: {v}', 'warn.until': 'berlaku s.d. {time}',
    'warn.broadcast': 'Kirim siaran ke area ini',
    'warn.audience': 'Penerima', 'warn.audience.volunteers': 'Relawan bertugas', 'warn.audience.everyone': 'Semua',
    'warn.audience.citizens': 'Warga',
    'warn.text.id': 'Pesan (Bahasa Indonesia)', 'warn.text.en': 'Pesan (English)', 'warn.send': 'Kirim siaran',
    'warn.sent': 'Siaran terkirim ke {n} relawan.', 'warn.inside': 'Di dalam area peringatan: {event}',
  },
  en: {
    'warn.title': 'Warnings (BMKG)',
    'warn.none': 'No active warnings.',
    'warn.severity.Extreme': 'Extreme', 'warn.severity.Severe': 'Severe', 'warn.severity.Moderate': 'Moderate',
    'warn.severity.Minor': 'Minor', 'warn.severity.Unknown': 'Unknown',
    'warn.urgency': 'Urgency: {v}', 'warn.certainty': 'Certainty: {v}', 'warn.until': 'until {time}',
    'warn.broadcast': 'Broadcast to this area',
    'warn.audience': 'Recipients', 'warn.audience.volunteers': 'Volunteers on duty', 'warn.audience.everyone': 'Everyone',
    'warn.audience.citizens': 'Citizens',
    'warn.text.id': 'Message (Bahasa Indonesia)', 'warn.text.en': 'Message (English)', 'warn.send': 'Send broadcast',
    'warn.sent': 'Broadcast sent to {n} volunteers.', 'warn.inside': 'Inside a warning area: {event}',
  },
});

const COLOURS = { Extreme: '#8b0000', Severe: '#d9480f', Moderate: '#e8a200', Minor: '#2b8a3e', Unknown: '#5b6573' };
const POLL_MS = 30000;
const state = { api: null, map: null, layer: null, warnings: [], poll: null, onChange: null, listed: null };
const $ = (id) => document.getElementById(id);

/** Starts the warnings layer and list; `onChange` runs when the warnings changed (re-mark alerts). */
export function initWarnings(api, map, onChange) {
  state.api = api;
  state.map = map;
  state.onChange = onChange;
  if (!state.layer) {
    state.layer = L.layerGroup().addTo(map);
    onLanguage(() => renderWarnings());
  }
  clearInterval(state.poll);
  state.poll = setInterval(loadWarnings, POLL_MS);
  return loadWarnings();
}

/** Fetches the active warnings and redraws them. */
export async function loadWarnings() {
  if (!state.api) return;
  try {
    state.warnings = (await state.api.request('GET', '/v1/warnings')) ?? [];
  } catch {
    return;
  }
  renderWarnings();
  state.onChange?.();
}

/** Handles `warning` and `warning.removed` frames; true when it was one of them. */
export function onWarningsMessage(message) {
  if (message.type !== 'warning' && message.type !== 'warning.removed') return false;
  loadWarnings();
  return true;
}

/** Corners ([lat, lng]) of the warnings' areas, so the first framing of the map shows them whole. */
export function warningCorners() {
  const corners = [];
  for (const warning of state.warnings) {
    if (!warning.area) continue;
    const bounds = L.geoJSON(warning.area).getBounds();
    corners.push([bounds.getSouth(), bounds.getWest()], [bounds.getNorth(), bounds.getEast()]);
  }
  return corners;
}

/** The active warnings whose area contains the point. */
export function warningsAt(lat, lng) {
  return state.warnings.filter((w) => w.area && inside(w.area, lat, lng));
}

/** A small mark for an alert raised inside a warning's area ('' when none). */
export function warningMark(alert) {
  const lat = alert?.location?.lat;
  const lng = alert?.location?.lng;
  if (typeof lat !== 'number') return '';
  const found = warningsAt(lat, lng)[0];
  if (!found) return '';
  return ` <span class="badge warning-mark" data-warning="${esc(found.id)}" style="background:${COLOURS[found.severity] ?? COLOURS.Unknown};color:#fff" title="${esc(t('warn.inside', { event: found.event }))}">⚠ ${esc(found.event)}</span>`;
}

function inside(area, lat, lng) {
  return (area.coordinates ?? []).some((polygon) => {
    const ring = polygon[0] ?? [];
    let odd = false;
    for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
      const [xi, yi] = ring[i];
      const [xj, yj] = ring[j];
      if ((yi > lat) !== (yj > lat) && lng < ((xj - xi) * (lat - yi)) / (yj - yi) + xi) odd = !odd;
    }
    return odd;
  });
}

function info(warning) {
  const wanted = lang() === 'en' ? 'en' : 'id';
  return (warning.infos ?? []).find((i) => String(i.language).startsWith(wanted)) ?? warning.infos?.[0] ?? {};
}

function renderWarnings() {
  if (!state.layer) return;
  state.layer.clearLayers();
  for (const warning of state.warnings) {
    if (!warning.area) continue;
    const colour = COLOURS[warning.severity] ?? COLOURS.Unknown;
    const text = info(warning);
    L.geoJSON(warning.area, {
      style: { color: colour, weight: 2, fillColor: colour, fillOpacity: 0.15, className: `warning-area severity-${warning.severity}` },
    }).bindTooltip(`${esc(text.headline ?? warning.event)}`, { sticky: true }).addTo(state.layer);
  }
  const map = $('map');
  if (map) map.dataset.warnings = String(state.warnings.length);
  const section = $('warnings');
  if (!section) return;
  section.hidden = false;
  // The same warnings as listed already: keep the list (and a broadcast being typed) as it is.
  const listed = `${document.documentElement.lang}|${state.warnings.map((w) => `${w.id}@${w.received_at}`).join(',')}`;
  if (listed === state.listed) return;
  state.listed = listed;
  $('warnings-count').textContent = String(state.warnings.length);
  $('warnings-list').innerHTML = state.warnings.length === 0
    ? `<li class="muted">${esc(t('warn.none'))}</li>`
    : state.warnings.map((warning) => {
      const text = info(warning);
      const colour = COLOURS[warning.severity] ?? COLOURS.Unknown;
      return `<li class="warning" data-id="${esc(warning.id)}" data-severity="${esc(warning.severity)}" style="border-left:6px solid ${colour};padding-left:8px;margin-bottom:8px">
        <strong>${esc(text.event ?? warning.event)}</strong>
        <span class="badge" style="background:${colour};color:#fff">${esc(t(`warn.severity.${warning.severity}`))}</span><br>
        <span>${esc(text.headline ?? '')}</span><br>
        <small>${esc(t('warn.urgency', { v: warning.urgency }))} · ${esc(t('warn.certainty', { v: warning.certainty }))} · ${esc(t('warn.until', { time: clock(warning.expires_at) }))}</small>
        ${text.instruction ? `<p class="instruction">${esc(text.instruction)}</p>` : ''}
        <details class="broadcast"><summary>${esc(t('warn.broadcast'))}</summary>
          <form class="broadcast-form" data-id="${esc(warning.id)}">
            <label>${esc(t('warn.audience'))} <select name="audience">
              <option value="volunteers">${esc(t('warn.audience.volunteers'))}</option>
              <option value="everyone">${esc(t('warn.audience.everyone'))}</option>
              <option value="citizens">${esc(t('warn.audience.citizens'))}</option></select></label>
            <label>${esc(t('warn.text.id'))}<textarea name="id" maxlength="320" required></textarea></label>
            <label>${esc(t('warn.text.en'))}<textarea name="en" maxlength="320" required></textarea></label>
            <p class="message" role="status" hidden></p>
            <button type="submit" class="primary">${esc(t('warn.send'))}</button>
          </form></details></li>`;
    }).join('');
  for (const form of $('warnings-list').querySelectorAll('form.broadcast-form')) {
    form.addEventListener('submit', (event) => sendBroadcast(event, form));
  }
}

async function sendBroadcast(event, form) {
  event.preventDefault();
  const message = form.querySelector('.message');
  const data = new FormData(form);
  try {
    const sent = await state.api.request('POST', '/v1/broadcasts', {
      body: {
        audience: data.get('audience'),
        area: { warning_id: form.dataset.id },
        message: { id: String(data.get('id') ?? ''), en: String(data.get('en') ?? '') },
      },
    });
    message.textContent = t('warn.sent', { n: sent.reached?.volunteers ?? 0 });
    message.className = 'message ok';
    form.dataset.sent = sent.id;
  } catch (error) {
    message.textContent = error?.problem?.detail ?? error?.message ?? String(error);
    message.className = 'message error';
  }
  message.hidden = false;
}
