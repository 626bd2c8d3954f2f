// Long inputs in memory linear in T. A whole run holds L·H·T² attention cells (9.7 G at T = 8,192
// for 12 x 12 heads); above a threshold the engine instead runs the text in chunks through the
// model's own key/value cache, pools each chunk's attention rows into the thumbnails as they pass,
// and keeps the cache (every layer's keys after rotary and its values, GQA's KV heads unexpanded):
// any rows of the matrix are then one more pass of those tokens over the cache of the tokens before
// them, the way the model decodes. Nothing here assumes a graph layout beyond a causal decoder with
// a cache, and each run checks one recomputed row against its prefill before trusting the rest.
//
// Memory: the cache lives in two buffers per cache tensor, allocated once at the run's full length:
// a pass reads the cache from one and ONNX Runtime writes the next cache straight into the other
// (pre-allocated outputs: no copy into JS), so a run holds about twice the final cache plus one
// chunk's attention (written into buffers reused from chunk to chunk). A row pass repacks the
// cache's prefix into the spare buffer.
import { THUMB_MAX, ThumbPooler, encodeThumbs, thumbSize, type LayerThumbs } from '../analysis/thumbs';
import { EngineError } from './types';

/**
 * Runs of more tokens than this are long in the extension: the panel gets thumbnails and rows on
 * demand instead of whole layers. At 512 tokens a 12 x 12 model's whole layers are 67 MB as f16
 * (the panel's decode of them is what the T = 512 targets measure); above, they grow as T².
 */
export const LONG_THRESHOLD = 512;

/** A cache tensor's storage: [1, kvHeads, length, headDim] in the first kvHeads·length·headDim elements. */
export type CacheData = Float32Array | Uint16Array;

/** The cache between passes: graph input name (past_key_values.N.key, ...) -> its data and length. */
export interface KvCache {
  length: number;
  data: Map<string, CacheData>;
}

/** One pass of `ids` over the first `past` tokens of a cache, as the engine runs it (engine.ts cachedGraph). */
export interface CachedPass {
  ids: number[];
  /** Position of each id (0-based in the text). */
  positions: number[];
  past: KvCache | null;
  /** Layers whose attention to fetch ([H][n][past + n] each, float32). */
  layers: number[];
  /** Where ONNX Runtime writes the cache after this pass (its first (past + n)·kv·d elements per tensor), or null when not wanted. */
  present: Map<string, CacheData> | null;
  /**
   * Buffers the pass may write its attention into and hand back as views, valid until the next
   * pass with the same map (the prefill's chunks: no new arrays per chunk for the collector to find).
   * Absent: new arrays the caller keeps.
   */
  scratch?: Map<number, Float32Array>;
}

export interface CachedGraph {
  label: string;
  L: number;
  H: number;
  /** [kvHeads, headDim] of every cache tensor, by graph input name, and its element type. */
  cacheShape(): Map<string, { kvHeads: number; headDim: number; half: boolean }>;
  run(pass: CachedPass, signal?: AbortSignal): Promise<{ attention: Float32Array[] }>;
}

export interface LongOptions {
  /** Bytes of attention a prefill chunk may return (all layers together, as float32); default 128 MiB. */
  chunkBytes?: number;
  /** Force a chunk size in tokens (tests). */
  chunk?: number;
  signal?: AbortSignal;
  /** Called after each chunk with the tokens done. */
  onChunk?: (done: number, total: number) => void;
  thumbMax?: number;
}

const DEFAULT_CHUNK_BYTES = 128 * 2 ** 20;
/** A recomputed row may differ from the prefill's by float16 rounding (about 1e-3 of a value), no more. */
const ROW_TOLERANCE = 2e-3;

/** What a long run holds: the thumbnails made as the text passed, and the cache its rows come from. */
export class LongAttention {
  /** Rows passes share the spare buffer: one at a time. */
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(
    private readonly graph: CachedGraph,
    private readonly ids: number[],
    private buffers: { cache: Map<string, CacheData>; spare: Map<string, CacheData> } | null,
    private readonly shapes: Map<string, { kvHeads: number; headDim: number }>,
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

  /** Runs `ids` through the model chunk by chunk, pooling thumbnails; checks a recomputed row after the first chunk. */
  static async prefill(graph: CachedGraph, ids: number[], opts: LongOptions = {}): Promise<LongAttention> {
    const T = ids.length;
    const { L, H } = graph;
    const chunk = Math.max(1, Math.min(T, opts.chunk ?? Math.max(16, Math.floor((opts.chunkBytes ?? DEFAULT_CHUNK_BYTES) / (L * H * T * 4)))));
    const poolers = Array.from({ length: L }, () => new ThumbPooler(H, T, thumbSize(T, opts.thumbMax ?? THUMB_MAX)));
    const all = range(0, L);
    const shapes = graph.cacheShape();
    const alloc = () => new Map([...shapes].map(([name, s]) => [name, s.half ? new Uint16Array(s.kvHeads * T * s.headDim) : new Float32Array(s.kvHeads * T * s.headDim)] as [string, CacheData]));
    let cache = alloc();
    let spare = alloc();
    // The chunks' attention goes into buffers reused from chunk to chunk, dropped after the prefill.
    const scratch = new Map<number, Float32Array>();
    for (let c0 = 0; c0 < T; c0 += chunk) {
      if (opts.signal?.aborted) throw new EngineError('CANCELLED', 'Analysis cancelled.');
      const n = Math.min(chunk, T - c0);
      const past: KvCache | null = c0 ? { length: c0, data: cache } : null;
      const out = await graph.run({ ids: ids.slice(c0, c0 + n), positions: range(c0, n), past, layers: all, present: spare, scratch }, opts.signal);
      [cache, spare] = [spare, cache];
      out.attention.forEach((a, l) => {
        zeroFuture(a, H, n, c0 + n, c0);
        poolers[l].addRows(a, c0, n, c0 + n);
      });
      if (c0 === 0 && n > 1) await checkRow(graph, ids, { length: n, data: cache }, spare, shapes, out.attention.map((a) => lastRow(a, H, n)), opts.signal);
      opts.onChunk?.(c0 + n, T);
    }
    return new LongAttention(graph, ids, { cache, spare }, shapes, poolers.map((p) => p.result()), poolers[0].size, chunk);
  }

  /** One layer's thumbnails in `encoding`, as runPayloads sends them; null when T is at most their size. */
  thumbs(l: number, encoding: Parameters<typeof encodeThumbs>[1]): LayerThumbs | null {
    if (this.thumbSize >= this.T) return null;
    return { size: this.thumbSize, ...encodeThumbs(this.pooled[l].slice(), encoding) };
  }

  /**
   * The attention rows of queries i0..i0+n-1 in `layers` (default all): per layer [H][n][T] float32,
   * keys after each query 0. One pass of those n tokens over the cache of the i0 tokens before them.
   */
  rows(i0: number, n: number, layers?: number[], signal?: AbortSignal): Promise<Float32Array[]> {
    const T = this.T;
    if (!Number.isInteger(i0) || !Number.isInteger(n) || i0 < 0 || n < 1 || i0 + n > T) return Promise.reject(new EngineError('INTERNAL', `rows ${i0}..${i0 + n - 1} are outside 0..${T - 1}.`));
    const want = layers ?? range(0, this.L);
    const next = this.queue.then(async () => {
      const b = this.buffers;
      if (!b) throw new EngineError('INTERNAL', 'This long run was released.');
      const out = await rowPass(this.graph, this.ids, { length: T, data: b.cache }, b.spare, this.shapes, i0, n, want, signal);
      return out.map((a) => padRows(a, this.H, n, i0 + n, T));
    });
    this.queue = next.catch(() => undefined);
    return next;
  }

  /** Drops the cache (the run was replaced). */
  release(): void {
    this.buffers = null;
  }

  /** Bytes the cache holds at the run's length (its spare buffer, as large, beside it). */
  get cacheBytes(): number {
    let b = 0;
    for (const d of this.buffers?.cache.values() ?? []) b += d.byteLength;
    return b;
  }
}

function range(start: number, n: number): number[] {
  return Array.from({ length: n }, (_, k) => start + k);
}

/**
 * Queries i0..i0+n-1 over the cache of tokens 0..i0-1 (repacked from `cache`, of `cache.length`
 * tokens, into `scratch`): their attention [H][n][i0 + n] per layer, as the model computes it.
 */
async function rowPass(
  graph: CachedGraph,
  ids: number[],
  cache: KvCache,
  scratch: Map<string, CacheData>,
  shapes: Map<string, { kvHeads: number; headDim: number }>,
  i0: number,
  n: number,
  layers: number[],
  signal?: AbortSignal,
): Promise<Float32Array[]> {
  if (i0 > 0) {
    for (const [name, src] of cache.data) {
      const { kvHeads, headDim: d } = shapes.get(name)!;
      const dst = scratch.get(name)!;
      // [kv][cache.length][d] -> [kv][i0][d]: each head's first i0 positions.
      for (let h = 0; h < kvHeads; h++) dst.set(src.subarray(h * cache.length * d, (h * cache.length + i0) * d), h * i0 * d);
    }
  }
  const out = await graph.run({ ids: ids.slice(i0, i0 + n), positions: range(i0, n), past: i0 > 0 ? { length: i0, data: scratch } : null, layers, present: null }, signal);
  out.attention.forEach((a) => zeroFuture(a, graph.H, n, i0 + n, i0));
  return out.attention;
}

/** Rows [H][n][K] as [H][n][T] (keys from K on are 0). */
function padRows(a: Float32Array, H: number, n: number, K: number, T: number): Float32Array {
  if (K === T) return a;
  const out = new Float32Array(H * n * T);
  for (let r = 0; r < H * n; r++) out.set(a.subarray(r * K, (r + 1) * K), r * T);
  return out;
}

/** Zeroes keys after each query (i0 + r) in rows [H][n][K]: a fused op may leave them unwritten. */
function zeroFuture(a: Float32Array, H: number, n: number, K: number, i0: number): void {
  for (let h = 0; h < H; h++) for (let r = 0; r < n; r++) a.fill(0, (h * n + r) * K + i0 + r + 1, (h * n + r + 1) * K);
}

/** The last query's row [H][K] of rows [H][n][K]. */
function lastRow(a: Float32Array, H: number, n: number): Float32Array {
  const K = a.length / (H * n);
  const out = new Float32Array(H * K);
  for (let h = 0; h < H; h++) out.set(a.subarray((h * n + n - 1) * K, (h * n + n) * K), h * K);
  return out;
}

/**
 * The first chunk's last row computed again as a row pass (over the cache of the tokens before it)
 * must equal the chunk's: a model whose cache passes differ from its own full pass is refused
 * before the rest of the text runs, rather than shown.
 */
async function checkRow(
  graph: CachedGraph,
  ids: number[],
  cache: KvCache,
  scratch: Map<string, CacheData>,
  shapes: Map<string, { kvHeads: number; headDim: number }>,
  expected: Float32Array[],
  signal?: AbortSignal,
): Promise<void> {
  const q = cache.length - 1;
  const layers = range(0, graph.L);
  const got = await rowPass(graph, ids, cache, scratch, shapes, q, 1, layers, signal);
  let gap = 0;
  got.forEach((row, l) => {
    for (let k = 0; k < row.length; k++) gap = Math.max(gap, Math.abs(row[k] - expected[l][k]));
  });
  if (!(gap <= ROW_TOLERANCE)) {
    throw new EngineError(
      'ATTENTION_UNSUPPORTED',
      `${graph.label}: a row recomputed over the model's key/value cache differs from the same row of the full pass by ${gap.toExponential(1)}, so rows of a long input cannot be trusted. Select at most ${LONG_THRESHOLD} tokens.`,
    );
  }
}
