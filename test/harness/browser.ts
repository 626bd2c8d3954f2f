// Drives the code-server workbench in Debian's Chromium with playwright-core (no browser download).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { chromium, type BrowserContext, type Frame, type Locator, type Page } from 'playwright-core';
import { CHROMIUM, CHROMIUM_ARGS, makeTempDir, outputPath, removeTempDir, sleep } from './tools';

export interface Browser {
  context: BrowserContext;
  page: Page;
  /** Closes Chromium and removes its profile folder. Idempotent. */
  close(): Promise<void>;
}

export interface LaunchOptions {
  /** Headed only when explicitly asked (HEADED=1); CI has no display. */
  headless?: boolean;
  viewport?: { width: number; height: number };
}

/** Launches Chromium with a fresh persistent profile, as ENVIRONMENT.md describes. */
export async function launchBrowser(options: LaunchOptions = {}): Promise<Browser> {
  const userDataDir = makeTempDir('al-chromium');
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: options.headless ?? process.env.HEADED !== '1',
    viewport: options.viewport ?? { width: 1400, height: 900 },
    args: CHROMIUM_ARGS,
  });
  const page = context.pages()[0] ?? (await context.newPage());
  let closed: Promise<void> | undefined;
  const close = (): Promise<void> =>
    (closed ??= (async () => {
      await context.close().catch(() => undefined);
      removeTempDir(userDataDir);
    })());
  return { context, page, close };
}

/** Opens a workbench URL and waits for `.monaco-workbench`. */
export async function openWorkbench(page: Page, url: string, timeoutMs = 60_000): Promise<void> {
  await page.goto(url, { waitUntil: 'domcontentloaded', timeout: timeoutMs });
  await page.locator('.monaco-workbench').waitFor({ state: 'visible', timeout: timeoutMs });
}

/** The workbench URL that opens `folder` (code-server takes a plain path). */
export function workbenchUrl(serverUrl: string, folder?: string): string {
  return folder === undefined ? `${serverUrl}/` : `${serverUrl}/?folder=${encodeURIComponent(path.resolve(folder))}`;
}

const QUICK_INPUT = '.quick-input-widget';
const QUICK_INPUT_BOX = '.quick-input-widget .quick-input-box input';
const QUICK_INPUT_ROW = '.quick-input-widget .quick-input-list .monaco-list-row';

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

async function closeQuickInput(page: Page): Promise<void> {
  if (await page.locator(QUICK_INPUT).isVisible()) {
    await page.keyboard.press('Escape');
    await page.locator(QUICK_INPUT).waitFor({ state: 'hidden', timeout: 2000 }).catch(() => undefined);
  }
}

/**
 * Takes keyboard focus out of a webview (its iframe would receive the keys) back to the workbench,
 * leaving it alone when it is already there (for example in an editor).
 */
async function focusWorkbench(page: Page): Promise<void> {
  await page.evaluate(() => {
    const active = document.activeElement;
    if (active instanceof HTMLIFrameElement) active.blur();
  });
}

/** Opens the quick input with a key (F1, Control+P, ...) and returns its text box. */
async function openQuickInput(page: Page, keys: string[]): Promise<Locator> {
  await closeQuickInput(page);
  await focusWorkbench(page);
  const box = page.locator(QUICK_INPUT_BOX);
  for (const key of keys) {
    await page.keyboard.press(key);
    if (await box.waitFor({ state: 'visible', timeout: 3000 }).then(() => true, () => false)) return box;
  }
  throw new Error(`quick input did not open with ${keys.join(' or ')}`);
}

/** Retries are expected while the workbench starts; say so on one line, for CI logs. */
function logRetry(step: string, error: unknown): void {
  const reason = (error instanceof Error ? error.message : String(error)).split('\n')[0];
  console.log(`[harness] retrying ${step}: ${reason}`);
}

export interface RetryOptions {
  /** Overall time to keep retrying (the extension host can come up ~15 s after the page). */
  timeoutMs?: number;
}

/**
 * Runs a command from the palette (F1). `title` is the label shown there, either in full
 * ("Attention Lens: Show Attention") or without its category ("Show Attention"); the row must
 * match exactly, so a longer title that starts the same is never picked. Retries until the
 * command shows up, because contributed commands appear only once the extension host is up.
 */
export async function runCommand(page: Page, title: string, options: RetryOptions = {}): Promise<void> {
  const deadline = Date.now() + (options.timeoutMs ?? 60_000);
  const label = new RegExp(`(^|: )${escapeRegExp(title)}$`);
  let lastError: unknown;
  do {
    try {
      const box = await openQuickInput(page, ['F1', 'Control+Shift+P']);
      await box.fill(`>${title}`);
      const row = page
        .locator(QUICK_INPUT_ROW)
        .filter({ has: page.locator('.label-name', { hasText: label }) })
        .first();
      await row.waitFor({ state: 'visible', timeout: 5000 });
      await row.click();
      return;
    } catch (error) {
      lastError = error;
      logRetry(`runCommand "${title}"`, error);
      await closeQuickInput(page).catch(() => undefined);
      await sleep(1000);
    }
  } while (Date.now() < deadline);
  throw new Error(`command "${title}" not found in the palette: ${String(lastError)}`);
}

/**
 * Opens a workspace file by Quick Open (Ctrl+P) and waits for its editor tab to be active.
 * `file` is a path relative to the workspace folder (or absolute).
 */
export async function openFile(page: Page, file: string, options: RetryOptions = {}): Promise<void> {
  const deadline = Date.now() + (options.timeoutMs ?? 30_000);
  const base = path.basename(file);
  const activeTab = page.locator('.editor-group-container.active .tab.active', { hasText: base });
  let lastError: unknown;
  do {
    try {
      const box = await openQuickInput(page, ['Control+P']);
      await box.fill(file);
      // The first file search of a session takes a few seconds.
      const row = page.locator(QUICK_INPUT_ROW).filter({ has: page.locator('.label-name', { hasText: base }) }).first();
      await row.waitFor({ state: 'visible', timeout: 10_000 });
      await row.click();
      await activeTab.waitFor({ state: 'visible', timeout: 5000 });
      await page.locator('.editor-group-container.active .monaco-editor .view-lines').first().waitFor({ timeout: 5000 });
      return;
    } catch (error) {
      lastError = error;
      logRetry(`openFile ${file}`, error);
      await closeQuickInput(page).catch(() => undefined);
      await sleep(1000);
    }
  } while (Date.now() < deadline);
  throw new Error(`could not open ${file}: ${String(lastError)}`);
}

/** Focuses the text of the active editor. */
export async function focusEditor(page: Page): Promise<void> {
  await page.locator('.editor-group-container.active .monaco-editor .view-lines').first().click();
}

/** Moves the cursor to a 1-based line and column with Go to Line (Ctrl+G). */
export async function goToPosition(page: Page, line: number, column = 1): Promise<void> {
  await focusEditor(page);
  const box = await openQuickInput(page, ['Control+G']);
  await box.fill(`:${line}:${column}`);
  await page.keyboard.press('Enter');
  await page.locator(QUICK_INPUT).waitFor({ state: 'hidden', timeout: 5000 });
}

/** Selects `length` characters from a 1-based line and column (within one line), with the keyboard. */
export async function selectRange(page: Page, line: number, column: number, length: number): Promise<void> {
  await goToPosition(page, line, column);
  for (let i = 0; i < length; i++) await page.keyboard.press('Shift+ArrowRight');
}

/** Selects the whole document of the active editor. */
export async function selectAll(page: Page): Promise<void> {
  await focusEditor(page);
  await page.keyboard.press('Control+A');
}

/**
 * Selects the first occurrence of `text` in the active editor with the find widget (Ctrl+F):
 * find-as-you-type selects the match, and closing the widget keeps the selection.
 */
export async function selectText(page: Page, text: string): Promise<void> {
  await focusEditor(page);
  await page.keyboard.press('Control+Home');
  await page.keyboard.press('Control+F');
  const input = page.locator('.editor-group-container.active .find-widget textarea, .editor-group-container.active .find-widget input').first();
  await input.waitFor({ state: 'visible', timeout: 5000 });
  await input.fill(text);
  // The match count shows once the search ran ("1 of 3"); "No results" means nothing to select.
  const matches = page.locator('.editor-group-container.active .find-widget .matchesCount');
  await page.waitForFunction(
    (el) => !!el && /\d+ of \d+/.test(el.textContent ?? ''),
    await matches.elementHandle(),
    { timeout: 5000 },
  );
  await page.keyboard.press('Escape');
}

/**
 * Finds the frame of a webview whose document satisfies `predicate` (a webview is two nested
 * iframes: an outer host frame and the inner frame with the extension's HTML, so search all frames).
 */
export async function findWebviewFrame(
  page: Page,
  predicate: (frame: Frame) => Promise<boolean>,
  options: RetryOptions = {},
): Promise<Frame> {
  const deadline = Date.now() + (options.timeoutMs ?? 30_000);
  do {
    for (const frame of page.frames()) {
      if (frame === page.mainFrame() || frame.isDetached()) continue;
      try {
        if (await predicate(frame)) return frame;
      } catch {
        // the frame navigated or detached while we looked
      }
    }
    await sleep(250);
  } while (Date.now() < deadline);
  throw new Error('no webview frame matched');
}

/** findWebviewFrame for the common case: the webview that contains an element matching `selector`. */
export function findWebviewFrameWith(page: Page, selector: string, options: RetryOptions = {}): Promise<Frame> {
  return findWebviewFrame(page, async (frame) => (await frame.$(selector)) !== null, options);
}

/** Saves a full-page screenshot as test-output/screenshots/<name>.png and returns its path. */
export async function screenshot(page: Page, name: string): Promise<string> {
  const file = path.join(outputPath('screenshots'), `${name.replace(/[^\w.-]+/g, '_')}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

/**
 * Messages of all notifications so far (showInformationMessage and friends), read from the
 * notification center: in headless Chromium the workbench does not pop up toasts, it only marks
 * the bell in the status bar. Closes the center again afterwards.
 */
export async function notificationTexts(page: Page): Promise<string[]> {
  const center = page.locator('.notifications-center');
  if (!(await center.isVisible())) await runCommand(page, 'Notifications: Show Notifications');
  await center.waitFor({ state: 'visible', timeout: 5000 });
  const texts = await center.locator('.notification-list-item-message').allTextContents();
  await page.keyboard.press('Escape');
  await center.waitFor({ state: 'hidden', timeout: 2000 }).catch(() => undefined);
  return texts;
}

/** Records page errors and console errors (useful in failure reports). */
export function collectPageErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on('pageerror', (error) => errors.push(`pageerror: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error') errors.push(`console: ${message.text()}`);
  });
  return errors;
}

/** Writes text next to the screenshots (for example collected errors), returning the path. */
export function writeArtifact(name: string, text: string): string {
  const file = path.join(outputPath('artifacts'), name.replace(/[^\w.-]+/g, '_'));
  fs.writeFileSync(file, text);
  return file;
}
