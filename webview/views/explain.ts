// "Why this weight?": one cell of one head, computed again step by step with the model's own
// numbers (the host captures the head's query, keys and values: explain/request -> explain/data).
// A modal dialog over the view: q_i and k_j as colour strips, their product and dot product, the
// scale and the mask, the whole row's scores, softmax weights and value norms as bars, then the
// weighted sum of the values, the context vector. The row is recomputed here (explainMath.ts)
// and checked against the attention shown; the view says so only when it is true.
// ← → move the key j along the row from the same data; Escape closes and focus goes back.
// Fast at T = 512: the table of keys builds only the rows in and near its visible part (spacer rows
// stand for the others; aria-rowcount and aria-rowindex tell the whole row), and the heavy content
// is dropped when the dialog closes or waits for another row, so showModal lays out little.

import type { ExplainCell, Explanation } from '../../src/protocol/attention';
import type { ExplainDataMessage } from '../../src/protocol/webview';
import type { Theme } from '../theme';
import { el, clear, setText } from '../dom';
import { TOLERANCE, fmtDiff, fmtNum, isInverseSqrt, keyCount, recompute, type Recomputed } from '../explainMath';

/** Keys drawn as rows of α_ij v_j in the weighted sum (the heaviest ones, and j). */
const SUM_ROWS = 6;
/** Rows of the key table built beyond its visible part, above and below. */
const OVERSCAN = 10;
/** The key table's geometry before it was ever measured (px): a row, the header, the scroll box (26rem). */
const GUESS = { rowH: 18, headH: 22, viewH: 416 };

export interface ExplainHost {
  theme(): Theme;
  /** Ask the host for the head's computation of this row (it answers with explain/data). */
  request(runId: number, cell: ExplainCell): void;
  announce(text: string): void;
}

/** What was asked: the run's tokens as the panel shows them, and whether the panel renormalises rows (special tokens hidden). */
export interface ExplainTarget {
  runId: number;
  cell: ExplainCell;
  labels: readonly string[];
  renormalised: boolean;
  /** Why this head, when the panel showed an aggregate of heads. */
  note?: string;
}

/** The explanation of a row: the same for every key j, so ← → never ask again. */
interface Loaded {
  runId: number;
  explanation: Explanation;
  math: Recomputed;
}

const sameRow = (a: ExplainCell, b: ExplainCell): boolean => a.layer === b.layer && a.head === b.head && a.query === b.query;

/** One signed vector as a row of coloured cells (blue negative, red positive), its value in each cell's tooltip. */
class Strip {
  readonly root: HTMLElement;
  private readonly cells: HTMLElement;
  private readonly range: HTMLElement;
  private readonly who: HTMLElement | null;

  /** `caption`: what the strip is, written after it instead of its range of values. */
  constructor(readonly label: HTMLElement, private readonly name: string, caption?: string) {
    this.cells = el('div', { class: 'ex-cells', role: 'img' });
    this.range = el('span', { class: 'ex-range', hidden: caption !== undefined });
    this.who = caption === undefined ? null : el('span', { class: 'ex-who', text: caption });
    this.root = el('div', { class: 'ex-strip' }, el('span', { class: 'ex-label' }, label), this.cells, this.range, this.who);
  }

  /** A strip with a caption: a new one (the weighted sum's rows are reused from one key to the next). */
  caption(text: string): void {
    if (this.who) setText(this.who, text);
  }

  /** `scale`: the magnitude drawn at full colour (strips compared with each other share one). */
  set(values: ArrayLike<number>, scale: number, theme: Theme, what: string): void {
    const n = values.length;
    while (this.cells.childElementCount < n) this.cells.append(el('span', { class: 'ex-cell' }));
    while (this.cells.childElementCount > n) this.cells.lastChild!.remove();
    let lo = Infinity;
    let hi = -Infinity;
    for (let t = 0; t < n; t++) {
      const v = values[t];
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
      const c = this.cells.children[t] as HTMLElement;
      c.style.background = diverging(theme, scale > 0 ? v / scale : 0);
      const title = `${this.name}[${t}] = ${fmtNum(v)}`;
      if (c.title !== title) c.title = title;
    }
    setText(this.range, n ? `${fmtNum(lo)} … ${fmtNum(hi)}` : '');
    this.cells.setAttribute('aria-label', `${what}: ${n} numbers from ${fmtNum(lo)} to ${fmtNum(hi)}`);
  }
}

/** Compare's diverging palette (theme.diff) at x in [-1, 1], as CSS. */
function diverging(theme: Theme, x: number): string {
  const lut = theme.diff;
  const mid = (lut.length - 1) / 2;
  const p = lut[Math.round(mid + Math.max(-1, Math.min(1, x)) * mid)];
  return `rgb(${p & 255}, ${(p >>> 8) & 255}, ${(p >>> 16) & 255})`;
}

function maxAbs(values: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < values.length; i++) if (Math.abs(values[i]) > m) m = Math.abs(values[i]);
  return m;
}

const sub = (base: string, index: string): HTMLElement => el('span', { class: 'ex-sym' }, base, el('sub', { text: index }));

export class ExplainView {
  readonly root: HTMLDialogElement;
  private readonly title: HTMLElement;
  private readonly where: HTMLElement;
  private readonly position: HTMLElement;
  private readonly prev: HTMLButtonElement;
  private readonly next: HTMLButtonElement;
  private readonly closeButton: HTMLButtonElement;
  private readonly status: HTMLElement;
  private readonly content: HTMLElement;
  private readonly check: HTMLElement;
  private readonly intro: HTMLElement;
  private readonly maskNote: HTMLElement;
  private readonly strips: { q: Strip; k: Strip; qk: Strip; v: Strip; out: Strip };
  private readonly equation: HTMLElement;
  private readonly rowHead: HTMLElement;
  private readonly rowTable: HTMLTableElement;
  private readonly rowThead: HTMLTableSectionElement;
  private readonly rowBody: HTMLTableSectionElement;
  private readonly rowScroll: HTMLElement;
  /** Spacer rows standing for the keys above and below the rows built. */
  private readonly padTop: HTMLTableRowElement;
  private readonly padBottom: HTMLTableRowElement;
  private readonly normHead: HTMLElement;
  private readonly normNote: HTMLElement;
  private readonly sumRows: HTMLElement;
  private readonly sumNote: HTMLElement;
  /** The weighted sum's strips, reused from one key to the next. */
  private readonly sumStrips: Strip[] = [];

  private target: ExplainTarget | null = null;
  /** The key j on screen. */
  private key = 0;
  /** The request waiting for its explain/data. */
  private pending: { runId: number; cell: ExplainCell } | null = null;
  /** The last row explained (kept after closing: asking about another key of it needs no capture). */
  private loaded: Loaded | null = null;
  /** The explanation the table of keys shows (its scales), or null when it holds no rows. */
  private rowsFor: Loaded | null = null;
  private rowScale = { score: 0, weight: 1, norm: 1, keyWidth: '' };
  /** The keys [from, to) built as rows of the table, and those rows. */
  private win = { from: 0, to: 0 };
  private winRows: HTMLTableRowElement[] = [];
  /** The table's scrollTop as last set or seen (0 after its rows were dropped: the box was hidden). */
  private scrollPos = 0;
  /** A row's height, the header's and the scroll box's (px), measured once on screen and on scrolling. */
  private geom = { ...GUESS };
  private measured = false;
  private returnTo: HTMLElement | null = null;

  constructor(private readonly host: ExplainHost) {
    this.title = el('h2', { class: 'ex-title', id: 'explain-title' });
    this.where = el('span', { class: 'ex-where' });
    this.prev = el('button', { type: 'button', class: 'ex-step', 'aria-label': 'Previous key (←)', title: 'Previous key (←)', text: '‹' });
    this.next = el('button', { type: 'button', class: 'ex-step', 'aria-label': 'Next key (→)', title: 'Next key (→)', text: '›' });
    this.position = el('span', { class: 'ex-pos' });
    this.closeButton = el('button', { type: 'button', class: 'ex-close help-close', 'aria-label': 'Close Why this weight?', title: 'Close (Esc)', text: '×' });
    this.status = el('p', { class: 'ex-status', role: 'status' });
    this.check = el('div', { class: 'ex-check', role: 'status' });
    this.intro = el('p', { class: 'ex-text' });
    this.maskNote = el('p', { class: 'ex-text' });
    this.strips = {
      q: new Strip(sub('q', 'i'), 'q'),
      k: new Strip(sub('k', 'j'), 'k'),
      qk: new Strip(el('span', {}, sub('q', 'i'), '⊙', sub('k', 'j')), 'q⊙k'),
      v: new Strip(sub('v', 'j'), 'v'),
      out: new Strip(el('span', { class: 'ex-sym' }, 'output'), 'output'),
    };
    this.equation = el('p', { class: 'ex-eq' });
    this.normHead = el('th', { scope: 'col' });
    this.rowHead = el('tr', {}, el('th', { scope: 'col', text: 'Key' }), el('th', { scope: 'col', text: 'Score' }), el('th', { scope: 'col', text: 'Weight α' }), this.normHead);
    this.rowHead.setAttribute('aria-rowindex', '1');
    this.rowBody = el('tbody');
    this.rowThead = el('thead', {}, this.rowHead);
    this.rowTable = el('table', { class: 'ex-row' }, this.rowThead, this.rowBody);
    this.rowScroll = el('div', { class: 'ex-row-scroll', tabindex: 0, role: 'region', 'aria-label': 'Scores and weights of every key' }, this.rowTable);
    const pad = (): HTMLTableRowElement => el('tr', { class: 'ex-pad', 'aria-hidden': 'true' }, el('td', { colspan: 4 }));
    this.padTop = pad();
    this.padBottom = pad();
    this.normNote = el('p', { class: 'ex-text ex-small' });
    this.sumRows = el('div', { class: 'ex-sum' });
    this.sumNote = el('p', { class: 'ex-text ex-small' });

    const s = this.strips;
    const section = (cls: string, heading: string, ...children: Node[]): HTMLElement => el('section', { class: `ex-sec ${cls}` }, el('h3', { text: heading }), ...children);
    this.content = el(
      'div',
      { class: 'ex-content' },
      this.check,
      this.intro,
      el(
        'div',
        { class: 'ex-grid' },
        section(
          'ex-score',
          '1 · Score: how well the query matches the key',
          el('p', { class: 'ex-text', text: 'The score is the dot product of the query and the key: multiply them number by number (q⊙k) and add the products up. It is multiplied by the scale, usually 1/√d, so that scores do not grow with the size d of the vectors.' }),
          s.q.root,
          s.k.root,
          s.qk.root,
          this.equation,
          this.maskNote,
        ),
        section(
          'ex-softmax',
          '2 · Softmax: the row of scores becomes weights',
          el('p', { class: 'ex-text', text: 'Softmax takes e to the power of every score in the row and divides by their sum: the weights are positive and add up to 1, and a score a little above the others takes a much larger share. The weight α is the share of the key: the attention the panel shows.' }),
          this.rowScroll,
          this.normNote,
        ),
        section(
          'ex-sum-sec',
          '3 · Weighted sum: the context vector',
          el('p', { class: 'ex-text', text: "Each key also has a value v. The head's output for the query, its context vector, is the weighted sum Σⱼ αᵢⱼ vⱼ: every value scaled by its weight, then added up." }),
          s.v.root,
          this.sumRows,
          this.sumNote,
        ),
      ),
    );
    this.root = el(
      'dialog',
      { class: 'explain', id: 'explain', 'aria-labelledby': 'explain-title' },
      el(
        'div',
        { class: 'ex-head' },
        el('div', { class: 'ex-heading' }, this.title, this.where),
        el('span', { class: 'ex-nav', role: 'group', 'aria-label': 'Key' }, this.prev, this.position, this.next),
        this.closeButton,
      ),
      el('div', { class: 'ex-body' }, this.status, this.content),
    );
    this.closeButton.addEventListener('click', () => this.close());
    this.prev.addEventListener('click', () => this.step(-1));
    this.next.addEventListener('click', () => this.step(1));
    this.rowBody.addEventListener('click', (e) => {
      const tr = (e.target as HTMLElement).closest<HTMLElement>('tr[data-key]');
      if (tr) this.setKey(Number(tr.dataset.key), true);
    });
    this.rowScroll.addEventListener('scroll', () => this.onRowScroll(), { passive: true });
    this.root.addEventListener('keydown', (e) => this.onKey(e));
    // Escape as the browser's own close request: close our way (focus goes back).
    this.root.addEventListener('cancel', (e) => {
      e.preventDefault();
      this.close();
    });
  }

  get isOpen(): boolean {
    return this.root.open;
  }

  /** Shows cell `t.cell`, from the row already loaded when it is the same, else asking the host. */
  open(t: ExplainTarget): void {
    this.target = t;
    this.key = t.cell.key;
    const l = this.loaded;
    if (l && l.runId === t.runId && sameRow(l.explanation.cell, t.cell) && keyCount(l.explanation) === t.labels.length) this.pending = null;
    else {
      this.loaded = null;
      this.pending = { runId: t.runId, cell: t.cell };
      this.host.request(t.runId, t.cell);
      // Another row: its content goes before the dialog shows (showModal then lays out only the head).
      this.content.hidden = true;
      this.dropRows();
    }
    if (!this.isOpen) {
      const active = document.activeElement;
      this.returnTo = active instanceof HTMLElement && active !== document.body ? active : null;
      this.root.showModal();
    }
    this.render();
    this.closeButton.focus();
  }

  /** The host's answer: shown when it is the one awaited, dropped when stale. */
  receive(m: ExplainDataMessage): void {
    const p = this.pending;
    if (!p || p.runId !== m.runId || !sameRow(p.cell, m.cell)) return;
    this.pending = null;
    const t = this.target;
    if (m.error !== undefined || !m.explanation) {
      this.showStatus(m.error ?? 'No explanation came back.', true);
      return;
    }
    const e = m.explanation;
    if (!sameRow(e.cell, p.cell) || !t || keyCount(e) !== t.labels.length) {
      this.showStatus(`The explanation does not fit this run (${keyCount(e)} keys for ${t?.labels.length ?? 0} tokens).`, true);
      return;
    }
    this.loaded = { runId: m.runId, explanation: e, math: recompute(e) };
    if (!this.isOpen) return; // kept for when the same row is asked again
    this.render();
    this.host.announce(this.check.textContent ?? '');
  }

  close(): void {
    if (!this.isOpen) return;
    this.root.close();
    // The next open starts light: the table's rows and the weighted sum are built again from `loaded`.
    this.dropRows();
    const back = this.returnTo;
    this.returnTo = null;
    if (back?.isConnected) back.focus();
  }

  /** Repaints (a theme change recolours the strips). */
  render(): void {
    const t = this.target;
    if (!t || !this.isOpen) return;
    this.renderTitle();
    const l = this.loaded;
    this.root.dataset.state = l ? 'ready' : this.pending ? 'loading' : 'error';
    if (!l) {
      if (this.pending) this.showStatus('Capturing queries, keys and values…', false);
      return;
    }
    this.status.hidden = true;
    this.content.hidden = false;
    this.renderCheck(l, t);
    this.renderIntro(l, t);
    if (this.rowsFor !== l) this.prepareRows(l, t);
    this.renderKey(l, t);
  }

  /** Empties the table of keys and the weighted sum (the dialog closes or waits for another row). */
  private dropRows(): void {
    this.rowsFor = null;
    this.rowBody.replaceChildren();
    this.winRows = [];
    this.win = { from: 0, to: 0 };
    this.scrollPos = 0;
    this.sumRows.replaceChildren();
  }

  private showStatus(text: string, error: boolean): void {
    this.root.dataset.state = error ? 'error' : 'loading';
    this.status.hidden = false;
    this.status.classList.toggle('error', error);
    this.status.setAttribute('role', error ? 'alert' : 'status');
    setText(this.status, text);
    this.content.hidden = true;
    this.dropRows();
    this.prev.disabled = this.next.disabled = true;
  }

  private renderTitle(): void {
    const t = this.target!;
    const { layer, head, query } = t.cell;
    setText(this.title, `Why does “${t.labels[query]}” attend to “${t.labels[this.key]}”?`);
    const kv = this.loaded && this.loaded.explanation.kvHead !== head ? ` (keys and values of KV head ${this.loaded.explanation.kvHead + 1})` : '';
    setText(this.where, `Layer ${layer + 1}, head ${head + 1}${kv}`);
    const T = t.labels.length;
    setText(this.position, `key ${this.key + 1} of ${T}`);
    const ready = this.loaded !== null;
    this.prev.disabled = !ready || this.key === 0;
    this.next.disabled = !ready || this.key === T - 1;
  }

  /** The check line: what was recomputed and whether it matches, in so many words either way. */
  private renderCheck(l: Loaded, t: ExplainTarget): void {
    const m = l.math;
    clear(this.check);
    const row = m.rowMatches
      ? `✓ Recomputed here from the captured vectors, softmax(scale · q·k) equals the attention shown for every key: largest difference ${fmtDiff(m.rowDiff)} (within ${fmtDiff(TOLERANCE)}).`
      : `✗ The recomputed weights do NOT match the attention shown: largest difference ${fmtDiff(m.rowDiff)}${m.rowDiffAt >= 0 ? ` at “${t.labels[m.rowDiffAt]}”` : ''} (more than ${fmtDiff(TOLERANCE)}). The numbers below are the recomputed ones.`;
    const out = m.outMatches
      ? `✓ The weighted sum of the values equals the head's output in the model (largest difference ${fmtDiff(m.outDiff)}).`
      : `✗ The weighted sum of the values does NOT match the head's output in the model (largest relative difference ${fmtDiff(m.outDiff)}).`;
    this.check.append(el('p', { class: m.rowMatches ? 'ok' : 'bad', 'data-check': 'row', text: row }), el('p', { class: m.outMatches ? 'ok' : 'bad', 'data-check': 'out', text: out }));
    this.root.dataset.check = m.rowMatches && m.outMatches ? 'match' : 'mismatch';
  }

  private renderIntro(l: Loaded, t: ExplainTarget): void {
    const e = l.explanation;
    const q = t.labels[t.cell.query];
    setText(
      this.intro,
      `This head turns every token into a query q, a key k and a value v, ${e.dim} numbers each. The query of “${q}” is compared with the key of every token, and the better they match, the more “${q}” takes from that token's value. Hover a coloured cell for its number; ← → move to another key.` +
        (t.renormalised ? ' (The panel hides special tokens and rescales the rest to sum to 1; here are the model’s own weights.)' : '') +
        (t.note ? ` ${t.note}` : ''),
    );
    const hidden = e.visible.length - e.visible.reduce((s, v) => s + (v ? 1 : 0), 0);
    setText(
      this.maskNote,
      e.mask === 'causal'
        ? `Mask: causal. “${q}” may look only at itself and the tokens before it; the mask adds −∞ to the score of the ${hidden} later token${hidden === 1 ? '' : 's'}, so their weight is 0.`
        : e.mask === 'custom'
          ? `Mask: this model's own (padding and the like) adds −∞ to ${hidden} of the ${e.visible.length} keys, so their weight is 0.`
          : 'Mask: none. Every key is visible, so the mask adds 0.',
    );
    setText(this.normHead, e.valueNormKind === 'output-projected' ? '‖α v W_O‖' : '‖α v‖');
    setText(
      this.normNote,
      e.valueNormKind === 'output-projected'
        ? '‖α v W_O‖: how much each key really adds to the head’s output, its weight times its value after the output projection (value-weighted attention). A large weight on a small value adds little.'
        : '‖α v‖: how much each key really adds, its weight times the size of its value (value-weighted attention; the output projection was not captured). A large weight on a small value adds little.',
    );
  }

  /** The row's scales and the table's size, once per explanation (the rows themselves are built as they come into view). */
  private prepareRows(l: Loaded, t: ExplainTarget): void {
    const e = l.explanation;
    const m = l.math;
    this.dropRows();
    this.rowsFor = l;
    let sMax = 0;
    let wMax = 0;
    let longest = 0;
    for (let j = 0; j < m.scores.length; j++) {
      if (e.visible[j]) sMax = Math.max(sMax, Math.abs(m.scores[j]));
      wMax = Math.max(wMax, m.weights[j]);
      longest = Math.max(longest, t.labels[j].length);
    }
    // Every row's token cell as wide as the longest token's (the key column keeps its width while rows come and go).
    this.rowScale = { score: sMax, weight: wMax || 1, norm: maxAbs(e.valueNorm) || 1, keyWidth: `calc(${Math.min(longest, 24)}ch + 1.1em)` };
    this.rowTable.setAttribute('aria-rowcount', String(m.scores.length + 1));
  }

  /** Key j's row of the table: its token (j marked), score, weight and value norm, each a bar and a number. */
  private keyRow(l: Loaded, t: ExplainTarget, j: number): HTMLTableRowElement {
    const e = l.explanation;
    const m = l.math;
    const sc = this.rowScale;
    const bar = (frac: number, signed: boolean, value: string): HTMLElement => {
      const fill = el('span', { class: 'fill' });
      const w = Math.min(1, Math.abs(frac));
      if (signed) {
        fill.style.left = `${frac < 0 ? 50 - w * 50 : 50}%`;
        fill.style.width = `${w * 50}%`;
      } else fill.style.width = `${w * 100}%`;
      return el('td', {}, el('span', { class: `ex-bar${signed ? ' signed' : ''}` }, fill), el('span', { class: 'ex-val', text: value }));
    };
    const masked = !e.visible[j];
    const sel = j === this.key;
    const tok = el('th', { scope: 'row', class: 'ex-tok', title: `Key ${j + 1}` }, el('span', { class: 'ex-mark', 'aria-hidden': 'true', text: '▶' }), t.labels[j]);
    tok.style.width = sc.keyWidth;
    const tr = el(
      'tr',
      { 'data-key': j, class: `${masked ? 'masked' : ''}${sel ? ' sel' : ''}`, 'aria-rowindex': j + 2, 'aria-current': sel ? 'true' : 'false' },
      tok,
      masked ? el('td', {}, el('span', { class: 'ex-bar signed' }), el('span', { class: 'ex-val', text: '−∞' })) : bar(sc.score ? m.scores[j] / sc.score : 0, true, fmtNum(m.scores[j])),
      bar(m.weights[j] / sc.weight, false, fmtNum(m.weights[j])),
      bar(e.valueNorm[j] / sc.norm, false, fmtNum(e.valueNorm[j])),
    );
    tr.cells[2].title = `shown ${fmtNum(e.shown[j])}, recomputed ${fmtNum(m.weights[j])}`;
    return tr;
  }

  /**
   * Builds the rows that scroll position `s` shows, with OVERSCAN more on either side, unless those
   * built already cover it with some to spare; spacer rows hold the height of the others.
   */
  private fillWindow(l: Loaded, t: ExplainTarget, s: number, force = false): void {
    const T = l.math.scores.length;
    const { rowH, viewH } = this.geom;
    const first = Math.max(0, Math.floor(s / rowH));
    const last = Math.min(T, Math.ceil((s + viewH) / rowH));
    const { from, to } = this.win;
    const margin = OVERSCAN / 3;
    if (!force && to > from && first >= (from > 0 ? from + margin : 0) && last <= (to < T ? to - margin : T)) return;
    const a = Math.max(0, first - OVERSCAN);
    const b = Math.min(T, last + OVERSCAN);
    // The rows still in the new window are kept; the others are built (one fragment each side).
    const kept = new Map<number, HTMLTableRowElement>();
    if (!force) for (const tr of this.winRows) if (Number(tr.dataset.key) >= a && Number(tr.dataset.key) < b) kept.set(Number(tr.dataset.key), tr);
    const rows: HTMLTableRowElement[] = [];
    for (let j = a; j < b; j++) rows.push(kept.get(j) ?? this.keyRow(l, t, j));
    this.padTop.style.height = `${a * rowH}px`;
    this.padBottom.style.height = `${(T - b) * rowH}px`;
    const frag = document.createDocumentFragment();
    if (a > 0) frag.append(this.padTop);
    frag.append(...rows);
    if (b < T) frag.append(this.padBottom);
    this.rowBody.replaceChildren(frag);
    this.winRows = rows;
    this.win = { from: a, to: b };
  }

  /** The table's geometry read from the rows on screen (a layout when it is not fresh). */
  private measure(): boolean {
    const rows = this.winRows;
    if (!rows.length) return false;
    const first = rows[0];
    const last = rows[rows.length - 1];
    const rowH = rows.length > 1 ? (last.offsetTop - first.offsetTop) / (rows.length - 1) : first.offsetHeight;
    const viewH = this.rowScroll.clientHeight;
    if (!(rowH > 0) || !(viewH > 0)) return false;
    const changed = Math.abs(rowH - this.geom.rowH) > 0.01;
    this.geom = { rowH, headH: this.rowThead.offsetHeight, viewH };
    this.measured = true;
    return changed;
  }

  /** Scrolls the table as little as needed for key j's row to show below the header (and builds the rows there). */
  private showKeyRow(l: Loaded, t: ExplainTarget): void {
    const T = l.math.scores.length;
    const target = (): number => {
      const { rowH, headH, viewH } = this.geom;
      const inner = Math.max(rowH, viewH - headH);
      const top = this.key * rowH;
      let s = this.scrollPos;
      if (top < s) s = top;
      else if (top + rowH > s + inner) s = top + rowH - inner;
      return Math.max(0, Math.min(s, T * rowH + headH - viewH));
    };
    if (!this.measured) {
      // Once: the rows around j built with guessed sizes, then measured (the dialog holds few rows, so this layout is short).
      this.fillWindow(l, t, target());
      if (this.measure()) this.fillWindow(l, t, target(), true);
    }
    const s = target();
    this.fillWindow(l, t, s);
    for (const tr of this.winRows) {
      const sel = tr.dataset.key === String(this.key);
      if (tr.classList.contains('sel') !== sel) {
        tr.classList.toggle('sel', sel);
        tr.setAttribute('aria-current', sel ? 'true' : 'false');
      }
    }
    // Last, after every change to the dialog: setting scrollTop lays it out once, with the rows built.
    if (s !== this.scrollPos) {
      this.scrollPos = s;
      this.rowScroll.scrollTop = s;
    }
  }

  /** The user scrolls the table: the rows that come into view are built. */
  private onRowScroll(): void {
    const l = this.rowsFor;
    const t = this.target;
    if (!l || !t || !this.isOpen) return;
    this.scrollPos = this.rowScroll.scrollTop;
    const resized = this.measure();
    this.fillWindow(l, t, this.scrollPos, resized);
  }

  /** Everything about key j: its strips, the equation, its mark in the row, its share of the sum. */
  private renderKey(l: Loaded, t: ExplainTarget): void {
    const e = l.explanation;
    const m = l.math;
    const j = this.key;
    const d = e.dim;
    const theme = this.host.theme();
    const kj = e.k.subarray(j * d, (j + 1) * d);
    const vj = e.v.subarray(j * d, (j + 1) * d);
    const prod = new Float64Array(d);
    for (let x = 0; x < d; x++) prod[x] = e.q[x] * kj[x];
    const qkScale = Math.max(maxAbs(e.q), maxAbs(kj));
    const q = t.labels[t.cell.query];
    const k = t.labels[j];
    this.strips.q.set(e.q, qkScale, theme, `Query of “${q}”`);
    this.strips.k.set(kj, qkScale, theme, `Key of “${k}”`);
    this.strips.qk.set(prod, maxAbs(prod), theme, 'Elementwise product');

    const masked = !e.visible[j];
    const scaleName = isInverseSqrt(e.scale, d) ? `1/√${d}` : `the model's own; 1/√${d} would be ${fmtNum(1 / Math.sqrt(d))}`;
    const term = (label: string, value: string, cls = ''): HTMLElement => el('span', { class: `ex-term ${cls}` }, el('span', { class: 'ex-term-label', text: label }), el('span', { class: 'ex-term-val', text: value }));
    clear(this.equation);
    this.equation.append(
      term('dot product q·k = Σ q⊙k', fmtNum(m.dots[j])),
      ' × ',
      term(`scale (${scaleName})`, fmtNum(e.scale)),
      ' + ',
      term(masked ? 'mask (hidden key)' : 'mask', masked ? '−∞' : '0'),
      ' = ',
      term('score', fmtNum(m.scores[j]), 'score'),
      ' → softmax → ',
      term('weight α', fmtNum(m.weights[j]), 'weight'),
    );

    // The weighted sum: j and the heaviest keys as rows α_ij v_j on one colour scale, then their total.
    const order = Array.from(m.weights.keys()).sort((a, b) => m.weights[b] - m.weights[a]);
    const shownKeys = order.slice(0, SUM_ROWS).filter((x) => m.weights[x] > 0);
    if (!shownKeys.includes(j)) shownKeys.push(j);
    shownKeys.sort((a, b) => a - b);
    const rows = shownKeys.map((x) => {
      const r = new Float64Array(d);
      for (let y = 0; y < d; y++) r[y] = m.weights[x] * e.v[x * d + y];
      return r;
    });
    const sumScale = Math.max(maxAbs(m.out), ...rows.map(maxAbs));
    this.strips.v.set(vj, maxAbs(vj), theme, `Value of “${k}”`);
    const shownSet = new Set(shownKeys);
    const children: Node[] = shownKeys.map((x, i) => {
      const strip = (this.sumStrips[i] ??= new Strip(el('span', { class: 'ex-sym' }), 'α·v', ''));
      setText(strip.label, `${fmtNum(m.weights[x])} ×`);
      strip.caption(`v of “${t.labels[x]}”`);
      strip.root.classList.toggle('sel', x === j);
      strip.set(rows[i], sumScale, theme, `Value of “${t.labels[x]}” times its weight ${fmtNum(m.weights[x])}`);
      return strip.root;
    });
    let rest = 0;
    let restWeight = 0;
    m.weights.forEach((w, x) => {
      if (w > 0 && !shownSet.has(x)) {
        rest++;
        restWeight += w;
      }
    });
    if (rest > 0) children.push(el('p', { class: 'ex-text ex-small', text: `+ ${rest} more key${rest === 1 ? '' : 's'} with ${fmtNum(restWeight)} of the weight in all` }));
    this.strips.out.set(m.out, sumScale, theme, `The head's output for “${q}”`);
    children.push(this.strips.out.root);
    this.sumRows.replaceChildren(...children);
    setText(this.sumNote, `= the context vector of “${q}” for this head (${d} numbers; the rows above share its colour scale). The model then mixes every head's output with W_O and adds it to the token's vector.`);
    // Last: scrolling the table to j lays the dialog out, after every other change.
    this.showKeyRow(l, t);
  }

  private setKey(j: number, announce: boolean): void {
    const t = this.target;
    const l = this.loaded;
    if (!t || !l || !(j >= 0 && j < t.labels.length) || j === this.key) return;
    this.key = j;
    this.renderTitle();
    this.renderKey(l, t);
    if (announce) this.host.announce(`Key “${t.labels[j]}”: score ${fmtNum(l.math.scores[j])}, weight ${fmtNum(l.math.weights[j])}`);
  }

  private step(delta: number): void {
    this.setKey(this.key + delta, true);
  }

  private onKey(e: KeyboardEvent): void {
    if (e.altKey || e.ctrlKey || e.metaKey) return;
    const T = this.target?.labels.length ?? 0;
    switch (e.key) {
      case 'Escape':
        e.preventDefault();
        e.stopPropagation();
        this.close();
        return;
      case 'ArrowLeft':
      case 'ArrowRight':
        e.preventDefault();
        this.step(e.key === 'ArrowRight' ? 1 : -1);
        return;
      case 'Home':
      case 'End':
        e.preventDefault();
        this.setKey(e.key === 'Home' ? 0 : T - 1, true);
        return;
      case 'Tab': {
        // Focus stays in the dialog: Tab and Shift+Tab cycle through its enabled controls.
        const stops = [...this.root.querySelectorAll<HTMLElement>('button:not(:disabled), [tabindex="0"]')].filter((x) => x.offsetParent !== null);
        if (!stops.length) return;
        const i = stops.indexOf(document.activeElement as HTMLElement);
        e.preventDefault();
        stops[e.shiftKey ? (i <= 0 ? stops.length - 1 : i - 1) : (i + 1) % stops.length].focus();
        return;
      }
    }
  }
}
