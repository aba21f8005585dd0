// Settings: team members, invitations and roles; API keys; webhook endpoints (event types, test,
// delivery log); notification preferences; the account's password and the audit log.

import { h, replace } from '../dom.js';
import { formatAgo, formatDateTime, formatStatus } from '../format.js';
import { actionButton, badge, busy, details, empty, errorBox, field, form, header, loading, Pager, RESYNC, secretBox, showError, table, toast } from '../ui.js';

/** @typedef {import('../app.js').Context} Context @typedef {import('../app.js').View} View */

const ROLES = ['owner', 'admin', 'member'];
export const WEBHOOK_EVENTS = [
  'telephony.call.created.v1', 'telephony.call.status_changed.v1', 'telephony.call.ended.v1',
  'telephony.sms.received.v1', 'telephony.sms.sent.v1', 'telephony.campaign.completed.v1', 'telephony.contact.opted_out.v1',
  'voice.conversation.ended.v1', 'voice.conversation.analyzed.v1',
  'billing.balance.changed.v1', 'billing.balance.ran_low.v1', 'billing.payment.succeeded.v1',
  'billing.payment.failed.v1', 'billing.account.suspended.v1', 'billing.account.reinstated.v1',
];
const TABS = [
  ['/settings/team', 'Team'],
  ['/settings/api-keys', 'API keys'],
  ['/settings/webhooks', 'Webhooks'],
  ['/settings/notifications', 'Notifications'],
  ['/settings/account', 'Account'],
];

/**
 * The settings page frame with its tabs.
 * @param {View} view
 * @param {string} title
 * @param {...import('../dom.js').Child} children
 */
function frame(view, title, ...children) {
  const path = view.url.pathname === '/settings' ? '/settings/team' : view.url.pathname;
  return h('section', { class: 'page' },
    h('nav', { class: 'tabs', 'aria-label': 'Settings' },
      TABS.map(([href, label]) => h('a', { href, 'aria-current': path.startsWith(href) ? 'page' : undefined }, label))),
    header(title), children);
}

/** @param {Context} ctx @param {View} view */
export function team(ctx, view) {
  const box = errorBox();
  const membersSlot = h('div', null, loading());
  const invitationsSlot = h('div');
  const me = ctx.me;

  async function load() {
    try {
      const [members, invitations] = await Promise.all([
        ctx.api.get('/v1/auth/members'),
        ctx.canManage() ? ctx.api.get('/v1/auth/invitations') : Promise.resolve(null),
      ]);
      if (!view.alive()) return;
      renderMembers(members);
      if (invitations) renderInvitations(invitations);
    } catch (error) {
      if (!view.alive()) return;
      replace(membersSlot);
      showError(box, error);
    }
  }

  /** @param {any[]} members */
  function renderMembers(members) {
    replace(membersSlot, table([
      { title: 'Name', cell: (m) => [m.name, m.user_id === me?.user.id ? h('span', { class: 'muted' }, ' (you)') : null] },
      { title: 'Email', cell: (m) => m.email },
      { title: 'Role', cell: (m) => {
        if (!ctx.canManage() || m.user_id === me?.user.id) return formatStatus(m.role);
        const select = h('select', { 'aria-label': `Role of ${m.name}` }, ROLES.map((r) => h('option', { value: r, selected: r === m.role }, formatStatus(r))));
        select.addEventListener('change', async () => {
          select.disabled = true;
          try {
            const updated = await ctx.api.patch(`/v1/auth/members/${encodeURIComponent(m.user_id)}`, { role: select.value });
            m.role = updated.role;
            toast(`${m.name} is now ${updated.role}.`);
          } catch (error) {
            select.value = m.role;
            showError(box, error);
          } finally {
            select.disabled = false;
          }
        });
        return select;
      } },
      { title: 'Joined', cell: (m) => formatDateTime(m.joined_at) },
      { title: '', cell: (m) => (ctx.canManage() && m.user_id !== me?.user.id ? actionButton('Remove', async () => {
        await ctx.api.delete(`/v1/auth/members/${encodeURIComponent(m.user_id)}`);
        toast(`${m.name} removed.`);
        void load();
      }, { class: 'danger small', box, confirm: `Remove ${m.name} from the organisation?` }) : null) },
    ], members, { caption: 'Members' }));
  }

  /** @type {HTMLFormElement | null} built once: a reload (live events) keeps what is typed */
  let inviteForm = null;

  /** @param {any[]} invitations */
  function renderInvitations(invitations) {
    const pending = invitations.filter((i) => i.status === 'pending');
    inviteForm ??= form({
        label: 'Invite',
        fields: [h('div', { class: 'grid-2' },
          field({ label: 'Email', name: 'email', type: 'email', required: true }),
          field({ label: 'Role', name: 'role', type: 'select', value: 'member', options: ROLES.map((r) => ({ value: r, label: formatStatus(r) })) }))],
        submit: 'Send invitation',
        onSubmit: async (values, element) => {
          await ctx.api.post('/v1/auth/invitations', { email: values.email.trim(), role: values.role });
          toast(`Invitation sent to ${values.email.trim()}.`);
          element.reset();
          void load();
        },
      });
    replace(invitationsSlot,
      h('h2', null, 'Invite someone'),
      inviteForm,
      h('h2', null, 'Invitations'),
      invitations.length ? table([
        { title: 'Email', cell: (i) => i.email },
        { title: 'Role', cell: (i) => formatStatus(i.role) },
        { title: 'Status', cell: (i) => badge(i.status) },
        { title: 'Expires', cell: (i) => formatDateTime(i.expires_at) },
        { title: '', cell: (i) => (i.status === 'pending' ? actionButton('Revoke', async () => {
          await ctx.api.delete(`/v1/auth/invitations/${encodeURIComponent(i.id)}`);
          toast('Invitation revoked.');
          void load();
        }, { class: 'small', box, confirm: `Revoke the invitation to ${i.email}?` }) : null) },
      ], invitations, { caption: 'Invitations' }) : empty(pending.length ? '' : 'No invitations.'));
  }

  view.subscribe((event) => {
    // Events may have been missed (RESYNC): the members and invitations are reloaded too.
    if (event.type.startsWith('auth.member.') || event.type === RESYNC) void load();
  });
  void load();
  return frame(view, 'Team', box, membersSlot, invitationsSlot);
}

/** @param {Context} ctx @param {View} view */
export function apiKeys(ctx, view) {
  const box = errorBox();
  const created = h('div');
  const listSlot = h('div', null, loading());

  async function load() {
    try {
      const keys = await ctx.api.get('/v1/auth/api-keys');
      if (!view.alive()) return;
      replace(listSlot, keys.length ? table([
        { title: 'Name', cell: (k) => k.name },
        { title: 'Key', cell: (k) => h('code', null, `${k.prefix}…`) },
        { title: 'Scope', cell: (k) => (k.scope === 'read_only' ? 'Read only' : 'Full') },
        { title: 'Created', cell: (k) => formatDateTime(k.created_at) },
        { title: 'Last used', cell: (k) => (k.last_used_at ? formatAgo(k.last_used_at) : 'Never') },
        { title: 'State', cell: (k) => (k.revoked_at ? badge('revoked') : badge('active')) },
        { title: '', cell: (k) => (k.revoked_at ? null : actionButton('Revoke', async () => {
          await ctx.api.delete(`/v1/auth/api-keys/${encodeURIComponent(k.id)}`);
          toast('Key revoked: it stops working within a minute.');
          void load();
        }, { class: 'danger small', box, confirm: `Revoke the key "${k.name}"? Integrations using it stop working.` })) },
      ], keys, { caption: 'API keys' }) : empty('No API keys yet. Your own code uses one to call the API.'));
    } catch (error) {
      if (!view.alive()) return;
      replace(listSlot);
      showError(box, error);
    }
  }

  const createForm = form({
    label: 'Create an API key',
    fields: [h('div', { class: 'grid-2' },
      field({ label: 'Name', name: 'name', required: true, maxlength: 200, help: 'What uses it, e.g. "CRM sync".' }),
      field({ label: 'Scope', name: 'scope', type: 'select', value: 'full', options: [{ value: 'full', label: 'Full access' }, { value: 'read_only', label: 'Read only' }] }))],
    submit: 'Create key',
    onSubmit: async (values, element) => {
      const key = await ctx.api.post('/v1/auth/api-keys', { name: values.name.trim(), scope: values.scope });
      element.reset();
      replace(created, secretBox(`Your new key "${key.name}"`, key.key, 'Copy it now: it is not shown again. Send it as Authorization: Bearer <key> or X-API-Key.'));
      void load();
    },
  });
  void load();
  return frame(view, 'API keys', box, created, ctx.canManage() ? createForm : null, listSlot);
}

/**
 * Checkboxes for the event types an endpoint receives (none: all).
 * @param {string[]} chosen
 */
function eventTypes(chosen) {
  return h('fieldset', { class: 'fieldset' }, h('legend', null, 'Events (none ticked: all of them)'),
    h('div', { class: 'checks' }, WEBHOOK_EVENTS.map((type) => field({ label: type, name: `event:${type}`, type: 'checkbox', value: chosen.includes(type) }))));
}

/** @param {Record<string, any>} values */
function chosenTypes(values) {
  return WEBHOOK_EVENTS.filter((type) => values[`event:${type}`]);
}

/** @param {Context} ctx @param {View} view */
export function webhooks(ctx, view) {
  const box = errorBox();
  const created = h('div');
  const listSlot = h('div', null, loading());
  const pager = new Pager((cursor) => void load(cursor));

  /** @param {string | null} cursor */
  async function load(cursor) {
    try {
      const page = await ctx.api.get('/v1/webhook-endpoints', { query: { cursor, limit: 50 } });
      if (!view.alive()) return;
      pager.update(page.next_cursor);
      replace(listSlot, page.items.length ? [table([
        { title: 'URL', cell: (e) => h('a', { href: `/settings/webhooks/${e.id}` }, e.url) },
        { title: 'Description', cell: (e) => e.description || '—' },
        { title: 'Events', cell: (e) => (e.event_types.length ? `${e.event_types.length} types` : 'All') },
        { title: 'State', cell: (e) => [badge(e.enabled ? 'enabled' : 'disabled'), e.disabled_reason ? h('span', { class: 'muted small' }, ` ${e.disabled_reason}`) : null] },
        { title: 'Failures in a row', cell: (e) => String(e.consecutive_failures), class: 'num' },
      ], page.items, { caption: 'Webhook endpoints' }), pager.element] : empty('No webhook endpoints. Add one to receive your events over HTTPS.'));
    } catch (error) {
      if (!view.alive()) return;
      replace(listSlot);
      showError(box, error);
    }
  }

  const createForm = form({
    label: 'Add an endpoint',
    fields: [
      field({ label: 'URL', name: 'url', type: 'url', required: true, placeholder: 'https://example.com/novitrac' }),
      field({ label: 'Description', name: 'description', maxlength: 200 }),
      eventTypes([]),
    ],
    submit: 'Add endpoint',
    onSubmit: async (values, element) => {
      const endpoint = await ctx.api.post('/v1/webhook-endpoints', { url: values.url.trim(), description: values.description.trim(), event_types: chosenTypes(values) });
      element.reset();
      replace(created, secretBox('Signing secret', endpoint.secret, 'Copy it now: it is not shown again (you can rotate it). Verify each delivery\'s webhook-signature with it.'));
      pager.reset();
    },
  });
  void load(null);
  return frame(view, 'Webhooks', box, created, h('details', { class: 'panel' }, h('summary', null, 'Add an endpoint'), createForm), listSlot);
}

/** @param {Context} ctx @param {View} view */
export function webhookDetail(ctx, view) {
  const id = view.params.id;
  const base = `/v1/webhook-endpoints/${encodeURIComponent(id)}`;
  const box = errorBox();
  const secret = h('div');
  const slot = h('div', null, loading());
  const deliveriesSlot = h('div');
  let deliveryStatus = '';
  const pager = new Pager((cursor) => void loadDeliveries(cursor));

  async function load() {
    try {
      const endpoint = await ctx.api.get(base);
      if (view.alive()) render(endpoint);
    } catch (error) {
      if (!view.alive()) return;
      replace(slot);
      showError(box, error);
    }
  }

  /** @param {any} endpoint */
  function render(endpoint) {
    replace(slot,
      details([
        ['URL', endpoint.url],
        ['State', [badge(endpoint.enabled ? 'enabled' : 'disabled'), endpoint.disabled_reason ? ` ${endpoint.disabled_reason}` : '']],
        ['Failures in a row', String(endpoint.consecutive_failures)],
        ['Created', formatDateTime(endpoint.created_at)],
      ]),
      h('div', { class: 'actions' },
        actionButton('Send a test event', async () => {
          await ctx.api.post(`${base}/test`);
          toast('Test event queued.');
          setTimeout(() => void loadDeliveries(null), 1500);
        }, { box }),
        actionButton(endpoint.enabled ? 'Disable' : 'Enable', async () => {
          render(await ctx.api.patch(base, { enabled: !endpoint.enabled }));
        }, { box }),
        actionButton('Rotate secret', async () => {
          const rotated = await ctx.api.post(`${base}/rotate-secret`);
          replace(secret, secretBox('New signing secret', rotated.secret, 'Copy it now: it is not shown again.'));
        }, { box, confirm: 'Rotate the signing secret? Deliveries are signed with the new one from now on.' }),
        actionButton('Delete', async () => {
          await ctx.api.delete(base);
          toast('Endpoint deleted.');
          ctx.navigate('/settings/webhooks');
        }, { class: 'danger', box, confirm: 'Delete this endpoint?' })),
      h('details', { class: 'panel' }, h('summary', null, 'Edit'), form({
        label: 'Edit endpoint',
        fields: [
          field({ label: 'URL', name: 'url', type: 'url', required: true, value: endpoint.url }),
          field({ label: 'Description', name: 'description', value: endpoint.description, maxlength: 200 }),
          eventTypes(endpoint.event_types),
        ],
        submit: 'Save',
        onSubmit: async (values) => {
          render(await ctx.api.patch(base, { url: values.url.trim(), description: values.description.trim(), event_types: chosenTypes(values) }));
          toast('Saved.');
        },
      })));
  }

  /** @param {string | null} cursor */
  async function loadDeliveries(cursor) {
    try {
      const page = await ctx.api.get(`${base}/deliveries`, { query: { cursor, status: deliveryStatus, limit: 25 } });
      if (!view.alive()) return;
      pager.update(page.next_cursor);
      replace(deliveriesSlot, page.items.length ? [table([
        { title: 'Event', cell: (d) => d.event_type },
        { title: 'Status', cell: (d) => badge(d.status) },
        { title: 'Attempts', cell: (d) => String(d.attempts), class: 'num' },
        { title: 'Last answer', cell: (d) => [d.last_status_code ? `HTTP ${d.last_status_code}` : '—', d.last_duration_ms !== null ? ` in ${d.last_duration_ms} ms` : ''] },
        { title: 'Error', cell: (d) => d.last_error ?? '—' },
        { title: 'Created', cell: (d) => formatDateTime(d.created_at) },
        { title: 'Next attempt', cell: (d) => formatDateTime(d.next_attempt_at) },
        { title: '', cell: (d) => (d.status !== 'pending' ? actionButton('Retry', async () => {
          await ctx.api.post(`${base}/deliveries/${encodeURIComponent(d.id)}/retry`);
          toast('Delivery queued again.');
          setTimeout(() => void loadDeliveries(null), 1500);
        }, { class: 'small', box }) : null) },
      ], page.items, { caption: 'Deliveries' }), pager.element] : empty('No deliveries yet.'));
    } catch (error) {
      if (view.alive()) showError(box, error);
    }
  }

  const filter = h('select', { id: 'delivery-status' }, h('option', { value: '' }, 'All'),
    ['pending', 'succeeded', 'failed'].map((s) => h('option', { value: s }, formatStatus(s))));
  filter.addEventListener('change', () => {
    deliveryStatus = filter.value;
    pager.reset();
  });
  const refresh = h('button', { type: 'button' }, 'Refresh');
  refresh.addEventListener('click', () => void busy(refresh, box, () => loadDeliveries(null)));

  void load();
  void loadDeliveries(null);
  return h('section', { class: 'page' },
    h('p', { class: 'crumbs' }, h('a', { href: '/settings/webhooks' }, '← Webhooks')),
    header('Webhook endpoint'), box, secret, h('div', { class: 'panel' }, slot),
    h('div', { class: 'panel' }, h('div', { class: 'panel-head' }, h('h2', null, 'Delivery log'),
      h('div', { class: 'inline' }, h('label', { for: 'delivery-status' }, 'Status'), filter, refresh)), deliveriesSlot));
}

/** @param {Context} ctx @param {View} view */
export function preferences(ctx, view) {
  const box = errorBox();
  const slot = h('div', null, loading());
  ctx.api.get('/v1/notifications/preferences').then((prefs) => {
    if (!view.alive()) return;
    const categories = [...new Set([...Object.keys(prefs.email ?? {}), ...Object.keys(prefs.in_app ?? {})])];
    const required = new Set(prefs.required_email ?? []);
    const rows = categories.map((category) => {
      const emailId = `pref-email-${category}`;
      const appId = `pref-app-${category}`;
      return h('tr', null,
        h('th', { scope: 'row' }, formatStatus(category)),
        h('td', null, category in (prefs.email ?? {})
          ? [h('input', { type: 'checkbox', id: emailId, name: `email:${category}`, checked: Boolean(prefs.email[category]) || required.has(category), disabled: required.has(category) }),
            h('label', { for: emailId, class: 'visually-hidden' }, `Email about ${category}`),
            required.has(category) ? h('span', { class: 'muted small' }, ' always') : null]
          : '—'),
        h('td', null, category in (prefs.in_app ?? {})
          ? [h('input', { type: 'checkbox', id: appId, name: `in_app:${category}`, checked: Boolean(prefs.in_app[category]) }),
            h('label', { for: appId, class: 'visually-hidden' }, `In-app notifications about ${category}`)]
          : '—'));
    });
    replace(slot, form({
      label: 'Notification preferences',
      fields: [h('div', { class: 'table-wrap' }, h('table', null,
        h('thead', null, h('tr', null, h('th', { scope: 'col' }, 'About'), h('th', { scope: 'col' }, 'Email'), h('th', { scope: 'col' }, 'In the app'))),
        h('tbody', null, rows)))],
      submit: 'Save preferences',
      onSubmit: async (values) => {
        /** @type {Record<string, boolean>} */
        const email = {};
        /** @type {Record<string, boolean>} */
        const inApp = {};
        for (const category of categories) {
          if (category in (prefs.email ?? {}) && !required.has(category)) email[category] = Boolean(values[`email:${category}`]);
          if (category in (prefs.in_app ?? {})) inApp[category] = Boolean(values[`in_app:${category}`]);
        }
        await ctx.api.put('/v1/notifications/preferences', { email, in_app: inApp });
        toast('Preferences saved.');
      },
    }));
  }).catch((error) => {
    if (!view.alive()) return;
    replace(slot);
    showError(box, error);
  });
  return frame(view, 'Notification preferences', box, slot);
}

/** @param {Context} ctx @param {View} view */
export function account(ctx, view) {
  const me = ctx.me;
  const audit = h('div');
  if (ctx.canManage()) {
    const pager = new Pager((cursor) => void loadAudit(cursor));
    /** @param {string | null} cursor */
    const loadAudit = async (cursor) => {
      const box = errorBox();
      try {
        const page = await ctx.api.get('/v1/auth/audit-log', { query: { limit: 25, before: cursor } });
        if (!view.alive()) return;
        pager.update(page.next_cursor === null ? null : String(page.next_cursor));
        replace(audit, h('h2', null, 'Audit log'), page.items.length ? [table([
          { title: 'When', cell: (e) => formatDateTime(e.at) },
          { title: 'Action', cell: (e) => e.action },
          { title: 'Target', cell: (e) => (e.target_type ? `${e.target_type} ${e.target_id ?? ''}` : '—') },
          { title: 'From', cell: (e) => e.client_address ?? '—' },
        ], page.items, { caption: 'Audit log' }), pager.element] : empty('Nothing recorded yet.'));
      } catch (error) {
        if (!view.alive()) return;
        replace(audit, box);
        showError(box, error);
      }
    };
    void loadAudit(null);
  }
  return frame(view, 'Account',
    h('div', { class: 'panel' }, me ? details([
      ['Name', me.user.name],
      ['Email', me.user.email],
      ['Organisation', me.organization.name],
      ['Role', formatStatus(me.role)],
    ]) : null),
    h('div', { class: 'panel narrow' }, h('h2', null, 'Change password'), form({
      label: 'Change password',
      fields: [
        field({ label: 'Current password', name: 'current_password', type: 'password', required: true, autocomplete: 'current-password' }),
        field({ label: 'New password', name: 'new_password', type: 'password', required: true, autocomplete: 'new-password', minlength: 8, help: 'At least 8 characters.' }),
      ],
      submit: 'Change password',
      onSubmit: async (values, element) => {
        await ctx.api.post('/v1/auth/password/change', values);
        element.reset();
        toast('Password changed.');
      },
    })),
    audit);
}
