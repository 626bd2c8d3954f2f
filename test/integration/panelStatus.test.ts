// The panel's front doors inside the real extension host, with the real stories260K model:
// Focus Attention Panel (command, keybinding free of VS Code's defaults), the editor context
// menu's entry, the status bar item through a run (done, error), Select Model's recent folders,
// and the editor hover's visible whitespace (stories260K has a token that is only a space).
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { EXTENSION_ID, STORIES, extensionApi, useStories, waiter } from './helpers';

/** stories260K cuts "had 2" into "▁had", "▁" (the space) and "2". */
const TEXT = 'Lily had 2 cats and a dog.';

interface Api {
  run: { runId: number; tokens: Array<{ text: string; start: number; end: number; special: boolean }>; range: { start: number; end: number } } | null;
  status: { visible: boolean; text: string; tooltip: string; command: string | undefined; state: string | null };
  recentModelFolders: string[];
}

const api = () => extensionApi<Api>();
const waitFor = waiter(20_000);

function hoverText(hovers: vscode.Hover[]): string {
  return hovers.flatMap((h) => h.contents.map((c) => (typeof c === 'string' ? c : 'value' in c ? c.value : String(c)))).join('\n');
}

function panelTab(): vscode.Tab | undefined {
  return vscode.window.tabGroups.all.flatMap((g) => g.tabs).find((t) => t.input instanceof vscode.TabInputWebview && /attentionLens\.panel$/.test(t.input.viewType));
}

describe('panel, status bar and model folders in a real VS Code', function () {
  this.timeout(120_000);
  const stories = STORIES;
  const pkg = () => vscode.extensions.getExtension(EXTENSION_ID)!.packageJSON;
  let doc: vscode.TextDocument;

  before(async () => {
    assert.ok(fs.existsSync(stories), `the shared model is at ${stories}`);
    await useStories();
    doc = await vscode.workspace.openTextDocument({ content: `${TEXT}\n`, language: 'plaintext' });
  });

  it('Focus Attention Panel is a command with a keybinding that no VS Code default uses', async () => {
    await api();
    assert.ok((await vscode.commands.getCommands(true)).includes('attentionLens.focusPanel'));
    const contributed = pkg().contributes;
    const cmd = contributed.commands.find((c: { command: string }) => c.command === 'attentionLens.focusPanel');
    assert.equal(`${cmd.category}: ${cmd.title}`, 'Attention Lens: Focus Attention Panel');
    const kb = contributed.keybindings.find((k: { command: string }) => k.command === 'attentionLens.focusPanel');
    assert.deepEqual([kb.key, kb.mac], ['ctrl+alt+p', 'cmd+alt+p']);
    // VS Code's own default keybindings for this platform (Linux here), as its Keyboard Shortcuts show them.
    await vscode.commands.executeCommand('workbench.action.openDefaultKeybindingsFile');
    const defaults = await waitFor('the default keybindings', () => {
      const d = vscode.window.activeTextEditor?.document;
      return d?.uri.toString().includes('keybindings.json') && d.getText().length > 10_000 ? d.getText() : null;
    });
    await vscode.commands.executeCommand('workbench.action.closeActiveEditor');
    const taken = [...defaults.matchAll(/"key":\s*"([^"]+)",\s*"command":\s*"([^"]+)"/g)].filter((m) => !m[2].startsWith('attentionLens.'));
    assert.ok(taken.length > 500, `read the defaults (${taken.length})`);
    for (const m of taken) assert.notEqual(m[1], kb.key, `${kb.key} is VS Code's ${m[2]}`);
    // ctrl+alt+a is ours alone too.
    for (const m of taken) assert.notEqual(m[1], 'ctrl+alt+a', `ctrl+alt+a is VS Code's ${m[2]}`);
  });

  it('the editor context menu reads "Attention Lens: Show Attention"; its command is hidden from the palette', () => {
    const contributed = pkg().contributes;
    const entry = contributed.menus['editor/context'].find((m: { command: string }) => m.command.startsWith('attentionLens.showAttention'));
    const cmd = contributed.commands.find((c: { command: string }) => c.command === entry.command);
    assert.equal(cmd.title, 'Attention Lens: Show Attention', 'context menus show the title alone');
    assert.equal(cmd.category, undefined);
    if (entry.command !== 'attentionLens.showAttention') {
      assert.ok(contributed.menus.commandPalette.some((m: { command: string; when: string }) => m.command === entry.command && m.when === 'false'), 'hidden from the palette');
    }
  });

  it('the status bar item shows the model and the run: done with its token count, clicking opens the panel', async () => {
    const a = await api();
    if (a.run === null) assert.equal(a.status.visible, false, 'hidden before the first run');
    const editor = await vscode.window.showTextDocument(doc, vscode.ViewColumn.One);
    editor.selection = new vscode.Selection(doc.positionAt(0), doc.positionAt(TEXT.length));
    const ok = await vscode.commands.executeCommand<boolean>('attentionLens.showAttentionFromMenu');
    assert.equal(ok, true, 'the context-menu command runs Show Attention');
    const run = a.run!;
    const s = await waitFor('the status bar to say done', () => (a.status.state === 'done' ? a.status : null));
    assert.equal(s.visible, true);
    assert.equal(s.text, `$(eye) stories260K · ${run.tokens.length} tokens`);
    assert.equal(s.command, 'attentionLens.focusPanel');
    assert.match(s.tooltip, new RegExp(`Model: ${stories.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
    assert.match(s.tooltip, /Click to open the panel/);
  });

  it('Focus Attention Panel reveals the panel and moves focus into it', async () => {
    await vscode.window.showTextDocument(doc, vscode.ViewColumn.One);
    assert.ok(!(vscode.window.tabGroups.activeTabGroup.activeTab?.input instanceof vscode.TabInputWebview), 'the editor is active');
    await vscode.commands.executeCommand('attentionLens.focusPanel');
    await waitFor('the panel to be the active tab', () => {
      const t = vscode.window.tabGroups.activeTabGroup.activeTab;
      return t?.input instanceof vscode.TabInputWebview && /attentionLens\.panel$/.test(t.input.viewType);
    });
    // Closed, it opens again (empty) on the command.
    const tab = panelTab()!;
    await vscode.window.tabGroups.close(tab);
    await waitFor('the panel to close', () => !panelTab());
    await vscode.commands.executeCommand('attentionLens.focusPanel');
    await waitFor('a new panel', () => panelTab()?.isActive);
  });

  it('the editor hover shows a space token as ␣', async () => {
    const a = await api();
    const run = a.run!;
    const q = run.tokens.findIndex((t) => !t.special && doc.getText(new vscode.Range(doc.positionAt(t.start), doc.positionAt(t.end))) === ' ');
    assert.ok(q > 0, `a token that is only a space: ${run.tokens.map((t) => t.text).join(' ')}`);
    const hovers = await vscode.commands.executeCommand<vscode.Hover[]>('vscode.executeHoverProvider', doc.uri, doc.positionAt(run.tokens[q].start));
    const text = hoverText(hovers);
    assert.match(text, /Token `␣`/, text);
    assert.doesNotMatch(text, /Token ` +`/);
    // Hovering "2" lists the attended words; the space before it, attended or not, is never blank.
    const two = run.tokens.findIndex((t) => doc.getText(new vscode.Range(doc.positionAt(t.start), doc.positionAt(t.end))) === '2');
    const words = hoverText(await vscode.commands.executeCommand<vscode.Hover[]>('vscode.executeHoverProvider', doc.uri, doc.positionAt(run.tokens[two].start)));
    assert.match(words, /attends most to/);
    assert.doesNotMatch(words, /% ` +`/, 'no empty code span in the list');
  });

  it('Select Model offers the folders used before first', async () => {
    const a = await api();
    await waitFor('the folder remembered', () => a.recentModelFolders[0] === stories);
    const picked = vscode.commands.executeCommand<string | undefined>('attentionLens.selectModel');
    // The quick pick's first item is the recent folder: accept it.
    await new Promise((r) => setTimeout(r, 800));
    await vscode.commands.executeCommand('workbench.action.acceptSelectedQuickOpenItem');
    assert.equal(await picked, stories);
    assert.equal(vscode.workspace.getConfiguration('attentionLens').get('model'), stories);
    assert.ok((await vscode.commands.getCommands(true)).includes('attentionLens.chooseModelFolder'), 'the folder picker has a command of its own');
  });

  it('a failed run shows in the status bar with its error; the item still opens the panel', async () => {
    const a = await api();
    const missing = path.join(os.tmpdir(), 'no-such-model-folder');
    await vscode.workspace.getConfiguration('attentionLens').update('model', missing, vscode.ConfigurationTarget.Global);
    try {
      const editor = await vscode.window.showTextDocument(doc, vscode.ViewColumn.One);
      editor.selection = new vscode.Selection(doc.positionAt(0), doc.positionAt(TEXT.length));
      assert.equal(await vscode.commands.executeCommand('attentionLens.showAttention'), false);
      const s = await waitFor('the status bar to say error', () => (a.status.state === 'error' ? a.status : null));
      assert.equal(s.text, '$(error) no-such-model-folder: error');
      assert.match(s.tooltip, /failed/);
      assert.equal(s.command, 'attentionLens.focusPanel', 'an earlier run is still there to see');
    } finally {
      await vscode.workspace.getConfiguration('attentionLens').update('model', stories, vscode.ConfigurationTarget.Global);
    }
  });
});
