import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BalanceOrder, isNewerBalance } from '../src/balance.js';

test('balance events apply by sequence: late and repeated ones are ignored', () => {
  const order = new BalanceOrder();
  assert.equal(order.accept({ balance: 500, sequence: 4 }), true);
  assert.equal(order.accept({ balance: 400, sequence: 6 }), true);
  assert.equal(order.accept({ balance: 450, sequence: 5 }), false); // late
  assert.equal(order.accept({ balance: 400, sequence: 6 }), false); // repeated
  assert.equal(order.accept({ balance: 300, sequence: 7 }), true);
  assert.equal(order.last, 7);
});

test('a reload starts afresh; an event without a sequence cannot be ordered and applies', () => {
  const order = new BalanceOrder();
  order.accept({ sequence: 9 });
  order.reset();
  assert.equal(order.accept({ sequence: 3 }), true);
  assert.equal(order.accept({ balance: 1 }), true);
  assert.equal(order.last, 3);
  assert.equal(isNewerBalance(null, 1), true);
  assert.equal(isNewerBalance(2, 2), false);
  assert.equal(isNewerBalance(2, '3'), true);
});
