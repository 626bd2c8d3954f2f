// Show Attention inside the real extension host, on a TinyStories sentence with the real
// stories260K model: the run completes, every layer arrives, and the editor hover's top-attended
// words agree with the engine's own attention (computed separately through the CLI).
import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { groupWords, topAttended } from '../../src/analysis/words';
import { STORIES, extensionApi, useStories, waiter } from './helpers';

const STORY = 'Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her dog.';

interface RunView {
  runId: number;
  tokens: Array<{ text: string; start: number; end: number; special: boolean }>;
  hasLayer(layer: number): boolean;
  model: { layers: number; heads: number };
  range: { start: number; end: number };
}

/** Every layer of the run has arrived. */
const complete = (run: RunView) => Array.from({ length: run.model.layers }, (_, l) => run.hasLayer(l)).every(Boolean);

const api = () => extensionApi<{ run: RunView | null }>();
const waitFor = waiter(30_000);

function hoverText(hovers: vscode.Hover[]): string {
  return hovers
    .flatMap((h) => h.contents.map((c) => (typeof c === 'string' ? c : 'value' in c ? c.value : String(c))))
    .join('\n');
}

describe('Show Attention in a real VS Code', function () {
  this.timeout(120_000);
  const extensionRoot = path.resolve(__dirname, '../../..');
  const stories = STORIES;
  let doc: vscode.TextDocument;

  before(async () => {
    assert.ok(fs.existsSync(stories), `the shared model is at ${stories}`);
    await useStories();
    await vscode.workspace.getConfiguration('attentionLens').update('liveUpdateDelay', 200, vscode.ConfigurationTarget.Global);
    doc = await vscode.workspace.openTextDocument({ content: `Title\n\n${STORY}\n`, language: 'plaintext' });
  });

  it('runs on the selection and streams every layer of the model', async () => {
    const editor = await vscode.window.showTextDocument(doc, vscode.ViewColumn.One);
    const start = doc.getText().indexOf(STORY);
    editor.selection = new vscode.Selection(doc.positionAt(start), doc.positionAt(start + STORY.length));
    const ok = await vscode.commands.executeCommand<boolean>('attentionLens.showAttention');
    assert.equal(ok, true, 'the run completed');
    const run = (await api()).run!;
    assert.ok(run, 'the extension exposes the run');
    assert.deepEqual([run.model.layers, run.model.heads], [5, 8]);
    assert.ok(complete(run), 'all layers arrived');
    assert.deepEqual(run.range, { start, end: start + STORY.length });
    const words = run.tokens.filter((t) => !t.special && t.end > t.start).map((t) => doc.getText(new vscode.Range(doc.positionAt(t.start), doc.positionAt(t.end))));
    assert.equal(words[0], 'Once');
    assert.ok(words.includes('Lily') || words.join('').includes('Lily'));
  });

  it('the editor hover shows the token\'s top-attended words, as the engine computes them', async () => {
    const run = (await api()).run!;
    const q = run.tokens.findIndex((t) => !t.special && doc.getText(new vscode.Range(doc.positionAt(t.start), doc.positionAt(t.end))) === 'Lily');
    assert.ok(q > 0, 'a token for "Lily"');
    const hovers = await vscode.commands.executeCommand<vscode.Hover[]>('vscode.executeHoverProvider', doc.uri, doc.positionAt(run.tokens[q].start + 1));
    const text = hoverText(hovers);
    assert.match(text, /Attention Lens/);
    assert.match(text, /layer 1\/5, mean of heads/);
    assert.match(text, /attends most to/);
    assert.match(text, /command:attentionLens\.focusToken/);

    // The engine's float32 attention for the same text, through the CLI, then the same word maths.
    const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'al-int-')), 'story');
    execFileSync(process.execPath, [path.join(extensionRoot, 'out/cli.js'), '--model', stories, '--text', STORY, '--out', out, '--offline']);
    const meta = JSON.parse(fs.readFileSync(`${out}.json`, 'utf8'));
    const npy = fs.readFileSync(`${out}.npy`);
    const headerLen = npy.readUInt16LE(8);
    const att = new Float32Array(npy.buffer.slice(npy.byteOffset + 10 + headerLen, npy.byteOffset + npy.byteLength));
    const [, H, T] = meta.shape;
    assert.equal(T, run.tokens.length);
    const row = new Float32Array(T);
    for (let h = 0; h < H; h++) for (let k = 0; k < T; k++) row[k] += att[((0 * H + h) * T + q) * T + k] / H; // layer 1, as the panel opens
    const offset = run.range.start;
    const tokens = meta.tokens.map((t: RunView['tokens'][number]) => (t.special ? t : { ...t, start: t.start + offset, end: t.end + offset }));
    const expected = topAttended(row, tokens, groupWords(tokens, { text: STORY, offset }), 5);
    assert.ok(expected.length > 0);
    for (const w of expected) {
      assert.ok(text.includes(`${(w.weight * 100).toFixed(1)}%`) || text.includes(`${(w.weight * 100 + 0.1).toFixed(1)}%`) || text.includes(`${(w.weight * 100 - 0.1).toFixed(1)}%`), `hover lists ${w.text} at ${(w.weight * 100).toFixed(1)}%:\n${text}`);
      assert.ok(text.includes(w.text), `hover names ${w.text}`);
    }
  });

  it('hovering outside the analysed range shows nothing', async () => {
    const hovers = await vscode.commands.executeCommand<vscode.Hover[]>('vscode.executeHoverProvider', doc.uri, new vscode.Position(0, 2));
    assert.doesNotMatch(hoverText(hovers), /Attention Lens/);
  });

  it('editing inside the analysed range re-runs on the edited text', async () => {
    const before = (await api()).run!;
    const at = doc.getText().indexOf('dog');
    const edit = new vscode.WorkspaceEdit();
    edit.replace(doc.uri, new vscode.Range(doc.positionAt(at), doc.positionAt(at + 3)), 'cat');
    assert.ok(await vscode.workspace.applyEdit(edit));
    const after = await waitForRun(before.runId);
    const covered = doc.getText(new vscode.Range(doc.positionAt(after.range.start), doc.positionAt(after.range.end)));
    assert.ok(covered.endsWith('with her cat.'), `the new run covers the edited text: ${covered}`);
    const last = after.tokens.filter((t) => !t.special).at(-1)!;
    assert.equal(last.end, after.range.end, 'its tokens reach the end of the edited range');
  });

  it('an empty line is refused with a warning and no run', async () => {
    const editor = await vscode.window.showTextDocument(doc, vscode.ViewColumn.One);
    editor.selection = new vscode.Selection(new vscode.Position(1, 0), new vscode.Position(1, 0));
    const runId = (await api()).run!.runId;
    assert.equal(await vscode.commands.executeCommand('attentionLens.showAttention'), false);
    assert.equal((await api()).run!.runId, runId);
  });

  it('with no selection the current line is analysed', async () => {
    const editor = await vscode.window.showTextDocument(doc, vscode.ViewColumn.One);
    editor.selection = new vscode.Selection(new vscode.Position(0, 2), new vscode.Position(0, 2));
    assert.equal(await vscode.commands.executeCommand('attentionLens.showAttention'), true);
    const run = (await api()).run!;
    assert.deepEqual(run.range, { start: 0, end: 'Title'.length });
  });

  async function waitForRun(previous: number): Promise<RunView> {
    const a = await api();
    return waitFor('a newer completed run', () => (a.run && a.run.runId !== previous && complete(a.run) ? a.run : null));
  }
});
