// Small shared pieces: badges, ids with copy buttons, times, cards, KPIs, states.
import { html } from 'htm/preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { Link } from '../lib/router.js';
import { useTitle } from '../lib/hooks.js';
import { fmtAbsolute, fmtIso, fmtRelative, shortId } from '../lib/format.js';

export const STATUS_LABELS = {
  running: 'running',
  completed: 'completed',
  failed: 'failed',
  timeout: 'timeout',
  rejected: 'rejected',
  cancelled: 'cancelled',
  detecting: 'detecting',
  handling: 'handling',
  not_detected: 'not detected',
  detection_failed: 'detection failed',
  handler_failed: 'handler failed',
  skipped: 'skipped',
};

// Status is never told by colour alone: each one also has a shape.
const ICON_PATHS = {
  ok: 'M3.5 8.5l3 3 6-7',
  bad: 'M4.5 4.5l7 7M11.5 4.5l-7 7',
  timeout: 'M8 4.5V8l2.5 1.5M8 14A6 6 0 1 0 8 2a6 6 0 0 0 0 12z',
  blocked: 'M8 14A6 6 0 1 0 8 2a6 6 0 0 0 0 12zM3.8 12.2l8.4-8.4',
  warn: 'M8 4v5M8 11.5v.5',
  idle: 'M8 12a4 4 0 1 0 0-8 4 4 0 0 0 0 8z',
  skip: 'M4 8h8',
};
const STATUS_ICONS = {
  completed: 'ok',
  failed: 'bad',
  detection_failed: 'bad',
  handler_failed: 'bad',
  jobs_failed: 'warn',
  timeout: 'timeout',
  rejected: 'blocked',
  cancelled: 'skip',
  not_detected: 'skip',
  running: 'idle',
  detecting: 'idle',
  handling: 'idle',
};

/** A status as a small coloured shape (✓, ✕, clock, …) with its name for screen readers. */
export function StatusIcon({ status }) {
  const icon = STATUS_ICONS[status] || 'idle';
  return html`<svg class=${`status-icon status-${status}`} viewBox="0 0 16 16" role="img" aria-label=${STATUS_LABELS[status] || status}>
    <path d=${ICON_PATHS[icon]} /></svg>`;
}

export function StatusBadge({ status, title }) {
  return html`<span class="badge status-${status}" data-status=${status} title=${title || ''}>
    <${StatusIcon} status=${status} />${STATUS_LABELS[status] || status}</span>`;
}

/** What an event run ended as, counting its jobs: a handler that returned is not a success
 * when jobs it started failed. */
export function eventStatus(event) {
  return event.status === 'completed' && event.jobs_failed > 0 ? 'jobs_failed' : event.status;
}

/** An event's status badge: "2 of 4 jobs failed" rather than a green "completed". */
export function EventStatusBadge({ event }) {
  if (eventStatus(event) !== 'jobs_failed') return html`<${StatusBadge} status=${event.status} />`;
  return html`<span class="badge status-jobs_failed" data-status="jobs_failed" title="The handler returned, but not every job it started completed">
    <${StatusIcon} status="jobs_failed" />${event.jobs_failed} of ${event.jobs_count} jobs failed</span>`;
}

/** Jobs of an invocation as "4 · 2 failed" (or "3 ok"), never a puzzle like `2 +2✕/4`. */
export function JobCounts({ run, failed }) {
  if (!run) return html`<span class="muted" title="No job ran">0</span>`;
  return html`<span class="job-counts" title=${`${run - failed} of ${run} jobs completed${failed ? `, ${failed} did not` : ''}`}>
    ${run}${failed ? html` <span class="bad-text nowrap">· ${failed} failed</span>` : null}</span>`;
}

export function OpBadge({ op }) {
  if (!op) return null;
  return html`<span class=${`op op-${op.toLowerCase()}`}>${op}</span>`;
}

export function Time({ value, now }) {
  if (!value) return html`<span class="muted">—</span>`;
  return html`<time datetime=${value} title=${`${fmtAbsolute(value)} (${fmtIso(value)})`}>${fmtRelative(value, now)}</time>`;
}

export function AbsTime({ value }) {
  if (!value) return html`<span class="muted">—</span>`;
  return html`<time datetime=${value} title=${fmtIso(value)}>${fmtAbsolute(value)}</time>`;
}

async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    // Without clipboard permission: copy through a selected text area.
    const area = document.createElement('textarea');
    area.value = text;
    area.style.position = 'fixed';
    area.style.opacity = '0';
    document.body.appendChild(area);
    area.select();
    const ok = document.execCommand('copy');
    area.remove();
    return ok;
  }
}

export function CopyButton({ text, label = 'Copy' }) {
  const [done, setDone] = useState(false);
  const onClick = async (event) => {
    event.preventDefault();
    event.stopPropagation();
    if (await copyText(text)) {
      setDone(true);
      setTimeout(() => setDone(false), 1200);
    }
  };
  return html`<button type="button" class=${`copy ${done ? 'done' : ''}`} title=${`${label}: ${text}`} aria-label=${label} onClick=${onClick}>
    ${done ? html`<svg viewBox="0 0 16 16"><path d="M3 8.5l3 3 7-7" /></svg>` : html`<svg viewBox="0 0 16 16"><rect x="5" y="5" width="8" height="9" rx="1.5" /><path d="M3 11V3.5A1.5 1.5 0 0 1 4.5 2H10" /></svg>`}
  </button>`;
}

/** An id in monospace, shortened, with its full value in the tooltip and a copy button. */
export function Id({ value, href, full = false, label = 'Copy id' }) {
  if (!value) return html`<span class="muted">—</span>`;
  const text = full ? value : shortId(value);
  return html`<span class="id">${href ? html`<${Link} href=${href} title=${value}>${text}</${Link}>` : html`<span title=${value}>${text}</span>`}<${CopyButton} text=${value} label=${label} /></span>`;
}

export function Card({ title, actions, children, class: extra = '', id }) {
  return html`<section class=${`card ${extra}`} id=${id}>
    ${title || actions ? html`<header class="card-head"><h2>${title}</h2><div class="card-actions">${actions}</div></header>` : null}
    <div class="card-body">${children}</div>
  </section>`;
}

export function Empty({ title, children }) {
  return html`<div class="empty"><div class="empty-title">${title}</div>${children ? html`<div class="empty-hint">${children}</div>` : null}</div>`;
}

export function ErrorBox({ error, title = 'Could not load this view' }) {
  // An unreachable API is shown once, by the banner; the last data stays on screen.
  if (!error || error.name === 'NetworkError') return null;
  return html`<div class="error-box" role="alert"><strong>${title}</strong><div>${error.message || String(error)}</div>${error.code ? html`<div class="muted">code: ${error.code}</div>` : null}</div>`;
}

export function Loading({ label = 'Loading…' }) {
  return html`<div class="loading"><span class="spinner"></span>${label}</div>`;
}

// Below this many cases in either period a change in percent says nothing: 3 → 308 is not
// "+10166.7%" worth of news. The comparison then says so, and shows the value before.
export const MIN_SAMPLE = 30;

/**
 * A KPI: value (exact number in data-value) and the previous period's value with the
 * change from it. `samples` is [now, before]: how many cases each figure stands on;
 * below MIN_SAMPLE in either, no change is computed.
 */
export function Kpi({ name, label, value, display, previous, previousDisplay, deltaDisplay, better = 'up', hint, samples, noun = 'invocations' }) {
  let delta = null;
  if (previous !== undefined) {
    const before = previous === null ? 'none' : previousDisplay(previous);
    const [now, then] = samples || [Infinity, Infinity];
    if (Math.min(now, then) < MIN_SAMPLE) {
      const why = `${then} ${noun} in the previous period, ${now} in this one: a change needs at least ${MIN_SAMPLE} in each`;
      delta = html`<span class="delta flat" data-comparison="insufficient" data-previous=${previous ?? ''} title=${why}>not enough data · ${before} before</span>`;
    } else if (value === null || value === undefined || previous === null) {
      delta = html`<span class="delta flat" data-comparison="none">no value to compare</span>`;
    } else {
      const diff = value - previous;
      const direction = diff > 0 ? 'up' : diff < 0 ? 'down' : 'flat';
      const good = direction === 'flat' || better === 'none' ? 'flat' : direction === better ? 'good' : 'bad';
      const arrow = direction === 'up' ? '▲' : direction === 'down' ? '▼' : '■';
      delta = html`<span class=${`delta ${good}`} data-comparison="change" data-previous=${previous} title=${`Previous period: ${before} (${then} ${noun})`}>
        <span aria-hidden="true">${arrow}</span> ${deltaDisplay(value, previous)} <span class="muted">· ${before} before</span></span>`;
    }
  }
  return html`<div class="kpi" data-kpi=${name} data-value=${value ?? ''} title=${hint || ''}>
    <div class="kpi-label">${label}</div>
    <div class="kpi-value">${display}</div>
    <div class="kpi-delta">${delta}</div>
  </div>`;
}

/** A page of its own for what cannot be shown: a bad id, a missing record, no such page. */
export function ErrorPage({ kind, title, children }) {
  useTitle(title);
  return html`<div class="error-page" data-error-page=${kind}>
    <div class="error-page-mark" aria-hidden="true">${{ 'no-route': '404', 'bad-id': 'invalid id', 'not-found': 'not found' }[kind] || kind}</div>
    <h2>${title}</h2>
    <div class="error-page-body">${children}</div>
    <div class="row-actions wrap">
      ${history.length > 1 ? html`<button type="button" class="btn" onClick=${() => history.back()}>← Go back</button>` : null}
      <${Link} href="/invocations" class="btn primary">Invocations</${Link}>
      <${Link} href="/" class="btn">Overview</${Link}>
    </div>
  </div>`;
}

export function Tabs({ tabs, active, onSelect }) {
  // On a narrow screen the tabs scroll sideways: keep the active one in view.
  const list = useRef(null);
  useEffect(() => {
    const box = list.current;
    const tab = box?.querySelector('.tab.active');
    if (tab && box.scrollWidth > box.clientWidth) box.scrollLeft = tab.offsetLeft - (box.clientWidth - tab.offsetWidth) / 2;
  }, [active]);
  return html`<div class="tabs" role="tablist" ref=${list}>
    ${tabs.map(
      (tab) => html`<button type="button" role="tab" class=${`tab ${tab.key === active ? 'active' : ''}`} aria-selected=${tab.key === active} data-tab=${tab.key} onClick=${() => onSelect(tab.key)}>
        ${tab.label}${tab.count !== undefined ? html`<span class="tab-count">${tab.count}</span>` : null}
      </button>`,
    )}
  </div>`;
}

export function JsonBlock({ value, maxHeight }) {
  const text = typeof value === 'string' ? value : JSON.stringify(value, null, 2);
  return html`<div class="json-block">
    <div class="json-actions"><${CopyButton} text=${text} label="Copy JSON" /></div>
    <pre class="json" style=${maxHeight ? `max-height:${maxHeight}px` : ''}>${text}</pre>
  </div>`;
}

/** A thin horizontal bar for a ratio (0..1). */
export function RatioBar({ ratio, tone = 'bad' }) {
  const width = Math.max(0, Math.min(1, ratio || 0)) * 100;
  return html`<span class=${`ratio-bar ${tone}`}><span style=${`width:${width}%`}></span></span>`;
}
