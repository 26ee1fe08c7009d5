// Invocations: server-side pages, filters and search, all kept in the URL; log lines that
// match a text search, paged on the server, each leading to the invocation and job that
// wrote it.
import { html } from 'htm/preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { Batch, CHANGES, and, can } from '../lib/api.js';
import { useLive, useNow, useQuery, useTitle } from '../lib/hooks.js';
import { createdWithin, useTimeRange } from '../lib/timerange.js';
import { OPERATIONS, STATUSES, anyFilter, containing, invocationWhere, logSearchText, parseSearch, readFilters } from '../lib/search.js';
import { fmtDuration, fmtNumber } from '../lib/format.js';
import { Link, hrefWith, keptParams, navigate, updateParams } from '../lib/router.js';
import { Empty, ErrorBox, Id, JobCounts, Loading, OpBadge, StatusBadge, StatusIcon, Time } from '../components/ui.js';
import { RerunDialog, useRerunAvailable } from '../components/rerun.js';

const PAGE_SIZES = [25, 50, 100, 200];
const LOG_PAGE_SIZE = 10;
const SORTS = {
  '-created_at': [{ created_at: 'desc' }, { id: 'asc' }],
  created_at: [{ created_at: 'asc' }, { id: 'asc' }],
  '-total_duration_ms': [{ total_duration_ms: 'desc_nulls_last' }, { id: 'asc' }],
  total_duration_ms: [{ total_duration_ms: 'asc_nulls_last' }, { id: 'asc' }],
};

const ROW_FIELDS = `id created_at status source_function source_table source_operation correlation_id
  source_user_email source_user_role source_job_id total_duration_ms events_detected_count
  total_jobs_run total_jobs_succeeded total_jobs_failed error_message delivery_attempt`;

async function fetchPage({ where, orderBy, limit, offset }, signal) {
  const batch = new Batch('InvocationsList');
  const w = batch.variable('invocations_bool_exp!', where);
  const o = batch.variable('[invocations_order_by!]!', orderBy);
  const record = can('invocations', 'source_event_payload')
    ? 'new_id: source_event_payload(path: "event.data.new.id") old_id: source_event_payload(path: "event.data.old.id")'
    : '';
  const rerunOf = can('invocations', 'context_data') ? 'rerun_of: context_data(path: "rerun_of")' : '';
  batch.add(`rows: invocations(where: ${w}, order_by: ${o}, limit: ${limit}, offset: ${offset}) {
    ${ROW_FIELDS} ${record} ${rerunOf}
    checked: event_executions_aggregate { aggregate { count } }
    detected: event_executions(where: {detected: {_eq: true}}, order_by: [{event_name: asc}], limit: 6) { event_name status jobs_failed }
  }`);
  batch.add(`total: invocations_aggregate(where: ${w}) { aggregate { count } }`);
  return batch.run(signal);
}

async function fetchOptions(signal) {
  const batch = new Batch('InvocationFilterOptions');
  batch.add('functions: invocations(distinct_on: [source_function], order_by: [{source_function: asc}]) { source_function }');
  batch.add('tables: invocations(distinct_on: [source_table], order_by: [{source_table: asc}], where: {source_table: {_is_null: false}}) { source_table }');
  batch.add('jobs: job_executions(distinct_on: [job_name], order_by: [{job_name: asc}]) { job_name }');
  batch.add('error_types: job_executions(distinct_on: [error_type], order_by: [{error_type: asc}], where: {error_type: {_is_null: false}}) { error_type }');
  return batch.run(signal);
}

/**
 * One page of the log lines containing `text` within the time range, newest first, of
 * invocations that pass the other filters (`scope`, an invocations `where`).
 */
async function fetchLogMatches(text, within, scope, offset, signal) {
  const batch = new Batch('LogSearch');
  const filtered = Object.keys(scope).length ? { invocation: scope } : null;
  const where = batch.variable('job_logs_bool_exp!', and(within, { message: { _ilike: containing(text) } }, filtered));
  batch.add(`lines: job_logs(where: ${where}, order_by: [{created_at: desc}, {id: asc}], limit: ${LOG_PAGE_SIZE}, offset: ${offset}) {
    id created_at level message invocation_id job_execution_id
    job_execution { job_name } invocation { source_function status }
  }`);
  batch.add(`total: job_logs_aggregate(where: ${where}) { aggregate { count } }`);
  return batch.run(signal);
}

function recordId(row) {
  const id = row.new_id ?? row.old_id;
  if (id === null || id === undefined || typeof id === 'object') return null;
  const table = (row.source_table || '').split('.').pop();
  return `${table}:${id}`;
}

/** A `<select>` of a filter: every option known, plus the current value if it is not. */
function FilterSelect({ name, label, all, value, options, onChange }) {
  return html`<label class="filter-field"><span class="filter-label">${label}</span>
    <select data-filter=${name} value=${value} onChange=${(e) => onChange(e.target.value)}>
      <option value="">${all}</option>
      ${[...new Set([...options, value].filter(Boolean))].map((o) => html`<option value=${o}>${o}</option>`)}
    </select></label>`;
}

function Filters({ filters, options, set, onClear }) {
  const [open, setOpen] = useState(false);
  const toggleStatus = (status) => {
    const next = filters.status.includes(status) ? filters.status.filter((s) => s !== status) : [...filters.status, status];
    set({ status: next.join(',') });
  };
  const count = [filters.status.length, filters.fn, filters.table, filters.op, filters.detected, filters.hideChildren, filters.errors, filters.minMs !== null, filters.job, filters.errorType].filter(Boolean).length;
  const values = (key, field) => options?.[key]?.map((row) => row[field]) || [];
  return html`<div class=${`filters ${open ? 'open' : ''}`} data-filters>
    <div class="filter-group" role="group" aria-label="Status">
      ${STATUSES.map(
        (status) => html`<button type="button" class=${`chip-toggle status-${status} ${filters.status.includes(status) ? 'on' : ''}`} data-filter-status=${status} aria-pressed=${filters.status.includes(status)} onClick=${() => toggleStatus(status)}><${StatusIcon} status=${status} />${status}</button>`,
      )}
    </div>
    <button type="button" class="btn filters-toggle" aria-expanded=${open} onClick=${() => setOpen(!open)} data-filters-toggle>
      ${open ? 'Fewer filters' : 'More filters'}${count ? html` <span class="tab-count">${count}</span>` : null}</button>
    <div class="filter-more">
      <${FilterSelect} name="fn" label="Function" all="All functions" value=${filters.fn} options=${values('functions', 'source_function')} onChange=${(fn) => set({ fn })} />
      <${FilterSelect} name="table" label="Table" all="All tables" value=${filters.table} options=${values('tables', 'source_table')} onChange=${(table) => set({ table })} />
      <${FilterSelect} name="op" label="Operation" all="All operations" value=${filters.op} options=${OPERATIONS} onChange=${(op) => set({ op })} />
      <${FilterSelect} name="job" label="Job" all="Any job" value=${filters.job} options=${values('jobs', 'job_name')} onChange=${(job) => set({ job })} />
      <${FilterSelect} name="error" label="Error type" all="Any error type" value=${filters.errorType} options=${values('error_types', 'error_type')} onChange=${(error) => set({ error })} />
      <label class="filter-field"><span class="filter-label">Min. duration</span>
        <span class="input-unit"><input type="number" class="input" min="0" step="1" inputmode="numeric" data-filter="min_ms" placeholder="0" value=${filters.minMs ?? ''}
          onChange=${(e) => set({ min_ms: /^\d+$/.test(e.target.value) && Number(e.target.value) > 0 ? e.target.value : '' })} aria-label="Minimum duration in milliseconds" /><span class="muted">ms</span></span></label>
      <div class="filter-checks">
        <label class="check"><input type="checkbox" data-filter="detected" checked=${filters.detected} onChange=${(e) => set({ detected: e.target.checked ? '1' : '' })} /> Detected only</label>
        <label class="check"><input type="checkbox" data-filter="children" checked=${filters.hideChildren} onChange=${(e) => set({ children: e.target.checked ? 'hide' : '' })} /> Hide child invocations</label>
        <label class="check"><input type="checkbox" data-filter="errors" checked=${filters.errors} onChange=${(e) => set({ errors: e.target.checked ? '1' : '' })} /> Errors only</label>
      </div>
    </div>
    ${anyFilter(filters) ? html`<button type="button" class="btn link" data-clear-filters onClick=${onClear}>Clear filters</button>` : null}
  </div>`;
}

/** The log lines holding the searched text, a page at a time, each linked to its job. */
function LogMatches({ text, scope, range, params, version, now }) {
  const page = Math.max(1, Number.parseInt(params.lpage || '1', 10) || 1);
  const within = createdWithin(range);
  const result = useQuery((signal) => fetchLogMatches(text, within, scope, (page - 1) * LOG_PAGE_SIZE, signal), ['logs', text, within, scope, page], { version, throttleMs: 3000 });
  const lines = result.data?.lines || [];
  const total = result.data?.total.aggregate.count ?? 0;
  const pages = Math.max(1, Math.ceil(total / LOG_PAGE_SIZE));
  if (!result.data) return result.error ? html`<${ErrorBox} error=${result.error} />` : null;
  if (!total) return html`<div class="muted small log-matches-none" data-log-matches="0">No log line in this time range contains “${text}”.</div>`;
  return html`<section class="card log-matches" data-log-matches=${total}>
    <header class="card-head"><h2>${fmtNumber(total)} log line${total === 1 ? '' : 's'} containing “${text}”</h2>
      <div class="card-actions pager">
        <button type="button" class="btn small" disabled=${page <= 1} onClick=${() => updateParams({ lpage: page - 1 }, { replace: true })} aria-label="Previous log lines">‹</button>
        <span class="muted small" data-log-page>${page} / ${pages}</span>
        <button type="button" class="btn small" disabled=${page >= pages} onClick=${() => updateParams({ lpage: page + 1 }, { replace: true })} aria-label="Next log lines">›</button>
      </div></header>
    <ul class="log-match-list">${lines.map((line) => {
      const href = hrefWith(`/invocations/${line.invocation_id}`, { ...keptParams(), tab: 'logs', job: line.job_execution_id || '', line: line.id });
      return html`<li data-log-match=${line.id}>
        <div class="log-match-head">
          <span class=${`log-level level-${line.level}`}>${line.level}</span>
          <${Link} href=${href} class="strong" data-log-match-link>${line.invocation?.source_function || 'invocation'}${line.job_execution ? html` <span class="muted">›</span> <span class="mono">${line.job_execution.job_name}</span>` : null}</${Link}>
          <span class="muted small nowrap"><${Time} value=${line.created_at} now=${now} /></span>
        </div>
        <div class="log-message mono">${line.message}</div>
      </li>`;
    })}</ul>
  </section>`;
}

export function InvocationsPage({ params }) {
  useTitle('Invocations');
  const range = useTimeRange(params);
  const filters = readFilters(params);
  const size = PAGE_SIZES.includes(Number(params.size)) ? Number(params.size) : 50;
  const page = Math.max(1, Number.parseInt(params.page || '1', 10) || 1);
  const sort = SORTS[params.sort] ? params.sort : '-created_at';
  const within = createdWithin(range);
  const where = invocationWhere(filters, within);
  const search = parseSearch(filters.q);
  const logText = logSearchText(filters.q);
  const changes = useLive(CHANGES, { where: within });
  const result = useQuery((signal) => fetchPage({ where, orderBy: SORTS[sort], limit: size, offset: (page - 1) * size }, signal), ['page', where, sort, size, page], { version: changes.version });
  const options = useQuery((signal) => fetchOptions(signal), ['options'], { version: changes.version, throttleMs: 30_000 });
  const now = useNow(15_000);
  const [selected, setSelected] = useState(0);
  const rerun = useRerunAvailable();
  // Rows ticked for a bulk re-run (admins only); cleared when the rows shown change.
  const [picked, setPicked] = useState(() => new Set());
  const [rerunIds, setRerunIds] = useState(null);

  const rows = result.data?.rows || [];
  const total = result.data?.total.aggregate.count ?? 0;
  const pages = Math.max(1, Math.ceil(total / size));

  // A filter change always goes back to the first page.
  const set = (patch) => updateParams({ ...patch, page: '', lpage: '' });
  const clear = () => navigate(hrefWith('/invocations', keptParams()));

  useEffect(() => {
    setSelected(0);
    setPicked(new Set());
  }, [JSON.stringify(where), page, size, sort]);
  const pickedShown = rows.filter((row) => picked.has(row.id));
  const chosen = (pickedShown.length ? pickedShown : rows).map((row) => row.id);
  const capped = rerun.max ? chosen.slice(0, rerun.max) : chosen;
  const togglePick = (id) =>
    setPicked((previous) => {
      const next = new Set(previous);
      if (next.has(id)) next.delete(id);
      else next.add(id);
      return next;
    });
  const allPicked = rows.length > 0 && pickedShown.length === rows.length;
  const pickAll = () => setPicked(allPicked ? new Set() : new Set(rows.map((row) => row.id)));
  // One listener reading the latest rows and selection (no stale closure between renders).
  const keys = useRef({});
  keys.current = { rows, selected, page, pages };
  useEffect(() => {
    const onKey = (event) => {
      const target = event.target;
      if (event.metaKey || event.ctrlKey || event.altKey || (target && ['INPUT', 'TEXTAREA', 'SELECT'].includes(target.tagName))) return;
      const { rows: list, selected: index, page: current, pages: count } = keys.current;
      if (event.key === 'j') setSelected(Math.max(0, Math.min(list.length - 1, index + 1)));
      else if (event.key === 'k') setSelected(Math.max(0, index - 1));
      else if (event.key === 'Enter' && list[index] && !(target && target.closest('a, button'))) navigate(`/invocations/${list[index].id}${location.search}`);
      else if (event.key === ']' && current < count) updateParams({ page: current + 1 });
      else if (event.key === '[' && current > 1) updateParams({ page: current - 1 });
      else return;
      event.preventDefault();
    };
    addEventListener('keydown', onKey);
    return () => removeEventListener('keydown', onKey);
  }, []);

  const active = anyFilter(filters);
  return html`<div class="page invocations">
    <${Filters} filters=${filters} options=${options.data} set=${set} onClear=${clear} />
    ${filters.q
      ? html`<div class="search-note" data-search-note>Searching ${search.description}. ${search.warning ? html`<span class="warn-text">${search.warning}</span>` : null}
          <button type="button" class="btn link" onClick=${() => set({ q: '' })}>Clear search</button></div>`
      : null}
    ${logText ? html`<${LogMatches} text=${logText} scope=${invocationWhere({ ...filters, q: '' }, null)} range=${range} params=${params} version=${changes.version} now=${now} />` : null}
    <${ErrorBox} error=${result.error} />
    <div class="card table-card">
      <div class="table-head">
        <div data-total=${result.current ? total : ''}>${result.data ? html`<strong>${fmtNumber(total)}</strong> invocation${total === 1 ? '' : 's'}${total ? html`<span class="muted"> · showing ${fmtNumber((page - 1) * size + Math.min(1, rows.length))}–${fmtNumber((page - 1) * size + rows.length)}</span>` : null}` : 'Loading…'}
          ${result.loading && result.data ? html`<span class="spinner small"></span>` : null}</div>
        ${rerun.available && rows.length
          ? html`<button type="button" class="btn" data-bulk-rerun=${capped.length} onClick=${() => setRerunIds(capped)}
              title=${chosen.length > capped.length ? `At most ${rerun.max} per re-run: the first ${rerun.max} are sent` : 'Run their stored payloads again with the current event modules'}>
              Re-run ${chosen.length > capped.length ? `first ${capped.length}` : capped.length} ${pickedShown.length ? 'selected' : 'shown'}</button>`
          : null}
        <div class="pager">
          <label class="muted small">Rows <select value=${size} data-page-size onChange=${(e) => updateParams({ size: e.target.value, page: '' })}>${PAGE_SIZES.map((n) => html`<option value=${n}>${n}</option>`)}</select></label>
          <button type="button" class="btn" data-page-prev disabled=${page <= 1} onClick=${() => updateParams({ page: page - 1 })} title="Previous page ([)">‹ Prev</button>
          <span class="muted small nowrap" data-page>Page ${page} of ${pages}</span>
          <button type="button" class="btn" data-page-next disabled=${page >= pages} onClick=${() => updateParams({ page: page + 1 })} title="Next page (])">Next ›</button>
        </div>
      </div>
      ${!result.data
        ? html`<${Loading} />`
        : rows.length === 0
          ? html`<${Empty} title="No invocations match">${active ? 'Loosen a filter or widen the time range.' : 'Nothing arrived in this time range.'}</${Empty}>`
          : html`<div class="table-scroll"><table class="table cards invocations-table" data-table="invocations">
              <thead><tr>
                ${rerun.available ? html`<th class="check-col"><input type="checkbox" aria-label="Select every row shown" data-select-all checked=${allPicked} onChange=${pickAll} /></th>` : null}
                <th><button type="button" class="sort" onClick=${() => updateParams({ sort: sort === '-created_at' ? 'created_at' : '-created_at' })}>When ${sort === '-created_at' ? '↓' : sort === 'created_at' ? '↑' : ''}</button></th>
                <th>Function</th><th>Record</th><th>Status</th>
                <th class="num"><button type="button" class="sort" onClick=${() => updateParams({ sort: sort === '-total_duration_ms' ? 'total_duration_ms' : '-total_duration_ms' })}>Duration ${sort === '-total_duration_ms' ? '↓' : sort === 'total_duration_ms' ? '↑' : ''}</button></th>
                <th class="num">Events</th><th class="num">Jobs</th><th>Detected</th><th class="wide-only">Correlation</th><th>User</th><th><span class="sr-only">Flow</span></th>
              </tr></thead>
              <tbody>${rows.map(
                (row, i) => html`<${Row} row=${row} now=${now} selected=${i === selected} onSelect=${() => setSelected(i)}
                  pickable=${rerun.available} picked=${picked.has(row.id)} onPick=${() => togglePick(row.id)} />`,
              )}</tbody>
            </table></div>`}
    </div>
    ${rerunIds
      ? html`<${RerunDialog} ids=${rerunIds} leftOut=${chosen.length - rerunIds.length} max=${rerun.max}
          onClose=${() => setRerunIds(null)} onDone=${() => setPicked(new Set())} />`
      : null}
  </div>`;
}

function Row({ row, now, selected, onSelect, pickable, picked, onPick }) {
  const record = recordId(row);
  const checked = row.checked?.aggregate.count ?? 0;
  const open = (event) => {
    if (event.target.closest('a, button, input, .check-col')) return;
    navigate(`/invocations/${row.id}${location.search}`);
  };
  return html`<tr class=${`clickable ${selected ? 'selected' : ''}`} data-invocation=${row.id} data-status=${row.status} onClick=${open} onMouseEnter=${onSelect}>
    ${pickable ? html`<td class="check-col"><input type="checkbox" aria-label="Select for re-run" data-select=${row.id} checked=${picked} onChange=${onPick} /></td>` : null}
    <td class="nowrap c-when"><${Time} value=${row.created_at} now=${now} /></td>
    <td class="c-main"><span class="nowrap"><${Link} href=${`/invocations/${row.id}`} class="strong">${row.source_function}</${Link}> <${OpBadge} op=${row.source_operation} /></span>
      ${row.source_job_id ? html` <span class="chip small" title="Triggered by a job of another invocation">child</span>` : null}
      ${row.delivery_attempt > 1 ? html` <span class="chip small warn" title="Hasura redelivered this event">retry ${row.delivery_attempt - 1}</span>` : null}
      ${typeof row.rerun_of === 'string' ? html` <span class="chip small info" data-rerun-chip title=${`Re-run of ${row.rerun_of}`}>re-run</span>` : null}</td>
    <td class="mono truncate c-record" data-record=${record || ''}>${record || html`<span class="muted">${row.source_table || '—'}</span>`}</td>
    <td class="c-status"><${StatusBadge} status=${row.status} title=${row.error_message || ''} /></td>
    <td class="num c-duration">${fmtDuration(row.total_duration_ms)}</td>
    <td class="num c-events" data-label="events" title=${`${row.events_detected_count} detected of ${checked} checked`}><span class="strong">${row.events_detected_count}</span><span class="muted"> of ${checked}</span></td>
    <td class="num c-jobs" data-prefix="jobs"><${JobCounts} run=${row.total_jobs_run} failed=${row.total_jobs_failed} /></td>
    <td class="events-cell c-detected">${(row.detected || []).map((e) => {
      const bad = e.status !== 'completed' || e.jobs_failed > 0;
      return html`<span class=${`event-chip ${bad ? 'bad' : ''}`} title=${bad ? `${e.event_name}: ${e.status !== 'completed' ? e.status.replace('_', ' ') : `${e.jobs_failed} job${e.jobs_failed === 1 ? '' : 's'} failed`}` : e.event_name}>${bad ? '✕ ' : ''}${e.event_name}</span>`;
    })}</td>
    <td class="wide-only c-correlation"><${Id} value=${row.correlation_id} label="Copy correlation id" /></td>
    <td class="truncate user-cell c-user">${row.source_user_email || html`<span class="muted">${row.source_user_role || 'system'}</span>`}</td>
    <td class="nowrap c-flow"><${Link} href=${`/flow/${row.id}`} class="icon-btn" title="Open the flow of this invocation" aria-label="Flow"><svg viewBox="0 0 16 16" aria-hidden="true"><rect x="1.5" y="6" width="4" height="4" rx="1" /><rect x="10.5" y="2" width="4" height="4" rx="1" /><rect x="10.5" y="10" width="4" height="4" rx="1" /><path d="M5.5 8h2.5M8 4v8M8 4h2.5M8 12h2.5" /></svg></${Link}></td>
  </tr>`;
}
