// `kreki demo` as the quickstart runs it, simulator on: the dashboard comes alive with simulated
// alerts being dispatched and volunteers moving; and Web Push in the volunteer app (the demo has a
// VAPID key): going on duty subscribes with the server's key and registers the browser, and the
// service worker turns a push into a notification.
// Headless Chromium has no push service to subscribe with, so `pushManager.subscribe` is replaced
// by one that returns a subscription with real P-256 keys and a made-up endpoint; everything
// after it (the VAPID key handed over, POST /v1/devices, the worker's notification) is real.
import { apiCall, assert, screenshot, startKreki } from './harness.mjs';

const JAKARTA = { latitude: -6.2, longitude: 106.8167, accuracy: 15 };
const COORDINATOR = { phone: '081100000002', password: 'demo-koordinator' };
const VOLUNTEER = { phone: '081200000001', password: 'demo-relawan' };

let demo = null;
/** One `kreki demo` for these tests, started on first use; `stopDemo()` ends it. */
async function demoServer() {
  demo ??= await startKreki({}, {
    args: (dir) => ['demo', '--data-dir', `${dir}/demo`, '--sim-volunteers', '12', '--sim-citizens', '3',
      '--sim-alerts-per-minute', '20', '--sim-position-every-s', '1', '--sim-seed', '7'],
  });
  return demo;
}

export async function stopDemo() {
  await demo?.stop();
  demo = null;
}

/** Where each volunteer marker stands (`lat,lng`), by id. */
function volunteerSpots(page) {
  return page.evaluate(() => Object.fromEntries([...document.querySelectorAll('#map [data-volunteer-id]')]
    .map((el) => [el.dataset.volunteerId, el.dataset.at])));
}

/** Stands in for the browser's push service (see the top of this file). */
async function fakePushService(context) {
  await context.addInitScript(() => {
    if (!self.PushManager) return;
    let current = null;
    const b64 = (bytes) => btoa(String.fromCharCode(...bytes)).replaceAll('+', '-').replaceAll('/', '_').replaceAll('=', '');
    PushManager.prototype.getSubscription = async () => current;
    PushManager.prototype.subscribe = async (options) => {
      const pair = await crypto.subtle.generateKey({ name: 'ECDH', namedCurve: 'P-256' }, true, ['deriveBits']);
      const p256dh = b64(new Uint8Array(await crypto.subtle.exportKey('raw', pair.publicKey)));
      const auth = b64(crypto.getRandomValues(new Uint8Array(16)));
      const key = new Uint8Array(options.applicationServerKey);
      window.pushSubscribedWith = { key: b64(key), userVisibleOnly: options.userVisibleOnly };
      const endpoint = `https://push.example.test/send/${crypto.randomUUID()}`;
      current = {
        endpoint,
        options: { applicationServerKey: key.buffer, userVisibleOnly: true },
        toJSON: () => ({ endpoint, expirationTime: null, keys: { p256dh, auth } }),
        unsubscribe: async () => { current = null; return true; },
      };
      return current;
    };
  });
}

export function simulateTests({ newPage, signIn, noPageErrors }) {
  return [
    ['simulator: kreki demo shows simulated alerts dispatched live and volunteers moving on the dashboard', async ({ browser }) => {
      const server = await demoServer();
      const { context, page } = await newPage(browser, server.base);
      await page.goto('/dashboard/');
      await signIn(page, COORDINATOR);
      await page.waitForSelector('#live[data-on="true"]');
      // Simulated volunteers on duty and on the map.
      await page.waitForFunction(() => Number(document.querySelector('#map').dataset.volunteers) >= 10, null, { timeout: 15000 });
      // A simulated alert, and a simulated volunteer accepting it (a line to the responder).
      await page.waitForSelector('.leaflet-marker-pane .pin-alert', { timeout: 15000 });
      await page.waitForSelector('.leaflet-overlay-pane path.responder-line', { timeout: 30000 });
      const drills = await page.locator('#alerts .badge.drill').count();
      assert(drills >= 1, `simulated alerts say they are a drill (${drills})`);
      assert((await page.textContent('#alerts .badge.drill')) === 'Latihan', 'in Indonesian');
      const assigned = await page.locator('.pin-alert.status-assigned, .pin-alert.status-on_scene').count();
      assert(assigned >= 1, 'an alert is assigned');
      // Volunteers move: positions stream in over /v1/ws and their markers follow.
      const positions = Number(await page.getAttribute('#map', 'data-positions'));
      const before = await volunteerSpots(page);
      await page.waitForFunction((n) => Number(document.querySelector('#map').dataset.positions) > n + 10, positions, { timeout: 5000 });
      await page.waitForFunction((spots) => [...document.querySelectorAll('#map [data-volunteer-id]')]
        .filter((el) => spots[el.dataset.volunteerId] && spots[el.dataset.volunteerId] !== el.dataset.at).length >= 3, before, { timeout: 10000 });
      // Every alert here is a drill: the figures (real emergencies) stay at zero, the drills are
      // counted apart.
      assert((await page.textContent('#fig-open')) === '0', 'drills are not open emergencies');
      const apart = await page.textContent('#fig-drills');
      assert(await page.isVisible('#fig-drills') && Number(apart.match(/\d+$/)[0]) >= 1, `open drills counted apart: ${apart}`);
      await screenshot(page, 'dashboard-simulated');
      // The detail says the alert is simulated too.
      await page.click('#alerts li button');
      await page.waitForSelector('#detail:not([hidden]) #detail-body .badge.drill');
      await page.waitForTimeout(600); // the map pans to the alert; let it settle for the picture
      assert((await page.textContent('#detail-body')).includes('Latihan simulasi'), 'the note is shown');
      assert(await page.isVisible('#detail-drill'), 'and that a drill is no health record');
      await screenshot(page, 'dashboard-simulated-detail');
      noPageErrors(page);
      await context.close();
    }],

    ['push: going on duty subscribes with the VAPID key and registers the browser; the worker shows the offer', async ({ browser }) => {
      const server = await demoServer();
      const { context, page } = await newPage(browser, server.base, {
        viewport: { width: 412, height: 915 }, permissions: ['geolocation', 'notifications'], geolocation: JAKARTA,
      });
      await fakePushService(context);
      await page.goto('/volunteer/');
      await signIn(page, VOLUNTEER);
      await page.waitForSelector('#main-screen:not([hidden])');
      await page.evaluate(() => navigator.serviceWorker.ready);
      await page.click('#duty');
      await page.waitForSelector('#push[data-push="on"]', { timeout: 5000 });
      assert((await page.textContent('#push')).startsWith('Notifikasi aktif'), 'the volunteer is told');
      // kreki demo certified its volunteers for every kind (BLS, first aid, fire).
      const kinds = await page.textContent('#kinds');
      for (const kind of ['Henti jantung', 'Medis', 'Kecelakaan', 'Kebakaran', 'Keamanan']) {
        assert(kinds.includes(kind), `the demo volunteer may take ${kind}: ${kinds}`);
      }
      const vapid = await apiCall(server.base, null, 'GET', '/v1/devices/vapid');
      const subscribed = await page.evaluate(() => window.pushSubscribedWith);
      assert(subscribed?.key === vapid.json.public_key && subscribed.userVisibleOnly, `subscribed with the server's VAPID key: ${JSON.stringify(subscribed)}`);
      const me = { ...VOLUNTEER };
      const devices = await apiCall(server.base, me, 'GET', '/v1/devices');
      assert(devices.status === 200 && devices.json.some((d) => d.platform === 'web'), `the browser is registered: ${JSON.stringify(devices.json)}`);
      await screenshot(page, 'volunteer-push-on');

      // A push reaches the service worker (through DevTools, as the push service would deliver
      // it): it shows the offer's kind and distance, and only those.
      const cdp = await context.newCDPSession(page);
      const registration = new Promise((resolve) => {
        cdp.on('ServiceWorker.workerRegistrationUpdated', ({ registrations }) => {
          const found = registrations.find((r) => r.scopeURL.endsWith('/volunteer/') && !r.isDeleted);
          if (found) resolve(found.registrationId);
        });
      });
      await cdp.send('ServiceWorker.enable');
      const registrationId = await registration;
      await cdp.send('ServiceWorker.deliverPushMessage', {
        origin: server.base,
        registrationId,
        data: JSON.stringify({ type: 'offer', kind: 'cardiac_arrest', distance_m: 450, offer_id: 'o-1', alert_id: 'a-1', expires_at: new Date(Date.now() + 30000).toISOString() }),
      });
      let shown = null;
      for (let tries = 0; !shown && tries < 50; tries += 1) {
        shown = await page.evaluate(async () => {
          const list = await (await navigator.serviceWorker.ready).getNotifications();
          return list.length ? { title: list[0].title, body: list[0].body, tag: list[0].tag, url: list[0].data?.url } : null;
        });
        if (!shown) await page.waitForTimeout(100);
      }
      assert(shown, 'the worker shows a notification');
      assert(shown.title === 'Tawaran darurat: Henti jantung', `the kind: ${shown.title}`);
      assert(shown.body.startsWith('450 m dari Anda'), `the distance: ${shown.body}`);
      assert(shown.tag === 'offer-o-1' && shown.url === '/volunteer/', `one per offer, opens the app: ${JSON.stringify(shown)}`);

      // Signing out forgets the browser.
      await page.click('#signout');
      await page.waitForSelector('#signin:not([hidden])');
      const after = await apiCall(server.base, me, 'GET', '/v1/devices');
      assert(after.status === 200 && after.json.length === 0, `unregistered at sign-out: ${JSON.stringify(after.json)}`);
      noPageErrors(page);
      await context.close();
    }],

    ['push: a citizen who allowed notifications is registered for push once a call is made', async ({ browser }) => {
      const server = await demoServer();
      const { context, page } = await newPage(browser, server.base, {
        viewport: { width: 412, height: 915 }, permissions: ['geolocation', 'notifications'], geolocation: JAKARTA,
      });
      await fakePushService(context);
      const citizen = { phone: '081300000001', password: 'demo-warga' };
      await page.goto('/app/');
      await signIn(page, citizen);
      await page.waitForSelector('#panic-screen:not([hidden])');
      await page.evaluate(() => navigator.serviceWorker.ready);
      assert(await page.isHidden('#notify'), 'no notification prompt before there is a call');
      await page.click('#panic');
      await page.waitForSelector('#status-screen:not([hidden])', { timeout: 10000 });
      // Permission was granted beforehand here, so the app renews quietly instead of asking.
      await page.waitForFunction(() => localStorage.getItem('kreki.app.push-device') !== null, null, { timeout: 5000 });
      const devices = await apiCall(server.base, { ...citizen }, 'GET', '/v1/devices');
      assert(devices.json.some((d) => d.platform === 'web'), `registered: ${JSON.stringify(devices.json)}`);
      noPageErrors(page);
      await context.close();
    }],
  ];
}
