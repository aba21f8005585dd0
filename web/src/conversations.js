// A call's conversation with its agent (voice-ai's `/v1/conversations`): which one to load, its
// timing and its HTTP tool calls as the call page shows them. Pure, no DOM.

/**
 * @typedef {{name: string, tool_call_id?: string | null, offset_s?: number, duration_ms: number,
 *   ok: boolean, status_code?: number | null, error?: string | null}} ToolCallRecord
 * @typedef {{time_to_first_audio_ms?: number | null, turn_latency_ms?: number[], frames_in?: number,
 *   frames_out?: number, audio_chunks_dropped?: number, malformed_frames?: number,
 *   tool_calls?: ToolCallRecord[]}} ConversationMetrics
 * @typedef {{id: string, call_id: string, agent_id: string, status: 'live' | 'ended' | 'failed',
 *   ended_reason: string | null, started_at: string, ended_at: string | null, ai_seconds: number,
 *   transcript: {speaker: string, text: string, offset_s: number}[], summary: string | null,
 *   outcome: 'success' | 'failure' | 'unknown' | null, analyzed_at: string | null,
 *   metrics: ConversationMetrics}} Conversation
 * @typedef {{count: number, mean: number | null, median: number | null, p90: number | null,
 *   max: number | null}} LatencyStats
 */

/**
 * How to fetch a call's conversation: by the id its detail carries (`transcript.conversation_id`,
 * set once the conversation has ended), else by listing the call's conversations. Null while the
 * call runs (the conversation's analysis and timing are stored when it ends).
 * @param {{id: string, status: string, transcript?: {conversation_id: string | null} | null}} call
 * @param {(status: string) => boolean} isFinal
 * @returns {{path: string, query?: Record<string, string | number>} | null}
 */
export function conversationRequest(call, isFinal) {
  if (!isFinal(call.status)) return null;
  const id = call.transcript?.conversation_id;
  if (id) return { path: `/v1/conversations/${encodeURIComponent(id)}` };
  return { path: '/v1/conversations', query: { call_id: call.id, limit: 1 } };
}

/**
 * The conversation in an answer to {@link conversationRequest}: the object, or a page's first.
 * @param {any} answer
 * @returns {Conversation | null}
 */
export function conversationFrom(answer) {
  if (!answer || typeof answer !== 'object') return null;
  if (Array.isArray(answer.items)) return answer.items[0] ?? null;
  return typeof answer.id === 'string' ? answer : null;
}

/**
 * Milliseconds in words: `850 ms`, `1.2 s`, `12 s`; `—` when unknown.
 * @param {number | null | undefined} ms
 */
export function formatMs(ms) {
  if (ms === null || ms === undefined || !Number.isFinite(ms) || ms < 0) return '—';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const seconds = ms / 1000;
  return seconds < 10 ? `${seconds.toFixed(1)} s` : `${Math.round(seconds)} s`;
}

/**
 * The value at `q` (0..1) of sorted numbers, nearest rank.
 * @param {number[]} sorted
 * @param {number} q
 */
function quantile(sorted, q) {
  const rank = Math.ceil(q * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))];
}

/**
 * Turn latencies (the time from the caller's end of speech to the agent's first audio) summed up.
 * @param {unknown} latencies
 * @returns {LatencyStats}
 */
export function latencyStats(latencies) {
  const values = (Array.isArray(latencies) ? latencies : [])
    .filter((v) => typeof v === 'number' && Number.isFinite(v) && v >= 0)
    .sort((a, b) => a - b);
  if (!values.length) return { count: 0, mean: null, median: null, p90: null, max: null };
  const sum = values.reduce((a, b) => a + b, 0);
  return {
    count: values.length,
    mean: sum / values.length,
    median: quantile(values, 0.5),
    p90: quantile(values, 0.9),
    max: values[values.length - 1],
  };
}

/**
 * A tool call as a row: its outcome in words (`OK`, `HTTP 500`, `Timed out`...) and what it says.
 * @param {ToolCallRecord} record
 * @returns {{name: string, offset: number | null, durationMs: number | null, ok: boolean,
 *   outcome: string, error: string | null, statusCode: number | null}}
 */
export function toolCallRow(record) {
  const statusCode = typeof record.status_code === 'number' ? record.status_code : null;
  const ok = record.ok === true;
  let outcome;
  if (ok) outcome = statusCode ? `OK (${statusCode})` : 'OK';
  else if (statusCode) outcome = `Failed (HTTP ${statusCode})`;
  else outcome = 'Failed (no answer)';
  return {
    name: String(record.name ?? 'tool'),
    offset: typeof record.offset_s === 'number' && Number.isFinite(record.offset_s) ? record.offset_s : null,
    durationMs: typeof record.duration_ms === 'number' && Number.isFinite(record.duration_ms) ? record.duration_ms : null,
    ok,
    outcome,
    error: ok ? null : record.error ? String(record.error) : null,
    statusCode,
  };
}

/**
 * The tool calls of a conversation's metrics, in the order they were made, and how many failed.
 * @param {ConversationMetrics | null | undefined} metrics
 */
export function toolCalls(metrics) {
  const rows = (Array.isArray(metrics?.tool_calls) ? metrics.tool_calls : []).map(toolCallRow);
  rows.sort((a, b) => (a.offset ?? 0) - (b.offset ?? 0));
  return { rows, failed: rows.filter((r) => !r.ok).length };
}

/**
 * Whether a live event means the call's conversation should be (re)loaded: it has ended or its
 * analysis has arrived.
 * @param {{type: string, data?: Record<string, any>}} event
 * @param {string} callId
 */
export function concernsConversation(event, callId) {
  return (event.type === 'voice.conversation.ended.v1' || event.type === 'voice.conversation.analyzed.v1'
    || event.type === 'telephony.call.ended.v1') && event.data?.call_id === callId;
}
