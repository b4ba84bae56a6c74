// The operations centre of issue 14 on the dashboard, against real `kreki`s of their own (regions
// change how every panic is handled, so they stay out of the shared server), nothing stubbed: a new
// account's panic in a region waits in the triage queue with its countdown until Release; an
// unmatched alert sounds the escalation alarm on every dashboard until one coordinator
// acknowledges it, and the detail's tools (note, hand-off, re-dispatch) show the server's field
// errors beside the fields; the region filter hides the other region's alert.
import { join } from 'node:path';
import { apiCall, assert, screenshot, SCREENSHOTS, startKreki } from './harness.mjs';

/** A square GeoJSON Polygon `size` degrees wide with its south-west corner at (lat, lng). */
function square(lat, lng, size) {
  return { type: 'Polygon', coordinates: [[[lng, lat], [lng + size, lat], [lng + size, lat + size], [lng, lat + size], [lng, lat]]] };
}
/** Jakarta Pusat and Jakarta Utara, roughly: two squares 0.02 degrees apart. */
const CENTRAL = { name: 'Jakarta Pusat', area: square(-6.21, 106.78, 0.06), at: { lat: -6.1754, lng: 106.8272 } };
const NORTH = { name: 'Jakarta Utara', area: square(-6.21, 106.86, 0.06), at: { lat: -6.16, lng: 106.9 } };

async function withOwnKreki(env, body) {
  const server = await startKreki(env);
  try {
    await body(server);
  } finally {
    await server.stop();
  }
}

/** A citizen registered through the API, as the app does (trust `new`). */
async function registered(base, phone, name) {
  const who = { phone, password: 'warga-rahasia-1', name };
  const made = await apiCall(base, null, 'POST', '/v1/auth/register', { phone, password: who.password, name });
  assert(made.status === 201 || made.status === 200, `registered: ${made.status} ${JSON.stringify(made.json)}`);
  return who;
}

async function panic(base, who, at, kind = 'medical') {
  const made = await apiCall(base, who, 'POST', '/v1/alerts', { kind, location: { ...at, accuracy_m: 10 } }, { 'idempotency-key': crypto.randomUUID() });
  assert(made.status === 201, `panic: ${made.status} ${JSON.stringify(made.json)}`);
  return made.json;
}

async function region(base, admin, { name, area }) {
  const made = await apiCall(base, admin, 'POST', '/v1/regions', { name, area });
  assert(made.status === 201, `region ${name}: ${made.status} ${JSON.stringify(made.json)}`);
  return made.json;
}

async function dashboard(newPage, signIn, server, who) {
  const opened = await newPage(server.base);
  await opened.page.goto('/dashboard/');
  await signIn(opened.page, who);
  await opened.page.waitForSelector('#live[data-on="true"]');
  return opened;
}

export function operationsTests({ newPage, signIn, phone, noPageErrors }) {
  return [
    ['operations: a new account\'s panic in a region waits in the triage queue with its countdown; Release sends it and the queue empties', async ({ browser }) => withOwnKreki({ KREKI_DISPATCH__TRIAGE_AUTO_RELEASE_S: '600' }, async (server) => {
      const admin = server.user(phone(), 'admin-rahasia', 'Ade Admin', ['admin']);
      const coordinator = server.user(phone(), 'koordinator-rahasia', 'Tia Triase', ['coordinator']);
      await region(server.base, admin, CENTRAL);
      const citizen = await registered(server.base, phone(), 'Nina Baru');
      const { context, page } = await dashboard((o) => newPage(browser, o), signIn, server, coordinator);

      const alert = await panic(server.base, citizen, CENTRAL.at);
      assert(alert.status === 'triage', `a new account's panic waits: ${alert.status}`);
      const item = `#triage-list [data-alert="${alert.id}"]`;
      await page.waitForSelector(item, { timeout: 10000 });
      await page.waitForSelector(`${item} [data-countdown][data-seconds]`);
      const left = Number(await page.getAttribute(`${item} [data-countdown]`, 'data-seconds'));
      assert(left > 500 && left <= 600, `the countdown runs from the triaged entry's auto_release_at: ${left}`);
      const text = await page.textContent(item);
      assert(text.includes('Medis') && text.includes('Jakarta Pusat') && text.includes('Nina Baru'), `kind, place and caller: ${text}`);
      assert(text.includes('diteruskan otomatis dalam'), `the countdown in Indonesian: ${text}`);
      assert(await page.getAttribute('#triage', 'data-count') === '1', 'one waiting');
      await page.waitForSelector('#escalations [data-reason="triage_waiting"]');
      await page.waitForTimeout(2100);
      const later = Number(await page.getAttribute(`${item} [data-countdown]`, 'data-seconds'));
      assert(later < left, `the countdown counts down: ${left} then ${later}`);
      await screenshot(page, 'ops-triage-queue');
      await page.click('#dash button[data-lang="en"]');
      await page.waitForFunction((sel) => document.querySelector(sel)?.textContent.includes('Release to volunteers'), item);
      await screenshot(page, 'ops-triage-queue-en');
      await page.click('#dash button[data-lang="id"]');

      await page.click(`${item} button[data-release]`);
      await page.waitForSelector(item, { state: 'detached' });
      assert(await page.getAttribute('#triage', 'data-count') === '0', 'the queue is empty');
      // The live frame can empty the queue before the answer comes back: wait for the answer too.
      await page.waitForFunction(() => document.querySelector('#triage-message')?.textContent.includes('Diteruskan'));
      const after = await apiCall(server.base, coordinator, 'GET', `/v1/alerts/${alert.id}`);
      assert(after.json.status !== 'triage', `released to volunteers: ${after.json.status}`);
      const timeline = await apiCall(server.base, coordinator, 'GET', `/v1/alerts/${alert.id}/timeline`);
      assert(timeline.json.some((e) => e.type === 'released' && e.data?.by), 'a coordinator released it');
      // Releasing acknowledged the triage escalation.
      await page.waitForSelector('#escalations [data-reason="triage_waiting"]', { state: 'detached' });
      await screenshot(page, 'ops-triage-released');
      noPageErrors(page);
      await context.close();
    })],

    ['operations: an unmatched alert sounds the escalation alarm on every dashboard until acknowledged; the tools show field errors beside the fields', async ({ browser }) => withOwnKreki({}, async (server) => {
      const coordinator = server.user(phone(), 'koordinator-rahasia', 'Eka Eskalasi', ['coordinator']);
      const other = server.user(phone(), 'koordinator-rahasia', 'Oki Lain', ['coordinator']);
      const citizen = server.user(phone(), 'warga-rahasia', 'Sendi Sendiri');
      const { context, page } = await dashboard((o) => newPage(browser, o), signIn, server, coordinator);
      const second = await dashboard((o) => newPage(browser, o), signIn, server, other);

      const alert = await panic(server.base, citizen, CENTRAL.at, 'fire');
      assert(alert.status === 'unmatched', `nobody is on duty: ${alert.status}`);
      const banner = `#escalations[data-alarm="on"] [data-reason="unmatched"]`;
      await page.waitForSelector(banner, { timeout: 10000 });
      await second.page.waitForSelector(banner, { timeout: 10000 });
      const text = await page.textContent('#escalations');
      assert(text.includes('Tidak ada relawan yang menerima') && text.includes('Kebakaran'), `the reason in words, and the alert: ${text}`);
      await page.waitForFunction(() => Number(document.querySelector('#escalations').dataset.beeps ?? 0) >= 2);
      await screenshot(page, 'ops-escalation-alarm');

      // The link opens the alert; the tools answer with the server's field errors beside the fields.
      await page.click('#escalations button[data-open-alert]');
      await page.waitForSelector('#detail:not([hidden]) #tools:not([hidden])');
      await page.waitForSelector('#redispatch-form:not([hidden])');
      await page.click('#note-form button[type=submit]');
      await page.waitForSelector('#note-form .field-error[data-for="text"]');
      await page.fill('#redispatch-radius', '100');
      await page.click('#redispatch-form button[type=submit]');
      await page.waitForSelector('#redispatch-form .field-error[data-for="radius_m"]');
      const widest = await page.textContent('#redispatch-form .field-error[data-for="radius_m"]');
      assert(widest.includes('lebih luas'), `the server's refusal beside the radius, in Indonesian: ${widest}`);
      await page.click('#handoff-form button[type=submit]');
      await page.waitForSelector('#handoff-form .field-error[data-for="reference"]');
      // The tools are down the side panel: scrolled into view, the window is what is shown.
      await page.evaluate(() => document.getElementById('tools').scrollIntoView());
      await page.screenshot({ path: join(SCREENSHOTS, 'ops-tools-field-errors.png') });
      assert(await page.evaluate(() => document.documentElement.scrollHeight <= innerHeight), 'the page itself does not scroll; the side panel does');
      await page.fill('#note-text', 'Penelepon dihubungi, menunggu Damkar');
      await page.click('#note-form button[type=submit]');
      await page.waitForFunction(() => document.querySelector('#timeline')?.textContent.includes('Catatan: Penelepon dihubungi'));
      await page.selectOption('#handoff-to', 'psc119');
      await page.fill('#handoff-reference', 'PSC-2026-0042');
      await page.click('#handoff-form button[type=submit]');
      await page.waitForFunction(() => document.querySelector('#timeline')?.textContent.includes('PSC-2026-0042'));
      assert(await page.locator('#note-form .field-error').count() === 0, 'the field error goes once the note is accepted');

      // Acknowledge: the banner and the alarm stop here, and on the other coordinator's dashboard.
      await page.click('#escalations button[data-ack]');
      await page.waitForSelector('#escalations[data-alarm="off"]', { state: 'attached' });
      assert(await page.isHidden('#escalations'), 'the banner leaves');
      await second.page.waitForSelector('#escalations[data-alarm="off"]', { state: 'attached', timeout: 10000 });
      assert(await second.page.isHidden('#escalations'), 'and leaves the other dashboard');
      await page.waitForFunction(() => document.querySelector('#timeline')?.textContent.includes('Eskalasi diakui'), null, { timeout: 25000 });
      const open = await apiCall(server.base, coordinator, 'GET', '/v1/escalations?status=open');
      assert(open.json.length === 0, `no open escalation: ${JSON.stringify(open.json)}`);
      await screenshot(page, 'ops-escalation-acknowledged');
      await page.locator('#timeline').screenshot({ path: join(SCREENSHOTS, 'ops-timeline.png') });
      noPageErrors(page);
      noPageErrors(second.page);
      await second.context.close();
      await context.close();
    })],

    ['operations: a refused panic press tells the coordinator, who blocks the account from the notice', async ({ browser }) => withOwnKreki({}, async (server) => {
      const coordinator = server.user(phone(), 'koordinator-rahasia', 'Bima Blokir', ['coordinator']);
      const prankster = await registered(server.base, phone(), 'Iseng Terus');
      const { context, page } = await dashboard((o) => newPage(browser, o), signIn, server, coordinator);
      let refused = null;
      for (let press = 0; press < 15 && !refused; press += 1) {
        const answer = await apiCall(server.base, prankster, 'POST', '/v1/alerts', { kind: 'other', location: { lat: -6.2 + press * 0.01, lng: 106.8, accuracy_m: 10 } }, { 'idempotency-key': crypto.randomUUID() });
        if (answer.status === 429) refused = answer;
      }
      assert(refused, 'a press past the limit is refused with 429');
      const notice = `#escalations [data-limited="${prankster.token ? (await apiCall(server.base, prankster, 'GET', '/v1/auth/me')).json.id : ''}"]`;
      await page.waitForSelector(notice, { timeout: 10000 });
      assert((await page.textContent(notice)).includes('Iseng Terus'), 'the account is named');
      await screenshot(page, 'ops-panic-limited');
      await page.click(`${notice} button[data-block]`);
      await page.waitForFunction((sel) => document.querySelector(sel)?.textContent.includes('diblokir'), notice);
      const again = await apiCall(server.base, { phone: prankster.phone, password: prankster.password }, 'POST', '/v1/auth/login', { login: prankster.phone, password: prankster.password });
      assert(again.status !== 200, `a blocked account gets no new tokens (${again.status})`);
      await page.click(`${notice} button[data-dismiss]`);
      await page.waitForSelector(notice, { state: 'detached' });
      noPageErrors(page);
      await context.close();
    })],

    ['operations: the region filter shows one region\'s alerts and outlines the regions on the map', async ({ browser }) => withOwnKreki({ KREKI_DISPATCH__TRIAGE_AUTO_RELEASE_S: '600' }, async (server) => {
      const admin = server.user(phone(), 'admin-rahasia', 'Ade Admin', ['admin']);
      const coordinator = server.user(phone(), 'koordinator-rahasia', 'Nasi Nasional', ['coordinator']);
      const central = await region(server.base, admin, CENTRAL);
      const north = await region(server.base, admin, NORTH);
      const one = await panic(server.base, await registered(server.base, phone(), 'Pusat Warga'), CENTRAL.at, 'accident');
      const two = await panic(server.base, await registered(server.base, phone(), 'Utara Warga'), NORTH.at, 'fire');
      assert(one.region_id === central.id && two.region_id === north.id, `each in its region: ${one.region_id} ${two.region_id}`);
      const { context, page } = await dashboard((o) => newPage(browser, o), signIn, server, coordinator);
      await page.waitForSelector('#region-filter:not([hidden])');
      await page.waitForSelector('#map[data-alerts="2"][data-regions="2"]');
      assert(await page.locator('#map path.region-outline').count() === 2, 'both regions are outlined');
      assert(await page.locator('#filter-region option').count() === 3, 'all regions, and each');

      await page.selectOption('#filter-region', central.id);
      await page.waitForSelector('#map[data-alerts="1"]');
      assert(await page.locator(`#map [data-alert-id="${one.id}"]`).count() === 1, 'the central alert stays');
      assert(await page.locator(`#map [data-alert-id="${two.id}"]`).count() === 0, 'the north alert is hidden on the map');
      assert(await page.locator(`#alerts [data-id="${two.id}"]`).count() === 0, 'and in the list');
      assert(await page.locator(`#alerts [data-id="${one.id}"]`).count() === 1, 'the central one is listed');
      assert(await page.locator(`#triage-list [data-alert="${two.id}"]`).count() === 0, 'and in the triage queue');
      assert(await page.locator('#map path.region-outline.chosen').count() === 1, 'the chosen region stands out');
      await screenshot(page, 'ops-region-filter');
      await page.selectOption('#filter-region', '');
      await page.waitForSelector('#map[data-alerts="2"]');
      noPageErrors(page);
      await context.close();
    })],
  ];
}
