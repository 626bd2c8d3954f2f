// Compare inside the real extension host with the real stories260K model: Show Attention, Pin Run
// as Baseline, an edit in the analysed text (the live update re-runs), and the editor's compare
// marks: the tokens whose attention changed most, all after the edit (a causal model's tokens
// before it attend exactly as they did), cleared with the baseline.
import * as assert from 'node:assert/strict';
import * as vscode from 'vscode';
import { extensionApi, useStories, waiter } from './helpers';

const STORY = 'Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her dog.';

interface CompareApi {
  run: { runId: number; model: { layers: number }; hasLayer(layer: number): boolean } | null;
  compare: {
    baselineRunId: number | null;
    marks: { runId: number; baselineRunId: number; marks: { start: number; end: number; change: number }[] } | null;
  };
}

const api = () => extensionApi<CompareApi>();
const waitFor = waiter(60_000);

describe('Compare in a real VS Code', function () {
  this.timeout(180_000);
  let doc: vscode.TextDocument;

  before(async () => {
    await useStories();
    await vscode.workspace.getConfiguration('attentionLens').update('liveUpdateDelay', 200, vscode.ConfigurationTarget.Global);
    doc = await vscode.workspace.openTextDocument({ content: `Notes\n\n${STORY}\n`, language: 'plaintext' });
  });

  after(async () => {
    await vscode.commands.executeCommand('attentionLens.clearBaseline');
  });

  it('pins the run, re-runs on an edit, and marks the tokens whose attention changed most, after the edit', async () => {
    const editor = await vscode.window.showTextDocument(doc, vscode.ViewColumn.One);
    const start = doc.getText().indexOf(STORY);
    editor.selection = new vscode.Selection(doc.positionAt(start), doc.positionAt(start + STORY.length));
    assert.equal(await vscode.commands.executeCommand<boolean>('attentionLens.showAttention'), true);
    const a = await api();
    const baseline = a.run!.runId;
    await vscode.commands.executeCommand('attentionLens.pinBaseline');
    assert.equal(a.compare.baselineRunId, baseline);
    assert.equal(a.compare.marks, null, 'the baseline itself has nothing to mark');

    const at = doc.getText().indexOf('girl');
    const edit = new vscode.WorkspaceEdit();
    edit.replace(doc.uri, new vscode.Range(doc.positionAt(at), doc.positionAt(at + 4)), 'boy');
    assert.ok(await vscode.workspace.applyEdit(edit));
    const shown = await waitFor('compare marks of the re-run', () => {
      const m = a.compare.marks;
      return m && m.runId !== baseline ? m : null;
    });
    assert.equal(shown.baselineRunId, baseline);
    assert.equal(shown.runId, a.run!.runId, 'marks of the latest run');
    assert.ok(shown.marks.length > 0 && shown.marks.length <= 5, `${shown.marks.length} tokens marked`);
    const boyEnd = at + 'boy'.length;
    for (const m of shown.marks) {
      assert.ok(m.start >= boyEnd, `"${doc.getText(new vscode.Range(doc.positionAt(m.start), doc.positionAt(m.end)))}" lies after the edit`);
      assert.ok(m.change > 0.01 && m.change <= 2);
    }
    const changes = shown.marks.map((m) => m.change);
    assert.deepEqual(changes, [...changes].sort((x, y) => y - x), 'largest change first');
  });

  it('Clear Baseline removes the marks', async () => {
    const a = await api();
    await vscode.commands.executeCommand('attentionLens.clearBaseline');
    assert.equal(a.compare.baselineRunId, null);
    assert.equal(a.compare.marks, null);
  });
});
