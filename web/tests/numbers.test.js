import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkContains } from '../src/views/numbers.js';

test('the number search\'s "contains" is checked as the API checks it (^[0-9*]{1,10}$)', () => {
  assert.deepEqual(checkContains('  555 '), { value: '555', problem: null });
  assert.deepEqual(checkContains('5*5'), { value: '5*5', problem: null });
  assert.deepEqual(checkContains(''), { value: null, problem: null });
  for (const bad of ['HELLO', '555-1', '12345678901', '5 5', '+1555']) {
    assert.equal(checkContains(bad).value, null, bad);
    assert.match(checkContains(bad).problem, /up to 10 digits/);
  }
});
