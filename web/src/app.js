// The dashboard's entry point: the session, the live socket, the shell and the routes.

import { h, replace, sitePath } from './dom.js';
import { Api, StorageTokenStore, MemoryTokenStore } from './api.js';
import { LiveClient, socketUrl } from './live.js';
import { Router } from './router.js';
import { toast, RESYNC } from './ui.js';
import * as auth from './views/auth.js';
import * as calls from './views/calls.js';
import * as messages from './views/messages.js';
import * as agents from './views/agents.js';
import * as numbers from './views/numbers.js';
import * as campaigns from './views/campaigns.js';
import * as contacts from './views/contacts.js';
import * as billing from './views/billing.js';
import * as settings from './views/settings.js';
import * as notifications from './views/notifications.js';

/**
 * @typedef {import('./live.js').Envelope} Envelope
 * @typedef {{id: string, name: string, role: string}} Organization
 * @typedef {{user: {id: string, email: string, name: string}, organization: Organization,
 *   role: string, organizations: Organization[]}} Me
 * @typedef {object} View what a screen gets for its lifetime
 * @property {Record<string, string>} params
 * @property {URL} url
 * @property {(listener: (event: Envelope) => void) => void} subscribe live events while shown
 * @property {() => boolean} alive false once the user has left the screen
 * @property {(cleanup: () => void) => void} onDispose
 * @typedef {object} Context what every screen may use
 * @property {Api} api
 * @property {LiveClient} live
 * @property {Me | null} me
 * @property {(path: string, options?: {replace?: boolean}) => void} navigate
 * @property {() => Promise<void>} refreshMe
 * @property {(pair: import('./api.js').TokenPair, next?: string) => Promise<void>} signIn
 * @property {() => boolean} canManage the user is an owner or an admin
 * @typedef {(ctx: Context, view: View) => Node} Screen
 * @typedef {{path: string, screen: Screen, title: string, public?: boolean, section?: string}} AppRoute
 */

/** @type {AppRoute[]} */
const routes = [
  { path: '/login', screen: auth.login, title: 'Log in', public: true },
  { path: '/signup', screen: auth.signup, title: 'Sign up', public: true },
  { path: '/verify', screen: auth.verify, title: 'Verify your email', public: true },
  { path: '/forgot-password', screen: auth.forgot, title: 'Forgot password', public: true },
  { path: '/reset-password', screen: auth.reset, title: 'Reset password', public: true },
  { path: '/invitations/accept', screen: auth.acceptInvitation, title: 'Join an organisation', public: true },
  { path: '/', screen: calls.list, title: 'Calls', section: 'calls' },
  { path: '/calls', screen: calls.list, title: 'Calls', section: 'calls' },
  { path: '/calls/new', screen: calls.place, title: 'Place a call', section: 'calls' },
  { path: '/calls/:id', screen: calls.detail, title: 'Call', section: 'calls' },
  { path: '/messages', screen: messages.list, title: 'Messages', section: 'messages' },
  { path: '/agents', screen: agents.list, title: 'Agents', section: 'agents' },
  { path: '/agents/new', screen: agents.edit, title: 'New agent', section: 'agents' },
  { path: '/agents/:id', screen: agents.edit, title: 'Agent', section: 'agents' },
  { path: '/numbers', screen: numbers.list, title: 'Numbers', section: 'numbers' },
  { path: '/numbers/buy', screen: numbers.buy, title: 'Buy a number', section: 'numbers' },
  { path: '/numbers/import', screen: numbers.importNumber, title: 'Import a number', section: 'numbers' },
  { path: '/campaigns', screen: campaigns.list, title: 'Campaigns', section: 'campaigns' },
  { path: '/campaigns/new', screen: campaigns.create, title: 'New campaign', section: 'campaigns' },
  { path: '/campaigns/:id', screen: campaigns.detail, title: 'Campaign', section: 'campaigns' },
  { path: '/contacts', screen: contacts.list, title: 'Contacts', section: 'contacts' },
  { path: '/contacts/new', screen: contacts.edit, title: 'New contact', section: 'contacts' },
  { path: '/contacts/import', screen: contacts.importContacts, title: 'Import contacts', section: 'contacts' },
  { path: '/contacts/:id', screen: contacts.edit, title: 'Contact', section: 'contacts' },
  { path: '/do-not-call', screen: contacts.doNotCall, title: 'Do-not-call list', section: 'contacts' },
  { path: '/billing', screen: billing.overview, title: 'Billing', section: 'billing' },
  { path: '/billing/top-up', screen: billing.overview, title: 'Billing', section: 'billing' },
  { path: '/billing/plan', screen: billing.overview, title: 'Billing', section: 'billing' },
  { path: '/billing/invoices', screen: billing.overview, title: 'Billing', section: 'billing' },
  { path: '/settings', screen: settings.team, title: 'Team', section: 'settings' },
  { path: '/settings/team', screen: settings.team, title: 'Team', section: 'settings' },
  { path: '/settings/api-keys', screen: settings.apiKeys, title: 'API keys', section: 'settings' },
  { path: '/settings/webhooks', screen: settings.webhooks, title: 'Webhooks', section: 'settings' },
  { path: '/settings/webhooks/:id', screen: settings.webhookDetail, title: 'Webhook endpoint', section: 'settings' },
  { path: '/settings/notifications', screen: settings.preferences, title: 'Notification preferences', section: 'settings' },
  { path: '/settings/account', screen: settings.account, title: 'Account', section: 'settings' },
  { path: '/notifications', screen: notifications.feed, title: 'Notifications' },
];

const SECTIONS = [
  ['calls', 'Calls', '/calls'],
  ['messages', 'Messages', '/messages'],
  ['agents', 'Agents', '/agents'],
  ['numbers', 'Numbers', '/numbers'],
  ['campaigns', 'Campaigns', '/campaigns'],
  ['contacts', 'Contacts', '/contacts'],
  ['billing', 'Billing', '/billing'],
  ['settings', 'Settings', '/settings'],
];

function storage() {
  try {
    window.localStorage.setItem('novitrac.probe', '1');
    window.localStorage.removeItem('novitrac.probe');
    return new StorageTokenStore(window.localStorage);
  } catch {
    return new MemoryTokenStore();
  }
}

const tokens = storage();
const locks = /** @type {any} */ (navigator).locks;
const api = new Api({
  fetch: window.fetch.bind(window),
  tokens,
  lock: locks ? (name, task) => locks.request(name, task) : undefined,
  onSessionEnded: () => ended('Your session has ended. Please log in again.'),
});

const liveState = h('span', { class: 'live-state', role: 'status', title: 'Live updates' });
const live = new LiveClient({
  url: () => socketUrl(window.location),
  WebSocket: /** @type {any} */ (window.WebSocket),
  getToken: async (reason) => {
    if (reason === 'unauthorized') {
      const session = tokens.get();
      if (!session) return null;
      const renewed = await api.refresh(session);
      return renewed ? renewed.access : null;
    }
    return api.accessToken();
  },
  onState: (state) => {
    liveState.dataset.state = state;
    liveState.textContent = state === 'open' ? 'Live' : state === 'closed' ? 'Offline' : 'Connecting…';
  },
  // Events may have been missed: the screens showing live data reload it (forms are left alone).
  onResync: () => live.dispatch({ id: 'resync', type: RESYNC, occurred_at: new Date().toISOString(), data: {} }),
  onUnauthorized: () => ended('Your session has ended. Please log in again.'),
});
window.addEventListener('online', () => live.nudge());
window.addEventListener('storage', (event) => {
  // Another tab logged out, or logged in to another organisation.
  if (event.key !== tokens.key) return;
  const session = tokens.get();
  if (!session) ended(null);
  else if (ctx.me && session.orgId && session.orgId !== ctx.me.organization.id) window.location.reload();
});

/** @type {Context} */
const ctx = {
  api,
  live,
  me: null,
  navigate: (path, options) => router.navigate(path, options),
  refreshMe: async () => {
    ctx.me = await api.get('/v1/auth/me');
    renderShellHeader();
  },
  signIn: async (pair, next) => {
    api.start(pair);
    ctx.me = null;
    live.restart();
    await ctx.refreshMe().catch(() => {});
    router.navigate(safeNext(next) ?? '/calls', { replace: true });
  },
  canManage: () => ctx.me?.role === 'owner' || ctx.me?.role === 'admin',
};

/**
 * Where to go after logging in: a path of this site only (`//host`, `/\\host`, `/<TAB>/host`
 * and other origins are refused).
 * @param {string | null | undefined} next
 */
function safeNext(next) {
  return sitePath(next, window.location.origin);
}

/** @param {string | null} message */
function ended(message) {
  live.stop();
  ctx.me = null;
  unread = 0;
  if (message) toast(message, 'error');
  const here = window.location.pathname + window.location.search;
  router.navigate(here.startsWith('/login') ? here : `/login?next=${encodeURIComponent(here)}`, { replace: true });
}

// The shell: a header with navigation, the organisation, notifications and the live state.
const app = /** @type {HTMLElement} */ (document.getElementById('app'));
const main = h('main', { id: 'main', tabindex: '-1' });
const headerSlot = h('header', { class: 'topbar' });
let unread = 0;
const bell = h('a', { href: '/notifications', class: 'bell', 'aria-label': 'Notifications' });

const SVG = 'http://www.w3.org/2000/svg';

/** A bell drawn in SVG (an emoji needs a font many systems lack). */
function bellIcon() {
  const svg = document.createElementNS(SVG, 'svg');
  for (const [name, value] of [['viewBox', '0 0 24 24'], ['width', '20'], ['height', '20'], ['aria-hidden', 'true'], ['class', 'bell-icon']]) {
    svg.setAttribute(name, value);
  }
  const path = document.createElementNS(SVG, 'path');
  path.setAttribute('d', 'M12 22a2.5 2.5 0 0 0 2.45-2h-4.9A2.5 2.5 0 0 0 12 22zm7-6V11a7 7 0 0 0-5.5-6.84V3a1.5 1.5 0 0 0-3 0v1.16A7 7 0 0 0 5 11v5l-2 2v1h18v-1z');
  path.setAttribute('fill', 'currentColor');
  svg.append(path);
  return svg;
}

function renderBell() {
  replace(bell, bellIcon(), unread > 0 ? h('span', { class: 'count' }, unread > 99 ? '99+' : String(unread)) : null);
  bell.setAttribute('aria-label', unread > 0 ? `Notifications, ${unread} unread` : 'Notifications');
}

/** @type {string | undefined} */
let currentSection;

function renderShellHeader() {
  if (!ctx.me) {
    replace(headerSlot);
    return;
  }
  const me = ctx.me;
  const menuButton = h('button', { type: 'button', class: 'menu-toggle', 'aria-expanded': 'false', 'aria-controls': 'nav' }, 'Menu');
  const nav = h('nav', { id: 'nav', class: 'nav', 'aria-label': 'Main' },
    h('ul', null, SECTIONS.map(([key, label, path]) =>
      h('li', null, h('a', { href: path, 'aria-current': key === currentSection ? 'page' : undefined }, label)))));
  menuButton.addEventListener('click', () => {
    const open = menuButton.getAttribute('aria-expanded') !== 'true';
    menuButton.setAttribute('aria-expanded', String(open));
    nav.classList.toggle('open', open);
  });
  nav.addEventListener('click', (event) => {
    if (/** @type {Element} */ (event.target).closest('a')) {
      nav.classList.remove('open');
      menuButton.setAttribute('aria-expanded', 'false');
    }
  });
  /** @type {HTMLElement | null} */
  let orgSwitcher = h('span', { class: 'org-name' }, me.organization.name);
  if (me.organizations.length > 1) {
    const select = h('select', { id: 'org-switch', 'aria-label': 'Organisation' },
      me.organizations.map((org) => h('option', { value: org.id, selected: org.id === me.organization.id }, `${org.name} (${org.role})`)));
    select.addEventListener('change', async () => {
      select.disabled = true;
      try {
        const pair = await api.post('/v1/auth/switch', { org_id: select.value });
        await ctx.signIn(pair, '/calls');
        toast(`Switched to ${ctx.me?.organization.name ?? 'the organisation'}.`);
      } catch (error) {
        toast(error instanceof Error ? error.message : String(error), 'error');
        select.value = me.organization.id;
      } finally {
        select.disabled = false;
      }
    });
    orgSwitcher = select;
  }
  const logout = h('button', { type: 'button', class: 'link-button' }, 'Log out');
  logout.addEventListener('click', async () => {
    logout.disabled = true;
    live.stop();
    await api.logout();
    ctx.me = null;
    unread = 0;
    router.navigate('/login', { replace: true });
  });
  renderBell();
  replace(headerSlot,
    h('div', { class: 'topbar-row' },
      h('a', { href: '/calls', class: 'brand' }, 'Novitrac'),
      menuButton,
      h('div', { class: 'topbar-right' }, liveState, bell, orgSwitcher,
        h('a', { href: '/settings/account', class: 'user', title: me.user.email }, me.user.name || me.user.email),
        logout)),
    nav);
}

async function loadUnread() {
  try {
    const page = await api.get('/v1/notifications', { query: { limit: 1 } });
    unread = page.unread_count ?? 0;
    renderBell();
  } catch {
    // The count is a nicety; the feed itself shows errors.
  }
}

live.subscribe((event) => {
  if (event.type === RESYNC) {
    void loadUnread();
  } else if (event.type === 'notifications.notification.created.v1') {
    unread += 1;
    renderBell();
    toast(event.data.title ?? 'New notification');
  } else if (event.type === 'auth.member.role_changed.v1' && event.data.user_id === ctx.me?.user.id) {
    // The new role shows on the next success; a failure now (offline) must not go unhandled.
    ctx.refreshMe().catch(() => {});
  }
});
window.addEventListener('novitrac:unread', (event) => {
  unread = /** @type {CustomEvent} */ (event).detail;
  renderBell();
});

replace(app, headerSlot, main);

/** @type {{disposers: (() => void)[], alive: boolean} | null} */
let active = null;

const router = new Router(routes, (match, url) => void show(match, url), window);

/**
 * @param {import('./router.js').Match<AppRoute> | null} match
 * @param {URL} url
 */
async function show(match, url) {
  if (active) {
    active.alive = false;
    for (const dispose of active.disposers) dispose();
  }
  const state = { disposers: /** @type {(() => void)[]} */ ([]), alive: true };
  active = state;
  const route = match?.route;
  if (route && !route.public && !api.signedIn) {
    router.navigate(`/login?next=${encodeURIComponent(url.pathname + url.search)}`, { replace: true });
    return;
  }
  if (route?.public && api.signedIn && route.path !== '/invitations/accept') {
    router.navigate('/calls', { replace: true });
    return;
  }
  if (route && !route.public && !ctx.me) {
    replace(main, h('p', { class: 'loading', role: 'status' }, 'Loading…'));
    try {
      await ctx.refreshMe();
    } catch (error) {
      if (!state.alive) return;
      replace(main, h('div', { class: 'error-box', role: 'alert' }, error instanceof Error ? error.message : String(error)));
      return;
    }
    if (!state.alive) return;
    live.start();
    void loadUnread();
  }
  if (route?.public) {
    replace(headerSlot);
  }
  currentSection = route?.section;
  if (!route?.public) renderShellHeader();
  /** @type {View} */
  const view = {
    params: match?.params ?? {},
    url,
    subscribe: (listener) => state.disposers.push(live.subscribe((event) => {
      if (state.alive) listener(event);
    })),
    alive: () => state.alive,
    onDispose: (cleanup) => state.disposers.push(cleanup),
  };
  document.title = route ? `${route.title} · Novitrac` : 'Not found · Novitrac';
  app.classList.toggle('public', Boolean(route?.public));
  let node;
  if (!route) {
    node = h('section', { class: 'page' }, h('h1', { tabindex: '-1' }, 'Page not found'), h('p', null, h('a', { href: '/calls' }, 'Go to your calls')));
  } else {
    try {
      node = route.screen(ctx, view);
    } catch (error) {
      console.error(error);
      node = h('div', { class: 'error-box', role: 'alert' }, 'This screen failed to open.');
    }
  }
  replace(main, node);
  // Move focus to the new screen's heading, as a page load would.
  const heading = /** @type {HTMLElement | null} */ (main.querySelector('h1'));
  if (heading) {
    if (!heading.hasAttribute('tabindex')) heading.setAttribute('tabindex', '-1');
    heading.focus({ preventScroll: true });
  }
}

router.start();
