// History routing: `/calls/42` style paths (the ones emails and notifications link to), matched
// against patterns with `:name` parameters; links within the app navigate without a reload.

/**
 * @template T
 * @typedef {{path: string} & T} Route
 */

/**
 * @template T
 * @typedef {{route: Route<T>, params: Record<string, string>}} Match
 */

/**
 * The first route whose pattern matches `pathname`, with its decoded parameters.
 * @template T
 * @param {Route<T>[]} routes
 * @param {string} pathname
 * @returns {Match<T> | null}
 */
export function matchRoute(routes, pathname) {
  const parts = split(pathname);
  if (parts === null) return null;
  for (const route of routes) {
    const pattern = split(route.path) ?? [];
    if (pattern.length !== parts.length) continue;
    /** @type {Record<string, string>} */
    const params = {};
    let ok = true;
    for (let i = 0; i < pattern.length; i += 1) {
      if (pattern[i].startsWith(':')) params[pattern[i].slice(1)] = parts[i];
      else if (pattern[i] !== parts[i]) {
        ok = false;
        break;
      }
    }
    if (ok) return { route, params };
  }
  return null;
}

/** @param {string} path */
function split(path) {
  try {
    return path.split('/').filter(Boolean).map((part) => decodeURIComponent(part));
  } catch {
    return null;
  }
}

/**
 * A path with its parameters filled in: `fill('/calls/:id', {id: 'a b'})` → `/calls/a%20b`.
 * @param {string} pattern
 * @param {Record<string, string>} params
 */
export function fill(pattern, params) {
  return pattern.replace(/:([A-Za-z_]+)/g, (_, name) => encodeURIComponent(params[name] ?? ''));
}

/**
 * Whether `href` leads to the document at `current` itself, only to another place in it (it
 * differs from it at most by its `#fragment` and has one: the skip link, `#` links). The
 * browser scrolls and focuses for those; re-mounting the screen would lose what it shows.
 * @param {string} href
 * @param {string} current the page's URL
 */
export function isSamePageLink(href, current) {
  let url;
  let here;
  try {
    here = new URL(current);
    url = new URL(href, here);
  } catch {
    return false;
  }
  // `href` ends with `#` or `#x` (an empty fragment is kept in `href`).
  if (!url.href.includes('#')) return false;
  return url.origin === here.origin && url.pathname === here.pathname && url.search === here.search;
}

/**
 * Whether a click on a link should be handled by the app rather than the browser.
 * @param {{button: number, metaKey: boolean, ctrlKey: boolean, shiftKey: boolean, altKey: boolean,
 *   defaultPrevented: boolean}} event
 * @param {{target?: string, download?: boolean, href: string}} link
 * @param {string} origin the page's origin
 * @param {string} [current] the page's URL: links to a `#fragment` of it are left to the browser
 */
export function isAppLink(event, link, origin, current) {
  if (event.defaultPrevented || event.button !== 0) return false;
  if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return false;
  if ((link.target && link.target !== '_self') || link.download) return false;
  let url;
  try {
    url = new URL(link.href, origin);
  } catch {
    return false;
  }
  if (url.origin !== origin) return false;
  if (current && isSamePageLink(link.href, current)) return false;
  return !url.pathname.startsWith('/v1/') && !url.pathname.startsWith('/docs');
}

/**
 * @template T
 */
export class Router {
  /**
   * @param {Route<T>[]} routes
   * @param {(match: Match<T> | null, url: URL) => void} onChange
   * @param {Window} win
   */
  constructor(routes, onChange, win) {
    this.routes = routes;
    this.onChange = onChange;
    this.win = win;
    /** @type {string | null} the path and query shown */
    this.shown = null;
  }

  start() {
    this.win.addEventListener('popstate', () => {
      // Back/forward, or the browser following a `#fragment` link: only a new path or query
      // is another screen.
      const location = this.win.location;
      if (location.pathname + location.search === this.shown) return;
      this.render();
    });
    this.win.document.addEventListener('click', (event) => {
      const target = /** @type {Element | null} */ (event.target);
      const link = target?.closest?.('a[href]');
      if (!link) return;
      const anchor = /** @type {HTMLAnchorElement} */ (link);
      if (!isAppLink(event, { target: anchor.target, download: anchor.hasAttribute('download'), href: anchor.href }, this.win.location.origin, this.win.location.href)) return;
      event.preventDefault();
      const url = new URL(anchor.href);
      this.navigate(url.pathname + url.search + url.hash);
    });
    this.render();
  }

  /**
   * @param {string} path
   * @param {{replace?: boolean}} [options]
   */
  navigate(path, options = {}) {
    const current = this.win.location.pathname + this.win.location.search + this.win.location.hash;
    if (options.replace) this.win.history.replaceState(null, '', path);
    else if (path !== current) this.win.history.pushState(null, '', path);
    this.render();
  }

  render() {
    const url = new URL(this.win.location.href);
    this.shown = url.pathname + url.search;
    this.onChange(matchRoute(this.routes, url.pathname), url);
  }
}
