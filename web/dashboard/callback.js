// Call-back in the alert detail: phones are shown nowhere else on the dashboard. "Call back" asks
// the coordinator why (the reason goes to the audit log with each number shown), then
// POST /v1/alerts/{id}/contacts/view answers the caller's and the responders' numbers, shown as
// tel: links until another alert is opened. A coordinator of another region gets the server's 403.
import { esc } from '/web/shared/api.js';
import { t } from '/web/shared/i18n.js';
import { clearFieldErrors, say, showProblem } from '/web/shared/forms.js';

const $ = (id) => document.getElementById(id);
const state = { api: null, alert: null, onViewed: () => {} };

/** Wires the button and the reason form; `onViewed(id)` reloads the timeline after a view. */
export function initCallback(api, { onViewed }) {
  state.api = api;
  state.onViewed = onViewed;
  $('callback-open').addEventListener('click', () => {
    $('callback-form').hidden = false;
    $('callback-open').hidden = true;
    $('callback-reason').focus();
  });
  $('callback-cancel').addEventListener('click', () => reset());
  $('callback-form').addEventListener('submit', (event) => view(event));
}

/** Shows the call-back tool for `alert`; numbers already shown go when another alert opens. */
export function renderCallback(alert) {
  const changed = state.alert?.id !== alert?.id;
  state.alert = alert;
  $('callback').hidden = !alert;
  if (changed) reset();
}

function reset() {
  const form = $('callback-form');
  clearFieldErrors(form);
  form.reset();
  form.hidden = true;
  $('callback-open').hidden = false;
  $('callback-contacts').hidden = true;
  $('callback-contacts').innerHTML = '';
  say($('callback-message'), '');
}

function phoneLink(phone) {
  return phone ? `<a href="tel:${esc(phone)}">${esc(phone)}</a>` : esc(t('ops.callback.nophone'));
}

async function view(event) {
  event.preventDefault();
  const alert = state.alert;
  if (!alert) return;
  const form = event.target;
  const button = form.querySelector('button[type=submit]');
  button.disabled = true;
  try {
    const contacts = await state.api.request('POST', `/v1/alerts/${encodeURIComponent(alert.id)}/contacts/view`,
      { body: { reason: $('callback-reason').value.trim() } });
    clearFieldErrors(form);
    form.hidden = true;
    const caller = contacts.caller ?? {};
    const rows = [`<li><strong>${esc(t('ops.callback.caller'))}</strong>: ${esc(caller.name ?? t('ops.callback.phoned'))} — ${phoneLink(caller.phone)}</li>`]
      .concat((contacts.responders ?? []).map((r) =>
        `<li><strong>${esc(t('ops.callback.responder'))}</strong>: ${esc(r.name)}${r.role ? ` (${esc(t(`responder.rolename.${r.role}`))})` : ''} — ${phoneLink(r.phone)}</li>`));
    $('callback-contacts').innerHTML = rows.join('');
    $('callback-contacts').hidden = false;
    say($('callback-message'), t('ops.callback.recorded'));
    state.onViewed(alert.id);
  } catch (error) {
    showProblem(form, error, $('callback-message'));
  } finally {
    button.disabled = false;
  }
}
