// The in-app notification feed: newest first, pushed live, marked read one by one or all at once.

import { h, replace, sitePath } from '../dom.js';
import { formatAgo, formatDateTime } from '../format.js';
import { actionButton, empty, errorBox, header, loading, Pager, RESYNC, showError } from '../ui.js';

/** @typedef {import('../app.js').Context} Context @typedef {import('../app.js').View} View */

/** @param {number} count */
function announceUnread(count) {
  window.dispatchEvent(new CustomEvent('novitrac:unread', { detail: count }));
}

/** @param {Context} ctx @param {View} view */
export function feed(ctx, view) {
  const box = errorBox();
  const body = h('div', null, loading());
  /** @type {any[]} */
  let items = [];
  let unread = 0;
  let unreadOnly = false;
  const pager = new Pager((cursor) => void load(cursor));

  /** @param {string | null} cursor */
  async function load(cursor) {
    try {
      const page = await ctx.api.get('/v1/notifications', { query: { cursor, limit: 30, unread_only: unreadOnly } });
      if (!view.alive()) return;
      items = page.items;
      unread = page.unread_count;
      announceUnread(unread);
      pager.update(page.next_cursor);
      render();
    } catch (error) {
      if (!view.alive()) return;
      replace(body);
      showError(box, error);
    }
  }

  /** @param {any} item */
  async function markRead(item) {
    if (item.read_at) return;
    const updated = await ctx.api.post(`/v1/notifications/${encodeURIComponent(item.id)}/read`);
    item.read_at = updated.read_at ?? new Date().toISOString();
    unread = Math.max(0, unread - 1);
    announceUnread(unread);
  }

  function render() {
    if (!items.length) {
      replace(body, empty(unreadOnly ? 'Nothing unread.' : 'No notifications yet.'));
      return;
    }
    replace(body, h('ul', { class: 'feed' }, items.map((item) => {
      const link = sitePath(item.link);
      const title = link ? h('a', { href: link }, item.title) : item.title;
      const li = h('li', { class: item.read_at ? 'read' : 'unread' },
        h('div', { class: 'feed-head' }, h('strong', null, title), h('time', { datetime: item.created_at, title: formatDateTime(item.created_at) }, formatAgo(item.created_at))),
        h('p', null, item.body),
        item.read_at ? null : actionButton('Mark as read', async () => {
          await markRead(item);
          render();
        }, { class: 'small link-button', box }));
      li.querySelector('a')?.addEventListener('click', () => void markRead(item).catch(() => {}));
      return li;
    })), pager.element);
  }

  const toggle = h('input', { type: 'checkbox', id: 'unread-only' });
  toggle.addEventListener('change', () => {
    unreadOnly = toggle.checked;
    pager.reset();
  });

  view.subscribe((event) => {
    if (event.type === RESYNC) {
      void load(pager.current);
      return;
    }
    if (event.type !== 'notifications.notification.created.v1' || !pager.first) return;
    const d = event.data;
    if (items.some((item) => item.id === d.notification_id)) return;
    items = [{ id: d.notification_id, kind: d.kind, title: d.title, body: d.body, link: d.link ?? null, read_at: null, created_at: event.occurred_at }, ...items];
    unread += 1;
    render();
  });
  void load(null);
  return h('section', { class: 'page narrow' },
    header('Notifications',
      h('span', { class: 'inline' }, toggle, h('label', { for: 'unread-only' }, 'Unread only')),
      actionButton('Mark all as read', async () => {
        await ctx.api.post('/v1/notifications/read-all');
        for (const item of items) item.read_at = item.read_at ?? new Date().toISOString();
        unread = 0;
        announceUnread(0);
        render();
      }, { box })),
    box, body);
}
