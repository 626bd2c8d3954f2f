// Node-only tests of the panel's pure pieces (no browser): the raster fills behind every
// heatmap, and the validator that guards every host message.
// Run: node --import tsx --test test/webview/render-math.test.ts

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { fillHeat, fillHeatDown, fillHeatRaw } from '../../webview/heatmap';
import { parseHostMessage } from '../../src/protocol/validate';
import { LUT_SIZE } from '../../webview/theme';
import { encodeF16, layerTensor, layerThumbs, thumbSize, decodeHead, meanHeads } from '../../src/analysis';
import { layerMessages } from '../../src/run/messages';
import { rng, syntheticRun } from './synthetic';

// An identity "palette": pixel value = palette index, so fills can be checked numerically.
const ID_LUT = Uint32Array.from({ length: LUT_SIZE }, (_, i) => i);
const q = (w: number): number => Math.min(LUT_SIZE - 1, (w * (LUT_SIZE - 1) + 0.5) | 0);

describe('heatmap fills', () => {
  test('full resolution over a subset of tokens, with threshold', () => {
    const T = 3;
    const m = new Float32Array([1, 0, 0, 0.5, 0.25, 0.25, 0.2, 0.3, 0.5]);
    const dst = new Uint32Array(4);
    fillHeat(dst, m, T, Int32Array.from([1, 2]), ID_LUT, 0.26);
    assert.deepEqual([...dst], [0, 0, q(0.3), q(0.5)]);
  });

  test('downsampling max-pools blocks', () => {
    const T = 4;
    const m = new Float32Array(16);
    m[0 * 4 + 1] = 0.5; // block (0,0)
    m[3 * 4 + 2] = 0.25; // block (1,1)
    m[2 * 4 + 0] = 0.125; // block (1,0)
    const dst = new Uint32Array(4);
    fillHeatDown(dst, 2, m, T, Int32Array.from([0, 1, 2, 3]), ID_LUT, 0);
    assert.deepEqual([...dst], [q(0.5), 0, q(0.125), q(0.25)]);
  });

  test("the host's thumbnails (layerThumbs) paint as the panel's own pooling of the layer", () => {
    const T = 300;
    const H = 3;
    const r = rng(4);
    const f = new Float32Array(H * T * T).map(() => r() ** 4);
    const layer = layerTensor(encodeF16(f).buffer, 'f16', H, T);
    const size = thumbSize(T);
    assert.equal(size, 100);
    const th = layerThumbs(layer)!;
    const thumbs = layerTensor(th.data, 'f16', H + 1, size, th.packed);
    const vis = Int32Array.from({ length: T }, (_, i) => i);
    const n = size * size;
    for (let h = 0; h <= H; h++) {
      const own = new Uint32Array(n);
      const host = new Uint32Array(n);
      fillHeatDown(own, size, h < H ? decodeHead(layer, h) : meanHeads(layer), T, vis, ID_LUT, 0.01);
      fillHeatRaw(host, n, thumbs.raw, thumbs.lut, h * n, ID_LUT, 0.01);
      if (h < H) assert.deepEqual(host, own, `head ${h}: the same pixels`);
      else {
        // The mean is rounded to f16 on the host: at most the neighbouring palette entry, and only near one.
        let worst = 0;
        for (let i = 0; i < n; i++) worst = Math.max(worst, Math.abs(host[i] - own[i]));
        assert.ok(worst <= 1, `mean: palette index off by ${worst}`);
      }
    }
  });

  test('thumbnail sizes stay at or under 128 pixels', () => {
    assert.equal(thumbSize(44), 44);
    assert.equal(thumbSize(128), 128);
    assert.equal(thumbSize(129), 65);
    assert.equal(thumbSize(512), 128);
    assert.equal(thumbSize(513), 103);
    for (let V = 1; V < 2000; V += 37) assert.ok(thumbSize(V) <= 128);
  });
});

describe('host message validation', () => {
  const run = syntheticRun({ layers: 2, heads: 2 });

  test('accepts the real sequence', () => {
    const start = parseHostMessage(run.start);
    assert.equal(start?.type, 'run/start');
    assert.deepEqual(start && start.type === 'run/start' ? start.sourceText : null, run.start.sourceText);
    const buf = run.layers[0].slice().buffer;
    const layer = parseHostMessage({ type: 'run/layer', runId: 1, layer: 0, data: buf });
    assert.ok(layer && layer.type === 'run/layer' && layer.data === buf);
    // A typed-array view is accepted too.
    assert.ok(parseHostMessage({ type: 'run/layer', runId: 1, layer: 0, data: run.layers[0] }));
    // A part of a layer says where it starts; the controller's messages pass as they are.
    assert.equal((parseHostMessage({ type: 'run/layer', runId: 1, layer: 0, data: buf, start: 32 }) as { start?: number }).start, 32);
    const thumbs = parseHostMessage({ type: 'run/thumbs', runId: 1, layer: 2, size: 128, data: buf, packed: true });
    assert.deepEqual(thumbs, { type: 'run/thumbs', runId: 1, layer: 2, size: 128, data: buf, packed: true });
    const parts = layerMessages(1, 0, new ArrayBuffer(3 << 20), false, 'f16');
    assert.deepEqual(parts.map((m) => m.start), [0, 1 << 19, 2 << 19]);
    assert.deepEqual(parts.map((m) => (parseHostMessage(m) as { start?: number }).start), [0, 1 << 19, 2 << 19]);
    const whole = layerMessages(1, 0, buf, false, 'f16');
    assert.equal(whole.length, 1);
    assert.equal(whole[0].data, buf, 'a small layer is one message of its own buffer');
    assert.equal('start' in whole[0], false);
    assert.deepEqual(parseHostMessage({ type: 'run/done', runId: 1, timings: { forwardMs: 3, bad: 'x' }, runtime: 'cpu' }), {
      type: 'run/done',
      runId: 1,
      timings: { forwardMs: 3 },
      runtime: 'cpu',
    });
    assert.deepEqual(parseHostMessage({ type: 'status', message: null }), { type: 'status', message: null });
    assert.deepEqual(parseHostMessage({ type: 'focus/token', runId: 1, tokenIndex: 3 }), { type: 'focus/token', runId: 1, tokenIndex: 3 });
  });

  test('rejects malformed messages', () => {
    const bad: unknown[] = [
      null,
      undefined,
      7,
      'run/start',
      [],
      { type: 'nope' },
      { ...run.start, runId: -1 },
      { ...run.start, runId: 1.5 },
      { ...run.start, tokens: [] },
      { ...run.start, tokens: [{ text: 'a', start: 0, end: 1 }] },
      { ...run.start, tokens: [{ text: 'a', start: 5, end: 1, special: false }] },
      { ...run.start, encoding: 'bf16' },
      { ...run.start, model: { ...run.start.model, layers: 0 } },
      { ...run.start, model: { ...run.start.model, heads: 1e9 } },
      { ...run.start, model: null },
      { type: 'run/layer', runId: 1, layer: 0, data: [1, 2, 3] },
      { type: 'run/layer', runId: 1, layer: -1, data: new ArrayBuffer(4) },
      { type: 'run/layer', runId: 1, data: new ArrayBuffer(4) },
      { type: 'run/layer', runId: 1, layer: 0, data: new ArrayBuffer(4), start: -16 },
      { type: 'run/layer', runId: 1, layer: 0, data: new ArrayBuffer(4), start: '0' },
      { type: 'run/thumbs', runId: 1, layer: 0, data: new ArrayBuffer(4) },
      { type: 'run/thumbs', runId: 1, layer: 0, size: 0, data: new ArrayBuffer(4) },
      { type: 'run/thumbs', runId: 1, layer: 0, size: 64, data: 'x' },
      { type: 'run/error', runId: 1 },
      { type: 'run/error', runId: 1, message: { toString: 'x' } },
      { type: 'status', message: 3 },
      { type: 'focus/token', runId: 1, tokenIndex: -2 },
      { type: 'run/done' },
    ];
    for (const m of bad) assert.equal(parseHostMessage(m), null, JSON.stringify(m) ?? String(m));
  });

  test('drops a bad sourceText but keeps the run', () => {
    const m = parseHostMessage({ ...run.start, sourceText: { text: 5, offset: 0 } });
    assert.ok(m && m.type === 'run/start' && m.sourceText === undefined);
  });
});
