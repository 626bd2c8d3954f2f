// activate(): registers commands, the hover provider and the panel serializer, and nothing else.
// Nothing heavy loads here: the engine (transformers.js, ONNX Runtime) lives in a worker started
// on the first Show Attention.
import * as vscode from 'vscode';
import { AttentionController } from './controller';
import { AttentionHoverProvider } from './editor/hover';
import { PANEL_VIEW_TYPE } from './panel/panel';
import { readSettings } from './settings';
import { selectModel } from './selectModel';

export function activate(context: vscode.ExtensionContext) {
  const controller = new AttentionController(context);
  context.subscriptions.push(
    controller,
    vscode.commands.registerCommand('attentionLens.showAttention', () => controller.showAttention()),
    vscode.commands.registerCommand('attentionLens.selectModel', () => selectModel()),
    vscode.commands.registerCommand('attentionLens.cancel', () => controller.cancel()),
    vscode.commands.registerCommand('attentionLens.clearDecorations', () => controller.clearDecorations()),
    vscode.commands.registerCommand('attentionLens.focusToken', (args) => controller.focusToken(args)),
    vscode.languages.registerHoverProvider(
      { scheme: '*' },
      new AttentionHoverProvider(() => controller.run, () => readSettings(context).topWords),
    ),
    vscode.window.registerWebviewPanelSerializer(PANEL_VIEW_TYPE, {
      async deserializeWebviewPanel(panel) {
        controller.revivePanel(panel);
      },
    }),
  );
  // Returned for integration tests, which inspect the latest run through the real extension.
  return { get run() { return controller.run; } };
}

export function deactivate() {}
