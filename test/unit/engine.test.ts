// The engine against PyTorch: every reference case of the BERT and GPT-2 fixtures (batches, right
// and left padding, explicit position ids, a length-1 input), and the real stories260K Llama.
import { test, describe, before, after } from 'node:test';
import * as fs from 'node:fs';
import * as path from 'node:path';
import assert from 'node:assert/strict';
import { AttentionEngine } from '../../src/engine/engine';
import { runtimeLoaders } from '../../src/engine/runtime';
import { EngineError } from '../../src/engine/types';
import { encodeF16, f16BitsToNumber } from '../../src/analysis/f16';
import { readCases, tempDir, TINY_BERT, TINY_GPT2, STORIES, STORIES_GQA } from './helpers/shared';

/** Max |a - b| over the real (unpadded) query/key positions of batch row `b`. */
function maxDiffForRow(
  reference: Float32Array,
  shape: [number, number, number, number, number],
  b: number,
  layers: ArrayLike<number>[],
  mask: number[],
): number {
  const [L, B, H, Q, K] = shape;
  let worst = 0;
  for (let l = 0; l < L; l++)
    for (let h = 0; h < H; h++)
      for (let q = 0; q < Q; q++) {
        if (!mask[q]) continue; // a padded query row is ignored by every consumer
        for (let k = 0; k < K; k++) {
          const ref = reference[((((l * B + b) * H + h) * Q + q) * K) + k];
          const got = layers[l][(h * Q + q) * K + k];
          worst = Math.max(worst, Math.abs(ref - got));
        }
      }
  return worst;
}

for (const [name, fixture] of [
  ['tiny-bert', TINY_BERT],
  ['tiny-gpt2', TINY_GPT2],
] as const) {
  describe(`${name} matches the PyTorch reference attention`, () => {
    const engine = new AttentionEngine({ cacheDir: tempDir(), runtime: 'cpu' });
    before(() => engine.load(fixture));
    after(() => engine.dispose());

    for (const [i, c] of readCases(fixture).entries()) {
      test(`case ${i}: batch ${c.shape[1]}, T=${c.shape[3]}`, async () => {
        const rows = await engine.forward(c);
        assert.equal(rows.length, c.shape[1]);
        for (let b = 0; b < rows.length; b++) {
          assert.equal(rows[b].length, c.shape[0], 'one tensor per layer');
          const diff = maxDiffForRow(c.reference, c.shape, b, rows[b], c.attention_mask[b]);
          assert.ok(diff <= 1e-4, `row ${b}: max abs diff ${diff}`);
        }
      });
    }
  });
}

describe('attentionPrecision float16: the graph casts, ONNX Runtime hands out half precision', () => {
  const cacheDir = tempDir();
  for (const [name, model] of [
    ['tiny-bert', TINY_BERT],
    ['tiny-gpt2', TINY_GPT2],
    ['stories260K', STORIES],
    ['stories260K-gqa (fused GroupQueryAttention)', STORIES_GQA],
  ] as const) {
    test(`${name}: the same bits as encoding the float32 attention, and the same analysis`, async () => {
      const full = new AttentionEngine({ cacheDir, runtime: 'cpu', offline: true });
      const half = new AttentionEngine({ cacheDir, runtime: 'cpu', offline: true, attentionPrecision: 'float16' });
      try {
        await full.load(model);
        await half.load(model);
        if (model !== STORIES && model !== STORIES_GQA) {
          const c = readCases(model)[0];
          const [f32Rows, f16Rows] = [await full.forward(c), await half.forward(c)];
          for (let l = 0; l < f32Rows[0].length; l++) {
            assert.ok(f16Rows[0][l] instanceof Uint16Array, 'half-precision bit patterns');
            assert.deepEqual(f16Rows[0][l], encodeF16(f32Rows[0][l] as Float32Array), `layer ${l}`);
          }
        }
        const text = 'Once upon a time, there was a little girl named Lily.';
        const a = await full.analyze(model, text, { encoding: 'f16' });
        const b = await half.analyze(model, text, { encoding: 'f16' });
        assert.deepEqual(b.tokens, a.tokens);
        assert.deepEqual(b.attention, a.attention, 'f16 results are bit-identical');
        // float32 and u8 results from the half graph are the decoded halves.
        const f32 = (await half.analyze(model, text)).attention as Float32Array;
        assert.ok(f32 instanceof Float32Array);
        assert.deepEqual(Array.from(f32.subarray(0, 64)), Array.from(b.attention.subarray(0, 64), f16BitsToNumber));
        assert.ok((await half.analyze(model, text, { encoding: 'u8' })).attention instanceof Uint8Array);
      } finally {
        await full.dispose();
        await half.dispose();
      }
    });
  }
});

describe('stories260K (real pretrained Llama, grouped-query attention)', () => {
  const engine = new AttentionEngine({ cacheDir: tempDir(), runtime: 'cpu', offline: true });
  after(() => engine.dispose());
  const text = 'Once upon a time, there was a little girl named Lily. She loved to play outside.';

  test('loads offline and reports its metadata', async () => {
    const info = await engine.load(STORIES);
    assert.deepEqual(
      { architecture: info.architecture, kind: info.kind, layers: info.layers, heads: info.heads, kvHeads: info.kvHeads, maxLength: info.maxLength },
      { architecture: 'llama', kind: 'decoder', layers: 5, heads: 8, kvHeads: 4, maxLength: 512 },
    );
  });

  test('attention is [5, 8, T, T], rows sum to 1, nothing attends to the future', async () => {
    const r = await engine.analyze(STORIES, text);
    const T = r.tokens.length;
    assert.ok(T > 10);
    assert.deepEqual(r.shape, [5, 8, T, T]);
    assert.equal(r.attention.length, 5 * 8 * T * T);
    const a = r.attention as Float32Array;
    for (let lh = 0; lh < 5 * 8; lh++)
      for (let q = 0; q < T; q++) {
        let sum = 0;
        for (let k = 0; k < T; k++) {
          const v = a[(lh * T + q) * T + k];
          if (k > q) assert.ok(v < 1e-6, `future weight ${v} at q=${q} k=${k}`);
          sum += v;
        }
        assert.ok(Math.abs(sum - 1) < 1e-4, `row sum ${sum}`);
      }
    assert.ok(r.tokens[0].special, 'BOS comes first and is special');
    assert.equal(text.slice(r.tokens[1].start, r.tokens[1].end), 'Once');
  });

  test('onTokenized: everything but the attention, before the forward pass, exactly as the result has it', async () => {
    const seen: string[] = [];
    let previewed: Record<string, unknown> | null = null;
    // Watch the engine's forward pass (a private method) to see what comes first.
    const spy = engine as unknown as { forward: (...args: unknown[]) => Promise<unknown> };
    const forward = spy.forward;
    spy.forward = function (this: unknown, ...args: unknown[]) {
      seen.push('forward');
      return forward.apply(this, args);
    };
    try {
      const r = await engine.analyze(STORIES, text, {
        encoding: 'f16',
        onTokenized: (p) => {
          previewed = { ...p };
          seen.push('preview');
        },
      });
      seen.push('result');
      assert.deepEqual(seen, ['preview', 'forward', 'result']);
      const { attention: _, timings: __, ...rest } = r;
      assert.deepEqual(previewed, rest, 'model, tokens, encoding, shape, truncation, runtime and notices as in the result');
    } finally {
      spy.forward = forward;
    }
  });

  test('float16 and uint8 packing stay close to float32', async () => {
    const f32 = (await engine.analyze(STORIES, text)).attention as Float32Array;
    const f16 = await engine.analyze(STORIES, text, { encoding: 'f16' });
    const u8 = await engine.analyze(STORIES, text, { encoding: 'u8' });
    assert.ok(f16.attention instanceof Uint16Array && u8.attention instanceof Uint8Array);
    let worst16 = 0;
    let worst8 = 0;
    for (let i = 0; i < f32.length; i++) {
      worst16 = Math.max(worst16, Math.abs(f16BitsToNumber(f16.attention[i]) - f32[i]));
      worst8 = Math.max(worst8, Math.abs(u8.attention[i] / 255 - f32[i]));
    }
    assert.ok(worst16 < 5e-4, `f16 error ${worst16}`);
    assert.ok(worst8 <= 0.5 / 255 + 1e-6, `u8 error ${worst8}`);
  });

  test('long inputs are truncated visibly, keeping the end of the text reachable', async () => {
    const long = Array.from({ length: 80 }, () => text).join(' ');
    const r = await engine.analyze(STORIES, long, { maxTokens: 64 });
    assert.equal(r.tokens.length, 64);
    assert.ok(r.truncation && r.truncation.total > 64 && r.truncation.kept === 64);
    assert.ok(r.truncation.endOffset > 0 && r.truncation.endOffset < long.length);
    assert.ok(r.notices.some((n) => n.includes('64')), 'the truncation is announced');
    assert.ok(r.tokens.every((t) => t.special || t.end <= r.truncation!.endOffset));
  });

  test('empty and whitespace-only inputs give a clear EMPTY_INPUT error', async () => {
    for (const bad of ['', '   \n\t ']) {
      await assert.rejects(engine.analyze(STORIES, bad), (e: unknown) => e instanceof EngineError && e.code === 'EMPTY_INPUT' && /select/i.test(e.message));
    }
  });

  test('a missing model folder gives MODEL_NOT_FOUND naming the folder', async () => {
    const fresh = new AttentionEngine({ cacheDir: tempDir(), offline: true });
    await assert.rejects(fresh.load('/nonexistent/model-folder'), (e: unknown) => e instanceof EngineError && e.code === 'MODEL_NOT_FOUND' && e.message.includes('/nonexistent/model-folder'));
  });
});

describe('dtype picks the ONNX file', () => {
  test('q8 loads onnx/model_quantized.onnx; fp32 on a folder without model.onnx says which dtype exists', async () => {
    // A folder holding only a "quantized" file (the fp32 graph under that name: this checks file choice, not quantization).
    const folder = tempDir();
    for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json']) fs.copyFileSync(path.join(TINY_BERT, f), path.join(folder, f));
    fs.mkdirSync(path.join(folder, 'onnx'));
    fs.copyFileSync(path.join(TINY_BERT, 'onnx/model.onnx'), path.join(folder, 'onnx/model_quantized.onnx'));
    const q8 = new AttentionEngine({ cacheDir: tempDir(), dtype: 'q8' });
    assert.equal((await q8.load(folder)).file, 'onnx/model_quantized.onnx');
    await q8.dispose();
    const fp32 = new AttentionEngine({ cacheDir: tempDir(), dtype: 'fp32' });
    await assert.rejects(fp32.load(folder), (e: unknown) => e instanceof EngineError && e.code === 'MODEL_NOT_FOUND' && /Try dtype q8/.test(e.message));
  });
});

describe('runtime fallback', () => {
  test('auto falls back to WASM with a notice when the native binary cannot load, with the same attention', async () => {
    const text = 'Lily went to the park.';
    const native = new AttentionEngine({ cacheDir: tempDir(), runtime: 'cpu' });
    const expected = (await native.analyze(STORIES, text)).attention as Float32Array;
    await native.dispose();

    const original = runtimeLoaders.native;
    runtimeLoaders.native = () => {
      throw new Error('libonnxruntime.so.1: cannot open shared object file');
    };
    try {
      const fallback = new AttentionEngine({ cacheDir: tempDir(), runtime: 'auto' });
      const r = await fallback.analyze(STORIES, text);
      assert.equal(r.runtime, 'onnxruntime-web wasm');
      assert.ok(r.notices.some((n) => /WASM/.test(n)), r.notices.join('\n'));
      const got = r.attention as Float32Array;
      assert.equal(got.length, expected.length);
      let worst = 0;
      for (let i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs(got[i] - expected[i]));
      assert.ok(worst < 1e-4, `wasm vs native ${worst}`);
      await fallback.dispose();

      // The extension's float16 graph runs on WASM too, and its halves are the float32 values rounded.
      const half = new AttentionEngine({ cacheDir: tempDir(), runtime: 'auto', attentionPrecision: 'float16' });
      const h = await half.analyze(STORIES, text, { encoding: 'f16' });
      assert.equal(h.runtime, 'onnxruntime-web wasm');
      const halves = h.attention as Uint16Array;
      let worstHalf = 0;
      for (let i = 0; i < halves.length; i++) worstHalf = Math.max(worstHalf, Math.abs(f16BitsToNumber(halves[i]) - expected[i]));
      assert.ok(worstHalf < 5e-4, `wasm float16 vs native float32 ${worstHalf}`);
      await half.dispose();

      const strict = new AttentionEngine({ cacheDir: tempDir(), runtime: 'cpu' });
      await assert.rejects(strict.load(STORIES), (e: unknown) => e instanceof EngineError && e.code === 'RUNTIME_UNAVAILABLE' && /wasm/.test(e.message));
    } finally {
      runtimeLoaders.native = original;
    }
  });
});
