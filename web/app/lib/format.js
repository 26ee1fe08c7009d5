// Formatting of numbers, durations, times and ids, used by every page.

const numberFormat = new Intl.NumberFormat('en-US');

export function fmtNumber(value) {
  if (value === null || value === undefined || Number.isNaN(value)) return '—';
  return numberFormat.format(value);
}

/** Milliseconds as a short duration: 840 ms, 1.24 s, 12.5 s, 3m 05s. */
export function fmtDuration(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return '—';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 10_000) return `${(ms / 1000).toFixed(2)} s`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const minutes = Math.floor(ms / 60_000);
  const seconds = Math.round((ms % 60_000) / 1000);
  if (minutes < 60) return `${minutes}m ${String(seconds).padStart(2, '0')}s`;
  return `${Math.floor(minutes / 60)}h ${String(minutes % 60).padStart(2, '0')}m`;
}

/** A ratio (0..1) as a percentage. */
export function fmtPercent(ratio, digits = 1) {
  if (ratio === null || ratio === undefined || Number.isNaN(ratio)) return '—';
  return `${(ratio * 100).toFixed(digits)}%`;
}

export function toDate(value) {
  if (value === null || value === undefined || value === '') return null;
  return value instanceof Date ? value : new Date(value);
}

/**
 * "just now", "12 s ago", "5 min ago", "3 h ago", "2 d ago". Never in the future: a row
 * that arrived after the page's clock last ticked (or a server clock a little ahead)
 * reads "just now", not "in 7 s".
 */
export function fmtRelative(value, now = Date.now()) {
  const date = toDate(value);
  if (!date) return '—';
  const s = Math.round((now - date.getTime()) / 1000);
  if (s < 5) return 'just now';
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86_400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86_400)} d ago`;
}

const dayTime = new Intl.DateTimeFormat('en-US', {
  month: 'short',
  day: 'numeric',
  hour: '2-digit',
  minute: '2-digit',
  second: '2-digit',
  hour12: false,
});
const clock = new Intl.DateTimeFormat('en-US', {
  hour: '2-digit',
  minute: '2-digit',
  second: '2-digit',
  hour12: false,
});

/** "Nov 24, 19:32:08" in the browser's time zone. */
export function fmtAbsolute(value) {
  const date = toDate(value);
  return date ? dayTime.format(date) : '—';
}

/** "19:32:08.123" */
export function fmtClock(value) {
  const date = toDate(value);
  if (!date) return '—';
  return `${clock.format(date)}.${String(date.getMilliseconds()).padStart(3, '0')}`;
}

/** Full ISO time with the browser's offset, for tooltips. */
export function fmtIso(value) {
  const date = toDate(value);
  if (!date) return '';
  const offset = -date.getTimezoneOffset();
  const sign = offset >= 0 ? '+' : '-';
  const pad = (n) => String(Math.floor(Math.abs(n))).padStart(2, '0');
  const local = new Date(date.getTime() + offset * 60_000).toISOString().slice(0, 23);
  return `${local}${sign}${pad(offset / 60)}:${pad(offset % 60)}`;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-/i;

/** A uuid's first 8 characters; other ids up to 16 characters. */
export function shortId(id) {
  if (!id) return '—';
  const text = String(id);
  if (UUID.test(text)) return text.slice(0, 8);
  return text.length > 16 ? `${text.slice(0, 15)}…` : text;
}

/** A value of a JSON document, on one line. */
export function fmtValue(value) {
  if (value === undefined) return '';
  if (value === null) return 'null';
  if (typeof value === 'string') return JSON.stringify(value);
  return JSON.stringify(value);
}

export function plural(count, one, many = `${one}s`) {
  return `${fmtNumber(count)} ${count === 1 ? one : many}`;
}

const UUID_TEXT = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Whether `text` is a uuid (what every recorded id is). */
export function isUuid(text) {
  return UUID_TEXT.test(String(text || ''));
}
