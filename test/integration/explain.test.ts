// "Why this weight?" inside the real extension host with the real stories260K model: after Show
// Attention the editor hover links the top word's weight to attentionLens.explain, which moves to
// the panel and asks it to open that cell (explain/open); the panel asks for it (explain/request)
// and the host answers with the head's computation (explain/data), which rebuilds the weight shown.
import * as assert from 'node:assert/strict';
import * as vscode from 'vscode';
import type { ExplainCell, Explanation } from '../../src/protocol/attention';
import { extensionApi, useStories, waiter } from './helpers';

const STORY = 'Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her dog.';

interface ExplainMessage {
  type: 'explain/open' | 'explain/data';
  runId: number;
  cell: ExplainCell;
  explanation?: Explanation;
  error?: string;
}

interface ExplainApi {
  run: { runId: number; T: number; H: number; tokens: Array<{ start: number; end: number; special: boolean }> } | null;
  explains: ExplainMessage[];
}

const api = () => extensionApi<ExplainApi>();
const waitFor = waiter(60_000);

function hoverText(hovers: vscode.Hover[]): string {
  return hovers.flatMap((h) => h.contents.map((c) => (typeof c === 'string' ? c : 'value' in c ? c.value : String(c)))).join('\n');
}

describe('Why this weight? in a real VS Code', function () {
  this.timeout(180_000);
  let doc: vscode.TextDocument;
  let cell: ExplainCell;

  before(async () => {
    await useStories();
    doc = await vscode.workspace.openTextDocument({ content: `Story\n\n${STORY}\n`, language: 'plaintext' });
    const editor = await vscode.window.showTextDocument(doc, vscode.ViewColumn.One);
    const start = doc.getText().indexOf(STORY);
    editor.selection = new vscode.Selection(doc.positionAt(start), doc.positionAt(start + STORY.length));
    assert.equal(await vscode.commands.executeCommand<boolean>('attentionLens.showAttention'), true);
  });

  it('the hover links the top word\'s weight, and the command asks the panel to open that cell', async () => {
    const a = await api();
    const run = a.run!;
    const q = run.tokens.findIndex((t) => !t.special && doc.getText(new vscode.Range(doc.positionAt(t.start), doc.positionAt(t.end))) === 'Lily');
    assert.ok(q > 0, 'a token for "Lily"');
    const text = hoverText(await vscode.commands.executeCommand<vscode.Hover[]>('vscode.executeHoverProvider', doc.uri, doc.positionAt(run.tokens[q].start + 1)));
    const link = /\[Why this weight\?\]\(command:attentionLens\.explain\?([^ )]+)/.exec(text);
    assert.ok(link, text);
    const [args] = JSON.parse(decodeURIComponent(link[1])) as [{ runId: number; query: number; key: number }];
    assert.equal(args.runId, run.runId);
    assert.equal(args.query, q);
    assert.ok(args.key >= 0 && args.key <= q, 'a key the causal model lets "Lily" see');

    // As the link runs it: the panel's layer (the first), and under its mean the head that gives the weight most.
    assert.equal(await vscode.commands.executeCommand<boolean>('attentionLens.explain', args), true);
    const opened = a.explains.at(-1)!;
    assert.equal(opened.type, 'explain/open');
    assert.equal(opened.runId, run.runId);
    assert.deepEqual([opened.cell.layer, opened.cell.query, opened.cell.key], [0, q, args.key]);
    assert.ok(opened.cell.head >= 0 && opened.cell.head < run.H);
    cell = opened.cell;

    // A replaced run's link does nothing.
    assert.equal(await vscode.commands.executeCommand<boolean>('attentionLens.explain', { ...args, runId: run.runId - 1 }), false);
  });

  it('the panel asks for the cell and the host answers with its computation', async () => {
    const a = await api();
    const runId = a.run!.runId;
    const data = await waitFor('explain/data from the host', () =>
      a.explains.find((m) => m.type === 'explain/data' && m.runId === runId && JSON.stringify(m.cell) === JSON.stringify(cell)),
    );
    assert.equal(data.error, undefined, data.error);
    const e = data.explanation!;
    const T = a.run!.T;
    assert.deepEqual([e.dim, e.q.length, e.k.length, e.shown.length], [8, 8, T * 8, T]);
    assert.equal(e.mask, 'causal');
    // softmax(scale · q·k) over the keys "Lily" sees: the weight the panel shows (float16 there).
    const dot = (j: number) => e.q.reduce((s, x, c) => s + x * e.k[j * e.dim + c], 0);
    const scores = Array.from({ length: T }, (_, j) => (e.visible[j] ? e.scale * dot(j) : -Infinity));
    const max = Math.max(...scores);
    const sum = scores.reduce((s, x) => s + Math.exp(x - max), 0);
    for (let j = 0; j < T; j++) assert.ok(Math.abs(Math.exp(scores[j] - max) / sum - e.shown[j]) < 1e-3, `key ${j}`);
  });
});
