// Warnings on the dashboard (issue 19), against a real `kreki` of its own polling a real fake BMKG
// (`kreki fake-bmkg`, nothing stubbed): BMKG's M6.3 earthquake warning appears on the map as an
// area with its severity, urgency, certainty and instruction beside it; an alert raised inside the
// area is marked with it; the coordinator broadcasts to the volunteers inside from the warning
// (one reached); BMKG's Cancel takes the area off the map by itself. A broadcast pushed to the
// volunteer and citizen apps becomes a notification in the phone's language.
import { spawn } from 'node:child_process';
import { apiCall, assert, freePort, kreki, screenshot, startKreki } from './harness.mjs';

const EPICENTRE = { lat: -6.2, lng: 106.82 };
const MONAS = { lat: -6.1754, lng: 106.8272 };

async function fakeBmkg() {
  const port = await freePort();
  const child = spawn(kreki(), ['fake-bmkg', '--listen', `127.0.0.1:${port}`], { stdio: ['ignore', 'ignore', 'pipe'], env: { PATH: process.env.PATH } });
  const base = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 15000;
  for (;;) {
    try {
      if ((await fetch(`${base}/alert/rss.xml`)).ok) break;
    } catch { /* not up yet */ }
    if (Date.now() > deadline || child.exitCode !== null) throw new Error('kreki fake-bmkg did not start');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const control = async (path, body) => {
    const response = await fetch(`${base}/control/${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    assert(response.ok, `fake BMKG ${path}: ${response.status}`);
    return response.status === 204 ? null : response.json();
  };
  return { feed: `${base}/alert/rss.xml`, control, stop: () => child.kill('SIGTERM') };
}

export function warningsTests({ newPage, signIn, phone, noPageErrors }) {
  return [
    ['warnings: a BMKG earthquake warning appears on the map with its instruction, marks the alert inside, is broadcast to the volunteer inside, and leaves when cancelled', async ({ browser }) => {
      const bmkg = await fakeBmkg();
      const server = await startKreki({
        KREKI_CAP__FEEDS: `[{name="bmkg", url="${bmkg.feed}"}]`,
        KREKI_CAP__POLL_INTERVAL_S: '1',
        KREKI_CAP__MAX_BACKOFF_S: '2',
        KREKI_DISPATCH__POSITION_FLUSH_INTERVAL_MS: '100',
      });
      try {
        const coordinator = server.user(phone(), 'koordinator-rahasia', 'Wati Waspada', ['coordinator']);
        const volunteer = server.user(phone(), 'relawan-rahasia-1', 'Rudi Relawan', ['volunteer']);
        const citizen = server.user(phone(), 'warga-rahasia-1', 'Citra Warga');
        let made = await apiCall(server.base, volunteer, 'PUT', '/v1/volunteers/me/duty', { on_duty: true });
        assert(made.status === 200, `on duty: ${made.status}`);
        made = await apiCall(server.base, volunteer, 'POST', '/v1/volunteers/me/location', { ...MONAS, accuracy_m: 10 });
        assert(made.status === 202, `position: ${made.status}`);
        made = await apiCall(server.base, citizen, 'POST', '/v1/alerts', { kind: 'medical', location: { ...MONAS, accuracy_m: 10 } }, { 'idempotency-key': crypto.randomUUID() });
        assert(made.status === 201, `panic: ${made.status} ${JSON.stringify(made.json)}`);
        const alert = made.json;

        const { key } = await bmkg.control('earthquake', { ...EPICENTRE, radius_km: 30, magnitude: 6.3 });
        const { context, page } = await newPage(browser, server.base);
        await page.goto('/dashboard/');
        await signIn(page, coordinator);
        await page.waitForSelector('#live[data-on="true"]');
        await page.waitForSelector('#map[data-warnings="1"]', { timeout: 20000 });
        assert(await page.locator('#map path.warning-area.severity-Extreme').count() === 1, 'the area is drawn, coloured as Extreme');
        const item = await page.textContent('#warnings-list li[data-severity="Extreme"]');
        assert(item.includes('Gempabumi') && item.includes('Ekstrem'), `event and severity in Indonesian: ${item}`);
        assert(item.includes('Immediate') && item.includes('Observed'), `urgency and certainty: ${item}`);
        assert(item.includes('Waspada gempa susulan'), `the instruction: ${item}`);
        await page.waitForSelector(`#alerts button[data-id="${alert.id}"] .warning-mark`);
        await screenshot(page, 'warnings-map');

        await page.click('#warnings-list details.broadcast summary');
        await page.fill('#warnings-list form.broadcast-form textarea[name="id"]', 'Gempa kuat. Periksa bangunan di sekitar Anda dan laporkan korban.');
        await page.fill('#warnings-list form.broadcast-form textarea[name="en"]', 'Strong earthquake. Check the buildings around you and report casualties.');
        await page.click('#warnings-list form.broadcast-form button[type=submit]');
        await page.waitForSelector('#warnings-list form.broadcast-form .message.ok');
        const said = await page.textContent('#warnings-list form.broadcast-form .message');
        assert(said.includes('1 relawan'), `one volunteer reached: ${said}`);
        await screenshot(page, 'warnings-broadcast');

        await page.click('#dash button[data-lang="en"]');
        await page.waitForFunction(() => document.querySelector('#warnings-list')?.textContent.includes('Earthquake'));
        await bmkg.control('cancel', { key });
        await page.waitForSelector('#map[data-warnings="0"]', { timeout: 20000 });
        assert(await page.locator('#map path.warning-area').count() === 0, 'the cancelled area left the map');
        assert(await page.locator(`#alerts button[data-id="${alert.id}"] .warning-mark`).count() === 0, 'the alert is no longer marked');
        noPageErrors(page);
        await context.close();
      } finally {
        await server.stop();
        bmkg.stop();
      }
    }],

    ['warnings: a broadcast pushed to the volunteer and citizen apps becomes a notification in the phone\'s language, a severe one staying until touched', async ({ browser, server }) => {
      // The payload as realtime's BroadcastContent::data makes it: JSON values for Web Push; FCM
      // carries the same keys as strings, which the workers read too.
      const broadcastId = crypto.randomUUID();
      const payloads = {
        volunteer: { type: 'broadcast', broadcast_id: broadcastId, severity: 'Extreme', urgent: true, text_id: 'Gempa kuat. Keluar dari bangunan.', text_en: 'Strong earthquake. Leave buildings.', area_desc: 'Jakarta Pusat', expires_at: new Date(Date.now() + 3600e3).toISOString() },
        app: { type: 'broadcast', broadcast_id: broadcastId, severity: 'Minor', urgent: 'false', text_id: 'Hujan lebat sore ini.', text_en: 'Heavy rain this afternoon.', area_desc: 'Jakarta Pusat', expires_at: new Date(Date.now() + 3600e3).toISOString() },
      };
      for (const app of ['volunteer', 'app']) {
        const { context, page } = await newPage(browser, server.base, { viewport: { width: 412, height: 915 }, permissions: ['notifications'] });
        await page.goto(`/${app}/`);
        await page.evaluate(() => navigator.serviceWorker.ready);
        const cdp = await context.newCDPSession(page);
        const registration = new Promise((resolve) => {
          cdp.on('ServiceWorker.workerRegistrationUpdated', ({ registrations }) => {
            const found = registrations.find((r) => r.scopeURL.endsWith(`/${app}/`) && !r.isDeleted);
            if (found) resolve(found.registrationId);
          });
        });
        await cdp.send('ServiceWorker.enable');
        await cdp.send('ServiceWorker.deliverPushMessage', {
          origin: server.base, registrationId: await registration, data: JSON.stringify(payloads[app]),
        });
        let shown = null;
        for (let tries = 0; !shown && tries < 50; tries += 1) {
          shown = await page.evaluate(async () => {
            const list = await (await navigator.serviceWorker.ready).getNotifications();
            return list.length ? { title: list[0].title, body: list[0].body, tag: list[0].tag, sticky: list[0].requireInteraction } : null;
          });
          if (!shown) await page.waitForTimeout(100);
        }
        // The worker has no page to ask: it speaks the browser's language.
        const worker = context.serviceWorkers().find((w) => w.url().endsWith(`/${app}/sw.js`));
        const english = worker ? (await worker.evaluate(() => navigator.language)).toLowerCase().startsWith('en') : false;
        const want = payloads[app];
        assert(shown?.title === `${english ? 'Warning' : 'Peringatan'}: Jakarta Pusat`, `${app}: the title: ${JSON.stringify(shown)}`);
        assert(shown.body === (english ? want.text_en : want.text_id), `${app}: the text in the phone's language (${english ? 'en' : 'id'}): ${JSON.stringify(shown)}`);
        assert(shown.tag === `broadcast-${broadcastId}`, `${app}: one notification per broadcast: ${shown.tag}`);
        assert(shown.sticky === (app === 'volunteer'), `${app}: only the severe one stays until touched: ${shown.sticky}`);
        noPageErrors(page);
        await context.close();
      }
    }],
  ];
}
