// Which text Show Attention analyses when the editor has several selections, or a selection
// longer than the model can take: in the real extension host with stories260K.
import * as assert from 'node:assert/strict';
import * as vscode from 'vscode';
import { extensionApi, useStories } from './helpers';

interface Api {
  run: { runId: number; range: { start: number; end: number } } | null;
}

const api = () => extensionApi<Api>();

describe('selections', function () {
  this.timeout(120_000);
  const TEXT = 'Once upon a time, there was a little girl named Lily.\nShe loved to play outside in the park.\nOne day, Lily saw a big red ball.\n';
  let doc: vscode.TextDocument;
  let editor: vscode.TextEditor;
  const at = (s: string) => TEXT.indexOf(s);
  const sel = (from: number, to: number) => new vscode.Selection(doc.positionAt(from), doc.positionAt(to));

  before(async () => {
    await useStories();
    await vscode.workspace.getConfiguration('attentionLens').update('maxTokens', 512, vscode.ConfigurationTarget.Global);
    doc = await vscode.workspace.openTextDocument({ content: TEXT, language: 'plaintext' });
    editor = await vscode.window.showTextDocument(doc, vscode.ViewColumn.One);
  });

  it('selections that join up are analysed as their union', async () => {
    const a = at('She loved');
    const b = at('One day');
    editor.selections = [sel(a, a + 20), sel(a + 10, b + 7)];
    assert.equal(await vscode.commands.executeCommand('attentionLens.showAttention'), true);
    assert.deepEqual((await api()).run!.range, { start: a, end: b + 7 });
  });

  it('disjoint selections: the primary one only', async () => {
    const first = at('Once');
    const last = at('One day');
    editor.selections = [sel(last, last + 7), sel(first, first + 9)]; // the primary selection is the first
    assert.equal(await vscode.commands.executeCommand('attentionLens.showAttention'), true);
    assert.deepEqual((await api()).run!.range, { start: last, end: last + 7 });
  });

  it('a selection longer than maxTokens x 64 characters is cut before tokenizing', async () => {
    await vscode.workspace.getConfiguration('attentionLens').update('maxTokens', 16, vscode.ConfigurationTarget.Global);
    try {
      editor.selections = [sel(0, TEXT.length), sel(0, 3)];
      // 16 x 64 characters is more than the text: nothing is cut before the engine, which cuts at 16 tokens.
      assert.equal(await vscode.commands.executeCommand('attentionLens.showAttention'), true);
      const run = (await api()).run!;
      assert.equal(run.range.start, 0);
      assert.ok(run.range.end < TEXT.length, `cut where 16 tokens end (${run.range.end})`);
    } finally {
      await vscode.workspace.getConfiguration('attentionLens').update('maxTokens', 512, vscode.ConfigurationTarget.Global);
    }
  });
});
