// Writes a BERT-base-shaped encoder with seeded random weights as a transformers.js model folder, so
// benchmarks and stress tests can run a real-size model without downloading one.
//
//   node --import tsx bench/make-bert-base.ts [outFolder] [--layers 12 --heads 12 --hidden 768
//        --intermediate 3072 --vocab 30522 --max-pos 512 --seed 1] [--no-verify] [--T 128]
//
// Output (default bench/models/bert-base-random, gitignored):
//   config.json, tokenizer.json, tokenizer_config.json (the real bert-base-uncased tokenizer),
//   onnx/model.onnx: inputs input_ids / attention_mask / token_type_ids (int64 [batch, seq]), output
//   last_hidden_state; opset 17 (LayerNormalization), node names as in Hugging Face exports
//   (`/encoder/layer.N/attention/self/Softmax`), no attention outputs, extended mask (1 - mask) * -1e4.
// Unless --no-verify, it then loads the model in onnxruntime-node, exposes the attention with
// exposeAttention / loadExposedGraph, checks the outputs, and prints timings.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { onnx } from 'onnx-proto';
import * as ort from 'onnxruntime-node';
import { exposeAttentionChunks } from '../src/engine/onnx/exposeAttention';
import { loadExposedGraph } from '../src/engine/onnx/exposedCache';
import { gaussian } from './util';

const DT = onnx.TensorProto.DataType;
const AT = onnx.AttributeProto.AttributeType;
const TOKENIZER_DIR = path.resolve(__dirname, '../../shared/tokenizers/bert-base-uncased');

interface Dims {
  layers: number;
  heads: number;
  hidden: number;
  intermediate: number;
  vocab: number;
  maxPos: number;
  seed: number;
}

function parseArgs(argv: string[]) {
  const dims: Dims = { layers: 12, heads: 12, hidden: 768, intermediate: 3072, vocab: 30522, maxPos: 512, seed: 1 };
  const keys: Record<string, keyof Dims> = {
    '--layers': 'layers', '--heads': 'heads', '--hidden': 'hidden', '--intermediate': 'intermediate',
    '--vocab': 'vocab', '--max-pos': 'maxPos', '--seed': 'seed',
  };
  let out = path.resolve(__dirname, 'models/bert-base-random');
  let verify = true;
  let T = 128;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (keys[a]) dims[keys[a]] = Number(argv[++i]);
    else if (a === '--no-verify') verify = false;
    else if (a === '--T') T = Number(argv[++i]);
    else if (a.startsWith('--')) throw new Error(`unknown option ${a}`);
    else out = path.resolve(a);
  }
  for (const [k, v] of Object.entries(dims)) if (!Number.isInteger(v) || v < (k === 'seed' ? 0 : 1)) throw new Error(`bad --${k}: ${v}`);
  if (dims.hidden % dims.heads !== 0) throw new Error('--hidden must be a multiple of --heads');
  return { dims, out, verify, T };
}

/** Builds the ModelProto. Weights follow BERT's init: N(0, 0.02) matrices and embeddings, zero biases, LayerNorm 1/0. */
function buildModel(d: Dims): onnx.IModelProto {
  const randn = gaussian(d.seed);
  const headDim = d.hidden / d.heads;
  const initializers: onnx.ITensorProto[] = [];
  const nodes: onnx.INodeProto[] = [];

  const f32 = (name: string, dims: number[], data: Float32Array) => {
    initializers.push({ name, dims, dataType: DT.FLOAT, rawData: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) });
    return name;
  };
  const i64 = (name: string, dims: number[], values: number[]) => {
    const a = BigInt64Array.from(values.map(BigInt));
    initializers.push({ name, dims, dataType: DT.INT64, rawData: new Uint8Array(a.buffer) });
    return name;
  };
  const weight = (name: string, dims: number[]) => f32(name, dims, randn(new Float32Array(dims.reduce((x, y) => x * y)), 0.02));
  const filled = (name: string, n: number, v: number) => f32(name, [n], new Float32Array(n).fill(v));
  const scalar = (name: string, v: number) => f32(name, [], Float32Array.of(v));
  const add = (name: string, op: string, inputs: string[], attrs: onnx.IAttributeProto[] = [], output = `${name}_output_0`) => {
    nodes.push({ name, opType: op, input: inputs, output: [output], attribute: attrs, domain: '' });
    return output;
  };
  const ints = (name: string, v: number[]): onnx.IAttributeProto => ({ name, ints: v, type: AT.INTS });
  const int = (name: string, v: number): onnx.IAttributeProto => ({ name, i: v, type: AT.INT });
  const float = (name: string, v: number): onnx.IAttributeProto => ({ name, f: v, type: AT.FLOAT });

  // Shared constants.
  const one = scalar('const.one', 1);
  const negBig = scalar('const.mask_value', -10000);
  const sqrtD = scalar('const.sqrt_head_dim', Math.sqrt(headDim));
  const sqrt2 = scalar('const.sqrt2', Math.SQRT2);
  const half = scalar('const.half', 0.5);
  const splitHeads = i64('const.split_heads_shape', [4], [0, 0, d.heads, headDim]);
  const mergeHeads = i64('const.merge_heads_shape', [3], [0, 0, d.hidden]);
  const axis1 = i64('const.axes_1', [1], [1]);
  const axis2 = i64('const.axes_2', [1], [2]);
  const axis0 = i64('const.axes_0', [1], [0]);
  const zero1 = i64('const.zero_1d', [1], [0]);
  const idx1 = i64('const.index_1', [], [1]);

  const layerNorm = (name: string, x: string, prefix: string, output?: string) =>
    add(name, 'LayerNormalization', [x, filled(`${prefix}.weight`, d.hidden, 1), filled(`${prefix}.bias`, d.hidden, 0)], [int('axis', -1), float('epsilon', 1e-12)], output);
  const linear = (scope: string, x: string, param: string, inDim: number, outDim: number) => {
    const mm = add(`${scope}/MatMul`, 'MatMul', [x, weight(`${param}.weight`, [inDim, outDim])]);
    return add(`${scope}/Add`, 'Add', [filled(`${param}.bias`, outDim, 0), mm]);
  };

  // Embeddings: word + position (rows 0..seq-1 of the table) + token type, then LayerNorm.
  const words = add('/embeddings/word_embeddings/Gather', 'Gather', [weight('embeddings.word_embeddings.weight', [d.vocab, d.hidden]), 'input_ids']);
  const types = add('/embeddings/token_type_embeddings/Gather', 'Gather', [weight('embeddings.token_type_embeddings.weight', [2, d.hidden]), 'token_type_ids']);
  const shape = add('/embeddings/Shape', 'Shape', ['input_ids']);
  const seq = add('/embeddings/Gather', 'Gather', [shape, idx1], [int('axis', 0)]);
  const seq1 = add('/embeddings/Unsqueeze', 'Unsqueeze', [seq, axis0]);
  const positions = add('/embeddings/position_embeddings/Slice', 'Slice', [weight('embeddings.position_embeddings.weight', [d.maxPos, d.hidden]), zero1, seq1, axis0]);
  const sum1 = add('/embeddings/Add', 'Add', [words, types]);
  const sum2 = add('/embeddings/Add_1', 'Add', [sum1, positions]);
  let hidden = layerNorm('/embeddings/LayerNorm/LayerNormalization', sum2, 'embeddings.LayerNorm');

  // Extended attention mask [batch, 1, 1, seq]: 0 where attended, -1e4 where padded.
  const m1 = add('/Unsqueeze', 'Unsqueeze', ['attention_mask', axis1]);
  const m2 = add('/Unsqueeze_1', 'Unsqueeze', [m1, axis2]);
  const mf = add('/Cast', 'Cast', [m2], [int('to', DT.FLOAT)]);
  const inv = add('/Sub', 'Sub', [one, mf]);
  const mask = add('/Mul', 'Mul', [inv, negBig]);

  for (let l = 0; l < d.layers; l++) {
    const p = `/encoder/layer.${l}`;
    const param = `encoder.layer.${l}`;
    const self = `${p}/attention/self`;
    const heads = (name: string, perm: number[], suffix: string) => {
      const x = linear(`${self}/${name}`, hidden, `${param}.attention.self.${name}`, d.hidden, d.hidden);
      const r = add(`${self}/Reshape${suffix}`, 'Reshape', [x, splitHeads]);
      return add(`${self}/Transpose${suffix}`, 'Transpose', [r], [ints('perm', perm)]);
    };
    const q = heads('query', [0, 2, 1, 3], '_2');
    const kT = heads('key', [0, 2, 3, 1], '');
    const v = heads('value', [0, 2, 1, 3], '_1');
    const scores = add(`${self}/MatMul`, 'MatMul', [q, kT]);
    const scaled = add(`${self}/Div`, 'Div', [scores, sqrtD]);
    const masked = add(`${self}/Add`, 'Add', [scaled, mask]);
    const probs = add(`${self}/Softmax`, 'Softmax', [masked], [int('axis', -1)]);
    const ctx = add(`${self}/MatMul_1`, 'MatMul', [probs, v]);
    const ctxT = add(`${self}/Transpose_3`, 'Transpose', [ctx], [ints('perm', [0, 2, 1, 3])]);
    const merged = add(`${self}/Reshape_3`, 'Reshape', [ctxT, mergeHeads]);
    const attnOut = linear(`${p}/attention/output/dense`, merged, `${param}.attention.output.dense`, d.hidden, d.hidden);
    const res1 = add(`${p}/attention/output/Add`, 'Add', [attnOut, hidden]);
    const h1 = layerNorm(`${p}/attention/output/LayerNorm/LayerNormalization`, res1, `${param}.attention.output.LayerNorm`);
    // GELU (erf form): x * 0.5 * (1 + erf(x / sqrt 2)).
    const inter = linear(`${p}/intermediate/dense`, h1, `${param}.intermediate.dense`, d.hidden, d.intermediate);
    const g1 = add(`${p}/intermediate/intermediate_act_fn/Div`, 'Div', [inter, sqrt2]);
    const g2 = add(`${p}/intermediate/intermediate_act_fn/Erf`, 'Erf', [g1]);
    const g3 = add(`${p}/intermediate/intermediate_act_fn/Add`, 'Add', [g2, one]);
    const g4 = add(`${p}/intermediate/intermediate_act_fn/Mul`, 'Mul', [inter, g3]);
    const gelu = add(`${p}/intermediate/intermediate_act_fn/Mul_1`, 'Mul', [g4, half]);
    const out = linear(`${p}/output/dense`, gelu, `${param}.output.dense`, d.intermediate, d.hidden);
    const res2 = add(`${p}/output/Add`, 'Add', [out, h1]);
    const last = l === d.layers - 1;
    hidden = layerNorm(`${p}/output/LayerNorm/LayerNormalization`, res2, `${param}.output.LayerNorm`, last ? 'last_hidden_state' : undefined);
  }

  const tokens = (name: string): onnx.IValueInfoProto => ({
    name, type: { tensorType: { elemType: DT.INT64, shape: { dim: [{ dimParam: 'batch_size' }, { dimParam: 'sequence_length' }] } } },
  });
  return {
    irVersion: 8,
    producerName: 'attention-lens bench/make-bert-base.ts',
    opsetImport: [{ domain: '', version: 17 }],
    graph: {
      name: 'bert-base-random',
      node: nodes,
      initializer: initializers,
      input: [tokens('input_ids'), tokens('attention_mask'), tokens('token_type_ids')],
      output: [{
        name: 'last_hidden_state',
        type: { tensorType: { elemType: DT.FLOAT, shape: { dim: [{ dimParam: 'batch_size' }, { dimParam: 'sequence_length' }, { dimValue: d.hidden }] } } },
      }],
    },
  };
}

function writeFolder(out: string, d: Dims): { modelPath: string; buildMs: number; encodeMs: number } {
  fs.mkdirSync(path.join(out, 'onnx'), { recursive: true });
  const config = {
    model_type: 'bert',
    architectures: ['BertModel'],
    vocab_size: d.vocab,
    hidden_size: d.hidden,
    num_hidden_layers: d.layers,
    num_attention_heads: d.heads,
    intermediate_size: d.intermediate,
    hidden_act: 'gelu',
    hidden_dropout_prob: 0.1,
    attention_probs_dropout_prob: 0.1,
    max_position_embeddings: d.maxPos,
    type_vocab_size: 2,
    initializer_range: 0.02,
    layer_norm_eps: 1e-12,
    pad_token_id: 0,
    position_embedding_type: 'absolute',
    _comment: `random weights (seed ${d.seed}) from bench/make-bert-base.ts; not a trained model`,
  };
  fs.writeFileSync(path.join(out, 'config.json'), JSON.stringify(config, null, 2) + '\n');
  // Read + write rather than copyFile: the shared originals are read-only and copyFile keeps the mode.
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) {
    fs.rmSync(path.join(out, f), { force: true });
    fs.writeFileSync(path.join(out, f), fs.readFileSync(path.join(TOKENIZER_DIR, f)));
  }

  let t = performance.now();
  const model = buildModel(d);
  const buildMs = performance.now() - t;
  t = performance.now();
  const bytes = onnx.ModelProto.encode(model).finish();
  const encodeMs = performance.now() - t;
  const modelPath = path.join(out, 'onnx/model.onnx');
  fs.writeFileSync(modelPath, bytes);
  return { modelPath, buildMs, encodeMs };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Median forward times of two sessions, runs interleaved so background load hits both alike. */
async function timePair(a: ort.InferenceSession, b: ort.InferenceSession, feeds: Record<string, ort.Tensor>, n: number) {
  for (let i = 0; i < 2; i++) {
    await a.run(feeds); // warm-up
    await b.run(feeds);
  }
  const ta: number[] = [];
  const tb: number[] = [];
  let ra: ort.InferenceSession.OnnxValueMapType = {};
  let rb: ort.InferenceSession.OnnxValueMapType = {};
  for (let i = 0; i < n; i++) {
    let t = performance.now();
    ra = await a.run(feeds);
    ta.push(performance.now() - t);
    t = performance.now();
    rb = await b.run(feeds);
    tb.push(performance.now() - t);
  }
  return { a: { ms: median(ta), result: ra }, b: { ms: median(tb), result: rb } };
}

async function verify(modelPath: string, d: Dims, T: number) {
  const report: Record<string, unknown> = { fileBytes: fs.statSync(modelPath).size };

  // The rewrite itself, in memory: read, scan + splice (chunks), concatenation.
  let t = performance.now();
  const bytes = fs.readFileSync(modelPath);
  report.readMs = performance.now() - t;
  t = performance.now();
  const exposed = exposeAttentionChunks(bytes, 'bert-base-random');
  report.exposeMs = performance.now() - t;
  t = performance.now();
  Buffer.concat(exposed.chunks, exposed.length);
  report.concatMs = performance.now() - t;
  report.attentionOutputs = exposed.attentionOutputs.length;

  // Through the on-disk cache: miss (hash + read + rewrite + write), hit via the path pre-key, hit via hashing.
  const cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'attention-lens-bench-'));
  try {
    const miss = await loadExposedGraph(modelPath, cacheDir, 'bert-base-random');
    const hit = await loadExposedGraph(modelPath, cacheDir, 'bert-base-random');
    fs.rmSync(path.join(cacheDir, 'exposed', 'by-path'), { recursive: true, force: true });
    const hashedHit = await loadExposedGraph(modelPath, cacheDir, 'bert-base-random');
    if (miss.cached || !hit.cached || !hashedHit.cached) throw new Error('unexpected cache behaviour');
    report.cacheMissMs = miss.rewriteMs;
    report.cacheHitPreKeyMs = hit.rewriteMs;
    report.cacheHitHashMs = hashedHit.rewriteMs;
    report.exposedFileBytes = fs.statSync(miss.path).size;

    const opts: ort.InferenceSession.SessionOptions = { graphOptimizationLevel: 'all' };
    t = performance.now();
    const plain = await ort.InferenceSession.create(modelPath, opts);
    report.sessionPlainMs = performance.now() - t;
    t = performance.now();
    const rewritten = await ort.InferenceSession.create(miss.path, opts);
    report.sessionRewrittenMs = performance.now() - t;

    const ids = Array.from({ length: T }, (_, i) => (i === 0 ? 101 : i === T - 1 ? 102 : 1000 + ((i * 7919) % (d.vocab - 1000))));
    const tensor = (v: number[]) => new ort.Tensor('int64', BigInt64Array.from(v.map(BigInt)), [1, T]);
    const feeds = { input_ids: tensor(ids), attention_mask: tensor(ids.map(() => 1)), token_type_ids: tensor(ids.map(() => 0)) };
    const { a, b } = await timePair(plain, rewritten, feeds, 20);
    report.T = T;
    report.forwardPlainMs = a.ms;
    report.forwardRewrittenMs = b.ms;

    // Checks: same hidden states, layers x [1, heads, T, T] probabilities whose rows sum to 1.
    const ha = a.result.last_hidden_state.data as Float32Array;
    const hb = b.result.last_hidden_state.data as Float32Array;
    if (ha.length !== T * d.hidden || ha.some((x, i) => x !== hb[i] || !Number.isFinite(x))) throw new Error('last_hidden_state differs or is not finite');
    if (miss.attentionOutputs.length !== d.layers) throw new Error(`expected ${d.layers} attention outputs, got ${miss.attentionOutputs.length}`);
    for (const name of miss.attentionOutputs) {
      const out = b.result[name];
      const dims = [...out.dims].join(',');
      if (dims !== `1,${d.heads},${T},${T}`) throw new Error(`${name} has shape [${dims}]`);
      const p = out.data as Float32Array;
      for (let r = 0; r < d.heads * T; r++) {
        let s = 0;
        for (let k = 0; k < T; k++) s += p[r * T + k];
        if (Math.abs(s - 1) > 1e-4) throw new Error(`${name}: row ${r} sums to ${s}`);
      }
    }
    report.attentionShape = [1, d.heads, T, T];
    await Promise.all([plain.release(), rewritten.release()]);
  } finally {
    fs.rmSync(cacheDir, { recursive: true, force: true });
  }
  return report;
}

async function main() {
  const { dims, out, verify: doVerify, T } = parseArgs(process.argv.slice(2));
  const { modelPath, buildMs, encodeMs } = writeFolder(out, dims);
  const size = fs.statSync(modelPath).size;
  console.log(`wrote ${out} (onnx/model.onnx: ${(size / 2 ** 20).toFixed(1)} MiB; weights ${buildMs.toFixed(0)} ms, encode ${encodeMs.toFixed(0)} ms)`);
  if (!doVerify) return;
  const report = await verify(modelPath, dims, Math.min(T, dims.maxPos));
  const fmt = (v: unknown) => (typeof v === 'number' && !Number.isInteger(v) ? Number(v.toFixed(1)) : v);
  console.log(JSON.stringify(Object.fromEntries(Object.entries(report).map(([k, v]) => [k, fmt(v)])), null, 2));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
