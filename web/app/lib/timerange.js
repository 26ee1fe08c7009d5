// The global time range (?range=1h|6h|24h|7d, or ?range=custom&from=…&to=…) and the
// chart buckets it implies.
import { useMemo } from 'preact/hooks';
import { useNow } from './hooks.js';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

export const PRESETS = [
  { key: '1h', ms: HOUR, label: 'Last hour' },
  { key: '6h', ms: 6 * HOUR, label: 'Last 6 hours' },
  { key: '24h', ms: DAY, label: 'Last 24 hours' },
  { key: '7d', ms: 7 * DAY, label: 'Last 7 days' },
];
export const DEFAULT_RANGE = '24h';

const BUCKETS = [MINUTE, 5 * MINUTE, 15 * MINUTE, 30 * MINUTE, HOUR, 3 * HOUR, 6 * HOUR, 12 * HOUR, DAY];
const MAX_BUCKETS = 30;

function validDate(text) {
  if (!text) return null;
  const date = new Date(text);
  return Number.isNaN(date.getTime()) ? null : date;
}

/**
 * The range described by URL `params` at time `now`: { key, from, to, fixed, spanMs,
 * label, error }. Open ranges (presets) have `to` null: they include what arrives now.
 * An invalid custom range falls back to the default preset and says why in `error`.
 */
export function parseRange(params, now = Date.now()) {
  let error = null;
  if (params.range === 'custom') {
    const from = validDate(params.from);
    const to = validDate(params.to);
    if (!from || !to) error = 'The custom range needs valid From and To dates.';
    else if (from >= to) error = 'The custom range must start before it ends.';
    else {
      return {
        key: 'custom',
        from,
        to,
        fixed: true,
        spanMs: to - from,
        label: 'Custom range',
        error: null,
      };
    }
  }
  const preset = PRESETS.find((p) => p.key === params.range) || PRESETS.find((p) => p.key === DEFAULT_RANGE);
  // Whole minutes: the window (and the queries' variables) move once a minute, not per render.
  const from = new Date(Math.floor((now - preset.ms) / MINUTE) * MINUTE);
  return { key: preset.key, from, to: null, fixed: false, spanMs: preset.ms, label: preset.label, error };
}

/** The range of the current URL, moving with the clock (once a minute) for presets. */
export function useTimeRange(params) {
  const now = useNow(MINUTE);
  const minute = Math.floor(now / MINUTE);
  return useMemo(() => parseRange(params, now), [params.range, params.from, params.to, minute]);
}

/** The period just before `range`, of the same length. */
export function previousPeriod(range) {
  return { from: new Date(range.from.getTime() - range.spanMs), to: range.from };
}

/** `created_at` bounds of a range as a Hasura filter. */
export function createdWithin({ from, to }, column = 'created_at') {
  const bounds = { _gte: from.toISOString() };
  if (to) bounds._lt = to.toISOString();
  return { [column]: bounds };
}

/**
 * Chart buckets over `range`: at most 30, of a round size; each { start, end } (ms),
 * clipped to the range. The last bucket of an open range has `end` null.
 */
export function bucketsFor(range, now = Date.now()) {
  const end = range.to ? range.to.getTime() : now;
  const start = range.from.getTime();
  const size = BUCKETS.find((b) => (end - start) / b <= MAX_BUCKETS) || DAY * Math.ceil((end - start) / DAY / MAX_BUCKETS);
  const buckets = [];
  for (let t = Math.floor(start / size) * size; t < end; t += size) {
    buckets.push({ start: Math.max(t, start), end: t + size >= end ? (range.to ? end : null) : t + size, label: t });
  }
  return { size, buckets };
}
