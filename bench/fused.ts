// Fused attention (issue 12, item 5): plain vs attention-exposed forward at T = 128 and 512 on a
// Qwen2.5-0.5B-shaped decoder in the onnxruntime-genai builder's layout, whose attention is the fused
// com.microsoft.GroupQueryAttention op (bench/make-qwen-gqa.ts; generated on first use, about 2 GB,
// gitignored). fp32 gives `T128`/`T512`, the int4 MatMulNBits copy gives `q4.T128`/`q4.T512`.
//
// Per precision, sessions timed interleaved in this process with alternating order (as the engine
// section does), so drift on this shared machine hits all alike:
//   plain     the model as written, fetching logits;
//   exposed   the graph the extension runs: loadExposedGraph(..., { float16: true }), fetching logits and
//             every attention output (null, with `exposed_error`, when the rewrite refuses the model).
// A reference rewrite, independent of exposeAttention, checks it: every GroupQueryAttention gets
// qk_output=2 and its 4th output (output_qk, the probabilities [B, heads, S, total_S]) cast to float16 as
// a graph output (`qk2_f16`). `checks` per size: logits vs plain (max abs diff), the probabilities' row sums
// and causality, and whether the extension's outputs equal the reference's bit for bit. The reference is
// timed too when `exposed` is missing or FUSED_REFERENCE=1, else released before the timing.
// Plus `op_only`: one GroupQueryAttention node of this shape alone, with and without qk_output=2, since
// onnxruntime leaves its flash-attention path when the probabilities are asked for.
//
// Environment: FUSED_PRECISIONS=fp32,q4 (default both), FUSED_RUNS=<pairs per size> (default 9 at T=128,
// 8 at T=512), FUSED_THREADS=<intra-op threads> (default: onnxruntime's choice, same for every session),
// FUSED_REFERENCE=1 (time the reference rewrite beside `exposed`).
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { onnx } from 'onnx-proto';
import * as ort from 'onnxruntime-node';
import { loadExposedGraph } from '../src/engine/onnx/exposedCache';
import { f16BitsToNumber } from '../src/analysis/f16';
import { ONNX_FILE, QWEN_05B, QWEN_GQA_DIR, qwenFeeds, type Precision, type QwenDims } from './make-qwen-gqa';
import { ROOT, median, round, table } from './util';

const SIZES = [128, 512];
const DEFAULT_RUNS: Record<number, number> = { 128: 9, 512: 8 };
const DT = onnx.TensorProto.DataType;
const AT = onnx.AttributeProto.AttributeType;
const LABEL = 'qwen-gqa-random';

/** The generated model folder; generates it (both precisions) in a child process if a file is missing. */
export function ensureQwenGqa(): string {
  const missing = Object.values(ONNX_FILE).some((f) => !fs.existsSync(path.join(QWEN_GQA_DIR, f)) || !fs.existsSync(path.join(QWEN_GQA_DIR, `${f}.data`)));
  if (missing) {
    console.log('Generating the Qwen2.5-0.5B-shaped random GQA model (once)…');
    execFileSync(process.execPath, ['--import', 'tsx', path.join(ROOT, 'bench/make-qwen-gqa.ts'), QWEN_GQA_DIR, '--no-verify'], { stdio: 'inherit', cwd: ROOT });
  }
  return QWEN_GQA_DIR;
}

function readDims(dir: string): QwenDims {
  const c = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
  return {
    ...QWEN_05B,
    layers: c.num_hidden_layers, heads: c.num_attention_heads, kvHeads: c.num_key_value_heads, hidden: c.hidden_size,
    intermediate: c.intermediate_size, headSize: c.head_dim, vocab: c.vocab_size, maxPos: c.max_position_embeddings,
  };
}

/**
 * The reference rewrite: qk_output=2 on every GroupQueryAttention, its output_qk cast to float16 right after
 * it, the casts as graph outputs. Written into `dir` next to a hard link of the external data file.
 */
function writeQk2Rewrite(source: string, dir: string): { path: string; outputs: string[] } {
  const model = onnx.ModelProto.decode(fs.readFileSync(source));
  const graph = model.graph!;
  const nodes: onnx.INodeProto[] = [];
  const outputs: string[] = [];
  for (const n of graph.node!) {
    nodes.push(n);
    if (n.opType !== 'GroupQueryAttention' || n.domain !== 'com.microsoft') continue;
    const qk = `${n.name}/output_3`;
    const cast = `attn_probs.${outputs.length}.float16`;
    n.attribute = [...(n.attribute ?? []), { name: 'qk_output', i: 2, type: AT.INT }];
    n.output = [...n.output!, qk];
    nodes.push({ name: `${n.name}/output_3/Cast`, opType: 'Cast', input: [qk], output: [cast], attribute: [{ name: 'to', i: DT.FLOAT16, type: AT.INT }], domain: '' });
    graph.output!.push({ name: cast, type: { tensorType: { elemType: DT.FLOAT16 } } });
    outputs.push(cast);
  }
  graph.node = nodes;
  const data = new Set(graph.initializer!.flatMap((t) => (t.externalData ?? []).filter((e) => e.key === 'location').map((e) => e.value!)));
  for (const loc of data) {
    fs.rmSync(path.join(dir, loc), { force: true });
    fs.linkSync(path.join(path.dirname(source), loc), path.join(dir, loc));
  }
  const out = path.join(dir, path.basename(source));
  fs.writeFileSync(out, onnx.ModelProto.encode(model).finish());
  return { path: out, outputs };
}

const rssMiB = () => round(process.memoryUsage().rss / 2 ** 20, 0);
// Each session has its own thread pool, whose threads spin for a while after a run: on two cores they
// would slow whichever session runs next. Let them settle first.
const settle = () => new Promise((r) => setTimeout(r, 100));

/** Largest |row sum - 1| over every 37th query row of each output, and whether shapes are [1, heads, T, T]. */
function checkProbs(result: ort.InferenceSession.OnnxValueMapType, names: string[], heads: number, T: number) {
  let worst = 0;
  for (const name of names) {
    const t = result[name];
    if ([...t.dims].join() !== `1,${heads},${T},${T}`) throw new Error(`${name} has shape [${t.dims}], expected [1,${heads},${T},${T}]`);
    if (t.type !== 'float16') throw new Error(`${name} is ${t.type}, expected float16`);
    const bits = t.data as Uint16Array;
    for (let r = 0; r < heads * T; r += 37) {
      let s = 0;
      const q = r % T;
      for (let k = 0; k < T; k++) {
        const v = f16BitsToNumber(bits[r * T + k]);
        if (k > q && v !== 0) throw new Error(`${name}: row ${r} attends to a future position ${k}`);
        s += v;
      }
      worst = Math.max(worst, Math.abs(s - 1));
    }
  }
  return worst;
}

async function measurePrecision(dir: string, precision: Precision, d: QwenDims, opts: ort.InferenceSession.SessionOptions, runsOverride: number | null, timeReference: boolean) {
  const source = path.join(dir, ONNX_FILE[precision]);
  const work = fs.mkdtempSync(path.join(path.dirname(dir), `.fused-${precision}-`));
  const out: Record<string, unknown> = {
    file: path.relative(ROOT, source),
    data_mib: round(fs.statSync(`${source}.data`).size / 2 ** 20, 1),
  };
  const sessions: ort.InferenceSession[] = [];
  const open = async (file: string, key: string) => {
    const t0 = performance.now();
    const session = await ort.InferenceSession.create(file, opts);
    out[`session_${key}_ms`] = round(performance.now() - t0, 0);
    sessions.push(session);
    return session;
  };
  try {
    const plain = await open(source, 'plain');
    out.rss_after_plain_mib = rssMiB();

    let exposed: { session: ort.InferenceSession; outputs: string[] } | null = null;
    try {
      const t0 = performance.now();
      const graph = await loadExposedGraph(source, path.join(work, 'cache'), LABEL, { float16: true });
      out.rewrite_ms = round(performance.now() - t0, 0);
      out.attention_outputs = graph.attentionOutputs.length;
      if (graph.attentionOutputs.length !== d.layers) throw new Error(`${graph.attentionOutputs.length} attention outputs, expected ${d.layers}`);
      exposed = { session: await open(graph.path, 'exposed'), outputs: graph.attentionOutputs };
    } catch (e) {
      out.exposed_error = String((e as Error)?.message ?? e);
      console.log(`  exposed (${precision}): not available: ${out.exposed_error}`);
    }

    // The reference rewrite: checked against plain and the extension's outputs; timed only as a stand-in
    // for a missing `exposed`, or when asked (FUSED_REFERENCE=1), else released before the timing.
    fs.mkdirSync(path.join(work, 'qk2'));
    const ref = writeQk2Rewrite(source, path.join(work, 'qk2'));
    const qk2 = await open(ref.path, 'qk2_f16');
    out.rss_all_sessions_mib = rssMiB();
    const maxDiff = (a: ort.Tensor, b: ort.Tensor) => {
      const x = a.data as Float32Array;
      const y = b.data as Float32Array;
      let m = 0;
      for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i] - y[i]));
      return m;
    };
    const checks: Record<number, Record<string, number>> = {};
    for (const T of SIZES) {
      const feeds = qwenFeeds(d, T);
      const p = await plain.run(feeds, ['logits']);
      const logits = p.logits.data as Float32Array;
      if (!logits.every(Number.isFinite)) throw new Error(`${precision}: plain logits are not finite at T=${T}`);
      const r = await qk2.run(feeds, ['logits', ...ref.outputs]);
      const c: Record<string, number> = {
        qk2_f16_logits_max_abs_diff: maxDiff(p.logits, r.logits),
        qk2_f16_row_sum_max_err: checkProbs(r, ref.outputs, d.heads, T),
      };
      if (exposed) {
        const e = await exposed.session.run(feeds, ['logits', ...exposed.outputs]);
        c.exposed_logits_max_abs_diff = maxDiff(p.logits, e.logits);
        c.exposed_row_sum_max_err = checkProbs(e, exposed.outputs, d.heads, T);
        // The extension's outputs against the reference rewrite's, layer by layer (both float16).
        const same = exposed.outputs.every((name, l) => {
          const a = e[name].data as Uint16Array;
          const b = r[ref.outputs[l]].data as Uint16Array;
          return a.length === b.length && a.every((v, i) => v === b[i]);
        });
        c.exposed_equals_qk2_f16 = same ? 1 : 0;
      }
      checks[T] = c;
    }
    const timeQk2 = timeReference || !exposed;
    if (!timeQk2) {
      await qk2.release();
      sessions.splice(sessions.indexOf(qk2), 1);
    }

    const rows: Array<Record<string, string | number>> = [];
    for (const T of SIZES) {
      const feeds = qwenFeeds(d, T);
      const runs: Record<string, () => Promise<unknown>> = { plain: () => plain.run(feeds, ['logits']) };
      if (exposed) {
        const { session, outputs } = exposed;
        runs.exposed = () => session.run(feeds, ['logits', ...outputs]);
      }
      if (timeQk2) runs.qk2_f16 = () => qk2.run(feeds, ['logits', ...ref.outputs]);
      const keys = Object.keys(runs);
      for (const k of keys) await runs[k](); // warm-up
      const n = runsOverride ?? DEFAULT_RUNS[T];
      const times: Record<string, number[]> = Object.fromEntries(keys.map((k) => [k, []]));
      for (let i = 0; i < n; i++) {
        // Interleaved, alternating the order, so drift on a shared machine hits all alike.
        for (const k of i % 2 ? [...keys].reverse() : keys) {
          await settle();
          const t = performance.now();
          await runs[k]();
          times[k].push(performance.now() - t);
        }
      }
      const ms = (k: string) => (times[k] ? round(median(times[k])) : null);
      // Beside the ratio of medians: the median of each adjacent pair's ratio, which cancels drift.
      const pairRatio = (k: string) => (times[k] ? round(median(times[k].map((v, i) => v / times.plain[i])), 3) : null);
      const plainMs = ms('plain')!;
      const exposedMs = ms('exposed');
      const qk2Ms = ms('qk2_f16');
      const entry = {
        plain_ms: plainMs,
        exposed_ms: exposedMs,
        ratio: exposedMs === null ? null : round(exposedMs / plainMs, 3),
        ratio_paired_median: pairRatio('exposed'),
        // Minimum times: this machine is shared, and contention only ever adds time.
        plain_min_ms: round(Math.min(...times.plain)),
        exposed_min_ms: times.exposed ? round(Math.min(...times.exposed)) : null,
        ratio_min: times.exposed ? round(Math.min(...times.exposed) / Math.min(...times.plain), 3) : null,
        ...(qk2Ms === null ? {} : { qk2_f16_ms: qk2Ms, ratio_qk2_f16: round(qk2Ms / plainMs, 3), ratio_qk2_f16_paired_median: pairRatio('qk2_f16') }),
        runs: n,
        times_ms: Object.fromEntries(keys.map((k) => [k, times[k].map((v) => round(v, 0))])),
        checks: checks[T],
        rss_mib: rssMiB(),
      };
      out[`T${T}`] = entry;
      rows.push({
        T, 'plain ms': plainMs, 'exposed ms': exposedMs ?? 'n/a', ratio: entry.ratio ?? 'n/a', 'paired ratio': entry.ratio_paired_median ?? 'n/a', 'ratio of minima': entry.ratio_min ?? 'n/a',
        ...(qk2Ms === null ? {} : { 'reference qk_output=2 + f16: ms / ratio': `${qk2Ms} / ${entry.ratio_qk2_f16}` }),
        pairs: n,
      });
    }
    table(`fused GQA, ${precision}${out.exposed_error ? ' (exposed: not available)' : ''}`, rows);
  } finally {
    for (const s of sessions) await s.release();
    fs.rmSync(work, { recursive: true, force: true });
  }
  return out;
}

/** One GroupQueryAttention node of the model's shape (no past), as plain and with qk_output=2. */
function gqaOnlyModel(d: QwenDims, qkOutput: number, maxPos: number): Uint8Array {
  const half = d.headSize / 2;
  const cos = new Float32Array(maxPos * half);
  const sin = new Float32Array(maxPos * half);
  for (let i = 0; i < half; i++) {
    for (let p = 0; p < maxPos; p++) {
      const a = p / Math.pow(1e6, (2 * i) / d.headSize);
      cos[p * half + i] = Math.cos(a);
      sin[p * half + i] = Math.sin(a);
    }
  }
  const f32 = (name: string, data: Float32Array): onnx.ITensorProto => ({ name, dims: [maxPos, half], dataType: DT.FLOAT, rawData: new Uint8Array(data.buffer) });
  const vi = (name: string, elemType: number, dims: (string | number)[]): onnx.IValueInfoProto => ({
    name, type: { tensorType: { elemType, shape: { dim: dims.map((x) => (typeof x === 'number' ? { dimValue: x } : { dimParam: x })) } } },
  });
  const attrs: onnx.IAttributeProto[] = [
    { name: 'do_rotary', i: 1, type: AT.INT }, { name: 'kv_num_heads', i: d.kvHeads, type: AT.INT }, { name: 'local_window_size', i: -1, type: AT.INT },
    { name: 'num_heads', i: d.heads, type: AT.INT }, { name: 'rotary_interleaved', i: 0, type: AT.INT }, { name: 'scale', f: 1 / Math.sqrt(d.headSize), type: AT.FLOAT },
    { name: 'softcap', f: 0, type: AT.FLOAT },
  ];
  if (qkOutput) attrs.push({ name: 'qk_output', i: qkOutput, type: AT.INT });
  const outputs = ['out', 'present_key', 'present_value', ...(qkOutput ? ['output_qk'] : [])];
  const qkv = (d.heads + 2 * d.kvHeads) * d.headSize;
  return onnx.ModelProto.encode({
    irVersion: 10,
    producerName: 'attention-lens bench/fused.ts op_only',
    opsetImport: [{ domain: '', version: 21 }, { domain: 'com.microsoft', version: 1 }],
    graph: {
      name: 'gqa-only',
      node: [{
        name: 'GroupQueryAttention', opType: 'GroupQueryAttention', domain: 'com.microsoft', attribute: attrs, output: outputs,
        input: ['qkv', '', '', 'past_key', 'past_value', 'seqlens_k', 'total_sequence_length', 'cos_cache', 'sin_cache'],
      }],
      initializer: [f32('cos_cache', cos), f32('sin_cache', sin)],
      input: [
        vi('qkv', DT.FLOAT, [1, 'S', qkv]), vi('past_key', DT.FLOAT, [1, d.kvHeads, 'P', d.headSize]), vi('past_value', DT.FLOAT, [1, d.kvHeads, 'P', d.headSize]),
        vi('seqlens_k', DT.INT32, [1]), vi('total_sequence_length', DT.INT32, []),
      ],
      output: [
        vi('out', DT.FLOAT, [1, 'S', d.heads * d.headSize]), vi('present_key', DT.FLOAT, [1, d.kvHeads, 'T', d.headSize]), vi('present_value', DT.FLOAT, [1, d.kvHeads, 'T', d.headSize]),
        ...(qkOutput ? [vi('output_qk', DT.FLOAT, [1, d.heads, 'S', 'T'])] : []),
      ],
    },
  }).finish();
}

/** Median kernel time (ms) of the model's single node over `n` runs after one warm-up, from onnxruntime's profiler. */
async function kernelMs(model: Uint8Array, feeds: Record<string, ort.Tensor>, opts: ort.InferenceSession.SessionOptions, n: number): Promise<number> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'attention-lens-fused-prof-'));
  try {
    const session = await ort.InferenceSession.create(model, { ...opts, enableProfiling: true, profileFilePrefix: path.join(dir, 'p') });
    for (let i = 0; i <= n; i++) await session.run(feeds);
    session.endProfiling();
    await session.release();
    const file = fs.readdirSync(dir).find((f) => f.endsWith('.json'));
    if (!file) throw new Error('onnxruntime wrote no profile');
    const events = JSON.parse(fs.readFileSync(path.join(dir, file), 'utf8')) as Array<{ cat: string; name: string; dur: number }>;
    const kernels = events.filter((e) => e.cat === 'Node' && e.name.endsWith('_kernel_time')).map((e) => e.dur / 1000);
    return median(kernels.slice(1));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * One GroupQueryAttention node of the model's shape (no past), without and with qk_output=2: wall time of a
 * run from JS (interleaved; includes copying the outputs out, 14.7 MB of float32 probabilities at T=512) and
 * the kernel's own time from onnxruntime's profiler (separate sessions).
 */
async function measureOpOnly(d: QwenDims, opts: ort.InferenceSession.SessionOptions) {
  const maxPos = Math.max(...SIZES);
  const models = { plain: gqaOnlyModel(d, 0, maxPos), qk_output_2: gqaOnlyModel(d, 2, maxPos) };
  const plain = await ort.InferenceSession.create(models.plain, opts);
  const qk2 = await ort.InferenceSession.create(models.qk_output_2, opts);
  const out: Record<string, unknown> = {};
  const rows: Array<Record<string, string | number>> = [];
  const n = 15;
  for (const T of SIZES) {
    const qkvSize = (d.heads + 2 * d.kvHeads) * d.headSize;
    let seed = 7;
    const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32 - 0.5);
    const empty = () => new ort.Tensor('float32', new Float32Array(0), [1, d.kvHeads, 0, d.headSize]);
    const feeds = {
      qkv: new ort.Tensor('float32', Float32Array.from({ length: T * qkvSize }, rand), [1, T, qkvSize]),
      past_key: empty(), past_value: empty(),
      seqlens_k: new ort.Tensor('int32', Int32Array.of(T - 1), [1]),
      total_sequence_length: new ort.Tensor('int32', Int32Array.of(T), []),
    };
    const runs: Record<string, () => Promise<unknown>> = { plain: () => plain.run(feeds), qk_output_2: () => qk2.run(feeds) };
    for (const k of Object.keys(runs)) await runs[k]();
    const times: Record<string, number[]> = { plain: [], qk_output_2: [] };
    for (let i = 0; i < n; i++) {
      for (const k of i % 2 ? ['qk_output_2', 'plain'] : ['plain', 'qk_output_2']) {
        await settle();
        const t = performance.now();
        await runs[k]();
        times[k].push(performance.now() - t);
      }
    }
    const kPlain = await kernelMs(models.plain, feeds, opts, 8);
    const kQk2 = await kernelMs(models.qk_output_2, feeds, opts, 8);
    const entry = {
      plain_ms: round(median(times.plain)),
      qk_output_2_ms: round(median(times.qk_output_2)),
      ratio: round(median(times.qk_output_2) / median(times.plain), 2),
      plain_min_ms: round(Math.min(...times.plain)),
      qk_output_2_min_ms: round(Math.min(...times.qk_output_2)),
      kernel_plain_ms: round(kPlain),
      kernel_qk_output_2_ms: round(kQk2),
      kernel_ratio: round(kQk2 / kPlain, 2),
      runs: n,
    };
    out[`T${T}`] = entry;
    rows.push({
      T, 'run ms (median / min)': `${entry.plain_ms} / ${entry.plain_min_ms}`, 'with qk_output=2 (median / min)': `${entry.qk_output_2_ms} / ${entry.qk_output_2_min_ms}`, ratio: entry.ratio,
      'kernel ms': entry.kernel_plain_ms, 'kernel ms, qk_output=2': entry.kernel_qk_output_2_ms, 'kernel ratio': entry.kernel_ratio,
    });
  }
  table('one GroupQueryAttention node alone (no past)', rows);
  await plain.release();
  await qk2.release();
  return out;
}

export async function fusedSection() {
  const dir = ensureQwenGqa();
  const d = readDims(dir);
  const precisions = (process.env.FUSED_PRECISIONS ?? 'fp32,q4').split(',').filter(Boolean) as Precision[];
  const runsOverride = process.env.FUSED_RUNS ? Number(process.env.FUSED_RUNS) : null;
  const threads = process.env.FUSED_THREADS ? Number(process.env.FUSED_THREADS) : undefined;
  const opts: ort.InferenceSession.SessionOptions = { graphOptimizationLevel: 'all', logSeverityLevel: 3, ...(threads ? { intraOpNumThreads: threads } : {}) };
  const result: Record<string, unknown> = {
    model: {
      name: LABEL, layers: d.layers, heads: d.heads, kv_heads: d.kvHeads, hidden: d.hidden, intermediate: d.intermediate, head_size: d.headSize,
      vocab: d.vocab, note: d.vocab === 151936 ? undefined : `vocab ${d.vocab} (Qwen2.5-0.5B: 151936): smaller lm_head and logits`,
      intra_op_threads: threads ?? 'onnxruntime default', cpus: os.cpus().length,
    },
  };
  result.op_only = await measureOpOnly(d, opts);
  for (const p of precisions) {
    const r = await measurePrecision(dir, p, d, opts, runsOverride, process.env.FUSED_REFERENCE === '1');
    if (p === 'fp32') {
      // fp32 is the headline: its sizes at the top level (fused.T128, fused.T512), the rest under fused.fp32.
      const { T128, T512, ...rest } = r;
      Object.assign(result, { T128, T512, fp32: rest });
    } else result[p] = r;
  }
  return result;
}
