// Value-weighted attention (Kobayashi et al. 2020, "Attention is Not Only a Weight"): how much of
// key j's vector reaches query i's output, not only how large its weight is. With f^h(x_j) = v^h_j W_O^h
// (head h's value of key j through its rows of the output projection; v^h_j itself where the graph
// has none we recognise):
//   head h:     ‖α^h_ij f^h(x_j)‖ = α^h_ij ‖f^h(x_j)‖
//   the layer:  ‖Σ_h α^h_ij f^h(x_j)‖ = √(aᵀ G_j a), a = (α^h_ij)_h, G_j the heads' Gram matrix at key j
// Each row is then divided by its sum, so that it reads as attention does (shares of one): the
// panel's colours, thresholds, hovers and rollout take it unchanged.

import type { ValueNormsData } from '../protocol/attention';
import { decodeRow, type LayerTensor } from './tensor';

/** The value norms of a run, per layer: ‖f^h(x_j)‖ [H][T] and the Gram matrices [T][H][H]. */
export interface ValueNorms {
  kind: ValueNormsData['kind'];
  norms: Float32Array[];
  gram: Float32Array[];
}

/** Splits the wire form ([L][H][T] and [L][T][H][H], float32) into layers; throws when its size does not fit. */
export function valueNormsFrom(data: ValueNormsData<ArrayBuffer | ArrayBufferView>, L: number, H: number, T: number): ValueNorms {
  const f32 = (d: ArrayBuffer | ArrayBufferView) =>
    d instanceof ArrayBuffer ? new Float32Array(d) : new Float32Array(d.buffer.slice(d.byteOffset, d.byteOffset + d.byteLength));
  const norms = f32(data.norms);
  const gram = f32(data.gram);
  if (norms.length !== L * H * T || gram.length !== L * T * H * H) {
    throw new Error(`value norms of ${norms.length} and ${gram.length} values for ${L} layers, ${H} heads and ${T} tokens`);
  }
  return {
    kind: data.kind,
    norms: Array.from({ length: L }, (_, l) => norms.subarray(l * H * T, (l + 1) * H * T)),
    gram: Array.from({ length: L }, (_, l) => gram.subarray(l * T * H * H, (l + 1) * T * H * H)),
  };
}

function normalize(row: Float32Array): Float32Array {
  let sum = 0;
  for (let j = 0; j < row.length; j++) sum += row[j];
  const inv = sum > 0 ? 1 / sum : 0;
  for (let j = 0; j < row.length; j++) row[j] *= inv;
  return row;
}

/** Row q of head h's value-weighted attention (shares of one) in `out` [T]. */
export function valueHeadRow(layer: LayerTensor, norms: Float32Array, h: number, q: number, out?: Float32Array): Float32Array {
  const T = layer.T;
  const row = decodeRow(layer, h, q, out);
  for (let j = 0; j < T; j++) row[j] = Math.abs(row[j]) * norms[h * T + j];
  return normalize(row);
}

/**
 * Row q of the layer's value-weighted attention, ‖Σ_h α^h_qj f^h(x_j)‖ (shares of one), in `out` [T].
 * `alpha` is scratch of H·T floats.
 */
export function valueLayerRow(layer: LayerTensor, gram: Float32Array, q: number, out?: Float32Array, alpha?: Float32Array): Float32Array {
  const { T, heads: H } = layer;
  const a = alpha ?? new Float32Array(H * T);
  for (let h = 0; h < H; h++) decodeRow(layer, h, q, a.subarray(h * T, (h + 1) * T));
  const row = out ?? new Float32Array(T);
  for (let j = 0; j < T; j++) {
    const g = j * H * H;
    let s = 0;
    for (let h = 0; h < H; h++) {
      const ah = a[h * T + j];
      if (ah === 0) continue;
      let inner = 0;
      for (let k = 0; k < H; k++) inner += gram[g + h * H + k] * a[k * T + j];
      s += ah * inner;
    }
    row[j] = Math.sqrt(Math.max(0, s));
  }
  return normalize(row);
}

/** Head h's (or the layer's: 'mean') value-weighted matrix [T][T], each row shares of one. */
export function valueMatrix(layer: LayerTensor, v: ValueNorms, l: number, head: number | 'mean', out?: Float32Array): Float32Array {
  const T = layer.T;
  const m = out ?? new Float32Array(T * T);
  const alpha = new Float32Array(layer.heads * T);
  for (let q = 0; q < T; q++) {
    const row = m.subarray(q * T, (q + 1) * T);
    if (head === 'mean') valueLayerRow(layer, v.gram[l], q, row, alpha);
    else valueHeadRow(layer, v.norms[l], head, q, row);
  }
  return m;
}
