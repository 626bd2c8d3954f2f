// Value-weighted attention (Kobayashi et al. 2020) on real captures: the norms and Gram matrices the
// worker sends (engine/qkv.ts valueNormsData) give, through the run model both sides hold, rows equal
// to ‖α^h_ij v^h_j W_O^h‖ and ‖Σ_h α^h_ij v^h_j W_O^h‖ computed here from the captured vectors in
// float64 (each row as shares of one); hovers and rollout read them; the protocol carries them.
import { test, describe, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { AttentionEngine } from '../../src/engine/engine';
import { valueNormsData } from '../../src/engine/qkv';
import type { AttentionResult, QkvCapture } from '../../src/engine/types';
import { Run } from '../../src/run/run';
import { runStartMessage } from '../../src/run/messages';
import { runPayloads } from '../../src/engine/payloads';
import { Rollout } from '../../src/analysis/rollout';
import { valueMatrix, valueNormsFrom } from '../../src/analysis/valueWeighted';
import { layerTensor } from '../../src/analysis/tensor';
import { topAttended } from '../../src/analysis/words';
import { parseHostMessage, parseWebviewMessage } from '../../src/protocol/validate';
import { STORIES, TINY_BERT, tempDirs } from './helpers/shared';

const tempDir = tempDirs('attention-lens-value-');
const TEXT = 'Once upon a time, there was a little girl who liked to play.';

/** f^h(x_j) for every head and key of layer l, in float64: v^h_j W_O^h, or v^h_j in head h's own coordinates. */
function headVectors(qkv: QkvCapture, l: number, H: number, T: number): Float64Array[][] {
  const d = qkv.headDim;
  const wo = qkv.outputProjection[l];
  const D = wo ? wo.length / (H * d) : H * d;
  return Array.from({ length: H }, (_, h) =>
    Array.from({ length: T }, (_, j) => {
      const f = new Float64Array(D);
      for (let a = 0; a < d; a++) {
        const x = qkv.v[l][(h * T + j) * d + a];
        if (!wo) f[h * d + a] = x;
        else for (let c = 0; c < D; c++) f[c] += x * wo[(h * d + a) * D + c];
      }
      return f;
    }),
  );
}

const norm = (f: Float64Array) => Math.sqrt(f.reduce((s, x) => s + x * x, 0));
const shares = (row: number[]) => {
  const sum = row.reduce((s, x) => s + x, 0);
  return row.map((x) => (sum > 0 ? x / sum : 0));
};

/** Head h's and the layer's value-weighted rows straight from the definition. */
function reference(r: AttentionResult, l: number, f: Float64Array[][]): { head: (h: number, i: number) => number[]; layer: (i: number) => number[] } {
  const [, H, T] = r.shape;
  const att = r.attention as Float32Array;
  const alpha = (h: number, i: number, j: number) => att[((l * H + h) * T + i) * T + j];
  return {
    head: (h, i) => shares(Array.from({ length: T }, (_, j) => alpha(h, i, j) * norm(f[h][j]))),
    layer: (i) =>
      shares(
        Array.from({ length: T }, (_, j) => {
          const sum = new Float64Array(f[0][0].length);
          for (let h = 0; h < H; h++) for (let c = 0; c < sum.length; c++) sum[c] += alpha(h, i, j) * f[h][j][c];
          return norm(sum);
        }),
      ),
  };
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return worst;
}

for (const { name, folder } of [
  { name: 'stories260K (grouped KV heads, W_O found)', folder: STORIES },
  { name: 'tiny-bert', folder: TINY_BERT },
]) {
  describe(`value-weighted attention: ${name}`, () => {
    let result: AttentionResult;
    let engine: AttentionEngine;
    before(async () => {
      engine = new AttentionEngine({ cacheDir: tempDir(), offline: true });
      result = await engine.analyze(folder, TEXT, { qkv: true, encoding: 'f32' });
    });
    after(() => engine.dispose());

    test('every layer and head equals ‖α v W_O‖ and ‖Σ_h α v W_O‖ from the captured vectors (1e-5)', async () => {
      const [L, H, T] = result.shape;
      const data = await valueNormsData(result.qkv!, H, T);
      assert.equal(data.kind, result.qkv!.outputProjection.every((w) => w) ? 'output-projected' : 'value-only');
      const v = valueNormsFrom(data, L, H, T);
      for (let l = 0; l < L; l++) {
        const layer = layerTensor(result.attention.buffer.slice(l * H * T * T * 4, (l + 1) * H * T * T * 4) as ArrayBuffer, 'f32', H, T, false);
        const ref = reference(result, l, headVectors(result.qkv!, l, H, T));
        for (let h = 0; h < H; h++) {
          const m = valueMatrix(layer, v, l, h);
          for (let i = 0; i < T; i++) assert.ok(maxDiff(m.subarray(i * T, (i + 1) * T), ref.head(h, i)) < 1e-5, `layer ${l} head ${h} row ${i}`);
        }
        const m = valueMatrix(layer, v, l, 'mean');
        for (let i = 0; i < T; i++) {
          const row = m.subarray(i * T, (i + 1) * T);
          assert.ok(maxDiff(row, ref.layer(i)) < 1e-5, `layer ${l} row ${i}`);
          assert.ok(Math.abs(row.reduce((s, x) => s + x, 0) - 1) < 1e-5);
        }
      }
    });

    test('the weighting changes what a token takes most from: it is not the attention under another name', async () => {
      const [L, H, T] = result.shape;
      const v = valueNormsFrom(await valueNormsData(result.qkv!, H, T), L, H, T);
      const layer = layerTensor(result.attention.buffer.slice(0, H * T * T * 4) as ArrayBuffer, 'f32', H, T, false);
      const m = valueMatrix(layer, v, 0, 0);
      const att = result.attention as Float32Array;
      assert.ok(maxDiff(m, att.subarray(0, T * T)) > 1e-3);
    });
  });
}

test('without an output projection, heads are orthogonal: the layer row is √Σ_h (α_h ‖v_h‖)², as shares', async () => {
  const engine = new AttentionEngine({ cacheDir: tempDir(), offline: true });
  try {
    const r = await engine.analyze(STORIES, TEXT, { qkv: true, encoding: 'f32' });
    const [L, H, T] = r.shape;
    const qkv = { ...r.qkv!, outputProjection: r.qkv!.outputProjection.map(() => null) };
    const data = await valueNormsData(qkv, H, T);
    assert.equal(data.kind, 'value-only');
    const v = valueNormsFrom(data, L, H, T);
    const l = L - 1;
    const layer = layerTensor(r.attention.buffer.slice(l * H * T * T * 4, (l + 1) * H * T * T * 4) as ArrayBuffer, 'f32', H, T, false);
    const ref = reference(r, l, headVectors(qkv, l, H, T));
    const m = valueMatrix(layer, v, l, 'mean');
    for (let i = 0; i < T; i++) assert.ok(maxDiff(m.subarray(i * T, (i + 1) * T), ref.layer(i)) < 1e-5);
  } finally {
    await engine.dispose();
  }
});

describe('value-weighted attention in the run model (host and panel)', () => {
  let run: Run;
  let r: AttentionResult;
  before(async () => {
    const engine = new AttentionEngine({ cacheDir: tempDir(), offline: true });
    try {
      r = await engine.analyze(STORIES, TEXT, { qkv: true, encoding: 'f32' });
    } finally {
      await engine.dispose();
    }
    run = new Run(runStartMessage(r, { runId: 1, text: TEXT, offset: 0, label: 'x' }));
    for (const p of runPayloads(r)) run.add(p);
  });

  test('before the value norms arrive, value-weighted words are null (never attention under that name)', () => {
    const fresh = new Run(runStartMessage(r, { runId: 2, text: TEXT, offset: 0, label: 'x' }));
    for (const p of runPayloads(r)) fresh.add(p);
    assert.equal(fresh.attended(5, 3, { layer: 0, agg: 0, hideSpecial: false, weights: 'value' }), null);
    assert.notEqual(fresh.attended(5, 3, { layer: 0, agg: 0, hideSpecial: false }), null);
  });

  test('hovers rank words by value-weighted share; rollout runs over the value-weighted layers', async () => {
    const [L, H, T] = r.shape;
    const data = await valueNormsData(r.qkv!, H, T);
    run.setValueNorms(data);
    const q = T - 1;
    const layerOf = (l: number) => run.layer(l)!;
    for (const agg of [2, 'mean'] as const) {
      const words = run.attended(q, 3, { layer: 1, agg, hideSpecial: false, weights: 'value' })!;
      const m = valueMatrix(layerOf(1), run.values!, 1, agg);
      const row = m.slice(q * T, (q + 1) * T);
      assert.ok(words.length > 0 && words[0].weight > 0 && words[0].weight <= 1);
      assert.deepEqual(words, topAttended(row, run.tokens, run.words, 3), `${agg}: the words of the value-weighted row`);
      assert.notDeepEqual(words, run.attended(q, 3, { layer: 1, agg, hideSpecial: false }), `${agg}: not the attention's words`);
    }
    // Rollout: the background steps compute value-weighted layers, then the same product as attention rollout.
    while (run.stepMeans()) { /* the host's background steps */ }
    for (let l = 0; l < L; l++) assert.ok(run.stepRollout(L - 1, false, 'value'));
    const expected = new Rollout(T);
    for (let l = 0; l < L; l++) expected.push(valueMatrix(layerOf(l), run.values!, l, 'mean'));
    assert.ok(maxDiff(run.rollout(L - 1, false, 'value')!, expected.get(L - 1)!) < 1e-6);
    assert.ok(maxDiff(run.rollout(L - 1, false, 'value')!, run.mean(0)!) > 1e-3);
    assert.notEqual(run.attended(q, 3, { layer: L - 1, agg: 'rollout', hideSpecial: false, weights: 'value' }), null);
  });

  test('norms of the wrong size are refused', () => {
    const fresh = new Run(runStartMessage(r, { runId: 3, text: TEXT, offset: 0, label: 'x' }));
    assert.throws(() => fresh.setValueNorms({ norms: new ArrayBuffer(8), gram: new ArrayBuffer(8), kind: 'value-only' }), /value norms of 2 and 2 values/);
  });
});

test('protocol: values/request and values/data pass validation; malformed ones are dropped', () => {
  assert.deepEqual(parseWebviewMessage({ type: 'values/request', runId: 4 }), { type: 'values/request', runId: 4 });
  assert.equal(parseWebviewMessage({ type: 'values/request', runId: -1 }), null);
  const hover = parseWebviewMessage({ type: 'hover/token', runId: 1, tokenIndex: 2, layer: 0, head: 'mean', hideSpecial: false, weights: 'value' });
  assert.equal(hover && 'weights' in hover ? hover.weights : undefined, 'value');
  const norms = new Float32Array(6).buffer;
  const ok = parseHostMessage({ type: 'values/data', runId: 4, data: { norms, gram: norms, kind: 'output-projected' } });
  assert.equal(ok?.type, 'values/data');
  assert.equal(parseHostMessage({ type: 'values/data', runId: 4, data: { norms, gram: norms, kind: 'other' } }), null);
  assert.deepEqual(parseHostMessage({ type: 'values/data', runId: 4, error: 'no capture' }), { type: 'values/data', runId: 4, error: 'no capture' });
});
