// What a window reload needs to bring the last run back: its document, the range it asked for and
// a hash of that text, kept in the workspace state. A text that changed since is not re-run.
import * as vscode from 'vscode';

interface SavedRun {
  uri: string;
  start: number;
  end: number;
  hash: string;
}
const KEY = 'attentionLens.lastRun';

export function saveRun(state: vscode.Memento, document: vscode.TextDocument, range: { start: number; end: number }, text: string): void {
  const saved: SavedRun = { uri: document.uri.toString(), start: range.start, end: range.end, hash: textHash(text) };
  void state.update(KEY, saved);
}

/**
 * The last run's document and range when its text is still there; `changed` when the document is
 * there but its text is not; null when there is nothing to restore (none saved, an untitled or
 * deleted file).
 */
export async function savedRun(state: vscode.Memento): Promise<{ document: vscode.TextDocument; range: { start: number; end: number } } | 'changed' | null> {
  const saved = state.get<SavedRun>(KEY);
  if (!saved) return null;
  let document: vscode.TextDocument;
  try {
    document = await vscode.workspace.openTextDocument(vscode.Uri.parse(saved.uri));
  } catch {
    return null;
  }
  const range = new vscode.Range(document.positionAt(saved.start), document.positionAt(saved.end));
  if (document.offsetAt(range.end) !== saved.end || textHash(document.getText(range)) !== saved.hash) return 'changed';
  return { document, range: { start: saved.start, end: saved.end } };
}

/** FNV-1a of the text, with its length: enough to tell whether the text of a saved run is still there. */
function textHash(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return `${text.length}:${(h >>> 0).toString(16)}`;
}
