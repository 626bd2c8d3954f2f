// Export HTML Report and Export Attention Data inside the real extension host: Show Attention on a
// story with stories260K, then both commands with target URIs (no dialog), and the files: the
// report's blocks hold the run, the .npy is float32 [5, 8, T, T] equal to the run's attention, the
// JSON's token ranges point at the document's text.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { extensionApi, useStories } from './helpers';

const STORY = 'Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her dog. <b>Bold</b> & done.';

interface RunView {
  tokens: Array<{ text: string; start: number; end: number; special: boolean }>;
  model: { layers: number; heads: number };
  layer(l: number): { raw: Uint16Array; lut: Float32Array | null } | undefined;
}

const api = () => extensionApi<{ run: RunView | null }>();

/** The .npy's header text and its float32 payload. */
function readNpy(file: string): { header: string; data: Float32Array } {
  const bytes = fs.readFileSync(file);
  assert.equal(bytes.subarray(0, 6).toString('latin1'), '\x93NUMPY');
  const len = bytes.readUInt16LE(8);
  const body = bytes.subarray(10 + len);
  return { header: bytes.subarray(10, 10 + len).toString('latin1'), data: new Float32Array(body.buffer.slice(body.byteOffset, body.byteOffset + body.byteLength)) };
}

describe('export: HTML report and attention data', function () {
  this.timeout(120_000);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'al-export-'));
  let doc: vscode.TextDocument;
  let start: number;

  before(async () => {
    await useStories();
    doc = await vscode.workspace.openTextDocument({ content: `Title\n\n${STORY}\n`, language: 'plaintext' });
  });

  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('the commands are contributed and registered', async () => {
    await api();
    const registered = new Set(await vscode.commands.getCommands(true));
    const contributed = (vscode.extensions.getExtension('attention-lens.attention-lens')!.packageJSON.contributes.commands as { command: string; category?: string }[]);
    for (const id of ['attentionLens.exportHtml', 'attentionLens.exportData']) {
      assert.ok(registered.has(id), `${id} registered`);
      assert.equal(contributed.find((c) => c.command === id)?.category, 'Attention Lens');
    }
  });

  it('before any run, writes nothing', async function () {
    if ((await api()).run) this.skip(); // an earlier suite in this host ran already
    const target = vscode.Uri.file(path.join(dir, 'none.html'));
    assert.equal(await vscode.commands.executeCommand('attentionLens.exportHtml', target), undefined);
    assert.equal(await vscode.commands.executeCommand('attentionLens.exportData', vscode.Uri.file(path.join(dir, 'none'))), undefined);
    assert.deepEqual(fs.readdirSync(dir), []);
  });

  it('exports the HTML report of the run to a target URI', async () => {
    const editor = await vscode.window.showTextDocument(doc, vscode.ViewColumn.One);
    start = doc.getText().indexOf(STORY);
    editor.selection = new vscode.Selection(doc.positionAt(start), doc.positionAt(start + STORY.length));
    assert.equal(await vscode.commands.executeCommand('attentionLens.showAttention'), true);
    const run = (await api()).run!;
    const T = run.tokens.length;

    const target = vscode.Uri.file(path.join(dir, 'story.html'));
    const written = await vscode.commands.executeCommand<vscode.Uri>('attentionLens.exportHtml', target);
    assert.equal(written?.toString(), target.toString());
    const html = fs.readFileSync(target.fsPath, 'utf8');
    assert.match(html, /^<!DOCTYPE html>/);
    assert.match(html, /<meta http-equiv="Content-Security-Policy" content="default-src &#39;none&#39;; script-src &#39;sha256-/);
    assert.ok(!html.includes('<b>Bold</b>'), 'the text is escaped');
    const block = /<script type="application\/json" id="report-run">([^<]*)<\/script>/.exec(html);
    assert.ok(block, 'the run block');
    const json = JSON.parse(block[1]);
    assert.deepEqual(json.tokens, run.tokens);
    assert.deepEqual(json.sourceText, { text: STORY, offset: start });
    assert.match(json.source, /^Untitled-\d+:3$/);
    const layers = [...html.matchAll(/<script type="application\/octet-stream" id="report-layer-(\d+)">([^<]*)<\/script>/g)];
    assert.equal(layers.length, 5);
    layers.forEach((m, l) => {
      const bytes = Buffer.from(m[2], 'base64');
      assert.equal(bytes.byteLength, 8 * T * T * 2, `layer ${l + 1}: [8][T][T] float16`);
      assert.deepEqual(new Uint16Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)), run.layer(l)!.raw, `layer ${l + 1} as the run holds it`);
    });
    assert.ok(!fs.existsSync(`${target.fsPath}.partial`), 'no temporary file left');
  });

  it('exports <prefix>.npy and <prefix>.json to a target URI', async () => {
    const run = (await api()).run!;
    const T = run.tokens.length;
    const written = await vscode.commands.executeCommand<vscode.Uri[]>('attentionLens.exportData', vscode.Uri.file(path.join(dir, 'story-attention')));
    assert.deepEqual(written?.map((u) => path.basename(u.fsPath)), ['story-attention.npy', 'story-attention.json']);
    const npy = readNpy(path.join(dir, 'story-attention.npy'));
    assert.match(npy.header, new RegExp(`'descr': '<f4', 'fortran_order': False, 'shape': \\(5, 8, ${T}, ${T}\\)`));
    assert.equal(npy.data.length, 5 * 8 * T * T);
    const cells = 8 * T * T;
    for (let l = 0; l < 5; l++) {
      const { raw, lut } = run.layer(l)!;
      for (let i = 0; i < cells; i++) if (npy.data[l * cells + i] !== lut![raw[i]]) assert.fail(`layer ${l + 1} cell ${i}`);
    }
    const json = JSON.parse(fs.readFileSync(path.join(dir, 'story-attention.json'), 'utf8'));
    assert.deepEqual(json.model, { id: (await vscode.workspace.getConfiguration('attentionLens').get('model')) as string, architecture: 'llama', layers: 5, heads: 8 });
    assert.deepEqual(json.shape, [5, 8, T, T]);
    assert.equal(json.text, STORY);
    assert.deepEqual(json.source, { document: doc.uri.toString(), offset: start, label: json.source.label });
    assert.equal(json.tokens.length, T);
    for (const t of json.tokens as RunView['tokens']) {
      if (t.special) continue;
      const inDoc = doc.getText(new vscode.Range(doc.positionAt(start + t.start), doc.positionAt(start + t.end)));
      assert.equal(inDoc, STORY.slice(t.start, t.end), `token ${t.text} at ${t.start}-${t.end} of the text`);
    }
    assert.equal(json.tokens.filter((t: RunView['tokens'][number]) => !t.special).map((t: RunView['tokens'][number]) => STORY.slice(t.start, t.end)).join('').replace(/\s/g, ''), STORY.replace(/\s/g, ''));
  });

  it('a cut run: the JSON says where, as the CLI does, and the report says so', async () => {
    const config = vscode.workspace.getConfiguration('attentionLens');
    await config.update('maxTokens', 12, vscode.ConfigurationTarget.Global);
    try {
      const editor = await vscode.window.showTextDocument(doc, vscode.ViewColumn.One);
      editor.selection = new vscode.Selection(doc.positionAt(start), doc.positionAt(start + STORY.length));
      assert.equal(await vscode.commands.executeCommand('attentionLens.showAttention'), true);
      await vscode.commands.executeCommand('attentionLens.exportData', vscode.Uri.file(path.join(dir, 'cut')));
      const json = JSON.parse(fs.readFileSync(path.join(dir, 'cut.json'), 'utf8'));
      assert.equal(json.tokens.length, 12);
      assert.deepEqual(json.truncation, { total: json.truncation.total, kept: 12, endOffset: json.text.length });
      assert.ok(json.truncation.total > 12 && STORY.startsWith(json.text) && json.text.length < STORY.length);
      await vscode.commands.executeCommand('attentionLens.exportHtml', vscode.Uri.file(path.join(dir, 'cut.html')));
      assert.match(fs.readFileSync(path.join(dir, 'cut.html'), 'utf8'), /"truncation":\{"total":\d+,"kept":12\}/);
    } finally {
      await config.update('maxTokens', 512, vscode.ConfigurationTarget.Global);
    }
  });

  it('a target named .npy stands for its prefix; a plain path works too', async () => {
    const written = await vscode.commands.executeCommand<vscode.Uri[]>('attentionLens.exportData', vscode.Uri.file(path.join(dir, 'named.npy')));
    assert.deepEqual(written?.map((u) => path.basename(u.fsPath)), ['named.npy', 'named.json']);
    const html = path.join(dir, 'plain.html');
    assert.ok(await vscode.commands.executeCommand('attentionLens.exportHtml', html));
    assert.ok(fs.statSync(html).size > 10_000);
  });
});
