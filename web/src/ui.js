// Shared pieces of the screens: fields, busy buttons, error boxes, tables, empty states, pagers.

import { h, replace, uid } from './dom.js';
import { ApiError } from './api.js';
import { formatStatus } from './format.js';

/** The event type of the app's own signal that live events may have been missed. */
export const RESYNC = 'live.resync';

/**
 * @typedef {{value: string, label: string}} Option
 * @typedef {{label: string, name: string, type?: string, value?: string | number | boolean | null,
 *   required?: boolean, options?: Option[], help?: string, placeholder?: string,
 *   autocomplete?: string, min?: number, max?: number, rows?: number, pattern?: string,
 *   inputmode?: string, maxlength?: number, minlength?: number, step?: string}} FieldSpec
 */

/**
 * A labelled input, select, textarea or checkbox.
 * @param {FieldSpec} spec
 */
export function field(spec) {
  const id = uid(spec.name);
  const helpId = spec.help ? `${id}-help` : undefined;
  const common = {
    id,
    name: spec.name,
    required: spec.required,
    'aria-describedby': helpId,
    placeholder: spec.placeholder,
    autocomplete: spec.autocomplete,
  };
  /** @type {HTMLElement} */
  let control;
  if (spec.type === 'checkbox') {
    control = h('input', { ...common, type: 'checkbox', checked: Boolean(spec.value) });
    return h('div', { class: 'field field-check' }, control, h('label', { for: id }, spec.label),
      spec.help ? h('p', { class: 'help', id: helpId }, spec.help) : null);
  }
  if (spec.type === 'select') {
    control = h('select', common, (spec.options ?? []).map((option) =>
      h('option', { value: option.value, selected: String(spec.value ?? '') === option.value }, option.label)));
  } else if (spec.type === 'textarea') {
    control = h('textarea', { ...common, rows: spec.rows ?? 4, maxlength: spec.maxlength, value: spec.value ?? '' });
  } else {
    control = h('input', {
      ...common,
      type: spec.type ?? 'text',
      value: spec.value ?? '',
      min: spec.min,
      max: spec.max,
      step: spec.step,
      pattern: spec.pattern,
      inputmode: spec.inputmode,
      maxlength: spec.maxlength,
      minlength: spec.minlength,
    });
  }
  return h('div', { class: 'field' }, h('label', { for: id }, spec.label), control,
    spec.help ? h('p', { class: 'help', id: helpId }, spec.help) : null);
}

/**
 * The values of a form's named controls (checkboxes as booleans).
 * @param {HTMLFormElement} form
 * @returns {Record<string, any>}
 */
export function formValues(form) {
  /** @type {Record<string, any>} */
  const values = {};
  for (const element of Array.from(form.elements)) {
    const control = /** @type {HTMLInputElement} */ (element);
    if (!control.name) continue;
    values[control.name] = control.type === 'checkbox' ? control.checked : control.value;
  }
  return values;
}

/** An empty box announcing errors to screen readers. */
export function errorBox() {
  return h('div', { class: 'error-box', role: 'alert', hidden: true });
}

/**
 * Show `error` in `box` (or clear it when null): the API's message, the fields it names, and the
 * request id to quote to support.
 * @param {HTMLElement} box
 * @param {unknown} error
 */
export function showError(box, error) {
  if (!error) {
    replace(box);
    box.hidden = true;
    return;
  }
  box.hidden = false;
  if (error instanceof ApiError) {
    replace(box,
      h('p', null, h('strong', null, error.status ? `Error ${error.status}: ` : 'Error: '), error.message),
      error.fields.length > 1 ? h('ul', null, error.fields.map((f) => h('li', null, f.field ? `${f.field}: ${f.message}` : f.message))) : null,
      error.retryAfter ? h('p', { class: 'muted' }, `Try again in ${error.retryAfter} s.`) : null,
      error.requestId ? h('p', { class: 'muted small' }, `Request id: ${error.requestId}`) : null);
  } else {
    replace(box, h('p', null, error instanceof Error ? error.message : String(error)));
  }
  box.scrollIntoView?.({ block: 'nearest' });
}

/**
 * Run `task` with `button` (and its form's buttons) disabled and marked busy; errors go to `box`.
 * Afterwards each button is as it was before (a button disabled before stays disabled).
 * Resolves with the task's result, or undefined when it failed.
 * @template T
 * @param {HTMLButtonElement | null} button
 * @param {HTMLElement | null} box
 * @param {() => Promise<T>} task
 * @returns {Promise<T | undefined>}
 */
export async function busy(button, box, task) {
  const buttons = button?.form ? Array.from(button.form.querySelectorAll('button')) : button ? [button] : [];
  // Each button gets back the state it had: one disabled before (for its own reason) stays so.
  const before = buttons.map((b) => b.disabled);
  for (const b of buttons) b.disabled = true;
  button?.setAttribute('aria-busy', 'true');
  if (box) showError(box, null);
  try {
    return await task();
  } catch (error) {
    if (box) showError(box, error);
    else console.error(error);
    return undefined;
  } finally {
    buttons.forEach((b, i) => {
      b.disabled = before[i];
    });
    button?.removeAttribute('aria-busy');
  }
}

/**
 * A form whose submit runs `onSubmit` with its values, its button busy meanwhile.
 * @param {{fields: (HTMLElement | null)[], submit: string, onSubmit: (values: Record<string, any>,
 *   form: HTMLFormElement) => Promise<unknown>, extra?: (HTMLElement | null)[], label?: string}} spec
 */
export function form(spec) {
  const box = errorBox();
  const button = h('button', { type: 'submit', class: 'primary' }, spec.submit);
  const element = h('form', { class: 'form', 'aria-label': spec.label, novalidate: false },
    box, spec.fields, h('div', { class: 'actions' }, button, spec.extra ?? []));
  element.addEventListener('submit', (event) => {
    event.preventDefault();
    void busy(button, box, () => spec.onSubmit(formValues(element), element));
  });
  return element;
}

/**
 * A button that runs `task` busy, showing failures in `box` (or a toast).
 * @param {string} label
 * @param {(button: HTMLButtonElement) => Promise<unknown>} task
 * @param {{class?: string, box?: HTMLElement, confirm?: string, title?: string}} [options]
 */
export function actionButton(label, task, options = {}) {
  const button = h('button', { type: 'button', class: options.class ?? '', title: options.title });
  button.textContent = label;
  button.addEventListener('click', () => {
    if (options.confirm && !window.confirm(options.confirm)) return;
    void busy(button, options.box ?? null, async () => {
      try {
        await task(button);
      } catch (error) {
        if (!options.box) toast(error instanceof Error ? error.message : String(error), 'error');
        throw error;
      }
    });
  });
  return button;
}

/**
 * @param {string} text
 * @param {HTMLElement | null} [action]
 */
export function empty(text, action = null) {
  return h('div', { class: 'empty' }, h('p', null, text), action);
}

export function loading(text = 'Loading…') {
  return h('p', { class: 'loading', role: 'status' }, text);
}

/**
 * A status as a coloured badge.
 * @param {string | null | undefined} status
 */
export function badge(status) {
  return h('span', { class: `badge badge-${String(status ?? 'none').replace(/[^a-z0-9]/gi, '-')}` }, formatStatus(status));
}

/**
 * @template T
 * @typedef {{title: string, cell: (row: T) => import('./dom.js').Child, class?: string}} Column
 */

/**
 * A table that scrolls sideways on narrow screens.
 * @template T
 * @param {Column<T>[]} columns
 * @param {T[]} rows
 * @param {{caption?: string, rowKey?: (row: T) => string}} [options]
 */
export function table(columns, rows, options = {}) {
  return h('div', { class: 'table-wrap' },
    h('table', null,
      options.caption ? h('caption', { class: 'visually-hidden' }, options.caption) : null,
      h('thead', null, h('tr', null, columns.map((c) => h('th', { scope: 'col', class: c.class }, c.title)))),
      h('tbody', null, rows.map((row) => h('tr', options.rowKey ? { dataset: { key: options.rowKey(row) } } : null,
        columns.map((c) => h('td', { class: c.class, 'data-label': c.title }, c.cell(row))))))));
}

/**
 * Cursor paging: "Newer" goes back through the cursors seen, "Older" follows next_cursor.
 */
export class Pager {
  /** @param {(cursor: string | null) => void} load */
  constructor(load) {
    this.load = load;
    /** @type {(string | null)[]} */
    this.stack = [];
    /** @type {string | null} */
    this.current = null;
    /** @type {string | null} */
    this.next = null;
    this.element = h('nav', { class: 'pager', 'aria-label': 'Pages' });
  }

  get first() {
    return this.stack.length === 0;
  }

  reset() {
    this.stack = [];
    this.current = null;
    this.load(null);
  }

  /** @param {string | null} next */
  update(next) {
    this.next = next;
    const newer = h('button', { type: 'button', disabled: this.first }, '← Newer');
    newer.addEventListener('click', () => {
      this.current = this.stack.pop() ?? null;
      this.load(this.current);
    });
    const older = h('button', { type: 'button', disabled: !next }, 'Older →');
    older.addEventListener('click', () => {
      this.stack.push(this.current);
      this.current = next;
      this.load(next);
    });
    replace(this.element, newer, h('span', { class: 'muted' }, `Page ${this.stack.length + 1}`), older);
  }
}

/**
 * A short message at the bottom of the screen, read out by screen readers.
 * @param {string} message
 * @param {'info' | 'error'} [kind]
 */
export function toast(message, kind = 'info') {
  const region = document.getElementById('toasts');
  if (!region) return;
  const item = h('div', { class: `toast toast-${kind}`, role: kind === 'error' ? 'alert' : 'status' }, message);
  region.appendChild(item);
  setTimeout(() => item.remove(), kind === 'error' ? 8000 : 4000);
}

/**
 * A page heading with optional actions on the right.
 * @param {string} title
 * @param {...import('./dom.js').Child} actions
 */
export function header(title, ...actions) {
  return h('div', { class: 'page-head' }, h('h1', { tabindex: '-1' }, title), h('div', { class: 'page-actions' }, actions));
}

/**
 * Key/value lines (`dl`).
 * @param {[string, import('./dom.js').Child][]} pairs
 */
export function details(pairs) {
  return h('dl', { class: 'details' }, pairs.map(([key, value]) => [h('dt', null, key), h('dd', null, value ?? '—')]));
}

/**
 * Rows of `name = value` inputs for variables, with add and remove buttons.
 * @param {string} legend
 * @param {Record<string, string>} initial
 * @returns {{element: HTMLElement, read: () => Record<string, string>}}
 */
export function variablesEditor(legend, initial) {
  const list = h('div', { class: 'variables' });
  /** @param {string} name @param {string} value */
  const addRow = (name, value) => {
    const nameId = uid('var-name');
    const valueId = uid('var-value');
    const row = h('div', { class: 'variable-row' },
      h('label', { for: nameId, class: 'visually-hidden' }, 'Variable name'),
      h('input', { id: nameId, class: 'var-name', value: name, placeholder: 'name', pattern: '[A-Za-z_][A-Za-z0-9_]*' }),
      h('label', { for: valueId, class: 'visually-hidden' }, 'Value'),
      h('input', { id: valueId, class: 'var-value', value, placeholder: 'value' }),
      h('button', { type: 'button', class: 'icon', 'aria-label': 'Remove variable', onclick: () => row.remove() }, '×'));
    list.appendChild(row);
  };
  for (const [name, value] of Object.entries(initial ?? {})) addRow(name, value);
  const add = h('button', { type: 'button', onclick: () => addRow('', '') }, '+ Add variable');
  const element = h('fieldset', { class: 'fieldset' }, h('legend', null, legend), list, add);
  return {
    element,
    read() {
      /** @type {Record<string, string>} */
      const result = {};
      for (const row of Array.from(list.querySelectorAll('.variable-row'))) {
        const name = /** @type {HTMLInputElement} */ (row.querySelector('.var-name')).value.trim();
        const value = /** @type {HTMLInputElement} */ (row.querySelector('.var-value')).value;
        if (name) result[name] = value;
      }
      return result;
    },
  };
}

/**
 * A secret shown once, with a copy button.
 * @param {string} label
 * @param {string} secret
 * @param {string} note
 */
export function secretBox(label, secret, note) {
  const copy = h('button', { type: 'button' }, 'Copy');
  copy.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(secret);
      toast('Copied.');
    } catch {
      toast('Select the text and copy it.', 'error');
    }
  });
  return h('div', { class: 'secret', role: 'status' },
    h('p', null, h('strong', null, label)),
    h('div', { class: 'inline' }, h('code', { class: 'secret-value' }, secret), copy),
    h('p', { class: 'warning' }, note));
}

/**
 * Show the non-empty filters of `chosen` in the address bar of the screen at `path`, so that a
 * reload or a shared link keeps them.
 * @param {string} path
 * @param {Record<string, string>} chosen
 */
export function showFilters(path, chosen) {
  const query = new URLSearchParams(Object.entries(chosen).filter(([, v]) => v)).toString();
  window.history.replaceState(null, '', `${path}${query ? `?${query}` : ''}`);
}

/**
 * Wire a filter form whose named controls are the keys of `chosen`: a change, a submit or a
 * reset reads them into `chosen`, shows them in the address (see {@link showFilters}) and calls
 * `changed`.
 * @param {HTMLFormElement} form
 * @param {Record<string, string>} chosen
 * @param {string} path
 * @param {() => void} changed
 */
export function watchFilters(form, chosen, path, changed) {
  const apply = () => {
    for (const key of Object.keys(chosen)) {
      const control = /** @type {HTMLInputElement | HTMLSelectElement | null} */ (form.elements.namedItem(key));
      chosen[key] = control?.value ?? '';
    }
    showFilters(path, chosen);
    changed();
  };
  form.addEventListener('change', apply);
  form.addEventListener('reset', () => setTimeout(apply, 0));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    apply();
  });
}
