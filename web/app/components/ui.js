// Small shared pieces: badges, ids with copy buttons, times, cards, KPIs, states.
import { html } from 'htm/preact';
import { useState } from 'preact/hooks';
import { Link } from '../lib/router.js';
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

export function StatusBadge({ status, title }) {
  return html`<span class="badge status-${status}" data-status=${status} title=${title || ''}>
    <span class="dot"></span>${STATUS_LABELS[status] || status}</span>`;
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

/** A KPI: value (exact number in data-value), and the change from the previous period. */
export function Kpi({ name, label, value, display, previous, deltaDisplay, better = 'up', hint }) {
  let delta = null;
  if (previous !== undefined) {
    if (value === null || value === undefined || previous === null || previous === undefined) {
      delta = html`<span class="delta flat">no data before</span>`;
    } else {
      const diff = value - previous;
      const direction = diff > 0 ? 'up' : diff < 0 ? 'down' : 'flat';
      const good = direction === 'flat' || better === 'none' ? 'flat' : direction === better ? 'good' : 'bad';
      const arrow = direction === 'up' ? '▲' : direction === 'down' ? '▼' : '■';
      delta = html`<span class=${`delta ${good}`} data-previous=${previous}>${arrow} ${deltaDisplay(value, previous)} <span class="muted">vs previous</span></span>`;
    }
  }
  return html`<div class="kpi" data-kpi=${name} data-value=${value ?? ''} title=${hint || ''}>
    <div class="kpi-label">${label}</div>
    <div class="kpi-value">${display}</div>
    <div class="kpi-delta">${delta}</div>
  </div>`;
}

export function Tabs({ tabs, active, onSelect }) {
  return html`<div class="tabs" role="tablist">
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
