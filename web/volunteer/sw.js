// The volunteer app's service worker: keeps the app shell so it opens without a network, and
// always prefers the network for it (so a new release shows at once). API calls (/v1/) are never
// cached or answered from here: an accept must reach the server or visibly fail.
// A Web Push of an offer (the kind and the distance only; see realtime's PushContent) becomes a
// notification; tapping it opens (or focuses) the app, which fetches the offer with its own token.
// An area broadcast (a warning for where the volunteer is; realtime's BroadcastContent) shows its
// text in the phone's language.
const CACHE = 'kreki-volunteer-v4';
const SHELL = [
  '/volunteer/', '/volunteer/volunteer.js', '/volunteer/manifest.webmanifest',
  '/web/shared/kreki.css', '/web/shared/i18n.js', '/web/shared/api.js', '/web/shared/live.js', '/web/shared/push.js', '/web/shared/icon.svg',
  '/volunteer/training.js', '/volunteer/practitioner.js', '/web/shared/forms.js', '/web/shared/field-errors.js',
  '/volunteer/team.js', '/volunteer/checkin.js', '/web/shared/map.js', '/web/vendor/leaflet.js', '/web/vendor/leaflet.css',
];

self.addEventListener('install', (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener('activate', (event) => {
  event.waitUntil(caches.keys()
    .then((keys) => Promise.all(keys.filter((key) => key.startsWith('kreki-volunteer-') && key !== CACHE).map((key) => caches.delete(key))))
    .then(() => self.clients.claim()));
});

self.addEventListener('fetch', (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== 'GET' || url.origin !== location.origin || !SHELL.includes(url.pathname === '/volunteer' ? '/volunteer/' : url.pathname)) return;
  event.respondWith(fetch(event.request)
    .then((response) => {
      if (response.ok) {
        const copy = response.clone();
        caches.open(CACHE).then((cache) => cache.put(event.request, copy));
      }
      return response;
    })
    .catch(() => caches.match(event.request, { ignoreSearch: true })));
});

/** Kind names for notifications; the worker has no page to ask for the chosen language. */
const KINDS = {
  id: { medical: 'Medis', cardiac_arrest: 'Henti jantung', accident: 'Kecelakaan', fire: 'Kebakaran', disaster: 'Bencana', security: 'Keamanan', other: 'Lainnya' },
  en: { medical: 'Medical', cardiac_arrest: 'Cardiac arrest', accident: 'Accident', fire: 'Fire', disaster: 'Disaster', security: 'Security', other: 'Other' },
};

/** A reminder that a certificate expires soon (the LMS's `certificate.expiring`). */
function reminderNotification(data) {
  const lang = (self.navigator.language || 'id').toLowerCase().startsWith('en') ? 'en' : 'id';
  const days = Number(data.days_before);
  const title = lang === 'en' ? 'Your certificate expires soon' : 'Sertifikat Anda segera berakhir';
  const body = lang === 'en'
    ? `${data.certification ?? ''}: ${Number.isFinite(days) ? `within ${days} days` : 'soon'}. Take a refresher course to keep getting emergency calls.`
    : `${data.certification ?? ''}: ${Number.isFinite(days) ? `dalam ${days} hari` : 'segera'}. Ikuti kursus penyegaran agar tetap menerima panggilan darurat.`;
  return [title, {
    body,
    tag: data.certificate_id ? `certificate-${data.certificate_id}` : 'kreki-certificate',
    icon: '/web/shared/icon.svg',
    data: { url: '/volunteer/#certs' },
  }];
}

/** An area broadcast: its text in the phone's language (both are in the push). */
function broadcastNotification(data) {
  const lang = (self.navigator.language || 'id').toLowerCase().startsWith('en') ? 'en' : 'id';
  const urgent = data.urgent === true || data.urgent === 'true';
  const title = lang === 'en'
    ? `Warning${data.area_desc ? `: ${data.area_desc}` : ''}`
    : `Peringatan${data.area_desc ? `: ${data.area_desc}` : ''}`;
  const body = (lang === 'en' ? data.text_en : data.text_id) || data.text_id || data.text_en || '';
  return [title, {
    body,
    tag: data.broadcast_id ? `broadcast-${data.broadcast_id}` : 'kreki-broadcast',
    requireInteraction: urgent,
    icon: '/web/shared/icon.svg',
    vibrate: urgent ? [500, 200, 500] : undefined,
    data: { url: '/volunteer/' },
  }];
}

function offerNotification(data) {
  const lang = (self.navigator.language || 'id').toLowerCase().startsWith('en') ? 'en' : 'id';
  const kind = KINDS[lang][data.kind] ?? KINDS[lang].other;
  const m = Number(data.distance_m);
  const away = Number.isFinite(m) ? (m < 1000 ? `${Math.round(m)} m` : `${(m / 1000).toFixed(1)} km`) : '';
  // FCM's data values are strings, Web Push's are JSON: a drill is `true` or `"true"`.
  const drill = data.drill === true || data.drill === 'true';
  const title = drill
    ? (lang === 'en' ? `DRILL: ${kind} (practice)` : `LATIHAN: ${kind} (bukan darurat nyata)`)
    : (lang === 'en' ? `Emergency offer: ${kind}` : `Tawaran darurat: ${kind}`);
  const body = lang === 'en' ? `${away} from you. Open to accept or decline.` : `${away} dari Anda. Buka untuk menerima atau menolak.`;
  return [title, {
    body,
    tag: data.offer_id ? `offer-${data.offer_id}` : 'kreki-offer',
    renotify: true,
    requireInteraction: true,
    icon: '/web/shared/icon.svg',
    vibrate: [300, 100, 300],
    data: { url: '/volunteer/', offer_id: data.offer_id ?? null, alert_id: data.alert_id ?? null },
  }];
}

self.addEventListener('push', (event) => {
  let data = {};
  try {
    data = event.data ? event.data.json() : {};
  } catch {
    data = {};
  }
  const [title, options] = data.type === 'certificate.expiring' ? reminderNotification(data)
    : data.type === 'broadcast' ? broadcastNotification(data)
      : offerNotification(data);
  event.waitUntil(self.registration.showNotification(title, options));
});

self.addEventListener('notificationclick', (event) => {
  event.notification.close();
  const target = new URL(event.notification.data?.url ?? '/volunteer/', self.location.origin).href;
  event.waitUntil(self.clients.matchAll({ type: 'window', includeUncontrolled: true }).then((windows) => {
    const open = windows.find((client) => new URL(client.url).pathname.startsWith('/volunteer/'));
    return open ? open.focus() : self.clients.openWindow(target);
  }));
});
