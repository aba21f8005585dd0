import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  addMessage, contactLookup, contactsByNumber, matchesMessageFilters, messageFromEvent, otherParty, segments, sendErrors, textingNumbers,
} from '../src/messages.js';

const sent = (id, extra = {}) => ({
  id, phone_number_id: 'n1', direction: 'outbound', from_number: '+15550000001', to_number: '+15551112222',
  body: 'hi', status: 'queued', created_at: '2026-11-27T03:00:00Z', ...extra,
});

test('the other party is the sender of a received text and the recipient of a sent one', () => {
  assert.equal(otherParty({ direction: 'inbound', from_number: '+1a', to_number: '+1b' }), '+1a');
  assert.equal(otherParty({ direction: 'outbound', from_number: '+1a', to_number: '+1b' }), '+1b');
});

test('telephony.sms.* events become list rows; other events do not', () => {
  const received = messageFromEvent({
    id: 'e1', type: 'telephony.sms.received.v1', occurred_at: '2026-11-27T03:01:00Z',
    data: { message_id: 'm1', org_id: 'o', phone_number_id: 'n1', from_number: '+15551112222', to_number: '+15550000001', body: 'STOP' },
  });
  assert.deepEqual(received, {
    id: 'm1', phone_number_id: 'n1', direction: 'inbound', from_number: '+15551112222', to_number: '+15550000001',
    body: 'STOP', status: 'received', created_at: '2026-11-27T03:01:00Z',
  });
  const out = messageFromEvent({ id: 'e2', type: 'telephony.sms.sent.v1', occurred_at: 't', data: { message_id: 'm2', phone_number_id: 'n1', from_number: '+1', to_number: '+2', body: 'x' } });
  assert.equal(out?.direction, 'outbound');
  assert.equal(out?.status, 'queued');
  assert.equal(messageFromEvent({ id: 'e3', type: 'telephony.call.created.v1', occurred_at: 't', data: { call_id: 'c' } }), null);
  assert.equal(messageFromEvent({ id: 'e4', type: 'telephony.sms.sent.v1', occurred_at: 't', data: {} }), null);
});

test('a new text joins the first page when it matches the filters, once', () => {
  const list = [sent('a'), sent('b')];
  const added = addMessage(list, sent('c'), {}, { prepend: true, limit: 2 });
  assert.deepEqual(added.map((m) => m.id), ['c', 'a']);
  assert.equal(addMessage(list, sent('a'), {}, { prepend: true }), list, 'already shown (the send answer, then its event)');
  assert.equal(addMessage(list, sent('c'), {}, { prepend: false }), list, 'not on an older page');
  assert.equal(addMessage(list, sent('c'), { direction: 'inbound' }), list);
  assert.equal(addMessage(list, sent('c'), { phone_number_id: 'n2' }), list);
  assert.equal(addMessage(list, null, {}), list);
  assert.ok(matchesMessageFilters(sent('c'), { direction: 'outbound', phone_number_id: 'n1' }));
});

test('a page\'s numbers are looked up once each, E.164 only, at most 100', () => {
  assert.deepEqual(contactLookup(['+15551112222', '+15551113333', '+15551112222']), ['+15551112222', '+15551113333']);
  assert.deepEqual(contactLookup(['SHORTCODE', '12345', '+0123']), []);
  const many = Array.from({ length: 150 }, (_, i) => `+1555000${String(i).padStart(4, '0')}`);
  assert.equal(contactLookup(many).length, 100);
});

test('contacts are matched by exact number; a number the answer lacks is no contact', () => {
  const numbers = ['+15551112222', '+15551113333'];
  const page = { items: [{ id: 'c1', name: 'Ada', phone_number: '+15551112222' }] };
  const found = contactsByNumber(numbers, page);
  assert.deepEqual(found.get('+15551112222'), { id: 'c1', name: 'Ada' });
  assert.equal(found.get('+15551113333'), null);
  assert.equal(found.has('+15551113333'), true);
});

test('only numbers able to text are offered', () => {
  assert.deepEqual(textingNumbers([{ id: 'a', sms: true }, { id: 'b', sms: false }, { id: 'c' }]).map((n) => n.id), ['a']);
});

test('send refusals land on their fields', () => {
  assert.deepEqual(sendErrors({ status: 422, code: 'validation_error', message: 'x', fields: [
    { field: 'to', message: 'not a phone number' }, { field: 'body', message: 'too long' }, { field: 'extra', message: 'not allowed' },
  ] }), { fields: { to: 'not a phone number', body: 'too long' }, other: ['extra: not allowed'] });
  assert.deepEqual(sendErrors({ status: 409, code: 'do_not_call', message: '+1555 is on the list' }),
    { fields: { to: '+1555 is on the list' }, other: [] });
  assert.deepEqual(sendErrors({ status: 409, code: 'conflict', message: '+1555 cannot send texts' }),
    { fields: { from_number_id: '+1555 cannot send texts' }, other: [] });
  assert.ok(sendErrors({ status: 404, code: 'not_found', message: 'phone number x not found' }).fields.from_number_id);
  assert.deepEqual(sendErrors({ status: 402, code: 'payment_required', message: 'Top up' }), { fields: {}, other: ['Top up'] });
  assert.deepEqual(sendErrors({ status: 422, code: 'validation_error', message: 'no fields', fields: [] }), { fields: {}, other: ['no fields'] });
});

test('segments: GSM-7 160/153, extended characters count twice, UCS-2 70/67', () => {
  assert.deepEqual(segments(''), { encoding: 'GSM-7', units: 0, segments: 0 });
  assert.deepEqual(segments('a'.repeat(160)), { encoding: 'GSM-7', units: 160, segments: 1 });
  assert.deepEqual(segments('a'.repeat(161)), { encoding: 'GSM-7', units: 161, segments: 2 });
  assert.equal(segments('€'.repeat(80)).units, 160);
  assert.deepEqual(segments('é'.repeat(10)).encoding, 'GSM-7');
  assert.deepEqual(segments('ç'.repeat(70)), { encoding: 'UCS-2', units: 70, segments: 1 });
  assert.deepEqual(segments('ç'.repeat(71)), { encoding: 'UCS-2', units: 71, segments: 2 });
  assert.equal(segments('👋').units, 2);
});
