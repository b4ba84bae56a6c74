// KREKI's pages in a real headless Chromium against a real `kreki`: run with
// `node tests/browser/run.mjs` after `cargo build --bin kreki` and `npm ci` in web/ (scripts/test.sh
// does all of it). Screenshots of each screen land in tests/browser/screenshots/.
// BROWSER_TEST_FILTER=part-of-a-name runs a subset; TEST_LOG=1 shows kreki's log.
import { apiCall, assert, launchBrowser, run, screenshot, startKreki } from './harness.mjs';
import { flowTests } from './flow.mjs';
import { simulateTests, stopDemo } from './simulate.mjs';
import { drillTests } from './drill.mjs';
import { screenTests } from './screens.mjs';
import { responderTests } from './responders.mjs';
import { operationsTests } from './operations.mjs';
import { callbackTests } from './callback.mjs';
import { warningsTests } from './warnings.mjs';

const JAKARTA = { latitude: -6.2, longitude: 106.8167, accuracy: 15 };
let phoneCounter = 0;
/** A fresh Indonesian mobile number per account. */
function phone() {
  phoneCounter += 1;
  return `0813${String(Date.now() % 100000).padStart(5, '0')}${String(phoneCounter).padStart(3, '0')}`;
}

async function newPage(browser, base, options = {}) {
  const context = await browser.newContext({ baseURL: base, viewport: { width: 1280, height: 800 }, locale: 'id-ID', ...options });
  const page = await context.newPage();
  page.on('pageerror', (error) => {
    page.errors = [...(page.errors ?? []), error];
  });
  return { context, page };
}

function noPageErrors(page) {
  assert(!page.errors?.length, `no script errors on the page: ${page.errors?.map(String).join('; ')}`);
}

async function signIn(page, who) {
  await page.fill('#login', who.phone);
  await page.fill('#password', who.password);
  await page.click('#signin-form button[type=submit]');
}

const tests = [
  ['dashboard: a coordinator signs in and sees the live map on the bundled basemap', async ({ browser, server }) => {
    const coordinator = server.user(phone(), 'koordinator-rahasia', 'Sari Koordinator', ['coordinator']);
    const { context, page } = await newPage(browser, server.base);
    await page.goto('/dashboard');
    assert(new URL(page.url()).pathname === '/dashboard/', 'the bare path redirects into /dashboard/');
    await page.waitForSelector('#signin:not([hidden])');
    assert(await page.getAttribute('html', 'lang') === 'id', 'Indonesian is the default');
    await screenshot(page, 'dashboard-signin');

    await page.fill('#login', coordinator.phone);
    await page.fill('#password', 'salah-sandi-123');
    await page.click('#signin-form button[type=submit]');
    await page.waitForSelector('#signin-error:not([hidden])');
    assert((await page.textContent('#signin-error')).includes('salah'), 'a wrong password is said in Indonesian');

    await signIn(page, coordinator);
    await page.waitForSelector('#dash:not([hidden])');
    await page.waitForSelector('#map[data-basemap="offline"]');
    const land = await page.locator('#map .leaflet-overlay-pane path').count();
    assert(land > 5, `the offline basemap draws country shapes (got ${land})`);
    assert((await page.textContent('#who')) === 'Sari Koordinator', 'the coordinator is named');
    await page.waitForSelector('#live[data-on="true"]', { timeout: 5000 });
    assert((await page.textContent('#live')) === 'Langsung', 'the live channel (/v1/ws) is connected');
    await screenshot(page, 'dashboard-map');
    noPageErrors(page);
    await context.close();
  }],

  ['dashboard: alerts, volunteers and lines on the map; filter, detail, timeline, nearest-first assign', async ({ browser, server }) => {
    // The figures are of today's alerts in Jakarta (UTC+7, no daylight saving), and the alerts
    // below start 5 minutes ago: in the first minutes after midnight WIB they would be
    // yesterday's. Wait those minutes out (the test then runs as on any other minute).
    const sinceJakartaMidnightMs = (Date.now() + 7 * 3600000) % 86400000;
    if (sinceJakartaMidnightMs < 600000) {
      await new Promise((resolve) => setTimeout(resolve, 600000 - sinceJakartaMidnightMs + 1000));
    }
    const coordinator = server.user(phone(), 'koordinator-rahasia', 'Dedi Koordinator', ['coordinator']);
    const { context, page } = await newPage(browser, server.base);
    // The dispatch answers, shaped as docs/API.md says, so the drawing can be checked on its own.
    const now = Date.now();
    const iso = (ms) => new Date(ms).toISOString();
    const alerts = [
      { id: 'a-1', kind: 'cardiac_arrest', status: 'assigned', location: { lat: -6.2, lng: 106.82, accuracy_m: 10 }, note: 'Pingsan di pasar', created_at: iso(now - 300000), updated_at: iso(now - 200000),
        citizen: { id: 'c-1', name: 'Wati Warga' },
        assignments: [{ id: 's-1', alert_id: 'a-1', volunteer: { id: 'v-busy', name: 'Rudi Relawan' }, status: 'en_route', distance_m: 900, accepted_at: iso(now - 300000 + 42000), updated_at: iso(now - 200000) }] },
      { id: 'a-2', kind: 'fire', status: 'dispatching', location: { lat: -6.25, lng: 106.9, accuracy_m: 20 }, note: null, created_at: iso(now - 60000), updated_at: iso(now - 60000), citizen: { id: 'c-2', name: 'Budi' }, assignments: [] },
      { id: 'a-3', kind: 'accident', status: 'unmatched', location: { lat: -6.15, lng: 106.75, accuracy_m: 20 }, note: null, created_at: iso(now - 900000), updated_at: iso(now - 600000), citizen: { id: 'c-3', name: 'Ani' }, assignments: [] },
      { id: 'a-4', kind: 'medical', status: 'resolved', location: { lat: -6.3, lng: 106.8, accuracy_m: 20 }, note: null, created_at: iso(now - 3600000), updated_at: iso(now - 1800000), citizen: { id: 'c-4', name: 'Eko' }, assignments: [] },
      // A drill: on the map and in the list with its badge, apart from the figures. Its note
      // carries the old prefix, and its quick accept would pull the median down if it counted.
      { id: 'a-5', kind: 'security', status: 'unmatched', drill: true, location: { lat: -6.22, lng: 106.86, accuracy_m: 20 }, note: 'latihan', created_at: iso(now - 120000), updated_at: iso(now - 110000),
        citizen: { id: 'c-5', name: 'Sim' },
        assignments: [{ id: 's-5', alert_id: 'a-5', volunteer: { id: 'v-sim', name: 'Sim Relawan' }, status: 'withdrawn', distance_m: 100, accepted_at: iso(now - 120000 + 2000), updated_at: iso(now - 110000) }] },
      { id: 'a-6', kind: 'other', status: 'dispatching', location: { lat: -6.21, lng: 106.84, accuracy_m: 20 }, note: '[SIMULASI] typed by a citizen', created_at: iso(now - 30000), updated_at: iso(now - 30000), citizen: { id: 'c-6', name: 'Joko' }, assignments: [] },
    ];
    const volunteers = [
      { id: 'v-busy', name: 'Rudi Relawan', on_duty: true, busy: true, lat: -6.205, lng: 106.81, updated_at: iso(now) },
      { id: 'v-far', name: 'Sinta Jauh', on_duty: true, busy: false, lat: -6.3, lng: 106.95, updated_at: iso(now) },
      { id: 'v-near', name: 'Agus Dekat', on_duty: true, busy: false, lat: -6.245, lng: 106.895, updated_at: iso(now) },
    ];
    const assigned = [];
    await page.route(/\/v1\/alerts(\?.*)?$/, (route) => route.fulfill({ status: 200, contentType: 'application/json', body: JSON.stringify(alerts) }));
    await page.route(/\/v1\/alerts\/[^/]+$/, (route) => route.fulfill({ status: 200, contentType: 'application/json', body: JSON.stringify(alerts.find((a) => route.request().url().endsWith(a.id))) }));
    await page.route(/\/v1\/alerts\/[^/]+\/timeline$/, (route) => route.fulfill({ status: 200, contentType: 'application/json', body: JSON.stringify([
      { at: iso(now - 60000), type: 'created', actor: 'c-2', data: { kind: 'fire' } },
      { at: iso(now - 59000), type: 'offers_sent', actor: null, data: { wave: 1, radius_m: 2000, volunteers: ['v-near', 'v-far', 'v-x'] } },
    ]) }));
    await page.route(/\/v1\/alerts\/[^/]+\/assign$/, (route) => {
      assigned.push(route.request().postDataJSON());
      return route.fulfill({ status: 200, contentType: 'application/json', body: JSON.stringify(alerts[1]) });
    });
    await page.route(/\/v1\/volunteers\?bbox=/, (route) => route.fulfill({ status: 200, contentType: 'application/json', body: JSON.stringify(volunteers) }));
    // A platform without the SATUSEHAT bridge: its routes are not there.
    let syncAsked = 0;
    await page.route(/\/v1\/fhir-sync\/failures/, (route) => {
      syncAsked += 1;
      return route.fulfill({ status: 404, body: '' });
    });

    await page.goto('/dashboard/');
    await signIn(page, coordinator);
    await page.waitForSelector('#map[data-alerts="5"][data-volunteers="3"]');
    assert(await page.locator('.leaflet-marker-pane .pin-alert').count() === 5, 'open alerts only on the map, drills too');
    assert(await page.locator('.leaflet-overlay-pane path.responder-line').count() === 1, 'a line from the responder to the alert');
    assert((await page.textContent('#fig-open')) === '4', 'four real alerts open (the drill is not counted)');
    assert((await page.textContent('#fig-unmatched')) === '1', 'one real unmatched (the unmatched drill is not counted)');
    assert((await page.textContent('#fig-median')) === '42 s', 'median time to first accept, of real alerts only');
    assert((await page.textContent('#fig-drills')) === 'Latihan terbuka, tidak termasuk angka di atas: 1', 'the open drill is counted apart');
    assert(await page.locator('#alerts li button').count() === 5, 'the list shows open alerts');
    assert(await page.locator('#alerts .badge.drill').count() === 1, 'one drill badge, from the flag and not from a note');
    assert(await page.locator('#alerts button[data-id="a-5"] .badge.drill').count() === 1, 'on the drill');
    assert(await page.locator('.leaflet-marker-pane .pin-alert.drill').count() === 1, 'the drill stands apart on the map');
    assert(syncAsked >= 1 && await page.isHidden('#sync'), 'no sync panel without the bridge');
    await page.selectOption('#filter-kind', 'fire');
    assert(await page.locator('#alerts li button').count() === 1, 'filtered by kind');
    await page.selectOption('#filter-kind', '');
    await page.selectOption('#filter-status', '');
    assert(await page.locator('#alerts li button').count() === 6, 'all statuses');
    await page.selectOption('#filter-status', 'open');
    await screenshot(page, 'dashboard-live');

    await page.click('.pin-alert.kind-fire');
    await page.waitForSelector('#detail:not([hidden])');
    await page.waitForSelector('#suggestions button[data-volunteer]');
    const order = await page.locator('#suggestions button[data-volunteer]').evaluateAll((buttons) => buttons.map((b) => b.dataset.volunteer));
    assert(order.join(',') === 'v-near,v-far', `free volunteers nearest first, busy ones left out: ${order}`);
    const first = await page.textContent('#suggestions li:first-child span');
    assert(/Agus Dekat — \d+ m/.test(first), `with the distance: ${first}`);
    const timeline = await page.locator('#timeline li').allTextContents();
    assert(timeline.length === 2 && timeline[0].includes('Panggilan dibuat — Budi'), `the timeline, with who: ${timeline}`);
    assert(timeline[1].includes('gelombang 1 ke 3 relawan (radius 2.0 km)'), `in words: ${timeline[1]}`);
    await screenshot(page, 'dashboard-detail');
    await page.click('#suggestions button[data-volunteer="v-near"]');
    await page.waitForSelector('#detail-message.ok');
    assert(assigned.length === 1 && assigned[0].volunteer_id === 'v-near', 'POST /assign with the volunteer');
    await page.click('#dash button[data-lang="en"]');
    assert((await page.textContent('#detail-title')) === 'Alert detail', 'the dashboard speaks English too');
    noPageErrors(page);
    await context.close();
  }],

  ['map: web.tile_url switches the maps to raster tiles', async ({ browser }) => {
    const tiled = await startKreki({ KREKI_WEB__TILE_URL: 'https://tiles.example.test/{z}/{x}/{y}.png', KREKI_WEB__TILE_ATTRIBUTION: 'Peta Uji' });
    try {
      const coordinator = tiled.user(phone(), 'koordinator-rahasia', 'Uji Koordinator', ['coordinator']);
      const { context, page } = await newPage(browser, tiled.base);
      // One grey 1x1 PNG stands in for the tile server (there is no internet here).
      const png = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNsaGj4DwAFgwJ/l8Sd0wAAAABJRU5ErkJggg==', 'base64');
      const tiles = [];
      await page.route('https://tiles.example.test/**', (route) => {
        tiles.push(route.request().url());
        return route.fulfill({ status: 200, contentType: 'image/png', body: png });
      });
      await page.goto('/dashboard/');
      await signIn(page, coordinator);
      await page.waitForSelector('#map[data-basemap="tiles"]');
      await page.waitForFunction(() => document.querySelectorAll('#map img.leaflet-tile-loaded').length > 0);
      assert(tiles.length > 0 && tiles.every((url) => /^https:\/\/tiles\.example\.test\/\d+\/\d+\/\d+\.png$/.test(url)), `tiles asked for: ${tiles.slice(0, 3)}`);
      assert((await page.textContent('.leaflet-control-attribution')).includes('Peta Uji'), 'the attribution is shown');
      assert(await page.locator('#map .leaflet-overlay-pane path').count() === 0, 'no offline basemap under the tiles');
      await context.close();
    } finally {
      await tiled.stop();
    }
  }],

  ['dashboard: only coordinators get in', async ({ browser, server }) => {
    const citizen = server.user(phone(), 'warga-rahasia-1', 'Budi Warga');
    const { context, page } = await newPage(browser, server.base);
    await page.goto('/dashboard/');
    await signIn(page, citizen);
    await page.waitForSelector('#signin-error:not([hidden])');
    assert((await page.textContent('#signin-error')) === 'Akun ini bukan koordinator.', 'the refusal names the role, in Indonesian');
    assert(await page.isHidden('#dash'), 'the dashboard stays hidden');
    await context.close();
  }],

  ['session: an expired access token is refreshed once for many parallel requests, and the session lives on', async ({ browser, server }) => {
    const coordinator = server.user(phone(), 'koordinator-rahasia', 'Rina Koordinator', ['coordinator']);
    const { context, page } = await newPage(browser, server.base);
    await page.goto('/dashboard/');
    await signIn(page, coordinator);
    await page.waitForSelector('#live[data-on="true"]');
    const before = await page.evaluate(() => JSON.parse(localStorage.getItem('kreki.dashboard.session')));
    // The access token has run out: the next page load must refresh it (once, though the
    // alerts, the volunteers and the live channel all want it at the same moment).
    await page.evaluate(() => {
      const session = JSON.parse(localStorage.getItem('kreki.dashboard.session'));
      session.expires_at_ms = 0;
      localStorage.setItem('kreki.dashboard.session', JSON.stringify(session));
    });
    const refreshes = [];
    page.on('request', (request) => {
      if (request.url().endsWith('/v1/auth/refresh')) refreshes.push(request);
    });
    await page.reload();
    await page.waitForSelector('#dash:not([hidden])');
    await page.waitForSelector('#live[data-on="true"]');
    await page.waitForTimeout(500);
    assert(refreshes.length === 1, `one refresh for all (got ${refreshes.length})`);
    const after = await page.evaluate(() => JSON.parse(localStorage.getItem('kreki.dashboard.session')));
    assert(after && after.refresh_token !== before.refresh_token && after.expires_at_ms > Date.now(), 'a new pair is kept');
    assert(await page.isHidden('#service-error'), 'the data loads with the new token');
    await context.close();
  }],

  ['language: the switch turns every page to English and is remembered', async ({ browser, server }) => {
    const { context, page } = await newPage(browser, server.base);
    await page.goto('/app/');
    await page.waitForSelector('#signin:not([hidden])');
    assert((await page.textContent('#signin h2')) === 'Masuk atau daftar', 'Indonesian first');
    await page.click('button[data-lang="en"]');
    assert((await page.textContent('#signin h2')) === 'Sign in or register', 'English after the switch');
    assert(await page.getAttribute('html', 'lang') === 'en', '<html lang> follows');
    assert(await page.getAttribute('button[data-lang="en"]', 'aria-pressed') === 'true', 'the switch says which is on');
    await page.goto('/volunteer/');
    await page.waitForSelector('#signin:not([hidden])');
    assert((await page.textContent('#signin h2')) === 'Sign in as volunteer', 'the choice carries to the other app');
    await screenshot(page, 'volunteer-signin-en');
    await page.click('button[data-lang="id"]');
    assert((await page.textContent('#signin h2')) === 'Masuk sebagai relawan', 'and back');
    await context.close();
  }],

  ['citizen: registers, and a panic is retried with one Idempotency-Key until acknowledged', async ({ browser, server }) => {
    const { context, page } = await newPage(browser, server.base, {
      viewport: { width: 412, height: 915 }, permissions: ['geolocation'], geolocation: JAKARTA, isMobile: true, hasTouch: true,
    });
    await page.goto('/app/');
    await page.click('#tab-register');
    const number = phone();
    await page.fill('#reg-name', 'Wati Warga');
    await page.fill('#reg-phone', number);
    await page.fill('#reg-password', 'warga-rahasia-2');
    await page.click('#register-form button[type=submit]');
    await page.waitForSelector('#panic-screen:not([hidden])');
    await page.waitForSelector('#location.ok');
    await screenshot(page, 'app-panic');

    // The network drops the first two tries; the third reaches a server that acknowledges.
    const keys = [];
    const bodies = [];
    await page.route('**/v1/alerts', async (route) => {
      keys.push(route.request().headers()['idempotency-key']);
      bodies.push(route.request().postDataJSON());
      if (keys.length <= 2) {
        await route.abort('internetdisconnected');
        return;
      }
      const now = new Date().toISOString();
      await route.fulfill({
        status: 201,
        contentType: 'application/json',
        body: JSON.stringify({
          id: '0193a000-0000-7000-8000-000000000001', kind: bodies[0].kind, status: 'dispatching',
          location: bodies[0].location, note: null, created_at: now, updated_at: now,
          citizen: { id: '0193a000-0000-7000-8000-0000000000aa', name: 'Wati Warga' }, assignments: [],
        }),
      });
    });
    await page.route('**/v1/alerts/0193a000-0000-7000-8000-000000000001', (route) => route.fulfill({
      status: 200, contentType: 'application/json',
      body: JSON.stringify({
        id: '0193a000-0000-7000-8000-000000000001', kind: 'fire', status: 'assigned', location: bodies[0].location, note: null,
        created_at: new Date().toISOString(), updated_at: new Date().toISOString(), citizen: { id: 'c', name: 'Wati Warga' },
        assignments: [{ id: 'a1', alert_id: '0193a000-0000-7000-8000-000000000001', volunteer: { id: 'v1', name: 'Rudi Relawan' }, status: 'en_route', distance_m: 850, accepted_at: new Date().toISOString(), updated_at: new Date().toISOString() }],
      }),
    }));
    await page.check('input[name=kind][value=fire]');
    await page.click('#panic');
    await page.waitForSelector('#status-screen:not([hidden])', { timeout: 15000 });
    assert(keys.length === 3, `three tries (got ${keys.length})`);
    assert(keys[0] && keys.every((key) => key === keys[0]), `one key for every try: ${keys.join(', ')}`);
    assert(bodies[0].kind === 'fire', 'the chosen kind is sent');
    assert(Math.abs(bodies[0].location.lat - JAKARTA.latitude) < 1e-6 && Math.abs(bodies[0].location.lng - JAKARTA.longitude) < 1e-6, 'the position is sent');
    assert(await page.evaluate(() => localStorage.getItem('kreki.app.pending')) === null, 'the acknowledged panic is no longer pending');
    await page.waitForSelector('#responders .responder');
    const coming = await page.textContent('#responders');
    assert(coming.includes('Rudi Relawan') && coming.includes('850 m'), `who is coming and how far: ${coming}`);
    await screenshot(page, 'app-status');
    noPageErrors(page);
    await context.close();
  }],

  ['citizen: a panic that cannot get through survives a reload and keeps its key', async ({ browser, server }) => {
    const citizen = server.user(phone(), 'warga-rahasia-3', 'Ani Warga');
    const { context, page } = await newPage(browser, server.base, {
      viewport: { width: 412, height: 915 }, permissions: ['geolocation'], geolocation: JAKARTA,
    });
    await page.goto('/app/');
    await signIn(page, citizen);
    await page.waitForSelector('#panic-screen:not([hidden])');
    const keys = [];
    await page.route('**/v1/alerts', (route) => {
      keys.push(route.request().headers()['idempotency-key']);
      return route.abort('internetdisconnected');
    });
    await page.click('#panic');
    await page.waitForSelector('#sending-screen:not([hidden])');
    await page.waitForFunction(() => Number(document.body.dataset.attempts) >= 2, null, { timeout: 10000 });
    await screenshot(page, 'app-sending');
    await page.reload();
    await page.waitForSelector('#sending-screen:not([hidden])');
    await page.waitForFunction((n) => Number(document.body.dataset.attempts) >= 1, null, { timeout: 10000 });
    await page.waitForTimeout(300);
    assert(keys.length >= 3, `it went on trying after the reload (${keys.length} tries)`);
    assert(keys.every((key) => key === keys[0]), 'with the same key');
    const pending = await page.evaluate(() => JSON.parse(localStorage.getItem('kreki.app.pending')));
    assert(pending?.key === keys[0], 'the panic is kept until acknowledged');
    await context.close();
  }],

  ['volunteer: duty, position, an offer with a countdown, accept, navigation and status', async ({ browser, server }) => {
    const volunteer = server.user(phone(), 'relawan-rahasia', 'Rudi Relawan', ['volunteer']);
    const { context, page } = await newPage(browser, server.base, {
      viewport: { width: 412, height: 915 }, permissions: ['geolocation'], geolocation: JAKARTA,
    });
    // Until the dispatch service is merged these answers come from its contract (docs/API.md).
    const calls = [];
    const offer = {
      id: 'offer-1', status: 'pending', distance_m: 640, offered_at: new Date().toISOString(),
      expires_at: new Date(Date.now() + 45000).toISOString(),
      alert: { id: 'alert-1', kind: 'cardiac_arrest', location: { lat: -6.205, lng: 106.82, accuracy_m: 10 }, note: 'Lantai 2' },
    };
    await page.route('**/v1/volunteers/me/**', (route) => {
      const request = route.request();
      calls.push(`${request.method()} ${new URL(request.url()).pathname}`);
      if (request.url().endsWith('/duty')) {
        return route.fulfill({ status: 200, contentType: 'application/json', body: JSON.stringify({ on_duty: request.postDataJSON().on_duty, eligible_kinds: ['medical', 'cardiac_arrest'] }) });
      }
      if (request.url().endsWith('/location')) return route.fulfill({ status: 202, body: '' });
      return route.fulfill({ status: 200, contentType: 'application/json', body: JSON.stringify(calls.includes('PUT /v1/volunteers/me/duty') ? [offer] : []) });
    });
    await page.route('**/v1/offers/offer-1/accept', (route) => route.fulfill({
      status: 200, contentType: 'application/json',
      body: JSON.stringify({ id: 'assignment-1', alert_id: 'alert-1', volunteer: { id: 'v', name: 'Rudi Relawan' }, status: 'accepted', distance_m: 640, accepted_at: new Date().toISOString(), updated_at: new Date().toISOString() }),
    }));
    const statuses = [];
    await page.route('**/v1/assignments/assignment-1/status', (route) => {
      statuses.push(route.request().postDataJSON().status);
      return route.fulfill({ status: 200, contentType: 'application/json', body: JSON.stringify({ id: 'assignment-1', alert_id: 'alert-1', status: statuses.at(-1), distance_m: 640 }) });
    });

    await page.goto('/volunteer/');
    await signIn(page, volunteer);
    await page.waitForSelector('#main-screen:not([hidden])');
    assert(await page.getAttribute('#duty', 'aria-pressed') === 'false', 'off duty at first');
    await page.click('#duty');
    await page.waitForSelector('#duty[aria-pressed="true"]');
    await page.waitForSelector('#location.ok');
    assert(calls.includes('POST /v1/volunteers/me/location'), 'the position is sent while on duty');
    await page.waitForSelector('[data-offer="offer-1"]', { timeout: 5000 });
    const first = await page.textContent('[data-countdown="offer-1"]');
    assert(/^Sisa \d+ detik$/.test(first), `a countdown in seconds: ${first}`);
    await page.waitForFunction((shown) => document.querySelector('[data-countdown="offer-1"]').textContent !== shown, first, { timeout: 3000 });
    const second = await page.textContent('[data-countdown="offer-1"]');
    const left = (text) => Number(text.match(/\d+/)[0]);
    assert(left(second) < left(first) && left(second) > 30, `the countdown runs down: ${first} -> ${second}`);
    await screenshot(page, 'volunteer-offer');
    await page.click('[data-accept="offer-1"]');
    await page.waitForSelector('#assignment:not([hidden])');
    assert((await page.getAttribute('#navigate', 'href')) === 'geo:-6.205,106.82?q=-6.205,106.82', 'a geo: link to the scene');
    assert((await page.getAttribute('#navigate-osm', 'href')).includes('-6.205%2C106.82'), 'an OpenStreetMap route to the scene');
    await page.click('[data-status="en_route"]');
    await page.waitForSelector('#assignment-status[data-status="en_route"]');
    await page.click('[data-status="on_scene"]');
    await page.waitForSelector('#assignment-status[data-status="on_scene"]');
    await screenshot(page, 'volunteer-assignment');
    await page.click('[data-status="completed"]');
    await page.waitForSelector('#assignment', { state: 'hidden' });
    assert(statuses.join(',') === 'en_route,on_scene,completed', `statuses sent in order: ${statuses}`);
    noPageErrors(page);
    await context.close();
  }],

  ['accessibility: every control is named, big enough to tap, text has strong contrast, and no text key shows untranslated', async ({ browser, server }) => {
    const citizen = server.user(phone(), 'warga-rahasia-9', 'Tono Warga');
    const volunteer = server.user(phone(), 'relawan-rahasia-9', 'Tini Relawan', ['volunteer']);
    const coordinator = server.user(phone(), 'koordinator-rahasia-9', 'Tika Koordinator', ['coordinator']);
    const trainer = server.user(phone(), 'pelatih-rahasia-9', 'Tono Pelatih', ['trainer']);
    const admin = server.user(phone(), 'admin-rahasia-9', 'Tia Admin', ['admin']);
    const { context, page } = await newPage(browser, server.base, { permissions: ['geolocation'], geolocation: JAKARTA });
    const audit = () => page.evaluate(() => {
      const problems = [];
      const visible = (el) => el.offsetParent !== null && getComputedStyle(el).visibility !== 'hidden';
      const luminance = (rgb) => {
        const [r, g, b] = rgb.match(/\d+(\.\d+)?/g).slice(0, 3).map(Number).map((v) => {
          const c = v / 255;
          return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
        });
        return 0.2126 * r + 0.7152 * g + 0.0722 * b;
      };
      const background = (el) => {
        for (let node = el; node; node = node.parentElement) {
          const bg = getComputedStyle(node).backgroundColor;
          if (!/rgba\(.*,\s*0\)$/.test(bg) && bg !== 'transparent') return bg;
        }
        return 'rgb(255, 255, 255)';
      };
      for (const el of document.querySelectorAll('button, a.button, input, select')) {
        if (!visible(el) || el.closest('.leaflet-control-container')) continue;
        const labelled = (el.labels && el.labels.length > 0 && el.labels[0].textContent.trim())
          || el.getAttribute('aria-label') || el.textContent.trim() || el.title;
        if (!labelled) problems.push(`unnamed ${el.tagName.toLowerCase()}#${el.id}`);
        const box = el.getBoundingClientRect();
        const target = ['radio', 'checkbox'].includes(el.type) && el.closest('label') ? el.closest('label').getBoundingClientRect() : box;
        if (target.height < 44 || target.width < 44) problems.push(`small target ${el.tagName.toLowerCase()}#${el.id} ${Math.round(target.width)}x${Math.round(target.height)}`);
      }
      for (const el of document.querySelectorAll('h1, h2, label, p, button, legend, li, span, strong, small')) {
        if (!visible(el) || !el.textContent.trim() || el.closest('.leaflet-container')) continue;
        const fg = luminance(getComputedStyle(el).color);
        const bg = luminance(background(el));
        const ratio = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
        if (ratio < 4.5) problems.push(`contrast ${ratio.toFixed(2)} on "${el.textContent.trim().slice(0, 30)}"`);
      }
      // A text key shown as it is (`admin.kind.roles`) is a word missing from the tables.
      for (const el of document.querySelectorAll('[data-i18n], [data-i18n-placeholder], [data-i18n-aria], [data-i18n-title]')) {
        const shown = [el.textContent, el.placeholder, el.getAttribute('aria-label'), el.title].map((text) => (text ?? '').trim());
        const key = el.dataset.i18n ?? el.dataset.i18nPlaceholder ?? el.dataset.i18nAria ?? el.dataset.i18nTitle;
        if (shown.includes(key)) problems.push(`untranslated ${key}`);
      }
      const raw = /^(admin|aed|app|astatus|cert|checkin|common|dash|day|guide|kind|lang|ops|outcome|prac|push|responder|role|status|support|tl|train|trainer|trust|vol|warn)(\.[a-z0-9_]+)+$/;
      for (const el of document.querySelectorAll('body *')) {
        if (el.children.length || !visible(el)) continue;
        const text = el.textContent.trim();
        if (raw.test(text)) problems.push(`untranslated ${text}`);
      }
      return problems;
    });
    const screens = [
      ['/app/', null, '#signin'],
      ['/app/', citizen, '#panic-screen'],
      ['/volunteer/', volunteer, '#main-screen'],
      ['/dashboard/', coordinator, '#dash'],
      ['/trainer/', trainer, '#console'],
      ['/admin/', admin, '#console'],
      ['/dashboard/aeds.html', admin, '#console'],
    ];
    for (const [path, who, screen] of screens) {
      await page.goto(path);
      if (who) {
        await page.evaluate(() => localStorage.clear());
        await page.reload();
        await signIn(page, who);
      }
      await page.waitForSelector(`${screen}:not([hidden])`);
      const problems = await audit();
      assert(problems.length === 0, `${path} ${screen}: ${problems.join('; ')}`);
    }
    await context.close();
  }],

  ['pwa: the apps install (manifest, service worker) and open offline', async ({ browser, server }) => {
    const { context, page } = await newPage(browser, server.base, { viewport: { width: 412, height: 915 } });
    for (const app of ['app', 'volunteer']) {
      await page.goto(`/${app}/`);
      const manifest = await page.evaluate(async () => (await fetch(document.querySelector('link[rel=manifest]').href)).json());
      assert(manifest.start_url === `/${app}/` && manifest.icons.length > 0, `${app} has a manifest`);
      await page.evaluate(() => navigator.serviceWorker.ready);
      await page.reload();
      await page.waitForFunction(() => navigator.serviceWorker.controller !== null);
    }
    await context.setOffline(true);
    await page.goto('/app/');
    await page.waitForSelector('#signin:not([hidden])');
    assert((await page.textContent('#signin h2')).length > 0, 'the citizen app opens without a network');
    await context.setOffline(false);
    await context.close();
  }],
];

tests.push(...flowTests({ newPage, signIn, phone, noPageErrors }));
tests.push(...drillTests({ newPage, signIn, phone, noPageErrors }));
tests.push(...simulateTests({ newPage, signIn, noPageErrors }));
tests.push(...screenTests({ newPage, signIn, phone, noPageErrors }));
tests.push(...responderTests({ newPage, signIn, phone, noPageErrors }));
tests.push(...operationsTests({ newPage, signIn, phone, noPageErrors }));
tests.push(...callbackTests({ newPage, signIn, phone, noPageErrors }));
tests.push(...warningsTests({ newPage, signIn, phone, noPageErrors }));

const server = await startKreki();
let browser;
let failed = 1;
try {
  browser = await launchBrowser();
  failed = await run(tests, { browser, server });
} finally {
  await browser?.close();
  await stopDemo();
  await server.stop();
}
process.exit(failed ? 1 : 0);
