// "Why this weight?" in the built panel bundle, in real Chromium: a double click in the matrix (or
// a top word's Why? button) asks the host for the head's computation (explain/request); the test
// plays the host and answers with a synthetic explanation whose shown row is softmax(scale·q·k)
// computed here in float64. The view must show every step, say the recomputation matches only
// when it does, move the key with ← →, and close on Escape with focus back where it was.
// Run: node --import tsx --test test/webview/explain.test.ts
// Screenshots: test-output/screenshots/explain-*.png

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { SCREENSHOTS, ensureBuilt, frames, launch, openPanel, postLayer, postMessages, posted, setTheme, type PanelPage } from './harness';
import { syntheticExplanation, syntheticRun, tokenize, type ExplanationOptions } from './synthetic';
import type { ExplainCell, Explanation } from '../../src/protocol/attention';
import { fmtNum as fmt } from '../../webview/explainMath';

const TEXT = 'Lily saw a little girl in the park, and the girl waved back at Lily.';
const RUN_ID = 4;
const LAYER = 1;
const HEAD = 2;

let browser: Browser;

before(async () => {
  ensureBuilt();
  browser = await launch();
});

after(async () => {
  await browser?.close();
});

async function shot(page: Page, name: string): Promise<void> {
  fs.mkdirSync(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SCREENSHOTS, `explain-${name}.png`) });
}

/** A causal run of TEXT, shown in the matrix view at LAYER, HEAD. */
async function showRun(p: PanelPage): Promise<{ T: number; labels: string[] }> {
  const { page } = p;
  const run = syntheticRun({ runId: RUN_ID, layers: 2, heads: 4, text: TEXT, tokens: tokenize(TEXT), causal: true });
  await postMessages(page, [run.start]);
  for (let l = 0; l < run.layers.length; l++) await postLayer(page, RUN_ID, l, run.layers[l]);
  await postMessages(page, [{ type: 'run/done', runId: RUN_ID, timings: {}, runtime: 'synthetic' }]);
  await page.waitForSelector(`#app[data-complete-run="${RUN_ID}"]`);
  await page.click('#tab-matrix');
  await page.selectOption('select.layer', String(LAYER));
  await page.selectOption('select.head', String(HEAD));
  await frames(page);
  // The panel shows a token as written in the source ("le", not "##le").
  return { T: run.start.tokens.length, labels: run.start.tokens.map((t) => (t.start >= 0 ? TEXT.slice(t.start, t.end) : t.text)) };
}

/** Double-clicks matrix cell (query row r, key column c), every token visible. */
async function dblclickCell(page: Page, T: number, r: number, c: number): Promise<void> {
  const box = (await page.locator('.mx-heat').boundingBox())!;
  const cell = box.width / T;
  await page.mouse.dblclick(box.x + (c + 0.5) * cell, box.y + (r + 0.5) * cell);
}

async function requests(page: Page): Promise<{ runId: number; cell: ExplainCell }[]> {
  return (await posted(page)).filter((m) => m.type === 'explain/request') as never;
}

/** Plays the host's answer: typed arrays rebuilt in the page, as VS Code delivers them. */
async function answer(page: Page, cell: ExplainCell, body: { explanation: Explanation } | { error: string }): Promise<void> {
  const wire =
    'explanation' in body
      ? Object.fromEntries(Object.entries(body.explanation).map(([k, v]) => [k, ArrayBuffer.isView(v) ? { f32: v instanceof Float32Array, values: Array.from(v as Float32Array) } : v]))
      : null;
  await page.evaluate(
    ([runId, cell, wire, error]) => {
      const explanation = wire
        ? Object.fromEntries(
            Object.entries(wire).map(([k, v]) => {
              const a = v as { f32?: boolean; values?: number[] };
              return [k, Array.isArray(a?.values) ? (a.f32 ? Float32Array.from(a.values) : Uint8Array.from(a.values)) : v];
            }),
          )
        : undefined;
      window.postMessage({ type: 'explain/data', runId, cell, ...(explanation ? { explanation } : { error }) }, '*');
    },
    [RUN_ID, cell, wire, 'error' in body ? body.error : null] as const,
  );
}

const text = async (page: Page, sel: string): Promise<string> => ((await page.locator(sel).first().textContent()) ?? '').trim();

async function openAndAnswer(p: PanelPage, o: ExplanationOptions): Promise<{ T: number; labels: string[]; cell: ExplainCell; e: Explanation }> {
  const { page } = p;
  const { T, labels } = await showRun(p);
  await dblclickCell(page, T, 14, 4);
  await page.waitForFunction(() => (window as unknown as { __posted: { type: string }[] }).__posted.some((m) => m.type === 'explain/request'));
  const [req] = await requests(page);
  assert.deepEqual(req, { type: 'explain/request', runId: RUN_ID, cell: { layer: LAYER, head: HEAD, query: 14, key: 4 } });
  const e = syntheticExplanation(req.cell, T, { causal: true, ...o });
  await answer(page, req.cell, { explanation: e });
  await page.waitForSelector('#explain[data-state="ready"]');
  return { T, labels, cell: req.cell, e };
}

describe('Why this weight?', () => {
  test('every step with the real numbers, the check that it matches, j marked and moved by ← →, Escape closes', async () => {
    const p = await openPanel(browser, { viewport: { width: 1280, height: 900 } });
    try {
      const { page } = p;
      const { T, labels } = await showRun(p);
      await page.focus('.mx-overlay');
      await dblclickCell(page, T, 14, 4);
      // Waiting for the host: the dialog says so, and nothing pretends to be ready.
      await page.waitForSelector('#explain[open][data-state="loading"]');
      assert.equal(await text(page, '.ex-status'), 'Capturing queries, keys and values…');
      assert.equal(await page.locator('.ex-content').isVisible(), false);
      assert.equal(await text(page, '.ex-title'), `Why does “${labels[14]}” attend to “${labels[4]}”?`);
      assert.equal(await text(page, '.ex-where'), `Layer ${LAYER + 1}, head ${HEAD + 1}`);
      const [req] = await requests(page);
      assert.deepEqual(req.cell, { layer: LAYER, head: HEAD, query: 14, key: 4 });
      await shot(page, 'loading');

      const e = syntheticExplanation(req.cell, T, { causal: true });
      await answer(page, { ...req.cell, layer: 0 }, { explanation: syntheticExplanation({ ...req.cell, layer: 0 }, T) }); // another row's answer: not this one
      await frames(page);
      assert.equal(await page.locator('#explain').getAttribute('data-state'), 'loading');
      await answer(page, req.cell, { explanation: e });
      await page.waitForSelector('#explain[data-state="ready"]');
      assert.equal(await page.locator('#explain').getAttribute('data-check'), 'match');
      const rowCheck = await text(page, '.ex-check [data-check="row"]');
      assert.match(rowCheck, /^✓ .*equals the attention shown/);
      const diff = Number(/largest difference ([\d.e-]+|0) /.exec(rowCheck)?.[1]);
      assert.ok(diff < 1e-5, rowCheck);
      assert.match(await text(page, '.ex-check [data-check="out"]'), /^✓ .*equals the head's output/);

      // Step 1: q, k and their product as strips of d cells with their values on hover; the dot product, scale, mask and score.
      const strips = page.locator('.ex-score .ex-cells');
      assert.equal(await strips.count(), 3);
      for (let s = 0; s < 3; s++) assert.equal(await strips.nth(s).locator('.ex-cell').count(), e.dim);
      assert.equal(await strips.nth(0).locator('.ex-cell').first().getAttribute('title'), `q[0] = ${fmt(e.q[0])}`);
      let dot = 0;
      for (let t = 0; t < e.dim; t++) dot += e.q[t] * e.k[4 * e.dim + t];
      const terms = await page.locator('.ex-eq .ex-term-val').allTextContents();
      assert.deepEqual(terms.slice(0, 4), [fmt(dot), fmt(e.scale), '0', fmt(e.scale * dot)]);
      assert.match(await text(page, '.ex-eq'), /scale \(1\/√16\)/);
      assert.match(await text(page, '.ex-score'), new RegExp(`Mask: causal\\..* the ${T - 15} later tokens`));

      // Step 2: the whole row, j marked; masked keys at −∞ and weight 0.
      const rows = page.locator('.ex-row tbody tr');
      assert.equal(await rows.count(), T);
      assert.deepEqual(await page.locator('.ex-row tbody tr.sel').evaluateAll((r) => r.map((x) => (x as HTMLElement).dataset.key)), ['4']);
      assert.equal(await rows.nth(4).getAttribute('aria-current'), 'true');
      assert.equal(((await rows.nth(20).locator('td').first().textContent()) ?? '').trim(), '−∞');
      assert.equal(((await rows.nth(20).locator('td').nth(1).textContent()) ?? '').trim(), '0');
      assert.match(await text(page, '.ex-row thead'), /‖α v‖/);

      // Step 3: the weighted sum, j's row among the heaviest, and the output.
      assert.ok((await page.locator('.ex-sum .ex-strip').count()) >= 3);
      assert.equal(await page.locator('.ex-sum .ex-strip.sel .ex-who').textContent(), `v of “${labels[4]}”`);
      assert.match(await text(page, '.ex-sum-sec'), /context vector/);
      for (const word of ['score', 'scale', 'softmax', 'weighted sum', 'context vector']) assert.ok((await text(page, '.explain')).includes(word), word);
      await shot(page, 'dark');

      // ← → move j along the row from the same data: no new request.
      await page.keyboard.press('ArrowRight');
      assert.equal(await text(page, '.ex-title'), `Why does “${labels[14]}” attend to “${labels[5]}”?`);
      assert.deepEqual(await page.locator('.ex-row tbody tr.sel').evaluateAll((r) => r.map((x) => (x as HTMLElement).dataset.key)), ['5']);
      assert.equal(await text(page, '.ex-pos'), `key 6 of ${T}`);
      await page.keyboard.press('ArrowLeft');
      await page.keyboard.press('ArrowLeft');
      assert.deepEqual(await page.locator('.ex-row tbody tr.sel').evaluateAll((r) => r.map((x) => (x as HTMLElement).dataset.key)), ['3']);
      await page.keyboard.press('End'); // a masked key: its score is −∞, its weight 0
      assert.deepEqual((await page.locator('.ex-eq .ex-term-val').allTextContents()).slice(2), ['−∞', '−∞', '0']);
      assert.equal((await requests(page)).length, 1, 'moving j asks nothing');

      // The panel's themes (high contrast first: the harness's light theme leaves variables high contrast lacks).
      for (const theme of ['high-contrast', 'light'] as const) {
        await page.keyboard.press('Home');
        await setTheme(page, theme);
        await frames(page, 3);
        await shot(page, theme);
      }
      await setTheme(page, 'dark');

      await page.keyboard.press('Escape');
      await page.waitForSelector('#explain', { state: 'hidden' });
      assert.equal(await page.evaluate(() => document.activeElement?.className), 'mx-overlay', 'focus back on the matrix');
      assert.equal(await page.locator('#app').getAttribute('data-pinned'), 'true', 'the double click left the row pinned');

      // The same row again (another key): shown at once from the data it has.
      await dblclickCell(page, T, 14, 9);
      await page.waitForSelector('#explain[open][data-state="ready"]');
      assert.deepEqual(await page.locator('.ex-row tbody tr.sel').evaluateAll((r) => r.map((x) => (x as HTMLElement).dataset.key)), ['9']);
      assert.equal((await requests(page)).length, 1);
      await page.click('.ex-close');
      await page.waitForSelector('#explain', { state: 'hidden' });
      assert.deepEqual(p.errors, []);
      assert.deepEqual(p.cspViolations, []);
    } finally {
      await p.close();
    }
  });

  test('a long row: the table builds the rows in view (aria-rowcount tells all), scrolls to j, and builds more as it scrolls', async () => {
    const p = await openPanel(browser, { viewport: { width: 1280, height: 900 } });
    try {
      const { page } = p;
      const long = Array.from({ length: 16 }, () => TEXT).join(' ');
      const run = syntheticRun({ runId: RUN_ID, layers: 1, heads: 1, text: long, tokens: tokenize(long), causal: true });
      const T = run.start.tokens.length;
      assert.ok(T > 250, `T = ${T}`);
      await postMessages(page, [run.start]);
      await postLayer(page, RUN_ID, 0, run.layers[0]);
      await postMessages(page, [{ type: 'run/done', runId: RUN_ID, timings: {}, runtime: 'synthetic' }]);
      await page.waitForSelector(`#app[data-complete-run="${RUN_ID}"]`);
      const cell = { layer: 0, head: 0, query: T - 20, key: T - 40 };
      await postMessages(page, [{ type: 'explain/open', runId: RUN_ID, cell }]);
      await page.waitForSelector('#explain[open][data-state="loading"]');
      await answer(page, cell, { explanation: syntheticExplanation(cell, T, { causal: true }) });
      await page.waitForSelector('#explain[data-state="ready"]');
      await frames(page);
      assert.equal(await page.locator('.ex-row').getAttribute('aria-rowcount'), String(T + 1));
      const built = await page.locator('.ex-row tbody tr[data-key]').count();
      assert.ok(built < T / 2, `${built} rows built of ${T}`);
      /** Key j's row is built, marked, and shown whole in the scroll box below the header. */
      const inView = async (j: number): Promise<void> => {
        const row = page.locator(`.ex-row tbody tr[data-key="${j}"]`);
        assert.equal(await row.getAttribute('aria-current'), 'true');
        assert.equal(await row.getAttribute('aria-rowindex'), String(j + 2));
        const [r, box, head] = await Promise.all([row.boundingBox(), page.locator('.ex-row-scroll').boundingBox(), page.locator('.ex-row thead').boundingBox()]);
        assert.ok(r && box && head && r.y >= head.y + head.height - 1 && r.y + r.height <= box.y + box.height + 1, `row ${j} at ${r?.y}..${r && r.y + r.height}, box ${box?.y}..${box && box.y + box.height}`);
      };
      await inView(T - 40);
      await page.keyboard.press('Home');
      await frames(page);
      await inView(0);
      await page.keyboard.press('End');
      await frames(page);
      await inView(T - 1);
      assert.equal(await text(page, '.ex-pos'), `key ${T} of ${T}`);
      // Scrolled by hand to the middle: the rows there are built, in their place (a click on one selects that key).
      await page.locator('.ex-row-scroll').evaluate((e) => (e.scrollTop = e.scrollHeight / 2));
      await frames(page, 3);
      const box = (await page.locator('.ex-row-scroll').boundingBox())!;
      const at = await page.evaluate(([x, y]) => (document.elementFromPoint(x, y)?.closest('tr[data-key]') as HTMLElement | null)?.dataset.key ?? null, [box.x + 40, box.y + box.height / 2] as const);
      assert.ok(at !== null && Math.abs(Number(at) - T / 2) < 30, `row ${at} in the middle of ${T}`);
      await page.mouse.click(box.x + 40, box.y + box.height / 2);
      assert.equal(await text(page, '.ex-pos'), `key ${Number(at) + 1} of ${T}`);
      await inView(Number(at));
      await shot(page, 'long');
      await page.keyboard.press('Escape');
      await page.waitForSelector('#explain', { state: 'hidden' });
      assert.equal(await page.locator('.ex-row tbody tr').count(), 0, 'the rows go when the dialog closes');
      assert.deepEqual(p.errors, []);
    } finally {
      await p.close();
    }
  });

  test('a shown row that the vectors do not give is NOT called a match', async () => {
    const p = await openPanel(browser, { viewport: { width: 1280, height: 900 } });
    try {
      const { page } = p;
      await openAndAnswer(p, { shownError: 1e-3 });
      assert.equal(await page.locator('#explain').getAttribute('data-check'), 'mismatch');
      const rowCheck = await text(page, '.ex-check [data-check="row"]');
      assert.match(rowCheck, /^✗ The recomputed weights do NOT match the attention shown: largest difference 1\.0e-3/);
      assert.equal(await page.locator('.ex-check .ok[data-check="row"]').count(), 0);
      assert.doesNotMatch(await text(page, '.ex-check'), /equals the attention shown/);
      await shot(page, 'mismatch');
      assert.deepEqual(p.errors, []);
    } finally {
      await p.close();
    }
  });

  test("the host's error is shown as such", async () => {
    const p = await openPanel(browser);
    try {
      const { page } = p;
      const { T } = await showRun(p);
      await dblclickCell(page, T, 3, 1);
      await page.waitForSelector('#explain[data-state="loading"]');
      const [req] = await requests(page);
      await answer(page, req.cell, { error: 'This model exposes no query and key operands for layer 2.' });
      await page.waitForSelector('#explain[data-state="error"]');
      assert.equal(await text(page, '.ex-status.error'), 'This model exposes no query and key operands for layer 2.');
      assert.equal(await page.locator('.ex-status').getAttribute('role'), 'alert');
      assert.equal(await page.locator('.ex-content').isVisible(), false);
      assert.equal(await page.locator('.ex-step:not(:disabled)').count(), 0, 'no keys to move between');
      await shot(page, 'error');
      await page.keyboard.press('Escape');
      await page.waitForSelector('#explain', { state: 'hidden' });
      assert.deepEqual(p.errors, []);
    } finally {
      await p.close();
    }
  });

  test("the host's explain/open (the editor hover's link) opens the view on that cell and asks for it", async () => {
    const p = await openPanel(browser);
    try {
      const { page } = p;
      const { labels } = await showRun(p);
      const cell = { layer: 0, head: 1, query: 6, key: 1 };
      await postMessages(page, [
        { type: 'explain/open', runId: RUN_ID + 1, cell }, // a run the panel does not hold: nothing
        { type: 'explain/open', runId: RUN_ID, cell },
      ]);
      await page.waitForSelector('#explain[open][data-state="loading"]');
      assert.deepEqual(await requests(page), [{ type: 'explain/request', runId: RUN_ID, cell }]);
      assert.equal(await text(page, '.ex-title'), `Why does “${labels[6]}” attend to “${labels[1]}”?`);
      assert.equal(await text(page, '.ex-where'), 'Layer 1, head 2');
      assert.deepEqual(p.errors, []);
    } finally {
      await p.close();
    }
  });

  test("a top word's Why? button in the Heads view, with the mean of heads: the head that weighs the pair most", async () => {
    const p = await openPanel(browser);
    try {
      const { page } = p;
      const { T } = await showRun(p);
      await page.selectOption('select.head', 'mean');
      await page.click('#tab-head');
      await page.locator('.tok.q[data-index="14"]').click(); // pins the query
      const why = page.locator('.top-words li:not([hidden]) button.why').first();
      await why.waitFor();
      const label = (await why.getAttribute('aria-label')) ?? '';
      assert.match(label, /^Why does “.+” attend to “.+”\?$/);
      await why.click();
      await page.waitForSelector('#explain[open]');
      const [req] = await requests(page);
      assert.equal(req.cell.query, 14);
      assert.equal(req.cell.layer, LAYER);
      assert.equal(await text(page, '.ex-title'), label);
      await answer(page, req.cell, { explanation: syntheticExplanation(req.cell, T, { causal: true }) });
      await page.waitForSelector('#explain[data-state="ready"]');
      assert.match(await text(page, '.ex-content'), new RegExp(`The panel shows the mean of heads, .*this is head ${req.cell.head + 1}`));
      await page.keyboard.press('Escape');
      await page.waitForSelector('#explain', { state: 'hidden' });
      assert.equal(await page.evaluate(() => document.activeElement?.classList.contains('why')), true, 'focus back on the button');
      assert.deepEqual(p.errors, []);
    } finally {
      await p.close();
    }
  });
});
