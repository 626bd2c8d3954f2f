// Turns the tensors the qkv rewrite (onnx/exposeQkv.ts) hands out into the pipeline of each head:
// queries, keys (after rotary embeddings) and values as [H, T, d], the heads' outputs, the factor on
// q·k and which keys each query sees; plus the value norms ‖α_ij v_j W_O^h‖ the CLI exports.
// One batch row (the engine's analyze runs one); pure math, no ONNX Runtime.

import type { GqaQkvPlan, QkvLayerPlan, ScoreStep, UnfusedQkvPlan } from './onnx/exposeQkv';
import { EngineError, type AttentionResult, type QkvCapture, type QkvMaskKind } from './types';
import type { ExplainCell, Explanation, ValueNormsData } from '../protocol/attention';

/** A graph output as plain numbers (float16 already widened, bool as 0/1). */
export interface Dense {
  dims: readonly number[];
  data: ArrayLike<number>;
}

/** Added score at or below this counts as masked: exp(-1000) vanishes next to any real score. */
const MASKED = -1000;

export interface QkvShape {
  heads: number;
  /** Key/value heads the config declares (for the head map when the graph already expanded K and V). */
  kvHeads: number;
  tokens: number;
  label: string;
}

/** The graph output names a plan reads. */
export function qkvOutputNames(plans: QkvLayerPlan[]): string[] {
  const names = new Set<string>();
  for (const p of plans) {
    const all = p.kind === 'unfused'
      ? [p.q, p.k, p.v, p.out, p.wo, ...p.steps.flatMap((s) => (s.op === 'where' ? [s.cond, s.fill] : [s.operand]))]
      : [p.query, p.key, p.value, p.out, p.cos, p.sin, p.positions, p.wo];
    for (const n of all) if (n) names.add(n);
  }
  return [...names];
}

export function assembleQkv(plans: QkvLayerPlan[], get: (name: string) => Dense, shape: QkvShape): QkvCapture {
  const layers = plans.map((p, l) => (p.kind === 'unfused' ? unfusedLayer(p, get, shape, l) : gqaLayer(p, get, shape, l)));
  const headDim = layers[0]?.d ?? 0;
  if (layers.some((x) => x.d !== headDim)) throw unsupported(shape, 'its layers have different head sizes');
  return {
    q: layers.map((x) => x.q),
    k: layers.map((x) => x.k),
    v: layers.map((x) => x.v),
    out: layers.map((x) => x.out),
    headDim,
    scale: layers.map((x) => x.scale),
    mask: layers.map((x) => x.mask),
    visible: layers.map((x) => x.visible),
    kvHeadOf: layers[0]?.kvHeadOf ?? [],
    outputProjection: layers.map((x) => x.wo),
  };
}

interface Layer {
  q: Float32Array;
  k: Float32Array;
  v: Float32Array;
  out: Float32Array;
  d: number;
  scale: number;
  mask: QkvMaskKind;
  visible: Uint8Array;
  kvHeadOf: number[];
  wo: Float32Array | null;
}

const unsupported = (shape: QkvShape, why: string, layer?: number) =>
  new EngineError('ATTENTION_UNSUPPORTED', `${shape.label}: cannot capture the queries, keys and values${layer === undefined ? '' : ` of layer ${layer}`}: ${why}.`);

/** Head h uses KV head floor(h / (H / Hkv)) (repeat_interleave, as every GQA implementation groups them). */
function headMap(H: number, Hkv: number): number[] {
  const group = Hkv > 0 && H % Hkv === 0 ? H / Hkv : 1;
  return Array.from({ length: H }, (_, h) => Math.floor(h / group));
}

/**
 * A per-head tensor [..., T, d] (or [..., d, T] when `transposed`) as [heads, T, d] float32, the
 * leading dimensions flattened into heads.
 */
function perHead(t: Dense, T: number, transposed: boolean, what: string, fail: (why: string) => never): { data: Float32Array; heads: number; d: number } {
  const r = t.dims.length;
  if (r < 3) fail(`${what} has shape [${t.dims.join(', ')}], not [batch, heads, ..]`);
  const rows = t.dims[r - 2], cols = t.dims[r - 1];
  const [tokens, d] = transposed ? [cols, rows] : [rows, cols];
  if (tokens !== T) fail(`${what} has shape [${t.dims.join(', ')}], which does not hold ${T} tokens where expected`);
  const heads = t.dims.slice(0, r - 2).reduce((a, b) => a * b, 1);
  const data = new Float32Array(heads * T * d);
  if (!transposed) {
    for (let i = 0; i < data.length; i++) data[i] = t.data[i];
  } else {
    for (let h = 0; h < heads; h++) for (let j = 0; j < d; j++) for (let i = 0; i < T; i++) data[(h * T + i) * d + j] = t.data[(h * d + j) * T + i];
  }
  return { data, heads, d };
}

/** [Hs, T, d] -> [H, T, d], query head h reading source head map[h]. */
function expand(src: Float32Array, map: number[], T: number, d: number): Float32Array {
  const size = T * d;
  const out = new Float32Array(map.length * size);
  map.forEach((s, h) => out.set(src.subarray(s * size, (s + 1) * size), h * size));
  return out;
}

function unfusedLayer(p: UnfusedQkvPlan, get: (name: string) => Dense, shape: QkvShape, layer: number): Layer {
  const fail = (why: string): never => {
    throw unsupported(shape, why, layer);
  };
  const { heads: H, tokens: T } = shape;
  const q = perHead(get(p.q), T, p.qTransposed, 'the query', fail);
  const k = perHead(get(p.k), T, !p.kRowMajor, 'the key', fail);
  const v = perHead(get(p.v), T, p.vTransposed, 'the value', fail);
  const out = perHead(get(p.out), T, false, 'the head output', fail);
  if (q.heads !== H || out.heads !== H) fail(`the query has ${q.heads} heads where the attention has ${H}`);
  if (k.d !== q.d || out.d !== v.d) fail('the query and key (or value and output) differ in size');
  if (k.heads !== v.heads || H % k.heads !== 0) fail(`${k.heads} key and ${v.heads} value heads do not group ${H} query heads`);
  // K and V already repeated to every query head (the usual export) keep the config's grouping as the map.
  const kvHeadOf = headMap(H, k.heads < H ? k.heads : shape.kvHeads);
  const expanded = k.heads < H ? kvHeadOf : headMap(H, H);
  const rule = scoreRule(p.steps, p.alpha, get, H, T, fail);
  return {
    q: q.data,
    k: expand(k.data, expanded, T, k.d),
    v: expand(v.data, expanded, T, v.d),
    out: out.data,
    d: q.d,
    ...rule,
    kvHeadOf,
    wo: projection(p.wo, get, H, out.d),
  };
}

/** The output projection's weight when it is [H·d, D] (rows of head h at h·d), else null. */
function projection(name: string | null, get: (name: string) => Dense, H: number, d: number): Float32Array | null {
  if (!name) return null;
  const w = get(name);
  if (w.dims.length !== 2 || w.dims[0] !== H * d) return null;
  return Float32Array.from(w.data);
}

/**
 * What the scores get between q·k and the Softmax, replayed on zero scores over a grid of [heads or 1,
 * T, T]: `b` is the added term, `keep` whether the score still enters. The factor on the scores is
 * their product of scalar Mul/Div operands. A cell either sees the scaled score plus exactly 0, or is
 * masked (added term at or below MASKED); anything in between is a position bias (ALiBi, relative
 * positions), which is refused.
 */
function scoreRule(steps: ScoreStep[], alpha: number, get: (name: string) => Dense, H: number, T: number, fail: (why: string) => never) {
  const operands = steps.flatMap((s) => (s.op === 'where' ? [s.cond, s.fill] : [s.operand])).map((n) => get(n));
  const G = operands.some((o) => leading(o) > 1) ? H : 1;
  const cells = G * T * T;
  const b = new Float64Array(cells);
  const keep = new Uint8Array(cells).fill(1);
  let scale = alpha;
  const at = (o: Dense, cell: number): number => {
    const g = Math.floor(cell / (T * T)), i = Math.floor(cell / T) % T, j = cell % T;
    const r = o.dims.length;
    const C = r >= 1 ? o.dims[r - 1] : 1, R = r >= 2 ? o.dims[r - 2] : 1;
    const P = leading(o);
    return o.data[((P > 1 ? g : 0) * R + (R > 1 ? i : 0)) * C + (C > 1 ? j : 0)];
  };
  const check = (o: Dense, what: string) => {
    const r = o.dims.length;
    const C = r >= 1 ? o.dims[r - 1] : 1, R = r >= 2 ? o.dims[r - 2] : 1, P = leading(o);
    if (![1, T].includes(C) || ![1, T].includes(R) || ![1, H].includes(P)) fail(`the scores meet ${what} of shape [${o.dims.join(', ')}], which does not broadcast over [${H}, ${T}, ${T}]`);
  };
  for (const s of steps) {
    if (s.op === 'where') {
      const cond = get(s.cond), fill = get(s.fill);
      check(cond, 'a Where condition');
      check(fill, 'a Where fill');
      for (let x = 0; x < cells; x++) {
        if ((at(cond, x) !== 0) !== s.keepWhen) {
          keep[x] = 0;
          b[x] = at(fill, x);
        }
      }
    } else if (s.op === 'add' || s.op === 'sub') {
      const o = get(s.operand);
      check(o, 'an added tensor');
      const sign = s.op === 'add' ? 1 : -1;
      for (let x = 0; x < cells; x++) b[x] += sign * at(o, x);
    } else {
      const o = get(s.operand);
      const c = o.data[0];
      for (let x = 1; x < o.data.length; x++) if (o.data[x] !== c) fail(`the scores are ${s.op === 'mul' ? 'multiplied' : 'divided'} by a tensor that is not one constant`);
      const f = s.op === 'mul' ? c : 1 / c;
      scale *= f;
      for (let x = 0; x < cells; x++) b[x] *= f;
    }
  }
  const visible = new Uint8Array(T * T);
  for (let x = 0; x < cells; x++) {
    const seen = keep[x] === 1 && b[x] === 0;
    if (!seen && !(b[x] <= MASKED)) {
      fail('a term that is neither 0 nor a mask is added to the scores (a position bias such as ALiBi or a relative position bias), which is not supported');
    }
    const cell = x % (T * T);
    if (x < T * T) visible[cell] = seen ? 1 : 0;
    else if (visible[cell] !== (seen ? 1 : 0)) fail('its heads see different keys (a per-head mask), which is not supported');
  }
  return { scale, visible, mask: maskKind(visible, T) };
}

/** Product of all but the last two dimensions: the heads (times batch) an operand varies over. */
function leading(o: Dense): number {
  return o.dims.slice(0, Math.max(0, o.dims.length - 2)).reduce((a, c) => a * c, 1);
}

function maskKind(visible: Uint8Array, T: number): QkvMaskKind {
  let all = true, causal = true;
  for (let i = 0; i < T; i++) {
    for (let j = 0; j < T; j++) {
      const v = visible[i * T + j] === 1;
      if (!v) all = false;
      if (v !== j <= i) causal = false;
    }
  }
  return all ? 'none' : causal ? 'causal' : 'custom';
}

function gqaLayer(p: GqaQkvPlan, get: (name: string) => Dense, shape: QkvShape, layer: number): Layer {
  const fail = (why: string): never => {
    throw unsupported(shape, why, layer);
  };
  const { tokens: T } = shape;
  const H = p.numHeads, Hkv = p.kvNumHeads;
  if (H !== shape.heads || !Hkv || H % Hkv !== 0) fail(`GroupQueryAttention has ${H} query heads on ${Hkv} KV heads, the attention ${shape.heads}`);
  const query = get(p.query);
  const width = query.dims[query.dims.length - 1];
  const d = p.key ? width / H : width / (H + 2 * Hkv);
  if (query.dims.length !== 3 || query.dims[1] !== T || !Number.isInteger(d)) fail(`its query input has shape [${query.dims.join(', ')}]`);
  // [T, heads·d] (from column `offset` of a row `stride` wide) -> [heads, T, d].
  const split = (src: Dense, heads: number, offset: number) => {
    const stride = src.dims[src.dims.length - 1];
    const out = new Float32Array(heads * T * d);
    for (let h = 0; h < heads; h++) for (let t = 0; t < T; t++) for (let j = 0; j < d; j++) out[(h * T + t) * d + j] = src.data[t * stride + offset + h * d + j];
    return out;
  };
  const q = split(query, H, 0);
  const k = p.key ? split(get(p.key), Hkv, 0) : split(query, Hkv, H * d);
  const v = p.value ? split(get(p.value), Hkv, 0) : split(query, Hkv, (H + Hkv) * d);
  if (p.cos && p.sin) {
    const cos = get(p.cos), sin = get(p.sin);
    const positions = p.positions ? Array.from(get(p.positions).data).slice(0, T) : Array.from({ length: T }, (_, t) => t);
    const half = cos.dims[1];
    if (cos.dims.length !== 2 || 2 * half > d || positions.some((pos) => pos >= cos.dims[0])) fail(`its cos_cache has shape [${cos.dims.join(', ')}] for head size ${d} and ${T} positions`);
    rotate(q, H, T, d, half, positions, cos.data, sin.data, p.interleaved);
    rotate(k, Hkv, T, d, half, positions, cos.data, sin.data, p.interleaved);
  }
  const kvHeadOf = headMap(H, Hkv);
  const out = get(p.out);
  if (out.dims[out.dims.length - 1] !== H * d) fail(`its output has shape [${out.dims.join(', ')}]`);
  const visible = new Uint8Array(T * T);
  for (let i = 0; i < T; i++) for (let j = 0; j <= i; j++) visible[i * T + j] = 1;
  return {
    q,
    k: expand(k, kvHeadOf, T, d),
    v: expand(v, kvHeadOf, T, d),
    out: split(out, H, 0),
    d,
    scale: p.scale || 1 / Math.sqrt(d),
    // GroupQueryAttention is causal: each query sees itself and the keys before it.
    mask: 'causal',
    visible,
    kvHeadOf,
    wo: projection(p.wo, get, H, d),
  };
}

/**
 * Rotary embedding in place on [heads, T, d], as GroupQueryAttention applies it: the first 2·half
 * dims rotate in pairs, adjacent (2i, 2i+1) when interleaved, else (i, i + half), by the angle whose
 * cos and sin the caches hold at [position, i].
 */
function rotate(x: Float32Array, heads: number, T: number, d: number, half: number, positions: number[], cos: ArrayLike<number>, sin: ArrayLike<number>, interleaved: boolean): void {
  for (let h = 0; h < heads; h++) {
    for (let t = 0; t < T; t++) {
      const row = (h * T + t) * d;
      const at = positions[t] * half;
      for (let i = 0; i < half; i++) {
        const [a, b] = interleaved ? [row + 2 * i, row + 2 * i + 1] : [row + i, row + i + half];
        const c = cos[at + i], s = sin[at + i];
        const x0 = x[a], x1 = x[b];
        x[a] = x0 * c - x1 * s;
        x[b] = x0 * s + x1 * c;
      }
    }
  }
}

/**
 * ‖α_ij · v_j W_O^h‖ for one layer, [H, T, T]: how much of key j's value reaches query i's output
 * through head h, W_O^h being the rows h·d..(h+1)·d of the output projection; ‖α_ij · v_j‖ without one.
 */
export function valueNorms(attention: ArrayLike<number>, v: Float32Array, wo: Float32Array | null, H: number, T: number, d: number): Float32Array {
  const out = new Float32Array(H * T * T);
  for (let h = 0; h < H; h++) {
    const norms = keyNorms(v, wo, h, H, T, d);
    for (let i = 0; i < T; i++) for (let j = 0; j < T; j++) {
      const x = (h * T + i) * T + j;
      out[x] = Math.abs(attention[x]) * norms[j];
    }
  }
  return out;
}

/**
 * "Why this weight?": head `cell.head`'s computation for query `cell.query` in a run captured with
 * its queries, keys and values (float32 attention). Every array is a copy that owns its buffer, so
 * it can be transferred (and posted to the panel without dragging the whole layer along).
 */
export function explainCell(result: Pick<AttentionResult, 'attention' | 'shape' | 'qkv'>, cell: ExplainCell): Explanation {
  const [L, H, T] = result.shape;
  const { qkv, attention } = result;
  if (!qkv || !(attention instanceof Float32Array)) throw new EngineError('INTERNAL', 'The run was not captured with its queries, keys and values in float32.');
  const { layer: l, head: h, query: i, key } = cell;
  const inside = (x: number, n: number) => Number.isInteger(x) && x >= 0 && x < n;
  if (!inside(l, L) || !inside(h, H) || !inside(i, T) || !inside(key, T)) {
    throw new EngineError('INTERNAL', `Layer ${l + 1}, head ${h + 1}, tokens ${i + 1} and ${key + 1} lie outside this run (${L} layers, ${H} heads, ${T} tokens).`);
  }
  const d = qkv.headDim;
  const head = (x: Float32Array) => x.slice(h * T * d, (h + 1) * T * d);
  const shown = attention.slice(((l * H + h) * T + i) * T, ((l * H + h) * T + i + 1) * T);
  const wo = qkv.outputProjection[l];
  return {
    cell: { ...cell },
    dim: d,
    kvHead: qkv.kvHeadOf[h] ?? h,
    q: qkv.q[l].slice((h * T + i) * d, (h * T + i + 1) * d),
    k: head(qkv.k[l]),
    v: head(qkv.v[l]),
    scale: qkv.scale[l],
    mask: qkv.mask[l],
    visible: qkv.visible[l].slice(i * T, (i + 1) * T),
    shown,
    out: qkv.out[l].slice((h * T + i) * d, (h * T + i + 1) * d),
    valueNorm: Float32Array.from(headKeyNorms(qkv, l, h, H, T), (n, j) => Math.abs(shown[j]) * n),
    valueNormKind: wo ? 'output-projected' : 'value-only',
  };
}

/**
 * The run's value norms for value-weighted attention (protocol ValueNormsData): per layer and key j,
 * f^h(x_j) = v^h_j W_O^h for every head, its norms and the heads' Gram matrix. Without an output
 * projection f^h(x_j) is v^h_j in head h's own coordinates of the concatenated output, so heads are
 * orthogonal there. Layers in order, `onLayer` between them (a caller may yield or check a signal).
 */
export async function valueNormsData(qkv: QkvCapture, H: number, T: number, onLayer?: (l: number) => Promise<void> | void): Promise<ValueNormsData> {
  const L = qkv.v.length;
  const d = qkv.headDim;
  const norms = new Float32Array(L * H * T);
  const gram = new Float32Array(L * T * H * H);
  const projected = qkv.outputProjection.every((w) => w !== null);
  for (let l = 0; l < L; l++) {
    const v = qkv.v[l];
    const wo = projected ? qkv.outputProjection[l]! : null;
    const D = wo ? wo.length / (H * d) : d;
    const f = new Float64Array(H * D);
    for (let j = 0; j < T; j++) {
      f.fill(0);
      for (let h = 0; h < H; h++) {
        const vj = (h * T + j) * d;
        const fh = h * D;
        if (!wo) {
          for (let a = 0; a < d; a++) f[fh + a] = v[vj + a];
          continue;
        }
        for (let a = 0; a < d; a++) {
          const x = v[vj + a];
          if (x === 0) continue;
          const w = (h * d + a) * D;
          for (let c = 0; c < D; c++) f[fh + c] += x * wo[w + c];
        }
      }
      const g = (l * T + j) * H * H;
      for (let h = 0; h < H; h++) {
        for (let k = h; k < H; k++) {
          let dot = 0;
          if (wo || h === k) for (let c = 0; c < D; c++) dot += f[h * D + c] * f[k * D + c];
          gram[g + h * H + k] = gram[g + k * H + h] = dot;
        }
        norms[(l * H + h) * T + j] = Math.sqrt(gram[g + h * H + h]);
      }
    }
    await onLayer?.(l);
  }
  return { norms: norms.buffer, gram: gram.buffer, kind: projected ? 'output-projected' : 'value-only' };
}

/** keyNorms of a capture's layer and head, computed once per capture: later clicks on the same head answer at once. */
const keyNormCache = new WeakMap<QkvCapture, Map<number, Float64Array>>();

function headKeyNorms(qkv: QkvCapture, l: number, h: number, H: number, T: number): Float64Array {
  let byHead = keyNormCache.get(qkv);
  if (!byHead) keyNormCache.set(qkv, (byHead = new Map()));
  const key = l * H + h;
  let norms = byHead.get(key);
  if (!norms) byHead.set(key, (norms = keyNorms(qkv.v[l], qkv.outputProjection[l], h, H, T, qkv.headDim)));
  return norms;
}

/** ‖v_j W_O^h‖ (or ‖v_j‖ without a projection) for every key j of head h, v being [H, T, d]. */
function keyNorms(v: Float32Array, wo: Float32Array | null, h: number, H: number, T: number, d: number): Float64Array {
  const norms = new Float64Array(T);
  // ‖v W‖² = v (W Wᵀ) vᵀ: with the head's d × d Gram matrix of W_O^h made once, each key costs d²
  // instead of d·D (a 12th of the work at d = 64, D = 768).
  const D = wo ? wo.length / (H * d) : 0;
  const gram = new Float64Array(d * d);
  for (let a = 0; a < d; a++) {
    for (let b = a; b < d; b++) {
      let dot = 0;
      if (wo) {
        const ra = (h * d + a) * D, rb = (h * d + b) * D;
        for (let c = 0; c < D; c++) dot += wo[ra + c] * wo[rb + c];
      } else if (a === b) dot = 1;
      gram[a * d + b] = gram[b * d + a] = dot;
    }
  }
  for (let j = 0; j < T; j++) {
    const vj = (h * T + j) * d;
    let sum = 0;
    for (let a = 0; a < d; a++) {
      const x = v[vj + a];
      if (x === 0) continue;
      let inner = 0;
      for (let b = 0; b < d; b++) inner += gram[a * d + b] * v[vj + b];
      sum += x * inner;
    }
    norms[j] = Math.sqrt(Math.max(0, sum));
  }
  return norms;
}
