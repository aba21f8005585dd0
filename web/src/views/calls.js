// Calls: the list (filters, cursor paging, live), one call (live status and transcript, cost,
// recording, hang up, transfer) and placing a call.

import { h, replace } from '../dom.js';
import { ApiError } from '../api.js';
import { formatAgo, formatDateTime, formatDuration, formatMoney, formatStatus, dayBoundary } from '../format.js';
import { applyToCall, applyToList, isFinal } from '../calls-state.js';
import { concernsConversation, conversationFrom, conversationRequest, formatMs, latencyStats, toolCalls } from '../conversations.js';
import * as lookups from '../lookups.js';
import {
  actionButton, badge, details, empty, errorBox, field, form, header, loading, Pager, RESYNC, showError, table, toast, variablesEditor, watchFilters,
} from '../ui.js';

/** @typedef {import('../app.js').Context} Context @typedef {import('../app.js').View} View */
/** @typedef {import('../calls-state.js').Call} Call */

const STATUSES = ['queued', 'ringing', 'in-progress', 'completed', 'busy', 'no-answer', 'failed', 'canceled'];
const PAGE = 25;
const FILTER_KEYS = ['status', 'direction', 'agent_id', 'phone_number_id', 'from', 'to'];

/**
 * The call's contact (its other party, when that number is a contact) as a link.
 * @param {Call} call
 */
function contactLink(call) {
  if (!call.contact) return '—';
  return h('a', { href: `/contacts/${encodeURIComponent(call.contact.id)}` }, call.contact.name || 'Contact');
}

/**
 * A call refused because its number is on the do-not-call list: what happened and what to do.
 * @param {ApiError} error
 * @param {string} number
 */
function doNotCallNotice(error, number) {
  return h('div', { class: 'error-box', role: 'alert' },
    h('p', null, h('strong', null, 'This number may not be called. '), error.message),
    h('p', null, `${number} is on your organisation's do-not-call list, so nothing was dialed. If the person asked to be called again, take the number off `,
      h('a', { href: '/do-not-call' }, 'the do-not-call list'), ' first.'));
}

/** @param {Context} ctx @param {View} view */
export function list(ctx, view) {
  const params = view.url.searchParams;
  /** @type {Record<string, string>} */
  const chosen = Object.fromEntries(FILTER_KEYS.map((key) => [key, params.get(key) ?? '']));
  /** @type {Call[]} */
  let calls = [];
  /** @type {Map<string, string>} */
  let agentNames = new Map();
  /** @type {Map<string, string>} */
  let numberNames = new Map();
  const fresh = new Set();
  const box = errorBox();
  const body = h('div', null, loading());
  const pager = new Pager((cursor) => void load(cursor));

  const filters = () => ({
    status: chosen.status || undefined,
    direction: chosen.direction || undefined,
    agent_id: chosen.agent_id || undefined,
    phone_number_id: chosen.phone_number_id || undefined,
    created_after: chosen.from ? dayBoundary(chosen.from, 'start') ?? undefined : undefined,
    created_before: chosen.to ? dayBoundary(chosen.to, 'end') ?? undefined : undefined,
  });

  const agentSelect = h('select', { id: 'filter-agent', name: 'agent_id' }, h('option', { value: '' }, 'All agents'));
  const numberSelect = h('select', { id: 'filter-number', name: 'phone_number_id' }, h('option', { value: '' }, 'All numbers'));
  const filterForm = h('form', { class: 'filters', 'aria-label': 'Filter calls' },
    h('div', { class: 'field' }, h('label', { for: 'filter-status' }, 'Status'),
      h('select', { id: 'filter-status', name: 'status' }, h('option', { value: '' }, 'Any status'),
        STATUSES.map((s) => h('option', { value: s, selected: chosen.status === s }, formatStatus(s))))),
    h('div', { class: 'field' }, h('label', { for: 'filter-direction' }, 'Direction'),
      h('select', { id: 'filter-direction', name: 'direction' }, h('option', { value: '' }, 'Both'),
        h('option', { value: 'outbound', selected: chosen.direction === 'outbound' }, 'Outbound'),
        h('option', { value: 'inbound', selected: chosen.direction === 'inbound' }, 'Inbound'))),
    h('div', { class: 'field' }, h('label', { for: 'filter-agent' }, 'Agent'), agentSelect),
    h('div', { class: 'field' }, h('label', { for: 'filter-number' }, 'Number'), numberSelect),
    h('div', { class: 'field' }, h('label', { for: 'filter-from' }, 'From'), h('input', { id: 'filter-from', name: 'from', type: 'date', value: chosen.from })),
    h('div', { class: 'field' }, h('label', { for: 'filter-to' }, 'To'), h('input', { id: 'filter-to', name: 'to', type: 'date', value: chosen.to })),
    h('div', { class: 'actions' }, h('button', { type: 'reset' }, 'Clear')));
  watchFilters(filterForm, chosen, '/calls', () => pager.reset());

  /** @param {string | null} cursor */
  async function load(cursor) {
    showError(box, null);
    try {
      const page = await ctx.api.get('/v1/calls', { query: { ...filters(), cursor, limit: PAGE } });
      if (!view.alive()) return;
      calls = page.items;
      fresh.clear();
      pager.update(page.next_cursor);
      render();
    } catch (error) {
      if (!view.alive()) return;
      replace(body);
      showError(box, error);
    }
  }

  function render() {
    if (!calls.length) {
      const filtered = Object.values(chosen).some(Boolean);
      replace(body, empty(filtered ? 'No calls match these filters.' : 'No calls yet. Place your first call, or call one of your numbers.',
        filtered ? null : h('a', { href: '/calls/new', class: 'button primary' }, 'Place a call')), pager.first ? null : pager.element);
      return;
    }
    replace(body, table([
      { title: 'When', cell: (c) => h('a', { href: `/calls/${c.id}`, title: formatDateTime(c.created_at) }, formatAgo(c.created_at)) },
      { title: 'Direction', cell: (c) => formatStatus(c.direction) },
      { title: 'From', cell: (c) => c.from_number ?? '—' },
      { title: 'To', cell: (c) => c.to_number ?? '—' },
      { title: 'Contact', cell: (c) => contactLink(c) },
      { title: 'Agent', cell: (c) => (c.agent_id ? agentNames.get(c.agent_id) ?? 'Agent' : '—') },
      { title: 'Status', cell: (c) => [badge(c.status), fresh.has(c.id) ? h('span', { class: 'new-dot', title: 'New' }, 'new') : null] },
      { title: 'Duration', cell: (c) => formatDuration(c.duration_s), class: 'num' },
    ], calls, { caption: 'Calls', rowKey: (c) => c.id }), pager.element);
  }

  view.subscribe((event) => {
    if (event.type === RESYNC) {
      void load(pager.current);
      return;
    }
    const next = applyToList(calls, event, filters(), { prepend: pager.first, limit: PAGE });
    if (next === calls) return;
    if (event.type === 'telephony.call.created.v1') fresh.add(event.data.call_id);
    calls = next;
    render();
  });
  // Keep "5 min ago" true.
  const tick = setInterval(() => {
    if (calls.length) render();
  }, 60_000);
  view.onDispose(() => clearInterval(tick));

  Promise.all([lookups.agents(ctx.api), lookups.numbers(ctx.api)]).then(([agents, numbers]) => {
    if (!view.alive()) return;
    agentNames = lookups.names(agents, (a) => a.name);
    numberNames = lookups.names(numbers, lookups.numberLabel);
    for (const agent of agents) agentSelect.appendChild(h('option', { value: agent.id, selected: chosen.agent_id === agent.id }, agent.name));
    for (const [id, label] of numberNames) numberSelect.appendChild(h('option', { value: id, selected: chosen.phone_number_id === id }, label));
    if (calls.length) render();
  }).catch(() => {});
  void load(null);

  return h('section', { class: 'page' },
    header('Calls', h('a', { href: '/calls/new', class: 'button primary' }, 'Place a call')),
    filterForm, box, body);
}

/** @param {Context} ctx @param {View} view */
export function detail(ctx, view) {
  const id = view.params.id;
  /** @type {Call | null} */
  let call = null;
  /** @type {any} */
  let agent = null;
  const box = errorBox();
  const title = h('h1', { tabindex: '-1' }, 'Call');
  const statusSlot = h('span');
  const actions = h('div', { class: 'page-actions' });
  const info = h('div', null, loading());
  const history = h('ol', { class: 'history' });
  const transcript = h('div', { class: 'transcript', role: 'log', 'aria-live': 'polite', 'aria-label': 'Transcript' });
  const summary = h('div');
  const duration = h('span');
  const conversationSlot = h('div', null, h('p', { class: 'muted' }, 'The analysis, the tool calls and the timing appear here once the call has ended.'));
  /** @type {import('../conversations.js').Conversation | null} */
  let conversation = null;
  let conversationSerial = 0;
  let lastStatus = '';

  async function load() {
    try {
      const loaded = await ctx.api.get(`/v1/calls/${encodeURIComponent(id)}`);
      if (!view.alive()) return;
      // Live lines that arrived while loading are kept when the stored transcript is shorter.
      const liveLines = call?.transcript?.lines ?? [];
      call = loaded;
      if (call && liveLines.length > (call.transcript?.lines.length ?? 0)) {
        call.transcript = { conversation_id: call.transcript?.conversation_id ?? null, summary: call.transcript?.summary ?? null, lines: liveLines };
      }
      render();
      void loadConversation();
      if (!agent && call?.agent_id) {
        ctx.api.get(`/v1/agents/${encodeURIComponent(call.agent_id)}`).then((a) => {
          agent = a;
          if (view.alive()) render(true);
        }).catch(() => {});
      }
    } catch (error) {
      if (!view.alive()) return;
      replace(info);
      showError(box, error);
    }
  }

  /** @param {boolean} [force] */
  function render(force = false) {
    if (!call) return;
    const c = call;
    replace(title, c.direction === 'inbound' ? `Call from ${c.from_number}` : `Call to ${c.to_number}`);
    replace(statusSlot, badge(c.status));
    if (force || c.status !== lastStatus) {
      lastStatus = c.status;
      renderActions(c);
    }
    updateDuration();
    replace(info, details([
      ['Status', badge(c.status)],
      ['Direction', formatStatus(c.direction)],
      ['From', c.from_number ?? '—'],
      ['To', c.to_number ?? '—'],
      ['Contact', contactLink(c)],
      ['Agent', c.agent_id ? h('a', { href: `/agents/${c.agent_id}` }, agent?.name ?? 'Open the agent') : '—'],
      ['Duration', duration],
      ['Answered by', formatStatus(c.answered_by)],
      ['Ended because', c.ended_reason ?? '—'],
      ['Placed', formatDateTime(c.created_at)],
      ['Answered', formatDateTime(c.started_at)],
      ['Ended', formatDateTime(c.ended_at)],
      ['Cost', c.cost ? `${formatMoney(c.cost.amount, c.cost.currency)}${c.cost.billed_seconds !== null ? ` for ${formatDuration(c.cost.billed_seconds)} billed` : ''}${c.cost.rate_per_minute !== null ? ` at ${formatMoney(c.cost.rate_per_minute, c.cost.currency)}/min` : ''}` : isFinal(c.status) ? 'Not charged yet' : '—'],
      ['Recording', c.recording_url ? h('a', { href: c.recording_url, target: '_blank', rel: 'noopener noreferrer' }, 'Listen to the recording') : 'None'],
      ['Variables', c.variables && Object.keys(c.variables).length
        ? h('ul', { class: 'plain' }, Object.entries(c.variables).map(([k, v]) => h('li', null, h('code', null, k), ' = ', v)))
        : 'None'],
    ]));
    replace(history, (c.status_history ?? []).map((change) =>
      h('li', null, badge(change.status), ' ', h('time', { datetime: change.at }, formatDateTime(change.at)))));
    const lines = (c.transcript?.lines ?? []).filter((line) => line !== null);
    if (!lines.length) {
      replace(transcript, h('p', { class: 'muted' }, isFinal(c.status) ? 'No transcript for this call.' : 'The transcript appears here as the call runs.'));
    } else {
      const atBottom = transcript.scrollTop + transcript.clientHeight >= transcript.scrollHeight - 20;
      replace(transcript, lines.map((line) =>
        h('div', { class: `line line-${line?.speaker}` },
          h('span', { class: 'speaker' }, line?.speaker === 'agent' ? 'Agent' : 'Caller'),
          line?.offset_s !== null && line?.offset_s !== undefined ? h('span', { class: 'offset' }, formatDuration(line.offset_s)) : null,
          h('p', null, line?.text ?? ''))));
      if (atBottom) transcript.scrollTop = transcript.scrollHeight;
    }
    // Once the conversation is loaded, its panel shows the analysis.
    replace(summary, !conversation && c.transcript?.summary ? [
      h('h2', null, 'Summary'),
      c.transcript.outcome ? h('p', null, 'Outcome: ', badge(c.transcript.outcome)) : null,
      h('p', null, c.transcript.summary)] : null);
  }

  /** The call's conversation (analysis, tool calls, timing), once the call has ended. */
  async function loadConversation() {
    if (!call) return;
    const request = conversationRequest(call, isFinal);
    if (!request) return;
    const serial = ++conversationSerial;
    try {
      const answer = await ctx.api.get(request.path, request.query ? { query: request.query } : undefined);
      if (!view.alive() || serial !== conversationSerial) return;
      conversation = conversationFrom(answer);
      renderConversation();
      render();
    } catch (error) {
      if (!view.alive() || serial !== conversationSerial) return;
      if (error instanceof ApiError && error.status === 404) {
        conversation = null;
        renderConversation();
        return;
      }
      const box = errorBox();
      replace(conversationSlot, box);
      showError(box, error);
    }
  }

  function renderConversation() {
    const conv = conversation;
    if (!conv) {
      replace(conversationSlot, h('p', { class: 'muted' }, 'No agent conversation for this call: nobody answered, or the agent never joined.'));
      return;
    }
    const metrics = conv.metrics ?? {};
    const turns = latencyStats(metrics.turn_latency_ms);
    const tools = toolCalls(metrics);
    /** @param {string} label @param {string} value @param {string} [title] */
    const stat = (label, value, title) => h('div', { title }, h('dt', null, label), h('dd', null, value));
    replace(conversationSlot,
      details([
        ['Status', [badge(conv.status), conv.ended_reason ? ` ${conv.ended_reason}` : null]],
        ['Agent connected', formatDuration(conv.ai_seconds)],
        ['Outcome', conv.outcome ? badge(conv.outcome) : conv.analyzed_at ? '—' : 'Analysis pending'],
        ['Analysed', formatDateTime(conv.analyzed_at)],
      ]),
      h('h3', null, 'Summary'),
      h('p', { class: conv.summary ? 'summary' : 'muted' }, conv.summary ?? (conv.analyzed_at ? 'No summary.' : 'The summary appears when the analysis is done.')),
      h('h3', null, 'Timing'),
      h('dl', { class: 'timing' },
        stat('First agent audio', formatMs(metrics.time_to_first_audio_ms), 'From the start of the call to the first audio of the agent'),
        stat('Turns measured', String(turns.count)),
        stat('Median turn latency', formatMs(turns.median), 'From the end of the caller\'s speech to the agent\'s first audio'),
        stat('90th percentile', formatMs(turns.p90)),
        stat('Slowest turn', formatMs(turns.max)),
        stat('Mean turn latency', formatMs(turns.mean))),
      (metrics.audio_chunks_dropped || metrics.malformed_frames)
        ? h('p', { class: 'muted small' }, `${metrics.audio_chunks_dropped ?? 0} chunks of agent audio dropped (interrupted turns), ${metrics.malformed_frames ?? 0} malformed frames.`)
        : null,
      h('h3', null, tools.rows.length ? `Tool calls (${tools.rows.length}${tools.failed ? `, ${tools.failed} failed` : ''})` : 'Tool calls'),
      tools.rows.length
        ? table([
          { title: 'Tool', cell: (t) => h('code', null, t.name) },
          { title: 'At', cell: (t) => formatDuration(t.offset), class: 'num' },
          { title: 'Took', cell: (t) => formatMs(t.durationMs), class: 'num' },
          { title: 'Result', cell: (t) => [h('span', { class: `badge badge-${t.ok ? 'success' : 'failed'}`, title: t.outcome }, t.ok ? 'OK' : 'Failed'), t.error ? h('p', { class: 'tool-error' }, t.error) : null] },
          { title: 'HTTP status', cell: (t) => (t.statusCode === null ? '—' : String(t.statusCode)), class: 'num' },
        ], tools.rows, { caption: 'Tool calls' })
        : h('p', { class: 'muted' }, 'The agent called no tool.'));
  }

  /** @param {Call} c */
  function renderActions(c) {
    if (isFinal(c.status)) {
      replace(actions, h('a', { href: `/calls/new?agent_id=${encodeURIComponent(c.agent_id ?? '')}&to=${encodeURIComponent(c.direction === 'inbound' ? c.from_number ?? '' : c.to_number ?? '')}`, class: 'button' }, 'Call again'));
      return;
    }
    const hangup = actionButton('Hang up', async () => {
      const accepted = await ctx.api.post(`/v1/calls/${encodeURIComponent(id)}/hangup`);
      toast(`Hanging up (${formatStatus(accepted.status)}).`);
    }, { class: 'danger', box, confirm: 'Hang up this call now?' });
    const transfer = c.status === 'in-progress' && (!agent || agent.transfer_number)
      ? actionButton('Transfer to a human', async () => {
        await ctx.api.post(`/v1/calls/${encodeURIComponent(id)}/transfer`);
        toast('Transferring the call.');
      }, { box, confirm: `Transfer this call to ${agent?.transfer_number ?? "the agent's transfer number"}?` })
      : null;
    replace(actions, transfer, hangup);
  }

  function updateDuration() {
    if (!call) return;
    if (call.duration_s !== null && call.duration_s !== undefined) {
      duration.textContent = formatDuration(call.duration_s);
    } else if (call.status === 'in-progress' && call.started_at) {
      duration.textContent = `${formatDuration((Date.now() - Date.parse(call.started_at)) / 1000)} (running)`;
    } else {
      duration.textContent = '—';
    }
  }
  const tick = setInterval(updateDuration, 1000);
  view.onDispose(() => clearInterval(tick));

  view.subscribe((event) => {
    if (event.type === RESYNC) {
      void load();
      return;
    }
    if (!call || event.data?.call_id !== id) return;
    const next = applyToCall(call, event);
    if (next !== call) {
      call = next;
      render();
    }
    // The recording link and the stored transcript come with the call's final state.
    // so does the conversation (its analysis may come later, announced on its own).
    if (concernsConversation(event, id)) {
      if (event.type === 'voice.conversation.analyzed.v1') {
        void loadConversation();
      } else {
        setTimeout(() => {
          if (view.alive()) void load();
        }, 1500);
      }
    }
  });
  void load();

  return h('section', { class: 'page' },
    h('p', { class: 'crumbs' }, h('a', { href: '/calls' }, '← Calls')),
    h('div', { class: 'page-head' }, title, statusSlot, actions),
    box,
    h('div', { class: 'columns' },
      h('div', { class: 'panel' }, h('h2', null, 'Details'), info, h('h2', null, 'Status history'), history),
      h('div', { class: 'panel' }, h('h2', null, 'Transcript'), transcript, summary)),
    h('div', { class: 'panel' }, h('h2', null, 'Conversation'), conversationSlot));
}

/** @param {Context} ctx @param {View} view */
export function place(ctx, view) {
  const slot = h('div', null, loading());
  Promise.all([lookups.agents(ctx.api), lookups.numbers(ctx.api)]).then(([agents, numbers]) => {
    if (!view.alive()) return;
    if (!agents.length || !numbers.length) {
      replace(slot, empty(!agents.length ? 'You need an agent to place a call.' : 'You need a phone number to call from.',
        h('a', { href: !agents.length ? '/agents/new' : '/numbers/buy', class: 'button primary' }, !agents.length ? 'Create an agent' : 'Get a number')));
      return;
    }
    const params = view.url.searchParams;
    const preset = params.get('agent_id') ?? '';
    const first = agents.find((a) => a.id === preset) ?? agents.find((a) => a.sync_status === 'synced') ?? agents[0];
    const variables = variablesEditor('Variables for this call', /** @type {any} */ (first).variables ?? {});
    const agentField = field({
      label: 'Agent', name: 'agent_id', type: 'select', required: true, value: first.id,
      options: agents.map((a) => ({ value: a.id, label: a.sync_status === 'synced' ? a.name : `${a.name} (${a.sync_status})` })),
      help: 'Only synced agents can take calls.',
    });
    const fromDefault = numbers.find((n) => n.agent_id === first.id) ?? numbers[0];
    const refused = h('div');
    const element = form({
      label: 'Place a call',
      fields: [
        refused,
        agentField,
        field({ label: 'From number', name: 'from_number_id', type: 'select', required: true, value: fromDefault.id,
          options: numbers.map((n) => ({ value: n.id, label: lookups.numberLabel(n) })) }),
        field({ label: 'To', name: 'to', type: 'tel', required: true, placeholder: '+15551234567', value: params.get('to') ?? '',
          autocomplete: 'tel', help: 'In international format, starting with +.' }),
        variables.element,
        field({ label: 'Record the call', name: 'record', type: 'checkbox', value: false }),
      ],
      submit: 'Call now',
      onSubmit: async (values) => {
        const to = values.to.trim().replace(/[\s().-]/g, '');
        replace(refused);
        let created;
        try {
          created = await ctx.api.post('/v1/calls', {
            agent_id: values.agent_id,
            from_number_id: values.from_number_id,
            to,
            variables: variables.read(),
            record: values.record,
          });
        } catch (error) {
          if (!(error instanceof ApiError) || error.code !== 'do_not_call') throw error;
          replace(refused, doNotCallNotice(error, to));
          refused.scrollIntoView?.({ block: 'nearest' });
          return;
        }
        toast('Calling…');
        ctx.navigate(`/calls/${created.id}`);
      },
    });
    // Choosing another agent offers its variables with their defaults.
    agentField.querySelector('select')?.addEventListener('change', (event) => {
      const chosen = agents.find((a) => a.id === /** @type {HTMLSelectElement} */ (event.target).value);
      const replacement = variablesEditor('Variables for this call', /** @type {any} */ (chosen)?.variables ?? {});
      variables.element.replaceWith(replacement.element);
      variables.element = replacement.element;
      variables.read = replacement.read;
    });
    replace(slot, element);
  }).catch((error) => {
    if (!view.alive()) return;
    const box = errorBox();
    replace(slot, box);
    showError(box, error);
  });
  return h('section', { class: 'page narrow' },
    h('p', { class: 'crumbs' }, h('a', { href: '/calls' }, '← Calls')),
    header('Place a call'), slot);
}
