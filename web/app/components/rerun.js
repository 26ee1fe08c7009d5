// The re-run dialog: checks the invocations first (a dry run), says what running them
// again means (jobs and their side effects happen again; redacted payload values reach
// the jobs as "[redacted]"), runs them once confirmed, and sums up what happened.
import { html } from 'htm/preact';
import { useEffect, useState } from 'preact/hooks';
import { REFUSAL_LABELS, requestRerun, rerunSupport } from '../lib/rerun.js';
import { useStore } from '../lib/store.js';
import { Link } from '../lib/router.js';
import { plural } from '../lib/format.js';
import { StatusBadge } from './ui.js';

/**
 * Whether the console offers re-runs: the server takes this tab as admin and allows them.
 * New credentials reset `rerunSupport` until the server has answered for them.
 */
export function useRerunAvailable() {
  const support = useStore(rerunSupport);
  return { available: support.status === 'ready' && support.enabled, max: support.max };
}

function Refusals({ results }) {
  const refused = results.filter((r) => r.error);
  if (!refused.length) return null;
  const groups = new Map();
  for (const result of refused) {
    if (!groups.has(result.reason)) groups.set(result.reason, []);
    groups.get(result.reason).push(result);
  }
  return html`<div class="rerun-refused" data-rerun-refusals>
    <div class="strong">${plural(refused.length, 'invocation')} cannot be re-run:</div>
    <ul class="plain">
      ${[...groups.entries()].map(
        ([reason, items]) => html`<li data-refusal=${reason}>
          <span class="chip small warn">${REFUSAL_LABELS[reason] || reason}</span> ${items.length > 1 ? `${items.length}× ` : ''}
          <span class="muted small" title=${items[0].error}>${items[0].error}</span>
        </li>`,
      )}
    </ul>
  </div>`;
}

function redactedOwner(redacted, ready) {
  if (redacted === ready) return ready === 1 ? 'its stored payload holds' : 'their stored payloads hold';
  return `${redacted} of these stored payloads hold${redacted === 1 ? 's' : ''}`;
}

/**
 * A modal for re-running `ids`. `leftOut` counts ids not sent (over the server's maximum).
 * `onDone(answer)` runs after the re-runs (the dialog then shows the summary unless
 * `onDone` returns true, e.g. after navigating away).
 */
export function RerunDialog({ ids, leftOut = 0, max = 0, onClose, onDone }) {
  const [phase, setPhase] = useState('checking');
  const [check, setCheck] = useState(null);
  const [answer, setAnswer] = useState(null);
  const [error, setError] = useState(null);

  useEffect(() => {
    let live = true;
    // allow_redacted in the check: redacted ones come back ready, with their count.
    requestRerun(ids, { dryRun: true, allowRedacted: true }).then(
      (body) => {
        if (!live) return;
        setCheck(body);
        setPhase('confirm');
      },
      (failure) => {
        if (!live) return;
        setError(failure);
        setPhase('error');
      },
    );
    return () => {
      live = false;
    };
  }, [ids.join(',')]);

  const ready = check ? check.results.filter((r) => r.status === 'ready') : [];
  const redacted = ready.filter((r) => r.redacted_values > 0);
  const redactedValues = redacted.reduce((sum, r) => sum + r.redacted_values, 0);

  const confirm = async () => {
    setPhase('running');
    try {
      // The operator confirmed the redacted values above.
      const body = await requestRerun(
        ready.map((r) => r.invocation_id),
        { allowRedacted: true },
      );
      setAnswer(body);
      if (onDone && onDone(body) === true) return;
      setPhase('done');
    } catch (failure) {
      setError(failure);
      setPhase('error');
    }
  };

  const onKeyDown = (event) => {
    // Keys belong to the dialog: the page behind must not act on Enter or j/k.
    event.stopPropagation();
    if (event.key === 'Escape' && phase !== 'running') onClose();
  };

  let body;
  if (phase === 'checking') body = html`<div class="loading"><span class="spinner"></span>Checking ${plural(ids.length, 'invocation')}…</div>`;
  else if (phase === 'error') body = html`<div class="error-box" role="alert" data-rerun-error><strong>Re-run refused</strong><div>${error?.message}</div></div>`;
  else if (phase === 'running') body = html`<div class="loading" data-rerun-running><span class="spinner"></span>Running ${plural(ready.length, 'invocation')} again, one after another…</div>`;
  else if (phase === 'confirm') {
    body = html`
      <p class="rerun-warning" data-rerun-warning>
        ${ready.length
          ? html`<strong>${plural(ready.length, 'invocation')} will run again</strong> with the current event modules, as new
              invocations: detectors, handlers and jobs run again, and so do their side effects (emails, charges, writes to
              other systems). The originals stay as they are.`
          : html`<strong>Nothing can be re-run.</strong>`}
      </p>
      ${redacted.length
        ? html`<div class="notice warn" data-rerun-redacted=${redactedValues}>
            <strong>Redacted values:</strong> ${redactedOwner(redacted.length, ready.length)} ${plural(redactedValues, 'value')} replaced by${' '}
            <code>"[redacted]"</code> when recorded: detectors and jobs will see that text, not the original values.
          </div>`
        : null}
      ${leftOut ? html`<div class="notice" data-rerun-left-out>${plural(leftOut, 'more invocation')} left out: at most ${max} per re-run.</div>` : null}
      <${Refusals} results=${check.results} />`;
  } else {
    const started = answer.results.filter((r) => r.rerun_invocation_id);
    const statuses = {};
    for (const result of started) statuses[result.status] = (statuses[result.status] || 0) + 1;
    // Refused by the check (never sent) or by the run itself.
    const refused = [...check.results.filter((r) => r.error), ...answer.results.filter((r) => r.error)];
    body = html`<div data-rerun-summary data-rerun-started=${answer.started} data-rerun-refused=${refused.length}>
      <p><strong>${plural(answer.started, 're-run')} started</strong>${Object.keys(statuses).length ? ': ' : ''}
        ${Object.entries(statuses).map(([status, n], i) => html`${i ? ', ' : ''}${n} <${StatusBadge} status=${status} />`)}${refused.length ? html`; <span class="warn-text">${refused.length} refused</span>` : ''}.</p>
      ${started.length
        ? html`<ul class="plain rerun-links">${started.slice(0, 50).map(
            (r) => html`<li><${Link} href=${`/invocations/${r.rerun_invocation_id}`} data-rerun-link=${r.rerun_invocation_id}>${r.rerun_invocation_id.slice(0, 8)}</${Link}>
              <span class="muted small">re-run of ${r.invocation_id.slice(0, 8)}</span> <${StatusBadge} status=${r.status} /></li>`,
          )}</ul>`
        : null}
      <${Refusals} results=${refused} />
    </div>`;
  }

  const title = phase === 'done' ? 'Re-run finished' : ids.length === 1 ? 'Re-run this invocation?' : `Re-run ${plural(ids.length, 'invocation')}?`;
  return html`<div class="modal-backdrop" onClick=${(e) => e.target === e.currentTarget && phase !== 'running' && onClose()}>
    <div class="modal" role="dialog" aria-modal="true" aria-label=${title} data-rerun-dialog=${phase} onKeyDown=${onKeyDown} tabindex="-1"
      ref=${(el) => el && !el.contains(document.activeElement) && el.focus()}>
      <h2>${title}</h2>
      ${body}
      <div class="row-actions modal-actions">
        ${phase === 'confirm'
          ? html`<button type="button" class="btn" onClick=${onClose}>Cancel</button>
              <button type="button" class="btn primary danger" data-rerun-confirm disabled=${!ready.length} onClick=${confirm}>Re-run ${ready.length > 1 ? ready.length : ''}</button>`
          : html`<button type="button" class="btn" data-rerun-close disabled=${phase === 'running'} onClick=${onClose}>Close</button>`}
      </div>
    </div>
  </div>`;
}
