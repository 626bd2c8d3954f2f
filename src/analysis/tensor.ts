// Typed views over one layer of attention: [heads][T][T], row = query, column = key, in one of the
// wire encodings. Everything here works on flat row-major typed arrays; no per-cell objects.

import { BYTES_PER_ELEMENT, type AttentionEncoding as Encoding } from '../protocol/attention';
import { F14_GROUP, F14_GROUP_BYTES, f14ByteLength, f16Lut, unpackF14 } from './f16';

/** One layer as it came over the wire, plus the table that turns a stored element into a float. */
export interface LayerTensor {
  encoding: Encoding;
  heads: number;
  /** Tokens (the matrix side). */
  T: number;
  raw: Float32Array | Uint16Array | Uint8Array;
  /** Element -> float table for f16 (65536 entries) and u8 (256 entries); null for f32. */
  lut: Float32Array | null;
}

let u8Lut: Float32Array | null = null;
function getU8Lut(): Float32Array {
  if (!u8Lut) {
    u8Lut = new Float32Array(256);
    for (let i = 0; i < 256; i++) u8Lut[i] = i / 255;
  }
  return u8Lut;
}

/** Bytes one layer of [heads][T][T] takes in `encoding`. */
export function layerByteLength(encoding: Encoding, heads: number, T: number): number {
  return heads * T * T * BYTES_PER_ELEMENT[encoding];
}

/** Throws unless layers of `encoding` can be bit-packed (packF14 packs f16 only). */
function checkPackable(encoding: Encoding): void {
  if (encoding !== 'f16') throw new Error(`only f16 layers can be packed, not ${encoding}`);
}

/** Throws unless `byteLength` is a packF14 layer of [heads][T][T] f16 values. */
function checkPacked(byteLength: number, encoding: Encoding, heads: number, T: number): void {
  checkPackable(encoding);
  const expected = f14ByteLength(heads * T * T);
  if (byteLength !== expected) throw new Error(`packed layer has ${byteLength} bytes, expected ${expected} for ${heads} heads x ${T}x${T}`);
}

/**
 * Wraps a layer's bytes without copying (unless the bytes are misaligned for the element size).
 * `packed` (f16 only): the bytes are packF14 output, unpacked here into a new array.
 * Throws when the size does not match [heads][T][T].
 */
export function layerTensor(
  data: ArrayBufferLike | ArrayBufferView,
  encoding: Encoding,
  heads: number,
  T: number,
  packed = false,
): LayerTensor {
  const bytes = BYTES_PER_ELEMENT[encoding];
  if (bytes === undefined) throw new Error(`unknown attention encoding ${String(encoding)}`);
  if (packed) {
    checkPacked(data.byteLength, encoding, heads, T);
    return { encoding, heads, T, raw: unpackF14(packedWords(data), heads * T * T), lut: f16Lut() };
  }
  let buffer: ArrayBufferLike;
  let offset: number;
  let length: number;
  if (ArrayBuffer.isView(data)) {
    buffer = data.buffer;
    offset = data.byteOffset;
    length = data.byteLength;
  } else {
    buffer = data;
    offset = 0;
    length = data.byteLength;
  }
  const expected = layerByteLength(encoding, heads, T);
  if (length !== expected) {
    throw new Error(`layer has ${length} bytes, expected ${expected} for ${heads} heads x ${T}x${T} ${encoding}`);
  }
  if (offset % bytes !== 0) {
    buffer = new Uint8Array(buffer, offset, length).slice().buffer;
    offset = 0;
  }
  const n = heads * T * T;
  switch (encoding) {
    case 'f32':
      return { encoding, heads, T, raw: new Float32Array(buffer, offset, n), lut: null };
    case 'f16':
      return { encoding, heads, T, raw: new Uint16Array(buffer, offset, n), lut: f16Lut() };
    case 'u8':
      return { encoding, heads, T, raw: new Uint8Array(buffer, offset, n), lut: getU8Lut() };
  }
}

/** Decodes `count` elements starting at `start` into `out` (from index 0). */
export function decodeRange(layer: LayerTensor, start: number, count: number, out: Float32Array): Float32Array {
  const { raw, lut } = layer;
  if (lut === null) {
    out.set((raw as Float32Array).subarray(start, start + count));
  } else {
    for (let i = 0; i < count; i++) out[i] = lut[raw[start + i]];
  }
  return out;
}

/** One head's T x T matrix as floats. */
export function decodeHead(layer: LayerTensor, head: number, out?: Float32Array): Float32Array {
  const n = layer.T * layer.T;
  return decodeRange(layer, head * n, n, out ?? new Float32Array(n));
}

/** The whole layer [heads][T][T] as floats. */
export function decodeLayer(layer: LayerTensor, out?: Float32Array): Float32Array {
  const n = layer.heads * layer.T * layer.T;
  return decodeRange(layer, 0, n, out ?? new Float32Array(n));
}

/** Row `q` (what query q attends to) of one head. */
export function decodeRow(layer: LayerTensor, head: number, q: number, out?: Float32Array): Float32Array {
  const T = layer.T;
  return decodeRange(layer, head * T * T + q * T, T, out ?? new Float32Array(T));
}

/** Mean over all heads of the layer: T x T. */
export function meanHeads(layer: LayerTensor, out?: Float32Array): Float32Array {
  return meanOfHeads(layer, null, out);
}

/** Mean over the listed heads (all heads when `heads` is null). */
export function meanOfHeads(layer: LayerTensor, heads: readonly number[] | null, out?: Float32Array): Float32Array {
  const n = layer.T * layer.T;
  const o = out ?? new Float32Array(n);
  o.fill(0);
  const list = heads ?? Array.from({ length: layer.heads }, (_, h) => h);
  if (list.length === 0) return o;
  for (const h of list) addHead(layer, h, o);
  const inv = 1 / list.length;
  for (let i = 0; i < n; i++) o[i] *= inv;
  return o;
}

/** Adds head `head`'s T x T matrix into `acc` (for means computed a head at a time). */
export function addHead(layer: LayerTensor, head: number, acc: Float32Array): void {
  const n = layer.T * layer.T;
  const base = head * n;
  const { raw, lut } = layer;
  if (lut === null) {
    const r = raw as Float32Array;
    for (let i = 0; i < n; i++) acc[i] += r[base + i];
  } else {
    for (let i = 0; i < n; i++) acc[i] += lut[raw[base + i]];
  }
}

/** Mean over the listed heads of one row. */
export function meanRow(layer: LayerTensor, heads: readonly number[] | null, q: number, out?: Float32Array): Float32Array {
  const T = layer.T;
  const o = out ?? new Float32Array(T);
  o.fill(0);
  const list = heads ?? Array.from({ length: layer.heads }, (_, h) => h);
  if (list.length === 0) return o;
  const { raw, lut } = layer;
  for (const h of list) {
    const base = h * T * T + q * T;
    if (lut === null) for (let j = 0; j < T; j++) o[j] += (raw as Float32Array)[base + j];
    else for (let j = 0; j < T; j++) o[j] += lut[raw[base + j]];
  }
  const inv = 1 / list.length;
  for (let j = 0; j < T; j++) o[j] *= inv;
  return o;
}

/**
 * Hides tokens and renormalises rows: columns where `keep[j] === 0` become 0, every kept row is
 * rescaled to sum to 1 over the kept columns (a row whose kept mass is 0 stays all-zero), and the
 * rows of hidden tokens become all-zero. Works in place when `out === m`.
 */
export function renormalizeRows(m: Float32Array, T: number, keep: Uint8Array, out?: Float32Array): Float32Array {
  const o = out ?? new Float32Array(T * T);
  for (let i = 0; i < T; i++) {
    const base = i * T;
    if (!keep[i]) {
      o.fill(0, base, base + T);
      continue;
    }
    let sum = 0;
    for (let j = 0; j < T; j++) if (keep[j]) sum += m[base + j];
    const inv = sum > 0 ? 1 / sum : 0;
    for (let j = 0; j < T; j++) o[base + j] = keep[j] ? m[base + j] * inv : 0;
  }
  return o;
}

/** One row (length T) version of renormalizeRows, in place. */
export function renormalizeRow(row: Float32Array, keep: Uint8Array): Float32Array {
  const T = row.length;
  let sum = 0;
  for (let j = 0; j < T; j++) if (keep[j]) sum += row[j];
  const inv = sum > 0 ? 1 / sum : 0;
  for (let j = 0; j < T; j++) row[j] = keep[j] ? row[j] * inv : 0;
  return row;
}

/** Weights below `threshold` become 0 (no renormalisation: what is left is what is shown). */
export function applyThreshold(m: Float32Array, threshold: number, out?: Float32Array): Float32Array {
  const n = m.length;
  const o = out ?? new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const v = m[i];
    o[i] = v < threshold ? 0 : v;
  }
  return o;
}

/** A keep mask (1 = shown) that hides special tokens. */
export function keepMask(tokens: readonly { special: boolean }[], hideSpecial: boolean): Uint8Array {
  const k = new Uint8Array(tokens.length);
  for (let i = 0; i < tokens.length; i++) k[i] = hideSpecial && tokens[i].special ? 0 : 1;
  return k;
}

/** Sums of each row (for invariant checks). */
export function rowSums(m: Float32Array, T: number): Float64Array {
  const s = new Float64Array(T);
  for (let i = 0; i < T; i++) {
    let acc = 0;
    for (let j = 0; j < T; j++) acc += m[i * T + j];
    s[i] = acc;
  }
  return s;
}

/**
 * The most bytes one host -> panel message carries. A webview decodes a message on its main thread
 * in one go, and in VS Code desktop (the panel in a process of its own) that costs about 8 ms per
 * MB here: a larger layer travels in parts, so the panel never stalls for long on one.
 */
export const PART_BYTES = 1 << 20;

/** Part of a layer's wire bytes: its cells from index `start` of the flattened [heads][T][T] on. */
export interface LayerPart {
  start: number;
  data: ArrayBuffer;
}

/**
 * Splits a layer's wire bytes (plain elements of `bytesPerElement`, or packF14 output) into parts of
 * at most `maxBytes`, cut at whole 16-cell units (packed groups). A layer that fits is one part: the
 * same buffer, start 0.
 */
export function splitLayer(data: ArrayBuffer, packed: boolean, bytesPerElement: number, maxBytes = PART_BYTES): LayerPart[] {
  if (data.byteLength <= maxBytes) return [{ start: 0, data }];
  const unitBytes = packed ? F14_GROUP_BYTES : bytesPerElement * F14_GROUP;
  const step = Math.max(1, Math.floor(maxBytes / unitBytes)) * unitBytes;
  const parts: LayerPart[] = [];
  for (let b = 0; b < data.byteLength; b += step) {
    parts.push({ start: (b / unitBytes) * F14_GROUP, data: data.slice(b, Math.min(data.byteLength, b + step)) });
  }
  return parts;
}

/** A layer arriving in parts: its cells decoded so far, in order. */
interface PartialLayer {
  raw: Float32Array | Uint16Array | Uint8Array;
  received: number;
}

/**
 * A run's layers as they arrive: plain ones are wrapped at once, bit-packed ones (packF14) are
 * checked at once and unpacked when first asked for, so a handler receiving a layer stays short.
 * A layer sent in parts (splitLayer) is decoded part by part into place and counts as arrived
 * with its last part.
 */
export class LayerStore {
  private readonly tensors: (LayerTensor | undefined)[];
  private readonly packed: (ArrayBufferLike | ArrayBufferView | undefined)[];
  private readonly partial: (PartialLayer | undefined)[];

  constructor(
    readonly encoding: Encoding,
    readonly layers: number,
    readonly heads: number,
    readonly T: number,
  ) {
    this.tensors = new Array(layers).fill(undefined);
    this.packed = new Array(layers).fill(undefined);
    this.partial = new Array(layers).fill(undefined);
  }

  /**
   * Stores layer `l`, or its part from cell `start` when given; throws when it is out of range, its
   * size is wrong or a part is out of order. Returns true when the layer is complete with it, false
   * for a duplicate or a part that leaves it incomplete.
   */
  add(l: number, data: ArrayBufferLike | ArrayBufferView, packed = false, start?: number): boolean {
    if (!(l >= 0 && l < this.layers)) throw new Error(`layer ${l} out of range (model has ${this.layers})`);
    if (this.has(l)) return false;
    if (start !== undefined) return this.addPart(l, data, packed, start);
    if (packed) {
      checkPacked(data.byteLength, this.encoding, this.heads, this.T);
      this.packed[l] = data;
    } else {
      this.tensors[l] = layerTensor(data, this.encoding, this.heads, this.T);
    }
    return true;
  }

  private addPart(l: number, data: ArrayBufferLike | ArrayBufferView, packed: boolean, start: number): boolean {
    const total = this.heads * this.T * this.T;
    const part = (this.partial[l] ??= { raw: newElements(this.encoding, total), received: 0 });
    // Parts come in order (VS Code keeps the order of a webview's messages): each starts where the last ended.
    if (start !== part.received) throw new Error(`layer ${l}: part starts at cell ${start}, expected ${part.received}`);
    const aligned = alignedBytes(data);
    let cells: number;
    if (packed) {
      checkPackable(this.encoding);
      if (aligned.byteLength % F14_GROUP_BYTES !== 0) throw new Error(`layer ${l}: packed part of ${aligned.byteLength} bytes is not whole groups`);
      cells = Math.min(total - start, (aligned.byteLength / F14_GROUP_BYTES) * F14_GROUP);
      if (f14ByteLength(cells) !== aligned.byteLength) throw new Error(`layer ${l}: packed part of ${aligned.byteLength} bytes overruns the layer`);
      unpackF14(packedWords(aligned), cells, (part.raw as Uint16Array).subarray(start, start + cells));
    } else {
      const size = BYTES_PER_ELEMENT[this.encoding];
      cells = aligned.byteLength / size;
      if (!Number.isInteger(cells) || start + cells > total) throw new Error(`layer ${l}: part of ${aligned.byteLength} bytes does not fit the layer from cell ${start}`);
      part.raw.set(elementsOf(this.encoding, aligned, cells), start);
    }
    part.received += cells;
    if (part.received < total) return false;
    this.tensors[l] = layerTensor(part.raw, this.encoding, this.heads, this.T);
    this.partial[l] = undefined;
    return true;
  }

  has(l: number): boolean {
    return this.tensors[l] !== undefined || this.packed[l] !== undefined;
  }

  /** Layer `l` (unpacking it on first use), or undefined while it has not arrived. */
  get(l: number): LayerTensor | undefined {
    const have = this.tensors[l];
    if (have) return have;
    const packed = this.packed[l];
    if (!packed) return undefined;
    const tensor = layerTensor(packed, this.encoding, this.heads, this.T, true);
    this.tensors[l] = tensor;
    this.packed[l] = undefined;
    return tensor;
  }
}

/** The bytes of `data`, copied only when they do not start on a 4-byte boundary. */
function alignedBytes(data: ArrayBufferLike | ArrayBufferView): Uint8Array {
  const view = ArrayBuffer.isView(data) ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength) : new Uint8Array(data);
  return view.byteOffset % 4 === 0 ? view : view.slice();
}

/** packF14 output as the uint32 words unpackF14 reads (sizes are whole words: whole groups). */
function packedWords(data: ArrayBufferLike | ArrayBufferView): Uint32Array {
  const bytes = alignedBytes(data);
  return new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength >> 2);
}

/** A zeroed array of `n` elements of `encoding`. */
export function newElements(encoding: Encoding, n: number): Float32Array | Uint16Array | Uint8Array {
  return encoding === 'f32' ? new Float32Array(n) : encoding === 'f16' ? new Uint16Array(n) : new Uint8Array(n);
}

/** `n` elements of `encoding` over 4-byte-aligned bytes. */
function elementsOf(encoding: Encoding, bytes: Uint8Array, n: number): Float32Array | Uint16Array | Uint8Array {
  if (encoding === 'f32') return new Float32Array(bytes.buffer, bytes.byteOffset, n);
  if (encoding === 'f16') return new Uint16Array(bytes.buffer, bytes.byteOffset, n);
  return bytes;
}
