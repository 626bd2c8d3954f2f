// Head view: tokens in two columns (queries left, keys right) joined by lines whose opacity is the
// attention weight, for the focused layer and any set of heads (toggle chips, one colour each),
// the mean of heads or rollout. Lines go on one canvas, batched by colour and quantised opacity.
// The token columns are virtualised: only rows in the viewport exist in the DOM.

import type { View, ViewContext, TokenRef } from '../context';
import { aggregationLabel as aggLabel, parseAggregation as parseAgg, type Aggregation as Agg } from '../../src/protocol/attention';
import { el, clear, setText, fmtWeight } from '../dom';
import { sizeCanvas } from '../heatmap';

const ROW_H = 22;
const OVERSCAN = 6;
const BUCKETS = 16;
/** Most lines drawn per aggregate in one paint (the strongest ones). */
const MAX_LINES = 128;
/** Above this many tokens, idle lines (no active token) are only drawn for weights >= IDLE_MIN. */
const DENSE_T = 64;
const IDLE_MIN = 0.1;
/** Buckets at or above this (weights >= 0.25) are drawn 2 px wide. */
const STRONG_BUCKET = BUCKETS / 2;

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
  private readonly g: CanvasRenderingContext2D;
  private readonly note: HTMLElement;
  private slots: Slot[] = [];
  private posOf = new Int32Array(0);
  private posVis: Int32Array | null = null;
  private first = 0;
  private last = -1;
  private frame = 0;
  private visible = false;
  private readonly buckets: number[][] = Array.from({ length: BUCKETS }, () => []);
  private weights = new Float32Array(0);
  private colW = 0;

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
    const g = this.canvas.getContext('2d');
    if (!g) throw new Error('no 2d canvas');
    this.g = g;
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
      if (b) this.toggle(parseAgg(b.dataset.agg ?? ''));
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
    const mk = (agg: Agg, label: string, color: string, title: string): void => {
      const sw = el('span', { class: 'swatch', 'aria-hidden': 'true' });
      sw.style.background = color;
      this.chips.append(el('button', { class: 'chip', type: 'button', 'data-agg': String(agg), 'aria-pressed': 'false', title }, sw, label));
    };
    mk('mean', 'Mean', t.meanCss, 'Mean of all heads');
    mk('rollout', 'Rollout', t.rolloutCss, 'Attention rollout through this layer');
    for (let h = 0; h < run.H; h++) mk(h, String(h + 1), t.headCss(h, run.H), `Head ${h + 1}`);
    this.syncChips();
  }

  private syncChips(): void {
    const sel = this.ctx.ui.selected.map(String);
    for (const b of this.chips.querySelectorAll<HTMLElement>('button[data-agg]')) {
      b.setAttribute('aria-pressed', sel.includes(b.dataset.agg ?? '') ? 'true' : 'false');
    }
  }

  private toggle(agg: Agg | null): void {
    if (agg === null) return;
    const cur = this.ctx.ui.selected;
    const has = cur.some((a) => a === agg);
    let next = has ? cur.filter((a) => a !== agg) : [...cur, agg];
    if (next.length === 0) next = [agg];
    this.ctx.setSelected(next);
  }

  private colorOf(agg: Agg): string {
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
    const t = this.ctx.theme;
    for (const b of this.chips.querySelectorAll<HTMLElement>('button[data-agg]')) {
      const agg = parseAgg(b.dataset.agg ?? '');
      const sw = b.querySelector<HTMLElement>('.swatch');
      if (sw && agg !== null) sw.style.background = this.colorOf(agg);
    }
    void t;
    this.schedule();
  }

  /** Called inside the app's hover animation frame: paint now, not one frame later. */
  renderHover(): void {
    if (!this.visible) return;
    if (this.frame) {
      cancelAnimationFrame(this.frame);
      this.frame = 0;
    }
    this.paint();
  }

  private schedule(): void {
    if (!this.visible || this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.paint();
    });
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
    // Geometry is read once, above: reading it again after layoutRows' writes would force a
    // second style and layout pass inside the hover frame.
    this.layoutRows(top, height);
    this.drawLines(Math.max(1, width - 2 * colW), Math.max(1, height), top);
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
      for (const side of ['q', 'k'] as const) {
        const e = slot[side];
        const isActive = active !== null && active.index === ti && active.side === side;
        const isCursor = cursor !== null && cursor.index === ti && cursor.side === side;
        const isPinned = isCursor && this.ctx.pinned;
        // Tint the other column by the active token's weights.
        const tint = w !== null && active !== null && side !== active.side ? Math.sqrt(Math.min(1, w[ti])) : 0;
        const tintCss = tint > 0.15 ? tint.toFixed(2) : '0';
        // A hover changes a handful of rows; untouched rows keep their styles, so the frame's
        // style recalculation stays small.
        const key = `${run.runId}:${ti}:${vi}:${+isActive}${+isCursor}${+isPinned}:${tintCss}`;
        if (slot.keys[side] === key) continue;
        slot.keys[side] = key;
        e.hidden = false;
        if (e.dataset.index !== String(ti)) {
          e.dataset.index = String(ti);
          e.id = `hv-${side}-${ti}`;
          e.title = `${tok.text} (#${ti})`;
        }
        const topPx = `${vi * ROW_H}px`;
        if (e.style.top !== topPx) e.style.top = topPx;
        setText(e, text);
        e.classList.toggle('special', tok.special);
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
    const T = run.T;
    if (this.weights.length !== T) this.weights = new Float32Array(T);
    const w = this.weights;
    w.fill(0);
    let n = 0;
    for (const agg of this.ctx.ui.selected) {
      const m = this.ctx.matrix(this.ctx.ui.layer, agg);
      if (!m) continue;
      n++;
      if (active.side === 'q') {
        const base = active.index * T;
        for (let j = 0; j < T; j++) w[j] += m[base + j];
      } else {
        for (let i = 0; i < T; i++) w[i] += m[i * T + active.index];
      }
    }
    if (n === 0) return null;
    if (n > 1) for (let j = 0; j < T; j++) w[j] /= n;
    return w;
  }

  private drawLines(cw: number, ch: number, top: number): void {
    const run = this.ctx.run!;
    const ui = this.ctx.ui;
    const dpr = window.devicePixelRatio || 1;
    sizeCanvas(this.canvas, Math.round(cw * dpr), Math.round(ch * dpr));
    const g = this.g;
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, cw, ch);
    const T = run.T;
    const vis = run.vis;
    const V = vis.length;
    const pos = this.positions();
    const y = (vi: number): number => vi * ROW_H + ROW_H / 2 - top;
    const active = this.ctx.active();
    const thr = ui.threshold;
    const minW = Math.max(thr, active ? 1e-3 : V > DENSE_T ? IDLE_MIN : 0.05);
    let missing = 0;
    g.lineCap = 'butt';
    for (const agg of ui.selected) {
      const m = this.ctx.matrix(ui.layer, agg);
      if (!m) {
        missing++;
        continue;
      }
      for (const b of this.buckets) b.length = 0;
      const add = (w: number, y1: number, y2: number): void => {
        if (!(w >= minW)) return;
        if ((y1 < -ROW_H && y2 < -ROW_H) || (y1 > ch + ROW_H && y2 > ch + ROW_H)) return;
        let b = Math.floor(Math.sqrt(w > 1 ? 1 : w) * BUCKETS);
        if (b >= BUCKETS) b = BUCKETS - 1;
        this.buckets[b].push(y1, y2);
      };
      if (active) {
        const p = pos[active.index];
        if (p >= 0) {
          const ya = y(p);
          if (active.side === 'q') {
            const base = active.index * T;
            for (let vj = 0; vj < V; vj++) add(m[base + vis[vj]], ya, y(vj));
          } else {
            for (let vi = 0; vi < V; vi++) add(m[vis[vi] * T + active.index], y(vi), ya);
          }
        }
      } else {
        // Idle: lines of the query rows in view.
        for (let vi = this.first; vi <= this.last; vi++) {
          const base = vis[vi] * T;
          const yq = y(vi);
          for (let vj = 0; vj < V; vj++) add(m[base + vis[vj]], yq, y(vj));
        }
      }
      g.strokeStyle = this.colorOf(agg);
      // Strongest buckets first, at most MAX_LINES lines: near-uniform attention at T=512 would
      // otherwise stroke hundreds of faint lines per hover, costing a frame for nothing visible.
      let budget = MAX_LINES;
      for (let b = BUCKETS - 1; b >= 0 && budget > 0; b--) {
        const list = this.buckets[b];
        if (list.length === 0) continue;
        const end = Math.min(list.length, budget * 2);
        budget -= end / 2;
        g.globalAlpha = (b + 1) / BUCKETS;
        // Faint lines are 1 px hairlines, which rasterise several times faster than wider strokes
        // (128 of them at 1.5 px cost 6 ms a hover at T = 512); the few strong ones stay bold.
        g.lineWidth = b >= STRONG_BUCKET ? 2 : 1;
        g.beginPath();
        for (let i = 0; i < end; i += 2) {
          g.moveTo(0, list[i]);
          g.lineTo(cw, list[i + 1]);
        }
        g.stroke();
      }
    }
    g.globalAlpha = 1;
    this.updateNote(missing, active);
  }

  private updateNote(missing: number, active: TokenRef | null): void {
    const run = this.ctx.run!;
    const ui = this.ctx.ui;
    const parts: string[] = [];
    if (!run.hasLayer(ui.layer)) parts.push(`Waiting for layer ${ui.layer + 1}…`);
    else if (missing > 0 && ui.selected.includes('rollout')) parts.push(`Computing rollout (${run.rolloutProgress(run.hideSpecial)}/${ui.layer + 1} layers)…`);
    const what = ui.selected.map(aggLabel).join(', ');
    parts.push(`Layer ${ui.layer + 1}: ${what}.`);
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
    this.visible = visible;
    this.root.hidden = !visible;
    if (visible) this.schedule();
  }

  focus(): void {
    this.scroller.focus();
  }
}
