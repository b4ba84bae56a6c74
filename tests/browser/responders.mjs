// The screens of issue 13 against a real `kreki` of their own (check-ins due two seconds after an
// assignment ends), nothing stubbed: a cardiac arrest's CPR, AED and lead responders, the AED
// responder's app showing its role, the AED on the map with the route via it and the others' live
// positions while assigned (and not after); the check-in after the alert, answered with a request
// for support that the dashboard flags; the AED screen of the dashboard (list, create with weekly
// hours, a field error beside its field, verify, out of service); and the citizen app's nearby AEDs.
import { apiCall, assert, screenshot, startKreki } from './harness.mjs';

const MONAS = { latitude: -6.1754, longitude: 106.8272, accuracy: 10 };
const PHONE = { viewport: { width: 412, height: 915 } };
const ALL_WEEK = [0, 1, 2, 3, 4, 5, 6].map((day) => ({ day, open: '00:00', close: '24:00' }));

/** A point `north_m` metres north and `east_m` east of Monas. */
function near(northM, eastM) {
  return {
    lat: MONAS.latitude + northM / 111320,
    lng: MONAS.longitude + eastM / (111320 * Math.cos((MONAS.latitude * Math.PI) / 180)),
  };
}

/** Puts `who` on duty at `at` through the API (a phone that is not the one under test). */
async function onDutyAt(base, who, at) {
  const duty = await apiCall(base, who, 'PUT', '/v1/volunteers/me/duty', { on_duty: true });
  assert(duty.status === 200, `on duty: ${JSON.stringify(duty.json)}`);
  const moved = await apiCall(base, who, 'POST', '/v1/volunteers/me/location', { lat: at.lat, lng: at.lng, accuracy_m: 10 });
  assert(moved.status === 202, `position: ${moved.status}`);
}

/** Accepts `who`'s pending offer for `alertId` (waiting for it up to 10 s); answers the Assignment. */
async function acceptOffer(base, who, alertId) {
  const deadline = Date.now() + 10000;
  for (;;) {
    const offers = await apiCall(base, who, 'GET', '/v1/volunteers/me/offers');
    const offer = (offers.json ?? []).find((o) => o.alert.id === alertId);
    if (offer) {
      const accepted = await apiCall(base, who, 'POST', `/v1/offers/${offer.id}/accept`);
      assert(accepted.status === 200, `accepted: ${JSON.stringify(accepted.json)}`);
      return accepted.json;
    }
    assert(Date.now() < deadline, `an offer for ${who.name}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** Runs `body(server)` on a kreki of its own (check-ins two seconds after an assignment ends),
 *  stopped afterwards whatever happens. */
async function withOwnKreki(body) {
  const server = await startKreki({ KREKI_DISPATCH__CHECKIN_AFTER_S: '2' });
  try {
    await body(server);
  } finally {
    await server.stop();
  }
}

export function responderTests({ newPage, signIn, phone, noPageErrors }) {
  return [
    ['responders: the AED responder sees the role, the AED on the map with the route via it, and the others while assigned (not after); then the check-in, and the dashboard flags the support request', async ({ browser }) => withOwnKreki(async (server) => {
      const admin = server.user(phone(), 'admin-rahasia', 'Ade Admin', ['admin']);
      const coordinator = server.user(phone(), 'koordinator-rahasia', 'Kiki Koordinator', ['coordinator']);
      const cpr = server.user(phone(), 'relawan-rahasia', 'Citra RJP', ['volunteer']);
      const aed = server.user(phone(), 'relawan-rahasia', 'Adi AED', ['volunteer']);
      const lead = server.user(phone(), 'relawan-rahasia', 'Lina Pemimpin', ['volunteer']);
      const citizen = server.user(phone(), 'warga-rahasia', 'Wulan Warga');

      // Nobody here holds BLS: the kind asks for none, and keeps its roles.
      const kinds = await apiCall(server.base, admin, 'GET', '/v1/dispatch/kinds');
      const { kind: _, ...cardiac } = kinds.json.find((k) => k.kind === 'cardiac_arrest');
      const saved = await apiCall(server.base, admin, 'PUT', '/v1/dispatch/kinds/cardiac_arrest', { ...cardiac, required_certifications: [], roles: ['cpr', 'aed', 'lead'] });
      assert(saved.status === 200, `kind saved: ${JSON.stringify(saved.json)}`);
      // An AED in a lobby 150 m east, open all week, verified.
      const device = near(0, 150);
      const made = await apiCall(server.base, admin, 'POST', '/v1/aeds', { ...device, description: 'Lobi Gedung Sapta, samping lift', hours: ALL_WEEK });
      assert(made.status === 201, `AED made: ${JSON.stringify(made.json)}`);
      const verified = await apiCall(server.base, admin, 'PATCH', `/v1/aeds/${made.json.id}`, { verified: true });
      assert(verified.json?.available_now === true, `AED available: ${JSON.stringify(verified.json)}`);

      // The coordinator's dashboard is open all along: the support request must reach it.
      const dash = await newPage(browser, server.base);
      await dash.page.goto('/dashboard/');
      await signIn(dash.page, coordinator);
      await dash.page.waitForSelector('#live[data-on="true"]');

      // The AED responder's phone, 300 m south.
      const { context, page } = await newPage(browser, server.base, { ...PHONE, permissions: ['geolocation'], geolocation: { ...MONAS, latitude: near(-300, 0).lat } });
      await page.goto('/volunteer/');
      await signIn(page, aed);
      await page.click('#duty');
      await page.waitForSelector('#location.ok');
      await onDutyAt(server.base, cpr, near(-200, 0));
      await onDutyAt(server.base, lead, near(-400, 0));

      const alert = await apiCall(server.base, citizen, 'POST', '/v1/alerts', { kind: 'cardiac_arrest', location: { ...near(0, 0), accuracy_m: 10 } }, { 'idempotency-key': crypto.randomUUID() });
      assert(alert.status === 201, `cardiac arrest reported (${alert.status})`);
      const first = await acceptOffer(server.base, cpr, alert.json.id);
      assert(first.role === 'cpr', `the first accept starts CPR: ${first.role}`);
      const offer = page.locator('[data-offer]', { has: page.locator('h3', { hasText: 'Henti jantung' }) });
      await offer.waitFor({ timeout: 10000 });
      await offer.locator('[data-accept]').click();
      await page.waitForSelector('#assignment:not([hidden])');
      await page.waitForSelector('#assignment-role[data-role="aed"]');
      assert((await page.textContent('#assignment-role')).includes('Ambil AED'), `the role in Indonesian: ${await page.textContent('#assignment-role')}`);
      assert((await page.textContent('#assignment-aed')).includes('Lobi Gedung Sapta, samping lift'), 'the AED is described');
      await page.waitForSelector('#assignment-map .pin-aed');
      await page.waitForSelector('#assignment-map path.route-via-aed');
      await page.waitForSelector('#assignment-map .pin-alert');
      assert((await page.getAttribute('#navigate-aed', 'href')).startsWith('geo:-6.175'), 'navigation to the AED first');
      const third = await acceptOffer(server.base, lead, alert.json.id);
      assert(third.role === 'lead', `the third accept leads: ${third.role}`);

      // The CPR responder moves: the AED responder sees her on the map, named with her role.
      const moved = near(-100, 0);
      await apiCall(server.base, cpr, 'POST', '/v1/volunteers/me/location', { ...moved, accuracy_m: 5 });
      await page.waitForSelector(`#assignment-map [data-responder="${cpr.id}"]`, { timeout: 10000 });
      await page.waitForFunction((name) => document.querySelector('#team')?.textContent.includes(name), 'Citra RJP');
      assert((await page.textContent('#team')).includes('RJP'), `the team shows her role: ${await page.textContent('#team')}`);
      await screenshot(page, 'responder-aed-role-map');
      await page.click('button[data-lang="en"]');
      await page.waitForFunction(() => document.querySelector('#assignment-role')?.textContent.includes('Fetch the AED'));
      assert((await page.textContent('#team')).includes('CPR'), 'the team in English');
      assert((await page.textContent('#location')).includes('Location sent'), 'the position line in English too');
      await screenshot(page, 'responder-aed-role-map-en');
      await page.click('button[data-lang="id"]');

      // Done: the assignment ends, the others vanish, and their moves no longer reach this phone.
      await page.click('[data-status="completed"]');
      await page.waitForSelector('#assignment', { state: 'hidden' });
      const frames = await page.evaluate(() => Number(document.body.dataset.responderFrames ?? 0));
      await apiCall(server.base, cpr, 'POST', '/v1/volunteers/me/location', { ...near(-50, 0), accuracy_m: 5 });
      await page.waitForTimeout(1500);
      assert(await page.evaluate(() => Number(document.body.dataset.responderFrames ?? 0)) === frames, 'no position of the others after the assignment ended');
      assert(await page.locator('[data-responder]').count() === 0, 'no co-responder is shown after');

      // The check-in (two seconds later here, 90 minutes by default).
      await page.waitForSelector('form[data-checkin]', { timeout: 15000 });
      await screenshot(page, 'checkin-due');
      await page.click('form[data-checkin] button[type=submit]');
      await page.waitForSelector('form[data-checkin] .field-error[data-for="wellbeing"]');
      await screenshot(page, 'checkin-field-error');
      await page.check('form[data-checkin] input[name=wellbeing][value="2"]');
      await page.check('form[data-checkin] input[name=wants_contact]');
      await page.fill('form[data-checkin] textarea[name=note]', 'Masih terbayang, ingin bicara dengan seseorang.');
      await page.click('form[data-checkin] button[type=submit]');
      await page.waitForSelector('#checkin-message.ok');
      assert(await page.locator('form[data-checkin]').count() === 0, 'answered once, gone');
      await screenshot(page, 'checkin-answered');

      await dash.page.waitForSelector('#support-list [data-checkin].support-request', { timeout: 10000 });
      const flagged = await dash.page.textContent('#support-list');
      assert(flagged.includes('Adi AED') && flagged.includes('ingin bicara'), `the request on the dashboard: ${flagged}`);
      assert((await dash.page.textContent('#support-count')) === '1', 'counted');
      await screenshot(dash.page, 'dashboard-support-request');
      // A fresh dashboard lists it too (GET /v1/checkins?support=true).
      await dash.page.reload();
      await dash.page.waitForSelector('#support-list [data-checkin].support-request');

      // The coordinator records the outcome (no choice first: named beside the field); the
      // volunteers who responded see it.
      await dash.page.click(`#support-list button[data-open-alert="${alert.json.id}"]`);
      await dash.page.waitForSelector('#resolve-form:not([hidden])');
      assert((await dash.page.textContent('#detail-body')).includes('Citra RJP (RJP)'), 'the roles in the detail');
      await dash.page.click('#resolve-form button[type=submit]');
      await dash.page.waitForSelector('#resolve-form .field-error[data-for="outcome"]');
      await dash.page.selectOption('#resolve-outcome', 'to_hospital');
      await dash.page.fill('#resolve-note', 'Dibawa ambulans ke RSUD Tarakan.');
      await dash.page.click('#resolve-form button[type=submit]');
      await dash.page.waitForSelector('#resolve-message.ok');
      await dash.page.waitForSelector('#resolve-current:not([hidden])');
      await screenshot(dash.page, 'dashboard-resolve-outcome');
      await page.waitForSelector('#outcome:not([hidden])', { timeout: 10000 });
      assert((await page.textContent('#outcome')).includes('Dibawa ke rumah sakit'), `the responder sees the outcome: ${await page.textContent('#outcome')}`);
      await screenshot(page, 'responder-sees-outcome');
      noPageErrors(page);
      noPageErrors(dash.page);
      await context.close();
      await dash.context.close();
    })],

    ['aeds: the dashboard\'s AED screen lists, creates with weekly hours (a bad window named beside it), verifies and takes out of service; the citizen app shows the available ones nearby', async ({ browser }) => withOwnKreki(async (server) => {
      const admin = server.user(phone(), 'admin-rahasia', 'Andi Admin', ['admin']);
      const citizen = server.user(phone(), 'warga-rahasia', 'Sekar Warga');
      const { context, page } = await newPage(browser, server.base);
      await page.goto('/dashboard/aeds.html');
      await signIn(page, admin);
      await page.waitForSelector('#console:not([hidden])');
      await page.waitForSelector('#aed-map[data-basemap]');

      const spot = near(80, 60);
      await page.fill('#aed-lat', String(spot.lat));
      await page.fill('#aed-lng', String(spot.lng));
      await page.fill('#aed-description', 'Pos satpam Monas, gerbang barat');
      await page.click('#aed-add-hours');
      await page.selectOption('[data-field="hours[0].day"]', '1');
      await page.fill('[data-field="hours[0].open"]', '17:00');
      await page.fill('[data-field="hours[0].close"]', '08:00');
      await page.click('#aed-form button[type=submit]');
      await page.waitForSelector('#aed-form .field-error[data-for="hours[0].close"]');
      assert((await page.textContent('#aed-form .field-error')).includes('setelah jam buka (17:00)'), 'in Indonesian');
      assert((await page.getAttribute('#aed-form .field-error', 'data-server')).includes('after open'), 'the server\'s words kept');
      await screenshot(page, 'aeds-field-error');

      // Every day, all day: open now whenever the test runs.
      await page.fill('[data-field="hours[0].open"]', '00:00');
      await page.fill('[data-field="hours[0].close"]', '24:00');
      await page.click('#aed-every-day');
      assert(await page.locator('[data-field$=".day"]').count() === 7, 'one window a day');
      await page.click('#aed-form button[type=submit]');
      await page.waitForSelector('#aed-message.ok');
      const row = page.locator('#aed-list [data-aed]', { hasText: 'Pos satpam Monas' });
      await row.waitFor();
      const id = await row.getAttribute('data-aed');
      assert((await row.textContent()).includes('Belum diverifikasi'), 'new devices wait for verification');
      await row.locator('[data-verify]').click();
      await page.waitForSelector(`#aed-list [data-aed="${id}"][data-available="true"]`);

      // A second, out of service: the citizen never sees it.
      const broken = await apiCall(server.base, admin, 'POST', '/v1/aeds', { ...near(-60, 0), description: 'Halte TransJakarta (baterai habis)', hours: ALL_WEEK });
      await apiCall(server.base, admin, 'PATCH', `/v1/aeds/${broken.json.id}`, { verified: true });
      await page.click('#aed-reload');
      const brokenRow = page.locator(`#aed-list [data-aed="${broken.json.id}"]`);
      await brokenRow.waitFor();
      await brokenRow.locator('[data-out-of-service]').click();
      await page.waitForSelector(`#aed-list [data-aed="${broken.json.id}"][data-out-of-service="true"]`);
      await screenshot(page, 'aeds-screen');
      await page.click('button[data-lang="en"]');
      await page.waitForFunction(() => document.querySelector('#aed-list')?.textContent.includes('Out of service'));
      await screenshot(page, 'aeds-screen-en');
      await page.click('button[data-lang="id"]');

      // A custodian (no special role) sees the device they look after, unverified as it is, without
      // the admin's form, and takes it out of service themselves.
      const custodian = server.user(phone(), 'penjaga-rahasia', 'Pak Satpam');
      const theirs = await apiCall(server.base, admin, 'POST', '/v1/aeds', { ...near(30, -40), description: 'Masjid Istiqlal, pintu utama', hours: ALL_WEEK, custodian_ids: [custodian.id] });
      assert(theirs.status === 201, `custodian's AED: ${JSON.stringify(theirs.json)}`);
      const guard = await newPage(browser, server.base);
      await guard.page.goto('/dashboard/aeds.html');
      await signIn(guard.page, custodian);
      const own = guard.page.locator(`#aed-list [data-aed="${theirs.json.id}"]`);
      await own.waitFor();
      assert(await guard.page.locator('#aed-create').isHidden(), 'only admins add devices');
      assert(await own.locator('[data-verify]').count() === 0, 'only admins verify');
      const other = guard.page.locator('#aed-list [data-aed]', { hasText: 'Pos satpam Monas' });
      assert(await other.locator('[data-out-of-service]').count() === 0, 'no button on a device someone else looks after');
      await own.locator('[data-out-of-service]').click();
      await guard.page.waitForSelector(`#aed-list [data-aed="${theirs.json.id}"][data-out-of-service="true"]`);
      await screenshot(guard.page, 'aeds-custodian');
      noPageErrors(guard.page);
      await guard.context.close();

      const app = await newPage(browser, server.base, { ...PHONE, permissions: ['geolocation'], geolocation: MONAS });
      await app.page.goto('/app/');
      await signIn(app.page, citizen);
      await app.page.waitForSelector('#aed-nearby [data-aed]');
      const listed = await app.page.textContent('#aed-nearby');
      assert(listed.includes('Pos satpam Monas'), `the available AED is shown: ${listed}`);
      assert(!listed.includes('Halte TransJakarta'), 'an out-of-service one is not');
      await screenshot(app.page, 'citizen-aeds-nearby');
      noPageErrors(page);
      noPageErrors(app.page);
      await app.context.close();
      await context.close();
    })],
  ];
}
