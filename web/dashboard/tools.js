// The coordinator's tools in the alert detail: a note on the timeline (POST /v1/alerts/{id}/notes),
// a hand-off to 112 / PSC 119 with the reference they gave (POST /v1/alerts/{id}/handoff), and,
// for an alert nobody took, sending it out again to a wider radius (POST /v1/alerts/{id}/redispatch).
// The server's field errors show beside the fields.
import { t } from '/web/shared/i18n.js';
import { clearFieldErrors, say, showProblem } from '/web/shared/forms.js';

const $ = (id) => document.getElementById(id);
const OPEN = new Set(['triage', 'dispatching', 'assigned', 'on_scene', 'unmatched']);
const HANDOFF_TO = ['112', 'psc119', 'other'];
const state = { api: null, alert: null, onChanged: () => {} };

/** Wires the forms; `onChanged(alert | null, id)` reloads the detail after a change. */
export function initTools(api, { onChanged }) {
  state.api = api;
  state.onChanged = onChanged;
  $('note-form').addEventListener('submit', (event) => send(event, 'notes', () => ({ text: $('note-text').value.trim() }), () => t('ops.note.saved')));
  $('handoff-form').addEventListener('submit', (event) => send(event, 'handoff',
    () => ({ to: $('handoff-to').value, reference: $('handoff-reference').value.trim() }), () => t('ops.handoff.saved')));
  $('redispatch-form').addEventListener('submit', (event) => send(event, 'redispatch',
    () => ({ radius_m: Number($('redispatch-radius').value) }),
    (body) => t('ops.redispatch.saved', { radius: `${body.radius_m} m` })));
}

/** Shows the tools for `alert` (none for a closed one; re-dispatch for an unmatched one only). */
export function renderTools(alert) {
  const changed = state.alert?.id !== alert?.id;
  state.alert = alert;
  $('tools').hidden = !alert;
  if (!alert) return;
  const select = $('handoff-to');
  const keep = select.value || HANDOFF_TO[0];
  select.innerHTML = HANDOFF_TO.map((to) => `<option value="${to}">${t(`ops.handoff.to.${to}`)}</option>`).join('');
  select.value = keep;
  const open = OPEN.has(alert.status);
  $('handoff-form').hidden = !open;
  $('redispatch-form').hidden = alert.status !== 'unmatched';
  if (changed) {
    for (const form of ['note-form', 'handoff-form', 'redispatch-form']) {
      clearFieldErrors($(form));
      $(form).reset();
    }
    say($('tools-message'), '');
  }
}

async function send(event, action, body, done) {
  event.preventDefault();
  const form = event.target;
  const alert = state.alert;
  if (!alert) return;
  const sent = body();
  const button = form.querySelector('button[type=submit]');
  button.disabled = true;
  try {
    const answer = await state.api.request('POST', `/v1/alerts/${encodeURIComponent(alert.id)}/${action}`, { body: sent });
    clearFieldErrors(form);
    form.reset();
    say($('tools-message'), done(sent));
    state.onChanged(answer?.status ? answer : null, alert.id);
  } catch (error) {
    showProblem(form, error, $('tools-message'));
  } finally {
    button.disabled = false;
  }
}
