// "Why this weight?": the row's attention recomputed from the captured query, keys and values, in
// float64, so the view can show each step with the model's own numbers and check the result
// against the attention the panel displays. Pure: no DOM.

import type { Explanation } from '../src/protocol/attention';

/** How close the recomputed row must be to the shown one: fp32 softmax agrees to about 1e-7. */
export const TOLERANCE = 1e-5;

export interface Recomputed {
  /** q·k_j per key (masked keys too: the dot product exists, the mask then removes it). */
  dots: Float64Array;
  /** scale · q·k_j for visible keys, −Infinity for masked ones. */
  scores: Float64Array;
  /** softmax(scores): 0 for masked keys. */
  weights: Float64Array;
  /** Σ_j weights_j v_j [d]: the head's output (context vector) recomputed. */
  out: Float64Array;
  /** max_j |weights_j − shown_j| and where it is. */
  rowDiff: number;
  rowDiffAt: number;
  /** max |out − the graph's out| relative to max(1, max |out|): values are not bounded like weights. */
  outDiff: number;
  /** Both within TOLERANCE (NaN anywhere counts as no match). */
  rowMatches: boolean;
  outMatches: boolean;
}

/** The number of keys (T) an explanation covers. */
export const keyCount = (e: Explanation): number => e.visible.length;

export function recompute(e: Explanation): Recomputed {
  const d = e.dim;
  const T = keyCount(e);
  const dots = new Float64Array(T);
  const scores = new Float64Array(T);
  const weights = new Float64Array(T);
  let max = -Infinity;
  for (let j = 0; j < T; j++) {
    let s = 0;
    for (let t = 0; t < d; t++) s += e.q[t] * e.k[j * d + t];
    dots[j] = s;
    scores[j] = e.visible[j] ? e.scale * s : -Infinity;
    if (scores[j] > max) max = scores[j];
  }
  // Softmax with the maximum subtracted (exp of large scores would overflow); a row with no visible key has no weights.
  let sum = 0;
  if (max > -Infinity) {
    for (let j = 0; j < T; j++) {
      weights[j] = e.visible[j] ? Math.exp(scores[j] - max) : 0;
      sum += weights[j];
    }
    for (let j = 0; j < T; j++) weights[j] /= sum;
  }
  const out = new Float64Array(d);
  for (let j = 0; j < T; j++) {
    const w = weights[j];
    if (w === 0) continue;
    for (let t = 0; t < d; t++) out[t] += w * e.v[j * d + t];
  }
  let rowDiff = 0;
  let rowDiffAt = -1;
  for (let j = 0; j < T; j++) {
    const diff = Math.abs(weights[j] - e.shown[j]);
    // NaN never compares greater: count it as the largest difference.
    if (!(diff <= rowDiff)) {
      rowDiff = Number.isNaN(diff) ? Infinity : diff;
      rowDiffAt = j;
    }
  }
  let outMax = 1;
  let outAbs = 0;
  for (let t = 0; t < d; t++) {
    outMax = Math.max(outMax, Math.abs(out[t]));
    const diff = Math.abs(out[t] - e.out[t]);
    outAbs = diff <= outAbs ? outAbs : Number.isNaN(diff) ? Infinity : diff;
  }
  const outDiff = outAbs / outMax;
  return { dots, scores, weights, out, rowDiff, rowDiffAt, outDiff, rowMatches: rowDiff <= TOLERANCE && T > 0, outMatches: outDiff <= TOLERANCE && d > 0 };
}

/** The scale's usual value, 1/√d, when `scale` is it (to fp32 precision), else null (the model's own). */
export function isInverseSqrt(scale: number, d: number): boolean {
  return Math.abs(scale - 1 / Math.sqrt(d)) <= 1e-6 * Math.max(1, Math.abs(scale));
}

/** A number as the view writes it: 3 significant digits, a true minus sign, exponents only when tiny or huge. */
export function fmtNum(x: number): string {
  if (Number.isNaN(x)) return 'NaN';
  if (x === Infinity) return '∞';
  if (x === -Infinity) return '−∞';
  if (x === 0) return '0';
  const a = Math.abs(x);
  const body = a >= 1e5 || a < 1e-3 ? fmtExp(a, 2) : String(Number(a.toPrecision(3)));
  return x < 0 ? `−${body}` : body;
}

/** A difference: always an exponent with 2 significant digits ("2.1e-8"), so tiny ones stay legible. */
export function fmtDiff(x: number): string {
  if (x === 0) return '0';
  return Number.isFinite(x) ? fmtExp(x, 1) : fmtNum(x);
}

function fmtExp(a: number, decimals: number): string {
  const [m, e] = a.toExponential(decimals).split('e');
  return `${m}e${e.replace('+', '')}`;
}
