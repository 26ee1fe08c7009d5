// The waterfall of one invocation: detectors, handlers and their (parallel) jobs on one
// time axis; a retried job has one bar per attempt. Events that were not detected are
// folded into one row until expanded. Drag across the bars (mouse or finger) to zoom into
// a time window; the buttons zoom, pan and reset for keyboards.
import { html } from 'htm/preact';
import { useRef, useState } from 'preact/hooks';
import { fmtDuration, toDate } from '../lib/format.js';
import { StatusIcon, eventStatus } from './ui.js';

const ms = (value) => (value ? toDate(value).getTime() : null);

function jobSpan(job, now) {
  const start = ms(job.started_at) ?? ms(job.created_at);
  let end = ms(job.ended_at);
  if (end === null) end = job.duration_ms !== null && job.duration_ms !== undefined ? start + job.duration_ms : job.status === 'running' ? now : start;
  return [start, end];
}

/**
 * The bars of a job: one per attempt when its attempts were recorded (times relative to
 * `t0`), else one for the whole job. A job cut while an attempt ran has one attempt fewer
 * recorded than made: the last bar runs from the last recorded end to the job's end.
 */
export function jobSegments(job, t0, now) {
  const [start, stop] = jobSpan(job, now);
  const history = Array.isArray(job.attempt_history) ? job.attempt_history : [];
  if (history.length < 2) {
    return [{ start: start - t0, length: stop - start, tone: job.status, title: `${job.job_name}: ${job.status}, ${fmtDuration(stop - start)}` }];
  }
  const segments = history.map((a) => {
    const begin = ms(a.started_at);
    const length = a.duration_ms ?? ms(a.ended_at) - begin;
    const error = a.error_message ? ` (${a.error_type ? `${a.error_type}: ` : ''}${a.error_message})` : '';
    return { start: begin - t0, length, tone: a.status, attempt: a.attempt, title: `${job.job_name}, attempt ${a.attempt}: ${a.status}, ${fmtDuration(length)}${error}` };
  });
  const last = history[history.length - 1];
  if (job.attempts > history.length && job.status !== 'running') {
    const begin = ms(last.ended_at);
    segments.push({ start: begin - t0, length: Math.max(0, stop - begin), tone: job.status, attempt: job.attempts, title: `${job.job_name}, attempt ${job.attempts}: ${job.status}` });
  }
  return segments;
}

/** Rows of the waterfall with times in ms since the invocation started. */
export function waterfallRows(invocation, events, jobs, now) {
  const t0 = ms(invocation.created_at);
  const running = invocation.status === 'running';
  const rows = [];
  let end = t0 + (invocation.total_duration_ms ?? 0);
  const jobsOf = new Map();
  for (const job of jobs) {
    if (!jobsOf.has(job.event_execution_id)) jobsOf.set(job.event_execution_id, []);
    jobsOf.get(job.event_execution_id).push(job);
  }
  const shown = events.filter((e) => e.status !== 'not_detected' && e.status !== 'skipped');
  const hidden = events.filter((e) => e.status === 'not_detected');
  const eventRow = (event) => {
    const start = ms(event.created_at) - t0;
    const detection = event.detection_duration_ms ?? (event.status === 'detecting' ? now - ms(event.created_at) : 0);
    const handler = event.handler_duration_ms ?? (event.status === 'handling' ? now - ms(event.created_at) - detection : 0);
    end = Math.max(end, t0 + start + detection + handler);
    return {
      key: event.id,
      kind: 'event',
      label: event.event_name,
      status: event.status,
      shown: eventStatus(event),
      segments: [
        { start, length: detection, tone: event.status === 'detection_failed' ? 'failed' : 'detect', title: `detector ${fmtDuration(detection)}` },
        ...(event.detected ? [{ start: start + detection, length: handler, tone: event.status === 'handler_failed' ? 'failed' : 'handler', title: `handler ${fmtDuration(handler)}` }] : []),
      ],
      detail: event.detected ? `${fmtDuration(detection)} + ${fmtDuration(handler)}` : fmtDuration(detection),
    };
  };
  for (const event of shown) {
    rows.push(eventRow(event));
    for (const job of jobsOf.get(event.id) || []) {
      const [start, stop] = jobSpan(job, now);
      const segments = jobSegments(job, t0, now);
      end = Math.max(end, stop, ...segments.map((s) => t0 + s.start + s.length));
      rows.push({ key: job.id, kind: 'job', job, label: job.job_name, status: job.status, shown: job.status, attempts: job.attempts, segments, detail: fmtDuration(stop - start) });
    }
  }
  if (running) end = Math.max(end, now);
  return { t0, total: Math.max(1, end - t0), rows, hidden: hidden.map(eventRow) };
}

/** Round tick positions inside [from, to]. */
function ticks(from, to) {
  const span = to - from;
  const steps = [0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000, 30_000, 60_000, 300_000, 600_000, 1_800_000, 3_600_000];
  const step = steps.find((s) => span / s <= 6) || Math.ceil(span / 6);
  const list = [];
  for (let t = Math.ceil(from / step) * step; t <= to + 1e-9; t += step) list.push(t);
  return list;
}

const MIN_WINDOW_MS = 0.5;

export function Waterfall({ invocation, events, jobs, now, selected, onSelect }) {
  const [expanded, setExpanded] = useState(false);
  const [zoom, setZoom] = useState(null); // [from, to] ms since the start, or the whole run
  const [drag, setDrag] = useState(null); // { from, to } as fractions of the track while selecting
  const box = useRef(null);
  const gesture = useRef(null);
  const { total, rows, hidden } = waterfallRows(invocation, events, jobs, now);
  const [w0, w1] = zoom ? [Math.max(0, zoom[0]), Math.min(total, zoom[1])] : [0, total];
  const span = Math.max(1e-6, w1 - w0);

  const setWindow = (from, to) => {
    const width = Math.max(MIN_WINDOW_MS, to - from);
    if (width >= total) return setZoom(null);
    const start = Math.max(0, Math.min(total - width, from));
    setZoom([start, start + width]);
  };
  const zoomBy = (factor) => {
    const middle = (w0 + w1) / 2;
    setWindow(middle - (span * factor) / 2, middle + (span * factor) / 2);
  };
  const pan = (direction) => setWindow(w0 + (direction * span) / 2, w1 + (direction * span) / 2);

  // Bars are clipped to the window; a bar wholly outside it is not drawn.
  const place = (start, length) => {
    const a = Math.max(w0, start);
    const b = Math.min(w1, start + length);
    if (b < a || (length > 0 && b === a)) return null;
    return `left:${((a - w0) / span) * 100}%;width:max(2px, ${((b - a) / span) * 100}%)`;
  };
  const bar = (segment) => {
    const style = place(segment.start, segment.length);
    return style ? html`<span class=${`wf-bar tone-${segment.tone}`} style=${style} title=${segment.title} data-attempt=${segment.attempt}></span>` : null;
  };
  // The wait between two attempts (the backoff), drawn as a thin line.
  const gaps = (segments) =>
    segments.slice(1).map((next, i) => {
      const from = segments[i].start + segments[i].length;
      const style = place(from, next.start - from);
      return style ? html`<span class="wf-gap" style=${style} title=${`waited ${fmtDuration(next.start - from)} before attempt ${next.attempt}`}></span>` : null;
    });

  // Drag selection: fractions of the track column (every row's track has the same box).
  const trackBox = () => box.current?.querySelector('.wf-axis .wf-track')?.getBoundingClientRect();
  const fraction = (event) => {
    const rect = trackBox();
    return rect ? Math.max(0, Math.min(1, (event.clientX - rect.left) / rect.width)) : 0;
  };
  const onPointerDown = (event) => {
    if (event.button !== 0 || !event.target.closest('.wf-track')) return;
    const at = fraction(event);
    gesture.current = { from: at, to: at, x: event.clientX, moved: false };
  };
  const onPointerMove = (event) => {
    const g = gesture.current;
    if (!g) return;
    g.to = fraction(event);
    if (Math.abs(event.clientX - g.x) > 6) g.moved = true;
    if (g.moved) setDrag({ from: g.from, to: g.to });
  };
  const onPointerUp = (event) => {
    const g = gesture.current;
    if (!g || g.done) return;
    gesture.current = null;
    if (g.moved && event.type === 'pointerup') {
      // The click that follows this drag must not also select a job.
      const done = { done: true };
      gesture.current = done;
      setTimeout(() => gesture.current === done && (gesture.current = null), 50);
    }
    setDrag(null);
    if (g.moved) setWindow(w0 + Math.min(g.from, g.to) * span, w0 + Math.max(g.from, g.to) * span);
  };
  const onClickCapture = (event) => {
    if (gesture.current?.done) {
      gesture.current = null;
      event.stopPropagation();
    }
  };
  const overlay = () => {
    const rect = trackBox();
    const outer = box.current?.getBoundingClientRect();
    if (!drag || !rect || !outer) return null;
    const left = rect.left - outer.left + Math.min(drag.from, drag.to) * rect.width;
    return html`<div class="wf-selection" style=${`left:${left}px;width:${Math.abs(drag.to - drag.from) * rect.width}px`}></div>`;
  };

  const activate = (handler) => (event) => {
    if (event.key === 'Enter' || event.key === ' ') {
      event.preventDefault();
      handler();
    }
  };
  const row = (r, extra = '') => {
    const selectable = r.kind === 'job';
    return html`<div class=${`wf-row wf-${r.kind} ${selected === r.key ? 'selected' : ''} ${extra}`} data-wf-row=${r.kind} data-wf-key=${r.key} data-status=${r.status}
        role=${selectable ? 'button' : undefined} tabindex=${selectable ? 0 : undefined} aria-pressed=${selectable ? selected === r.key : undefined}
        onClick=${selectable ? () => onSelect(r.key) : undefined} onKeyDown=${selectable ? activate(() => onSelect(r.key)) : undefined}>
      <div class="wf-label"><${StatusIcon} status=${r.shown} /><span class="wf-name" title=${r.label}>${r.label}</span>
        ${r.attempts > 1 ? html`<span class="chip small warn" title=${`${r.attempts} attempts`}>×${r.attempts}</span>` : null}</div>
      <div class="wf-track">${gaps(r.segments)}${r.segments.map(bar)}</div>
      <div class="wf-detail">${r.detail}</div>
    </div>`;
  };
  const toggleHidden = () => setExpanded(!expanded);
  return html`<div class="waterfall" data-waterfall data-window=${zoom ? `${w0.toFixed(1)}-${w1.toFixed(1)}` : ''} ref=${box}
      onPointerDown=${onPointerDown} onPointerMove=${onPointerMove} onPointerUp=${onPointerUp} onPointerLeave=${onPointerUp} onPointerCancel=${onPointerUp} onClickCapture=${onClickCapture}>
    <div class="wf-toolbar">
      <span class="muted small wf-window" data-wf-window>${zoom ? `${fmtDuration(w0)} – ${fmtDuration(w1)} of ${fmtDuration(total)}` : 'Drag across the bars to zoom into a time window'}</span>
      <div class="row-actions">
        <button type="button" class="btn small" data-wf-pan="-1" disabled=${!zoom || w0 <= 0} onClick=${() => pan(-1)} aria-label="Earlier">‹</button>
        <button type="button" class="btn small" data-wf-zoom-in onClick=${() => zoomBy(0.5)} aria-label="Zoom in" title="Zoom in">+</button>
        <button type="button" class="btn small" data-wf-zoom-out disabled=${!zoom} onClick=${() => zoomBy(2)} aria-label="Zoom out" title="Zoom out">−</button>
        <button type="button" class="btn small" data-wf-pan="1" disabled=${!zoom || w1 >= total} onClick=${() => pan(1)} aria-label="Later">›</button>
        <button type="button" class="btn small" data-wf-reset disabled=${!zoom} onClick=${() => setZoom(null)}>Whole run</button>
      </div>
    </div>
    <div class="wf-row wf-axis"><div class="wf-label muted small">Step</div><div class="wf-track">${ticks(w0, w1).map((t) => html`<span class="wf-tick" style=${`left:${((t - w0) / span) * 100}%`}>${fmtDuration(t)}</span>`)}</div><div class="wf-detail muted small">Duration</div></div>
    <div class="wf-row wf-invocation" data-wf-row="invocation" data-status=${invocation.status}>
      <div class="wf-label"><${StatusIcon} status=${invocation.status} /><span class="wf-name strong">${invocation.source_function}</span></div>
      <div class="wf-track">${bar({ start: 0, length: invocation.total_duration_ms ?? total, tone: invocation.status, title: `${invocation.source_function}: ${invocation.status}` })}</div>
      <div class="wf-detail">${invocation.status === 'running' ? html`<span class="ticking">${fmtDuration(now - ms(invocation.created_at))}</span>` : fmtDuration(invocation.total_duration_ms)}</div>
    </div>
    ${rows.map((r) => row(r))}
    ${hidden.length
      ? html`<div class="wf-row wf-group" data-wf-row="undetected" role="button" tabindex="0" aria-expanded=${expanded} onClick=${toggleHidden} onKeyDown=${activate(toggleHidden)}>
          <div class="wf-label"><span class="caret" aria-hidden="true">${expanded ? '▾' : '▸'}</span><span class="wf-name muted">${hidden.length} event${hidden.length === 1 ? '' : 's'} not detected</span></div>
          <div class="wf-track">${hidden.map((h) => bar({ ...h.segments[0], tone: 'muted' }))}</div>
          <div class="wf-detail muted">${expanded ? 'hide' : 'show'}</div>
        </div>
        ${expanded ? hidden.map((r) => row(r, 'wf-sub')) : null}`
      : null}
    ${!rows.length && !hidden.length ? html`<div class="muted pad">No event module was checked.</div>` : null}
    ${overlay()}
    <div class="wf-legend muted small">
      ${[['detect', 'detector'], ['handler', 'handler'], ['completed', 'job completed'], ['failed', 'failed'], ['timeout', 'timeout'], ['running', 'running']].map(
        ([tone, label]) => html`<span class="nowrap"><i class=${`sw ${tone}`}></i> ${label}</span>`,
      )}
      <span class="nowrap"><span class="wf-gap-key"></span> wait before a retry</span>
      <span>· one bar per attempt · click or press Enter on a job for its details</span></div>
  </div>`;
}
