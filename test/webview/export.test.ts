// Image export from the built panel bundle in real Chromium: export/request for each view answers
// with a valid PNG of the view's size on screen x devicePixelRatio x scale that is not blank, and
// for the matrix and head views an SVG that parses, has one rect per cell (matrix) or one line per
// drawn weight (head), and keeps an HTML-looking token as text. The header's Export menu works
// from the keyboard and posts the choice to the host.
//
// Run: node --import tsx --test test/webview/export.test.ts
// Exports: test-output/exports/webview-*.{png,svg}; the SVG as Chromium renders it:
// test-output/screenshots/webview-export-*-svg.png

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { ensureBuilt, launch, openPanel, postMessages, postLayer, posted, frames, screenshot, ROOT, SCREENSHOTS, type PanelPage } from './harness';
import { syntheticRun, type SyntheticRun } from './synthetic';

const EXPORTS = path.join(ROOT, 'test-output/exports');
const XSS = '<img src=x onerror=alert(1)>';

let browser: Browser;

before(async () => {
  ensureBuilt();
  browser = await launch();
  fs.mkdirSync(EXPORTS, { recursive: true });
});

after(async () => {
  await browser?.close();
});

/** Float32 attention (encoding f32), so the expected lines can be counted from the same numbers. */
function run(): SyntheticRun {
  return syntheticRun({ layers: 3, heads: 4, encoding: 'f32' });
}

async function feed(page: Page, r: SyntheticRun): Promise<void> {
  await postMessages(page, [r.start]);
  for (let l = 0; l < r.layers.length; l++) await postLayer(page, r.start.runId, l, r.layers[l]);
  await postMessages(page, [{ type: 'run/done', runId: r.start.runId, timings: {}, runtime: 'synthetic' }]);
  await page.waitForFunction((n) => Number(document.getElementById('app')!.dataset.paintedLayers) >= n, r.layers.length);
}

interface Result {
  error?: string;
  view?: string;
  layer?: number;
  width?: number;
  height?: number;
  /** SVG text, or the PNG's bytes as base64. */
  svg?: string;
  png?: string;
}

let nextId = 100;

/** Posts export/request and waits for the matching export/result (binary data comes back as base64). */
async function request(page: Page, format: 'png' | 'svg', scale = 1): Promise<Result> {
  const id = nextId++;
  await postMessages(page, [{ type: 'export/request', id, format, scale }]);
  const handle = await page.waitForFunction(
    (id) => {
      const m = (window as unknown as { __posted: { type: string; id?: number }[] }).__posted.find((x) => x.type === 'export/result' && x.id === id) as
        | { data?: ArrayBuffer | string; [k: string]: unknown }
        | undefined;
      if (!m) return null;
      const { data, ...rest } = m;
      if (typeof data === 'string') return { ...rest, svg: data };
      if (data instanceof ArrayBuffer) {
        const u = new Uint8Array(data);
        let bin = '';
        for (let i = 0; i < u.length; i += 0x8000) bin += String.fromCharCode(...u.subarray(i, i + 0x8000));
        return { ...rest, png: btoa(bin) };
      }
      return rest;
    },
    id,
    { timeout: 20_000 },
  );
  return (await handle.jsonValue()) as Result;
}

/** The view's box in CSS px and the screen's pixel ratio, from the DOM. */
async function viewBox(page: Page, view: string): Promise<{ width: number; height: number; dpr: number }> {
  return page.evaluate((view) => {
    const r = document.getElementById(`view-${view}`)!.getBoundingClientRect();
    return { width: r.width, height: r.height, dpr: window.devicePixelRatio };
  }, view);
}

/** Decodes the PNG in the page: its size, and how many pixels differ from the background / distinct colours. */
async function decodePng(page: Page, b64: string, bg: string): Promise<{ w: number; h: number; lit: number; colours: number }> {
  return page.evaluate(
    async ([b64, bg]) => {
      const bin = atob(b64);
      const u = new Uint8Array(bin.length);
      for (let i = 0; i < bin.length; i++) u[i] = bin.charCodeAt(i);
      const bmp = await createImageBitmap(new Blob([u], { type: 'image/png' }));
      const c = document.createElement('canvas');
      c.width = bmp.width;
      c.height = bmp.height;
      const g = c.getContext('2d')!;
      g.drawImage(bmp, 0, 0);
      const d = g.getImageData(0, 0, c.width, c.height).data;
      const [br, bgc, bb] = [1, 3, 5].map((i) => parseInt(bg.slice(i, i + 2), 16));
      let lit = 0;
      const seen = new Set<number>();
      for (let i = 0; i < d.length; i += 4) {
        if (Math.abs(d[i] - br) + Math.abs(d[i + 1] - bgc) + Math.abs(d[i + 2] - bb) > 30) lit++;
        if (seen.size < 5000) seen.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
      }
      return { w: bmp.width, h: bmp.height, lit, colours: seen.size };
    },
    [b64, bg] as const,
  );
}

/** PNG signature and IHDR width / height. */
function pngHeader(buf: Buffer): { width: number; height: number } {
  assert.deepEqual([...buf.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], 'PNG signature');
  assert.equal(buf.toString('latin1', 12, 16), 'IHDR', 'IHDR first');
  return { width: buf.readUInt32BE(16), height: buf.readUInt32BE(20) };
}

function noErrors(p: PanelPage): void {
  assert.deepEqual(p.errors, [], 'page errors');
  assert.deepEqual(p.dialogs, [], 'no dialog (no token ran as HTML)');
  assert.deepEqual(p.cspViolations, [], 'CSP violations');
}

/** Parses SVG text in the page (DOMParser) and reports what the test checks. */
async function parseSvg(page: Page, svg: string): Promise<{ error: string | null; cells: number; lines: number; q: number; k: number; texts: string[]; imgs: number; fills: string[]; width: number; height: number }> {
  return page.evaluate((svg) => {
    const doc = new DOMParser().parseFromString(svg, 'image/svg+xml');
    const err = doc.querySelector('parsererror');
    const root = doc.documentElement;
    return {
      error: err ? err.textContent : null,
      cells: doc.querySelectorAll('g.cells > rect').length,
      lines: doc.querySelectorAll('line').length,
      q: doc.querySelectorAll('text.q-label').length,
      k: doc.querySelectorAll('text.k-label').length,
      texts: [...doc.querySelectorAll('text')].map((t) => t.textContent ?? ''),
      imgs: doc.getElementsByTagName('img').length + doc.getElementsByTagName('script').length,
      fills: [...doc.querySelectorAll('g.cells > rect')].slice(0, 64).map((r) => r.getAttribute('fill') ?? ''),
      width: Number(root.getAttribute('width')),
      height: Number(root.getAttribute('height')),
    };
  }, svg);
}

/** Opens an SVG file in Chromium and screenshots it (what a reader of the figure sees). */
async function renderSvg(file: string, name: string, size: { width: number; height: number }): Promise<string> {
  const ctx = await browser.newContext({ viewport: { width: Math.min(1600, Math.ceil(size.width)), height: Math.min(1600, Math.ceil(size.height)) } });
  try {
    const page = await ctx.newPage();
    await page.goto(`file://${file}`);
    const shot = path.join(SCREENSHOTS, `webview-export-${name}-svg.png`);
    fs.mkdirSync(SCREENSHOTS, { recursive: true });
    await page.screenshot({ path: shot });
    return shot;
  } finally {
    await ctx.close();
  }
}

describe('export from the panel', () => {
  test('PNG of each view: the view on screen x devicePixelRatio x scale, not blank', async () => {
    const p = await openPanel(browser, { theme: 'dark' });
    const { page } = p;
    try {
      await feed(page, run());
      for (const view of ['model', 'head', 'matrix'] as const) {
        await page.click(`#tab-${view}`);
        await frames(page);
        if (view === 'head') {
          // A pinned token: its lines are drawn, as a figure would show them.
          await page.locator('.tok.q').nth(3).click();
          await frames(page);
        }
        for (const scale of [1, 2]) {
          const box = await viewBox(page, view);
          const r = await request(page, 'png', scale);
          assert.equal(r.error, undefined, `${view} ×${scale}: ${r.error}`);
          assert.equal(r.view, view);
          const buf = Buffer.from(r.png!, 'base64');
          const file = path.join(EXPORTS, `webview-${view}-${scale}x.png`);
          fs.writeFileSync(file, buf);
          const ihdr = pngHeader(buf);
          const expected = { width: Math.round(box.width * box.dpr * scale), height: Math.round(box.height * box.dpr * scale) };
          assert.deepEqual(ihdr, expected, `${view} ×${scale}: IHDR is the view's CSS size × devicePixelRatio × scale`);
          assert.deepEqual({ width: r.width, height: r.height }, expected, 'the result reports the size too');
          const px = await decodePng(page, r.png!, '#1f1f1f');
          assert.deepEqual([px.w, px.h], [expected.width, expected.height], 'it decodes');
          const area = px.w * px.h;
          assert.ok(px.lit > area * 0.03, `${view} ×${scale}: not blank (${px.lit} of ${area} pixels drawn)`);
          assert.ok(px.colours > 20, `${view} ×${scale}: a heatmap's worth of colours (${px.colours})`);
        }
      }
      // The panel went back to painting at the screen's ratio after the 2× capture.
      const overlay = await page.evaluate(() => {
        const c = document.querySelector<HTMLCanvasElement>('canvas.mx-overlay')!;
        return { backing: c.width, css: c.clientWidth };
      });
      assert.equal(overlay.backing, overlay.css);
      noErrors(p);
    } finally {
      await p.close();
    }
  });

  test('SVG of the matrix view: one rect per cell in the view\'s colours, every token labelled and escaped', async () => {
    const p = await openPanel(browser, { theme: 'dark' });
    const { page } = p;
    try {
      const r0 = run();
      const T = r0.start.tokens.length;
      assert.ok(r0.start.tokens.some((t) => t.text === XSS), 'the run has an HTML-looking token');
      await feed(page, r0);
      await page.click('#tab-matrix');
      await frames(page);
      const r = await request(page, 'svg');
      assert.equal(r.error, undefined, r.error);
      assert.equal(r.view, 'matrix');
      const file = path.join(EXPORTS, 'webview-matrix.svg');
      fs.writeFileSync(file, r.svg!);
      assert.ok(!r.svg!.includes(XSS), 'the token is not in the SVG as markup');
      assert.ok(r.svg!.includes('&lt;img src=x onerror=alert(1)&gt;'), 'it is there escaped');
      const s = await parseSvg(page, r.svg!);
      assert.equal(s.error, null, 'the SVG parses');
      assert.equal(s.cells, T * T, 'T × T cell rects');
      assert.equal(s.imgs, 0, 'no element came from a token');
      assert.equal(s.texts.filter((t) => t === XSS).length, 2, 'the token labels its row and its column, as text');
      // The cells have the colours the view paints: the first row against the heat canvas.
      const heat = await page.evaluate((n) => {
        const c = document.querySelector<HTMLCanvasElement>('canvas.mx-heat')!;
        const d = c.getContext('2d')!.getImageData(0, 0, n, 1).data;
        const hex = (v: number): string => v.toString(16).padStart(2, '0');
        return Array.from({ length: n }, (_, j) => `#${hex(d[j * 4])}${hex(d[j * 4 + 1])}${hex(d[j * 4 + 2])}`);
      }, Math.min(T, 64));
      assert.deepEqual(s.fills.slice(0, heat.length), heat);
      assert.ok(new Set(s.fills).size > 5, 'cells of many colours');
      const shot = await renderSvg(file, 'matrix', s);
      assert.ok(fs.statSync(shot).size > 10_000, 'the SVG renders');
      noErrors(p);
    } finally {
      await p.close();
    }
  });

  test('SVG of the head view: every token in both columns, one line per weight drawn for the pinned token', async () => {
    const p = await openPanel(browser, { theme: 'light' });
    const { page } = p;
    try {
      const r0 = run();
      const T = r0.start.tokens.length;
      await feed(page, r0);
      await page.click('#tab-head');
      await page.click('.chip[data-agg="0"]');
      await page.click('.chip[data-agg="mean"]');
      // Pin query 2 from the keyboard (the first arrow press puts the cursor on token 0).
      await page.focus('.hv-scroll');
      for (let i = 0; i < 3; i++) await page.keyboard.press('ArrowDown');
      await page.keyboard.press('Enter');
      await page.mouse.move(2, 2);
      await frames(page);
      const r = await request(page, 'svg');
      assert.equal(r.error, undefined, r.error);
      assert.equal(r.view, 'head');
      const file = path.join(EXPORTS, 'webview-head.svg');
      fs.writeFileSync(file, r.svg!);
      const s = await parseSvg(page, r.svg!);
      assert.equal(s.error, null, 'the SVG parses');
      assert.equal(s.q, T, 'every token as a query');
      assert.equal(s.k, T, 'every token as a key');
      // Layer 1, head 1, query 2: a line for every key with weight >= 1e-3 (the panel's minimum with a token active).
      const att = r0.layers[0] as Float32Array;
      let expected = 0;
      for (let k = 0; k < T; k++) if (att[2 * T + k] >= 1e-3) expected++;
      assert.ok(expected > 0);
      assert.equal(s.lines, expected, 'one line per drawn weight');
      assert.ok(s.texts.includes(XSS), 'the HTML-looking token is a label');
      assert.equal(s.imgs, 0);
      await renderSvg(file, 'head', s);
      noErrors(p);
    } finally {
      await p.close();
    }
  });

  test('refusals: SVG of the model view, and no run yet', async () => {
    const p = await openPanel(browser);
    const { page } = p;
    try {
      const none = await request(page, 'png');
      assert.match(none.error ?? '', /no attention yet/);
      await feed(page, run());
      await page.click('#tab-model');
      const svg = await request(page, 'svg');
      assert.match(svg.error ?? '', /SVG export draws the Heads and Matrix views/);
      noErrors(p);
    } finally {
      await p.close();
    }
  });

  test('the Export menu works from the keyboard and asks the host for each export', async () => {
    const p = await openPanel(browser);
    const { page } = p;
    try {
      assert.equal(await page.locator('#export-button').isVisible(), false, 'no menu before there is a run');
      await feed(page, run());
      await page.click('#tab-model');
      const button = page.locator('#export-button');
      await button.focus();
      await page.keyboard.press('Enter');
      assert.equal(await button.getAttribute('aria-expanded'), 'true');
      assert.equal(await page.evaluate(() => document.activeElement?.textContent), 'PNG image…', 'focus on the first item');
      assert.equal(await page.locator('.export-item[data-action="svg"]').getAttribute('aria-disabled'), 'true', 'no SVG of the model view');
      await screenshot(page, 'export-menu');
      await page.keyboard.press('2'); // a panel shortcut: not acted on behind the menu
      assert.equal(await page.evaluate(() => document.getElementById('app')!.dataset.view), 'model');
      await page.keyboard.press('ArrowDown');
      await page.keyboard.press('Enter');
      assert.equal(await button.getAttribute('aria-expanded'), 'false', 'choosing closes the menu');
      assert.equal(await page.evaluate(() => document.activeElement?.id), 'export-button', 'focus goes back to the button');
      await page.keyboard.press('ArrowUp'); // opens on the last item
      await page.keyboard.press('Enter');
      await button.click();
      await page.locator('.export-item[data-action="svg"]').click({ force: true }); // disabled here: nothing is posted
      await page.keyboard.press('Escape');
      assert.equal(await button.getAttribute('aria-expanded'), 'false');
      await page.click('#tab-matrix');
      await button.click();
      await page.locator('.export-item[data-action="svg"]').click();
      await button.click();
      await page.locator('.export-item[data-action="html"]').click();
      const menu = (await posted(page)).filter((m) => m.type === 'export/menu');
      assert.deepEqual(menu, [
        { type: 'export/menu', action: 'png', scale: 2 },
        { type: 'export/menu', action: 'data' },
        { type: 'export/menu', action: 'svg' },
        { type: 'export/menu', action: 'html' },
      ]);
      noErrors(p);
    } finally {
      await p.close();
    }
  });
});
