// Node-only tests of "Why this weight?"'s pure pieces: the row recomputed from the captured query,
// keys and values (webview/explainMath.ts), its number formats, and the validator of explain/data.
// Run: node --import tsx --test test/webview/explain-math.test.ts

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { TOLERANCE, fmtDiff, fmtNum, isInverseSqrt, recompute } from '../../webview/explainMath';
import { parseHostMessage } from '../../src/protocol/validate';
import { syntheticExplanation } from './synthetic';

const cell = { layer: 1, head: 2, query: 5, key: 3 };

describe('recompute', () => {
  test('a hand-sized row: scores, softmax, weighted sum, every number', () => {
    const e = syntheticExplanation(cell, 3, { dim: 2 });
    e.q.set([1, 2]);
    e.k.set([1, 0, 0, 1, -1, -1]);
    e.v.set([1, 0, 0, 2, 3, 3]);
    e.scale = 0.5;
    const s = [0.5, 1, -1.5];
    const z = s.reduce((a, x) => a + Math.exp(x), 0);
    const a = s.map((x) => Math.exp(x) / z);
    e.shown = Float32Array.from(a);
    e.out = Float32Array.from([a[0] + 3 * a[2], 2 * a[1] + 3 * a[2]]);
    const m = recompute(e);
    assert.deepEqual([...m.dots], [1, 2, -3]);
    assert.deepEqual([...m.scores], s);
    for (let j = 0; j < 3; j++) assert.ok(Math.abs(m.weights[j] - a[j]) < 1e-15);
    assert.ok(Math.abs(m.out[0] - (a[0] + 3 * a[2])) < 1e-15);
    assert.ok(m.rowMatches && m.outMatches);
    assert.ok(m.rowDiff < 1e-7, 'float32 rounding only');
  });

  test('a causal row: masked keys score −∞ and weigh 0, the rest sum to 1, and it matches the exposed row', () => {
    const e = syntheticExplanation(cell, 12, { causal: true });
    const m = recompute(e);
    for (let j = 6; j < 12; j++) {
      assert.equal(m.scores[j], -Infinity);
      assert.equal(m.weights[j], 0);
    }
    assert.ok(Math.abs(m.weights.reduce((x, y) => x + y, 0) - 1) < 1e-12);
    assert.ok(m.rowMatches, `max diff ${m.rowDiff}`);
    assert.ok(m.rowDiff < TOLERANCE);
    assert.ok(m.outMatches, `out diff ${m.outDiff}`);
  });

  test('a shown row off by 1e-3 does not match, and the largest difference is reported', () => {
    const m = recompute(syntheticExplanation(cell, 12, { shownError: 1e-3 }));
    assert.equal(m.rowMatches, false);
    assert.ok(Math.abs(m.rowDiff - 1e-3) < 1e-6);
    assert.ok(m.rowDiffAt >= 0);
    assert.ok(m.outMatches, 'the output was computed from the true weights');
  });

  test('a NaN anywhere in the shown row never counts as a match', () => {
    const e = syntheticExplanation(cell, 8);
    e.shown[4] = NaN;
    const m = recompute(e);
    assert.equal(m.rowMatches, false);
    assert.equal(m.rowDiffAt, 4);
    e.shown[4] = 0;
    e.out[0] = NaN;
    assert.equal(recompute(e).outMatches, false);
  });

  test('a mask that hides a key the shown row weighs is caught', () => {
    const e = syntheticExplanation(cell, 8);
    e.visible[2] = 0; // the model saw key 2; the capture claims it was masked
    assert.equal(recompute(e).rowMatches, false);
  });

  test('large scores do not overflow the softmax', () => {
    const e = syntheticExplanation(cell, 4, { dim: 1 });
    e.q.set([1000]);
    e.k.set([1, 1, 0.98, -1]);
    e.scale = 1;
    const m = recompute(e);
    assert.ok(m.weights.every(Number.isFinite));
    assert.ok(Math.abs(m.weights[0] - m.weights[1]) < 1e-15 && m.weights[2] < 1e-6 && m.weights[3] === 0);
  });
});

describe('formats', () => {
  test('3 significant digits, a real minus sign, exponents only when tiny or huge', () => {
    assert.equal(fmtNum(12.3456), '12.3');
    assert.equal(fmtNum(-0.012345), '−0.0123');
    assert.equal(fmtNum(0.5), '0.5');
    assert.equal(fmtNum(0), '0');
    assert.equal(fmtNum(0.00012345), '1.23e-4');
    assert.equal(fmtNum(123456), '1.23e5');
    assert.equal(fmtNum(-Infinity), '−∞');
    assert.equal(fmtDiff(2.123e-8), '2.1e-8');
    assert.equal(fmtDiff(0), '0');
  });

  test('the usual scale is recognised, another is not', () => {
    assert.ok(isInverseSqrt(Math.fround(1 / 8), 64));
    assert.ok(isInverseSqrt(Math.fround(1 / Math.sqrt(96)), 96));
    assert.equal(isInverseSqrt(1, 64), false);
  });
});

describe('explain/data validation', () => {
  const e = syntheticExplanation(cell, 6, { causal: true });
  const msg = (explanation: unknown): unknown => ({ type: 'explain/data', runId: 3, cell, explanation });

  test('an explanation passes with its arrays, as typed arrays or their buffers', () => {
    const m = parseHostMessage(msg(e));
    assert.equal(m?.type, 'explain/data');
    const buffers = parseHostMessage(msg({ ...e, q: e.q.buffer.slice(0), visible: e.visible.buffer.slice(0) }));
    assert.ok(buffers?.type === 'explain/data' && buffers.explanation?.q instanceof Float32Array && buffers.explanation.visible instanceof Uint8Array);
  });

  test('an error passes without an explanation', () => {
    const m = parseHostMessage({ type: 'explain/data', runId: 3, cell, error: 'This model has no attention to capture.' });
    assert.deepEqual(m, { type: 'explain/data', runId: 3, cell, error: 'This model has no attention to capture.' });
  });

  test('arrays that do not fit T and d, a bad cell, scale, mask or kind are dropped', () => {
    for (const bad of [
      { ...e, k: e.k.subarray(1) },
      { ...e, shown: new Float32Array(5) },
      { ...e, out: new Float32Array(e.dim + 1) },
      { ...e, q: Array.from(e.q) },
      { ...e, scale: NaN },
      { ...e, mask: 'alibi' },
      { ...e, valueNormKind: 'other' },
      { ...e, dim: 0 },
      { ...e, cell: { ...cell, query: -1 } },
      null,
    ]) {
      assert.equal(parseHostMessage(msg(bad)), null, JSON.stringify(bad && Object.keys(bad)));
    }
    assert.equal(parseHostMessage({ type: 'explain/data', runId: 3, cell: { layer: 0 }, error: 'x' }), null);
  });
});
