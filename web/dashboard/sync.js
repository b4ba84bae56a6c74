// SATUSEHAT sync failures on the dashboard: when the bridge runs (GET /v1/fhir-sync/failures
// answers), a panel lists the Encounter changes SATUSEHAT never accepted, each with a retry that
// queues it again; the alert detail says so too. Without the bridge the panel stays hidden for good.
import { ApiError, esc } from '/web/shared/api.js';
import { clock, t } from '/web/shared/i18n.js';

/** Answers that mean the SATUSEHAT bridge does not run here (its routes are not mounted). */
const NO_BRIDGE = new Set([404, 405, 501]);
const $ = (id) => document.getElementById(id);
/** `available` is null until asked, false without the bridge. */
let sync = { available: null, failures: [] };
/** What the dashboard lends: its API, alerts, selection and detail. */
let ctx = null;

/** True for a drill: the flag the platform stores, never anything a citizen typed. */
const isDrill = (alert) => alert.drill === true;

function showError(element, text) {
  element.textContent = text;
  element.hidden = !text;
}

/** `context` = `{api, alerts: () => Map, selected: () => id, select(id), renderDetail()}`. */
export function initSync(context) {
  ctx = context;
}

/** Encounter changes for `alertId` that SATUSEHAT never accepted. */
export function syncFailuresOf(alertId) {
  return sync.failures.filter((f) => f.alert_id === alertId);
}

/** Fetches the failures; hides the panel for good when the bridge does not run here. */
export async function loadSyncFailures() {
  if (sync.available === false) return;
  try {
    const list = await ctx.api.request('GET', '/v1/fhir-sync/failures?limit=100');
    sync = { available: true, failures: list ?? [] };
  } catch (error) {
    if (error instanceof ApiError && NO_BRIDGE.has(error.status)) sync = { available: false, failures: [] };
    // Anything else (offline, 5xx): keep what is shown; the next poll tries again.
  }
  renderSync();
  if (ctx.selected()) ctx.renderDetail();
}

export function renderSync() {
  const panel = $('sync');
  panel.hidden = sync.available !== true;
  if (panel.hidden) return;
  const failures = sync.failures;
  $('sync-count').textContent = String(failures.length);
  panel.dataset.count = String(failures.length);
  panel.classList.toggle('bad', failures.length > 0);
  // What to do about failures is said only while there are some.
  $('sync-hint').hidden = failures.length === 0;
  $('sync-list').innerHTML = failures.length === 0
    ? `<li class="muted">${esc(t('dash.sync.none'))}</li>`
    : failures.map((f) => {
      const alert = ctx.alerts().get(f.alert_id);
      const what = alert ? `${t(`kind.${alert.kind}`)}${isDrill(alert) ? ` (${t('dash.drill')})` : ''}` : t('dash.sync.alert', { id: String(f.alert_id).slice(0, 8) });
      return `<li data-failure="${esc(f.id)}">
        <span><button type="button" class="link" data-alert="${esc(f.alert_id)}">${esc(what)}</button><br>
          <small>${esc(t(`dash.sync.action.${f.action}`))} · ${esc(t('dash.sync.attempts', { n: f.attempts }))} · ${esc(clock(f.failed_at))}</small>
          ${f.last_error ? `<br><small class="error-text">${esc(f.last_error)}</small>` : ''}</span>
        <button type="button" class="primary" data-retry="${esc(f.id)}"
          aria-label="${esc(t('dash.sync.retry.aria', { what }))}">${esc(t('dash.sync.retry'))}</button></li>`;
    }).join('');
}

/** A click in the sync panel or the detail: open the alert, or queue its failed change again. */
export async function onSyncClick(event) {
  const open = event.target.closest('button[data-alert]');
  if (open) {
    ctx.select(open.dataset.alert);
    return;
  }
  const button = event.target.closest('button[data-retry]');
  if (!button) return;
  const id = Number(button.dataset.retry);
  button.disabled = true;
  const message = $('sync-message');
  try {
    await ctx.api.request('POST', `/v1/fhir-sync/failures/${encodeURIComponent(id)}/retry`);
    sync.failures = sync.failures.filter((f) => f.id !== id);
    message.className = 'message ok';
    showError(message, t('dash.sync.retried'));
  } catch (error) {
    message.className = 'message error';
    showError(message, error instanceof ApiError && error.status === 404
      ? t('dash.sync.gone') : t('common.error.generic', { detail: error.message }));
    button.disabled = false;
  }
  renderSync();
  if (ctx.selected()) ctx.renderDetail();
  loadSyncFailures();
}
