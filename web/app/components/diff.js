// The row change of a Hasura event: old → new per column, changed columns highlighted.
import { html } from 'htm/preact';
import { useState } from 'preact/hooks';

const LONG = 600;

function same(a, b) {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** Columns of old and new (new's order first) with whether each changed. */
export function diffRows(oldRow, newRow) {
  const columns = [...new Set([...Object.keys(newRow || {}), ...Object.keys(oldRow || {})])];
  return columns.map((column) => {
    const inOld = oldRow ? Object.prototype.hasOwnProperty.call(oldRow, column) : false;
    const inNew = newRow ? Object.prototype.hasOwnProperty.call(newRow, column) : false;
    const changed = Boolean(oldRow && newRow) && (inOld !== inNew || !same(oldRow[column], newRow[column]));
    return { column, old: inOld ? oldRow[column] : undefined, new: inNew ? newRow[column] : undefined, inOld, inNew, changed };
  });
}

function Value({ value, present }) {
  const [all, setAll] = useState(false);
  if (!present) return html`<span class="muted">—</span>`;
  const text = value !== null && typeof value === 'object' ? JSON.stringify(value, null, 2) : JSON.stringify(value);
  if (text.length <= LONG || all) return html`<pre class="cell-json">${text}</pre>`;
  return html`<pre class="cell-json">${text.slice(0, LONG)}…</pre><button type="button" class="btn link small" onClick=${() => setAll(true)}>show all ${text.length.toLocaleString()} characters</button>`;
}

export function RowDiff({ op, oldRow, newRow }) {
  const rows = diffRows(oldRow, newRow);
  const changedCount = rows.filter((r) => r.changed).length;
  const [onlyChanged, setOnlyChanged] = useState(false);
  if (!oldRow && !newRow) return html`<div class="muted pad">This payload carries no row data.</div>`;
  const shown = onlyChanged ? rows.filter((r) => r.changed) : rows;
  return html`<div class="diff" data-diff>
    <div class="diff-head">
      <span>${op === 'UPDATE' ? html`<strong data-changed-count=${changedCount}>${changedCount}</strong> of ${rows.length} columns changed` : op === 'INSERT' ? `New row, ${rows.length} columns` : op === 'DELETE' ? `Deleted row, ${rows.length} columns` : `${rows.length} columns`}</span>
      ${oldRow && newRow ? html`<label class="check small"><input type="checkbox" checked=${onlyChanged} onChange=${(e) => setOnlyChanged(e.target.checked)} data-only-changed /> Changed columns only</label>` : null}
    </div>
    <table class="table diff-table">
      <thead><tr><th>Column</th>${oldRow ? html`<th>Old</th>` : null}${newRow ? html`<th>New</th>` : null}</tr></thead>
      <tbody>${shown.map(
        (r) => html`<tr class=${`diff-row ${r.changed ? 'changed' : ''}`} data-column=${r.column} data-changed=${r.changed ? '1' : '0'}>
          <td class="mono strong">${r.column}</td>
          ${oldRow ? html`<td class=${r.changed ? 'diff-old' : ''}><${Value} value=${r.old} present=${r.inOld} /></td>` : null}
          ${newRow ? html`<td class=${r.changed ? 'diff-new' : ''}><${Value} value=${r.new} present=${r.inNew} /></td>` : null}
        </tr>`,
      )}</tbody>
    </table>
  </div>`;
}
