// The head view's line canvas: one line per (query, key) pair whose opacity is the attention
// weight, batched by colour and quantised opacity so a paint is a few dozen strokes.

import type { Aggregation } from '../../src/protocol/attention';
import type { TokenRef } from '../context';
import type { RunData } from '../store';
import { sizeCanvas } from '../heatmap';
import { pixelRatio } from '../pixelRatio';

/** Height of a token row, shared with the token columns. */
export const ROW_H = 22;
const BUCKETS = 16;
/** Most lines drawn per aggregate in one paint (the strongest ones). */
const MAX_LINES = 128;
/** Above this many tokens, idle lines (no active token) are only drawn for weights >= IDLE_MIN. */
export const DENSE_T = 64;
export const IDLE_MIN = 0.1;
/** Buckets at or above this (weights >= 0.25) are drawn 2 px wide. */
const STRONG_BUCKET = BUCKETS / 2;

export interface LinesInput {
  run: RunData;
  layer: number;
  aggs: readonly Aggregation[];
  threshold: number;
  active: TokenRef | null;
  /** Visible position of each token (-1 when hidden). */
  pos: Int32Array;
  /** Visible positions of the rows laid out (idle lines start from these). */
  first: number;
  last: number;
  /** Scroll offset and size of the canvas, CSS px. */
  top: number;
  width: number;
  height: number;
  matrix(layer: number, agg: Aggregation): Float32Array | null;
  colorOf(agg: Aggregation): string;
  /** Signed weights (Compare's difference): lines of positive ones in `more`, of negative ones in `less`, opacity by magnitude relative to `scale`. */
  signed?: { more: string; less: string; scale: number };
}

export class LinePainter {
  private readonly g: CanvasRenderingContext2D;
  private readonly buckets: number[][] = Array.from({ length: BUCKETS }, () => []);
  /** The negative weights' lines when weights are signed. */
  private readonly negBuckets: number[][] = Array.from({ length: BUCKETS }, () => []);

  constructor(private readonly canvas: HTMLCanvasElement) {
    const g = canvas.getContext('2d');
    if (!g) throw new Error('no 2d canvas');
    this.g = g;
  }

  /** Paints the lines; returns how many of the aggregates have no data yet. */
  paint(p: LinesInput): number {
    const { run, active, pos, top } = p;
    const cw = p.width;
    const ch = p.height;
    const dpr = pixelRatio();
    sizeCanvas(this.canvas, Math.round(cw * dpr), Math.round(ch * dpr));
    const g = this.g;
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, cw, ch);
    const T = run.T;
    const vis = run.vis;
    const V = vis.length;
    const y = (vi: number): number => vi * ROW_H + ROW_H / 2 - top;
    const minW = active ? 1e-3 : V > DENSE_T ? IDLE_MIN : 0.05;
    const scale = p.signed?.scale ?? 1;
    let missing = 0;
    g.lineCap = 'butt';
    for (const agg of p.aggs) {
      const m = p.matrix(p.layer, agg);
      if (!m) {
        missing++;
        continue;
      }
      for (const b of this.buckets) b.length = 0;
      for (const b of this.negBuckets) b.length = 0;
      const signed = p.signed;
      const add = (w: number, y1: number, y2: number): void => {
        const neg = signed !== undefined && w < 0;
        if (neg) w = -w;
        if (!(w >= p.threshold)) return; // NaN too: a gap of Compare has no line
        w /= scale;
        if (!(w >= minW)) return;
        if ((y1 < -ROW_H && y2 < -ROW_H) || (y1 > ch + ROW_H && y2 > ch + ROW_H)) return;
        let b = Math.floor(Math.sqrt(w > 1 ? 1 : w) * BUCKETS);
        if (b >= BUCKETS) b = BUCKETS - 1;
        (neg ? this.negBuckets : this.buckets)[b].push(y1, y2);
      };
      if (active) {
        const ap = pos[active.index];
        if (ap >= 0) {
          const ya = y(ap);
          if (active.side === 'q') {
            const base = active.index * T;
            for (let vj = 0; vj < V; vj++) add(m[base + vis[vj]], ya, y(vj));
          } else {
            for (let vi = 0; vi < V; vi++) add(m[vis[vi] * T + active.index], y(vi), ya);
          }
        }
      } else {
        // Idle: lines of the query rows in view.
        for (let vi = p.first; vi <= p.last; vi++) {
          const base = vis[vi] * T;
          const yq = y(vi);
          for (let vj = 0; vj < V; vj++) add(m[base + vis[vj]], yq, y(vj));
        }
      }
      this.stroke(this.buckets, signed ? signed.more : p.colorOf(agg), cw);
      if (signed) this.stroke(this.negBuckets, signed.less, cw);
    }
    g.globalAlpha = 1;
    return missing;
  }

  private stroke(buckets: number[][], color: string, cw: number): void {
    const g = this.g;
    g.strokeStyle = color;
    // Strongest buckets first, at most MAX_LINES lines: near-uniform attention at T=512 would
    // otherwise stroke hundreds of faint lines per hover, costing a frame for nothing visible.
    let budget = MAX_LINES;
    for (let b = BUCKETS - 1; b >= 0 && budget > 0; b--) {
      const list = buckets[b];
      if (list.length === 0) continue;
      const end = Math.min(list.length, budget * 2);
      budget -= end / 2;
      g.globalAlpha = (b + 1) / BUCKETS;
      // Faint lines are 1 px hairlines, which rasterise several times faster than wider strokes
      // (128 of them at 1.5 px cost 6 ms a hover at T = 512); the few strong ones stay bold.
      g.lineWidth = b >= STRONG_BUCKET ? 2 : 1;
      g.beginPath();
      for (let i = 0; i < end; i += 2) {
        g.moveTo(0, list[i]);
        g.lineTo(cw, list[i + 1]);
      }
      g.stroke();
    }
  }
}
