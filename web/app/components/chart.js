// Time-series charts on uPlot: bars (counts per bucket) or lines (durations). The numbers
// are also in a visually hidden table, for screen readers and tests.
import { html } from 'htm/preact';
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import { fmtAbsolute } from '../lib/format.js';
import { cssColor, theme } from '../lib/theme.js';
import { useStore } from '../lib/store.js';

/**
 * `x`: bucket starts (ms); `series`: [{ label, values, color, kind: 'bars' | 'line' }].
 * Bars share the x position and are drawn in order, so a later (smaller) series shows
 * as the lower part of an earlier one: total, then failed on top of it.
 */
export function TimeChart({ x, series, height = 220, format = (v) => String(v), name, bucketMs }) {
  const box = useRef(null);
  const plot = useRef(null);
  const { theme: scheme } = useStore(theme);

  useEffect(() => {
    const element = box.current;
    if (!element) return undefined;
    // Bars stand in the middle of their bucket.
    const data = [x.map((t) => (t + (bucketMs || 0) / 2) / 1000), ...series.map((s) => s.values)];
    // The canvas does not read CSS: take the theme's colours now (redrawn on a change).
    const axisText = cssColor('--muted');
    const gridLine = cssColor('--border-soft');
    const barWidth = bucketMs ? Math.max(0.45, Math.min(0.8, 1 - 6 / Math.max(1, element.clientWidth / x.length))) : 0.7;
    const options = {
      width: element.clientWidth || 600,
      height,
      cursor: { points: { size: 6 }, drag: { x: false, y: false } },
      legend: { live: true },
      scales: {
        // Room for the first and last bars.
        x: { time: true, range: (u, min, max) => [min - (bucketMs || 0) / 2000, max + (bucketMs || 0) / 2000] }, y: { range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1] } },
      axes: [
        { stroke: axisText, grid: { stroke: gridLine }, ticks: { stroke: gridLine } },
        { stroke: axisText, grid: { stroke: gridLine }, ticks: { stroke: gridLine }, values: (u, ticks) => ticks.map(format), size: 64 },
      ],
      series: [
        // Away from the plot the legend sums the bars over the whole range (a line's
        // values, durations, do not add up); over a bucket it shows that bucket.
        { value: (u, v, si, idx) => (idx == null ? (series.some((s) => s.kind !== 'line') ? 'whole range' : 'hover for values') : v == null ? '—' : fmtAbsolute(v * 1000)) },
        ...series.map((s) => ({
          label: s.label,
          stroke: s.color,
          fill: s.kind === 'line' ? undefined : s.color,
          width: s.kind === 'line' ? 2 : 0,
          points: { show: s.kind === 'line', size: 4 },
          value: (u, v, si, idx) => {
            if (idx == null) return s.kind === 'line' ? '—' : format(s.values.reduce((sum, n) => sum + (n || 0), 0));
            return v == null ? '—' : format(v);
          },
          paths: s.kind === 'line' ? undefined : uPlot.paths.bars({ size: [barWidth, 48], align: 0 }),
          spanGaps: false,
        })),
      ],
    };
    plot.current?.destroy();
    plot.current = new uPlot(options, data, element);
    const resize = new ResizeObserver(() => {
      if (plot.current && element.clientWidth) plot.current.setSize({ width: element.clientWidth, height });
    });
    resize.observe(element);
    return () => {
      resize.disconnect();
      plot.current?.destroy();
      plot.current = null;
    };
  }, [JSON.stringify([x, series.map((s) => [s.label, s.values, s.color, s.kind])]), height, scheme]);

  return html`<div class="chart" data-chart=${name}>
    <div ref=${box} class="chart-canvas"></div>
    <table class="sr-only" data-chart-table=${name}>
      <thead><tr><th>bucket</th>${series.map((s) => html`<th>${s.label}</th>`)}</tr></thead>
      <tbody>${x.map((t, i) => html`<tr data-bucket=${new Date(t).toISOString()}><td>${fmtAbsolute(t)}</td>${series.map((s) => html`<td data-series=${s.label}>${s.values[i] ?? ''}</td>`)}</tr>`)}</tbody>
    </table>
  </div>`;
}
