// Web Push for the PWAs: with the person's permission, subscribe this browser with the server's
// VAPID public key (GET /v1/devices/vapid) and register the subscription for the signed-in user
// (POST /v1/devices, platform `web`), so offers reach a volunteer whose app is closed. The
// service worker of each app shows the notification and opens the app on click.
// Permission is asked only from a tap (the browser requires a user gesture, and asking at start is
// rude); a page opened later quietly renews a subscription that was allowed before.

const DEVICE = (app) => `kreki.${app}.push-device`;

/** Whether this browser can do Web Push at all. */
export function pushSupported() {
  return 'serviceWorker' in navigator && 'PushManager' in window && 'Notification' in window;
}

/** The browser's permission: `granted`, `denied`, `default`, or `unsupported`. */
export function pushPermission() {
  return pushSupported() ? Notification.permission : 'unsupported';
}

function bytesFromBase64Url(text) {
  const base64 = text.replaceAll('-', '+').replaceAll('_', '/').padEnd(Math.ceil(text.length / 4) * 4, '=');
  return Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
}

function sameKey(buffer, key) {
  if (!buffer) return false;
  const a = new Uint8Array(buffer);
  const b = bytesFromBase64Url(key);
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}

/**
 * Turns pushes on for `api`'s user in app `app` (`app` or `volunteer`). With `ask`, asks for
 * permission when not decided yet (call it from a tap); without, only renews what was allowed.
 * Answers `on`, `denied`, `default` (not asked), `unsupported`, `unavailable` (the server sends no
 * Web Push) or `failed` (the browser's push service could not be reached).
 */
export async function enablePush(api, app, { ask = false } = {}) {
  if (!pushSupported()) return 'unsupported';
  let permission = Notification.permission;
  if (permission === 'default' && ask) permission = await Notification.requestPermission();
  if (permission !== 'granted') return permission;
  let key;
  try {
    key = (await api.request('GET', '/v1/devices/vapid', { auth: false }))?.public_key;
  } catch (failure) {
    if (failure.status === 404) return 'unavailable';
    throw failure;
  }
  if (!key) return 'unavailable';
  const registration = await navigator.serviceWorker.ready;
  let subscription = await registration.pushManager.getSubscription();
  if (subscription && !sameKey(subscription.options?.applicationServerKey, key)) {
    // Made for another server key (the server's key changed): it can no longer be used.
    await subscription.unsubscribe().catch(() => {});
    subscription = null;
  }
  if (!subscription) {
    try {
      subscription = await registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: bytesFromBase64Url(key) });
    } catch {
      return 'failed';
    }
  }
  const device = await api.request('POST', '/v1/devices', { body: { platform: 'web', token: subscription.toJSON() } });
  if (device?.id) localStorage.setItem(DEVICE(app), device.id);
  return 'on';
}

/** Stops pushes to this browser for the signed-in user (at sign-out); best effort. */
export async function disablePush(api, app) {
  const id = localStorage.getItem(DEVICE(app));
  localStorage.removeItem(DEVICE(app));
  if (!id) return;
  try {
    await api.request('DELETE', `/v1/devices/${encodeURIComponent(id)}`);
  } catch {
    // The server forgets dead subscriptions on its own when a push bounces.
  }
}
