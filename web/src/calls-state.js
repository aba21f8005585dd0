// How live events change the calls on screen: a pure reducer, so the order and duplication of
// events (live signals may repeat, arrive late or out of order) are handled in one tested place.

/**
 * @typedef {import('./live.js').Envelope} Envelope
 * @typedef {{status: string, sequence: number, at: string}} StatusChange
 * @typedef {{speaker: string, text: string, offset_s: number | null}} Line
 * @typedef {{conversation_id: string | null, lines: (Line | null)[], summary: string | null,
 *   outcome?: string | null}} Transcript
 * @typedef {{amount: number, currency: string, billed_seconds: number | null,
 *   rate_per_minute: number | null}} Cost
 * @typedef {{id: string, status: string, agent_id?: string, phone_number_id?: string,
 *   direction?: string, from_number?: string, to_number?: string, created_at?: string,
 *   started_at?: string | null, ended_at?: string | null, duration_s?: number | null,
 *   answered_by?: string | null, ended_reason?: string | null, sequence?: number,
 *   status_history?: StatusChange[], transcript?: Transcript | null, cost?: Cost | null,
 *   variables?: Record<string, string>, recording_url?: string | null,
 *   contact?: {id: string, name: string | null} | null}} Call
 * @typedef {{status?: string, direction?: string, agent_id?: string, phone_number_id?: string,
 *   created_after?: string, created_before?: string}} CallFilters
 */

export const FINAL_STATUSES = new Set(['completed', 'busy', 'no-answer', 'failed', 'canceled']);
const RANK = /** @type {Record<string, number>} */ ({ queued: 0, ringing: 1, 'in-progress': 2 });

/** @param {string} status */
export function isFinal(status) {
  return FINAL_STATUSES.has(status);
}

/** @param {string} status */
function rank(status) {
  return RANK[status] ?? (isFinal(status) ? 3 : 0);
}

/**
 * The highest status sequence the call is known at, or null when unknown (a list row).
 * @param {Call} call
 */
export function knownSequence(call) {
  let best = typeof call.sequence === 'number' ? call.sequence : null;
  for (const change of call.status_history ?? []) {
    if (best === null || change.sequence > best) best = change.sequence;
  }
  return best;
}

/** Event types that concern one call, by `data.call_id`. */
export const CALL_EVENTS = new Set([
  'live.call.status',
  'telephony.call.status_changed.v1',
  'telephony.call.ended.v1',
  'live.transcript.line',
  'voice.conversation.ended.v1',
  'voice.conversation.analyzed.v1',
  'billing.call.charged.v1',
]);

/**
 * The call after `event`; the same object when the event does not change it.
 * @param {Call} call
 * @param {Envelope} event
 * @returns {Call}
 */
export function applyToCall(call, event) {
  const data = event.data ?? {};
  if (!CALL_EVENTS.has(event.type) || data.call_id !== call.id) return call;
  switch (event.type) {
    case 'live.call.status':
    case 'telephony.call.status_changed.v1':
      return applyStatus(call, data.status, data.sequence, event.occurred_at);
    case 'telephony.call.ended.v1': {
      const next = applyStatus(call, data.status, knownSequence(call) === null ? undefined : Infinity, data.ended_at ?? event.occurred_at, true);
      return {
        ...next,
        duration_s: data.duration_s ?? next.duration_s ?? null,
        answered_by: data.answered_by ?? next.answered_by ?? null,
        ended_reason: data.ended_reason ?? next.ended_reason ?? null,
        started_at: data.started_at ?? next.started_at ?? null,
        ended_at: data.ended_at ?? next.ended_at ?? null,
      };
    }
    case 'live.transcript.line': {
      if (typeof data.index !== 'number' || data.index < 0 || data.index > 100_000) return call;
      const transcript = call.transcript ?? { conversation_id: null, lines: [], summary: null };
      const lines = transcript.lines.slice();
      while (lines.length < data.index) lines.push(null);
      const previous = lines[data.index];
      if (previous && previous.text === data.text && previous.speaker === data.speaker) return call;
      lines[data.index] = { speaker: String(data.speaker), text: String(data.text ?? ''), offset_s: previous?.offset_s ?? null };
      return { ...call, transcript: { ...transcript, lines } };
    }
    case 'voice.conversation.ended.v1': {
      const transcript = call.transcript ?? { conversation_id: null, lines: [], summary: null };
      const lines = Array.isArray(data.transcript) && data.transcript.length
        ? data.transcript.map((/** @type {any} */ line) => ({ speaker: String(line.speaker), text: String(line.text), offset_s: line.offset_s ?? null }))
        : transcript.lines;
      return {
        ...call,
        transcript: { ...transcript, conversation_id: data.conversation_id ?? transcript.conversation_id, lines, summary: data.summary ?? transcript.summary },
      };
    }
    case 'voice.conversation.analyzed.v1': {
      const transcript = call.transcript ?? { conversation_id: data.conversation_id ?? null, lines: [], summary: null };
      return { ...call, transcript: { ...transcript, summary: data.summary ?? transcript.summary, outcome: data.outcome ?? transcript.outcome ?? null } };
    }
    case 'billing.call.charged.v1':
      return {
        ...call,
        cost: { amount: data.amount, currency: data.currency, billed_seconds: data.billed_seconds ?? null, rate_per_minute: data.rate_per_minute ?? null },
      };
    default:
      return call;
  }
}

/**
 * @param {Call} call
 * @param {string} status
 * @param {number | undefined} sequence
 * @param {string} at
 * @param {boolean} [final] the call's final word (telephony.call.ended.v1)
 * @returns {Call}
 */
function applyStatus(call, status, sequence, at, final = false) {
  if (typeof status !== 'string' || !status) return call;
  const known = knownSequence(call);
  if (isFinal(call.status) && !final) return call; // A call never goes backwards.
  if (!final) {
    if (known !== null && typeof sequence === 'number') {
      if (sequence <= known) return call;
    } else if (rank(status) < rank(call.status) || status === call.status) {
      return call;
    }
  } else if (call.status === status) {
    return call;
  }
  /** @type {Call} */
  const next = { ...call, status };
  if (typeof sequence === 'number' && Number.isFinite(sequence)) next.sequence = sequence;
  if (call.status_history) {
    const seq = typeof sequence === 'number' && Number.isFinite(sequence) ? sequence : (known ?? -1) + 1;
    next.status_history = [...call.status_history, { status, sequence: seq, at }];
    next.sequence = seq;
  }
  if (status === 'in-progress' && !call.started_at) next.started_at = at;
  return next;
}

/**
 * Whether a call belongs in a list shown with `filters`.
 * @param {Call} call
 * @param {CallFilters} filters
 */
export function matchesFilters(call, filters) {
  if (filters.status && call.status !== filters.status) return false;
  if (filters.direction && call.direction !== filters.direction) return false;
  if (filters.agent_id && call.agent_id !== filters.agent_id) return false;
  if (filters.phone_number_id && call.phone_number_id !== filters.phone_number_id) return false;
  const created = call.created_at ? Date.parse(call.created_at) : NaN;
  if (filters.created_after && !(created >= Date.parse(filters.created_after))) return false;
  if (filters.created_before && !(created < Date.parse(filters.created_before))) return false;
  return true;
}

/**
 * The first page of a calls list after `event`: a new call appears on top when it matches the
 * filters, a call's status changes in place (a row whose status no longer matches the status
 * filter stays, so rows do not jump away under the pointer). Same array when nothing changed.
 * @param {Call[]} calls
 * @param {Envelope} event
 * @param {CallFilters} filters
 * @param {{prepend?: boolean, limit?: number}} [options] prepend only on the first page
 * @returns {Call[]}
 */
export function applyToList(calls, event, filters, options = {}) {
  const data = event.data ?? {};
  if (event.type === 'telephony.call.created.v1') {
    if (options.prepend === false || calls.some((call) => call.id === data.call_id)) return calls;
    /** @type {Call} */
    const call = {
      id: data.call_id,
      agent_id: data.agent_id,
      phone_number_id: data.phone_number_id,
      direction: data.direction,
      from_number: data.from_number,
      to_number: data.to_number,
      status: 'queued',
      created_at: event.occurred_at,
      started_at: null,
      ended_at: null,
      duration_s: null,
      answered_by: null,
      ended_reason: null,
    };
    if (!matchesFilters(call, filters)) return calls;
    const next = [call, ...calls];
    return options.limit && next.length > options.limit ? next.slice(0, options.limit) : next;
  }
  if (!CALL_EVENTS.has(event.type)) return calls;
  let changed = false;
  const next = calls.map((call) => {
    const updated = applyToCall(call, event);
    if (updated !== call) changed = true;
    return updated;
  });
  return changed ? next : calls;
}
