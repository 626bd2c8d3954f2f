// One run's data in the panel: tokens, words, the layers' thumbnails and the layers as they arrive
// (kept in their wire encoding, decoded on demand; bit-packed layers are unpacked on first use,
// layers sent in parts as each part arrives), head-means, and processed matrices (special tokens
// hidden and rows renormalised) in a small LRU cache. Rollout is computed incrementally, one layer
// per task.

import type { RunStartMessage, WireToken, WireModel, AttentionEncoding } from '../src/protocol/webview';
import {
  LayerStore,
  layerTensor,
  decodeHead,
  meanHeads,
  renormalizeRows,
  keepMask,
  groupWords,
  cleanTokenText,
  Rollout,
  type LayerTensor,
  type WordGrouping,
} from '../src/analysis';

/** What a matrix shows: one head, the mean of the layer's heads, or rollout through the layer. */
export type Agg = number | 'mean' | 'rollout';

export const aggKey = (a: Agg): string => String(a);

export function aggLabel(a: Agg): string {
  return a === 'mean' ? 'mean of heads' : a === 'rollout' ? 'rollout' : `head ${a + 1}`;
}

const CACHE_SIZE = 24;

export class RunData {
  readonly runId: number;
  readonly model: WireModel;
  readonly tokens: WireToken[];
  readonly encoding: AttentionEncoding;
  readonly source: string;
  readonly truncation: RunStartMessage['truncation'];
  readonly notices: string[];
  readonly T: number;
  readonly L: number;
  readonly H: number;
  readonly words: WordGrouping;
  /** Text shown for each token. */
  readonly display: string[];
  /** The layers as they arrive (bit-packed ones unpacked on first use). */
  private readonly store: LayerStore;
  private readonly means: (Float32Array | undefined)[];
  /** Per layer, its thumbnails as the host pooled them: [H + 1][size][size], the head-mean last. */
  private readonly thumbList: (LayerTensor | undefined)[];
  arrived = 0;
  thumbsArrived = 0;
  done = false;
  timings: Record<string, number> = {};
  runtime = '';

  private hide = false;
  private keepCache: Uint8Array;
  private visCache: Int32Array;
  private cache = new Map<string, Float32Array>();
  private rollouts = new Map<boolean, Rollout>();

  constructor(m: RunStartMessage) {
    this.runId = m.runId;
    this.model = m.model;
    this.tokens = m.tokens;
    this.encoding = m.encoding;
    this.source = m.source;
    this.truncation = m.truncation;
    this.notices = m.notices;
    this.T = m.tokens.length;
    this.L = m.model.layers;
    this.H = m.model.heads;
    this.store = new LayerStore(this.encoding, this.L, this.H, this.T);
    this.means = new Array(this.L).fill(undefined);
    this.thumbList = new Array(this.L).fill(undefined);
    this.words = groupWords(m.tokens, m.sourceText ?? null);
    this.display = m.tokens.map((t, i) => displayToken(t, i > 0 ? m.tokens[i - 1] : null, m.sourceText));
    this.keepCache = keepMask(this.tokens, false);
    this.visCache = visibleIndices(this.keepCache);
  }

  /**
   * Stores one layer, or its part from cell `start` (`packed`: bit-packed f16); throws (caught by
   * the caller) when its size is wrong. Returns true when the layer is complete with it.
   */
  addLayer(layer: number, data: ArrayBuffer | ArrayBufferView, packed = false, start?: number): boolean {
    if (!this.store.add(layer, data, packed, start)) return false;
    this.arrived++;
    return true;
  }

  /** Stores one layer's thumbnails (throws, caught by the caller, when the size is wrong). Returns true when they are new. */
  addThumbs(layer: number, size: number, data: ArrayBuffer | ArrayBufferView, packed = false): boolean {
    if (layer >= this.L) throw new Error(`thumbnails of layer ${layer}: the run has ${this.L} layers`);
    if (size >= this.T) throw new Error(`thumbnails of ${size} px for ${this.T} tokens`);
    if (this.thumbList[layer]) return false;
    this.thumbList[layer] = layerTensor(data, this.encoding, this.H + 1, size, packed);
    this.thumbsArrived++;
    return true;
  }

  /** Layer `l`'s thumbnails, or undefined when none came (yet, or at all: small T). */
  thumbs(l: number): LayerTensor | undefined {
    return this.thumbList[l];
  }

  hasLayer(l: number): boolean {
    return this.store.has(l);
  }

  /** Layer `l`, or undefined while it has not arrived. */
  layer(l: number): LayerTensor | undefined {
    return this.store.get(l);
  }

  get complete(): boolean {
    return this.arrived === this.L;
  }

  /** Hiding special tokens changes every processed matrix. */
  setHideSpecial(hide: boolean): void {
    if (hide === this.hide) return;
    this.hide = hide;
    this.keepCache = keepMask(this.tokens, hide);
    this.visCache = visibleIndices(this.keepCache);
    this.cache.clear();
  }

  get hideSpecial(): boolean {
    return this.hide;
  }

  /** 1 = token shown. */
  get keep(): Uint8Array {
    return this.keepCache;
  }

  /** Indices of the shown tokens, in order. */
  get vis(): Int32Array {
    return this.visCache;
  }

  /** Mean of the layer's heads (raw, before hiding), computed once. */
  mean(l: number): Float32Array | null {
    const m = this.means[l];
    if (m) return m;
    const layer = this.layer(l);
    if (!layer) return null;
    const out = meanHeads(layer);
    this.means[l] = out;
    return out;
  }

  /**
   * The T x T matrix for (layer, agg) with special tokens hidden when asked, or null when its
   * data has not arrived (or rollout is not computed yet: see rolloutProgress/stepRollout).
   */
  matrix(l: number, agg: Agg): Float32Array | null {
    const key = `${l}:${aggKey(agg)}`;
    const hit = this.cache.get(key);
    if (hit) {
      this.cache.delete(key);
      this.cache.set(key, hit);
      return hit;
    }
    let m: Float32Array | null = null;
    if (agg === 'rollout') {
      const r = this.rollouts.get(this.hide)?.get(l);
      return r ?? null; // rollout matrices live in their own store
    }
    const layer = this.layer(l);
    if (!layer) return null;
    const T = this.T;
    // Evicted arrays are not recycled: a view may still hold one for the paint in progress.
    if (this.cache.size >= CACHE_SIZE) this.evict();
    const out = new Float32Array(T * T);
    if (agg === 'mean') {
      const mean = this.mean(l);
      if (!mean) return null;
      out.set(mean);
    } else {
      if (agg < 0 || agg >= this.H) return null;
      decodeHead(layer, agg, out);
    }
    if (this.hide) renormalizeRows(out, T, this.keepCache, out);
    m = out;
    this.cache.set(key, m);
    return m;
  }

  private evict(): void {
    const first = this.cache.keys().next();
    if (!first.done) this.cache.delete(first.value);
  }

  /** How many layers of rollout exist for the current hiding choice. */
  rolloutProgress(): number {
    return this.rollouts.get(this.hide)?.length ?? 0;
  }

  /**
   * Computes the next rollout layer if its input has arrived. Returns true when it did work.
   * (About 90 ms per layer at T = 512 for causal attention; the caller spreads it over tasks.)
   */
  stepRollout(upTo: number): boolean {
    let r = this.rollouts.get(this.hide);
    if (!r) {
      r = new Rollout(this.T);
      this.rollouts.set(this.hide, r);
    }
    const next = r.length;
    if (next > upTo || next >= this.L) return false;
    const mean = this.mean(next);
    if (!mean) return false;
    const input = this.hide ? renormalizeRows(mean, this.T, this.keepCache) : mean;
    r.push(input);
    return true;
  }

  /** Decodes one head (processed like matrix()) into `out` without caching: for thumbnails. */
  headInto(l: number, agg: number | 'mean', out: Float32Array): Float32Array | null {
    const layer = this.layer(l);
    if (!layer) return null;
    if (agg === 'mean') {
      const mean = this.mean(l);
      if (!mean) return null;
      out.set(mean);
    } else decodeHead(layer, agg, out);
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
export function displayToken(t: WireToken, prev: WireToken | null, src: RunStartMessage['sourceText']): string {
  if (t.special || t.start < 0) return t.text;
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
