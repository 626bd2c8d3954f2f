// Long inputs (engine/long.ts): thumbnails pooled chunk by chunk and rows computed over the model's
// key/value cache equal the whole-matrix path, on the real stories260K (unfused, and its fused
// GroupQueryAttention rewiring) and at T = 1,024 on a generated Llama-shaped model with rotary.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { AttentionEngine } from '../../src/engine/engine';
import { EngineError, type AttentionResult } from '../../src/engine/types';
import { ThumbPooler, layerTensor, layerThumbs, thumbSize } from '../../src/analysis';
import { writeQwenFolder } from '../../bench/make-qwen-gqa';
import { STORIES, STORIES_GQA, TINY_BERT, tempDirs } from './helpers/shared';

const newDir = tempDirs('attention-lens-long-');
const STORY = 'Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her friends. One day, she saw a big red ball under a tree. ';

function maxGap(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let g = 0;
  for (let i = 0; i < a.length; i++) g = Math.max(g, Math.abs(a[i] - b[i]));
  return g;
}

/** Rows i0..i0+n-1 of layer l of a whole result, as [H][n][T]. */
function wholeRows(r: AttentionResult, l: number, i0: number, n: number): Float32Array {
  const [, H, T] = r.shape;
  const a = r.attention as Float32Array;
  const out = new Float32Array(H * n * T);
  for (let h = 0; h < H; h++) for (let k = 0; k < n; k++) out.set(a.subarray(((l * H + h) * T + i0 + k) * T, ((l * H + h) * T + i0 + k + 1) * T), (h * n + k) * T);
  return out;
}

/** The long run against the whole run: every layer's thumbnails, and rows at the start, middle and end. */
async function compareWithWhole(whole: AttentionResult, long: AttentionResult, tolerance: number) {
  const lr = long.longRun!;
  assert.ok(lr, 'the long run holds a LongAttention');
  assert.equal(long.attention.length, 0, 'no whole matrices above the threshold');
  assert.deepEqual(long.shape, whole.shape);
  const [L, H, T] = whole.shape;
  for (let l = 0; l < L; l++) {
    const layer = layerTensor((whole.attention as Float32Array).subarray(l * H * T * T, (l + 1) * H * T * T), 'f32', H, T);
    const expected = layerThumbs(layer);
    const got = lr.thumbs(l, 'f32');
    assert.ok(expected && got);
    assert.equal(got.size, expected.size);
    assert.ok(maxGap(new Float32Array(got.data), new Float32Array(expected.data)) <= tolerance, `layer ${l} thumbnails`);
  }
  for (const i of [0, 1, Math.floor(T / 2), T - 2, T - 1]) {
    const rows = await lr.rows(i, 1);
    assert.equal(rows.length, L);
    rows.forEach((row, l) => assert.ok(maxGap(row, wholeRows(whole, l, i, 1)) <= tolerance, `row ${i} of layer ${l}`));
  }
  const i0 = Math.floor(T / 3);
  const block = await lr.rows(i0, 5, [L - 1]);
  assert.equal(block.length, 1);
  assert.ok(maxGap(block[0], wholeRows(whole, L - 1, i0, 5)) <= tolerance, 'a block of rows');
}

describe('long inputs over the key/value cache', () => {
  it('pools rows chunk by chunk into the thumbnails poolLayer makes', () => {
    const H = 3;
    const T = 300;
    const a = new Float32Array(H * T * T).map(() => Math.random());
    const pooler = new ThumbPooler(H, T);
    for (let i0 = 0; i0 < T; i0 += 37) {
      const n = Math.min(37, T - i0);
      const K = Math.min(T, i0 + n + 5); // keys past K are 0 in a chunk: cut them here
      const rows = new Float32Array(H * n * K);
      for (let h = 0; h < H; h++) for (let r = 0; r < n; r++) for (let j = 0; j < K; j++) rows[(h * n + r) * K + j] = a[(h * T + i0 + r) * T + j];
      for (let h = 0; h < H; h++) for (let r = 0; r < n; r++) a.fill(0, (h * T + i0 + r) * T + K, (h * T + i0 + r + 1) * T);
      pooler.addRows(rows, i0, n, K);
    }
    const expected = layerThumbs(layerTensor(a, 'f32', H, T))!;
    assert.equal(pooler.size, expected.size);
    assert.equal(maxGap(pooler.result(), new Float32Array(expected.data)), 0);
  });

  for (const [name, folder, layout] of [
    ['stories260K (unfused)', STORIES, 'split'],
    ['stories260K-gqa (GroupQueryAttention)', STORIES_GQA, 'packed'],
  ] as const) {
    it(`${name}: thumbnails and rows equal the whole-matrix path (layout ${layout})`, async () => {
      const engine = new AttentionEngine({ cacheDir: newDir(), offline: true });
      try {
        const text = STORY.repeat(3);
        const whole = await engine.analyze(folder, text);
        const long = await engine.analyze(folder, text, { longAbove: 0, long: { chunk: 23, thumbMax: 64 } });
        assert.ok(whole.shape[2] > 128, `a text over the thumbnail size (${whole.shape[2]} tokens)`);
        assert.equal(long.longRun!.layout, layout);
        assert.equal(long.longRun!.chunk, 23);
        // thumbMax 64 for the long run: compare against whole thumbnails at the same size.
        const [L, H, T] = whole.shape;
        for (let l = 0; l < L; l++) {
          const expected = layerThumbs(layerTensor((whole.attention as Float32Array).subarray(l * H * T * T, (l + 1) * H * T * T), 'f32', H, T), thumbSize(T, 64))!;
          assert.ok(maxGap(new Float32Array(long.longRun!.thumbs(l, 'f32')!.data), new Float32Array(expected.data)) <= 1e-5);
        }
        const longDefault = await engine.analyze(folder, text, { longAbove: 0, long: { chunk: 50 } });
        await compareWithWhole(whole, longDefault, 1e-5);
      } finally {
        await engine.dispose();
      }
    });
  }

  describe('T = 1,024 on a generated Llama-shaped model (rotary, GQA)', () => {
    let folder = '';
    before(() => {
      folder = newDir();
      writeQwenFolder(folder, { layers: 2, heads: 4, kvHeads: 2, hidden: 64, intermediate: 128, headSize: 16, vocab: 512, maxPos: 2048, seed: 7 }, STORIES);
    });
    const engine = new AttentionEngine({ cacheDir: path.join(newDir(), 'cache'), offline: true });
    after(() => engine.dispose());

    it('equals the whole matrices at 1,024 tokens, and refuses nothing below the threshold', async () => {
      const text = STORY.repeat(30);
      const whole = await engine.analyze(folder, text, { maxTokens: 1024 });
      assert.equal(whole.shape[2], 1024);
      const long = await engine.analyze(folder, text, { maxTokens: 1024, longAbove: 512 });
      await compareWithWhole(whole, long, 1e-5);
      const short = await engine.analyze(folder, text, { maxTokens: 400, longAbove: 512 });
      assert.equal(short.longRun, undefined, 'at or below the threshold: whole matrices');
      assert.equal(short.attention.length, 2 * 4 * 400 * 400);
    });

    it('stops between chunks when cancelled', async () => {
      const controller = new AbortController();
      let chunks = 0;
      await assert.rejects(
        engine.analyze(folder, STORY.repeat(30), {
          maxTokens: 1024,
          longAbove: 0,
          long: { chunk: 64 },
          signal: controller.signal,
          onProgress: (p) => {
            if (p.phase === 'forward' && ++chunks === 2) controller.abort();
          },
        }),
        (e: unknown) => e instanceof EngineError && e.code === 'CANCELLED',
      );
      assert.equal(chunks, 2);
    });
  });

  it('refuses a model without a key/value cache, saying what to do', async () => {
    const engine = new AttentionEngine({ cacheDir: newDir(), offline: true });
    try {
      await assert.rejects(engine.analyze(TINY_BERT, 'a few words of text', { longAbove: 2 }), (e: unknown) => e instanceof EngineError && e.code === 'ATTENTION_UNSUPPORTED' && /no key\/value cache/.test(e.message) && /maxTokens/.test(e.message));
    } finally {
      await engine.dispose();
    }
  });
});
