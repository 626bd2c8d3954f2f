// A long run (above the threshold: start.long) in the built panel bundle, in real Chromium. The
// test plays the host: it sends the run's start and every layer's thumbnails (never a run/layer),
// answers the panel's rows/request with rows of a known causal softmax attention, and sends a
// hovered token's rows of every layer after each hover/token, as the controller does. The model
// view must paint the whole sequence from the thumbnails; the Matrix and Heads views a window of
// W tokens (queries and keys the same tokens) whose cells are those rows; zoom and scrolling ask
// for the right blocks; the side list reads the hovered token's rows over the whole run; rollout,
// value weighting, Compare and Why this weight? are refused with their reasons; and the panel never
// asks for more than a window's block (or one token's rows) at a time.
// Run: node --import tsx --test test/webview/long.test.ts
// Screenshots: test-output/screenshots/webview-long-*.png

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { Browser, Page } from 'playwright-core';
import { ensureBuilt, frames, launch, openPanel, postMessages, postWithData, posted, screenshot, stageBuffer, themeBackground, type PanelPage } from './harness';
import { tokensOfLength } from './synthetic';
import { encodeF16, groupWords, keepMask, layerTensor, layerThumbs, renormalizeRow, topAttended } from '../../src/analysis';
import type { RowsRequestMessage as RowsRequest, RunStartMessage } from '../../src/protocol/webview';
import { fmtWeight } from '../../webview/dom';

const T = 1500;
const L = 2;
const H = 3;
const THRESHOLD = 512;
const RUN_ID = 7;

const { text, tokens } = tokensOfLength(T);
const words = groupWords(tokens, { offset: 0, text });

/** A deterministic number in [0, 1) per cell. */
function noise(l: number, h: number, i: number, j: number): number {
  let x = Math.imul(l + 1, 0x9e3779b1) ^ Math.imul(h + 7, 0x85ebca6b) ^ Math.imul(i + 13, 0xc2b2ae35) ^ Math.imul(j + 31, 0x27d4eb2f);
  x = Math.imul(x ^ (x >>> 15), 0x2c1b3c6d);
  x = Math.imul(x ^ (x >>> 12), 0x297a2d39);
  return ((x ^ (x >>> 15)) >>> 0) / 2 ** 32;
}

/** The score of query i on key j: each head its own pattern (previous token, the first token, every 7th back). */
function score(l: number, h: number, i: number, j: number): number {
  const n = noise(l, h, i, j);
  switch ((h + l) % 3) {
    case 0:
      return (j === i - 1 ? 4 : 0) + n;
    case 1:
      return (j === 0 ? 5 : 0) + n;
    default:
      return ((i - j) % 7 === 0 ? 3 : 0) + n;
  }
}

/** Causal softmax attention, every layer [H][T][T] float32: what the engine would compute. */
const full: Float32Array[] = Array.from({ length: L }, (_, l) => {
  const out = new Float32Array(H * T * T);
  const s = new Float64Array(T);
  for (let h = 0; h < H; h++)
    for (let i = 0; i < T; i++) {
      let max = -Infinity;
      for (let j = 0; j <= i; j++) max = Math.max(max, (s[j] = score(l, h, i, j)));
      let sum = 0;
      for (let j = 0; j <= i; j++) sum += s[j] = Math.exp(s[j] - max);
      const base = (h * T + i) * T;
      for (let j = 0; j <= i; j++) out[base + j] = s[j] / sum;
    }
  return out;
});

const cell = (l: number, h: number, i: number, j: number): number => full[l][(h * T + i) * T + j];
const meanCell = (l: number, i: number, j: number): number => (cell(l, 0, i, j) + cell(l, 1, i, j) + cell(l, 2, i, j)) / H;
/** The mean of heads' row of query i over every key, in float32 as the panel averages it. */
function meanRow(l: number, i: number): Float32Array {
  const out = new Float32Array(T);
  for (let h = 0; h < H; h++) for (let j = 0; j < T; j++) out[j] += full[l][(h * T + i) * T + j];
  for (let j = 0; j < T; j++) out[j] *= 1 / H;
  return out;
}

const start: RunStartMessage = {
  type: 'run/start',
  runId: RUN_ID,
  model: { id: 'synthetic/long-decoder', architecture: 'llama', kind: 'decoder', layers: L, heads: H, maxLength: 8192 },
  tokens,
  encoding: 'f16',
  source: 'long.txt:1-90',
  truncation: null,
  notices: [],
  sourceText: { offset: 0, text },
  long: { threshold: THRESHOLD },
};
const thumbs = full.map((f) => layerThumbs(layerTensor(encodeF16(f), 'f16', H, T))!);

let browser: Browser;
before(async () => {
  ensureBuilt();
  browser = await launch();
});
after(async () => {
  await browser?.close();
});


/** The test as the host: what the panel posted that it has answered, and every rows/request it saw. */
class Host {
  private seen = 0;
  /** Posted and not answered yet. */
  private queue: { type: string; [k: string]: unknown }[] = [];
  readonly requests: RowsRequest[] = [];
  readonly hovers: number[] = [];

  constructor(readonly page: Page) {}

  /** Messages the panel posted since the last call (rows/request and hover/token are also recorded); serve() answers them. */
  async news(): Promise<{ type: string; [k: string]: unknown }[]> {
    const all = await posted(this.page);
    const fresh = all.slice(this.seen);
    this.seen = all.length;
    this.queue.push(...fresh);
    for (const m of fresh) {
      if (m.type === 'rows/request') this.requests.push(m as unknown as RowsRequest);
      if (m.type === 'hover/token' && typeof m.tokenIndex === 'number') this.hovers.push(m.tokenIndex);
    }
    return fresh;
  }

  /**
   * Answers what the panel asked since the last call: each rows/request with its rows (or `error`
   * for a token's rows when given), and each hover/token with the token's rows of every layer over
   * every key (when `hovers`). Returns the requests it answered.
   */
  async serve(o: { hovers?: boolean; error?: string } = {}): Promise<RowsRequest[]> {
    await this.news();
    const fresh = this.queue;
    this.queue = [];
    const answered: RowsRequest[] = [];
    for (const m of fresh) {
      if (m.type === 'rows/request') {
        const r = m as unknown as RowsRequest;
        answered.push(r);
        if (o.error !== undefined && r.count === 1) await postMessages(this.page, [{ type: 'run/rows', runId: r.runId, error: o.error, start: r.start, count: r.count }]);
        else await this.sendRows(r.start, r.count, r.layers ?? [0, 1], r.keyStart ?? 0, r.keyCount ?? T);
      } else if (m.type === 'hover/token' && typeof m.tokenIndex === 'number' && o.hovers !== false) {
        await this.sendRows(m.tokenIndex, 1, [0, 1], 0, T);
      }
    }
    return answered;
  }

  /** run/rows: queries start..start+count-1 of `layers` on keys keyStart..keyStart+keyCount-1, [H][count][keyCount] float32 each. */
  async sendRows(start: number, count: number, layers: number[], keyStart: number, keyCount: number): Promise<void> {
    for (const [i, l] of layers.entries()) {
      const d = new Float32Array(H * count * keyCount);
      for (let h = 0; h < H; h++) for (let q = 0; q < count; q++) d.set(full[l].subarray((h * T + start + q) * T + keyStart, (h * T + start + q) * T + keyStart + keyCount), (h * count + q) * keyCount);
      await stageBuffer(this.page, i, d);
    }
    await this.page.evaluate(
      (rows) => {
        const data = (window as unknown as { __stage: ArrayBuffer[] }).__stage.slice(0, rows.layers.length);
        window.postMessage({ type: 'run/rows', runId: rows.runId, rows: { start: rows.start, count: rows.count, keyStart: rows.keyStart, keyCount: rows.keyCount, layers: rows.layers, data } }, '*', data);
      },
      { runId: RUN_ID, start, count, keyStart, keyCount, layers },
    );
  }
}

/** The run as the controller sends a long one: its start, every layer's thumbnails, done. No run/layer. */
async function postRun(page: Page, o: { done?: boolean } = {}): Promise<void> {
  await postMessages(page, [start]);
  for (let l = 0; l < L; l++) {
    const th = thumbs[l];
    await postWithData(page, { type: 'run/thumbs', runId: RUN_ID, layer: l, size: th.size, ...(th.packed ? { packed: true } : {}) }, th.data);
  }
  if (o.done ?? true) await postMessages(page, [{ type: 'run/done', runId: RUN_ID, timings: { forwardMs: 900 }, runtime: 'synthetic' }]);
}

const textOf = async (page: Page, sel: string): Promise<string> => ((await page.locator(sel).first().textContent()) ?? '').trim();
const caption = (page: Page) => textOf(page, '.mx-caption');

/** Moves the pointer over window cell (r, c) of the matrix view (n x n cells). */
async function hoverCell(page: Page, n: number, r: number, c: number): Promise<void> {
  const box = (await page.locator('.mx-heat').boundingBox())!;
  const side = box.width / n;
  await page.mouse.move(box.x + (c + 0.5) * side, box.y + (r + 0.5) * side);
  await frames(page);
}

/** The side list's words and weights as shown. */
async function sideWords(page: Page): Promise<{ word: string; val: string }[]> {
  return page.evaluate(() => [...document.querySelectorAll('.top-words li:not([hidden])')].map((li) => ({ word: li.querySelector('.word')!.textContent ?? '', val: li.querySelector('.val')!.textContent ?? '' })));
}

/** A window block request: [start, count, layer, keyStart, keyCount]. */
const blockOf = (r: RowsRequest) => [r.start, r.count, r.layers?.[0], r.keyStart, r.keyCount];

/** Posts the run, waits for its grid, switches to the Matrix view and answers its first window's request. */
async function showMatrix(page: Page, host: Host): Promise<void> {
  await postRun(page);
  await page.waitForFunction((id) => document.getElementById('app')!.dataset.paintedRun === String(id), RUN_ID, { timeout: 20_000 });
  await page.click('#tab-matrix');
  await frames(page, 2);
  await host.serve();
}

function noErrors(p: PanelPage): void {
  assert.deepEqual(p.errors, [], 'page errors');
  assert.deepEqual(p.dialogs, [], 'dialogs');
}

/** Every request is a window's block (at most 256 x 256 of one layer) or one token's rows: never a whole matrix. */
function onlyWindows(host: Host): void {
  for (const r of host.requests) {
    const keys = r.keyCount ?? T;
    const ok = (r.count <= 256 && keys <= 256 && r.layers?.length === 1) || (r.count === 1 && r.keyStart === undefined);
    assert.ok(ok, `a bounded request: ${JSON.stringify(r)}`);
  }
}

test('a long run: the grid paints from thumbnails, the matrix shows a window of its rows, hovers read the token’s rows', async () => {
  const p = await openPanel(browser, { viewport: { width: 1200, height: 860 } });
  const { page } = p;
  const host = new Host(page);
  try {
    await postRun(page, { done: false });
    await page.waitForFunction((id) => document.getElementById('app')!.dataset.paintedRun === String(id), RUN_ID, { timeout: 20_000 });
    assert.equal(await page.locator('#app').getAttribute('data-complete-run'), String(RUN_ID), 'complete with its thumbnails: no layer needed');
    // The grid: every head of every layer painted from the host's 125 x 125 thumbnails, not blank.
    const bg = themeBackground('dark');
    const grid = await page.evaluate((bgHex) => {
      const rgb = [1, 3, 5].map((i) => parseInt(bgHex.slice(i, i + 2), 16));
      return [...document.querySelectorAll<HTMLCanvasElement>('.model-grid canvas.thumb')].map((c) => {
        const d = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
        let lit = 0;
        for (let i = 0; i < d.length; i += 4) if (Math.abs(d[i] - rgb[0]) + Math.abs(d[i + 1] - rgb[1]) + Math.abs(d[i + 2] - rgb[2]) > 24) lit++;
        return { w: c.width, h: c.height, lit };
      });
    }, bg);
    assert.equal(grid.length, L * (H + 1));
    for (const g of grid) {
      assert.deepEqual([g.w, g.h], [thumbs[0].size, thumbs[0].size]);
      assert.ok(g.lit > thumbs[0].size, `a painted thumbnail (${g.lit} lit pixels)`);
    }
    assert.equal(await page.locator('.model-grid .cell.pending').count(), 0);
    assert.match(await textOf(page, '.view-model .view-note'), /The whole sequence, 1,500 tokens, each thumbnail 125 × 125/);
    assert.match(await textOf(page, '.notices'), /Long input: 1,500 tokens, above 512/);
    await screenshot(page, 'long-model');

    // Matrix view, layer 1, mean of heads: it asks for the window of tokens 0..127 (queries and keys), once.
    await page.click('#tab-matrix');
    await frames(page, 3);
    await host.news();
    assert.deepEqual(host.requests.map(blockOf), [[0, 128, 0, 0, 128]]);
    assert.match(await textOf(page, '#view-matrix .window-range'), /^Tokens 1–128 of 1,500 \(window\); rows do not sum to 1 within a window\.$/);
    await host.serve();
    await frames(page, 3);
    // The heatmap is the window, one pixel a cell: causal (nothing right of the diagonal), lit where the weights are.
    const heat = await page.evaluate(() => {
      const c = document.querySelector<HTMLCanvasElement>('.mx-heat')!;
      const d = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
      return { w: c.width, h: c.height, px: Array.from(d) };
    });
    assert.deepEqual([heat.w, heat.h], [128, 128]);
    const px = (r: number, c: number) => heat.px.slice((r * 128 + c) * 4, (r * 128 + c) * 4 + 3).join(',');
    const zero = px(0, 127);
    let strong = 0;
    for (let r = 0; r < 128; r++)
      for (let c = 0; c < 128; c++) {
        if (c > r) assert.equal(px(r, c), zero, `cell ${r},${c} is above the diagonal: background`);
        else if (meanCell(0, r, c) > 0.05) {
          assert.notEqual(px(r, c), zero, `cell ${r},${c} (${meanCell(0, r, c)}) is lit`);
          strong++;
        }
      }
    assert.ok(strong > 128, `${strong} strong cells`);
    // A cell's value in the caption: the mean of the heads' rows at (query 40, key 39).
    await hoverCell(page, 128, 40, 39);
    assert.equal(await caption(page), `Layer 1 · mean of heads · Tokens 1–128 of 1,500 (window) · “${display(40)}” (41) → “${display(39)}” (40): ${fmtWeight(meanCell(0, 40, 39))}`);
    // The hover told the host (token 40 of the run); until its rows come the side list says so.
    await frames(page, 2);
    await host.serve({ hovers: false });
    assert.deepEqual(host.hovers.slice(-1), [40]);
    assert.match(await textOf(page, '.side-hint'), /Token 41 of 1500 · layer 1 · mean of heads · Computing this token’s rows…/);
    assert.equal((await sideWords(page)).length, 0);
    await screenshot(page, 'long-matrix-computing');
    // The host's rows for the hover (every layer, every key): the top words of the whole row.
    await host.sendRows(40, 1, [0, 1], 0, T);
    await frames(page, 3);
    const want = topAttended(meanRow(0, 40), tokens, words, 8).map((w) => ({ word: w.text, val: fmtWeight(w.weight) }));
    assert.ok(want.length >= 3);
    assert.deepEqual(await sideWords(page), want);
    assert.doesNotMatch(await textOf(page, '.side-hint'), /Computing/);
    // Head 2 (the first-token head): its cell, from the same block.
    await page.selectOption('select.head', '1');
    await frames(page, 2);
    await hoverCell(page, 128, 100, 0);
    assert.equal(await caption(page), `Layer 1 · head 2 · Tokens 1–128 of 1,500 (window) · “${display(100)}” (101) → “[CLS]” (1): ${fmtWeight(cell(0, 1, 100, 0))}`);
    await page.selectOption('select.head', 'mean');
    await hoverCell(page, 128, 40, 39);
    await host.serve();
    await screenshot(page, 'long-matrix');

    // Layer 2: its own block of the same window.
    await page.selectOption('select.layer', '1');
    await frames(page, 2);
    const layer2 = await host.serve();
    assert.deepEqual(layer2.filter((r) => r.keyCount !== undefined).map(blockOf), [[0, 128, 1, 0, 128]]);
    await frames(page, 2);
    await hoverCell(page, 128, 77, 70);
    assert.match(await caption(page), new RegExp(`: ${fmtWeight(meanCell(1, 77, 70)).replace('.', '\\.')}$`));
    await page.selectOption('select.layer', '0');
    await frames(page, 2);
    assert.deepEqual((await host.serve()).filter((r) => r.keyCount !== undefined), [], 'layer 1’s block is still cached');
    onlyWindows(host);
    noErrors(p);
  } finally {
    await p.close();
  }
});

/** How the panel shows token i (the test's tokens have source text: the word itself, specials by name). */
function display(i: number): string {
  const t = tokens[i];
  return t.special ? t.text : text.slice(t.start, t.end).trim();
}

test('a long run’s window: zoom, scroll, the keyboard past its edge, following the editor’s token, hiding special tokens', async () => {
  const p = await openPanel(browser, { viewport: { width: 1200, height: 860 } });
  const { page } = p;
  const host = new Host(page);
  try {
    await showMatrix(page, host);
    const blocks = async () => {
      const asked = (await host.serve()).filter((r) => r.keyCount !== undefined).map(blockOf);
      await frames(page, 2);
      return asked;
    };

    // Zoom in to 64 tokens around the window's centre (64): tokens 32..95.
    await page.selectOption('#view-matrix select.window-size', '64');
    await frames(page, 2);
    assert.deepEqual(await blocks(), [[32, 64, 0, 32, 64]]);
    assert.match(await textOf(page, '#view-matrix .window-range'), /^Tokens 33–96 of 1,500/);
    await frames(page, 2);
    await hoverCell(page, 64, 10, 9);
    assert.match(await caption(page), new RegExp(`“${display(42)}” \\(43\\) → “${display(41)}” \\(42\\): ${fmtWeight(meanCell(0, 42, 41)).replace('.', '\\.')}$`));
    await screenshot(page, 'long-matrix-zoomed');
    // Later ▶: half a window on.
    await page.click('#view-matrix .window-later');
    await frames(page, 2);
    assert.deepEqual(await blocks(), [[64, 64, 0, 64, 64]]);
    // − (zoom out) around the hovered token... the pointer is on the button: around the window's centre (96).
    await page.mouse.move(5, 5);
    await page.locator('#view-matrix .mx-overlay').focus();
    await page.keyboard.press('-');
    await frames(page, 2);
    assert.deepEqual(await blocks(), [[32, 128, 0, 32, 128]]);
    assert.equal(await page.locator('#view-matrix select.window-size').inputValue(), '128');
    // PageDown in the matrix: half a window (64) later; PageUp back.
    await page.keyboard.press('PageDown');
    await frames(page, 2);
    assert.deepEqual(await blocks(), [[96, 128, 0, 96, 128]]);
    await page.keyboard.press('PageUp');
    await frames(page, 2);
    assert.deepEqual(await blocks(), [], 'tokens 32.. are cached');
    assert.match(await textOf(page, '#view-matrix .window-range'), /^Tokens 33–160 of 1,500/);
    // The keyboard cell: to the bottom right corner, then one down past the edge: the window follows by half.
    await page.keyboard.press('ArrowDown');
    await page.keyboard.press('Control+End');
    await frames(page, 2);
    assert.match(await caption(page), new RegExp(`“${display(159)}” \\(160\\) → “${display(159)}” \\(160\\): `));
    await page.keyboard.press('ArrowDown');
    await frames(page, 2);
    assert.deepEqual(await blocks(), [], 'tokens 96.. are cached since PageDown');
    assert.match(await textOf(page, '#view-matrix .window-range'), /^Tokens 97–224 of 1,500/);
    assert.equal(await caption(page), `Layer 1 · mean of heads · Tokens 97–224 of 1,500 (window) · “${display(160)}” (161) → “${display(159)}” (160): ${fmtWeight(meanCell(0, 160, 159))}`);
    // The editor's cursor on token 1000 (focus/token): the window centres on it.
    await postMessages(page, [{ type: 'focus/token', runId: RUN_ID, tokenIndex: 1000 }]);
    await frames(page, 3);
    assert.deepEqual(await blocks(), [[936, 128, 0, 936, 128]]);
    assert.match(await textOf(page, '#view-matrix .window-range'), /^Tokens 937–1,064 of 1,500/);
    await frames(page, 2);
    assert.match(await caption(page), /Tokens 937–1,064 of 1,500 \(window\)/);
    await screenshot(page, 'long-matrix-followed');

    // Hide special tokens: [CLS] (token 0) is before the window, so its column comes too; rows are renormalised as the whole run's.
    await page.check('#hide-special');
    await frames(page, 2);
    assert.deepEqual(await blocks(), [[936, 128, 0, 0, 1]]);
    await frames(page, 3);
    // A key whose weight, as shown, differs once renormalised (query 1000 puts a few % on [CLS]).
    const renorm = (k: number) => meanCell(0, 1000, k) / (1 - meanCell(0, 1000, 0));
    let key = 999;
    while (fmtWeight(renorm(key)) === fmtWeight(meanCell(0, 1000, key))) key--;
    assert.ok(key >= 936, 'a key in the window');
    await hoverCell(page, 128, 1000 - 936, key - 936);
    assert.match(await caption(page), new RegExp(`\\(1001\\) → “${display(key)}” \\(${key + 1}\\): ${fmtWeight(renorm(key)).replace('.', '\\.')}$`));
    await host.serve();
    await frames(page, 2);
    // The side list: the token's whole row, special tokens hidden and renormalised.
    const want = topAttended(renormalizeRow(meanRow(0, 1000), keepMask(tokens, true)), tokens, words, 8).map((w) => ({ word: w.text, val: fmtWeight(w.weight) }));
    assert.deepEqual(await sideWords(page), want);
    await page.uncheck('#hide-special');
    await frames(page, 2);

    // The Heads view: the same window, 128 token rows; ArrowDown from its last token moves it on.
    await page.click('#tab-head');
    await frames(page, 3);
    assert.match(await textOf(page, '#view-head .window-range'), /^Tokens 937–1,064 of 1,500/);
    assert.equal(await page.locator('#view-head .hv-spacer').evaluate((e) => (e as HTMLElement).style.height), `${128 * 22}px`);
    assert.match(await textOf(page, '#view-head .view-note'), /Tokens 937–1,064 of 1,500 \(window\): lines between these tokens only/);
    const tok = page.locator('#view-head .tok.q[data-index="64"]');
    assert.equal(await tok.textContent(), display(1000));
    await tok.hover();
    await frames(page, 2);
    await host.serve();
    await frames(page, 2);
    assert.deepEqual(await sideWords(page), topAttended(meanRow(0, 1000), tokens, words, 8).map((w) => ({ word: w.text, val: fmtWeight(w.weight) })));
    await screenshot(page, 'long-heads');
    await page.mouse.move(5, 5);
    await page.locator('#view-head .hv-scroll').focus();
    await page.keyboard.press('End');
    await frames(page, 2);
    await page.keyboard.press('ArrowDown');
    await frames(page, 2);
    assert.deepEqual(await blocks(), [[1000, 128, 0, 1000, 128]]);
    assert.match(await textOf(page, '#view-head .window-range'), /^Tokens 1,001–1,128 of 1,500/);
    assert.equal(await page.locator('#view-head .tok.q.cursor').getAttribute('data-index'), String(1064 - 1000));
    // The end of the run: the window stops at its last token.
    await page.keyboard.press('PageDown');
    for (let i = 0; i < 12; i++) await page.keyboard.press('PageDown');
    await frames(page, 2);
    await host.serve();
    assert.match(await textOf(page, '#view-head .window-range'), /^Tokens 1,373–1,500 of 1,500/);
    assert.equal(await page.locator('#view-head .window-later').isDisabled(), true);
    onlyWindows(host);
    noErrors(p);
  } finally {
    await p.close();
  }
});

test('a long run refuses rollout, value weighting, Compare and Why this weight? with their reasons', async () => {
  // Saved state from a short run: rollout of layer 2 in the Matrix view, value-weighted.
  const state = { v: 1, view: 'matrix', layer: 1, agg: 'rollout', selected: ['rollout'], hideSpecial: false, weights: 'value', part: 'cross', threshold: 0 };
  const p = await openPanel(browser, { viewport: { width: 1200, height: 860 }, state });
  const { page } = p;
  const host = new Host(page);
  try {
    await postRun(page);
    await page.waitForFunction((id) => document.getElementById('app')!.dataset.completeRun === String(id), RUN_ID, { timeout: 20_000 });
    await frames(page, 3);
    // It falls back to the mean of heads and to attention, and says why.
    assert.equal(await page.locator('select.head').inputValue(), 'mean');
    const notices = await textOf(page, '.notices');
    assert.match(notices, /Rollout needs every layer's whole matrix; above 512 tokens Attention Lens keeps rows on demand instead\. Choose a head or the mean of heads\. Showing the mean of heads instead\./);
    assert.match(notices, /Value weighting covers runs of up to 512 tokens \(it needs whole matrices\)\. Showing attention α\./);
    assert.equal(await page.locator('select.weights').inputValue(), 'attention');
    assert.equal(await page.locator('select.weights').isDisabled(), true);
    assert.match((await page.locator('select.weights').getAttribute('title')) ?? '', /Value weighting covers runs of up to 512 tokens/);
    assert.equal(await page.locator('select.head option[value="rollout"]').isDisabled(), true);
    // The window of layer 2, the mean; no value norms asked for.
    const first = await host.serve();
    assert.deepEqual(first.map(blockOf), [[0, 128, 1, 0, 128]]);
    await frames(page, 2);
    assert.match(await caption(page), /^Layer 2 · mean of heads · Tokens 1–128 of 1,500 \(window\)/);

    // V: refused in the status line, nothing asked.
    await page.locator('#view-matrix .mx-overlay').focus();
    await page.keyboard.press('v');
    await frames(page);
    assert.match(await textOf(page, '.status'), /^Value weighting covers runs of up to 512 tokens \(it needs whole matrices\)\.$/);
    // , and . step over rollout.
    await page.keyboard.press('.');
    await frames(page);
    assert.equal(await page.locator('select.head').inputValue(), '0');
    await page.keyboard.press(',');
    await page.keyboard.press(',');
    await frames(page);
    assert.equal(await page.locator('select.head').inputValue(), '2');
    await page.selectOption('select.head', 'mean');
    // The Heads view's Rollout chip is off, with the reason.
    await page.click('#tab-head');
    await frames(page, 2);
    const chip = page.locator('#view-head button.chip[data-agg="rollout"]');
    assert.equal(await chip.isDisabled(), true);
    assert.match((await chip.getAttribute('title')) ?? '', /Rollout needs every layer's whole matrix/);
    await page.click('#tab-matrix');
    await frames(page, 2);

    // Why this weight?: a double click on a cell and W are refused with the reason; the side list's Why? buttons are off.
    const box = (await page.locator('.mx-heat').boundingBox())!;
    const side = box.width / 128;
    await page.mouse.dblclick(box.x + 30.5 * side, box.y + 31.5 * side);
    await frames(page, 2);
    assert.equal(await textOf(page, '.status'), 'Why this weight? covers runs of up to 512 tokens; this one has 1,500.');
    assert.equal(await page.locator('.explain').isVisible().catch(() => false), false);
    await host.serve();
    await frames(page, 2);
    const why = page.locator('.top-words li:not([hidden]) button.why').first();
    assert.equal(await why.isDisabled(), true);
    assert.equal(await why.getAttribute('title'), 'Why this weight? covers runs of up to 512 tokens; this one has 1,500.');
    assert.match(await textOf(page, '.mx-help'), /Why this weight\? covers runs of up to 512 tokens/);
    // Compare: the Pin button is off, and says why.
    const pin = page.locator('button.pin-baseline');
    assert.equal(await pin.isDisabled(), true);
    assert.match((await pin.getAttribute('title')) ?? '', /Compare needs whole matrices; runs of more than 512 tokens/);
    await screenshot(page, 'long-refusals');
    const msgs = await host.news();
    void msgs;
    const all = await posted(page);
    for (const type of ['values/request', 'explain/request', 'compare/pin']) assert.equal(all.filter((m) => m.type === type).length, 0, `no ${type}`);
    assert.equal(all.filter((m) => m.type === 'hover/token' && m.weights === 'value').length, 0, 'hovers speak of attention');
    onlyWindows(host);
    noErrors(p);
  } finally {
    await p.close();
  }
});

test('a long run’s hovered token whose rows never come: the panel asks once, and shows the host’s error', async () => {
  const p = await openPanel(browser, { viewport: { width: 1200, height: 860 } });
  const { page } = p;
  const host = new Host(page);
  try {
    await showMatrix(page, host);
    await frames(page, 2);
    await hoverCell(page, 128, 20, 3);
    await host.serve({ hovers: false });
    assert.match(await textOf(page, '.side-hint'), /Computing this token’s rows…/);
    // No rows after 1.5 s: the panel asks for token 20's rows itself (every layer, every key).
    await page.waitForFunction(() => (window as unknown as { __posted: { type: string; count?: number }[] }).__posted.some((m) => m.type === 'rows/request' && m.count === 1), undefined, { timeout: 5000 });
    const asked = await host.serve({ hovers: false, error: 'the engine was busy' });
    assert.deepEqual(asked.map((r) => [r.start, r.count, r.layers, r.keyStart]), [[20, 1, undefined, undefined]]);
    await frames(page, 2);
    assert.match(await textOf(page, '.side-hint'), /No rows for this token: the engine was busy/);
    onlyWindows(host);
    noErrors(p);
  } finally {
    await p.close();
  }
});
