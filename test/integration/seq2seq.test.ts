// An encoder-decoder model inside the real extension host: the real aren-transliteration model
// reads the selected Arabic name as its source and writes "atzmon"; the run holds the decoder's,
// the encoder's and the cross-attention, the source tokens sit on the document's letters, the
// editor's hover on a source letter lists the target letters attending to it, and Show Attention
// with a Given Target teacher-forces the target typed.
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { extensionApi, waiter } from './helpers';

const AREN = path.resolve(__dirname, '../../..', '../shared/models/aren-transliteration');
const NAME = 'آتزمون';

interface Seq2seqApi {
  run: {
    runId: number;
    T: number;
    complete: boolean;
    tokens: Array<{ text: string; special: boolean }>;
    seq2seq: { targetText: string; forced: boolean; finished: boolean } | null;
    encoder: { tokens: Array<{ start: number; end: number; special: boolean }> } | null;
    cross: { arrived: number; layers: number } | null;
  } | null;
}

const api = () => extensionApi<Seq2seqApi>();
const waitFor = waiter(60_000);

function hoverText(hovers: vscode.Hover[]): string {
  return hovers.flatMap((h) => h.contents.map((c) => (typeof c === 'string' ? c : 'value' in c ? c.value : String(c)))).join('\n');
}

describe('an encoder-decoder model in a real VS Code', function () {
  this.timeout(180_000);
  let doc: vscode.TextDocument;

  before(async () => {
    const config = vscode.workspace.getConfiguration('attentionLens');
    await config.update('model', AREN, vscode.ConfigurationTarget.Global);
    await config.update('offline', true, vscode.ConfigurationTarget.Global);
    doc = await vscode.workspace.openTextDocument({ content: `Name: ${NAME}\n`, language: 'plaintext' });
    const editor = await vscode.window.showTextDocument(doc, vscode.ViewColumn.One);
    const start = doc.getText().indexOf(NAME);
    editor.selection = new vscode.Selection(doc.positionAt(start), doc.positionAt(start + NAME.length));
  });

  after(async () => {
    await vscode.workspace.getConfiguration('attentionLens').update('model', undefined, vscode.ConfigurationTarget.Global);
  });

  it('Show Attention writes the transliteration; the source sits on the document; the hover on a source letter lists target letters', async () => {
    assert.equal(await vscode.commands.executeCommand<boolean>('attentionLens.showAttention'), true);
    const a = await api();
    const run = await waitFor('the complete encoder-decoder run', () => a.run?.complete && a.run);
    assert.equal(run.seq2seq?.targetText, 'atzmon');
    assert.equal(run.seq2seq?.forced, false);
    assert.equal(run.T, 7, '<s> a t z m o n');
    assert.equal(run.cross?.arrived, run.cross?.layers);
    const letters = run.encoder!.tokens.filter((t) => !t.special).map((t) => doc.getText(new vscode.Range(doc.positionAt(t.start), doc.positionAt(t.end))));
    assert.equal(letters.join(''), NAME, 'each source token on its letter of the document');
    const z = run.encoder!.tokens[2];
    const text = hoverText(await vscode.commands.executeCommand<vscode.Hover[]>('vscode.executeHoverProvider', doc.uri, doc.positionAt(z.start)));
    assert.match(text, /cross-attention/);
    assert.match(text, /Source token `ز` is attended most by the target tokens/);
    assert.match(text, /% `z` \(target token 4\)/, text);
  });

  it('Show Attention with a Given Target teacher-forces the target typed', async () => {
    assert.equal(await vscode.commands.executeCommand<boolean>('attentionLens.showAttentionWithTarget', { target: 'atsmon' }), true);
    const a = await api();
    const run = await waitFor('the forced run', () => a.run?.complete && a.run.seq2seq?.forced && a.run);
    assert.equal(run.seq2seq?.targetText, 'atsmon');
    assert.deepEqual(run.tokens.map((t) => t.text), ['<s>', 'a', 't', 's', 'm', 'o', 'n']);
  });
});
