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
 * Whether a click on a link should be handled by the app rather than the browser.
 * @param {{button: number, metaKey: boolean, ctrlKey: boolean, shiftKey: boolean, altKey: boolean,
 *   defaultPrevented: boolean}} event
 * @param {{target?: string, download?: boolean, href: string}} link
 * @param {string} origin the page's origin
 */
export function isAppLink(event, link, origin) {
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
  }

  start() {
    this.win.addEventListener('popstate', () => this.render());
    this.win.document.addEventListener('click', (event) => {
      const target = /** @type {Element | null} */ (event.target);
      const link = target?.closest?.('a[href]');
      if (!link) return;
      const anchor = /** @type {HTMLAnchorElement} */ (link);
      if (!isAppLink(event, { target: anchor.target, download: anchor.hasAttribute('download'), href: anchor.href }, this.win.location.origin)) return;
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
    this.onChange(matchRoute(this.routes, url.pathname), url);
  }
}
