import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseCsv, parseRecipients, normalisePhone } from '../src/csv.js';

test('CSV cells: quotes, doubled quotes, commas and line breaks inside quotes, CRLF', () => {
  assert.deepEqual(parseCsv('a,b\r\n"c, d","say ""hi"""\n"multi\nline",e\n\n'), [
    ['a', 'b'], ['c, d', 'say "hi"'], ['multi\nline', 'e'],
  ]);
  assert.deepEqual(parseCsv('x;y\n1;2'), [['x', 'y'], ['1', '2']]);
});

test('a header row names the variables', () => {
  const parsed = parseRecipients('phone,first_name,plan\n+1 (555) 123-4567,Ada,Pro\n+15557654321,Alan,\n');
  assert.deepEqual(parsed.problems, []);
  assert.deepEqual(parsed.variables, ['first_name', 'plan']);
  assert.deepEqual(parsed.recipients, [
    { to: '+15551234567', variables: { first_name: 'Ada', plan: 'Pro' } },
    { to: '+15557654321', variables: { first_name: 'Alan' } },
  ]);
});

test('numbers alone need no header', () => {
  const parsed = parseRecipients('+15551234567\n+447700900123\n');
  assert.deepEqual(parsed.recipients.map((r) => r.to), ['+15551234567', '+447700900123']);
  assert.deepEqual(parsed.problems, []);
});

test('bad rows are named by line, repeats refused, nameless columns refused', () => {
  const parsed = parseRecipients('phone,first name\n5551234567,Ada\n+15551234567,Bob\n+15551234567,Eve\n');
  assert.deepEqual(parsed.problems.map((p) => p.line), [1, 2, 4]);
  assert.match(parsed.problems[0].message, /not a variable name/);
  assert.match(parsed.problems[1].message, /international format/);
  assert.match(parsed.problems[2].message, /already on the list/);
  const nameless = parseRecipients('+15551234567,Ada\n');
  assert.match(nameless.problems[0].message, /header row/);
});

test('normalisePhone', () => {
  assert.equal(normalisePhone('+44 20 7946 0958'), '+442079460958');
  assert.equal(normalisePhone('0044 20 7946 0958'), '+442079460958');
  assert.equal(normalisePhone('555-1234'), null);
  assert.equal(normalisePhone('call me'), null);
});
