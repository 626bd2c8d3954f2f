// Continue inside the real extension host with the real stories260K: the command writes
// attentionLens.maxNewTokens tokens after the selection; the run covers the text and what the
// model wrote (marked generated, with no range in the file); a written token's top words are words
// of the selection, lit in the editor; and "Why this weight?" on a written token's row rebuilds
// its weight from the same tokens.
import * as assert from 'node:assert/strict';
import * as vscode from 'vscode';
import type { AttendedWord } from '../../src/analysis/words';
import type { ExplainCell, Explanation } from '../../src/protocol/attention';
import { extensionApi, useStories, waiter } from './helpers';

const STORY = 'Once upon a time, there was a little girl named Lily. She loved to play';

interface ContinueApi {
  run: {
    runId: number;
    T: number;
    complete: boolean;
    tokens: Array<{ text: string; start: number; end: number; special: boolean; generated?: boolean }>;
    attendedIn(q: number, k: number): AttendedWord[] | null;
  } | null;
  explains: Array<{ type: string; runId: number; cell: ExplainCell; explanation?: Explanation; error?: string }>;
}

const api = () => extensionApi<ContinueApi>();
const waitFor = waiter(60_000);

describe('Continue in a real VS Code', function () {
  this.timeout(180_000);

  it('writes the set number of tokens after the selection and shows their attention over it', async () => {
    await useStories();
    await vscode.workspace.getConfiguration('attentionLens').update('maxNewTokens', 6, vscode.ConfigurationTarget.Global);
    const doc = await vscode.workspace.openTextDocument({ content: `${STORY}\n`, language: 'plaintext' });
    const editor = await vscode.window.showTextDocument(doc, vscode.ViewColumn.One);
    editor.selection = new vscode.Selection(doc.positionAt(0), doc.positionAt(STORY.length));
    assert.equal(await vscode.commands.executeCommand<boolean>('attentionLens.continue'), true);
    const a = await api();
    const run = await waitFor('the continued run, complete', () => a.run?.complete && a.run);
    const written = run.tokens.filter((t) => t.generated);
    assert.equal(written.length, 6, 'maxNewTokens tokens written');
    assert.ok(run.tokens.slice(-6).every((t) => t.generated && t.start === -1 && !t.special), 'they come last, with no range in the file, not special');
    for (const t of run.tokens.filter((t) => !t.generated && !t.special)) assert.equal(doc.getText(new vscode.Range(doc.positionAt(t.start), doc.positionAt(t.end))).length, t.end - t.start);
    // The last written token attends to words of the selection (and what was written before it).
    const words = run.attendedIn(run.T - 1, 5)!;
    assert.ok(words.length > 0);
    assert.ok(words.some((w) => w.start >= 0 && STORY.slice(w.start, w.end) === w.text), `a selection word among ${JSON.stringify(words)}`);
  });

  it('"Why this weight?" on a written token rebuilds its row from the same tokens', async () => {
    const a = await api();
    const run = a.run!;
    const q = run.T - 1;
    assert.equal(await vscode.commands.executeCommand<boolean>('attentionLens.explain', { runId: run.runId, query: q, key: 0, layer: 1, head: 2 }), true);
    const data = await waitFor('explain/data', () => a.explains.find((m) => m.type === 'explain/data' && m.runId === run.runId && m.cell.query === q));
    assert.equal(data.error, undefined, data.error);
    const e = data.explanation!;
    assert.equal(e.shown.length, run.T, 'the capture wrote the same tokens again');
    const dot = (j: number) => e.q.reduce((s, x, c) => s + x * e.k[j * e.dim + c], 0);
    const scores = Array.from({ length: run.T }, (_, j) => (e.visible[j] ? e.scale * dot(j) : -Infinity));
    const max = Math.max(...scores);
    const sum = scores.reduce((s, x) => s + Math.exp(x - max), 0);
    for (let j = 0; j < run.T; j++) assert.ok(Math.abs(Math.exp(scores[j] - max) / sum - e.shown[j]) < 1e-4, `key ${j}`);
    await vscode.workspace.getConfiguration('attentionLens').update('maxNewTokens', undefined, vscode.ConfigurationTarget.Global);
  });
});
