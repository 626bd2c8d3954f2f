// A long run's matrix in the Heads and Matrix views: a WINDOW of it. Above the threshold the panel
// never holds a whole layer (T = 8,192 would be 256 MB a matrix): it asks the host for the block of
// one layer where queries and keys are the same W tokens [w0, w0 + W) (rows/request, answered by
// run/rows), keeps a few such blocks (WindowCache), and gives the views a WindowRun, a run over
// those W tokens whose matrices are the block, the way Compare gives them a DiffRun. The views then
// draw W x W like any run; token indices are local (global = w0 + local) and the app maps them.
//
// A window's rows do not sum to 1: each row's weight on keys before w0 is not in it. Hiding special
// tokens renormalises a row as the whole run would (by the weight it puts on tokens that are not
// special, 1 minus what it puts on special ones): the special tokens before the window have their
// columns asked for as well (usually one: the BOS token).

import type { Aggregation, RowsData, WireData, WireToken } from '../src/protocol/attention';
import type { RowsRequestMessage, RunStartMessage } from '../src/protocol/webview';
import { RunData } from './store';

/** Window sizes offered (tokens a side); the default is the middle one. */
export const WINDOW_SIZES: readonly number[] = [64, 128, 256];
export const DEFAULT_WINDOW = 128;

/** Bytes of window blocks kept (at 12 heads a 256-token block is 3 MB). */
const BUDGET_BYTES = 64 * 2 ** 20;
/** Special tokens before a window fetched as at most this many ranges of columns... */
const MAX_SIDE_RANGES = 4;
/** ...or, when more, one range of at most this many columns; beyond, hiding cannot be shown in a window. */
const MAX_SIDE_COLUMNS = 1024;
const MATRICES_KEPT = 16;

interface Entry {
  /** [H][count][keyCount] float32, once it came. */
  data: Float32Array | null;
  error: string | null;
  /** When the request was posted (for the "Computing…" note). */
  asked: number;
}

interface Block {
  layer: number;
  start: number;
  count: number;
  keyStart: number;
  keyCount: number;
}

const keyOf = (b: Block): string => `${b.layer}:${b.start}:${b.count}:${b.keyStart}:${b.keyCount}`;

/** A long run's window blocks as they come from the host, least recently used dropped first. */
export class WindowCache {
  private readonly entries = new Map<string, Entry>();
  private bytes = 0;

  constructor(
    readonly run: RunData,
    private readonly post: (m: RowsRequestMessage) => void,
  ) {}

  /** Whether the host can answer rows yet: its run is over (every thumbnail here, or done). */
  get ready(): boolean {
    return this.run.complete || this.run.done;
  }

  /** The block's data, or null while it is missing; `ask`: post a request for it when none is out. */
  get(b: Block, ask: boolean): Float32Array | null {
    const key = keyOf(b);
    const e = this.entries.get(key);
    if (e) {
      if (e.data) {
        this.entries.delete(key);
        this.entries.set(key, e);
      }
      return e.data;
    }
    if (ask && this.ready) {
      this.entries.set(key, { data: null, error: null, asked: performance.now() });
      this.post({ type: 'rows/request', runId: this.run.runId, start: b.start, count: b.count, layers: [b.layer], keyStart: b.keyStart, keyCount: b.keyCount });
    }
    return null;
  }

  /** Why the block is missing: the host's error, or null (not asked yet, or on its way). */
  error(b: Block): string | null {
    return this.entries.get(keyOf(b))?.error ?? null;
  }

  /** Forgets the blocks that failed, so that they are asked again (the window or the layer changed). */
  dropErrors(): void {
    for (const [key, e] of this.entries) if (e.error !== null) this.entries.delete(key);
  }

  /**
   * Stores the answer to one of this cache's requests; false when it was none of them (a hover's
   * rows, another run's). Throws when the data does not fit the block.
   */
  receive(m: { runId: number; rows?: RowsData<WireData>; error?: string; start?: number; count?: number }): boolean {
    if (m.runId !== this.run.runId) return false;
    if (m.error !== undefined) {
      let ours = false;
      for (const [key, e] of this.entries) {
        const [, start, count] = key.split(':').map(Number);
        if (e.data === null && e.error === null && start === m.start && count === m.count) {
          e.error = m.error;
          ours = true;
        }
      }
      return ours;
    }
    const r = m.rows;
    if (!r || r.layers.length !== 1) return false;
    const key = keyOf({ layer: r.layers[0], start: r.start, count: r.count, keyStart: r.keyStart, keyCount: r.keyCount });
    const e = this.entries.get(key);
    if (!e || e.data) return false;
    const data = toFloat32(r.data[0]);
    const want = this.run.H * r.count * r.keyCount;
    if (data.length !== want) {
      e.error = `the host sent ${data.length} values for ${want}`;
      throw new Error(`rows of layer ${r.layers[0]}: ${data.length} values, expected ${want}`);
    }
    e.data = data;
    this.entries.delete(key);
    this.entries.set(key, e);
    this.bytes += data.byteLength;
    this.evict(key);
    return true;
  }

  private evict(keep: string): void {
    for (const [key, e] of this.entries) {
      if (this.bytes <= BUDGET_BYTES) return;
      if (key === keep || !e.data) continue;
      this.entries.delete(key);
      this.bytes -= e.data.byteLength;
    }
  }
}

/** float32 values of a payload (a copy when a view is not 4-byte aligned). */
function toFloat32(d: WireData): Float32Array {
  if (d instanceof Float32Array) return d;
  if (d instanceof ArrayBuffer) return new Float32Array(d);
  const v = d as ArrayBufferView;
  if (v.byteOffset % 4 === 0) return new Float32Array(v.buffer, v.byteOffset, v.byteLength >> 2);
  return new Float32Array(new Uint8Array(v.buffer, v.byteOffset, v.byteLength).slice().buffer);
}

/** The special tokens before `w0` as ranges [start, end) of key columns; null when there are too many to fetch. */
function sideRanges(tokens: readonly WireToken[], w0: number): [number, number][] | null {
  const ranges: [number, number][] = [];
  for (let i = 0; i < w0; i++) {
    if (!tokens[i].special) continue;
    const last = ranges[ranges.length - 1];
    if (last && last[1] === i) last[1] = i + 1;
    else ranges.push([i, i + 1]);
  }
  if (ranges.length <= MAX_SIDE_RANGES) return ranges;
  const one: [number, number] = [ranges[0][0], ranges[ranges.length - 1][1]];
  return one[1] - one[0] <= MAX_SIDE_COLUMNS ? [one] : null;
}

function windowStart(base: RunData, w0: number, n: number): RunStartMessage {
  return {
    type: 'run/start',
    runId: base.runId,
    model: base.model,
    tokens: base.tokens.slice(w0, w0 + n),
    encoding: 'f32',
    source: base.source,
    truncation: null,
    notices: [],
    ...(base.sourceText ? { sourceText: base.sourceText } : {}),
  };
}

/**
 * Tokens w0 .. w0 + n - 1 of a long run as a run of their own: its matrix for a layer is the block
 * where those tokens are queries and keys, from the WindowCache (asked for on first use).
 */
export class WindowRun extends RunData {
  readonly base: RunData;
  readonly w0: number;
  readonly n: number;
  /** The window size asked for (n is less only when the run is shorter). */
  readonly size: number;
  private readonly blocks: WindowCache;
  private readonly side: [number, number][] | null;
  private readonly mats = new Map<string, Float32Array>();

  constructor(base: RunData, w0: number, size: number, cache: WindowCache) {
    const n = Math.min(size, base.T);
    super(windowStart(base, w0, n));
    this.base = base;
    this.w0 = w0;
    this.n = n;
    this.size = size;
    this.blocks = cache;
    this.side = sideRanges(base.tokens, w0);
    // Tokens are shown as in the whole run (a piece's text can depend on the token before the window).
    for (let i = 0; i < n; i++) this.display[i] = base.display[w0 + i];
    this.setHideSpecial(base.hideSpecial);
  }

  /** The whole run's token at local index `i`. */
  global(i: number): number {
    return this.w0 + i;
  }

  /** The local index of the whole run's token `g`, or -1 when it is outside the window. */
  local(g: number): number {
    const i = g - this.w0;
    return i >= 0 && i < this.n ? i : -1;
  }

  /** "Tokens 101–228 of 8,192": 1-based, as the rest of the panel counts tokens. */
  get range(): string {
    const f = (x: number): string => x.toLocaleString('en-US');
    return `Tokens ${f(this.w0 + 1)}–${f(this.w0 + this.n)} of ${f(this.base.T)}`;
  }

  private block(l: number): Block {
    return { layer: l, start: this.w0, count: this.n, keyStart: this.w0, keyCount: this.n };
  }

  private sideBlock(l: number, [a, b]: [number, number]): Block {
    return { layer: l, start: this.w0, count: this.n, keyStart: a, keyCount: b - a };
  }

  override setHideSpecial(hide: boolean): void {
    super.setHideSpecial(hide);
    this.mats?.clear();
  }

  /** A block's data arrived: matrices built before it (none: missing data is not cached) stay valid. */
  override hasLayer(l: number): boolean {
    return this.waitingFor(l, false) === null;
  }

  override get complete(): boolean {
    return this.base.complete;
  }

  /** No thumbnails: the model view draws the whole run's. */
  override thumbs(): undefined {
    return undefined;
  }

  /** Why the layer's window is not shown yet (asking for it once when `ask`), or null when it can be. */
  override waitingFor(l: number, ask = true): string | null {
    const base = this.base;
    if (!this.blocks.ready) return `Waiting for the run to finish (thumbnails of ${base.thumbsArrived}/${base.L} layers)…`;
    const what = `${this.range.replace(/^Tokens/, 'tokens')}, layer ${l + 1}`;
    const b = this.block(l);
    if (!this.blocks.get(b, ask)) {
      const err = this.blocks.error(b);
      return err ? `No rows for ${what}: ${err}` : `Computing the rows of ${what}…`;
    }
    if (!this.hideSpecial) return null;
    if (!this.side) return 'Hiding special tokens renormalises each row by its weight on the special tokens before the window, and there are too many of them here to fetch: turn off Hide special tokens to see this window.';
    for (const r of this.side) {
      const sb = this.sideBlock(l, r);
      if (this.blocks.get(sb, ask)) continue;
      const err = this.blocks.error(sb);
      return err ? `No columns for the special tokens before the window: ${err}` : `Computing the special tokens’ columns (to renormalise the rows of ${what})…`;
    }
    return null;
  }

  /**
   * The window's matrix (n x n, row = query, column = key) of one head or the heads' mean, special
   * tokens hidden and rows renormalised as the whole run would when asked; null while its rows are
   * on their way (asked for here) and for rollout, which needs whole matrices.
   */
  override matrix(l: number, agg: Aggregation): Float32Array | null {
    if (agg === 'rollout' || (typeof agg === 'number' && (agg < 0 || agg >= this.H)) || l < 0 || l >= this.L) return null;
    const key = `${l}:${agg}`;
    const hit = this.mats.get(key);
    if (hit) return hit;
    if (this.waitingFor(l) !== null) return null;
    const { n, H } = this;
    const block = this.blocks.get(this.block(l), false)!;
    const out = headOf(block, H, n, n, agg);
    if (this.hideSpecial) {
      // What each row puts on special tokens: in the window, and in the columns fetched before it.
      const mass = new Float64Array(n);
      for (let j = 0; j < n; j++) if (this.tokens[j].special) for (let i = 0; i < n; i++) mass[i] += out[i * n + j];
      for (const r of this.side!) {
        const kc = r[1] - r[0];
        const cols = headOf(this.blocks.get(this.sideBlock(l, r), false)!, H, n, kc, agg);
        for (let c = 0; c < kc; c++) if (this.base.tokens[r[0] + c].special) for (let i = 0; i < n; i++) mass[i] += cols[i * kc + c];
      }
      const keep = this.keep;
      for (let i = 0; i < n; i++) {
        const kept = 1 - mass[i];
        const inv = keep[i] && kept > 0 ? 1 / kept : 0;
        for (let j = 0; j < n; j++) out[i * n + j] = keep[j] ? out[i * n + j] * inv : 0;
      }
    }
    if (this.mats.size >= MATRICES_KEPT) this.mats.delete(this.mats.keys().next().value!);
    this.mats.set(key, out);
    return out;
  }

  override headInto(): Float32Array | null {
    return null;
  }

  override rolloutProgress(): number {
    return 0;
  }

  override stepRollout(): boolean {
    return false;
  }
}

/** One head of a block [H][rows][cols], or the heads' mean: a new rows x cols array. */
function headOf(block: Float32Array, H: number, rows: number, cols: number, agg: number | 'mean'): Float32Array {
  const size = rows * cols;
  if (agg !== 'mean') return block.slice(agg * size, (agg + 1) * size);
  const out = new Float32Array(size);
  for (let h = 0; h < H; h++) {
    const base = h * size;
    for (let p = 0; p < size; p++) out[p] += block[base + p];
  }
  const inv = 1 / H;
  for (let p = 0; p < size; p++) out[p] *= inv;
  return out;
}

export function isWindow(run: RunData | null): run is WindowRun {
  return run instanceof WindowRun;
}
