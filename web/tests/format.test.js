import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatMoney, parseMoney, formatDuration, formatSeconds, formatStatus, formatAgo, dayBoundary, formatDateTime } from '../src/format.js';

test('money is in the smallest unit of its currency', () => {
  assert.equal(formatMoney(1250, 'USD'), '$12.50');
  assert.equal(formatMoney(7, 'usd'), '$0.07');
  assert.equal(formatMoney(-7, 'USD'), '-$0.07');
  assert.equal(formatMoney(0, 'USD'), '$0.00');
  assert.equal(formatMoney(123456789, 'USD'), '$1,234,567.89');
  assert.equal(formatMoney(1250, 'EUR'), '€12.50');
  assert.equal(formatMoney(500, 'JPY'), '¥500');
  assert.equal(formatMoney(1500, 'KWD').replace(/\s/g, ' '), 'KWD 1.500');
  assert.equal(formatMoney(null, 'USD'), '—');
  assert.equal(formatMoney(100, 'XXQ').replace(/\s/g, ' '), 'XXQ 1.00');
  assert.equal(formatMoney(100, 'US'), '1.00 US');
});

test('parseMoney turns a display amount into the smallest unit', () => {
  assert.equal(parseMoney('12.50'), 1250);
  assert.equal(parseMoney(' 1,000 '), 100000);
  assert.equal(parseMoney('0.1'), 10);
  assert.equal(parseMoney('500', 'JPY'), 500);
  assert.equal(parseMoney('abc'), null);
  assert.equal(parseMoney(''), null);
});

test('durations read like a clock', () => {
  assert.equal(formatDuration(0), '0:00');
  assert.equal(formatDuration(7), '0:07');
  assert.equal(formatDuration(65), '1:05');
  assert.equal(formatDuration(3723), '1:02:03');
  assert.equal(formatDuration(59.9), '0:59');
  assert.equal(formatDuration(null), '—');
  assert.equal(formatDuration(-1), '—');
  assert.equal(formatSeconds(45), '45 s');
  assert.equal(formatSeconds(600), '10 min');
  assert.equal(formatSeconds(5400), '1 h 30 min');
  assert.equal(formatSeconds(3601), '1 h 1 s');
});

test('statuses in words', () => {
  assert.equal(formatStatus('in-progress'), 'In progress');
  assert.equal(formatStatus('no-answer'), 'No answer');
  assert.equal(formatStatus('retry_wait'), 'Retry wait');
  assert.equal(formatStatus(null), '—');
});

test('how long ago', () => {
  const now = Date.parse('2026-11-27T12:00:00Z');
  assert.equal(formatAgo('2026-11-27T11:59:50Z', now), 'just now');
  assert.equal(formatAgo('2026-11-27T11:55:00Z', now), '5 min ago');
  assert.equal(formatAgo('2026-11-27T09:00:00Z', now), '3 h ago');
  assert.equal(formatAgo('2026-11-25T12:00:00Z', now), '2 d ago');
  assert.equal(formatAgo(null, now), '—');
  assert.equal(formatAgo('not a date', now), '—');
});

test('dates in the chosen zone; day boundaries for filters', () => {
  assert.equal(formatDateTime('2026-11-27T10:05:00Z', 'en-GB', 'UTC'), '27 Nov 2026, 10:05');
  assert.equal(formatDateTime(null), '—');
  const start = dayBoundary('2026-11-27', 'start');
  const end = dayBoundary('2026-11-27', 'end');
  assert.equal(Date.parse(end) - Date.parse(start), 24 * 3600 * 1000);
  assert.equal(new Date(start).getDate(), 27);
  assert.equal(dayBoundary('27/11/2026', 'start'), null);
});
