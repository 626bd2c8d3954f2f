// Export the latest run: Export HTML Report (one standalone file: the panel's views with hovers and
// the source text, opens offline in any browser) and Export Attention Data (<prefix>.npy float32
// [layers, heads, T, T] and <prefix>.json, as the CLI writes them, plus the text and where it came
// from). Each takes an optional target URI, so scripts (and the panel's Export menu) can export
// without a dialog; without one a save dialog proposes <document>-attention.html / .npy.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { RunState } from './editor/runState';
import { npyChunks, snapshotJson, dataJsonText } from './export/data';
import { readReportAssets, reportChunks } from './export/report';
import { snapshotOfRun, type RunSnapshot } from './export/snapshot';

/** Files at least this large are written under a progress notification (a BERT-base report at T=512 is about 100 MB). */
const PROGRESS_BYTES = 16 << 20;

export function registerExportCommands(context: vscode.ExtensionContext, latestRun: () => RunState | null): vscode.Disposable {
  return vscode.Disposable.from(
    vscode.commands.registerCommand('attentionLens.exportHtml', (target?: vscode.Uri | string) => exportHtml(context, latestRun(), target)),
    vscode.commands.registerCommand('attentionLens.exportData', (target?: vscode.Uri | string) => exportData(latestRun(), target)),
  );
}

/** Writes the report; returns its URI, or undefined when there was nothing to write, the dialog was cancelled or writing failed (each said so). */
async function exportHtml(context: vscode.ExtensionContext, run: RunState | null, target: vscode.Uri | string | undefined): Promise<vscode.Uri | undefined> {
  const snapshot = snapshotOrSay(run);
  if (!run || !snapshot) return undefined;
  const uri = asUri(target) ?? (await vscode.window.showSaveDialog({ title: 'Export Attention Report', defaultUri: defaultTarget(run, '-attention.html'), filters: { 'HTML report': ['html'] }, saveLabel: 'Export' }));
  if (!uri) return undefined;
  try {
    const assets = readReportAssets(path.join(context.extensionPath, 'out', 'webview'));
    const L = snapshot.model.layers;
    const approx = (snapshot.attention.byteLength * 4) / 3;
    await withProgressIf(approx >= PROGRESS_BYTES, `Writing ${base(uri)}`, async (report) => {
      await writeChunks(uri, function* () {
        for (const c of reportChunks(snapshot, assets)) {
          yield Buffer.from(c.text, 'utf8');
          report(c.layersDone / L, `layer ${c.layersDone} of ${L}`);
        }
      });
    });
  } catch (e) {
    void vscode.window.showErrorMessage(`Attention Lens: could not write ${base(uri)}: ${(e as Error).message}`);
    return undefined;
  }
  void vscode.window.showInformationMessage(`Attention Lens: wrote ${base(uri)}`, 'Open in Browser').then((pick) => {
    if (pick) void vscode.env.openExternal(uri);
  });
  return uri;
}

/** Writes <prefix>.npy and <prefix>.json; returns their URIs, or undefined (said why). A target named .npy or .json stands for its prefix. */
async function exportData(run: RunState | null, target: vscode.Uri | string | undefined): Promise<vscode.Uri[] | undefined> {
  const snapshot = snapshotOrSay(run);
  if (!run || !snapshot) return undefined;
  const picked = asUri(target) ?? (await vscode.window.showSaveDialog({ title: 'Export Attention Data (.npy and .json)', defaultUri: defaultTarget(run, '-attention.npy'), filters: { 'NumPy array (a .json beside it)': ['npy'] }, saveLabel: 'Export' }));
  if (!picked) return undefined;
  const prefix = picked.path.replace(/\.(npy|json)$/i, '');
  const npy = picked.with({ path: `${prefix}.npy` });
  const json = picked.with({ path: `${prefix}.json` });
  try {
    const L = snapshot.model.layers;
    await withProgressIf(snapshot.attention.byteLength * 2 >= PROGRESS_BYTES, `Writing ${base(npy)}`, async (report) => {
      await writeChunks(npy, function* () {
        let layers = -1; // the header comes first
        for (const c of npyChunks(snapshot)) {
          yield c;
          if (++layers > 0) report(layers / L, `layer ${layers} of ${L}`);
        }
      });
    });
    const source = { document: run.document.uri.toString(), offset: snapshot.sourceText.offset, label: snapshot.source };
    await writeChunks(json, () => [Buffer.from(dataJsonText(snapshotJson(snapshot, source)), 'utf8')]);
  } catch (e) {
    void vscode.window.showErrorMessage(`Attention Lens: could not write ${base(npy)}: ${(e as Error).message}`);
    return undefined;
  }
  void vscode.window.showInformationMessage(`Attention Lens: wrote ${base(npy)} and ${base(json)} [${snapshot.model.layers}, ${snapshot.model.heads}, ${snapshot.tokens.length}, ${snapshot.tokens.length}]`);
  return [npy, json];
}

/** The run as the exports read it, or null with the reason shown: no run yet, or one still arriving. */
function snapshotOrSay(run: RunState | null): RunSnapshot | null {
  if (!run) {
    void vscode.window.showErrorMessage('Attention Lens: there is no attention to export. Run Show Attention first.');
    return null;
  }
  if (run.long) {
    const gb = (run.L * run.H * run.T * run.T * 2) / 2 ** 30;
    void vscode.window.showErrorMessage(`Attention Lens: data and report exports cover runs of up to ${run.long.threshold} tokens. This run has ${run.T}: its whole attention would be ${gb.toFixed(1)} GB, so it keeps thumbnails and rows on demand instead. Export an image of the panel, or select fewer tokens.`);
    return null;
  }
  const snapshot = snapshotOfRun(run, run.facts);
  if (!snapshot) void vscode.window.showErrorMessage('Attention Lens: the run is still arriving. Export when it is done.');
  return snapshot;
}

/** <document folder>/<document name without extension><suffix>; beside the workspace (or home) for an untitled document. */
function defaultTarget(run: RunState, suffix: string): vscode.Uri {
  const doc = run.document.uri;
  const name = path.basename(doc.path).replace(/\.[^.]*$/, '') + suffix;
  if (doc.scheme !== 'untitled') return vscode.Uri.joinPath(doc, '..', name);
  return vscode.Uri.joinPath(vscode.workspace.workspaceFolders?.[0]?.uri ?? vscode.Uri.file(os.homedir()), name);
}

function asUri(target: vscode.Uri | string | undefined): vscode.Uri | undefined {
  if (!target) return undefined;
  if (typeof target === 'string') return /^[a-z][\w+.-]+:/i.test(target) && !path.isAbsolute(target) ? vscode.Uri.parse(target) : vscode.Uri.file(path.resolve(target));
  return vscode.Uri.from(target); // a URI that crossed executeCommand as plain JSON works too
}

const base = (uri: vscode.Uri): string => path.posix.basename(uri.path);

type Report = (fraction: number, message: string) => void;

/** Runs `work` under a progress notification when `show`, else silently. */
async function withProgressIf(show: boolean, title: string, work: (report: Report) => Promise<void>): Promise<void> {
  if (!show) return work(() => undefined);
  await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: `Attention Lens: ${title}` }, async (progress) => {
    let last = 0;
    await work((fraction, message) => {
      progress.report({ increment: Math.max(0, fraction - last) * 100, message });
      last = Math.max(last, fraction);
    });
  });
}

/**
 * Writes the pieces in order: local files stream to a temporary name beside the target, renamed
 * when complete (a failed export leaves no partial file); other file systems get the whole file at once.
 */
async function writeChunks(uri: vscode.Uri, chunks: () => Iterable<Uint8Array>): Promise<void> {
  if (uri.scheme !== 'file') {
    await vscode.workspace.fs.writeFile(uri, Buffer.concat([...chunks()]));
    return;
  }
  const partial = `${uri.fsPath}.partial`;
  const handle = await fs.promises.open(partial, 'w');
  try {
    for (const c of chunks()) await handle.write(c);
    await handle.close();
    await fs.promises.rename(partial, uri.fsPath);
  } catch (e) {
    await handle.close().catch(() => undefined);
    await fs.promises.rm(partial, { force: true });
    throw e;
  }
}
