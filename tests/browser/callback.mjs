// Call-back on the dashboard (issues 14 and 18): the alert detail shows no phone number until the
// coordinator presses "Telepon balik" and gives a reason; an empty reason is the server's field
// error beside the field; then the caller's number appears as a tel: link, the view is on the
// timeline, and the audit log an admin reads has the view with the reason.
import { apiCall, assert, screenshot } from './harness.mjs';

export function callbackTests({ newPage, signIn, phone, noPageErrors }) {
  return [
    ['dashboard: Call back asks for a reason, shows the caller\'s number, and the view is in the audit log', async ({ browser, server }) => {
      const admin = server.user(phone(), 'admin-rahasia', 'Ade Audit', ['admin']);
      const coordinator = server.user(phone(), 'koordinator-rahasia', 'Kiki Koordinator', ['coordinator']);
      const citizen = server.user(phone(), 'warga-rahasia', 'Cici Penelepon');
      const made = await apiCall(server.base, citizen, 'POST', '/v1/alerts',
        { kind: 'medical', location: { lat: -6.1754, lng: 106.8272, accuracy_m: 10 } }, { 'Idempotency-Key': crypto.randomUUID() });
      assert(made.status === 201, `panic: ${made.status} ${JSON.stringify(made.json)}`);
      const alert = made.json;
      const digits = citizen.phone.slice(1);

      const { context, page } = await newPage(browser, server.base);
      await page.goto('/dashboard/');
      await signIn(page, coordinator);
      await page.waitForSelector('#dash:not([hidden])');
      await page.waitForSelector(`#alerts button[data-id="${alert.id}"]`, { timeout: 10000 });
      await page.click(`#alerts button[data-id="${alert.id}"]`);
      await page.waitForSelector('#detail:not([hidden]) #callback:not([hidden])');
      const before = await page.textContent('#detail');
      assert(!before.includes(digits), `no phone in the detail before a call-back: ${before}`);
      assert((await page.textContent('#callback-open')).includes('Telepon balik'), 'the button, in Indonesian');

      await page.click('#callback-open');
      await page.waitForSelector('#callback-form:not([hidden])');
      await page.click('#callback-form button[type=submit]');
      await page.waitForSelector('#callback-form [data-field="reason"][aria-invalid="true"], #callback-form .field-error', { timeout: 5000 });
      await screenshot(page, 'callback-reason-needed');

      await page.fill('#callback-reason', 'Pelapor tidak menjawab di aplikasi');
      await page.click('#callback-form button[type=submit]');
      await page.waitForSelector('#callback-contacts:not([hidden]) a[href^="tel:"]', { timeout: 5000 });
      const shown = await page.textContent('#callback-contacts');
      assert(shown.includes(digits) && shown.includes('Cici Penelepon'), `the caller's number: ${shown}`);
      assert((await page.textContent('#callback-message')).includes('log audit'), 'the view is said to be recorded');
      await page.waitForFunction(() => document.querySelector('#timeline')?.textContent.includes('telepon balik'), null, { timeout: 5000 });
      await screenshot(page, 'callback-numbers-shown');

      const audit = await apiCall(server.base, admin, 'GET', `/v1/admin/audit?subject=${citizen.id}`);
      assert(audit.status === 200, `audit: ${audit.status}`);
      const line = audit.json.find((entry) => entry.action === 'alert.caller_phone.view');
      assert(line && line.reason === `alert ${alert.id}: Pelapor tidak menjawab di aplikasi` && line.actor === coordinator.id,
        `the view with who and why: ${JSON.stringify(audit.json)}`);

      noPageErrors(page);
      await context.close();
    }],
  ];
}
