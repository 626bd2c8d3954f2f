// Tiny decoder/encoder stacks with seeded random weights, built around a fused attention kernel
// (com.microsoft GroupQueryAttention / MultiHeadAttention / Attention, ONNX Attention) and, where
// natural, as an unfused twin with the same weights (plain MatMul/Softmax, found by the existing
// exposeAttention), plus a float64 reference forward pass the exposed probabilities are checked against.
//
// Every model: input_ids, attention_mask (int64 [batch, seq]) -> embedding Gather -> per layer
// x += attention(x) @ Wo (no norms or MLP: the attention is what is under test) -> last_hidden_state.
import { onnx } from 'onnx-proto';
import { T, attrFloat, attrInt, attrInts, floatTensor, int64Tensor, node, valueInfo } from './onnx-build';
import { mulberry32 } from '../../../bench/util';

export type Kernel = 'gqa' | 'mha' | 'onnx' | 'msAttention';

export interface Config {
  kernel: Kernel;
  layers: number;
  /** Query heads. */
  heads: number;
  /** Key/value heads: query head h reads KV head floor(h / (heads / kvHeads)). */
  kvHeads: number;
  headSize: number;
  /** V head size, when it differs from headSize (com.microsoft.Attention qkv_hidden_sizes). */
  vHeadSize: number;
  /** Width of the residual stream (the embedding size). */
  hidden: number;
  causal: boolean;
  /** The kernel's `scale` attribute; absent means the default 1/sqrt(headSize). */
  scale?: number;
  /** Rotary embedding on Q and K: in the graph (com.microsoft.RotaryEmbedding) or by the GQA kernel (do_rotary). */
  rotary?: { inKernel: boolean; interleaved: boolean };
  /** GQA: one packed QKV input (inputs 1 and 2 empty) instead of separate query/key/value. */
  packed?: boolean;
  /** ONNX Attention: 3D [B, S, heads * head] inputs with q/kv_num_heads, or 4D [B, heads, S, head]. */
  rank?: 3 | 4;
  /** The ai.onnx opset the model imports (Attention needs 23 or later). */
  opset: number;
  /** Extra attributes on the fused node (for the refusal cases). */
  extraAttrs?: onnx.IAttributeProto[];
  /** Extra inputs on the fused node, by input index (for the refusal cases), filled with zeros. */
  extraInputs?: Record<number, number[]>;
}

interface LayerWeights {
  wq: Float32Array; wk: Float32Array; wv: Float32Array;
  bq: Float32Array; bk: Float32Array; bv: Float32Array;
  wo: Float32Array;
}

export interface Weights {
  embed: Float32Array;
  layers: LayerWeights[];
  /** [MAX_POS, headSize / 2] rotary tables (float32 values, as stored in the model). */
  cos: Float32Array;
  sin: Float32Array;
}

export interface TestModel {
  config: Config;
  weights: Weights;
  fused: Uint8Array;
  /** The same weights with plain MatMul/Softmax attention; absent for the refusal cases. */
  unfused?: Uint8Array;
}

const VOCAB = 50;
const MAX_POS = 32;
const NEG = -1e9;
const MS = 'com.microsoft';

/** mulberry32 uniforms turned into N(0, std) samples (Box-Muller); float32 like the model stores them. */
function gaussian(seed: number) {
  const uniform = mulberry32(seed);
  return (n: number, std: number) => {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = Math.sqrt(-2 * Math.log(1 - uniform())) * Math.cos(2 * Math.PI * uniform()) * std;
    return out;
  };
}

function makeWeights(c: Config, seed: number): Weights {
  const randn = gaussian(seed);
  const qDim = c.heads * c.headSize, kDim = c.kvHeads * c.headSize, vDim = c.kvHeads * c.vHeadSize;
  // Projections scaled so scores are O(1): attention neither uniform nor one-hot.
  const w = 1.3 / Math.sqrt(c.hidden);
  const layers = Array.from({ length: c.layers }, () => ({
    wq: randn(c.hidden * qDim, w), wk: randn(c.hidden * kDim, w), wv: randn(c.hidden * vDim, w),
    bq: randn(qDim, 0.2), bk: randn(kDim, 0.2), bv: randn(vDim, 0.2),
    wo: randn(c.heads * c.vHeadSize * c.hidden, 0.5 / Math.sqrt(c.heads * c.vHeadSize)),
  }));
  const half = c.headSize / 2;
  const cos = new Float32Array(MAX_POS * half), sin = new Float32Array(MAX_POS * half);
  for (let p = 0; p < MAX_POS; p++) {
    for (let i = 0; i < half; i++) {
      const angle = p * Math.pow(10000, -i / half);
      cos[p * half + i] = Math.cos(angle);
      sin[p * half + i] = Math.sin(angle);
    }
  }
  return { embed: randn(VOCAB * c.hidden, 1), layers, cos, sin };
}

/** Collects nodes and initializers; node outputs are `${name}_output_${i}` like torch exports. */
class Graph {
  readonly nodes: onnx.INodeProto[] = [];
  readonly initializers: onnx.ITensorProto[] = [];

  op(op: string, name: string, inputs: string[], attrs: onnx.IAttributeProto[] = [], outputs = 1, domain = ''): string[] {
    const outs = Array.from({ length: outputs }, (_, i) => `${name}_output_${i}`);
    this.nodes.push(node({ op, name, inputs, outputs: outs, attrs, domain }));
    return outs;
  }

  op1(op: string, name: string, inputs: string[], attrs: onnx.IAttributeProto[] = [], domain = ''): string {
    return this.op(op, name, inputs, attrs, 1, domain)[0];
  }

  float(name: string, dims: number[], data: ArrayLike<number>): string {
    this.initializers.push(floatTensor(name, dims, data));
    return name;
  }

  int64(name: string, dims: number[], data: number[]): string {
    this.initializers.push(int64Tensor(name, dims, data));
    return name;
  }
}

const concat = (...parts: Float32Array[]) => {
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
};

/** Row-major [rows, a] and [rows, b] side by side -> [rows, a + b + ...]. */
function concatColumns(rows: number, ...mats: { data: Float32Array; cols: number }[]): Float32Array {
  const width = mats.reduce((n, m) => n + m.cols, 0);
  const out = new Float32Array(rows * width);
  for (let r = 0; r < rows; r++) {
    let at = r * width;
    for (const m of mats) {
      out.set(m.data.subarray(r * m.cols, (r + 1) * m.cols), at);
      at += m.cols;
    }
  }
  return out;
}

export const pastName = (layer: number, kv: 'key' | 'value') => `past_key_values.${layer}.${kv}`;
const presentName = (layer: number, kv: 'key' | 'value') => `present.${layer}.${kv}`;

/** Builds the model of `c` with `fused` attention or its plain twin. */
function buildModel(c: Config, wts: Weights, fused: boolean): Uint8Array {
  const g = new Graph();
  const { heads, kvHeads, headSize: hs, vHeadSize: vhs, hidden } = c;
  const qDim = heads * hs, kDim = kvHeads * hs, vDim = kvHeads * vhs;
  const scale = c.scale ?? 1 / Math.sqrt(hs);
  const hasPast = c.kernel === 'gqa';
  const inputs = [valueInfo('input_ids', T.INT64, ['batch', 'seq']), valueInfo('attention_mask', T.INT64, ['batch', 'seq'])];
  const outputs = [valueInfo('last_hidden_state', T.FLOAT, ['batch', 'seq', hidden])];
  if (hasPast) {
    for (let l = 0; l < c.layers; l++) {
      for (const kv of ['key', 'value'] as const) {
        inputs.push(valueInfo(pastName(l, kv), T.FLOAT, ['batch', kvHeads, 'past', kv === 'key' ? hs : vhs]));
        outputs.push(valueInfo(presentName(l, kv), T.FLOAT, ['batch', kvHeads, 'total', kv === 'key' ? hs : vhs]));
      }
    }
  }

  const cosCache = () => g.float('cos_cache', [MAX_POS, hs / 2], wts.cos);
  const sinCache = () => g.float('sin_cache', [MAX_POS, hs / 2], wts.sin);
  // RotaryEmbedding with a one-element position_ids: positions start at 0 for every row.
  const rotate = (name: string, x: string) =>
    g.op1('RotaryEmbedding', name, [x, g.int64('position_start', [1], [0]), cosCache(), sinCache()], [attrInt('interleaved', c.rotary!.interleaved ? 1 : 0)], MS);

  // Mask inputs shared by all layers, in the form each kernel takes.
  const seqLength = () => g.op1('Gather', '/model/attn_mask/Gather_seq', [g.op1('Shape', '/model/attn_mask/Shape_seq', ['attention_mask']), g.int64('index_1', [], [1])], [attrInt('axis', 0)]);
  const seq1d = () => g.op1('Unsqueeze', '/model/attn_mask/Unsqueeze_seq', [seqLength(), g.int64('axes_0', [1], [0])]);
  // ONNX Attention wants the query axis spelled out: [batch, 1, seq, seq], true where attended.
  const maskBool4d = () => {
    const u = g.op1('Unsqueeze', '/model/attn_mask/Unsqueeze', ['attention_mask', g.int64('axes_1_2', [2], [1, 2])]);
    const b = g.op1('Cast', '/model/attn_mask/Cast_bool', [u], [attrInt('to', T.BOOL)]);
    const shape = g.op1('Concat', '/model/attn_mask/Concat_shape', [g.int64('ones_2', [2], [1, 1]), seq1d(), g.int64('ones_1', [1], [1])], [attrInt('axis', 0)]);
    return g.op1('Expand', '/model/attn_mask/Expand', [b, shape]);
  };
  // GQA's seqlens_k (mask sum - 1) and total_sequence_length, as onnxruntime-genai's builder computes them.
  const gqaLengths = () => {
    const sum = g.op1('ReduceSum', '/model/attn_mask/ReduceSum', ['attention_mask', g.int64('axes_1', [1], [1])], [attrInt('keepdims', 0)]);
    const sub = g.op1('Sub', '/model/attn_mask/Sub', [sum, g.int64('one_i64', [], [1])]);
    const seqlens = g.op1('Cast', '/model/attn_mask/seqlens_k', [sub], [attrInt('to', T.INT32)]);
    const shape = g.op1('Shape', '/model/attn_mask/Shape', ['attention_mask']);
    const total = g.op1('Gather', '/model/attn_mask/Gather', [shape, g.int64('index_1', [], [1])], [attrInt('axis', 0)]);
    return { seqlens, total: g.op1('Cast', '/model/attn_mask/total_seq_len', [total], [attrInt('to', T.INT32)]) };
  };
  // Plain twin: additive bias [batch, 1, seq, seq], NEG at padded keys and (if causal) future keys.
  const plainBias = () => {
    const f = g.op1('Cast', '/model/attn_mask/Cast_float', ['attention_mask'], [attrInt('to', T.FLOAT)]);
    let keep = g.op1('Unsqueeze', '/model/attn_mask/Unsqueeze_keys', [f, g.int64('axes_1_2', [2], [1, 2])]);
    if (c.causal) {
      // Lower-triangular ones [seq, seq]: right for an empty past, the only case the tests run.
      const seq = seq1d();
      const sq = g.op1('Concat', '/model/attn_mask/Concat_seq', [seq, seq], [attrInt('axis', 0)]);
      const ones = g.op1('ConstantOfShape', '/model/attn_mask/ones', [sq], [{ name: 'value', type: onnx.AttributeProto.AttributeType.TENSOR, t: floatTensor('', [1], [1]) }]);
      keep = g.op1('Mul', '/model/attn_mask/Mul_causal', [keep, g.op1('Trilu', '/model/attn_mask/Trilu', [ones], [attrInt('upper', 0)])]);
    }
    const drop = g.op1('Sub', '/model/attn_mask/Sub_keep', [g.float('one_f32', [], [1]), keep]);
    return g.op1('Mul', '/model/attn_mask/bias', [drop, g.float('neg_big', [], [NEG])]);
  };

  const bias = fused ? undefined : plainBias();
  const lengths = fused && c.kernel === 'gqa' ? gqaLengths() : undefined;
  const boolMask = fused && c.kernel === 'onnx' ? maskBool4d() : undefined;
  const maskInt32 = fused && (c.kernel === 'mha' || c.kernel === 'msAttention') ? g.op1('Cast', '/model/attn_mask/Cast_int32', ['attention_mask'], [attrInt('to', T.INT32)]) : undefined;
  const headShape = (n: number, size: number) => g.int64(`shape_heads_${n}x${size}`, [4], [0, 0, n, size]);
  const toHeads = (s: string, x: string, n: number, size: number) =>
    g.op1('Transpose', `${s}/Transpose`, [g.op1('Reshape', `${s}/Reshape`, [x, headShape(n, size)])], [attrInts('perm', [0, 2, 1, 3])]);

  let x = g.op1('Gather', '/model/embed_tokens/Gather', [g.float('embed_tokens.weight', [VOCAB, hidden], wts.embed), 'input_ids']);
  wts.layers.forEach((w, l) => {
    const s = `/model/layers.${l}/attn`;
    const p = `model.layers.${l}.attn`;
    const matmul = (name: string, input: string, weight: string, data: Float32Array, cols: number) =>
      g.op1('MatMul', `${s}/${name}/MatMul`, [input, g.float(`${p}.${weight}`, [hidden, cols], data)]);
    const linear = (name: string, input: string, weight: string, data: Float32Array, b: Float32Array) =>
      g.op1('Add', `${s}/${name}/Add`, [matmul(name, input, `${weight}.weight`, data, b.length), g.float(`${p}.${weight}.bias`, [b.length], b)]);
    const qkvBias = concat(w.bq, w.bk, w.bv);
    const packedWeight = () => concatColumns(hidden, { data: w.wq, cols: qDim }, { data: w.wk, cols: kDim }, { data: w.wv, cols: vDim });

    let ctx: string;
    if (fused && c.kernel === 'msAttention') {
      const attrs = [attrInt('num_heads', heads), attrInt('unidirectional', c.causal ? 1 : 0), ...scaleAttr(c)];
      if (vhs !== hs) attrs.push(attrInts('qkv_hidden_sizes', [qDim, kDim, vDim]));
      ctx = g.op1('Attention', `${s}/Attention`, [x, g.float(`${p}.qkv.weight`, [hidden, qDim + kDim + vDim], packedWeight()), g.float(`${p}.qkv.bias`, [qkvBias.length], qkvBias), maskInt32!], [...attrs, ...(c.extraAttrs ?? [])], MS);
    } else if (fused && c.kernel === 'mha') {
      // Projections outside, their bias inside the kernel, as ORT's fusion leaves them.
      const q = matmul('q_proj', x, 'q_proj.weight', w.wq, qDim);
      const k = matmul('k_proj', x, 'k_proj.weight', w.wk, kDim);
      const v = matmul('v_proj', x, 'v_proj.weight', w.wv, vDim);
      const attrs = [attrInt('num_heads', heads), attrInt('unidirectional', c.causal ? 1 : 0), ...scaleAttr(c), ...(c.extraAttrs ?? [])];
      ctx = g.op1('MultiHeadAttention', `${s}/MultiHeadAttention`, [q, k, v, g.float(`${p}.qkv.bias`, [qkvBias.length], qkvBias), maskInt32!], attrs, MS);
    } else if (fused && c.kernel === 'gqa') {
      let qkv: string[];
      if (c.packed) {
        qkv = [linear('qkv_proj', x, 'qkv_proj', packedWeight(), qkvBias), '', ''];
      } else {
        qkv = [linear('q_proj', x, 'q_proj', w.wq, w.bq), linear('k_proj', x, 'k_proj', w.wk, w.bk), linear('v_proj', x, 'v_proj', w.wv, w.bv)];
        if (c.rotary && !c.rotary.inKernel) qkv = [rotate(`${s}/q_rotary`, qkv[0]), rotate(`${s}/k_rotary`, qkv[1]), qkv[2]];
      }
      const inKernel = c.rotary?.inKernel ?? false;
      const gqaInputs = [...qkv, pastName(l, 'key'), pastName(l, 'value'), lengths!.seqlens, lengths!.total, inKernel ? cosCache() : '', inKernel ? sinCache() : ''];
      for (const [index, dims] of Object.entries(c.extraInputs ?? {})) {
        while (gqaInputs.length <= Number(index)) gqaInputs.push('');
        gqaInputs[Number(index)] = g.float(`${p}.extra_input_${index}`, dims, new Float32Array(dims.reduce((a, b) => a * b, 1)));
      }
      const attrs = [
        attrInt('num_heads', heads), attrInt('kv_num_heads', kvHeads), attrInt('do_rotary', inKernel ? 1 : 0),
        attrInt('rotary_interleaved', c.rotary?.interleaved ? 1 : 0), ...scaleAttr(c), ...(c.extraAttrs ?? []),
      ];
      const name = `${s}/GroupQueryAttention`;
      g.nodes.push(node({ op: 'GroupQueryAttention', name, domain: MS, inputs: gqaInputs, outputs: [`${name}_output_0`, presentName(l, 'key'), presentName(l, 'value')], attrs }));
      ctx = `${name}_output_0`;
    } else if (fused && c.kernel === 'onnx') {
      let q = linear('q_proj', x, 'q_proj', w.wq, w.bq), k = linear('k_proj', x, 'k_proj', w.wk, w.bk), v = linear('v_proj', x, 'v_proj', w.wv, w.bv);
      const attrs = [attrInt('is_causal', c.causal ? 1 : 0), ...scaleAttr(c), ...(c.extraAttrs ?? [])];
      if (c.rank === 4) {
        q = toHeads(`${s}/q`, q, heads, hs);
        k = toHeads(`${s}/k`, k, kvHeads, hs);
        v = toHeads(`${s}/v`, v, kvHeads, vhs);
      } else {
        attrs.push(attrInt('q_num_heads', heads), attrInt('kv_num_heads', kvHeads));
      }
      ctx = g.op1('Attention', `${s}/Attention`, [q, k, v, boolMask!], attrs);
      if (c.rank === 4) ctx = g.op1('Reshape', `${s}/ctx/Reshape`, [g.op1('Transpose', `${s}/ctx/Transpose`, [ctx], [attrInts('perm', [0, 2, 1, 3])]), g.int64('shape_merge', [3], [0, 0, -1])]);
    } else {
      // The plain twin: project, (rotate,) split heads, repeat KV heads, softmax(QK^T * scale + bias) V.
      let q = linear('q_proj', x, 'q_proj', w.wq, w.bq), k = linear('k_proj', x, 'k_proj', w.wk, w.bk);
      const v = linear('v_proj', x, 'v_proj', w.wv, w.bv);
      if (c.rotary) {
        q = rotate(`${s}/q_rotary`, q);
        k = rotate(`${s}/k_rotary`, k);
      }
      const qh = toHeads(`${s}/q`, q, heads, hs);
      let kh = toHeads(`${s}/k`, k, kvHeads, hs);
      let vh = toHeads(`${s}/v`, v, kvHeads, vhs);
      if (hasPast) {
        kh = g.op1('Concat', `${s}/k/Concat`, [pastName(l, 'key'), kh], [attrInt('axis', 2)]);
        vh = g.op1('Concat', `${s}/v/Concat`, [pastName(l, 'value'), vh], [attrInt('axis', 2)]);
        g.nodes.push(node({ op: 'Identity', name: `${s}/present_key`, inputs: [kh], outputs: [presentName(l, 'key')] }));
        g.nodes.push(node({ op: 'Identity', name: `${s}/present_value`, inputs: [vh], outputs: [presentName(l, 'value')] }));
      }
      if (kvHeads !== heads) {
        const group = heads / kvHeads;
        const kvIndex = g.int64(`kv_head_of_${heads}x${kvHeads}`, [heads], Array.from({ length: heads }, (_, h) => Math.floor(h / group)));
        kh = g.op1('Gather', `${s}/k/repeat_kv`, [kh, kvIndex], [attrInt('axis', 1)]);
        vh = g.op1('Gather', `${s}/v/repeat_kv`, [vh, kvIndex], [attrInt('axis', 1)]);
      }
      const kt = g.op1('Transpose', `${s}/k/Transpose_1`, [kh], [attrInts('perm', [0, 1, 3, 2])]);
      const scores = g.op1('Mul', `${s}/Mul`, [g.op1('MatMul', `${s}/MatMul`, [qh, kt]), g.float(`${p}.scale`, [], [scale])]);
      const probs = g.op1('Softmax', `${s}/Softmax`, [g.op1('Add', `${s}/Add`, [scores, bias!])], [attrInt('axis', -1)]);
      const out = g.op1('MatMul', `${s}/MatMul_1`, [probs, vh]);
      ctx = g.op1('Reshape', `${s}/ctx/Reshape`, [g.op1('Transpose', `${s}/ctx/Transpose`, [out], [attrInts('perm', [0, 2, 1, 3])]), g.int64('shape_merge', [3], [0, 0, -1])]);
    }
    const o = g.op1('MatMul', `${s}/o_proj/MatMul`, [ctx, g.float(`${p}.o_proj.weight`, [heads * vhs, hidden], w.wo)]);
    x = g.op1('Add', `/model/layers.${l}/residual/Add`, [x, o]);
  });
  g.nodes.push(node({ op: 'Identity', name: '/model/output', inputs: [x], outputs: ['last_hidden_state'] }));

  // Initializers named once even when a helper asked for the same constant twice.
  const seen = new Set<string>();
  const initializers = g.initializers.filter((t) => !seen.has(t.name!) && seen.add(t.name!));
  return onnx.ModelProto.encode({
    irVersion: 10,
    producerName: 'attention-lens-test',
    opsetImport: [{ domain: '', version: c.opset }, { domain: MS, version: 1 }],
    graph: { name: `${c.kernel}-test`, node: g.nodes, input: inputs, output: outputs, initializer: initializers },
  }).finish();
}

const scaleAttr = (c: Config) => (c.scale === undefined ? [] : [attrFloat('scale', c.scale)]);

function make(partial: Partial<Config> & Pick<Config, 'kernel'>, seed: number, twin = true): TestModel {
  const config: Config = {
    layers: 2, heads: 4, kvHeads: 4, headSize: 8, vHeadSize: partial.headSize ?? 8, hidden: 24, causal: true, opset: partial.kernel === 'onnx' ? 23 : 17, ...partial,
  };
  const weights = makeWeights(config, seed);
  return { config, weights, fused: buildModel(config, weights, true), unfused: twin ? buildModel(config, weights, false) : undefined };
}

// --- The cases -------------------------------------------------------------------------------------

/** GQA with separate query/key/value, 4 query heads on 2 KV heads, rotary (interleaved) outside the kernel, custom scale. */
export const gqaSeparate = () => make({ kernel: 'gqa', kvHeads: 2, scale: 0.3, rotary: { inKernel: false, interleaved: true } }, 11);

/** GQA with packed QKV and the kernel's own rotary (do_rotary=1); head size 16, which ORT's CPU rotary needs. */
export const gqaPackedRotary = (interleaved: boolean) =>
  make({ kernel: 'gqa', kvHeads: 2, headSize: 16, hidden: 32, packed: true, rotary: { inKernel: true, interleaved } }, interleaved ? 13 : 12);

/** com.microsoft.MultiHeadAttention with separate Q/K/V, in-kernel bias and key padding mask. */
export const mha = (causal: boolean) => make({ kernel: 'mha', causal }, causal ? 22 : 21);

/** ONNX Attention: 3D inputs with 4 query heads on 2 KV heads, or 4D inputs; bool padding mask. */
export const onnxAttention = (rank: 3 | 4, causal: boolean, opset = 23) =>
  make({ kernel: 'onnx', rank, causal, opset, kvHeads: rank === 3 ? 2 : 4 }, 30 + rank * 2 + (causal ? 1 : 0) + (opset - 23) * 10);

/** com.microsoft.Attention: packed QKV weights and bias, raw 2D mask_index; optionally a smaller V (qkv_hidden_sizes). */
export const msAttention = (causal: boolean, vHeadSize = 8) => make({ kernel: 'msAttention', causal, vHeadSize, scale: 0.25 }, causal ? 42 : 41);

/** Fused models whose attention cannot be exposed exactly: GQA or 3D ONNX Attention with the given extra attributes or (GQA) inputs. */
export const withUnsupported = (kernel: 'gqa' | 'onnx', extra: { attrs?: onnx.IAttributeProto[]; inputs?: Record<number, number[]> }) =>
  make({ kernel, kvHeads: 2, extraAttrs: extra.attrs, extraInputs: extra.inputs }, 50, false);

// --- Reference -------------------------------------------------------------------------------------

export interface Reference {
  /** Per layer [batch, heads, seq, seq], zero where masked. */
  probs: Float64Array[];
  /** [batch, seq, hidden] */
  hidden: Float64Array;
}

/** The forward pass in float64, with right-padded `mask`; positions run 0..seq-1 in every row. */
export function referenceForward(m: TestModel, ids: number[][], mask: number[][]): Reference {
  const { heads, kvHeads, headSize: hs, vHeadSize: vhs, hidden, causal } = m.config;
  const B = ids.length, S = ids[0].length;
  const scale = m.config.scale ?? 1 / Math.sqrt(hs);
  const group = heads / kvHeads;
  const x = new Float64Array(B * S * hidden);
  ids.flat().forEach((id, t) => x.set(m.weights.embed.subarray(id * hidden, (id + 1) * hidden), t * hidden));
  const project = (w: Float32Array, b: Float32Array) => {
    const cols = b.length;
    const out = new Float64Array(B * S * cols);
    for (let t = 0; t < B * S; t++) {
      for (let j = 0; j < cols; j++) {
        let acc = b[j];
        for (let i = 0; i < hidden; i++) acc += x[t * hidden + i] * w[i * cols + j];
        out[t * cols + j] = acc;
      }
    }
    return out;
  };
  const rotate = (a: Float64Array, n: number) => {
    if (!m.config.rotary) return;
    const half = hs / 2;
    for (let t = 0; t < B * S; t++) {
      const pos = t % S;
      for (let h = 0; h < n; h++) {
        const base = (t * n + h) * hs;
        for (let i = 0; i < half; i++) {
          const [ia, ib] = m.config.rotary.interleaved ? [base + 2 * i, base + 2 * i + 1] : [base + i, base + i + half];
          const c = m.weights.cos[pos * half + i], s = m.weights.sin[pos * half + i];
          const u = a[ia], v = a[ib];
          a[ia] = u * c - v * s;
          a[ib] = v * c + u * s;
        }
      }
    }
  };
  const probs: Float64Array[] = [];
  for (const w of m.weights.layers) {
    const q = project(w.wq, w.bq), k = project(w.wk, w.bk), v = project(w.wv, w.bv);
    rotate(q, heads);
    rotate(k, kvHeads);
    const p = new Float64Array(B * heads * S * S);
    const ctx = new Float64Array(B * S * heads * vhs);
    for (let b = 0; b < B; b++) {
      for (let h = 0; h < heads; h++) {
        const kh = Math.floor(h / group);
        for (let i = 0; i < S; i++) {
          const row = ((b * heads + h) * S + i) * S;
          const allowed = (j: number) => mask[b][j] === 1 && (!causal || j <= i);
          let max = -Infinity;
          for (let j = 0; j < S; j++) {
            if (!allowed(j)) continue;
            let dot = 0;
            for (let d = 0; d < hs; d++) dot += q[((b * S + i) * heads + h) * hs + d] * k[((b * S + j) * kvHeads + kh) * hs + d];
            p[row + j] = dot * scale;
            max = Math.max(max, p[row + j]);
          }
          let sum = 0;
          for (let j = 0; j < S; j++) sum += p[row + j] = allowed(j) ? Math.exp(p[row + j] - max) : 0;
          for (let j = 0; j < S; j++) {
            p[row + j] /= sum;
            for (let d = 0; d < vhs; d++) ctx[((b * S + i) * heads + h) * vhs + d] += p[row + j] * v[((b * S + j) * kvHeads + kh) * vhs + d];
          }
        }
      }
    }
    probs.push(p);
    const width = heads * vhs;
    for (let t = 0; t < B * S; t++) {
      for (let j = 0; j < hidden; j++) {
        let acc = 0;
        for (let i = 0; i < width; i++) acc += ctx[t * width + i] * w.wo[i * hidden + j];
        x[t * hidden + j] += acc;
      }
    }
  }
  return { probs, hidden: x };
}
