// Recording how an incident ended (POST /v1/alerts/{id}/resolve): the coordinator picks the
// outcome (treated on scene, to hospital, false alarm, nobody found, other) and may add a note; an
// open alert closes, and the volunteers who responded see the outcome. Recording again replaces
// it. A cancelled alert has nothing to record. The server's field errors show beside the fields.
import { esc } from '/web/shared/api.js';
import { t } from '/web/shared/i18n.js';
import { clearFieldErrors, say, showProblem } from '/web/shared/forms.js';

export const OUTCOMES = ['treated_on_scene', 'to_hospital', 'false_alarm', 'not_found', 'other'];
const $ = (id) => document.getElementById(id);
const state = { api: null, alert: null, onResolved: () => {} };

/** Wires the form; `onResolved(alert)` gets the Alert the server answers. */
export function initResolve(api, { onResolved }) {
  state.api = api;
  state.onResolved = onResolved;
  $('resolve-form').addEventListener('submit', resolve);
}

/** Shows the form for `alert` (hidden for a cancelled one), with its outcome when recorded. */
export function renderResolve(alert) {
  const changed = state.alert?.id !== alert?.id;
  state.alert = alert;
  const form = $('resolve-form');
  form.hidden = !alert || alert.status === 'cancelled';
  if (!alert) return;
  const select = $('resolve-outcome');
  const chosen = changed ? (alert.outcome ?? '') : select.value;
  select.innerHTML = `<option value="">${esc(t('dash.resolve.choose'))}</option>`
    + OUTCOMES.map((o) => `<option value="${o}" ${o === chosen ? 'selected' : ''}>${esc(t(`outcome.${o}`))}</option>`).join('');
  const current = $('resolve-current');
  current.hidden = !alert.outcome;
  current.textContent = alert.outcome ? t('dash.resolve.current', { outcome: t(`outcome.${alert.outcome}`) }) : '';
  if (changed) {
    clearFieldErrors(form);
    $('resolve-note').value = '';
    say($('resolve-message'), '');
  }
}

async function resolve(event) {
  event.preventDefault();
  const alert = state.alert;
  if (!alert) return;
  const form = $('resolve-form');
  const body = { outcome: $('resolve-outcome').value };
  const note = $('resolve-note').value.trim();
  if (note) body.note = note;
  const button = form.querySelector('button[type=submit]');
  button.disabled = true;
  try {
    const resolved = await state.api.request('POST', `/v1/alerts/${encodeURIComponent(alert.id)}/resolve`, { body });
    clearFieldErrors(form);
    state.onResolved(resolved);
    say($('resolve-message'), t('dash.resolve.saved', { outcome: t(`outcome.${resolved.outcome ?? body.outcome}`) }));
  } catch (failure) {
    showProblem(form, failure, $('resolve-message'));
  } finally {
    button.disabled = false;
  }
}
