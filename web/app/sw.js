// The citizen app's service worker: keeps the app shell so it opens without a network, and
// always prefers the network for it (so a new release shows at once). API calls (/v1/) are never
// cached or answered from here: a panic must reach the server or visibly fail and be retried.
// A Web Push becomes a notification about the citizen's call, or an area broadcast's text (a
// warning where the citizen is); tapping it opens (or focuses) the app, which fetches the news
// with its own token.
const CACHE = 'kreki-app-v4';
const SHELL = [
  '/app/', '/app/app.js', '/app/manifest.webmanifest',
  '/web/shared/kreki.css', '/web/shared/i18n.js', '/web/shared/api.js', '/web/shared/live.js', '/web/shared/push.js', '/web/shared/icon.svg',
  '/web/shared/guidance.js', '/web/shared/forms.js', '/web/shared/field-errors.js', '/app/aeds.js',
];

self.addEventListener('install', (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener('activate', (event) => {
  event.waitUntil(caches.keys()
    .then((keys) => Promise.all(keys.filter((key) => key.startsWith('kreki-app-') && key !== CACHE).map((key) => caches.delete(key))))
    .then(() => self.clients.claim()));
});

self.addEventListener('fetch', (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== 'GET' || url.origin !== location.origin || !SHELL.includes(url.pathname === '/app' ? '/app/' : url.pathname)) return;
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

self.addEventListener('push', (event) => {
  let data = {};
  try {
    data = event.data ? event.data.json() : {};
  } catch {
    data = {};
  }
  const en = (self.navigator.language || 'id').toLowerCase().startsWith('en');
  if (data.type === 'broadcast') {
    // An area broadcast (a warning where the citizen is): its text in the phone's language.
    const area = data.area_desc ? `: ${data.area_desc}` : '';
    event.waitUntil(self.registration.showNotification(en ? `Warning${area}` : `Peringatan${area}`, {
      body: (en ? data.text_en : data.text_id) || data.text_id || data.text_en || '',
      tag: data.broadcast_id ? `broadcast-${data.broadcast_id}` : 'kreki-broadcast',
      requireInteraction: data.urgent === true || data.urgent === 'true',
      icon: '/web/shared/icon.svg',
      data: { url: '/app/' },
    }));
    return;
  }
  const title = data.title || 'KREKI';
  const body = data.body || (en ? 'News about your emergency call. Open the app to see it.' : 'Ada kabar tentang panggilan darurat Anda. Buka aplikasi untuk melihatnya.');
  event.waitUntil(self.registration.showNotification(title, {
    body,
    tag: data.alert_id ? `alert-${data.alert_id}` : 'kreki-alert',
    icon: '/web/shared/icon.svg',
    data: { url: '/app/' },
  }));
});

self.addEventListener('notificationclick', (event) => {
  event.notification.close();
  event.waitUntil(self.clients.matchAll({ type: 'window', includeUncontrolled: true }).then((windows) => {
    const open = windows.find((client) => new URL(client.url).pathname.startsWith('/app/'));
    return open ? open.focus() : self.clients.openWindow(new URL('/app/', self.location.origin).href);
  }));
});
