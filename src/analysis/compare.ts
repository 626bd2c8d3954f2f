// Two runs side by side: a pinned baseline A and a current run B (after an edit, or of another
// selection). Which of their tokens are the same token, the difference B − A of their attention
// cell by cell, and how much each token's attention changed. Shared by the panel (the Difference
// mode) and the host (the editor's compare marks). No vscode, no DOM.
//
// Alignment rule: the analysed texts are compared as token sequences, the way a diff compares
// lines. From the start, tokens match while they agree in special-ness, vocabulary text, source
// text and offset from the start of the analysed text; from the end, while they agree the same way
// with offsets counted from the end of the analysed text (that is, shifted by the edit). Special
// tokens carry no source range, so they match by position (BOS ↔ BOS, a trailing SEP ↔ SEP).
// Between the two stretches (the edited region; several edits make it span from the first to the
// last) tokens match by a longest common subsequence of (special-ness, vocabulary text, source
// text), so an unchanged word between two edits is still itself. Every other token is a gap: only
// in A it was deleted, only in B inserted. A gap has no number, never one borrowed from another
// token. An edited region too long to diff (MAX_DIFF_CELLS) is all gaps.

import type { SourceText, WireModel, WireToken } from '../protocol/attention';
import { decodeRow, type LayerTensor } from './tensor';

/** What alignment needs of a run: its tokens and, when known, the text they point into. */
export interface CompareSide {
  tokens: readonly WireToken[];
  sourceText: SourceText | null;
}

/** Both runs' tokens in reading order: entry i is token a[i] of A and b[i] of B, -1 where a run lacks it. */
export interface CompareAxis {
  a: Int32Array;
  b: Int32Array;
}

export interface Alignment {
  /** For each token of B its counterpart in A, or -1 (inserted: not in the baseline). */
  bToA: Int32Array;
  /** For each token of A its counterpart in B, or -1 (deleted since the baseline). */
  aToB: Int32Array;
  /** Matched tokens first (from the start), then the deleted, then the inserted, then the matched tail. */
  axis: CompareAxis;
  matched: number;
}

/** Above this many (A token, B token) pairs the edited region is not diffed: all its tokens are gaps. */
const MAX_DIFF_CELLS = 1 << 22;

/** Why two runs cannot be compared cell by cell, or null when they can. */
export function compareRefusal(baseline: WireModel, current: WireModel): string | null {
  if (baseline.id !== current.id) return `The baseline ran ${baseline.id} and this run ${current.id}: a difference needs the same model.`;
  if (baseline.layers !== current.layers || baseline.heads !== current.heads) {
    return `The baseline has ${baseline.layers} layers × ${baseline.heads} heads and this run ${current.layers} × ${current.heads}: a difference needs the same shape.`;
  }
  return null;
}

/** The analysed text's absolute [start, end): the source text when known, else the tokens' extent. */
function frame(s: CompareSide): [number, number] {
  if (s.sourceText) return [s.sourceText.offset, s.sourceText.offset + s.sourceText.text.length];
  let lo = Infinity;
  let hi = -Infinity;
  for (const t of s.tokens) {
    if (t.special || t.start < 0) continue;
    lo = Math.min(lo, t.start);
    hi = Math.max(hi, t.end);
  }
  return lo <= hi ? [lo, hi] : [0, 0];
}

function sourceOf(s: CompareSide, t: WireToken): string {
  const src = s.sourceText;
  return src ? src.text.slice(t.start - src.offset, t.end - src.offset) : '';
}

export function alignTokens(a: CompareSide, b: CompareSide): Alignment {
  const nA = a.tokens.length;
  const nB = b.tokens.length;
  const fa = frame(a);
  const fb = frame(b);
  const same = (i: number, j: number, fromEnd: boolean): boolean => {
    const x = a.tokens[i];
    const y = b.tokens[j];
    if (x.special !== y.special || x.text !== y.text) return false;
    if (x.special || x.start < 0 || y.start < 0) return x.start < 0 && y.start < 0;
    const rel = fromEnd ? x.start - fa[1] === y.start - fb[1] : x.start - fa[0] === y.start - fb[0];
    return rel && x.end - x.start === y.end - y.start && sourceOf(a, x) === sourceOf(b, y);
  };
  let head = 0;
  while (head < nA && head < nB && same(head, head, false)) head++;
  let tail = 0;
  while (tail < nA - head && tail < nB - head && same(nA - 1 - tail, nB - 1 - tail, true)) tail++;

  const bToA = new Int32Array(nB).fill(-1);
  const aToB = new Int32Array(nA).fill(-1);
  const axisA: number[] = [];
  const axisB: number[] = [];
  let matched = 0;
  const pair = (i: number, j: number): void => {
    axisA.push(i);
    axisB.push(j);
    if (i >= 0 && j >= 0) {
      bToA[j] = i;
      aToB[i] = j;
      matched++;
    }
  };
  for (let i = 0; i < head; i++) pair(i, i);
  diffMiddle(a, b, head, nA - tail, head, nB - tail, pair);
  for (let k = 0; k < tail; k++) pair(nA - tail + k, nB - tail + k);
  return { bToA, aToB, axis: { a: Int32Array.from(axisA), b: Int32Array.from(axisB) }, matched };
}

/**
 * The edited region, A's tokens [a0, a1) against B's [b0, b1), in reading order through `pair`:
 * matches of a longest common subsequence, and before each match (and at the end) the deleted
 * tokens, then the inserted ones.
 */
function diffMiddle(a: CompareSide, b: CompareSide, a0: number, a1: number, b0: number, b1: number, pair: (i: number, j: number) => void): void {
  const n = a1 - a0;
  const m = b1 - b0;
  const key = (s: CompareSide, i: number) => {
    const t = s.tokens[i];
    return `${t.special ? 1 : 0}\u0000${t.text}\u0000${t.special ? '' : sourceOf(s, t)}`;
  };
  const ka = Array.from({ length: n }, (_, i) => key(a, a0 + i));
  const kb = Array.from({ length: m }, (_, j) => key(b, b0 + j));
  // lcs[i * W + j]: the longest common subsequence of ka[i..] and kb[j..] (fits 16 bits: T <= 4096).
  const W = m + 1;
  const lcs = n * m > 0 && n * m <= MAX_DIFF_CELLS ? new Uint16Array((n + 1) * W) : null;
  if (lcs) {
    for (let i = n - 1; i >= 0; i--)
      for (let j = m - 1; j >= 0; j--) lcs[i * W + j] = ka[i] === kb[j] ? lcs[(i + 1) * W + j + 1] + 1 : Math.max(lcs[(i + 1) * W + j], lcs[i * W + j + 1]);
  }
  const dels: number[] = [];
  const ins: number[] = [];
  const flush = (): void => {
    for (const i of dels) pair(i, -1);
    for (const j of ins) pair(-1, j);
    dels.length = ins.length = 0;
  };
  let i = 0;
  let j = 0;
  while (lcs && i < n && j < m) {
    if (ka[i] === kb[j] && lcs[i * W + j] === lcs[(i + 1) * W + j + 1] + 1) {
      flush();
      pair(a0 + i++, b0 + j++);
    } else if (lcs[(i + 1) * W + j] >= lcs[i * W + j + 1]) dels.push(a0 + i++);
    else ins.push(b0 + j++);
  }
  while (i < n) dels.push(a0 + i++);
  while (j < m) ins.push(b0 + j++);
  flush();
}

/**
 * B − A over `axis`: out[i * N + j] = b[(b_i, b_j)] − a[(a_i, a_j)] for N axis entries, where `a`
 * and `b` are the runs' TA × TA and TB × TB matrices; NaN where the query or the key lacks a
 * counterpart (a gap: never a number from one token set against another).
 */
export function differenceMatrix(a: Float32Array, TA: number, b: Float32Array, TB: number, axis: CompareAxis, out?: Float32Array): Float32Array {
  const N = axis.a.length;
  const o = out ?? new Float32Array(N * N);
  for (let i = 0; i < N; i++) {
    const row = i * N;
    const ai = axis.a[i];
    const bi = axis.b[i];
    if (ai < 0 || bi < 0) {
      o.fill(NaN, row, row + N);
      continue;
    }
    const ar = ai * TA;
    const br = bi * TB;
    for (let j = 0; j < N; j++) {
      const aj = axis.a[j];
      const bj = axis.b[j];
      o[row + j] = aj < 0 || bj < 0 ? NaN : b[br + bj] - a[ar + aj];
    }
  }
  return o;
}

/**
 * How much each token of B changed what it attends to since A: the L1 distance between its row in
 * B and its counterpart's row in A (a key only one run has counts as weight 0 in the other), so 0
 * is the same attention and 2 attention moved entirely elsewhere; averaged over every head added
 * (a layer at a time, so a caller can spread the work). NaN for tokens not in A.
 */
export class RowChanges {
  private readonly sum: Float64Array;
  private heads = 0;
  private readonly rowA: Float32Array;
  private readonly rowB: Float32Array;
  private readonly deletedKeys: number[] = [];

  constructor(
    private readonly align: Alignment,
    private readonly TA: number,
    private readonly TB: number,
  ) {
    this.sum = new Float64Array(TB);
    this.rowA = new Float32Array(TA);
    this.rowB = new Float32Array(TB);
    align.aToB.forEach((j, i) => {
      if (j < 0) this.deletedKeys.push(i);
    });
  }

  /** Adds every head of one layer, A's and B's. */
  add(a: LayerTensor, b: LayerTensor): void {
    if (a.heads !== b.heads || a.T !== this.TA || b.T !== this.TB) throw new Error('the layers do not have the runs’ shapes');
    const { bToA } = this.align;
    for (let h = 0; h < b.heads; h++) {
      for (let q = 0; q < this.TB; q++) {
        const p = bToA[q];
        if (p < 0) continue;
        const rb = decodeRow(b, h, q, this.rowB);
        const ra = decodeRow(a, h, p, this.rowA);
        let d = 0;
        for (let k = 0; k < this.TB; k++) {
          const ak = bToA[k];
          d += Math.abs(rb[k] - (ak < 0 ? 0 : ra[ak]));
        }
        for (const j of this.deletedKeys) d += ra[j];
        this.sum[q] += d;
      }
    }
    this.heads += b.heads;
  }

  /** The mean change per token of B over the heads added so far (NaN for inserted tokens). */
  scores(): Float64Array {
    const out = new Float64Array(this.TB);
    for (let q = 0; q < this.TB; q++) out[q] = this.align.bToA[q] < 0 || this.heads === 0 ? NaN : this.sum[q] / this.heads;
    return out;
  }
}

/** Indices of the `n` largest scores above `min`, largest first (NaN left out). */
export function mostChanged(scores: ArrayLike<number>, n: number, min: number): number[] {
  const idx: number[] = [];
  for (let i = 0; i < scores.length; i++) if (scores[i] > min) idx.push(i);
  return idx.sort((x, y) => scores[y] - scores[x] || x - y).slice(0, n);
}
