// One run's data in the panel: the run model (src/run: tokens, words, layers as they arrive,
// thumbnails, head means, rollout) plus what only the panel needs: how each token is shown, the
// special-token hiding choice, and processed matrices (special tokens hidden and rows
// renormalised) in a small LRU cache.

import { aggregationLabel, weightingLabel, type Aggregation, type SourceText, type WireToken, type Weighting } from '../src/protocol/attention';
import type { RunStartMessage } from '../src/protocol/webview';
import { Run } from '../src/run/run';
import { decodeHead, renormalizeRows, keepMask, cleanTokenText, valueMatrix } from '../src/analysis';

const CACHE_SIZE = 24;

export class RunData extends Run {
  readonly source: string;
  readonly truncation: RunStartMessage['truncation'];
  readonly notices: string[];
  /** Text shown for each token. */
  readonly display: string[];
  done = false;
  timings: Record<string, number> = {};
  runtime = '';

  private hide = false;
  private weighting: Weighting = 'attention';
  private keepCache: Uint8Array;
  private visCache: Int32Array;
  private cache = new Map<string, Float32Array>();

  /** An encoder-decoder run's encoder part, as the panel holds runs. */
  declare readonly encoder: RunData | null;

  constructor(m: RunStartMessage) {
    super(m);
    this.source = m.source;
    this.truncation = m.truncation;
    this.notices = m.notices;
    this.display = m.tokens.map((t, i) => displayToken(t, i > 0 ? m.tokens[i - 1] : null, m.sourceText));
    this.keepCache = keepMask(this.tokens, false);
    this.visCache = visibleIndices(this.keepCache);
  }

  protected override part(start: RunStartMessage): RunData {
    return new RunData(start);
  }

  /** Hiding special tokens changes every processed matrix. */
  setHideSpecial(hide: boolean): void {
    this.encoder?.setHideSpecial(hide);
    if (hide === this.hide) return;
    this.hide = hide;
    this.keepCache = keepMask(this.tokens, hide);
    this.visCache = visibleIndices(this.keepCache);
    this.cache.clear();
  }

  get hideSpecial(): boolean {
    return this.hide;
  }

  /** What the matrices weigh: attention, or value-weighted attention (only once the run has its value norms). */
  setWeights(w: Weighting): void {
    if (w === this.weighting) return;
    this.weighting = w;
    this.cache.clear();
  }

  get weights(): Weighting {
    return this.weighting;
  }

  /** What a view of `agg` shows, for titles and notes: "head 3", "mean of heads, value-weighted". */
  label(agg: Aggregation): string {
    if (this.weighting === 'attention') return aggregationLabel(agg);
    return `${agg === 'mean' ? 'heads together' : aggregationLabel(agg)}, ${weightingLabel('value', this.values?.kind)}`;
  }

  /** Why a matrix of the layer is not there yet, or null when it is. */
  waitingFor(l: number): string | null {
    if (!this.hasLayer(l)) return `Waiting for layer ${l + 1}…`;
    if (this.weighting === 'value' && !this.values) return 'Computing value norms…';
    return null;
  }

  /** Value-weighted matrices are pooled here from the layers: the worker's thumbnails pool attention. */
  override thumbs(l: number) {
    return this.weighting === 'value' ? undefined : super.thumbs(l);
  }

  /** 1 = token shown. */
  get keep(): Uint8Array {
    return this.keepCache;
  }

  /** Indices of the shown tokens, in order. */
  get vis(): Int32Array {
    return this.visCache;
  }

  /**
   * The T x T matrix for (layer, agg) with special tokens hidden when asked, or null when its
   * data has not arrived (or rollout is not computed yet: see rolloutProgress/stepRollout). A long
   * run has none, ever (T = 8,192 would be 256 MB): its views read a window (webview/longWindow.ts).
   */
  matrix(l: number, agg: Aggregation): Float32Array | null {
    if (this.long) return null;
    if (agg === 'rollout') return this.rollout(l, this.hide, this.weighting); // rollout matrices live in the run model
    const key = `${l}:${agg}:${this.weighting}`;
    const hit = this.cache.get(key);
    if (hit) {
      this.cache.delete(key);
      this.cache.set(key, hit);
      return hit;
    }
    if (typeof agg === 'number' && (agg < 0 || agg >= this.H)) return null;
    // Evicted arrays are not recycled: a view may still hold one for the paint in progress.
    const out = this.headInto(l, agg, new Float32Array(this.T * this.T));
    if (!out) return null;
    if (this.cache.size >= CACHE_SIZE) this.evict();
    this.cache.set(key, out);
    return out;
  }

  private evict(): void {
    const first = this.cache.keys().next();
    if (!first.done) this.cache.delete(first.value);
  }

  /** Decodes one head or the mean (processed like matrix()) into `out` without caching: for thumbnails. */
  headInto(l: number, agg: number | 'mean', out: Float32Array): Float32Array | null {
    const layer = this.layer(l);
    if (!layer) return null;
    if (this.weighting === 'value') {
      if (!this.values) return null;
      if (agg === 'mean') out.set(this.mean(l, 'value')!);
      else valueMatrix(layer, this.values, l, agg, out);
    } else if (agg === 'mean') out.set(this.mean(l)!);
    else decodeHead(layer, agg, out);
    if (this.hide) renormalizeRows(out, this.T, this.keepCache, out);
    return out;
  }
}

function visibleIndices(keep: Uint8Array): Int32Array {
  let n = 0;
  for (let i = 0; i < keep.length; i++) if (keep[i]) n++;
  const v = new Int32Array(n);
  n = 0;
  for (let i = 0; i < keep.length; i++) if (keep[i]) v[n++] = i;
  return v;
}

const WS_NAMES: Record<string, string> = { ' ': '␣', '\t': '⇥', '\n': '⏎', '\r': '', '\u00a0': '⍽' };

function showWhitespace(s: string): string {
  let out = '';
  for (const ch of s) out += WS_NAMES[ch] ?? (ch.trim() === '' ? '·' : ch);
  return out || '⏎';
}

/** How a token is shown: its source text when known (trimmed, whitespace made visible), else its vocabulary spelling. */
export function displayToken(t: WireToken, prev: WireToken | null, src: SourceText | null | undefined): string {
  // Written by the model, or a target token (encoder-decoder runs): no place in the text, shown by its spelling.
  if (!t.special && t.start < 0) return cleanTokenText(t.text).trim() || showWhitespace(cleanTokenText(t.text) || t.text);
  if (t.special) return t.text;
  const sharesChar = prev !== null && !prev.special && prev.start >= 0 && t.start < prev.end;
  if (src && !sharesChar) {
    const s = src.text.slice(t.start - src.offset, t.end - src.offset);
    if (s.length > 0) {
      const trimmed = s.trim();
      return trimmed.length > 0 ? trimmed : showWhitespace(s);
    }
  }
  const c = cleanTokenText(t.text);
  const trimmed = c.trim();
  return trimmed.length > 0 ? trimmed : c.length > 0 ? showWhitespace(c) : t.text;
}
