// The user's flow in the real workbench, shared by the end-to-end tests and `npm run demo`:
// select text, run Show Attention, wait for the panel to paint, hover in the panel and the editor.
import type { Frame, Page } from 'playwright-core';
import { findWebviewFrame, openFile, runCommand, selectText } from './browser';

export const STORY =
  'Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her dog. One day, Lily saw a big red ball.';

/** Opens `file`, selects `text`, runs Show Attention and returns the panel's frame once every layer is painted. */
export async function showAttentionOn(page: Page, file: string, text: string): Promise<Frame> {
  const previous = await paintedRun(page);
  await openFile(page, file);
  await selectText(page, text);
  await runCommand(page, 'Attention Lens: Show Attention');
  return findWebviewFrame(
    page,
    async (frame) => {
      const run = await frame.$eval('#app', (app) => app.getAttribute('data-painted-run')).catch(() => null);
      return run !== null && run !== previous;
    },
    { timeoutMs: 120_000 },
  );
}

/** The run id the panel last painted completely, or null when there is no panel yet. */
async function paintedRun(page: Page): Promise<string | null> {
  for (const frame of page.frames()) {
    const run = await frame.$eval('#app', (app) => app.getAttribute('data-painted-run')).catch(() => null);
    if (run) return run;
  }
  return null;
}

/** Model-view heatmaps: how many there are, and how many have more than one colour (not blank). */
export async function modelViewCanvases(frame: Frame): Promise<{ total: number; nonBlank: number; labels: string[] }> {
  return frame.evaluate(() => {
    const canvases = [...document.querySelectorAll<HTMLCanvasElement>('.view-model canvas')].filter((c) => /head \d+/i.test(c.getAttribute('aria-label') ?? ''));
    let nonBlank = 0;
    for (const c of canvases) {
      const ctx = c.getContext('2d');
      if (!ctx || !c.width || !c.height) continue;
      const px = ctx.getImageData(0, 0, c.width, c.height).data;
      const seen = new Set<number>();
      for (let i = 0; i < px.length && seen.size < 3; i += 4) seen.add((px[i] << 16) | (px[i + 1] << 8) | px[i + 2]);
      if (seen.size > 1) nonBlank++;
    }
    return { total: canvases.length, nonBlank, labels: canvases.map((c) => c.getAttribute('aria-label') ?? '') };
  });
}

/** Switches the panel to the Heads view, hovers the query token whose text contains `token`, returns the side box's words. */
export async function hoverPanelToken(frame: Frame, token: string): Promise<string[]> {
  await frame.locator('button[role="tab"][data-view="head"]').click();
  const tok = frame.locator('.tok.q', { hasText: token }).first();
  await tok.scrollIntoViewIfNeeded();
  await tok.hover();
  const items = frame.locator('.top-words li');
  await items.first().waitFor({ state: 'visible', timeout: 10_000 });
  await frame.waitForFunction(() => (document.querySelector('.top-words li')?.textContent ?? '').trim().length > 0, undefined, { timeout: 10_000 });
  return items.allTextContents();
}

/**
 * Elements the editor shows with one of the "attended" decoration colours. VS Code resolves theme
 * colours into the decoration's CSS rule, so match rules by the resolved value of our contributed
 * colours (`--vscode-attentionLens-attendedN` on the workbench).
 */
export async function attendedDecorations(page: Page): Promise<number> {
  // A string, not a function: tsx's name-keeping helper (__name) does not exist in the page.
  return page.evaluate(`(() => {
    const probe = document.createElement('div');
    document.body.append(probe);
    const colour = (css) => { probe.style.backgroundColor = ''; probe.style.backgroundColor = css; return getComputedStyle(probe).backgroundColor; };
    const root = getComputedStyle(document.querySelector('.monaco-workbench') || document.body);
    const ours = new Set();
    for (let i = 1; i <= 5; i++) {
      const v = root.getPropertyValue('--vscode-attentionLens-attended' + i).trim();
      if (v) ours.add(colour(v));
    }
    const selectors = [];
    for (const sheet of document.styleSheets) {
      let rules;
      try { rules = sheet.cssRules; } catch { continue; }
      for (const rule of rules) {
        if (rule instanceof CSSStyleRule && rule.selectorText.includes('ced-') && rule.style.backgroundColor && ours.has(colour(rule.style.backgroundColor))) selectors.push(rule.selectorText);
      }
    }
    probe.remove();
    return selectors.length ? document.querySelectorAll(selectors.join(',')).length : 0;
  })()`);
}

/** Hovers the first rendered occurrence of `word` in the active editor and returns the hover's text. */
export async function hoverEditorWord(page: Page, word: string): Promise<string> {
  const span = page.locator('.editor-group-container .monaco-editor .view-line span span', { hasText: word }).first();
  const box = await span.boundingBox();
  if (!box) throw new Error(`"${word}" is not visible in the editor`);
  const text = (await span.textContent()) ?? '';
  const at = Math.max(0, text.indexOf(word));
  // Point at the middle of the word inside its span.
  const x = box.x + (box.width * (at + word.length / 2)) / Math.max(1, text.length);
  await page.mouse.move(x, box.y + box.height / 2);
  const hover = page.locator('.monaco-hover .monaco-hover-content, .monaco-hover .hover-contents', { hasText: 'Attention Lens' }).first();
  await hover.waitFor({ state: 'visible', timeout: 15_000 });
  return (await hover.textContent()) ?? '';
}
