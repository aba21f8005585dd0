// The REST client: JSON in and out, the access token on every call, one refresh (rotating the
// refresh token) when a call answers 401, and the platform's error bodies as ApiError.

/**
 * @typedef {{access_token: string, refresh_token: string, expires_in: number,
 *   refresh_expires_in?: number, user_id?: string, org_id?: string, role?: string}} TokenPair
 * @typedef {{access: string, refresh: string, expiresAt: number, orgId?: string, userId?: string,
 *   role?: string}} Session
 * @typedef {{ get(): Session | null, set(session: Session | null): void }} TokenStore
 * @typedef {{field: string, message: string}} FieldError
 * @typedef {{method?: string, body?: unknown, query?: Record<string, unknown>, auth?: boolean,
 *   signal?: AbortSignal}} RequestOptions
 */

/** An answer other than 2xx, or no answer at all (status 0). */
export class ApiError extends Error {
  /**
   * @param {number} status
   * @param {string} code
   * @param {string} message
   * @param {{fields?: FieldError[], requestId?: string | null, retryAfter?: number | null}} [extra]
   */
  constructor(status, code, message, extra = {}) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    /** @type {FieldError[]} */
    this.fields = extra.fields ?? [];
    this.requestId = extra.requestId ?? null;
    this.retryAfter = extra.retryAfter ?? null;
  }
}

const FALLBACK_MESSAGES = /** @type {Record<number, string>} */ ({
  400: 'The request was not understood.',
  401: 'Please log in again.',
  402: 'Your balance is too low for this. Top up to continue.',
  403: 'You do not have permission to do this.',
  404: 'Not found.',
  409: 'This conflicts with the current state; reload and try again.',
  413: 'That is too large.',
  422: 'Some fields are not valid.',
  429: 'Too many requests; wait a moment and try again.',
  502: 'A service failed to answer. Try again.',
  503: 'The service is unavailable. Try again shortly.',
  504: 'The service took too long to answer. Try again.',
});

/**
 * Turn an error answer's body into an ApiError. Understands `{"error": {"code", "message"}}`
 * (the platform's), `{"detail": [...]}` (validation errors naming fields), `{"detail": "..."}`,
 * and problem documents (`title`, `detail`).
 * @param {number} status
 * @param {unknown} body parsed JSON, or the text when it was not JSON, or null
 * @param {{requestId?: string | null, retryAfter?: number | null}} [extra]
 * @returns {ApiError}
 */
export function errorFromBody(status, body, extra = {}) {
  const fallback = FALLBACK_MESSAGES[status] ?? `The request failed (HTTP ${status}).`;
  if (body && typeof body === 'object') {
    const data = /** @type {Record<string, any>} */ (body);
    if (data.error && typeof data.error === 'object') {
      return new ApiError(status, String(data.error.code ?? 'error'), String(data.error.message || fallback), extra);
    }
    if (Array.isArray(data.detail)) {
      const fields = data.detail.map(fieldError);
      const message = fields.map((f) => (f.field ? `${f.field}: ${f.message}` : f.message)).join('; ') || fallback;
      return new ApiError(status, 'validation_error', message, { ...extra, fields });
    }
    if (typeof data.detail === 'string' || typeof data.title === 'string') {
      const message = [data.title, data.detail].filter((part) => typeof part === 'string' && part).join(': ');
      return new ApiError(status, String(data.code ?? data.type ?? 'error'), message || fallback, extra);
    }
  }
  if (typeof body === 'string' && body.trim() && body.length < 300 && !body.trim().startsWith('<')) {
    return new ApiError(status, 'error', body.trim(), extra);
  }
  return new ApiError(status, 'error', fallback, extra);
}

/**
 * @param {any} item one entry of a 422's `detail`
 * @returns {FieldError}
 */
function fieldError(item) {
  const location = Array.isArray(item?.loc) ? item.loc : [];
  const path = location[0] === 'body' || location[0] === 'query' || location[0] === 'path' ? location.slice(1) : location;
  let field = '';
  for (const part of path) field += typeof part === 'number' ? `[${part}]` : field ? `.${part}` : String(part);
  return { field, message: String(item?.msg ?? 'is not valid') };
}

/**
 * A query string from an object, leaving out empty values; an array repeats its key
 * (`{tag: ['a', 'b']}` → `?tag=a&tag=b`).
 * @param {Record<string, unknown> | undefined} query
 */
export function queryString(query) {
  if (!query) return '';
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    for (const item of Array.isArray(value) ? value : [value]) {
      if (item === undefined || item === null || item === '') continue;
      params.append(key, String(item));
    }
  }
  const text = params.toString();
  return text ? `?${text}` : '';
}

/**
 * A session from a token pair.
 * @param {TokenPair} pair
 * @param {number} now epoch milliseconds
 * @returns {Session}
 */
export function sessionFromPair(pair, now) {
  return {
    access: pair.access_token,
    refresh: pair.refresh_token,
    expiresAt: now + pair.expires_in * 1000,
    orgId: pair.org_id,
    userId: pair.user_id,
    role: pair.role,
  };
}

/** Tokens kept in localStorage, so that every tab shares one session. */
export class StorageTokenStore {
  /** @param {Storage} storage @param {string} [key] */
  constructor(storage, key = 'novitrac.session') {
    this.storage = storage;
    this.key = key;
  }

  /** @returns {Session | null} */
  get() {
    try {
      const text = this.storage.getItem(this.key);
      return text ? JSON.parse(text) : null;
    } catch {
      return null;
    }
  }

  /** @param {Session | null} session */
  set(session) {
    if (session) this.storage.setItem(this.key, JSON.stringify(session));
    else this.storage.removeItem(this.key);
  }
}

/** Tokens in memory (tests, or a browser without storage). */
export class MemoryTokenStore {
  /** @param {Session | null} [session] */
  constructor(session = null) {
    /** @type {Session | null} */
    this.session = session;
  }

  get() {
    return this.session;
  }

  /** @param {Session | null} session */
  set(session) {
    this.session = session;
  }
}

/**
 * @typedef {object} ApiOptions
 * @property {typeof fetch} fetch
 * @property {TokenStore} tokens
 * @property {string} [baseUrl] `''` for the page's own origin
 * @property {() => number} [now]
 * @property {(name: string, task: () => Promise<unknown>) => Promise<unknown>} [lock]
 *   runs `task` alone across the browser's tabs (navigator.locks), so two tabs never spend the
 *   same refresh token (which would revoke the session)
 * @property {() => void} [onSessionEnded] the session is gone (logged out, or refresh refused)
 */

export class Api {
  /** @param {ApiOptions} options */
  constructor(options) {
    this.fetchImpl = options.fetch;
    this.tokens = options.tokens;
    this.baseUrl = options.baseUrl ?? '';
    this.now = options.now ?? (() => Date.now());
    this.lock = options.lock ?? ((_name, task) => task());
    this.onSessionEnded = options.onSessionEnded ?? (() => {});
    /** @type {Promise<Session | null> | null} */
    this.refreshing = null;
    /** @type {string | null} the refresh token the pending refresh spends */
    this.refreshingFor = null;
    /** @type {Promise<unknown>} refreshes in this tab, one after another */
    this.queue = Promise.resolve();
    /** Bumped whenever the session is replaced or removed here (login, switch, logout, ended). */
    this.epoch = 0;
  }

  /**
   * A session to send a call with when `session` is about to expire: the refreshed one; the old
   * one while its access token is still valid when the refresh cannot be made now (5xx, offline);
   * else that refresh's error. Null once the session is gone.
   * @param {Session} session
   * @returns {Promise<Session | null>}
   */
  async renewBefore(session) {
    try {
      return await this.refresh(session);
    } catch (error) {
      if (session.expiresAt > this.now() && this.tokens.get()?.refresh === session.refresh) return session;
      throw error;
    }
  }

  /** Whether there is a session (it may still turn out to be expired). */
  get signedIn() {
    return this.tokens.get() !== null;
  }

  /**
   * Call the API. Resolves with the parsed JSON body (null for 204); rejects with ApiError.
   * @param {string} path `/v1/...`
   * @param {RequestOptions} [options]
   * @returns {Promise<any>}
   */
  async request(path, options = {}) {
    const auth = options.auth ?? true;
    let session = auth ? this.tokens.get() : null;
    if (auth && session && session.expiresAt - this.now() < 10_000) session = await this.renewBefore(session);
    let response = await this.send(path, options, session);
    if (response.status === 401 && auth && session) {
      const refused = await this.failure(response);
      // A refresh that cannot be made now (5xx, offline) fails the call with that error, not
      // with "Please log in again".
      const renewed = await this.refresh(session);
      if (!renewed) throw refused;
      response = await this.send(path, options, renewed);
      if (response.status === 401) {
        this.endSession(renewed);
      }
    }
    if (!response.ok) throw await this.failure(response);
    if (response.status === 204) return null;
    const text = await response.text();
    if (!text) return null;
    try {
      return JSON.parse(text);
    } catch {
      return text;
    }
  }

  /** @param {string} path @param {RequestOptions} [options] */
  get(path, options = {}) {
    return this.request(path, { ...options, method: 'GET' });
  }

  /** @param {string} path @param {unknown} [body] @param {RequestOptions} [options] */
  post(path, body, options = {}) {
    return this.request(path, { ...options, method: 'POST', body });
  }

  /** @param {string} path @param {unknown} body */
  patch(path, body) {
    return this.request(path, { method: 'PATCH', body });
  }

  /** @param {string} path @param {unknown} body */
  put(path, body) {
    return this.request(path, { method: 'PUT', body });
  }

  /** @param {string} path */
  delete(path) {
    return this.request(path, { method: 'DELETE' });
  }

  /**
   * @param {string} path
   * @param {RequestOptions} options
   * @param {Session | null} session
   * @returns {Promise<Response>}
   */
  async send(path, options, session) {
    /** @type {Record<string, string>} */
    const headers = { accept: 'application/json' };
    if (options.body !== undefined) headers['content-type'] = 'application/json';
    if (session) headers.authorization = `Bearer ${session.access}`;
    try {
      return await this.fetchImpl(this.baseUrl + path + queryString(options.query), {
        method: options.method ?? 'GET',
        headers,
        body: options.body === undefined ? undefined : JSON.stringify(options.body),
        signal: options.signal,
        credentials: 'omit',
      });
    } catch (error) {
      if (/** @type {any} */ (error)?.name === 'AbortError') throw error;
      throw new ApiError(0, 'network', 'Cannot reach Novitrac. Check your connection and try again.');
    }
  }

  /** @param {Response} response */
  async failure(response) {
    const text = await response.text().catch(() => '');
    let body = /** @type {unknown} */ (text || null);
    try {
      body = text ? JSON.parse(text) : null;
    } catch {
      // Not JSON: keep the text.
    }
    const retry = response.headers.get('retry-after');
    return errorFromBody(response.status, body, {
      requestId: response.headers.get('x-request-id'),
      retryAfter: retry && /^\d+$/.test(retry) ? Number(retry) : null,
    });
  }

  /**
   * A new access token for `stale` (the session whose token was refused or is expiring). Calls
   * made together share one refresh; a refresh another tab made meanwhile is used as it is.
   * Resolves with null when the session is gone (refused, logged out); rejects with the ApiError
   * when the refresh cannot be made now (5xx, offline), the session being kept.
   * @param {Session} stale
   * @returns {Promise<Session | null>}
   */
  refresh(stale) {
    if (!this.refreshing || this.refreshingFor !== stale.refresh) {
      const spent = stale.refresh;
      const promise = /** @type {Promise<Session | null>} */ (
        this.locked(() => this.refreshNow(stale))
      ).finally(() => {
        if (this.refreshing === promise) {
          this.refreshing = null;
          this.refreshingFor = null;
        }
      });
      this.refreshing = promise;
      this.refreshingFor = spent;
    }
    return this.refreshing;
  }

  /**
   * Run `task` under the `novitrac-refresh` lock: across tabs (navigator.locks when given) and,
   * in any case, one at a time in this tab.
   * @template T
   * @param {() => Promise<T>} task
   * @returns {Promise<T>}
   */
  locked(task) {
    const run = this.queue.then(() => /** @type {Promise<T>} */ (this.lock('novitrac-refresh', task)));
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** @param {Session} stale */
  async refreshNow(stale) {
    const current = this.tokens.get();
    if (!current) return null;
    if (current.refresh !== stale.refresh || current.access !== stale.access) {
      // Another tab (or call) has refreshed already, or the session changed (login, switch).
      if (current.expiresAt - this.now() > 10_000) return current;
    }
    const spent = current.refresh;
    const epoch = this.epoch;
    // Whether the session spent is still the one stored (no logout, login or switch meanwhile).
    const unchanged = () => this.epoch === epoch && this.tokens.get()?.refresh === spent;
    let response;
    try {
      response = await this.send('/v1/auth/refresh', { method: 'POST', body: { refresh_token: spent } }, null);
    } catch (error) {
      if (!unchanged()) return this.tokens.get();
      throw error; // Offline: keep the session, the call fails with this error.
    }
    if (!response.ok) {
      if (!unchanged()) return this.tokens.get();
      if (response.status === 400 || response.status === 401 || response.status === 403) {
        this.endSession(current);
        return null;
      }
      throw await this.failure(response); // 5xx: keep the session.
    }
    const session = sessionFromPair(await response.json(), this.now());
    if (!unchanged()) {
      // Logged out, or another session started meanwhile: that one stays. The pair just
      // made is of no use: revoke it (best effort).
      void this.send('/v1/auth/logout', { method: 'POST', body: { refresh_token: session.refresh } }, null).catch(() => null);
      return this.tokens.get();
    }
    this.tokens.set(session);
    return session;
  }

  /**
   * An access token valid for a while yet (for the live socket), or null when signed out. Rejects
   * when the token cannot be renewed now (5xx, offline) and the current one has expired.
   */
  async accessToken() {
    const session = this.tokens.get();
    if (!session) return null;
    if (session.expiresAt - this.now() > 30_000) return session.access;
    const renewed = await this.renewBefore(session);
    return renewed ? renewed.access : null;
  }

  /**
   * Start a session from a token pair (login, verify, switch, invitation). A refresh still on its
   * way for the previous session does not overwrite it (see refreshNow).
   * @param {TokenPair} pair
   */
  start(pair) {
    const session = sessionFromPair(pair, this.now());
    this.epoch += 1;
    this.tokens.set(session);
    return session;
  }

  /**
   * Log out: forget the session and revoke its refresh token (best effort). A refresh still on its
   * way does not bring the session back (see refreshNow).
   */
  async logout() {
    const session = this.tokens.get();
    this.epoch += 1;
    this.tokens.set(null);
    if (session) {
      await this.send('/v1/auth/logout', { method: 'POST', body: { refresh_token: session.refresh } }, null).catch(() => null);
    }
  }

  /**
   * End the session after the API refused it; only `expected` when given (a newer session that
   * was started meanwhile is left alone).
   * @param {Session} [expected]
   */
  endSession(expected) {
    const current = this.tokens.get();
    if (current === null) return;
    if (expected && current.refresh !== expected.refresh) return;
    this.epoch += 1;
    this.tokens.set(null);
    this.onSessionEnded();
  }
}
