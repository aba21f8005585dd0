// Small element helpers. Text always goes in as text nodes and attributes through
// setAttribute, never through innerHTML, so data from the API cannot become markup.

/**
 * @typedef {string | number | Node | null | undefined | false | Child[]} Child
 * @typedef {Record<string, unknown>} Attrs
 */

const BOOLEAN = new Set(['disabled', 'hidden', 'required', 'checked', 'selected', 'readonly', 'multiple', 'open', 'autofocus']);
const PROPERTIES = new Set(['value', 'checked', 'selected', 'indeterminate']);
// URL attributes may only hold http(s), mailto or tel links, or paths of this site.
const URL_ATTRIBUTES = new Set(['href', 'xlink:href', 'src', 'action', 'formaction', 'poster', 'cite', 'background', 'data', 'codebase', 'manifest']);
// Attributes holding a list of URLs: `srcset` (comma-separated, each with a descriptor) and
// `ping` (space-separated).
const URL_LIST_ATTRIBUTES = new Set(['srcset', 'ping']);
const SAFE_SCHEME = /^(https?:|mailto:|tel:)/i;
// Browsers read `\` as `/` and drop tabs and newlines in URLs, so `/\host` and `/<TAB>/host`
// lead to another site: no control character or backslash anywhere.
// eslint-disable-next-line no-control-regex
const UNSAFE_CHARACTERS = /[\u0000-\u001f\u007f\\]/;
const FALLBACK_ORIGIN = 'https://dashboard.invalid';

/** The page's origin, or a fixed one outside a browser (tests). */
function pageOrigin() {
  const origin = /** @type {any} */ (globalThis).location?.origin;
  return typeof origin === 'string' && origin !== 'null' ? origin : FALLBACK_ORIGIN;
}

/**
 * `value` as a path of this site (`pathname + search + hash`), or null when it is not one or
 * would lead elsewhere (`//host`, `/\host`, `/<TAB>/host`, another origin, `javascript:`).
 * @param {unknown} value
 * @param {string} [origin] the site's origin (the page's by default)
 * @returns {string | null}
 */
export function sitePath(value, origin = pageOrigin()) {
  if (typeof value !== 'string' || !value || UNSAFE_CHARACTERS.test(value)) return null;
  let url;
  let base;
  try {
    base = new URL(origin);
    url = new URL(value, base);
  } catch {
    return null;
  }
  if (url.origin !== base.origin) return null;
  // A path, or an absolute URL of this very origin; nothing relative like `calls` or `../x`.
  if (!value.startsWith('/') && !value.toLowerCase().startsWith(`${base.origin.toLowerCase()}/`)) return null;
  if (value.startsWith('//')) return null;
  return url.pathname + url.search + url.hash;
}

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
    // Attribute names are case-insensitive in HTML: `HREF`, `onClick`, `STYLE` are checked too.
    const key = name.toLowerCase();
    if (key.startsWith('on') && typeof value === 'function') {
      element.addEventListener(key.slice(2), /** @type {EventListener} */ (value));
    } else if (name === 'dataset' && typeof value === 'object') {
      for (const [key, item] of Object.entries(/** @type {object} */ (value))) element.dataset[key] = String(item);
    } else if (PROPERTIES.has(key)) {
      /** @type {any} */ (element)[key] = value;
    } else if (BOOLEAN.has(key)) {
      if (value) element.setAttribute(key, '');
      else element.removeAttribute(key);
    } else if (key === 'style' || key.startsWith('on') || key === 'innerhtml' || key === 'outerhtml' || key === 'srcdoc') {
      throw new Error(`h(): attribute ${name} is not allowed`);
    } else if (URL_ATTRIBUTES.has(key)) {
      const url = String(value);
      if (isSafeUrl(url)) element.setAttribute(key, url);
    } else if (URL_LIST_ATTRIBUTES.has(key)) {
      const text = String(value);
      const urls = key === 'srcset'
        ? text.split(',').map((candidate) => candidate.trim().split(/\s+/)[0])
        : text.trim().split(/\s+/);
      if (urls.every((url) => isSafeUrl(url))) element.setAttribute(key, text);
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
 * Whether a URL may be used as a link target (http, https, mailto, tel, or a path of this site,
 * a `#fragment` or a `?query` of this page).
 * @param {unknown} url
 */
export function isSafeUrl(url) {
  if (typeof url !== 'string' || UNSAFE_CHARACTERS.test(url)) return false;
  if (SAFE_SCHEME.test(url)) return true;
  if (url.startsWith('#') || url.startsWith('?')) return true;
  return url.startsWith('/') && sitePath(url) !== null;
}
