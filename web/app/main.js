// The application shell: navigation, top bar (search, time range, live state), banners
// (API unreachable, credentials needed, data incomplete) and the page of the current URL.
import { html, render } from 'htm/preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { auth, connection, setPaused } from './lib/graphql.js';
import { nextThemeMode, setThemeMode, theme } from './lib/theme.js';
import { capabilities, loadCapabilities, can } from './lib/api.js';
import { useStore } from './lib/store.js';
import { RERUN_OFF, loadRerunSupport, rerunSupport } from './lib/rerun.js';
import { Link, navigate, useRoute, updateParams, hrefWith, keptParams } from './lib/router.js';
import { PRESETS, parseRange, useTimeRange } from './lib/timerange.js';
import { useLive } from './lib/hooks.js';
import { fmtNumber, fmtRelative } from './lib/format.js';
import { ErrorPage, Loading } from './components/ui.js';
import { OverviewPage } from './pages/overview.js';
import { InvocationsPage } from './pages/invocations.js';
import { InvocationPage } from './pages/invocation.js';
import { FlowPage } from './pages/flow.js';
import { AnalyticsPage } from './pages/analytics.js';
import { SettingsPage } from './pages/settings.js';

const NAV = [
  { href: '/', label: 'Overview', key: 'o', icon: 'M2 9h4v5H2zM7 5h4v9H7zM12 2h3v12h-3z', match: (p) => p === '/' },
  { href: '/invocations', label: 'Invocations', key: 'i', icon: 'M2 3h12M2 8h12M2 13h12', match: (p) => p.startsWith('/invocations') || p.startsWith('/flow') },
  { href: '/analytics', label: 'Analytics', key: 'a', icon: 'M2 13l4-5 3 3 5-7', match: (p) => p.startsWith('/analytics') },
  { href: '/settings', label: 'Settings', key: 's', icon: 'M8 5.5a2.5 2.5 0 1 0 0 5 2.5 2.5 0 0 0 0-5zM8 1v2M8 13v2M1 8h2M13 8h2M3 3l1.5 1.5M11.5 11.5L13 13M3 13l1.5-1.5M11.5 4.5L13 3', match: (p) => p.startsWith('/settings') },
];

function pageFor(path) {
  let match;
  if (path === '/') return { page: OverviewPage, title: 'Overview' };
  if (path === '/invocations') return { page: InvocationsPage, title: 'Invocations' };
  if ((match = path.match(/^\/invocations\/([^/]+)$/))) return { page: InvocationPage, title: 'Invocation', id: decodeURIComponent(match[1]) };
  if ((match = path.match(/^\/flow\/([^/]+)$/))) return { page: FlowPage, title: 'Flow', id: decodeURIComponent(match[1]), wide: true };
  if (path === '/analytics') return { page: AnalyticsPage, title: 'Analytics' };
  if (path === '/settings') return { page: SettingsPage, title: 'Settings', noRange: true, offline: true };
  return { page: NotFound, title: 'Not found', noRange: true, offline: true };
}

function NotFound() {
  const { path } = useRoute();
  return html`<${ErrorPage} kind="no-route" title="Page not found">
    There is no page at <code>${path}</code> in this console. It may be a mistyped or an old link.
  </${ErrorPage}>`;
}

// The sidebar folded to icons (wide screens) is a display preference, kept with the theme.
const RAIL_KEY = 'event-detector.rail';
function savedRail() {
  try {
    return localStorage.getItem(RAIL_KEY) === '1';
  } catch {
    return false;
  }
}

const THEME_LABELS = { system: 'System theme', light: 'Light theme', dark: 'Dark theme' };
const THEME_ICONS = {
  system: 'M2 3h12v8H2zM6 14h4M8 11v3',
  light: 'M8 5a3 3 0 1 0 0 6 3 3 0 0 0 0-6zM8 1v1.5M8 13.5V15M1 8h1.5M13.5 8H15M3 3l1 1M12 12l1 1M3 13l1-1M12 4l1-1',
  dark: 'M13.5 10A6 6 0 0 1 6 2.5 6 6 0 1 0 13.5 10z',
};

function ThemeToggle() {
  const { mode } = useStore(theme);
  const next = nextThemeMode(mode);
  return html`<button type="button" class="nav-item theme-toggle" data-theme-toggle=${mode} onClick=${() => setThemeMode(next)}
      title=${`${THEME_LABELS[mode]} (click for ${THEME_LABELS[next].toLowerCase()})`} aria-label=${`${THEME_LABELS[mode]}; switch to ${THEME_LABELS[next].toLowerCase()}`}>
    <svg viewBox="0 0 16 16" class="nav-icon" aria-hidden="true"><path d=${THEME_ICONS[mode]} /></svg><span class="nav-label">${THEME_LABELS[mode]}</span>
  </button>`;
}

function Sidebar({ path, rail, onRail, onClose }) {
  const conn = useStore(connection);
  return html`<nav class="sidebar" id="sidebar" aria-label="Main">
    <div class="sidebar-top">
      <${Link} href="/" class="brand" onClick=${onClose}><span class="brand-mark">ED</span><span class="nav-label">Event Detector</span></${Link}>
      <button type="button" class="icon-btn nav-close" onClick=${onClose} aria-label="Close the menu"><svg viewBox="0 0 16 16" aria-hidden="true"><path d="M4 4l8 8M12 4l-8 8" /></svg></button>
    </div>
    <ul class="nav">
      ${NAV.map(
        (item) => html`<li><${Link} href=${item.href} class=${`nav-item ${item.match(path) ? 'active' : ''}`} aria-current=${item.match(path) ? 'page' : undefined} title=${rail ? item.label : undefined} onClick=${onClose}>
          <svg viewBox="0 0 16 16" class="nav-icon" aria-hidden="true"><path d=${item.icon} /></svg><span class="nav-label">${item.label}</span><kbd>g ${item.key}</kbd></${Link}></li>`,
      )}
    </ul>
    <div class="sidebar-foot">
      <div class="sidebar-notes muted small">
        <div>API <code>/v1/graphql</code></div>
        <div>${conn.live === 'push' ? 'Subscriptions: live queries' : conn.live === 'poll' ? 'Subscriptions answered once: polling every second' : ''}</div>
        <div>Keys: <kbd>/</kbd> search, <kbd>g</kbd> + letter to go</div>
      </div>
      <${ThemeToggle} />
      <button type="button" class="nav-item rail-toggle" data-rail-toggle onClick=${onRail} aria-pressed=${rail}
          title=${rail ? 'Expand the sidebar' : 'Collapse the sidebar to icons'} aria-label=${rail ? 'Expand the sidebar' : 'Collapse the sidebar'}>
        <svg viewBox="0 0 16 16" class="nav-icon" aria-hidden="true"><path d=${rail ? 'M6 4l4 4-4 4' : 'M10 4L6 8l4 4'} /></svg><span class="nav-label">Collapse</span>
      </button>
    </div>
  </nav>`;
}

const shortFormat = new Intl.DateTimeFormat('en-US', { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', hour12: false });
const fmtShort = (date) => shortFormat.format(date);

function RangePicker({ params }) {
  const range = parseRange(params);
  const [open, setOpen] = useState(false);
  const toLocal = (date) => {
    const d = new Date(date.getTime() - date.getTimezoneOffset() * 60_000);
    return d.toISOString().slice(0, 16);
  };
  const [from, setFrom] = useState(toLocal(range.from));
  const [to, setTo] = useState(toLocal(range.to || new Date()));
  const [error, setError] = useState(null);
  const apply = (event) => {
    event.preventDefault();
    const start = new Date(from);
    const end = new Date(to);
    if (Number.isNaN(start.getTime()) || Number.isNaN(end.getTime())) return setError('Invalid date');
    if (start >= end) return setError('Start must be before end');
    setError(null);
    setOpen(false);
    updateParams({ range: 'custom', from: start.toISOString(), to: end.toISOString(), page: '' });
  };
  return html`<div class="range-wrap">
    <div class="range" role="group" aria-label="Time range">
      ${PRESETS.map(
        (preset) => html`<button type="button" class=${`seg ${range.key === preset.key ? 'active' : ''}`} data-range=${preset.key} title=${preset.label} aria-pressed=${range.key === preset.key}
          onClick=${() => updateParams({ range: preset.key, from: '', to: '', page: '' })}>${preset.key}</button>`,
      )}
      <button type="button" class=${`seg seg-custom ${range.key === 'custom' ? 'active' : ''}`} data-range="custom" aria-expanded=${open} aria-pressed=${range.key === 'custom'} onClick=${() => setOpen(!open)}
        title=${range.key === 'custom' ? `${fmtShort(range.from)} → ${fmtShort(range.to)}` : 'Pick dates'}>
        ${range.key === 'custom' ? html`<span class="range-dates">${fmtShort(range.from)} → ${fmtShort(range.to)}</span>` : 'Custom'}
      </button>
    </div>
    ${open
      ? html`<form class="popover range-form" onSubmit=${apply} onKeyDown=${(e) => e.key === 'Escape' && setOpen(false)}>
          <label>From <input type="datetime-local" value=${from} onInput=${(e) => setFrom(e.target.value)} /></label>
          <label>To <input type="datetime-local" value=${to} onInput=${(e) => setTo(e.target.value)} /></label>
          ${error ? html`<div class="form-error">${error}</div>` : null}
          <div class="row-actions"><button type="button" class="btn" onClick=${() => setOpen(false)}>Cancel</button><button type="submit" class="btn primary">Apply</button></div>
        </form>`
      : null}
    ${range.error ? html`<span class="form-error">${range.error}</span>` : null}
  </div>`;
}

function LiveIndicator() {
  const conn = useStore(connection);
  let state = 'connecting';
  let text = 'Connecting';
  let title = 'Waiting for the first answer of the API';
  if (conn.authError) {
    state = 'offline';
    text = 'No access';
    title = conn.authError;
  } else if (conn.http === 'down' || (conn.live === 'push' && conn.ws === 'closed')) {
    state = 'offline';
    text = 'Offline';
    title = conn.httpError || 'The live connection is closed; reconnecting';
  } else if (conn.paused) {
    state = 'paused';
    text = 'Paused';
    title = 'Live updates paused: click to resume';
  } else if (conn.live === 'push') {
    state = 'live';
    text = 'Live';
    title = 'Changes are pushed over a GraphQL subscription (click to pause)';
  } else if (conn.live === 'poll') {
    state = 'live';
    text = 'Live';
    title = 'The server answers subscriptions once: checking for changes every second (click to pause)';
  }
  return html`<button type="button" class=${`live live-${state}`} data-live=${state} title=${title} onClick=${() => setPaused(!conn.paused)}>
    <span class="live-dot"></span>${text}${conn.live === 'poll' && state === 'live' ? html`<span class="live-sub">1s</span>` : null}
  </button>`;
}

function SearchBox() {
  const { path, params } = useRoute();
  const [value, setValue] = useState(path === '/invocations' ? params.q || '' : '');
  const input = useRef(null);
  useEffect(() => {
    if (path === '/invocations') setValue(params.q || '');
  }, [path, params.q]);
  useEffect(() => {
    const focus = () => input.current?.focus();
    addEventListener('focus-search', focus);
    return () => removeEventListener('focus-search', focus);
  }, []);
  const submit = (event) => {
    event.preventDefault();
    const q = value.trim();
    // On the list, a search narrows the filters already chosen (status, function, …);
    // from another page it starts from the time range alone.
    const kept = path === '/invocations' ? { ...params, page: '', lpage: '' } : keptParams();
    navigate(hrefWith('/invocations', { ...kept, q }));
  };
  return html`<form class="search" role="search" onSubmit=${submit}>
    <svg viewBox="0 0 16 16" class="search-icon" aria-hidden="true"><circle cx="7" cy="7" r="4.5" /><path d="M10.5 10.5L14 14" /></svg>
    <input ref=${input} type="search" name="q" placeholder="Search: id, correlation id, user, orders:ord_123, text in payloads or logs…" value=${value} onInput=${(e) => setValue(e.target.value)} aria-label="Search invocations" />
    <kbd>/</kbd>
  </form>`;
}

function Banners({ params }) {
  const conn = useStore(connection);
  const range = useTimeRange(params);
  const health = useLive(
    `subscription PluginHealth($since: timestamptz!) {
      plugin_instances(where: {records_dropped: {_gt: 0}, updated_at: {_gte: $since}}, order_by: {updated_at: desc}, limit: 20) {
        id hostname pid writer records_dropped dropped_by_reason records_quarantined updated_at last_error
      }
    }`,
    { since: range.from.toISOString() },
    { pollMs: 2000 },
  );
  const banners = [];
  if (conn.http === 'down' || (conn.live === 'push' && conn.ws === 'closed')) {
    banners.push(html`<div class="banner banner-offline" role="alert" data-banner="offline">
      <strong>The API is unreachable:</strong> ${conn.httpError || 'the live connection closed'}. Retrying; what you see may be out of date${conn.lastOk ? ` (last answer ${fmtRelative(conn.lastOk)})` : ''}.
    </div>`);
  }
  if (conn.authError) {
    banners.push(html`<div class="banner banner-auth" role="alert" data-banner="auth">
      <strong>The API needs credentials:</strong> ${conn.authError}. <${Link} href="/settings">Enter the admin secret</${Link}>.
    </div>`);
  }
  const instances = health.data?.plugin_instances || [];
  if (instances.length) {
    const dropped = instances.reduce((sum, i) => sum + Number(i.records_dropped || 0), 0);
    const reasons = {};
    for (const instance of instances) {
      for (const [reason, count] of Object.entries(instance.dropped_by_reason || {})) reasons[reason] = (reasons[reason] || 0) + Number(count);
    }
    banners.push(html`<div class="banner banner-incomplete" role="status" data-banner="incomplete" data-dropped=${dropped}>
      <strong>Data incomplete:</strong> the observability plugin dropped ${fmtNumber(dropped)} record${dropped === 1 ? '' : 's'}
      ${Object.keys(reasons).length ? html` (${Object.entries(reasons).map(([r, c], i) => html`${i ? ', ' : ''}<code>${r}</code>: ${fmtNumber(c)}`)})` : null}${' '}
      in ${instances.length} process${instances.length === 1 ? '' : 'es'} that reported in this time range
      (${instances.map((i, n) => html`${n ? ', ' : ''}<span class="mono" title=${`${i.hostname || ''} pid ${i.pid ?? '?'}, ${i.writer || ''} writer, last report ${i.updated_at}${i.last_error ? `; last error: ${i.last_error}` : ''}`}>${i.id}</span>`)}).
      Counts and lists below may miss those records.
    </div>`);
  }
  return banners.length ? html`<div class="banners">${banners}</div>` : null;
}

function useShortcuts() {
  useEffect(() => {
    let pendingG = false;
    let timer = null;
    const onKey = (event) => {
      const target = event.target;
      if (event.metaKey || event.ctrlKey || event.altKey) return;
      if (target && (target.isContentEditable || ['INPUT', 'TEXTAREA', 'SELECT'].includes(target.tagName))) {
        if (event.key === 'Escape') target.blur();
        return;
      }
      if (event.key === '/') {
        event.preventDefault();
        dispatchEvent(new Event('focus-search'));
        return;
      }
      if (pendingG) {
        pendingG = false;
        clearTimeout(timer);
        const item = NAV.find((n) => n.key === event.key);
        if (item) {
          event.preventDefault();
          navigate(hrefWith(item.href, keptParams()));
        }
        return;
      }
      if (event.key === 'g') {
        pendingG = true;
        timer = setTimeout(() => (pendingG = false), 1200);
      }
    };
    addEventListener('keydown', onKey);
    return () => removeEventListener('keydown', onKey);
  }, []);
}

function App() {
  const { path, params } = useRoute();
  const caps = useStore(capabilities);
  const authState = useStore(auth);
  const conn = useStore(connection);
  useShortcuts();

  useEffect(() => {
    rerunSupport.set(RERUN_OFF); // until the server has answered for the new credentials
    loadCapabilities();
  }, [authState.version]);
  // Re-runs are offered only when the API takes this tab as admin (its schema has
  // mutations): asked again each time the capabilities of new credentials arrive.
  useEffect(() => {
    if (caps.status === 'ready' && caps.admin) loadRerunSupport();
    else rerunSupport.set(RERUN_OFF);
  }, [caps]);
  // Retry while the API cannot be reached at start.
  useEffect(() => {
    if (caps.status !== 'error' || caps.error?.name !== 'NetworkError') return undefined;
    const timer = setTimeout(loadCapabilities, 2000);
    return () => clearTimeout(timer);
  }, [caps]);

  const { page: Page, title, id, wide, noRange, offline } = pageFor(path);
  const [navOpen, setNavOpen] = useState(false);
  const [rail, setRail] = useState(savedRail);
  const toggleRail = () => {
    const next = !rail;
    setRail(next);
    try {
      if (next) localStorage.setItem(RAIL_KEY, '1');
      else localStorage.removeItem(RAIL_KEY);
    } catch {
      // not kept across visits
    }
  };
  useEffect(() => setNavOpen(false), [path]);
  useEffect(() => {
    if (!navOpen) return undefined;
    document.querySelector('#sidebar .nav-item')?.focus();
    const onKey = (event) => event.key === 'Escape' && setNavOpen(false);
    addEventListener('keydown', onKey);
    return () => removeEventListener('keydown', onKey);
  }, [navOpen]);

  let body;
  // Pages reload everything when the credentials change (but Settings keeps its form).
  const key = offline ? path : `${path}|${authState.version}`;
  if (caps.status === 'ready' || offline) body = html`<${Page} key=${key} params=${params} id=${id} />`;
  else if (caps.status === 'loading') body = html`<${Loading} label="Connecting to the API…" />`;
  else if (conn.authError) body = html`<div class="empty"><div class="empty-title">Credentials needed</div><div class="empty-hint">The API refused this browser: ${conn.authError}. <${Link} href="/settings">Enter the admin secret</${Link}> (kept in this tab only).</div></div>`;
  else body = html`<div class="empty"><div class="empty-title">Waiting for the API</div><div class="empty-hint">${caps.error?.message || ''}</div></div>`;

  const restricted = caps.status === 'ready' && !can('invocations', 'source_event_payload');
  return html`<div class=${`shell ${rail ? 'rail' : ''} ${navOpen ? 'nav-open' : ''}`}>
    <${Sidebar} path=${path} rail=${rail} onRail=${toggleRail} onClose=${() => setNavOpen(false)} />
    <div class="nav-backdrop" onClick=${() => setNavOpen(false)}></div>
    <div class="main">
      <header class="topbar">
        <button type="button" class="icon-btn nav-toggle" data-nav-toggle aria-controls="sidebar" aria-expanded=${navOpen} aria-label="Menu" onClick=${() => setNavOpen(!navOpen)}>
          <svg viewBox="0 0 16 16" aria-hidden="true"><path d="M2 4h12M2 8h12M2 12h12" /></svg></button>
        <h1 class="page-title">${title}</h1>
        <${SearchBox} />
        ${restricted || !noRange
          ? html`<div class="topbar-range">
              ${restricted ? html`<span class="chip" title="Your role cannot read payloads, contexts, options, results or stacks" data-restricted="1">restricted role</span>` : null}
              ${noRange ? null : html`<${RangePicker} params=${params} key=${`${params.range}|${params.from}|${params.to}`} />`}
            </div>`
          : null}
        <${LiveIndicator} />
      </header>
      <${Banners} params=${params} />
      <main class=${`content ${wide ? 'wide' : ''}`}>${body}</main>
    </div>
  </div>`;
}

render(html`<${App} />`, document.getElementById('root'));
