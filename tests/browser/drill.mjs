// Drills and SATUSEHAT sync failures, against a real `kreki`:
// - a drill (`"drill": true` on POST /v1/alerts) reaches a volunteer as an offer with a
//   "LATIHAN / DRILL" banner, and the assignment keeps it; a real offer has none.
// - with the bridge running (and its fake SATUSEHAT, as `kreki demo` wires it), the dashboard lists
//   an Encounter change SATUSEHAT never accepted, in the panel and in the alert's detail, and its
//   retry button queues it again: the bridge's worker then takes it up.
import { apiCall, assert, screenshot, startKreki } from './harness.mjs';

const JAKARTA = { latitude: -6.2, longitude: 106.8167, accuracy: 15 };

/** Polls `check` (sync or async) until truthy, up to `ms`; answers its last value. */
async function eventually(check, ms, what) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

export function drillTests({ newPage, signIn, phone, noPageErrors }) {
  return [
    ['volunteer: a drill offer says LATIHAN / DRILL, a real one does not, and the assignment keeps the banner', async ({ browser, server }) => {
      const volunteer = server.user(phone(), 'relawan-latihan', 'Lina Relawan', ['volunteer']);
      const citizen = server.user(phone(), 'warga-latihan-1', 'Tono Warga');
      const { context, page } = await newPage(browser, server.base, {
        viewport: { width: 412, height: 915 }, permissions: ['geolocation'], geolocation: JAKARTA,
      });
      await page.goto('/volunteer/');
      await signIn(page, volunteer);
      await page.waitForSelector('#main-screen:not([hidden])');
      await page.click('#duty');
      await page.waitForSelector('#duty[aria-pressed="true"]');
      await page.waitForSelector('#location.ok');

      // `other` needs no certification; both alerts stand a few metres from the volunteer.
      const at = { lat: JAKARTA.latitude + 0.0005, lng: JAKARTA.longitude, accuracy_m: 10 };
      const drill = await apiCall(server.base, citizen, 'POST', '/v1/alerts',
        { kind: 'other', location: at, note: 'Latihan evakuasi', drill: true }, { 'idempotency-key': crypto.randomUUID() });
      assert(drill.status === 201 && drill.json.drill === true, `the drill is made: ${JSON.stringify(drill.json)}`);
      const real = await apiCall(server.base, citizen, 'POST', '/v1/alerts',
        { kind: 'security', location: at, note: '[SIMULASI] tetangga berteriak' }, { 'idempotency-key': crypto.randomUUID() });
      assert(real.status === 201 && real.json.drill === false, `a typed prefix is a real alert: ${JSON.stringify(real.json)}`);

      const drillOffer = page.locator('[data-offer]', { has: page.locator('h3', { hasText: 'Lainnya' }) });
      const realOffer = page.locator('[data-offer]', { has: page.locator('h3', { hasText: 'Keamanan' }) });
      await drillOffer.waitFor({ timeout: 10000 });
      await realOffer.waitFor({ timeout: 10000 });
      const banner = await drillOffer.locator('.drill-banner').textContent();
      assert(banner.includes('LATIHAN / DRILL') && banner.includes('bukan keadaan darurat nyata'), `the drill banner: ${banner}`);
      assert(await realOffer.locator('.drill-banner').count() === 0, 'no banner on a real offer, whatever its note says');
      const box = await drillOffer.locator('.drill-banner').boundingBox();
      const card = await drillOffer.boundingBox();
      assert(box && card && box.y - card.y < 40, 'the banner comes first in the offer');
      await screenshot(page, 'volunteer-drill-offer');

      await drillOffer.locator('[data-accept]').click();
      await page.waitForSelector('#assignment:not([hidden])');
      assert(await page.isVisible('#assignment-drill'), 'the assignment of a drill keeps the banner');
      assert((await page.textContent('#assignment-drill')).includes('LATIHAN / DRILL'), 'in both languages');
      await page.click('button[data-lang="en"]');
      assert((await page.textContent('#assignment-drill')).includes('not a real emergency'), 'and says why in English');
      await screenshot(page, 'volunteer-drill-assignment');
      await page.click('button[data-lang="id"]');
      await page.click('[data-status="completed"]');
      await page.waitForSelector('#assignment', { state: 'hidden' });
      noPageErrors(page);
      await context.close();
    }],

    ['dashboard: SATUSEHAT sync failures are listed with a retry that queues the change again', async ({ browser }) => {
      // The bridge with the fake SATUSEHAT in-process, as `kreki demo` runs it.
      const bridged = await startKreki({ KREKI_SATUSEHAT__ENABLED: 'true', KREKI_SATUSEHAT__ENVIRONMENT: 'fake' });
      try {
        const coordinator = bridged.user(phone(), 'koordinator-sinkron', 'Sri Koordinator', ['coordinator']);
        const citizen = bridged.user(phone(), 'warga-sinkron-1', 'Eko Warga');
        const at = { lat: -6.19, lng: 106.83, accuracy_m: 10 };
        const made = await apiCall(bridged.base, citizen, 'POST', '/v1/alerts',
          { kind: 'medical', location: at }, { 'idempotency-key': crypto.randomUUID() });
        assert(made.status === 201, `a real alert: ${JSON.stringify(made.json)}`);
        const alertId = made.json.id;
        const drill = await apiCall(bridged.base, citizen, 'POST', '/v1/alerts',
          { kind: 'fire', location: { lat: -6.3, lng: 106.9 }, drill: true }, { 'idempotency-key': crypto.randomUUID() });
        assert(drill.status === 201, 'and a drill');
        // The bridge's feed projects the real alert (dispatch's events settle for 2 s first), and
        // never the drill.
        await eventually(() => bridged.sql(`SELECT count(*) FROM bridge.incidents WHERE alert_id = '${alertId}'`) === '1', 15000, 'the incident projected');
        await eventually(() => bridged.sql(`SELECT (SELECT last_seq FROM bridge.feed_cursor)
          >= (SELECT max(id) FROM dispatch.alert_events WHERE alert_id = '${drill.json.id}')`) === 't', 15000, 'the feed past the drill');
        assert(bridged.sql(`SELECT count(*) FROM bridge.incidents WHERE alert_id = '${drill.json.id}'`) === '0', 'the drill is not a health record');
        // Its Encounter create ran out of attempts, as the sync worker records it (state `failed`).
        bridged.sql(`INSERT INTO bridge.encounter_outbox (alert_id, action, state, attempts, last_error, next_attempt_at)
          VALUES ('${alertId}', 'create', 'failed', 8, 'SATUSEHAT 400 business-rule 10117: serviceProvider must be the organization of the credentials', now())`);

        const { context, page } = await newPage(browser, bridged.base);
        await page.goto('/dashboard/');
        await signIn(page, coordinator);
        await page.waitForSelector('#sync:not([hidden])');
        await page.waitForSelector('#sync[data-count="1"]');
        assert((await page.textContent('#sync-title')).replace(/\s+/g, ' ').trim() === 'Sinkron SATUSEHAT gagal 1', `the count: ${await page.textContent('#sync-title')}`);
        const item = page.locator('#sync-list li[data-failure]');
        assert(await item.count() === 1, 'one failure listed');
        const text = await item.textContent();
        assert(text.includes('Medis') && text.includes('Membuat Encounter') && text.includes('8 percobaan') && text.includes('10117'), `what failed and why: ${text}`);
        const retry = item.locator('button[data-retry]');
        assert((await retry.getAttribute('aria-label')) === 'Coba sinkron lagi: Medis', 'the retry button says what it retries');
        await screenshot(page, 'dashboard-sync-failures');

        // The alert's detail says so too.
        await item.locator('button[data-alert]').click();
        await page.waitForSelector('#detail:not([hidden]) #detail-sync button[data-retry]');
        assert((await page.textContent('#detail-sync')).includes('SATUSEHAT: Membuat Encounter gagal.'), 'in the detail');
        await page.click('#dash button[data-lang="en"]');
        assert((await page.textContent('#sync-title')).includes('SATUSEHAT sync failures'), 'in English too');
        assert((await page.textContent('#detail-sync')).includes('Creating the Encounter failed'), 'the detail in English');
        await screenshot(page, 'dashboard-sync-detail-en');
        await page.click('#dash button[data-lang="id"]');

        await page.click('#sync-list button[data-retry]');
        await page.waitForSelector('#sync-message.ok:not([hidden])');
        await page.waitForSelector('#sync[data-count="0"]');
        assert(await page.locator('#detail-sync').count() === 0, 'the detail no longer shows it');
        assert((await page.textContent('#sync-list')).includes('Tidak ada kegagalan sinkron'), 'the panel says none');
        // Queued again with fresh attempts; the worker takes it (there is no verified practitioner
        // on this alert, so there is nothing to send and it is done, not failed again).
        const state = await eventually(() => {
          const now = bridged.sql(`SELECT state FROM bridge.encounter_outbox WHERE alert_id = '${alertId}' AND action = 'create'`);
          return now !== 'failed' && now;
        }, 10000, 'the change queued again');
        assert(['pending', 'done'].includes(state), `queued again: ${state}`);
        await eventually(() => bridged.sql(`SELECT state FROM bridge.encounter_outbox WHERE alert_id = '${alertId}' AND action = 'create'`) === 'done', 15000, 'the worker to take the change');
        const again = await apiCall(bridged.base, coordinator, 'GET', '/v1/fhir-sync/failures');
        assert(again.status === 200 && again.json.length === 0, `none left: ${JSON.stringify(again.json)}`);
        await screenshot(page, 'dashboard-sync-retried');
        noPageErrors(page);
        await context.close();
      } finally {
        await bridged.stop();
      }
    }],
  ];
}
