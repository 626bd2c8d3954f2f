// Which text of the editor a Show Attention analyses: the selection (or the union of several
// selections when they join up, else the primary one), the current line when nothing is
// selected, cut to what the model can take at most.
import * as vscode from 'vscode';

/** Tokenizing megabytes only to throw most away is slow; no token is longer than this many characters on average. */
const CHARS_PER_TOKEN_CAP = 64;

export type Analysable =
  | {
      document: vscode.TextDocument;
      /** Document offsets of the text handed to the engine. */
      range: { start: number; end: number };
      /** The selection goes on past `range` (cut to the cap): the engine's token counts are lower bounds. */
      textContinues: boolean;
      /** What the user should know: the current line used (`passing`, for the status bar), other selections ignored. */
      notices: { text: string; passing: boolean }[];
    }
  | { refusal: string };

export function analysable(editor: vscode.TextEditor, maxTokens: number): Analysable {
  const doc = editor.document;
  const notices: { text: string; passing: boolean }[] = [];
  let selection: vscode.Range = editor.selection;
  if (editor.selections.length > 1) {
    const union = joinedRanges(doc, editor.selections);
    const others = editor.selections.length - 1;
    if (union) selection = union;
    else notices.push({ text: `analysing the primary selection; the ${others} other selection${others > 1 ? 's were' : ' was'} ignored.`, passing: false });
  }
  const lineOnly = selection.isEmpty;
  if (lineOnly) {
    selection = doc.lineAt(editor.selection.active.line).range;
    notices.push({ text: `no selection, analysing line ${selection.start.line + 1}.`, passing: true });
  }
  if (!doc.getText(selection).trim()) {
    return { refusal: lineOnly ? 'the current line is empty. Select some text to analyse.' : 'the selection is only whitespace. Select some text to analyse.' };
  }
  const start = doc.offsetAt(selection.start);
  const selectionEnd = doc.offsetAt(selection.end);
  let end = Math.min(selectionEnd, start + maxTokens * CHARS_PER_TOKEN_CAP);
  // Never cut a surrogate pair in half.
  if (end < selectionEnd && /[\ud800-\udbff]/.test(doc.getText(new vscode.Range(doc.positionAt(end - 1), doc.positionAt(end))))) end--;
  return { document: doc, range: { start, end }, textContinues: end < selectionEnd, notices };
}

/** The union of `selections` when they cover one contiguous stretch of the document (touching or overlapping), else null. */
function joinedRanges(doc: vscode.TextDocument, selections: readonly vscode.Selection[]): vscode.Range | null {
  const spans = selections.map((s) => [doc.offsetAt(s.start), doc.offsetAt(s.end)]).sort((a, b) => a[0] - b[0]);
  let end = spans[0][1];
  for (const [s, e] of spans.slice(1)) {
    if (s > end) return null;
    end = Math.max(end, e);
  }
  return new vscode.Range(doc.positionAt(spans[0][0]), doc.positionAt(end));
}
