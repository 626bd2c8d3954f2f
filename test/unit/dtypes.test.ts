// The dtypes of transformers.js exports on the real stories260K: fp16, q4 and q4f16 copies made in
// memory (helpers/convertModel.ts) load by their file names and give the reference attention within
// what each precision allows; a folder without the dtype asked for says which ones it has.
import { test, describe, before, after } from 'node:test';
import * as fs from 'node:fs';
import * as path from 'node:path';
import assert from 'node:assert/strict';
import { AttentionEngine } from '../../src/engine/engine';
import { onnxCandidates, resolveModel } from '../../src/engine/hub';
import { DTYPES, EngineError, type DtypeChoice } from '../../src/engine/types';
import * as ort from 'onnxruntime-node';
import { encodeF16, f16BitsToNumber } from '../../src/analysis/f16';
import { quantize4, toFloat16, toQ4 } from './helpers/convertModel';
import { T, encodeModel, floatTensor, node, valueInfo } from './helpers/onnx-build';
import { STORIES, STORIES_GQA, tempDirs } from './helpers/shared';

const newDir = tempDirs('attention-lens-dtypes-');

/** The unfused stories260K's Softmax outputs for two texts (kept in the stories260K-gqa folder), [layers, heads, q, k]. */
const cases = (JSON.parse(fs.readFileSync(path.join(STORIES_GQA, 'reference/cases.json'), 'utf8')) as Array<{ name: string; text: string; input_ids: number[][]; file: string; shape: number[] }>).map((c) => {
  const bytes = fs.readFileSync(path.join(STORIES_GQA, 'reference', c.file));
  return { ...c, reference: new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)) };
});

/** A stories260K folder (config and tokenizer copied) holding the given ONNX files. */
function storiesFolder(onnxFiles: Record<string, Uint8Array>): string {
  const folder = newDir();
  for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json']) fs.copyFileSync(path.join(STORIES, f), path.join(folder, f));
  for (const [name, bytes] of Object.entries(onnxFiles)) {
    fs.mkdirSync(path.dirname(path.join(folder, name)), { recursive: true });
    fs.writeFileSync(path.join(folder, name), bytes);
  }
  return folder;
}

interface Agreement {
  maxAbs: number;
  meanAbs: number;
  /** Share of (layer, head, query) rows whose most attended key is the reference's. */
  argmax: number;
  /** Largest |row sum - 1|. */
  rowSum: number;
}

/** How attention of one batch row (a [H, T, T] array per layer) agrees with a [L, H, T, T] reference. */
function agreement(layers: ArrayLike<number>[], reference: Float32Array, T: number): Agreement {
  let maxAbs = 0;
  let sumAbs = 0;
  let same = 0;
  let rows = 0;
  let rowSum = 0;
  layers.forEach((a, l) => {
    const base = l * a.length;
    for (let r = 0; r < a.length / T; r++) {
      let sum = 0;
      let best = 0;
      let bestRef = 0;
      for (let k = 0; k < T; k++) {
        const v = a[r * T + k];
        const ref = reference[base + r * T + k];
        const d = Math.abs(v - ref);
        maxAbs = Math.max(maxAbs, d);
        sumAbs += d;
        sum += v;
        if (v > a[r * T + best]) best = k;
        if (ref > reference[base + r * T + bestRef]) bestRef = k;
      }
      rowSum = Math.max(rowSum, Math.abs(sum - 1));
      if (best === bestRef) same++;
      rows++;
    }
  });
  return { maxAbs, meanAbs: sumAbs / (rows * T), argmax: same / rows, rowSum };
}

/**
 * Mean |reference - uniform causal attention| (every key up to the query weighted alike): what a
 * model that learned nothing would score, the yardstick for the 4-bit dtypes.
 */
function uniformMeanAbs(reference: Float32Array, T: number): number {
  let sum = 0;
  for (let r = 0; r < reference.length / T; r++) {
    const q = r % T;
    for (let k = 0; k < T; k++) sum += Math.abs(reference[r * T + k] - (k <= q ? 1 / (q + 1) : 0));
  }
  return sum / reference.length;
}

const fmt = (a: Agreement) => `max ${a.maxAbs.toExponential(2)}, mean ${a.meanAbs.toExponential(2)}, argmax ${(100 * a.argmax).toFixed(1)}%, row sum ${a.rowSum.toExponential(1)}`;

describe('the test converters match what ONNX Runtime computes', () => {
  // One MatMul, x [2, K] @ w [K, N], with K = 40: one full block of 32 and one padded with zeros.
  const [K, N] = [40, 3];
  const w = Float32Array.from({ length: K * N }, (_, i) => Math.sin(i * 1.7) * (1 + (i % 7)));
  const x = Float32Array.from({ length: 2 * K }, (_, i) => Math.cos(i * 0.3));
  const model = encodeModel({
    nodes: [node({ op: 'MatMul', inputs: ['x', 'w'], outputs: ['y'] })],
    inputs: [valueInfo('x', T.FLOAT, [2, K])],
    outputs: [valueInfo('y', T.FLOAT, [2, N])],
    initializers: [floatTensor('w', [K, N], w)],
  });

  for (const symmetric of [true, false]) {
    test(`toQ4 (${symmetric ? 'symmetric' : 'with zero points'}): MatMulNBits gives x @ the dequantized weights, which stay within half a step of w`, async () => {
      const q = quantize4(w, K, N, 32, symmetric);
      const blocks = Math.ceil(K / 32);
      const deq = new Float32Array(K * N);
      for (let n = 0; n < N; n++)
        for (let k = 0; k < K; k++) {
          const b = Math.floor(k / 32);
          const i = k % 32;
          const code = (q.packed[(n * blocks + b) * 16 + (i >> 1)] >> (i & 1 ? 4 : 0)) & 15;
          const zp = q.zeroPoints ? (q.zeroPoints[n * Math.ceil(blocks / 2) + (b >> 1)] >> (b & 1 ? 4 : 0)) & 15 : 8;
          const scale = q.scales[n * blocks + b];
          deq[k * N + n] = (code - zp) * scale;
          assert.ok(Math.abs(deq[k * N + n] - w[k * N + n]) <= Math.abs(scale) / 2 + 1e-6, `w[${k}, ${n}]`);
        }
      const session = await ort.InferenceSession.create(toQ4(model, { blockSize: 32, symmetric }));
      const y = (await session.run({ x: new ort.Tensor('float32', x, [2, K]) })).y.data as Float32Array;
      for (let m = 0; m < 2; m++)
        for (let n = 0; n < N; n++) {
          let expected = 0;
          for (let k = 0; k < K; k++) expected += x[m * K + k] * deq[k * N + n];
          assert.ok(Math.abs(y[m * N + n] - expected) <= 1e-4 * Math.max(1, Math.abs(expected)), `y[${m}, ${n}] = ${y[m * N + n]}, expected ${expected}`);
        }
      await session.release();
    });
  }

  test('toFloat16 + toQ4 (q4f16): float16 inputs, scales and outputs run on the CPU provider', async () => {
    const session = await ort.InferenceSession.create(toQ4(toFloat16(model), { blockSize: 32 }));
    const y = (await session.run({ x: new ort.Tensor('float16', encodeF16(x), [2, K]) })).y;
    assert.equal(y.type, 'float16');
    const exact = Array.from({ length: 2 * N }, (_, i) => x.slice(Math.floor(i / N) * K, Math.floor(i / N) * K + K).reduce((s, xv, k) => s + xv * w[k * N + (i % N)], 0));
    const got = Array.from(y.data as Uint16Array, f16BitsToNumber);
    // 4-bit weights: within a few percent of the exact float32 product's scale.
    const scale = Math.max(...exact.map(Math.abs));
    got.forEach((v, i) => assert.ok(Math.abs(v - exact[i]) <= 0.1 * scale, `y[${i}] = ${v}, exact ${exact[i]}`));
    await session.release();
  });
});

describe('dtype file names', () => {
  test('each dtype reads the file transformers.js names for it, then the decoder variants', () => {
    const suffix: Record<DtypeChoice, string> = { fp32: '', fp16: '_fp16', q8: '_quantized', int8: '_int8', uint8: '_uint8', q4: '_q4', q4f16: '_q4f16', bnb4: '_bnb4' };
    assert.deepEqual([...DTYPES].sort(), Object.keys(suffix).sort());
    for (const d of DTYPES) {
      const s = suffix[d];
      assert.deepEqual(onnxCandidates(d), [`onnx/model${s}.onnx`, `onnx/decoder_model${s}.onnx`, `onnx/decoder_model_merged${s}.onnx`]);
    }
  });

  test('a merged decoder is found under its dtype name', async () => {
    const folder = storiesFolder({ 'onnx/decoder_model_merged_q4f16.onnx': new Uint8Array(1) });
    const r = await resolveModel(folder, { cacheDir: newDir(), dtype: 'q4f16', offline: true });
    assert.equal(r.onnxFile, 'onnx/decoder_model_merged_q4f16.onnx');
  });

  test('a folder without the dtype asked for names those it has', async () => {
    const folder = storiesFolder({ 'onnx/model_fp16.onnx': new Uint8Array(1), 'onnx/model_q4.onnx': new Uint8Array(1), 'onnx/decoder_model_merged_q4f16.onnx': new Uint8Array(1) });
    await assert.rejects(resolveModel(folder, { cacheDir: newDir(), dtype: 'fp32', offline: true }), (e: unknown) => {
      assert.ok(e instanceof EngineError && e.code === 'MODEL_NOT_FOUND');
      assert.match(e.message, /No fp32 ONNX file/);
      assert.match(e.message, /fp16 \(onnx\/model_fp16\.onnx\), q4 \(onnx\/model_q4\.onnx\), q4f16 \(onnx\/decoder_model_merged_q4f16\.onnx\)/);
      assert.match(e.message, /Try dtype fp16, q4 or q4f16\./);
      return true;
    });
  });

  test('ONNX files outside the transformers.js layout are named in the error', async () => {
    // onnxruntime-genai's builder puts model.onnx (and model.onnx.data) at the top of the folder.
    const folder = storiesFolder({ 'model.onnx': new Uint8Array(1), 'onnx/encoder.onnx': new Uint8Array(1) });
    await assert.rejects(resolveModel(folder, { cacheDir: newDir(), dtype: 'q4', offline: true }), (e: unknown) => {
      assert.ok(e instanceof EngineError && e.code === 'MODEL_NOT_FOUND');
      assert.match(e.message, /Its ONNX files \(model\.onnx, onnx\/encoder\.onnx\) are not named as transformers\.js names them/);
      return true;
    });
  });
});

describe('stories260K in fp16, q4 and q4f16 against the fp32 reference attention', () => {
  const source = fs.readFileSync(path.join(STORIES, 'onnx/model.onnx'));
  const half = toFloat16(source);
  let folder = '';
  const engines = new Map<DtypeChoice, AttentionEngine>();
  const cacheDir = newDir();
  const engine = (dtype: DtypeChoice) => {
    if (!engines.has(dtype)) engines.set(dtype, new AttentionEngine({ cacheDir, runtime: 'cpu', offline: true, dtype }));
    return engines.get(dtype)!;
  };
  before(() => {
    folder = storiesFolder({
      'onnx/model.onnx': source,
      'onnx/model_fp16.onnx': half,
      // Symmetric blocks of 32, as transformers.js' q4 files are made; q4f16 with zero points, to cover both layouts.
      'onnx/model_q4.onnx': toQ4(source, { blockSize: 32 }),
      'onnx/model_q4f16.onnx': toQ4(half, { blockSize: 32, symmetric: false }),
    });
  });
  after(async () => {
    for (const e of engines.values()) await e.dispose();
  });

  /** Attention of each reference case under a dtype, with its agreement with the reference. */
  async function run(dtype: DtypeChoice) {
    const e = engine(dtype);
    const info = await e.load(folder);
    return {
      info,
      results: await Promise.all(
        cases.map(async (c) => {
          const [row] = await e.forward({ input_ids: c.input_ids });
          return { c, row, a: agreement(row, c.reference, c.shape[3]) };
        }),
      ),
    };
  }

  test('fp32 (onnx/model.onnx) equals the reference to 1e-4: the baseline the others are measured against', async (t) => {
    const { info, results } = await run('fp32');
    assert.equal(info.file, 'onnx/model.onnx');
    for (const { c, a } of results) {
      t.diagnostic(`${c.name}: ${fmt(a)}`);
      assert.ok(a.maxAbs <= 1e-4, `${c.name}: ${fmt(a)}`);
    }
  });

  test('fp16 (onnx/model_fp16.onnx): float16 weights and arithmetic stay within 1e-2 (mean 1e-3) of fp32', async (t) => {
    const { info, results } = await run('fp16');
    assert.equal(info.file, 'onnx/model_fp16.onnx');
    assert.deepEqual([info.layers, info.heads, info.kvHeads], [5, 8, 4]);
    for (const { c, row, a } of results) {
      t.diagnostic(`${c.name}: ${fmt(a)}`);
      assert.ok(row.every((l) => l instanceof Float32Array), 'float32 attention by default, decoded from the graph\'s halves');
      assert.ok(a.maxAbs <= 1e-2 && a.meanAbs <= 1e-3, `${c.name}: ${fmt(a)}`);
      assert.ok(a.rowSum <= 5e-3, `${c.name}: ${fmt(a)}`);
      assert.ok(a.argmax >= 0.98, `${c.name}: ${fmt(a)}`);
    }
  });

  for (const [dtype, file] of [['q4', 'onnx/model_q4.onnx'], ['q4f16', 'onnx/model_q4f16.onnx']] as const) {
    // 4 bits in blocks of 32 is coarse for a model this small (hidden size 64: two blocks per column),
    // so single weights can move a lot (max abs differences reach ~0.5-0.7 here). What must hold: rows
    // are distributions, the mean difference is a small fraction of a learned-nothing model's (measured:
    // ~1/5), and most rows attend most to the same key (measured: 82-86%; always-BOS or always-self
    // would score at most 27%).
    test(`${dtype} (${file}): 4-bit MatMulNBits weights change the function; the attention stays close and mostly picks the same keys`, async (t) => {
      const { info, results } = await run(dtype);
      assert.equal(info.file, file);
      for (const { c, a } of results) {
        const uniform = uniformMeanAbs(c.reference, c.shape[3]);
        t.diagnostic(`${c.name}: ${fmt(a)}; uniform attention's mean ${uniform.toExponential(2)}`);
        assert.ok(a.meanAbs > 0, 'the quantized graph really differs');
        assert.ok(a.meanAbs <= uniform / 3, `${c.name}: ${fmt(a)}`);
        assert.ok(a.rowSum <= 5e-3, `${c.name}: ${fmt(a)}`);
        assert.ok(a.argmax >= 0.75, `${c.name}: ${fmt(a)}`);
      }
    });
  }

  test('attentionPrecision float16 on the fp16 graph: the Softmax is already half, handed out as is', async () => {
    const halfOut = new AttentionEngine({ cacheDir, runtime: 'cpu', offline: true, dtype: 'fp16', attentionPrecision: 'float16' });
    try {
      await halfOut.load(folder);
      const [full] = await engine('fp16').forward({ input_ids: cases[0].input_ids });
      const [bits] = await halfOut.forward({ input_ids: cases[0].input_ids });
      for (let l = 0; l < bits.length; l++) {
        assert.ok(bits[l] instanceof Uint16Array, 'half-precision bit patterns');
        // The float32 result is those halves decoded, so encoding it gives the same bits.
        assert.deepEqual(bits[l], encodeF16(full[l] as Float32Array), `layer ${l}`);
      }
      const r = await halfOut.analyze(folder, cases[0].text, { encoding: 'f16' });
      assert.equal(r.encoding, 'f16');
      assert.deepEqual(r.shape, [5, 8, cases[0].shape[2], cases[0].shape[3]]);
      assert.deepEqual(r.tokens.map((tk) => tk.id), cases[0].input_ids[0]);
    } finally {
      await halfOut.dispose();
    }
  });
});
