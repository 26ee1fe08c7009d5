// Analytics over the time range: per job and per event counts and failure rates, duration
// percentiles over time, slowest jobs, failures grouped by error type. Every number is a
// GraphQL aggregate or a bounded ordered query (percentiles): no row set is downloaded.
import { html } from 'htm/preact';
import { useState } from 'preact/hooks';
import { Batch, CHANGES, JOB_BAD_STATUSES, addPercentiles, and } from '../lib/api.js';
import { useLive, useNow, useQuery, useTitle } from '../lib/hooks.js';
import { bucketsFor, createdWithin, useTimeRange } from '../lib/timerange.js';
import { fmtDuration, fmtNumber, fmtPercent } from '../lib/format.js';
import { Link, updateParams, hrefWith, keptParams } from '../lib/router.js';
import { Card, Empty, ErrorBox, Loading, RatioBar, StatusBadge, Time } from '../components/ui.js';
import { TimeChart } from '../components/chart.js';

export const MAX_NAMES = 40;

async function fetchNames(range, signal) {
  const batch = new Batch('AnalyticsNames');
  const within = createdWithin(range);
  const jobs = batch.variable('job_executions_bool_exp!', within);
  const events = batch.variable('event_executions_bool_exp!', within);
  const bad = batch.variable('job_executions_bool_exp!', and(within, { status: { _in: JOB_BAD_STATUSES } }));
  const slow = batch.variable('job_executions_bool_exp!', and(within, { duration_ms: { _is_null: false } }));
  batch.add(`jobs: job_executions(distinct_on: [job_name], where: ${jobs}, order_by: [{job_name: asc}]) { job_name }`);
  batch.add(`events: event_executions(distinct_on: [event_name], where: ${events}, order_by: [{event_name: asc}]) { event_name }`);
  batch.add(`error_types: job_executions(distinct_on: [error_type], where: ${bad}, order_by: [{error_type: asc}]) { error_type }`);
  batch.add(`slowest: job_executions(where: ${slow}, order_by: [{duration_ms: desc}, {id: asc}], limit: 10) { id job_name duration_ms status created_at attempts invocation_id invocation { source_function } }`);
  batch.add(`job_totals: job_executions_aggregate(where: ${jobs}) { aggregate { count avg { duration_ms } } }`);
  batch.add(`job_bad: job_executions_aggregate(where: ${bad}) { aggregate { count } }`);
  return batch.run(signal);
}

async function fetchJobStats(range, names, signal) {
  const within = createdWithin(range);
  const first = new Batch('AnalyticsJobs');
  names.forEach((name, i) => {
    const all = first.variable('job_executions_bool_exp!', and(within, { job_name: { _eq: name } }));
    const bad = first.variable('job_executions_bool_exp!', and(within, { job_name: { _eq: name } }, { status: { _in: JOB_BAD_STATUSES } }));
    first.add(`j${i}: job_executions_aggregate(where: ${all}) { aggregate { count timed: count(columns: [duration_ms]) avg { duration_ms } max { duration_ms } } }`);
    first.add(`j${i}_bad: job_executions_aggregate(where: ${bad}) { aggregate { count } }`);
  });
  const data = await first.run(signal);
  const second = new Batch('AnalyticsJobPercentiles');
  const readers = names.map((name, i) =>
    addPercentiles(second, `j${i}`, 'job_executions', and(within, { job_name: { _eq: name } }), 'duration_ms', data[`j${i}`].aggregate.timed),
  );
  const percentiles = await second.run(signal);
  return names.map((name, i) => {
    const a = data[`j${i}`].aggregate;
    const values = readers[i](percentiles);
    const failed = data[`j${i}_bad`].aggregate.count;
    return { name, runs: a.count, failed, rate: a.count ? failed / a.count : 0, avg: a.avg.duration_ms, max: a.max.duration_ms, p50: values[0.5], p95: values[0.95] };
  });
}

async function fetchEventStats(range, names, signal) {
  const within = createdWithin(range);
  const batch = new Batch('AnalyticsEvents');
  names.forEach((name, i) => {
    const all = batch.variable('event_executions_bool_exp!', and(within, { event_name: { _eq: name } }));
    const detected = batch.variable('event_executions_bool_exp!', and(within, { event_name: { _eq: name } }, { detected: { _eq: true } }));
    const failed = batch.variable('event_executions_bool_exp!', and(within, { event_name: { _eq: name } }, { status: { _in: ['detection_failed', 'handler_failed'] } }));
    batch.add(`e${i}: event_executions_aggregate(where: ${all}) { aggregate { count avg { detection_duration_ms handler_duration_ms } sum { jobs_count jobs_failed } } }`);
    batch.add(`e${i}_detected: event_executions_aggregate(where: ${detected}) { aggregate { count } }`);
    batch.add(`e${i}_failed: event_executions_aggregate(where: ${failed}) { aggregate { count } }`);
  });
  const data = await batch.run(signal);
  return names.map((name, i) => {
    const a = data[`e${i}`].aggregate;
    return {
      name,
      checked: a.count,
      detected: data[`e${i}_detected`].aggregate.count,
      failed: data[`e${i}_failed`].aggregate.count,
      detection: a.avg.detection_duration_ms,
      handler: a.avg.handler_duration_ms,
      jobs: Number(a.sum.jobs_count || 0),
      jobsFailed: Number(a.sum.jobs_failed || 0),
    };
  });
}

/** Failures grouped: job error types, detectors and handlers that raised, rejected payloads. */
async function fetchFailures(range, types, signal) {
  const within = createdWithin(range);
  const batch = new Batch('AnalyticsFailures');
  types.forEach((type, i) => {
    const where = batch.variable('job_executions_bool_exp!', and(within, { status: { _in: JOB_BAD_STATUSES } }, type === null ? { error_type: { _is_null: true } } : { error_type: { _eq: type } }));
    batch.add(`t${i}: job_executions_aggregate(where: ${where}) { aggregate { count } }`);
    batch.add(`t${i}_latest: job_executions(where: ${where}, order_by: [{created_at: desc}, {id: asc}], limit: 1) { id job_name error_message created_at invocation_id status }`);
    batch.add(`t${i}_jobs: job_executions(where: ${where}, distinct_on: [job_name], order_by: [{job_name: asc}], limit: 8) { job_name }`);
  });
  const groups = [
    ['detector', 'event_executions', { status: { _eq: 'detection_failed' } }, 'detection_error', 'event_name', 'Detector raised'],
    ['handler', 'event_executions', { status: { _eq: 'handler_failed' } }, 'handler_error', 'event_name', 'Handler raised'],
    ['rejected', 'invocations', { status: { _eq: 'rejected' } }, 'error_message', 'source_function', 'Rejected payload'],
    ['inv_timeout', 'invocations', { status: { _eq: 'timeout' } }, 'error_message', 'source_function', 'Invocation deadline'],
  ];
  for (const [key, table, filter, message, name] of groups) {
    const where = batch.variable(`${table}_bool_exp!`, and(within, filter));
    const idField = table === 'invocations' ? 'invocation_id: id' : 'invocation_id';
    batch.add(`${key}: ${table}_aggregate(where: ${where}) { aggregate { count } }`);
    batch.add(`${key}_latest: ${table}(where: ${where}, order_by: [{created_at: desc}, {id: asc}], limit: 1) { id ${idField} message: ${message} name: ${name} created_at }`);
  }
  const data = await batch.run(signal);
  const list = types.map((type, i) => ({
    key: `type:${type ?? ''}`,
    label: type || 'no error type',
    kind: 'job',
    count: data[`t${i}`].aggregate.count,
    latest: data[`t${i}_latest`][0],
    names: data[`t${i}_jobs`].map((j) => j.job_name),
  }));
  for (const [key, , , , , label] of groups) {
    const latest = data[`${key}_latest`][0];
    list.push({ key, label, kind: key, count: data[key].aggregate.count, latest: latest && { ...latest, error_message: latest.message, job_name: latest.name }, names: latest ? [latest.name] : [] });
  }
  return list.filter((g) => g.count > 0).sort((a, b) => b.count - a.count);
}

/** p50/p95 per bucket of invocation durations, or of one job's durations. */
async function fetchPercentileSeries(range, job, signal) {
  const { size, buckets } = bucketsFor(range);
  const table = job ? 'job_executions' : 'invocations';
  const column = job ? 'duration_ms' : 'total_duration_ms';
  const wheres = buckets.map((b) =>
    and({ created_at: { _gte: new Date(b.start).toISOString(), ...(b.end ? { _lt: new Date(b.end).toISOString() } : {}) } }, job ? { job_name: { _eq: job } } : null),
  );
  const first = new Batch('DurationCounts');
  wheres.forEach((where, i) => {
    const ref = first.variable(`${table}_bool_exp!`, where);
    first.add(`b${i}: ${table}_aggregate(where: ${ref}) { aggregate { timed: count(columns: [${column}]) } }`);
  });
  const counts = await first.run(signal);
  const second = new Batch('DurationPercentiles');
  const readers = wheres.map((where, i) => addPercentiles(second, `b${i}`, table, where, column, counts[`b${i}`].aggregate.timed));
  const data = await second.run(signal);
  const values = readers.map((read) => read(data));
  return {
    size,
    x: buckets.map((b) => b.label),
    p50: values.map((v) => v[0.5]),
    p95: values.map((v) => v[0.95]),
    counts: wheres.map((_, i) => counts[`b${i}`].aggregate.timed),
  };
}

/**
 * The counts the page shows, as one version (the names first, then each panel's figures),
 * so the cards and tables agree after a live update. The duration chart, which counts
 * nothing they show, loads on its own.
 */
async function fetchAnalytics(range, signal) {
  const names = await fetchNames(range, signal);
  const jobNames = names.jobs.map((j) => j.job_name).slice(0, MAX_NAMES);
  const eventNames = names.events.map((e) => e.event_name).slice(0, MAX_NAMES);
  const types = names.error_types.map((t) => t.error_type);
  const [jobs, events, failures] = await Promise.all([
    fetchJobStats(range, jobNames, signal),
    fetchEventStats(range, eventNames, signal),
    fetchFailures(range, types, signal),
  ]);
  return { names, jobs, events, failures };
}

function useSorted(rows, initial) {
  const [sort, setSort] = useState(initial);
  const [key, direction] = sort;
  const sorted = [...(rows || [])].sort((a, b) => {
    const x = a[key] ?? -Infinity;
    const y = b[key] ?? -Infinity;
    const order = typeof x === 'string' ? x.localeCompare(y) : x - y;
    return direction === 'desc' ? -order : order;
  });
  const header = (label, name, cls = 'num') => html`<th class=${cls}><button type="button" class="sort" onClick=${() => setSort([name, key === name && direction === 'desc' ? 'asc' : 'desc'])}>${label}${key === name ? (direction === 'desc' ? ' ↓' : ' ↑') : ''}</button></th>`;
  return { sorted, header };
}

export function AnalyticsPage({ params }) {
  useTitle('Analytics');
  const range = useTimeRange(params);
  const rangeKey = [range.from.toISOString(), range.to?.toISOString()];
  const changes = useLive(CHANGES, { where: createdWithin(range) });
  const opts = { version: changes.version, throttleMs: 10_000 };
  const job = params.job || '';
  const analytics = useQuery((signal) => fetchAnalytics(range, signal), ['analytics', ...rangeKey], opts);
  const series = useQuery((signal) => fetchPercentileSeries(range, job, signal), ['pseries', ...rangeKey, job], opts);
  const names = { data: analytics.data?.names };
  const jobs = { data: analytics.data?.jobs };
  const events = { data: analytics.data?.events };
  const failures = { data: analytics.data?.failures };
  const jobNames = (names.data?.jobs || []).map((j) => j.job_name);
  const eventNames = (names.data?.events || []).map((e) => e.event_name);
  const now = useNow(30_000);
  const jobTable = useSorted(jobs.data, ['runs', 'desc']);
  const eventTable = useSorted(events.data, ['checked', 'desc']);

  const totals = names.data;
  return html`<div class="page analytics">
    <${ErrorBox} error=${analytics.error || series.error} />
    <div class="kpis">
      ${totals
        ? html`<div class="kpi" data-kpi="jobs_run" data-value=${totals.job_totals.aggregate.count}><div class="kpi-label">Jobs run</div><div class="kpi-value">${fmtNumber(totals.job_totals.aggregate.count)}</div><div class="kpi-delta muted">${jobNames.length} distinct jobs</div></div>
          <div class="kpi" data-kpi="jobs_failed" data-value=${totals.job_bad.aggregate.count}><div class="kpi-label">Jobs not completed</div><div class="kpi-value">${fmtNumber(totals.job_bad.aggregate.count)}</div><div class="kpi-delta muted">${fmtPercent(totals.job_totals.aggregate.count ? totals.job_bad.aggregate.count / totals.job_totals.aggregate.count : null)} of runs</div></div>
          <div class="kpi" data-kpi="job_avg" data-value=${totals.job_totals.aggregate.avg.duration_ms ?? ''}><div class="kpi-label">Average job duration</div><div class="kpi-value">${fmtDuration(totals.job_totals.aggregate.avg.duration_ms)}</div><div class="kpi-delta muted">${eventNames.length} event modules</div></div>`
        : html`<${Loading} />`}
    </div>
    <${Card} title="Duration percentiles over time" actions=${html`<label class="muted small">Durations of <select value=${job} data-percentile-target onChange=${(e) => updateParams({ job: e.target.value }, { replace: true })}>
        <option value="">invocations</option>${jobNames.map((n) => html`<option value=${n}>job ${n}</option>`)}</select></label>`}>
      ${series.data
        ? series.data.counts.some((c) => c > 0)
          ? html`<${TimeChart} name="percentiles" x=${series.data.x} bucketMs=${series.data.size} series=${[
              { label: 'p50', values: series.data.p50, color: '#4f46e5', kind: 'line' },
              { label: 'p95', values: series.data.p95, color: '#e5484d', kind: 'line' },
            ]} format=${(v) => fmtDuration(v)} />`
          : html`<${Empty} title="No durations in this range" />`
        : html`<${Loading} />`}
    </${Card}>
    <div class="stack-2">
      <${Card} title="Jobs" actions=${jobNames.length > MAX_NAMES ? html`<span class="warn-text small">first ${MAX_NAMES} of ${jobNames.length} by name</span>` : null}>
        ${jobs.data
          ? jobs.data.length
            ? html`<div class="table-scroll"><table class="table sticky-first" data-table="jobs"><thead><tr>${jobTable.header('Job', 'name', '')}${jobTable.header('Runs', 'runs')}${jobTable.header('Failed', 'failed')}${jobTable.header('Failure rate', 'rate')}${jobTable.header('p50', 'p50')}${jobTable.header('p95', 'p95')}${jobTable.header('Max', 'max')}</tr></thead>
                <tbody>${jobTable.sorted.map((j) => html`<tr data-job-name=${j.name} data-runs=${j.runs} data-failed=${j.failed} data-p50=${j.p50 ?? ''} data-p95=${j.p95 ?? ''}>
                  <td class="mono"><a href="#" onClick=${(e) => { e.preventDefault(); updateParams({ job: j.name }, { replace: true }); }} title="Show this job's percentiles over time">${j.name}</a></td>
                  <td class="num">${fmtNumber(j.runs)}</td><td class=${`num ${j.failed ? 'bad-text' : ''}`}>${fmtNumber(j.failed)}</td>
                  <td class="num rate-cell"><${RatioBar} ratio=${j.rate} /> ${fmtPercent(j.rate)}</td>
                  <td class="num">${fmtDuration(j.p50)}</td><td class="num">${fmtDuration(j.p95)}</td><td class="num">${fmtDuration(j.max)}</td></tr>`)}</tbody></table></div>`
            : html`<${Empty} title="No job ran in this range" />`
          : html`<${Loading} />`}
      </${Card}>
      <${Card} title="Events" actions=${eventNames.length > MAX_NAMES ? html`<span class="warn-text small">first ${MAX_NAMES} of ${eventNames.length} by name</span>` : null}>
        ${events.data
          ? events.data.length
            ? html`<div class="table-scroll"><table class="table sticky-first" data-table="events"><thead><tr>${eventTable.header('Event', 'name', '')}${eventTable.header('Checked', 'checked')}${eventTable.header('Detected', 'detected')}${eventTable.header('Raised', 'failed')}${eventTable.header('Jobs failed', 'jobsFailed')}${eventTable.header('Avg detector', 'detection')}${eventTable.header('Avg handler', 'handler')}</tr></thead>
                <tbody>${eventTable.sorted.map((e) => html`<tr data-event-name=${e.name} data-checked=${e.checked} data-detected=${e.detected}>
                  <td class="mono"><${Link} href=${hrefWith('/invocations', { ...keptParams(), q: `event:${e.name}` })}>${e.name}</${Link}></td>
                  <td class="num">${fmtNumber(e.checked)}</td>
                  <td class="num">${fmtNumber(e.detected)} <span class="muted small">${fmtPercent(e.checked ? e.detected / e.checked : null, 0)}</span></td>
                  <td class=${`num ${e.failed ? 'bad-text' : ''}`}>${fmtNumber(e.failed)}</td>
                  <td class=${`num ${e.jobsFailed ? 'bad-text' : ''}`}>${fmtNumber(e.jobsFailed)}<span class="muted">/${fmtNumber(e.jobs)}</span></td>
                  <td class="num">${fmtDuration(e.detection)}</td><td class="num">${fmtDuration(e.handler)}</td></tr>`)}</tbody></table></div>`
            : html`<${Empty} title="No event module ran in this range" />`
          : html`<${Loading} />`}
      </${Card}>
    </div>
    <div class="grid-2">
      <${Card} title="Failures by error type">
        ${failures.data
          ? failures.data.length
            ? html`<ul class="failure-groups" data-failure-groups>${failures.data.map(
                (g) => html`<li data-failure-group=${g.key} data-count=${g.count}>
                  <div class="fg-head"><span class="fg-count">${fmtNumber(g.count)}</span>${g.kind === 'job' && g.key !== 'type:'
                    ? html`<${Link} href=${hrefWith('/invocations', { ...keptParams(), error: g.label })} class="mono strong" title="The invocations with a job that failed this way">${g.label}</${Link}>`
                    : html`<span class="mono strong">${g.label}</span>`}
                    <span class="fg-names">${g.names.map((n) => html`<span class="event-chip">${n}</span>`)}</span></div>
                  ${g.latest ? html`<div class="fg-latest"><span class="truncate">${g.latest.error_message || ''}</span> <${Link} href=${`/invocations/${g.latest.invocation_id}`} class="nowrap">latest, <${Time} value=${g.latest.created_at} now=${now} /></${Link}></div>` : null}
                </li>`,
              )}</ul>`
            : html`<${Empty} title="No failure in this range" />`
          : html`<${Loading} />`}
      </${Card}>
      <${Card} title="Slowest jobs">
        ${totals
          ? totals.slowest.length
            ? html`<div class="table-scroll"><table class="table sticky-first" data-table="slowest"><thead><tr><th>Job</th><th>Function</th><th>Status</th><th class="num">Duration</th><th>When</th></tr></thead>
                <tbody>${totals.slowest.map((j) => html`<tr data-job=${j.id}><td class="mono"><${Link} href=${`/invocations/${j.invocation_id}?job=${j.id}`}>${j.job_name}</${Link}>${j.attempts > 1 ? html` <span class="chip small warn">×${j.attempts}</span>` : null}</td>
                  <td>${j.invocation?.source_function || ''}</td><td><${StatusBadge} status=${j.status} /></td><td class="num strong">${fmtDuration(j.duration_ms)}</td><td class="nowrap"><${Time} value=${j.created_at} now=${now} /></td></tr>`)}</tbody></table></div>`
            : html`<${Empty} title="No job ran in this range" />`
          : html`<${Loading} />`}
      </${Card}>
    </div>
  </div>`;
}
