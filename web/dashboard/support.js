// Aftercare on the dashboard: volunteers' check-in answers that ask for support (they want to be
// contacted, or said they are not well: wellbeing 2 or lower), newest first, flagged in red with a
// count, from GET /v1/checkins?support=true and live from WebSocket `checkin.answered`.
import { esc } from '/web/shared/api.js';
import { clock, t } from '/web/shared/i18n.js';

const $ = (id) => document.getElementById(id);
/** Most answers kept on screen. */
const MAX_SHOWN = 50;
const state = { api: null, answers: new Map(), available: true, select: () => {} };

/** Wires the list to `api`; `select(alertId)` opens an answer's alert in the detail. */
export function initSupport(api, { select } = {}) {
  state.api = api;
  if (select) state.select = select;
  $('support-list').addEventListener('click', (event) => {
    const button = event.target.closest('button[data-open-alert]');
    if (button) state.select(button.dataset.openAlert);
  });
}

/** Fetches the support requests; a server without aftercare leaves the section hidden. */
export async function loadSupport() {
  try {
    const answers = await state.api.request('GET', '/v1/checkins?support=true');
    state.answers = new Map((answers ?? []).map((a) => [a.id, a]));
    state.available = true;
  } catch (failure) {
    if ([404, 405, 501].includes(failure.status)) state.available = false;
  }
  renderSupport();
}

/** A live message; answers true when it was a check-in answer. */
export function onSupportMessage(message) {
  if (message.type !== 'checkin.answered' || !message.checkin?.id) return false;
  if (message.checkin.support_requested) {
    state.answers.set(message.checkin.id, message.checkin);
    renderSupport();
    const announce = $('announce');
    if (announce) announce.textContent = t('support.new', { name: message.checkin.volunteer?.name ?? '' });
  }
  return true;
}

export function renderSupport() {
  const section = $('support');
  const answers = [...state.answers.values()].sort((a, b) => String(b.answered_at).localeCompare(String(a.answered_at))).slice(0, MAX_SHOWN);
  section.hidden = !state.available;
  section.classList.toggle('bad', answers.length > 0);
  $('support-count').textContent = String(answers.length);
  $('support-list').innerHTML = answers.length === 0 ? `<li class="muted">${esc(t('support.none'))}</li>` : answers.map((a) => `
    <li class="support-request" data-checkin="${esc(a.id)}" data-alert="${esc(a.alert_id)}">
      <p><strong>${esc(a.volunteer?.name ?? '')}</strong> <span class="badge bad">${esc(t('support.flag'))}</span></p>
      <p>${esc(t('support.wellbeing', { n: a.wellbeing }))}${a.wants_contact ? ` · ${esc(t('support.contact'))}` : ''}</p>
      ${a.note ? `<blockquote>${esc(a.note)}</blockquote>` : ''}
      <small class="muted">${esc(clock(a.answered_at))}</small>
      <button type="button" class="link" data-open-alert="${esc(a.alert_id)}">${esc(t('support.open'))}</button>
    </li>`).join('');
}
