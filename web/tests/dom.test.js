import { test } from 'node:test';
import assert from 'node:assert/strict';

// A minimal document: enough to see what h() does with data, without a browser.
class FakeNode {
  constructor(nodeType) {
    this.nodeType = nodeType;
    this.childNodes = [];
  }
  get firstChild() {
    return this.childNodes[0] ?? null;
  }
  appendChild(child) {
    this.childNodes.push(child);
    return child;
  }
  removeChild(child) {
    this.childNodes = this.childNodes.filter((c) => c !== child);
    return child;
  }
  get textContent() {
    return this.childNodes.map((c) => c.textContent).join('');
  }
}
class FakeText extends FakeNode {
  constructor(text) {
    super(3);
    this.text = text;
  }
  get textContent() {
    return this.text;
  }
}
class FakeElement extends FakeNode {
  constructor(tag) {
    super(1);
    this.tagName = tag.toUpperCase();
    this.attributes = {};
    this.listeners = {};
    this.dataset = {};
  }
  setAttribute(name, value) {
    this.attributes[name] = String(value);
  }
  removeAttribute(name) {
    delete this.attributes[name];
  }
  hasAttribute(name) {
    return name in this.attributes;
  }
  addEventListener(type, fn) {
    this.listeners[type] = fn;
  }
  set innerHTML(_) {
    throw new Error('innerHTML used');
  }
}
globalThis.document = {
  createElement: (tag) => new FakeElement(tag),
  createTextNode: (text) => new FakeText(text),
};

const { h, replace, isSafeUrl } = await import('../src/dom.js');

test('data goes in as text, never as markup', () => {
  const name = '<img src=x onerror=alert(1)>';
  const element = h('p', { class: 'x' }, 'Hello ', name, 3, null, false, ['!', undefined]);
  assert.equal(element.childNodes.length, 4);
  assert.ok(element.childNodes.every((node) => node.nodeType === 3));
  assert.equal(element.textContent, `Hello ${name}3!`);
  assert.equal(element.attributes.class, 'x');
});

test('listeners are functions; handler attributes, style and innerHTML are refused', () => {
  let clicked = 0;
  const button = h('button', { onclick: () => { clicked += 1; } }, 'Go');
  button.listeners.click();
  assert.equal(clicked, 1);
  assert.equal('onclick' in button.attributes, false);
  assert.throws(() => h('div', { onclick: 'alert(1)' }), /not allowed/);
  assert.throws(() => h('div', { style: 'color: red' }), /not allowed/);
  assert.throws(() => h('div', { innerHTML: '<b>x</b>' }), /not allowed/);
});

test('links keep only safe URLs', () => {
  assert.equal(h('a', { href: '/calls/1' }).attributes.href, '/calls/1');
  assert.equal(h('a', { href: 'https://example.com/r.mp3' }).attributes.href, 'https://example.com/r.mp3');
  assert.equal(h('a', { href: 'javascript:alert(1)' }).attributes.href, undefined);
  assert.equal(h('a', { href: ' javascript:alert(1)' }).attributes.href, undefined);
  assert.equal(h('a', { href: 'data:text/html,<script>' }).attributes.href, undefined);
  assert.equal(h('a', { href: '//evil.example' }).attributes.href, undefined);
  assert.equal(isSafeUrl('mailto:a@b.c'), true);
  assert.equal(isSafeUrl(42), false);
});

test('boolean attributes, properties and data attributes', () => {
  const input = h('input', { disabled: true, required: false, value: 'v', dataset: { id: 7 }, 'aria-label': 'Name', title: undefined });
  assert.equal(input.attributes.disabled, '');
  assert.equal('required' in input.attributes, false);
  assert.equal(input.value, 'v');
  assert.equal(input.dataset.id, '7');
  assert.equal(input.attributes['aria-label'], 'Name');
  assert.equal('title' in input.attributes, false);
});

test('replace empties an element and appends the new content', () => {
  const list = h('ul', null, h('li', null, 'a'), h('li', null, 'b'));
  replace(list, h('li', null, 'c'));
  assert.equal(list.childNodes.length, 1);
  assert.equal(list.textContent, 'c');
});
