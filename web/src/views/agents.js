// Agents: the list with each one's sync state, and the form that creates or edits one.

import { h, replace, uid } from '../dom.js';
import { ApiError } from '../api.js';
import { formatAgo, formatDateTime, formatSeconds } from '../format.js';
import {
  actionButton, badge, details, empty, errorBox, field, form, header, loading, RESYNC, secretBox, showError, table, toast, variablesEditor,
} from '../ui.js';
import * as lookups from '../lookups.js';
import { checkParameters, MAX_TOOLS, readTools, toolErrors, toolText } from '../tools.js';

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

/**
 * A tool secret given by the answer that created an agent, kept in memory for the agent's page
 * the app goes to next (never stored).
 * @type {{agentId: string, secret: string} | null}
 */
let pendingSecret = null;

const TOOL_FIELD_LABELS = /** @type {const} */ ([
  ['name', 'Name'], ['timeout_s', 'Timeout (seconds)'], ['description', 'Description'], ['parameters', 'Parameters (JSON Schema)'], ['url', 'URL'],
]);

/**
 * The agent's HTTP tools as editable cards: add, remove, each field's own error message.
 * @param {any[]} initial
 */
function toolsEditor(initial) {
  /** @typedef {{element: HTMLElement, controls: Record<string, HTMLInputElement | HTMLTextAreaElement>,
   *   errors: Record<string, HTMLElement>, general: HTMLElement, legend: HTMLElement}} Card */
  /** @type {Card[]} */
  const cards = [];
  const list = h('div', { class: 'tools' });
  const add = h('button', { type: 'button' }, '+ Add a tool');
  const count = h('p', { class: 'help' });

  function renumber() {
    cards.forEach((card, index) => replace(card.legend, `Tool ${index + 1}${card.controls.name.value.trim() ? `: ${card.controls.name.value.trim()}` : ''}`));
    add.disabled = cards.length >= MAX_TOOLS;
    replace(count, cards.length ? `${cards.length} of at most ${MAX_TOOLS} tools.` : 'No tools: the agent only talks (and transfers, with a transfer number).');
  }

  /** @param {Card} card @param {string} name @param {string | undefined} message */
  function setError(card, name, message) {
    const control = card.controls[name];
    const box = card.errors[name];
    box.textContent = message ?? '';
    box.hidden = !message;
    if (message) control.setAttribute('aria-invalid', 'true');
    else control.removeAttribute('aria-invalid');
  }

  /** @param {any} [tool] */
  function addCard(tool) {
    const text = toolText(tool);
    /** @type {Record<string, HTMLInputElement | HTMLTextAreaElement>} */
    const controls = {};
    /** @type {Record<string, HTMLElement>} */
    const errors = {};
    /** @type {Record<string, HTMLElement>} */
    const fields = {};
    for (const [name, label] of TOOL_FIELD_LABELS) {
      const id = uid(`tool-${name}`);
      const errorId = `${id}-error`;
      const helpId = `${id}-help`;
      const attrs = { id, 'aria-describedby': `${helpId} ${errorId}`, autocomplete: 'off' };
      /** @type {HTMLInputElement | HTMLTextAreaElement} */
      let control;
      /** @type {string} */
      let help;
      if (name === 'description') {
        control = h('textarea', { ...attrs, rows: 2, maxlength: 1000, value: text.description });
        help = 'What it does and when to use it: the agent\'s model reads this.';
      } else if (name === 'parameters') {
        control = h('textarea', { ...attrs, rows: 6, class: 'code', spellcheck: 'false', value: text.parameters });
        help = 'A JSON Schema object: {"type": "object", "properties": {"date": {"type": "string"}}, "required": ["date"]}.';
      } else if (name === 'timeout_s') {
        control = h('input', { ...attrs, type: 'number', min: 1, max: 20, value: text.timeout_s });
        help = '1 to 20; default 8.';
      } else if (name === 'url') {
        control = h('input', { ...attrs, type: 'url', maxlength: 2000, placeholder: 'https://api.example.com/tools/book', value: text.url });
        help = 'Where each call is POSTed (https, a public address), signed with the tool secret.';
      } else {
        control = h('input', { ...attrs, maxlength: 64, placeholder: 'book_slot', pattern: '[a-z][a-z0-9_]*', value: text.name });
        help = 'Lowercase letters, digits and _.';
      }
      controls[name] = control;
      errors[name] = h('p', { class: 'field-error', id: errorId, hidden: true });
      fields[name] = h('div', { class: 'field' }, h('label', { for: id }, label), control, h('p', { class: 'help', id: helpId }, help), errors[name]);
    }
    const legend = h('legend');
    const general = h('p', { class: 'field-error', hidden: true });
    /** @type {Card} */
    const card = { element: h('fieldset', { class: 'fieldset tool' }), controls, errors, general, legend };
    const remove = h('button', { type: 'button', class: 'small danger' }, 'Remove this tool');
    remove.addEventListener('click', () => {
      cards.splice(cards.indexOf(card), 1);
      card.element.remove();
      renumber();
    });
    controls.name.addEventListener('input', renumber);
    controls.parameters.addEventListener('change', () => setError(card, 'parameters', checkParameters(controls.parameters.value).error ?? undefined));
    replace(card.element, legend, general, h('div', { class: 'grid-2' }, fields.name, fields.timeout_s), fields.description, fields.parameters, fields.url,
      h('div', { class: 'actions' }, remove));
    cards.push(card);
    list.appendChild(card.element);
    renumber();
    return card;
  }

  for (const tool of initial ?? []) addCard(tool);
  add.addEventListener('click', () => addCard().controls.name.focus());
  renumber();

  return {
    element: h('fieldset', { class: 'fieldset' }, h('legend', null, 'Tools'),
      h('p', { class: 'help' }, 'HTTP endpoints of yours the agent may call during a call (to look something up, book a slot…). Each request is signed with the agent\'s tool secret; the answer\'s body is given to the agent.'),
      list, count, add),
    /** Check every tool, marking the fields in error; null when any is wrong. */
    read() {
      const texts = cards.map((card) => /** @type {import('../tools.js').ToolText} */ (Object.fromEntries(
        Object.entries(card.controls).map(([name, control]) => [name, control.value]))));
      const result = readTools(texts);
      cards.forEach((card, index) => {
        for (const [name] of TOOL_FIELD_LABELS) setError(card, name, /** @type {any} */ (result.errors[index])[name]);
        card.general.hidden = true;
      });
      const first = cards.find((card) => Object.values(card.controls).some((c) => c.getAttribute('aria-invalid')));
      if (first) /** @type {HTMLElement} */ (first.element.querySelector('[aria-invalid]')).focus();
      return result.tools;
    },
    /** Put the API's 422 on the tool fields it names; the rest is returned. @param {ApiError} error */
    showApiErrors(error) {
      const { byTool, other } = toolErrors(error.fields);
      for (const [index, messages] of byTool) {
        const card = cards[index];
        if (!card) continue;
        for (const [name] of TOOL_FIELD_LABELS) setError(card, name, /** @type {any} */ (messages)[name]);
        card.general.textContent = messages.tool ?? '';
        card.general.hidden = !messages.tool;
      }
      const first = cards[Math.min(...byTool.keys())];
      /** @type {HTMLElement | null | undefined} */ (first?.element.querySelector('[aria-invalid]'))?.focus();
      return other;
    },
  };
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
      { title: 'Tools', cell: (a) => String(a.tools?.length ?? 0), class: 'num' },
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
  const secret = h('div');

  /**
   * The tool secret, shown this once.
   * @param {string} value
   */
  function showSecret(value) {
    const done = h('button', { type: 'button', class: 'small' }, 'I have copied it');
    done.addEventListener('click', () => replace(secret));
    replace(secret, secretBox('Tool signing secret', value,
      'Copy it now: you will not see this again. Your tool endpoints verify each request\'s webhook-signature with it (Standard Webhooks); rotate it if it is lost.'),
    h('div', { class: 'actions secret-done' }, done));
    secret.scrollIntoView?.({ block: 'nearest' });
  }

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
    const tools = toolsEditor(a.tools ?? []);
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
        tools.element,
        agent ? h('div', { class: 'actions' }, actionButton('Rotate the tool secret', async () => {
          const rotated = await ctx.api.post(`/v1/agents/${encodeURIComponent(agent.id)}/rotate-tool-secret`);
          showSecret(rotated.tool_secret);
          toast('New tool secret: tool calls are signed with it from the next call.');
        }, { box, confirm: 'Rotate the tool secret? Tool requests are signed with the new secret from the next call: update your endpoints right away.' }),
        h('span', { class: 'help' }, 'A new signing secret for this agent\'s tools, shown once.')) : null,
      ],
      submit: agent ? 'Save' : 'Create agent',
      extra: [agent ? actionButton('Delete', async () => {
        await ctx.api.delete(`/v1/agents/${encodeURIComponent(agent.id)}`);
        toast('Agent deleted.');
        ctx.navigate('/agents');
      }, { class: 'danger', box, confirm: `Delete the agent "${agent.name}"? Numbers using it will stop answering.` }) : null],
      onSubmit: async (values) => {
        const checkedTools = tools.read();
        if (!checkedTools) throw new Error('Some tools need fixing: see the fields marked below.');
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
          tools: checkedTools,
        };
        try {
          if (agent) {
            const saved = await ctx.api.patch(`/v1/agents/${encodeURIComponent(agent.id)}`, body);
            toast('Saved. Syncing with the voice provider…');
            renderStatus(saved);
            if (saved.tool_secret) showSecret(saved.tool_secret);
          } else {
            const created = await ctx.api.post('/v1/agents', body);
            toast('Agent created. Syncing with the voice provider…');
            if (created.tool_secret) pendingSecret = { agentId: created.id, secret: created.tool_secret };
            ctx.navigate(`/agents/${created.id}`, { replace: true });
          }
        } catch (error) {
          if (!(error instanceof ApiError) || error.status !== 422) throw error;
          const other = tools.showApiErrors(error);
          if (other.length === error.fields.length) throw error;
          // The tools' errors are shown on their fields; the box says so and keeps the rest.
          throw new ApiError(422, error.code, ['Some tools were refused: see the fields marked below.', ...other.map((f) => (f.field ? `${f.field}: ${f.message}` : f.message))].join(' '),
            { fields: other, requestId: error.requestId });
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
      const stashed = pendingSecret;
      pendingSecret = null;
      if (stashed && stashed.agentId === agent.id) showSecret(stashed.secret);
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
    box, secret, status, slot);
}
