// Head view: tokens in two columns (queries left, keys right) joined by lines whose opacity is the
// attention weight, for the focused layer and any set of heads (toggle chips, one colour each),
// the mean of heads or rollout. Lines go on one canvas (headLines.ts). The token columns are
// virtualised: only rows in the viewport exist in the DOM. A long run's tokens are a window of it
// (its run a WindowRun): moving the cursor past the window's edge moves the window.

import type { View, ViewContext, TokenRef } from '../context';
import { parseAggregation, type Aggregation } from '../../src/protocol/attention';
import { el, clear, setText, fmtWeight } from '../dom';
import { Coalesced } from '../tasks';
import { tokenWeights } from '../weights';
import { DENSE_T, IDLE_MIN, LinePainter, ROW_H } from './headLines';
import { diffScale, isDiff, maxChange } from '../compare';
import { isWindow } from '../longWindow';
import { setOff } from '../longView';

const OVERSCAN = 6;

interface Slot {
  q: HTMLElement;
  k: HTMLElement;
  /** What each element last showed (see layoutRows); '' forces an update. */
  keys: { q: string; k: string };
}

export class HeadView implements View {
  readonly root: HTMLElement;
  private readonly chips: HTMLElement;
  private readonly scroller: HTMLElement;
  private readonly spacer: HTMLElement;
  private readonly canvas: HTMLCanvasElement;
  private readonly lines: LinePainter;
  private readonly note: HTMLElement;
  private slots: Slot[] = [];
  private posOf = new Int32Array(0);
  private posVis: Int32Array | null = null;
  private first = 0;
  private last = -1;
  private readonly frame = new Coalesced(() => this.paint());
  private visible = false;
  private weights = new Float32Array(0);
  private colW = 0;
  /** Compare: the largest change among the drawn matrices, which line opacity and token tints are relative to. */
  private scale = 1;

  constructor(private readonly ctx: ViewContext) {
    this.chips = el('div', { class: 'chips', role: 'group', 'aria-label': 'Heads drawn in the head view' });
    this.spacer = el('div', { class: 'hv-spacer' });
    this.scroller = el(
      'div',
      {
        class: 'hv-scroll',
        tabindex: 0,
        role: 'listbox',
        'aria-label': 'Tokens: queries on the left, keys on the right. Up and down move between tokens, left and right switch column, Enter pins, Escape clears.',
      },
      this.spacer,
    );
    this.canvas = el('canvas', { class: 'hv-lines', role: 'img', 'aria-label': 'Attention lines between query and key tokens' });
    this.lines = new LinePainter(this.canvas);
    this.note = el('p', { class: 'view-note', role: 'note' });
    const heads = el(
      'div',
      { class: 'hv-heads', 'aria-hidden': 'true' },
      el('span', { text: 'Queries (attend from)' }),
      el('span', { text: 'Keys (attended to)' }),
    );
    this.root = el(
      'section',
      { class: 'view view-head', 'aria-label': 'Head view' },
      this.chips,
      heads,
      el('div', { class: 'hv-body' }, this.scroller, this.canvas),
      this.note,
    );
    this.scroller.addEventListener('scroll', () => this.schedule());
    this.scroller.addEventListener('pointerover', (e) => {
      const ref = this.refFromEvent(e);
      this.ctx.setHover(ref);
    });
    this.scroller.addEventListener('pointerleave', () => this.ctx.setHover(null));
    this.scroller.addEventListener('click', (e) => {
      const ref = this.refFromEvent(e);
      if (!ref) return;
      const c = this.ctx.cursor;
      const same = c !== null && c.index === ref.index && c.side === ref.side;
      this.ctx.setCursor(ref, !(same && this.ctx.pinned));
    });
    this.scroller.addEventListener('keydown', (e) => this.onKey(e));
    this.chips.addEventListener('click', (e) => {
      const b = (e.target as HTMLElement).closest<HTMLElement>('button[data-agg]');
      if (b) this.toggle(parseAggregation(b.dataset.agg ?? ''));
    });
    new ResizeObserver(() => this.schedule()).observe(this.scroller);
  }

  private refFromEvent(e: Event): TokenRef | null {
    const t = (e.target as HTMLElement).closest<HTMLElement>('.tok');
    if (!t) return null;
    const index = Number(t.dataset.index);
    if (!Number.isInteger(index)) return null;
    return { index, side: t.dataset.side === 'k' ? 'k' : 'q' };
  }

  setRun(): void {
    this.buildChips();
    this.posVis = null;
    // Another run, or the same run's difference from the baseline: token i may be another token now.
    for (const slot of this.slots) slot.keys = { q: '', k: '' };
    this.render();
  }

  layerArrived(layer: number): void {
    const ui = this.ctx.ui;
    if (layer === ui.layer || (ui.selected.includes('rollout') && layer <= ui.layer)) this.render();
  }

  private buildChips(): void {
    clear(this.chips);
    const run = this.ctx.run;
    if (!run) return;
    const t = this.ctx.theme;
    const mk = (agg: Aggregation, label: string, color: string, title: string): void => {
      const sw = el('span', { class: 'swatch', 'aria-hidden': 'true' });
      sw.style.background = color;
      this.chips.append(el('button', { class: 'chip', type: 'button', 'data-agg': String(agg), 'aria-pressed': 'false', title }, sw, label));
    };
    mk('mean', 'Mean', t.meanCss, 'Mean of all heads');
    mk('rollout', 'Rollout', t.rolloutCss, 'Attention rollout through this layer');
    // Rollout multiplies whole matrices: a long run's window has none.
    const noRollout = isWindow(run) ? run.base.longRefusal({ agg: 'rollout' }) : null;
    const rolloutChip = this.chips.querySelector<HTMLButtonElement>('button[data-agg="rollout"]');
    if (noRollout && rolloutChip) {
      setOff(rolloutChip, true);
      rolloutChip.title = noRollout;
    }
    for (let h = 0; h < run.H; h++) mk(h, String(h + 1), t.headCss(h, run.H), `Head ${h + 1}`);
    this.syncChips();
  }

  private syncChips(): void {
    const sel = this.ctx.ui.selected.map(String);
    for (const b of this.chips.querySelectorAll<HTMLElement>('button[data-agg]')) {
      b.setAttribute('aria-pressed', sel.includes(b.dataset.agg ?? '') ? 'true' : 'false');
    }
  }

  private toggle(agg: Aggregation | null): void {
    if (agg === null) return;
    const cur = this.ctx.ui.selected;
    const has = cur.some((a) => a === agg);
    let next = has ? cur.filter((a) => a !== agg) : [...cur, agg];
    if (next.length === 0) next = [agg];
    this.ctx.setSelected(next);
  }

  private colorOf(agg: Aggregation): string {
    const t = this.ctx.theme;
    const run = this.ctx.run;
    if (agg === 'mean') return t.meanCss;
    if (agg === 'rollout') return t.rolloutCss;
    return t.headCss(agg, run?.H ?? 1);
  }

  /** visible position of each token (-1 when hidden). */
  private positions(): Int32Array {
    const run = this.ctx.run!;
    const vis = run.vis;
    if (this.posVis !== vis) {
      this.posOf = new Int32Array(run.T).fill(-1);
      for (let i = 0; i < vis.length; i++) this.posOf[vis[i]] = i;
      this.posVis = vis;
    }
    return this.posOf;
  }

  render(): void {
    this.syncChips();
    const run = this.ctx.run;
    if (!run) return;
    this.spacer.style.height = `${run.vis.length * ROW_H}px`;
    // Theme may have changed: chip colours.
    for (const b of this.chips.querySelectorAll<HTMLElement>('button[data-agg]')) {
      const agg = parseAggregation(b.dataset.agg ?? '');
      const sw = b.querySelector<HTMLElement>('.swatch');
      if (sw && agg !== null) sw.style.background = this.colorOf(agg);
    }
    this.schedule();
  }

  /** Called inside the app's hover animation frame: paint now, not one frame later. */
  renderHover(): void {
    if (this.visible) this.frame.runNow();
  }

  private schedule(): void {
    if (this.visible) this.frame.request();
  }

  /** Paints now (rows + lines). Public for the benchmark/test harness via the app. */
  paint(): void {
    const run = this.ctx.run;
    if (!run) return;
    // Column geometry: token columns at both edges, the line canvas between them.
    const width = this.scroller.clientWidth;
    const height = this.scroller.clientHeight;
    const top = this.scroller.scrollTop;
    const colW = Math.round(Math.max(60, Math.min(220, width * 0.3)));
    if (colW !== this.colW) {
      this.colW = colW;
      this.spacer.style.setProperty('--colw', `${colW}px`);
    }
    const cs = this.canvas.style;
    const cw = `${Math.max(1, width - 2 * colW)}px`;
    const lx = `${colW}px`;
    const chh = `${height}px`;
    if (cs.left !== lx) cs.left = lx;
    if (cs.width !== cw) cs.width = cw;
    if (cs.height !== chh) cs.height = chh;
    const ui = this.ctx.ui;
    this.scale = 1;
    if (isDiff(run)) {
      let max = 0;
      for (const agg of ui.selected) {
        const m = this.ctx.matrix(ui.layer, agg);
        if (m) max = Math.max(max, maxChange(m, run.T, run.vis));
      }
      this.scale = diffScale(max);
    }
    // Geometry is read once, above: reading it again after layoutRows' writes would force a
    // second style and layout pass inside the hover frame.
    this.layoutRows(top, height);
    const active = this.ctx.active();
    const missing = this.lines.paint({
      run,
      layer: ui.layer,
      aggs: ui.selected,
      threshold: ui.threshold,
      active,
      pos: this.positions(),
      first: this.first,
      last: this.last,
      top,
      width: Math.max(1, width - 2 * colW),
      height: Math.max(1, height),
      matrix: (l, agg) => this.ctx.matrix(l, agg),
      colorOf: (agg) => this.colorOf(agg),
      signed: isDiff(run) ? { more: this.ctx.theme.moreCss, less: this.ctx.theme.lessCss, scale: this.scale } : undefined,
    });
    this.updateNote(missing, active);
  }

  private layoutRows(top: number, h: number): void {
    const run = this.ctx.run!;
    const vis = run.vis;
    const V = vis.length;
    this.first = Math.max(0, Math.floor(top / ROW_H) - OVERSCAN);
    this.last = Math.min(V - 1, Math.ceil((top + h) / ROW_H) + OVERSCAN);
    const n = this.last - this.first + 1;
    while (this.slots.length < n) {
      const q = el('div', { class: 'tok q', role: 'option', 'data-side': 'q' });
      const k = el('div', { class: 'tok k', role: 'option', 'data-side': 'k' });
      this.spacer.append(q, k);
      this.slots.push({ q, k, keys: { q: '', k: '' } });
    }
    const active = this.ctx.active();
    const cursor = this.ctx.cursor;
    const w = this.activeWeights(active);
    for (let s = 0; s < this.slots.length; s++) {
      const slot = this.slots[s];
      if (s >= n) {
        slot.q.hidden = true;
        slot.k.hidden = true;
        slot.keys = { q: '', k: '' };
        continue;
      }
      const vi = this.first + s;
      const ti = vis[vi];
      const tok = run.tokens[ti];
      const text = run.display[ti];
      const gap = isDiff(run) ? run.gap(ti) : null;
      for (const side of ['q', 'k'] as const) {
        const e = slot[side];
        const isActive = active !== null && active.index === ti && active.side === side;
        const isCursor = cursor !== null && cursor.index === ti && cursor.side === side;
        const isPinned = isCursor && this.ctx.pinned;
        // Tint the other column by the active token's weights.
        const tint = w !== null && active !== null && side !== active.side ? Math.sqrt(Math.min(1, Math.abs(w[ti]) / this.scale)) : 0;
        const tintCss = tint > 0.15 ? tint.toFixed(2) : '0';
        // Compare: the tint takes the palette's colour of the difference's sign.
        const sign = gap === null && tintCss !== '0' && isDiff(run) ? (w![ti] > 0 ? 'more' : 'less') : '';
        // A hover changes a handful of rows; untouched rows keep their styles, so the frame's
        // style recalculation stays small.
        const key = `${run.runId}:${ti}:${vi}:${+isActive}${+isCursor}${+isPinned}:${tintCss}${sign}`;
        if (slot.keys[side] === key) continue;
        slot.keys[side] = key;
        e.hidden = false;
        if (e.dataset.index !== String(ti)) {
          e.dataset.index = String(ti);
          e.id = `hv-${side}-${ti}`;
        }
        e.title = `${tok.text} (#${ti})${gap === 'inserted' ? ': not in baseline' : gap === 'deleted' ? ': deleted since baseline' : ''}`;
        e.classList.toggle('gap', gap !== null);
        e.classList.toggle('more', sign === 'more');
        e.classList.toggle('less', sign === 'less');
        const topPx = `${vi * ROW_H}px`;
        if (e.style.top !== topPx) e.style.top = topPx;
        setText(e, text);
        e.classList.toggle('special', tok.special);
        e.classList.toggle('generated', tok.generated === true);
        e.classList.toggle('active', isActive);
        e.classList.toggle('cursor', isCursor);
        e.classList.toggle('pinned', isPinned);
        e.setAttribute('aria-selected', isCursor ? 'true' : 'false');
        e.style.setProperty('--w', tintCss);
      }
    }
    if (cursor) this.scroller.setAttribute('aria-activedescendant', `hv-${cursor.side}-${cursor.index}`);
    else this.scroller.removeAttribute('aria-activedescendant');
  }

  /** Mean over the selected aggregates of the active token's row (query) or column (key). */
  private activeWeights(active: TokenRef | null): Float32Array | null {
    const run = this.ctx.run!;
    if (!active) return null;
    if (this.weights.length !== run.T) this.weights = new Float32Array(run.T);
    return tokenWeights((l, agg) => this.ctx.matrix(l, agg), this.ctx.ui.layer, this.ctx.ui.selected, active, run.T, this.weights);
  }

  private updateNote(missing: number, active: TokenRef | null): void {
    const run = this.ctx.run!;
    const ui = this.ctx.ui;
    const parts: string[] = [];
    const waiting = run.waitingFor(ui.layer);
    if (waiting) parts.push(waiting);
    else if (missing > 0 && ui.selected.includes('rollout')) parts.push(`Computing rollout (${run.rolloutProgress(run.hideSpecial, run.weights)}/${ui.layer + 1} layers)…`);
    const what = ui.selected.map((a) => run.label(a)).join('; ');
    if (isWindow(run)) parts.push(`${run.range} (window): lines between these tokens only; rows do not sum to 1 within a window.`);
    parts.push(`Layer ${ui.layer + 1}: ${what}${isDiff(run) ? `, now − baseline (red lines: more attention than the baseline, blue: less, opaque at ±${fmtWeight(this.scale)}; hatched tokens: only in one run)` : ''}.`);
    if (active) {
      const t = run.display[active.index];
      parts.push(active.side === 'q' ? `Lines from “${t}” to the keys it attends to.` : `Lines into “${t}” from the queries that attend to it.`);
    } else if (run.vis.length > DENSE_T) {
      parts.push(`Hover or select a token; without one only weights ≥ ${fmtWeight(Math.max(ui.threshold, IDLE_MIN))} are drawn.`);
    } else {
      parts.push('Hover or select a token to see its lines.');
    }
    setText(this.note, parts.join(' '));
  }

  private onKey(e: KeyboardEvent): void {
    const run = this.ctx.run;
    if (!run) return;
    const vis = run.vis;
    const V = vis.length;
    if (V === 0) return;
    const pos = this.positions();
    const cur = this.ctx.cursor;
    const side = cur?.side ?? 'q';
    let p = cur ? pos[cur.index] : -1;
    const page = Math.max(1, Math.floor(this.scroller.clientHeight / ROW_H) - 1);
    if (isWindow(run) && this.windowKey(e, p, side)) return;
    let nextSide = side;
    switch (e.key) {
      case 'ArrowDown':
        p = p < 0 ? 0 : Math.min(V - 1, p + 1);
        break;
      case 'ArrowUp':
        p = p < 0 ? 0 : Math.max(0, p - 1);
        break;
      case 'PageDown':
        p = Math.min(V - 1, Math.max(0, p) + page);
        break;
      case 'PageUp':
        p = Math.max(0, p - page);
        break;
      case 'Home':
        p = 0;
        break;
      case 'End':
        p = V - 1;
        break;
      case 'ArrowLeft':
        nextSide = 'q';
        if (p < 0) p = 0;
        break;
      case 'ArrowRight':
        nextSide = 'k';
        if (p < 0) p = 0;
        break;
      case 'Enter':
      case ' ':
        e.preventDefault();
        if (cur) this.ctx.setCursor(cur, !this.ctx.pinned);
        else this.ctx.setCursor({ index: vis[0], side: 'q' }, true);
        return;
      case 'Escape':
        if (!cur) return;
        e.preventDefault();
        e.stopPropagation();
        this.ctx.setCursor(null, false);
        return;
      default:
        return;
    }
    e.preventDefault();
    const ref: TokenRef = { index: vis[p], side: nextSide };
    this.ctx.setHover(null);
    this.ctx.setCursor(ref, this.ctx.pinned);
    this.scrollTo(p);
  }

  /**
   * A long run's window: PageUp / PageDown move it by half (the cursor keeps its place in it), and
   * an arrow past its edge moves it on to the next token. True when the key was handled so.
   */
  private windowKey(e: KeyboardEvent, p: number, side: 'q' | 'k'): boolean {
    const run = this.ctx.run!;
    const V = run.vis.length;
    const dir = e.key === 'PageDown' || e.key === 'ArrowDown' ? 1 : e.key === 'PageUp' || e.key === 'ArrowUp' ? -1 : 0;
    if (dir === 0) return false;
    let index: number;
    if (e.key === 'PageDown' || e.key === 'PageUp') {
      e.preventDefault();
      if (!this.ctx.windowPage?.(dir)) return true;
      const vis = this.ctx.run!.vis;
      index = vis[Math.min(Math.max(0, p), vis.length - 1)];
    } else {
      if (p < 0 || p !== (dir > 0 ? V - 1 : 0)) return false;
      e.preventDefault();
      const step = this.ctx.windowStep?.(run.vis[p], dir);
      if (!step) return true;
      index = step.index;
    }
    this.ctx.setHover(null);
    this.ctx.setCursor({ index, side }, this.ctx.pinned);
    this.scrollTo(this.positions()[index]);
    return true;
  }

  /** Scrolls a visible position into view. */
  private scrollTo(p: number): void {
    const top = p * ROW_H;
    const s = this.scroller;
    if (top < s.scrollTop) s.scrollTop = top;
    else if (top + ROW_H > s.scrollTop + s.clientHeight) s.scrollTop = top + ROW_H - s.clientHeight;
  }

  /** Brings a token into view (focus/token from the host). */
  reveal(index: number): void {
    const run = this.ctx.run;
    if (!run) return;
    const p = this.positions()[index];
    if (p >= 0) {
      const s = this.scroller;
      const top = p * ROW_H;
      if (top < s.scrollTop || top + ROW_H > s.scrollTop + s.clientHeight) s.scrollTop = Math.max(0, top - s.clientHeight / 2);
    }
    this.schedule();
  }

  setVisible(visible: boolean): void {
    const shown = visible && !this.visible;
    this.visible = visible;
    this.root.hidden = !visible;
    if (!visible) return;
    // A window's cursor may have moved it while the view was hidden (its scroll could not follow then).
    const c = this.ctx.cursor;
    if (shown && c && isWindow(this.ctx.run)) this.reveal(c.index);
    this.schedule();
  }

  focus(): void {
    this.scroller.focus();
  }
}
