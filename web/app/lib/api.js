// What this caller may read (from the names the server announces), and helpers to build
// batched queries: many aliased root fields in one request, every value passed as a variable.
import { createStore } from './store.js';
import { auth, request, serverNames } from './graphql.js';

const TYPES = ['invocations', 'event_executions', 'job_executions', 'job_logs', 'plugin_instances'];

// { status: 'loading' | 'ready' | 'error', fields: {type: Set}, roots: Set, error }, in
// Hasura's default names whatever names the server serves.
// `admin`: the schema this tab gets has mutations, which only the admin role has.
export const capabilities = createStore({ status: 'loading', fields: {}, roots: new Set(), admin: false, error: null });

export async function loadCapabilities() {
  const version = auth.get().version;
  try {
    const adapter = await serverNames();
    if (auth.get().version !== version) return; // credentials changed meanwhile
    const fields = {};
    for (const type of TYPES) fields[type] = new Set(adapter.readable(type));
    const roots = new Set(adapter.readable(adapter.queryRoot));
    capabilities.set({ status: 'ready', fields, roots, admin: adapter.mutationRoot !== null, error: null });
  } catch (error) {
    if (auth.get().version !== version) return;
    capabilities.set({ status: 'error', fields: {}, roots: new Set(), admin: false, error });
  }
}

/** Whether the caller's role may read `field` of `type` (a column or relationship). */
export function can(type, field) {
  const set = capabilities.get().fields[type];
  return Boolean(set && set.has(field));
}

export function canRoot(field) {
  return capabilities.get().roots.has(field);
}

/** `fields` (a string of names) without the ones the caller may not read. */
export function readable(type, fields) {
  return fields
    .split(/\s+/)
    .filter((name) => name && can(type, name))
    .join(' ');
}

/** A query made of many aliased root fields, with typed variables. */
export class Batch {
  constructor(name) {
    this.name = name;
    this.fields = [];
    this.definitions = [];
    this.variables = {};
    this.count = 0;
  }

  /** A new variable of GraphQL `type` holding `value`; returns its reference ($v3). */
  variable(type, value) {
    const name = `v${this.count++}`;
    this.definitions.push(`$${name}: ${type}`);
    this.variables[name] = value;
    return `$${name}`;
  }

  add(text) {
    this.fields.push(text);
    return this;
  }

  get empty() {
    return this.fields.length === 0;
  }

  text() {
    const defs = this.definitions.length ? `(${this.definitions.join(', ')})` : '';
    return `query ${this.name}${defs} {\n${this.fields.join('\n')}\n}`;
  }

  run(signal) {
    if (this.empty) return Promise.resolve({});
    return request(this.text(), this.variables, { signal });
  }
}

/** `{_and: [...]}` of the filters given (falsy ones left out); `{}` (all rows) for none. */
export function and(...filters) {
  const parts = filters.filter(Boolean);
  if (!parts.length) return {};
  return parts.length === 1 ? parts[0] : { _and: parts };
}

/**
 * Continuous percentiles (as PostgreSQL's percentile_cont) of `column` over the rows of
 * `table` matching `where`, of which `n` have a value: two ordered rows per percentile
 * (limit 2 at offset floor((n - 1) p)), never the whole set. Adds fields to `batch`;
 * returns a function reading { p: value } from the batch's result.
 */
export function addPercentiles(batch, alias, table, where, column, n, ps = [0.5, 0.95]) {
  if (!n) return () => Object.fromEntries(ps.map((p) => [p, null]));
  const ref = batch.variable(`${table}_bool_exp!`, and(where, { [column]: { _is_null: false } }));
  const plan = ps.map((p, i) => {
    const position = (n - 1) * p;
    const offset = Math.floor(position);
    const name = `${alias}_p${i}`;
    batch.add(`${name}: ${table}(where: ${ref}, order_by: [{${column}: asc}, {id: asc}], offset: ${offset}, limit: 2) { ${column} }`);
    return { p, name, fraction: position - offset };
  });
  return (data) => {
    const values = {};
    for (const { p, name, fraction } of plan) {
      const rows = data[name] || [];
      if (!rows.length) values[p] = null;
      else if (rows.length === 1 || fraction === 0) values[p] = Number(rows[0][column]);
      else values[p] = Number(rows[0][column]) + fraction * (Number(rows[1][column]) - Number(rows[0][column]));
    }
    return values;
  };
}

export const BAD_STATUSES = ['failed', 'timeout', 'rejected'];
export const JOB_BAD_STATUSES = ['failed', 'timeout', 'cancelled'];

/** The live query every list and KPI page follows: it changes when invocations in the range do. */
export const CHANGES = `subscription Changes($where: invocations_bool_exp!) {
  invocations_aggregate(where: $where) { aggregate { count max { updated_at } } }
}`;
