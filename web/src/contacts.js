// Contacts and the do-not-call list: the import CSV's preview, the import report as rows to show,
// tags typed as text, and the do-not-call paths. Pure functions.

import { parseCsv } from './csv.js';

/** The columns the import understands; any other column is a prompt variable. */
export const KNOWN_COLUMNS = ['phone_number', 'name', 'email', 'tags', 'notes', 'do_not_call'];
const TRUE = new Set(['true', 'yes', 'y', '1']);
const FALSE = new Set(['false', 'no', 'n', '0']);
const TAG = /^[^,;\x00-\x1f]{1,40}$/;
const E164 = /^\+[1-9][0-9]{1,14}$/;
const EMAIL = /^[^@\s\x00]+@[^@\s\x00]+\.[^@\s\x00]+$/;
const VARIABLE = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;

/**
 * @typedef {{index: number, phone: string, name: string, email: string, tags: string[],
 *   doNotCall: boolean | null, variables: Record<string, string>, problem: string | null}} PreviewRow
 * @typedef {{columns: string[], variables: string[], rows: PreviewRow[], count: number,
 *   problems: number, error: string | null}} ImportPreview
 */

/**
 * A number as people write it (`+1 (415) 555-0100`) in E.164, as the API normalises it; null
 * when it is not one.
 * @param {string} text
 */
export function e164(text) {
  const number = String(text ?? '').replace(/[\s().-]/g, '');
  return E164.test(number) ? number : null;
}

/**
 * What the API will make of an import CSV, for a preview before sending it: the header (with
 * `phone` read as `phone_number`), each row's fields, and the problems the API would report. The
 * API has the last word (it also knows which numbers are contacts already); this only spares a
 * round trip for the obvious mistakes. Row `index` counts from 0 without the header, as the
 * API's report does.
 * @param {string} text
 * @returns {ImportPreview}
 */
export function previewImport(text) {
  const records = parseCsv(String(text ?? '').replace(/^\ufeff/, ''), ',');
  /** @type {ImportPreview} */
  const preview = { columns: [], variables: [], rows: [], count: 0, problems: 0, error: null };
  if (!records.length) {
    preview.error = 'No header line: the first line names the columns (phone_number, name, …).';
    return preview;
  }
  const names = records[0].map((cell) => {
    const low = cell.trim().toLowerCase();
    const known = low === 'phone' ? 'phone_number' : low;
    return KNOWN_COLUMNS.includes(known) ? known : cell.trim();
  });
  preview.columns = names;
  preview.variables = names.filter((name) => !KNOWN_COLUMNS.includes(name));
  if (!names.includes('phone_number')) {
    preview.error = 'The header has no phone_number (or phone) column.';
    return preview;
  }
  if (names.some((name) => !name)) {
    preview.error = 'The header has an empty column name.';
    return preview;
  }
  const repeated = names.find((name, i) => names.indexOf(name) !== i);
  if (repeated) {
    preview.error = `The header repeats the column "${repeated}".`;
    return preview;
  }
  /** @type {Map<string, number>} */
  const seen = new Map();
  records.slice(1).forEach((cells, index) => {
    const row = previewRow(names, cells, index);
    if (!row.problem) {
      const number = /** @type {string} */ (e164(row.phone));
      const first = seen.get(number);
      if (first !== undefined) row.problem = `repeats the number of row ${first}`;
      else seen.set(number, index);
    }
    if (row.problem) preview.problems += 1;
    preview.rows.push(row);
  });
  preview.count = preview.rows.length;
  return preview;
}

/**
 * @param {string[]} names
 * @param {string[]} cells
 * @param {number} index
 * @returns {PreviewRow}
 */
function previewRow(names, cells, index) {
  /** @type {PreviewRow} */
  const row = { index, phone: '', name: '', email: '', tags: [], doNotCall: null, variables: {}, problem: null };
  if (cells.length > names.length) {
    row.phone = cells[names.indexOf('phone_number')] ?? '';
    row.problem = `${cells.length} cells for ${names.length} columns`;
    return row;
  }
  /** @type {string[]} */
  const problems = [];
  names.forEach((name, column) => {
    const value = (cells[column] ?? '').trim();
    if (!value) return;
    if (name === 'phone_number') row.phone = value;
    else if (name === 'name') row.name = value;
    else if (name === 'email') row.email = value;
    else if (name === 'notes') return;
    else if (name === 'tags') row.tags = value.split(';').map((tag) => tag.trim()).filter(Boolean);
    else if (name === 'do_not_call') {
      if (TRUE.has(value.toLowerCase())) row.doNotCall = true;
      else if (FALSE.has(value.toLowerCase())) row.doNotCall = false;
      else problems.push(`do_not_call: "${value}" is not true or false`);
    } else {
      row.variables[name] = value;
    }
  });
  if (!row.phone) problems.unshift('phone_number: missing');
  else if (!e164(row.phone)) problems.unshift(`phone_number: "${row.phone}" is not an E.164 number (+14155550123)`);
  if (row.email && !EMAIL.test(row.email)) problems.push(`email: "${row.email}" is not an email address`);
  const badTag = row.tags.find((tag) => !TAG.test(tag));
  if (badTag !== undefined) problems.push(`tags: "${badTag}" is longer than 40 characters`);
  if (row.tags.length > 20) problems.push('tags: at most 20');
  const badName = Object.keys(row.variables).find((name) => !VARIABLE.test(name));
  if (badName !== undefined) problems.push(`variables: "${badName}" is not a variable name (letters, digits and _)`);
  row.problem = problems.length ? problems.join('; ') : null;
  return row;
}

/**
 * @typedef {{index: number, outcome: 'created' | 'updated' | 'invalid', phone_number: string | null,
 *   contact_id: string | null, reason: string | null}} ImportRowReport
 * @typedef {{created: number, updated: number, invalid: number, rows: ImportRowReport[]}} ImportReport
 * @typedef {{index: number, row: number, outcome: string, phone: string, name: string,
 *   contactId: string | null, reason: string | null}} ReportLine
 */

/**
 * The API's import report as lines to show: row numbers from 1 (the header not counted), the
 * number as the API understood it or else as typed, the name from the CSV, invalid rows first
 * when `invalidFirst`.
 * @param {ImportReport} report
 * @param {ImportPreview | null} [preview] the CSV that was sent, for what the report leaves out
 * @param {{invalidFirst?: boolean}} [options]
 * @returns {ReportLine[]}
 */
export function reportLines(report, preview = null, options = {}) {
  const lines = (report?.rows ?? []).map((item) => {
    const sent = preview?.rows[item.index];
    return {
      index: item.index,
      row: item.index + 1,
      outcome: item.outcome,
      phone: item.phone_number ?? sent?.phone ?? '',
      name: sent?.name ?? '',
      contactId: item.contact_id ?? null,
      reason: item.reason ?? null,
    };
  });
  if (options.invalidFirst) {
    lines.sort((a, b) => Number(b.outcome === 'invalid') - Number(a.outcome === 'invalid') || a.index - b.index);
  }
  return lines;
}

/**
 * The rows an all-or-nothing import refused (a 422 naming `csv[3]` or `rows[3]`), as report
 * lines; the other field errors (`csv`: the header) as `general`.
 * @param {{field: string, message: string}[]} fields the ApiError's fields
 * @param {ImportPreview | null} [preview]
 * @returns {{lines: ReportLine[], general: string[]}}
 */
export function refusedRows(fields, preview = null) {
  /** @type {ReportLine[]} */
  const lines = [];
  /** @type {string[]} */
  const general = [];
  for (const item of fields ?? []) {
    const match = /^(?:csv|rows)\[(\d+)\]$/.exec(item.field);
    if (!match) {
      general.push(item.field ? `${item.field}: ${item.message}` : item.message);
      continue;
    }
    const index = Number(match[1]);
    const sent = preview?.rows[index];
    lines.push({
      index, row: index + 1, outcome: 'invalid', phone: sent?.phone ?? '', name: sent?.name ?? '', contactId: null, reason: item.message,
    });
  }
  return { lines, general };
}

/**
 * Tags typed as text, separated by commas (or semicolons): trimmed, empty ones and repeats
 * dropped; `invalid` names those the API would refuse.
 * @param {string} text
 * @returns {{tags: string[], invalid: string[]}}
 */
export function parseTags(text) {
  const tags = [...new Set(String(text ?? '').split(/[,;]/).map((tag) => tag.trim()).filter(Boolean))];
  return { tags, invalid: tags.filter((tag) => !TAG.test(tag)) };
}

/**
 * The path of a number on the do-not-call list: the number in E.164 (formatting removed), its
 * `+` encoded as `%2B` (a raw `+` in a path could be read as a space).
 * @param {string} number
 */
export function doNotCallPath(number) {
  const normalised = String(number ?? '').replace(/[\s().-]/g, '');
  return `/v1/do-not-call/${encodeURIComponent(normalised)}`;
}

/**
 * A contact's display name: its name, or its number.
 * @param {{name?: string | null, phone_number?: string} | null | undefined} contact
 */
export function contactLabel(contact) {
  if (!contact) return '';
  return contact.name || contact.phone_number || 'Contact';
}
