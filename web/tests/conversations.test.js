import { test } from 'node:test';
import assert from 'node:assert/strict';
import { concernsConversation, conversationFrom, conversationRequest, formatMs, latencyStats, toolCallRow, toolCalls } from '../src/conversations.js';
import { isFinal } from '../src/calls-state.js';

test('a call\'s conversation is loaded by the id its detail carries, else by call_id, once ended', () => {
  assert.equal(conversationRequest({ id: 'c1', status: 'in-progress', transcript: { conversation_id: 'v1' } }, isFinal), null);
  assert.deepEqual(conversationRequest({ id: 'c1', status: 'completed', transcript: { conversation_id: 'v/1' } }, isFinal), { path: '/v1/conversations/v%2F1' });
  assert.deepEqual(conversationRequest({ id: 'c1', status: 'completed', transcript: null }, isFinal),
    { path: '/v1/conversations', query: { call_id: 'c1', limit: 1 } });
  assert.deepEqual(conversationRequest({ id: 'c1', status: 'failed' }, isFinal).query, { call_id: 'c1', limit: 1 });
});

test('the conversation is the answer, or a page\'s first item', () => {
  assert.deepEqual(conversationFrom({ id: 'v1', status: 'ended' }), { id: 'v1', status: 'ended' });
  assert.deepEqual(conversationFrom({ items: [{ id: 'v2' }], next_cursor: null }), { id: 'v2' });
  assert.equal(conversationFrom({ items: [], next_cursor: null }), null);
  assert.equal(conversationFrom(null), null);
});

test('milliseconds in words', () => {
  assert.equal(formatMs(850.4), '850 ms');
  assert.equal(formatMs(1234), '1.2 s');
  assert.equal(formatMs(12_400), '12 s');
  assert.equal(formatMs(null), '—');
  assert.equal(formatMs(-1), '—');
  assert.equal(formatMs(Number.NaN), '—');
});

test('turn latencies: count, mean, median, 90th percentile, max; junk left out', () => {
  assert.deepEqual(latencyStats([]), { count: 0, mean: null, median: null, p90: null, max: null });
  assert.deepEqual(latencyStats(undefined).count, 0);
  const stats = latencyStats([900, 100, 500, 300, 700, 'x', -5, null]);
  assert.deepEqual(stats, { count: 5, mean: 500, median: 500, p90: 900, max: 900 });
  assert.equal(latencyStats([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]).p90, 9);
});

test('tool calls as rows: outcome, error only when failed, in call order', () => {
  assert.deepEqual(toolCallRow({ name: 'lookup', offset_s: 4.2, duration_ms: 120, ok: true, status_code: 200, error: null }),
    { name: 'lookup', offset: 4.2, durationMs: 120, ok: true, outcome: 'OK (200)', error: null, statusCode: 200 });
  assert.equal(toolCallRow({ name: 'book', duration_ms: 30, ok: false, status_code: 500, error: 'HTTP 500' }).outcome, 'Failed (HTTP 500)');
  const timeout = toolCallRow({ name: 'book', duration_ms: 5000, ok: false, error: 'timed out' });
  assert.equal(timeout.outcome, 'Failed (no answer)');
  assert.equal(timeout.error, 'timed out');
  assert.equal(timeout.offset, null);
  const { rows, failed } = toolCalls({ tool_calls: [
    { name: 'b', offset_s: 9, duration_ms: 1, ok: false, status_code: 404, error: 'not found' },
    { name: 'a', offset_s: 2, duration_ms: 1, ok: true, status_code: 204 },
  ] });
  assert.deepEqual(rows.map((r) => r.name), ['a', 'b']);
  assert.equal(failed, 1);
  assert.deepEqual(toolCalls(undefined), { rows: [], failed: 0 });
});

test('the conversation is reloaded when the call or its conversation ends, or its analysis arrives', () => {
  assert.ok(concernsConversation({ type: 'voice.conversation.analyzed.v1', data: { call_id: 'c1' } }, 'c1'));
  assert.ok(concernsConversation({ type: 'voice.conversation.ended.v1', data: { call_id: 'c1' } }, 'c1'));
  assert.ok(concernsConversation({ type: 'telephony.call.ended.v1', data: { call_id: 'c1' } }, 'c1'));
  assert.ok(!concernsConversation({ type: 'voice.conversation.analyzed.v1', data: { call_id: 'c2' } }, 'c1'));
  assert.ok(!concernsConversation({ type: 'live.transcript.line', data: { call_id: 'c1' } }, 'c1'));
});
