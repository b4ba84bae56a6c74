// The volunteer app's service worker: keeps the app shell so it opens without a network, and
// always prefers the network for it (so a new release shows at once). API calls (/v1/) are never
// cached or answered from here: an accept must reach the server or visibly fail.
const CACHE = 'kreki-volunteer-v1';
const SHELL = [
  '/volunteer/', '/volunteer/volunteer.js', '/volunteer/manifest.webmanifest',
  '/web/shared/kreki.css', '/web/shared/i18n.js', '/web/shared/api.js', '/web/shared/live.js', '/web/shared/icon.svg',
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
