// End to end: the extension installed from the VSIX into a real VS Code (code-server), driven by
// real Chromium as a user would: select, Show Attention from the palette, the panel paints every
// head, hovering a token in the panel highlights the source, hovering the source shows a hover.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Page } from 'playwright-core';
import { startCodeServer, type CodeServer } from '../harness/codeServer';
import { findWebviewFrame, goToPosition, launchBrowser, openFile, openWorkbench, runCommand, screenshot, selectAll, workbenchUrl, type Browser } from '../harness/browser';
import { writeQwenFolder } from '../../bench/make-qwen-gqa';
import { makeTempDir, REPO_ROOT } from '../harness/tools';
import { STORY, attendedDecorations, hoverEditorWord, hoverPanelToken, modelViewCanvases, showAttentionOn } from '../harness/flow';

const VSIX = path.join(REPO_ROOT, 'attention-lens.vsix');
const STORIES = path.resolve(REPO_ROOT, '../shared/models/stories260K');
const STORIES_GQA = path.resolve(REPO_ROOT, '../shared/models/stories260K-gqa');
/** The panel's top words for "Lily" with stories260K, which the fused export must reproduce. */
let plainLilyWords: string[] = [];
const SETTINGS = { 'attentionLens.model': STORIES, 'attentionLens.offline': true, 'workbench.colorTheme': 'Default Dark Modern' };
const XSS = '<img src=x onerror=alert(1)> and <script>alert(2)</script> tokens';

describe('the workbench with the extension installed from the VSIX', () => {
  let server: CodeServer;
  let browser: Browser;
  let page: Page;
  const dialogs: string[] = [];

  before(async () => {
    assert.ok(fs.existsSync(VSIX), 'run `npm run package` first');
    const workspace = makeTempDir('al-e2e-ws');
    fs.writeFileSync(path.join(workspace, 'story.txt'), `${STORY}\n`);
    fs.writeFileSync(path.join(workspace, 'evil.html'), `<p>${XSS}</p>\n`);
    server = await startCodeServer({
      workspace,
      name: 'e2e',
      vsix: [VSIX],
      settings: SETTINGS,
    });
    browser = await launchBrowser();
    page = browser.page;
    page.on('dialog', (d) => {
      dialogs.push(d.message());
      void d.dismiss();
    });
    await openWorkbench(page, workbenchUrl(server.url, workspace));
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  test('Show Attention from the palette paints all 5 x 8 heads of stories260K', async () => {
    const frame = await showAttentionOn(page, 'story.txt', STORY);
    const canvases = await modelViewCanvases(frame);
    assert.equal(canvases.total, 40, canvases.labels.join('\n'));
    assert.equal(canvases.nonBlank, 40, 'every heatmap has pixels');
    assert.match((await frame.locator('.meta').textContent()) ?? '', /5 layers × 8 heads/);
    await screenshot(page, 'e2e-model-view');
  });

  test('hovering a token in the panel lists its top words and highlights them in the editor', async () => {
    const frame = await showAttentionOn(page, 'story.txt', STORY);
    assert.equal(await attendedDecorations(page), 0, 'no highlights before a hover');
    const words = await hoverPanelToken(frame, 'Lily');
    plainLilyWords = words;
    assert.ok(words.length > 0, 'top words listed');
    assert.ok(words.every((w) => /\d/.test(w)), `each word has a weight: ${words.join(' | ')}`);
    const deadline = Date.now() + 10_000;
    let decorated = 0;
    while (Date.now() < deadline && !(decorated = await attendedDecorations(page))) await page.waitForTimeout(200);
    assert.ok(decorated > 0, 'the editor shows attended words');
    await screenshot(page, 'e2e-panel-hover');
  });

  test('hovering a word in the editor shows its top-attended words', async () => {
    const text = await hoverEditorWord(page, 'Lily');
    assert.match(text, /Attention Lens/);
    assert.match(text, /attends most to/);
    assert.match(text, /\d+\.\d%/);
    await screenshot(page, 'e2e-editor-hover');
  });

  test('a selection holding HTML renders as text and runs nothing', async () => {
    const frame = await showAttentionOn(page, 'evil.html', XSS);
    const tokens = await frame.evaluate(() => [...document.querySelectorAll('.tok')].map((t) => t.textContent ?? '').join(''));
    assert.match(tokens, /img/);
    assert.equal(await frame.locator('#app img, #app script').count(), 0, 'no element was created from token text');
    await hoverPanelToken(frame, '<');
    assert.deepEqual(dialogs, []);
    await screenshot(page, 'e2e-html-as-text');
  });

  test('a window reload brings the last run back: the panel paints it again and the editor hovers return', async () => {
    await showAttentionOn(page, 'story.txt', STORY);
    // Developer: Reload Window, as a user reloads: the workbench saves its open editors (the panel
    // among them) on the way out. A bare page reload may skip that save, and then no panel comes back.
    const reloaded = page.waitForEvent('framenavigated', { predicate: (f) => f === page.mainFrame(), timeout: 60_000 });
    await runCommand(page, 'Developer: Reload Window');
    await reloaded;
    await page.locator('.monaco-workbench').waitFor({ state: 'visible', timeout: 60_000 });
    const frame = await findWebviewFrame(page, async (f) => (await f.$eval('#app', (app) => app.getAttribute('data-painted-run')).catch(() => null)) !== null, { timeoutMs: 120_000 });
    assert.match((await frame.locator('.meta').textContent()) ?? '', /5 layers × 8 heads.*story\.txt/);
    const canvases = await modelViewCanvases(frame);
    assert.equal(canvases.nonBlank, 40, 'every heatmap painted again');
    const text = await hoverEditorWord(page, 'Lily');
    assert.match(text, /attends most to/);
    await screenshot(page, 'e2e-after-reload');
  });

  test('"Why this weight?" from the matrix, by keyboard: the real capture recomputes the row and the view says it matches; V weighs by values', async () => {
    const frame = await showAttentionOn(page, 'story.txt', STORY);
    await frame.locator('button[role="tab"][data-view="matrix"]').click();
    // The keyboard path (focus the matrix, move to the cell, W): deterministic, unlike a pointer
    // that crosses other cells on its way.
    await frame.locator('.mx-overlay').focus();
    for (let i = 0; i < 14; i++) await page.keyboard.press('ArrowDown');
    for (let i = 0; i < 3; i++) await page.keyboard.press('ArrowRight');
    await page.keyboard.press('w');
    const view = frame.locator('#explain');
    await frame.waitForFunction(() => document.querySelector('#explain')?.getAttribute('data-check'), undefined, { timeout: 120_000 });
    assert.equal(await view.getAttribute('data-check'), 'match', (await frame.locator('.ex-check').textContent()) ?? '');
    assert.match((await frame.locator('.ex-check').textContent()) ?? '', /✓/);
    assert.match((await frame.locator('.ex-title').textContent()) ?? '', /Why does “.+” attend to “.+”\?/);
    await screenshot(page, 'e2e-explain');
    await page.keyboard.press('Escape');
    await frame.waitForFunction(() => !document.querySelector('#explain')?.hasAttribute('open'), undefined, { timeout: 10_000 });

    // V: value-weighted attention from the same capture, in the matrix and in the editor's hover.
    await page.keyboard.press('v');
    await frame.waitForFunction(() => /value-weighted/.test(document.querySelector('.mx-caption')?.textContent ?? '') && !document.querySelector('.mx-heat.waiting'), undefined, { timeout: 120_000 });
    await screenshot(page, 'e2e-value-weighted');
    const text = await hoverEditorWord(page, 'Lily');
    assert.match(text, /value-weighted/);
    assert.match(text, /takes most, by value-weighted share, from/);
    assert.match(text, /\d+\.\d%/);
    await frame.locator('.mx-overlay').focus();
    await page.keyboard.press('v');
    await frame.waitForFunction(() => !/value-weighted/.test(document.querySelector('.mx-caption')?.textContent ?? ''), undefined, { timeout: 10_000 });
  });

  test('Continue: the panel button lets stories260K write after the text; the written tokens are marked in the Heads view', async () => {
    const frame = await showAttentionOn(page, 'story.txt', STORY);
    await frame.locator('button.continue').click();
    await frame.waitForFunction(() => /written by the model/.test(document.querySelector('.meta')?.textContent ?? ''), undefined, { timeout: 120_000 });
    assert.match((await frame.locator('.meta').textContent()) ?? '', /, 40 written by the model/);
    // 2: the Heads view, with the keyboard in it; End: the last token, a written one (rows are drawn as they scroll into view).
    await page.keyboard.press('2');
    await page.keyboard.press('End');
    await frame.waitForFunction(() => document.querySelectorAll('.tok.generated').length > 0, undefined, { timeout: 30_000 });
    await screenshot(page, 'e2e-continue');
  });
});

describe('a fused-attention export (stories260K-gqa: GroupQueryAttention, rotary inside the op) in the workbench', () => {
  let server: CodeServer;
  let browser: Browser;

  before(async () => {
    const workspace = makeTempDir('al-e2e-gqa');
    fs.writeFileSync(path.join(workspace, 'story.txt'), `${STORY}\n`);
    server = await startCodeServer({ workspace, name: 'e2e-gqa', vsix: [VSIX], settings: { ...SETTINGS, 'attentionLens.model': STORIES_GQA } });
    browser = await launchBrowser();
    await openWorkbench(browser.page, workbenchUrl(server.url, workspace));
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  test('shows exactly like stories260K: 5 x 8 painted heads, the same top words with the same weights', async () => {
    const page = browser.page;
    const frame = await showAttentionOn(page, 'story.txt', STORY);
    assert.match((await frame.locator('.meta').textContent()) ?? '', /stories260K-gqa · 5 layers × 8 heads/);
    const canvases = await modelViewCanvases(frame);
    assert.equal(canvases.nonBlank, 40, 'every heatmap painted');
    await screenshot(page, 'e2e-fused-gqa');
    assert.ok(plainLilyWords.length > 0, 'the stories260K suite ran first');
    assert.deepEqual(await hoverPanelToken(frame, 'Lily'), plainLilyWords);
    await screenshot(page, 'e2e-fused-gqa-hover');
  });
});

describe('an encoder-decoder model (aren-transliteration: Arabic names to Latin letters) in the workbench', () => {
  const AREN = path.resolve(REPO_ROOT, '../shared/models/aren-transliteration');
  const NAME = 'آتزمون';
  let server: CodeServer;
  let browser: Browser;

  before(async () => {
    const workspace = makeTempDir('al-e2e-s2s');
    fs.writeFileSync(path.join(workspace, 'names.txt'), `Name: ${NAME}\n`);
    server = await startCodeServer({ workspace, name: 'e2e-s2s', vsix: [VSIX], settings: { ...SETTINGS, 'attentionLens.model': AREN } });
    browser = await launchBrowser();
    await openWorkbench(browser.page, workbenchUrl(server.url, workspace));
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  test('Show Attention writes the transliteration and opens on the alignment; hovers link target letters and the source in the editor', async () => {
    const page = browser.page;
    const frame = await showAttentionOn(page, 'names.txt', NAME);
    await frame.waitForSelector('#view-alignment:not([hidden])', { timeout: 30_000 });
    assert.match((await frame.locator('.meta').textContent()) ?? '', /wrote “atzmon”/);
    assert.match((await frame.locator('.meta').textContent()) ?? '', /6 source → 7 target tokens/);
    // The last layer's alignment: each target letter on the source letter it came from.
    await frame.locator('select.layer').selectOption('5');
    // A click on the empty second line clears the selection, which would hide the highlights.
    await page.locator('.editor-group-container .view-line').nth(1).click();
    const box = (await frame.locator('.al-heat').boundingBox())!;
    const cell = box.width / 6;
    // Row 3 ("z"), column 2 ("ز"): the panel's hover lights the source letter it attends to in the editor.
    await page.mouse.move(box.x + 2.5 * cell, box.y + 3.5 * cell);
    await screenshot(page, 'e2e-seq2seq-hovered');
    const caption = await frame.waitForFunction(() => document.querySelector('.al-caption')?.textContent ?? '', undefined, { timeout: 10_000 }).then((h) => h.jsonValue());
    assert.match(caption.replace(/[\u2066-\u2069]/g, ''), /“z” → “ز”/);
    let lit = 0;
    for (let i = 0; i < 50 && lit === 0; i++) {
      lit = await attendedDecorations(page);
      if (!lit) await new Promise((r) => setTimeout(r, 200));
    }
    assert.ok(lit > 0, 'the source letters "z" attends to are lit in the editor');
    await screenshot(page, 'e2e-seq2seq-alignment');
    // The editor's hover on a source letter lists the target letters that attend to it most.
    const text = await hoverEditorWord(page, NAME);
    assert.match(text, /cross-attention/);
    assert.match(text, /is attended most by the target tokens/);
    assert.match(text, /\d+\.\d% /);
    await screenshot(page, 'e2e-seq2seq-hover');
    // The Attention select: the encoder's and the decoder's self-attention in the Model view, every head painted.
    for (const part of ['encoder', 'decoder']) {
      await frame.locator('select.part').selectOption(part);
      await frame.locator('button[role="tab"][data-view="model"]').click();
      let canvases = await modelViewCanvases(frame);
      for (let i = 0; i < 50 && canvases.nonBlank < 48; i++) {
        await new Promise((r) => setTimeout(r, 200));
        canvases = await modelViewCanvases(frame);
      }
      assert.equal(canvases.nonBlank, 48, `${part}: 6 layers × 8 heads painted`);
    }
    await screenshot(page, 'e2e-seq2seq-decoder');
  });
});

describe('a 4,096-token file (a generated Llama-shaped model: rotary positions, GroupQueryAttention) in the workbench', () => {
  let server: CodeServer;
  let browser: Browser;
  const NAMES = ['Lily', 'Tim', 'Sue', 'Ben', 'Max', 'Anna', 'Tom'];
  const THINGS = ['red ball', 'blue kite', 'small cat', 'toy boat', 'big hat', 'new book', 'sweet cake'];
  const line = (i: number) =>
    `${i + 1}. Once upon a time, there was a little girl named ${NAMES[i % 7]}. She loved to play outside in the park with her dog. One day, ${NAMES[i % 7]} saw a ${THINGS[(i * 3) % 7]}. She ran home to tell her mom about the ${THINGS[(i * 3) % 7]}.`;

  before(async () => {
    const model = makeTempDir('al-e2e-long-model');
    // Larger q/k/v weights than the bench's: random attention with structure to see, not near-uniform rows.
    writeQwenFolder(model, { layers: 2, heads: 4, kvHeads: 2, hidden: 64, intermediate: 128, headSize: 16, vocab: 512, maxPos: 8192, seed: 5, qkvStd: 0.2 }, STORIES);
    const workspace = makeTempDir('al-e2e-long');
    // About 4,800 tokens (about 68 a line): the run is cut to the 4,096 of attentionLens.maxTokens, near line 61.
    fs.writeFileSync(path.join(workspace, 'long.txt'), Array.from({ length: 70 }, (_, i) => line(i)).join('\n') + '\n');
    server = await startCodeServer({ workspace, name: 'e2e-long', vsix: [VSIX], settings: { ...SETTINGS, 'attentionLens.model': model, 'attentionLens.maxTokens': 4096 } });
    browser = await launchBrowser();
    await openWorkbench(browser.page, workbenchUrl(server.url, workspace));
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  test('shows the grid of every head, hovers in the editor anywhere in the file, and lights the editor from the panel', async () => {
    const page = browser.page;
    await openFile(page, 'long.txt');
    await selectAll(page);
    await runCommand(page, 'Attention Lens: Show Attention');
    const frame = await findWebviewFrame(page, async (f) => (await f.$eval('#app', (app) => app.getAttribute('data-painted-run')).catch(() => null)) !== null, { timeoutMs: 180_000 });
    assert.match((await frame.locator('.meta').textContent()) ?? '', /4,?096 tokens/);
    const canvases = await modelViewCanvases(frame);
    assert.equal(canvases.nonBlank, 8, `2 layers × 4 heads painted from thumbnails: ${canvases.labels.join(', ')}`);
    await screenshot(page, 'e2e-long-grid');
    // The editor's hover near the end of the analysed text (line 55, past token 3,600) computes that token's rows.
    await goToPosition(page, 55, 1);
    const text = await hoverEditorWord(page, 'ran');
    assert.match(text, /attends most to/);
    assert.match(text, /\d+\.\d% /);
    await screenshot(page, 'e2e-long-editor-hover');
    // The panel's Heads view: a window of the matrix; hovering a token there lists its top words and lights them in the editor.
    await goToPosition(page, 1, 1);
    const words = await hoverPanelToken(frame, 'Lily');
    assert.ok(words.length > 0 && words.every((w) => /\d/.test(w)), words.join(' | '));
    assert.match((await frame.locator('body').textContent()) ?? '', /Tokens 1–128 of 4,096 \(window\)/);
    let lit = 0;
    for (let i = 0; i < 50 && lit === 0; i++) {
      lit = await attendedDecorations(page);
      if (!lit) await new Promise((r) => setTimeout(r, 200));
    }
    assert.ok(lit > 0, 'the words the panel\'s token attends to are lit in the editor');
    await screenshot(page, 'e2e-long-heads-window');
    await frame.locator('button[role="tab"][data-view="matrix"]').click();
    await frame.waitForFunction(() => /Tokens \d+–\d+ of 4,096/.test(document.body.textContent ?? ''), undefined, { timeout: 30_000 });
    await screenshot(page, 'e2e-long-matrix-window');
  });
});
