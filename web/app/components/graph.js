// The flow graph: invocations → events (undetected ones grouped) → jobs → the invocations
// their row changes triggered, and re-runs beside the invocations they repeat. Laid out by
// dagre (left to right), drawn as HTML nodes over SVG edges. It opens with the whole graph
// in view; pan by dragging (one finger), zoom with the wheel, two fingers, the buttons or
// + - 0 keys, arrows pan. What lies outside the view is counted, and a minimap shows where.
import { html } from 'htm/preact';
import { useEffect, useLayoutEffect, useMemo, useRef, useState } from 'preact/hooks';
import dagre from '@dagrejs/dagre';
import { fmtDuration, shortId, toDate } from '../lib/format.js';
import { EventStatusBadge, OpBadge, StatusBadge, StatusIcon, eventStatus } from './ui.js';

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

/** Positions for the nodes and paths for the edges: left to right, or top to bottom
 * (`vertical`, for narrow screens, where a wide graph would shrink to nothing). */
export function layoutFlow({ nodes, edges }, vertical = false) {
  const graph = new dagre.graphlib.Graph();
  graph.setGraph({ rankdir: vertical ? 'TB' : 'LR', nodesep: vertical ? 12 : 14, ranksep: vertical ? 40 : 52, marginx: 16, marginy: 16 });
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
    if (vertical) {
      const x1 = a.x + a.width / 2;
      const y1 = a.y + a.height;
      const x2 = b.x + b.width / 2;
      const y2 = b.y;
      const dy = Math.max(18, (y2 - y1) / 2);
      return { ...edge, d: `M${x1},${y1} C${x1},${y1 + dy} ${x2},${y2 - dy} ${x2},${y2 - 6}` };
    }
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
      <div class="n-line"><${EventStatusBadge} event=${d} />${d.jobs_failed ? null : html`<span class="muted small nowrap">${d.jobs_count} job${d.jobs_count === 1 ? '' : 's'}</span>`}</div>`;
  }
  if (node.kind === 'group') {
    return html`<div class="n-title muted">${d.events.length} not detected</div><div class="n-line muted small">click for the list</div>`;
  }
  if (node.kind === 'job') {
    const running = d.status === 'running';
    const triggered = d.triggered_invocations?.length || 0;
    return html`<div class="n-title"><${StatusIcon} status=${d.status} /><span class="mono truncate">${d.job_name}</span>${d.attempts > 1 ? html`<span class="chip small warn">×${d.attempts}</span>` : null}</div>
      <div class="n-line"><span class="muted">${liveDuration(d.started_at || d.created_at, d.duration_ms, running, now)}</span>${triggered ? html`<span class="chip small info">→ ${triggered} invocation${triggered === 1 ? '' : 's'}</span>` : html`<span class="muted small">${d.status}</span>`}</div>`;
  }
  return html`<div class="n-title muted">${d.job ? 'source job' : 'invocation'} <span class="mono">${shortId(d.id)}</span></div><div class="n-line muted small">${d.job ? 'not recorded yet' : 'outside this view'}</div>`;
}

const MIN_ZOOM = 0.15;
const MAX_ZOOM = 2.5;
const PAN_STEP = 60;

/** How many `nodes` lie (even partly) outside a `width` × `height` viewport at `view`. */
export function nodesOffScreen(nodes, view, width, height) {
  return nodes.filter((n) => {
    const left = view.x + n.x * view.k;
    const top = view.y + n.y * view.k;
    return left < -0.5 || top < -0.5 || left + n.width * view.k > width + 0.5 || top + n.height * view.k > height + 0.5;
  }).length;
}

function Minimap({ layout, view, width, height, onCenter }) {
  const scale = Math.min(150 / layout.width, 96 / layout.height);
  const point = (event) => {
    const rect = event.currentTarget.getBoundingClientRect();
    onCenter((event.clientX - rect.left) / scale, (event.clientY - rect.top) / scale);
  };
  const frame = { x: -view.x / view.k, y: -view.y / view.k, w: width / view.k, h: height / view.k };
  return html`<svg class="minimap" data-minimap width=${layout.width * scale} height=${layout.height * scale} aria-label="Minimap: click to move the view there" role="img"
      onPointerDown=${(e) => { e.stopPropagation(); e.currentTarget.setPointerCapture(e.pointerId); point(e); }}
      onPointerMove=${(e) => e.buttons && point(e)}>
    ${layout.nodes.map((n) => html`<rect class=${`mm-node mm-${n.kind} status-${n.data.status || 'none'}`} x=${n.x * scale} y=${n.y * scale} width=${n.width * scale} height=${n.height * scale} rx="1.5" />`)}
    <rect class="mm-frame" x=${frame.x * scale} y=${frame.y * scale} width=${frame.w * scale} height=${frame.h * scale} />
  </svg>`;
}

/** How far the whole of `layout` may be zoomed to fit a `width` × `height` box. */
function fitZoom(layout, width, height) {
  return Math.min(1.1, Math.max(MIN_ZOOM, Math.min((width - 16) / layout.width, (height - 16) / layout.height)));
}

export function FlowGraph({ invocations, focusId, selected, onSelect, now, filter }) {
  // Both orientations are laid out; the one whose whole graph reads larger in the box is
  // shown (left to right unless top to bottom is clearly better, as on a phone).
  const layouts = useMemo(() => {
    const flow = buildFlow(invocations);
    return { across: layoutFlow(flow, false), down: layoutFlow(flow, true) };
  }, [JSON.stringify(invocations)]);
  const [vertical, setVertical] = useState(false);
  const layout = vertical ? layouts.down : layouts.across;
  const viewport = useRef(null);
  const [view, setView] = useState(null);
  const [size, setSize] = useState({ width: 0, height: 0 });
  const pointers = useRef(new Map());
  const gesture = useRef(null);
  const touched = useRef(false); // the user moved the view: stop fitting it on resize

  /** The whole graph in view, centred (zoomed in no further than 110%). */
  const fit = (shown = layout) => {
    const box = viewport.current;
    if (!box || !box.clientWidth) return;
    const { clientWidth: w, clientHeight: h } = box;
    const k = fitZoom(shown, w, h);
    setView({ k, x: (w - shown.width * k) / 2, y: (h - shown.height * k) / 2 });
  };
  /** Pick the orientation for the box (until the user moves the view), and fit it. */
  const arrange = () => {
    const box = viewport.current;
    if (!box || !box.clientWidth || touched.current) return;
    const { clientWidth: w, clientHeight: h } = box;
    const down = fitZoom(layouts.down, w, h) > fitZoom(layouts.across, w, h) * 1.15;
    setVertical(down);
    fit(down ? layouts.down : layouts.across);
  };
  const zoom = (factor, cx, cy) => {
    touched.current = true;
    setView((v) => {
      if (!v) return v;
      const box = viewport.current;
      const px = cx ?? box.clientWidth / 2;
      const py = cy ?? box.clientHeight / 2;
      const k = Math.min(MAX_ZOOM, Math.max(MIN_ZOOM, v.k * factor));
      return { k, x: px - ((px - v.x) * k) / v.k, y: py - ((py - v.y) * k) / v.k };
    });
  };
  const pan = (dx, dy) => {
    touched.current = true;
    setView((v) => (v ? { ...v, x: v.x + dx, y: v.y + dy } : v));
  };
  const center = (gx, gy) => {
    touched.current = true;
    setView((v) => (v ? { ...v, x: size.width / 2 - gx * v.k, y: size.height / 2 - gy * v.k } : v));
  };

  // Fit when the first layout is known, and again when the box changes size until the
  // user has moved the view; later data keeps the user's pan and zoom.
  const fitted = useRef(false);
  useLayoutEffect(() => {
    if (!fitted.current && layout.nodes.length) {
      fitted.current = true;
      arrange();
    }
  }, [layouts]);
  useEffect(() => {
    const box = viewport.current;
    const observer = new ResizeObserver(() => {
      setSize({ width: box.clientWidth, height: box.clientHeight });
      arrange();
    });
    observer.observe(box);
    return () => observer.disconnect();
  }, [layouts]);

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
      else if (event.target === box && event.key.startsWith('Arrow')) {
        event.preventDefault();
        const step = { ArrowLeft: [PAN_STEP, 0], ArrowRight: [-PAN_STEP, 0], ArrowUp: [0, PAN_STEP], ArrowDown: [0, -PAN_STEP] }[event.key];
        pan(...step);
      }
    };
    addEventListener('keydown', onKey);
    return () => {
      box.removeEventListener('wheel', onWheel);
      removeEventListener('keydown', onKey);
    };
  }, [layout]);

  // One pointer pans; two pinch to zoom around their middle.
  const onPointerDown = (event) => {
    if (event.target.closest('.flow-node, .flow-controls, .minimap, .offscreen-hint')) return;
    pointers.current.set(event.pointerId, { x: event.clientX, y: event.clientY });
    viewport.current.setPointerCapture(event.pointerId);
    gesture.current = { moved: false };
  };
  const onPointerMove = (event) => {
    const known = pointers.current.get(event.pointerId);
    if (!known) return;
    const points = [...pointers.current.values()];
    if (points.length === 2) {
      const other = points.find((p) => p !== known);
      const before = Math.hypot(known.x - other.x, known.y - other.y);
      const after = Math.hypot(event.clientX - other.x, event.clientY - other.y);
      const rect = viewport.current.getBoundingClientRect();
      if (before > 0) zoom(after / before, (event.clientX + other.x) / 2 - rect.left, (event.clientY + other.y) / 2 - rect.top);
    } else {
      pan(event.clientX - known.x, event.clientY - known.y);
    }
    if (Math.abs(event.clientX - known.x) + Math.abs(event.clientY - known.y) > 2) gesture.current.moved = true;
    pointers.current.set(event.pointerId, { x: event.clientX, y: event.clientY });
  };
  const onPointerUp = (event) => {
    if (!pointers.current.delete(event.pointerId)) return;
    if (pointers.current.size === 0 && gesture.current && !gesture.current.moved) onSelect(null);
  };

  const needle = (filter || '').trim().toLowerCase();
  const matches = (node) => {
    if (!needle) return true;
    const d = node.data;
    const text = [d.source_function, d.correlation_id, d.event_name, d.job_name, ...(d.events || []).map((e) => e.event_name)].filter(Boolean).join(' ').toLowerCase();
    return text.includes(needle);
  };
  const v = view || { k: 1, x: 0, y: 0 };
  const hiddenCount = view && size.width ? nodesOffScreen(layout.nodes, v, size.width, size.height) : 0;
  return html`<div class="flow-viewport" ref=${viewport} tabindex="0" aria-label="Flow graph: arrows pan, + and - zoom, 0 fits"
      onPointerDown=${onPointerDown} onPointerMove=${onPointerMove} onPointerUp=${onPointerUp} onPointerCancel=${onPointerUp} data-flow-viewport data-offscreen=${hiddenCount}>
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
        (node) => html`<div class=${`flow-node node-${node.kind} status-${(node.kind === 'event' ? eventStatus(node.data) : node.data.status) || 'none'} ${selected === node.id ? 'selected' : ''} ${node.id === `inv:${focusId}` ? 'focus' : ''} ${matches(node) ? '' : 'dim'}`}
            style=${`left:${node.x}px;top:${node.y}px;width:${node.width}px;height:${node.height}px`}
            data-node=${node.id} data-kind=${node.kind} data-status=${node.data.status || ''} tabindex="0" role="button" aria-pressed=${selected === node.id}
            onClick=${(event) => { event.stopPropagation(); onSelect(node.id); }}
            onKeyDown=${(event) => { if (event.key === 'Enter' || event.key === ' ') { event.preventDefault(); onSelect(node.id); } }}>
          <${NodeBody} node=${node} now=${now} />
        </div>`,
      )}
    </div>
    <div class="flow-controls">
      <button type="button" class="btn small" title="Zoom in (+)" aria-label="Zoom in" onClick=${() => zoom(1.2)} data-zoom-in>+</button>
      <button type="button" class="btn small" title="Zoom out (-)" aria-label="Zoom out" onClick=${() => zoom(1 / 1.2)} data-zoom-out>−</button>
      <button type="button" class="btn small" title="Show the whole graph (0)" onClick=${() => fit()} data-zoom-fit>Fit</button>
      <span class="muted small">${Math.round(v.k * 100)}%</span>
    </div>
    ${hiddenCount
      ? html`<button type="button" class="offscreen-hint" data-offscreen-hint=${hiddenCount} onClick=${() => fit()}>
          ${hiddenCount} node${hiddenCount === 1 ? '' : 's'} off screen · show all</button>
        <${Minimap} layout=${layout} view=${v} width=${size.width} height=${size.height} onCenter=${center} />`
      : null}
  </div>`;
}
