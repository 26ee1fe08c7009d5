// The invocation filters of the URL, turned into a Hasura `where`.
//
// Search syntax (the `q` parameter):
//   <uuid>                 an invocation, correlation, source job or Hasura event id (all time)
//   corr:<id>              a correlation id (all time)
//   user:<text>            user email containing text, or that role
//   event:<name>           invocations where that event was detected
//   <table>:<id>           the row with that primary key in the payload (orders:ord_123,
//                          public.orders:42), old or new
//   anything else          text in the correlation id, user, event id, error or payload
import { BAD_STATUSES, and, can } from './api.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
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
    q: (params.q || '').trim(),
  };
}

/**
 * What the search `q` means: { where, allTime, description, warning }. `allTime` is true
 * for exact ids (they are unique: the time range would only hide the match).
 */
export function parseSearch(q) {
  if (!q) return { where: null, allTime: false, description: '' };
  if (UUID.test(q)) {
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
  ];
  const payloads = can('invocations', 'source_event_payload');
  if (payloads) text.push({ source_event_payload: { _cast: { String: { _ilike: pattern } } } });
  return {
    where: { _or: text },
    description: `“${q}” in correlation id, user, event id, error${payloads ? ' or payload' : ''}`,
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
    search.where,
  ) || {};
}
