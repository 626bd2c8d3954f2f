// Answers the host's export/request: the view on screen as a PNG (png.ts) or, for the matrix and
// head views, an SVG (svg.ts) built from the same data and colours the view paints. A view still
// waiting for its data is refused rather than exported half drawn.

import { aggregationLabel, type Aggregation } from '../../src/protocol/attention';
import type { ExportRequestMessage, ExportResultMessage } from '../../src/protocol/webview';
import type { ViewContext } from '../context';
import type { RunData } from '../store';
import { isDiff } from '../compare';
import { pixelRatio } from '../pixelRatio';
import { DENSE_T, IDLE_MIN } from '../views/headLines';
import { tokenWeights } from '../weights';
import { renderPng } from './png';
import { headSvg, matrixSvg, MAX_SVG_TOKENS, type FigureStyle, type HeadLine } from './svg';

/** What an export reads of the app. */
export interface ExportSource extends ViewContext {
  /** The root element of the view on screen. */
  viewRoot(): HTMLElement;
  /** Paints the view on screen now, at the pixel ratio in force. */
  repaintView(): void;
}

export async function exportView(src: ExportSource, m: ExportRequestMessage): Promise<ExportResultMessage> {
  const { view, layer } = src.ui;
  try {
    const run = src.run;
    if (!run) throw new Error('The panel shows no attention yet: run Show Attention first.');
    const waiting = notReady(src, run);
    if (waiting) throw new Error(waiting);
    if (m.format === 'png') {
      const png = await renderPng(src.viewRoot(), pixelRatio() * m.scale, src.theme.bgCss, () => src.repaintView());
      return { type: 'export/result', id: m.id, view, layer, ...png };
    }
    if (run.vis.length > MAX_SVG_TOKENS) throw new Error(`SVG export draws at most ${MAX_SVG_TOKENS} tokens (this view has ${run.vis.length}): export a PNG instead.`);
    if (view === 'matrix') return { type: 'export/result', id: m.id, view, layer, data: matrixFigure(src, run) };
    // The head view draws a difference as signed lines, which headFigure does not: PNG keeps it.
    if (view === 'head' && isDiff(run)) throw new Error('SVG export of the Heads view does not draw a difference from the baseline: export a PNG, or the Matrix view as SVG.');
    if (view === 'head') return { type: 'export/result', id: m.id, view, layer, data: headFigure(src, run) };
    throw new Error('SVG export draws the Heads and Matrix views: export the Model view as a PNG.');
  } catch (e) {
    return { type: 'export/result', id: m.id, error: e instanceof Error ? e.message : String(e) };
  }
}

/** Why the view on screen cannot be exported yet, or null. */
function notReady(src: ExportSource, run: RunData): string | null {
  const { view, layer, agg, selected } = src.ui;
  if (view === 'model') {
    return src.viewRoot().querySelector('.cell.pending') ? 'The Model view is still filling in: export it when every head is drawn.' : null;
  }
  for (const a of view === 'matrix' ? [agg] : selected) {
    if (src.matrix(layer, a)) continue;
    return run.hasLayer(layer) ? 'Rollout is still being computed: export when it is drawn.' : `Layer ${layer + 1} has not arrived yet: export when it is drawn.`;
  }
  return null;
}

function style(src: ExportSource): FigureStyle {
  const t = src.theme;
  return { bg: t.bgCss, fg: t.fgCss, dim: t.dimCss, focus: t.focusCss, accent: `rgb(${t.accent.r}, ${t.accent.g}, ${t.accent.b})`, fontFamily: t.fontFamily };
}

/** The model's name without a local folder's path (figures get shared). */
const modelName = (run: RunData): string => run.model.id.split(/[\\/]/).filter(Boolean).pop() ?? run.model.id;

const capital = (s: string): string => s.charAt(0).toUpperCase() + s.slice(1);

function visibleLabels(run: RunData): { labels: string[]; special: boolean[] } {
  const vis = [...run.vis];
  return { labels: vis.map((i) => run.display[i]), special: vis.map((i) => run.tokens[i].special) };
}

/** The cells take their colours from the view's heatmap as painted: one pixel per cell up to MAX_SVG_TOKENS. */
function matrixFigure(src: ExportSource, run: RunData): string {
  const V = run.vis.length;
  src.repaintView();
  const heat = src.viewRoot().querySelector<HTMLCanvasElement>('canvas.mx-heat');
  const g = heat?.getContext('2d');
  if (!heat || !g || heat.width !== V || heat.height !== V) throw new Error('The matrix is not drawn yet: export when it is.');
  const { layer, agg } = src.ui;
  return matrixSvg({
    title: `${modelName(run)} · layer ${layer + 1} · ${run.label(agg)}${isDiff(run) ? ' · difference from the baseline' : ''} · ${V} tokens`,
    ...visibleLabels(run),
    rgba: g.getImageData(0, 0, V, V).data,
    style: style(src),
  });
}

/** The lines the head view draws, for every row rather than the rows in view. */
function headFigure(src: ExportSource, run: RunData): string {
  const { layer, selected, threshold } = src.ui;
  const { T, vis } = run;
  const V = vis.length;
  const pos = new Int32Array(T).fill(-1);
  vis.forEach((t, p) => (pos[t] = p));
  const activeRef = src.active();
  const ap = activeRef ? pos[activeRef.index] : -1;
  const active = activeRef && ap >= 0 ? { pos: ap, side: activeRef.side } : null;
  const minW = Math.max(threshold, active ? 1e-3 : V > DENSE_T ? IDLE_MIN : 0.05);
  const t = src.theme;
  const colorOf = (a: Aggregation): string => (a === 'mean' ? t.meanCss : a === 'rollout' ? t.rolloutCss : t.headCss(a, run.H));
  const series = selected.map((agg) => {
    const m = src.matrix(layer, agg)!;
    const lines: HeadLine[] = [];
    const add = (q: number, k: number): void => {
      const w = m[vis[q] * T + vis[k]];
      if (w >= minW) lines.push({ q, k, w });
    };
    if (active?.side === 'q') for (let k = 0; k < V; k++) add(active.pos, k);
    else if (active) for (let q = 0; q < V; q++) add(q, active.pos);
    else for (let q = 0; q < V; q++) for (let k = 0; k < V; k++) add(q, k);
    return { color: colorOf(agg), label: capital(run.label(agg)), lines };
  });
  let tint: Float32Array | null = null;
  if (activeRef && active) {
    const w = tokenWeights((l, a) => src.matrix(l, a), layer, selected, activeRef, T, new Float32Array(T));
    if (w) tint = Float32Array.from(vis, (i) => w[i]);
  }
  return headSvg({
    title: `${modelName(run)} · layer ${layer + 1} · ${selected.map(aggregationLabel).join(', ')} · ${V} tokens`,
    ...visibleLabels(run),
    series,
    active,
    tint,
    fontSize: Math.max(10, Math.min(16, t.fontSize)),
    style: style(src),
  });
}
