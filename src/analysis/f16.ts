// IEEE 754 half precision <-> float32, for attention tensors that cross thread and process
// boundaries as Uint16Array (half the bytes of float32, and attention probabilities in [0, 1]
// keep ~3 significant digits). Pure functions: used by the engine (encode), the host and the
// webview (decode).

let lut: Float32Array | null = null;

/** Decodes one half-precision bit pattern (0..65535) to a number. Exact for every pattern. */
export function f16BitsToNumber(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >> 10) & 0x1f;
  const frac = bits & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24; // zero and subnormals
  if (exp === 0x1f) return frac === 0 ? sign * Infinity : NaN;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/**
 * A 65536-entry table: `f16Lut()[bits]` is the float value of that half. Built once (256 KiB),
 * then decoding a tensor is one indexed load per element.
 */
export function f16Lut(): Float32Array {
  if (lut) return lut;
  const t = new Float32Array(65536);
  for (let b = 0; b < 65536; b++) t[b] = f16BitsToNumber(b);
  lut = t;
  return t;
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/**
 * Rounds a number to the nearest half (ties to even), returning its bit pattern.
 * Handles subnormals, overflow to infinity and NaN (returned as a quiet NaN 0x7e00).
 */
export function numberToF16Bits(value: number): number {
  f32[0] = value;
  const x = u32[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return mant ? 0x7e00 : sign | 0x7c00; // NaN / Inf
  // Unbiased exponent, re-biased for half.
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00; // overflow
  if (e <= 0) {
    // Subnormal half (or zero). Shift the mantissa (with its implicit 1) right.
    if (e < -10) return sign; // too small: rounds to zero
    mant |= 0x800000;
    const shift = 14 - e; // 13 + (1 - e)
    let half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && half & 1)) half++;
    return sign | half; // a carry into the exponent field is the correct smallest normal
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++; // may carry into exp, up to Inf: correct
  return sign | half;
}

/**
 * float32 -> float16 bit patterns (the engine's wire format for `f16`), bit-identical to
 * numberToF16Bits. Float32Array input takes a fast path on the raw bits: every finite result
 * (normal, subnormal or zero) is computed with integer operations, without a call.
 */
export function encodeF16(src: ArrayLike<number>, out?: Uint16Array): Uint16Array {
  const n = src.length;
  const o = out ?? new Uint16Array(n);
  if (!(src instanceof Float32Array)) {
    for (let i = 0; i < n; i++) o[i] = numberToF16Bits(src[i]);
    return o;
  }
  const bits = new Uint32Array(src.buffer, src.byteOffset, n);
  for (let i = 0; i < n; i++) {
    const x = bits[i];
    const exp = (x >>> 23) & 0xff;
    if (exp >= 113 && exp <= 142) {
      // Normal half: re-bias the exponent, round the mantissa to nearest even (a carry correctly
      // bumps the exponent, up to infinity).
      const mant = x & 0x7fffff;
      o[i] = (((x >>> 16) & 0x8000) | ((exp - 112) << 10)) + ((mant + 0xfff + ((mant >>> 13) & 1)) >>> 13);
    } else if (exp < 102) {
      o[i] = (x >>> 16) & 0x8000; // below half the smallest subnormal: signed zero
    } else if (exp < 113) {
      // Subnormal half: shift the mantissa with its implicit bit, rounding to nearest even.
      const mant = (x & 0x7fffff) | 0x800000;
      const shift = 126 - exp;
      o[i] = ((x >>> 16) & 0x8000) | ((mant + (1 << (shift - 1)) - 1 + ((mant >>> shift) & 1)) >>> shift);
    } else {
      o[i] = numberToF16Bits(src[i]); // overflow, infinity, NaN
    }
  }
  return o;
}

/** float32 -> uint8 quantised probabilities (round(p * 255), clamped to [0, 255]). */
export function encodeU8(src: ArrayLike<number>, out?: Uint8Array): Uint8Array {
  const n = src.length;
  const o = out ?? new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const v = Math.round(src[i] * 255);
    o[i] = v < 0 || v !== v ? 0 : v > 255 ? 255 : v;
  }
  return o;
}

// ---------------------------------------------------------------- 14-bit packing for the panel
// Attention probabilities lie in [0, 1], so their half-precision patterns always have a zero sign
// bit and a zero top exponent bit (every half below 2.0 is < 0x4000). Dropping those two bits
// loses nothing: 16 patterns of 14 bits fill exactly 7 uint32 words, 1.75 bytes per value.

/** Values per packed group and uint32 words per group. */
const GROUP = 16;
const GROUP_WORDS = 7;
/** packF14 output is whole groups of F14_GROUP values in F14_GROUP_BYTES bytes, so any run of whole groups unpacks on its own. */
export const F14_GROUP = GROUP;
export const F14_GROUP_BYTES = GROUP_WORDS * 4;
const M14 = 0x3fff;

/** Bytes `packF14` produces for `n` values (the last group is zero-padded). */
export function f14ByteLength(n: number): number {
  return Math.ceil(n / GROUP) * GROUP_WORDS * 4;
}

/**
 * Packs half-precision patterns 16 per 7 words; null when any pattern is 0x4000 or above (a value
 * outside [0, 2): negative, >= 2, infinite or NaN), which must then travel unpacked.
 */
export function packF14(codes: Uint16Array): Uint32Array | null {
  const n = codes.length;
  const out = new Uint32Array(f14ByteLength(n) / 4);
  const full = Math.floor(n / GROUP);
  let any = 0;
  // One loop with the group written out, like unpackF14 (see there).
  for (let g = 0, i = 0, p = 0; g < full; g++, i += GROUP, p += GROUP_WORDS) {
    const v0 = codes[i], v1 = codes[i + 1], v2 = codes[i + 2], v3 = codes[i + 3], v4 = codes[i + 4], v5 = codes[i + 5], v6 = codes[i + 6], v7 = codes[i + 7];
    const v8 = codes[i + 8], v9 = codes[i + 9], v10 = codes[i + 10], v11 = codes[i + 11], v12 = codes[i + 12], v13 = codes[i + 13], v14 = codes[i + 14], v15 = codes[i + 15];
    any |= v0 | v1 | v2 | v3 | v4 | v5 | v6 | v7 | v8 | v9 | v10 | v11 | v12 | v13 | v14 | v15;
    // Bit k*14 of the group's 224-bit little-endian stream holds pattern k.
    out[p] = v0 | (v1 << 14) | (v2 << 28);
    out[p + 1] = (v2 >>> 4) | (v3 << 10) | (v4 << 24);
    out[p + 2] = (v4 >>> 8) | (v5 << 6) | (v6 << 20);
    out[p + 3] = (v6 >>> 12) | (v7 << 2) | (v8 << 16) | (v9 << 30);
    out[p + 4] = (v9 >>> 2) | (v10 << 12) | (v11 << 26);
    out[p + 5] = (v11 >>> 6) | (v12 << 8) | (v13 << 22);
    out[p + 6] = (v13 >>> 10) | (v14 << 4) | (v15 << 18);
  }
  if (full * GROUP < n) {
    // The last group, zero-padded, through a packed copy of itself.
    const tail = new Uint16Array(GROUP);
    tail.set(codes.subarray(full * GROUP));
    const packed = packF14(tail);
    if (!packed) return null;
    out.set(packed, full * GROUP_WORDS);
  }
  return any > M14 ? null : out;
}

/** Inverse of packF14: the first `n` patterns, into `out` when given. */
export function unpackF14(words: Uint32Array, n: number, out?: Uint16Array): Uint16Array {
  if (words.length * 4 < f14ByteLength(n)) throw new Error(`packed data holds ${words.length * 4} bytes, ${f14ByteLength(n)} needed for ${n} values`);
  const o = out ?? new Uint16Array(n);
  const full = Math.floor(n / GROUP);
  // The group body is written out in the loop (no call per group): the panel unpacks a layer the
  // first time it paints it, often before the code is optimised, and a call per 16 values costs
  // several times more there.
  for (let g = 0, p = 0, i = 0; g < full; g++, p += GROUP_WORDS, i += GROUP) {
    const w0 = words[p], w1 = words[p + 1], w2 = words[p + 2], w3 = words[p + 3], w4 = words[p + 4], w5 = words[p + 5], w6 = words[p + 6];
    o[i] = w0 & M14;
    o[i + 1] = (w0 >>> 14) & M14;
    o[i + 2] = (w0 >>> 28) | ((w1 << 4) & M14);
    o[i + 3] = (w1 >>> 10) & M14;
    o[i + 4] = (w1 >>> 24) | ((w2 << 8) & M14);
    o[i + 5] = (w2 >>> 6) & M14;
    o[i + 6] = (w2 >>> 20) | ((w3 << 12) & M14);
    o[i + 7] = (w3 >>> 2) & M14;
    o[i + 8] = (w3 >>> 16) & M14;
    o[i + 9] = (w3 >>> 30) | ((w4 << 2) & M14);
    o[i + 10] = (w4 >>> 12) & M14;
    o[i + 11] = (w4 >>> 26) | ((w5 << 6) & M14);
    o[i + 12] = (w5 >>> 8) & M14;
    o[i + 13] = (w5 >>> 22) | ((w6 << 10) & M14);
    o[i + 14] = (w6 >>> 4) & M14;
    o[i + 15] = w6 >>> 18;
  }
  if (full * GROUP < n) {
    // The zero-padded last group, through a packed copy of itself.
    const tail = unpackF14(words.subarray(full * GROUP_WORDS, (full + 1) * GROUP_WORDS), GROUP);
    o.set(tail.subarray(0, n - full * GROUP), full * GROUP);
  }
  return o;
}
