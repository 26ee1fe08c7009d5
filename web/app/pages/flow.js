// The flow of an invocation and every invocation sharing its correlation id: a graph
// that follows live changes, with the details of the selected node beside it.
import { html } from 'htm/preact';
import { useState } from 'preact/hooks';
import { Batch, can, readable } from '../lib/api.js';
import { useLive, useNow, useQuery, useTitle } from '../lib/hooks.js';
import { fmtDuration, fmtNumber, isUuid } from '../lib/format.js';
import { Link, updateParams } from '../lib/router.js';
import { AbsTime, ErrorBox, EventStatusBadge, Id, JsonBlock, Loading, OpBadge, StatusBadge } from '../components/ui.js';
import { FlowGraph } from '../components/graph.js';
import { BadIdPage, MissingInvocationPage } from './invocation.js';

export const FLOW_LIMIT = 60;

const INVOCATION = `id created_at updated_at status source_function source_operation source_table correlation_id
  source_job_id total_duration_ms events_detected_count total_jobs_run total_jobs_failed error_message source_user_email
  event_executions(order_by: [{created_at: asc}, {event_name: asc}]) { id event_name detected status created_at
    detection_duration_ms handler_duration_ms jobs_count jobs_failed detection_error handler_error }
  job_executions(order_by: [{created_at: asc}, {job_name: asc}]) { id event_execution_id job_name status created_at started_at
    ended_at duration_ms attempts error_type error_message triggered_invocations(order_by: [{created_at: asc}], limit: 20) { id source_function status } }`;

const VERSION = `subscription FlowVersion($id: uuid!) {
  invocations_by_pk(id: $id) {
    updated_at status
    event_executions_aggregate { aggregate { count max { updated_at } } }
    job_executions_aggregate { aggregate { count max { updated_at } } }
    correlated_invocations(order_by: [{created_at: asc}], limit: ${FLOW_LIMIT}) {
      id updated_at status
      job_executions_aggregate { aggregate { count max { updated_at } } }
    }
  }
}`;

async function fetchFlow(id, signal) {
  // Re-runs name their original in `context_data`, which not every role may read.
  const fields = can('invocations', 'context_data') ? `${INVOCATION} rerun_of: context_data(path: "rerun_of")` : INVOCATION;
  const batch = new Batch('Flow');
  const ref = batch.variable('uuid!', id);
  batch.add(`root: invocations_by_pk(id: ${ref}) {
    ${fields}
    correlated_invocations(order_by: [{created_at: asc}], limit: ${FLOW_LIMIT}) { ${fields} }
    correlated_invocations_aggregate { aggregate { count } }
  }`);
  const { root } = await batch.run(signal);
  if (!root) return null;
  const byId = new Map();
  for (const inv of [root, ...root.correlated_invocations]) byId.set(inv.id, inv);
  return { root, invocations: [...byId.values()], total: root.correlated_invocations_aggregate.aggregate.count };
}

async function fetchJob(id, signal) {
  const fields = readable('job_executions', 'result job_options error_stack job_function_name');
  const batch = new Batch('FlowJob');
  const ref = batch.variable('uuid!', id);
  batch.add(`job: job_executions_by_pk(id: ${ref}) { id ${fields} logs(order_by: [{seq: asc}], limit: 30) { id level message created_at } logs_aggregate { aggregate { count } } }`);
  return (await batch.run(signal)).job;
}

export function FlowPage({ id, params }) {
  if (!isUuid(id)) return html`<${BadIdPage} id=${id} />`;
  return html`<${Flow} id=${id} params=${params} />`;
}

function Flow({ id, params }) {
  const live = useLive(VERSION, { id });
  const flow = useQuery((signal) => fetchFlow(id, signal), ['flow', id], { version: live.version });
  const data = flow.data;
  useTitle(data ? `Flow · ${id.slice(0, 8)} · ${data.root.source_function}` : `Flow · ${id.slice(0, 8)}`);
  const running = data?.invocations.some((i) => i.status === 'running' || i.job_executions.some((j) => j.status === 'running'));
  const now = useNow(250, Boolean(running));
  const [filter, setFilter] = useState('');
  const selected = params.node || null;
  const select = (node) => updateParams({ node: node || '' }, { replace: true });

  if (flow.error && !data) return html`<${ErrorBox} error=${flow.error} />`;
  if (!data && flow.loading) return html`<${Loading} />`;
  if (!data) return html`<${MissingInvocationPage} id=${id} />`;

  const events = data.invocations.flatMap((i) => i.event_executions);
  const jobs = data.invocations.flatMap((i) => i.job_executions);
  const count = (list, pred) => list.filter(pred).length;
  return html`<div class="page flow" data-flow=${id}>
    <div class="flow-header">
      <div class="flow-stats">
        <span><strong data-count="invocations">${data.invocations.length}</strong> invocation${data.invocations.length === 1 ? '' : 's'}${data.total > data.invocations.length ? html` <span class="warn-text">(first ${data.invocations.length - 1} of ${data.total} correlated)</span>` : ''}</span>
        <span><strong data-count="detected">${count(events, (e) => e.detected)}</strong> detected · <span class="muted" data-count="undetected">${count(events, (e) => e.status === 'not_detected')} not detected</span></span>
        <span><strong data-count="jobs">${jobs.length}</strong> job${jobs.length === 1 ? '' : 's'}: ${count(jobs, (j) => j.status === 'completed')} completed${count(jobs, (j) => ['failed', 'timeout', 'cancelled'].includes(j.status)) ? html`, <span class="bad-text">${count(jobs, (j) => ['failed', 'timeout', 'cancelled'].includes(j.status))} failed</span>` : ''}${count(jobs, (j) => j.status === 'running') ? html`, <span class="info-text">${count(jobs, (j) => j.status === 'running')} running</span>` : ''}</span>
        ${data.root.correlation_id ? html`<span class="muted">correlation <${Id} value=${data.root.correlation_id} label="Copy correlation id" /></span>` : null}
      </div>
      <div class="row-actions">
        <input type="search" class="input flow-filter" placeholder="Highlight nodes…" value=${filter} onInput=${(e) => setFilter(e.target.value)} aria-label="Highlight nodes" />
        <${Link} href=${`/invocations/${id}`} class="btn">Invocation details</${Link}>
      </div>
    </div>
    <div class="flow-body">
      <div class="flow-canvas card">
        <${FlowGraph} invocations=${data.invocations} focusId=${id} selected=${selected} onSelect=${select} now=${now} filter=${filter} />
        <div class="flow-legend muted small"><i class="ln detected"></i>detected <i class="ln undetected"></i>not detected <i class="ln job"></i>job <i class="ln cascade"></i>triggered invocation <i class="ln rerun"></i>re-run · drag to pan, wheel or pinch to zoom</div>
      </div>
      <aside class="flow-side card" data-flow-details>
        <${Details} data=${data} selected=${selected} now=${now} onSelect=${select} />
      </aside>
    </div>
  </div>`;
}

function Details({ data, selected, now, onSelect }) {
  if (!selected) {
    return html`<div class="pad"><div class="sub-title">Select a node</div><p class="muted small">Click an invocation, event, job or the group of undetected events to see its details here. Esc clears the selection.</p>
      <ul class="plain">${data.invocations.map((inv) => html`<li><a href="#" onClick=${(e) => { e.preventDefault(); onSelect(`inv:${inv.id}`); }}>${inv.source_function}</a> <${StatusBadge} status=${inv.status} /> <span class="muted small">${fmtDuration(inv.total_duration_ms)}</span></li>`)}</ul></div>`;
  }
  const [kind, id] = selected.split(/:(.*)/s);
  const invocations = data.invocations;
  if (kind === 'inv') {
    const inv = invocations.find((i) => i.id === id);
    if (!inv) return null;
    return html`<div class="pad" data-detail="invocation">
      <div class="detail-title"><span class="strong">${inv.source_function}</span> <${OpBadge} op=${inv.source_operation} /> <${StatusBadge} status=${inv.status} /></div>
      <dl class="meta compact">
        <div><dt>Id</dt><dd><${Id} value=${inv.id} /></dd></div>
        <div><dt>Started</dt><dd><${AbsTime} value=${inv.created_at} /></dd></div>
        <div><dt>Duration</dt><dd>${inv.status === 'running' ? fmtDuration(now - new Date(inv.created_at).getTime()) : fmtDuration(inv.total_duration_ms)}</dd></div>
        <div><dt>Table</dt><dd class="mono">${inv.source_table || '—'}</dd></div>
        <div><dt>Events</dt><dd>${inv.events_detected_count} detected of ${inv.event_executions.length}</dd></div>
        <div><dt>Jobs</dt><dd>${inv.total_jobs_run}${inv.total_jobs_failed ? html`, <span class="bad-text">${inv.total_jobs_failed} failed</span>` : ''}</dd></div>
      </dl>
      ${inv.error_message ? html`<div class="error-box"><div class="mono">${inv.error_message}</div></div>` : null}
      <${Link} href=${`/invocations/${inv.id}`} class="btn primary">Open invocation</${Link}>
    </div>`;
  }
  if (kind === 'ev') {
    const event = invocations.flatMap((i) => i.event_executions).find((e) => e.id === id);
    if (!event) return null;
    return html`<div class="pad" data-detail="event">
      <div class="detail-title"><span class="mono strong">${event.event_name}</span> <${EventStatusBadge} event=${event} /></div>
      <dl class="meta compact">
        <div><dt>Detector</dt><dd>${fmtDuration(event.detection_duration_ms)}</dd></div>
        <div><dt>Handler</dt><dd>${fmtDuration(event.handler_duration_ms)}</dd></div>
        <div><dt>Jobs</dt><dd>${event.jobs_count}${event.jobs_failed ? html`, <span class="bad-text">${event.jobs_failed} failed</span>` : ''}</dd></div>
      </dl>
      ${event.detection_error ? html`<div class="error-box"><strong>Detector raised</strong><div class="mono">${event.detection_error}</div></div>` : null}
      ${event.handler_error ? html`<div class="error-box"><strong>Handler raised</strong><div class="mono">${event.handler_error}</div></div>` : null}
    </div>`;
  }
  if (kind === 'und') {
    const inv = invocations.find((i) => i.id === id);
    if (!inv) return null;
    const list = inv.event_executions.filter((e) => e.status === 'not_detected');
    return html`<div class="pad" data-detail="undetected">
      <div class="detail-title"><span class="strong">${list.length} events not detected</span></div>
      <p class="muted small">Their detectors answered no for this change of <span class="mono">${inv.source_table || inv.source_function}</span>.</p>
      <table class="table compact"><thead><tr><th>Event</th><th class="num">Detector</th></tr></thead>
        <tbody>${list.map((e) => html`<tr><td class="mono">${e.event_name}</td><td class="num">${fmtDuration(e.detection_duration_ms)}</td></tr>`)}</tbody></table>
    </div>`;
  }
  if (kind === 'job') {
    const job = invocations.flatMap((i) => i.job_executions).find((j) => j.id === id);
    if (!job) return null;
    return html`<${JobDetails} job=${job} now=${now} />`;
  }
  return html`<div class="pad muted">This invocation is outside the loaded set. <${Link} href=${`/invocations/${id}`}>Open it</${Link}>.</div>`;
}

function JobDetails({ job, now }) {
  const extra = useQuery((signal) => fetchJob(job.id, signal), ['job', job.id, job.status]);
  const running = job.status === 'running';
  return html`<div class="pad" data-detail="job">
    <div class="detail-title"><span class="mono strong">${job.job_name}</span> <${StatusBadge} status=${job.status} /></div>
    <dl class="meta compact">
      <div><dt>Duration</dt><dd>${running ? fmtDuration(now - new Date(job.started_at || job.created_at).getTime()) : fmtDuration(job.duration_ms)}</dd></div>
      <div><dt>Attempts</dt><dd>${job.attempts}</dd></div>
      <div><dt>Started</dt><dd><${AbsTime} value=${job.started_at || job.created_at} /></dd></div>
      <div><dt>Id</dt><dd><${Id} value=${job.id} /></dd></div>
    </dl>
    ${job.error_message ? html`<div class="error-box"><strong>${job.error_type || 'Error'}</strong><div class="mono">${job.error_message}</div>${extra.data?.error_stack ? html`<details><summary>Stack</summary><pre class="stack">${extra.data.error_stack}</pre></details>` : null}</div>` : null}
    ${extra.data?.result !== undefined && extra.data?.result !== null ? html`<div class="sub-title">Result</div><${JsonBlock} value=${extra.data.result} maxHeight=${260} />` : null}
    ${job.triggered_invocations?.length ? html`<div class="sub-title">Triggered</div><ul class="plain">${job.triggered_invocations.map((t) => html`<li><${Link} href=${`/invocations/${t.id}`}>${t.source_function}</${Link}> <${StatusBadge} status=${t.status} /></li>`)}</ul>` : null}
    ${extra.data?.logs?.length
      ? html`<div class="sub-title">Logs <span class="muted">(${fmtNumber(extra.data.logs_aggregate.aggregate.count)})</span></div>
          <div class="mini-logs">${extra.data.logs.map((l) => html`<div class=${`log-line level-${l.level}`}><span class=${`log-level level-${l.level}`}>${l.level}</span><span class="log-message">${l.message}</span></div>`)}</div>`
      : null}
  </div>`;
}
