// One invocation: summary, waterfall, row change, events and jobs, logs, payload.
// Fields the caller's role may not read (payloads, contexts, options, results, stacks)
// are neither asked for nor shown.
import { html } from 'htm/preact';
import { useState } from 'preact/hooks';
import { Batch, can, readable } from '../lib/api.js';
import { useLive, useNow, useQuery, useTitle } from '../lib/hooks.js';
import { fmtDuration, fmtNumber, isUuid, plural } from '../lib/format.js';
import { Link, hrefWith, keptParams, navigate, updateParams } from '../lib/router.js';
import { AbsTime, Card, Empty, ErrorBox, ErrorPage, EventStatusBadge, Id, JsonBlock, Loading, OpBadge, StatusBadge, Tabs, Time } from '../components/ui.js';
import { Waterfall } from '../components/timeline.js';
import { RowDiff } from '../components/diff.js';
import { LogViewer } from '../components/logs.js';
import { RerunDialog, useRerunAvailable } from '../components/rerun.js';

export const LOG_LIMIT = 2000;

const VERSION = `subscription InvocationVersion($id: uuid!) {
  invocations_by_pk(id: $id) {
    updated_at status
    event_executions_aggregate { aggregate { count max { updated_at } } }
    job_executions_aggregate { aggregate { count max { updated_at } } }
    logs_aggregate { aggregate { count } }
  }
}`;

async function fetchInvocation(id, signal) {
  const invocation = readable('invocations', `id created_at updated_at correlation_id source_function source_table
    source_operation source_system source_trigger_name source_event_id source_event_time source_user_email
    source_user_role source_job_id delivery_attempt received_at total_duration_ms events_detected_count
    total_jobs_run total_jobs_succeeded total_jobs_failed auto_load_modules event_modules_directory status
    error_message error_stack trace_id`);
  const event = readable('event_executions', `id event_name event_module_path detected status created_at updated_at
    detection_duration_ms detection_error detection_error_stack handler_duration_ms handler_error
    handler_error_stack jobs_count jobs_succeeded jobs_failed`);
  const job = readable('job_executions', `id event_execution_id job_name job_function_name status created_at
    updated_at started_at ended_at duration_ms attempts attempt_history error_type error_message error_stack result job_options`);
  const log = readable('job_logs', 'id created_at seq level message source line_number event_execution_id job_execution_id data');
  const batch = new Batch('Invocation');
  const ref = batch.variable('uuid!', id);
  batch.add(`invocation: invocations_by_pk(id: ${ref}) {
    ${invocation}
    source_job_execution { id job_name invocation_id invocation { id source_function } }
    event_executions(order_by: [{created_at: asc}, {event_name: asc}]) { ${event} }
    job_executions(order_by: [{created_at: asc}, {job_name: asc}]) { ${job} triggered_invocations(order_by: [{created_at: asc}], limit: 20) { id source_function status } }
    logs(order_by: [{seq: asc}, {created_at: asc}], limit: ${LOG_LIMIT}) { ${log} }
    logs_aggregate { aggregate { count } }
    correlated_invocations_aggregate { aggregate { count } }
  }`);
  return (await batch.run(signal)).invocation;
}

async function fetchBodies(id, signal) {
  const fields = readable('invocations', 'source_event_payload context_data');
  if (!fields) return null;
  const batch = new Batch('InvocationBodies');
  const ref = batch.variable('uuid!', id);
  batch.add(`bodies: invocations_by_pk(id: ${ref}) { ${fields} }`);
  return (await batch.run(signal)).bodies;
}

// Re-runs record `{"rerun_of": "<id>"}` as their context (see `/v1/rerun`).
async function fetchReruns(id, signal) {
  if (!can('invocations', 'context_data')) return [];
  const batch = new Batch('InvocationReruns');
  const where = batch.variable('invocations_bool_exp!', { context_data: { _contains: { rerun_of: id } } });
  batch.add(`reruns: invocations(where: ${where}, order_by: [{created_at: asc}, {id: asc}], limit: 50) { id created_at status }`);
  return (await batch.run(signal)).reruns;
}

/** The page for an id that cannot be an invocation's (never sent to the API). */
export function BadIdPage({ id }) {
  return html`<${ErrorPage} kind="bad-id" title="Not an invocation id">
    <code>${id}</code> is not an invocation id: invocation ids are UUIDs such as <code>5e18c712-0b1f-4c39-9d62-2f4f3c9e8a10</code>.
    Search the list instead, by correlation id, user or text.
  </${ErrorPage}>`;
}

/** The page for a well-formed id that the store does not hold. */
export function MissingInvocationPage({ id }) {
  return html`<${ErrorPage} kind="not-found" title="Invocation not found">
    No invocation <code>${id}</code> is recorded. It may have been deleted by retention, or written by a process whose
    records have not been flushed yet.
  </${ErrorPage}>`;
}

export function InvocationPage({ id, params }) {
  if (!isUuid(id)) return html`<${BadIdPage} id=${id} />`;
  return html`<${InvocationDetail} id=${id} params=${params} />`;
}

function InvocationDetail({ id, params }) {
  const live = useLive(VERSION, { id });
  const detail = useQuery((signal) => fetchInvocation(id, signal), ['invocation', id], { version: live.version });
  const bodies = useQuery((signal) => fetchBodies(id, signal), ['bodies', id]);
  const reruns = useQuery((signal) => fetchReruns(id, signal), ['reruns', id]);
  const rerun = useRerunAvailable();
  const [rerunOpen, setRerunOpen] = useState(false);
  const inv = detail.data;
  const running = inv?.status === 'running';
  const now = useNow(running ? 250 : 15_000);
  useTitle(inv ? `Invocation ${id.slice(0, 8)} · ${inv.source_function}` : `Invocation ${id.slice(0, 8)}`);

  if (detail.error && !inv) return html`<${ErrorBox} error=${detail.error} />`;
  if (!inv && detail.loading) return html`<${Loading} />`;
  if (!inv) return html`<${MissingInvocationPage} id=${id} />`;

  const payloadReadable = can('invocations', 'source_event_payload');
  const payload = bodies.data?.source_event_payload;
  const data = payload?.event?.data;
  const tabs = [
    { key: 'timeline', label: 'Timeline' },
    ...(payloadReadable ? [{ key: 'changes', label: 'Row change' }] : []),
    { key: 'jobs', label: 'Events & jobs', count: inv.job_executions.length },
    { key: 'logs', label: 'Logs', count: inv.logs_aggregate.aggregate.count },
    ...(payloadReadable ? [{ key: 'payload', label: 'Payload' }] : []),
  ];
  const tab = tabs.some((t) => t.key === params.tab) ? params.tab : 'timeline';
  const selectTab = (key) => updateParams({ tab: key === 'timeline' ? '' : key }, { replace: true });
  const selectedJob = params.job || '';
  const jobNames = new Map(inv.job_executions.map((j) => [j.id, j.job_name]));
  const eventNames = new Map(inv.event_executions.map((e) => [e.id, e.event_name]));
  const checked = inv.event_executions.length;
  const correlated = inv.correlated_invocations_aggregate.aggregate.count;
  const context = bodies.data?.context_data;
  const rerunOf = context && typeof context === 'object' && typeof context.rerun_of === 'string' ? context.rerun_of : null;
  const rerunList = reruns.data || [];

  return html`<div class="page invocation" data-invocation-page=${inv.id}>
    <${ErrorBox} error=${detail.error} title="Could not refresh" />
    <section class="card summary">
      <div class="summary-head">
        <div>
          <div class="summary-title"><span class="strong big">${inv.source_function}</span> <${OpBadge} op=${inv.source_operation} /> <${StatusBadge} status=${inv.status} />
            ${inv.source_table ? html`<span class="muted mono">${inv.source_table}</span>` : null}</div>
          ${inv.source_job_execution
            ? html`<div class="muted small">Triggered by job <strong>${inv.source_job_execution.job_name}</strong> of <${Link} href=${`/invocations/${inv.source_job_execution.invocation_id}`}>${inv.source_job_execution.invocation?.source_function || 'its invocation'}</${Link}></div>`
            : inv.source_job_id
              ? html`<div class="muted small">Triggered by job <span class="mono">${inv.source_job_id}</span> (not recorded yet)</div>`
              : null}
          ${rerunOf ? html`<div class="muted small" data-rerun-of=${rerunOf}>Re-run of <${Link} href=${`/invocations/${rerunOf}`}>invocation <span class="mono">${rerunOf.slice(0, 8)}</span></${Link}></div>` : null}
          ${rerunList.length
            ? html`<div class="muted small" data-reruns=${rerunList.length}>Re-run ${rerunList.length === 1 ? 'once' : `${rerunList.length} times`}:
                ${rerunList.map((r, i) => html`${i ? ', ' : ' '}<${Link} href=${`/invocations/${r.id}`} data-rerun-entry=${r.id}><span class="mono">${r.id.slice(0, 8)}</span></${Link}> <${StatusBadge} status=${r.status} />`)}</div>`
            : null}
        </div>
        <div class="row-actions">
          ${rerun.available
            ? html`<button type="button" class="btn" data-rerun-button onClick=${() => setRerunOpen(true)}
                title="Run this invocation's stored payload again with the current event modules">Re-run</button>`
            : null}
          <${Link} href=${`/flow/${inv.id}`} class="btn primary" data-open-flow>Open flow${correlated > 1 ? ` (${correlated} invocations)` : ''}</${Link}>
          ${inv.correlation_id ? html`<${Link} href=${hrefWith('/invocations', { ...keptParams(), q: `corr:${inv.correlation_id}` })} class="btn">Same correlation</${Link}>` : null}
        </div>
      </div>
      <dl class="meta">
        <div><dt>Invocation</dt><dd><${Id} value=${inv.id} full /></dd></div>
        <div><dt>Correlation</dt><dd><${Id} value=${inv.correlation_id} full label="Copy correlation id" /></dd></div>
        <div><dt>Started</dt><dd><${AbsTime} value=${inv.created_at} /> <span class="muted">(<${Time} value=${inv.created_at} now=${now} />)</span></dd></div>
        <div><dt>Duration</dt><dd data-duration>${running ? html`<span class="ticking">${fmtDuration(now - new Date(inv.created_at).getTime())}</span>` : fmtDuration(inv.total_duration_ms)}</dd></div>
        <div><dt>Events</dt><dd>${inv.events_detected_count} detected <span class="muted">of ${checked} checked</span></dd></div>
        <div><dt>Jobs</dt><dd>${inv.total_jobs_succeeded} completed${inv.total_jobs_failed ? html`, <span class="bad-text">${inv.total_jobs_failed} failed</span>` : ''} <span class="muted">of ${inv.total_jobs_run}</span></dd></div>
        <div><dt>User</dt><dd>${inv.source_user_email || html`<span class="muted">—</span>`} ${inv.source_user_role ? html`<span class="chip small">${inv.source_user_role}</span>` : null}</dd></div>
        <div><dt>Trigger</dt><dd class="mono">${inv.source_trigger_name || '—'}</dd></div>
        <div><dt>Hasura event</dt><dd><${Id} value=${inv.source_event_id} label="Copy Hasura event id" />${inv.delivery_attempt > 1 ? html` <span class="chip small warn">delivery ${inv.delivery_attempt}</span>` : null}</dd></div>
        ${inv.trace_id ? html`<div><dt>Trace</dt><dd><${Id} value=${inv.trace_id} label="Copy trace id" /></dd></div>` : null}
      </dl>
      ${inv.error_message
        ? html`<div class="error-box" data-invocation-error><strong>${inv.status === 'rejected' ? 'Rejected payload' : 'Error'}</strong><div class="mono">${inv.error_message}</div>
            ${inv.error_stack ? html`<details><summary>Stack</summary><pre class="stack">${inv.error_stack}</pre></details>` : null}</div>`
        : null}
    </section>
    <${Tabs} tabs=${tabs} active=${tab} onSelect=${selectTab} />
    <div class="tab-panel" data-panel=${tab}>
      ${tab === 'timeline'
        ? html`<div class="grid-timeline">
            <${Card} title="Timeline">
              <${Waterfall} invocation=${inv} events=${inv.event_executions} jobs=${inv.job_executions} now=${now} selected=${selectedJob}
                onSelect=${(jobId) => updateParams({ job: jobId === selectedJob ? '' : jobId }, { replace: true })} />
            </${Card}>
            ${selectedJob && inv.job_executions.find((j) => j.id === selectedJob)
              ? html`<${JobPanel} job=${inv.job_executions.find((j) => j.id === selectedJob)} logs=${inv.logs.filter((l) => l.job_execution_id === selectedJob).length}
                  onLogs=${() => updateParams({ tab: 'logs' }, { replace: true })} onClose=${() => updateParams({ job: '' }, { replace: true })} />`
              : null}
          </div>`
        : null}
      ${tab === 'changes'
        ? html`<${Card} title="Row change">${bodies.data ? html`<${RowDiff} op=${inv.source_operation} oldRow=${data?.old} newRow=${data?.new} />` : bodies.error ? html`<${ErrorBox} error=${bodies.error} />` : html`<${Loading} />`}</${Card}>`
        : null}
      ${tab === 'jobs' ? html`<${EventsAndJobs} inv=${inv} /> ` : null}
      ${tab === 'logs'
        ? html`<${Card} title="Logs"><${LogViewer} logs=${inv.logs} total=${inv.logs_aggregate.aggregate.count} t0=${new Date(inv.created_at).getTime()}
            eventNames=${eventNames} jobNames=${jobNames} job=${selectedJob} line=${params.line || ''} onJob=${(jobId) => updateParams({ job: jobId }, { replace: true })} /></${Card}>`
        : null}
      ${tab === 'payload'
        ? html`<div class="grid-2">
            <${Card} title="Hasura payload">${bodies.data ? (payload ? html`<${JsonBlock} value=${payload} maxHeight=${640} />` : html`<div class="muted pad">Payload capture was off, or retention cleared it.</div>`) : html`<${Loading} />`}</${Card}>
            <${Card} title="Context">${bodies.data ? (bodies.data.context_data ? html`<${JsonBlock} value=${bodies.data.context_data} maxHeight=${640} />` : html`<div class="muted pad">No context.</div>`) : html`<${Loading} />`}</${Card}>
          </div>`
        : null}
    </div>
    ${rerunOpen
      ? html`<${RerunDialog} ids=${[inv.id]} max=${rerun.max} onClose=${() => setRerunOpen(false)}
          onDone=${(answer) => {
            const started = answer.results.find((r) => r.rerun_invocation_id);
            if (!started) return false;
            setRerunOpen(false);
            navigate(`/invocations/${started.rerun_invocation_id}`);
            return true;
          }} />`
      : null}
  </div>`;
}

function JobPanel({ job, logs, onLogs, onClose }) {
  return html`<${Card} title=${html`Job <span class="mono">${job.job_name}</span>`} class="job-panel" actions=${html`<button type="button" class="btn small" onClick=${onClose}>Close</button>`}>
    <div data-job-panel=${job.id}>
      <dl class="meta compact">
        <div><dt>Status</dt><dd><${StatusBadge} status=${job.status} /></dd></div>
        <div><dt>Duration</dt><dd>${fmtDuration(job.duration_ms)}</dd></div>
        <div><dt>Attempts</dt><dd>${job.attempts}</dd></div>
        <div><dt>Function</dt><dd class="mono">${job.job_function_name || '—'}</dd></div>
        <div><dt>Started</dt><dd><${AbsTime} value=${job.started_at || job.created_at} /></dd></div>
        <div><dt>Id</dt><dd><${Id} value=${job.id} /></dd></div>
      </dl>
      <${JobBody} job=${job} />
      <button type="button" class="btn" onClick=${onLogs}>${plural(logs, 'log line')} of this job →</button>
    </div>
  </${Card}>`;
}

/** Each attempt of a retried job: when it ran, how it ended. */
function AttemptList({ job }) {
  const history = Array.isArray(job.attempt_history) ? job.attempt_history : [];
  if (history.length < 2) return null;
  return html`<div class="sub-title">Attempts</div>
    <ol class="attempt-list" data-attempt-list=${history.length}>${history.map(
      (a) => html`<li data-attempt=${a.attempt}><${StatusBadge} status=${a.status} /> <span class="muted">attempt ${a.attempt}, ${fmtDuration(a.duration_ms)}</span>
        ${a.error_message ? html`<div class="mono small attempt-error">${a.error_type ? `${a.error_type}: ` : ''}${a.error_message}</div>` : null}</li>`,
    )}</ol>`;
}

function JobBody({ job }) {
  return html`
    <${AttemptList} job=${job} />
    ${job.error_message || job.error_type ? html`<div class="error-box"><strong>${job.error_type || 'Error'}</strong><div class="mono">${job.error_message || ''}</div>
      ${job.error_stack ? html`<details><summary>Stack</summary><pre class="stack">${job.error_stack}</pre></details>` : null}</div>` : null}
    ${job.result !== undefined && job.result !== null ? html`<div class="sub-title">Result</div><${JsonBlock} value=${job.result} maxHeight=${320} />` : null}
    ${job.job_options ? html`<details><summary>Options</summary><${JsonBlock} value=${job.job_options} maxHeight=${240} /></details>` : null}
    ${job.triggered_invocations?.length
      ? html`<div class="sub-title">Triggered</div><ul class="plain">${job.triggered_invocations.map((t) => html`<li><${Link} href=${`/invocations/${t.id}`}>${t.source_function}</${Link}> <${StatusBadge} status=${t.status} /></li>`)}</ul>`
      : null}`;
}

function EventsAndJobs({ inv }) {
  const jobsOf = new Map();
  for (const job of inv.job_executions) {
    if (!jobsOf.has(job.event_execution_id)) jobsOf.set(job.event_execution_id, []);
    jobsOf.get(job.event_execution_id).push(job);
  }
  const events = [...inv.event_executions].sort((a, b) => Number(b.detected) - Number(a.detected) || (a.status === 'not_detected') - (b.status === 'not_detected'));
  const undetected = events.filter((e) => e.status === 'not_detected');
  const skipped = events.filter((e) => e.status === 'skipped');
  return html`<div class="events-list" data-events>
    ${events.filter((e) => e.status !== 'not_detected' && e.status !== 'skipped').map(
      (event) => html`<${Card} title=${html`<span class="mono">${event.event_name}</span> <${EventStatusBadge} event=${event} />`} class="event-card"
          actions=${html`<span class="muted small">detector ${fmtDuration(event.detection_duration_ms)}${event.detected ? ` · handler ${fmtDuration(event.handler_duration_ms)}` : ''} · ${event.jobs_count} job${event.jobs_count === 1 ? '' : 's'}</span>`}>
        <div data-event=${event.id}>
          ${event.detection_error ? html`<div class="error-box"><strong>Detector raised</strong><div class="mono">${event.detection_error}</div>${event.detection_error_stack ? html`<details><summary>Stack</summary><pre class="stack">${event.detection_error_stack}</pre></details>` : null}</div>` : null}
          ${event.handler_error ? html`<div class="error-box"><strong>Handler raised</strong><div class="mono">${event.handler_error}</div>${event.handler_error_stack ? html`<details><summary>Stack</summary><pre class="stack">${event.handler_error_stack}</pre></details>` : null}</div>` : null}
          ${event.detected && !(jobsOf.get(event.id) || []).length ? html`<div class="muted small">The handler listed no job.</div>` : null}
          ${(jobsOf.get(event.id) || []).map(
            (job) => html`<details class="job-item" data-job=${job.id} open=${job.status !== 'completed'}>
              <summary><${StatusBadge} status=${job.status} /> <span class="mono strong">${job.job_name}</span> <span class="muted">${fmtDuration(job.duration_ms)}${job.attempts > 1 ? ` · ${job.attempts} attempts` : ''}</span>
                ${job.error_message ? html`<span class="bad-text truncate"> — ${job.error_message}</span>` : null}</summary>
              <div class="job-body"><${JobBody} job=${job} /></div>
            </details>`,
          )}
        </div>
      </${Card}>`,
    )}
    ${undetected.length
      ? html`<${Card} title=${`${undetected.length} event${undetected.length === 1 ? '' : 's'} not detected`} class="event-card">
          <table class="table compact" data-undetected>
            <thead><tr><th>Event</th><th class="num">Detector</th><th>Module</th></tr></thead>
            <tbody>${undetected.map((e) => html`<tr><td class="mono">${e.event_name}</td><td class="num">${fmtDuration(e.detection_duration_ms)}</td><td class="muted mono truncate">${e.event_module_path || ''}</td></tr>`)}</tbody>
          </table>
        </${Card}>`
      : null}
    ${skipped.length
      ? html`<${Card} title=${`${skipped.length} event${skipped.length === 1 ? '' : 's'} skipped`} class="event-card">
          <p class="muted small">Their modules listen to other tables or operations: their detectors did not run.</p>
          <div class="mono small" data-skipped>${skipped.map((e) => e.event_name).join(', ')}</div>
        </${Card}>`
      : null}
    ${!inv.event_executions.length ? html`<${Empty} title="No event module was checked" />` : null}
    <div class="muted small">${fmtNumber(inv.total_jobs_run)} jobs ran in this invocation.</div>
  </div>`;
}
