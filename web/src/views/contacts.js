// Contacts: the list (search, tags, do-not-call, cursor paging), one contact (create, edit,
// delete, opt out, its calls), importing CSV with the per-row report, and the do-not-call list.

import { h, replace } from '../dom.js';
import { ApiError } from '../api.js';
import { formatAgo, formatDateTime, formatDuration, formatStatus } from '../format.js';
import { contactLabel, doNotCallPath, e164, parseTags, previewImport, refusedRows, reportLines } from '../contacts.js';
import {
  actionButton, badge, details, empty, errorBox, field, form, header, loading, Pager, RESYNC, showError, table, toast, variablesEditor, showFilters,
} from '../ui.js';

/** @typedef {import('../app.js').Context} Context @typedef {import('../app.js').View} View */
/** @typedef {import('../contacts.js').ReportLine} ReportLine @typedef {import('../contacts.js').ImportPreview} ImportPreview */

const PAGE = 25;
const MAX_CSV_CHARS = 5_000_000;

const SOURCES = /** @type {Record<string, string>} */ ({ api: 'Added by your team', import: 'Imported', sms: 'Texted an opt-out keyword (STOP)' });

/** @param {string | null | undefined} source */
function sourceLabel(source) {
  return source ? SOURCES[source] ?? formatStatus(source) : '—';
}

/** The tabs of the contacts section. @param {'contacts' | 'dnc'} current */
function tabs(current) {
  return h('nav', { class: 'tabs', 'aria-label': 'Contacts' },
    h('a', { href: '/contacts', 'aria-current': current === 'contacts' ? 'page' : undefined }, 'Contacts'),
    h('a', { href: '/do-not-call', 'aria-current': current === 'dnc' ? 'page' : undefined }, 'Do-not-call list'));
}

/**
 * "Opted out" with when and why, or nothing.
 * @param {any} contact
 */
function optOut(contact) {
  if (!contact.do_not_call) return null;
  return h('span', { class: 'dnc' }, h('span', { class: 'badge badge-do-not-call' }, 'Do not call'),
    contact.do_not_call_reason ? h('span', { class: 'muted small' }, ` ${contact.do_not_call_reason}`) : null);
}

/**
 * A "Call" link for a number, or a disabled button when it is on the do-not-call list.
 * @param {string} number
 * @param {boolean} optedOut
 * @param {string} [cls]
 */
export function callButton(number, optedOut, cls = 'button') {
  if (optedOut) return h('button', { type: 'button', class: cls.replace('button', '').trim(), disabled: true, title: 'On the do-not-call list' }, 'Call');
  return h('a', { href: `/calls/new?to=${encodeURIComponent(number)}`, class: cls }, 'Call');
}

/** @param {string[]} tags */
function tagList(tags) {
  return tags?.length ? h('span', { class: 'tags' }, tags.map((tag) => h('span', { class: 'tag' }, tag))) : '—';
}

/** @param {Context} ctx @param {View} view */
export function list(ctx, view) {
  const params = view.url.searchParams;
  const chosen = { search: params.get('search') ?? '', tags: params.get('tags') ?? '', do_not_call: params.get('do_not_call') ?? '' };
  /** @type {any[]} */
  let contacts = [];
  const box = errorBox();
  const body = h('div', null, loading());
  const pager = new Pager((cursor) => void load(cursor));
  let generation = 0;

  const search = h('input', { id: 'contact-search', name: 'search', type: 'search', value: chosen.search, placeholder: 'Name or number', maxlength: 100 });
  const tagInput = h('input', { id: 'contact-tags', name: 'tags', value: chosen.tags, placeholder: 'vip, spring-promo' });
  const dnc = h('select', { id: 'contact-dnc', name: 'do_not_call' },
    h('option', { value: '' }, 'Everyone'),
    h('option', { value: 'false', selected: chosen.do_not_call === 'false' }, 'May be called'),
    h('option', { value: 'true', selected: chosen.do_not_call === 'true' }, 'Do not call'));
  const filterForm = h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter contacts' },
    h('div', { class: 'field' }, h('label', { for: 'contact-search' }, 'Search'), search),
    h('div', { class: 'field' }, h('label', { for: 'contact-tags' }, 'Tags (any of)'), tagInput),
    h('div', { class: 'field' }, h('label', { for: 'contact-dnc' }, 'Do not call'), dnc),
    h('div', { class: 'actions' }, h('button', { type: 'reset' }, 'Clear')));
  /** @type {any} */
  let typing = null;
  search.addEventListener('input', () => {
    clearTimeout(typing);
    typing = setTimeout(applyFilters, 300);
  });
  view.onDispose(() => clearTimeout(typing));
  tagInput.addEventListener('change', applyFilters);
  dnc.addEventListener('change', applyFilters);
  filterForm.addEventListener('reset', () => setTimeout(applyFilters, 0));
  filterForm.addEventListener('submit', (event) => {
    event.preventDefault();
    applyFilters();
  });

  function applyFilters() {
    chosen.search = search.value.trim();
    chosen.tags = parseTags(tagInput.value).tags.join(', ');
    chosen.do_not_call = dnc.value;
    showFilters('/contacts', chosen);
    pager.reset();
  }

  /** @param {string | null} cursor */
  async function load(cursor) {
    const mine = ++generation;
    showError(box, null);
    const { tags, invalid } = parseTags(chosen.tags);
    if (invalid.length) {
      replace(body);
      showError(box, new Error(`Not a tag: ${invalid.join(', ')} (40 characters at most).`));
      return;
    }
    try {
      const page = await ctx.api.get('/v1/contacts', {
        query: { search: chosen.search, tag: tags, do_not_call: chosen.do_not_call, cursor, limit: PAGE },
      });
      if (!view.alive() || mine !== generation) return;
      contacts = page.items;
      pager.update(page.next_cursor);
      render();
    } catch (error) {
      if (!view.alive() || mine !== generation) return;
      replace(body);
      showError(box, error);
    }
  }

  function render() {
    if (!contacts.length) {
      const filtered = Object.values(chosen).some(Boolean);
      replace(body, empty(filtered ? 'No contacts match these filters.' : 'No contacts yet. Add them one by one or import a CSV file.',
        filtered ? null : h('div', { class: 'actions' }, h('a', { href: '/contacts/new', class: 'button primary' }, 'New contact'),
          h('a', { href: '/contacts/import', class: 'button' }, 'Import CSV'))), pager.first ? null : pager.element);
      return;
    }
    replace(body, table([
      { title: 'Name', cell: (c) => h('a', { href: `/contacts/${c.id}` }, c.name || 'No name') },
      { title: 'Number', cell: (c) => c.phone_number },
      { title: 'Email', cell: (c) => c.email ?? '—' },
      { title: 'Tags', cell: (c) => tagList(c.tags) },
      { title: 'Do not call', cell: (c) => optOut(c) ?? '—' },
      { title: 'Updated', cell: (c) => h('span', { title: formatDateTime(c.updated_at) }, formatAgo(c.updated_at)) },
      { title: '', cell: (c) => callButton(c.phone_number, c.do_not_call, 'button small') },
    ], contacts, { caption: 'Contacts', rowKey: (c) => c.id }), pager.element);
  }

  view.subscribe((event) => {
    if (event.type === 'telephony.contact.opted_out.v1' || event.type === RESYNC) void load(pager.current);
  });
  void load(null);
  return h('section', { class: 'page' },
    header('Contacts', h('a', { href: '/contacts/import', class: 'button' }, 'Import CSV'), h('a', { href: '/contacts/new', class: 'button primary' }, 'New contact')),
    tabs('contacts'), filterForm, box, body);
}

/** @param {Context} ctx @param {View} view */
export function edit(ctx, view) {
  const id = view.params.id;
  const title = h('h1', { tabindex: '-1' }, id ? 'Contact' : 'New contact');
  const actions = h('div', { class: 'page-actions' });
  const box = errorBox();
  const slot = h('div', null, id ? loading() : null);
  const standing = h('div');
  const calls = h('div');

  /** @param {any | null} contact */
  function renderForm(contact) {
    const c = contact ?? {};
    const variables = variablesEditor('Variables (for the agent\'s prompt, as a call\'s)', c.variables ?? {});
    const reason = field({ label: 'Reason', name: 'do_not_call_reason', maxlength: 200, placeholder: 'Asked not to be called',
      help: contact?.do_not_call ? 'Kept from when the number was opted out.' : 'Optional: why the number may not be called.' });
    const reasonInput = /** @type {HTMLInputElement} */ (reason.querySelector('input'));
    if (contact?.do_not_call) {
      reasonInput.value = contact.do_not_call_reason ?? '';
      reasonInput.readOnly = true;
    }
    const dncField = field({ label: 'Do not call this number', name: 'do_not_call', type: 'checkbox', value: Boolean(c.do_not_call),
      help: 'Calls to it are refused and campaigns skip it. Unticking opts it back in.' });
    const dncBox = /** @type {HTMLInputElement} */ (dncField.querySelector('input'));
    const syncReason = () => {
      reason.hidden = !dncBox.checked;
    };
    dncBox.addEventListener('change', syncReason);
    syncReason();
    const element = form({
      label: contact ? 'Edit contact' : 'New contact',
      fields: [
        h('div', { class: 'grid-2' },
          field({ label: 'Phone number', name: 'phone_number', type: 'tel', required: true, value: c.phone_number ?? '', autocomplete: 'off',
            placeholder: '+14155550123', help: 'International format, starting with +. One contact per number.' }),
          field({ label: 'Name', name: 'name', value: c.name ?? '', maxlength: 200, autocomplete: 'off' }),
          field({ label: 'Email', name: 'email', type: 'email', value: c.email ?? '', maxlength: 254, autocomplete: 'off' }),
          field({ label: 'Tags', name: 'tags', value: (c.tags ?? []).join(', '), placeholder: 'vip, spring-promo',
            help: 'Separated by commas; up to 20, 40 characters each.' })),
        field({ label: 'Notes', name: 'notes', type: 'textarea', value: c.notes ?? '', rows: 3, maxlength: 2000 }),
        variables.element,
        h('fieldset', { class: 'fieldset' }, h('legend', null, 'Do not call'), dncField, reason),
      ],
      submit: contact ? 'Save' : 'Create contact',
      extra: [contact ? actionButton('Delete', async () => {
        await ctx.api.delete(`/v1/contacts/${encodeURIComponent(contact.id)}`);
        toast(contact.do_not_call ? 'Contact deleted; the number stays on the do-not-call list.' : 'Contact deleted.');
        ctx.navigate('/contacts');
      }, { class: 'danger', box, confirm: `Delete the contact ${contactLabel(contact)}?` }) : null],
      onSubmit: async (values) => {
        const phone = e164(values.phone_number);
        if (!phone) throw new Error('The phone number must be in international format: + then the country code and number (+14155550123).');
        const { tags, invalid } = parseTags(values.tags);
        if (invalid.length) throw new Error(`Not a tag: ${invalid.join(', ')} (40 characters at most).`);
        if (tags.length > 20) throw new Error('At most 20 tags.');
        /** @type {Record<string, any>} */
        const body = {
          phone_number: phone,
          name: values.name.trim() || null,
          email: values.email.trim() || null,
          tags,
          notes: values.notes.trim() ? values.notes : null,
          variables: variables.read(),
        };
        const optingOut = values.do_not_call && !contact?.do_not_call;
        if (!contact || values.do_not_call !== Boolean(contact.do_not_call)) body.do_not_call = values.do_not_call;
        if (optingOut && values.do_not_call_reason.trim()) body.do_not_call_reason = values.do_not_call_reason.trim();
        if (contact) {
          const saved = await ctx.api.patch(`/v1/contacts/${encodeURIComponent(contact.id)}`, body);
          toast('Saved.');
          show(saved);
        } else {
          const created = await ctx.api.post('/v1/contacts', body);
          toast('Contact created.');
          ctx.navigate(`/contacts/${created.id}`, { replace: true });
        }
      },
    });
    replace(slot, element);
  }

  /** @param {any} contact */
  function show(contact) {
    replace(title, contactLabel(contact));
    replace(actions, callButton(contact.phone_number, contact.do_not_call, 'button primary'));
    replace(standing, contact.do_not_call ? h('div', { class: 'panel notice', role: 'status' },
      h('h2', null, 'On the do-not-call list'),
      details([
        ['Since', formatDateTime(contact.do_not_call_since)],
        ['How', sourceLabel(contact.do_not_call_source)],
        ['Reason', contact.do_not_call_reason ?? '—'],
      ]),
      h('p', { class: 'muted small' }, 'Calls to this number are refused and campaigns skip it.')) : null);
    renderForm(contact);
    void loadCalls(contact.phone_number);
  }

  /** @param {string} number */
  async function loadCalls(number) {
    try {
      const page = await ctx.api.get('/v1/calls', { query: { number, limit: 10 } });
      if (!view.alive()) return;
      replace(calls, h('h2', null, 'Recent calls'), page.items.length ? table([
        { title: 'When', cell: (c) => h('a', { href: `/calls/${c.id}`, title: formatDateTime(c.created_at) }, formatAgo(c.created_at)) },
        { title: 'Direction', cell: (c) => formatStatus(c.direction) },
        { title: 'Status', cell: (c) => badge(c.status) },
        { title: 'Duration', cell: (c) => formatDuration(c.duration_s), class: 'num' },
      ], page.items, { caption: 'Recent calls' }) : h('p', { class: 'muted' }, 'No calls with this number yet.'),
      page.next_cursor ? h('p', { class: 'muted small' }, 'The 10 most recent.') : null);
    } catch {
      replace(calls);
    }
  }

  if (id) {
    ctx.api.get(`/v1/contacts/${encodeURIComponent(id)}`).then((contact) => {
      if (view.alive()) show(contact);
    }).catch((error) => {
      if (!view.alive()) return;
      replace(slot);
      showError(box, error);
    });
  } else {
    renderForm(null);
  }
  return h('section', { class: 'page narrow' },
    h('p', { class: 'crumbs' }, h('a', { href: '/contacts' }, '← Contacts')),
    h('div', { class: 'page-head' }, title, actions),
    box, standing, h('div', { class: 'panel' }, slot), calls);
}

/**
 * The import's outcome by row, as a table.
 * @param {ReportLine[]} lines
 * @param {string} caption
 */
function reportTable(lines, caption) {
  return table([
    { title: 'Row', cell: (l) => String(l.row), class: 'num' },
    { title: 'Outcome', cell: (l) => h('span', { class: `badge badge-${l.outcome}` }, formatStatus(l.outcome)) },
    { title: 'Number', cell: (l) => (l.contactId ? h('a', { href: `/contacts/${l.contactId}` }, l.phone || 'Contact') : l.phone || '—') },
    { title: 'Name', cell: (l) => l.name || '—' },
    { title: 'Reason', cell: (l) => l.reason ?? '' },
  ], lines, { caption });
}

/** @param {Context} ctx @param {View} view */
export function importContacts(ctx, view) {
  const preview = h('div', { class: 'csv-preview', 'aria-live': 'polite' });
  const result = h('div', { 'aria-live': 'polite' });
  const fileId = 'import-file';
  const file = h('input', { id: fileId, type: 'file', accept: '.csv,text/csv,text/plain' });
  /** @type {ImportPreview | null} */
  let sent = null;
  const element = form({
    label: 'Import contacts',
    fields: [
      h('div', { class: 'field' }, h('label', { for: fileId }, 'CSV file'), file,
        h('p', { class: 'help' }, 'Or paste the CSV below. Up to 10,000 rows.')),
      field({ label: 'CSV', name: 'csv', type: 'textarea', rows: 10, required: true,
        placeholder: 'phone_number,name,email,tags,do_not_call,appointment\n+14155550123,Ada Lovelace,ada@example.com,vip;spring,,Tuesday 10:00\n+14155550124,Alan Turing,,,yes,',
        help: 'A header line, then one contact a line. Columns: phone_number (or phone), name, email, tags (separated by ;), notes, do_not_call (true/false, yes/no); any other column is a prompt variable. An empty cell leaves that field as it is on an existing contact.' }),
      preview,
      field({ label: 'All or nothing', name: 'all_or_nothing', type: 'checkbox', value: false,
        help: 'Import nothing if any row is invalid. Otherwise the valid rows are imported and the invalid ones reported.' }),
    ],
    submit: 'Import',
    onSubmit: async (values) => {
      replace(result);
      const text = values.csv;
      if (!text.trim()) throw new Error('Choose a CSV file or paste the CSV.');
      if (text.length > MAX_CSV_CHARS) throw new Error('The CSV is larger than 5,000,000 characters: split it.');
      sent = previewImport(text);
      try {
        const report = await ctx.api.post('/v1/contacts/import', { csv: text, all_or_nothing: values.all_or_nothing });
        if (!view.alive()) return;
        showReport(report);
        toast(`Imported: ${report.created} created, ${report.updated} updated${report.invalid ? `, ${report.invalid} invalid` : ''}.`);
      } catch (error) {
        if (!(error instanceof ApiError) || error.status !== 422 || !error.fields.length) throw error;
        const refused = refusedRows(error.fields, sent);
        if (!refused.lines.length) throw error;
        replace(result, h('div', { class: 'panel', role: 'alert' },
          h('h2', null, 'Nothing was imported'),
          h('p', null, `${refused.lines.length} row${refused.lines.length === 1 ? ' is' : 's are'} invalid. Fix ${refused.lines.length === 1 ? 'it' : 'them'}, or untick "All or nothing" to import the valid rows.`),
          refused.general.length ? h('ul', null, refused.general.map((g) => h('li', null, g))) : null,
          reportTable(refused.lines, 'Invalid rows')));
        result.scrollIntoView?.({ block: 'nearest' });
      }
    },
  });
  const textarea = /** @type {HTMLTextAreaElement} */ (element.querySelector('textarea[name=csv]'));

  /** @param {import('../contacts.js').ImportReport} report */
  function showReport(report) {
    const lines = reportLines(report, sent, { invalidFirst: true });
    replace(result, h('div', { class: 'panel', role: 'status' },
      h('h2', null, 'Imported'),
      h('ul', { class: 'counts' },
        h('li', null, h('strong', null, String(report.created)), ' created'),
        h('li', null, h('strong', null, String(report.updated)), ' updated'),
        h('li', { class: report.invalid ? 'warning' : undefined }, h('strong', null, String(report.invalid)), ' invalid')),
      lines.length ? reportTable(lines, 'Rows') : null,
      h('p', null, h('a', { href: '/contacts' }, 'See the contacts'))));
    result.scrollIntoView?.({ block: 'nearest' });
  }

  function updatePreview() {
    const text = textarea.value;
    if (!text.trim()) {
      replace(preview);
      return;
    }
    const p = previewImport(text);
    if (p.error) {
      replace(preview, h('p', { class: 'problems' }, p.error));
      return;
    }
    const shown = p.rows.slice(0, 10);
    const problems = p.rows.filter((row) => row.problem).slice(0, 10);
    replace(preview,
      h('p', { class: 'small' }, `${p.count} row${p.count === 1 ? '' : 's'}`,
        p.variables.length ? `; variables: ${p.variables.join(', ')}` : '',
        p.problems ? h('span', { class: 'warning' }, `; ${p.problems} with problems (the API will report them as invalid)`) : ''),
      shown.length ? table([
        { title: 'Row', cell: (r) => String(r.index + 1), class: 'num' },
        { title: 'Number', cell: (r) => e164(r.phone) ?? r.phone },
        { title: 'Name', cell: (r) => r.name || '—' },
        { title: 'Email', cell: (r) => r.email || '—' },
        { title: 'Tags', cell: (r) => tagList(r.tags) },
        { title: 'Do not call', cell: (r) => (r.doNotCall === null ? '—' : r.doNotCall ? 'Opt out' : 'Opt in') },
        { title: 'Variables', cell: (r) => Object.entries(r.variables).map(([k, v]) => `${k}=${v}`).join(', ') || '—' },
      ], shown, { caption: 'Preview' }) : null,
      p.count > shown.length ? h('p', { class: 'muted small' }, `First ${shown.length} rows shown.`) : null,
      problems.length ? h('ul', { class: 'problems' }, problems.map((r) => h('li', null, `Row ${r.index + 1}: ${r.problem}`))) : null);
  }
  /** @type {any} */
  let typing = null;
  textarea.addEventListener('input', () => {
    clearTimeout(typing);
    typing = setTimeout(updatePreview, 250);
  });
  view.onDispose(() => clearTimeout(typing));
  file.addEventListener('change', async () => {
    const chosen = file.files?.[0];
    if (!chosen) return;
    if (chosen.size > MAX_CSV_CHARS * 4) {
      toast('That file is too large: split it into files of up to 10,000 rows.', 'error');
      return;
    }
    textarea.value = await chosen.text();
    updatePreview();
  });

  return h('section', { class: 'page narrow' },
    h('p', { class: 'crumbs' }, h('a', { href: '/contacts' }, '← Contacts')),
    header('Import contacts'), h('div', { class: 'panel' }, element), result);
}

/** @param {Context} ctx @param {View} view */
export function doNotCall(ctx, view) {
  const box = errorBox();
  const body = h('div', null, loading());
  const pager = new Pager((cursor) => void load(cursor));

  /** @param {string | null} cursor */
  async function load(cursor) {
    showError(box, null);
    try {
      const page = await ctx.api.get('/v1/do-not-call', { query: { cursor, limit: 50 } });
      if (!view.alive()) return;
      pager.update(page.next_cursor);
      replace(body, page.items.length ? [table([
        { title: 'Number', cell: (e) => (e.contact_id ? h('a', { href: `/contacts/${e.contact_id}` }, e.phone_number) : e.phone_number) },
        { title: 'Reason', cell: (e) => e.reason ?? '—' },
        { title: 'How', cell: (e) => sourceLabel(e.source) },
        { title: 'Since', cell: (e) => formatDateTime(e.created_at) },
        { title: '', cell: (e) => actionButton('Remove', async () => {
          await ctx.api.delete(doNotCallPath(e.phone_number));
          toast(`${e.phone_number} may be called again.`);
          void load(pager.current);
        }, { class: 'small', box, confirm: `Take ${e.phone_number} off the do-not-call list? It may be called again.` }) },
      ], page.items, { caption: 'Do-not-call list', rowKey: (e) => e.phone_number }), pager.element]
        : [empty('No numbers on the do-not-call list.'), pager.first ? null : pager.element]);
    } catch (error) {
      if (!view.alive()) return;
      replace(body);
      showError(box, error);
    }
  }

  const add = form({
    label: 'Add a number to the do-not-call list',
    fields: [h('div', { class: 'grid-2' },
      field({ label: 'Number', name: 'phone_number', type: 'tel', required: true, placeholder: '+14155550123', autocomplete: 'off' }),
      field({ label: 'Reason', name: 'reason', maxlength: 200, placeholder: 'Asked not to be called' }))],
    submit: 'Add to the list',
    onSubmit: async (values, element) => {
      const phone = e164(values.phone_number);
      if (!phone) throw new Error('The number must be in international format: + then the country code and number (+14155550123).');
      const entry = await ctx.api.post('/v1/do-not-call', { phone_number: phone, reason: values.reason.trim() || null });
      toast(`${entry.phone_number} will not be called.`);
      element.reset();
      pager.reset();
    },
  });

  view.subscribe((event) => {
    if (event.type === 'telephony.contact.opted_out.v1' || event.type === RESYNC) void load(pager.current);
  });
  void load(null);
  return h('section', { class: 'page' },
    header('Do-not-call list'), tabs('dnc'),
    h('p', { class: 'muted' }, 'Calls to these numbers are refused and campaigns skip them. Numbers get here from a contact opted out, from here, from an import, or when someone texts STOP to one of your numbers.'),
    h('div', { class: 'panel' }, h('h2', null, 'Add a number'), add), box, body);
}
