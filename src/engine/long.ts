// Long inputs in memory linear in T. A whole run holds L·H·T² attention cells (9.7 G at T = 8,192
// for 12 x 12 heads); above a threshold the engine instead runs the text in chunks through the
// model's own key/value cache, pools each chunk's attention rows into the thumbnails as they pass,
// and keeps the cache (every layer's keys after rotary and its values, GQA's KV heads unexpanded):
// any rows of the matrix are then one more pass of those tokens over the cache, with the keys after
// them masked out. Nothing here assumes a graph layout beyond a causal decoder with a cache; how
// the attention mask places the new tokens' keys is checked on the run itself (`layout`).
import { THUMB_MAX, ThumbPooler, encodeThumbs, type LayerThumbs } from '../analysis/thumbs';
import { EngineError } from './types';

/**
 * Runs of more tokens than this are long in the extension: the panel gets thumbnails and rows on
 * demand instead of whole layers. At 512 tokens a 12 x 12 model's whole layers are 67 MB as f16
 * (the panel's decode of them is what the T = 512 targets measure); above, they grow as T².
 */
export const LONG_THRESHOLD = 512;

/** The model's key/value cache between passes: graph input name -> the tensor fed there. */
export type KvCache = Map<string, unknown>;

/** One pass of `ids` over a cache, as the engine runs it (engine.ts cachedPass). */
export interface CachedPass {
  ids: number[];
  /** Position of each id (0-based in the text). */
  positions: number[];
  /** 1/0 per key: the cache's keys, then the new tokens. */
  mask: Uint8Array;
  past: KvCache | null;
  /** Layers whose attention to fetch ([H][n][keys] each). */
  layers: number[];
  /** Also return the cache after this pass. */
  present: boolean;
}

export interface CachedGraph {
  label: string;
  L: number;
  H: number;
  run(pass: CachedPass, signal?: AbortSignal): Promise<{ attention: Float32Array[]; keys: number; present: KvCache | null }>;
}

/**
 * How a pass with cache length P and the mask [1]*i0 + [0]*(P - i0) + [1]*n lays out the attention
 * of its n new tokens: 'split' (the mask is per key, as unfused graphs apply it: the cache's first
 * i0 keys, then the new keys at columns P..P+n-1) or 'packed' (the op reads only the mask's sum as
 * the sequence length, as GroupQueryAttention does: the new keys sit at columns i0..i0+n-1).
 */
export type CacheLayout = 'split' | 'packed';

export interface LongOptions {
  /** Bytes of attention a prefill chunk may return (all layers together); default 128 MiB. */
  chunkBytes?: number;
  /** Force a chunk size in tokens (tests). */
  chunk?: number;
  signal?: AbortSignal;
  /** Called after each chunk with the tokens done. */
  onChunk?: (done: number, total: number) => void;
  thumbMax?: number;
}

const DEFAULT_CHUNK_BYTES = 128 * 2 ** 20;

/** What a long run holds: the thumbnails made as the text passed, and the cache its rows come from. */
export class LongAttention {
  private constructor(
    private readonly graph: CachedGraph,
    private readonly ids: number[],
    private cache: KvCache | null,
    readonly layout: CacheLayout,
    /** Per layer [H + 1][size][size] float32, the head-mean last (analysis/thumbs.ts). */
    readonly pooled: Float32Array[],
    readonly thumbSize: number,
    readonly chunk: number,
  ) {}

  get T(): number {
    return this.ids.length;
  }

  get L(): number {
    return this.graph.L;
  }

  get H(): number {
    return this.graph.H;
  }

  /** Runs `ids` through the model chunk by chunk, pooling thumbnails; checks the cache layout on its last row. */
  static async prefill(graph: CachedGraph, ids: number[], opts: LongOptions = {}): Promise<LongAttention> {
    const T = ids.length;
    const { L, H } = graph;
    const chunk = Math.max(1, Math.min(T, opts.chunk ?? Math.max(16, Math.floor((opts.chunkBytes ?? DEFAULT_CHUNK_BYTES) / (L * H * T * 4)))));
    const poolers = Array.from({ length: L }, () => new ThumbPooler(H, T, opts.thumbMax ?? THUMB_MAX));
    const all = Array.from({ length: L }, (_, l) => l);
    let cache: KvCache | null = null;
    let last: Float32Array[] = [];
    for (let c0 = 0; c0 < T; c0 += chunk) {
      if (opts.signal?.aborted) throw new EngineError('CANCELLED', 'Analysis cancelled.');
      const n = Math.min(chunk, T - c0);
      const mask = new Uint8Array(c0 + n).fill(1);
      const out = await graph.run({ ids: ids.slice(c0, c0 + n), positions: range(c0, n), mask, past: cache, layers: all, present: true }, opts.signal);
      if (out.keys !== c0 + n) throw new EngineError('ATTENTION_UNSUPPORTED', `${graph.label}: a pass of ${n} tokens after ${c0} cached ones returned attention over ${out.keys} keys, not ${c0 + n}.`);
      cache = out.present;
      out.attention.forEach((a, l) => {
        zeroFuture(a, H, n, c0 + n, c0);
        poolers[l].addRows(a, c0, n, c0 + n);
      });
      if (c0 + n === T) last = out.attention.map((a) => lastRow(a, H, n, T));
      opts.onChunk?.(c0 + n, T);
    }
    const layout = await checkLayout(graph, ids, cache!, last, opts.signal);
    return new LongAttention(graph, ids, cache, layout, poolers.map((p) => p.result()), poolers[0].size, chunk);
  }

  /** One layer's thumbnails in `encoding`, as runPayloads sends them; null when T is at most their size. */
  thumbs(l: number, encoding: Parameters<typeof encodeThumbs>[1]): LayerThumbs | null {
    if (this.thumbSize >= this.T) return null;
    return { size: this.thumbSize, ...encodeThumbs(this.pooled[l].slice(), encoding) };
  }

  /**
   * The attention rows of queries i0..i0+n-1 in `layers` (default all): per layer [H][n][T] float32,
   * keys after each query 0. One pass of those n tokens over the cache.
   */
  async rows(i0: number, n: number, layers?: number[], signal?: AbortSignal): Promise<Float32Array[]> {
    const T = this.T;
    if (!this.cache) throw new EngineError('INTERNAL', 'This long run was released.');
    if (!Number.isInteger(i0) || !Number.isInteger(n) || i0 < 0 || n < 1 || i0 + n > T) throw new EngineError('INTERNAL', `rows ${i0}..${i0 + n - 1} are outside 0..${T - 1}.`);
    const want = layers ?? Array.from({ length: this.L }, (_, l) => l);
    const out = await rowPass(this.graph, this.ids, this.cache, i0, n, want, signal);
    return out.attention.map((a) => placeRows(a, this.H, n, out.keys, T, i0, this.layout));
  }

  /** Drops the cache (the run was replaced). */
  release(): void {
    this.cache = null;
  }

  /** Bytes the cache holds (the benchmark reports it). */
  get cacheBytes(): number {
    let b = 0;
    for (const t of this.cache?.values() ?? []) b += (t as { data?: { byteLength?: number } }).data?.byteLength ?? 0;
    return b;
  }
}

function range(start: number, n: number): number[] {
  return Array.from({ length: n }, (_, k) => start + k);
}

/** The pass of queries i0..i0+n-1 over the whole cache, with the cache's keys from i0 on masked out. */
function rowPass(graph: CachedGraph, ids: number[], cache: KvCache, i0: number, n: number, layers: number[], signal?: AbortSignal) {
  const T = ids.length;
  const mask = new Uint8Array(T + n);
  mask.fill(1, 0, i0);
  mask.fill(1, T);
  return graph.run({ ids: ids.slice(i0, i0 + n), positions: range(i0, n), mask, past: cache, layers, present: false }, signal);
}

/** Rows [H][n][K] of a row pass placed as [H][n][T] under `layout`, keys after each query zeroed. */
function placeRows(a: Float32Array, H: number, n: number, K: number, T: number, i0: number, layout: CacheLayout): Float32Array {
  const out = new Float32Array(H * n * T);
  for (let h = 0; h < H; h++) {
    for (let r = 0; r < n; r++) {
      const src = (h * n + r) * K;
      const dst = (h * n + r) * T;
      const q = i0 + r;
      if (layout === 'packed') out.set(a.subarray(src, src + q + 1), dst);
      else {
        out.set(a.subarray(src, src + i0), dst);
        out.set(a.subarray(src + T, src + T + r + 1), dst + i0);
      }
    }
  }
  return out;
}

/** Zeroes keys after each query (i0 + r) in rows [H][n][K]: a fused op may leave them unwritten. */
function zeroFuture(a: Float32Array, H: number, n: number, K: number, i0: number): void {
  for (let h = 0; h < H; h++) for (let r = 0; r < n; r++) a.fill(0, (h * n + r) * K + i0 + r + 1, (h * n + r + 1) * K);
}

function lastRow(a: Float32Array, H: number, n: number, K: number): Float32Array {
  const out = new Float32Array(H * K);
  for (let h = 0; h < H; h++) out.set(a.subarray((h * n + n - 1) * K, (h * n + n) * K), h * K);
  return out;
}

/**
 * Which layout the model's cache pass has, found by computing the last token's row again over the
 * cache and comparing it with the prefill's: a model whose row pass matches neither is refused
 * rather than shown (its mask handling is one Attention Lens does not know).
 */
async function checkLayout(graph: CachedGraph, ids: number[], cache: KvCache, last: Float32Array[], signal?: AbortSignal): Promise<CacheLayout> {
  const T = ids.length;
  const { H } = graph;
  const layers = Array.from({ length: graph.L }, (_, l) => l);
  const out = await rowPass(graph, ids, cache, T - 1, 1, layers, signal);
  const gaps: Record<CacheLayout, number> = { split: 0, packed: 0 };
  for (const layout of ['split', 'packed'] as const) {
    out.attention.forEach((a, l) => {
      const row = placeRows(a, H, 1, out.keys, T, T - 1, layout);
      for (let k = 0; k < row.length; k++) gaps[layout] = Math.max(gaps[layout], Math.abs(row[k] - last[l][k]));
    });
  }
  const best: CacheLayout = gaps.packed < gaps.split ? 'packed' : 'split';
  // float16 models round each probability to about 1e-3 of itself.
  if (!(gaps[best] <= 2e-3)) {
    throw new EngineError(
      'ATTENTION_UNSUPPORTED',
      `${graph.label}: a row recomputed over the model's key/value cache differs from the same row of the full pass by ${gaps[best].toExponential(1)}, so rows of a long input cannot be trusted; select at most the whole-matrix limit of tokens.`,
    );
  }
  return best;
}
