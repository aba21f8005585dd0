import { test } from 'node:test';
import assert from 'node:assert/strict';
import { busy, watchFilters } from '../src/ui.js';

function fakeButton(disabled = false) {
  return {
    disabled,
    attributes: {},
    setAttribute(name, value) { this.attributes[name] = value; },
    removeAttribute(name) { delete this.attributes[name]; },
  };
}

test('busy disables the form\'s buttons meanwhile and gives each back its own state', async () => {
  const submit = fakeButton();
  const other = fakeButton();
  const off = fakeButton(true); // disabled for its own reason (nothing to delete, say)
  submit.form = { querySelectorAll: () => [submit, other, off] };
  let during;
  const result = await busy(submit, null, async () => {
    during = [submit.disabled, other.disabled, off.disabled, submit.attributes['aria-busy']];
    return 'done';
  });
  assert.equal(result, 'done');
  assert.deepEqual(during, [true, true, true, 'true']);
  assert.deepEqual([submit.disabled, other.disabled, off.disabled], [false, false, true]);
  assert.equal('aria-busy' in submit.attributes, false);
});

test('busy restores the states after a failure too', async () => {
  const submit = fakeButton();
  const off = fakeButton(true);
  submit.form = { querySelectorAll: () => [submit, off] };
  const original = console.error;
  console.error = () => {};
  try {
    assert.equal(await busy(submit, null, async () => { throw new Error('boom'); }), undefined);
  } finally {
    console.error = original;
  }
  assert.deepEqual([submit.disabled, off.disabled], [false, true]);
});

test('a filter form puts its choices in the address and says so on change, submit and reset', async () => {
  const addresses = [];
  globalThis.window = { history: { replaceState: (_state, _title, url) => addresses.push(url) } };
  const listeners = {};
  const controls = { status: { value: '' }, agent_id: { value: '' } };
  const filterForm = {
    elements: { namedItem: (name) => controls[name] ?? null },
    addEventListener: (type, listener) => { listeners[type] = listener; },
  };
  const chosen = { status: '', agent_id: '' };
  let changes = 0;
  let prevented = false;
  try {
    watchFilters(filterForm, chosen, '/calls', () => { changes += 1; });
    controls.status.value = 'busy';
    listeners.change();
    listeners.submit({ preventDefault: () => { prevented = true; } });
    controls.status.value = '';
    listeners.reset();
    await new Promise((resolve) => setTimeout(resolve, 5));
  } finally {
    delete globalThis.window;
  }
  assert.deepEqual(addresses, ['/calls?status=busy', '/calls?status=busy', '/calls']);
  assert.deepEqual(chosen, { status: '', agent_id: '' });
  assert.equal(changes, 3);
  assert.ok(prevented, 'a submit does not reload the page');
});
