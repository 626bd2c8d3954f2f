// activate(): registers commands, the hover provider, the status bar item and the panel
// serializer, and nothing else. Nothing heavy loads here: the engine (transformers.js, ONNX
// Runtime) lives in a worker started on the first Show Attention.
import * as path from 'node:path';
import * as vscode from 'vscode';
import { AttentionController } from './controller';
import { AttentionHoverProvider } from './editor/hover';
import { PANEL_VIEW_TYPE } from './panel/panel';
import { readSettings } from './settings';
import { chooseModelFolder, recentFolders, rememberFolder, selectModel } from './selectModel';
import { AttentionStatusBar } from './statusBar';
import { registerImageExport } from './exportImage';
import { registerExportCommands } from './exportData';

export function activate(context: vscode.ExtensionContext) {
  const controller = new AttentionController(context);
  const statusBar = new AttentionStatusBar(controller.onDidChangeStatus, () => controller.run !== null);
  const showAttention = () => controller.showAttention();
  context.subscriptions.push(
    controller,
    statusBar,
    // A local folder that ran is a folder "used before": Select Model offers it first.
    controller.onDidChangeStatus((s) => {
      if (s.state === 'done' && path.isAbsolute(s.model)) void rememberFolder(context.globalState, s.model);
    }),
    vscode.commands.registerCommand('attentionLens.showAttention', showAttention),
    // The editor context menu shows a command's title without its category: this id carries the
    // full "Attention Lens: Show Attention" title there and is hidden from the palette.
    vscode.commands.registerCommand('attentionLens.showAttentionFromMenu', showAttention),
    vscode.commands.registerCommand('attentionLens.selectModel', () => selectModel(context.globalState)),
    vscode.commands.registerCommand('attentionLens.chooseModelFolder', () => chooseModelFolder(context.globalState)),
    vscode.commands.registerCommand('attentionLens.focusPanel', () => controller.focusPanel()),
    vscode.commands.registerCommand('attentionLens.cancel', () => controller.cancel()),
    vscode.commands.registerCommand('attentionLens.clearDecorations', () => controller.clearDecorations()),
    vscode.commands.registerCommand('attentionLens.pinBaseline', () => controller.pinBaseline()),
    vscode.commands.registerCommand('attentionLens.clearBaseline', () => controller.clearBaseline()),
    vscode.commands.registerCommand('attentionLens.focusToken', (args) => controller.focusToken(args)),
    vscode.commands.registerCommand('attentionLens.explain', (args) => controller.explain(args)),
    vscode.commands.registerCommand('attentionLens.continue', () => controller.continueText()),
    vscode.commands.registerCommand('attentionLens.showAttentionWithTarget', (args) => controller.showAttentionWithTarget(args)),
    registerImageExport(controller),
    registerExportCommands(context, () => controller.run),
    vscode.languages.registerHoverProvider(
      { scheme: '*' },
      new AttentionHoverProvider(() => controller.run, () => readSettings(context).topWords),
    ),
    vscode.window.registerWebviewPanelSerializer(PANEL_VIEW_TYPE, {
      async deserializeWebviewPanel(panel) {
        void controller.revivePanel(panel); // the last run comes back in the background
      },
    }),
  );
  // Returned for integration tests, which inspect the latest run and the status bar item through
  // the real extension.
  return {
    get run() {
      return controller.run;
    },
    get status() {
      return statusBar.snapshot;
    },
    /** The local model folders Select Model offers first. */
    get recentModelFolders() {
      return recentFolders(context.globalState);
    },
    /** Recent runs' moments (requested, done, painted and complete in the panel) and the outbox's counts. */
    get events() {
      return controller.events;
    },
    get outbox() {
      return controller.outboxStats;
    },
    /** Compare: the baseline's run id and the compare marks on the editor. */
    get compare() {
      return controller.compare;
    },
    /** "Why this weight?": the explain/open and explain/data messages recently posted to the panel. */
    get explains() {
      return controller.explains;
    },
  };
}

export function deactivate() {}
