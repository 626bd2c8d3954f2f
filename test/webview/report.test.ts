// The standalone HTML report (src/export/report.ts + the built report bundle) of a real engine run
// in real Chromium, opened from a file:// URL with the network off: it paints every view, answers
// hovers in the views and in the source text, makes no request and logs no error; markup in the
// text stays text.
//
// Run: node --import tsx --test test/webview/report.test.ts
// Screenshots: test-output/screenshots/report-*.png

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { ensureBuilt, launch, ROOT, SCREENSHOTS } from './harness';
import { AttentionEngine } from '../../src/engine/engine';
import { runStartMessage } from '../../src/run/messages';
import { buildReport, readReportAssets } from '../../src/export/report';
import type { RunSnapshot } from '../../src/export/snapshot';
import { storyLines } from '../harness/texts';
import { STORIES, tempDirs } from '../unit/helpers/shared';

const newDir = tempDirs('al-report-');
let browser: Browser;
let engine: AttentionEngine;

before(async () => {
  ensureBuilt(['webview', 'src/analysis', 'src/protocol', 'src/export', 'src/run', 'media'], ['out/webview/report.js', 'out/webview/report.css']);
  browser = await launch();
  engine = new AttentionEngine({ cacheDir: newDir(), offline: true });
});

after(async () => {
  await browser?.close();
  await engine?.dispose();
});

/** A real stories260K run of `text` as the extension holds it (float16, tokens on the text), written as a report; returns its path. */
async function writeReport(text: string, label: string, maxTokens = 512): Promise<{ file: string; snapshot: RunSnapshot }> {
  const result = await engine.analyze(STORIES, text, { maxTokens, encoding: 'f16' });
  const start = runStartMessage(result, { runId: 1, text, offset: 0, label });
  const snapshot: RunSnapshot = { ...start, sourceText: start.sourceText!, runtime: result.runtime, attention: result.attention as Uint16Array };
  const file = path.join(newDir(), `${label.replace(/\W+/g, '-')}.html`);
  fs.writeFileSync(file, buildReport(snapshot, readReportAssets(path.join(ROOT, 'out/webview'))));
  return { file, snapshot };
}

interface Opened {
  page: Page;
  /** Every request the page made (the document's own load included). */
  requests: string[];
  errors: string[];
  dialogs: string[];
  close(): Promise<void>;
}

/** Opens the report from its file:// URL in a fresh context with the network off, the browser preferring `scheme`. */
async function open(file: string, scheme: 'light' | 'dark'): Promise<Opened> {
  const context = await browser.newContext({ viewport: { width: 1400, height: 860 }, deviceScaleFactor: 1, colorScheme: scheme });
  await context.setOffline(true);
  const requests: string[] = [];
  const errors: string[] = [];
  const dialogs: string[] = [];
  context.on('request', (r) => requests.push(r.url()));
  // Anything but the report itself would be a request to somewhere: refuse it (and it is recorded above).
  await context.route('**/*', (route) => (route.request().url() === pathToFileURL(file).href ? route.continue() : route.abort()));
  const page = await context.newPage();
  await page.addInitScript('window.__name = (f) => f;'); // tsx's keepNames helper for page callbacks
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') errors.push(`${m.type()}: ${m.text()}`);
  });
  page.on('dialog', (d) => {
    dialogs.push(d.message());
    void d.dismiss();
  });
  await page.goto(pathToFileURL(file).href);
  return { page, requests, errors, dialogs, close: () => context.close() };
}

async function waitComplete(page: Page, layers: number): Promise<void> {
  await page.waitForFunction(
    (n) => {
      const app = document.getElementById('app')!;
      return app.dataset.completeRun === '1' && Number(app.dataset.paintedLayers) >= n;
    },
    layers,
    { timeout: 60_000 },
  );
}

/** The canvases matching `selector`: their width and how many pixels differ from the theme's background. */
async function canvasStats(page: Page, selector: string): Promise<{ label: string; w: number; lit: number }[]> {
  return page.evaluate((selector) => {
    const bg = getComputedStyle(document.body).getPropertyValue('--vscode-editor-background').trim();
    const [br, bgc, bb] = [1, 3, 5].map((i) => parseInt(bg.slice(i, i + 2), 16));
    return [...document.querySelectorAll<HTMLCanvasElement>(selector)].map((c) => {
      const d = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
      let lit = 0;
      for (let i = 0; i < d.length; i += 4) if (Math.abs(d[i] - br) + Math.abs(d[i + 1] - bgc) + Math.abs(d[i + 2] - bb) > 24) lit++;
      return { label: c.getAttribute('aria-label') ?? '', w: c.width, lit };
    });
  }, selector);
}

async function shot(page: Page, name: string): Promise<string> {
  fs.mkdirSync(SCREENSHOTS, { recursive: true });
  const file = path.join(SCREENSHOTS, `report-${name}.png`);
  await page.screenshot({ path: file });
  return file;
}

/** The source text's lit pieces: the query's text and the words at each level, strongest first. */
async function sourceMarks(page: Page): Promise<{ query: string; levels: string[] }> {
  return page.evaluate(() => {
    const text = (sel: string): string => [...document.querySelectorAll(`.source-text ${sel}`)].map((e) => e.textContent).join('|');
    return { query: text('.query'), levels: [5, 4, 3, 2, 1].map((l) => text(`.lvl${l}`)) };
  });
}

describe('standalone HTML report in Chromium', () => {
  test('a 512-token stories260K run: offline from a file, every view paints, hovers light the source text, no request, no error', async () => {
    const { file, snapshot } = await writeReport(storyLines(60), 'story.txt:1-60');
    const [L, H, T] = [snapshot.model.layers, snapshot.model.heads, snapshot.tokens.length];
    assert.equal(T, 512);
    console.log(`report of ${L}x${H}x${T}: ${(fs.statSync(file).size / 1e6).toFixed(1)} MB`);
    const o = await open(file, 'dark');
    const { page } = o;
    try {
      await waitComplete(page, L);
      // Model view: every head and mean paints, downsampled from 512 tokens.
      assert.equal(await page.locator('body').getAttribute('class'), 'vscode-dark', 'the browser prefers dark');
      const stats = await canvasStats(page, '.model-grid canvas.thumb');
      assert.equal(stats.length, L * (H + 1));
      for (const s of stats) {
        assert.ok(s.w > 0 && s.w <= 128, `${s.label}: ${s.w} px`);
        assert.ok(s.lit > 0, `${s.label} is not blank`);
      }
      assert.match((await page.locator('.meta').textContent()) ?? '', /stories260K · 5 layers × 8 heads · 512 tokens · story\.txt:1-60/);
      assert.match((await page.locator('.notices').textContent()) ?? '', /Input truncated: showing the first 512 of/);
      // What needs VS Code (the Export menu, Compare's pinning: the host does both) is not offered.
      assert.equal(await page.locator('.export-wrap:visible, .ctl.compare:visible').count(), 0, 'no control that needs the extension');
      console.log(`screenshot: ${await shot(page, 'model')}`);

      // Heads view: hovering a token lists its top words and lights them in the source text.
      await page.click('#tab-head');
      const q = snapshot.tokens.findIndex((t) => snapshot.sourceText.text.slice(t.start, t.end) === 'Lily');
      assert.ok(q > 0, 'a "Lily" token');
      await page.locator(`.tok.q[data-index="${q}"]`).hover();
      await page.waitForFunction((i) => document.querySelector('.source-text')?.getAttribute('data-query') === String(i), q);
      const words = await page.locator('.top-words li:not([hidden]) .word').allTextContents();
      assert.ok(words.length >= 3, `top words: ${words.join(', ')}`);
      assert.equal(await page.locator('.side-title').textContent(), '“Lily” attends to');
      const marks = await sourceMarks(page);
      assert.equal(marks.query, 'Lily', 'the hovered token is outlined in the source');
      assert.ok(marks.levels[0].length > 0, 'the strongest word is lit at level 5');
      // The source's strongest word is the list's first (the same row of the same layer's head mean).
      assert.ok(marks.levels[0].split('|').some((w) => w.trim() === words[0] || words[0].includes(w.trim())), `strongest in source "${marks.levels[0]}", list "${words[0]}"`);
      const litSpan = page.locator('.source-text .query').first();
      assert.ok(await litSpan.isVisible(), 'the hovered token is scrolled into view in the source');
      console.log(`screenshot: ${await shot(page, 'head')}`);

      // Matrix view: a row under the pointer, its words in the list and in the source.
      await page.click('#tab-matrix');
      await page.locator('.mx-heat').waitFor({ state: 'visible' });
      const box = (await page.locator('.mx-heat').boundingBox())!;
      await page.mouse.move(box.x + box.width * 0.5, box.y + box.height * 0.6);
      await page.waitForFunction(() => (document.querySelector('.side')?.getAttribute('data-token') ?? '') !== '');
      const row = Number(await page.locator('.side').getAttribute('data-token'));
      await page.waitForFunction((i) => document.querySelector('.source-text')?.getAttribute('data-query') === String(i), row);
      assert.ok((await sourceMarks(page)).levels[0].length > 0, 'the matrix row lights the source');
      const [heat] = await canvasStats(page, 'canvas.mx-heat');
      assert.ok(heat.lit > 1000, `the matrix paints (${heat.lit} pixels)`);
      console.log(`screenshot: ${await shot(page, 'matrix')}`);

      // Rollout through the last layer lights the source too (head means computed in the page; its
      // strongest word here is <s>, which has no place in the text, so the levels are lower).
      await page.selectOption('select.head', 'rollout');
      await page.selectOption('select.layer', String(L - 1));
      await page.click('#tab-head');
      await page.locator(`.tok.q[data-index="${q}"]`).hover();
      await page.waitForFunction((i) => document.querySelector('.source-text')?.getAttribute('data-query') === String(i) && document.querySelector('.source-text [class*="lvl"]') !== null, q, { timeout: 20_000 });
      assert.equal(await page.locator('.side-hint').textContent(), `Token ${q + 1} of 512 · layer ${L} · rollout`);

      // A click in the source shows that token in the views, pinned.
      await page.mouse.move(2, 2);
      const lily = page.locator('.source-text .src-tok', { hasText: /^Lily$/ }).nth(3);
      const lilyIndex = Number(await lily.getAttribute('data-token'));
      await lily.click();
      await page.waitForFunction((i) => document.querySelector('.side')?.getAttribute('data-token') === String(i), lilyIndex);
      assert.equal(await page.locator('#app').getAttribute('data-pinned'), 'true');

      assert.deepEqual(o.errors, [], 'console errors');
      assert.deepEqual(o.dialogs, [], 'dialogs');
      assert.deepEqual(o.requests, [pathToFileURL(file).href], 'no request but the report itself');
    } finally {
      await o.close();
    }
  });

  test('markup in the text and the label stays text: no element, no dialog, no request, no error', async () => {
    const evil = 'Lily said <img src=x onerror=alert(1)> and </script><script>alert(2)</script> to the dog.';
    const { file, snapshot } = await writeReport(evil, '<b onmouseover=alert(3)>x.txt</b>');
    const o = await open(file, 'light');
    const { page } = o;
    try {
      await waitComplete(page, snapshot.model.layers);
      assert.equal(await page.locator('body').getAttribute('class'), 'vscode-light', 'the browser prefers light');
      assert.equal(await page.locator('.source-text').textContent(), evil, 'the source shows the markup as written');
      assert.equal(await page.locator('img, b, .source-text script').count(), 0, 'no element came from the text');
      assert.equal(await page.title(), 'Attention Lens: <b onmouseover=alert(3)>x.txt</b>');
      assert.equal(await page.locator('script:not([type])').count(), 1, 'the one script is the bundle');
      // Every element's attributes: no inline handler anywhere, before or after the views were built.
      const handlers = await page.evaluate(() => [...document.querySelectorAll('*')].flatMap((e) => [...e.attributes].filter((a) => /^on/i.test(a.name)).map((a) => `${e.tagName} ${a.name}`)));
      assert.deepEqual(handlers, []);
      await page.click('#tab-head');
      const i = snapshot.tokens.findIndex((t) => snapshot.sourceText.text.slice(t.start, t.end) === '<');
      await page.locator(`.tok.q[data-index="${i}"]`).hover();
      await page.waitForFunction((i) => document.querySelector('.source-text')?.getAttribute('data-query') === String(i), i);
      console.log(`screenshot: ${await shot(page, 'markup')}`);
      assert.deepEqual(o.errors, []);
      assert.deepEqual(o.dialogs, []);
      assert.deepEqual(o.requests, [pathToFileURL(file).href]);
    } finally {
      await o.close();
    }
  });
});
