// The `/v1/ws` client: authenticates with its first message, answers pings, remembers the last
// resume token, and reconnects (resuming) with exponential backoff and jitter.

/**
 * @typedef {{id: string, type: string, occurred_at: string, org_id?: string | null,
 *   data: Record<string, any>}} Envelope
 * @typedef {'connecting' | 'open' | 'reconnecting' | 'closed'} LiveState
 * @typedef {{send(data: string): void, close(code?: number, reason?: string): void,
 *   onopen: ((event: any) => void) | null, onmessage: ((event: {data: any}) => void) | null,
 *   onclose: ((event: {code: number, reason?: string}) => void) | null,
 *   onerror: ((event: any) => void) | null}} SocketLike
 * @typedef {object} LiveOptions
 * @property {string | (() => string)} url e.g. `wss://host/v1/ws`
 * @property {new (url: string) => SocketLike} WebSocket
 * @property {(reason: 'connect' | 'unauthorized') => Promise<string | null>} getToken
 *   a valid access token (refreshed when `unauthorized`), or null when signed out
 * @property {(event: Envelope) => void} [onEvent]
 * @property {(state: LiveState) => void} [onState]
 * @property {() => void} [onResync] events may have been missed: reload what is shown
 * @property {() => void} [onUnauthorized] the socket refuses our token even after a refresh
 * @property {{setTimeout: typeof setTimeout, clearTimeout: typeof clearTimeout}} [timers]
 * @property {() => number} [random]
 * @property {number} [baseDelay] first retry after about this many ms (1000)
 * @property {number} [maxDelay] retries at most this far apart (30000)
 * @property {number} [silence] reconnect after this many ms without any message (60000; the
 *   gateway pings every 20 s)
 */

export const CLOSE_RECONNECT = 4000;
export const CLOSE_UNAUTHORIZED = 4401;
export const CLOSE_FORBIDDEN_ORIGIN = 4403;

/**
 * The delay before retry number `attempt` (0 first): doubling from `base`, capped at `max`,
 * then spread between half and all of it so that many tabs do not come back together.
 * @param {number} attempt
 * @param {number} base
 * @param {number} max
 * @param {number} random in [0, 1)
 */
export function backoff(attempt, base, max, random) {
  const ceiling = Math.min(max, base * 2 ** Math.min(attempt, 20));
  return Math.round(ceiling / 2 + (ceiling / 2) * random);
}

export class LiveClient {
  /** @param {LiveOptions} options */
  constructor(options) {
    this.options = options;
    this.timers = options.timers ?? { setTimeout: globalThis.setTimeout.bind(globalThis), clearTimeout: globalThis.clearTimeout.bind(globalThis) };
    this.random = options.random ?? Math.random;
    this.baseDelay = options.baseDelay ?? 1000;
    this.maxDelay = options.maxDelay ?? 30_000;
    this.silence = options.silence ?? 60_000;
    /** @type {SocketLike | null} */
    this.socket = null;
    /** @type {string | null} */
    this.resume = null;
    /** @type {LiveState} */
    this.state = 'closed';
    this.attempt = 0;
    this.stopped = true;
    this.refused = 0;
    /** @type {any} */
    this.retryTimer = null;
    /** @type {any} */
    this.silenceTimer = null;
    /** @type {Set<(event: Envelope) => void>} */
    this.listeners = new Set();
    this.generation = 0;
    /** @type {number | null} the generation of a connect() still waiting for its token */
    this.connecting = null;
    /** Whether a socket of this session has been ready before (a new one is a reconnection). */
    this.wasReady = false;
    /** Whether the current socket asked to resume. */
    this.resuming = false;
  }

  /** Start (or restart) the connection. */
  start() {
    this.stopped = false;
    if (!this.socket && this.retryTimer === null && this.connecting === null) void this.connect('connect');
  }

  /** Close for good (logging out). */
  stop() {
    this.stopped = true;
    this.resume = null;
    this.wasReady = false;
    this.clearTimers();
    this.generation += 1;
    this.connecting = null;
    const socket = this.socket;
    this.socket = null;
    if (socket) socket.close(1000, 'bye');
    this.setState('closed');
  }

  /** Reconnect at once without resuming (the organisation changed). */
  restart() {
    this.stop();
    this.start();
  }

  /**
   * Listen to every event; returns the function that stops listening.
   * @param {(event: Envelope) => void} listener
   */
  subscribe(listener) {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  /** @param {'connect' | 'unauthorized'} reason */
  async connect(reason) {
    this.retryTimer = null;
    const generation = this.generation;
    // Until the socket exists, start() and nudge() must not open another one.
    this.connecting = generation;
    this.setState(this.attempt === 0 && reason === 'connect' ? 'connecting' : 'reconnecting');
    let token;
    try {
      token = await this.options.getToken(reason);
    } catch {
      token = undefined;
    }
    if (this.connecting === generation) this.connecting = null;
    if (this.stopped || generation !== this.generation || this.socket) return;
    if (token === null) {
      this.setState('closed');
      return;
    }
    if (token === undefined) {
      this.retry();
      return;
    }
    const url = typeof this.options.url === 'function' ? this.options.url() : this.options.url;
    let socket;
    try {
      socket = new this.options.WebSocket(url);
    } catch {
      this.retry();
      return;
    }
    this.socket = socket;
    socket.onopen = () => {
      if (generation !== this.generation || this.socket !== socket) {
        // Stopped or superseded while opening: never leave it open.
        socket.close(1000, 'stale');
        return;
      }
      /** @type {Record<string, string>} */
      const hello = { type: 'auth', token };
      if (this.resume) hello.resume = this.resume;
      this.resuming = Boolean(this.resume);
      socket.send(JSON.stringify(hello));
      this.watch();
    };
    socket.onmessage = (message) => {
      if (this.socket === socket) this.receive(socket, message.data);
    };
    socket.onerror = () => {};
    socket.onclose = (event) => {
      if (this.socket !== socket) return;
      this.socket = null;
      this.closed(event.code);
    };
  }

  /**
   * @param {SocketLike} socket
   * @param {unknown} data
   */
  receive(socket, data) {
    this.watch();
    let message;
    try {
      message = JSON.parse(String(data));
    } catch {
      return;
    }
    if (!message || typeof message !== 'object') return;
    switch (message.type) {
      case 'ready':
        this.attempt = 0;
        this.refused = 0;
        this.setState('open');
        // Back after a drop without a resume token (no event had come yet): what happened
        // meanwhile is unknown, so the screens reload.
        if (this.wasReady && !this.resuming) this.options.onResync?.();
        this.wasReady = true;
        break;
      case 'ping':
        socket.send('{"type":"pong"}');
        break;
      case 'event':
        if (typeof message.resume === 'string') this.resume = message.resume;
        if (message.event && typeof message.event === 'object') this.dispatch(message.event);
        break;
      case 'reconnect':
        if (typeof message.resume === 'string') this.resume = message.resume;
        this.attempt = 0;
        break;
      case 'resume_failed':
        this.resume = null;
        this.options.onResync?.();
        break;
      default:
        break;
    }
  }

  /** @param {Envelope} event */
  dispatch(event) {
    this.options.onEvent?.(event);
    for (const listener of [...this.listeners]) {
      try {
        listener(event);
      } catch (error) {
        console.error('live listener failed', error);
      }
    }
  }

  /** @param {number} code */
  closed(code) {
    this.clearTimers();
    if (this.stopped) return;
    if (code === CLOSE_FORBIDDEN_ORIGIN) {
      this.setState('closed');
      return;
    }
    if (code === CLOSE_UNAUTHORIZED) {
      this.refused += 1;
      if (this.refused > 1) {
        this.setState('closed');
        this.options.onUnauthorized?.();
        return;
      }
      this.setState('reconnecting');
      void this.connect('unauthorized');
      return;
    }
    if (code === CLOSE_RECONNECT) {
      // The gateway ends every socket after its lifetime: come back at once (a little spread).
      this.setState('reconnecting');
      this.schedule(Math.round(this.random() * 500));
      return;
    }
    this.retry();
  }

  retry() {
    if (this.stopped) return;
    this.setState('reconnecting');
    const delay = backoff(this.attempt, this.baseDelay, this.maxDelay, this.random());
    this.attempt += 1;
    this.schedule(delay);
  }

  /** @param {number} delay */
  schedule(delay) {
    const generation = this.generation;
    this.retryTimer = this.timers.setTimeout(() => {
      if (generation === this.generation) void this.connect('connect');
    }, delay);
  }

  /** Reconnect now if waiting to (the browser came back online). */
  nudge() {
    if (this.stopped || this.socket || this.connecting !== null) return;
    if (this.retryTimer !== null) this.timers.clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.generation += 1; // a retry scheduled before is void
    this.attempt = 0;
    void this.connect('connect');
  }

  watch() {
    if (this.silenceTimer !== null) this.timers.clearTimeout(this.silenceTimer);
    const socket = this.socket;
    this.silenceTimer = this.timers.setTimeout(() => {
      this.silenceTimer = null;
      if (socket && this.socket === socket) {
        this.socket = null;
        socket.close(4002, 'silent');
        this.closed(1006);
      }
    }, this.silence);
  }

  clearTimers() {
    if (this.retryTimer !== null) this.timers.clearTimeout(this.retryTimer);
    if (this.silenceTimer !== null) this.timers.clearTimeout(this.silenceTimer);
    this.retryTimer = null;
    this.silenceTimer = null;
  }

  /** @param {LiveState} state */
  setState(state) {
    if (this.state === state) return;
    this.state = state;
    this.options.onState?.(state);
  }
}

/**
 * The socket URL for a page at `location` (same host; wss on https).
 * @param {{protocol: string, host: string}} location
 */
export function socketUrl(location) {
  return `${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}/v1/ws`;
}
