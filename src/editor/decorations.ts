// Paints attention on the source: five strength levels (theme colours contributed in package.json,
// each with its own alpha) plus an outline of the analysed range. Types are made once and reused.
import * as vscode from 'vscode';
import type { AttendedWord } from '../analysis/words';

const LEVELS = 5;

export class AttentionDecorations implements vscode.Disposable {
  private readonly levels: vscode.TextEditorDecorationType[];
  private readonly rangeType: vscode.TextEditorDecorationType;
  private readonly sourceType: vscode.TextEditorDecorationType;

  constructor() {
    this.levels = Array.from({ length: LEVELS }, (_, i) =>
      vscode.window.createTextEditorDecorationType({
        backgroundColor: new vscode.ThemeColor(`attentionLens.attended${i + 1}`),
        borderRadius: '2px',
        overviewRulerColor: new vscode.ThemeColor(`attentionLens.attended${i + 1}`),
        overviewRulerLane: vscode.OverviewRulerLane.Right,
      }),
    );
    this.rangeType = vscode.window.createTextEditorDecorationType({
      border: '1px dashed',
      borderColor: new vscode.ThemeColor('attentionLens.analysedRangeBorder'),
      rangeBehavior: vscode.DecorationRangeBehavior.ClosedClosed,
    });
    this.sourceType = vscode.window.createTextEditorDecorationType({
      outline: '1px solid',
      outlineColor: new vscode.ThemeColor('focusBorder'),
    });
  }

  /** Highlights the words a token attends to; opacity level follows weight relative to the strongest word. */
  showAttended(editor: vscode.TextEditor, source: vscode.Range | null, words: AttendedWord[]): void {
    const buckets: vscode.DecorationOptions[][] = Array.from({ length: LEVELS }, () => []);
    const max = Math.max(...words.map((w) => w.weight), 1e-9);
    for (const w of words) {
      if (w.start < 0) continue; // special tokens have no place in the text
      const level = Math.min(LEVELS - 1, Math.max(0, Math.ceil((w.weight / max) * LEVELS) - 1));
      const range = new vscode.Range(editor.document.positionAt(w.start), editor.document.positionAt(w.end));
      buckets[level].push({ range, hoverMessage: `attention ${(w.weight * 100).toFixed(1)}%` });
    }
    this.levels.forEach((type, i) => editor.setDecorations(type, buckets[i]));
    editor.setDecorations(this.sourceType, source ? [source] : []);
  }

  clearAttended(editor: vscode.TextEditor): void {
    for (const type of this.levels) editor.setDecorations(type, []);
    editor.setDecorations(this.sourceType, []);
  }

  showRange(editor: vscode.TextEditor, range: vscode.Range | null): void {
    editor.setDecorations(this.rangeType, range ? [range] : []);
  }

  clearAll(editor: vscode.TextEditor): void {
    this.clearAttended(editor);
    this.showRange(editor, null);
  }

  dispose(): void {
    for (const type of [...this.levels, this.rangeType, this.sourceType]) type.dispose();
  }
}
