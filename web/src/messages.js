// Texts (SMS): the other party of a message, the contacts of a page in one request, live texts
// joining a list, the send form's refusals put on its fields, and segment counting. Pure, no DOM.

/**
 * @typedef {import('./live.js').Envelope} Envelope
 * @typedef {{id: string, phone_number_id: string, direction: string, from_number: string,
 *   to_number: string, body: string, status: string, created_at: string}} Message
 * @typedef {{direction?: string, phone_number_id?: string}} MessageFilters
 * @typedef {{id: string, name: string | null}} ContactRef
 * @typedef {'from_number_id' | 'to' | 'body'} SendField
 */

/** The live events carrying a text, with the status a text has when it is stored. */
export const MESSAGE_EVENTS = /** @type {Record<string, {direction: string, status: string}>} */ ({
  'telephony.sms.sent.v1': { direction: 'outbound', status: 'queued' },
  'telephony.sms.received.v1': { direction: 'inbound', status: 'received' },
});

/**
 * The number at the other end of a text: who sent it when it came in, who it went to otherwise.
 * @param {Pick<Message, 'direction' | 'from_number' | 'to_number'>} message
 */
export function otherParty(message) {
  return message.direction === 'inbound' ? message.from_number : message.to_number;
}

/**
 * A text as the list shows it, from a `telephony.sms.*` event; null for any other event.
 * @param {Envelope} event
 * @returns {Message | null}
 */
export function messageFromEvent(event) {
  const kind = MESSAGE_EVENTS[event.type];
  const data = event.data ?? {};
  if (!kind || typeof data.message_id !== 'string') return null;
  return {
    id: data.message_id,
    phone_number_id: String(data.phone_number_id ?? ''),
    direction: kind.direction,
    from_number: String(data.from_number ?? ''),
    to_number: String(data.to_number ?? ''),
    body: String(data.body ?? ''),
    status: kind.status,
    created_at: event.occurred_at,
  };
}

/**
 * Whether a text belongs in a list shown with `filters`.
 * @param {Message} message
 * @param {MessageFilters} filters
 */
export function matchesMessageFilters(message, filters) {
  if (filters.direction && message.direction !== filters.direction) return false;
  if (filters.phone_number_id && message.phone_number_id !== filters.phone_number_id) return false;
  return true;
}

/**
 * The first page of texts with `message` added on top (a live event, or the answer to a send);
 * the same array when it is already there, does not match the filters, or the page is not the
 * first. At most `limit` texts are kept.
 * @param {Message[]} messages
 * @param {Message | null} message
 * @param {MessageFilters} filters
 * @param {{prepend?: boolean, limit?: number}} [options]
 * @returns {Message[]}
 */
export function addMessage(messages, message, filters, options = {}) {
  if (!message || options.prepend === false || !matchesMessageFilters(message, filters)) return messages;
  const index = messages.findIndex((m) => m.id === message.id);
  if (index >= 0) return messages;
  const next = [message, ...messages];
  return options.limit && next.length > options.limit ? next.slice(0, options.limit) : next;
}

/** How many numbers `GET /v1/contacts` takes in one `phone_number` filter. */
export const CONTACT_LOOKUP_LIMIT = 100;

/**
 * The numbers to look up as contacts, for `GET /v1/contacts?phone_number=...` (repeated): each
 * E.164 number once, at most {@link CONTACT_LOOKUP_LIMIT} (short codes are no contact).
 * @param {string[]} numbers
 * @returns {string[]}
 */
export function contactLookup(numbers) {
  const list = [...new Set(numbers.filter((n) => typeof n === 'string' && /^\+[1-9]\d{1,14}$/.test(n)))];
  return list.slice(0, CONTACT_LOOKUP_LIMIT);
}

/**
 * The contact of each number looked up, from the page that answered the lookup: a contact, or
 * null when the number is no contact (the filter is exact, so the page is the whole answer).
 * @param {string[]} numbers the numbers asked for
 * @param {{items: {id: string, name: string | null, phone_number: string}[]}} page
 * @returns {Map<string, ContactRef | null>}
 */
export function contactsByNumber(numbers, page) {
  /** @type {Map<string, ContactRef | null>} */
  const found = new Map();
  const byNumber = new Map(page.items.map((c) => [c.phone_number, c]));
  for (const number of new Set(numbers)) {
    const contact = byNumber.get(number);
    found.set(number, contact ? { id: contact.id, name: contact.name } : null);
  }
  return found;
}

/**
 * The organisation's numbers able to send texts.
 * @template {{sms?: boolean}} N
 * @param {N[]} numbers
 * @returns {N[]}
 */
export function textingNumbers(numbers) {
  return numbers.filter((n) => n.sms === true);
}

const SEND_FIELDS = /** @type {SendField[]} */ (['from_number_id', 'to', 'body']);

/**
 * A refused `POST /v1/sms` as messages on the form's fields: a 422 names them; a 409
 * `do_not_call` is about the recipient; a 409 "cannot send texts" and a 404 (a number released
 * meanwhile) are about the sending number. Anything else stays general.
 * @param {{status: number, code: string, message: string, fields?: {field: string, message: string}[]}} error
 * @returns {{fields: Partial<Record<SendField, string>>, other: string[]}}
 */
export function sendErrors(error) {
  /** @type {Partial<Record<SendField, string>>} */
  const fields = {};
  /** @type {string[]} */
  const other = [];
  const put = (/** @type {SendField} */ name, /** @type {string} */ message) => {
    fields[name] = fields[name] ? `${fields[name]} ${message}` : message;
  };
  if (error.status === 422 && error.fields?.length) {
    for (const f of error.fields) {
      const name = SEND_FIELDS.find((key) => f.field === key || f.field.startsWith(`${key}.`) || f.field.startsWith(`${key}[`));
      if (name) put(name, f.message);
      else other.push(f.field ? `${f.field}: ${f.message}` : f.message);
    }
  } else if (error.status === 409 && error.code === 'do_not_call') {
    put('to', error.message);
  } else if (error.status === 409 && /cannot send texts/i.test(error.message)) {
    put('from_number_id', error.message);
  } else if (error.status === 404) {
    put('from_number_id', 'This number is no longer the organisation\'s. Reload and pick another.');
  } else {
    other.push(error.message);
  }
  return { fields, other };
}

// The GSM 03.38 alphabet: texts written only in it take 160 characters a part, others 70.
const GSM = new Set(Array.from('@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !"#¤%&\'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà'));
const GSM_EXTENDED = new Set(Array.from('^{}\\[~]|€\f'));

/**
 * How a text's body is sent: its encoding, its length in that encoding's units and the parts
 * (segments) it takes, each billed as a text.
 * @param {string} body
 * @returns {{encoding: 'GSM-7' | 'UCS-2', units: number, segments: number}}
 */
export function segments(body) {
  const chars = Array.from(body);
  const gsm = chars.every((c) => GSM.has(c) || GSM_EXTENDED.has(c));
  if (gsm) {
    const units = chars.reduce((sum, c) => sum + (GSM_EXTENDED.has(c) ? 2 : 1), 0);
    return { encoding: 'GSM-7', units, segments: units === 0 ? 0 : units <= 160 ? 1 : Math.ceil(units / 153) };
  }
  // UCS-2 counts UTF-16 code units: a character outside the BMP (most emoji) takes two.
  const units = body.length;
  return { encoding: 'UCS-2', units, segments: units <= 70 ? 1 : Math.ceil(units / 67) };
}
