// Model view: a grid of layers x heads (plus the head-mean column), each a small canvas heatmap
// painted at one pixel per (downsampled) cell. Layers fill in as they arrive, from the host's
// thumbnails when it sent them (long inputs) and special tokens are shown, else pooled here from
// the full layer; painting runs in short time-sliced tasks so the panel stays responsive while a
// 12 x 12 x 512 x 512 run lands.

import type { View, ViewContext } from '../context';
import { el, clear, fmtWeight, setText } from '../dom';
import { fillHeatDown, fillHeatRaw, imageFor, paintDiff, poolDiff, sizeCanvas } from '../heatmap';
import { diffScale, isDiff } from '../compare';
import { thumbSize, type LayerTensor } from '../../src/analysis';
import { Coalesced, makeYield } from '../tasks';
import { gridMove } from '../gridKeys';

/**
 * Painting runs in slices of this many ms between yields. Each yield lets the browser render a
 * frame (which with ~150 canvases costs real time), so slices are long enough to keep the number
 * of frames during loading modest while the panel still fills in visibly and answers input.
 */
const SLICE_MS = 32;

const NONE = 0;
const THUMBS = 1;
const FULL = 2;

interface Cell {
  root: HTMLElement;
  canvas: HTMLCanvasElement;
  ctx: CanvasRenderingContext2D;
  layer: number;
  /** head index, or -1 for the mean column */
  head: number;
}

export class ModelView implements View {
  readonly root: HTMLElement;
  private readonly grid: HTMLElement;
  private cells: Cell[] = [];
  private cols = 0;
  private rows = 0;
  /** (layer, column) units waiting to be painted, in order. */
  private queue: number[] = [];
  private queued = new Set<number>();
  /** What each unit was last painted from (NONE: not painted yet); a better source repaints it. */
  private paintedFrom: Uint8Array = new Uint8Array(0);
  private paintedCount = 0;
  /** Paints the queue in time-sliced tasks of their own (not frames: the slices make the frames). */
  private readonly pumpTask = new Coalesced(() => this.pump(), makeYield());
  private scratch = new Float32Array(0);
  private focusIndex = 0;
  /**
   * Compare: each cell's pooled difference, kept so that all cells share one colour scale (the
   * largest change in the grid): when a cell brings a larger one, the painted cells are coloured
   * again from these at the end of the slice.
   */
  private pooledDiff: (Float32Array | undefined)[] = [];
  private diffMax = 0;
  private recolour = false;
  private readonly note: HTMLElement;

  constructor(private readonly ctx: ViewContext) {
    this.grid = el('div', { class: 'model-grid', role: 'grid', 'aria-label': 'Attention heads: layers by heads. Arrow keys move, Enter opens a head.' });
    this.note = el('p', { class: 'view-note', hidden: true });
    this.root = el('section', { class: 'view view-model', 'aria-label': 'Model view' }, this.note, this.grid);
    this.grid.addEventListener('keydown', (e) => this.onKey(e));
    this.grid.addEventListener('click', (e) => {
      const cell = this.cellFromEvent(e);
      if (cell) this.open(cell);
    });
    this.grid.addEventListener('focusin', (e) => {
      const cell = this.cellFromEvent(e);
      if (cell) this.setFocusIndex(this.cells.indexOf(cell), false);
    });
  }

  private cellFromEvent(e: Event): Cell | null {
    const t = (e.target as HTMLElement).closest<HTMLElement>('.cell');
    if (!t) return null;
    const i = Number(t.dataset.i);
    return this.cells[i] ?? null;
  }

  setRun(sameShape: boolean): void {
    const run = this.ctx.run;
    if (!run) return;
    const rows = run.L;
    const cols = run.H + 1;
    if (!sameShape || rows !== this.rows || cols !== this.cols || this.cells.length === 0) this.build(rows, cols);
    else for (const c of this.cells) c.root.classList.add('stale');
    this.queue = [];
    this.queued.clear();
    this.paintedFrom = new Uint8Array(rows * cols);
    this.paintedCount = 0;
    this.resetDiff();
    for (const c of this.cells) {
      c.canvas.setAttribute('aria-label', this.cellLabel(c.layer, c.head, false));
    }
    this.ctx.reportPainted(0, rows);
  }

  private cellLabel(layer: number, head: number, ready: boolean): string {
    const what = head < 0 ? `Layer ${layer + 1} mean of heads` : `Layer ${layer + 1} head ${head + 1}`;
    const map = isDiff(this.ctx.run) ? 'attention difference from the baseline' : 'attention heatmap';
    return ready ? `${what} ${map}` : `${what} ${map} (waiting for data)`;
  }

  private build(rows: number, cols: number): void {
    clear(this.grid);
    this.cells = [];
    this.rows = rows;
    this.cols = cols;
    this.grid.style.setProperty('--cols', String(cols));
    const header = el('div', { class: 'grid-row header', role: 'row' }, el('span', { class: 'corner', role: 'columnheader', text: '' }));
    for (let h = 0; h < cols; h++) {
      header.append(el('span', { class: 'colhead', role: 'columnheader', text: h === cols - 1 ? 'mean' : String(h + 1) }));
    }
    this.grid.append(header);
    for (let l = 0; l < rows; l++) {
      const row = el('div', { class: 'grid-row', role: 'row' }, el('span', { class: 'rowhead', role: 'rowheader', text: `L${l + 1}` }));
      for (let c = 0; c < cols; c++) {
        const head = c === cols - 1 ? -1 : c;
        const canvas = el('canvas', { class: 'thumb', role: 'img', 'aria-label': this.cellLabel(l, head, false) });
        const i = this.cells.length;
        const root = el(
          'div',
          { class: `cell pending${head < 0 ? ' mean' : ''}`, role: 'gridcell', tabindex: i === 0 ? 0 : -1, 'data-i': i, 'data-layer': l, 'data-head': head < 0 ? 'mean' : head },
          canvas,
        );
        const ctx2 = canvas.getContext('2d');
        if (!ctx2) continue;
        this.cells.push({ root, canvas, ctx: ctx2, layer: l, head });
        row.append(root);
      }
      this.grid.append(row);
    }
    this.focusIndex = 0;
    this.markFocused();
  }

  /** Thumbnails or the full data of `layer` arrived: paints its cells unless they already show what it offers. */
  layerArrived(layer: number): void {
    const src = this.source(layer);
    if (src === NONE) return;
    if (this.ctx.run?.long) this.showNote(); // the thumbnails' size is known now
    for (let c = 0; c < this.cols; c++) {
      const unit = layer * this.cols + c;
      if (this.paintedFrom[unit] !== src) this.enqueue(unit);
    }
    this.schedule();
  }

  /**
   * What layer `l` paints from: the host's thumbnails while special tokens are shown (they are
   * pooled over every token), else the full layer; the thumbnails stay once the layer arrives.
   */
  private source(l: number): number {
    const run = this.ctx.run;
    if (!run) return NONE;
    // A long run has nothing else: its thumbnails stay with special tokens hidden too (the note says so).
    if ((!run.hideSpecial || run.long) && run.thumbs(l)) return THUMBS;
    return run.hasLayer(l) ? FULL : NONE;
  }

  private enqueue(unit: number): void {
    if (this.queued.has(unit)) return;
    this.queued.add(unit);
    this.queue.push(unit);
  }

  render(): void {
    const run = this.ctx.run;
    if (!run) return;
    // Repaint everything that has data (threshold, hiding or theme changed).
    this.queue = [];
    this.queued.clear();
    this.paintedFrom.fill(NONE);
    this.paintedCount = 0;
    this.resetDiff();
    for (let l = 0; l < run.L; l++) {
      const has = this.source(l) !== NONE;
      for (let c = 0; c < this.cols; c++) {
        const unit = l * this.cols + c;
        if (has) this.enqueue(unit);
        else this.cells[unit]?.root.classList.add('pending'); // e.g. special tokens hidden while only thumbnails are here
      }
    }
    this.schedule();
    this.markFocused();
  }

  private schedule(): void {
    if (this.queue.length > 0) this.pumpTask.request();
  }

  private pump(): void {
    const t0 = performance.now();
    while (this.queue.length > 0 && performance.now() - t0 < SLICE_MS) {
      const unit = this.queue.shift()!;
      this.queued.delete(unit);
      this.paintUnit(unit);
    }
    if (this.recolour) this.recolourDiff();
    if (this.queue.length > 0) this.schedule();
  }

  private paintUnit(unit: number): void {
    const run = this.ctx.run;
    const cell = this.cells[unit];
    if (!run || !cell) return;
    const src = this.source(cell.layer);
    const painted = src === THUMBS ? this.paintThumb(cell, run.thumbs(cell.layer)!) : src === FULL && this.paintFull(cell);
    if (!painted) return;
    const first = this.paintedFrom[unit] === NONE;
    this.paintedFrom[unit] = src;
    cell.root.classList.remove('pending', 'stale');
    cell.canvas.setAttribute('aria-label', this.cellLabel(cell.layer, cell.head, true));
    if (first) {
      this.paintedCount++;
      // A layer counts as painted when all its columns are.
      if (this.paintedCount % this.cols === 0 || this.queue.length === 0) {
        let layers = 0;
        for (let l = 0; l < this.rows; l++) {
          let all = true;
          for (let c = 0; c < this.cols; c++) if (this.paintedFrom[l * this.cols + c] === NONE) all = false;
          if (all) layers++;
        }
        this.ctx.reportPainted(layers, this.rows);
      }
    }
  }

  /** A cell from the host's thumbnails ([H + 1][size][size], the mean last): one LUT pass. */
  private paintThumb(cell: Cell, thumbs: LayerTensor): true {
    const size = thumbs.T;
    sizeCanvas(cell.canvas, size, size);
    const { img, u32 } = imageFor(cell.ctx, size, size);
    const slot = cell.head < 0 ? thumbs.heads - 1 : cell.head;
    fillHeatRaw(u32, size * size, thumbs.raw, thumbs.lut, slot * size * size, this.ctx.theme.heat, this.ctx.ui.threshold);
    cell.ctx.putImageData(img, 0, 0);
    return true;
  }

  /** A cell pooled here from the full layer (hidden tokens left out); false when its data is not there. */
  private paintFull(cell: Cell): boolean {
    const run = this.ctx.run!;
    const T = run.T;
    const size = thumbSize(run.vis.length);
    if (this.scratch.length !== T * T) this.scratch = new Float32Array(T * T);
    const m = run.headInto(cell.layer, cell.head < 0 ? 'mean' : cell.head, this.scratch);
    if (!m) return false;
    sizeCanvas(cell.canvas, size, size);
    if (isDiff(run)) {
      const unit = cell.layer * this.cols + (cell.head < 0 ? this.cols - 1 : cell.head);
      let pooled = this.pooledDiff[unit];
      if (pooled?.length !== size * size) pooled = this.pooledDiff[unit] = new Float32Array(size * size);
      const max = poolDiff(m, T, run.vis, size, pooled);
      if (max > this.diffMax) {
        this.diffMax = max;
        this.recolour = true;
      }
      this.paintPooled(cell, pooled, size);
      return true;
    }
    const { img, u32 } = imageFor(cell.ctx, size, size);
    fillHeatDown(u32, size, m, T, run.vis, this.ctx.theme.heat, this.ctx.ui.threshold);
    cell.ctx.putImageData(img, 0, 0);
    return true;
  }

  private paintPooled(cell: Cell, pooled: Float32Array, size: number): void {
    const { theme, ui } = this.ctx;
    const { img, u32 } = imageFor(cell.ctx, size, size);
    paintDiff(u32, pooled, size * size, theme.diff, theme.gapPacked, ui.threshold, diffScale(this.diffMax));
    cell.ctx.putImageData(img, 0, 0);
  }

  /** The grid's colour scale grew: every painted cell again on it, and the note says it. */
  private recolourDiff(): void {
    this.recolour = false;
    this.pooledDiff.forEach((pooled, unit) => {
      const cell = this.cells[unit];
      if (pooled && cell && this.paintedFrom[unit] !== NONE) this.paintPooled(cell, pooled, cell.canvas.width);
    });
    this.showNote();
  }

  private resetDiff(): void {
    this.pooledDiff = [];
    this.diffMax = 0;
    this.recolour = false;
    this.showNote();
  }

  private showNote(): void {
    const run = this.ctx.run;
    const diff = isDiff(run);
    const long = run?.long ? run : null;
    this.note.hidden = !diff && !long;
    if (diff) setText(this.note, `Now − baseline: colours up to the largest change in the grid, ±${fmtWeight(diffScale(this.diffMax))} (red more attention, blue less; grey: a token only one run has).`);
    else if (long) {
      const size = long.thumbs(0)?.T;
      const pooled = size ? `, each thumbnail ${size} × ${size}: a pixel is the largest weight of a block of about ${Math.round(long.T / size)} × ${Math.round(long.T / size)} cells` : '';
      const hidden = long.hideSpecial ? ' Thumbnails include the special tokens (hiding them applies to the Heads and Matrix views).' : '';
      setText(this.note, `The whole sequence, ${long.T.toLocaleString('en-US')} tokens${pooled}. Click a head for a window of its matrix.${hidden}`);
    }
  }

  // ---------------------------------------------------------------- keyboard

  private setFocusIndex(i: number, moveFocus: boolean): void {
    if (i < 0 || i >= this.cells.length) return;
    this.cells[this.focusIndex]?.root.setAttribute('tabindex', '-1');
    this.focusIndex = i;
    const c = this.cells[i];
    c.root.setAttribute('tabindex', '0');
    if (moveFocus) {
      c.root.focus();
      c.root.scrollIntoView({ block: 'nearest', inline: 'nearest' });
    }
  }

  private onKey(e: KeyboardEvent): void {
    if (this.cells.length === 0) return;
    const cols = this.cols;
    const i = this.focusIndex;
    if (e.key === 'Enter' || e.key === ' ') {
      e.preventDefault();
      this.open(this.cells[i]);
      return;
    }
    const to = gridMove(e, { r: Math.floor(i / cols), c: i % cols }, this.rows, cols);
    if (!to) return;
    e.preventDefault();
    const next = to.r * cols + to.c;
    this.setFocusIndex(next, true);
    const c = this.cells[next];
    this.ctx.announce(c.canvas.getAttribute('aria-label') ?? '');
  }

  private open(cell: Cell): void {
    this.setFocusIndex(this.cells.indexOf(cell), false);
    this.ctx.focusHead(cell.layer, cell.head < 0 ? 'mean' : cell.head, 'matrix');
  }

  /** Marks the focused layer/head cell. */
  private markFocused(): void {
    const { layer, agg } = this.ctx.ui;
    for (const c of this.cells) {
      const on = c.layer === layer && (agg === 'mean' ? c.head < 0 : c.head === agg);
      c.root.classList.toggle('selected', on);
      if (on) c.root.setAttribute('aria-selected', 'true');
      else c.root.removeAttribute('aria-selected');
    }
  }

  renderHover(): void {
    this.markFocused();
  }

  setVisible(visible: boolean): void {
    this.root.hidden = !visible;
  }

  focus(): void {
    const c = this.cells[this.focusIndex];
    if (c) c.root.focus();
  }
}
