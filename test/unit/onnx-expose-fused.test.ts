// exposeAttention on fused attention kernels: GroupQueryAttention, MultiHeadAttention, ONNX Attention
// and com.microsoft.Attention in small seeded models (helpers/fusedModels). Each exposed probability
// tensor is checked against a float64 reference of the same weights and against the exposed Softmax of
// the model's unfused twin; the model's own outputs must not change; attributes whose attention cannot
// be read out exactly are refused by name.
import { test, describe, before } from 'node:test';
import assert from 'node:assert/strict';
import * as ort from 'onnxruntime-node';
import { exposeAttention } from '../../src/engine/onnx/exposeAttention';
import { zeroMaskedKeys } from '../../src/engine/engine';
import { f16BitsToNumber } from '../../src/analysis/f16';
import { EngineError } from '../../src/engine/types';
import { attrFloat, attrInt } from './helpers/onnx-build';
import { Reference, TestModel, gqaPackedRotary, gqaSeparate, mha, msAttention, onnxAttention, pastName, referenceForward, withUnsupported } from './helpers/fusedModels';

// Two rows, the second right-padded: every kernel sees a key padding mask (and, if causal, a causal one).
const IDS = [[3, 17, 42, 8, 25], [9, 1, 33, 0, 0]];
const MASK = [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]];
const B = IDS.length, S = IDS[0].length;

const int64 = (rows: number[][]) => new ort.Tensor('int64', BigInt64Array.from(rows.flat().map(BigInt)), [rows.length, rows[0].length]);

async function run(bytes: Uint8Array, m: TestModel): Promise<ort.InferenceSession.OnnxValueMapType> {
  const session = await ort.InferenceSession.create(Buffer.from(bytes), { logSeverityLevel: 3 });
  const feeds: Record<string, ort.Tensor> = { input_ids: int64(IDS), attention_mask: int64(MASK) };
  // GQA models take a KV cache; an empty one (past length 0) is a prompt run.
  for (let l = 0; l < m.config.layers; l++) {
    for (const kv of ['key', 'value'] as const) {
      const name = pastName(l, kv);
      if (session.inputNames.includes(name)) feeds[name] = new ort.Tensor('float32', new Float32Array(0), [B, m.config.kvHeads, 0, kv === 'key' ? m.config.headSize : m.config.vHeadSize]);
    }
  }
  try {
    return await session.run(feeds);
  } finally {
    await session.release();
  }
}

/** Tensor values as numbers, float16 (raw bits in a Uint16Array) decoded. */
function values(t: ort.Tensor): ArrayLike<number> {
  if (t.type !== 'float16') return t.data as Float32Array;
  const bits = t.data as Uint16Array;
  return Float64Array.from(bits, f16BitsToNumber);
}

/** Max |a - b|, over the entries `where` selects (all by default). */
function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>, where: (i: number) => boolean = () => true): number {
  assert.equal(a.length, b.length, 'tensor sizes differ');
  let worst = 0;
  for (let i = 0; i < a.length; i++) if (where(i)) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return worst;
}

/** In a flat [batch, heads, q, k] tensor: whether entry i's key is a real token of its row (not padding). */
const realKey = (heads: number) => (i: number) => MASK[Math.floor(i / (heads * S * S))][i % S] === 1;

/**
 * The exposed outputs, one per layer, shaped [batch, heads, q, k], within `tol` of the reference at
 * every real key (padded keys are checked on their own, below). Query rows of padding are included:
 * every kernel here lets them attend to the row's real keys, as the reference does.
 */
function assertMatchesReference(result: ort.InferenceSession.OnnxValueMapType, outputs: string[], ref: Reference, m: TestModel, tol: number, type: ort.Tensor.Type = 'float32') {
  assert.equal(outputs.length, m.config.layers, `one attention output per layer, got ${outputs.join(', ')}`);
  outputs.forEach((name, l) => {
    const t = result[name];
    assert.ok(t, `output ${name} missing`);
    assert.equal(t.type, type, `${name} type`);
    assert.deepEqual([...t.dims], [B, m.config.heads, S, S], `${name} shape`);
    const diff = maxAbsDiff(values(t), ref.probs[l], realKey(m.config.heads));
    assert.ok(diff < tol, `layer ${l} (${name}): max |exposed - reference| = ${diff.toExponential(2)}, over ${tol}`);
  });
}

/** Every output the original model had, unchanged by the rewrite. */
function assertOutputsKept(original: ort.InferenceSession.OnnxValueMapType, rewritten: ort.InferenceSession.OnnxValueMapType) {
  for (const [name, t] of Object.entries(original)) {
    assert.ok(rewritten[name], `output ${name} lost`);
    assert.deepEqual([...rewritten[name].dims], [...t.dims], `${name} shape`);
    const diff = maxAbsDiff(values(rewritten[name]), values(t));
    assert.ok(diff < 1e-5, `${name} changed by ${diff.toExponential(2)}`);
  }
}

const CASES: [string, () => TestModel][] = [
  ['GroupQueryAttention, separate Q/K/V, 4 heads on 2 KV heads, rotary outside, scale 0.3', gqaSeparate],
  ['GroupQueryAttention, packed QKV, do_rotary=1, rotary_interleaved=0', () => gqaPackedRotary(false)],
  ['GroupQueryAttention, packed QKV, do_rotary=1, rotary_interleaved=1', () => gqaPackedRotary(true)],
  ['MultiHeadAttention, bidirectional, key padding mask', () => mha(false)],
  ['MultiHeadAttention, unidirectional, key padding mask', () => mha(true)],
  ['ONNX Attention (opset 23), 3D inputs, 4 heads on 2 KV heads, is_causal=1', () => onnxAttention(3, true)],
  ['ONNX Attention (opset 23), 3D inputs, is_causal=0', () => onnxAttention(3, false)],
  ['ONNX Attention (opset 23), 4D inputs, is_causal=0', () => onnxAttention(4, false)],
  ['ONNX Attention (opset 23), 4D inputs, is_causal=1', () => onnxAttention(4, true)],
  ['ONNX Attention (opset 24), 3D inputs, 4 heads on 2 KV heads, is_causal=1', () => onnxAttention(3, true, 24)],
  ['com.microsoft.Attention, bidirectional, 2D mask_index, scale 0.25', () => msAttention(false)],
  ['com.microsoft.Attention, unidirectional, 2D mask_index, scale 0.25', () => msAttention(true)],
  ['com.microsoft.Attention, unidirectional, qkv_hidden_sizes with a smaller V', () => msAttention(true, 4)],
];

for (const [title, build] of CASES) {
  describe(title, () => {
    let m: TestModel;
    let ref: Reference;
    let original: ort.InferenceSession.OnnxValueMapType;
    before(async () => {
      m = build();
      ref = referenceForward(m, IDS, MASK);
      original = await run(m.fused, m);
    });

    test('the fused model runs as built and agrees with the float64 reference', () => {
      // Validates the builder and the reference before either judges the exposure.
      const diff = maxAbsDiff(values(original.last_hidden_state), ref.hidden);
      assert.ok(diff < 1e-4, `last_hidden_state off the reference by ${diff.toExponential(2)}`);
    });

    test('the unfused twin computes the same model, and its exposed Softmax matches the reference', async () => {
      const exposed = exposeAttention(m.unfused!, 'twin');
      const result = await run(exposed.bytes, m);
      assertOutputsKept(original, result);
      assertMatchesReference(result, exposed.attentionOutputs, ref, m, 1e-4);
    });

    test('exposed attention matches the reference and the twin; the model outputs are unchanged', async () => {
      const exposed = exposeAttention(m.fused, 'fused');
      const result = await run(exposed.bytes, m);
      assertOutputsKept(original, result);
      assertMatchesReference(result, exposed.attentionOutputs, ref, m, 1e-4);

      const twin = exposeAttention(m.unfused!, 'twin');
      const twinResult = await run(twin.bytes, m);
      exposed.attentionOutputs.forEach((name, l) => {
        const diff = maxAbsDiff(values(result[name]), values(twinResult[twin.attentionOutputs[l]]), realKey(m.config.heads));
        assert.ok(diff < 1e-4, `layer ${l}: fused vs unfused exposure differ by ${diff.toExponential(2)}`);
      });
    });

    test('padded keys get probability 0 (for GroupQueryAttention, once the engine zeroes what the op leaves unwritten)', async () => {
      const exposed = exposeAttention(m.fused, 'fused');
      const result = await run(exposed.bytes, m);
      const padded = (i: number) => !realKey(m.config.heads)(i);
      exposed.attentionOutputs.forEach((name, l) => {
        const data = result[name].data as Float32Array;
        // GroupQueryAttention's output_qk leaves the keys past a row's length unwritten.
        if (title.startsWith('GroupQueryAttention')) {
          const [B, H, Q] = result[name].dims;
          const stride = H * Q * MASK[0].length;
          for (let b = 0; b < B; b++) zeroMaskedKeys(data.subarray(b * stride, (b + 1) * stride), MASK[b], H * Q);
        }
        const worst = maxAbsDiff(values(result[name]), new Float64Array(result[name].size), padded);
        assert.ok(worst === 0, `layer ${l} (${name}): padded keys hold values up to ${worst}`);
      });
    });

    test('float16: the exposed attention comes out as float16 within 2e-3', async () => {
      const exposed = exposeAttention(m.fused, 'fused', { float16: true });
      const result = await run(exposed.bytes, m);
      assertOutputsKept(original, result);
      assertMatchesReference(result, exposed.attentionOutputs, ref, m, 2e-3, 'float16');
    });
  });
}

function assertUnsupported(fn: () => unknown, ...patterns: RegExp[]) {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof EngineError, `expected EngineError, got ${err}`);
    assert.equal(err.code, 'ATTENTION_UNSUPPORTED');
    for (const p of patterns) assert.match(err.message, p);
    return true;
  });
}

describe('fused attention that cannot be read out exactly is refused by name', () => {
  const refusals: [string, TestModel, RegExp, RegExp][] = [
    ['GroupQueryAttention with softcap=30', withUnsupported('gqa', { attrs: [attrFloat('softcap', 30)] }), /GroupQueryAttention/, /softcap/],
    ['GroupQueryAttention with local_window_size=4', withUnsupported('gqa', { attrs: [attrInt('local_window_size', 4)] }), /GroupQueryAttention/, /local_window_size/],
    ['GroupQueryAttention with smooth_softmax=1', withUnsupported('gqa', { attrs: [attrInt('smooth_softmax', 1)] }), /GroupQueryAttention/, /smooth_softmax/],
    ['GroupQueryAttention with a head_sink input', withUnsupported('gqa', { inputs: { 11: [4] } }), /GroupQueryAttention/, /head_sink/],
    ['ONNX Attention with softcap=30', withUnsupported('onnx', { attrs: [attrFloat('softcap', 30)] }), /ai\.onnx:Attention/, /softcap/],
  ];
  for (const [what, m, op, attribute] of refusals) {
    test(what, async () => {
      // A model ONNX Runtime accepts, so the refusal is about the attribute, not a broken graph.
      await run(m.fused, m);
      assertUnsupported(() => exposeAttention(m.fused, 'model'), op, attribute);
    });
  }
});
