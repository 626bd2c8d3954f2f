// Raster painting of attention matrices: one canvas pixel per cell, written into a reused
// ImageData through a Uint32 view in one tight loop, colours from a quantised lookup table.
// Canvases are scaled up by CSS with `image-rendering: pixelated`.

import { DIFF_LUT_SIZE, LUT_SIZE } from './theme';
import { poolBlocks } from '../src/analysis';

const MAX = LUT_SIZE - 1;

/** Maps a weight to its palette index (0 below the threshold). */
function idx(w: number, thr: number): number {
  if (!(w >= thr) || w <= 0) return 0;
  const i = (w * MAX + 0.5) | 0;
  return i > MAX ? MAX : i;
}

/**
 * Full resolution: V x V pixels for the visible tokens `vis` (indices into the T x T matrix).
 * `dst` is a Uint32Array over the ImageData's bytes (little-endian RGBA).
 */
export function fillHeat(dst: Uint32Array, m: Float32Array, T: number, vis: Int32Array, lut: Uint32Array, thr: number): void {
  const V = vis.length;
  const identity = V === T;
  let p = 0;
  for (let i = 0; i < V; i++) {
    const row = (identity ? i : vis[i]) * T;
    if (identity) {
      for (let j = 0; j < V; j++) dst[p++] = lut[idx(m[row + j], thr)];
    } else {
      for (let j = 0; j < V; j++) dst[p++] = lut[idx(m[row + vis[j]], thr)];
    }
  }
}

let acc = new Float32Array(0);

/**
 * Downsampled: size x size pixels, each the maximum over its block of cells (max keeps thin
 * structure such as the diagonal or a single attended token visible in a thumbnail).
 */
export function fillHeatDown(
  dst: Uint32Array,
  size: number,
  m: Float32Array,
  T: number,
  vis: Int32Array,
  lut: Uint32Array,
  thr: number,
): void {
  const V = vis.length;
  if (size >= V) {
    fillHeat(dst, m, T, vis, lut, thr);
    return;
  }
  if (acc.length < size * size) acc = new Float32Array(size * size);
  acc.fill(0, 0, size * size);
  const b = poolBlocks(V, size);
  const identity = V === T;
  for (let i = 0; i < V; i++) {
    const row = (identity ? i : vis[i]) * T;
    const out = b[i] * size;
    for (let j = 0; j < V; j++) {
      const v = m[row + (identity ? j : vis[j])];
      const o = out + b[j];
      if (v > acc[o]) acc[o] = v;
    }
  }
  const n = size * size;
  for (let p = 0; p < n; p++) dst[p] = lut[idx(acc[p], thr)];
}

const DIFF_MID = (DIFF_LUT_SIZE - 1) / 2;

/**
 * Compare's difference matrices, in two steps so a view can scale its colours to the largest
 * change it shows: poolDiff takes the visible cells into size x size (one cell per pixel when
 * size >= V; else each pixel the value of largest magnitude in its block, sign kept, and a gap
 * (NaN) wins its block so an inserted or deleted token stays visible as a band), and returns the
 * largest magnitude; paintDiff colours them.
 */
export function poolDiff(m: Float32Array, T: number, vis: Int32Array, size: number, out: Float32Array): number {
  const V = vis.length;
  let max = 0;
  if (size >= V) {
    let p = 0;
    for (let i = 0; i < V; i++) {
      const row = vis[i] * T;
      for (let j = 0; j < V; j++) {
        const d = m[row + vis[j]];
        out[p++] = d;
        if (Math.abs(d) > max) max = Math.abs(d);
      }
    }
    return max;
  }
  out.fill(0, 0, size * size);
  const b = poolBlocks(V, size);
  for (let i = 0; i < V; i++) {
    const row = vis[i] * T;
    const o = b[i] * size;
    for (let j = 0; j < V; j++) {
      const v = m[row + vis[j]];
      const k = o + b[j];
      const cur = out[k];
      if (cur !== cur) continue; // a gap already: it stays
      if (v !== v || Math.abs(v) > Math.abs(cur)) out[k] = v;
      if (Math.abs(v) > max) max = Math.abs(v);
    }
  }
  return max;
}

/** Colours `n` pooled differences: d / scale on the diverging table, |d| below `thr` as no change, NaN (a gap) as `gap`. */
export function paintDiff(dst: Uint32Array, pooled: Float32Array, n: number, lut: Uint32Array, gap: number, thr: number, scale: number): void {
  const k = DIFF_MID / scale;
  for (let p = 0; p < n; p++) {
    const d = pooled[p];
    if (d !== d) dst[p] = gap;
    else if (!(Math.abs(d) >= thr)) dst[p] = lut[DIFF_MID];
    else {
      const i = Math.round(DIFF_MID + d * k);
      dst[p] = lut[i < 0 ? 0 : i > 2 * DIFF_MID ? 2 * DIFF_MID : i];
    }
  }
}

const images = new Map<string, { img: ImageData; u32: Uint32Array }>();

/** A reusable ImageData of w x h (one per size; painting is synchronous so sharing is safe). */
export function imageFor(ctx: CanvasRenderingContext2D, w: number, h: number): { img: ImageData; u32: Uint32Array } {
  const key = `${w}x${h}`;
  let e = images.get(key);
  if (!e) {
    const img = ctx.createImageData(w, h);
    e = { img, u32: new Uint32Array(img.data.buffer) };
    if (images.size > 8) images.clear();
    images.set(key, e);
  }
  return e;
}

/** Sizes a canvas backing store (only when it changed: resizing clears it). */
export function sizeCanvas(c: HTMLCanvasElement, w: number, h: number): void {
  if (c.width !== w) c.width = w;
  if (c.height !== h) c.height = h;
}

/** `n` pixels straight from wire storage at `base` (decoded through `lut`, null for float32): a thumbnail the host pooled. */
export function fillHeatRaw(dst: Uint32Array, n: number, raw: Float32Array | Uint16Array | Uint8Array, lut: Float32Array | null, base: number, heat: Uint32Array, thr: number): void {
  if (lut !== null) for (let p = 0; p < n; p++) dst[p] = heat[idx(lut[raw[base + p]], thr)];
  else for (let p = 0; p < n; p++) dst[p] = heat[idx(raw[base + p], thr)];
}
