// Thumbnails: each head's T x T matrix max-pooled to at most THUMB_MAX x THUMB_MAX (max keeps thin
// structure such as the diagonal or one attended token visible). The panel's model view paints
// one per head plus the head-mean; the engine's worker computes them so that a long run's grid
// can be painted from a few MB before its full layers (16 times larger at T = 512) have crossed.

import type { Encoding, LayerTensor } from './tensor';
import { encodeF16, encodeU8, packF14 } from './f16';

/** Largest thumbnail side in pixels. */
export const THUMB_MAX = 128;

/** Thumbnail side for V tokens: V itself up to `max`, else V split into equal whole blocks. */
export function thumbSize(V: number, max = THUMB_MAX): number {
  return Math.max(1, V <= max ? V : Math.ceil(V / Math.ceil(V / max)));
}

const blockCache = new Map<string, Int32Array>();
const startsCache = new Map<string, Int32Array>();

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

/** starts[ob]..starts[ob+1] = the indices that fall in output cell ob (same split as poolBlocks). */
export function poolStarts(V: number, size: number): Int32Array {
  const key = `${V}:${size}`;
  let s = startsCache.get(key);
  if (!s) {
    const b = poolBlocks(V, size);
    s = new Int32Array(size + 1);
    for (let j = 0; j < V; j++) s[b[j] + 1] = j + 1;
    for (let ob = 1; ob <= size; ob++) if (s[ob] < s[ob - 1]) s[ob] = s[ob - 1];
    if (startsCache.size > 16) startsCache.clear();
    startsCache.set(key, s);
  }
  return s;
}

/**
 * Max-pools the T x T block of `raw` at `base` (decoded through `lut`, null for float32) into
 * `out` (size x size, starting at 0; values below 0 count as 0), adding the decoded values into
 * `sum` (T x T) when given.
 */
export function poolHead(
  raw: Float32Array | Uint16Array | Uint8Array,
  lut: Float32Array | null,
  base: number,
  T: number,
  size: number,
  out: Float32Array,
  sum: Float32Array | null,
): void {
  out.fill(0, 0, size * size);
  const b = poolBlocks(T, size);
  const cs = poolStarts(T, size);
  for (let i = 0; i < T; i++) {
    const o = b[i] * size;
    const r = base + i * T;
    const mr = i * T;
    for (let ob = 0; ob < size; ob++) {
      let mx = out[o + ob];
      const end = cs[ob + 1];
      if (lut !== null) {
        if (sum !== null) {
          for (let j = cs[ob]; j < end; j++) {
            const v = lut[raw[r + j]];
            sum[mr + j] += v;
            if (v > mx) mx = v;
          }
        } else {
          for (let j = cs[ob]; j < end; j++) {
            const v = lut[raw[r + j]];
            if (v > mx) mx = v;
          }
        }
      } else {
        for (let j = cs[ob]; j < end; j++) {
          const v = raw[r + j];
          if (sum !== null) sum[mr + j] += v;
          if (v > mx) mx = v;
        }
      }
      out[o + ob] = mx;
    }
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
  const { T, heads: H, raw, lut } = layer;
  if (size >= T) return null;
  const n = size * size;
  const pooled = new Float32Array((H + 1) * n);
  const sum = new Float32Array(T * T);
  for (let h = 0; h < H; h++) poolHead(raw, lut, h * T * T, T, size, pooled.subarray(h * n), sum);
  const inv = 1 / H;
  for (let i = 0; i < sum.length; i++) sum[i] *= inv;
  poolHead(sum, null, 0, T, size, pooled.subarray(H * n), null);
  return { size, ...encodeThumbs(pooled, layer.encoding) };
}

function encodeThumbs(pooled: Float32Array, encoding: Encoding): { data: ArrayBuffer; packed: boolean } {
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
