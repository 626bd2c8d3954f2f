// Runs inside the real extension host (see runSuite.ts): the extension under development is loaded
// from the repository and these tests talk to it through the real `vscode` API.
import * as assert from 'node:assert/strict';
import * as vscode from 'vscode';

const EXTENSION_ID = 'attention-lens.attention-lens';
const COMMANDS = ['attentionLens.showAttention', 'attentionLens.selectModel'];

function extension(): vscode.Extension<unknown> {
  const ext = vscode.extensions.getExtension(EXTENSION_ID);
  assert.ok(ext, `extension ${EXTENSION_ID} is not loaded`);
  return ext;
}

describe('smoke: extension in a real VS Code', () => {
  it('is present', () => {
    const ext = extension();
    assert.equal(ext.packageJSON.name, 'attention-lens');
    assert.equal(ext.packageJSON.publisher, 'attention-lens');
  });

  it('activates', async () => {
    const ext = extension();
    await ext.activate();
    assert.equal(ext.isActive, true);
  });

  it('registers its commands', async () => {
    await extension().activate();
    const registered = new Set(await vscode.commands.getCommands(true));
    for (const command of COMMANDS) assert.ok(registered.has(command), `command ${command} is not registered`);
  });

  it('contributes its commands to the command palette', () => {
    const contributed = ((extension().packageJSON.contributes?.commands ?? []) as { command: string }[]).map(
      (c) => c.command,
    );
    for (const command of COMMANDS) assert.ok(contributed.includes(command), `${command} is not in contributes.commands`);
  });
});
