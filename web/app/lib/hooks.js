// Data hooks: a query that reloads when its inputs change or a live signal fires, a live
// "version" that changes whenever the server reports new data, and a ticking clock.
import { useEffect, useRef, useState } from 'preact/hooks';
import { watch } from './graphql.js';

/**
 * Run `fetcher(signal)` (an async function returning data) now, whenever `deps` change,
 * and again when `version` changes (live updates; at most once per `throttleMs`, the last
 * change always wins). While a reload runs, the previous data stays on screen.
 * Returns { data, error, loading, current } (`current`: the data answers these `deps`).
 */
export function useQuery(fetcher, deps, { version = 0, throttleMs = 1000, enabled = true } = {}) {
  const [state, setState] = useState({ data: undefined, error: null, loading: enabled });
  const latest = useRef({ fetcher, seq: 0, lastRun: 0, timer: null, controller: null });
  latest.current.fetcher = fetcher;
  const depsKey = JSON.stringify(deps);
  latest.current.depsKey = depsKey;

  const run = () => {
    const box = latest.current;
    const key = box.depsKey;
    box.seq += 1;
    const seq = box.seq;
    box.lastRun = Date.now();
    if (box.controller) box.controller.abort();
    const controller = new AbortController();
    box.controller = controller;
    setState((previous) => ({ ...previous, loading: true }));
    Promise.resolve()
      .then(() => box.fetcher(controller.signal))
      .then(
        (data) => {
          if (seq === box.seq) setState({ data, error: null, loading: false, key });
        },
        (error) => {
          if (error?.name === 'AbortError' || seq !== box.seq) return;
          setState((previous) => ({ ...previous, error, loading: false }));
        },
      );
  };

  useEffect(() => {
    if (!enabled) return undefined;
    run();
    return () => {
      const box = latest.current;
      box.seq += 1;
      if (box.controller) box.controller.abort();
      if (box.timer) clearTimeout(box.timer);
      box.timer = null;
    };
  }, [depsKey, enabled]);

  const firstVersion = useRef(true);
  useEffect(() => {
    if (firstVersion.current) {
      firstVersion.current = false;
      return;
    }
    if (!enabled) return;
    const box = latest.current;
    if (box.timer) return;
    const wait = Math.max(0, box.lastRun + throttleMs - Date.now());
    box.timer = setTimeout(() => {
      box.timer = null;
      run();
    }, wait);
  }, [version]);

  return { ...state, current: state.data !== undefined && state.key === depsKey };
}

/**
 * A number that grows each time the live query `operation` (a subscription with one,
 * small, root field) returns a different result. Pages reload their data when it grows.
 * Returns { version, data, error }.
 */
export function useLive(operation, variables, { enabled = true, pollMs = 1000 } = {}) {
  const [state, setState] = useState({ version: 0, data: undefined, error: null });
  const key = JSON.stringify([operation, variables]);
  useEffect(() => {
    if (!enabled) return undefined;
    return watch(
      operation,
      variables,
      (data) => setState((previous) => ({ version: previous.version + 1, data, error: null })),
      {
        pollMs,
        onError: (error) => setState((previous) => ({ ...previous, error })),
      },
    );
  }, [key, enabled]);
  return state;
}

/** The current time (ms), updated every `intervalMs` while `active`. */
export function useNow(intervalMs = 1000, active = true) {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    if (!active) return undefined;
    const timer = setInterval(() => setNow(Date.now()), intervalMs);
    return () => clearInterval(timer);
  }, [intervalMs, active]);
  return now;
}

/** `value`, once it stopped changing for `delayMs`. */
export function useDebounced(value, delayMs = 300) {
  const [settled, setSettled] = useState(value);
  useEffect(() => {
    const timer = setTimeout(() => setSettled(value), delayMs);
    return () => clearTimeout(timer);
  }, [value, delayMs]);
  return settled;
}

export const APP_NAME = 'Event Detector';

/** Name the browser tab after the page (`text · Event Detector`), so tabs and bookmarks differ. */
export function useTitle(text) {
  useEffect(() => {
    document.title = text ? `${text} · ${APP_NAME}` : APP_NAME;
  }, [text]);
}
