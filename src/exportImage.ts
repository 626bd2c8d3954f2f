// attentionLens.exportPng / attentionLens.exportSvg: the view the panel shows, as an image file.
// The panel draws the image (webview/export/); here the host asks for it and waits (with progress,
// a timeout, and an error if the panel closes meanwhile), then saves it where the save dialog says
// or where the caller said: `{ uri, scale }` (or a Uri alone) exports without any dialog.
import * as os from 'node:os';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { AttentionController } from './controller';
import type { AttentionPanel } from './panel/panel';
import type { ExportFormat, ExportMenuMessage, ExportResultMessage } from './protocol/webview';
import { MAX_EXPORT_SCALE } from './protocol/validate';

/** How long the panel may take to draw and encode an image before the export gives up. */
const EXPORT_TIMEOUT_MS = 30_000;

/** The commands' argument, for scripts: where to write (no dialog then) and, for PNG, the scale. */
export interface ImageExportArgs {
  uri?: vscode.Uri | string;
  /** PNG: a multiple of the screen's pixel ratio (default 1). */
  scale?: number;
}

const MENU_COMMANDS: Record<ExportMenuMessage['action'], string> = {
  png: 'attentionLens.exportPng',
  svg: 'attentionLens.exportSvg',
  html: 'attentionLens.exportHtml',
  data: 'attentionLens.exportData',
};

export function registerImageExport(controller: AttentionController): vscode.Disposable {
  return vscode.Disposable.from(
    vscode.commands.registerCommand('attentionLens.exportPng', (args?: ImageExportArgs | vscode.Uri) => exportImage(controller, 'png', args)),
    vscode.commands.registerCommand('attentionLens.exportSvg', (args?: ImageExportArgs | vscode.Uri) => exportImage(controller, 'svg', args)),
  );
}

/** A choice in the panel's Export menu: the command that does it (each asks where to save). */
export async function exportFromMenu(m: ExportMenuMessage): Promise<void> {
  try {
    await vscode.commands.executeCommand(MENU_COMMANDS[m.action], ...(m.scale === undefined ? [] : [{ scale: m.scale }]));
  } catch (e) {
    void vscode.window.showErrorMessage(`Attention Lens: ${e instanceof Error ? e.message : String(e)}`);
  }
}

/** Resolves to the file written, or undefined when nothing was (the reason is shown). */
async function exportImage(controller: AttentionController, format: ExportFormat, args: ImageExportArgs | vscode.Uri | undefined): Promise<vscode.Uri | undefined> {
  const fail = (message: string): undefined => void vscode.window.showErrorMessage(`Attention Lens: ${message}`);
  const a: ImageExportArgs = args instanceof vscode.Uri ? { uri: args } : (args ?? {});
  const scale = format === 'png' ? (a.scale ?? 1) : 1;
  if (!(typeof scale === 'number' && scale > 0 && scale <= MAX_EXPORT_SCALE)) return fail(`the export scale must be above 0 and at most ${MAX_EXPORT_SCALE}, not ${String(scale)}.`);
  const panel = controller.openPanel;
  if (!panel) return fail('there is no attention panel to export: run Show Attention first.');
  let result: ExportResultMessage;
  try {
    result = await vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: `Attention Lens: exporting ${format.toUpperCase()}…`, cancellable: true },
      (_progress, token) => requestImage(panel, format, scale, token),
    );
  } catch (e) {
    if (e instanceof vscode.CancellationError) return undefined;
    return fail(e instanceof Error ? e.message : String(e));
  }
  if (result.data === undefined) return fail(result.error ?? 'the panel sent no image.');
  const given = a.uri !== undefined;
  const uri = given
    ? toUri(a.uri!)
    : await vscode.window.showSaveDialog({
        defaultUri: defaultTarget(controller, result, format),
        filters: format === 'png' ? { 'PNG image': ['png'] } : { 'SVG image': ['svg'] },
        saveLabel: 'Export',
        title: `Export the attention panel's view as ${format.toUpperCase()}`,
      });
  if (!uri) return undefined;
  const bytes = typeof result.data === 'string' ? new TextEncoder().encode(result.data) : result.data instanceof Uint8Array ? result.data : new Uint8Array(result.data);
  try {
    await vscode.workspace.fs.writeFile(uri, bytes);
  } catch (e) {
    return fail(`could not write ${uri.fsPath}: ${e instanceof Error ? e.message : String(e)}`);
  }
  const size = result.width && result.height ? ` (${result.width} × ${result.height})` : '';
  const saved = `Attention Lens: exported ${path.posix.basename(uri.path)}${size}`;
  // A script that named the file needs no notification; someone who picked it may want to see it.
  if (given) vscode.window.setStatusBarMessage(saved, 5000);
  else void vscode.window.showInformationMessage(saved, 'Open').then((pick) => pick && vscode.commands.executeCommand('vscode.open', uri));
  return uri;
}

let nextId = 1;

/** Asks the panel for the image; rejects on timeout, on the panel closing, and on cancel (CancellationError). */
function requestImage(panel: AttentionPanel, format: ExportFormat, scale: number, token: vscode.CancellationToken): Promise<ExportResultMessage> {
  const id = nextId++;
  return new Promise((resolve, reject) => {
    const subscriptions: vscode.Disposable[] = [];
    const settle = (r: ExportResultMessage | Error): void => {
      clearTimeout(timer);
      for (const d of subscriptions.splice(0)) d.dispose();
      if (r instanceof Error) reject(r);
      else resolve(r);
    };
    const timer = setTimeout(() => settle(new Error(`the panel did not send the image within ${EXPORT_TIMEOUT_MS / 1000} s: try again, or export at a smaller scale.`)), EXPORT_TIMEOUT_MS);
    subscriptions.push(
      panel.onMessage((m) => {
        if (m.type === 'export/result' && m.id === id) settle(m);
      }),
      panel.onDidDispose(() => settle(new Error('the panel was closed before the export finished.'))),
      token.onCancellationRequested(() => settle(new vscode.CancellationError())),
    );
    // A hidden panel has no layout to draw from: bring it forward first, leaving the focus where it is.
    if (!panel.panel.visible) panel.panel.reveal(undefined, true);
    panel.post({ type: 'export/request', id, format, scale });
  });
}

function toUri(u: vscode.Uri | string): vscode.Uri {
  if (typeof u !== 'string') return u;
  return /^[a-z][\w+.-]+:/i.test(u) && !path.isAbsolute(u) ? vscode.Uri.parse(u) : vscode.Uri.file(u);
}

/** `<doc>-<view>-layerN.<ext>` beside the analysed document (the model view shows every layer: no layer). */
function defaultTarget(controller: AttentionController, r: ExportResultMessage, format: ExportFormat): vscode.Uri {
  const doc = controller.run?.document.uri;
  const base = doc ? path.posix.parse(doc.path).name : 'attention';
  const layer = r.view !== 'model' && r.layer !== undefined ? `-layer${r.layer + 1}` : '';
  const name = `${base}-${r.view ?? 'view'}${layer}.${format}`;
  const dir = doc && doc.scheme !== 'untitled' ? vscode.Uri.joinPath(doc, '..') : (vscode.workspace.workspaceFolders?.[0]?.uri ?? vscode.Uri.file(os.homedir()));
  return vscode.Uri.joinPath(dir, name);
}
