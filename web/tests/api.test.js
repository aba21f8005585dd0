import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Api, ApiError, MemoryTokenStore, errorFromBody, queryString } from '../src/api.js';

const NOW = 1_700_000_000_000;

/** A fetch that answers from a script of handlers and records what it was asked. */
function fakeFetch(handler) {
  const calls = [];
  const fetch = async (url, init) => {
    const call = { url, method: init.method, headers: init.headers, body: init.body ? JSON.parse(init.body) : undefined };
    calls.push(call);
    return handler(call, calls.length);
  };
  return { fetch, calls };
}

function json(status, body, headers = {}) {
  return new Response(body === undefined ? null : JSON.stringify(body), {
    status,
    headers: { 'content-type': 'application/json', ...headers },
  });
}

function session(access = 'old-access', refresh = 'old-refresh', expiresAt = NOW + 600_000) {
  return { access, refresh, expiresAt };
}

const PAIR = { access_token: 'new-access', refresh_token: 'new-refresh', expires_in: 900, refresh_expires_in: 86400, user_id: 'u', org_id: 'o', role: 'owner' };

test('a 401 refreshes the token once and retries the call with the new one', async () => {
  const tokens = new MemoryTokenStore(session());
  const { fetch, calls } = fakeFetch((call) => {
    if (call.url === '/v1/auth/refresh') return json(200, PAIR);
    if (call.headers.authorization === 'Bearer old-access') return json(401, { error: { code: 'unauthorized', message: 'expired' } });
    return json(200, { items: [], next_cursor: null });
  });
  const api = new Api({ fetch, tokens, now: () => NOW });
  const page = await api.get('/v1/calls', { query: { status: 'queued', cursor: null } });
  assert.deepEqual(page, { items: [], next_cursor: null });
  assert.deepEqual(calls.map((c) => c.url), ['/v1/calls?status=queued', '/v1/auth/refresh', '/v1/calls?status=queued']);
  assert.deepEqual(calls[1].body, { refresh_token: 'old-refresh' });
  assert.equal(calls[1].headers.authorization, undefined);
  assert.equal(calls[2].headers.authorization, 'Bearer new-access');
  assert.equal(tokens.get().refresh, 'new-refresh');
  assert.equal(tokens.get().expiresAt, NOW + 900_000);
});

test('calls refused together share one refresh (a refresh token is spent once)', async () => {
  const tokens = new MemoryTokenStore(session());
  let refreshes = 0;
  const { fetch } = fakeFetch(async (call) => {
    if (call.url === '/v1/auth/refresh') {
      refreshes += 1;
      await new Promise((resolve) => setTimeout(resolve, 5));
      return json(200, PAIR);
    }
    return call.headers.authorization === 'Bearer new-access' ? json(200, { ok: call.url }) : json(401, {});
  });
  const api = new Api({ fetch, tokens, now: () => NOW });
  const results = await Promise.all([api.get('/v1/agents'), api.get('/v1/numbers'), api.get('/v1/calls')]);
  assert.equal(refreshes, 1);
  assert.deepEqual(results.map((r) => r.ok), ['/v1/agents', '/v1/numbers', '/v1/calls']);
});

test('a refused refresh ends the session and the call fails with its own error', async () => {
  const tokens = new MemoryTokenStore(session());
  let ended = 0;
  const { fetch } = fakeFetch((call) => (call.url === '/v1/auth/refresh'
    ? json(401, { error: { code: 'unauthorized', message: 'refresh token reused' } })
    : json(401, { error: { code: 'unauthorized', message: 'authentication required' } })));
  const api = new Api({ fetch, tokens, now: () => NOW, onSessionEnded: () => { ended += 1; } });
  await assert.rejects(api.get('/v1/calls'), (error) => error instanceof ApiError && error.status === 401 && error.message === 'authentication required');
  assert.equal(ended, 1);
  assert.equal(tokens.get(), null);
});

test('a token another tab already refreshed is used without spending the refresh token', async () => {
  const stale = session();
  const tokens = new MemoryTokenStore(stale);
  const { fetch, calls } = fakeFetch((call) => (call.headers.authorization === 'Bearer other-tab' ? json(200, { ok: true }) : json(401, {})));
  const api = new Api({ fetch, tokens, now: () => NOW });
  // The other tab rotates the tokens while our first call is on its way.
  const original = api.send.bind(api);
  api.send = async (...args) => {
    const response = await original(...args);
    tokens.set(session('other-tab', 'other-refresh'));
    return response;
  };
  assert.deepEqual(await api.get('/v1/me'), { ok: true });
  assert.equal(calls.filter((c) => c.url === '/v1/auth/refresh').length, 0);
});

test('a token about to expire is refreshed before the call', async () => {
  const tokens = new MemoryTokenStore(session('old-access', 'old-refresh', NOW + 2_000));
  const { fetch, calls } = fakeFetch((call) => (call.url === '/v1/auth/refresh' ? json(200, PAIR) : json(200, { fine: true })));
  const api = new Api({ fetch, tokens, now: () => NOW });
  await api.get('/v1/auth/me');
  assert.deepEqual(calls.map((c) => c.url), ['/v1/auth/refresh', '/v1/auth/me']);
  assert.equal(calls[1].headers.authorization, 'Bearer new-access');
});

test('public calls carry no token and are not retried', async () => {
  const tokens = new MemoryTokenStore(session());
  const { fetch, calls } = fakeFetch(() => json(401, { error: { code: 'unauthorized', message: 'wrong email or password' } }));
  const api = new Api({ fetch, tokens, now: () => NOW });
  await assert.rejects(api.post('/v1/auth/login', { email: 'a@b.c', password: 'x' }, { auth: false }), /wrong email or password/);
  assert.equal(calls.length, 1);
  assert.equal(calls[0].headers.authorization, undefined);
  assert.equal(calls[0].headers['content-type'], 'application/json');
});

test('204 resolves with null; the body is sent as JSON', async () => {
  const { fetch, calls } = fakeFetch(() => new Response(null, { status: 204 }));
  const api = new Api({ fetch, tokens: new MemoryTokenStore(session()), now: () => NOW });
  assert.equal(await api.post('/v1/auth/password/change', { current_password: 'a', new_password: 'b' }), null);
  assert.equal(calls[0].method, 'POST');
  assert.deepEqual(calls[0].body, { current_password: 'a', new_password: 'b' });
});

test('error answers become ApiError with the request id and Retry-After', async () => {
  const { fetch } = fakeFetch(() => json(429, { error: { code: 'rate_limited', message: 'slow down' } }, { 'x-request-id': 'req-1', 'retry-after': '7' }));
  const api = new Api({ fetch, tokens: new MemoryTokenStore(session()), now: () => NOW });
  await assert.rejects(api.get('/v1/calls'), (error) => {
    assert.ok(error instanceof ApiError);
    assert.equal(error.status, 429);
    assert.equal(error.code, 'rate_limited');
    assert.equal(error.message, 'slow down');
    assert.equal(error.requestId, 'req-1');
    assert.equal(error.retryAfter, 7);
    return true;
  });
});

test('no answer at all is a network ApiError', async () => {
  const api = new Api({ fetch: async () => { throw new TypeError('Failed to fetch'); }, tokens: new MemoryTokenStore(), now: () => NOW });
  await assert.rejects(api.get('/v1/calls', { auth: false }), (error) => error instanceof ApiError && error.status === 0 && error.code === 'network');
});

test('logout revokes the refresh token and forgets the session', async () => {
  const tokens = new MemoryTokenStore(session());
  const { fetch, calls } = fakeFetch(() => new Response(null, { status: 204 }));
  const api = new Api({ fetch, tokens, now: () => NOW });
  await api.logout();
  assert.equal(tokens.get(), null);
  assert.deepEqual(calls[0].body, { refresh_token: 'old-refresh' });
});

test('errorFromBody understands every error body of the platform', () => {
  const platform = errorFromBody(409, { error: { code: 'conflict', message: 'this call has ended' } });
  assert.equal(platform.code, 'conflict');
  assert.equal(platform.message, 'this call has ended');

  const validation = errorFromBody(422, { detail: [
    { loc: ['body', 'recipients', 3, 'to'], msg: 'value is not a valid phone number', type: 'value_error' },
    { loc: ['query', 'limit'], msg: 'Input should be less than or equal to 100', type: 'less_than_equal' },
  ] });
  assert.equal(validation.code, 'validation_error');
  assert.deepEqual(validation.fields, [
    { field: 'recipients[3].to', message: 'value is not a valid phone number' },
    { field: 'limit', message: 'Input should be less than or equal to 100' },
  ]);
  assert.match(validation.message, /^recipients\[3\]\.to: value is not a valid phone number; limit: /);

  assert.equal(errorFromBody(404, { detail: 'Not Found' }).message, 'Not Found');
  assert.equal(errorFromBody(400, { type: 'about:blank', title: 'Bad Request', detail: 'bad cursor' }).message, 'Bad Request: bad cursor');
  assert.equal(errorFromBody(502, '<html>Bad gateway</html>').message, 'A service failed to answer. Try again.');
  assert.equal(errorFromBody(503, 'upstream down').message, 'upstream down');
  assert.equal(errorFromBody(402, null).message, 'Your balance is too low for this. Top up to continue.');
  assert.equal(errorFromBody(418, null).message, 'The request failed (HTTP 418).');
});

test('queryString leaves out empty values and encodes the rest', () => {
  assert.equal(queryString({ a: 'x y', b: null, c: undefined, d: '', e: 0, f: false }), '?a=x+y&e=0&f=false');
  assert.equal(queryString({}), '');
  assert.equal(queryString(undefined), '');
  assert.equal(queryString({ tag: ['vip', 'a b', ''], number: '+15551234567' }), '?tag=vip&tag=a+b&number=%2B15551234567');
});

/** A fetch whose refresh answers only when the test says so. */
function heldRefresh(answer = () => json(200, PAIR)) {
  let release;
  const held = new Promise((resolve) => { release = resolve; });
  const fake = fakeFetch(async (call) => {
    if (call.url === '/v1/auth/refresh') {
      await held;
      return answer();
    }
    if (call.url === '/v1/auth/logout') return new Response(null, { status: 204 });
    return call.headers.authorization === 'Bearer old-access' ? json(401, {}) : json(200, { ok: call.headers.authorization ?? null });
  });
  return { ...fake, release: () => release() };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

test('a logout while a refresh is on its way stays logged out', async () => {
  const tokens = new MemoryTokenStore(session());
  const { fetch, calls, release } = heldRefresh();
  let ended = 0;
  const api = new Api({ fetch, tokens, now: () => NOW, onSessionEnded: () => { ended += 1; } });
  const pending = api.get('/v1/calls').catch((error) => error);
  await tick();
  await api.logout();
  release();
  const result = await pending;
  assert.ok(result instanceof ApiError && result.status === 401);
  assert.equal(tokens.get(), null);
  assert.equal(ended, 0);
  // The pair made for the old session is revoked, not kept.
  await tick();
  assert.deepEqual(calls.filter((c) => c.url === '/v1/auth/logout').map((c) => c.body.refresh_token), ['old-refresh', 'new-refresh']);
});

test('a refused refresh finishing after a logout does not end the next session', async () => {
  const tokens = new MemoryTokenStore(session());
  const { fetch, release } = heldRefresh(() => json(401, { error: { code: 'unauthorized', message: 'refresh token reused' } }));
  let ended = 0;
  const api = new Api({ fetch, tokens, now: () => NOW, onSessionEnded: () => { ended += 1; } });
  const pending = api.get('/v1/calls').catch((error) => error);
  await tick();
  api.start({ ...PAIR, access_token: 'other-access', refresh_token: 'other-refresh', org_id: 'o2' });
  release();
  await pending;
  assert.equal(tokens.get().refresh, 'other-refresh');
  assert.equal(ended, 0);
});

test('switching organisation while a refresh is on its way keeps the new organisation', async () => {
  const tokens = new MemoryTokenStore(session());
  const { fetch, calls, release } = heldRefresh();
  const api = new Api({ fetch, tokens, now: () => NOW });
  const pending = api.get('/v1/calls');
  await tick();
  assert.equal(calls.at(-1).url, '/v1/auth/refresh'); // spending old-refresh
  api.start({ ...PAIR, access_token: 'org2-access', refresh_token: 'org2-refresh', org_id: 'o2' });
  release();
  await pending;
  assert.equal(tokens.get().access, 'org2-access');
  assert.equal(tokens.get().refresh, 'org2-refresh');
  assert.equal(tokens.get().orgId, 'o2');
  // The call is retried with the session that is current, never with the discarded pair.
  assert.equal(calls.filter((c) => c.url === '/v1/calls').at(-1).headers.authorization, 'Bearer org2-access');
});

test('another tab logging in while our refresh is on its way keeps its session', async () => {
  const tokens = new MemoryTokenStore(session());
  const { fetch, release } = heldRefresh();
  const api = new Api({ fetch, tokens, now: () => NOW });
  const pending = api.get('/v1/calls');
  await tick();
  tokens.set(session('tab2-access', 'tab2-refresh')); // written by another tab
  release();
  await pending;
  assert.equal(tokens.get().refresh, 'tab2-refresh');
});

test('a refresh failing with 503 before the call keeps the old token while it is valid', async () => {
  const tokens = new MemoryTokenStore(session('old-access', 'old-refresh', NOW + 5_000));
  const { fetch, calls } = fakeFetch((call) => (call.url === '/v1/auth/refresh'
    ? json(503, { error: { code: 'unavailable', message: 'auth is down' } })
    : json(200, { fine: true })));
  const api = new Api({ fetch, tokens, now: () => NOW });
  assert.deepEqual(await api.get('/v1/calls'), { fine: true });
  assert.equal(calls[1].headers.authorization, 'Bearer old-access');
  assert.equal(tokens.get().refresh, 'old-refresh');
});

test('a refresh failing offline or with 503 once the token has expired fails with that error', async () => {
  const tokens = new MemoryTokenStore(session('old-access', 'old-refresh', NOW - 1_000));
  const { fetch, calls } = fakeFetch((call) => (call.url === '/v1/auth/refresh'
    ? json(503, { error: { code: 'unavailable', message: 'auth is down' } })
    : json(401, {})));
  const api = new Api({ fetch, tokens, now: () => NOW });
  await assert.rejects(api.get('/v1/calls'), (error) => error instanceof ApiError && error.status === 503 && error.message === 'auth is down');
  assert.deepEqual(calls.map((c) => c.url), ['/v1/auth/refresh']);
  assert.equal(tokens.get().refresh, 'old-refresh');

  const offline = new Api({ fetch: async () => { throw new TypeError('Failed to fetch'); }, tokens, now: () => NOW });
  await assert.rejects(offline.get('/v1/calls'), (error) => error instanceof ApiError && error.code === 'network');
  assert.equal(tokens.get().refresh, 'old-refresh');
});

test('a 401 whose refresh fails with 503 shows the 503, not "log in again"', async () => {
  const tokens = new MemoryTokenStore(session());
  let ended = 0;
  const { fetch } = fakeFetch((call) => (call.url === '/v1/auth/refresh' ? json(503, null) : json(401, {})));
  const api = new Api({ fetch, tokens, now: () => NOW, onSessionEnded: () => { ended += 1; } });
  await assert.rejects(api.get('/v1/calls'), (error) => error instanceof ApiError && error.status === 503);
  assert.equal(ended, 0);
  assert.equal(tokens.get().refresh, 'old-refresh');
});

test('accessToken keeps a still valid token when the refresh cannot be made now', async () => {
  const tokens = new MemoryTokenStore(session('old-access', 'old-refresh', NOW + 20_000));
  const api = new Api({ fetch: async () => json(502, null), tokens, now: () => NOW });
  assert.equal(await api.accessToken(), 'old-access');
});
