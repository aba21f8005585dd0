import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LiveClient, backoff, socketUrl } from '../src/live.js';

/** Timers run by hand: `advance(ms)` fires what falls due. */
function fakeTimers() {
  let now = 0;
  let next = 1;
  const pending = new Map();
  return {
    setTimeout(fn, delay) {
      const id = next++;
      pending.set(id, { at: now + delay, fn });
      return id;
    },
    clearTimeout(id) {
      pending.delete(id);
    },
    advance(ms) {
      const until = now + ms;
      for (;;) {
        const due = [...pending.entries()].filter(([, t]) => t.at <= until).sort((a, b) => a[1].at - b[1].at)[0];
        if (!due) break;
        pending.delete(due[0]);
        now = due[1].at;
        due[1].fn();
      }
      now = until;
    },
    delays() {
      return [...pending.values()].map((t) => t.at - now);
    },
  };
}

/** A WebSocket that the test drives: open it, push messages, close it. */
function fakeSockets() {
  const sockets = [];
  class FakeSocket {
    constructor(url) {
      this.url = url;
      this.sent = [];
      this.closedWith = null;
      this.onopen = this.onmessage = this.onclose = this.onerror = null;
      sockets.push(this);
    }
    send(data) {
      this.sent.push(JSON.parse(data));
    }
    close(code, reason) {
      this.closedWith = { code, reason };
    }
    open() {
      this.onopen?.({});
    }
    push(message) {
      this.onmessage?.({ data: JSON.stringify(message) });
    }
    drop(code = 1006) {
      this.onclose?.({ code });
    }
  }
  return { FakeSocket, sockets };
}

const flush = () => new Promise((resolve) => setImmediate(resolve));

function client(extra = {}) {
  const timers = fakeTimers();
  const { FakeSocket, sockets } = fakeSockets();
  const events = [];
  const states = [];
  const reasons = [];
  const live = new LiveClient({
    url: 'ws://gateway/v1/ws',
    WebSocket: FakeSocket,
    getToken: async (reason) => {
      reasons.push(reason);
      return reason === 'unauthorized' ? 'fresh-token' : 'token';
    },
    onEvent: (event) => events.push(event),
    onState: (state) => states.push(state),
    timers,
    random: () => 0.5,
    ...extra,
  });
  return { live, timers, sockets, events, states, reasons };
}

const event = (id, resume) => ({ type: 'event', event: { id, type: 'live.call.status', occurred_at: '2026-01-01T00:00:00Z', data: { call_id: 'c1', status: 'ringing', sequence: 1 } }, resume });

test('authenticates with its first message, then answers pings and passes events on', async () => {
  const { live, sockets, events, states } = client();
  live.start();
  await flush();
  assert.equal(sockets.length, 1);
  assert.equal(sockets[0].url, 'ws://gateway/v1/ws');
  sockets[0].open();
  assert.deepEqual(sockets[0].sent, [{ type: 'auth', token: 'token' }]);
  sockets[0].push({ type: 'ready' });
  assert.equal(live.state, 'open');
  sockets[0].push({ type: 'ping' });
  assert.deepEqual(sockets[0].sent.at(-1), { type: 'pong' });
  sockets[0].push(event('e1', 'r1'));
  assert.equal(events.length, 1);
  assert.equal(events[0].id, 'e1');
  assert.equal(live.resume, 'r1');
  assert.deepEqual(states, ['connecting', 'open']);
});

test('subscribers get every event until they unsubscribe; one failing does not stop others', async () => {
  const { live, sockets } = client();
  const seen = [];
  const stop = live.subscribe((e) => seen.push(e.id));
  live.subscribe(() => { throw new Error('boom'); });
  const original = console.error;
  console.error = () => {};
  try {
    live.start();
    await flush();
    sockets[0].open();
    sockets[0].push(event('e1', 'r1'));
    stop();
    sockets[0].push(event('e2', 'r2'));
  } finally {
    console.error = original;
  }
  assert.deepEqual(seen, ['e1']);
});

test('a dropped socket reconnects with backoff and resumes from the last event', async () => {
  const { live, sockets, timers, states } = client();
  live.start();
  await flush();
  sockets[0].open();
  sockets[0].push({ type: 'ready' });
  sockets[0].push(event('e1', 'resume-1'));
  sockets[0].drop(1006);
  assert.equal(live.state, 'reconnecting');
  // First retry: base 1000 ms, with random 0.5 -> 750 ms.
  assert.deepEqual(timers.delays(), [750]);
  timers.advance(749);
  assert.equal(sockets.length, 1);
  timers.advance(1);
  await flush();
  assert.equal(sockets.length, 2);
  sockets[1].open();
  assert.deepEqual(sockets[1].sent[0], { type: 'auth', token: 'token', resume: 'resume-1' });
  sockets[1].push({ type: 'ready' });
  assert.equal(live.state, 'open');
  assert.deepEqual(states, ['connecting', 'open', 'reconnecting', 'open']);
});

test('failures in a row back off further, up to the cap; a ready socket resets it', async () => {
  const { live, sockets, timers } = client({ maxDelay: 8000 });
  live.start();
  await flush();
  const delays = [];
  for (let i = 0; i < 6; i += 1) {
    sockets.at(-1).drop(1006);
    delays.push(timers.delays()[0]);
    timers.advance(delays.at(-1));
    await flush();
  }
  assert.deepEqual(delays, [750, 1500, 3000, 6000, 6000, 6000]);
  sockets.at(-1).open();
  sockets.at(-1).push({ type: 'ready' });
  sockets.at(-1).drop(1006);
  assert.deepEqual(timers.delays(), [750]);
});

test('backoff doubles, caps and spreads', () => {
  assert.equal(backoff(0, 1000, 30000, 0), 500);
  assert.equal(backoff(0, 1000, 30000, 0.999999), 1000);
  assert.equal(backoff(3, 1000, 30000, 1), 8000);
  assert.equal(backoff(10, 1000, 30000, 1), 30000);
  assert.equal(backoff(10, 1000, 30000, 0), 15000);
});

test('the gateway asking to reconnect (lifetime over) is obeyed at once with its resume token', async () => {
  const { live, sockets, timers } = client();
  live.start();
  await flush();
  sockets[0].open();
  sockets[0].push({ type: 'ready' });
  sockets[0].push({ type: 'reconnect', resume: 'resume-9' });
  sockets[0].drop(4000);
  assert.ok(timers.delays()[0] <= 500);
  timers.advance(500);
  await flush();
  sockets[1].open();
  assert.equal(sockets[1].sent[0].resume, 'resume-9');
});

test('a refused token is refreshed once; refused again, the client gives up', async () => {
  let unauthorized = 0;
  const { live, sockets, reasons } = client({ onUnauthorized: () => { unauthorized += 1; } });
  live.start();
  await flush();
  sockets[0].open();
  sockets[0].drop(4401);
  await flush();
  assert.deepEqual(reasons, ['connect', 'unauthorized']);
  sockets[1].open();
  assert.equal(sockets[1].sent[0].token, 'fresh-token');
  sockets[1].drop(4401);
  await flush();
  assert.equal(unauthorized, 1);
  assert.equal(live.state, 'closed');
  assert.equal(sockets.length, 2);
});

test('a resume the gateway cannot honour asks the screens to reload, and is forgotten', async () => {
  let resyncs = 0;
  const { live, sockets, timers } = client({ onResync: () => { resyncs += 1; } });
  live.start();
  await flush();
  sockets[0].open();
  sockets[0].push(event('e1', 'old'));
  sockets[0].drop(1006);
  timers.advance(1000);
  await flush();
  sockets[1].open();
  assert.equal(sockets[1].sent[0].resume, 'old');
  sockets[1].push({ type: 'resume_failed' });
  assert.equal(resyncs, 1);
  assert.equal(live.resume, null);
});

test('a silent socket (no ping for a minute) is replaced', async () => {
  const { live, sockets, timers } = client({ silence: 60_000 });
  live.start();
  await flush();
  sockets[0].open();
  sockets[0].push({ type: 'ready' });
  timers.advance(59_999);
  assert.equal(sockets[0].closedWith, null);
  timers.advance(1);
  assert.equal(sockets[0].closedWith.code, 4002);
  timers.advance(1000);
  await flush();
  assert.equal(sockets.length, 2);
});

test('stop closes the socket and nothing reconnects', async () => {
  const { live, sockets, timers } = client();
  live.start();
  await flush();
  sockets[0].open();
  live.stop();
  assert.equal(sockets[0].closedWith.code, 1000);
  sockets[0].drop(1000);
  timers.advance(120_000);
  await flush();
  assert.equal(sockets.length, 1);
  assert.equal(live.state, 'closed');
});

test('signed out (no token): no socket is opened', async () => {
  const { live, sockets } = client({ getToken: async () => null });
  live.start();
  await flush();
  assert.equal(sockets.length, 0);
  assert.equal(live.state, 'closed');
});

test('socketUrl follows the page: wss on https', () => {
  assert.equal(socketUrl({ protocol: 'https:', host: 'app.example.com' }), 'wss://app.example.com/v1/ws');
  assert.equal(socketUrl({ protocol: 'http:', host: '127.0.0.1:8000' }), 'ws://127.0.0.1:8000/v1/ws');
});

test('back after a drop with nothing to resume from, the screens are asked to reload', async () => {
  let resyncs = 0;
  const { live, sockets, timers } = client({ onResync: () => { resyncs += 1; } });
  live.start();
  await flush();
  sockets[0].open();
  sockets[0].push({ type: 'ready' });
  assert.equal(resyncs, 0);
  sockets[0].drop(1006);
  timers.advance(1000);
  await flush();
  sockets[1].open();
  assert.equal(sockets[1].sent[0].resume, undefined);
  sockets[1].push({ type: 'ready' });
  assert.equal(resyncs, 1);
  // With a resume token, the gateway replays what was missed: no reload.
  sockets[1].push(event('e1', 'r1'));
  sockets[1].drop(1006);
  timers.advance(1000);
  await flush();
  sockets[2].open();
  sockets[2].push({ type: 'ready' });
  assert.equal(resyncs, 1);
});

/** A getToken the test answers by hand. */
function heldToken() {
  const waiting = [];
  const getToken = () => new Promise((resolve) => waiting.push(resolve));
  return { getToken, answer: (token = 'token') => waiting.shift()(token), get pending() { return waiting.length; } };
}

test('online or start() while the token is on its way opens one socket only', async () => {
  const held = heldToken();
  const { live, sockets } = client({ getToken: held.getToken });
  live.start();
  live.nudge(); // the browser came back online
  live.start();
  assert.equal(held.pending, 1);
  held.answer();
  await flush();
  assert.equal(sockets.length, 1);
  sockets[0].open();
  assert.deepEqual(sockets[0].sent, [{ type: 'auth', token: 'token' }]);
  live.stop();
  assert.deepEqual(sockets[0].closedWith, { code: 1000, reason: 'bye' });
  assert.equal(sockets.filter((s) => s.closedWith === null).length, 0);
});

test('nudge during a retry wait connects once; the old retry does not open a second socket', async () => {
  const { live, sockets, timers } = client();
  live.start();
  await flush();
  sockets[0].open();
  sockets[0].drop(1006);
  live.nudge();
  await flush();
  assert.equal(sockets.length, 2);
  timers.advance(60_000);
  await flush();
  assert.equal(sockets.length, 2);
});

test('stop (or a restart) while the token is on its way leaves no socket open', async () => {
  const held = heldToken();
  const { live, sockets } = client({ getToken: held.getToken });
  live.start();
  live.stop();
  held.answer();
  await flush();
  assert.equal(sockets.length, 0);

  live.start();
  live.restart(); // the organisation changed: a second connect for the new session
  assert.equal(held.pending, 2);
  held.answer('old-org');
  held.answer('new-org');
  await flush();
  assert.equal(sockets.length, 1);
  sockets[0].open();
  assert.deepEqual(sockets[0].sent, [{ type: 'auth', token: 'new-org' }]);
  live.stop();
  assert.equal(sockets.filter((s) => s.closedWith === null).length, 0);
});

test('a socket superseded before it opens is closed in its onopen', async () => {
  const { live, sockets } = client();
  live.start();
  await flush();
  const first = sockets[0];
  // Superseded without stop() closing it (e.g. a generation bump), then it opens.
  live.socket = null;
  live.generation += 1;
  first.open();
  assert.deepEqual(first.closedWith, { code: 1000, reason: 'stale' });
  assert.deepEqual(first.sent, []);
});
