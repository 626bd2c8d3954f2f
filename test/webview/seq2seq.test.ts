// An encoder-decoder run in the built panel bundle, in real Chromium: the real aren-transliteration
// model transliterates آتزمون, and its run goes to the panel as the extension sends it
// (runStartMessage with seq2seq, the decoder's layers, the encoder's and the cross-attention as
// parts). The panel opens on the alignment (target rows on source columns, the cells the engine
// computed), says what the model wrote, reports hovers as cross rows or source columns, and the
// Attention select shows the encoder's and the decoder's self-attention in the usual views.
// Run: node --import tsx --test test/webview/seq2seq.test.ts
// Screenshots: test-output/screenshots/webview-seq2seq-*.png

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { ensureBuilt, frames, launch, openPanel, postMessages, postWithData, posted, screenshot } from './harness';
import { AttentionEngine } from '../../src/engine/engine';
import { seq2seqPayloads } from '../../src/engine/payloads';
import { payloadMessages, runStartMessage } from '../../src/run/messages';
import type { Seq2seqResult } from '../../src/engine/types';
import { fmtWeight } from '../../webview/dom';
import { SHARED, tempDirs } from '../unit/helpers/shared';

const AREN = path.join(SHARED, 'models/aren-transliteration');
const SOURCE = 'آتزمون';
const tempDir = tempDirs('attention-lens-s2s-panel-');

let browser: Browser;
let r: Seq2seqResult;

before(async () => {
  ensureBuilt();
  const engine = new AttentionEngine({ cacheDir: tempDir(), offline: true });
  try {
    r = await engine.analyzeSeq2seq(AREN, SOURCE);
  } finally {
    await engine.dispose();
  }
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

/** Posts the run as the controller does: its start, then every payload's messages (binary data transferred). */
async function postRun(page: Page, runId: number): Promise<void> {
  const start = runStartMessage(
    { model: r.model, tokens: r.targetTokens, encoding: 'f16', shape: r.decoderShape, truncation: r.truncation, notices: r.notices, seq2seq: { sourceTokens: r.sourceTokens, encoderShape: r.encoderShape, crossShape: r.crossShape, targetText: r.targetText, forced: r.forced, finished: r.finished } },
    { runId, text: SOURCE, offset: 10, label: 'names.txt:2' },
  );
  await postMessages(page, [start]);
  for (const p of seq2seqPayloads(r, 'f16')) {
    for (const m of payloadMessages(runId, p, 'f16')) {
      const { data, ...rest } = m;
      await postWithData(page, rest, data as ArrayBuffer);
    }
  }
  await postMessages(page, [{ type: 'run/done', runId, timings: {}, runtime: 'onnxruntime-node cpu' }]);
  await page.waitForSelector(`#app[data-complete-run="${runId}"]`);
}

const text = async (page: Page, sel: string) => ((await page.locator(sel).first().textContent()) ?? '').trim();

test('an encoder-decoder run opens on its alignment, with the engine’s cross-attention; the Attention select shows encoder and decoder', async () => {
  const p = await openPanel(browser, { viewport: { width: 1100, height: 800 } });
  try {
    const { page } = p;
    await postRun(page, 3);
    await frames(page, 3);
    assert.equal(r.targetText, 'atzmon');
    assert.equal(await page.locator('#view-alignment').isVisible(), true, 'the Alignment view is what it opens on');
    assert.equal(await page.locator('#view-model').isVisible(), false);
    assert.equal(await page.locator('.tabs').isVisible(), false, 'no view tabs in the alignment');
    assert.equal(await page.locator('select.part').inputValue(), 'cross');
    const meta = await text(page, '.meta');
    assert.match(meta, /encoder 6 × 8, decoder 6 layers × 8 heads/);
    assert.match(meta, /6 source → 7 target tokens/);
    assert.match(meta, /wrote “atzmon”/);

    // Hover the cell (target "a", row 1) × (source "آ", column 0): the caption gives the engine's head-mean weight at layer 1.
    const [, H, T, S] = r.crossShape;
    let mean = 0;
    for (let h = 0; h < H; h++) mean += r.cross[(h * T + 1) * S + 0];
    mean /= H;
    const box = (await page.locator('.al-heat').boundingBox())!;
    const cell = box.width / S;
    assert.ok(Math.abs(box.height / T - cell) < 0.5, 'square cells');
    await page.mouse.move(box.x + 0.5 * cell, box.y + 1.5 * cell);
    await frames(page);
    // Tokens are bidi-isolated (FSI … PDI) so that a right-to-left source keeps the caption in order.
    const caption = (await text(page, '.al-caption')).replace(/[\u2066-\u2069]/g, '');
    assert.match(caption, /Layer 1 · mean of heads · cross-attention/);
    assert.ok(caption.endsWith(`“a” → “آ”: ${fmtWeight(mean)}`), caption);
    const hover = (await posted(page)).filter((m) => m.type === 'hover/token').at(-1)!;
    assert.deepEqual([hover.tokenIndex, hover.part, hover.side], [1, 'cross', undefined]);
    await screenshot(page, 'seq2seq-alignment');

    // Encoder: the usual views over the source, its own 6 × 8 heads.
    await page.selectOption('select.part', 'encoder');
    await frames(page, 3);
    assert.equal(await page.locator('#view-alignment').isVisible(), false);
    assert.equal(await page.locator('.tabs').isVisible(), true);
    await page.click('#tab-model');
    await page.waitForFunction(() => document.querySelectorAll('#view-model canvas').length >= 48 && Number(document.querySelector('#app')?.getAttribute('data-painted-layers')) === 6, undefined, { timeout: 20_000 });
    assert.equal(await page.locator('select.layer option').count(), 6);
    await page.click('#tab-head');
    await frames(page, 2);
    const tokens = await page.locator('#view-head .tok:visible').allTextContents();
    assert.ok(tokens.includes('آ') && tokens.includes('ن'), `the source's letters: ${tokens.join(' ')}`);
    await screenshot(page, 'seq2seq-encoder');

    // Decoder: the target tokens, written by the model (underlined), its causal self-attention.
    await page.selectOption('select.part', 'decoder');
    await frames(page, 3);
    const targets = await page.locator('#view-head .tok:visible').allTextContents();
    assert.ok(targets.includes('<s>') && targets.includes('z'), `the target's letters: ${targets.join(' ')}`);
    assert.ok((await page.locator('#view-head .tok.generated').count()) > 0, 'written tokens are marked');
    // Value weighting does not cover encoder-decoder runs: V says so and changes nothing.
    await page.locator('#view-head').click({ position: { x: 5, y: 5 } });
    await page.keyboard.press('v');
    await frames(page);
    assert.equal(await page.locator('select.weights').inputValue(), 'attention');
    assert.equal(await page.locator('select.weights').isDisabled(), true);
    assert.deepEqual(p.errors, []);
  } finally {
    await p.close();
  }
});
