// Overview: KPIs against the previous period, invocations per bucket, recent invocations
// and recent failures. Everything reloads when the live query of the range changes.
import { html } from 'htm/preact';
import { Batch, BAD_STATUSES, CHANGES, addPercentiles, and } from '../lib/api.js';
import { useLive, useNow, useQuery, useTitle } from '../lib/hooks.js';
import { bucketsFor, createdWithin, previousPeriod, useTimeRange } from '../lib/timerange.js';
import { fmtDuration, fmtNumber, fmtPercent } from '../lib/format.js';
import { Link } from '../lib/router.js';
import { Card, Empty, ErrorBox, JobCounts, Kpi, Loading, OpBadge, StatusBadge, Time } from '../components/ui.js';
import { TimeChart } from '../components/chart.js';

const RECENT_FIELDS = `id created_at status source_function source_operation source_table correlation_id
  source_user_email source_user_role total_duration_ms events_detected_count total_jobs_run total_jobs_failed source_job_id`;

function periodFields(batch, alias, where) {
  const ref = batch.variable('invocations_bool_exp!', where);
  const finished = batch.variable('invocations_bool_exp!', and(where, { status: { _neq: 'running' } }));
  const completed = batch.variable('invocations_bool_exp!', and(where, { status: { _eq: 'completed' } }));
  batch.add(`${alias}: invocations_aggregate(where: ${ref}) { aggregate { count timed: count(columns: [total_duration_ms]) sum { total_jobs_run total_jobs_failed } } }`);
  batch.add(`${alias}_finished: invocations_aggregate(where: ${finished}) { aggregate { count } }`);
  batch.add(`${alias}_completed: invocations_aggregate(where: ${completed}) { aggregate { count } }`);
}

function readPeriod(data, alias) {
  const aggregate = data[alias].aggregate;
  const finished = data[`${alias}_finished`].aggregate.count;
  const completed = data[`${alias}_completed`].aggregate.count;
  return {
    count: aggregate.count,
    timed: aggregate.timed,
    jobsRun: Number(aggregate.sum.total_jobs_run || 0),
    jobsFailed: Number(aggregate.sum.total_jobs_failed || 0),
    finished,
    successRate: finished ? completed / finished : null,
  };
}

/** KPIs of the range and of the period before it (two requests: counts, then percentiles). */
export async function fetchKpis(range, signal) {
  const current = createdWithin(range);
  const previous = createdWithin(previousPeriod(range));
  const first = new Batch('OverviewKpis');
  periodFields(first, 'cur', current);
  periodFields(first, 'prev', previous);
  const data = await first.run(signal);
  const cur = readPeriod(data, 'cur');
  const prev = readPeriod(data, 'prev');
  const second = new Batch('OverviewPercentiles');
  const curP = addPercentiles(second, 'cur', 'invocations', current, 'total_duration_ms', cur.timed);
  const prevP = addPercentiles(second, 'prev', 'invocations', previous, 'total_duration_ms', prev.timed);
  const percentiles = await second.run(signal);
  return { cur: { ...cur, ...pct(curP(percentiles)) }, prev: { ...prev, ...pct(prevP(percentiles)) } };
}

function pct(values) {
  return { p50: values[0.5], p95: values[0.95] };
}

async function fetchLists(range, signal) {
  const batch = new Batch('OverviewLists');
  const where = batch.variable('invocations_bool_exp!', createdWithin(range));
  const bad = batch.variable('invocations_bool_exp!', and(createdWithin(range), { status: { _in: BAD_STATUSES } }));
  batch.add(`recent: invocations(where: ${where}, order_by: [{created_at: desc}], limit: 12) { ${RECENT_FIELDS} }`);
  batch.add(`failures: invocations(where: ${bad}, order_by: [{created_at: desc}], limit: 8) { id created_at status source_function error_message total_jobs_failed }`);
  return batch.run(signal);
}

const HOUR = 3_600_000;
// Hours younger than this are always counted live: the rollup refreshes dashboard_stats
// about once a minute, so the latest hours may not be in it yet.
const LIVE_HOURS = 2;
const VIEW_DAYS = 29; // dashboard_stats keeps the last 30 days

function boundsOf(bucket) {
  return { created_at: { _gte: new Date(bucket.start).toISOString(), ...(bucket.end ? { _lt: new Date(bucket.end).toISOString() } : {}) } };
}

/**
 * Invocations per bucket: total and failed (failed, timeout, rejected).
 *
 * Whole-hour buckets older than two hours come from the hourly `dashboard_stats` rollup
 * (one query, a row per hour and function), checked against one live count of the same
 * span; the others (and all of them when the rollup is behind) are live aggregates, two
 * per bucket.
 */
export async function fetchSeries(range, signal, now = Date.now()) {
  const { size, buckets } = bucketsFor(range, now);
  const newest = Math.floor(now / HOUR) * HOUR - (LIVE_HOURS - 1) * HOUR;
  const oldest = now - VIEW_DAYS * 24 * HOUR;
  const fromView = (b) => size % HOUR === 0 && b.start % size === 0 && b.end !== null && b.end - b.start === size && b.end <= newest && b.start >= oldest;
  const viewed = buckets.filter(fromView);
  const total = new Array(buckets.length).fill(0);
  const failed = new Array(buckets.length).fill(0);

  const liveBuckets = (batch, list) =>
    list.forEach((bucket) => {
      const i = buckets.indexOf(bucket);
      const all = batch.variable('invocations_bool_exp!', boundsOf(bucket));
      const bad = batch.variable('invocations_bool_exp!', and(boundsOf(bucket), { status: { _in: BAD_STATUSES } }));
      batch.add(`b${i}: invocations_aggregate(where: ${all}) { aggregate { count } }`);
      batch.add(`b${i}_bad: invocations_aggregate(where: ${bad}) { aggregate { count } }`);
    });
  const live = new Batch('OverviewSeries');
  liveBuckets(live, buckets.filter((b) => !fromView(b)));
  if (viewed.length) {
    const span = { start: viewed[0].start, end: viewed[viewed.length - 1].end };
    const hours = live.variable('dashboard_stats_bool_exp!', { hour_bucket: { _gte: new Date(span.start).toISOString(), _lt: new Date(span.end).toISOString() } });
    const covered = live.variable('invocations_bool_exp!', boundsOf(span));
    live.add(`hours: dashboard_stats(where: ${hours}) { hour_bucket total_invocations successful_invocations }`);
    live.add(`covered: invocations_aggregate(where: ${covered}) { aggregate { count } }`);
  }
  let data = await live.run(signal);
  if (viewed.length) {
    let sum = 0;
    for (const row of data.hours) {
      const i = buckets.findIndex((b) => b.start === Math.floor(new Date(row.hour_bucket).getTime() / size) * size);
      if (i < 0 || !fromView(buckets[i])) continue;
      total[i] += Number(row.total_invocations);
      failed[i] += Number(row.total_invocations) - Number(row.successful_invocations);
      sum += Number(row.total_invocations);
    }
    if (sum !== data.covered.aggregate.count) {
      // The rollup is behind (or off): count those hours live too.
      viewed.forEach((b) => {
        total[buckets.indexOf(b)] = 0;
        failed[buckets.indexOf(b)] = 0;
      });
      const again = new Batch('OverviewSeriesLive');
      liveBuckets(again, viewed);
      data = { ...data, ...(await again.run(signal)) };
    }
  }
  buckets.forEach((bucket, i) => {
    if (data[`b${i}`]) {
      total[i] = data[`b${i}`].aggregate.count;
      failed[i] = data[`b${i}_bad`].aggregate.count;
    }
  });
  return { size, x: buckets.map((b) => b.label), total, failed };
}

const relative = (value, previous) => {
  if (!previous) return value ? 'new' : '0%';
  const change = (value - previous) / previous;
  return `${change > 0 ? '+' : ''}${(change * 100).toFixed(1)}%`;
};
const points = (value, previous) => `${value - previous > 0 ? '+' : ''}${((value - previous) * 100).toFixed(1)} pp`;

const ATTEMPTS = 3;

/**
 * Everything the overview shows, loaded as one version: the KPI cards, the chart and the
 * lists change together after a live update, never one before the other. Separate
 * requests can still see different commits (a row written between two of them), so the
 * chart must add up to the invocations card; when it does not, all is loaded again.
 */
export async function fetchOverview(range, signal) {
  let last;
  for (let attempt = 1; attempt <= ATTEMPTS; attempt += 1) {
    const [kpis, lists, series] = await Promise.all([fetchKpis(range, signal), fetchLists(range, signal), fetchSeries(range, signal)]);
    last = { kpis, lists, series };
    if (series.total.reduce((sum, n) => sum + n, 0) === kpis.cur.count) return last;
  }
  return last; // still moving after three tries: show the last, the next update follows
}

export function OverviewPage({ params }) {
  useTitle('Overview');
  const range = useTimeRange(params);
  const rangeKey = [range.from.toISOString(), range.to?.toISOString()];
  const changes = useLive(CHANGES, { where: createdWithin(range) });
  const overview = useQuery((signal) => fetchOverview(range, signal), ['overview', ...rangeKey], { version: changes.version, throttleMs: 2000 });
  const now = useNow(15_000);

  const k = overview.data?.kpis;
  const lists = overview.data?.lists;
  const series = overview.data?.series;
  return html`<div class="page overview">
    <${ErrorBox} error=${overview.error} />
    <div class="kpis">
      ${k
        ? html`
          <${Kpi} name="invocations" label="Invocations" value=${k.cur.count} display=${fmtNumber(k.cur.count)} previous=${k.prev.count} previousDisplay=${fmtNumber}
            deltaDisplay=${relative} better="none" samples=${[k.cur.count, k.prev.count]} hint="Invocations received in the range" />
          <${Kpi} name="success_rate" label="Success rate" value=${k.cur.successRate} display=${fmtPercent(k.cur.successRate)} previous=${k.prev.successRate} previousDisplay=${fmtPercent}
            deltaDisplay=${points} better="up" samples=${[k.cur.finished, k.prev.finished]} noun="finished invocations" hint="Completed invocations among those that finished (running ones left out)" />
          <${Kpi} name="p50" label="p50 duration" value=${k.cur.p50} display=${fmtDuration(k.cur.p50)} previous=${k.prev.p50} previousDisplay=${fmtDuration}
            deltaDisplay=${relative} better="down" samples=${[k.cur.timed, k.prev.timed]} noun="timed invocations" hint="Median invocation duration (continuous percentile)" />
          <${Kpi} name="p95" label="p95 duration" value=${k.cur.p95} display=${fmtDuration(k.cur.p95)} previous=${k.prev.p95} previousDisplay=${fmtDuration}
            deltaDisplay=${relative} better="down" samples=${[k.cur.timed, k.prev.timed]} noun="timed invocations" hint="95th percentile of invocation durations (continuous)" />
          <${Kpi} name="failed_jobs" label="Failed jobs" value=${k.cur.jobsFailed} display=${fmtNumber(k.cur.jobsFailed)} previous=${k.prev.jobsFailed} previousDisplay=${fmtNumber}
            deltaDisplay=${relative} better="down" samples=${[k.cur.jobsRun, k.prev.jobsRun]} noun="jobs run" hint=${`Jobs that did not complete, of ${fmtNumber(k.cur.jobsRun)} run`} />`
        : html`<${Loading} />`}
    </div>
    <${Card} title="Invocations over time" actions=${html`<span class="legend"><i class="sw ok"></i>total <i class="sw bad"></i>failed, timed out or rejected</span>`}>
      ${series
        ? series.total.some((v) => v > 0)
          ? html`<${TimeChart} name="invocations" x=${series.x} bucketMs=${series.size} series=${[
              { label: 'Total', values: series.total, color: '#86c79b' },
              { label: 'Failed', values: series.failed, color: '#e5484d' },
            ]} format=${(v) => fmtNumber(Math.round(v))} />`
          : html`<${Empty} title="No invocations in this range">Pick a longer range, or send Hasura events to the webhook.</${Empty}>`
        : html`<${Loading} />`}
    </${Card}>
    <div class="grid-2-1">
      <${Card} title="Recent invocations" actions=${html`<${Link} href="/invocations">All invocations →</${Link}>`}>
        ${lists ? html`<${RecentTable} rows=${lists.recent} now=${now} />` : html`<${Loading} />`}
      </${Card}>
      <${Card} title="Recent failures" actions=${html`<${Link} href="/invocations?errors=1">All failures →</${Link}>`}>
        ${lists
          ? lists.failures.length
            ? html`<ul class="failure-list">${lists.failures.map(
                (f) => html`<li data-invocation=${f.id}>
                  <div class="failure-head"><${StatusBadge} status=${f.status} /> <${Link} href=${`/invocations/${f.id}`} class="strong truncate">${f.source_function}</${Link}> <span class="muted nowrap"><${Time} value=${f.created_at} now=${now} /></span></div>
                  <div class="failure-msg">${f.error_message || (f.total_jobs_failed ? `${f.total_jobs_failed} job${f.total_jobs_failed === 1 ? '' : 's'} did not complete` : 'no error message')}</div>
                </li>`,
              )}</ul>`
            : html`<${Empty} title="No failures in this range" />`
          : html`<${Loading} />`}
      </${Card}>
    </div>
  </div>`;
}

function RecentTable({ rows, now }) {
  if (!rows.length) return html`<${Empty} title="No invocations in this range" />`;
  return html`<div class="table-scroll"><table class="table cards" data-table="recent">
    <thead><tr><th>When</th><th>Function</th><th>Status</th><th class="num">Duration</th><th class="num">Events</th><th class="num">Jobs</th><th>User</th></tr></thead>
    <tbody>${rows.map(
      (row) => html`<tr data-invocation=${row.id}>
        <td class="nowrap c-when"><${Time} value=${row.created_at} now=${now} /></td>
        <td class="nowrap c-main"><${Link} href=${`/invocations/${row.id}`} class="strong">${row.source_function}</${Link}> <${OpBadge} op=${row.source_operation} />${row.source_job_id ? html` <span class="chip small" title="Triggered by a job of another invocation">child</span>` : null}</td>
        <td class="c-status"><${StatusBadge} status=${row.status} /></td>
        <td class="num c-duration">${fmtDuration(row.total_duration_ms)}</td>
        <td class="num c-events" data-label="events">${row.events_detected_count}</td>
        <td class="num c-jobs" data-prefix="jobs"><${JobCounts} run=${row.total_jobs_run} failed=${row.total_jobs_failed} /></td>
        <td class="truncate c-user">${row.source_user_email || html`<span class="muted">${row.source_user_role || 'system'}</span>`}</td>
      </tr>`,
    )}</tbody>
  </table></div>`;
}
