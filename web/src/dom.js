// Small element helpers. Text always goes in as text nodes and attributes through
// setAttribute, never through innerHTML, so data from the API cannot become markup.

/**
 * @typedef {string | number | Node | null | undefined | false | Child[]} Child
 * @typedef {Record<string, unknown>} Attrs
 */

const BOOLEAN = new Set(['disabled', 'hidden', 'required', 'checked', 'selected', 'readonly', 'multiple', 'open', 'autofocus']);
const PROPERTIES = new Set(['value', 'checked', 'selected', 'indeterminate']);
// URL attributes may only hold http(s), mailto or tel links, or paths of this site.
const URL_ATTRIBUTES = new Set(['href', 'src', 'action', 'formaction']);
const SAFE_URL = /^(https?:|mailto:|tel:|\/(?!\/)|#|\?)/i;

/**
 * Create an element.
 * `attrs`: `class`, any attribute, `on<event>` listeners (functions), `dataset` (object),
 * boolean attributes (`disabled: true`), and `value`/`checked` set as properties.
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {Attrs | null} [attrs]
 * @param {...Child} children
 * @returns {HTMLElementTagNameMap[K]}
 */
export function h(tag, attrs, ...children) {
  const element = document.createElement(tag);
  if (attrs) setAttrs(element, attrs);
  append(element, children);
  return element;
}

/**
 * @param {HTMLElement} element
 * @param {Attrs} attrs
 */
export function setAttrs(element, attrs) {
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null) continue;
    if (name.startsWith('on') && typeof value === 'function') {
      element.addEventListener(name.slice(2).toLowerCase(), /** @type {EventListener} */ (value));
    } else if (name === 'dataset' && typeof value === 'object') {
      for (const [key, item] of Object.entries(/** @type {object} */ (value))) element.dataset[key] = String(item);
    } else if (PROPERTIES.has(name)) {
      /** @type {any} */ (element)[name] = value;
    } else if (BOOLEAN.has(name)) {
      if (value) element.setAttribute(name, '');
      else element.removeAttribute(name);
    } else if (name === 'style' || name.startsWith('on') || name === 'innerHTML' || name === 'srcdoc') {
      throw new Error(`h(): attribute ${name} is not allowed`);
    } else if (URL_ATTRIBUTES.has(name)) {
      const url = String(value);
      if (SAFE_URL.test(url)) element.setAttribute(name, url);
    } else if (value === false) {
      element.removeAttribute(name);
    } else {
      element.setAttribute(name, value === true ? '' : String(value));
    }
  }
}

/**
 * Append children: nodes as they are, strings and numbers as text, arrays flattened.
 * @param {Node} parent
 * @param {Child[]} children
 */
export function append(parent, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(parent, child);
    else if (typeof child === 'object' && 'nodeType' in child) parent.appendChild(child);
    else parent.appendChild(document.createTextNode(String(child)));
  }
}

/**
 * Replace an element's content.
 * @param {Node} parent
 * @param {...Child} children
 */
export function replace(parent, ...children) {
  while (parent.firstChild) parent.removeChild(parent.firstChild);
  append(parent, children);
}

/** A unique id for label/input pairs. */
let counter = 0;
export function uid(prefix = 'f') {
  counter += 1;
  return `${prefix}-${counter}`;
}

/**
 * Whether a URL may be used as a link target (http, https, or a path of this site).
 * @param {unknown} url
 */
export function isSafeUrl(url) {
  return typeof url === 'string' && SAFE_URL.test(url);
}
