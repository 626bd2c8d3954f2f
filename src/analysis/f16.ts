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
  let e = exp - 127 + 15;
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
