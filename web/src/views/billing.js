// Billing: balance and standing (live), plan and subscription, credit top-ups (Stripe Checkout),
// usage, the ledger, invoices and receipts.

import { h, replace } from '../dom.js';
import { formatDateTime, formatMoney, formatDuration, formatStatus, dayBoundary } from '../format.js';
import { actionButton, badge, details, empty, errorBox, header, loading, Pager, RESYNC, showError, table, toast } from '../ui.js';
import * as lookups from '../lookups.js';
import { BalanceOrder } from '../balance.js';

/** @typedef {import('../app.js').Context} Context @typedef {import('../app.js').View} View */

/** @param {Context} ctx @param {View} view */
export function overview(ctx, view) {
  const box = errorBox();
  const accountSlot = h('div', null, loading());
  const planSlot = h('div');
  const topUpSlot = h('div');
  const usageSlot = h('div');
  const ledgerSlot = h('div');
  const invoicesSlot = h('div');
  const receiptsSlot = h('div');
  /** @type {any} */
  let account = null;
  /** @type {any} */
  let catalogue = null;
  // Balance events apply in their order only (`sequence`); a reload starts afresh.
  const balanceOrder = new BalanceOrder();
  const origin = window.location.origin;

  const checkout = view.url.searchParams.get('checkout');
  if (checkout === 'success') toast('Payment received. Your balance updates in a moment.');
  else if (checkout === 'cancelled') toast('Checkout cancelled: nothing was charged.');

  /**
   * @param {Record<string, string>} body
   */
  async function startCheckout(body) {
    const session = await ctx.api.post('/v1/billing/checkout', {
      ...body,
      success_url: `${origin}/billing?checkout=success`,
      cancel_url: `${origin}/billing?checkout=cancelled`,
    });
    // Stripe's page: only ever an https (or, in development, the sandbox's http) address.
    if (typeof session.url === 'string' && /^https?:\/\//.test(session.url)) window.location.assign(session.url);
    else throw new Error('The payment page could not be opened.');
  }

  async function load() {
    try {
      [account, catalogue] = await Promise.all([ctx.api.get('/v1/billing/account'), ctx.api.get('/v1/billing/plans')]);
      if (!view.alive()) return;
      balanceOrder.reset();
      renderAccount();
      renderPlans();
      renderTopUp();
    } catch (error) {
      if (!view.alive()) return;
      replace(accountSlot);
      showError(box, error);
    }
  }

  function renderAccount() {
    const a = account;
    replace(accountSlot,
      h('div', { class: 'balance' },
        h('p', { class: 'muted' }, 'Balance'),
        h('p', { class: `amount${a.balance <= 0 ? ' negative' : ''}` }, formatMoney(a.balance, a.currency))),
      details([
        ['Standing', [badge(a.standing), a.suspension_reason ? ` ${formatStatus(a.suspension_reason)}` : '']],
        ['Plan', a.plan.name],
        ['Grace period ends', a.grace_period_ends_at ? formatDateTime(a.grace_period_ends_at) : '—'],
        ['Subscription', a.subscription
          ? `${formatStatus(a.subscription.status)}${a.subscription.cancel_at_period_end ? ', ends' : ', renews'} ${formatDateTime(a.subscription.current_period_end)}`
          : 'None'],
        ['Next plan', a.pending_plan ? `${a.pending_plan.name} from ${formatDateTime(a.pending_plan_at)}` : '—'],
      ]),
      a.standing === 'suspended' ? h('p', { class: 'warning', role: 'alert' }, 'Your account is suspended: calls are refused until you top up.') : null);
  }

  function renderPlans() {
    const a = account;
    const current = a.plan.code;
    replace(planSlot, h('div', { class: 'cards' }, catalogue.plans.map((/** @type {any} */ plan) => {
      const isCurrent = plan.code === current;
      let action = null;
      if (isCurrent) action = h('span', { class: 'badge badge-completed' }, 'Current plan');
      else if (a.pending_plan?.code === plan.code) action = h('span', { class: 'muted' }, `From ${formatDateTime(a.pending_plan_at)}`);
      else if (a.subscription && !a.subscription.cancel_at_period_end) {
        action = actionButton(plan.monthly_price === 0 ? 'Downgrade' : 'Switch to this plan', async () => {
          account = plan.monthly_price === 0 && plan.is_default
            ? await ctx.api.delete('/v1/billing/subscription')
            : await ctx.api.post('/v1/billing/subscription', { plan: plan.code });
          toast('Plan change scheduled for your next billing period.');
          renderAccount();
          renderPlans();
        }, { box, confirm: `Move to the ${plan.name} plan from your next billing period?` });
      } else if (plan.monthly_price > 0) {
        action = actionButton('Subscribe', () => startCheckout({ kind: 'subscription', plan: plan.code }), { class: 'primary', box });
      }
      return h('article', { class: `card${isCurrent ? ' current' : ''}` },
        h('h3', null, plan.name),
        h('p', { class: 'price' }, plan.monthly_price ? `${formatMoney(plan.monthly_price, plan.currency)} / month` : 'Free'),
        h('ul', { class: 'plain small' },
          plan.included_credit ? h('li', null, `${formatMoney(plan.included_credit, plan.currency)} of calls included`) : null,
          plan.trial_credit ? h('li', null, `${formatMoney(plan.trial_credit, plan.currency)} trial credit`) : null,
          h('li', null, `Outbound ${formatMoney(plan.outbound_rate_per_minute, plan.currency)}/min, inbound ${formatMoney(plan.inbound_rate_per_minute, plan.currency)}/min`),
          h('li', null, `Billed per ${plan.increment}${plan.minimum_seconds ? `, at least ${plan.minimum_seconds} s` : ''}`),
          h('li', null, `${plan.limits.concurrent_calls} calls at once, ${plan.limits.phone_numbers} numbers`)),
        action);
    })), a.subscription && !a.subscription.cancel_at_period_end
      ? actionButton('Cancel the subscription', async () => {
        account = await ctx.api.delete('/v1/billing/subscription');
        toast('The subscription ends with the current period.');
        renderAccount();
        renderPlans();
      }, { class: 'danger', box, confirm: 'Cancel the subscription at the end of the current period?' })
      : null);
  }

  function renderTopUp() {
    if (!catalogue.credit_packs.length) {
      replace(topUpSlot, empty('No credit packs are offered.'));
      return;
    }
    replace(topUpSlot, h('div', { class: 'cards' }, catalogue.credit_packs.map((/** @type {any} */ pack) =>
      h('article', { class: 'card' },
        h('h3', null, pack.name),
        h('p', { class: 'price' }, formatMoney(pack.price, pack.currency)),
        h('p', { class: 'small' }, `${formatMoney(pack.credit, pack.currency)} of credit`),
        actionButton('Buy', () => startCheckout({ kind: 'credit_pack', credit_pack: pack.code }), { class: 'primary', box })))));
  }

  // Usage, grouped by day, agent or number, over a chosen period.
  const usageBy = h('select', { id: 'usage-by' }, h('option', { value: 'day' }, 'Day'), h('option', { value: 'agent' }, 'Agent'), h('option', { value: 'number' }, 'Number'));
  const today = new Date();
  const monthAgo = new Date(today.getTime() - 30 * 86400_000);
  const iso = (/** @type {Date} */ d) => `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
  const usageSince = h('input', { id: 'usage-since', type: 'date', value: iso(monthAgo) });
  const usageUntil = h('input', { id: 'usage-until', type: 'date', value: iso(today) });
  /** @type {Map<string, string> | null} */
  let keyNames = null;
  async function loadUsage() {
    try {
      if (!keyNames && usageBy.value !== 'day') {
        // Usage by agent or number names them by id.
        const [agents, numbers] = await Promise.all([lookups.agents(ctx.api), lookups.numbers(ctx.api)]);
        keyNames = new Map([...lookups.names(agents, (a) => a.name), ...lookups.names(numbers, lookups.numberLabel)]);
      }
      const usage = await ctx.api.get('/v1/billing/usage', {
        query: { by: usageBy.value, since: dayBoundary(usageSince.value, 'start'), until: dayBoundary(usageUntil.value, 'end') },
      });
      if (!view.alive()) return;
      const total = usage.data.reduce((/** @type {number} */ sum, /** @type {any} */ row) => sum + row.amount, 0);
      replace(usageSlot, usage.data.length ? [table([
        { title: formatStatus(usage.by), cell: (r) => keyNames?.get(r.key) ?? r.key },
        { title: 'Calls', cell: (r) => String(r.calls), class: 'num' },
        { title: 'Billed time', cell: (r) => formatDuration(r.billed_seconds), class: 'num' },
        { title: 'Amount', cell: (r) => formatMoney(r.amount, r.currency), class: 'num' },
      ], usage.data, { caption: 'Usage' }), h('p', { class: 'small' }, `Total: ${formatMoney(total, usage.data[0]?.currency ?? account?.currency)}`)]
        : empty('No usage in this period.'));
    } catch (error) {
      if (view.alive()) showError(box, error);
    }
  }
  for (const control of [usageBy, usageSince, usageUntil]) control.addEventListener('change', () => void loadUsage());

  const ledgerPager = new Pager((cursor) => void loadLedger(cursor));
  /** @param {string | null} cursor */
  async function loadLedger(cursor) {
    try {
      const page = await ctx.api.get('/v1/billing/ledger', { query: { cursor, limit: 25 } });
      if (!view.alive()) return;
      ledgerPager.update(page.next_cursor);
      replace(ledgerSlot, page.items.length ? [table([
        { title: 'When', cell: (e) => formatDateTime(e.created_at) },
        { title: 'What', cell: (e) => e.description || formatStatus(e.kind) },
        { title: 'Amount', cell: (e) => formatMoney(e.amount, account?.currency), class: 'num' },
        { title: 'Balance after', cell: (e) => formatMoney(e.balance_after, account?.currency), class: 'num' },
      ], page.items, { caption: 'Ledger' }), ledgerPager.element] : empty('No entries yet.'));
    } catch (error) {
      if (view.alive()) showError(box, error);
    }
  }

  const invoicePager = new Pager((cursor) => void loadInvoices(cursor));
  /** @param {string | null} cursor */
  async function loadInvoices(cursor) {
    try {
      const page = await ctx.api.get('/v1/billing/invoices', { query: { cursor, limit: 20 } });
      if (!view.alive()) return;
      invoicePager.update(page.next_cursor);
      replace(invoicesSlot, page.items.length ? [table([
        { title: 'Number', cell: (i) => i.number ?? '—' },
        { title: 'Date', cell: (i) => formatDateTime(i.created_at) },
        { title: 'Status', cell: (i) => badge(i.status) },
        { title: 'Amount', cell: (i) => formatMoney(i.amount_due, i.currency), class: 'num' },
        { title: '', cell: (i) => [
          i.hosted_invoice_url ? h('a', { href: i.hosted_invoice_url, target: '_blank', rel: 'noopener noreferrer' }, 'View') : null, ' ',
          i.invoice_pdf ? h('a', { href: i.invoice_pdf, target: '_blank', rel: 'noopener noreferrer' }, 'PDF') : null] },
      ], page.items, { caption: 'Invoices' }), invoicePager.element] : empty('No invoices yet.'));
    } catch (error) {
      if (view.alive()) showError(box, error);
    }
  }

  async function loadReceipts() {
    try {
      const list = await ctx.api.get('/v1/billing/receipts');
      if (!view.alive()) return;
      replace(receiptsSlot, list.items.length ? table([
        { title: 'Paid', cell: (r) => formatDateTime(r.paid_at) },
        { title: 'For', cell: (r) => r.description },
        { title: 'Amount', cell: (r) => formatMoney(r.amount, r.currency), class: 'num' },
        { title: '', cell: (r) => (r.receipt_url ? h('a', { href: r.receipt_url, target: '_blank', rel: 'noopener noreferrer' }, 'Receipt') : '—') },
      ], list.items, { caption: 'Receipts' }) : empty('No payments yet.'));
    } catch (error) {
      if (view.alive()) showError(box, error);
    }
  }

  view.subscribe((event) => {
    if (!account) return;
    if (event.type === RESYNC) {
      void load();
      void loadLedger(null);
    } else if (event.type === 'billing.balance.changed.v1') {
      if (!balanceOrder.accept(event.data)) return; // late or repeated
      account = { ...account, balance: event.data.balance, currency: event.data.currency };
      renderAccount();
      void loadLedger(null);
    } else if (event.type.startsWith('billing.account.') || event.type === 'billing.plan.changed.v1' || event.type.startsWith('billing.payment.')) {
      void load();
      if (event.type.startsWith('billing.payment.')) {
        void loadInvoices(null);
        void loadReceipts();
      }
    }
  });

  void load();
  void loadUsage();
  void loadLedger(null);
  void loadInvoices(null);
  void loadReceipts();

  const sections = {
    '/billing/plan': 'plan',
    '/billing/top-up': 'top-up',
    '/billing/invoices': 'invoices',
  };
  const target = /** @type {Record<string, string>} */ (sections)[view.url.pathname];
  const element = h('section', { class: 'page' },
    header('Billing'),
    box,
    h('div', { class: 'panel' }, accountSlot),
    h('div', { class: 'panel', id: 'plan' }, h('h2', null, 'Plan'), planSlot),
    h('div', { class: 'panel', id: 'top-up' }, h('h2', null, 'Top up'), h('p', { class: 'muted' }, 'Credits are used by calls, per the rates of your plan.'), topUpSlot),
    h('div', { class: 'panel', id: 'usage' }, h('div', { class: 'panel-head' }, h('h2', null, 'Usage'),
      h('div', { class: 'filters' },
        h('div', { class: 'field' }, h('label', { for: 'usage-by' }, 'By'), usageBy),
        h('div', { class: 'field' }, h('label', { for: 'usage-since' }, 'From'), usageSince),
        h('div', { class: 'field' }, h('label', { for: 'usage-until' }, 'To'), usageUntil))), usageSlot),
    h('div', { class: 'panel', id: 'ledger' }, h('h2', null, 'Ledger'), ledgerSlot),
    h('div', { class: 'panel', id: 'invoices' }, h('h2', null, 'Invoices'), invoicesSlot, h('h2', null, 'Receipts'), receiptsSlot));
  if (target) setTimeout(() => element.querySelector(`#${target}`)?.scrollIntoView(), 300);
  return element;
}
