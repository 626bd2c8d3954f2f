// The panel's side of the run protocol, in real Chromium with the built bundle: every piece of
// attention read is acknowledged (the host's outbox sends more only then), milestones go back to
// the host, and a failing newer run leaves the previous one visibly marked, with no stale status.
// Run: node --import tsx --test test/webview/runs.test.ts
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { Browser } from 'playwright-core';
import { launch, openPanel, postLayer, postMessages, posted, screenshot } from './harness';
import { syntheticRun } from './synthetic';

let browser: Browser;

before(async () => {
  browser = await launch();
});

after(async () => {
  await browser?.close();
});

describe('the panel and the host outbox', () => {
  test('acknowledges the bytes of every layer it reads, used, stale or refused, and reports milestones', async () => {
    const p = await openPanel(browser);
    try {
      const { page } = p;
      const run = syntheticRun({ layers: 3, heads: 4, runId: 5 });
      await postMessages(page, [run.start]);
      let bytes = 0;
      for (let l = 0; l < 3; l++) {
        await postLayer(page, 5, l, run.layers[l]);
        bytes += run.layers[l].byteLength;
      }
      await postLayer(page, 4, 0, run.layers[0]); // a stale run's layer: dropped, still read
      await postLayer(page, 5, 1, new Uint16Array(10)); // a duplicate of the wrong size: refused, still read
      bytes += run.layers[0].byteLength + 20;
      await page.waitForFunction((n) => (window as unknown as { __posted: { type: string; bytes?: number }[] }).__posted.filter((m) => m.type === 'ack').reduce((s, m) => s + (m.bytes ?? 0), 0) >= n, bytes, { timeout: 10_000 });
      const msgs = await posted(page);
      const acked = msgs.filter((m) => m.type === 'ack').map((m) => m.bytes as number);
      assert.equal(acked.length, 5, 'one acknowledgement per message with attention');
      assert.equal(acked.reduce((s, b) => s + b, 0), bytes);
      await page.waitForFunction(() => (window as unknown as { __posted: { type: string }[] }).__posted.some((m) => m.type === 'run/milestone' && (m as { what?: string }).what === 'painted'));
      const milestones = (await posted(page)).filter((m) => m.type === 'run/milestone');
      assert.deepEqual(
        milestones.map((m) => `${m.runId}:${m.what}`).sort(),
        ['5:complete', '5:painted'],
      );
      assert.deepEqual(p.errors, []);
    } finally {
      await p.close();
    }
  });

  test('a newer run that fails: its error, no stale status, the previous run marked as such; the next run clears it', async () => {
    const p = await openPanel(browser);
    try {
      const { page } = p;
      const first = syntheticRun({ layers: 2, heads: 2, runId: 1 });
      await postMessages(page, [first.start]);
      for (let l = 0; l < 2; l++) await postLayer(page, 1, l, first.layers[l]);
      await postMessages(page, [{ type: 'run/done', runId: 1, timings: {}, runtime: 'cpu' }]);
      await page.waitForSelector('#app[data-complete-run="1"]');
      await postMessages(page, [
        { type: 'status', message: 'Resolving model…' },
        { type: 'run/error', runId: 2, message: 'The model folder has no onnx/model.onnx.' },
      ]);
      await page.waitForSelector('.error:not([hidden])');
      assert.equal(await page.locator('.error').textContent(), 'The model folder has no onnx/model.onnx.');
      assert.equal(await page.locator('.previous-note').textContent(), 'Still showing the previous run (sample.txt:1).');
      assert.equal(((await page.locator('.status').textContent()) ?? '').trim(), '', 'no stale progress beside the error');
      assert.equal(await page.locator('#app.previous').count(), 1, 'the run on screen is marked as the previous one');
      await screenshot(page, 'dark-previous-run');
      const next = syntheticRun({ layers: 2, heads: 2, runId: 3 });
      await postMessages(page, [next.start]);
      await page.waitForSelector('.error[hidden]', { state: 'attached' });
      assert.equal(await page.locator('#app.previous').count(), 0);
      assert.equal(await page.locator('.previous-note').isVisible(), false);
      assert.deepEqual(p.errors, []);
    } finally {
      await p.close();
    }
  });
});
