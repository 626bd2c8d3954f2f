// A long input inside the real extension host: a selection of about 2,000 tokens on a generated
// Llama-shaped model (rotary, GroupQueryAttention, the stories260K tokenizer) runs long: the run
// holds thumbnails and no layer; the editor's hover computes the hovered token's rows over the
// model's key/value cache and lists words before it (causal), anywhere in the file; what needs whole
// matrices (rollout, Why this weight?) is refused with a reason.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { AttendedWord } from '../../src/analysis/words';
import { writeQwenFolder } from '../../bench/make-qwen-gqa';
import { STORIES, extensionApi, waiter } from './helpers';

const STORY = 'Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her friends. ';

interface LongApi {
  status: unknown;
  run: {
    runId: number;
    T: number;
    L: number;
    complete: boolean;
    long: { threshold: number } | null;
    tokens: Array<{ text: string; start: number; end: number; special: boolean }>;
    layer(l: number): unknown;
    hasRows(q: number): boolean;
    attendedIn(q: number, k: number): AttendedWord[] | null;
  } | null;
}

const api = () => extensionApi<LongApi>();
const waitFor = waiter(120_000);

describe('A long input in a real VS Code', function () {
  this.timeout(300_000);
  const folder = fs.mkdtempSync(path.join(os.tmpdir(), 'al-long-model-'));

  before(async () => {
    writeQwenFolder(folder, { layers: 2, heads: 4, kvHeads: 2, hidden: 64, intermediate: 128, headSize: 16, vocab: 512, maxPos: 8192, seed: 3, qkvStd: 0.2 }, STORIES);
    const config = vscode.workspace.getConfiguration('attentionLens');
    await config.update('model', folder, vscode.ConfigurationTarget.Global);
    await config.update('offline', true, vscode.ConfigurationTarget.Global);
    // Other suites leave 512 (the default before long inputs); this one needs room.
    await config.update('maxTokens', 4096, vscode.ConfigurationTarget.Global);
  });

  after(async () => {
    const config = vscode.workspace.getConfiguration('attentionLens');
    await config.update('model', undefined, vscode.ConfigurationTarget.Global);
    await config.update('maxTokens', undefined, vscode.ConfigurationTarget.Global);
    fs.rmSync(folder, { recursive: true, force: true });
  });

  it('runs long: thumbnails, no whole layer; hovers compute rows anywhere in the file', async () => {
    const text = STORY.repeat(90);
    const doc = await vscode.workspace.openTextDocument({ content: text, language: 'plaintext' });
    const editor = await vscode.window.showTextDocument(doc, vscode.ViewColumn.One);
    editor.selection = new vscode.Selection(doc.positionAt(0), doc.positionAt(text.length));
    const shown = await vscode.commands.executeCommand<boolean>('attentionLens.showAttention');
    const a = await api();
    assert.equal(shown, true, `Show Attention failed: ${JSON.stringify(a.status)}`);
    const run = await waitFor('the long run, every layer\'s thumbnails', () => a.run?.complete && a.run);
    assert.ok(run.long, 'the run is long');
    assert.ok(run.T > 1500, `${run.T} tokens`);
    for (let l = 0; l < run.L; l++) assert.equal(run.layer(l), undefined, 'no whole layer crossed');

    // Hover tokens near the end, in the middle and near the start of the file.
    for (const q of [run.T - 2, Math.floor(run.T / 2), 5]) {
      const t = run.tokens[q];
      assert.ok(!t.special && t.start >= 0);
      assert.equal(run.hasRows(q), false);
      const hovers = await vscode.commands.executeCommand<vscode.Hover[]>('vscode.executeHoverProvider', doc.uri, doc.positionAt(t.start));
      const md = hovers.flatMap((h) => h.contents.map((c) => (typeof c === 'string' ? c : (c as vscode.MarkdownString).value))).join('\n');
      assert.match(md, /attends most to/, md);
      assert.ok(run.hasRows(q), `the hover fetched token ${q}'s rows`);
      const words = run.attendedIn(q, 5)!;
      assert.ok(words.length > 0);
      // Causal: every word attended to starts at or before the token.
      for (const w of words) assert.ok(w.start <= t.start, `${JSON.stringify(w)} is not after token ${q} (${t.start})`);
      // Words of the file are its text at their offsets (the start token <s> has none).
      for (const w of words.filter((w) => w.start >= 0)) assert.equal(doc.getText(new vscode.Range(doc.positionAt(w.start), doc.positionAt(w.end))), w.text);
      assert.ok(words.some((w) => w.start >= 0), `a word of the file among ${JSON.stringify(words)}`);
      assert.doesNotMatch(md, /Why this weight\?/, 'no explain link on a long run');
    }
    assert.equal(await vscode.commands.executeCommand<boolean>('attentionLens.explain', { runId: run.runId, query: 10, key: 3, layer: 0, head: 0 }), false, 'Why this weight? is refused');
  });
});
