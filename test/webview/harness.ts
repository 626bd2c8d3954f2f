// Loads the BUILT panel bundle (out/webview/main.js + panel.css) into real Chromium the way the
// VS Code webview host does: a page with the panel's strict CSP, `<div id="app">`, a nonce'd
// script tag, theme variables on <html> and the theme class on <body>. `acquireVsCodeApi` is a
// stub that records what the panel posts. Messages are delivered with window.postMessage, as
// VS Code does.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { chromium, type Browser, type CDPSession, type Frame, type Page } from 'playwright-core';
import { CHROMIUM, CHROMIUM_ARGS } from '../harness/tools';

export const ROOT = path.resolve(__dirname, '../..');
const OUT = path.join(ROOT, 'out/webview');
export const SCREENSHOTS = path.join(ROOT, 'test-output/screenshots');
const ORIGIN = 'https://webview.test';
/** The workbench page that frames the panel (openFramedPanel): another site, as in VS Code. */
const WORKBENCH = 'https://workbench.test';
const NONCE = 'dGVzdC1ub25jZQ';

export type ThemeName = 'dark' | 'light' | 'high-contrast';

/** A subset of VS Code's default theme colours (Dark Modern, Light Modern, High Contrast). */
const THEMES: Record<ThemeName, { bodyClass: string; vars: Record<string, string> }> = {
  dark: {
    bodyClass: 'vscode-dark',
    vars: {
      'editor-background': '#1f1f1f',
      'editor-foreground': '#cccccc',
      foreground: '#cccccc',
      descriptionForeground: '#9d9d9d',
      focusBorder: '#0078d4',
      errorForeground: '#f85149',
      'charts-blue': '#3794ff',
      'charts-orange': '#d18616',
      'charts-green': '#89d185',
      'charts-purple': '#b180d7',
      'charts-red': '#f14c4c',
      'charts-yellow': '#cca700',
      'dropdown-background': '#313131',
      'dropdown-foreground': '#cccccc',
      'dropdown-border': '#3c3c3c',
      'button-background': '#0078d4',
      'button-foreground': '#ffffff',
      'button-secondaryBackground': '#313131',
      'button-secondaryForeground': '#cccccc',
      'button-border': '#ffffff12',
      'list-hoverBackground': '#2a2d2e',
      'list-activeSelectionBackground': '#04395e',
      'list-activeSelectionForeground': '#ffffff',
      'panel-border': '#2b2b2b',
      'editorWidget-border': '#454545',
      'inputValidation-errorBackground': '#5a1d1d',
      'inputValidation-errorBorder': '#be1100',
      'toolbar-hoverBackground': '#5a5d5e50',
      'panelTitle-activeBorder': '#0078d4',
      'panelTitle-activeForeground': '#cccccc',
      'sideBar-background': '#181818',
      'textBlockQuote-background': '#2b2b2b',
      'editorWarning-foreground': '#cca700',
    },
  },
  light: {
    bodyClass: 'vscode-light',
    vars: {
      'editor-background': '#ffffff',
      'editor-foreground': '#3b3b3b',
      foreground: '#3b3b3b',
      descriptionForeground: '#3b3b3b',
      focusBorder: '#005fb8',
      errorForeground: '#f85149',
      'charts-blue': '#1a85ff',
      'charts-orange': '#d18616',
      'charts-green': '#388a34',
      'charts-purple': '#652d90',
      'charts-red': '#e51400',
      'charts-yellow': '#bf8803',
      'dropdown-background': '#ffffff',
      'dropdown-foreground': '#3b3b3b',
      'dropdown-border': '#cecece',
      'button-background': '#005fb8',
      'button-foreground': '#ffffff',
      'button-secondaryBackground': '#e5e5e5',
      'button-secondaryForeground': '#3b3b3b',
      'button-border': '#0000001a',
      'list-hoverBackground': '#f2f2f2',
      'list-activeSelectionBackground': '#e8e8e8',
      'list-activeSelectionForeground': '#000000',
      'panel-border': '#e5e5e5',
      'editorWidget-border': '#c8c8c8',
      'inputValidation-errorBackground': '#f2dede',
      'inputValidation-errorBorder': '#be1100',
      'toolbar-hoverBackground': '#b8b8b850',
      'panelTitle-activeBorder': '#005fb8',
      'panelTitle-activeForeground': '#3b3b3b',
      'sideBar-background': '#f8f8f8',
      'textBlockQuote-background': '#f8f8f8',
      'editorWarning-foreground': '#bf8803',
    },
  },
  'high-contrast': {
    bodyClass: 'vscode-high-contrast',
    vars: {
      'editor-background': '#000000',
      'editor-foreground': '#ffffff',
      foreground: '#ffffff',
      descriptionForeground: '#ffffff',
      focusBorder: '#f38518',
      contrastBorder: '#6fc3df',
      contrastActiveBorder: '#f38518',
      errorForeground: '#f48771',
      'charts-blue': '#3794ff',
      'charts-orange': '#d18616',
      'charts-green': '#89d185',
      'charts-purple': '#b180d7',
      'charts-red': '#f14c4c',
      'charts-yellow': '#cca700',
      'dropdown-background': '#000000',
      'dropdown-foreground': '#ffffff',
      'dropdown-border': '#6fc3df',
      'button-border': '#6fc3df',
      'list-hoverBackground': '#00000000',
      'panel-border': '#6fc3df',
      'editorWidget-border': '#6fc3df',
      'inputValidation-errorBackground': '#000000',
      'inputValidation-errorBorder': '#f48771',
      'panelTitle-activeBorder': '#6fc3df',
    },
  },
};

const COMMON_VARS: Record<string, string> = {
  'font-family': 'system-ui, -apple-system, "Segoe UI", Ubuntu, sans-serif',
  'font-size': '13px',
  'editor-font-family': '"DejaVu Sans Mono", Menlo, Consolas, monospace',
  'editor-font-size': '13px',
};

/**
 * Runs `node esbuild.js` when any of `outputs` is missing or older than the newest file under
 * `sources` (paths relative to the repository). Defaults: the webview bundle and its sources
 * (npm test builds first anyway).
 */
export function ensureBuilt(
  sources = ['webview', 'src/analysis', 'src/protocol', 'media'],
  outputs = ['out/webview/main.js', 'out/webview/panel.css'],
): void {
  const newest = (dir: string): number => {
    let t = 0;
    const walk = (d: string): void => {
      for (const e of fs.readdirSync(d, { withFileTypes: true })) {
        const p = path.join(d, e.name);
        if (e.isDirectory()) walk(p);
        else t = Math.max(t, fs.statSync(p).mtimeMs);
      }
    };
    if (fs.existsSync(dir)) walk(dir);
    return t;
  };
  const srcTime = Math.max(...sources.map((d) => newest(path.join(ROOT, d))));
  const stale = (f: string): boolean => !fs.existsSync(f) || fs.statSync(f).mtimeMs < srcTime;
  if (outputs.some((f) => stale(path.join(ROOT, f)))) {
    execFileSync(process.execPath, ['esbuild.js'], { cwd: ROOT, stdio: 'inherit' });
  }
}

export async function launch(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
  });
}

/**
 * The panel document. `relay`: the page is a cross-origin frame of a workbench page, and what the
 * panel posts goes to the parent (VS Code's webview host relays it on) instead of window.__posted.
 */
function html(theme: ThemeName, csp: boolean, state: unknown, relay = false): string {
  const t = THEMES[theme];
  const vars: Record<string, string> = {};
  for (const [k, v] of Object.entries({ ...COMMON_VARS, ...t.vars })) vars[`--vscode-${k}`] = v;
  const policy = `default-src 'none'; script-src 'nonce-${NONCE}'; style-src ${ORIGIN}; img-src ${ORIGIN} data: blob:`;
  // The bootstrap plays VS Code's part: theme variables (set through CSSOM, as VS Code does, which
  // the CSP allows) and the acquireVsCodeApi stub that records posted messages.
  const boot = `
    (() => {
      const vars = ${JSON.stringify(vars)};
      for (const [k, v] of Object.entries(vars)) document.documentElement.style.setProperty(k, v);
      window.__posted = [];
      window.__state = ${JSON.stringify(state ?? null)};
      // What VS Code does to a posted message: a JSON round trip, except that ArrayBuffers and
      // typed arrays arrive as binary (copied here, as they cross to another process there).
      const wire = (m) => {
        const bufs = [];
        const json = JSON.stringify(m, (k, v) => (v instanceof ArrayBuffer || ArrayBuffer.isView(v) ? { $$buffer: bufs.push(v.slice(0)) - 1 } : v));
        return JSON.parse(json, (k, v) => (v && typeof v === 'object' && typeof v.$$buffer === 'number' ? bufs[v.$$buffer] : v));
      };
      let acquired = false;
      window.acquireVsCodeApi = () => {
        if (acquired) throw new Error('acquireVsCodeApi called twice');
        acquired = true;
        return {
          postMessage: (m) => ${relay ? "parent.postMessage(JSON.parse(JSON.stringify(m)), '*')" : 'window.__posted.push(wire(m))'},
          getState: () => window.__state,
          setState: (s) => { window.__state = JSON.parse(JSON.stringify(s)); },
        };
      };
      window.__setTheme = (cls, vars) => {
        for (const [k, v] of Object.entries(vars)) document.documentElement.style.setProperty(k, v);
        document.body.className = cls;
      };
    })();`;
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
${csp ? `<meta http-equiv="Content-Security-Policy" content="${policy}">` : ''}
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="${ORIGIN}/panel.css">
<title>Attention Lens</title>
</head>
<body class="${t.bodyClass}">
<script nonce="${NONCE}">${boot}</script>
<div id="app"></div>
<script nonce="${NONCE}" src="${ORIGIN}/main.js"></script>
</body>
</html>`;
}

export interface PanelPage {
  page: Page;
  errors: string[];
  dialogs: string[];
  cspViolations: string[];
  close(): Promise<void>;
}

export interface OpenOptions {
  theme?: ThemeName;
  /** Apply the panel's CSP (default true). Turn off to prove safety without CSP's help. */
  csp?: boolean;
  viewport?: { width: number; height: number };
  /** What getState() returns (a restored panel). */
  state?: unknown;
}

export async function openPanel(browser: Browser, o: OpenOptions = {}): Promise<PanelPage> {
  const { page, errors, dialogs, cspViolations, close } = await newPage(browser, o);
  await servePanel(page, html(o.theme ?? 'dark', o.csp ?? true, o.state));
  await page.goto(`${ORIGIN}/`);
  await page.waitForFunction(() => (window as unknown as { __posted: { type: string }[] }).__posted.some((m) => m.type === 'ready'));
  return { page, errors, dialogs, cspViolations, close };
}

/** A page in a context of its own that records page errors, CSP violations and dialogs (dismissed). */
async function newPage(browser: Browser, o: OpenOptions): Promise<PanelPage> {
  const context = await browser.newContext({ viewport: o.viewport ?? { width: 1100, height: 760 }, deviceScaleFactor: 1 });
  const page = await context.newPage();
  // tsx compiles the test's page callbacks with esbuild's keepNames, which calls a __name helper
  // that only exists in Node: give the page a no-op one (init scripts are not subject to the CSP).
  await page.addInitScript('window.__name = (f) => f;');
  const errors: string[] = [];
  const dialogs: string[] = [];
  const cspViolations: string[] = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => {
    if (m.type() === 'error') {
      const text = m.text();
      if (/Content Security Policy/i.test(text)) cspViolations.push(text);
      else errors.push(text);
    }
  });
  page.on('dialog', (d) => {
    dialogs.push(d.message());
    void d.dismiss();
  });
  return { page, errors, dialogs, cspViolations, close: () => context.close() };
}

/** Serves the panel document and the built bundle at ORIGIN. */
async function servePanel(page: Page, doc: string): Promise<void> {
  await page.route(`${ORIGIN}/**`, async (route) => {
    const url = new URL(route.request().url());
    if (url.pathname === '/' || url.pathname === '/index.html') return route.fulfill({ status: 200, contentType: 'text/html', body: doc });
    if (url.pathname === '/main.js') return route.fulfill({ status: 200, contentType: 'text/javascript', body: fs.readFileSync(path.join(OUT, 'main.js')) });
    if (url.pathname === '/panel.css') return route.fulfill({ status: 200, contentType: 'text/css', body: fs.readFileSync(path.join(OUT, 'panel.css')) });
    return route.fulfill({ status: 404, body: '' });
  });
}

export interface FramedPanel {
  /** The workbench page: it holds the driver's state and posts host messages into the frame. */
  page: Page;
  /** The panel: a cross-origin frame, so Chromium runs it in a process (and V8 heap) of its own. */
  frame: Frame;
  /** DevTools protocol session attached to the panel frame's process. */
  cdp: CDPSession;
  errors: string[];
  close(): Promise<void>;
}

/**
 * The panel the way VS Code hosts it: in a cross-origin iframe of the workbench page, with
 * messages posted into it by the parent and the panel's own posts relayed back (collected in the
 * workbench's window.__posted). What the driver does (staging data, structured-cloning messages,
 * Playwright's scripts) then runs in the workbench's process, not in the panel's heap.
 */
export async function openFramedPanel(browser: Browser, o: OpenOptions = {}): Promise<FramedPanel> {
  const { page, errors, close } = await newPage(browser, o);
  await servePanel(page, html(o.theme ?? 'dark', o.csp ?? true, o.state, true));
  const workbench = `<!DOCTYPE html><html><head><meta charset="utf-8"><style>html,body{margin:0;height:100%;overflow:hidden}iframe{display:block;border:0;width:100%;height:100%}</style></head>
<body><iframe id="webview" src="${ORIGIN}/"></iframe><script>
window.__posted = [];
const webview = document.getElementById('webview');
addEventListener('message', (e) => { if (e.source === webview.contentWindow) window.__posted.push(e.data); });
window.__post = (m, transfer) => webview.contentWindow.postMessage(m, '*', transfer ?? []);
</script></body></html>`;
  await page.route(`${WORKBENCH}/**`, (route) => route.fulfill({ status: 200, contentType: 'text/html', body: workbench }));
  await page.goto(`${WORKBENCH}/`);
  await page.waitForFunction(() => (window as unknown as { __posted: { type: string }[] }).__posted.some((m) => m.type === 'ready'));
  const frame = page.frames().find((f) => f.url().startsWith(ORIGIN));
  if (!frame) throw new Error('panel frame not found');
  const cdp = await page.context().newCDPSession(frame);
  return { page, frame, cdp, errors, close };
}

/** Switches the theme the way VS Code does (variables + body class). */
export async function setTheme(page: Page, theme: ThemeName): Promise<void> {
  const t = THEMES[theme];
  const vars: Record<string, string> = {};
  for (const [k, v] of Object.entries(t.vars)) vars[`--vscode-${k}`] = v;
  await page.evaluate(([cls, v]) => (window as unknown as { __setTheme(c: string, v: unknown): void }).__setTheme(cls, v), [t.bodyClass, vars] as const);
}

export function themeBackground(theme: ThemeName): string {
  return THEMES[theme].vars['editor-background'];
}

/** Posts host -> webview messages. `layers` become ArrayBuffers in the page. */
export async function postMessages(page: Page, messages: unknown[]): Promise<void> {
  await page.evaluate((msgs: unknown[]) => {
    for (const m of msgs) window.postMessage(m, '*');
  }, messages);
}

/**
 * Copies bytes into the page as an ArrayBuffer stored at window.__stage[slot]. (Base64 strings
 * cross the DevTools protocol about 3x faster than Playwright's typed-array serialisation.)
 */
export async function stageBuffer(page: Page, slot: number, data: Uint16Array | Uint8Array | Float32Array | Uint32Array): Promise<void> {
  const b64 = Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('base64');
  await page.evaluate(
    ([slot, s]) => {
      const bin = atob(s);
      const u = new Uint8Array(bin.length);
      for (let i = 0; i < bin.length; i++) u[i] = bin.charCodeAt(i);
      const w = window as unknown as { __stage?: ArrayBuffer[] };
      (w.__stage ??= [])[slot] = u.buffer;
    },
    [slot, b64] as const,
  );
}

/**
 * Posts one run/layer message whose data is an ArrayBuffer (transferred); `packed`: the data is
 * bit-packed f16 (packF14), as the extension sends it; `start`: the data is the layer's part from
 * that cell on (splitLayer).
 */
export async function postLayer(
  page: Page,
  runId: number,
  layer: number,
  data: Uint16Array | Uint8Array | Float32Array | Uint32Array,
  packed = false,
  start?: number,
): Promise<void> {
  await postWithData(page, { type: 'run/layer', runId, layer, ...(packed ? { packed: true } : {}), ...(start === undefined ? {} : { start }) }, data);
}

/** Posts `message` with `data` copied into the page as its `data` ArrayBuffer (transferred). */
export async function postWithData(page: Page, message: Record<string, unknown>, data: Uint16Array | Uint8Array | Float32Array | Uint32Array | ArrayBuffer): Promise<void> {
  await stageBuffer(page, 0, data instanceof ArrayBuffer ? new Uint8Array(data) : data);
  await page.evaluate((message) => {
    const buf = (window as unknown as { __stage: ArrayBuffer[] }).__stage[0];
    window.postMessage({ ...message, data: buf }, '*', [buf]);
  }, message);
}

/** Messages the panel posted so far. */
export async function posted(page: Page): Promise<{ type: string; [k: string]: unknown }[]> {
  return page.evaluate(() => (window as unknown as { __posted: { type: string }[] }).__posted) as never;
}

export async function screenshot(page: Page, name: string): Promise<string> {
  fs.mkdirSync(SCREENSHOTS, { recursive: true });
  const file = path.join(SCREENSHOTS, `webview-${name}.png`);
  await page.screenshot({ path: file });
  return file;
}

/** Waits for two animation frames (rAF-coalesced repaints have run). */
export async function frames(page: Page, n = 2): Promise<void> {
  await page.evaluate(
    (n) =>
      new Promise<void>((resolve) => {
        let i = 0;
        const tick = (): void => {
          if (++i >= n) resolve();
          else requestAnimationFrame(tick);
        };
        requestAnimationFrame(tick);
      }),
    n,
  );
}
