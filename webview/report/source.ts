// The report's source text: the analysed text cut at token boundaries, where the words a hovered
// token attends to light up in the editor's five strength levels and the token itself is
// outlined. Clicking a token shows it in the views. Text goes in through textContent only.

import type { SourceText, WireToken } from '../../src/protocol/attention';
import type { AttendedWord } from '../../src/analysis/words';
import { tokenAt } from '../../src/analysis/attended';
import { clear, el } from '../dom';

const LEVELS = 5;

export class SourcePane {
  /** Pieces of the text, in order, and their absolute ranges. */
  private readonly pieces: HTMLElement[] = [];
  private readonly starts: number[] = [];
  private readonly ends: number[] = [];
  /** Pieces marked now, with the class each got. */
  private lit: [HTMLElement, string][] = [];

  constructor(
    private readonly root: HTMLElement,
    text: SourceText,
    private readonly tokens: readonly WireToken[],
    pick: (token: number) => void,
  ) {
    const first = text.offset;
    const last = text.offset + text.text.length;
    const cuts = new Set([first, last]);
    for (const t of tokens) {
      if (t.special || t.start < 0) continue;
      cuts.add(Math.min(last, Math.max(first, t.start)));
      cuts.add(Math.min(last, Math.max(first, t.end)));
    }
    const sorted = [...cuts].sort((a, b) => a - b);
    clear(root);
    for (let i = 0; i + 1 < sorted.length; i++) {
      const [a, b] = [sorted[i], sorted[i + 1]];
      const token = tokenAt(tokens, a);
      const piece = el('span', { class: token >= 0 ? 'src-tok' : undefined, 'data-token': token >= 0 ? token : undefined, text: text.text.slice(a - first, b - first) });
      root.append(piece);
      this.pieces.push(piece);
      this.starts.push(a);
      this.ends.push(b);
    }
    root.addEventListener('click', (e) => {
      const piece = (e.target as HTMLElement).closest<HTMLElement>('[data-token]');
      if (piece) pick(Number(piece.dataset.token));
    });
  }

  /** Marks the words token `query` attends to (level by weight relative to the strongest, as the editor does) and outlines the token. */
  show(query: number, words: readonly AttendedWord[]): void {
    this.clear();
    const max = Math.max(...words.map((w) => w.weight), 1e-9);
    for (const w of words) {
      if (w.start < 0) continue; // special tokens have no place in the text
      const level = Math.min(LEVELS - 1, Math.max(0, Math.ceil((w.weight / max) * LEVELS) - 1));
      this.mark(w.start, w.end, `lvl${level + 1}`, `attention ${(w.weight * 100).toFixed(1)}%`);
    }
    const t = this.tokens[query];
    if (t && !t.special && t.start >= 0) this.mark(t.start, t.end, 'query')[0]?.scrollIntoView({ block: 'nearest' });
    this.root.dataset.query = String(query);
  }

  clear(): void {
    for (const [piece, cls] of this.lit) {
      piece.classList.remove(cls);
      piece.removeAttribute('title');
    }
    this.lit = [];
    delete this.root.dataset.query;
  }

  /** Adds `cls` to the pieces inside [start, end); returns them. */
  private mark(start: number, end: number, cls: string, title?: string): HTMLElement[] {
    const marked: HTMLElement[] = [];
    let lo = 0;
    let hi = this.starts.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.starts[mid] < start) lo = mid + 1;
      else hi = mid;
    }
    for (let i = lo; i < this.pieces.length && this.ends[i] <= end; i++) {
      const piece = this.pieces[i];
      piece.classList.add(cls);
      if (title) piece.title = title;
      this.lit.push([piece, cls]);
      marked.push(piece);
    }
    return marked;
  }
}
