// The client of the service's Hasura-compatible GraphQL API: HTTP for queries, graphql-ws
// (graphql-transport-ws) for live updates, with a polling fallback when the server does
// not keep subscriptions open or the socket is down.
//
// Operations are written in Hasura's default names. The server announces the names it
// serves (a deployment may customize them as Hasura does); every operation goes out in
// those, and every answer comes back in the shape it was written for (./names.js).
//
// Nothing secret is built into the page: by default no credential is sent, and the API
// answers with its unauthorized role (or asks for one). A user who has the admin secret
// types it on the Settings page; it lives in sessionStorage (this tab only) and is sent as
// `x-hasura-admin-secret`, like any Hasura client does.
import { createClient } from 'graphql-ws';
import { createAdapter } from './names.js';
import { createStore } from './store.js';

// Relative to the page's base: the API is where the page was served, under any prefix.
export const GRAPHQL_PATH = new URL('v1/graphql', document.baseURI).pathname;
const NAMES_PATH = new URL('v1/graphql/names', document.baseURI).pathname;
const HEALTH_PATH = new URL('healthz', document.baseURI).pathname;
const AUTH_KEY = 'event-detector.auth';
const AUTH_CODES = new Set(['access-denied', 'invalid-headers', 'invalid-jwt']);

// The names adapter for this tab's credentials (a promise; see serverNames), or null.
let names = null;

export class GraphQLRequestError extends Error {
  constructor(errors) {
    const first = errors[0] || {};
    super(first.message || 'GraphQL error');
    this.name = 'GraphQLRequestError';
    this.code = first.extensions?.code || 'unexpected';
    this.errors = errors;
  }
}

export class NetworkError extends Error {
  constructor(message) {
    super(message);
    this.name = 'NetworkError';
  }
}

// -- auth (sessionStorage) -----------------------------------------------------------

function loadAuth() {
  try {
    const saved = JSON.parse(sessionStorage.getItem(AUTH_KEY) || '{}');
    return { adminSecret: saved.adminSecret || '', role: saved.role || '' };
  } catch {
    return { adminSecret: '', role: '' };
  }
}

export const auth = createStore({ ...loadAuth(), version: 0 });

export function setAuth({ adminSecret, role }) {
  const next = { adminSecret: adminSecret || '', role: role || '' };
  if (next.adminSecret || next.role) sessionStorage.setItem(AUTH_KEY, JSON.stringify(next));
  else sessionStorage.removeItem(AUTH_KEY);
  auth.set({ ...next, version: auth.get().version + 1 });
  names = null; // each role has its own map: asked again with the new credentials
  resetSocket();
  connection.set({ authError: null, live: 'unknown' });
  liveSupport = 'unknown';
}

export function authHeaders() {
  const { adminSecret, role } = auth.get();
  const headers = {};
  if (adminSecret) headers['x-hasura-admin-secret'] = adminSecret;
  if (role) headers['x-hasura-role'] = role;
  return headers;
}

// -- connection state ------------------------------------------------------------------

// http: 'unknown' | 'ok' | 'down'; ws: 'idle' | 'open' | 'closed';
// live: 'unknown' | 'push' (server pushes changes) | 'poll' (we ask every second).
export const connection = createStore({
  http: 'unknown',
  httpError: null,
  ws: 'idle',
  live: 'unknown',
  paused: false,
  authError: null,
  lastOk: null,
});

export function setPaused(paused) {
  connection.set({ paused });
}

let probe = null;

function httpOk() {
  connection.set({ http: 'ok', httpError: null, lastOk: Date.now() });
  if (probe) {
    clearInterval(probe);
    probe = null;
  }
}

function httpDown(message) {
  connection.set({ http: 'down', httpError: message });
  // With live queries pushed over the socket, no later request may come to tell that
  // HTTP works again: probe until it does.
  if (!probe) {
    probe = setInterval(async () => {
      try {
        if ((await fetch(HEALTH_PATH, { cache: 'no-store' })).ok) httpOk();
      } catch {
        // still unreachable
      }
    }, 2000);
  }
}

// -- HTTP ---------------------------------------------------------------------------------

/** The JSON body of the API's answer to `fetch(path, init)`; throws NetworkError or
 * GraphQLRequestError (Hasura's `errors`) as the request fails. */
async function call(path, init) {
  let response;
  try {
    response = await fetch(path, { ...init, headers: { ...init.headers, ...authHeaders() } });
  } catch (error) {
    if (error.name === 'AbortError') throw error;
    httpDown(`cannot reach ${path} (${error.message})`);
    throw new NetworkError(`The API is unreachable: ${error.message}`);
  }
  if (!response.ok) {
    const message = `${path} answered HTTP ${response.status}`;
    httpDown(message);
    throw new NetworkError(message);
  }
  const body = await response.json();
  httpOk();
  if (body.errors?.length) {
    const error = new GraphQLRequestError(body.errors);
    if (AUTH_CODES.has(error.code)) connection.set({ authError: error.message });
    throw error;
  }
  return body;
}

/** The names the server serves to this tab's credentials, as an adapter (./names.js):
 * asked once per credentials, and again after a failure. */
export function serverNames() {
  if (!names) {
    const loading = call(NAMES_PATH, { cache: 'no-store' }).then(createAdapter);
    names = loading;
    loading.catch(() => {
      if (names === loading) names = null;
    });
  }
  return names;
}

/** Run `query` (written in the default names); returns its `data`, in those names. */
export async function request(query, variables = {}, { signal } = {}) {
  const adapted = (await serverNames()).operation(query, variables);
  const body = await call(GRAPHQL_PATH, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ query: adapted.query, variables: adapted.variables }),
    signal,
  });
  return adapted.data(body.data);
}

// -- WebSocket -------------------------------------------------------------------------

let socket = null;

// graphql-ws may send on a socket that has begun to close (a subscription starting as the
// credentials change and the old client is disposed), which the browser reports as an
// error. What a closing socket cannot carry is dropped: the close reaches every sink.
class ClosingAwareWebSocket extends WebSocket {
  send(data) {
    if (this.readyState === WebSocket.OPEN) super.send(data);
  }
}

function socketClient() {
  if (socket) return socket;
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  socket = createClient({
    url: `${scheme}://${location.host}${GRAPHQL_PATH}`,
    webSocketImpl: ClosingAwareWebSocket,
    lazy: true,
    keepAlive: 10_000,
    retryAttempts: Infinity,
    shouldRetry: () => true,
    retryWait: (retries) => new Promise((resolve) => setTimeout(resolve, Math.min(500 * 2 ** retries, 5000))),
    connectionParams: () => ({ headers: authHeaders() }),
    on: {
      connected: () => connection.set({ ws: 'open' }),
      closed: () => {
        clearTimeout(pongTimer);
        connection.set({ ws: 'closed' });
      },
      // A socket whose network went away can stay "open" without a word: a ping left
      // unanswered for PONG_TIMEOUT_MS means it is dead (graphql-ws's own recipe).
      ping: (received) => {
        if (received) return;
        const client = socket;
        clearTimeout(pongTimer);
        pongTimer = setTimeout(() => client?.terminate(), PONG_TIMEOUT_MS);
      },
      pong: (received) => {
        if (received) clearTimeout(pongTimer);
      },
    },
  });
  return socket;
}

const PONG_TIMEOUT_MS = 5000;
let pongTimer = null;

// The browser knows first when the network is gone: say so at once, and stop trusting the
// socket (it reconnects, retrying, when the network is back).
addEventListener('offline', () => {
  httpDown('the browser is offline');
  socket?.terminate();
});
addEventListener('online', async () => {
  try {
    if ((await fetch(HEALTH_PATH, { cache: 'no-store' })).ok) httpOk();
  } catch {
    // not yet: the probe keeps asking
  }
});

function resetSocket() {
  const old = socket;
  socket = null;
  if (old) old.dispose();
  connection.set({ ws: 'idle' });
}

// 'unknown' until the first subscription tells: one that completes right after its first
// result means the server answers subscriptions once (no live queries): poll instead.
let liveSupport = 'unknown';

function asQuery(operation) {
  return operation.replace(/^\s*subscription\b/, 'query');
}

/**
 * Follow a live query: `onData(data)` runs with the first result and again whenever the
 * result changes. `operation` is a `subscription` with one root field. Returns a function
 * that stops it. Results are held back while the user paused live updates.
 */
export function watch(operation, variables, onData, { pollMs = 1000, onError } = {}) {
  let stopped = false;
  let timer = null;
  let polling = false;
  let dispose = null;
  let last = null;
  let pending = null;

  const report = (error) => {
    if (onError) onError(error);
  };
  const deliver = (data) => {
    const key = JSON.stringify(data);
    if (key === last) return;
    if (connection.get().paused && last !== null) {
      pending = data;
      return;
    }
    last = key;
    onData(data);
  };
  const unpause = connection.subscribe((state) => {
    if (!state.paused && pending !== null) {
      const data = pending;
      pending = null;
      deliver(data);
    }
  });

  const poll = async () => {
    timer = null;
    if (stopped) return;
    if (!connection.get().paused || last === null) {
      try {
        deliver(await request(asQuery(operation), variables));
      } catch (error) {
        if (!(error instanceof NetworkError)) report(error);
      }
    }
    if (!stopped) timer = setTimeout(poll, document.hidden ? Math.max(pollMs, 5000) : pollMs);
  };
  const startPolling = () => {
    if (stopped || polling) return;
    polling = true;
    connection.set({ live: 'poll' });
    poll();
  };

  const subscribe = (adapter) => {
    if (stopped) return;
    if (liveSupport === 'poll') {
      startPolling();
      return;
    }
    let first = true;
    const adapted = adapter.operation(operation, variables);
    dispose = socketClient().subscribe(
      { query: adapted.query, variables: adapted.variables },
      {
        next: (result) => {
          if (result.errors?.length) {
            report(new GraphQLRequestError(result.errors));
            return;
          }
          if (first) {
            first = false;
            // Still open a moment after the first result: the server pushes changes.
            setTimeout(() => {
              if (!stopped && !polling) {
                liveSupport = 'push';
                connection.set({ live: 'push' });
              }
            }, 1500);
          }
          deliver(adapted.data(result.data));
        },
        error: (error) => {
          if (stopped) return;
          if (Array.isArray(error)) {
            const failure = new GraphQLRequestError(error);
            if (AUTH_CODES.has(failure.code)) connection.set({ authError: failure.message });
            report(failure);
          } else {
            startPolling();
          }
        },
        complete: () => {
          if (stopped) return;
          liveSupport = 'poll';
          startPolling();
        },
      },
    );
  };

  if (liveSupport === 'poll' || typeof WebSocket === 'undefined') {
    startPolling();
  } else {
    // Polling asks for the names again as long as the server cannot tell them.
    serverNames().then(subscribe, () => !stopped && startPolling());
  }
  return () => {
    stopped = true;
    unpause();
    if (dispose) dispose();
    if (timer) clearTimeout(timer);
  };
}
