// Attention rollout (Abnar & Zuidema 2020, "Quantifying Attention Flow in Transformers").
//
// Per layer l:   A'_l = 0.5 * mean_heads(A_l) + 0.5 * I, rows renormalised to sum to 1
// Rollout:       R_1 = A'_1,  R_l = A'_l . R_{l-1}
// Row q of R_l says how much of token q's representation after layer l flows from each input token.
//
// All matrices are row-major Float32Arrays of T*T (row = query, column = key). The product skips
// zero entries and, per row of the right-hand matrix, the columns past its last non-zero, so the
// causal (lower-triangular) attention of decoders costs well under half of a dense product.

/** A' = 0.5 * A + 0.5 * I with rows renormalised. `mean` is one layer's head-mean (T x T). */
export function residualAttention(mean: Float32Array, T: number, out?: Float32Array): Float32Array {
  const o = out ?? new Float32Array(T * T);
  for (let i = 0; i < T; i++) {
    const base = i * T;
    let sum = 0;
    for (let j = 0; j < T; j++) {
      const v = 0.5 * mean[base + j] + (i === j ? 0.5 : 0);
      o[base + j] = v;
      sum += v;
    }
    const inv = sum > 0 ? 1 / sum : 0;
    for (let j = 0; j < T; j++) o[base + j] *= inv;
  }
  return o;
}

/** For each row, one past the last non-zero column (0 for an all-zero row). */
function rowExtents(m: Float32Array, T: number, out: Int32Array): Int32Array {
  for (let i = 0; i < T; i++) {
    const base = i * T;
    let e = T;
    while (e > 0 && m[base + e - 1] === 0) e--;
    out[i] = e;
  }
  return out;
}

/**
 * C = A . B for T x T row-major matrices (C must not alias A or B). i-k-j order, four rows of B
 * per pass over a row of C (a quarter of the loads and stores of C), skipping all-zero groups of
 * A and, per group, the columns past B's last non-zero.
 */
export function matmul(a: Float32Array, b: Float32Array, T: number, out?: Float32Array, extents?: Int32Array): Float32Array {
  const c = out ?? new Float32Array(T * T);
  c.fill(0);
  const ext = rowExtents(b, T, extents ?? new Int32Array(T));
  for (let i = 0; i < T; i++) {
    const ci = i * T;
    const ai = i * T;
    let k = 0;
    for (; k + 3 < T; k += 4) {
      const a0 = a[ai + k];
      const a1 = a[ai + k + 1];
      const a2 = a[ai + k + 2];
      const a3 = a[ai + k + 3];
      if (a0 === 0 && a1 === 0 && a2 === 0 && a3 === 0) continue;
      const b0 = k * T;
      const b1 = b0 + T;
      const b2 = b1 + T;
      const b3 = b2 + T;
      let e = ext[k];
      if (ext[k + 1] > e) e = ext[k + 1];
      if (ext[k + 2] > e) e = ext[k + 2];
      if (ext[k + 3] > e) e = ext[k + 3];
      for (let j = 0; j < e; j++) c[ci + j] += a0 * b[b0 + j] + a1 * b[b1 + j] + a2 * b[b2 + j] + a3 * b[b3 + j];
    }
    for (; k < T; k++) {
      const av = a[ai + k];
      if (av === 0) continue;
      const bk = k * T;
      const e = ext[k];
      for (let j = 0; j < e; j++) c[ci + j] += av * b[bk + j];
    }
  }
  return c;
}

/**
 * Incremental rollout: feed layer means in order with `push`; `get(l)` is the rollout through
 * layer l (0-based). Lets the panel compute one layer per task as layers arrive.
 */
export class Rollout {
  readonly T: number;
  private readonly steps: Float32Array[] = [];
  private readonly scratch: Float32Array;
  private readonly extents: Int32Array;

  constructor(T: number) {
    this.T = T;
    this.scratch = new Float32Array(T * T);
    this.extents = new Int32Array(T);
  }

  get length(): number {
    return this.steps.length;
  }

  /** Adds the next layer (its head-mean, T x T) and returns the rollout through it. */
  push(mean: Float32Array): Float32Array {
    const T = this.T;
    const a = residualAttention(mean, T, this.scratch);
    const prev = this.steps[this.steps.length - 1];
    const r = prev ? matmul(a, prev, T, undefined, this.extents) : a.slice();
    this.steps.push(r);
    return r;
  }

  get(layer: number): Float32Array | undefined {
    return this.steps[layer];
  }
}

/** Rollout through all the given layers (head-means in layer order). Identity for no layers. */
export function rollout(means: readonly Float32Array[], T: number): Float32Array {
  if (means.length === 0) {
    const id = new Float32Array(T * T);
    for (let i = 0; i < T; i++) id[i * T + i] = 1;
    return id;
  }
  const r = new Rollout(T);
  let last: Float32Array = new Float32Array(0);
  for (const m of means) last = r.push(m);
  return last;
}

/**
 * Row q of the rollout through layer `upTo` (inclusive) without forming the full product:
 * e_q^T . A'_upTo . ... . A'_0, i.e. upTo+1 vector-matrix products, O(L * T^2).
 */
export function rolloutRow(means: readonly Float32Array[], T: number, q: number, upTo = means.length - 1, out?: Float32Array): Float32Array {
  let v = new Float32Array(T);
  let next = new Float32Array(T);
  v[q] = 1;
  for (let l = upTo; l >= 0; l--) {
    const m = means[l];
    next.fill(0);
    for (let k = 0; k < T; k++) {
      const vk = v[k];
      if (vk === 0) continue;
      const base = k * T;
      // Row k of A'_l, computed on the fly: 0.5 * m[k,:] + 0.5 * e_k, normalised.
      let sum = 0.5;
      for (let j = 0; j < T; j++) sum += 0.5 * m[base + j];
      const s = (0.5 * vk) / sum;
      for (let j = 0; j < T; j++) next[j] += s * m[base + j];
      next[k] += s;
    }
    const t = v;
    v = next;
    next = t;
  }
  if (out) {
    out.set(v);
    return out;
  }
  return v;
}
