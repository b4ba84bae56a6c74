// The HTTP side of the pages: sign-in, tokens (kept in localStorage per app, refreshed before they
// expire and once more on a 401), and JSON requests whose failures arrive as ApiError carrying the
// server's problem+json. Every path is the contract in docs/API.md.
import { t } from '/web/shared/i18n.js';

/** A failed request: `status` 0 means the network (or the server) could not be reached. */
export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || problem?.title || (status === 0 ? 'network' : `HTTP ${status}`));
    this.status = status;
    this.problem = problem ?? null;
  }

  /** True when trying again later may work (no network, 5xx, 408, 429). */
  get retryable() {
    return this.status === 0 || this.status >= 500 || this.status === 408 || this.status === 429;
  }
}

/** Seconds before expiry at which a token is refreshed ahead of use. */
const REFRESH_AHEAD_S = 30;

/** Longest any request may take, in milliseconds, before it counts as a network failure. */
const REQUEST_TIMEOUT_MS = 15000;

/** One signed-in user of one app (`dashboard`, `app` or `volunteer`). */
export class Api {
  constructor(app) {
    this.store = `kreki.${app}.session`;
    this.refreshing = null;
    this.onSignedOut = () => {};
  }

  /** The stored session `{access_token, refresh_token, expires_at_ms, user}` or null. */
  get session() {
    try {
      return JSON.parse(localStorage.getItem(this.store) || 'null');
    } catch {
      return null;
    }
  }

  set session(value) {
    if (value) localStorage.setItem(this.store, JSON.stringify(value));
    else localStorage.removeItem(this.store);
  }

  /** The signed-in user `{id, name, phone, roles}` or null. */
  get user() {
    return this.session?.user ?? null;
  }

  /** True when the signed-in user has `role` (admin counts as coordinator and trainer). */
  hasRole(role) {
    const roles = this.user?.roles ?? [];
    return roles.includes(role) || (roles.includes('admin') && ['coordinator', 'trainer'].includes(role));
  }

  /** Signs in with a phone or email and a password; fetches who that is. */
  async signIn(login, password) {
    const tokens = await this.request('POST', '/v1/auth/login', { body: { login, password }, auth: false });
    this.keep(tokens, null);
    const user = await this.request('GET', '/v1/auth/me');
    this.session = { ...this.session, user };
    return user;
  }

  /** Creates a citizen account, then signs in with it. */
  async register(phone, password, name) {
    await this.request('POST', '/v1/auth/register', { body: { phone, password, name }, auth: false });
    return this.signIn(phone, password);
  }

  /** Ends the session here and on the server (best effort: offline sign-out still forgets the tokens). */
  async signOut() {
    const refresh = this.session?.refresh_token;
    this.session = null;
    if (refresh) {
      try {
        await this.request('POST', '/v1/auth/logout', { body: { refresh_token: refresh }, auth: false });
      } catch {
        // The tokens are forgotten here either way; the refresh token expires on its own.
      }
    }
  }

  keep(tokens, user) {
    this.session = {
      access_token: tokens.access_token,
      refresh_token: tokens.refresh_token,
      expires_at_ms: Date.now() + (tokens.expires_in ?? 0) * 1000,
      user: user ?? this.session?.user ?? null,
    };
  }

  /** A valid access token, refreshed first when it is about to expire; null when signed out. */
  async token() {
    const session = this.session;
    if (!session) return null;
    if (Date.now() < session.expires_at_ms - REFRESH_AHEAD_S * 1000) return session.access_token;
    return this.refresh();
  }

  /** Trades the refresh token for a new pair, once at a time; signs out when it is refused. */
  refresh() {
    if (!this.refreshing) {
      this.refreshing = (async () => {
        const refresh = this.session?.refresh_token;
        if (!refresh) return null;
        try {
          const tokens = await this.request('POST', '/v1/auth/refresh', { body: { refresh_token: refresh }, auth: false });
          this.keep(tokens, null);
          return tokens.access_token;
        } catch (error) {
          if (error.status === 401 || error.status === 400 || error.status === 422) {
            this.session = null;
            this.onSignedOut();
            return null;
          }
          throw error;
        } finally {
          this.refreshing = null;
        }
      })();
    }
    return this.refreshing;
  }

  /**
   * Sends one request and answers its JSON (or null for an empty body).
   * Options: `body` (sent as JSON), `headers`, `auth` (default true).
   * Throws ApiError; a 401 is retried once after a refresh.
   */
  async request(method, path, { body, headers = {}, auth = true, retried = false } = {}) {
    const sent = { accept: 'application/json, application/problem+json', ...headers };
    if (body !== undefined) sent['content-type'] = 'application/json';
    if (auth) {
      const token = await this.token();
      if (!token) throw new ApiError(401, { title: 'Signed out' });
      sent.authorization = `Bearer ${token}`;
    }
    let response;
    try {
      response = await fetch(path, {
        method,
        headers: sent,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
        cache: 'no-store',
      });
    } catch {
      throw new ApiError(0, null);
    }
    const text = await response.text().catch(() => '');
    let json = null;
    if (text) {
      try {
        json = JSON.parse(text);
      } catch {
        json = null;
      }
    }
    if (response.status === 401 && auth && !retried && (await this.refresh())) {
      return this.request(method, path, { body, headers, auth, retried: true });
    }
    if (!response.ok) throw new ApiError(response.status, json);
    return json;
  }
}

/** Great-circle distance between two `{lat, lng}` points, in metres (haversine, ~0.5 % off). */
export function distanceM(a, b) {
  const rad = Math.PI / 180;
  const dLat = (b.lat - a.lat) * rad;
  const dLng = (b.lng - a.lng) * rad;
  const h = Math.sin(dLat / 2) ** 2 + Math.cos(a.lat * rad) * Math.cos(b.lat * rad) * Math.sin(dLng / 2) ** 2;
  return 2 * 6371008.8 * Math.asin(Math.min(1, Math.sqrt(h)));
}

/** Escapes text for use inside HTML. */
export function esc(value) {
  return String(value ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
}

/** A role's name in the page's language. */
function roleName(role) {
  return t(`role.${role}`);
}

/** Wires a sign-in form (`login`, `password` inputs) to `api`; calls `done(user)` on success. */
export function signInForm(form, api, { role, onError, done }) {
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const button = form.querySelector('button[type=submit]');
    button.disabled = true;
    try {
      const user = await api.signIn(String(data.get('login')).trim(), String(data.get('password')));
      if (role && !api.hasRole(role)) {
        await api.signOut();
        onError('common.error.role', { role: roleName(role) });
        return;
      }
      done(user);
    } catch (error) {
      if (error.status === 401 || error.status === 422) onError('common.error.signin');
      else if (error.status === 0) onError('common.error.network');
      else onError('common.error.generic', { detail: error.message });
    } finally {
      button.disabled = false;
    }
  });
}
