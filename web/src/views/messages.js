// Messages: the organisation's texts both ways (filters, cursor paging, new ones live, the other
// party's contact) and sending one from a number able to text.

import { h, replace, uid } from '../dom.js';
import { ApiError } from '../api.js';
import { formatAgo, formatDateTime } from '../format.js';
import * as lookups from '../lookups.js';
import {
  addMessage, contactLookup, contactsByNumber, messageFromEvent, otherParty, segments, sendErrors, textingNumbers,
} from '../messages.js';
import { badge, busy, empty, errorBox, header, loading, Pager, RESYNC, showError, table, toast, watchFilters } from '../ui.js';

/** @typedef {import('../app.js').Context} Context @typedef {import('../app.js').View} View */
/** @typedef {import('../messages.js').Message} Message @typedef {import('../messages.js').ContactRef} ContactRef */

const PAGE = 25;
const FILTER_KEYS = ['direction', 'phone_number_id'];
const MAX_BODY = 1600;

/** @param {Context} ctx @param {View} view */
export function list(ctx, view) {
  const params = view.url.searchParams;
  /** @type {Record<string, string>} */
  const chosen = Object.fromEntries(FILTER_KEYS.map((key) => [key, params.get(key) ?? '']));
  /** @type {Message[]} */
  let messages = [];
  /** @type {Map<string, string>} */
  let numberNames = new Map();
  /** The other party's contact by number; null: known not to be one. @type {Map<string, ContactRef | null>} */
  const contacts = new Map();
  const fresh = new Set();
  const box = errorBox();
  const body = h('div', null, loading());
  const pager = new Pager((cursor) => void load(cursor));
  let loadSerial = 0;

  const filters = () => ({
    direction: chosen.direction || undefined,
    phone_number_id: chosen.phone_number_id || undefined,
  });

  const numberSelect = h('select', { id: 'sms-filter-number', name: 'phone_number_id' }, h('option', { value: '' }, 'All numbers'));
  const filterForm = h('form', { class: 'filters', 'aria-label': 'Filter messages' },
    h('div', { class: 'field' }, h('label', { for: 'sms-filter-direction' }, 'Direction'),
      h('select', { id: 'sms-filter-direction', name: 'direction' }, h('option', { value: '' }, 'Both'),
        h('option', { value: 'inbound', selected: chosen.direction === 'inbound' }, 'Received'),
        h('option', { value: 'outbound', selected: chosen.direction === 'outbound' }, 'Sent'))),
    h('div', { class: 'field' }, h('label', { for: 'sms-filter-number' }, 'Number'), numberSelect),
    h('div', { class: 'actions' }, h('button', { type: 'reset' }, 'Clear')));
  watchFilters(filterForm, chosen, '/messages', () => pager.reset());

  /** @param {string | null} cursor */
  async function load(cursor) {
    const serial = ++loadSerial;
    showError(box, null);
    try {
      const page = await ctx.api.get('/v1/sms', { query: { ...filters(), cursor, limit: PAGE } });
      if (!view.alive() || serial !== loadSerial) return;
      messages = page.items;
      fresh.clear();
      pager.update(page.next_cursor);
      render();
      void lookUpContacts(messages.map(otherParty));
    } catch (error) {
      if (!view.alive() || serial !== loadSerial) return;
      replace(body);
      showError(box, error);
    }
  }

  /**
   * The contacts of the numbers not looked up yet, in one request (an exact lookup by number).
   * @param {string[]} numbers
   */
  async function lookUpContacts(numbers) {
    const unknown = contactLookup(numbers.filter((n) => !contacts.has(n)));
    if (!unknown.length) return;
    try {
      const page = await ctx.api.get('/v1/contacts', { query: { phone_number: unknown, limit: 100 } });
      if (!view.alive()) return;
      for (const [number, contact] of contactsByNumber(unknown, page)) contacts.set(number, contact);
      render();
    } catch {
      // Names are a nicety: the numbers are shown either way.
    }
  }

  /** @param {Message} m */
  function contactCell(m) {
    const contact = contacts.get(otherParty(m));
    if (!contact) return '—';
    return h('a', { href: `/contacts/${encodeURIComponent(contact.id)}` }, contact.name || 'Contact');
  }

  /** @param {Message} m */
  function replyButton(m) {
    return h('button', {
      type: 'button',
      class: 'link-button',
      'aria-label': `Reply to ${otherParty(m)}`,
      onclick: () => compose.fill(m.phone_number_id, otherParty(m)),
    }, 'Reply');
  }

  function render() {
    if (!messages.length) {
      const filtered = Object.values(chosen).some(Boolean);
      replace(body, empty(filtered ? 'No texts match these filters.' : 'No texts yet. Send one above, or text one of your numbers.'),
        pager.first ? null : pager.element);
      return;
    }
    replace(body, table([
      { title: 'When', cell: (m) => h('time', { datetime: m.created_at, title: formatDateTime(m.created_at) }, formatAgo(m.created_at)) },
      { title: 'Direction', cell: (m) => (m.direction === 'inbound' ? 'Received' : 'Sent') },
      { title: 'Our number', cell: (m) => numberNames.get(m.phone_number_id) ?? (m.direction === 'inbound' ? m.to_number : m.from_number) },
      { title: 'Other party', cell: (m) => otherParty(m) },
      { title: 'Contact', cell: (m) => contactCell(m) },
      { title: 'Text', cell: (m) => h('p', { class: 'sms-body' }, m.body) },
      { title: 'Status', cell: (m) => [badge(m.status), fresh.has(m.id) ? h('span', { class: 'new-dot', title: 'New' }, 'new') : null] },
      { title: '', cell: (m) => replyButton(m) },
    ], messages, { caption: 'Texts', rowKey: (m) => m.id }), pager.element);
  }

  /** @param {Message | null} message @param {boolean} [isNew] */
  function add(message, isNew = true) {
    const next = addMessage(messages, message, filters(), { prepend: pager.first, limit: PAGE });
    if (next === messages || !message) return;
    if (isNew) fresh.add(message.id);
    messages = next;
    render();
    void lookUpContacts([otherParty(message)]);
  }

  view.subscribe((event) => {
    if (event.type === RESYNC) {
      void load(pager.current);
      return;
    }
    add(messageFromEvent(event));
  });
  const tick = setInterval(() => {
    if (messages.length) render();
  }, 60_000);
  view.onDispose(() => clearInterval(tick));

  const compose = sendForm(ctx, view, params, (sent) => add(sent, false));

  lookups.numbers(ctx.api).then((numbers) => {
    if (!view.alive()) return;
    numberNames = lookups.names(numbers, lookups.numberLabel);
    for (const [id, label] of numberNames) numberSelect.appendChild(h('option', { value: id, selected: chosen.phone_number_id === id }, label));
    compose.setNumbers(numbers);
    if (messages.length) render();
  }).catch((error) => {
    if (view.alive()) compose.failed(error);
  });
  void load(null);

  // Delivery progress (delivered, undelivered) is stored without a live event: refresh shows it.
  const refresh = h('button', { type: 'button', title: 'Delivery statuses change without live updates' }, 'Refresh');
  refresh.addEventListener('click', () => void busy(refresh, null, () => load(pager.current)));

  return h('section', { class: 'page' },
    header('Messages', refresh),
    h('div', { class: 'panel' }, h('h2', null, 'Send a text'), compose.element),
    filterForm, box, body);
}

/**
 * The send form: from one of the numbers able to text, to, body; refusals shown on their fields.
 * @param {Context} ctx
 * @param {View} view
 * @param {URLSearchParams} params `to` and `from` prefill it
 * @param {(sent: Message) => void} onSent
 */
function sendForm(ctx, view, params, onSent) {
  const slot = h('div', null, loading('Loading your numbers…'));
  /** @type {((from: string, to: string) => void) | null} */
  let filler = null;
  const wanted = { from: params.get('from') ?? '', to: params.get('to') ?? '' };

  /** @param {import('../lookups.js').NumberRef[]} numbers */
  function setNumbers(numbers) {
    const able = textingNumbers(numbers);
    if (!able.length) {
      replace(slot, empty(numbers.length
        ? 'None of your numbers can send texts. Buy one with SMS to send texts.'
        : 'You have no number yet. Buy one with SMS to send texts.',
      h('a', { href: '/numbers/buy', class: 'button' }, 'Buy a number')));
      return;
    }
    /** @type {Record<string, {control: HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement, error: HTMLElement}>} */
    const controls = {};
    /**
     * @param {'from_number_id' | 'to' | 'body'} name
     * @param {string} label
     * @param {HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement} control
     * @param {HTMLElement | null} help
     */
    const row = (name, label, control, help) => {
      const errorId = uid(`${name}-error`);
      const error = h('p', { class: 'field-error', id: errorId, hidden: true });
      control.setAttribute('aria-describedby', [help?.id, errorId].filter(Boolean).join(' '));
      controls[name] = { control, error };
      return h('div', { class: 'field' }, h('label', { for: control.id }, label), control, help, error);
    };
    const fromSelect = h('select', { id: uid('sms-from'), name: 'from_number_id', required: true },
      able.map((n) => h('option', { value: n.id, selected: n.id === wanted.from }, lookups.numberLabel(n))));
    const toInput = h('input', {
      id: uid('sms-to'), name: 'to', type: 'tel', required: true, autocomplete: 'off', value: wanted.to,
      placeholder: '+15551234567', pattern: '\\+[1-9][0-9]{6,14}', inputmode: 'tel',
    });
    const bodyInput = h('textarea', { id: uid('sms-body'), name: 'body', required: true, rows: 3, maxlength: MAX_BODY });
    const counter = h('p', { class: 'help', id: uid('sms-count'), 'aria-live': 'polite' });
    const count = () => {
      const s = segments(bodyInput.value);
      counter.textContent = s.units
        ? `${bodyInput.value.length} of ${MAX_BODY} characters · ${s.segments} ${s.segments === 1 ? 'part' : 'parts'} (${s.encoding})`
        : `Up to ${MAX_BODY} characters.`;
    };
    bodyInput.addEventListener('input', count);
    count();
    const box = errorBox();
    const button = h('button', { type: 'submit', class: 'primary' }, 'Send');
    const element = h('form', { class: 'form', 'aria-label': 'Send a text' }, box,
      h('div', { class: 'grid-2' },
        row('from_number_id', 'From', fromSelect, null),
        row('to', 'To', toInput, h('p', { class: 'help', id: uid('sms-to-help') }, 'In international format: +, country code, number.'))),
      row('body', 'Text', bodyInput, counter),
      h('div', { class: 'actions' }, button));

    /** @param {Partial<Record<string, string>>} messages */
    const mark = (messages) => {
      for (const [name, { control, error }] of Object.entries(controls)) {
        const message = messages[name];
        error.textContent = message ?? '';
        error.hidden = !message;
        if (message) control.setAttribute('aria-invalid', 'true');
        else control.removeAttribute('aria-invalid');
      }
    };
    element.addEventListener('submit', (event) => {
      event.preventDefault();
      mark({});
      const to = toInput.value.replace(/[\s().-]/g, '');
      void busy(button, box, async () => {
        /** @type {Message} */
        let sent;
        try {
          sent = await ctx.api.post('/v1/sms', { from_number_id: fromSelect.value, to, body: bodyInput.value });
        } catch (error) {
          if (!(error instanceof ApiError)) throw error;
          const { fields, other } = sendErrors(error);
          mark(fields);
          const first = Object.keys(controls).find((name) => /** @type {any} */ (fields)[name]);
          if (first) controls[first].control.focus();
          if (!other.length) return;
          throw new ApiError(error.status, error.code, other.join(' '), { requestId: error.requestId, retryAfter: error.retryAfter });
        }
        if (!view.alive()) return;
        toast(`Text sent to ${sent.to_number}.`);
        bodyInput.value = '';
        count();
        onSent(sent);
      });
    });
    filler = (from, to) => {
      if (able.some((n) => n.id === from)) fromSelect.value = from;
      toInput.value = to;
      mark({});
      bodyInput.focus();
    };
    replace(slot, element);
  }

  return {
    element: slot,
    setNumbers,
    /** @param {unknown} error */
    failed(error) {
      const box = errorBox();
      replace(slot, box);
      showError(box, error);
    },
    /** @param {string} from @param {string} to */
    fill(from, to) {
      if (filler) {
        filler(from, to);
        slot.scrollIntoView?.({ block: 'nearest' });
      }
    },
  };
}
