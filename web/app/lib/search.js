// The invocation filters of the URL, turned into a Hasura `where`.
//
// Search syntax (the `q` parameter):
//   <uuid>                 an invocation, correlation, source job or Hasura event id (all time)
//   corr:<id>              a correlation id (all time)
//   user:<text>            user email containing text, or that role
//   event:<name>           invocations where that event was detected
//   log:<text>             invocations with a captured log line containing text
//   <table>:<id>           the row with that primary key in the payload (orders:ord_123,
//                          public.orders:42), old or new
//   anything else          text in the correlation id, user, event id, error, payload or
//                          a log line
// Log-line searches also list the matching lines themselves (`logSearchText`).
//
// Every filter composes with the search and with the others; all live in the URL.
import { BAD_STATUSES, and, can } from './api.js';
import { isUuid } from './format.js';

const PREFIXED = /^([A-Za-z_][\w.-]*):(.+)$/;

export const STATUSES = ['completed', 'failed', 'timeout', 'rejected', 'running'];
export const OPERATIONS = ['INSERT', 'UPDATE', 'DELETE', 'MANUAL'];

/** ILIKE pattern matching `text` anywhere (its own % and _ taken literally). */
export function containing(text) {
  return `%${text.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

/** The filters of URL `params`, normalised. */
export function readFilters(params) {
  const list = (value) => (value ? value.split(',').filter(Boolean) : []);
  return {
    status: list(params.status).filter((s) => STATUSES.includes(s)),
    fn: params.fn || '',
    table: params.table || '',
    op: OPERATIONS.includes(params.op) ? params.op : '',
    detected: params.detected === '1',
    hideChildren: params.children === 'hide',
    errors: params.errors === '1',
    minMs: /^\d+$/.test(params.min_ms || '') ? Number(params.min_ms) : null,
    job: params.job || '',
    errorType: params.error || '',
    q: (params.q || '').trim(),
  };
}

/** Whether any filter or the search is set. */
export function anyFilter(filters) {
  const { status, fn, table, op, detected, hideChildren, errors, minMs, job, errorType, q } = filters;
  return Boolean(status.length || fn || table || op || detected || hideChildren || errors || minMs !== null || job || errorType || q);
}

/** The text to look for in log lines, or '' when the search `q` is not about text. */
export function logSearchText(q) {
  if (!q || isUuid(q)) return '';
  const prefixed = q.match(PREFIXED);
  if (!prefixed) return q;
  return prefixed[1].toLowerCase() === 'log' ? prefixed[2].trim() : '';
}

/**
 * What the search `q` means: { where, allTime, description, warning }. `allTime` is true
 * for exact ids (they are unique: the time range would only hide the match).
 */
export function parseSearch(q) {
  if (!q) return { where: null, allTime: false, description: '' };
  if (isUuid(q)) {
    return {
      where: { _or: [{ id: { _eq: q } }, { correlation_id: { _eq: q } }, { source_job_id: { _eq: q } }, { source_event_id: { _eq: q } }] },
      allTime: true,
      description: `id ${q} (invocation, correlation, source job or Hasura event), all time`,
    };
  }
  const prefixed = q.match(PREFIXED);
  if (prefixed) {
    const [, key, rawValue] = prefixed;
    const value = rawValue.trim();
    const lower = key.toLowerCase();
    if (lower === 'corr' || lower === 'correlation') {
      return { where: { correlation_id: { _eq: value } }, allTime: true, description: `correlation id ${value}, all time` };
    }
    if (lower === 'user') {
      return {
        where: { _or: [{ source_user_email: { _ilike: containing(value) } }, { source_user_role: { _eq: value } }] },
        description: `user email containing “${value}” or role ${value}`,
      };
    }
    if (lower === 'event') {
      return { where: { event_executions: { event_name: { _eq: value }, detected: { _eq: true } } }, description: `event ${value} detected` };
    }
    if (lower === 'log') {
      return { where: { logs: { message: { _ilike: containing(value) } } }, description: `log lines containing “${value}”` };
    }
    if (lower === 'fn' || lower === 'function') {
      return { where: { source_function: { _eq: value } }, description: `function ${value}` };
    }
    // table:id — the row's primary key in the payload, old or new.
    const table = key.includes('.') ? { source_table: { _eq: key } } : { source_table: { _like: `%.${key.replace(/[\\%_]/g, (c) => `\\${c}`)}` } };
    if (!can('invocations', 'source_event_payload')) {
      return { where: table, description: `table ${key}`, warning: 'Your role cannot read payloads: the id part of the search is ignored.' };
    }
    const ids = [value];
    if (/^-?\d+$/.test(value)) ids.push(Number(value));
    const row = ids.flatMap((id) => [
      { source_event_payload: { _contains: { event: { data: { new: { id } } } } } },
      { source_event_payload: { _contains: { event: { data: { old: { id } } } } } },
    ]);
    return { where: and(table, { _or: row }), description: `row ${value} of table ${key}` };
  }
  const pattern = containing(q);
  const text = [
    { correlation_id: { _ilike: pattern } },
    { source_user_email: { _ilike: pattern } },
    { source_event_id: { _ilike: pattern } },
    { error_message: { _ilike: pattern } },
    { logs: { message: { _ilike: pattern } } },
  ];
  const payloads = can('invocations', 'source_event_payload');
  if (payloads) text.push({ source_event_payload: { _cast: { String: { _ilike: pattern } } } });
  return {
    where: { _or: text },
    description: `“${q}” in correlation id, user, event id, error, log lines${payloads ? ' or payload' : ''}`,
    warning: payloads ? null : 'Your role cannot read payloads: text inside payloads is not searched.',
  };
}

/** The `where` of the invocation list for `filters` within time bounds `within`. */
export function invocationWhere(filters, within) {
  const search = parseSearch(filters.q);
  return and(
    search.allTime ? null : within,
    filters.status.length ? { status: { _in: filters.status } } : null,
    filters.fn ? { source_function: { _eq: filters.fn } } : null,
    filters.table ? { source_table: { _eq: filters.table } } : null,
    filters.op ? { source_operation: { _eq: filters.op } } : null,
    filters.detected ? { events_detected_count: { _gt: 0 } } : null,
    filters.hideChildren ? { source_job_id: { _is_null: true } } : null,
    filters.errors ? { status: { _in: BAD_STATUSES } } : null,
    filters.minMs !== null ? { total_duration_ms: { _gte: filters.minMs } } : null,
    // Job name and error type together mean one job: that job failed with that error.
    filters.job || filters.errorType
      ? { job_executions: and(filters.job ? { job_name: { _eq: filters.job } } : null, filters.errorType ? { error_type: { _eq: filters.errorType } } : null) }
      : null,
    search.where,
  ) || {};
}
