// Hover inside the analysed range: the hovered token's top-attended words for the panel's current
// layer and head (or mean), with weights, a link that focuses the token in the panel, and one that
// explains the top word's weight there ("Why this weight?").
import * as vscode from 'vscode';
import type { RunState } from './runState';
import { cleanTokenText } from '../analysis/words';

export class AttentionHoverProvider implements vscode.HoverProvider {
  constructor(
    private readonly state: () => RunState | null,
    private readonly topWords: () => number,
  ) {}

  provideHover(document: vscode.TextDocument, position: vscode.Position): vscode.Hover | null | Promise<vscode.Hover | null> {
    const run = this.state();
    if (!run || !run.matches(document)) return null;
    const offset = document.offsetAt(position);
    if (run.encoder) return this.sourceHover(run, run.encoder, document, offset);
    const q = run.tokenAtOffset(offset);
    if (q < 0) return null;
    // A long run computes the token's rows first (a pass over the model's key/value cache, tens of ms).
    if (run.rows && !run.longRefusal(run.view) && !run.hasRows(q)) return run.rows.want(q).then(() => (run.matches(document) ? this.tokenHover(run, document, q) : null));
    return this.tokenHover(run, document, q);
  }

  private tokenHover(run: RunState, document: vscode.TextDocument, q: number): vscode.Hover {
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
      const waiting = run.long
        ? run.longRefusal(run.view) ?? `The rows of this token could not be computed${run.rows?.lastError ? `: ${run.rows.lastError}` : ''}.`
        : run.view.weights === 'value' && !run.values
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
    // Under rollout no single head's softmax makes the weight: nothing to explain (nor on a long run, which keeps no queries, keys and values).
    const key = words?.length && !run.long ? run.topKey(q) : -1;
    if (key >= 0) {
      const explain = encodeURIComponent(JSON.stringify([{ runId: run.runId, query: q, key }]));
      md.appendMarkdown(` · [Why this weight?](command:attentionLens.explain?${explain} "How the head computes the top word's weight, in the Attention Lens panel")`);
    }
    const range = new vscode.Range(document.positionAt(token.start), document.positionAt(token.end));
    return new vscode.Hover(md, range);
  }

  /**
   * An encoder-decoder run's source, in the editor: the target tokens that attend most to the
   * hovered source token (cross-attention), or with the panel on the encoder, the source words it
   * attends to.
   */
  private sourceHover(run: RunState, enc: NonNullable<RunState['encoder']>, document: vscode.TextDocument, offset: number): vscode.Hover | null {
    const s = enc.tokenAtOffset(offset);
    if (s < 0) return null;
    const token = enc.tokens[s];
    const focus = run.view;
    const md = new vscode.MarkdownString(undefined, true);
    md.supportHtml = false;
    const source = document.getText(new vscode.Range(document.positionAt(token.start), document.positionAt(token.end)));
    if (focus.part === 'encoder') {
      md.appendMarkdown(`**Attention Lens** · encoder ${enc.describe(focus)}\n\nSource token ${inlineCode(visibleText(source || token.text))}`);
      const words = enc.attended(s, this.topWords(), focus);
      if (!words) md.appendMarkdown('\n\nThe encoder\'s attention of this layer is still arriving…');
      else md.appendMarkdown(' attends most to:\n\n' + words.map((w) => `- ${(w.weight * 100).toFixed(1)}% ${inlineCode(visibleText(w.text))}`).join('\n'));
    } else {
      const layer = { ...focus, agg: focus.agg === 'rollout' ? ('mean' as const) : focus.agg };
      md.appendMarkdown(`**Attention Lens** · ${run.describe(layer)}, cross-attention\n\nSource token ${inlineCode(visibleText(source || token.text))}`);
      const targets = run.crossTargets(s, this.topWords(), layer);
      if (!targets) md.appendMarkdown('\n\nThe cross-attention of this layer is still arriving…');
      else if (!targets.length) md.appendMarkdown(' gets no attention from the target here.');
      else {
        md.appendMarkdown(' is attended most by the target tokens:\n\n');
        md.appendMarkdown(targets.map((t) => `- ${(t.weight * 100).toFixed(1)}% ${inlineCode(visibleText(targetText(run.tokens[t.index])))} (target token ${t.index + 1})`).join('\n'));
      }
    }
    return new vscode.Hover(md, new vscode.Range(document.positionAt(token.start), document.positionAt(token.end)));
  }
}

/** A target token as written: its spelling without the tokenizer's word marks. */
function targetText(t: { text: string; special: boolean }): string {
  return t.special ? t.text : cleanTokenText(t.text).trim() || t.text;
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
