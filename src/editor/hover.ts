// Hover inside the analysed range: the hovered token's top-attended words for the panel's current
// layer and head (or mean), with weights, a link that focuses the token in the panel, and one that
// explains the top word's weight there ("Why this weight?").
import * as vscode from 'vscode';
import type { RunState } from './runState';

export class AttentionHoverProvider implements vscode.HoverProvider {
  constructor(
    private readonly state: () => RunState | null,
    private readonly topWords: () => number,
  ) {}

  provideHover(document: vscode.TextDocument, position: vscode.Position): vscode.Hover | null {
    const run = this.state();
    if (!run || !run.matches(document)) return null;
    const offset = document.offsetAt(position);
    const q = run.tokenAtOffset(offset);
    if (q < 0) return null;
    const token = run.tokens[q];
    const words = run.attendedIn(q, this.topWords());
    const md = new vscode.MarkdownString(undefined, true);
    md.isTrusted = { enabledCommands: ['attentionLens.focusToken', 'attentionLens.explain'] };
    md.supportHtml = false;
    md.appendMarkdown(`**Attention Lens** · ${run.describe(run.view)}\n\n`);
    // The source text of the token reads better than its vocabulary spelling (▁Lily, Ġthe, ##ing).
    const source = document.getText(new vscode.Range(document.positionAt(token.start), document.positionAt(token.end)));
    md.appendMarkdown('Token ');
    md.appendMarkdown(inlineCode(visibleText(source || token.text)));
    if (!words) {
      const waiting = run.view.weights === 'value' && !run.values
        ? 'The value norms of this run are being computed…'
        : run.view.agg === 'rollout' ? 'Rollout through this layer is being computed…' : 'The attention of this layer is still arriving…';
      md.appendMarkdown(`\n\n${waiting}`);
    } else if (!words.length) {
      md.appendMarkdown(' attends to nothing above zero here.');
    } else {
      md.appendMarkdown(run.view.weights === 'value' ? ' takes most, by value-weighted share, from:\n\n' : ' attends most to:\n\n');
      for (const w of words) {
        md.appendMarkdown(`- ${(w.weight * 100).toFixed(1)}% `);
        const text = visibleText(w.text);
        md.appendMarkdown(inlineCode(text.length > 60 ? `${text.slice(0, 57)}…` : text));
        md.appendMarkdown('\n');
      }
    }
    const args = encodeURIComponent(JSON.stringify([{ runId: run.runId, tokenIndex: q }]));
    md.appendMarkdown(`\n[Focus this token in the panel](command:attentionLens.focusToken?${args} "Show in the Attention Lens panel")`);
    // Under rollout no single head's softmax makes the weight: nothing to explain.
    const key = words?.length ? run.topKey(q) : -1;
    if (key >= 0) {
      const explain = encodeURIComponent(JSON.stringify([{ runId: run.runId, query: q, key }]));
      md.appendMarkdown(` · [Why this weight?](command:attentionLens.explain?${explain} "How the head computes the top word's weight, in the Attention Lens panel")`);
    }
    const range = new vscode.Range(document.positionAt(token.start), document.positionAt(token.end));
    return new vscode.Hover(md, range);
  }
}

/**
 * Invisible characters made visible as the panel shows them (webview/store.ts, displayToken): text
 * with something visible is trimmed, its inner line breaks and tabs shown as ⏎ and ⇥; text that is
 * only whitespace shows every character (space ␣, tab ⇥, line break ⏎, no-break space ⍽, others ·).
 */
export function visibleText(text: string): string {
  if (!text) return text;
  const trimmed = text.trim();
  if (trimmed) return trimmed.replace(/\r\n|\n|\r/g, '⏎').replace(/\t/g, '⇥');
  let out = '';
  for (const ch of text.replace(/\r\n/g, '\n')) out += WHITESPACE[ch] ?? '·';
  return out || '⏎';
}

const WHITESPACE: Record<string, string> = { ' ': '␣', '\t': '⇥', '\n': '⏎', '\r': '⏎', '\u00a0': '⍽' };

/** Markdown inline code for arbitrary text: a backtick fence longer than any run inside, newlines shown as ⏎. */
function inlineCode(text: string): string {
  const flat = text.replace(/\r?\n|\r/g, '⏎').replace(/\t/g, '⇥');
  const longest = Math.max(0, ...(flat.match(/`+/g) ?? []).map((r) => r.length));
  const fence = '`'.repeat(longest + 1);
  const pad = flat.startsWith('`') || flat.endsWith('`') || !flat.trim() ? ' ' : '';
  return `${fence}${pad}${flat || ' '}${pad}${fence}`;
}
