// Where a long run's window is and what the Heads and Matrix views see of it. LongWindows holds the
// window (its first token and size) and the cache of its blocks; WindowContext is the ViewContext
// those two views get: their run is the WindowRun, and every token index they exchange with the app
// is mapped between the window (local) and the whole run (global), so hovers, the cursor, the side
// list and the host all speak of the run's own tokens. WindowBar says which tokens the window holds
// and moves or zooms it. The model view keeps the app's context: it draws the whole run.

import type { Aggregation } from '../src/protocol/attention';
import type { RowsRequestMessage } from '../src/protocol/webview';
import type { TokenRef, ViewName } from './context';
import type { ExportSource } from './export/exporter';
import { el, setText } from './dom';
import type { RunData } from './store';
import { DEFAULT_WINDOW, WINDOW_SIZES, WindowCache, WindowRun } from './longWindow';

const fmt = (x: number): string => x.toLocaleString('en-US');

/**
 * Marks a button off (or on again): disabled, and looking it (panel.css dims only some kinds of
 * button when disabled; the views' chips and the side list's Why? are not among them).
 */
export function setOff(b: HTMLButtonElement, off: boolean): void {
  b.disabled = off;
  b.style.opacity = off ? '0.4' : '';
  b.style.cursor = off ? 'default' : '';
}

/** Why "Why this weight?" cannot open on a run, or null (the host says the same). */
export function whyRefusal(run: RunData | null): string | null {
  return run?.long ? `Why this weight? covers runs of up to ${fmt(run.long.threshold)} tokens; this one has ${fmt(run.T)}.` : null;
}

/** Why a run cannot be pinned or compared, or null. */
export function compareRefusal(run: RunData | null): string | null {
  return run?.long ? `Compare needs whole matrices; runs of more than ${fmt(run.long.threshold)} tokens keep rows on demand instead and cannot be a baseline or compared.` : null;
}

/** The window of the long run on screen: where it is, how wide, and its blocks. */
export class LongWindows {
  /** Tokens a side asked for (the zoom). */
  size = DEFAULT_WINDOW;
  private w0 = 0;
  private cache: WindowCache | null = null;
  private win: WindowRun | null = null;

  constructor(
    private readonly post: (m: RowsRequestMessage) => void,
    /** The window moved or changed size (the views get the new WindowRun). */
    private readonly moved: () => void,
  ) {}

  /** The run on screen: a window of it when it is long (a new run's centred on `focus` when given), else none. */
  setRun(run: RunData | null, focus: number | null): void {
    if (!run?.long) {
      this.cache = null;
      this.win = null;
      return;
    }
    if (this.cache?.run === run) return;
    this.cache = new WindowCache(run, this.post);
    this.win = null;
    this.w0 = focus === null ? 0 : this.centredOn(focus, run.T);
  }

  /** The long run whose window this is, or null. */
  get run(): RunData | null {
    return this.cache?.run ?? null;
  }

  /** The window the views show; null without a long run. */
  get view(): WindowRun | null {
    const c = this.cache;
    if (!c) return null;
    const w0 = this.clamp(this.w0, c.run.T);
    if (!this.win || this.win.w0 !== w0 || this.win.size !== this.size) this.win = new WindowRun(c.run, w0, this.size, c);
    return this.win;
  }

  private clamp(w0: number, T: number): number {
    return Math.max(0, Math.min(T - Math.min(this.size, T), Math.round(w0)));
  }

  private centredOn(g: number, T: number): number {
    return this.clamp(g - Math.floor(this.size / 2), T);
  }

  /** Moves the window to start at `w0` (clamped); true when it moved. */
  moveTo(w0: number): boolean {
    const c = this.cache;
    if (!c) return false;
    w0 = this.clamp(w0, c.run.T);
    if (w0 === this.view!.w0) return false;
    this.w0 = w0;
    c.dropErrors();
    this.moved();
    return true;
  }

  /** Moves the window by `halves` half windows; returns the tokens it moved by (0 at the run's end). */
  moveBy(halves: number): number {
    const v = this.view;
    if (!v) return 0;
    const from = v.w0;
    this.moveTo(from + halves * Math.max(1, Math.floor(v.n / 2)));
    return this.view!.w0 - from;
  }

  /** Centres the window on the whole run's token `g` when it is outside it; true when it moved. */
  follow(g: number): boolean {
    const v = this.view;
    if (!v || v.local(g) >= 0) return false;
    return this.moveTo(this.centredOn(g, v.base.T));
  }

  /** Another window size, on the same centre (or on token `centre` when given). */
  setSize(size: number, centre?: number): void {
    const v = this.view;
    if (!v || !WINDOW_SIZES.includes(size) || size === this.size) return;
    const mid = centre ?? v.w0 + Math.floor(v.n / 2);
    this.size = size;
    this.w0 = this.centredOn(mid, v.base.T);
    this.cache!.dropErrors();
    this.moved();
  }

  /** Zooms in (fewer tokens, dir 1) or out (more, dir -1); false at the end of the choices. */
  zoom(dir: 1 | -1, centre?: number): boolean {
    const i = WINDOW_SIZES.indexOf(this.size);
    const next = WINDOW_SIZES[i - dir];
    if (next === undefined) return false;
    this.setSize(next, centre);
    return true;
  }

  /** The host's run/rows for a window block: stored, true; false when it was something else. */
  receive(m: Parameters<WindowCache['receive']>[0]): boolean {
    return this.cache?.receive(m) ?? false;
  }

  setHideSpecial(hide: boolean): void {
    this.win?.setHideSpecial(hide);
  }

  /** Blocks the host failed to compute are asked for again when next shown (the focus changed). */
  retry(): void {
    this.cache?.dropErrors();
  }
}

/** What the window context needs of the app beyond a ViewContext. */
export interface WindowHost extends ExportSource {
  readonly cursor: TokenRef | null;
}

/**
 * The Heads and Matrix views' context: the app's, except that for a long run their run is the
 * window and token indices are local to it.
 */
export class WindowContext implements ExportSource {
  constructor(
    private readonly app: WindowHost,
    private readonly nav: LongWindows,
  ) {}

  /** The window when the app shows a long run (in the Heads or Matrix view), else null. */
  private get win(): WindowRun | null {
    const r = this.app.run;
    return r?.long && this.nav.run === r ? this.nav.view : null;
  }

  get run(): RunData | null {
    return this.win ?? this.app.run;
  }

  get theme() {
    return this.app.theme;
  }

  get ui() {
    return this.app.ui;
  }

  get pinned(): boolean {
    return this.app.pinned;
  }

  get cursor(): TokenRef | null {
    return this.toLocal(this.app.cursor);
  }

  active(): TokenRef | null {
    return this.toLocal(this.app.active());
  }

  /** A token of the whole run as the views see it: its place in the window, or null outside it. */
  toLocal(ref: TokenRef | null): TokenRef | null {
    const w = this.win;
    if (!ref || !w) return ref;
    const i = w.local(ref.index);
    return i < 0 ? null : { index: i, side: ref.side };
  }

  private toGlobal(ref: TokenRef | null): TokenRef | null {
    const w = this.win;
    return ref && w ? { index: w.global(ref.index), side: ref.side } : ref;
  }

  setHover(ref: TokenRef | null): void {
    this.app.setHover(this.toGlobal(ref));
  }

  setCursor(ref: TokenRef | null, pinned: boolean): void {
    this.app.setCursor(this.toGlobal(ref), pinned);
  }

  focusHead(layer: number, agg: Aggregation, view?: ViewName): void {
    this.app.focusHead(layer, agg, view);
  }

  setSelected(selected: Aggregation[]): void {
    this.app.setSelected(selected);
  }

  announce(text: string): void {
    this.app.announce(text);
  }

  matrix(layer: number, agg: Aggregation): Float32Array | null {
    const w = this.win;
    return w ? w.matrix(layer, agg) : this.app.matrix(layer, agg);
  }

  reportPainted(painted: number, total: number): void {
    this.app.reportPainted(painted, total);
  }

  canExplain(): boolean {
    return this.win ? false : this.app.canExplain();
  }

  explain(query: number, key: number): void {
    const w = this.win;
    this.app.explain(w ? w.global(query) : query, w ? w.global(key) : key);
  }

  viewRoot(): HTMLElement {
    return this.app.viewRoot();
  }

  repaintView(): void {
    this.app.repaintView();
  }

  windowStep(from: number, dir: 1 | -1, keep?: number): { index: number; keep: number } | null {
    const w = this.win;
    if (!w) return null;
    const base = w.base;
    const T = base.T;
    let g = w.global(from) + dir;
    while (g >= 0 && g < T && !base.keep[g]) g += dir;
    if (g < 0 || g >= T) return null;
    const n = w.n;
    let w0 = w.w0 + dir * Math.max(1, Math.floor(n / 2));
    w0 = Math.max(0, Math.min(T - n, w0));
    if (g < w0) w0 = g;
    else if (g >= w0 + n) w0 = g - n + 1;
    // The other coordinate of a matrix cell stays in the window when both fit.
    const kg = keep === undefined ? -1 : w.global(keep);
    if (kg >= 0 && Math.abs(g - kg) < n) {
      if (kg < w0) w0 = kg;
      else if (kg >= w0 + n) w0 = kg - n + 1;
    }
    this.nav.moveTo(w0);
    const now = this.win!;
    return { index: now.local(g), keep: kg < 0 ? -1 : now.local(kg) };
  }

  windowPage(dir: 1 | -1): number {
    return this.win ? this.nav.moveBy(dir) : 0;
  }
}

/** The bar over a window view: which tokens it holds, earlier / later, and the window's size. */
export class WindowBar {
  readonly root: HTMLElement;
  private readonly text: HTMLElement;
  private readonly earlier: HTMLButtonElement;
  private readonly later: HTMLButtonElement;
  private readonly sizeSel: HTMLSelectElement;

  constructor(actions: { by(halves: number): void; size(n: number): void }) {
    this.text = el('span', { class: 'window-range' });
    this.earlier = el('button', { type: 'button', class: 'chip window-earlier', text: '◀ Earlier', title: 'Half a window earlier (PageUp)' });
    this.later = el('button', { type: 'button', class: 'chip window-later', text: 'Later ▶', title: 'Half a window later (PageDown)' });
    this.sizeSel = el('select', { class: 'window-size', 'aria-label': 'Window size (tokens); + and − zoom' });
    for (const n of WINDOW_SIZES) this.sizeSel.append(el('option', { value: n, text: `${n} tokens` }));
    this.earlier.addEventListener('click', () => actions.by(-1));
    this.later.addEventListener('click', () => actions.by(1));
    this.sizeSel.addEventListener('change', () => actions.size(Number(this.sizeSel.value)));
    this.root = el('div', { class: 'chips window-bar', role: 'group', 'aria-label': 'Window of a long input', hidden: true }, this.earlier, this.later, el('label', { class: 'ctl' }, 'Window ', this.sizeSel), this.text);
    this.root.style.alignItems = 'center';
  }

  update(win: WindowRun | null): void {
    this.root.hidden = win === null;
    if (!win) return;
    setText(this.text, `${win.range} (window); rows do not sum to 1 within a window.`);
    this.text.title = 'A long input keeps no whole matrix: this is the block where these tokens are both the queries and the keys. Each row leaves out what the token puts on keys before the window.';
    setOff(this.earlier, win.w0 === 0);
    setOff(this.later, win.w0 + win.n >= win.base.T);
    this.sizeSel.value = String(win.size);
  }
}
