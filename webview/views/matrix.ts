// Matrix view: the focused head (or mean, or rollout) as a labelled heatmap, queries down the
// left, keys along the top. The heatmap is one pixel per cell (scaled by CSS, pixelated); labels
// and highlights live on an overlay canvas redrawn on hover (labels thinned when T is large).
// A double click on a cell (or W on the keyboard cell) asks "Why this weight?" for it.
// A long run's matrix is a window of it (its run a WindowRun): the caption says which tokens, and
// the keyboard cell moving past the window's edge moves the window (PageUp / PageDown by half).

import type { View, ViewContext, TokenRef } from '../context';
import type { RunData } from '../store';
import { el, setText, fmtWeight } from '../dom';
import { fillHeat, fillHeatDown, imageFor, paintDiff, poolDiff, sizeCanvas } from '../heatmap';
import { diffScale, isDiff, type DiffRun } from '../compare';
import { gridMove, isArrowKey, type GridPos } from '../gridKeys';
import { Coalesced } from '../tasks';
import { pixelRatio } from '../pixelRatio';
import { isWindow } from '../longWindow';
import { whyRefusal } from '../longView';

const MAX_LABEL_W = 110;
const PAD = 8;
/** Above this side the heatmap is max-pooled (keeps the canvas under ~4 MB). */
const MAX_PIXELS = 1024;
const HELP = 'Rows: queries (attend from). Columns: keys (attended to). Arrow keys move the cell, Enter pins the row, Escape clears. Double-click a cell (W on the keyboard) for Why this weight?';
const HELP_WINDOW = 'Rows: queries (attend from). Columns: keys (attended to), the same tokens. Arrow keys move the cell (past the edge the window follows), PageUp / PageDown move the window by half, + and − zoom; Enter pins the row, Escape clears.';

export class MatrixView implements View {
  readonly root: HTMLElement;
  private readonly body: HTMLElement;
  private readonly heat: HTMLCanvasElement;
  private readonly heatCtx: CanvasRenderingContext2D;
  private readonly overlay: HTMLCanvasElement;
  private readonly g: CanvasRenderingContext2D;
  private readonly caption: HTMLElement;
  private readonly legend: HTMLElement;
  private visible = false;
  private readonly frame = new Coalesced(() => this.paint());
  private needHeat = true;
  // geometry (CSS px)
  private left = 0;
  private top = 0;
  private side = 0;
  private labelW = 0;
  private labelFont = '';
  private labelsFor: unknown = null;
  /** Cell under the pointer / keyboard cell cursor, in visible positions. */
  private hoverCell: GridPos | null = null;
  private kbCell: GridPos | null = null;
  /** Compare: the pooled difference and the scale of its colours (the largest change shown). */
  private pooled = new Float32Array(0);
  private scale = 0;

  constructor(private readonly ctx: ViewContext) {
    this.heat = el('canvas', { class: 'mx-heat', 'aria-hidden': 'true' });
    const hc = this.heat.getContext('2d');
    this.overlay = el('canvas', {
      class: 'mx-overlay',
      tabindex: 0,
      role: 'application',
      'aria-roledescription': 'attention matrix',
      'aria-label': 'Attention matrix',
    });
    const g = this.overlay.getContext('2d');
    if (!hc || !g) throw new Error('no 2d canvas');
    this.heatCtx = hc;
    this.g = g;
    this.body = el('div', { class: 'mx-body' }, this.heat, this.overlay);
    this.caption = el('p', { class: 'view-note mx-caption' });
    this.legend = el('p', { class: 'view-note mx-help', text: HELP });
    this.root = el('section', { class: 'view view-matrix', 'aria-label': 'Matrix view' }, this.caption, this.body, this.legend);

    this.overlay.addEventListener('pointermove', (e) => this.onPointer(e));
    this.overlay.addEventListener('pointerleave', () => {
      this.hoverCell = null;
      this.ctx.setHover(null);
      this.schedule();
    });
    this.overlay.addEventListener('click', (e) => {
      const hit = this.hit(e);
      // The second click of a double click leaves the pin as the first one set it: the double click explains the cell.
      if (!hit || e.detail > 1) return;
      const c = this.ctx.cursor;
      const same = c !== null && c.index === hit.ref.index && c.side === hit.ref.side;
      if (hit.cell) this.kbCell = hit.cell;
      this.ctx.setCursor(hit.ref, !(same && this.ctx.pinned));
    });
    this.overlay.addEventListener('dblclick', (e) => {
      const cell = this.hit(e)?.cell;
      const run = this.ctx.run;
      if (cell && run) this.ctx.explain(run.vis[cell.r], run.vis[cell.c]);
    });
    this.overlay.addEventListener('keydown', (e) => this.onKey(e));
    this.overlay.addEventListener('focus', () => this.schedule());
    this.overlay.addEventListener('blur', () => this.schedule());
    new ResizeObserver(() => {
      this.needHeat = true;
      this.schedule();
    }).observe(this.body);
  }

  setRun(): void {
    this.hoverCell = null;
    this.kbCell = null;
    this.labelsFor = null;
    this.render();
  }

  layerArrived(layer: number): void {
    const ui = this.ctx.ui;
    if (layer === ui.layer || (ui.agg === 'rollout' && layer <= ui.layer)) this.render();
  }

  render(): void {
    this.needHeat = true;
    this.schedule();
  }

  /** Called inside the app's hover animation frame: paint now, not one frame later. */
  renderHover(): void {
    if (this.visible) this.frame.runNow();
  }

  private schedule(): void {
    if (this.visible) this.frame.request();
  }

  private paint(): void {
    const run = this.ctx.run;
    if (!run) return;
    setText(this.legend, isWindow(run) ? `${HELP_WINDOW} ${whyRefusal(run.base)}` : HELP);
    this.layout();
    if (this.needHeat) {
      this.needHeat = false;
      this.paintHeat();
    }
    this.paintOverlay();
  }

  /** Measures labels and places the square heatmap. */
  private layout(): void {
    const run = this.ctx.run!;
    const t = this.ctx.theme;
    const font = `${Math.round(Math.max(10, Math.min(13, t.fontSize)))}px ${t.fontFamily}`;
    if (this.labelsFor !== run.vis || this.labelFont !== font) {
      this.labelsFor = run.vis;
      this.labelFont = font;
      this.g.font = font;
      let w = 0;
      for (const i of run.vis) w = Math.max(w, this.g.measureText(run.display[i]).width);
      this.labelW = Math.min(MAX_LABEL_W, Math.ceil(w) + 10);
    }
    const bw = this.body.clientWidth;
    const bh = this.body.clientHeight;
    this.left = this.labelW + PAD;
    this.top = this.labelW + PAD;
    this.side = Math.max(60, Math.floor(Math.min(bw - this.left - PAD, bh - this.top - PAD)));
    const hs = this.heat.style;
    const px = (n: number): string => `${n}px`;
    if (hs.left !== px(this.left)) hs.left = px(this.left);
    if (hs.top !== px(this.top)) hs.top = px(this.top);
    if (hs.width !== px(this.side)) {
      hs.width = px(this.side);
      hs.height = px(this.side);
    }
    const dpr = pixelRatio();
    const ow = Math.max(1, bw);
    const oh = Math.max(1, bh);
    const os = this.overlay.style;
    if (os.width !== px(ow)) os.width = px(ow);
    if (os.height !== px(oh)) os.height = px(oh);
    sizeCanvas(this.overlay, Math.round(ow * dpr), Math.round(oh * dpr));
  }

  private paintHeat(): void {
    const run = this.ctx.run!;
    const ui = this.ctx.ui;
    const m = this.ctx.matrix(ui.layer, ui.agg);
    const V = run.vis.length;
    const what = `Layer ${ui.layer + 1} ${run.label(ui.agg)}`;
    const kind = isDiff(run) ? 'attention difference matrix (now minus the baseline)' : isWindow(run) ? `attention matrix window, ${run.range.replace(/^Tokens/, 'tokens')}` : 'attention matrix';
    this.overlay.setAttribute('aria-label', `${what} ${kind}, ${V} by ${V} tokens. Arrow keys move between cells.`);
    this.heat.classList.toggle('waiting', !m);
    if (!m || V === 0) return;
    const size = V <= MAX_PIXELS ? V : Math.ceil(V / Math.ceil(V / MAX_PIXELS));
    sizeCanvas(this.heat, size, size);
    const { img, u32 } = imageFor(this.heatCtx, size, size);
    const t = this.ctx.theme;
    if (isDiff(run)) {
      if (this.pooled.length < size * size) this.pooled = new Float32Array(size * size);
      this.scale = diffScale(poolDiff(m, run.T, run.vis, size, this.pooled));
      paintDiff(u32, this.pooled, size * size, t.diff, t.gapPacked, ui.threshold, this.scale);
    } else if (size === V) fillHeat(u32, m, run.T, run.vis, t.heat, ui.threshold);
    else fillHeatDown(u32, size, m, run.T, run.vis, t.heat, ui.threshold);
    this.heatCtx.putImageData(img, 0, 0);
  }

  /** Visible position of the active token, or -1. */
  private posOf(index: number): number {
    const vis = this.ctx.run!.vis;
    // vis is sorted: binary search.
    let lo = 0;
    let hi = vis.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (vis[mid] === index) return mid;
      if (vis[mid] < index) lo = mid + 1;
      else hi = mid - 1;
    }
    return -1;
  }

  private paintOverlay(): void {
    const run = this.ctx.run!;
    const ui = this.ctx.ui;
    const t = this.ctx.theme;
    const g = this.g;
    const dpr = pixelRatio();
    const W = this.overlay.width / dpr;
    const H = this.overlay.height / dpr;
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, W, H);
    const vis = run.vis;
    const V = vis.length;
    if (V === 0) return;
    const cell = this.side / V;
    const { left, top, side } = this;
    const fontPx = parseFloat(this.labelFont) || 12;
    const step = Math.max(1, Math.ceil((fontPx * 1.25) / cell));
    const active = this.ctx.active();
    const ap = active ? this.posOf(active.index) : -1;
    const rowHi = active && active.side === 'q' ? ap : this.hoverCell ? this.hoverCell.r : -1;
    const colHi = active && active.side === 'k' ? ap : this.hoverCell ? this.hoverCell.c : this.kbCell && active?.side === 'q' ? this.kbCell.c : -1;

    // Frame, and a note while data is missing.
    g.strokeStyle = t.dimCss;
    g.lineWidth = 1;
    g.strokeRect(left - 0.5, top - 0.5, side + 1, side + 1);
    const m = this.ctx.matrix(ui.layer, ui.agg);
    if (!m) {
      g.fillStyle = t.fgCss;
      g.font = this.labelFont;
      g.textAlign = 'center';
      g.textBaseline = 'middle';
      const msg = run.waitingFor(ui.layer)
        ?? `Computing rollout (${run.rolloutProgress(run.hideSpecial, run.weights)}/${ui.layer + 1} layers)…`;
      g.fillText(msg, left + side / 2, top + side / 2);
    }

    if (isDiff(run)) this.hatchGaps(run, cell);

    // Highlight bands for the active row / column.
    g.fillStyle = t.focusCss;
    if (rowHi >= 0) {
      g.globalAlpha = 0.9;
      g.strokeStyle = t.focusCss;
      g.lineWidth = Math.max(1, Math.min(2, cell / 3));
      g.strokeRect(left, top + rowHi * cell, side, cell);
    }
    if (colHi >= 0) {
      g.globalAlpha = 0.9;
      g.strokeStyle = t.focusCss;
      g.lineWidth = Math.max(1, Math.min(2, cell / 3));
      g.strokeRect(left + colHi * cell, top, cell, side);
    }
    g.globalAlpha = 1;
    const kb = this.kbCell;
    if (kb && document.activeElement === this.overlay) {
      g.strokeStyle = t.fgCss;
      g.lineWidth = 2;
      g.strokeRect(left + kb.c * cell - 1, top + kb.r * cell - 1, cell + 2, cell + 2);
    }

    // Labels: every `step`-th, plus the highlighted ones in bold.
    g.font = this.labelFont;
    g.textBaseline = 'middle';
    const maxW = this.labelW - 6;
    // Row labels end at the matrix's left edge; column labels are rotated to read upwards
    // and start at its top edge.
    const label = (i: number, hi: boolean, x: number, y: number, rotate: boolean): void => {
      const ti = vis[i];
      let text = run.display[ti];
      g.font = hi ? `bold ${this.labelFont}` : this.labelFont;
      if (g.measureText(text).width > maxW) {
        while (text.length > 1 && g.measureText(text + '…').width > maxW) text = text.slice(0, -1);
        text += '…';
      }
      g.save();
      g.translate(x, y);
      if (rotate) g.rotate(-Math.PI / 2);
      g.textAlign = rotate ? 'left' : 'right';
      if (hi) {
        const w = g.measureText(text).width;
        g.fillStyle = t.focusCss;
        g.globalAlpha = 0.25;
        g.fillRect(rotate ? -3 : -w - 3, -fontPx / 2 - 2, w + 6, fontPx + 4);
        g.globalAlpha = 1;
      }
      // Deleted tokens (Compare) are dimmed like special ones: they are not in the text any more.
      g.fillStyle = run.tokens[ti].special || (isDiff(run) && run.gap(ti) === 'deleted') ? t.dimCss : t.fgCss;
      g.fillText(text, 0, 0);
      g.restore();
    };
    // Thinned labels leave room around the highlighted one.
    const clear = (i: number, hi: number): boolean => hi < 0 || Math.abs(i - hi) * cell >= fontPx * 1.1;
    for (let i = 0; i < V; i += step) if (clear(i, rowHi)) label(i, false, left - 4, top + (i + 0.5) * cell, false);
    if (rowHi >= 0) label(rowHi, true, left - 4, top + (rowHi + 0.5) * cell, false);
    for (let j = 0; j < V; j += step) if (clear(j, colHi)) label(j, false, left + (j + 0.5) * cell, top - 4, true);
    if (colHi >= 0) label(colHi, true, left + (colHi + 0.5) * cell, top - 4, true);

    this.updateCaption(m, rowHi, colHi);
  }

  /** Hatches the rows and columns of tokens only one run has (Compare): their cells are gaps, not numbers. */
  private hatchGaps(run: DiffRun, cell: number): void {
    const g = this.g;
    const { left, top, side } = this;
    const vis = run.vis;
    g.save();
    g.beginPath();
    for (let p = 0; p < vis.length; p++) {
      if (!run.gap(vis[p])) continue;
      g.rect(left, top + p * cell, side, cell);
      g.rect(left + p * cell, top, cell, side);
    }
    g.clip();
    g.strokeStyle = this.ctx.theme.bgCss;
    g.globalAlpha = 0.7;
    g.lineWidth = 1;
    g.beginPath();
    for (let d = -side; d < side; d += 6) {
      g.moveTo(left + d, top + side);
      g.lineTo(left + d + side, top);
    }
    g.stroke();
    g.restore();
  }

  private updateCaption(m: Float32Array | null, r: number, c: number): void {
    const run = this.ctx.run!;
    const ui = this.ctx.ui;
    const size = isWindow(run) ? `${run.range} (window)` : `${run.vis.length} tokens`;
    let s = `Layer ${ui.layer + 1} · ${run.label(ui.agg)}${isDiff(run) && m ? ` · now − baseline, max ±${fmtWeight(this.scale)}` : ''} · ${size}`;
    if (m && r >= 0 && c >= 0) {
      const qi = run.vis[r];
      const ki = run.vis[c];
      // A window's tokens also say where they are in the run (a long text repeats its words).
      const at = (i: number): string => (isWindow(run) ? ` (${run.global(i) + 1})` : '');
      s += ` · “${run.display[qi]}”${at(qi)} → “${run.display[ki]}”${at(ki)}: ${cellText(run, m, qi, ki)}`;
    }
    setText(this.caption, s);
  }

  private hit(e: MouseEvent): { ref: TokenRef; cell: GridPos | null } | null {
    const run = this.ctx.run;
    if (!run) return null;
    const rect = this.overlay.getBoundingClientRect();
    const x = e.clientX - rect.left;
    const y = e.clientY - rect.top;
    const V = run.vis.length;
    const cell = this.side / V;
    const { left, top, side } = this;
    const r = Math.floor((y - top) / cell);
    const c = Math.floor((x - left) / cell);
    const inRows = y >= top && y < top + side && r >= 0 && r < V;
    const inCols = x >= left && x < left + side && c >= 0 && c < V;
    if (inRows && inCols) return { ref: { index: run.vis[r], side: 'q' }, cell: { r, c } };
    if (inRows && x < left) return { ref: { index: run.vis[r], side: 'q' }, cell: null };
    if (inCols && y < top) return { ref: { index: run.vis[c], side: 'k' }, cell: null };
    return null;
  }

  private onPointer(e: PointerEvent): void {
    const hit = this.hit(e);
    const prev = this.hoverCell;
    this.hoverCell = hit?.cell ?? null;
    this.ctx.setHover(hit ? hit.ref : null);
    if (prev?.r !== this.hoverCell?.r || prev?.c !== this.hoverCell?.c) this.schedule();
  }

  private onKey(e: KeyboardEvent): void {
    const run = this.ctx.run;
    if (!run) return;
    const V = run.vis.length;
    if (V === 0) return;
    const cur = this.kbCell ?? { r: 0, c: 0 };
    switch (e.key) {
      case 'Enter':
      case ' ':
        e.preventDefault();
        this.kbCell = cur;
        this.ctx.setCursor({ index: run.vis[cur.r], side: 'q' }, !this.ctx.pinned);
        return;
      case 'w':
      case 'W':
        if (!this.kbCell || e.ctrlKey || e.metaKey || e.altKey) return;
        e.preventDefault();
        this.ctx.explain(run.vis[cur.r], run.vis[cur.c]);
        return;
      case 'Escape':
        if (!this.kbCell && !this.ctx.cursor) return;
        e.preventDefault();
        e.stopPropagation();
        this.kbCell = null;
        this.ctx.setCursor(null, false);
        this.schedule();
        return;
    }
    if (isWindow(run) && (e.key === 'PageDown' || e.key === 'PageUp')) {
      // A window: half a window later or earlier, the cell keeping its place in it.
      e.preventDefault();
      if (!this.ctx.windowPage?.(e.key === 'PageDown' ? 1 : -1)) return;
      const last = this.ctx.run!.vis.length - 1;
      this.moveCell({ r: Math.min(cur.r, last), c: Math.min(cur.c, last) });
      return;
    }
    // The first arrow press only shows the keyboard cell, at the top left.
    const next = !this.kbCell && isArrowKey(e.key) ? cur : gridMove(e, cur, V, V, 10);
    if (!next) return;
    e.preventDefault();
    if (isWindow(run) && this.kbCell && isArrowKey(e.key) && next.r === cur.r && next.c === cur.c) {
      // At the window's edge: the window moves on to the next token, keeping the cell's other token when it fits.
      const rows = e.key === 'ArrowDown' || e.key === 'ArrowUp';
      const dir = e.key === 'ArrowDown' || e.key === 'ArrowRight' ? 1 : -1;
      const step = this.ctx.windowStep?.(run.vis[rows ? cur.r : cur.c], dir, run.vis[rows ? cur.c : cur.r]);
      if (!step) return;
      const at = this.posOf(step.index);
      const other = step.keep >= 0 ? this.posOf(step.keep) : dir > 0 ? 0 : this.ctx.run!.vis.length - 1;
      this.moveCell(rows ? { r: at, c: other } : { r: other, c: at });
      return;
    }
    this.moveCell(next);
  }

  /** Puts the keyboard cell at `cell` (of the run shown now): its row's token is the cursor, and it is announced. */
  private moveCell(cell: GridPos): void {
    const run = this.ctx.run!;
    this.kbCell = cell;
    const { r, c } = cell;
    this.hoverCell = null;
    this.ctx.setHover(null);
    this.ctx.setCursor({ index: run.vis[r], side: 'q' }, this.ctx.pinned);
    const m = this.ctx.matrix(this.ctx.ui.layer, this.ctx.ui.agg);
    const qi = run.vis[r];
    const ki = run.vis[c];
    const where = isWindow(run) ? ` (tokens ${run.global(qi) + 1} and ${run.global(ki) + 1})` : '';
    this.ctx.announce(`Query ${run.display[qi]}, key ${run.display[ki]}${where}: ${m ? cellText(run, m, qi, ki) : 'no data'}`);
    this.schedule();
  }

  /** The host asked to focus a token: put the keyboard cell on its row. */
  reveal(index: number): void {
    const p = this.ctx.run ? this.posOf(index) : -1;
    if (p >= 0) this.kbCell = { r: p, c: this.kbCell?.c ?? p };
    this.schedule();
  }

  setVisible(visible: boolean): void {
    this.visible = visible;
    this.root.hidden = !visible;
    if (visible) {
      this.needHeat = true;
      this.schedule();
    }
  }

  focus(): void {
    this.overlay.focus();
  }
}

/** A cell's value as the caption and announcements say it: a weight, or (Compare) a signed difference or why there is none. */
function cellText(run: RunData, m: Float32Array, q: number, k: number): string {
  if (!isDiff(run)) return fmtWeight(m[q * run.T + k]);
  const gap = run.gap(q) ?? run.gap(k);
  if (gap) return gap === 'inserted' ? 'not in baseline' : 'deleted since baseline';
  const d = m[q * run.T + k];
  return d === 0 ? '0' : `${d > 0 ? '+' : '−'}${fmtWeight(Math.abs(d))}`;
}
