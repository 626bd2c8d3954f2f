// Compare in the built panel, in real Chromium: the panel pins a run as the baseline (the test
// plays the host's part of compare/pin -> compare/baseline), a second run arrives with a word
// changed, and Difference mode (toggled from the keyboard) paints B − A on the diverging palette
// in the matrix, model and head views: red where the new run attends more, blue where less, grey
// hatched gaps for inserted and deleted tokens, and hover text that says which. Identical runs
// paint no difference at all; a baseline of another model is refused with its reason.
//
// Run: node --import tsx --test test/webview/compare.test.ts
// Screenshots: test-output/screenshots/webview-compare-*.png

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { Browser, Page } from 'playwright-core';
import { ensureBuilt, launch, openPanel, postLayer, postMessages, postWithData, posted, screenshot, frames, themeBackground, type PanelPage } from './harness';
import { tokenize } from './synthetic';
import { encodeF16 } from '../../src/analysis';
import { alignTokens } from '../../src/analysis/compare';
import type { RunStartMessage } from '../../src/protocol/webview';
import { AttentionEngine } from '../../src/engine/engine';
import { runPayloads } from '../../src/engine/payloads';
import { payloadMessages, runStartMessage } from '../../src/run/messages';
import { tempDir, STORIES } from '../unit/helpers/shared';

let browser: Browser;

before(async () => {
  ensureBuilt();
  browser = await launch();
});

after(async () => {
  await browser?.close();
});

const L = 2;
const H = 3;
const A_TEXT = 'The cat sat on the mat because it was tired.';
const B_TEXT = 'The big dog sat on the mat because it was tired.';

function start(runId: number, text: string, model = 'synthetic/tiny'): RunStartMessage {
  return {
    type: 'run/start',
    runId,
    model: { id: model, architecture: 'bert', kind: 'encoder', layers: L, heads: H, maxLength: 512 },
    tokens: tokenize(text),
    encoding: 'f16',
    source: `story.txt:${runId}`,
    truncation: null,
    notices: [],
    sourceText: { offset: 0, text },
  };
}

/** [H][T][T] f16 attention, every row `row(q)` (a probability vector over T keys). */
function layer(T: number, row: (q: number, k: number) => number): Uint16Array {
  const f = new Float32Array(H * T * T);
  for (let h = 0; h < H; h++) for (let q = 0; q < T; q++) for (let k = 0; k < T; k++) f[(h * T + q) * T + k] = row(q, k);
  return encodeF16(f);
}

const uniform = (T: number) => layer(T, () => 1 / T);
/** Every query attends to the first token ([CLS]) only. */
const sink = (T: number) => layer(T, (_, k) => (k === 0 ? 1 : 0));

async function feed(page: Page, s: RunStartMessage, layers: (T: number) => Uint16Array): Promise<void> {
  await postMessages(page, [s]);
  for (let l = 0; l < L; l++) await postLayer(page, s.runId, l, layers(s.tokens.length));
  await postMessages(page, [{ type: 'run/done', runId: s.runId, timings: {}, runtime: 'synthetic' }]);
  await page.waitForFunction((id) => document.getElementById('app')!.dataset.runId === String(id) && document.getElementById('app')!.dataset.completeRun === String(id), s.runId);
}

/** Clicks Pin, answers as the host would, and waits for the panel to show the baseline. */
async function pin(page: Page, runId: number): Promise<void> {
  await page.click('button.pin-baseline');
  await page.waitForFunction((id) => (window as unknown as { __posted: { type: string; runId?: number }[] }).__posted.some((m) => m.type === 'compare/pin' && m.runId === id), runId);
  await postMessages(page, [{ type: 'compare/baseline', baseline: runId }]);
  await page.waitForSelector('#app[data-compare="baseline"]');
}

/** The matrix view's heat canvas, pixel by pixel: [r, g, b] per cell, row by row. */
async function heatPixels(page: Page): Promise<{ w: number; px: number[][] }> {
  return page.evaluate(() => {
    const c = document.querySelector<HTMLCanvasElement>('.mx-heat')!;
    const d = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
    const px: number[][] = [];
    for (let i = 0; i < d.length; i += 4) px.push([d[i], d[i + 1], d[i + 2]]);
    return { w: c.width, px };
  });
}

const hex = (s: string): number[] => [1, 3, 5].map((i) => parseInt(s.slice(i, i + 2), 16));
const red = ([r, g, b]: number[]) => r > g + 40 && r > b + 40;
const blue = ([r, , b]: number[]) => b > r + 20;
const grey = ([r, g, b]: number[], bg: number[]) => r === g && g === b && Math.abs(r - bg[0]) > 20;

function noErrors(p: PanelPage): void {
  assert.deepEqual(p.errors, [], 'page errors');
  assert.deepEqual(p.cspViolations, [], 'CSP violations');
}

describe('Compare: Difference from a pinned baseline', () => {
  test('pin, a second run with a word changed, Difference on from the keyboard: B − A on the diverging palette in every view, gaps grey and named', async () => {
    const p = await openPanel(browser, { viewport: { width: 1200, height: 800 } });
    const { page } = p;
    try {
      const a = start(1, A_TEXT);
      const b = start(2, B_TEXT);
      await feed(page, a, uniform);
      assert.equal(await page.locator('#difference').isDisabled(), true, 'nothing to compare with before a baseline');
      await pin(page, 1);
      assert.match((await page.locator('.compare-note').textContent()) ?? '', /Baseline: story\.txt:1 \(this run\)/);
      await feed(page, b, sink);

      // Difference on, from the keyboard.
      await page.focus('#difference');
      await page.keyboard.press('Space');
      await page.waitForSelector('#app[data-compare="difference"]');
      assert.match((await page.locator('.compare-note').textContent()) ?? '', /red more attention, blue less; grey: 2 inserted, 1 deleted tokens/);
      assert.equal(await page.locator('.legend-wrap span').first().textContent(), '−max');

      // The axis the panel must use: the test's own alignment of the two token lists.
      const { axis } = alignTokens({ tokens: a.tokens, sourceText: a.sourceText! }, { tokens: b.tokens, sourceText: b.sourceText! });
      const N = axis.a.length;
      const TA = a.tokens.length;
      const gapAt = (n: number) => axis.a[n] < 0 || axis.b[n] < 0;
      assert.equal(N, b.tokens.length + 1, 'one deleted token joins the axis');

      await page.click('#tab-matrix');
      await frames(page, 3);
      const { w, px } = await heatPixels(page);
      assert.equal(w, N, 'one pixel per token of the axis');
      const bg = hex(themeBackground('dark'));
      let [reds, blues, greys] = [0, 0, 0];
      for (let i = 0; i < N; i++)
        for (let j = 0; j < N; j++) {
          const c = px[i * N + j];
          if (gapAt(i) || gapAt(j)) {
            assert.ok(grey(c, bg), `gap cell (${i}, ${j}) is the neutral grey: ${c}`);
            greys++;
          } else if (j === 0) {
            // B attends only to [CLS]: +(1 − 1/TA) there ...
            assert.ok(red(c), `(${i}, 0): more attention than the baseline is red: ${c}`);
            reds++;
          } else {
            // ... and −1/TA everywhere else.
            assert.ok(blue(c), `(${i}, ${j}): less attention than the baseline is blue: ${c}`);
            blues++;
          }
        }
      assert.ok(reds > 0 && blues > 0 && greys > 0);

      // Hover text over a gap and over a number.
      const box = (await page.locator('.mx-heat').boundingBox())!;
      const cell = box.width / N;
      const at = (r: number, c: number) => page.mouse.move(box.x + (c + 0.5) * cell, box.y + (r + 0.5) * cell);
      const inserted = Array.from(axis.a).findIndex((i) => i < 0);
      const deleted = Array.from(axis.b).findIndex((j) => j < 0);
      await at(inserted, 0);
      await frames(page);
      assert.match((await page.locator('.mx-caption').textContent()) ?? '', /now − baseline, max ±\.933 .*“big” → “\[CLS\]”: not in baseline$/, 'the colour scale is the largest change: 1 − 1/TA');
      await at(deleted, 0);
      await frames(page);
      assert.match((await page.locator('.mx-caption').textContent()) ?? '', /“cat” → “\[CLS\]”: deleted since baseline$/);
      await at(1, 0);
      await frames(page);
      const plus = `+${(1 - 1 / TA).toFixed(3).replace(/^0/, '')}`;
      assert.ok(((await page.locator('.mx-caption').textContent()) ?? '').endsWith(`“The” → “[CLS]”: ${plus}`), 'a signed difference');
      // The host hears of the current run's token, never of an axis position: "dog" is token 3 of B.
      await at(axis.b.indexOf(3), 1);
      await frames(page);
      assert.equal((await posted(page)).filter((m) => m.type === 'hover/token').pop()?.tokenIndex, 3);
      await at(deleted, 1);
      await frames(page);
      assert.equal((await posted(page)).filter((m) => m.type === 'hover/token').pop()?.tokenIndex, null, 'a deleted token is no token of the current run');
      await at(4, 5);
      await frames(page);
      await screenshot(page, 'compare-matrix');

      // Special tokens hidden: both runs renormalised, the axis without them; rollout: both runs' rollouts.
      await page.check('#hide-special');
      await frames(page, 3);
      assert.equal((await heatPixels(page)).w, N - 2);
      await page.uncheck('#hide-special');
      await page.selectOption('select.head', 'rollout');
      await page.waitForFunction(() => !document.querySelector('.mx-heat')!.classList.contains('waiting'));
      await frames(page, 2);
      assert.match((await page.locator('.mx-caption').textContent()) ?? '', /rollout · now − baseline, max ±/);
      assert.ok(grey((await heatPixels(page)).px[inserted * N], bg), 'rollout differences have their gaps too');
      await page.selectOption('select.head', 'mean');

      // Model view: every thumbnail on the diverging palette, with its gap bands.
      await page.click('#tab-model');
      await page.waitForFunction(() => document.querySelectorAll('.model-grid .cell.pending, .model-grid .cell.stale').length === 0);
      const thumbs = await page.evaluate(() =>
        [...document.querySelectorAll<HTMLCanvasElement>('.model-grid canvas.thumb')].map((c) => {
          const d = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
          const px: number[][] = [];
          for (let i = 0; i < d.length; i += 4) px.push([d[i], d[i + 1], d[i + 2]]);
          return { w: c.width, px, label: c.getAttribute('aria-label') };
        }),
      );
      assert.equal(thumbs.length, L * (H + 1));
      for (const t of thumbs) {
        assert.equal(t.w, N);
        assert.match(t.label ?? '', /attention difference from the baseline$/);
        assert.ok(red(t.px[1 * N + 0]) && blue(t.px[1 * N + 1]) && grey(t.px[inserted * N + 1], bg), `${t.label}: red, blue and grey where expected`);
      }
      await screenshot(page, 'compare-model');

      // Head view: red lines to [CLS], blue ones elsewhere; gap tokens hatched and named.
      await page.click('#tab-head');
      await page.locator('.tok.q[data-index="1"]').hover();
      await frames(page, 3);
      assert.equal(await page.locator('.tok.q.gap').count(), 3);
      assert.match((await page.locator(`.tok.q[data-index="${inserted}"]`).getAttribute('title')) ?? '', /not in baseline$/);
      assert.match((await page.locator(`.tok.q[data-index="${deleted}"]`).getAttribute('title')) ?? '', /deleted since baseline$/);
      const lines = await page.evaluate(() => {
        const c = document.querySelector<HTMLCanvasElement>('.hv-lines')!;
        const d = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
        let r = 0;
        let b = 0;
        for (let i = 0; i < d.length; i += 4) {
          if (d[i + 3] === 0) continue;
          if (d[i] > d[i + 2] + 40) r++;
          else if (d[i + 2] > d[i] + 40) b++;
        }
        return { r, b };
      });
      assert.ok(lines.r > 0 && lines.b > 0, `red and blue lines (${lines.r} red, ${lines.b} blue pixels)`);
      assert.match((await page.locator('.side-title').textContent()) ?? '', /What “The” attends to: largest changes/);
      assert.match((await page.locator('.top-words li:not([hidden]) .val').first().textContent()) ?? '', /^\+/);
      await screenshot(page, 'compare-head');

      // Off again: the run itself, on the attention palette.
      await page.click('#difference');
      await page.waitForSelector('#app[data-compare="baseline"]');
      assert.equal(await page.locator('.legend-wrap span').first().textContent(), '0');
      assert.equal(await page.locator('.tok.q.gap').count(), 0);

      // Clear: the host is told, and its answer clears the panel.
      await page.click('button.clear-baseline');
      assert.ok((await posted(page)).some((m) => m.type === 'compare/clear'));
      await postMessages(page, [{ type: 'compare/baseline', baseline: null }]);
      await page.waitForSelector('#app[data-compare=""]');
      assert.equal(await page.locator('#difference').isDisabled(), true);
      noErrors(p);
    } finally {
      await p.close();
    }
  });

  test('identical runs: the difference is zero in every cell (the background colour)', async () => {
    const p = await openPanel(browser);
    const { page } = p;
    try {
      await feed(page, start(1, A_TEXT), sink);
      await pin(page, 1);
      await feed(page, start(2, A_TEXT), sink);
      await page.check('#difference');
      await page.click('#tab-matrix');
      await page.waitForSelector('#app[data-compare="difference"]');
      await frames(page, 3);
      const { w, px } = await heatPixels(page);
      const bg = hex(themeBackground('dark'));
      assert.equal(w, tokenize(A_TEXT).length);
      assert.ok(px.every((c) => c.every((v, i) => v === bg[i])), 'no cell differs from the background');
      assert.match((await page.locator('.compare-note').textContent()) ?? '', /0 inserted, 0 deleted/);
      noErrors(p);
    } finally {
      await p.close();
    }
  });

  test('a baseline of another model is refused with the reason; a baseline the panel no longer holds is cleared', async () => {
    const p = await openPanel(browser);
    const { page } = p;
    try {
      await feed(page, start(1, A_TEXT, 'other/model'), uniform);
      await pin(page, 1);
      await feed(page, start(2, B_TEXT), sink);
      assert.equal(await page.locator('#difference').isDisabled(), true);
      assert.match((await page.locator('.compare-note').textContent()) ?? '', /The baseline ran other\/model and this run synthetic\/tiny: a difference needs the same model\./);
      await postMessages(page, [{ type: 'compare/baseline', baseline: 7 }]);
      await page.waitForFunction(() => (window as unknown as { __posted: { type: string }[] }).__posted.some((m) => m.type === 'compare/clear'));
      noErrors(p);
    } finally {
      await p.close();
    }
  });

  test('the real stories260K, a word changed: no difference before the edit (a causal model), colour after it, the changed words grey', async () => {
    const A = 'Once upon a time, there was a little girl named Lily. She loved to play in the park with her dog.';
    const B = 'Once upon a time, there was a little boy named Tim. She loved to play in the park with her dog.';
    const engine = new AttentionEngine({ cacheDir: tempDir(), runtime: 'cpu', offline: true });
    const p = await openPanel(browser, { viewport: { width: 1200, height: 900 } });
    const { page } = p;
    try {
      const starts: RunStartMessage[] = [];
      for (const [runId, text] of [[1, A], [2, B]] as const) {
        const r = await engine.analyze(STORIES, text, { encoding: 'f16' });
        // As the controller sends a live update: the same place in the same document.
        const s = runStartMessage(r, { runId, text, offset: 40, label: `story.txt:${runId}` });
        starts.push(s);
        await postMessages(page, [s]);
        for (const payload of runPayloads(r)) {
          for (const { data, ...m } of payloadMessages(runId, payload, r.encoding)) await postWithData(page, m, data);
        }
        await postMessages(page, [{ type: 'run/done', runId, timings: {}, runtime: 'cpu' }]);
        await page.waitForSelector(`#app[data-complete-run="${runId}"]`);
        if (runId === 1) await pin(page, 1);
      }
      await page.check('#difference');
      await page.click('#tab-matrix');
      await page.waitForSelector('#app[data-compare="difference"]');
      await frames(page, 3);
      const { axis } = alignTokens({ tokens: starts[0].tokens, sourceText: starts[0].sourceText! }, { tokens: starts[1].tokens, sourceText: starts[1].sourceText! });
      const N = axis.a.length;
      const firstGap = Array.from(axis.a).findIndex((i, n) => i < 0 || axis.b[n] < 0);
      assert.ok(firstGap > 5, 'the tokens before "girl" match');
      const { w, px } = await heatPixels(page);
      assert.equal(w, N);
      const bg = hex(themeBackground('dark'));
      for (let i = 0; i < firstGap; i++) for (let j = 0; j < N; j++) if (j < firstGap) assert.deepEqual(px[i * N + j], bg, `(${i}, ${j}) before the edit: no difference`);
      let coloured = 0;
      for (let i = firstGap; i < N; i++) {
        const gapRow = axis.a[i] < 0 || axis.b[i] < 0;
        for (let j = 0; j <= i; j++) {
          const c = px[i * N + j];
          const gapCol = axis.a[j] < 0 || axis.b[j] < 0;
          if (gapRow || gapCol) assert.ok(grey(c, bg), `(${i}, ${j}) is a gap`);
          else if (c.some((v, k) => Math.abs(v - bg[k]) > 8)) coloured++;
        }
      }
      assert.ok(coloured > 20, `cells after the edit show a difference (${coloured})`);
      const box = (await page.locator('.mx-heat').boundingBox())!;
      const cell = box.width / N;
      await page.mouse.move(box.x + 0.5 * cell, box.y + (N - 0.5) * cell);
      await frames(page);
      assert.match((await page.locator('.mx-caption').textContent()) ?? '', /“\.” → “<s>”: [+−](\.\d{3}|\de-\d)$/);
      await screenshot(page, 'compare-stories-matrix');
      await page.click('#tab-model');
      await page.waitForFunction(() => document.querySelectorAll('.model-grid .cell.pending, .model-grid .cell.stale').length === 0);
      await screenshot(page, 'compare-stories-model');
      noErrors(p);
    } finally {
      await p.close();
      await engine.dispose();
    }
  });
});
