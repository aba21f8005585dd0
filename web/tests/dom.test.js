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

test('same-site paths: only paths that stay on this origin', async () => {
  const { sitePath } = await import('../src/dom.js');
  const origin = 'https://app.novitrac.test';
  assert.equal(sitePath('/calls/1?x=1#t', origin), '/calls/1?x=1#t');
  assert.equal(sitePath('/billing/top-up', origin), '/billing/top-up');
  assert.equal(sitePath('https://app.novitrac.test/calls', origin), '/calls');
  for (const bad of ['//evil.example', '/\\evil.example', '\\\\evil.example', '/\t/evil.example', '/\n/evil.example',
    '\t//evil.example', ' /calls', '/calls\u0000', 'https://evil.example/calls', 'javascript:alert(1)', 'calls',
    '../calls', '', null, undefined, 42]) {
    assert.equal(sitePath(bad, origin), null, JSON.stringify(bad));
  }
});

test('URL attributes: names checked whatever their case; backslash and control characters refused', () => {
  assert.equal(h('a', { href: '/\\evil.example' }).attributes.href, undefined);
  assert.equal(h('a', { href: '/\t/evil.example' }).attributes.href, undefined);
  assert.equal(h('a', { href: '#main' }).attributes.href, '#main');
  assert.equal(h('a', { HREF: 'javascript:alert(1)' }).attributes.href, undefined);
  assert.equal('HREF' in h('a', { HREF: 'javascript:alert(1)' }).attributes, false);
  assert.equal(h('a', { HREF: '/calls' }).attributes.href, '/calls');
  assert.equal(h('a', { 'xlink:href': 'javascript:alert(1)' }).attributes['xlink:href'], undefined);
  assert.equal(h('a', { 'XLink:Href': 'javascript:alert(1)' }).attributes['xlink:href'], undefined);
  assert.equal(h('video', { poster: 'javascript:alert(1)' }).attributes.poster, undefined);
  assert.equal(h('video', { poster: '/poster.png' }).attributes.poster, '/poster.png');
  assert.equal(h('a', { ping: '/track https://evil.example/x' }).attributes.ping, '/track https://evil.example/x');
  assert.equal(h('a', { ping: '/track //evil.example/x' }).attributes.ping, undefined);
  assert.equal(h('img', { srcset: '/a.png 1x, /b.png 2x' }).attributes.srcset, '/a.png 1x, /b.png 2x');
  assert.equal(h('img', { srcset: '/a.png 1x, javascript:alert(1) 2x' }).attributes.srcset, undefined);
  assert.equal(h('img', { SrcSet: '//evil.example/a.png' }).attributes.srcset, undefined);
  assert.throws(() => h('div', { onClick: 'alert(1)' }), /not allowed/);
  assert.throws(() => h('div', { STYLE: 'color: red' }), /not allowed/);
  assert.throws(() => h('div', { innerhtml: '<b>x</b>' }), /not allowed/);
  assert.throws(() => h('iframe', { SrcDoc: '<script>' }), /not allowed/);
  assert.equal(isSafeUrl('/\\evil.example'), false);
});
