// Captured log lines of one invocation: level and job filters, text filter, and a jump to
// the first error.
import { html } from 'htm/preact';
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { fmtClock, fmtNumber, toDate } from '../lib/format.js';

export const LEVELS = ['debug', 'info', 'warn', 'error'];

/** `line`: a log line id to bring into view and mark (a link from a log search). */
export function LogViewer({ logs, total, t0, eventNames, jobNames, job, line: target, onJob }) {
  const [levels, setLevels] = useState(new Set(LEVELS));
  const [text, setText] = useState('');
  const [flash, setFlash] = useState(target || null);
  const [open, setOpen] = useState(new Set());
  const list = useRef(null);

  const counts = useMemo(() => {
    const c = Object.fromEntries(LEVELS.map((l) => [l, 0]));
    for (const line of logs) c[line.level] = (c[line.level] || 0) + 1;
    return c;
  }, [logs]);
  const needle = text.trim().toLowerCase();
  const shown = logs.filter(
    (line) =>
      levels.has(line.level) &&
      (!job || (job === 'none' ? !line.job_execution_id : line.job_execution_id === job)) &&
      (!needle || line.message.toLowerCase().includes(needle)),
  );
  const firstError = logs.find((line) => line.level === 'error');

  const toggle = (level) => {
    const next = new Set(levels);
    if (next.has(level)) next.delete(level);
    else next.add(level);
    setLevels(next.size ? next : new Set(LEVELS));
  };
  const jumpToError = () => {
    if (!firstError) return;
    // The first error must be visible whatever the filters.
    setLevels(new Set(LEVELS));
    setText('');
    if (job && firstError.job_execution_id !== job) onJob('');
    setFlash(firstError.id);
  };
  useEffect(() => {
    if (!flash) return undefined;
    const row = list.current?.querySelector(`[data-log="${flash}"]`);
    if (row) row.scrollIntoView({ block: 'center' });
    const timer = setTimeout(() => setFlash(null), 2500);
    return () => clearTimeout(timer);
  }, [flash, shown.length]);

  const origin = (line) => {
    if (line.job_execution_id) return html`<span class="log-origin" title="job">${jobNames.get(line.job_execution_id) || 'job'}</span>`;
    if (line.event_execution_id) return html`<span class="log-origin muted" title="detector or handler">${eventNames.get(line.event_execution_id) || 'event'}</span>`;
    return html`<span class="log-origin muted">invocation</span>`;
  };

  return html`<div class="logs" data-logs>
    <div class="logs-toolbar">
      <div class="filter-group" role="group" aria-label="Levels">
        ${LEVELS.map(
          (level) => html`<button type="button" class=${`chip-toggle level-${level} ${levels.has(level) ? 'on' : ''}`} aria-pressed=${levels.has(level)} data-level-filter=${level} onClick=${() => toggle(level)}>${level} <span class="muted">${fmtNumber(counts[level])}</span></button>`,
        )}
      </div>
      <select aria-label="Job" value=${job || ''} onChange=${(e) => onJob(e.target.value)} data-log-job>
        <option value="">All steps</option>
        <option value="none">Detectors and handlers</option>
        ${[...jobNames.entries()].map(([id, name]) => html`<option value=${id}>${name} (${id.slice(0, 8)})</option>`)}
      </select>
      <input type="search" class="input" placeholder="Filter messages" value=${text} onInput=${(e) => setText(e.target.value)} aria-label="Filter log messages" />
      <button type="button" class="btn" disabled=${!firstError} onClick=${jumpToError} data-jump-error>Jump to first error</button>
      <span class="muted small" data-log-count=${shown.length}>${fmtNumber(shown.length)} of ${fmtNumber(total)} lines${total > logs.length ? ` (first ${fmtNumber(logs.length)} loaded)` : ''}</span>
    </div>
    <div class="log-lines" ref=${list}>
      ${shown.length === 0
        ? html`<div class="muted pad">${logs.length ? 'No line matches these filters.' : 'No log line was captured for this invocation.'}</div>`
        : shown.map(
            (line) => html`<div class=${`log-line level-${line.level} ${flash === line.id ? 'flash' : ''} ${target === line.id ? 'target' : ''}`} data-log=${line.id} data-level=${line.level}>
              <span class="log-time mono" title=${fmtClock(line.created_at)}>+${Math.max(0, toDate(line.created_at).getTime() - t0)} ms</span>
              <span class=${`log-level level-${line.level}`}>${line.level}</span>
              ${origin(line)}
              <span class="log-message">${line.message}</span>
              <span class="log-source muted">${line.source || ''}${line.line_number ? `:${line.line_number}` : ''}</span>
              ${line.data ? html`<button type="button" class="btn link small" onClick=${() => { const next = new Set(open); next.has(line.id) ? next.delete(line.id) : next.add(line.id); setOpen(next); }}>data</button>` : null}
              ${line.data && open.has(line.id) ? html`<pre class="log-data">${JSON.stringify(line.data, null, 2)}</pre>` : null}
            </div>`,
          )}
    </div>
  </div>`;
}
