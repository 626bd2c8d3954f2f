// Compare on the source: the tokens of the current run whose attention changed most since the
// pinned baseline, underlined (a theme colour contributed in package.json), each with a hover line
// saying by how much. The scores come from src/analysis/compare.ts (RowChanges).
import * as vscode from 'vscode';

/** One marked token: its absolute document range and how much its attention changed (0..2). */
export interface CompareMark {
  start: number;
  end: number;
  change: number;
}

export class CompareMarks implements vscode.Disposable {
  private readonly type = vscode.window.createTextEditorDecorationType({
    borderStyle: 'solid',
    borderWidth: '0 0 2px 0',
    borderColor: new vscode.ThemeColor('attentionLens.changedAttention'),
    overviewRulerColor: new vscode.ThemeColor('attentionLens.changedAttention'),
    overviewRulerLane: vscode.OverviewRulerLane.Left,
  });

  /** `heads`: what each score averages over ("5 layers × 8 heads"), for the hover. */
  show(editor: vscode.TextEditor, marks: readonly CompareMark[], heads: string): void {
    const doc = editor.document;
    editor.setDecorations(
      this.type,
      marks.map((m, i) => {
        const hover = new vscode.MarkdownString();
        hover.appendMarkdown(`**Attention Lens** · attention changed by ${m.change.toFixed(3)} since the baseline`);
        hover.appendMarkdown(` (${i + 1} of the ${marks.length} most changed tokens)\n\n`);
        hover.appendMarkdown(`The distance between this token's attention now and in the baseline, mean over ${heads}: 0 is the same, 2 is entirely elsewhere.`);
        return { range: new vscode.Range(doc.positionAt(m.start), doc.positionAt(m.end)), hoverMessage: hover };
      }),
    );
  }

  clear(editor: vscode.TextEditor): void {
    editor.setDecorations(this.type, []);
  }

  dispose(): void {
    this.type.dispose();
  }
}
