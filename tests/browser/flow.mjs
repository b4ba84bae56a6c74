// The whole flow of issue 6 against the real services, nothing stubbed: a citizen's panic reaches
// the coordinator's map within a second, a volunteer accepts the offer in the volunteer app and the
// citizen app shows who is coming and how far; a second alert made through the API is assigned by
// the coordinator to the nearest free volunteer, whose app then shows the assignment.
import { apiCall, assert, screenshot } from './harness.mjs';

// Central Jakarta (Monas) and a point ~10 km east, far enough apart for separate waves.
const SCENE_1 = { latitude: -6.1754, longitude: 106.8272, accuracy: 12 };
const NEAR_1 = { latitude: -6.1790, longitude: 106.8300, accuracy: 8 };
const SCENE_2 = { lat: -6.2250, lng: 106.9200 };
const NEAR_2 = { lat: -6.2290, lng: 106.9230 };

export function flowTests({ newPage, signIn, phone, noPageErrors }) {
  return [
    ['flow: panic on the map within a second, offer accepted in the volunteer app, citizen sees the responder, coordinator assigns', async ({ browser, server }) => {
      const coordinator = server.user(phone(), 'koordinator-rahasia', 'Sari Koordinator', ['coordinator']);
      const rudi = server.user(phone(), 'relawan-rahasia-1', 'Rudi Relawan', ['volunteer']);
      const agus = server.user(phone(), 'relawan-rahasia-2', 'Agus Relawan', ['volunteer']);
      const wati = server.user(phone(), 'warga-rahasia-1', 'Wati Warga');
      const budi = server.user(phone(), 'warga-rahasia-2', 'Budi Warga');

      const dash = await newPage(browser, server.base);
      await dash.page.goto('/dashboard/');
      await signIn(dash.page, coordinator);
      await dash.page.waitForSelector('#live[data-on="true"]');

      const volunteer = await newPage(browser, server.base, { viewport: { width: 412, height: 915 }, permissions: ['geolocation'], geolocation: NEAR_1 });
      await volunteer.page.goto('/volunteer/');
      await signIn(volunteer.page, rudi);
      await volunteer.page.click('#duty');
      await volunteer.page.waitForSelector('#duty[aria-pressed="true"]');
      await volunteer.page.waitForSelector('#location.ok');
      await volunteer.page.waitForSelector('#live[data-on="true"]');

      // Agus is on duty near the second scene, in his own volunteer app.
      const agusApp = await newPage(browser, server.base, { viewport: { width: 412, height: 915 }, permissions: ['geolocation'], geolocation: { latitude: NEAR_2.lat, longitude: NEAR_2.lng, accuracy: 10 } });
      await agusApp.page.goto('/volunteer/');
      await signIn(agusApp.page, agus);
      await agusApp.page.click('#duty');
      await agusApp.page.waitForSelector('#location.ok');
      await agusApp.page.waitForSelector('#live[data-on="true"]');

      const citizen = await newPage(browser, server.base, { viewport: { width: 412, height: 915 }, permissions: ['geolocation'], geolocation: SCENE_1 });
      await citizen.page.goto('/app/');
      await signIn(citizen.page, wati);
      await citizen.page.waitForSelector('#location.ok');
      await citizen.page.check('input[name=kind][value=security]');
      const answered = citizen.page.waitForResponse((r) => r.url().endsWith('/v1/alerts') && r.request().method() === 'POST');
      await citizen.page.click('#panic');
      const response = await answered;
      const acknowledgedAt = Date.now();
      assert(response.status() === 201, `the panic is acknowledged (${response.status()})`);
      const alert = await response.json();

      await dash.page.waitForSelector(`#map [data-alert-id="${alert.id}"]`, { timeout: 1000 });
      const onMap = Date.now() - acknowledgedAt;
      console.log(`     alert on the coordinator's map ${onMap} ms after the 201`);
      await screenshot(dash.page, 'flow-dashboard-new-alert');

      await volunteer.page.waitForSelector('#offers [data-offer]', { timeout: 10000 });
      await screenshot(volunteer.page, 'flow-volunteer-offer');
      await volunteer.page.click('#offers [data-accept]');
      await volunteer.page.waitForSelector('#assignment:not([hidden])');
      await volunteer.page.click('[data-status="en_route"]');
      await volunteer.page.waitForSelector('#assignment-status[data-status="en_route"]');
      await screenshot(volunteer.page, 'flow-volunteer-assignment');

      await citizen.page.waitForSelector('#responders .responder', { timeout: 10000 });
      const coming = await citizen.page.textContent('#responders');
      assert(coming.includes('Rudi Relawan') && /\d+ m/.test(coming), `the citizen sees who is coming and how far: ${coming}`);
      await citizen.page.waitForFunction(() => document.querySelector('#responders')?.textContent.includes('Dalam perjalanan'), null, { timeout: 5000 });
      await screenshot(citizen.page, 'flow-citizen-status');

      await dash.page.waitForSelector('#map path.responder-line', { timeout: 5000 });

      // A second alert, made through the API; the coordinator assigns the nearest free volunteer.
      const second = await apiCall(server.base, budi, 'POST', '/v1/alerts', { kind: 'other', location: { lat: SCENE_2.lat, lng: SCENE_2.lng, accuracy_m: 15 } }, { 'Idempotency-Key': crypto.randomUUID() });
      assert(second.status === 201, `second alert (${second.status})`);
      await dash.page.waitForSelector(`#map [data-alert-id="${second.json.id}"]`, { timeout: 1000 });
      // Picked from the list: the new alert may lie outside the part of the map in view.
      await dash.page.click(`#alerts button[data-id="${second.json.id}"]`);
      await dash.page.waitForSelector('#detail:not([hidden])');
      await dash.page.waitForSelector('#suggestions button[data-volunteer]');
      const suggested = await dash.page.locator('#suggestions button[data-volunteer]').first().getAttribute('data-name');
      assert(suggested === 'Agus Relawan', `the nearest free volunteer is suggested first (${suggested}); Rudi is busy`);
      await dash.page.click('#suggestions button[data-volunteer]');
      await dash.page.waitForSelector('#detail-message.ok');
      await dash.page.waitForFunction(() => document.querySelector('#responders')?.textContent.includes('Agus Relawan'), null, { timeout: 5000 });
      const status = await apiCall(server.base, coordinator, 'GET', `/v1/alerts/${second.json.id}`);
      assert(status.json.assignments.some((a) => a.volunteer.name === 'Agus Relawan'), 'the assignment is stored');
      await dash.page.waitForFunction(() => document.querySelector('#timeline')?.textContent.includes('Agus Relawan'), null, { timeout: 5000 });
      await dash.page.waitForSelector('#map .pin-volunteer.busy', { timeout: 5000 });
      await screenshot(dash.page, 'flow-dashboard-assigned');

      // Agus's app learns of the assignment over /v1/ws and shows where to go.
      await agusApp.page.waitForSelector('#assignment:not([hidden])', { timeout: 5000 });
      const away = await agusApp.page.textContent('#assignment-distance');
      assert(/^\d+ m dari Anda$/.test(away), `how far, measured from the phone: ${away}`);
      const navigate = await agusApp.page.getAttribute('#navigate', 'href');
      assert(navigate === `geo:${SCENE_2.lat},${SCENE_2.lng}?q=${SCENE_2.lat},${SCENE_2.lng}`, `navigation to the second scene: ${navigate}`);
      await agusApp.page.click('[data-status="on_scene"]');
      await agusApp.page.waitForSelector('#assignment-status[data-status="on_scene"]');
      await dash.page.waitForFunction(() => document.querySelector('#responders')?.textContent.includes('Di lokasi'), null, { timeout: 5000 });
      await screenshot(agusApp.page, 'flow-volunteer-assigned-by-coordinator');

      // The coordinator cancels the second alert (a reason is required): Agus's assignment ends in his app.
      await dash.page.click('#cancel-form button[type=submit]');
      assert(await dash.page.evaluate(() => !document.querySelector('#cancel-reason').validity.valid), 'no cancel without a reason');
      await dash.page.fill('#cancel-reason', 'Latihan selesai');
      await dash.page.click('#cancel-form button[type=submit]');
      await dash.page.waitForFunction(() => document.querySelector('#detail-status')?.textContent === 'Dibatalkan', null, { timeout: 5000 });
      await agusApp.page.waitForSelector('#assignment', { state: 'hidden', timeout: 5000 });

      // The citizen cancels her call: Rudi's assignment ends in his app, and she may call again.
      await citizen.page.click('#cancel');
      assert((await citizen.page.textContent('#cancel')) === 'Tekan lagi untuk membatalkan', 'one tap only asks for a second');
      await citizen.page.waitForTimeout(300);
      assert((await apiCall(server.base, coordinator, 'GET', `/v1/alerts/${alert.id}`)).json.status !== 'cancelled', 'one tap does not cancel');
      await citizen.page.click('#cancel');
      await citizen.page.waitForSelector('#alert-status[data-status="cancelled"]');
      await citizen.page.waitForSelector('#new-call:not([hidden])');
      await volunteer.page.waitForSelector('#assignment', { state: 'hidden', timeout: 5000 });
      const cancelled = await apiCall(server.base, coordinator, 'GET', `/v1/alerts/${alert.id}`);
      assert(cancelled.json.status === 'cancelled', `the first alert is cancelled (${cancelled.json.status})`);

      for (const side of [dash, volunteer, agusApp, citizen]) {
        noPageErrors(side.page);
        await side.context.close();
      }
    }],
    ['flow: the dashboard reconnects with resume_after and gets what it missed', async ({ browser, server }) => {
      const coordinator = server.user(phone(), 'koordinator-rahasia', 'Tomi Koordinator', ['coordinator']);
      const dewi = server.user(phone(), 'relawan-rahasia-3', 'Dewi Relawan', ['volunteer']);
      assert((await apiCall(server.base, dewi, 'PUT', '/v1/volunteers/me/duty', { on_duty: true })).status === 200, 'Dewi goes on duty');
      assert((await apiCall(server.base, dewi, 'POST', '/v1/volunteers/me/location', { lat: -6.2, lng: 106.8, accuracy_m: 10 })).status === 202, 'first position');

      const dash = await newPage(browser, server.base);
      // Watch the page's WebSockets: the URLs it opens and the frames it receives.
      await dash.context.addInitScript(() => {
        const Native = window.WebSocket;
        window.__sockets = [];
        window.__frames = [];
        window.WebSocket = class extends Native {
          constructor(...args) {
            super(...args);
            window.__sockets.push(this);
            this.addEventListener('message', (event) => window.__frames.push(JSON.parse(event.data)));
          }
        };
      });
      await dash.page.goto('/dashboard/');
      await signIn(dash.page, coordinator);
      await dash.page.waitForSelector('#live[data-on="true"]');
      const marker = dash.page.locator('#map .pin-volunteer').first();
      await marker.waitFor();

      // A live message first, so the page has a cursor.
      assert((await apiCall(server.base, dewi, 'POST', '/v1/volunteers/me/location', { lat: -6.21, lng: 106.81, accuracy_m: 10 })).status === 202, 'second position');
      await dash.page.waitForFunction(() => window.__frames.some((f) => f.type === 'volunteer.position' && f.lat === -6.21));
      const cursor = await dash.page.evaluate(() => Math.max(...window.__frames.filter((f) => typeof f.seq === 'number').map((f) => f.seq)));
      const before = await marker.boundingBox();

      // The connection drops; Dewi moves while the dashboard is away.
      await dash.page.evaluate(() => window.__sockets.at(-1).close());
      await dash.page.waitForSelector('#live[data-on="false"]');
      assert((await apiCall(server.base, dewi, 'POST', '/v1/volunteers/me/location', { lat: -6.25, lng: 106.86, accuracy_m: 10 })).status === 202, 'position while away');
      await dash.page.waitForSelector('#live[data-on="true"]', { timeout: 5000 });
      const url = await dash.page.evaluate(() => window.__sockets.at(-1).url);
      assert(new URL(url).searchParams.get('resume_after') === String(cursor), `reconnected with resume_after=${cursor}: ${url.replace(/access_token=[^&]+/, 'access_token=…')}`);
      await dash.page.waitForFunction(() => window.__frames.some((f) => f.type === 'volunteer.position' && f.lat === -6.25), null, { timeout: 5000 });
      const replayed = await dash.page.evaluate(() => window.__frames.find((f) => f.type === 'volunteer.position' && f.lat === -6.25));
      assert(replayed.seq === cursor + 1, `the missed message came with the next seq (${replayed.seq})`);
      await dash.page.waitForFunction((y) => {
        const box = document.querySelector('#map .pin-volunteer').getBoundingClientRect();
        return Math.abs(box.y - y) > 10;
      }, before.y, { timeout: 3000 });
      noPageErrors(dash.page);
      await dash.context.close();
    }],
  ];
}
