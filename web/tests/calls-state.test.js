import { test } from 'node:test';
import assert from 'node:assert/strict';
import { applyToCall, applyToList, matchesFilters } from '../src/calls-state.js';

const ID = 'c1';
const at = (s) => `2026-11-27T10:00:${String(s).padStart(2, '0')}Z`;
const ev = (type, data, s = 0) => ({ id: `${type}-${s}`, type, occurred_at: at(s), org_id: 'o', data: { call_id: ID, ...data } });

function detail(extra = {}) {
  return {
    id: ID, status: 'queued', agent_id: 'a1', phone_number_id: 'n1', direction: 'outbound',
    from_number: '+15550000001', to_number: '+15550000002', created_at: at(0), started_at: null, ended_at: null,
    duration_s: null, status_history: [{ status: 'queued', sequence: 0, at: at(0) }], transcript: null, cost: null,
    ...extra,
  };
}

test('status changes apply in sequence order; late and repeated ones are ignored', () => {
  let call = detail();
  call = applyToCall(call, ev('live.call.status', { status: 'ringing', sequence: 1 }, 1));
  assert.equal(call.status, 'ringing');
  call = applyToCall(call, ev('live.call.status', { status: 'in-progress', sequence: 3 }, 3));
  assert.equal(call.status, 'in-progress');
  assert.equal(call.started_at, at(3));
  const late = applyToCall(call, ev('telephony.call.status_changed.v1', { status: 'ringing', sequence: 2 }, 2));
  assert.equal(late, call);
  const repeated = applyToCall(call, ev('live.call.status', { status: 'in-progress', sequence: 3 }, 3));
  assert.equal(repeated, call);
  assert.deepEqual(call.status_history.map((c) => [c.status, c.sequence]), [['queued', 0], ['ringing', 1], ['in-progress', 3]]);
});

test('a call never goes back from a final status', () => {
  let call = detail();
  call = applyToCall(call, ev('telephony.call.ended.v1', { status: 'completed', duration_s: 42, answered_by: 'human', ended_reason: 'hangup', ended_at: at(50), started_at: at(8) }, 50));
  assert.equal(call.status, 'completed');
  assert.equal(call.duration_s, 42);
  assert.equal(call.ended_at, at(50));
  assert.equal(call.started_at, at(8));
  assert.equal(call.status_history.at(-1).status, 'completed');
  const after = applyToCall(call, ev('live.call.status', { status: 'in-progress', sequence: 99 }, 51));
  assert.equal(after, call);
});

test('events of other calls, and unrelated events, change nothing', () => {
  const call = detail();
  assert.equal(applyToCall(call, { ...ev('live.call.status', { status: 'ringing', sequence: 1 }), data: { call_id: 'other', status: 'ringing', sequence: 1 } }), call);
  assert.equal(applyToCall(call, ev('billing.balance.changed.v1', { balance: 1 })), call);
});

test('a list row (no sequence known) moves forward by status rank only', () => {
  let row = { id: ID, status: 'ringing' };
  row = applyToCall(row, ev('live.call.status', { status: 'in-progress', sequence: 5 }));
  assert.equal(row.status, 'in-progress');
  assert.equal(row.sequence, 5);
  const back = applyToCall({ id: ID, status: 'in-progress' }, ev('live.call.status', { status: 'ringing', sequence: 1 }));
  assert.equal(back.status, 'in-progress');
});

test('transcript lines are placed by index: new ones append, a resent index replaces', () => {
  let call = detail({ status: 'in-progress' });
  call = applyToCall(call, ev('live.transcript.line', { index: 0, speaker: 'agent', text: 'Hello, this is Ada.' }));
  call = applyToCall(call, ev('live.transcript.line', { index: 1, speaker: 'caller', text: 'Hi' }));
  call = applyToCall(call, ev('live.transcript.line', { index: 1, speaker: 'caller', text: 'Hi, who is this?' }));
  assert.deepEqual(call.transcript.lines.map((l) => l.text), ['Hello, this is Ada.', 'Hi, who is this?']);
  const same = applyToCall(call, ev('live.transcript.line', { index: 1, speaker: 'caller', text: 'Hi, who is this?' }));
  assert.equal(same, call);
  // A line that arrives before an earlier one leaves a gap for it.
  call = applyToCall(call, ev('live.transcript.line', { index: 3, speaker: 'agent', text: 'later' }));
  assert.equal(call.transcript.lines.length, 4);
  assert.equal(call.transcript.lines[2], null);
  call = applyToCall(call, ev('live.transcript.line', { index: 2, speaker: 'caller', text: 'earlier' }));
  assert.deepEqual(call.transcript.lines.map((l) => l.text), ['Hello, this is Ada.', 'Hi, who is this?', 'earlier', 'later']);
});

test('the stored transcript at the end of the conversation replaces the live one; analysis adds the summary', () => {
  let call = detail({ status: 'completed' });
  call = applyToCall(call, ev('live.transcript.line', { index: 0, speaker: 'agent', text: 'Hel' }));
  call = applyToCall(call, ev('voice.conversation.ended.v1', {
    conversation_id: 'conv1',
    transcript: [{ speaker: 'agent', text: 'Hello', offset_s: 0 }, { speaker: 'caller', text: 'Bye', offset_s: 3 }],
    summary: null,
    ai_seconds: 5,
  }));
  assert.deepEqual(call.transcript.lines, [{ speaker: 'agent', text: 'Hello', offset_s: 0 }, { speaker: 'caller', text: 'Bye', offset_s: 3 }]);
  assert.equal(call.transcript.conversation_id, 'conv1');
  call = applyToCall(call, ev('voice.conversation.analyzed.v1', { conversation_id: 'conv1', summary: 'Said hello.', outcome: 'success' }));
  assert.equal(call.transcript.summary, 'Said hello.');
  assert.equal(call.transcript.outcome, 'success');
});

test('the charge shows as the call cost', () => {
  const call = applyToCall(detail({ status: 'completed' }), ev('billing.call.charged.v1', { amount: 14, currency: 'USD', billed_seconds: 60, rate_per_minute: 14, plan_id: 'p' }));
  assert.deepEqual(call.cost, { amount: 14, currency: 'USD', billed_seconds: 60, rate_per_minute: 14 });
});

const created = (id, extra = {}) => ({
  id: `created-${id}`, type: 'telephony.call.created.v1', occurred_at: at(10), org_id: 'o',
  data: { call_id: id, agent_id: 'a1', phone_number_id: 'n1', direction: 'outbound', from_number: '+1555', to_number: '+1666', ...extra },
});

test('a new call appears on top of the first page when it matches the filters', () => {
  const rows = [{ id: 'old', status: 'completed', created_at: at(1) }];
  const next = applyToList(rows, created('new'), {}, { prepend: true, limit: 2 });
  assert.deepEqual(next.map((r) => r.id), ['new', 'old']);
  assert.equal(next[0].status, 'queued');
  assert.equal(next[0].created_at, at(10));
  // Twice: once.
  assert.equal(applyToList(next, created('new'), {}), next);
  // The page keeps its size.
  assert.deepEqual(applyToList(next, created('newer'), {}, { limit: 2 }).map((r) => r.id), ['newer', 'new']);
});

test('a new call that does not match the filters, or on a later page, does not appear', () => {
  const rows = [];
  assert.equal(applyToList(rows, created('x'), { agent_id: 'a2' }), rows);
  assert.equal(applyToList(rows, created('x'), { status: 'completed' }), rows);
  assert.equal(applyToList(rows, created('x'), { direction: 'inbound' }), rows);
  assert.equal(applyToList(rows, created('x'), { created_before: at(5) }), rows);
  assert.equal(applyToList(rows, created('x'), {}, { prepend: false }), rows);
  assert.equal(applyToList(rows, created('x'), { created_after: at(5), phone_number_id: 'n1' }).length, 1);
});

test('status changes update rows in place; the same array when nothing changed', () => {
  const rows = [{ id: ID, status: 'queued' }, { id: 'other', status: 'ringing' }];
  const next = applyToList(rows, ev('live.call.status', { status: 'ringing', sequence: 1 }), {});
  assert.notEqual(next, rows);
  assert.equal(next[0].status, 'ringing');
  assert.equal(next[1], rows[1]);
  assert.equal(applyToList(next, ev('live.call.status', { status: 'queued', sequence: 0 }), {}), next);
  assert.equal(applyToList(next, ev('billing.balance.changed.v1', {}), {}), next);
});

test('matchesFilters', () => {
  const call = { id: 'x', status: 'completed', agent_id: 'a', phone_number_id: 'n', direction: 'inbound', created_at: at(30) };
  assert.equal(matchesFilters(call, {}), true);
  assert.equal(matchesFilters(call, { status: 'completed', agent_id: 'a', phone_number_id: 'n', direction: 'inbound' }), true);
  assert.equal(matchesFilters(call, { created_after: at(30), created_before: at(31) }), true);
  assert.equal(matchesFilters(call, { created_before: at(30) }), false);
});
