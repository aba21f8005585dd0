import { test } from 'node:test';
import assert from 'node:assert/strict';
import { contactLabel, doNotCallPath, e164, parseTags, previewImport, refusedRows, reportLines } from '../src/contacts.js';
import { errorFromBody } from '../src/api.js';

test('numbers as people write them become E.164, as the API makes them', () => {
  assert.equal(e164('+1 (415) 555-0100'), '+14155550100');
  assert.equal(e164('+44.7700.900123'), '+447700900123');
  assert.equal(e164('4155550100'), null);
  assert.equal(e164('+0123456'), null);
  assert.equal(e164(''), null);
});

test('import preview: header with phone read as phone_number, known columns, variables, tags split by ;', () => {
  const preview = previewImport('\ufeffPhone,Name,email,tags,do_not_call,appointment\n+1 415 555 0100,Ada,ada@example.com,vip; spring ,,Tue 10:00\n+14155550101,"Turing, Alan",,,YES,\n\n');
  assert.equal(preview.error, null);
  assert.deepEqual(preview.columns, ['phone_number', 'name', 'email', 'tags', 'do_not_call', 'appointment']);
  assert.deepEqual(preview.variables, ['appointment']);
  assert.equal(preview.count, 2);
  assert.equal(preview.problems, 0);
  assert.deepEqual(preview.rows[0], {
    index: 0, phone: '+1 415 555 0100', name: 'Ada', email: 'ada@example.com', tags: ['vip', 'spring'], doNotCall: null,
    variables: { appointment: 'Tue 10:00' }, problem: null,
  });
  assert.equal(preview.rows[1].name, 'Turing, Alan');
  assert.equal(preview.rows[1].doNotCall, true);
});

test('import preview: a semicolon in a cell does not change the delimiter', () => {
  const preview = previewImport('phone;tags\n+14155550100;vip');
  assert.equal(preview.error, 'The header has no phone_number (or phone) column.');
  const ok = previewImport('phone,tags\n+14155550100,a;b');
  assert.deepEqual(ok.rows[0].tags, ['a', 'b']);
});

test('import preview: header problems stop it, row problems are counted by row', () => {
  assert.match(String(previewImport('').error), /No header/);
  assert.match(String(previewImport('name,email\nAda,a@b.co').error), /no phone_number/);
  assert.match(String(previewImport('phone,name,Name\n+14155550100,a,b').error), /repeats the column "name"/);
  assert.match(String(previewImport('phone,,x\n+14155550100').error), /empty column name/);
  const preview = previewImport([
    'phone_number,email,do_not_call,first name',
    '555-0100,,,',
    '+14155550100,not-an-email,maybe,',
    '+14155550101,,,',
    '+1 415 555 0101,,,',
    '+14155550102,,,,extra',
    ',ada@example.com,,',
    '+14155550103,,,x',
  ].join('\n'));
  assert.equal(preview.count, 7);
  assert.deepEqual(preview.rows.map((row) => row.problem), [
    'phone_number: "555-0100" is not an E.164 number (+14155550123)',
    'do_not_call: "maybe" is not true or false; email: "not-an-email" is not an email address',
    null,
    'repeats the number of row 2',
    '5 cells for 4 columns',
    'phone_number: missing',
    'variables: "first name" is not a variable name (letters, digits and _)',
  ]);
  assert.equal(preview.problems, 6);
});

test('the import report becomes lines: rows from 1, numbers understood or as sent, invalid first', () => {
  const preview = previewImport('phone,name\n+14155550100,Ada\nnope,Bob\n+14155550101,Eve\n');
  const report = {
    created: 1, updated: 1, invalid: 1,
    rows: [
      { index: 0, outcome: /** @type {const} */ ('created'), phone_number: '+14155550100', contact_id: 'c1', reason: null },
      { index: 1, outcome: /** @type {const} */ ('invalid'), phone_number: null, contact_id: null, reason: 'phone_number: String should match pattern' },
      { index: 2, outcome: /** @type {const} */ ('updated'), phone_number: '+14155550101', contact_id: 'c2', reason: null },
    ],
  };
  assert.deepEqual(reportLines(report, preview).map((l) => [l.row, l.outcome, l.phone, l.name, l.contactId]), [
    [1, 'created', '+14155550100', 'Ada', 'c1'],
    [2, 'invalid', 'nope', 'Bob', null],
    [3, 'updated', '+14155550101', 'Eve', 'c2'],
  ]);
  assert.deepEqual(reportLines(report, preview, { invalidFirst: true }).map((l) => l.row), [2, 1, 3]);
  assert.deepEqual(reportLines(report).map((l) => l.phone), ['+14155550100', '', '+14155550101']);
  assert.deepEqual(reportLines(/** @type {any} */ ({})), []);
});

test('an all-or-nothing 422 becomes the refused rows, header errors apart', () => {
  const preview = previewImport('phone,name\n+14155550100,Ada\nnope,Bob\n+14155550100,Eve\n');
  const error = errorFromBody(422, { detail: [
    { loc: ['body', 'csv', 1], msg: 'phone_number: String should match pattern', type: 'value_error' },
    { loc: ['body', 'csv', 2], msg: 'repeats the number of row 0', type: 'value_error' },
  ] });
  const refused = refusedRows(error.fields, preview);
  assert.deepEqual(refused.general, []);
  assert.deepEqual(refused.lines.map((l) => [l.row, l.phone, l.name, l.reason]), [
    [2, 'nope', 'Bob', 'phone_number: String should match pattern'],
    [3, '+14155550100', 'Eve', 'repeats the number of row 0'],
  ]);
  const header = errorFromBody(422, { detail: [{ loc: ['body', 'csv'], msg: 'the header has no phone_number (or phone) column' }] });
  assert.deepEqual(refusedRows(header.fields, null), { lines: [], general: ['csv: the header has no phone_number (or phone) column'] });
  assert.equal(refusedRows(errorFromBody(422, { detail: [{ loc: ['body', 'rows', 4], msg: 'x' }] }).fields).lines[0].row, 5);
});

test('tags typed as text', () => {
  assert.deepEqual(parseTags(' vip, spring promo ,,vip; b2b '), { tags: ['vip', 'spring promo', 'b2b'], invalid: [] });
  assert.deepEqual(parseTags(''), { tags: [], invalid: [] });
  assert.deepEqual(parseTags('x'.repeat(41)).invalid, ['x'.repeat(41)]);
});

test('do-not-call paths encode the + as %2B and drop formatting', () => {
  assert.equal(doNotCallPath('+14155550100'), '/v1/do-not-call/%2B14155550100');
  assert.equal(doNotCallPath('+1 (415) 555-0100'), '/v1/do-not-call/%2B14155550100');
  assert.equal(doNotCallPath('+44/x?y#z'), '/v1/do-not-call/%2B44%2Fx%3Fy%23z');
});

test('a contact is named by its name, else its number', () => {
  assert.equal(contactLabel({ name: 'Ada', phone_number: '+1' }), 'Ada');
  assert.equal(contactLabel({ name: null, phone_number: '+14155550100' }), '+14155550100');
  assert.equal(contactLabel(null), '');
});
