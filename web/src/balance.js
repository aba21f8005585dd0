// The order of `billing.balance.changed.v1` events: each carries the account's `sequence`, which
// grows with every change; one not above the last applied is late (or repeated) and is ignored.

/**
 * Whether a balance event with `sequence` is to be applied after the one numbered `last`.
 * An event without a usable sequence cannot be ordered: it is applied.
 * @param {number | null} last the sequence last applied (null: none since the balance was loaded)
 * @param {unknown} sequence the event's
 */
export function isNewerBalance(last, sequence) {
  if (typeof sequence !== 'number' || !Number.isFinite(sequence)) return true;
  return last === null || sequence > last;
}

/** The last balance event applied; reset when the balance is loaded again. */
export class BalanceOrder {
  constructor() {
    /** @type {number | null} */
    this.last = null;
  }

  /** The balance was (re)loaded: events are compared with nothing until one is applied. */
  reset() {
    this.last = null;
  }

  /**
   * Whether to apply an event's data (`{balance, currency, sequence}`); remembers it if so.
   * @param {{sequence?: unknown}} data
   */
  accept(data) {
    const sequence = data?.sequence;
    if (!isNewerBalance(this.last, sequence)) return false;
    if (typeof sequence === 'number' && Number.isFinite(sequence)) this.last = sequence;
    return true;
  }
}
