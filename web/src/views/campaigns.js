// Campaigns: the list with progress (live), creating one from pasted CSV, and one campaign with
// its controls (start, pause, resume, cancel) and recipients.

import { h, replace } from '../dom.js';
import { formatAgo, formatDateTime, formatStatus, formatSeconds } from '../format.js';
import { parseRecipients } from '../csv.js';
import { contactLabel, parseTags } from '../contacts.js';
import * as lookups from '../lookups.js';
import { actionButton, badge, details, empty, errorBox, field, form, header, loading, Pager, RESYNC, showError, table, toast } from '../ui.js';

/** @typedef {import('../app.js').Context} Context @typedef {import('../app.js').View} View */

const SETTLED = ['completed', 'failed', 'canceled'];
const RECIPIENT_STATUSES = ['pending', 'dialing', 'in_call', 'retry_wait', 'completed', 'failed', 'canceled'];
const DAYS = [['mon', 'Mon'], ['tue', 'Tue'], ['wed', 'Wed'], ['thu', 'Thu'], ['fri', 'Fri'], ['sat', 'Sat'], ['sun', 'Sun']];

/**
 * Progress of a campaign from its recipients by status.
 * @param {Record<string, number> | undefined} counts
 * @param {number | undefined} total
 */
export function progressOf(counts, total) {
  const all = total ?? Object.values(counts ?? {}).reduce((sum, n) => sum + n, 0);
  const done = SETTLED.reduce((sum, key) => sum + (counts?.[key] ?? 0), 0);
  return { done, total: all, percent: all ? Math.round((done / all) * 100) : 0 };
}

/**
 * @param {Record<string, number> | undefined} counts
 * @param {number | undefined} total
 */
function progress(counts, total) {
  const p = progressOf(counts, total);
  return h('div', { class: 'progress' },
    h('progress', { max: String(p.total || 1), value: String(p.done), 'aria-label': `${p.done} of ${p.total} recipients done` }),
    h('span', { class: 'small' }, `${p.done}/${p.total}`));
}

/**
 * The controls a campaign in `status` offers.
 * @param {Context} ctx
 * @param {any} campaign
 * @param {HTMLElement} box
 * @param {(updated: any) => void} done
 * @param {(pending: boolean) => void} [onPending] an action is on its way (true), or over (false)
 */
function controls(ctx, campaign, box, done, onPending = () => {}) {
  /** @param {string} action @param {string} label @param {string} [cls] @param {string} [confirm] */
  const button = (action, label, cls = '', confirm = undefined) => actionButton(label, async () => {
    onPending(true);
    let updated;
    try {
      updated = await ctx.api.post(`/v1/campaigns/${encodeURIComponent(campaign.id)}/${action}`);
    } finally {
      onPending(false);
    }
    toast(`Campaign ${formatStatus(updated.status).toLowerCase()}.`);
    done(updated);
  }, { class: cls, box, confirm });
  switch (campaign.status) {
    case 'draft':
      return [button('start', 'Start', 'primary', 'Start calling the recipients now?'), button('cancel', 'Cancel', 'danger', 'Cancel this campaign?')];
    case 'running':
      return [button('pause', 'Pause'), button('cancel', 'Cancel', 'danger', 'Cancel this campaign? Calls in progress finish.')];
    case 'paused':
      return [button('resume', 'Resume', 'primary'), button('cancel', 'Cancel', 'danger', 'Cancel this campaign?')];
    default:
      return [];
  }
}

/**
 * A recipient's last outcome: a link to its last call, or why it was never called.
 * @param {any} recipient
 */
export function outcome(recipient) {
  if (recipient.last_outcome === 'skipped_do_not_call') {
    return h('span', { class: 'badge badge-do-not-call', title: 'The number is on the do-not-call list: it was not dialed.' }, 'Skipped: do not call');
  }
  if (recipient.last_call_id) return h('a', { href: `/calls/${recipient.last_call_id}` }, formatStatus(recipient.last_outcome ?? 'in call'));
  return formatStatus(recipient.last_outcome);
}

/**
 * Contacts to call, picked by searching their name or number.
 * @param {Context} ctx
 * @param {View} view
 * @returns {{element: HTMLElement, ids: () => string[]}}
 */
function contactPicker(ctx, view) {
  /** @type {Map<string, any>} */
  const chosen = new Map();
  const search = h('input', { id: 'pick-contact', type: 'search', placeholder: 'Name or number', autocomplete: 'off', maxlength: 100 });
  const results = h('ul', { class: 'plain picks', 'aria-live': 'polite' });
  const picked = h('ul', { class: 'plain picked' });
  let generation = 0;
  /** @type {any} */
  let typing = null;

  function renderPicked() {
    replace(picked, [...chosen.values()].map((contact) => h('li', null,
      contactLabel(contact), ' ', h('span', { class: 'muted small' }, contact.phone_number),
      contact.do_not_call ? h('span', { class: 'badge badge-do-not-call' }, 'Do not call') : null, ' ',
      h('button', { type: 'button', class: 'small', 'aria-label': `Remove ${contactLabel(contact)}`, onclick: () => {
        chosen.delete(contact.id);
        renderPicked();
      } }, 'Remove'))));
  }

  async function find() {
    const mine = ++generation;
    const text = search.value.trim();
    if (!text) {
      replace(results);
      return;
    }
    try {
      const page = await ctx.api.get('/v1/contacts', { query: { search: text, limit: 10 } });
      if (!view.alive() || mine !== generation) return;
      replace(results, page.items.length ? page.items.map((/** @type {any} */ contact) => h('li', null,
        h('button', { type: 'button', class: 'small', disabled: chosen.has(contact.id), onclick: () => {
          chosen.set(contact.id, contact);
          renderPicked();
          void find();
        } }, 'Add'), ' ', contactLabel(contact), ' ', h('span', { class: 'muted small' }, contact.phone_number),
        contact.do_not_call ? [' ', h('span', { class: 'badge badge-do-not-call', title: 'Will be skipped' }, 'Do not call')] : null))
        : h('li', { class: 'muted small' }, 'No contact matches.'));
    } catch (error) {
      if (view.alive() && mine === generation) replace(results, h('li', { class: 'problems' }, error instanceof Error ? error.message : String(error)));
    }
  }
  search.addEventListener('input', () => {
    clearTimeout(typing);
    typing = setTimeout(() => void find(), 250);
  });
  // Enter searches at once instead of submitting the campaign.
  search.addEventListener('keydown', (event) => {
    if (event.key === 'Enter') {
      event.preventDefault();
      clearTimeout(typing);
      void find();
    }
  });
  view.onDispose(() => clearTimeout(typing));
  return {
    element: h('fieldset', { class: 'fieldset' }, h('legend', null, 'Contacts'),
      h('div', { class: 'field' }, h('label', { for: 'pick-contact' }, 'Find a contact'), search), results,
      h('p', { class: 'help' }, 'Picked contacts are called after the recipients above, with their own variables.'), picked),
    ids: () => [...chosen.keys()],
  };
}

/** @param {Context} ctx @param {View} view */
export function list(ctx, view) {
  const box = errorBox();
  const body = h('div', null, loading());
  /** @type {any[]} */
  let campaigns = [];
  /** @type {Map<string, {counts: Record<string, number>, recipients: number}>} */
  const progressById = new Map();
  const pager = new Pager((cursor) => void load(cursor));

  /** @param {string | null} cursor */
  async function load(cursor) {
    showError(box, null);
    try {
      const page = await ctx.api.get('/v1/campaigns', { query: { cursor, limit: 25 } });
      if (!view.alive()) return;
      campaigns = page.items;
      pager.update(page.next_cursor);
      // Each item carries its counts (`counts`, `outcomes`, `recipients`): no request per row.
      progressById.clear();
      for (const c of campaigns) {
        if (c.counts) progressById.set(c.id, { counts: c.counts, recipients: c.recipients });
      }
      render();
    } catch (error) {
      if (!view.alive()) return;
      replace(body);
      showError(box, error);
    }
  }

  function render() {
    if (!campaigns.length && pager.first) {
      replace(body, empty('No campaigns yet. A campaign calls a list of people with one agent, a few at a time.',
        h('a', { href: '/campaigns/new', class: 'button primary' }, 'New campaign')));
      return;
    }
    replace(body, table([
      { title: 'Name', cell: (c) => h('a', { href: `/campaigns/${c.id}` }, c.name) },
      { title: 'Status', cell: (c) => [badge(c.status), c.pause_reason ? h('span', { class: 'muted small' }, ` (${formatStatus(c.pause_reason)})`) : null] },
      { title: 'Progress', cell: (c) => {
        const p = progressById.get(c.id);
        return p ? progress(p.counts, p.recipients) : '…';
      } },
      { title: 'Created', cell: (c) => formatAgo(c.created_at) },
    ], campaigns, { caption: 'Campaigns' }), pager.element);
  }

  view.subscribe((event) => {
    if (event.type === RESYNC) {
      void load(pager.current);
    } else if (event.type === 'live.campaign.progress') {
      const c = campaigns.find((item) => item.id === event.data.campaign_id);
      if (!c) return;
      c.status = event.data.status;
      const known = progressById.get(c.id);
      progressById.set(c.id, { counts: event.data.counts, recipients: known?.recipients ?? Object.values(event.data.counts ?? {}).reduce((a, b) => a + b, 0) });
      render();
    } else if (event.type === 'telephony.campaign.completed.v1') {
      const c = campaigns.find((item) => item.id === event.data.campaign_id);
      if (c) {
        c.status = 'completed';
        render();
      }
    }
  });
  void load(null);
  return h('section', { class: 'page' }, header('Campaigns', h('a', { href: '/campaigns/new', class: 'button primary' }, 'New campaign')), box, body);
}

/** @param {Context} ctx @param {View} view */
export function create(ctx, view) {
  const slot = h('div', null, loading());
  Promise.all([lookups.agents(ctx.api), lookups.numbers(ctx.api)]).then(([agents, numbers]) => {
    if (!view.alive()) return;
    if (!agents.length || !numbers.length) {
      replace(slot, empty(!agents.length ? 'A campaign needs an agent.' : 'A campaign needs a number to call from.',
        h('a', { href: !agents.length ? '/agents/new' : '/numbers/buy', class: 'button primary' }, !agents.length ? 'Create an agent' : 'Get a number')));
      return;
    }
    const preview = h('div', { class: 'csv-preview', 'aria-live': 'polite' });
    const picker = contactPicker(ctx, view);
    const timezone = Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
    const windowFields = h('fieldset', { class: 'fieldset' }, h('legend', null, 'Calling window (optional)'),
      h('div', { class: 'grid-3' },
        field({ label: 'From', name: 'window_start', type: 'time' }),
        field({ label: 'Until', name: 'window_end', type: 'time' }),
        field({ label: 'Time zone', name: 'window_timezone', value: timezone })),
      h('div', { class: 'days' }, DAYS.map(([value, label]) => field({ label, name: `day_${value}`, type: 'checkbox', value: true }))));
    const element = form({
      label: 'New campaign',
      fields: [
        field({ label: 'Name', name: 'name', required: true, maxlength: 200 }),
        h('div', { class: 'grid-2' },
          field({ label: 'Agent', name: 'agent_id', type: 'select', required: true, options: agents.map((a) => ({ value: a.id, label: a.name })) }),
          field({ label: 'From number', name: 'from_number_id', type: 'select', required: true, options: numbers.map((n) => ({ value: n.id, label: lookups.numberLabel(n) })) })),
        h('p', { class: 'help' }, 'Who to call: numbers pasted as CSV, contacts picked by name, contacts with some tags, or any mix. A number given twice is called once; numbers on the do-not-call list are skipped.'),
        field({ label: 'Recipients (CSV)', name: 'csv', type: 'textarea', rows: 8,
          placeholder: 'phone,first_name,appointment\n+15551234567,Ada,Tuesday 10:00\n+15557654321,Alan,Friday 15:30',
          help: 'One recipient a line: the phone number in international format first, then variables named by a header row.' }),
        preview,
        picker.element,
        field({ label: 'Contacts with any of these tags', name: 'tags', placeholder: 'vip, spring-promo',
          help: 'Separated by commas (up to 20). Every contact with one of them is called, after the recipients above.' }),
        h('div', { class: 'grid-3' },
          field({ label: 'Calls at once', name: 'max_concurrent', type: 'number', min: 1, max: 100, placeholder: '5', help: 'Empty: 5, or your plan\'s limit if lower.' }),
          field({ label: 'Attempts per recipient', name: 'max_attempts', type: 'number', value: 2, min: 1, max: 5 }),
          field({ label: 'Retry after (seconds)', name: 'retry_delay_s', type: 'number', value: 600, min: 0 })),
        windowFields,
      ],
      submit: 'Create draft',
      onSubmit: async (values) => {
        const parsed = values.csv.trim() ? parseRecipients(values.csv) : { recipients: [], problems: [] };
        if (parsed.problems.length) throw new Error(`Fix the recipients first: ${parsed.problems.slice(0, 3).map((p) => `line ${p.line}: ${p.message}`).join('; ')}`);
        const { tags, invalid } = parseTags(values.tags);
        if (invalid.length) throw new Error(`Not a tag: ${invalid.join(', ')} (40 characters at most).`);
        if (tags.length > 20) throw new Error('At most 20 tags.');
        const contactIds = picker.ids();
        if (!parsed.recipients.length && !contactIds.length && !tags.length) throw new Error('Add someone to call: recipients, contacts or tags.');
        /** @type {Record<string, any>} */
        const body = {
          name: values.name.trim(),
          agent_id: values.agent_id,
          from_number_id: values.from_number_id,
          recipients: parsed.recipients,
          contact_ids: contactIds,
          tags,
          max_concurrent: values.max_concurrent ? Number(values.max_concurrent) : null,
          max_attempts: Number(values.max_attempts),
          retry_delay_s: Number(values.retry_delay_s),
        };
        if (values.window_start || values.window_end) {
          body.window = {
            start: values.window_start,
            end: values.window_end,
            timezone: values.window_timezone.trim(),
            days: DAYS.map(([value]) => value).filter((value) => values[`day_${value}`]),
          };
        }
        const created = await ctx.api.post('/v1/campaigns', body);
        toast('Campaign created as a draft. Start it when ready.');
        ctx.navigate(`/campaigns/${created.id}`);
      },
    });
    const textarea = /** @type {HTMLTextAreaElement} */ (element.querySelector('textarea[name=csv]'));
    textarea.addEventListener('input', () => {
      const parsed = parseRecipients(textarea.value);
      replace(preview,
        h('p', { class: 'small' }, `${parsed.recipients.length} recipient${parsed.recipients.length === 1 ? '' : 's'}`,
          parsed.variables.length ? ` with ${parsed.variables.join(', ')}` : ''),
        parsed.problems.length ? h('ul', { class: 'problems' }, parsed.problems.slice(0, 10).map((p) => h('li', null, `Line ${p.line}: ${p.message}`))) : null);
    });
    replace(slot, element);
  }).catch((error) => {
    const box = errorBox();
    replace(slot, box);
    showError(box, error);
  });
  return h('section', { class: 'page narrow' },
    h('p', { class: 'crumbs' }, h('a', { href: '/campaigns' }, '← Campaigns')),
    header('New campaign'), slot);
}

/** @param {Context} ctx @param {View} view */
export function detail(ctx, view) {
  const id = view.params.id;
  const box = errorBox();
  const title = h('h1', { tabindex: '-1' }, 'Campaign');
  const actions = h('div', { class: 'page-actions' });
  const summary = h('div', null, loading());
  const recipients = h('div');
  /** @type {any} */
  let campaign = null;
  let statusFilter = '';
  const pager = new Pager((cursor) => void loadRecipients(cursor));

  async function load() {
    try {
      campaign = await ctx.api.get(`/v1/campaigns/${encodeURIComponent(id)}`);
      if (view.alive()) render();
    } catch (error) {
      if (!view.alive()) return;
      replace(summary);
      showError(box, error);
    }
  }

  // The controls are rebuilt only when the status changes and no action is on its way: live
  // progress events must not replace a busy button with an enabled copy.
  let lastStatus = '';
  let pending = false;

  /** @param {boolean} [force] rebuild the controls (an action has just ended) */
  function render(force = false) {
    const c = campaign;
    replace(title, c.name);
    if (force || (c.status !== lastStatus && !pending)) {
      lastStatus = c.status;
      replace(actions, controls(ctx, c, box, (updated) => {
        campaign = updated;
        render(true);
        pager.reset();
      }, (now) => {
        pending = now;
        // Failed, while the status changed meanwhile: the controls follow now.
        if (!now && view.alive() && campaign && campaign.status !== lastStatus) queueMicrotask(() => {
          if (view.alive() && !pending && campaign.status !== lastStatus) render();
        });
      }));
    }
    const counts = Object.entries(c.counts ?? {}).filter(([, n]) => n > 0);
    const outcomes = Object.entries(c.outcomes ?? {}).filter(([k, n]) => n > 0 && k !== 'skipped_do_not_call');
    replace(summary, details([
      ['Status', [badge(c.status), c.pause_reason ? ` paused: ${formatStatus(c.pause_reason)}` : '']],
      ['Progress', progress(c.counts, c.recipients)],
      ['Recipients by status', counts.length ? h('ul', { class: 'plain' }, counts.map(([k, n]) => h('li', null, `${formatStatus(k)}: ${n}`))) : '—'],
      ['Skipped (do not call)', c.outcomes?.skipped_do_not_call
        ? h('span', { title: 'On the do-not-call list: never dialed (counted as canceled).' }, String(c.outcomes.skipped_do_not_call))
        : '0'],
      ['Outcomes', outcomes.length ? h('ul', { class: 'plain' }, outcomes.map(([k, n]) => h('li', null, `${formatStatus(k)}: ${n}`))) : '—'],
      ['Calls at once', String(c.max_concurrent)],
      ['Attempts', `${c.max_attempts}, ${formatSeconds(c.retry_delay_s)} apart`],
      ['Calling window', c.window ? `${c.window.start}–${c.window.end} ${c.window.timezone}${c.window.days?.length ? ` (${c.window.days.join(', ')})` : ''}` : 'Any time'],
      ['Created', formatDateTime(c.created_at)],
      ['Started', formatDateTime(c.started_at)],
      ['Finished', formatDateTime(c.finished_at)],
    ]));
  }

  /** @param {string | null} cursor */
  async function loadRecipients(cursor) {
    try {
      const page = await ctx.api.get(`/v1/campaigns/${encodeURIComponent(id)}/recipients`, { query: { cursor, status: statusFilter, limit: 50 } });
      if (!view.alive()) return;
      pager.update(page.next_cursor);
      replace(recipients, page.items.length ? [table([
        { title: '#', cell: (r) => String(r.position + 1), class: 'num' },
        { title: 'To', cell: (r) => r.to },
        { title: 'Status', cell: (r) => badge(r.status) },
        { title: 'Attempts', cell: (r) => String(r.attempts), class: 'num' },
        { title: 'Outcome', cell: (r) => outcome(r) },
        { title: 'Next attempt', cell: (r) => formatDateTime(r.next_attempt_at) },
      ], page.items, { caption: 'Recipients' }), pager.element] : empty('No recipients with this status.'));
    } catch (error) {
      if (view.alive()) showError(box, error);
    }
  }

  const filter = h('select', { id: 'recipient-status' }, h('option', { value: '' }, 'All'),
    RECIPIENT_STATUSES.map((s) => h('option', { value: s }, formatStatus(s))));
  filter.addEventListener('change', () => {
    statusFilter = filter.value;
    pager.reset();
  });

  let refreshTimer = /** @type {any} */ (null);
  view.subscribe((event) => {
    if (!campaign) return;
    if (event.type === 'live.campaign.progress' && event.data.campaign_id === id) {
      campaign = { ...campaign, status: event.data.status, counts: event.data.counts };
      render();
      // The recipients table follows, at most every few seconds.
      if (!refreshTimer && pager.first) {
        refreshTimer = setTimeout(() => {
          refreshTimer = null;
          if (view.alive() && pager.first) void loadRecipients(null);
        }, 3000);
      }
    } else if ((event.type === 'telephony.campaign.completed.v1' && event.data.campaign_id === id) || event.type === RESYNC) {
      void load();
    }
  });
  view.onDispose(() => clearTimeout(refreshTimer));
  void load();
  void loadRecipients(null);
  return h('section', { class: 'page' },
    h('p', { class: 'crumbs' }, h('a', { href: '/campaigns' }, '← Campaigns')),
    h('div', { class: 'page-head' }, title, actions),
    box,
    h('div', { class: 'panel' }, summary),
    h('div', { class: 'panel' }, h('div', { class: 'panel-head' }, h('h2', null, 'Recipients'),
      h('div', { class: 'field inline' }, h('label', { for: 'recipient-status' }, 'Status'), filter)), recipients));
}
