// Thumbnails: each head's T x T matrix max-pooled to at most THUMB_MAX x THUMB_MAX (max keeps thin
// structure such as the diagonal or one attended token visible). The panel's model view paints
// one per head plus the head-mean; the engine's worker computes them so that a long run's grid
// can be painted from a few MB before its full layers (16 times larger at T = 512) have crossed.

import type { AttentionEncoding } from '../protocol/attention';
import type { LayerTensor } from './tensor';
import { encodeF16, encodeU8, packF14 } from './f16';

/** Largest thumbnail side in pixels. */
export const THUMB_MAX = 128;

/** Thumbnail side for V tokens: V itself up to `max`, else V split into equal whole blocks. */
export function thumbSize(V: number, max = THUMB_MAX): number {
  return Math.max(1, V <= max ? V : Math.ceil(V / Math.ceil(V / max)));
}

const blockCache = new Map<string, Int32Array>();

/** block[i] = which of `size` output cells index i of V falls in. */
export function poolBlocks(V: number, size: number): Int32Array {
  const key = `${V}:${size}`;
  let b = blockCache.get(key);
  if (!b) {
    b = new Int32Array(V);
    for (let i = 0; i < V; i++) b[i] = Math.min(size - 1, Math.floor((i * size) / V));
    if (blockCache.size > 16) blockCache.clear();
    blockCache.set(key, b);
  }
  return b;
}

/** Max-pools a whole layer (decoded through `lut`, null for float32): ThumbPooler given every row at once. */
function poolLayer(raw: Float32Array | Uint16Array | Uint8Array, lut: Float32Array | null, heads: number, T: number, size: number): Float32Array {
  const pooler = new ThumbPooler(heads, T, size);
  pooler.addRows(raw, 0, T, T, lut);
  return pooler.result();
}

/** starts[q]..starts[q + 1] = the indices of V that fall in output pixel q (the split of poolBlocks). */
function poolStarts(V: number, size: number): Int32Array {
  const b = poolBlocks(V, size);
  const s = new Int32Array(size + 1);
  for (let j = 0; j < V; j++) s[b[j] + 1] = j + 1;
  for (let q = 1; q <= size; q++) if (s[q] < s[q - 1]) s[q] = s[q - 1];
  return s;
}

/**
 * Max-pools a layer's heads into [heads + 1][size][size]: each head, then the mean of the heads;
 * values below 0 count as 0. Rows may come in blocks (a long input's chunks, engine/long.ts) or all
 * at once (poolLayer): the same pixels, never holding more than the rows given. Row by row across
 * the heads, so a row's running sum for the mean stays in a T-float buffer.
 */
export class ThumbPooler {
  private readonly out: Float32Array;
  private readonly blocks: Int32Array;
  private readonly starts: Int32Array;
  private readonly row: Float32Array;

  constructor(private readonly heads: number, private readonly T: number, readonly size = thumbSize(T)) {
    this.out = new Float32Array((heads + 1) * size * size);
    this.blocks = poolBlocks(T, size);
    this.starts = poolStarts(T, size);
    this.row = new Float32Array(T);
  }

  /** Rows i0..i0+n-1 of every head: `rows` is [heads][n][K] (decoded through `lut`, null for float32), keys from K on being 0. */
  addRows(rows: Float32Array | Uint16Array | Uint8Array, i0: number, n: number, K: number, lut: Float32Array | null = null): void {
    const { heads, size, out, starts, row } = this;
    const cells = size * size;
    const inv = 1 / heads;
    for (let r = 0; r < n; r++) {
      row.fill(0);
      const ob = this.blocks[i0 + r] * size;
      for (let h = 0; h <= heads; h++) {
        const mean = h === heads;
        const src = (h * n + r) * K;
        const o = h * cells + ob;
        // Pixel by pixel along the row: the running maximum stays in a register.
        for (let q = 0; q < size; q++) {
          let mx = out[o + q];
          const end = Math.min(starts[q + 1], K);
          if (mean) {
            for (let j = starts[q]; j < end; j++) {
              const v = row[j] * inv;
              if (v > mx) mx = v;
            }
          } else if (lut !== null) {
            for (let j = starts[q]; j < end; j++) {
              const v = lut[rows[src + j]];
              row[j] += v;
              if (v > mx) mx = v;
            }
          } else {
            for (let j = starts[q]; j < end; j++) {
              const v = rows[src + j];
              row[j] += v;
              if (v > mx) mx = v;
            }
          }
          out[o + q] = mx;
        }
      }
    }
  }

  /** [heads + 1][size][size] float32, the head-mean last. */
  result(): Float32Array {
    return this.out;
  }
}

/** One layer's thumbnails as they cross to the panel. */
export interface LayerThumbs {
  /** Side in pixels (< T: thumbnails are only worth sending when they are smaller than the layer). */
  size: number;
  /** [heads + 1][size][size] in the layer's encoding, the head-mean last; packF14 when `packed`. */
  data: ArrayBuffer;
  packed: boolean;
}

/**
 * The thumbnails of one layer: each head max-pooled, then the mean of the heads max-pooled, in the
 * layer's own encoding (a head's pooled value is one of its cells, so it re-encodes exactly; f16
 * bit-packed when every value fits, as layers are). Null when T is small enough that thumbnails
 * would be the layer itself.
 */
export function layerThumbs(layer: LayerTensor, size = thumbSize(layer.T)): LayerThumbs | null {
  if (size >= layer.T) return null;
  return { size, ...encodeThumbs(poolLayer(layer.raw, layer.lut, layer.heads, layer.T, size), layer.encoding) };
}

export function encodeThumbs(pooled: Float32Array, encoding: AttentionEncoding): { data: ArrayBuffer; packed: boolean } {
  switch (encoding) {
    case 'f32':
      return { data: pooled.buffer as ArrayBuffer, packed: false };
    case 'u8':
      return { data: encodeU8(pooled).buffer as ArrayBuffer, packed: false };
    case 'f16': {
      const codes = encodeF16(pooled);
      const packed = packF14(codes);
      return { data: (packed ?? codes).buffer as ArrayBuffer, packed: packed !== null };
    }
  }
}
