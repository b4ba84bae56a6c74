// The admin console: accounts (search by phone or name, roles, block), OAuth2 clients for health
// systems (create with scopes, rotate the secret, change scopes, revoke), MQTT devices (register;
// rotate credentials = revoke and register anew, the only way the registry gives new ones), and
// dispatch settings per alert kind (waves, offer policy and responder roles, the fields
// PUT /v1/dispatch/kinds/{kind} takes, sent
// back with whatever else the server returned, so fields it learns later survive an edit). Every
// refusal shows the server's field error beside the field.
import { Api, esc } from '/web/shared/api.js';
import { clock, initI18n, onLanguage, t } from '/web/shared/i18n.js';
import '/admin/admin-text.js';
import { openConsole } from '/web/shared/console.js';
import { clearFieldErrors, say, showProblem } from '/web/shared/forms.js';

const ROLES = ['volunteer', 'coordinator', 'trainer', 'admin'];
const SCOPES = ['system/*.read', 'system/Encounter.read', 'system/Location.read', 'system/Task.read'];
const api = new Api('admin');
const $ = (id) => document.getElementById(id);
const state = { accounts: [], clients: [], devices: [], kinds: [] };

initI18n();
onLanguage(() => {
  renderScopes();
  renderAccounts();
  renderClients();
  renderDevices();
  renderKinds();
});
$('search-form').addEventListener('submit', search);
$('accounts').addEventListener('submit', saveRoles);
$('accounts').addEventListener('click', block);
$('client-form').addEventListener('submit', createClient);
$('clients').addEventListener('click', clientAction);
$('clients').addEventListener('submit', saveScopes);
$('device-form').addEventListener('submit', registerDevice);
$('devices').addEventListener('click', rotateDevice);
$('kinds').addEventListener('submit', saveKind);
$('kinds').addEventListener('click', waveAction);
renderScopes();

const { error } = openConsole(api, 'admin', () => Promise.all([loadClients(), loadDevices(), loadKinds()]));

// ------------------------------------------------------------ accounts

async function search(event) {
  event.preventDefault();
  const form = event.target;
  clearFieldErrors(form);
  try {
    state.accounts = await api.request('GET', `/v1/admin/users?q=${encodeURIComponent($('q').value)}`);
    say($('accounts-message'), state.accounts.length ? '' : t('admin.search.none'), false);
  } catch (failure) {
    state.accounts = [];
    showProblem(form, failure, $('accounts-message'));
  }
  renderAccounts();
}

function renderAccounts() {
  $('accounts').innerHTML = state.accounts.map((user) => `<li class="card" data-account="${esc(user.id)}">
    <strong>${esc(user.name)}</strong> · ${esc(user.phone)}${user.email ? ` · ${esc(user.email)}` : ''}<br><small>${esc(user.id)}</small>
    <form data-roles="${esc(user.id)}" data-name="${esc(user.name)}" novalidate><fieldset data-field="roles"><legend>${esc(t('admin.roles'))}</legend>
      ${ROLES.map((role) => `<label class="check"><input type="checkbox" name="role" value="${role}" ${user.roles.includes(role) ? 'checked' : ''}> ${esc(t(`role.${role}`))}</label>`).join('')}
    </fieldset><button type="submit" class="primary">${esc(t('admin.roles.save'))}</button>
    <button type="button" class="danger" data-block="${esc(user.id)}" data-name="${esc(user.name)}">${esc(t('admin.block'))}</button></form>
    <p class="message" role="status" data-account-message="${esc(user.id)}" hidden></p></li>`).join('');
}

async function saveRoles(event) {
  event.preventDefault();
  const form = event.target;
  const id = form.dataset.roles;
  const roles = ['citizen', ...[...form.querySelectorAll('input[name=role]:checked')].map((input) => input.value)];
  const out = $('accounts').querySelector(`[data-account-message="${CSS.escape(id)}"]`);
  try {
    const user = await api.request('PUT', `/v1/admin/users/${encodeURIComponent(id)}/roles`, { body: { roles } });
    state.accounts = state.accounts.map((u) => (u.id === id ? user : u));
    clearFieldErrors(form);
    say(out, t('admin.roles.saved', { name: user.name }));
  } catch (failure) {
    showProblem(form, failure, out);
  }
}

async function block(event) {
  const button = event.target.closest('button[data-block]');
  if (!button) return;
  const id = button.dataset.block;
  const out = $('accounts').querySelector(`[data-account-message="${CSS.escape(id)}"]`);
  try {
    await api.request('PUT', `/v1/admin/users/${encodeURIComponent(id)}/trust`, { body: { trust: 'blocked' } });
    say(out, t('admin.blocked', { name: button.dataset.name }));
  } catch (failure) {
    // Blocking arrives with account trust levels (API.md, second round); until then, say so.
    if ([404, 405].includes(failure.status)) say(out, t('admin.block.unavailable').replace('{id}', id), false);
    else showProblem(button.form, failure, out);
  }
}

// ------------------------------------------------------------ OAuth clients

function renderScopes() {
  $('client-scopes').innerHTML = `<legend>${esc(t('admin.client.scopes'))}</legend>` + SCOPES.map((scope) =>
    `<label class="check"><input type="checkbox" name="scope" value="${scope}"> <code>${scope}</code></label>`).join('');
}

async function loadClients() {
  try {
    state.clients = await api.request('GET', '/v1/admin/clients');
  } catch (failure) {
    say($('clients-message'), t('common.error.generic', { detail: failure.message }), false);
  }
  renderClients();
}

function renderClients() {
  $('clients').innerHTML = state.clients.map((client) => `<li class="card" data-client="${esc(client.client_id)}">
    <strong>${esc(client.name)}</strong> <code>${esc(client.client_id)}</code>
    ${client.revoked_at ? `<span class="badge">${esc(t('admin.client.revoked'))}</span>` : ''}<br><small>${esc(clock(client.created_at))}</small>
    ${client.revoked_at ? '' : `<form data-scopes="${esc(client.client_id)}" novalidate><fieldset data-field="scopes"><legend>${esc(t('admin.client.scopes'))}</legend>
      ${SCOPES.map((scope) => `<label class="check"><input type="checkbox" name="scope" value="${scope}" ${client.scopes.includes(scope) ? 'checked' : ''}> <code>${scope}</code></label>`).join('')}</fieldset>
      <button type="submit">${esc(t('admin.client.scopes.save'))}</button>
      <button type="button" data-rotate="${esc(client.client_id)}">${esc(t('admin.client.rotate'))}</button>
      <button type="button" class="danger" data-revoke="${esc(client.client_id)}">${esc(t('admin.client.revoke'))}</button></form>`}</li>`).join('');
}

function showSecret(created) {
  const out = $('clients-message');
  say(out, t('admin.client.secret', { secret: created.client_secret }));
  out.dataset.clientId = created.client_id;
  out.dataset.secret = created.client_secret;
}

async function createClient(event) {
  event.preventDefault();
  const form = event.target;
  const body = { name: $('client-name').value, scopes: [...form.querySelectorAll('input[name=scope]:checked')].map((input) => input.value) };
  try {
    const created = await api.request('POST', '/v1/admin/clients', { body });
    clearFieldErrors(form);
    form.reset();
    showSecret(created);
    await loadClients();
  } catch (failure) {
    showProblem(form, failure, $('clients-message'));
  }
}

async function clientAction(event) {
  const button = event.target.closest('button');
  if (!button || !(button.dataset.rotate || button.dataset.revoke)) return;
  try {
    if (button.dataset.rotate) {
      showSecret(await api.request('POST', `/v1/admin/clients/${encodeURIComponent(button.dataset.rotate)}/secret`));
    } else {
      await api.request('DELETE', `/v1/admin/clients/${encodeURIComponent(button.dataset.revoke)}`);
      say($('clients-message'), t('common.saved'));
    }
    await loadClients();
  } catch (failure) {
    showProblem(button.form, failure, $('clients-message'));
  }
}

async function saveScopes(event) {
  event.preventDefault();
  const form = event.target;
  const scopes = [...form.querySelectorAll('input[name=scope]:checked')].map((input) => input.value);
  try {
    await api.request('PUT', `/v1/admin/clients/${encodeURIComponent(form.dataset.scopes)}/scopes`, { body: { scopes } });
    say($('clients-message'), t('common.saved'));
    await loadClients();
  } catch (failure) {
    showProblem(form, failure, $('clients-message'));
  }
}

// ------------------------------------------------------------ MQTT devices

async function loadDevices() {
  try {
    state.devices = await api.request('GET', '/v1/mqtt/devices');
  } catch (failure) {
    say($('devices-message'), t('common.error.generic', { detail: failure.message }), false);
  }
  renderDevices();
}

function renderDevices() {
  const live = state.devices.filter((device) => !device.revoked_at);
  $('devices').innerHTML = live.length === 0 ? `<li class="muted">${esc(t('admin.device.none'))}</li>` : live.map((device) => `<li class="card" data-device="${esc(device.id)}">
    <strong>${esc(device.label || device.id)}</strong> · ${esc(t(`admin.device.${device.kind}`))}<br><code>${esc(device.publish_topic)}</code>
    <button type="button" data-rotate-device="${esc(device.id)}" data-kind="${esc(device.kind)}" data-label="${esc(device.label)}">${esc(t('admin.device.rotate'))}</button></li>`).join('');
}

function showCredentials(registered) {
  const out = $('devices-message');
  say(out, t('admin.device.credentials', registered.mqtt));
  out.dataset.username = registered.mqtt.username;
}

async function registerDevice(event) {
  event.preventDefault();
  const form = event.target;
  try {
    const registered = await api.request('POST', '/v1/mqtt/devices', { body: { kind: $('device-kind').value, label: $('device-label').value } });
    clearFieldErrors(form);
    showCredentials(registered);
    await loadDevices();
  } catch (failure) {
    showProblem(form, failure, $('devices-message'));
  }
}

async function rotateDevice(event) {
  const button = event.target.closest('button[data-rotate-device]');
  if (!button) return;
  button.disabled = true;
  try {
    const registered = await api.request('POST', '/v1/mqtt/devices', { body: { kind: button.dataset.kind, label: button.dataset.label } });
    await api.request('DELETE', `/v1/mqtt/devices/${encodeURIComponent(button.dataset.rotateDevice)}`);
    showCredentials(registered);
    await loadDevices();
  } catch (failure) {
    say($('devices-message'), t('common.error.generic', { detail: failure.message }), false);
    button.disabled = false;
  }
}

// ------------------------------------------------------------ dispatch settings per kind

async function loadKinds() {
  try {
    state.kinds = await api.request('GET', '/v1/dispatch/kinds');
  } catch (failure) {
    $('kinds').innerHTML = `<p class="message error">${esc(failure.status === 404 ? t('common.error.unavailable', { status: 404 }) : t('common.error.generic', { detail: failure.message }))}</p>`;
    return;
  }
  renderKinds();
}

function renderKinds() {
  $('kinds').innerHTML = state.kinds.map((entry, k) => `<form class="card" data-kind="${esc(entry.kind)}" data-index="${k}" novalidate>
    <h3>${esc(t(`kind.${entry.kind}`))}</h3>
    <div class="grid2">
      <div><label for="rn-${k}">${esc(t('admin.kind.responders'))}</label><input id="rn-${k}" type="number" data-field="responders_needed" value="${esc(entry.responders_needed)}"></div>
      <div><label for="rc-${k}">${esc(t('admin.kind.certs'))}</label><input id="rc-${k}" data-field="required_certifications" value="${esc((entry.required_certifications ?? []).join(', '))}"></div>
    </div>
    <label class="check"><input type="checkbox" data-field="requires_verified_practitioner" ${entry.requires_verified_practitioner ? 'checked' : ''}> ${esc(t('admin.kind.verified'))}</label>
    <fieldset data-field="waves"><legend>${esc(t('admin.kind.waves'))}</legend>
      ${(entry.waves ?? []).map((wave, w) => `<div class="grid2 wave" data-wave="${w}"><strong>${esc(t('admin.kind.wave', { n: w + 1 }))}</strong><span></span>
        <div><label for="wc-${k}-${w}">${esc(t('admin.kind.count'))}</label><input id="wc-${k}-${w}" type="number" data-field="waves[${w}].count" value="${esc(wave.count)}"></div>
        <div><label for="wr-${k}-${w}">${esc(t('admin.kind.radius'))}</label><input id="wr-${k}-${w}" type="number" data-field="waves[${w}].radius_m" value="${esc(wave.radius_m)}"></div>
        <div><label for="wt-${k}-${w}">${esc(t('admin.kind.timeout'))}</label><input id="wt-${k}-${w}" type="number" data-field="waves[${w}].timeout_s" value="${esc(wave.timeout_s)}"></div>
        <div><button type="button" data-remove-wave="${w}">${esc(t('trainer.remove'))}</button></div></div>`).join('')}
      <button type="button" data-add-wave="1">${esc(t('admin.kind.addwave'))}</button></fieldset>
    ${entry.policy ? policyFields(entry, k) : ''}
    <button type="submit" class="primary">${esc(t('admin.kind.save', { kind: t(`kind.${entry.kind}`) }))}</button>
    <p class="message" role="status" data-kind-message="${esc(entry.kind)}" hidden></p></form>`).join('');
}

const RESPONDER_ROLES = ['cpr', 'aed', 'lead'];

/** The offer policy (live offers, replacing declines and expiries, the most alerted) and the
 *  roles given to accepts in order: one select per place, so a repeat is named at its place. */
function policyFields(entry, k) {
  const policy = entry.policy;
  const roles = entry.roles ?? [];
  return `<fieldset data-field="policy"><legend>${esc(t('admin.kind.policy'))}</legend>
      <div class="grid2">
        <div><label for="pl-${k}">${esc(t('admin.kind.live'))}</label><input id="pl-${k}" type="number" data-field="policy.live_offers" value="${esc(policy.live_offers)}"></div>
        <div><label for="pm-${k}">${esc(t('admin.kind.max'))}</label><input id="pm-${k}" type="number" data-field="policy.max_alerted" value="${esc(policy.max_alerted)}"></div>
      </div>
      <label class="check"><input type="checkbox" data-field="policy.replace_on_decline" ${policy.replace_on_decline ? 'checked' : ''}> ${esc(t('admin.kind.replace_decline'))}</label>
      <label class="check"><input type="checkbox" data-field="policy.replace_on_expiry" ${policy.replace_on_expiry ? 'checked' : ''}> ${esc(t('admin.kind.replace_expiry'))}</label></fieldset>
    <fieldset data-field="roles"><legend>${esc(t('admin.kind.roles'))}</legend><div class="grid2">
      ${RESPONDER_ROLES.map((_, r) => `<div><label for="ro-${k}-${r}">${esc(t('admin.kind.role', { n: r + 1 }))}</label>
        <select id="ro-${k}-${r}" data-field="roles[${r}]"><option value="">${esc(t('admin.kind.role.none'))}</option>
        ${RESPONDER_ROLES.map((role) => `<option value="${role}" ${roles[r] === role ? 'selected' : ''}>${esc(t(`responder.rolename.${role}`))}</option>`).join('')}</select></div>`).join('')}
    </div></fieldset>`;
}

/** The form's values over the entry the server gave: fields this form does not know stay. */
function readKind(form) {
  const entry = structuredClone(state.kinds[Number(form.dataset.index)]);
  const value = (field) => form.querySelector(`[data-field="${CSS.escape(field)}"]`);
  const number = (input) => (input.value === '' ? null : Number(input.value));
  entry.responders_needed = number(value('responders_needed'));
  entry.required_certifications = value('required_certifications').value.split(',').map((s) => s.trim()).filter(Boolean);
  entry.requires_verified_practitioner = value('requires_verified_practitioner').checked;
  entry.waves = [...form.querySelectorAll('[data-wave]')].map((row) => {
    const w = row.dataset.wave;
    return { count: number(value(`waves[${w}].count`)), radius_m: number(value(`waves[${w}].radius_m`)), timeout_s: number(value(`waves[${w}].timeout_s`)) };
  });
  if (value('policy.live_offers')) {
    entry.policy = {
      ...entry.policy,
      live_offers: number(value('policy.live_offers')),
      max_alerted: number(value('policy.max_alerted')),
      replace_on_decline: value('policy.replace_on_decline').checked,
      replace_on_expiry: value('policy.replace_on_expiry').checked,
    };
    // Places left empty are skipped: the roles go to accepts in the order chosen.
    entry.roles = RESPONDER_ROLES.map((_, r) => value(`roles[${r}]`).value).filter(Boolean);
  }
  return entry;
}

function waveAction(event) {
  const button = event.target.closest('button');
  const form = button?.closest('form[data-kind]');
  if (!form || !(button.dataset.addWave || button.dataset.removeWave)) return;
  const entry = readKind(form);
  if (button.dataset.addWave) {
    const last = entry.waves.at(-1) ?? { count: 3, radius_m: 1000, timeout_s: 30 };
    entry.waves.push({ count: last.count, radius_m: (last.radius_m ?? 1000) * 2, timeout_s: last.timeout_s });
  } else {
    entry.waves.splice(Number(button.dataset.removeWave), 1);
  }
  state.kinds[Number(form.dataset.index)] = entry;
  renderKinds();
}

async function saveKind(event) {
  event.preventDefault();
  const form = event.target;
  const entry = readKind(form);
  const { kind, ...settings } = entry;
  const out = form.querySelector('[data-kind-message]');
  try {
    const saved = await api.request('PUT', `/v1/dispatch/kinds/${encodeURIComponent(kind)}`, { body: settings });
    state.kinds[Number(form.dataset.index)] = saved;
    renderKinds();
    const fresh = $('kinds').querySelector(`[data-kind-message="${CSS.escape(kind)}"]`);
    say(fresh, t('admin.kind.saved', { kind: t(`kind.${kind}`) }));
  } catch (failure) {
    state.kinds[Number(form.dataset.index)] = entry;
    showProblem(form, failure, out);
  }
}
