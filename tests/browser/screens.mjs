// The screens of issue 16 against a real `kreki`, nothing stubbed: training in the volunteer app
// from the catalogue to a certificate (offline on the way) and then a cardiac-arrest offer; the
// public verify page behind the QR code; expiry reminders (in the app and as a push); the
// health-worker check (verified, not found, pending while SATUSEHAT is down and retried); the
// trainer console; the admin console; first-aid guidance opening offline after a panic; and the
// map on a PMTiles basemap served by kreki, fitted to the coordinator's alerts and volunteers.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createServer } from 'node:net';
import { apiCall, assert, screenshot, SCREENSHOTS, startKreki } from './harness.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const MONAS = { latitude: -6.1754, longitude: 106.8272, accuracy: 10 };
const PHONE = { viewport: { width: 412, height: 915 } };

/** A BLS course whose quiz draws 2 of 3 questions; option `a` is always right. */
function blsCourse(title) {
  return {
    title,
    title_en: 'Basic Life Support',
    description: 'RJP untuk orang awam.',
    certification: 'bls',
    modules: [{
      title: 'RJP',
      lessons: [
        { title: 'Kenali henti jantung', body_md: 'Tidak sadar dan **tidak bernapas normal**.\n\n![Posisi tangan](/web/shared/icon.svg)', video_url: 'https://www.youtube.com/watch?v=abcdefghijk' },
        { title: 'Tekan dada', body_md: 'Kedalaman 5–6 cm, 100–120 kali per menit.' },
      ],
      quizzes: [{
        title: 'Kuis RJP', pass_mark_pct: 100, draw_count: 2,
        questions: [
          { kind: 'single', prompt: 'Kecepatan tekanan dada?', explanation: '100–120 per menit.', options: [{ text: '100–120 per menit', correct: true }, { text: '60 per menit' }] },
          { kind: 'single', prompt: 'Kedalaman tekanan?', explanation: '5–6 cm pada orang dewasa.', options: [{ text: '5–6 cm', correct: true }, { text: '1 cm' }] },
          { kind: 'single', prompt: 'Bila ada AED?', explanation: 'Nyalakan dan ikuti suaranya.', options: [{ text: 'Nyalakan dan ikuti suaranya', correct: true }, { text: 'Tunggu ambulans' }] },
        ],
      }],
    }],
  };
}

function freePort() {
  return new Promise((resolve) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

export function screenTests({ newPage, signIn, phone, noPageErrors }) {
  return [
    ['training: a volunteer takes a course to its certificate (offline on the way), the QR page verifies it, then a cardiac-arrest offer comes', async ({ browser, server }) => {
      const trainer = server.user(phone(), 'pelatih-rahasia', 'Tari Pelatih', ['trainer']);
      const volunteer = server.user(phone(), 'relawan-rahasia', 'Rani Relawan', ['volunteer']);
      const citizen = server.user(phone(), 'warga-rahasia', 'Wawan Warga');
      const course = await apiCall(server.base, trainer, 'POST', '/v1/lms/courses', blsCourse('Bantuan Hidup Dasar'));
      assert(course.status === 201, `course made: ${JSON.stringify(course.json)}`);
      const [lesson1, lesson2] = course.json.modules[0].lessons.map((l) => l.id);

      const { context, page } = await newPage(browser, server.base, { ...PHONE, permissions: ['geolocation'], geolocation: MONAS });
      await page.goto('/volunteer/');
      await signIn(page, volunteer);
      await page.waitForSelector('#main-screen:not([hidden])');
      await page.evaluate(() => navigator.serviceWorker.ready);
      await page.click('#tab-training');
      await page.click(`[data-course-card="${course.json.id}"] [data-enroll]`);
      await page.waitForSelector('#course-title');
      assert(await page.locator('.lesson-body strong').first().textContent() === 'tidak bernapas normal', 'the lesson text is rendered');
      assert(await page.locator('.lesson-body img[alt="Posisi tangan"]').count() === 1, 'with its picture');
      assert(await page.getAttribute('iframe.video', 'src') === 'https://www.youtube-nocookie.com/embed/abcdefghijk', 'and its video embedded');
      await page.click(`[data-complete="${lesson1}"]`);
      await page.waitForSelector(`[data-lesson="${lesson1}"][data-state="done"]`);
      await screenshot(page, 'training-lesson');

      // The network goes; the second lesson is read anyway and the app is even reloaded.
      await context.setOffline(true);
      await page.click(`[data-complete="${lesson2}"]`);
      await page.waitForSelector(`[data-lesson="${lesson2}"][data-state="queued"]`);
      await page.reload();
      await page.waitForSelector('#main-screen:not([hidden])');
      await page.click('#tab-training');
      await page.click(`[data-open="${course.json.id}"]`);
      await page.waitForSelector(`[data-lesson="${lesson2}"][data-state="queued"]`);
      assert(await page.locator(`[data-lesson="${lesson1}"][data-state="done"]`).count() === 1, 'progress survives offline');
      await screenshot(page, 'training-offline');
      await context.setOffline(false);
      await page.waitForSelector(`[data-lesson="${lesson2}"][data-state="done"]`, { timeout: 10000 });
      const progress = await apiCall(server.base, volunteer, 'GET', `/v1/lms/courses/${course.json.id}/progress`);
      assert(progress.json.lessons_completed.length === 2, `the server has both lessons: ${JSON.stringify(progress.json)}`);

      // The quiz: two questions drawn from the bank, answered right, feedback at once, certificate.
      await page.click('[data-start]');
      await page.waitForSelector('#quiz-form');
      assert(await page.locator('#quiz-form .question').count() === 2, 'two questions drawn');
      for (const question of await page.locator('#quiz-form .question').all()) await question.locator('input[value="a"]').check();
      await screenshot(page, 'training-quiz');
      await page.click('#quiz-form button[type=submit]');
      await page.waitForSelector('#quiz-score[data-passed="true"]');
      assert(await page.locator('[data-feedback="right"]').count() === 2, 'each answer marked right');
      assert((await page.textContent('.feedback')).includes('per menit') || (await page.textContent('.feedback')).includes('cm') || (await page.textContent('.feedback')).includes('suaranya'), 'with the explanation');
      assert(await page.isVisible('#quiz-certificate'), 'the certificate is announced');
      await screenshot(page, 'training-result');

      await page.click('#tab-certs');
      const card = page.locator('#certificates [data-status="valid"]');
      await card.waitFor();
      assert((await card.textContent()).includes('Berlaku s.d.'), 'the expiry is shown');
      await page.waitForFunction(() => document.querySelector('#certificates img')?.naturalWidth > 0);
      const code = (await card.locator('code').textContent()).trim();
      await screenshot(page, 'training-certificate');

      // What the QR code opens: a page for people, JSON for programs.
      const qr = await page.evaluate(async (c) => (await fetch(`/v1/lms/certificates/verify/${c}/qr.svg`)).headers.get('content-type'), code);
      assert(qr === 'image/svg+xml', `the QR code is an SVG: ${qr}`);
      const verify = await context.newPage();
      await verify.goto(`/v1/lms/certificates/verify/${code}`);
      const text = await verify.textContent('body');
      assert(text.includes('SAH / VALID') && text.includes('Rani Relawan'), `the verify page: ${text}`);
      await screenshot(verify, 'verify-page');
      const json = await apiCall(server.base, null, 'GET', `/v1/lms/certificates/verify/${code}`, null, { accept: 'application/json' });
      assert(json.json.valid === true && json.json.holder_name === 'Rani Relawan', `JSON for programs: ${JSON.stringify(json.json)}`);

      // Certified for BLS: a cardiac arrest nearby is offered to her.
      await page.click('#tab-duty');
      await context.setGeolocation(MONAS);
      await page.click('#duty');
      await page.waitForSelector('#location.ok');
      await page.waitForFunction(() => document.querySelector('#kinds').textContent.includes('Henti jantung'));
      const alert = await apiCall(server.base, citizen, 'POST', '/v1/alerts', { kind: 'cardiac_arrest', location: { lat: MONAS.latitude + 0.001, lng: MONAS.longitude, accuracy_m: 10 } }, { 'idempotency-key': crypto.randomUUID() });
      assert(alert.status === 201, `cardiac arrest reported (${alert.status})`);
      await page.locator('[data-offer]', { has: page.locator('h3', { hasText: 'Henti jantung' }) }).waitFor({ timeout: 10000 });
      await screenshot(page, 'training-then-offer');
      await apiCall(server.base, citizen, 'POST', `/v1/alerts/${alert.json.id}/cancel`, {});
      noPageErrors(page);
      await context.close();
    }],

    ['training: a certificate about to expire is flagged in the app, and its push says so', async ({ browser, server }) => {
      const trainer = server.user(phone(), 'pelatih-rahasia', 'Toni Pelatih', ['trainer']);
      const volunteer = server.user(phone(), 'relawan-rahasia', 'Dewi Relawan', ['volunteer']);
      const day = 86400000;
      const recorded = await apiCall(server.base, trainer, 'POST', '/v1/lms/certificates', {
        user_id: volunteer.id, certification: 'first_aid', issued_at: new Date(Date.now() - 700 * day).toISOString(),
        expires_at: new Date(Date.now() + 5 * day).toISOString(), evidence: 'Kartu PMI 77',
      });
      assert(recorded.status === 201, `recorded with the contract's body: ${JSON.stringify(recorded.json)}`);
      const { context, page } = await newPage(browser, server.base, { ...PHONE, permissions: ['notifications'] });
      await page.goto('/volunteer/');
      await signIn(page, volunteer);
      await page.waitForSelector('#reminder:not([hidden])', { timeout: 10000 });
      const banner = await page.textContent('#reminder');
      assert(banner.includes('Pertolongan Pertama') && /[45] hari lagi/.test(banner), `the reminder: ${banner}`);
      await page.click('#tab-certs');
      await page.waitForSelector('#certificates .message.error');
      await screenshot(page, 'certificate-reminder');
      const stored = await apiCall(server.base, volunteer, 'GET', '/v1/lms/notifications/me');
      assert(stored.json.some((n) => n.kind === 'expiry_7d'), `the LMS stored the 7-day reminder: ${JSON.stringify(stored.json)}`);

      // The same reminder as a push reaches the service worker and becomes a notification.
      await page.evaluate(() => navigator.serviceWorker.ready);
      const cdp = await context.newCDPSession(page);
      const registration = new Promise((resolve) => {
        cdp.on('ServiceWorker.workerRegistrationUpdated', ({ registrations }) => {
          const found = registrations.find((r) => r.scopeURL.endsWith('/volunteer/') && !r.isDeleted);
          if (found) resolve(found.registrationId);
        });
      });
      await cdp.send('ServiceWorker.enable');
      await cdp.send('ServiceWorker.deliverPushMessage', {
        origin: server.base, registrationId: await registration, data: JSON.stringify(stored.json[0].message),
      });
      let shown = null;
      for (let tries = 0; !shown && tries < 50; tries += 1) {
        shown = await page.evaluate(async () => {
          const list = await (await navigator.serviceWorker.ready).getNotifications();
          return list.length ? { title: list[0].title, body: list[0].body } : null;
        });
        if (!shown) await page.waitForTimeout(100);
      }
      assert(shown?.title === 'Sertifikat Anda segera berakhir' && shown.body.includes('first_aid'), `the push: ${JSON.stringify(shown)}`);
      noPageErrors(page);
      await context.close();
    }],

    ['trainer: authors and publishes a course, publishes a new version without moving learners, records an external certificate with the contract body and revokes it', async ({ browser, server }) => {
      const trainer = server.user(phone(), 'pelatih-rahasia', 'Tuti Pelatih', ['trainer']);
      const learner = server.user(phone(), 'relawan-rahasia', 'Lina Relawan', ['volunteer']);
      const newcomer = server.user(phone(), 'relawan-rahasia', 'Nina Baru', ['volunteer']);
      const { context, page } = await newPage(browser, server.base);
      await page.goto('/trainer/');
      await signIn(page, trainer);
      await page.waitForSelector('#console:not([hidden])');
      await page.click('#new-course');
      await page.waitForSelector('#editor:not([hidden])');
      // Published empty: the server's field errors stand beside the fields.
      await page.click('#publish');
      await page.waitForSelector('.field-error[data-for="title"]');
      assert(await page.getAttribute('[data-field="title"]', 'aria-invalid') === 'true', 'the title is marked');
      assert(await page.locator('.field-error[data-for="modules[0].quizzes[0].questions[0].prompt"]').count() === 1, 'so is the question');
      await screenshot(page, 'trainer-field-errors');

      await page.fill('[data-field="title"]', 'Pertolongan Pertama Dasar');
      await page.selectOption('[data-field="certification"]', 'first_aid');
      await page.fill('[data-field="modules[0].title"]', 'Luka dan perdarahan');
      await page.fill('[data-field="modules[0].lessons[0].title"]', 'Tekan langsung');
      await page.fill('[data-field="modules[0].lessons[0].body_md"]', 'Tekan luka dengan kain bersih **10 menit**.');
      await page.fill('[data-field="modules[0].quizzes[0].title"]', 'Kuis perdarahan');
      await page.fill('[data-field="modules[0].quizzes[0].questions[0].prompt"]', 'Berapa lama menekan luka?');
      await page.fill('[data-field="modules[0].quizzes[0].questions[0].options[0].text"]', 'Minimal 10 menit');
      await page.fill('[data-field="modules[0].quizzes[0].questions[0].options[1].text"]', 'Sepuluh detik');
      await page.fill('[data-field="modules[0].quizzes[0].questions[0].explanation"]', 'Darah butuh waktu untuk membeku.');
      await page.click('[data-add-question]');
      await page.fill('[data-field="modules[0].quizzes[0].questions[1].prompt"]', 'Benda menancap?');
      await page.fill('[data-field="modules[0].quizzes[0].questions[1].options[0].text"]', 'Jangan dicabut');
      await page.fill('[data-field="modules[0].quizzes[0].questions[1].options[1].text"]', 'Cabut segera');
      await page.fill('[data-field="modules[0].quizzes[0].draw_count"]', '1');
      await page.click('#publish');
      await page.waitForFunction(() => document.querySelector('#course-message')?.textContent.includes('versi 1'));
      await screenshot(page, 'trainer-published');
      const courses = await apiCall(server.base, learner, 'GET', '/v1/lms/courses');
      const v1 = courses.json.find((c) => c.title === 'Pertolongan Pertama Dasar');
      assert(v1 && v1.modules[0].quizzes[0].draw_count === 1 && v1.modules[0].quizzes[0].questions.length === 2, `published with its bank: ${JSON.stringify(v1)}`);
      assert((await apiCall(server.base, learner, 'POST', `/v1/lms/courses/${v1.id}/enroll`)).status === 201, 'a learner starts version 1');

      // Version 2, edited from the published definition.
      // The editor still shows version 1 as authored: wait until Edit has loaded the published
      // definition and drawn the form again, or the title typed next would be drawn over.
      const authored = await page.$('[data-field="title"]');
      await page.click(`[data-edit="${v1.id}"]`);
      await page.waitForFunction((old) => document.querySelector('[data-field="title"]') !== old, authored);
      await page.waitForFunction(() => document.querySelector('[data-field="title"]')?.value === 'Pertolongan Pertama Dasar');
      assert(await page.isChecked('[data-field="modules[0].quizzes[0].questions[0].options[0].correct"]'), 'the correct option comes back to the trainer');
      await page.fill('[data-field="title"]', 'Pertolongan Pertama Dasar (2027)');
      await page.click('#publish');
      await page.waitForFunction(() => document.querySelector('#course-message')?.textContent.includes('versi 2'));
      const mine = await apiCall(server.base, learner, 'GET', '/v1/lms/enrollments/me');
      assert(mine.json[0].course_id === v1.id && mine.json[0].newest_version === 2, `the learner stays on version 1: ${JSON.stringify(mine.json)}`);
      await page.click('#courses tr:has-text("(2027)") [data-learners]');
      await page.waitForSelector(`.learner-table[data-version="1"] [data-learner="${learner.id}"]`);
      assert((await page.textContent('.learner-table[data-version="1"]')).includes('Lina Relawan'), 'the learner is listed under version 1');

      // A certificate earned elsewhere, for someone who never opened the LMS: the contract's body.
      await page.fill('#ext-user', 'bukan-id');
      await page.click('#external-form button[type=submit]');
      await page.waitForSelector('.field-error[data-for="user_id"]');
      await page.fill('#ext-user', newcomer.id);
      await page.selectOption('#ext-cert', 'bls');
      await page.fill('#ext-issued', '2026-03-01');
      await page.fill('#ext-evidence', 'Sertifikat BLS RS Cipto 88/2026');
      const posted = page.waitForRequest((r) => r.url().endsWith('/v1/lms/certificates') && r.method() === 'POST' && r.postDataJSON().user_id === newcomer.id);
      await page.click('#external-form button[type=submit]');
      const body = (await posted).postDataJSON();
      assert(JSON.stringify(Object.keys(body).sort()) === JSON.stringify(['certification', 'evidence', 'issued_at', 'user_id']), `exactly the contract's fields: ${JSON.stringify(body)}`);
      await page.waitForFunction(() => document.querySelector('#external-message.ok')?.textContent.includes('Nina Baru'));
      assert(await page.locator('.field-error').count() === 0, 'the errors are gone');
      await screenshot(page, 'trainer-external-certificate');

      // Revoked with a reason (a reason is required).
      await page.fill('#revoke-user', newcomer.id);
      await page.click('#revoke-find button[type=submit]');
      await page.click('#revoke-list form button[type=submit]');
      await page.waitForSelector('#revoke-list .field-error[data-for="reason"]');
      await page.fill('#revoke-list input[name=reason]', 'Kartu palsu');
      await page.click('#revoke-list form button[type=submit]');
      await page.waitForFunction(() => document.querySelector('#revoke-list .badge')?.textContent === 'Dicabut');
      const certificates = await apiCall(server.base, trainer, 'GET', `/v1/lms/users/${newcomer.id}/certificates`);
      assert(certificates.json[0].revoked_reason === 'Kartu palsu', 'revoked with its reason');
      await page.click('button[data-lang="en"]');
      assert((await page.textContent('#external-title')) === 'Record a certificate earned elsewhere', 'the console speaks English too');
      noPageErrors(page);
      await context.close();
    }],

    ['admin: finds an account and sets roles, creates and rotates an OAuth client, registers and rotates an MQTT device, changes a kind\'s waves with the field error shown', async ({ browser, server }) => {
      const admin = server.user(phone(), 'admin-rahasia-1', 'Ayu Admin', ['admin']);
      const citizen = server.user(phone(), 'warga-rahasia', 'Bambang Warga');
      const { context, page } = await newPage(browser, server.base);
      await page.goto('/admin/');
      await signIn(page, admin);
      await page.waitForSelector('#console:not([hidden])');

      await page.fill('#q', 'x');
      await page.click('#search-form button[type=submit]');
      await page.waitForSelector('.field-error[data-for="q"]');
      await page.fill('#q', citizen.phone);
      await page.click('#search-form button[type=submit]');
      await page.waitForSelector(`[data-account="${citizen.id}"]`);
      await page.check(`[data-account="${citizen.id}"] input[value="volunteer"]`);
      await page.click(`[data-account="${citizen.id}"] button[type=submit]`);
      await page.waitForSelector(`[data-account-message="${citizen.id}"].ok`);
      assert((await apiCall(server.base, { ...citizen }, 'GET', '/v1/auth/me')).json.roles.includes('volunteer'), 'the role is stored');
      await page.click(`[data-block="${citizen.id}"]`);
      await page.waitForSelector(`[data-account-message="${citizen.id}"].ok`);
      const blocked = await apiCall(server.base, { phone: citizen.phone, password: citizen.password }, 'GET', '/v1/auth/me');
      assert(blocked.status !== 200, `a blocked account cannot sign in again (${blocked.status})`);

      // An OAuth client for a hospital: a name is required (field error), then created, rotated.
      await page.check('#client-scopes input[value="system/Encounter.read"]');
      await page.click('#client-form button[type=submit]');
      await page.waitForSelector('.field-error[data-for="name"]');
      await page.fill('#client-name', 'RSUD Tarakan');
      await page.click('#client-form button[type=submit]');
      await page.waitForSelector('#clients-message.ok');
      const clientId = await page.getAttribute('#clients-message', 'data-client-id');
      const secret = await page.getAttribute('#clients-message', 'data-secret');
      const form = (s) => new URLSearchParams({ grant_type: 'client_credentials', client_id: clientId, client_secret: s });
      const token = await fetch(`${server.base}/v1/auth/token`, { method: 'POST', body: form(secret) });
      assert(token.status === 200, 'the secret works');
      await page.click(`[data-rotate="${clientId}"]`);
      await page.waitForFunction((old) => document.querySelector('#clients-message').dataset.secret !== old, secret);
      const stale = await fetch(`${server.base}/v1/auth/token`, { method: 'POST', body: form(secret) });
      assert(stale.status === 401, 'the old secret stops working');
      await screenshot(page, 'admin-clients');

      await page.fill('#device-label', 'Tombol pos ronda');
      await page.click('#device-form button[type=submit]');
      await page.waitForSelector('#devices [data-device]');
      const first = await page.getAttribute('#devices-message', 'data-username');
      await page.click('#devices [data-rotate-device]');
      await page.waitForFunction((old) => document.querySelector('#devices-message').dataset.username !== old, first);
      assert(await page.locator('#devices [data-device]').count() === 1, 'the old device is revoked, the new one listed');

      // The cardiac-arrest waves: a radius out of range is refused beside its field, then saved.
      const kind = page.locator('form[data-kind="cardiac_arrest"]');
      await kind.locator('[data-field="waves[0].radius_m"]').fill('5');
      await kind.locator('button[type=submit]').click();
      await page.waitForSelector('form[data-kind="cardiac_arrest"] .field-error[data-for="waves[0].radius_m"]');
      assert((await page.textContent('form[data-kind="cardiac_arrest"] .field-error')).includes('10 sampai 50000 meter'), 'in Indonesian');
      assert((await page.getAttribute('form[data-kind="cardiac_arrest"] .field-error', 'data-server')).includes('10 to 50000'), 'the server\'s words kept');
      await screenshot(page, 'admin-kind-error');
      await kind.locator('[data-field="waves[0].radius_m"]').fill('800');
      await kind.locator('[data-add-wave]').click();
      await page.locator('form[data-kind="cardiac_arrest"] button[type=submit]').click();
      await page.waitForSelector('form[data-kind="cardiac_arrest"] [data-kind-message].ok');
      const kinds = await apiCall(server.base, admin, 'GET', '/v1/dispatch/kinds');
      const cardiac = kinds.json.find((k) => k.kind === 'cardiac_arrest');
      assert(cardiac.waves[0].radius_m === 800 && cardiac.waves.length >= 2, `waves stored: ${JSON.stringify(cardiac.waves)}`);
      await screenshot(page, 'admin-kinds');

      // The offer policy and the roles: a live-offer count out of range and a repeated role are
      // each named beside their field, in the server's words; then both are saved.
      await kind.locator('[data-field="policy.live_offers"]').fill('0');
      await kind.locator('[data-field="roles[1]"]').selectOption('cpr');
      await kind.locator('button[type=submit]').click();
      await page.waitForSelector('form[data-kind="cardiac_arrest"] .field-error[data-for="policy.live_offers"]');
      await page.waitForSelector('form[data-kind="cardiac_arrest"] .field-error[data-for="roles[1]"]');
      assert((await page.textContent('form[data-kind="cardiac_arrest"] .field-error[data-for="roles[1]"]')).includes('tidak boleh diulang'), 'the repeat is named');
      await screenshot(page, 'admin-kind-policy-error');
      await kind.screenshot({ path: join(SCREENSHOTS, 'admin-kind-policy-error-form.png') });
      await kind.locator('[data-field="policy.live_offers"]').fill('5');
      await kind.locator('[data-field="policy.max_alerted"]').fill('20');
      await kind.locator('[data-field="policy.replace_on_expiry"]').uncheck();
      await kind.locator('[data-field="roles[1]"]').selectOption('aed');
      await kind.locator('[data-field="roles[2]"]').selectOption('');
      await kind.locator('button[type=submit]').click();
      await page.waitForSelector('form[data-kind="cardiac_arrest"] [data-kind-message].ok');
      const policies = await apiCall(server.base, admin, 'GET', '/v1/dispatch/kinds');
      const saved = policies.json.find((k) => k.kind === 'cardiac_arrest');
      assert(saved.policy.live_offers === 5 && saved.policy.max_alerted === 20 && saved.policy.replace_on_decline === true && saved.policy.replace_on_expiry === false,
        `policy stored: ${JSON.stringify(saved.policy)}`);
      assert(JSON.stringify(saved.roles) === '["cpr","aed"]', `roles stored: ${JSON.stringify(saved.roles)}`);
      await page.click('button[data-lang="en"]');
      await page.waitForFunction(() => document.querySelector('form[data-kind="cardiac_arrest"]')?.textContent.includes('Offer policy'));
      await screenshot(page, 'admin-kind-policy-en');
      await page.click('button[data-lang="id"]');
      noPageErrors(page);
      await context.close();
    }],

    ['guidance: after a panic the citizen app links the guides for the kind, and they open offline, in both languages', async ({ browser, server }) => {
      server.cli(['guidance', 'load-builtin']);
      const citizen = server.user(phone(), 'warga-rahasia', 'Sri Warga');
      const { context, page } = await newPage(browser, server.base, { ...PHONE, permissions: ['geolocation'], geolocation: MONAS });
      await page.goto('/app/');
      await signIn(page, citizen);
      await page.waitForSelector('#location.ok');
      await page.evaluate(() => navigator.serviceWorker.ready);
      await page.check('input[name=kind][value=cardiac_arrest]');
      await page.click('#panic');
      await page.waitForSelector('#status-screen:not([hidden])');
      await page.waitForSelector('#guide:not([hidden]) [data-guide="cpr"]');
      assert((await page.textContent('#guide-list')).includes('RJP'), 'the CPR guide first');
      await screenshot(page, 'guidance-after-panic');
      await context.setOffline(true);
      await page.reload();
      await page.waitForSelector('#guide:not([hidden]) [data-guide="cpr"]');
      await page.click('[data-guide="cpr"]');
      await page.waitForSelector('#guide-page[data-slug="cpr"]');
      const text = await page.textContent('#guide-page');
      assert(text.includes('100–120') && text.includes('112'), `the guide opens offline: ${text.slice(0, 80)}`);
      assert(await page.locator('#guide-page script').count() === 0, 'no script');
      await screenshot(page, 'guidance-offline');
      await context.setOffline(false);
      await page.click('button[data-lang="en"]');
      await page.click('#guide-back');
      await page.waitForFunction(() => document.querySelector('#guide-list')?.textContent.includes('CPR: push hard'));
      await page.click('[data-guide="cpr"]');
      await page.waitForFunction(() => document.querySelector('#guide-page')?.textContent.includes('Push hard and fast'));
      await page.click('button[data-lang="id"]');
      const alertId = await page.evaluate(() => localStorage.getItem('kreki.app.alert'));
      await apiCall(server.base, citizen, 'POST', `/v1/alerts/${alertId}/cancel`, {});
      noPageErrors(page);
      await context.close();
    }],

    ['health worker: NIK with a privacy note; verified, not found, a field error, and pending while SATUSEHAT is down, retried', async ({ browser }) => {
      const bridged = await startKreki({ KREKI_SATUSEHAT__ENABLED: 'true', KREKI_SATUSEHAT__ENVIRONMENT: 'fake' });
      const down = await freePort();
      const unreachable = await startKreki({
        KREKI_SATUSEHAT__ENABLED: 'true', KREKI_SATUSEHAT__ENVIRONMENT: 'sandbox', KREKI_SATUSEHAT__BASE_URL: `http://127.0.0.1:${down}`,
        KREKI_SATUSEHAT__CLIENT_ID: 'kreki-test', KREKI_SATUSEHAT__CLIENT_SECRET: 'rahasia', KREKI_SATUSEHAT__ORG_ID: '10000004',
        KREKI_SATUSEHAT__LOCATION_ID: 'loc-1', KREKI_SATUSEHAT__RETRY_BASE_S: '1', KREKI_SATUSEHAT__POLL_MS: '200',
      });
      try {
        const nurse = bridged.user(phone(), 'relawan-rahasia', 'Sari Perawat', ['volunteer']);
        const other = bridged.user(phone(), 'relawan-rahasia', 'Budi Relawan', ['volunteer']);
        const { context, page } = await newPage(browser, bridged.base, PHONE);
        await page.goto('/volunteer/');
        await signIn(page, nurse);
        await page.click('#tab-health');
        assert((await page.textContent('#panel-health')).includes('NIK Anda hanya dikirim ke SATUSEHAT'), 'the privacy note comes first');
        await page.fill('#nik', '12345');
        await page.click('#practitioner-form button[type=submit]');
        await page.waitForSelector('.field-error[data-for="nik"]');
        await page.fill('#nik', '3171012345678901');
        await page.click('#practitioner-form button[type=submit]');
        await page.waitForSelector('#practitioner-result[data-status="verified"]');
        assert((await page.textContent('#practitioner-result')).includes('Terverifikasi'), 'verified');
        assert(await page.inputValue('#nik') === '', 'the NIK is not kept in the form');
        await screenshot(page, 'health-verified');
        await page.evaluate(() => localStorage.clear());
        await page.reload();
        await signIn(page, other);
        await page.click('#tab-health');
        await page.fill('#nik', '3171019999999999');
        await page.click('#practitioner-form button[type=submit]');
        await page.waitForSelector('#practitioner-result[data-status="not_found"]');
        await context.close();

        const pending = unreachable.user(phone(), 'relawan-rahasia', 'Rina Bidan', ['volunteer']);
        const second = await newPage(browser, unreachable.base, PHONE);
        await second.page.goto('/volunteer/');
        await signIn(second.page, pending);
        await second.page.click('#tab-health');
        await second.page.fill('#nik', '3171012345678901');
        await second.page.click('#practitioner-form button[type=submit]');
        await second.page.waitForSelector('#practitioner-result[data-status="unavailable"]');
        assert((await second.page.textContent('#practitioner-result')).includes('mencoba lagi otomatis'), 'pending, retried in the background');
        await second.page.waitForFunction(() => /Percobaan ke-[2-9]/.test(document.querySelector('#practitioner-result').textContent), null, { timeout: 15000 });
        await screenshot(second.page, 'health-pending');
        noPageErrors(second.page);
        await second.context.close();
      } finally {
        await bridged.stop();
        await unreachable.stop();
      }
    }],

    ['map: a PMTiles basemap served by kreki draws streets, and the dashboard opens fitted to the alerts and volunteers', async ({ browser }) => {
      const dir = mkdtempSync(join(tmpdir(), 'kreki-pmtiles-'));
      const file = join(dir, 'jakarta.pmtiles');
      const made = spawnSync('python3', [join(here, 'make_pmtiles.py'), file], { encoding: 'utf8' });
      assert(made.status === 0, `the test basemap is written: ${made.stderr}`);
      const mapped = await startKreki({ KREKI_WEB__BASEMAP_PMTILES: file });
      try {
        const coordinator = mapped.user(phone(), 'koordinator-rahasia', 'Kiki Koordinator', ['coordinator']);
        const volunteer = mapped.user(phone(), 'relawan-rahasia', 'Vino Relawan', ['volunteer']);
        const citizen = mapped.user(phone(), 'warga-rahasia', 'Cici Warga');
        await apiCall(mapped.base, volunteer, 'PUT', '/v1/volunteers/me/duty', { on_duty: true });
        await apiCall(mapped.base, volunteer, 'POST', '/v1/volunteers/me/location', { lat: -6.1800, lng: 106.8230, accuracy_m: 10 });
        await apiCall(mapped.base, citizen, 'POST', '/v1/alerts', { kind: 'other', location: { lat: -6.1754, lng: 106.8272, accuracy_m: 10 } }, { 'idempotency-key': crypto.randomUUID() });
        const { context, page } = await newPage(browser, mapped.base);
        const ranges = [];
        page.on('response', (response) => {
          if (response.url().endsWith('/web/basemap.pmtiles')) ranges.push(response.status());
        });
        await page.goto('/dashboard/');
        await signIn(page, coordinator);
        await page.waitForSelector('#map[data-basemap="pmtiles"]');
        await page.waitForSelector('#map[data-fitted]');
        // The tiles are painted on canvases; roads and land differ from the sea's colour.
        await page.waitForFunction(() => [...document.querySelectorAll('#map canvas')].some((canvas) => {
          const context = canvas.getContext('2d');
          if (!context || canvas.width === 0) return false;
          const data = context.getImageData(0, 0, canvas.width, canvas.height).data;
          const colours = new Set();
          for (let i = 0; i < data.length; i += 4 * 97) colours.add(`${data[i]},${data[i + 1]},${data[i + 2]}`);
          return colours.size >= 3;
        }), null, { timeout: 15000 });
        assert(ranges.length > 0 && ranges.every((status) => status === 206), `read by range requests: ${ranges}`);
        const zoom = Number(await page.getAttribute('#map', 'data-zoom'));
        assert(zoom >= 13, `fitted close to the alert and the volunteer, not the country (zoom ${zoom})`);
        assert(await page.getAttribute('#map', 'data-fitted') === '2', 'one alert and one volunteer framed');
        assert((await page.textContent('.leaflet-control-attribution')).includes('Protomaps'), 'the data is credited');
        await page.waitForTimeout(300);
        await screenshot(page, 'dashboard-pmtiles');
        noPageErrors(page);
        await context.close();
      } finally {
        await mapped.stop();
        rmSync(dir, { recursive: true, force: true });
      }
    }],
  ];
}
