// Writes a Qwen2.5-0.5B-shaped decoder with seeded random weights in the onnxruntime-genai model
// builder's layout (fused com.microsoft.GroupQueryAttention with rotary inside the op), so the
// benchmark can time a real-size GQA model without downloading or converting one.
//
//   node --import tsx bench/make-qwen-gqa.ts [outFolder] [--layers 24 --heads 14 --kv-heads 2 --hidden 896
//        --intermediate 4864 --head-size 64 --vocab 32000 --max-pos 32768 --seed 1]
//        [--precisions fp32,q4] [--no-verify] [--T 16]
//
// Output (default bench/models/qwen-gqa-random, gitignored), a transformers.js-style folder:
//   config.json (model_type qwen2), genai_config.json (as the builder writes it; not needed by the bench),
//   onnx/model.onnx + onnx/model.onnx.data (fp32) and onnx/model_q4.onnx + onnx/model_q4.onnx.data (int4
//   MatMulNBits, bits 4, block_size 32, symmetric, accuracy_level 4: what `builder.py -p int4 -e cpu`
//   emits). No tokenizer: the bench feeds token ids.
//
// Deviations from Qwen2.5-0.5B, on purpose: vocab 32000 instead of 151936 by default (--vocab 151936 for the
// real size; the fp32 file then grows from 1.7 to 2.5 GB), random weights N(0, 0.02) (biases too; norms 1),
// untied embeddings (the builder's default without `shared_embeddings`: `model.embed_tokens.weight` for the
// Gather and `lm_head.MatMul.weight` for the MatMul), and a literal 64 as the cache's head dimension (the builder
// declares `kv_cache_dim`, see ../shared/models/stories260K-gqa/README.md).
//
// Graph, per the builder (src/python/py/models/builders/base.py): input_ids, attention_mask (int64),
// past_key_values.N.{key,value} [batch, kv, past, head]; seqlens_k = ReduceSum(mask) - 1 and
// total_sequence_length = Shape(mask)[1] as int32 (/model/attn_mask_reformat/attn_mask_subgraph/...);
// /model/embed_tokens/Gather; per layer [Skip]SimplifiedLayerNormalization, packed qkv_proj MatMul + Add (bias),
// GroupQueryAttention (do_rotary=1, rotary_interleaved=0, cos_cache/sin_cache [max_pos, head/2] with
// rope_theta 1e6, scale 1/8), o_proj MatMul, SkipSimplifiedLayerNormalization, SwiGLU MLP
// (gate/up MatMul, Sigmoid, Mul, Mul, down MatMul); final SkipSimplifiedLayerNormalization, /lm_head/MatMul ->
// logits; outputs logits, present.N.{key,value}. Every tensor of 1 KiB or more lives in the external data file
// (64 KiB-aligned, as onnx's save does for big tensors); every node output has a value_info entry.
// Unless --no-verify, each written model is then run in onnxruntime-node (a 16-token prompt, then one decode
// step with the returned cache) and its logits are checked to be finite.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { onnx } from 'onnx-proto';
import * as ort from 'onnxruntime-node';
import { gaussian } from './util';

const DT = onnx.TensorProto.DataType;
const AT = onnx.AttributeProto.AttributeType;

export interface QwenDims {
  layers: number;
  heads: number;
  kvHeads: number;
  hidden: number;
  intermediate: number;
  headSize: number;
  vocab: number;
  maxPos: number;
  seed: number;
  /**
   * Standard deviation of the packed q/k/v projection's weights (default 0.02, as every weight).
   * Larger (0.2) gives peaked random attention patterns instead of nearly uniform rows, for demos
   * and tests that should show structure; the bench keeps 0.02.
   */
  qkvStd?: number;
}

export const QWEN_05B: QwenDims = { layers: 24, heads: 14, kvHeads: 2, hidden: 896, intermediate: 4864, headSize: 64, vocab: 32000, maxPos: 32768, seed: 1 };
export const QWEN_GQA_DIR = path.resolve(__dirname, 'models/qwen-gqa-random');
export type Precision = 'fp32' | 'q4';
export const ONNX_FILE: Record<Precision, string> = { fp32: 'onnx/model.onnx', q4: 'onnx/model_q4.onnx' };

const RMS_EPS = 1e-6;
const ROPE_THETA = 1e6;
const Q4_BLOCK = 32;
const EXTERNAL_MIN_BYTES = 1024;
const ALIGN_MIN_BYTES = 1 << 20;
const ALIGN = 1 << 16;

function parseArgs(argv: string[]) {
  const dims: QwenDims = { ...QWEN_05B };
  const keys: Record<string, keyof QwenDims> = {
    '--layers': 'layers', '--heads': 'heads', '--kv-heads': 'kvHeads', '--hidden': 'hidden', '--intermediate': 'intermediate',
    '--head-size': 'headSize', '--vocab': 'vocab', '--max-pos': 'maxPos', '--seed': 'seed',
  };
  let out = QWEN_GQA_DIR;
  let verify = true;
  let T = 16;
  let precisions: Precision[] = ['fp32', 'q4'];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (keys[a]) dims[keys[a]] = Number(argv[++i]);
    else if (a === '--no-verify') verify = false;
    else if (a === '--T') T = Number(argv[++i]);
    else if (a === '--precisions') precisions = argv[++i].split(',') as Precision[];
    else if (a.startsWith('--')) throw new Error(`unknown option ${a}`);
    else out = path.resolve(a);
  }
  for (const [k, v] of Object.entries(dims)) if (!Number.isInteger(v) || v < (k === 'seed' ? 0 : 1)) throw new Error(`bad --${k}: ${v}`);
  if (dims.heads % dims.kvHeads !== 0) throw new Error('--heads must be a multiple of --kv-heads');
  // onnxruntime's GroupQueryAttention refuses rotary caches unless head_size % 16 == 0; MatMulNBits needs K % 32 == 0 here.
  if (dims.headSize % 16 !== 0) throw new Error('--head-size must be a multiple of 16 (GroupQueryAttention with do_rotary)');
  if (precisions.includes('q4') && (dims.hidden % Q4_BLOCK || dims.intermediate % Q4_BLOCK)) throw new Error(`--hidden and --intermediate must be multiples of ${Q4_BLOCK} for q4`);
  if (!precisions.length || precisions.some((p) => !(p in ONNX_FILE))) throw new Error(`--precisions: fp32 and/or q4`);
  return { dims, out, verify, T, precisions };
}

/**
 * MatMulNBits weight of a [K, N] float matrix, as onnxruntime's DefaultWeightOnlyQuantizer writes it with
 * is_symmetric: B [N, K/32, 16] uint8 (two 4-bit values a byte, the lower k in the low nibble, stored +8),
 * scales [N * K/32] float (block max-magnitude value / -8), no zero points (8 implied).
 */
export function quantizeQ4(w: Float32Array, K: number, N: number): { packed: Uint8Array; scales: Float32Array } {
  const blocks = K / Q4_BLOCK;
  const packed = new Uint8Array(N * blocks * (Q4_BLOCK / 2));
  const scales = new Float32Array(N * blocks);
  const q = new Uint8Array(Q4_BLOCK);
  for (let n = 0; n < N; n++) {
    for (let b = 0; b < blocks; b++) {
      let amax = 0;
      let vmax = 0;
      for (let j = 0; j < Q4_BLOCK; j++) {
        const v = w[(b * Q4_BLOCK + j) * N + n];
        if (Math.abs(v) > amax) {
          amax = Math.abs(v);
          vmax = v;
        }
      }
      const scale = vmax / -8;
      const inv = scale ? 1 / scale : 0;
      for (let j = 0; j < Q4_BLOCK; j++) q[j] = Math.min(15, Math.max(0, Math.round(w[(b * Q4_BLOCK + j) * N + n] * inv) + 8));
      const at = (n * blocks + b) * (Q4_BLOCK / 2);
      for (let j = 0; j < Q4_BLOCK; j += 2) packed[at + j / 2] = q[j] | (q[j + 1] << 4);
      scales[n * blocks + b] = scale;
    }
  }
  return { packed, scales };
}

/** One output file: a ModelProto under construction plus its external data file, written as tensors arrive. */
class ModelWriter {
  readonly nodes: onnx.INodeProto[] = [];
  readonly initializers: onnx.ITensorProto[] = [];
  readonly valueInfo: onnx.IValueInfoProto[] = [];
  private readonly fd: number;
  private offset = 0;
  readonly dataName: string;

  constructor(readonly modelPath: string, readonly precision: Precision) {
    this.dataName = `${path.basename(modelPath)}.data`;
    this.fd = fs.openSync(path.join(path.dirname(modelPath), this.dataName), 'w');
  }

  tensor(name: string, dims: number[], dataType: number, bytes: Uint8Array): string {
    if (bytes.byteLength < EXTERNAL_MIN_BYTES) {
      this.initializers.push({ name, dims, dataType, rawData: bytes.slice() });
      return name;
    }
    if (bytes.byteLength >= ALIGN_MIN_BYTES && this.offset % ALIGN) {
      const pad = ALIGN - (this.offset % ALIGN);
      fs.writeSync(this.fd, new Uint8Array(pad));
      this.offset += pad;
    }
    for (let done = 0; done < bytes.byteLength; ) done += fs.writeSync(this.fd, bytes, done);
    this.initializers.push({
      name, dims, dataType,
      dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
      externalData: [
        { key: 'location', value: this.dataName },
        { key: 'offset', value: String(this.offset) },
        { key: 'length', value: String(bytes.byteLength) },
      ],
    });
    this.offset += bytes.byteLength;
    return name;
  }

  f32(name: string, dims: number[], data: Float32Array): string {
    return this.tensor(name, dims, DT.FLOAT, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  }

  finish(graph: Omit<onnx.IGraphProto, 'node' | 'initializer' | 'valueInfo'>, producer: string): number {
    fs.closeSync(this.fd);
    const model: onnx.IModelProto = {
      irVersion: 10,
      producerName: producer,
      opsetImport: [{ domain: '', version: 21 }, { domain: 'com.microsoft', version: 1 }],
      graph: { ...graph, node: this.nodes, initializer: this.initializers, valueInfo: this.valueInfo },
    };
    const bytes = onnx.ModelProto.encode(model).finish();
    fs.writeFileSync(this.modelPath, bytes);
    return this.offset;
  }
}

type Dim = string | number;
const shape = (dims: Dim[]): onnx.ITensorShapeProto => ({ dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) });
const valueInfo = (name: string, elemType: number, dims: Dim[]): onnx.IValueInfoProto => ({ name, type: { tensorType: { elemType, shape: shape(dims) } } });
const int = (name: string, v: number): onnx.IAttributeProto => ({ name, i: v, type: AT.INT });
const float = (name: string, v: number): onnx.IAttributeProto => ({ name, f: v, type: AT.FLOAT });

/**
 * Builds every requested precision in one pass over the weights: each weight is drawn once, written as float
 * to the fp32 file and quantized to the q4 file, so the q4 model is the quantized fp32 model.
 */
export function writeModels(out: string, d: QwenDims, precisions: Precision[]): Record<Precision, { modelPath: string; dataBytes: number; modelBytes: number }> {
  fs.mkdirSync(path.join(out, 'onnx'), { recursive: true });
  const randn = gaussian(d.seed);
  const writers = precisions.map((p) => new ModelWriter(path.join(out, ONNX_FILE[p]), p));
  const B = 'batch_size';
  const S = 'sequence_length';
  const P = 'past_sequence_length';
  const TOT = 'total_sequence_length';
  const qSize = d.heads * d.headSize;
  const kvSize = d.kvHeads * d.headSize;
  const qkvSize = qSize + 2 * kvSize;

  const node = (name: string, op: string, inputs: string[], outputs: string[], attrs: onnx.IAttributeProto[] = [], domain = '') => {
    for (const w of writers) w.nodes.push({ name, opType: op, input: inputs, output: outputs, attribute: attrs, domain });
  };
  const declare = (name: string, elemType: number, dims: Dim[]) => {
    for (const w of writers) w.valueInfo.push(valueInfo(name, elemType, dims));
  };
  const f32All = (name: string, dims: number[], data: Float32Array) => {
    for (const w of writers) w.f32(name, dims, data);
    return name;
  };
  const ones = (name: string, n: number) => f32All(name, [n], new Float32Array(n).fill(1));
  const constant = (dtypeName: string, value: string, dims: number[], data: BigInt64Array) => {
    const output = `/model/constants/${dtypeName}/${value}`;
    node(`/model/constant_nodes/${dtypeName}/${value}`, 'Constant', [], [output], [{ name: 'value', type: AT.TENSOR, t: { dims, dataType: DT.INT64, rawData: new Uint8Array(data.buffer) } }]);
    declare(output, DT.INT64, dims);
    return output;
  };
  /** MatMul with a [K, N] weight; under q4 a MatMulNBits named as onnxruntime's quantizer names it. */
  const matmul = (name: string, x: string, K: number, N: number, output = `${name}/output_0`, outDims: Dim[] = [B, S, N], std = 0.02) => {
    const weight = `${name.slice(1).replace(/\//g, '.')}.weight`;
    const w = randn(new Float32Array(K * N), std);
    const q = writers.some((wr) => wr.precision === 'q4') ? quantizeQ4(w, K, N) : null;
    for (const wr of writers) {
      if (wr.precision === 'fp32') {
        wr.f32(weight, [K, N], w);
        wr.nodes.push({ name, opType: 'MatMul', input: [x, weight], output: [output], attribute: [], domain: '' });
      } else {
        const blocks = K / Q4_BLOCK;
        wr.tensor(`${weight}_Q4`, [N, blocks, Q4_BLOCK / 2], DT.UINT8, q!.packed);
        wr.f32(`${weight}_scales`, [N * blocks], q!.scales);
        wr.nodes.push({
          name: `${name}_Q4`, opType: 'MatMulNBits', domain: 'com.microsoft', input: [x, `${weight}_Q4`, `${weight}_scales`], output: [output],
          attribute: [int('K', K), int('N', N), int('bits', 4), int('block_size', Q4_BLOCK), int('accuracy_level', 4)],
        });
      }
    }
    if (output !== 'logits') declare(output, DT.FLOAT, outDims);
    return output;
  };

  // Attention mask -> seqlens_k (int32 [batch]) and total_sequence_length (int32 scalar).
  const mask = '/model/attn_mask_reformat/attn_mask_subgraph';
  const one1d = constant('INT64', '[1]', [1], BigInt64Array.of(1n));
  node(`${mask}/ReduceSum`, 'ReduceSum', ['attention_mask', one1d], [`${mask}/ReduceSum/output_0`], [int('keepdims', 0)]);
  declare(`${mask}/ReduceSum/output_0`, DT.INT64, [B]);
  node(`${mask}/Sub`, 'Sub', [`${mask}/ReduceSum/output_0`, one1d], [`${mask}/Sub/output_0`]);
  declare(`${mask}/Sub/output_0`, DT.INT64, [B]);
  node(`${mask}/Sub/Cast`, 'Cast', [`${mask}/Sub/output_0`], [`${mask}/Sub/Cast/output_0`], [int('to', DT.INT32)]);
  declare(`${mask}/Sub/Cast/output_0`, DT.INT32, [B]);
  node(`${mask}/Shape`, 'Shape', ['attention_mask'], [`${mask}/Shape/output_0`]);
  declare(`${mask}/Shape/output_0`, DT.INT64, [2]);
  const one = constant('INT64', '1', [], BigInt64Array.of(1n));
  node(`${mask}/Gather`, 'Gather', [`${mask}/Shape/output_0`, one], [`${mask}/Gather/output_0`], [int('axis', 0)]);
  declare(`${mask}/Gather/output_0`, DT.INT64, []);
  node(`${mask}/Gather/Cast`, 'Cast', [`${mask}/Gather/output_0`], [`${mask}/Gather/Cast/output_0`], [int('to', DT.INT32)]);
  declare(`${mask}/Gather/Cast/output_0`, DT.INT32, []);
  const seqlensK = `${mask}/Sub/Cast/output_0`;
  const totalLen = `${mask}/Gather/Cast/output_0`;

  // Rotary caches [max_pos, head/2]: cos/sin(pos * theta^(-2i/head)), the halves layout (rotary_interleaved=0).
  const half = d.headSize / 2;
  const cos = new Float32Array(d.maxPos * half);
  const sin = new Float32Array(d.maxPos * half);
  for (let i = 0; i < half; i++) {
    const invFreq = 1 / Math.pow(ROPE_THETA, (2 * i) / d.headSize);
    for (let p = 0; p < d.maxPos; p++) {
      cos[p * half + i] = Math.cos(p * invFreq);
      sin[p * half + i] = Math.sin(p * invFreq);
    }
  }
  f32All('cos_cache', [d.maxPos, half], cos);
  f32All('sin_cache', [d.maxPos, half], sin);

  const embedOut = '/model/embed_tokens/Gather/output_0';
  f32All('model.embed_tokens.weight', [d.vocab, d.hidden], randn(new Float32Array(d.vocab * d.hidden), 0.02));
  node('/model/embed_tokens/Gather', 'Gather', ['model.embed_tokens.weight', 'input_ids'], [embedOut]);
  declare(embedOut, DT.FLOAT, [B, S, d.hidden]);

  let residual = embedOut; // the residual stream so far (output 3 of the last SkipSimplifiedLayerNormalization)
  let delta = ''; // what the last block added to it
  const norm = (scope: string, param: string, last = false) => {
    const weight = ones(param, d.hidden);
    const out0 = `${scope}/output_0`;
    if (!delta) {
      node(`${scope}/LayerNorm`, 'SimplifiedLayerNormalization', [residual, weight], [out0], [int('axis', -1), float('epsilon', RMS_EPS), int('stash_type', 1)]);
    } else {
      const out3 = last ? '' : `${scope}/output_3`;
      node(`${scope}/SkipLayerNorm`, 'SkipSimplifiedLayerNormalization', [residual, delta, weight], last ? [out0] : [out0, '', '', out3], [float('epsilon', RMS_EPS)], 'com.microsoft');
      if (out3) declare(out3, DT.FLOAT, [B, S, d.hidden]);
      residual = out3;
    }
    declare(out0, DT.FLOAT, [B, S, d.hidden]);
    return out0;
  };

  for (let l = 0; l < d.layers; l++) {
    const p = `/model/layers.${l}`;
    const param = `model.layers.${l}`;
    const x = norm(`${p}/input_layernorm`, `${param}.input_layernorm.weight`);
    const qkv = matmul(`${p}/attn/qkv_proj/MatMul`, x, d.hidden, qkvSize, undefined, undefined, d.qkvStd ?? 0.02);
    const bias = f32All(`${param}.attn.qkv_proj.Add.bias`, [qkvSize], randn(new Float32Array(qkvSize), 0.02));
    node(`${p}/attn/qkv_proj/Add`, 'Add', [qkv, bias], [`${p}/attn/qkv_proj/Add/output_0`]);
    declare(`${p}/attn/qkv_proj/Add/output_0`, DT.FLOAT, [B, S, qkvSize]);
    const attnOut = `${p}/attn/GroupQueryAttention/output_0`;
    node(
      `${p}/attn/GroupQueryAttention`, 'GroupQueryAttention',
      [`${p}/attn/qkv_proj/Add/output_0`, '', '', `past_key_values.${l}.key`, `past_key_values.${l}.value`, seqlensK, totalLen, 'cos_cache', 'sin_cache', '', '', ''],
      [attnOut, `present.${l}.key`, `present.${l}.value`],
      [int('do_rotary', 1), int('kv_num_heads', d.kvHeads), int('local_window_size', -1), int('num_heads', d.heads), int('rotary_interleaved', 0), float('scale', 1 / Math.sqrt(d.headSize)), float('softcap', 0)],
      'com.microsoft',
    );
    declare(attnOut, DT.FLOAT, [B, S, qSize]);
    delta = matmul(`${p}/attn/o_proj/MatMul`, attnOut, qSize, d.hidden);
    const h = norm(`${p}/post_attention_layernorm`, `${param}.post_attention_layernorm.weight`);
    const gate = matmul(`${p}/mlp/gate_proj/MatMul`, h, d.hidden, d.intermediate);
    const up = matmul(`${p}/mlp/up_proj/MatMul`, h, d.hidden, d.intermediate);
    const act = `${p}/mlp/act_fn`;
    node(`${act}/Sigmoid`, 'Sigmoid', [gate], [`${act}/Sigmoid/output_0`]);
    node(`${act}/Mul`, 'Mul', [gate, `${act}/Sigmoid/output_0`], [`${act}/Mul/output_0`]);
    node(`${p}/mlp/Mul`, 'Mul', [`${act}/Mul/output_0`, up], [`${p}/mlp/Mul/output_0`]);
    for (const n of [`${act}/Sigmoid/output_0`, `${act}/Mul/output_0`, `${p}/mlp/Mul/output_0`]) declare(n, DT.FLOAT, [B, S, d.intermediate]);
    delta = matmul(`${p}/mlp/down_proj/MatMul`, `${p}/mlp/Mul/output_0`, d.intermediate, d.hidden);
  }
  const final = norm(`/model/layers.${d.layers}/final_norm_layernorm`, `model.layers.${d.layers}.final_norm_layernorm.weight`, true);
  matmul('/lm_head/MatMul', final, d.hidden, d.vocab, 'logits');

  const cache = (prefix: string, len: string) =>
    ['key', 'value'].flatMap((kind) => Array.from({ length: d.layers }, (_, l) => valueInfo(`${prefix}.${l}.${kind}`, DT.FLOAT, [B, d.kvHeads, len, d.headSize])));
  const graph = {
    name: 'qwen-gqa-random',
    input: [valueInfo('input_ids', DT.INT64, [B, S]), valueInfo('attention_mask', DT.INT64, [B, TOT]), ...cache('past_key_values', P)],
    output: [valueInfo('logits', DT.FLOAT, [B, S, d.vocab]), ...cache('present', TOT)],
  };
  const result = {} as Record<Precision, { modelPath: string; dataBytes: number; modelBytes: number }>;
  for (const w of writers) {
    const dataBytes = w.finish(graph, `attention-lens bench/make-qwen-gqa.ts (onnxruntime-genai builder layout, ${w.precision}, random weights seed ${d.seed})`);
    result[w.precision] = { modelPath: w.modelPath, dataBytes, modelBytes: fs.statSync(w.modelPath).size };
  }
  return result;
}

/**
 * A complete model folder for the engine: configs, the fp32 graph, and the tokenizer files of
 * `tokenizerDir` (its vocabulary must fit `d.vocab`) with model_max_length raised to d.maxPos.
 */
export function writeQwenFolder(out: string, d: QwenDims, tokenizerDir: string): string {
  fs.mkdirSync(out, { recursive: true });
  writeConfigs(out, d);
  const { modelPath } = writeModels(out, d, ['fp32']).fp32;
  fs.copyFileSync(path.join(tokenizerDir, 'tokenizer.json'), path.join(out, 'tokenizer.json'));
  const tc = JSON.parse(fs.readFileSync(path.join(tokenizerDir, 'tokenizer_config.json'), 'utf8'));
  fs.writeFileSync(path.join(out, 'tokenizer_config.json'), JSON.stringify({ ...tc, model_max_length: d.maxPos }, null, 1) + '\n');
  return modelPath;
}

function writeConfigs(out: string, d: QwenDims) {
  const config = {
    architectures: ['Qwen2ForCausalLM'],
    model_type: 'qwen2',
    vocab_size: d.vocab,
    hidden_size: d.hidden,
    intermediate_size: d.intermediate,
    num_hidden_layers: d.layers,
    num_attention_heads: d.heads,
    num_key_value_heads: d.kvHeads,
    head_dim: d.headSize,
    max_position_embeddings: d.maxPos,
    rms_norm_eps: RMS_EPS,
    rope_theta: ROPE_THETA,
    hidden_act: 'silu',
    tie_word_embeddings: false,
    bos_token_id: 1,
    eos_token_id: 2,
    torch_dtype: 'float32',
    use_cache: true,
    _comment:
      `Qwen2.5-0.5B-shaped, random weights N(0, 0.02) (seed ${d.seed}) from bench/make-qwen-gqa.ts; not a trained model` +
      (d.vocab === 151936 ? '' : ` (vocab ${d.vocab}, Qwen2.5 has 151936)`) + '. No tokenizer: feed token ids.',
  };
  fs.writeFileSync(path.join(out, 'config.json'), JSON.stringify(config, null, 2) + '\n');
  const genai = {
    model: {
      bos_token_id: 1, context_length: d.maxPos, eos_token_id: 2, pad_token_id: 2, type: 'qwen2', vocab_size: d.vocab,
      decoder: {
        session_options: { log_id: 'onnxruntime-genai', provider_options: [] },
        filename: 'model.onnx', head_size: d.headSize, hidden_size: d.hidden,
        inputs: { input_ids: 'input_ids', attention_mask: 'attention_mask', past_key_names: 'past_key_values.%d.key', past_value_names: 'past_key_values.%d.value' },
        outputs: { logits: 'logits', present_key_names: 'present.%d.key', present_value_names: 'present.%d.value' },
        num_attention_heads: d.heads, num_hidden_layers: d.layers, num_key_value_heads: d.kvHeads,
      },
    },
    search: { do_sample: false, max_length: d.maxPos, num_beams: 1, past_present_share_buffer: true },
  };
  fs.writeFileSync(path.join(out, 'genai_config.json'), JSON.stringify(genai, null, 4) + '\n');
}

/** Feeds for a T-token prompt (or a continuation after `past` cached tokens): ids, mask, empty/given cache. */
export function qwenFeeds(d: QwenDims, T: number, past: Record<string, ort.Tensor> | null = null, pastLen = 0): Record<string, ort.Tensor> {
  const ids = BigInt64Array.from({ length: T }, (_, i) => BigInt(1 + (((i + pastLen) * 7919) % (d.vocab - 1))));
  const feeds: Record<string, ort.Tensor> = {
    input_ids: new ort.Tensor('int64', ids, [1, T]),
    attention_mask: new ort.Tensor('int64', new BigInt64Array(pastLen + T).fill(1n), [1, pastLen + T]),
  };
  for (let l = 0; l < d.layers; l++) {
    for (const kind of ['key', 'value']) {
      feeds[`past_key_values.${l}.${kind}`] = past?.[`present.${l}.${kind}`] ?? new ort.Tensor('float32', new Float32Array(0), [1, d.kvHeads, 0, d.headSize]);
    }
  }
  return feeds;
}

async function verify(modelPath: string, d: QwenDims, T: number) {
  const t0 = performance.now();
  const session = await ort.InferenceSession.create(modelPath, { graphOptimizationLevel: 'all', logSeverityLevel: 3 });
  const sessionMs = performance.now() - t0;
  const t1 = performance.now();
  const prompt = await session.run(qwenFeeds(d, T));
  const promptMs = performance.now() - t1;
  const logits = prompt.logits.data as Float32Array;
  if ([...prompt.logits.dims].join() !== `1,${T},${d.vocab}`) throw new Error(`logits have shape [${prompt.logits.dims}]`);
  if (!logits.every(Number.isFinite)) throw new Error('logits are not finite');
  if ([...prompt['present.0.key'].dims].join() !== `1,${d.kvHeads},${T},${d.headSize}`) throw new Error(`present.0.key has shape [${prompt['present.0.key'].dims}]`);
  // One decode step with the returned cache.
  const step = await session.run(qwenFeeds(d, 1, prompt, T));
  const stepLogits = step.logits.data as Float32Array;
  if (!stepLogits.every(Number.isFinite)) throw new Error('decode-step logits are not finite');
  if ([...step['present.0.key'].dims].join() !== `1,${d.kvHeads},${T + 1},${d.headSize}`) throw new Error(`decode present.0.key has shape [${step['present.0.key'].dims}]`);
  let maxAbs = 0;
  let sumSq = 0;
  for (const v of logits) {
    maxAbs = Math.max(maxAbs, Math.abs(v));
    sumSq += v * v;
  }
  await session.release();
  const report = { sessionMs: Math.round(sessionMs), promptMs: Math.round(promptMs), T, logitsMaxAbs: Number(maxAbs.toFixed(3)), logitsStd: Number(Math.sqrt(sumSq / logits.length).toFixed(3)), lastLogits: Array.from(logits.slice((T - 1) * d.vocab, (T - 1) * d.vocab + 4), (v) => Number(v.toFixed(4))) };
  return { report, logits };
}

function correlation(a: Float32Array, b: Float32Array): number {
  let ma = 0;
  let mb = 0;
  for (let i = 0; i < a.length; i++) {
    ma += a[i] / a.length;
    mb += b[i] / b.length;
  }
  let ab = 0;
  let aa = 0;
  let bb = 0;
  for (let i = 0; i < a.length; i++) {
    ab += (a[i] - ma) * (b[i] - mb);
    aa += (a[i] - ma) ** 2;
    bb += (b[i] - mb) ** 2;
  }
  return ab / Math.sqrt(aa * bb);
}

async function main() {
  const { dims, out, verify: doVerify, T, precisions } = parseArgs(process.argv.slice(2));
  fs.mkdirSync(out, { recursive: true });
  writeConfigs(out, dims);
  const t = performance.now();
  const written = writeModels(out, dims, precisions);
  const ms = performance.now() - t;
  for (const [p, w] of Object.entries(written)) {
    console.log(`wrote ${path.relative(process.cwd(), w.modelPath)} (${p}): graph ${(w.modelBytes / 2 ** 10).toFixed(0)} KiB + data ${(w.dataBytes / 2 ** 20).toFixed(1)} MiB`);
  }
  console.log(`generated in ${(ms / 1000).toFixed(1)} s`);
  if (!doVerify) return;
  const logits: Partial<Record<Precision, Float32Array>> = {};
  for (const [p, w] of Object.entries(written) as [Precision, { modelPath: string }][]) {
    const { report, logits: l } = await verify(w.modelPath, dims, T);
    logits[p] = l;
    console.log(p, JSON.stringify(report));
  }
  // The q4 model is the quantized fp32 model: their logits should agree closely, not exactly.
  if (logits.fp32 && logits.q4) console.log(`correlation of fp32 and q4 logits: ${correlation(logits.fp32, logits.q4).toFixed(4)}`);
}

if (require.main === module) {
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
