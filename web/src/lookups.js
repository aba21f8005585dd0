// The organisation's agents and numbers, for names in lists and choices in forms.

/**
 * @typedef {{id: string, name: string, sync_status: string}} AgentRef
 * @typedef {{id: string, phone_number: string, friendly_name: string, agent_id: string | null,
 *   voice?: boolean, sms?: boolean}} NumberRef
 */

/**
 * Every item of a cursor-paged list (up to `max`).
 * @param {import('./api.js').Api} api
 * @param {string} path
 * @param {number} [max]
 * @returns {Promise<any[]>}
 */
export async function all(api, path, max = 500) {
  const items = [];
  /** @type {string | null} */
  let cursor = null;
  do {
    const page = await api.get(path, { query: { limit: 100, cursor } });
    items.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor && items.length < max);
  return items;
}

/**
 * @param {import('./api.js').Api} api
 * @returns {Promise<AgentRef[]>}
 */
export function agents(api) {
  return all(api, '/v1/agents');
}

/**
 * @param {import('./api.js').Api} api
 * @returns {Promise<NumberRef[]>}
 */
export function numbers(api) {
  return all(api, '/v1/numbers');
}

/**
 * A map from id to display name.
 * @param {{id: string}[]} items
 * @param {(item: any) => string} name
 */
export function names(items, name) {
  return new Map(items.map((item) => [item.id, name(item)]));
}

/** @param {NumberRef} number */
export function numberLabel(number) {
  return number.friendly_name && number.friendly_name !== number.phone_number
    ? `${number.phone_number} (${number.friendly_name})`
    : number.phone_number;
}
