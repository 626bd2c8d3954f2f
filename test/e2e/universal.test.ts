// End to end: the universal VSIX (no native ONNX Runtime; what Intel Macs and every platform without
// a VSIX of its own install) in a real VS Code (code-server), driven by real Chromium: with the
// runtime left at `auto`, Show Attention falls back to the WASM runtime, says so, and paints every head.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createRequire } from 'node:module';
import type { Page } from 'playwright-core';
import { createProfile, installVsix, startCodeServer, type CodeServer, type Profile } from '../harness/codeServer';
import { launchBrowser, notificationTexts, openWorkbench, screenshot, workbenchUrl, type Browser } from '../harness/browser';
import { makeTempDir, removeTempDir, REPO_ROOT } from '../harness/tools';
import { STORY, modelViewCanvases, showAttentionOn } from '../harness/flow';

const VSIX = path.join(REPO_ROOT, 'dist/attention-lens-universal.vsix');
const STORIES = path.resolve(REPO_ROOT, '../shared/models/stories260K');
const WASM_NOTICE = /native ONNX Runtime could not load.*using the WASM runtime instead/;

describe('the universal VSIX (WASM runtime only) in the workbench', () => {
  let profile: Profile;
  let server: CodeServer;
  let browser: Browser;
  let page: Page;

  before(async () => {
    assert.ok(fs.existsSync(VSIX), 'run `npm run package` first');
    const workspace = makeTempDir('al-e2e-universal-ws');
    fs.writeFileSync(path.join(workspace, 'story.txt'), `${STORY}\n`);
    profile = createProfile();
    installVsix(profile, VSIX);
    server = await startCodeServer({
      workspace,
      profile,
      name: 'e2e-universal',
      // The runtime is left at its default, `auto`.
      settings: { 'attentionLens.model': STORIES, 'attentionLens.offline': true, 'workbench.colorTheme': 'Default Dark Modern' },
    });
    browser = await launchBrowser();
    page = browser.page;
    await openWorkbench(page, workbenchUrl(server.url, workspace));
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
    if (profile) removeTempDir(profile.root);
  });

  test('the installed extension has no onnxruntime-node, and it cannot be found from there', () => {
    const installed = fs.readdirSync(profile.extensionsDir).filter((d) => d.startsWith('attention-lens.attention-lens-'));
    assert.equal(installed.length, 1, installed.join(', '));
    const ext = path.join(profile.extensionsDir, installed[0]);
    assert.ok(fs.existsSync(path.join(ext, 'node_modules/onnxruntime-web/dist/ort-wasm-simd-threaded.wasm')));
    assert.ok(!fs.existsSync(path.join(ext, 'node_modules/onnxruntime-node')));
    assert.throws(() => createRequire(path.join(ext, 'out/worker.js')).resolve('onnxruntime-node'), /Cannot find module/);
  });

  test('Show Attention runs stories260K on the WASM runtime: all 5 x 8 heads, the runtime and the notice shown', async () => {
    const frame = await showAttentionOn(page, 'story.txt', STORY);
    const canvases = await modelViewCanvases(frame);
    assert.equal(canvases.total, 40, canvases.labels.join('\n'));
    assert.equal(canvases.nonBlank, 40, 'every heatmap has pixels');
    // The header names the runtime once the run is done.
    await frame.waitForFunction(() => /onnxruntime-web wasm/.test(document.querySelector('.meta')?.textContent ?? ''), undefined, { timeout: 30_000 });
    const meta = (await frame.locator('.meta').textContent()) ?? '';
    assert.match(meta, /5 layers × 8 heads/);
    assert.match(meta, /onnxruntime-web wasm/);
    const notices = await frame.locator('.notices li').allTextContents();
    assert.ok(notices.some((n) => WASM_NOTICE.test(n)), `the panel's notices: ${notices.join(' | ')}`);
    await screenshot(page, 'e2e-universal-wasm');
    const notifications = await notificationTexts(page);
    assert.ok(notifications.some((n) => WASM_NOTICE.test(n)), `notifications: ${notifications.join(' | ')}`);
  });
});
