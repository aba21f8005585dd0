// Campaign recipients pasted as CSV: a phone number, then variables. Pure functions.

/**
 * Split CSV text into rows of cells (RFC 4180: quoted cells may hold commas, quotes doubled,
 * and line breaks; CRLF or LF). Blank lines are skipped. The delimiter is a comma, or a
 * semicolon or tab when the first line has no comma, unless `delimiter` is given.
 * @param {string} text
 * @param {string} [delimiter]
 * @returns {string[][]}
 */
export function parseCsv(text, delimiter = detectDelimiter(text)) {
  /** @type {string[][]} */
  const rows = [];
  /** @type {string[]} */
  let row = [];
  let cell = '';
  let quoted = false;
  let i = 0;
  while (i < text.length) {
    const char = text[i];
    if (quoted) {
      if (char === '"') {
        if (text[i + 1] === '"') {
          cell += '"';
          i += 1;
        } else {
          quoted = false;
        }
      } else {
        cell += char;
      }
    } else if (char === '"' && cell.trim() === '') {
      quoted = true;
      cell = '';
    } else if (char === delimiter) {
      row.push(cell.trim());
      cell = '';
    } else if (char === '\n' || char === '\r') {
      if (char === '\r' && text[i + 1] === '\n') i += 1;
      row.push(cell.trim());
      if (row.some((value) => value !== '')) rows.push(row);
      row = [];
      cell = '';
    } else {
      cell += char;
    }
    i += 1;
  }
  row.push(cell.trim());
  if (row.some((value) => value !== '')) rows.push(row);
  return rows;
}

/** @param {string} text */
function detectDelimiter(text) {
  const first = text.split(/\r?\n/, 1)[0] ?? '';
  if (!first.includes(',') && first.includes(';')) return ';';
  if (!first.includes(',') && first.includes('\t')) return '\t';
  return ',';
}

const PHONE = /^\+?[0-9 ().-]{6,20}$/;
const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * @typedef {{to: string, variables: Record<string, string>}} Recipient
 * @typedef {{line: number, message: string}} CsvProblem
 */

/**
 * Recipients from CSV: the first column is the phone number; the other columns are variables
 * named by a header row (`phone,first_name,plan`). A first row whose first cell is not a phone
 * number is the header; without one, extra columns are refused (they would have no names).
 * @param {string} text
 * @returns {{recipients: Recipient[], problems: CsvProblem[], variables: string[]}}
 */
export function parseRecipients(text) {
  const rows = parseCsv(text);
  /** @type {Recipient[]} */
  const recipients = [];
  /** @type {CsvProblem[]} */
  const problems = [];
  /** @type {string[]} */
  let names = [];
  let start = 0;
  if (rows.length && !PHONE.test(rows[0][0] ?? '')) {
    names = rows[0].slice(1);
    start = 1;
    names.forEach((name, index) => {
      if (!NAME.test(name)) problems.push({ line: 1, message: `column ${index + 2}: "${name}" is not a variable name (letters, digits and _, not starting with a digit)` });
    });
  }
  const seen = new Set();
  for (let index = start; index < rows.length; index += 1) {
    const row = rows[index];
    const line = index + 1;
    const to = normalisePhone(row[0] ?? '');
    if (!to) {
      problems.push({ line, message: `"${row[0] ?? ''}" is not a phone number in international format (+15551234567)` });
      continue;
    }
    if (seen.has(to)) {
      problems.push({ line, message: `${to} is already on the list` });
      continue;
    }
    seen.add(to);
    if (!names.length && row.length > 1 && row.slice(1).some((value) => value !== '')) {
      problems.push({ line, message: 'extra columns need a header row naming them (e.g. phone,first_name)' });
      continue;
    }
    /** @type {Record<string, string>} */
    const variables = {};
    names.forEach((name, column) => {
      const value = row[column + 1];
      if (name && value !== undefined && value !== '') variables[name] = value;
    });
    recipients.push({ to, variables });
  }
  return { recipients, problems, variables: names };
}

/**
 * A phone number in E.164 (`+15551234567`) from what people type; null when it is not one.
 * @param {string} text
 */
export function normalisePhone(text) {
  const trimmed = text.trim();
  if (!PHONE.test(trimmed)) return null;
  const digits = trimmed.replace(/[^0-9]/g, '');
  if (digits.length < 6 || digits.length > 15) return null;
  if (trimmed.startsWith('+')) return `+${digits}`;
  if (trimmed.startsWith('00')) return `+${digits.slice(2)}`;
  return null; // Without its country code the number is ambiguous.
}
