import { test } from 'node:test';
import assert from 'node:assert/strict';
import { matchRoute, fill, isAppLink } from '../src/router.js';

const routes = [
  { path: '/', name: 'home' },
  { path: '/calls', name: 'calls' },
  { path: '/calls/new', name: 'place' },
  { path: '/calls/:id', name: 'call' },
  { path: '/settings/webhooks/:id', name: 'webhook' },
];

test('static paths, parameters, and the first route winning', () => {
  assert.equal(matchRoute(routes, '/').route.name, 'home');
  assert.equal(matchRoute(routes, '/calls').route.name, 'calls');
  assert.equal(matchRoute(routes, '/calls/').route.name, 'calls');
  assert.equal(matchRoute(routes, '/calls/new').route.name, 'place');
  const call = matchRoute(routes, '/calls/4b4c5a1e-0000-4000-8000-000000000001');
  assert.equal(call.route.name, 'call');
  assert.deepEqual(call.params, { id: '4b4c5a1e-0000-4000-8000-000000000001' });
  assert.deepEqual(matchRoute(routes, '/settings/webhooks/abc').params, { id: 'abc' });
});

test('parameters are decoded; malformed encodings and unknown paths match nothing', () => {
  assert.deepEqual(matchRoute(routes, '/calls/a%20b').params, { id: 'a b' });
  assert.equal(matchRoute(routes, '/calls/%E0%A4%A'), null);
  assert.equal(matchRoute(routes, '/calls/1/more'), null);
  assert.equal(matchRoute(routes, '/nowhere'), null);
});

test('fill encodes parameters into a pattern', () => {
  assert.equal(fill('/calls/:id', { id: 'a/b c' }), '/calls/a%2Fb%20c');
});

const click = { button: 0, metaKey: false, ctrlKey: false, shiftKey: false, altKey: false, defaultPrevented: false };
const ORIGIN = 'https://app.example.com';

test('only plain clicks on links to the app itself are routed', () => {
  assert.equal(isAppLink(click, { href: '/calls' }, ORIGIN), true);
  assert.equal(isAppLink(click, { href: `${ORIGIN}/billing?checkout=success` }, ORIGIN), true);
  assert.equal(isAppLink({ ...click, metaKey: true }, { href: '/calls' }, ORIGIN), false);
  assert.equal(isAppLink({ ...click, button: 1 }, { href: '/calls' }, ORIGIN), false);
  assert.equal(isAppLink({ ...click, defaultPrevented: true }, { href: '/calls' }, ORIGIN), false);
  assert.equal(isAppLink(click, { href: '/calls', target: '_blank' }, ORIGIN), false);
  assert.equal(isAppLink(click, { href: '/calls', download: true }, ORIGIN), false);
  assert.equal(isAppLink(click, { href: 'https://checkout.stripe.com/c/pay' }, ORIGIN), false);
  assert.equal(isAppLink(click, { href: '/docs' }, ORIGIN), false);
  assert.equal(isAppLink(click, { href: '/v1/openapi.json' }, ORIGIN), false);
});

test('links to a #fragment of the page itself are left to the browser (skip link, # links)', async () => {
  const { isSamePageLink } = await import('../src/router.js');
  const here = `${ORIGIN}/calls?status=queued`;
  assert.equal(isAppLink(click, { href: `${ORIGIN}/calls?status=queued#main` }, ORIGIN, here), false);
  assert.equal(isAppLink(click, { href: '#main' }, ORIGIN, here), false);
  assert.equal(isAppLink(click, { href: `${here}#` }, ORIGIN, here), false);
  assert.equal(isAppLink(click, { href: '#' }, ORIGIN, `${here}#main`), false);
  // Another path or query, with or without a fragment, is another screen.
  assert.equal(isAppLink(click, { href: `${ORIGIN}/calls#main` }, ORIGIN, here), true);
  assert.equal(isAppLink(click, { href: `${ORIGIN}/agents#main` }, ORIGIN, here), true);
  assert.equal(isAppLink(click, { href: `${ORIGIN}/calls?status=queued` }, ORIGIN, here), true);
  assert.equal(isSamePageLink(`${ORIGIN}/calls?status=queued`, `${here}#main`), false);
  assert.equal(isSamePageLink('https://elsewhere.example/calls?status=queued#x', here), false);
});

test('the router does not re-mount the screen when only the hash changes', async () => {
  const { Router } = await import('../src/router.js');
  const listeners = {};
  let clickHandler;
  const location = new URL(`${ORIGIN}/calls`);
  const win = {
    location,
    addEventListener: (type, fn) => { listeners[type] = fn; },
    document: { addEventListener: (_type, fn) => { clickHandler = fn; } },
    history: {
      pushState: (_s, _t, path) => { location.href = new URL(path, location).href; },
      replaceState: (_s, _t, path) => { location.href = new URL(path, location).href; },
    },
  };
  const shown = [];
  const router = new Router([{ path: '/calls' }, { path: '/agents' }], (match, url) => shown.push(url.pathname + url.hash), win);
  router.start();
  assert.deepEqual(shown, ['/calls']);

  // A click on the skip link: not prevented, the browser moves to #main (and fires popstate).
  let prevented = false;
  const anchor = { href: `${ORIGIN}/calls#main`, target: '', hasAttribute: () => false };
  clickHandler({ ...click, target: { closest: () => anchor }, preventDefault: () => { prevented = true; } });
  assert.equal(prevented, false);
  location.hash = '#main';
  listeners.popstate();
  assert.deepEqual(shown, ['/calls']);

  // A link to another screen is routed; back to /calls#main is a change of screen.
  const other = { href: `${ORIGIN}/agents`, target: '', hasAttribute: () => false };
  clickHandler({ ...click, target: { closest: () => other }, preventDefault: () => { prevented = true; } });
  assert.equal(prevented, true);
  assert.deepEqual(shown, ['/calls', '/agents']);
  location.href = `${ORIGIN}/calls#main`;
  listeners.popstate();
  assert.deepEqual(shown, ['/calls', '/agents', '/calls#main']);
});
