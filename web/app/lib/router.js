// History-API routing: the path picks the page, the query string holds every filter, so
// a URL can be shared, bookmarked and reloaded.
import { html } from 'htm/preact';
import { createStore, useStore } from './store.js';

// Where the app is served (its <base href>, set by the server): '/', or '/prefix/' when
// mounted under a prefix. Pages are named by their path under it ('/invocations').
const BASE = new URL(document.baseURI).pathname;

function appPath(pathname) {
  return pathname.startsWith(BASE) ? `/${pathname.slice(BASE.length)}` : pathname;
}

/** The URL of a page path ('/invocations?q=x') or of any URL, under the app's base. */
function locate(href) {
  return new URL(href.startsWith('/') ? `.${href}` : href, document.baseURI);
}

function current() {
  return { path: appPath(location.pathname), search: location.search };
}

export const route = createStore(current());

addEventListener('popstate', () => route.set(current()));

/** Go to `href` (path and query); `replace` keeps the history entry. */
export function navigate(href, { replace = false } = {}) {
  const url = locate(href);
  const target = url.pathname + url.search + url.hash;
  if (target === location.pathname + location.search + location.hash) return;
  if (replace) history.replaceState(null, '', target);
  else history.pushState(null, '', target);
  route.set(current());
  if (!replace) window.scrollTo(0, 0);
}

/** The current path and query parameters (a plain object of strings). */
export function useRoute() {
  const { path, search } = useStore(route);
  return { path, params: Object.fromEntries(new URLSearchParams(search)) };
}

/** A URL with the query `params` (empty values left out). */
export function hrefWith(path, params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value === undefined || value === null || value === '' || value === false) continue;
    search.set(key, value === true ? '1' : String(value));
  }
  const text = search.toString();
  return text ? `${path}?${text}` : path;
}

/** Change some query parameters of the current page. */
export function updateParams(patch, { replace = false } = {}) {
  const params = { ...Object.fromEntries(new URLSearchParams(location.search)), ...patch };
  navigate(hrefWith(current().path, params), { replace });
}

// The time range travels with every link between pages.
export const KEPT_PARAMS = ['range', 'from', 'to'];

export function keptParams() {
  const all = new URLSearchParams(location.search);
  const kept = {};
  for (const key of KEPT_PARAMS) if (all.get(key)) kept[key] = all.get(key);
  return kept;
}

/** A link handled by the router (plain clicks), keeping the time range. */
export function Link({ href, keep = true, children, ...rest }) {
  const url = locate(href);
  if (keep) {
    for (const [key, value] of Object.entries(keptParams())) {
      if (!url.searchParams.has(key)) url.searchParams.set(key, value);
    }
  }
  const target = url.pathname + url.search;
  const onClick = (event) => {
    if (rest.onClick) rest.onClick(event);
    if (event.defaultPrevented || event.button !== 0) return;
    if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    event.preventDefault();
    navigate(url.href);
  };
  return html`<a ...${rest} href=${target} onClick=${onClick}>${children}</a>`;
}
