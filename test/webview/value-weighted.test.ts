// Value-weighted attention in the built panel bundle, in real Chromium: V (or the Weights select)
// asks the host for the run's value norms (values/request); the test plays the host with norms and
// Gram matrices of random head vectors, and the matrix must then show ‖α^h_ij f^h_j‖ and
// ‖Σ_h α^h_ij f^h_j‖ as shares of each row (computed here from the same vectors), say so in its
// caption, tell the host (hover/token carries the weighting), go back to attention on V, and drop
// back to attention with the host's reason when there are no norms.
// Run: node --import tsx --test test/webview/value-weighted.test.ts
// Screenshots: test-output/screenshots/webview-value-weighted-*.png

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { Browser, Page } from 'playwright-core';
import { ensureBuilt, frames, launch, openPanel, postLayer, postMessages, posted, screenshot } from './harness';
import { rng, syntheticRun, tokenize } from './synthetic';
import { fmtWeight } from '../../webview/dom';

const TEXT = 'Lily saw a little girl in the park, and the girl waved back at Lily.';
const L = 2, H = 4, D = 6;

let browser: Browser;
before(async () => {
  ensureBuilt();
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

/** f^h(x_j) for each layer [T][H][D] from a seeded generator, and the norms and Gram matrices the host would send. */
function headVectors(T: number) {
  const r = rng(7);
  const f = Array.from({ length: L }, () => Array.from({ length: T }, () => Array.from({ length: H }, () => Array.from({ length: D }, () => r() * 2 - 1))));
  const norms = new Float32Array(L * H * T);
  const gram = new Float32Array(L * T * H * H);
  const dot = (a: number[], b: number[]) => a.reduce((s, x, i) => s + x * b[i], 0);
  for (let l = 0; l < L; l++) for (let j = 0; j < T; j++) for (let h = 0; h < H; h++) {
    norms[(l * H + h) * T + j] = Math.sqrt(dot(f[l][j][h], f[l][j][h]));
    for (let k = 0; k < H; k++) gram[((l * T + j) * H + h) * H + k] = dot(f[l][j][h], f[l][j][k]);
  }
  return { f, norms, gram };
}

async function answerValues(page: Page, runId: number, norms: Float32Array, gram: Float32Array): Promise<void> {
  await page.evaluate(
    ([runId, n, g]) => window.postMessage({ type: 'values/data', runId, data: { norms: Float32Array.from(n).buffer, gram: Float32Array.from(g).buffer, kind: 'output-projected' } }, '*'),
    [runId, Array.from(norms), Array.from(gram)] as const,
  );
}

const caption = async (page: Page) => ((await page.locator('.mx-caption').textContent()) ?? '').trim();

async function hoverCell(page: Page, T: number, r: number, c: number): Promise<void> {
  const box = (await page.locator('.mx-heat').boundingBox())!;
  const cell = box.width / T;
  await page.mouse.move(box.x + (c + 0.5) * cell, box.y + (r + 0.5) * cell);
  await frames(page);
}

test('V shows value-weighted attention in the matrix, from the host’s norms, and back', async () => {
  const p = await openPanel(browser, { viewport: { width: 1200, height: 900 } });
  try {
    const { page } = p;
    const run = syntheticRun({ runId: 4, layers: L, heads: H, text: TEXT, tokens: tokenize(TEXT), causal: true, encoding: 'f32' });
    const T = run.start.tokens.length;
    await postMessages(page, [run.start]);
    for (let l = 0; l < L; l++) await postLayer(page, 4, l, run.layers[l]);
    await postMessages(page, [{ type: 'run/done', runId: 4, timings: {}, runtime: 'synthetic' }]);
    await page.waitForSelector('#app[data-complete-run="4"]');
    await page.click('#tab-matrix');
    await page.selectOption('select.layer', '1');
    await page.selectOption('select.head', '2');
    await frames(page);
    const alpha = run.layers[1] as Float32Array;
    const a = (h: number, i: number, j: number) => alpha[(h * T + i) * T + j];
    const [r, c] = [12, 3];
    await hoverCell(page, T, r, c);
    assert.match(await caption(page), new RegExp(`: ${fmtWeight(a(2, r, c)).replace('.', '\\.')}$`));

    // V: the panel asks the host once, and waits without showing attention under the new name.
    await page.keyboard.press('v');
    await frames(page);
    assert.equal(await page.locator('select.weights').inputValue(), 'value');
    assert.deepEqual((await posted(page)).filter((m) => m.type === 'values/request'), [{ type: 'values/request', runId: 4 }]);
    assert.equal(await page.locator('.mx-heat.waiting').count(), 1);
    assert.match((await page.locator('.status').textContent()) ?? '', /Computing value norms/);

    const { f, norms, gram } = headVectors(T);
    await answerValues(page, 4, norms, gram);
    await frames(page, 3);
    assert.equal(await page.locator('.mx-heat.waiting').count(), 0);
    await hoverCell(page, T, r, c);
    const headRow = Array.from({ length: T }, (_, j) => a(2, r, j) * norms[(1 * H + 2) * T + j]);
    const expectHead = headRow[c] / headRow.reduce((s, x) => s + x, 0);
    const cap = await caption(page);
    assert.match(cap, /head 3, value-weighted \(‖α·v·W_O‖\)/);
    assert.ok(cap.endsWith(`: ${fmtWeight(expectHead)}`), `${cap} (expected ${fmtWeight(expectHead)})`);
    assert.notEqual(fmtWeight(expectHead), fmtWeight(a(2, r, c)));
    const hover = (await posted(page)).filter((m) => m.type === 'hover/token').at(-1)!;
    assert.equal(hover.weights, 'value');
    await screenshot(page, 'value-weighted-head');

    // The heads together: ‖Σ_h α^h f^h‖ per key, as shares of the row.
    await page.selectOption('select.head', 'mean');
    await hoverCell(page, T, r, c);
    const layerRow = Array.from({ length: T }, (_, j) => {
      const sum = new Array(D).fill(0);
      for (let h = 0; h < H; h++) for (let d = 0; d < D; d++) sum[d] += a(h, r, j) * f[1][j][h][d];
      return Math.sqrt(sum.reduce((s, x) => s + x * x, 0));
    });
    const expectLayer = layerRow[c] / layerRow.reduce((s, x) => s + x, 0);
    const capMean = await caption(page);
    assert.match(capMean, /heads together, value-weighted/);
    assert.ok(capMean.endsWith(`: ${fmtWeight(expectLayer)}`), `${capMean} (expected ${fmtWeight(expectLayer)})`);
    await screenshot(page, 'value-weighted-layer');

    // V again: attention, with no second request.
    await page.keyboard.press('v');
    await page.selectOption('select.head', '2');
    await hoverCell(page, T, r, c);
    assert.ok((await caption(page)).endsWith(`: ${fmtWeight(a(2, r, c))}`));
    assert.equal((await posted(page)).filter((m) => m.type === 'values/request').length, 1);
  } finally {
    await p.close();
  }
});

test('a run without value norms: the host’s reason is shown and the panel goes back to attention', async () => {
  const p = await openPanel(browser);
  try {
    const { page } = p;
    const run = syntheticRun({ runId: 9, layers: L, heads: H, text: TEXT, tokens: tokenize(TEXT), encoding: 'f32' });
    await postMessages(page, [run.start]);
    for (let l = 0; l < L; l++) await postLayer(page, 9, l, run.layers[l]);
    await page.waitForSelector('#app[data-complete-run="9"]');
    await page.selectOption('select.weights', 'value');
    await page.waitForFunction(() => (window as unknown as { __posted: { type: string }[] }).__posted.some((m) => m.type === 'values/request'));
    await postMessages(page, [{ type: 'values/data', runId: 9, error: 'This model’s values cannot be captured.' }]);
    await frames(page);
    assert.equal(await page.locator('select.weights').inputValue(), 'attention');
    assert.match((await page.locator('.status').textContent()) ?? '', /Value weighting: This model’s values cannot be captured\./);
  } finally {
    await p.close();
  }
});
