// The health-worker check in the volunteer app: a NIK sent once to SATUSEHAT through KREKI
// (POST /v1/volunteers/me/practitioner-verification), with a privacy note first, and the outcome
// in words: verified (with the IHS number), not found, ambiguous, or pending because SATUSEHAT
// could not be reached. While pending, the app follows the background retries
// (GET /v1/volunteers/me/practitioner-verification) until SATUSEHAT answers. The NIK is never
// kept in the app.
import { clock, t } from '/web/shared/i18n.js';
import { clearFieldErrors, say, showProblem } from '/web/shared/forms.js';

/** How often a pending verification is looked at again, in milliseconds. */
const FOLLOW_MS = 3000;

let api = null;
let follow = null;
const $ = (id) => document.getElementById(id);

/** Wires the form to `theApi`. */
export function initPractitioner(theApi) {
  api = theApi;
  $('practitioner-form').addEventListener('submit', submit);
}

/** The tab opened: show where the verification stands. */
export async function showPractitioner() {
  try {
    render(await api.request('GET', '/v1/volunteers/me/practitioner-verification'));
  } catch {
    // Never asked (404), or no bridge here: the form alone.
  }
}

function render(standing) {
  const out = $('practitioner-result');
  const status = standing.status;
  out.dataset.status = status;
  let text = t(`prac.${status}`, { ihs: standing.ihs_number ?? '' });
  if (status === 'unavailable') {
    text += ' ' + (standing.next_attempt_at
      ? t('prac.retry', { n: standing.attempts ?? 1, time: clock(standing.next_attempt_at) })
      : standing.attempts > 1 ? t('prac.gaveup') : '');
  }
  say(out, text.trim(), status === 'verified');
  clearTimeout(follow);
  if (status === 'unavailable' && standing.next_attempt_at !== null) {
    follow = setTimeout(showPractitioner, FOLLOW_MS);
  }
}

async function submit(event) {
  event.preventDefault();
  const form = event.target;
  const button = form.querySelector('button[type=submit]');
  clearFieldErrors(form);
  button.disabled = true;
  try {
    const answer = await api.request('POST', '/v1/volunteers/me/practitioner-verification', { body: { nik: $('nik').value } });
    $('nik').value = '';
    if (answer.status === 'unavailable') await showPractitioner();
    else render(answer);
  } catch (failure) {
    if (failure.status === 429) say($('practitioner-result'), t('prac.toosoon', { s: failure.problem?.retry_after_s ?? 10 }), false);
    else showProblem(form, failure, $('practitioner-result'));
  } finally {
    button.disabled = false;
  }
}
