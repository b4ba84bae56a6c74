// Aftercare in the volunteer app: some time after an assignment ends (90 minutes by default) the
// server sends a check-in (WebSocket `checkin`; GET /v1/volunteers/me/checkins lists the due ones
// too, so one sent while the app was closed still shows). The volunteer says how they are (1 to
// 5), whether they want someone to contact them, and what happened, once; a request for support
// reaches the coordinators. The server's field errors show beside the fields.
import { esc } from '/web/shared/api.js';
import { day, t } from '/web/shared/i18n.js';
import { say, showProblem } from '/web/shared/forms.js';

const $ = (id) => document.getElementById(id);
const state = { api: null, checkins: new Map() };

/** Wires the check-in list to `api`; call `loadCheckins()` once signed in. */
export function initCheckins(api) {
  state.api = api;
  $('checkins').addEventListener('submit', answer);
}

/** Fetches the due, unanswered check-ins. */
export async function loadCheckins() {
  try {
    const due = await state.api.request('GET', '/v1/volunteers/me/checkins');
    state.checkins = new Map((due ?? []).filter((c) => !c.answered_at).map((c) => [c.id, c]));
  } catch {
    // Kept as it was: the WebSocket brings new ones, and the next start asks again.
  }
  renderCheckins();
}

/** A live `checkin` message; answers true when it was one. */
export function onCheckinMessage(message) {
  if (message.type !== 'checkin' || !message.checkin?.id) return false;
  if (!message.checkin.answered_at) state.checkins.set(message.checkin.id, message.checkin);
  renderCheckins();
  navigator.vibrate?.([200]);
  return true;
}

export function renderCheckins() {
  const box = $('checkins');
  const list = [...state.checkins.values()];
  // Typing in a form is never undone by a redraw: only redraw when the set changed or the language did.
  const key = `${list.map((c) => c.id).join(',')}|${document.documentElement.lang}`;
  if (box.dataset.key === key) return;
  box.dataset.key = key;
  box.innerHTML = list.map((checkin) => `<form class="card checkin" data-checkin="${esc(checkin.id)}" novalidate aria-labelledby="ck-${esc(checkin.id)}">
    <h2 id="ck-${esc(checkin.id)}">${esc(t('checkin.title'))}</h2>
    <p>${esc(t('checkin.intro', { date: day(checkin.due_at) }))}</p>
    <fieldset data-field="wellbeing"><legend>${esc(t('checkin.wellbeing'))}</legend>
      <div class="wellbeing">${[1, 2, 3, 4, 5].map((n) => `<label class="check"><input type="radio" name="wellbeing" value="${n}"> ${n} · ${esc(t(`checkin.wellbeing.${n}`))}</label>`).join('')}</div>
    </fieldset>
    <label class="check"><input type="checkbox" name="wants_contact" data-field="wants_contact"> ${esc(t('checkin.contact'))}</label>
    <label for="ck-note-${esc(checkin.id)}">${esc(t('checkin.note'))}</label>
    <textarea id="ck-note-${esc(checkin.id)}" name="note" data-field="note" rows="3" maxlength="2000"></textarea>
    <button type="submit" class="primary big">${esc(t('checkin.send'))}</button>
    <p class="message" role="status" data-checkin-message hidden></p>
  </form>`).join('');
}

async function answer(event) {
  event.preventDefault();
  const form = event.target.closest('form[data-checkin]');
  if (!form) return;
  const id = form.dataset.checkin;
  const data = new FormData(form);
  // No choice is sent as 0, so the server names the field in its own words.
  const body = { wellbeing: Number(data.get('wellbeing') ?? 0), wants_contact: data.get('wants_contact') === 'on' };
  const note = String(data.get('note') ?? '').trim();
  if (note) body.note = note;
  const button = form.querySelector('button[type=submit]');
  button.disabled = true;
  try {
    await state.api.request('POST', `/v1/checkins/${encodeURIComponent(id)}`, { body });
    state.checkins.delete(id);
    renderCheckins();
    say($('checkin-message'), t(body.wants_contact || body.wellbeing <= 2 ? 'checkin.thanks.support' : 'checkin.thanks'));
  } catch (failure) {
    if (failure.status === 409) {
      state.checkins.delete(id);
      renderCheckins();
      say($('checkin-message'), t('checkin.already'));
    } else {
      showProblem(form, failure, form.querySelector('[data-checkin-message]'));
    }
  } finally {
    button.disabled = false;
  }
}
