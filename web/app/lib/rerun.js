// Re-runs: the service's admin-only `/v1/rerun` endpoint (not GraphQL). `GET` says whether
// re-runs are possible (the webhook has an events directory) and how many ids one request
// may carry; `POST` runs stored payloads again (or only checks them, with `dry_run`).
// The console offers re-runs only when the server takes this tab's credentials as admin:
// the admin secret typed on Settings, or none at all on a server without an admin secret.
import { authHeaders } from './graphql.js';
import { createStore } from './store.js';

export const RERUN_PATH = new URL('v1/rerun', document.baseURI).pathname;

export const RERUN_OFF = { status: 'off', enabled: false, max: 0, message: null };
// status: 'off' (the server does not take this tab as admin) | 'loading' | 'ready' | 'error'
export const rerunSupport = createStore(RERUN_OFF);

/** Ask the server whether re-runs are possible for this tab's credentials. */
export async function loadRerunSupport() {
  rerunSupport.set({ status: 'loading' });
  try {
    const response = await fetch(RERUN_PATH, { headers: authHeaders(), cache: 'no-store' });
    const body = await response.json().catch(() => ({}));
    if (response.status === 401 || response.status === 403) {
      rerunSupport.set(RERUN_OFF); // not admin: no re-runs, and nothing to report
      return;
    }
    if (!response.ok) {
      rerunSupport.set({ ...RERUN_OFF, status: 'error', message: body.error || `${RERUN_PATH} answered HTTP ${response.status}` });
      return;
    }
    rerunSupport.set({ status: 'ready', enabled: Boolean(body.enabled), max: Number(body.max) || 0, message: body.message || null });
  } catch (error) {
    rerunSupport.set({ ...RERUN_OFF, status: 'error', message: error.message });
  }
}

export class RerunError extends Error {
  constructor(message, code) {
    super(message);
    this.name = 'RerunError';
    this.code = code || 'unexpected';
  }
}

/**
 * POST the ids to `/v1/rerun`. Resolves to `{results, started | ready, refused}`; throws
 * RerunError (with the server's message) when the request itself is refused.
 */
export async function requestRerun(ids, { dryRun = false, allowRedacted = false } = {}) {
  let response;
  try {
    response = await fetch(RERUN_PATH, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...authHeaders() },
      body: JSON.stringify({ invocation_ids: ids, dry_run: dryRun, allow_redacted: allowRedacted }),
    });
  } catch (error) {
    throw new RerunError(`The API is unreachable: ${error.message}`, 'network');
  }
  const body = await response.json().catch(() => null);
  if (!response.ok) throw new RerunError(body?.error || `${RERUN_PATH} answered HTTP ${response.status}`, body?.code);
  return body;
}

export const REFUSAL_LABELS = {
  invalid_id: 'not an invocation id',
  not_found: 'not recorded (deleted by retention?)',
  no_payload: 'payload not captured, or cleared by retention',
  truncated: 'payload truncated when recorded',
  no_events_dir: 'no events directory serves its function',
  redacted: 'payload has redacted values',
  configuration_error: 'configuration error',
  internal_error: 'the service failed',
};
