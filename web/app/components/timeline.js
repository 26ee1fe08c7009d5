// The waterfall of one invocation: detectors, handlers and their (parallel) jobs on one
// time axis. Events that were not detected are folded into one row until expanded.
import { html } from 'htm/preact';
import { useState } from 'preact/hooks';
import { fmtDuration, toDate } from '../lib/format.js';

const ms = (value) => (value ? toDate(value).getTime() : null);

function jobSpan(job, now) {
  const start = ms(job.started_at) ?? ms(job.created_at);
  let end = ms(job.ended_at);
  if (end === null) end = job.duration_ms !== null && job.duration_ms !== undefined ? start + job.duration_ms : job.status === 'running' ? now : start;
  return [start, end];
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
      end = Math.max(end, stop);
      rows.push({
        key: job.id,
        kind: 'job',
        job,
        label: job.job_name,
        status: job.status,
        attempts: job.attempts,
        segments: [{ start: start - t0, length: stop - start, tone: job.status, title: `${job.job_name}: ${job.status}, ${fmtDuration(stop - start)}` }],
        detail: fmtDuration(stop - start),
      });
    }
  }
  if (running) end = Math.max(end, now);
  return { t0, total: Math.max(1, end - t0), rows, hidden: hidden.map(eventRow) };
}

function ticks(total) {
  const steps = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000, 30_000, 60_000, 300_000];
  const step = steps.find((s) => total / s <= 6) || Math.ceil(total / 6);
  const list = [];
  for (let t = 0; t <= total; t += step) list.push(t);
  return list;
}

export function Waterfall({ invocation, events, jobs, now, selected, onSelect }) {
  const [expanded, setExpanded] = useState(false);
  const { total, rows, hidden } = waterfallRows(invocation, events, jobs, now);
  const pos = (value) => `${Math.max(0, Math.min(100, (value / total) * 100))}%`;
  const width = (value) => `max(2px, ${Math.max(0, (value / total) * 100)}%)`;
  const bar = (segment) => html`<span class=${`wf-bar tone-${segment.tone}`} style=${`left:${pos(segment.start)};width:${width(segment.length)}`} title=${segment.title}></span>`;
  const row = (r, extra = '') => html`<div class=${`wf-row wf-${r.kind} ${selected === r.key ? 'selected' : ''} ${extra}`} data-wf-row=${r.kind} data-wf-key=${r.key} data-status=${r.status}
      onClick=${r.kind === 'job' ? () => onSelect(r.key) : undefined}>
    <div class="wf-label"><span class=${`wf-dot status-${r.status}`}></span><span class="wf-name" title=${r.label}>${r.label}</span>
      ${r.attempts > 1 ? html`<span class="chip small warn" title="attempts">×${r.attempts}</span>` : null}</div>
    <div class="wf-track">${r.segments.map(bar)}</div>
    <div class="wf-detail">${r.detail}</div>
  </div>`;
  return html`<div class="waterfall" data-waterfall>
    <div class="wf-row wf-axis"><div class="wf-label muted small">Step</div><div class="wf-track">${ticks(total).map((t) => html`<span class="wf-tick" style=${`left:${pos(t)}`}>${fmtDuration(t)}</span>`)}</div><div class="wf-detail muted small">Duration</div></div>
    <div class="wf-row wf-invocation" data-wf-row="invocation" data-status=${invocation.status}>
      <div class="wf-label"><span class=${`wf-dot status-${invocation.status}`}></span><span class="wf-name strong">${invocation.source_function}</span></div>
      <div class="wf-track"><span class=${`wf-bar tone-${invocation.status}`} style=${`left:0;width:${width(invocation.total_duration_ms ?? total)}`}></span></div>
      <div class="wf-detail">${invocation.status === 'running' ? html`<span class="ticking">${fmtDuration(now - ms(invocation.created_at))}</span>` : fmtDuration(invocation.total_duration_ms)}</div>
    </div>
    ${rows.map((r) => row(r))}
    ${hidden.length
      ? html`<div class="wf-row wf-group" data-wf-row="undetected" onClick=${() => setExpanded(!expanded)}>
          <div class="wf-label"><span class="caret">${expanded ? '▾' : '▸'}</span><span class="wf-name muted">${hidden.length} event${hidden.length === 1 ? '' : 's'} not detected</span></div>
          <div class="wf-track">${hidden.map((h) => html`<span class="wf-bar tone-muted" style=${`left:${pos(h.segments[0].start)};width:${width(h.segments[0].length)}`}></span>`)}</div>
          <div class="wf-detail muted">${expanded ? 'hide' : 'show'}</div>
        </div>
        ${expanded ? hidden.map((r) => row(r, 'wf-sub')) : null}`
      : null}
    ${!rows.length && !hidden.length ? html`<div class="muted pad">No event module was checked.</div>` : null}
    <div class="wf-legend muted small"><i class="sw detect"></i>detector <i class="sw handler"></i>handler <i class="sw completed"></i>job completed <i class="sw failed"></i>failed <i class="sw timeout"></i>timeout <i class="sw running"></i>running · click a job for its details</div>
  </div>`;
}
