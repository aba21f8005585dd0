// Agents: the list with each one's sync state, and the form that creates or edits one.

import { h, replace } from '../dom.js';
import { formatAgo, formatDateTime, formatSeconds } from '../format.js';
import { actionButton, badge, details, empty, errorBox, field, form, header, loading, RESYNC, showError, table, toast, variablesEditor } from '../ui.js';
import * as lookups from '../lookups.js';

/** @typedef {import('../app.js').Context} Context @typedef {import('../app.js').View} View */

const MACHINE = [
  { value: 'off', label: 'Off: talk to whoever answers' },
  { value: 'hang_up', label: 'Hang up on answering machines' },
  { value: 'leave_message', label: 'Leave the voicemail message' },
];
const OVERRIDES = [['prompt', 'Prompt'], ['first_message', 'First message'], ['language', 'Language'], ['voice', 'Voice']];

/** @param {any} agent */
function syncState(agent) {
  return h('span', { class: 'sync' }, badge(agent.sync_status),
    agent.sync_status === 'failed' && agent.sync_error ? h('span', { class: 'sync-error' }, ` ${agent.sync_error}`) : null,
    agent.sync_status !== 'synced' && agent.next_sync_at ? h('span', { class: 'muted small' }, ` retry ${formatDateTime(agent.next_sync_at)}`) : null);
}

/** @param {Context} ctx @param {View} view */
export function list(ctx, view) {
  /** @type {any[]} */
  let agents = [];
  const box = errorBox();
  const body = h('div', null, loading());

  async function load() {
    try {
      agents = await lookups.all(ctx.api, '/v1/agents');
      if (view.alive()) render();
    } catch (error) {
      if (!view.alive()) return;
      replace(body);
      showError(box, error);
    }
  }

  function render() {
    if (!agents.length) {
      replace(body, empty('No agents yet. An agent is a prompt, a first message and a voice: it talks on your calls.',
        h('a', { href: '/agents/new', class: 'button primary' }, 'Create an agent')));
      return;
    }
    replace(body, table([
      { title: 'Name', cell: (a) => h('a', { href: `/agents/${a.id}` }, a.name) },
      { title: 'Language', cell: (a) => a.language },
      { title: 'Max duration', cell: (a) => formatSeconds(a.max_duration_s) },
      { title: 'Sync', cell: syncState },
      { title: 'Updated', cell: (a) => formatAgo(a.updated_at) },
      { title: '', cell: (a) => h('a', { href: `/calls/new?agent_id=${a.id}` }, 'Call with it') },
    ], agents, { caption: 'Agents' }));
  }

  view.subscribe(async (event) => {
    if (event.type === RESYNC) {
      void load();
    } else if (event.type === 'voice.agent.deleted.v1') {
      agents = agents.filter((a) => a.id !== event.data.agent_id);
      render();
    } else if (event.type === 'voice.agent.updated.v1') {
      // The event has the sync state but not its error: fetch the agent.
      try {
        const agent = await ctx.api.get(`/v1/agents/${encodeURIComponent(event.data.agent_id)}`);
        if (!view.alive()) return;
        const index = agents.findIndex((a) => a.id === agent.id);
        if (index >= 0) agents[index] = agent;
        else agents.unshift(agent);
        render();
      } catch {
        // Shown at the next load.
      }
    }
  });
  void load();
  return h('section', { class: 'page' }, header('Agents', h('a', { href: '/agents/new', class: 'button primary' }, 'New agent')), box, body);
}

/** @param {Context} ctx @param {View} view */
export function edit(ctx, view) {
  const id = view.params.id;
  const slot = h('div', null, id ? loading() : null);
  const status = h('div', { class: 'panel', role: 'status' });
  const title = h('h1', { tabindex: '-1' }, id ? 'Agent' : 'New agent');
  const box = errorBox();

  /** @param {any} agent */
  function renderStatus(agent) {
    replace(status, h('h2', null, 'Sync with the voice provider'), details([
      ['State', syncState(agent)],
      ['Revision', String(agent.revision)],
      ['Last synced', formatDateTime(agent.synced_at)],
      ['Created', formatDateTime(agent.created_at)],
    ]), agent.sync_status === 'failed' ? h('p', { class: 'muted' }, 'Calls cannot use this agent until it syncs. Saving it again retries now.') : null);
  }

  /** @param {any | null} agent */
  function renderForm(agent) {
    const a = agent ?? {};
    const variables = variablesEditor('Variables (the prompt uses {{name}}; values are defaults)', a.variables ?? {});
    const overrides = h('fieldset', { class: 'fieldset' }, h('legend', null, 'A call may override'),
      OVERRIDES.map(([value, label]) => field({ label, name: `override_${value}`, type: 'checkbox', value: (a.allowed_overrides ?? []).includes(value) })));
    const element = form({
      label: agent ? 'Edit agent' : 'Create agent',
      fields: [
        field({ label: 'Name', name: 'name', required: true, value: a.name, maxlength: 200 }),
        field({ label: 'Prompt', name: 'prompt', type: 'textarea', required: true, value: a.prompt, rows: 10, maxlength: 50000,
          help: 'The agent\'s instructions: who it is, what it must do, how it speaks.' }),
        field({ label: 'First message', name: 'first_message', type: 'textarea', value: a.first_message ?? '', rows: 2, maxlength: 2000,
          help: 'What it says on answering. Empty: it waits for the other party to speak.' }),
        h('div', { class: 'grid-2' },
          field({ label: 'Language', name: 'language', value: a.language ?? 'en', required: true, pattern: '[a-z]{2,3}(-[A-Za-z]{2,4})?', help: 'e.g. en, fr, pt-BR' }),
          field({ label: 'Voice id', name: 'voice_id', value: a.voice_id ?? 'cjVigY5qzO86Huf0OWal', required: true, maxlength: 100, help: 'An ElevenLabs voice id.' }),
          field({ label: 'LLM', name: 'llm', value: a.llm ?? 'gemini-2.0-flash', required: true, maxlength: 100 }),
          field({ label: 'Max duration (seconds)', name: 'max_duration_s', type: 'number', value: a.max_duration_s ?? 600, min: 10, max: 14400, required: true })),
        field({ label: 'Answering machines', name: 'machine_detection', type: 'select', value: a.machine_detection ?? 'off', options: MACHINE }),
        field({ label: 'Voicemail message', name: 'voicemail_message', type: 'textarea', value: a.voicemail_message ?? '', rows: 2, maxlength: 2000,
          help: 'Left on an answering machine when it is set to leave a message.' }),
        field({ label: 'Transfer number', name: 'transfer_number', type: 'tel', value: a.transfer_number ?? '', placeholder: '+15551234567',
          help: 'Where "talk to a human" transfers the call. Empty: no transfer.' }),
        overrides,
        variables.element,
      ],
      submit: agent ? 'Save' : 'Create agent',
      extra: [agent ? actionButton('Delete', async () => {
        await ctx.api.delete(`/v1/agents/${encodeURIComponent(agent.id)}`);
        toast('Agent deleted.');
        ctx.navigate('/agents');
      }, { class: 'danger', box, confirm: `Delete the agent "${agent.name}"? Numbers using it will stop answering.` }) : null],
      onSubmit: async (values) => {
        const body = {
          name: values.name.trim(),
          prompt: values.prompt,
          first_message: values.first_message,
          language: values.language.trim(),
          voice_id: values.voice_id.trim(),
          llm: values.llm.trim(),
          max_duration_s: Number(values.max_duration_s),
          machine_detection: values.machine_detection,
          voicemail_message: values.voicemail_message.trim() ? values.voicemail_message : null,
          transfer_number: values.transfer_number.trim() ? values.transfer_number.trim().replace(/[\s()-]/g, '') : null,
          allowed_overrides: OVERRIDES.map(([value]) => value).filter((value) => values[`override_${value}`]),
          variables: variables.read(),
        };
        if (agent) {
          const saved = await ctx.api.patch(`/v1/agents/${encodeURIComponent(agent.id)}`, body);
          toast('Saved. Syncing with the voice provider…');
          renderStatus(saved);
        } else {
          const created = await ctx.api.post('/v1/agents', body);
          toast('Agent created. Syncing with the voice provider…');
          ctx.navigate(`/agents/${created.id}`, { replace: true });
        }
      },
    });
    replace(slot, element);
  }

  if (id) {
    ctx.api.get(`/v1/agents/${encodeURIComponent(id)}`).then((agent) => {
      if (!view.alive()) return;
      replace(title, agent.name);
      renderStatus(agent);
      renderForm(agent);
    }).catch((error) => {
      if (!view.alive()) return;
      replace(slot);
      showError(box, error);
    });
    view.subscribe(async (event) => {
      if ((event.type === 'voice.agent.updated.v1' && event.data.agent_id === id) || event.type === RESYNC) {
        try {
          const agent = await ctx.api.get(`/v1/agents/${encodeURIComponent(id)}`);
          if (view.alive()) renderStatus(agent);
        } catch {
          // Kept as it was.
        }
      }
    });
  } else {
    status.hidden = true;
    renderForm(null);
  }
  return h('section', { class: 'page' },
    h('p', { class: 'crumbs' }, h('a', { href: '/agents' }, '← Agents')),
    h('div', { class: 'page-head' }, title, h('div', { class: 'page-actions' }, id ? h('a', { href: `/calls/new?agent_id=${id}`, class: 'button' }, 'Call with this agent') : null)),
    box, status, slot);
}
