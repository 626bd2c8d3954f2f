// Export Panel View as PNG / SVG inside the real extension host, on a run of the real stories260K
// model: with a target the commands write the file without any dialog; the PNG is valid, not
// blank, and twice as large at scale 2; the SVG of the head view has every token; without a panel
// the command says so and writes nothing. Copies of the files: test-output/exports/integration-*.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { STORIES, extensionApi, useStories, waiter } from './helpers';
import { drawn, readPng } from './png';

const STORY = 'Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her dog.';

interface Api {
  run: { runId: number; tokens: unknown[] } | null;
  events: { runId: number; what: string }[];
}

const api = () => extensionApi<Api>();
const waitFor = waiter(30_000);

describe('Export Panel View as PNG and SVG in a real VS Code', function () {
  this.timeout(120_000);
  const exportsDir = path.resolve(__dirname, '../../..', 'test-output/exports');
  let dir: string;
  let runId: number;

  before(async () => {
    assert.ok(fs.existsSync(STORIES), `the shared model is at ${STORIES}`);
    await useStories();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'al-export-'));
    fs.mkdirSync(exportsDir, { recursive: true });
    const doc = await vscode.workspace.openTextDocument({ content: `${STORY}\n`, language: 'plaintext' });
    const editor = await vscode.window.showTextDocument(doc, vscode.ViewColumn.One);
    editor.selection = new vscode.Selection(doc.positionAt(0), doc.positionAt(STORY.length));
    assert.equal(await vscode.commands.executeCommand('attentionLens.showAttention'), true);
    runId = (await api()).run!.runId;
    // The panel has drawn every head of the run (the model view exports only once it has).
    await waitFor('the panel painted the run', async () => (await api()).events.some((e) => e.runId === runId && e.what === 'painted'));
  });

  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('exportPng with a target writes a PNG of the view, twice the size at scale 2', async () => {
    const target = vscode.Uri.file(path.join(dir, 'model.png'));
    const written = await vscode.commands.executeCommand<vscode.Uri>('attentionLens.exportPng', { uri: target });
    assert.equal(written?.toString(), target.toString(), 'the command answers with the file it wrote');
    const png = readPng(fs.readFileSync(target.fsPath));
    assert.ok(png.width > 200 && png.height > 200, `a view-sized image (${png.width} × ${png.height})`);
    const { lit, colours } = drawn(png);
    assert.ok(lit > png.width * png.height * 0.05, `not blank (${lit} pixels drawn)`);
    assert.ok(colours > 20, `heatmap colours (${colours})`);
    fs.copyFileSync(target.fsPath, path.join(exportsDir, 'integration-model.png'));

    // A plain path string and a scale: the same view at twice the pixel ratio.
    const twice = path.join(dir, 'model-2x.png');
    assert.ok(await vscode.commands.executeCommand('attentionLens.exportPng', { uri: twice, scale: 2 }));
    const png2 = readPng(fs.readFileSync(twice));
    assert.ok(Math.abs(png2.width - 2 * png.width) <= 1 && Math.abs(png2.height - 2 * png.height) <= 1, `2× is ${png2.width} × ${png2.height}, 1× ${png.width} × ${png.height}`);
  });

  it('exportSvg of the head view has every token; its PNG is drawn too', async () => {
    // Focusing a token from the editor's hover link switches the panel to the head view and pins it.
    await vscode.commands.executeCommand('attentionLens.focusToken', { runId, tokenIndex: 5 });
    const T = (await api()).run!.tokens.length;
    const svgFile = path.join(dir, 'head.svg');
    // The panel handles the focus before the export request (messages arrive in order).
    assert.ok(await vscode.commands.executeCommand('attentionLens.exportSvg', vscode.Uri.file(svgFile)));
    const svg = fs.readFileSync(svgFile, 'utf8');
    assert.match(svg, /^<\?xml version="1.0" encoding="UTF-8"\?>\n<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
    assert.equal(svg.match(/class="q-label"/g)?.length, T, 'a query label per token');
    assert.equal(svg.match(/class="k-label"/g)?.length, T, 'a key label per token');
    assert.ok((svg.match(/<line /g)?.length ?? 0) > 0, 'lines from the pinned token');
    fs.copyFileSync(svgFile, path.join(exportsDir, 'integration-head.svg'));
    const pngFile = path.join(dir, 'head.png');
    assert.ok(await vscode.commands.executeCommand('attentionLens.exportPng', { uri: pngFile }));
    const png = readPng(fs.readFileSync(pngFile));
    assert.ok(drawn(png).lit > png.width * png.height * 0.02, 'not blank');
    fs.copyFileSync(pngFile, path.join(exportsDir, 'integration-head.png'));
  });

  it('without a panel the export fails with a message and writes nothing', async () => {
    const panelTab = () => vscode.window.tabGroups.all.flatMap((g) => g.tabs).find((t) => t.input instanceof vscode.TabInputWebview && /attentionLens\.panel$/.test(t.input.viewType));
    assert.ok(panelTab(), 'the panel is open');
    await vscode.window.tabGroups.close(panelTab()!);
    await waitFor('the panel closed', () => !panelTab());
    const target = path.join(dir, 'none.png');
    assert.equal(await vscode.commands.executeCommand('attentionLens.exportPng', { uri: target }), undefined);
    assert.equal(fs.existsSync(target), false);
  });
});
