// Phone numbers: the list (assign an agent, release), search and buy, import.

import { h, replace } from '../dom.js';
import { formatDateTime } from '../format.js';
import * as lookups from '../lookups.js';
import { actionButton, busy, empty, errorBox, field, form, header, loading, Pager, showError, table, toast } from '../ui.js';

/** @typedef {import('../app.js').Context} Context @typedef {import('../app.js').View} View */

/**
 * A select of the organisation's agents ("no agent" first).
 * @param {any[]} agents
 * @param {string | null} value
 * @param {string} label
 */
function agentSelect(agents, value, label) {
  return h('select', { 'aria-label': label },
    h('option', { value: '' }, 'No agent (does not answer)'),
    agents.map((a) => h('option', { value: a.id, selected: a.id === value }, a.name)));
}

/** @param {Context} ctx @param {View} view */
export function list(ctx, view) {
  const box = errorBox();
  const body = h('div', null, loading());
  /** @type {any[]} */
  let agents = [];
  const pager = new Pager((cursor) => void load(cursor));

  /** @param {string | null} cursor */
  async function load(cursor) {
    showError(box, null);
    try {
      const [page, agentList] = await Promise.all([
        ctx.api.get('/v1/numbers', { query: { cursor, limit: 50 } }),
        agents.length ? Promise.resolve(agents) : lookups.agents(ctx.api),
      ]);
      if (!view.alive()) return;
      agents = agentList;
      pager.update(page.next_cursor);
      render(page.items);
    } catch (error) {
      if (!view.alive()) return;
      replace(body);
      showError(box, error);
    }
  }

  /** @param {any[]} numbers */
  function render(numbers) {
    if (!numbers.length && pager.first) {
      replace(body, empty('No phone numbers yet. Buy one, or import a number you already have at Twilio.',
        h('div', { class: 'actions' }, h('a', { href: '/numbers/buy', class: 'button primary' }, 'Buy a number'), h('a', { href: '/numbers/import', class: 'button' }, 'Import a number'))));
      return;
    }
    replace(body, table([
      { title: 'Number', cell: (n) => h('strong', null, n.phone_number) },
      { title: 'Name', cell: (n) => n.friendly_name || '—' },
      { title: 'Capabilities', cell: (n) => [n.voice ? 'Voice' : null, n.sms ? 'SMS' : null].filter(Boolean).join(', ') || '—' },
      { title: 'Agent', cell: (n) => {
        const select = agentSelect(agents, n.agent_id, `Agent answering ${n.phone_number}`);
        select.addEventListener('change', async () => {
          select.disabled = true;
          try {
            const updated = await ctx.api.patch(`/v1/numbers/${encodeURIComponent(n.id)}`, { agent_id: select.value || null });
            n.agent_id = updated.agent_id;
            toast(updated.agent_id ? `${n.phone_number} is answered by ${agents.find((a) => a.id === updated.agent_id)?.name ?? 'the agent'}.` : `${n.phone_number} has no agent now.`);
          } catch (error) {
            select.value = n.agent_id ?? '';
            showError(box, error);
          } finally {
            select.disabled = false;
          }
        });
        return select;
      } },
      { title: 'Added', cell: (n) => formatDateTime(n.created_at) },
      { title: '', cell: (n) => actionButton('Release', async () => {
        await ctx.api.delete(`/v1/numbers/${encodeURIComponent(n.id)}`);
        toast(`${n.phone_number} released.`);
        pager.reset();
      }, { class: 'danger small', box, confirm: `Release ${n.phone_number}? You may not get it back.` }) },
    ], numbers, { caption: 'Phone numbers' }), pager.element);
  }

  void load(null);
  return h('section', { class: 'page' },
    header('Numbers', h('a', { href: '/numbers/import', class: 'button' }, 'Import'), h('a', { href: '/numbers/buy', class: 'button primary' }, 'Buy a number')),
    box, body);
}

/** What the API accepts as `contains`: up to 10 digits, `*` matching any one. */
export const CONTAINS_PATTERN = /^[0-9*]{1,10}$/;

/**
 * The number search's `contains`, or why the API would refuse it (null: none given).
 * @param {string} value as typed
 * @returns {{value: string | null, problem: string | null}}
 */
export function checkContains(value) {
  const text = value.trim();
  if (!text) return { value: null, problem: null };
  if (!CONTAINS_PATTERN.test(text)) return { value: null, problem: 'Contains: up to 10 digits; * matches any one digit.' };
  return { value: text, problem: null };
}

/** @param {Context} ctx @param {View} view */
export function buy(ctx, view) {
  const results = h('div', { 'aria-live': 'polite' });
  const box = errorBox();
  /** @type {any[]} */
  let agents = [];
  lookups.agents(ctx.api).then((list) => {
    agents = list;
  }).catch(() => {});

  const search = form({
    label: 'Search numbers',
    fields: [h('div', { class: 'grid-3' },
      field({ label: 'Country', name: 'country', value: 'US', maxlength: 2, help: 'Two letters, e.g. US, GB, FR.' }),
      field({ label: 'Area code', name: 'area_code', inputmode: 'numeric' }),
      field({ label: 'Contains', name: 'contains', inputmode: 'numeric', maxlength: 10, pattern: '[0-9*]{1,10}',
        help: 'Up to 10 digits; * matches any one digit, e.g. 555 or 5*5.' }))],
    submit: 'Search',
    onSubmit: async (values) => {
      const contains = checkContains(values.contains);
      if (contains.problem) throw new Error(contains.problem);
      const found = await ctx.api.get('/v1/numbers/available', {
        query: { country: values.country.trim().toUpperCase(), area_code: values.area_code.trim(), contains: contains.value, limit: 20 },
      });
      if (!view.alive()) return;
      if (!found.length) {
        replace(results, empty('No numbers available for this search. Try another area code.'));
        return;
      }
      replace(results, table([
        { title: 'Number', cell: (n) => h('strong', null, n.friendly_name || n.phone_number) },
        { title: 'Where', cell: (n) => [n.locality, n.region, n.iso_country].filter(Boolean).join(', ') },
        { title: 'Capabilities', cell: (n) => [n.voice ? 'Voice' : null, n.sms ? 'SMS' : null].filter(Boolean).join(', ') },
        { title: '', cell: (n) => {
          const select = agentSelect(agents, null, `Agent for ${n.phone_number}`);
          const button = h('button', { type: 'button', class: 'primary small' }, 'Buy');
          button.addEventListener('click', () => void busy(button, box, async () => {
            await ctx.api.post('/v1/numbers', { phone_number: n.phone_number, agent_id: select.value || null });
            toast(`${n.phone_number} is yours.`);
            ctx.navigate('/numbers');
          }));
          return h('div', { class: 'inline' }, select, button);
        } },
      ], found, { caption: 'Available numbers' }));
    },
  });
  return h('section', { class: 'page' },
    h('p', { class: 'crumbs' }, h('a', { href: '/numbers' }, '← Numbers')),
    header('Buy a number'), search, box, results);
}

/** @param {Context} ctx @param {View} view */
export function importNumber(ctx, view) {
  const slot = h('div', null, loading());
  lookups.agents(ctx.api).then((agents) => {
    if (!view.alive()) return;
    replace(slot, form({
      label: 'Import a number',
      fields: [
        field({ label: 'Phone number', name: 'phone_number', type: 'tel', required: true, placeholder: '+15551234567',
          help: 'A number already in your Twilio account, in international format.' }),
        field({ label: 'Name', name: 'friendly_name', maxlength: 64 }),
        field({ label: 'Agent', name: 'agent_id', type: 'select', value: '', options: [{ value: '', label: 'No agent' }, ...agents.map((a) => ({ value: a.id, label: a.name }))] }),
      ],
      submit: 'Import',
      onSubmit: async (values) => {
        await ctx.api.post('/v1/numbers/import', {
          phone_number: values.phone_number.trim().replace(/[\s()-]/g, ''),
          friendly_name: values.friendly_name.trim() || null,
          agent_id: values.agent_id || null,
        });
        toast('Number imported.');
        ctx.navigate('/numbers');
      },
    }));
  }).catch((error) => {
    const box = errorBox();
    replace(slot, box);
    showError(box, error);
  });
  return h('section', { class: 'page narrow' },
    h('p', { class: 'crumbs' }, h('a', { href: '/numbers' }, '← Numbers')),
    header('Import a number'), slot);
}
