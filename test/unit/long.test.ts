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
import { longPayloads, runPayloads } from '../../src/engine/payloads';
import { payloadMessages, runStartMessage } from '../../src/run/messages';
import { Run } from '../../src/run/run';
import { RowFetcher } from '../../src/run/rowFetcher';
import { parseHostMessage, parseWebviewMessage } from '../../src/protocol/validate';
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
  it('pools rows chunk by chunk into the thumbnails of the whole layer', () => {
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

  for (const [name, folder] of [
    ['stories260K (unfused)', STORIES],
    ['stories260K-gqa (GroupQueryAttention)', STORIES_GQA],
  ] as const) {
    it(`${name}: thumbnails and rows equal the whole-matrix path`, async () => {
      const engine = new AttentionEngine({ cacheDir: newDir(), offline: true });
      try {
        const text = STORY.repeat(3);
        const whole = await engine.analyze(folder, text);
        const long = await engine.analyze(folder, text, { longAbove: 0, long: { chunk: 23, thumbMax: 64 } });
        assert.ok(whole.shape[2] > 128, `a text over the thumbnail size (${whole.shape[2]} tokens)`);
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

  it('with float16 attention (as the extension asks for it) equals the float16 whole run', async () => {
    const engine = new AttentionEngine({ cacheDir: newDir(), offline: true, attentionPrecision: 'float16' });
    try {
      const text = STORY.repeat(3);
      const whole = await engine.analyze(STORIES_GQA, text);
      const long = await engine.analyze(STORIES_GQA, text, { longAbove: 0, long: { chunk: 23 } });
      // Rows recomputed over the cache may round to the neighbouring half (one float16 step: at most 2^-11 of 1).
      await compareWithWhole(whole, long, 2 ** -11);
    } finally {
      await engine.dispose();
    }
  });

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

    it('takes as many tokens as the model has positions (rows never need positions past the text)', async () => {
      const small = newDir();
      writeQwenFolder(small, { layers: 1, heads: 2, kvHeads: 1, hidden: 32, intermediate: 64, headSize: 16, vocab: 512, maxPos: 300, seed: 2 }, STORIES);
      const r = await engine.analyze(small, STORY.repeat(30), { longAbove: 0, long: { chunk: 64 } });
      assert.equal(r.shape[2], 300, 'cut to the 300 positions');
      const [row] = await r.longRun!.rows(299, 1);
      assert.ok(Math.abs(row.reduce((a, b) => a + b, 0) - 2) < 1e-4, 'two heads, each row sums to 1');
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

describe('a long run through the seam: engine -> messages -> validator -> the run model', () => {
  it('gives the same top words as the whole run, from rows on demand', async () => {
    const engine = new AttentionEngine({ cacheDir: newDir(), offline: true });
    try {
      const text = STORY.repeat(3);
      const whole = await engine.analyze(STORIES, text, { encoding: 'f16' });
      const long = await engine.analyze(STORIES, text, { encoding: 'f16', longAbove: 64 });
      const lr = long.longRun!;
      const origin = { runId: 3, text, offset: 0, label: 'story.txt:1' };
      const wholeRun = new Run(runStartMessage(whole, origin));
      for (const p of runPayloads(whole)) wholeRun.add(p);
      const start = parseHostMessage(JSON.parse(JSON.stringify({ ...runStartMessage({ ...long, long: { threshold: 64 } }, origin) })));
      assert.ok(start && start.type === 'run/start' && start.long?.threshold === 64);
      const run = new Run(start);
      for (const p of longPayloads(lr, 'f16')) {
        const m = parseHostMessage(payloadMessages(3, p, 'f16')[0]);
        assert.ok(m && m.type === 'run/thumbs', 'a long run streams thumbnails only');
        run.add({ ...m, kind: 'thumbs' });
      }
      assert.equal(run.complete, true, 'complete once every layer\'s thumbnails came');
      assert.equal(run.layer(0), undefined);
      const q = run.T - 3;
      const focus = { layer: 2, agg: 'mean' as const, hideSpecial: true };
      assert.equal(run.attended(q, 5, focus), null, 'nothing before its rows came');
      const rows = await lr.rows(q, 1);
      const msg = parseHostMessage({ type: 'run/rows', runId: 3, rows: { start: q, count: 1, keyStart: 0, keyCount: run.T, layers: rows.map((_, l) => l), data: rows.map((r) => r.buffer) } });
      assert.ok(msg && msg.type === 'run/rows' && msg.rows);
      run.addRows(msg.rows);
      assert.ok(run.hasRows(q));
      for (const f of [focus, { ...focus, agg: 1 }, { layer: 0, agg: 'mean' as const, hideSpecial: false }]) {
        const got = run.attended(q, 5, f)!;
        const want = wholeRun.attended(q, 5, f)!;
        assert.deepEqual(got.map((w) => w.text), want.map((w) => w.text));
        got.forEach((w, i) => assert.ok(Math.abs(w.weight - want[i].weight) < 2e-3, `${w.text}: ${w.weight} vs ${want[i].weight} (f16 layers)`));
      }
      assert.match(run.longRefusal({ agg: 'rollout' })!, /Rollout needs every layer's whole matrix/);
      assert.match(run.longRefusal({ agg: 0, weights: 'value' })!, /Value weighting covers runs of up to 64 tokens/);
      assert.equal(run.attended(q, 5, { ...focus, agg: 'rollout' }), null, 'rollout is never shown on a long run');
    } finally {
      await engine.dispose();
    }
  });

  it('validates rows messages against the protocol and the run', () => {
    assert.equal(parseHostMessage({ type: 'run/rows', runId: 1, rows: { start: 0, count: 1, keyStart: 0, keyCount: 4, layers: [0, 1], data: [new ArrayBuffer(16)] } }), null, 'a layer without data');
    assert.equal(parseWebviewMessage({ type: 'rows/request', runId: 1, start: -1, count: 1 }), null);
    assert.equal(parseWebviewMessage({ type: 'rows/request', runId: 1, start: 0, count: 1, keyStart: 0 }), null, 'a key window needs its length');
    assert.deepEqual(parseWebviewMessage({ type: 'rows/request', runId: 1, start: 5, count: 64, layers: [2], keyStart: 5, keyCount: 64 }), { type: 'rows/request', runId: 1, start: 5, count: 64, layers: [2], keyStart: 5, keyCount: 64 });
    const start = { type: 'run/start' as const, runId: 1, model: { id: 'm', architecture: 'llama', kind: 'decoder' as const, layers: 2, heads: 2, maxLength: 9000 }, tokens: Array.from({ length: 600 }, () => ({ text: 'a', start: -1, end: -1, special: true })), encoding: 'f16' as const, source: '', truncation: null, notices: [], long: { threshold: 512 } };
    const run = new Run(start);
    assert.throws(() => run.addRows({ start: 0, count: 1, keyStart: 0, keyCount: 600, layers: [0], data: [new Float32Array(5).buffer] }), /expected 1200/);
    assert.throws(() => run.addRows({ start: 599, count: 2, keyStart: 0, keyCount: 600, layers: [0], data: [new Float32Array(2400).buffer] }), /600 tokens/);
    // A window of keys is the panel's, not a row: not kept.
    run.addRows({ start: 0, count: 1, keyStart: 0, keyCount: 10, layers: [0, 1], data: [new Float32Array(20).buffer, new Float32Array(20).buffer] });
    assert.equal(run.hasRows(0), false);
  });

  it('fetches the newest wanted token first and drops the ones a newer one replaced', async () => {
    const start = { type: 'run/start' as const, runId: 1, model: { id: 'm', architecture: 'llama', kind: 'decoder' as const, layers: 1, heads: 1, maxLength: 9000 }, tokens: Array.from({ length: 600 }, () => ({ text: 'a', start: -1, end: -1, special: true })), encoding: 'f16' as const, source: '', truncation: null, notices: [], long: { threshold: 512 } };
    const run = new Run(start);
    const fetched: number[] = [];
    const forwarded: number[] = [];
    let release: () => void = () => undefined;
    const fetcher = new RowFetcher(
      run,
      async (q) => {
        fetched.push(q);
        if (q === 1) await new Promise<void>((r) => (release = r));
        return { start: q, count: 1, keyStart: 0, keyCount: 600, layers: [0], data: [new Float32Array(600).fill(1 / 600).buffer] };
      },
      (rows) => forwarded.push(rows.start),
    );
    const first = fetcher.want(1);
    const replaced = fetcher.want(2);
    const newest = fetcher.want(3);
    const again = fetcher.want(1); // the one in flight: waits for it, no second fetch
    release();
    assert.deepEqual(await Promise.all([first, replaced, newest, again]), [true, false, true, true]);
    assert.deepEqual(fetched, [1, 3]);
    assert.deepEqual(forwarded, [1, 3]);
    assert.equal(await fetcher.want(3), true, 'already here: no fetch');
    assert.deepEqual(fetched, [1, 3]);
  });
});
