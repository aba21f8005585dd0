// Formatting of money, durations, dates and statuses. Pure functions, no DOM.

/** Digits after the decimal point of currencies whose smallest unit is not a hundredth. */
const EXPONENTS = /** @type {Record<string, number>} */ ({
  JPY: 0, KRW: 0, VND: 0, CLP: 0, ISK: 0, HUF: 2, BHD: 3, KWD: 3, OMR: 3, JOD: 3, TND: 3,
});

/**
 * Money in the currency's smallest unit (cents for USD) as a display string: `$12.50`, `-$0.07`.
 * @param {number | null | undefined} amount integer, smallest unit
 * @param {string | null | undefined} currency ISO 4217 code
 * @param {string} [locale]
 */
export function formatMoney(amount, currency, locale = 'en-US') {
  if (amount === null || amount === undefined || Number.isNaN(amount)) return '—';
  const code = (currency || 'USD').toUpperCase();
  const exponent = EXPONENTS[code] ?? 2;
  const value = amount / 10 ** exponent;
  try {
    return new Intl.NumberFormat(locale, {
      style: 'currency', currency: code, minimumFractionDigits: exponent, maximumFractionDigits: exponent,
    }).format(value);
  } catch {
    return `${value.toFixed(exponent)} ${code}`;
  }
}

/**
 * A display amount (`12.50`) to the smallest unit (1250); null when it is not a number.
 * @param {string} text
 * @param {string} [currency]
 */
export function parseMoney(text, currency = 'USD') {
  const clean = String(text).trim().replace(/,/g, '');
  if (!/^-?\d+(\.\d+)?$/.test(clean)) return null;
  const exponent = EXPONENTS[currency.toUpperCase()] ?? 2;
  return Math.round(Number(clean) * 10 ** exponent);
}

/**
 * Seconds as `0:07`, `4:05`, `1:02:03`; `—` when unknown.
 * @param {number | null | undefined} seconds
 */
export function formatDuration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds) || seconds < 0) return '—';
  const total = Math.floor(seconds);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  const ss = String(s).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}

/**
 * Seconds in words for settings: `45 s`, `10 min`, `1 h 30 min`.
 * @param {number | null | undefined} seconds
 */
export function formatSeconds(seconds) {
  if (seconds === null || seconds === undefined) return '—';
  if (seconds < 60) return `${seconds} s`;
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  const parts = [];
  if (h) parts.push(`${h} h`);
  if (m) parts.push(`${m} min`);
  if (s) parts.push(`${s} s`);
  return parts.join(' ');
}

/**
 * An ISO timestamp as a short local date and time; `—` when absent.
 * @param {string | null | undefined} iso
 * @param {string} [locale]
 * @param {string} [timeZone]
 */
export function formatDateTime(iso, locale = undefined, timeZone = undefined) {
  if (!iso) return '—';
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return '—';
  return new Intl.DateTimeFormat(locale, {
    year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', timeZone,
  }).format(date);
}

/**
 * How long ago: `just now`, `5 min ago`, `3 h ago`, `2 d ago`.
 * @param {string | null | undefined} iso
 * @param {number} [now] epoch milliseconds
 */
export function formatAgo(iso, now = Date.now()) {
  if (!iso) return '—';
  const then = new Date(iso).getTime();
  if (Number.isNaN(then)) return '—';
  const seconds = Math.max(0, Math.round((now - then) / 1000));
  if (seconds < 45) return 'just now';
  if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.round(seconds / 3600)} h ago`;
  return `${Math.round(seconds / 86400)} d ago`;
}

/**
 * A status identifier in words: `in-progress` → `In progress`, `no-answer` → `No answer`.
 * @param {string | null | undefined} status
 */
export function formatStatus(status) {
  if (!status) return '—';
  const words = status.replace(/[-_]/g, ' ');
  return words.charAt(0).toUpperCase() + words.slice(1);
}

/**
 * A `yyyy-mm-dd` date input's value as the ISO instant starting (or ending) that local day.
 * @param {string} value
 * @param {'start' | 'end'} edge
 */
export function dayBoundary(value, edge) {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(value)) return null;
  const [y, m, d] = value.split('-').map(Number);
  const date = edge === 'start' ? new Date(y, m - 1, d, 0, 0, 0, 0) : new Date(y, m - 1, d + 1, 0, 0, 0, 0);
  return date.toISOString();
}
