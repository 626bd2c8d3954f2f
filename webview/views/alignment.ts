// Alignment view: an encoder-decoder model's cross-attention as a rectangular heatmap, target
// tokens (what the decoder wrote, the queries) down the left and source tokens (the encoder's
// input, the keys) along the top: the picture every attention-for-translation tutorial draws.
// Built as the matrix view is: the heatmap is one pixel per cell (scaled by CSS, pixelated, cells
// square on screen), labels and highlights live on an overlay canvas redrawn on hover (labels
// thinned when there are many). The view reads everything through AlignmentContext, so the app
// decides which layer and head it shows.

import type { View } from '../context';
import type { Theme } from '../theme';
import { LUT_SIZE } from '../theme';
import { el, setText, fmtWeight } from '../dom';
import { imageFor, sizeCanvas } from '../heatmap';
import { poolBlocks } from '../../src/analysis';
import { gridMove, isArrowKey, type GridPos } from '../gridKeys';
import { Coalesced } from '../tasks';
import { pixelRatio } from '../pixelRatio';

/** What the alignment view draws: one cross-attention matrix, target tokens down, source tokens across. */
export interface AlignmentData {
  /** Target tokens as shown (rows, queries). */
  rows: readonly string[];
  /** Source tokens as shown (columns, keys). */
  cols: readonly string[];
  /** Special target tokens: labels dimmed. */
  rowDim: readonly boolean[];
  colDim: readonly boolean[];
  /** Targets the model wrote (generated): label underlined, dotted, in the charts' green. */
  rowWritten: readonly boolean[];
  /** [rows.length * cols.length] row-major weights in [0,1]; null while missing. */
  matrix: Float32Array | null;
  /** What it shows, e.g. "Layer 3 · mean of heads". */
  title: string;
  /** Shown centred when matrix is null, e.g. "Waiting for layer 3…". */
  waiting?: string;
}

/** A token the user points at. q: a target row, k: a source column. */
export interface AlignRef {
  index: number;
  side: 'q' | 'k';
}

export interface AlignmentContext {
  theme(): Theme;
  data(): AlignmentData | null;
  /** Weights below are drawn as background. */
  threshold(): number;
  /** The token to highlight (hovered or pinned): its row or column band. */
  active(): AlignRef | null;
  pinned(): boolean;
  setHover(ref: AlignRef | null): void;
  setCursor(ref: AlignRef | null, pinned: boolean): void;
  announce(text: string): void;
}

const MAX_LABEL_W = 110;
const PAD = 8;
/** Cells never get larger than this (a 5 x 7 sentence pair would otherwise fill the panel with blocks). */
const MAX_CELL = 64;
/** Above this many rows or columns the heatmap is max-pooled along that side (keeps the canvas small). */
const MAX_PIXELS = 1024;
const MAX = LUT_SIZE - 1;

/** Maps a weight to its palette index (0, the background, below the threshold). */
function idx(w: number, thr: number): number {
  if (!(w >= thr) || w <= 0) return 0;
  const i = (w * MAX + 0.5) | 0;
  return i > MAX ? MAX : i;
}

let acc = new Float32Array(0);

/**
 * Paints an R x C row-major matrix into w x h packed pixels (`dst`, a Uint32Array over an
 * ImageData): one pixel per cell when w === C and h === R, else each pixel the maximum over its
 * block of cells (max keeps a single strongly attended source token visible).
 */
export function fillHeatRect(dst: Uint32Array, m: Float32Array, R: number, C: number, w: number, h: number, lut: Uint32Array, thr: number): void {
  if (w >= C && h >= R) {
    const n = R * C;
    for (let p = 0; p < n; p++) dst[p] = lut[idx(m[p], thr)];
    return;
  }
  const n = w * h;
  if (acc.length < n) acc = new Float32Array(n);
  acc.fill(0, 0, n);
  const br = poolBlocks(R, h);
  const bc = poolBlocks(C, w);
  for (let i = 0; i < R; i++) {
    const row = i * C;
    const out = br[i] * w;
    for (let j = 0; j < C; j++) {
      const v = m[row + j];
      const o = out + bc[j];
      if (v > acc[o]) acc[o] = v;
    }
  }
  for (let p = 0; p < n; p++) dst[p] = lut[idx(acc[p], thr)];
}

/** Pixels along a side of R cells: R, or fewer when pooled. */
const pixelsFor = (n: number): number => (n <= MAX_PIXELS ? n : Math.ceil(n / Math.ceil(n / MAX_PIXELS)));

export class AlignmentView implements View {
  readonly root: HTMLElement;
  private readonly body: HTMLElement;
  private readonly heat: HTMLCanvasElement;
  private readonly heatCtx: CanvasRenderingContext2D;
  private readonly overlay: HTMLCanvasElement;
  private readonly g: CanvasRenderingContext2D;
  private readonly caption: HTMLElement;
  private readonly help: HTMLElement;
  private visible = false;
  private readonly frame = new Coalesced(() => this.paint());
  private needHeat = true;
  /** What the heat canvas shows, so a changed matrix, threshold or theme repaints it even without render(). */
  private heatOf: { m: Float32Array | null; R: number; C: number; thr: number; theme: Theme | null } = { m: null, R: 0, C: 0, thr: 0, theme: null };
  // geometry (CSS px)
  private left = 0;
  private top = 0;
  private cell = 0;
  private rowLabelW = 0;
  private colLabelH = 0;
  private labelFont = '';
  private labelsFor: AlignmentData | null = null;
  /** Labels shortened to fit, in the regular font. */
  private rowText: string[] = [];
  private colText: string[] = [];
  /** The charts' green (written target tokens), read once per theme. */
  private writtenCss = '';
  private writtenFor: Theme | null = null;
  /** Cell under the pointer / keyboard cell cursor. */
  private hoverCell: GridPos | null = null;
  private kbCell: GridPos | null = null;

  constructor(private readonly ctx: AlignmentContext) {
    this.heat = el('canvas', { class: 'al-heat', 'aria-hidden': 'true' });
    const hc = this.heat.getContext('2d');
    this.overlay = el('canvas', {
      class: 'al-overlay',
      tabindex: 0,
      role: 'application',
      'aria-roledescription': 'alignment matrix',
      'aria-label': 'Alignment matrix',
    });
    const g = this.overlay.getContext('2d');
    if (!hc || !g) throw new Error('no 2d canvas');
    this.heatCtx = hc;
    this.g = g;
    this.body = el('div', { class: 'al-body' }, this.heat, this.overlay);
    this.caption = el('p', { class: 'view-note al-caption' });
    this.help = el('p', {
      class: 'view-note al-help',
      text: 'Rows: target tokens (the translation; queries). Columns: source tokens (keys). Each row shows where the model looked in the source while writing that token. Arrow keys move the cell, Enter pins the row, Escape clears. Click a label to highlight its row or column.',
    });
    this.root = el('section', { class: 'view view-alignment', 'aria-label': 'Alignment view' }, this.caption, this.body, this.help);

    this.overlay.addEventListener('pointermove', (e) => this.onPointer(e));
    this.overlay.addEventListener('pointerleave', () => {
      this.hoverCell = null;
      this.ctx.setHover(null);
      this.schedule();
    });
    this.overlay.addEventListener('click', (e) => {
      const hit = this.hit(e);
      if (!hit) return;
      const a = this.ctx.active();
      const same = this.ctx.pinned() && a !== null && a.index === hit.ref.index && a.side === hit.ref.side;
      if (hit.cell) this.kbCell = hit.cell;
      this.ctx.setCursor(hit.ref, !same);
      this.schedule();
    });
    this.overlay.addEventListener('keydown', (e) => this.onKey(e));
    this.overlay.addEventListener('focus', () => this.schedule());
    this.overlay.addEventListener('blur', () => this.schedule());
    new ResizeObserver(() => this.schedule()).observe(this.body);
  }

  setRun(): void {
    this.hoverCell = null;
    this.kbCell = null;
    this.labelsFor = null;
    this.render();
  }

  /** The app decides which layer the view shows (data()); repaint in case it is the one that came. */
  layerArrived(): void {
    this.render();
  }

  render(): void {
    this.needHeat = true;
    this.schedule();
  }

  /** Called inside the app's hover animation frame: paint now (the heat only if it changed), not one frame later. */
  renderHover(): void {
    if (this.visible) this.frame.runNow();
  }

  /** Puts the keyboard cell on a token's row (q) or column (k), e.g. when the host asks to focus it. */
  reveal(ref: AlignRef): void {
    const d = this.ctx.data();
    if (!d) return;
    const cur = this.kbCell ?? { r: 0, c: 0 };
    if (ref.side === 'q' && ref.index >= 0 && ref.index < d.rows.length) this.kbCell = { r: ref.index, c: Math.min(cur.c, d.cols.length - 1) };
    if (ref.side === 'k' && ref.index >= 0 && ref.index < d.cols.length) this.kbCell = { r: Math.min(cur.r, d.rows.length - 1), c: ref.index };
    this.schedule();
  }

  setVisible(visible: boolean): void {
    this.visible = visible;
    this.root.hidden = !visible;
    if (visible) this.render();
  }

  focus(): void {
    this.overlay.focus();
  }

  private schedule(): void {
    if (this.visible) this.frame.request();
  }

  private paint(): void {
    const d = this.ctx.data();
    const R = d ? d.rows.length : 0;
    const C = d ? d.cols.length : 0;
    if (!d || R === 0 || C === 0) {
      this.heat.hidden = true;
      this.layoutOverlay();
      this.g.clearRect(0, 0, this.overlay.width, this.overlay.height);
      setText(this.caption, d ? `${d.title} · no tokens` : '');
      this.overlay.setAttribute('aria-label', 'Alignment matrix (empty)');
      return;
    }
    this.heat.hidden = false;
    this.layout(d);
    const h = this.heatOf;
    const theme = this.ctx.theme();
    const thr = this.ctx.threshold();
    if (this.needHeat || h.m !== d.matrix || h.R !== R || h.C !== C || h.thr !== thr || h.theme !== theme) {
      this.needHeat = false;
      this.paintHeat(d, theme, thr);
    }
    this.paintOverlay(d);
  }

  /** Sizes the overlay to the body (CSS px, backing store at the pixel ratio). */
  private layoutOverlay(): void {
    const dpr = pixelRatio();
    const ow = Math.max(1, this.body.clientWidth);
    const oh = Math.max(1, this.body.clientHeight);
    const os = this.overlay.style;
    if (os.width !== `${ow}px`) os.width = `${ow}px`;
    if (os.height !== `${oh}px`) os.height = `${oh}px`;
    sizeCanvas(this.overlay, Math.round(ow * dpr), Math.round(oh * dpr));
  }

  /** Measures labels and places the heatmap: square cells, as large as the body allows for the longer side. */
  private layout(d: AlignmentData): void {
    const t = this.ctx.theme();
    const font = `${Math.round(Math.max(10, Math.min(13, t.fontSize)))}px ${t.fontFamily}`;
    if (this.labelsFor !== d || this.labelFont !== font) {
      this.labelsFor = d;
      this.labelFont = font;
      this.g.font = font;
      const fit = (labels: readonly string[]): { w: number; text: string[] } => {
        let w = 0;
        for (const s of labels) w = Math.max(w, this.g.measureText(s).width);
        w = Math.min(MAX_LABEL_W, Math.ceil(w) + 10);
        return { w, text: labels.map((s) => this.shorten(s, w - 6)) };
      };
      const r = fit(d.rows);
      const c = fit(d.cols);
      this.rowLabelW = r.w;
      this.rowText = r.text;
      this.colLabelH = c.w;
      this.colText = c.text;
    }
    if (this.writtenFor !== t) {
      this.writtenFor = t;
      this.writtenCss = getComputedStyle(document.body).getPropertyValue('--vscode-charts-green').trim() || t.focusCss;
    }
    const R = d.rows.length;
    const C = d.cols.length;
    const bw = this.body.clientWidth;
    const bh = this.body.clientHeight;
    this.left = this.rowLabelW + PAD;
    this.top = this.colLabelH + PAD;
    const cell = Math.min((bw - this.left - PAD) / C, (bh - this.top - PAD) / R, MAX_CELL);
    // A body too small for any cells still gets a heatmap 60 px on its longer side (as the matrix view's floor).
    this.cell = Math.max(cell, 60 / Math.max(R, C));
    const hs = this.heat.style;
    const px = (n: number): string => `${n}px`;
    const w = px(Math.round(this.cell * C * 100) / 100);
    const h = px(Math.round(this.cell * R * 100) / 100);
    if (hs.left !== px(this.left)) hs.left = px(this.left);
    if (hs.top !== px(this.top)) hs.top = px(this.top);
    if (hs.width !== w) hs.width = w;
    if (hs.height !== h) hs.height = h;
    this.layoutOverlay();
  }

  /** `text` cut to `maxW` with an ellipsis, in the overlay's current font. */
  private shorten(text: string, maxW: number): string {
    const g = this.g;
    if (g.measureText(text).width <= maxW) return text;
    while (text.length > 1 && g.measureText(text + '…').width > maxW) text = text.slice(0, -1);
    return text + '…';
  }

  private paintHeat(d: AlignmentData, theme: Theme, thr: number): void {
    const R = d.rows.length;
    const C = d.cols.length;
    const m = d.matrix;
    this.overlay.setAttribute('aria-label', `${d.title}: cross-attention, ${R} target by ${C} source tokens. Arrow keys move between cells.`);
    this.heat.classList.toggle('waiting', !m || m.length < R * C);
    const stale = this.heatOf;
    this.heatOf = { m, R, C, thr, theme };
    const w = pixelsFor(C);
    const h = pixelsFor(R);
    if (!m || m.length < R * C) {
      // Old pixels stay (dimmed) while the next matrix comes, unless they are of another shape.
      if (stale.R !== R || stale.C !== C) {
        sizeCanvas(this.heat, w, h);
        this.heatCtx.clearRect(0, 0, w, h);
      }
      return;
    }
    sizeCanvas(this.heat, w, h);
    const { img, u32 } = imageFor(this.heatCtx, w, h);
    fillHeatRect(u32, m, R, C, w, h, theme.heat, thr);
    this.heatCtx.putImageData(img, 0, 0);
  }

  private paintOverlay(d: AlignmentData): void {
    const t = this.ctx.theme();
    const g = this.g;
    const dpr = pixelRatio();
    const W = this.overlay.width / dpr;
    const H = this.overlay.height / dpr;
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, W, H);
    const R = d.rows.length;
    const C = d.cols.length;
    const { left, top, cell } = this;
    const width = cell * C;
    const height = cell * R;
    const fontPx = parseFloat(this.labelFont) || 12;
    const step = Math.max(1, Math.ceil((fontPx * 1.25) / cell));
    const active = this.ctx.active();
    const ap = active && active.index >= 0 && active.index < (active.side === 'q' ? R : C) ? active.index : -1;
    const focused = document.activeElement === this.overlay;
    const kb = this.kbCell && this.kbCell.r < R && this.kbCell.c < C ? this.kbCell : null;
    const hover = this.hoverCell && this.hoverCell.r < R && this.hoverCell.c < C ? this.hoverCell : null;
    const rowHi = active?.side === 'q' ? ap : hover ? hover.r : -1;
    const colHi = active?.side === 'k' ? ap : hover ? hover.c : kb && active?.side === 'q' ? kb.c : -1;
    const m = d.matrix && d.matrix.length >= R * C ? d.matrix : null;

    // Frame, and a note while data is missing.
    g.strokeStyle = t.dimCss;
    g.lineWidth = 1;
    g.strokeRect(left - 0.5, top - 0.5, width + 1, height + 1);
    if (!m) {
      g.fillStyle = t.fgCss;
      g.font = this.labelFont;
      g.textAlign = 'center';
      g.textBaseline = 'middle';
      g.fillText(d.waiting ?? 'Waiting for cross-attention…', left + width / 2, top + height / 2, Math.max(width, W - left - PAD));
    }

    // Highlight bands for the active row / column, outlines for the hovered and keyboard cells.
    g.strokeStyle = t.focusCss;
    g.lineWidth = Math.max(1, Math.min(2, cell / 3));
    g.globalAlpha = 0.9;
    if (rowHi >= 0) g.strokeRect(left, top + rowHi * cell, width, cell);
    if (colHi >= 0) g.strokeRect(left + colHi * cell, top, cell, height);
    g.globalAlpha = 1;
    if (hover && cell >= 4 && (hover.r !== rowHi || hover.c !== colHi)) {
      g.strokeStyle = t.fgCss;
      g.lineWidth = 1;
      g.strokeRect(left + hover.c * cell + 0.5, top + hover.r * cell + 0.5, cell - 1, cell - 1);
    }
    if (kb && focused) {
      g.strokeStyle = t.fgCss;
      g.lineWidth = 2;
      g.strokeRect(left + kb.c * cell - 1, top + kb.r * cell - 1, cell + 2, cell + 2);
    }

    // Labels: every `step`-th, plus the highlighted ones in bold. Row labels end at the matrix's
    // left edge; column labels are rotated to read upwards and start at its top edge.
    g.textBaseline = 'middle';
    // Column labels that fit their cell (letters, short words) stand upright, as they are read.
    g.font = `bold ${this.labelFont}`;
    const upright = this.colText.every((x) => g.measureText(x).width + 4 <= cell);
    const label = (i: number, hi: boolean, col: boolean): void => {
      const text = hi ? this.boldText(col ? d.cols[i] : d.rows[i], col ? this.colLabelH : this.rowLabelW) : col ? this.colText[i] : this.rowText[i];
      g.font = hi ? `bold ${this.labelFont}` : this.labelFont;
      g.save();
      if (col && upright) g.translate(left + (i + 0.5) * cell, top - 4 - fontPx / 2);
      else if (col) {
        g.translate(left + (i + 0.5) * cell, top - 4);
        g.rotate(-Math.PI / 2);
      } else g.translate(left - 4, top + (i + 0.5) * cell);
      g.textAlign = col ? (upright ? 'center' : 'left') : 'right';
      const w = g.measureText(text).width;
      if (hi) {
        g.fillStyle = t.focusCss;
        g.globalAlpha = 0.25;
        g.fillRect(col ? (upright ? -w / 2 - 3 : -3) : -w - 3, -fontPx / 2 - 2, w + 6, fontPx + 4);
        g.globalAlpha = 1;
      }
      g.fillStyle = (col ? d.colDim[i] : d.rowDim[i]) ? t.dimCss : t.fgCss;
      g.fillText(text, 0, 0);
      if (!col && d.rowWritten[i]) {
        // Written by the model: a dotted underline in the charts' green, as .tok.generated.
        g.strokeStyle = this.writtenCss;
        g.lineWidth = 1;
        g.setLineDash([1, 2]);
        g.beginPath();
        const y = Math.round(fontPx / 2) + 1.5;
        g.moveTo(-w, y);
        g.lineTo(0, y);
        g.stroke();
        g.setLineDash([]);
      }
      g.restore();
    };
    // Thinned labels leave room around the highlighted one.
    const clear = (i: number, hi: number): boolean => hi < 0 || Math.abs(i - hi) * cell >= fontPx * 1.1;
    for (let i = 0; i < R; i += step) if (clear(i, rowHi)) label(i, false, false);
    if (rowHi >= 0) label(rowHi, true, false);
    for (let j = 0; j < C; j += step) if (clear(j, colHi)) label(j, false, true);
    if (colHi >= 0) label(colHi, true, true);

    // Caption: the hovered cell, else the keyboard cell while focused, else the highlighted crossing.
    const at = hover ?? (focused && kb ? kb : rowHi >= 0 && colHi >= 0 ? { r: rowHi, c: colHi } : null);
    let s = `${d.title} · ${R} target × ${C} source tokens`;
    if (at && m) s = `${d.title} · ${cellText(d, m, at.r, at.c)}`;
    setText(this.caption, s);
  }

  /** A label shortened for the bold font (the highlighted one). */
  private boldText(text: string, labelW: number): string {
    const g = this.g;
    g.font = `bold ${this.labelFont}`;
    return this.shorten(text, labelW - 6);
  }

  private hit(e: MouseEvent): { ref: AlignRef; cell: GridPos | null } | null {
    const d = this.ctx.data();
    if (!d || d.rows.length === 0 || d.cols.length === 0 || this.cell <= 0) return null;
    const R = d.rows.length;
    const C = d.cols.length;
    const rect = this.overlay.getBoundingClientRect();
    const x = e.clientX - rect.left;
    const y = e.clientY - rect.top;
    const { left, top, cell } = this;
    const r = Math.floor((y - top) / cell);
    const c = Math.floor((x - left) / cell);
    const inRows = y >= top && r >= 0 && r < R;
    const inCols = x >= left && c >= 0 && c < C;
    if (inRows && inCols) return { ref: { index: r, side: 'q' }, cell: { r, c } };
    if (inRows && x < left) return { ref: { index: r, side: 'q' }, cell: null };
    if (inCols && y < top) return { ref: { index: c, side: 'k' }, cell: null };
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
    const d = this.ctx.data();
    if (!d) return;
    const R = d.rows.length;
    const C = d.cols.length;
    if (R === 0 || C === 0) return;
    const cur = this.kbCell && this.kbCell.r < R && this.kbCell.c < C ? this.kbCell : { r: 0, c: 0 };
    switch (e.key) {
      case 'Enter':
      case ' ': {
        e.preventDefault();
        this.kbCell = cur;
        const a = this.ctx.active();
        const same = this.ctx.pinned() && a !== null && a.side === 'q' && a.index === cur.r;
        this.ctx.setCursor({ index: cur.r, side: 'q' }, !same);
        this.schedule();
        return;
      }
      case 'Escape':
        if (!this.kbCell && !this.ctx.pinned()) return;
        e.preventDefault();
        e.stopPropagation();
        this.kbCell = null;
        this.ctx.setCursor(null, false);
        this.schedule();
        return;
    }
    // The first arrow press only shows the keyboard cell, at the top left.
    const next = !this.kbCell && isArrowKey(e.key) ? cur : gridMove(e, cur, R, C, 10);
    if (!next) return;
    e.preventDefault();
    this.kbCell = next;
    this.hoverCell = null;
    this.ctx.setHover(null);
    this.ctx.setCursor({ index: next.r, side: 'q' }, false);
    const m = d.matrix && d.matrix.length >= R * C ? d.matrix : null;
    this.ctx.announce(m ? cellText(d, m, next.r, next.c) : `“${iso(d.rows[next.r])}” → “${iso(d.cols[next.c])}”: no data`);
    this.schedule();
  }
}

/** A cell as the caption and announcements say it: “target” → “source”: weight. */
function cellText(d: AlignmentData, m: Float32Array, r: number, c: number): string {
  return `“${iso(d.rows[r])}” → “${iso(d.cols[c])}”: ${fmtWeight(m[r * d.cols.length + c])}`;
}

/** A token isolated from the text around it (FSI … PDI): a right-to-left source token must not reorder the caption around it. */
function iso(token: string): string {
  return `\u2068${token}\u2069`;
}
