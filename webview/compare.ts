// Compare in the panel: the pinned baseline run (its data kept when newer runs replace it on
// screen) and the Difference mode. A DiffRun puts both runs' tokens on one axis
// (src/analysis/compare.ts: matched tokens, then the deleted and the inserted ones) and gives, for
// every matrix the views ask for, the current run minus the baseline, NaN where a token has no
// counterpart. The views draw a DiffRun like any run, on the diverging palette (isDiff), so the
// model, head and matrix views all show the difference with no logic of their own for alignment.

import type { Aggregation, WireToken } from '../src/protocol/attention';
import type { RunStartMessage } from '../src/protocol/webview';
import { alignTokens, compareRefusal, differenceMatrix, type Alignment } from '../src/analysis/compare';
import { RunData } from './store';
import { compareRefusal as longCompareRefusal } from './longView';

const CACHE_SIZE = 24;

/** A token only one run has: inserted since the baseline, or deleted since. */
export type GapKind = 'inserted' | 'deleted';

/** The start of a run whose tokens are the comparison's axis (current tokens, deleted ones from the baseline). */
function axisStart(base: RunData, cur: RunData, align: Alignment): RunStartMessage {
  const { a, b } = align.axis;
  // A deleted token's offsets point into the baseline's text: left out, so nothing reads them as the current text's.
  const tokens: WireToken[] = Array.from(b, (j, n) => (j >= 0 ? cur.tokens[j] : { ...base.tokens[a[n]], start: -1, end: -1 }));
  return { type: 'run/start', runId: cur.runId, model: cur.model, tokens, encoding: cur.encoding, source: cur.source, truncation: cur.truncation, notices: cur.notices };
}

export class DiffRun extends RunData {
  readonly base: RunData;
  readonly cur: RunData;
  readonly align: Alignment;
  private readonly diffs = new Map<string, Float32Array>();
  private scratchA = new Float32Array(0);
  private scratchB = new Float32Array(0);

  constructor(base: RunData, cur: RunData, align = alignTokens(base, cur)) {
    super(axisStart(base, cur, align));
    this.base = base;
    this.cur = cur;
    this.align = align;
    const { a, b } = align.axis;
    for (let n = 0; n < a.length; n++) this.display[n] = b[n] >= 0 ? cur.display[b[n]] : base.display[a[n]];
    this.setHideSpecial(cur.hideSpecial);
  }

  /** Whether axis entry `n` is a gap, and which kind; null when both runs have the token. */
  gap(n: number): GapKind | null {
    const { a, b } = this.align.axis;
    return b[n] < 0 ? 'deleted' : a[n] < 0 ? 'inserted' : null;
  }

  /** The current run's token at axis entry `n`, or -1 (deleted). */
  curIndex(n: number): number {
    return this.align.axis.b[n] ?? -1;
  }

  /** The axis entry of the current run's token `i`. */
  indexOfCur(i: number): number {
    return this.align.axis.b.indexOf(i);
  }

  override hasLayer(l: number): boolean {
    return this.base.hasLayer(l) && this.cur.hasLayer(l);
  }

  override get complete(): boolean {
    return this.base.complete && this.cur.complete;
  }

  /** No thumbnails: the difference is pooled here from both runs' layers. */
  override thumbs(): undefined {
    return undefined;
  }

  override setHideSpecial(hide: boolean): void {
    super.setHideSpecial(hide);
    this.base.setHideSpecial(hide);
    this.cur.setHideSpecial(hide);
    this.diffs.clear();
  }

  /** B − A for (layer, agg) over the axis, each run's matrix processed as it shows it (special tokens hidden or not). */
  override matrix(l: number, agg: Aggregation): Float32Array | null {
    const key = `${l}:${agg}`;
    const hit = this.diffs.get(key);
    if (hit) {
      this.diffs.delete(key);
      this.diffs.set(key, hit);
      return hit;
    }
    const a = this.base.matrix(l, agg);
    const b = this.cur.matrix(l, agg);
    if (!a || !b) return null;
    const out = differenceMatrix(a, this.base.T, b, this.cur.T, this.align.axis);
    if (this.diffs.size >= CACHE_SIZE) this.diffs.delete(this.diffs.keys().next().value!);
    this.diffs.set(key, out);
    return out;
  }

  override headInto(l: number, agg: number | 'mean', out: Float32Array): Float32Array | null {
    if (this.scratchA.length !== this.base.T ** 2) this.scratchA = new Float32Array(this.base.T ** 2);
    if (this.scratchB.length !== this.cur.T ** 2) this.scratchB = new Float32Array(this.cur.T ** 2);
    const a = this.base.headInto(l, agg, this.scratchA);
    const b = this.cur.headInto(l, agg, this.scratchB);
    return a && b ? differenceMatrix(a, this.base.T, b, this.cur.T, this.align.axis, out) : null;
  }

  override rolloutProgress(hide: boolean): number {
    return Math.min(this.base.rolloutProgress(hide), this.cur.rolloutProgress(hide));
  }

  override stepRollout(upTo: number, hide: boolean): boolean {
    return this.base.stepRollout(upTo, hide) || this.cur.stepRollout(upTo, hide);
  }
}

export function isDiff(run: RunData | null): run is DiffRun {
  return run instanceof DiffRun;
}

/**
 * A view's colours for a difference are scaled to the largest change it shows (the legend reads
 * −max … +max, the view says what max is), but never to less than this: the float noise between
 * two runs of the same text stays near the background instead of filling the palette.
 */
export const DIFF_SCALE_FLOOR = 0.02;

export function diffScale(maxChange: number): number {
  return Math.max(DIFF_SCALE_FLOOR, maxChange);
}

const maxima = new WeakMap<Float32Array, number>();

/** The largest |difference| among the cells of `m` between visible tokens (gaps left out); cached per matrix. */
export function maxChange(m: Float32Array, T: number, vis: Int32Array): number {
  let max = maxima.get(m);
  if (max !== undefined) return max;
  max = 0;
  for (const i of vis) for (const j of vis) max = Math.max(max, Math.abs(m[i * T + j]) || 0);
  maxima.set(m, max);
  return max;
}

/** The current run's token at position `i` of `view` (the run itself, or a difference axis), or -1. */
export function curIndexOf(view: RunData, i: number): number {
  return isDiff(view) ? view.curIndex(i) : i;
}

/** The position in `view` of the current run's token `i`, or -1. */
export function viewIndexOf(view: RunData, i: number): number {
  if (i < 0) return -1;
  return isDiff(view) ? view.indexOfCur(i) : i;
}

/**
 * The baseline, the run on screen and the Difference toggle; `view` is what the views draw in
 * Difference mode (null when it is off or cannot be shown).
 */
export class Compare {
  private base: RunData | null = null;
  private cur: RunData | null = null;
  private diffRun: DiffRun | null = null;
  /** The Difference toggle. */
  private wanted = false;

  get baseline(): RunData | null {
    return this.base;
  }

  /** Difference is asked for and can be shown. */
  get on(): boolean {
    return this.wanted && this.base !== null && this.refusal === null;
  }

  /** Why the baseline cannot be compared with the run on screen, or null. */
  get refusal(): string | null {
    if (!this.base || !this.cur) return null;
    return longCompareRefusal(this.cur) ?? longCompareRefusal(this.base) ?? compareRefusal(this.base.model, this.cur.model);
  }

  get view(): DiffRun | null {
    if (!this.on || !this.cur) return null;
    if (this.diffRun?.base !== this.base || this.diffRun.cur !== this.cur) this.diffRun = new DiffRun(this.base!, this.cur);
    return this.diffRun;
  }

  setBaseline(run: RunData | null): void {
    this.base = run;
    if (!run) this.wanted = false;
  }

  setCurrent(run: RunData): void {
    this.cur = run;
  }

  setWanted(on: boolean): void {
    this.wanted = on;
  }

  setHideSpecial(hide: boolean): void {
    this.base?.setHideSpecial(hide);
    this.diffRun?.setHideSpecial(hide);
  }
}
