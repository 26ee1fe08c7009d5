// The flow graph: invocations → events (undetected ones grouped) → jobs → the invocations
// their row changes triggered, and re-runs beside the invocations they repeat. Laid out by dagre (left to right), drawn as HTML nodes over
// SVG edges, with pan (drag), zoom (wheel, buttons, + - 0 keys) and selection.
import { html } from 'htm/preact';
import { useEffect, useLayoutEffect, useMemo, useRef, useState } from 'preact/hooks';
import dagre from '@dagrejs/dagre';
import { fmtDuration, shortId, toDate } from '../lib/format.js';
import { OpBadge, StatusBadge } from './ui.js';

const SIZES = { invocation: [232, 76], event: [208, 62], group: [176, 44], job: [196, 58], stub: [176, 44] };

/** Nodes and edges for a set of invocations that share a correlation id. */
export function buildFlow(invocations) {
  const nodes = [];
  const edges = [];
  const known = new Set(invocations.map((i) => i.id));
  const jobIds = new Set();
  const add = (id, kind, data) => nodes.push({ id, kind, data, width: SIZES[kind][0], height: SIZES[kind][1] });
  for (const inv of invocations) {
    add(`inv:${inv.id}`, 'invocation', inv);
    const undetected = inv.event_executions.filter((e) => e.status === 'not_detected');
    for (const event of inv.event_executions) {
      if (event.status === 'not_detected' || event.status === 'skipped') continue;
      add(`ev:${event.id}`, 'event', event);
      edges.push({ from: `inv:${inv.id}`, to: `ev:${event.id}`, kind: event.detected ? 'detected' : 'failed' });
    }
    if (undetected.length) {
      add(`und:${inv.id}`, 'group', { invocation: inv, events: undetected });
      edges.push({ from: `inv:${inv.id}`, to: `und:${inv.id}`, kind: 'undetected' });
    }
    for (const job of inv.job_executions) {
      jobIds.add(job.id);
      add(`job:${job.id}`, 'job', job);
      edges.push({ from: `ev:${job.event_execution_id}`, to: `job:${job.id}`, kind: 'job' });
      for (const child of job.triggered_invocations || []) {
        if (!known.has(child.id)) {
          add(`stub:${child.id}`, 'stub', child);
          known.add(child.id);
        }
        const target = invocations.some((i) => i.id === child.id) ? `inv:${child.id}` : `stub:${child.id}`;
        edges.push({ from: `job:${job.id}`, to: target, kind: 'cascade' });
      }
    }
  }
  // A child whose parent job is not in the set (e.g. not written yet) still shows its link.
  for (const inv of invocations) {
    if (inv.source_job_id && !jobIds.has(inv.source_job_id)) {
      add(`srcjob:${inv.source_job_id}`, 'stub', { id: inv.source_job_id, job: true });
      edges.push({ from: `srcjob:${inv.source_job_id}`, to: `inv:${inv.id}`, kind: 'cascade' });
    }
  }
  // A re-run (`context_data.rerun_of`, read as `rerun_of` when the role may) shares its
  // original's correlation id: link the two.
  for (const inv of invocations) {
    if (typeof inv.rerun_of === 'string' && known.has(inv.rerun_of)) {
      edges.push({ from: `inv:${inv.rerun_of}`, to: `inv:${inv.id}`, kind: 'rerun' });
    }
  }
  const ids = new Set(nodes.map((n) => n.id));
  return { nodes, edges: edges.filter((e) => ids.has(e.from) && ids.has(e.to)) };
}

export function layoutFlow({ nodes, edges }) {
  const graph = new dagre.graphlib.Graph();
  graph.setGraph({ rankdir: 'LR', nodesep: 14, ranksep: 52, marginx: 24, marginy: 24 });
  graph.setDefaultEdgeLabel(() => ({}));
  for (const node of nodes) graph.setNode(node.id, { width: node.width, height: node.height });
  for (const edge of edges) graph.setEdge(edge.from, edge.to);
  dagre.layout(graph);
  const placed = nodes.map((node) => {
    const { x, y } = graph.node(node.id);
    return { ...node, x: x - node.width / 2, y: y - node.height / 2 };
  });
  const byId = new Map(placed.map((n) => [n.id, n]));
  const paths = edges.map((edge) => {
    const a = byId.get(edge.from);
    const b = byId.get(edge.to);
    const x1 = a.x + a.width;
    const y1 = a.y + a.height / 2;
    const x2 = b.x;
    const y2 = b.y + b.height / 2;
    const dx = Math.max(24, (x2 - x1) / 2);
    return { ...edge, d: `M${x1},${y1} C${x1 + dx},${y1} ${x2 - dx},${y2} ${x2 - 6},${y2}` };
  });
  const { width, height } = graph.graph();
  return { nodes: placed, edges: paths, width: width || 200, height: height || 100 };
}

const ms = (value) => (value ? toDate(value).getTime() : null);

function liveDuration(startValue, durationMs, running, now) {
  if (running) return html`<span class="ticking" data-ticking>${fmtDuration(Math.max(0, now - ms(startValue)))}</span>`;
  return fmtDuration(durationMs);
}

function NodeBody({ node, now }) {
  const d = node.data;
  if (node.kind === 'invocation') {
    return html`<div class="n-title"><span class="strong truncate">${d.source_function}</span>${typeof d.rerun_of === 'string' ? html`<span class="chip small info" data-rerun-chip>re-run</span>` : null}<${OpBadge} op=${d.source_operation} /></div>
      <div class="n-line"><${StatusBadge} status=${d.status} /><span class="muted">${liveDuration(d.created_at, d.total_duration_ms, d.status === 'running', now)}</span></div>
      <div class="n-line muted small"><span class="truncate">${d.events_detected_count} detected · ${d.total_jobs_run} job${d.total_jobs_run === 1 ? '' : 's'}${d.total_jobs_failed ? html` · <span class="bad-text">${d.total_jobs_failed} failed</span>` : ''}</span></div>`;
  }
  if (node.kind === 'event') {
    return html`<div class="n-title"><span class="mono truncate">${d.event_name}</span></div>
      <div class="n-line"><${StatusBadge} status=${d.status} /><span class="muted small nowrap">${d.jobs_count} job${d.jobs_count === 1 ? '' : 's'}${d.jobs_failed ? html` · <span class="bad-text">${d.jobs_failed} failed</span>` : ''}</span></div>`;
  }
  if (node.kind === 'group') {
    return html`<div class="n-title muted">${d.events.length} not detected</div><div class="n-line muted small">click for the list</div>`;
  }
  if (node.kind === 'job') {
    const running = d.status === 'running';
    const triggered = d.triggered_invocations?.length || 0;
    return html`<div class="n-title"><span class=${`dot-status status-${d.status}`}></span><span class="mono truncate">${d.job_name}</span>${d.attempts > 1 ? html`<span class="chip small warn">×${d.attempts}</span>` : null}</div>
      <div class="n-line"><span class="muted">${liveDuration(d.started_at || d.created_at, d.duration_ms, running, now)}</span>${triggered ? html`<span class="chip small info">→ ${triggered} invocation${triggered === 1 ? '' : 's'}</span>` : html`<span class="muted small">${d.status}</span>`}</div>`;
  }
  return html`<div class="n-title muted">${d.job ? 'source job' : 'invocation'} <span class="mono">${shortId(d.id)}</span></div><div class="n-line muted small">${d.job ? 'not recorded yet' : 'outside this view'}</div>`;
}

export function FlowGraph({ invocations, focusId, selected, onSelect, now, filter }) {
  const layout = useMemo(() => layoutFlow(buildFlow(invocations)), [JSON.stringify(invocations)]);
  const viewport = useRef(null);
  const [view, setView] = useState(null);
  const drag = useRef(null);

  const fit = (readable = false) => {
    const box = viewport.current;
    if (!box) return;
    const { clientWidth: w, clientHeight: h } = box;
    const whole = Math.min(1.1, Math.max(0.15, Math.min(w / layout.width, h / layout.height) * 0.95));
    // At first, never so small that labels cannot be read: show the focused invocation
    // at a readable size instead, and let the user pan or press Fit for the whole graph.
    const k = readable ? Math.max(whole, 0.75) : whole;
    if (k === whole) return setView({ k, x: (w - layout.width * k) / 2, y: (h - layout.height * k) / 2 });
    const focus = layout.nodes.find((n) => n.id === `inv:${focusId}`) || layout.nodes[0];
    const y = layout.height * k < h ? (h - layout.height * k) / 2 : Math.min(24, Math.max(h - layout.height * k - 24, h / 2 - (focus.y + focus.height / 2) * k));
    const x = Math.min(24, 40 - focus.x * k);
    setView({ k, x, y });
  };
  const zoom = (factor, cx, cy) => {
    setView((v) => {
      if (!v) return v;
      const box = viewport.current;
      const px = cx ?? box.clientWidth / 2;
      const py = cy ?? box.clientHeight / 2;
      const k = Math.min(2.5, Math.max(0.15, v.k * factor));
      return { k, x: px - ((px - v.x) * k) / v.k, y: py - ((py - v.y) * k) / v.k };
    });
  };

  // Fit once the first layout is known; later updates keep the user's pan and zoom.
  const fitted = useRef(false);
  useLayoutEffect(() => {
    if (!fitted.current && layout.nodes.length) {
      fitted.current = true;
      fit(true);
    }
  }, [layout]);

  useEffect(() => {
    const box = viewport.current;
    const onWheel = (event) => {
      event.preventDefault();
      const rect = box.getBoundingClientRect();
      zoom(Math.exp(-event.deltaY * 0.0015), event.clientX - rect.left, event.clientY - rect.top);
    };
    box.addEventListener('wheel', onWheel, { passive: false });
    const onKey = (event) => {
      if (event.target && ['INPUT', 'TEXTAREA', 'SELECT'].includes(event.target.tagName)) return;
      if (event.key === '+' || event.key === '=') zoom(1.2);
      else if (event.key === '-') zoom(1 / 1.2);
      else if (event.key === '0') fit();
      else if (event.key === 'Escape') onSelect(null);
    };
    addEventListener('keydown', onKey);
    return () => {
      box.removeEventListener('wheel', onWheel);
      removeEventListener('keydown', onKey);
    };
  }, [layout]);

  const onPointerDown = (event) => {
    if (event.target.closest('.flow-node, .flow-controls')) return;
    drag.current = { x: event.clientX, y: event.clientY, moved: false };
    viewport.current.setPointerCapture(event.pointerId);
  };
  const onPointerMove = (event) => {
    const start = drag.current;
    if (!start) return;
    const dx = event.clientX - start.x;
    const dy = event.clientY - start.y;
    if (Math.abs(dx) + Math.abs(dy) > 2) start.moved = true;
    start.x = event.clientX;
    start.y = event.clientY;
    setView((v) => (v ? { ...v, x: v.x + dx, y: v.y + dy } : v));
  };
  const onPointerUp = () => {
    const start = drag.current;
    drag.current = null;
    if (start && !start.moved) onSelect(null);
  };

  const needle = (filter || '').trim().toLowerCase();
  const matches = (node) => {
    if (!needle) return true;
    const d = node.data;
    const text = [d.source_function, d.correlation_id, d.event_name, d.job_name, ...(d.events || []).map((e) => e.event_name)].filter(Boolean).join(' ').toLowerCase();
    return text.includes(needle);
  };
  const v = view || { k: 1, x: 0, y: 0 };
  return html`<div class="flow-viewport" ref=${viewport} onPointerDown=${onPointerDown} onPointerMove=${onPointerMove} onPointerUp=${onPointerUp} data-flow-viewport>
    <div class="flow-layer" data-flow-layer style=${`transform: translate(${v.x}px, ${v.y}px) scale(${v.k}); width:${layout.width}px; height:${layout.height}px`}>
      <svg class="flow-edges" width=${layout.width} height=${layout.height}>
        <defs>${['detected', 'failed', 'undetected', 'job', 'cascade', 'rerun'].map((kind) => html`<marker id=${`arrow-${kind}`} viewBox="0 0 8 8" refX="6" refY="4" markerWidth="8" markerHeight="8" orient="auto"><path d="M0,0 L8,4 L0,8 z" class=${`arrow-${kind}`} /></marker>`)}</defs>
        ${layout.edges.map((edge) => {
          const target = layout.nodes.find((n) => n.id === edge.to);
          const running = target?.data?.status === 'running';
          return html`<path d=${edge.d} class=${`edge edge-${edge.kind} ${running ? 'edge-running' : ''}`} data-edge-from=${edge.from} data-edge-to=${edge.to} marker-end=${`url(#arrow-${edge.kind})`} />`;
        })}
      </svg>
      ${layout.nodes.map(
        (node) => html`<div class=${`flow-node node-${node.kind} status-${node.data.status || 'none'} ${selected === node.id ? 'selected' : ''} ${node.id === `inv:${focusId}` ? 'focus' : ''} ${matches(node) ? '' : 'dim'}`}
            style=${`left:${node.x}px;top:${node.y}px;width:${node.width}px;height:${node.height}px`}
            data-node=${node.id} data-kind=${node.kind} data-status=${node.data.status || ''} tabindex="0" role="button"
            onClick=${(event) => { event.stopPropagation(); onSelect(node.id); }}
            onKeyDown=${(event) => { if (event.key === 'Enter') onSelect(node.id); }}>
          <${NodeBody} node=${node} now=${now} />
        </div>`,
      )}
    </div>
    <div class="flow-controls">
      <button type="button" class="btn small" title="Zoom in (+)" onClick=${() => zoom(1.2)} data-zoom-in>+</button>
      <button type="button" class="btn small" title="Zoom out (-)" onClick=${() => zoom(1 / 1.2)} data-zoom-out>−</button>
      <button type="button" class="btn small" title="Fit (0)" onClick=${() => fit()} data-zoom-fit>Fit</button>
      <span class="muted small">${Math.round(v.k * 100)}%</span>
    </div>
  </div>`;
}
