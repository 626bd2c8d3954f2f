// The side box next to the head and matrix views: the words the active token attends to most
// (or, for a key, is attended by), sub-word pieces merged, with bars scaled to the top one. Each
// word has a "Why?" button: "Why this weight?" for the active token and the word's heaviest piece.
// A long run: a query's words come from its rows over the whole run, which the host sends after
// each hover (until then the box says it is computing them); a key's, from its column within the
// window the views show (the only part of a column the panel has).

import { renormalizeRow, topAttended, type AttendedWord } from '../src/analysis';
import type { Aggregation } from '../src/protocol/attention';
import type { TokenRef, ViewContext } from './context';
import { el, setText, fmtWeight } from './dom';
import { tokenWeights } from './weights';
import { isDiff } from './compare';
import type { RunData } from './store';
import type { WindowRun } from './longWindow';
import { setOff, whyRefusal } from './longView';

/** What the side list reads of a long run beyond its context. */
export interface LongSource {
  /** What to say while token `q`'s rows have not come: computing them, or why there are none. */
  rowsNote(q: number): string;
  /** The window the Heads and Matrix views show (a key's column is read inside it). */
  window(): WindowRun | null;
}

const TOP_K = 8;
const IDLE_TITLE = 'Top attended words';
const IDLE_HINT = 'Hover or select a token to see the words it attends to most (sub-word pieces merged, weights summed).';

export class SideList {
  readonly root: HTMLElement;
  private readonly title: HTMLElement;
  private readonly hint: HTMLElement;
  private readonly list: HTMLOListElement;
  /** What was last announced, so a repaint does not repeat it. */
  private lastSpoken = '';

  constructor(
    private readonly ctx: ViewContext,
    private readonly long?: LongSource,
  ) {
    this.title = el('h2', { class: 'side-title', text: IDLE_TITLE });
    this.hint = el('p', { class: 'side-hint', text: IDLE_HINT });
    this.list = el('ol', { class: 'top-words', 'aria-label': 'Top attended words' });
    this.root = el('aside', { class: 'side', 'aria-label': 'Top attended words' }, this.title, this.hint, this.list);
    this.list.addEventListener('click', (e) => {
      const b = (e.target as HTMLElement).closest<HTMLElement>('button.why');
      if (b) this.ctx.explain(Number(b.dataset.query), Number(b.dataset.key));
    });
  }

  /** Repaints for the active token; `keyboard`: it was reached by keyboard (not a pointer hover). */
  render(keyboard: boolean): void {
    const run = this.ctx.run;
    const ui = this.ctx.ui;
    if (!run || this.root.hidden) return;
    const a = this.ctx.active();
    let top: AttendedWord[] = [];
    let w: Float32Array | null = null;
    if (a) {
      const aggs = ui.view === 'head' ? ui.selected : [ui.agg];
      let longState = '';
      if (run.long) {
        const got = this.longWeights(run, a, aggs.filter((x) => x !== 'rollout'));
        w = got.w;
        longState = got.note;
      } else w = tokenWeights((l, agg) => this.ctx.matrix(l, agg), ui.layer, aggs, a, run.T, new Float32Array(run.T));
      const diff = isDiff(run);
      if (w) top = diff ? topChanges(w, run, TOP_K) : topAttended(w, run.tokens, run.words, TOP_K);
      const tokenText = run.display[a.index];
      const sel = ui.view === 'head' ? ui.selected.map((x) => run.label(x)).join(' + ') : run.label(ui.agg);
      if (diff) setText(this.title, a.side === 'q' ? `What “${tokenText}” attends to: largest changes` : `Attention to “${tokenText}”: largest changes`);
      else setText(this.title, a.side === 'q' ? `“${tokenText}” attends to` : `Attending to “${tokenText}”`);
      const gap = diff ? run.gap(a.index) : null;
      const state = longState ? ` · ${longState}` : gap === 'inserted' ? ' · not in baseline' : gap === 'deleted' ? ' · deleted since baseline' : w ? (diff ? ' · now − baseline, by token' : '') : ' · waiting for data';
      setText(this.hint, `Token ${a.index + 1} of ${run.T} · layer ${ui.layer + 1} · ${sel}${this.ctx.pinned ? ' · pinned (Esc clears)' : ''}${state}`);
    } else {
      setText(this.title, IDLE_TITLE);
      setText(this.hint, IDLE_HINT);
    }
    this.root.dataset.token = a ? String(a.index) : '';
    // Keyboard users hear the token and its top words (pointer hovers stay quiet).
    if (a && keyboard && ui.view === 'head') {
      const key = `${a.index}:${a.side}:${ui.layer}:${ui.selected.join(',')}:${top.length}`;
      if (key !== this.lastSpoken) {
        this.lastSpoken = key;
        const words = top.slice(0, 3).map((t) => `${t.text} ${fmtWeight(t.weight)}`).join(', ');
        this.ctx.announce(`${this.title.textContent ?? ''}: ${words || 'no data yet'}`);
      }
    }
    this.fill(top, isDiff(run), w && a && this.ctx.canExplain() ? { w, a } : null, whyRefusal(run));
  }

  /**
   * A long run's weights for the active token over the whole run (length T), averaged over `aggs`:
   * a query's rows as the host sent them, a key's column within the window; with what to say of them.
   */
  private longWeights(run: RunData, a: TokenRef, aggs: readonly Aggregation[]): { w: Float32Array | null; note: string } {
    const layer = this.ctx.ui.layer;
    if (aggs.length === 0) return { w: null, note: run.longRefusal({ agg: 'rollout' }) ?? '' };
    const w = new Float32Array(run.T);
    if (a.side === 'q') {
      for (const agg of aggs) {
        const row = run.longRow(layer, a.index, agg as number | 'mean');
        if (!row) return { w: null, note: this.long?.rowsNote(a.index) ?? 'Computing this token’s rows…' };
        for (let j = 0; j < row.length; j++) w[j] += row[j] / aggs.length;
      }
      if (run.hideSpecial) renormalizeRow(w, run.keep);
      return { w, note: '' };
    }
    const win = this.long?.window();
    const k = win ? win.local(a.index) : -1;
    if (!win || k < 0) return { w: null, note: 'a key’s column is read within the window' };
    const n = win.n;
    for (const agg of aggs) {
      const m = win.matrix(layer, agg);
      if (!m) return { w: null, note: win.waitingFor(layer) ?? 'waiting for the window' };
      for (let i = 0; i < n; i++) w[win.global(i)] += m[i * n + k] / aggs.length;
    }
    return { w, note: `queries of the window only (${win.range.replace(/^Tokens/, 'tokens')})` };
  }

  /**
   * Writes the list, reusing its items; `why`: the weights and the token they belong to, when "Why?"
   * can explain them; `refusal`: why it cannot on this run (the buttons stay, disabled, saying why).
   */
  private fill(top: AttendedWord[], signed: boolean, why: { w: Float32Array; a: TokenRef } | null, refusal: string | null = null): void {
    const items = this.list.children;
    while (items.length < top.length) {
      const word = el('span', { class: 'word' });
      const bar = el('span', { class: 'bar' }, el('span', { class: 'fill' }));
      const val = el('span', { class: 'val' });
      const button = el('button', { type: 'button', class: 'why', text: 'Why?' });
      this.list.append(el('li', {}, word, bar, val, button));
    }
    const run = this.ctx.run!;
    const max = top.length ? Math.abs(top[0].weight) : 1;
    for (let i = 0; i < items.length; i++) {
      const li = items[i] as HTMLElement;
      if (i >= top.length) {
        li.hidden = true;
        continue;
      }
      li.hidden = false;
      const t = top[i];
      setText(li.children[0], t.text);
      (li.children[1].firstChild as HTMLElement).style.width = `${Math.round((Math.abs(t.weight) / max) * 100)}%`;
      li.classList.toggle('less', signed && t.weight < 0);
      li.classList.toggle('more', signed && t.weight > 0);
      setText(li.children[2], signed ? `${t.weight < 0 ? '−' : '+'}${fmtWeight(Math.abs(t.weight))}` : fmtWeight(t.weight));
      li.title = t.start >= 0 ? `characters ${t.start}–${t.end}` : 'special token or a token the model wrote';
      const button = li.children[3] as HTMLButtonElement;
      setOff(button, refusal !== null);
      if (refusal) {
        button.hidden = false;
        button.title = refusal;
        button.setAttribute('aria-label', refusal);
        continue;
      }
      const other = why ? heaviestPiece(t, why.w, run) : -1;
      button.hidden = other < 0;
      if (why && other >= 0) {
        const [q, k] = why.a.side === 'q' ? [why.a.index, other] : [other, why.a.index];
        button.dataset.query = String(q);
        button.dataset.key = String(k);
        const label = `Why does “${run.display[q]}” attend to “${run.display[k]}”?`;
        button.setAttribute('aria-label', label);
        button.title = label;
      }
    }
  }
}

/** The token of word `t` with the most weight in `w` (a word of sub-word pieces has several), or -1. */
function heaviestPiece(t: AttendedWord, w: Float32Array, run: RunData): number {
  let best = -1;
  // Words are matched by their text and range: two special tokens can share both, and then the heavier one wins.
  for (const word of run.words.words) {
    if (word.start !== t.start || word.end !== t.end || word.text !== t.text) continue;
    for (let i = word.first; i <= word.last; i++) if (best < 0 || w[i] > w[best]) best = i;
  }
  return best;
}

/** The `k` tokens whose weight changed most (Compare: `w` is signed, NaN for gaps), largest magnitude first. */
function topChanges(w: Float32Array, run: RunData, k: number): AttendedWord[] {
  const idx: number[] = [];
  for (const i of run.vis) if (Math.abs(w[i]) > 0) idx.push(i);
  idx.sort((x, y) => Math.abs(w[y]) - Math.abs(w[x]) || x - y);
  return idx.slice(0, k).map((i) => ({ text: run.display[i], start: run.tokens[i].start, end: run.tokens[i].end, weight: w[i] }));
}
