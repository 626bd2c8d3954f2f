// The panel app: layout, controls, the three views, the top-words side box, and the message pump
// to and from the extension host.

import { PROTOCOL_VERSION, type HoverTokenMessage, type SelectHeadMessage } from '../src/protocol/webview';
import { aggregationLabel as aggLabel, aggregationToWire, parseAggregation as parseAgg, type Aggregation as Agg } from '../src/protocol/attention';
import { parseHostMessage, type ParsedHostMessage } from '../src/protocol/validate';
import { topAttended, type AttendedWord } from '../src/analysis';
import { RunData } from './store';
import { readTheme, watchTheme, type Theme } from './theme';
import type { TokenRef, UiState, View, ViewContext, ViewName } from './context';
import { el, setText, fmtWeight, clear } from './dom';
import { ModelView } from './views/model';
import { HeadView } from './views/head';
import { MatrixView } from './views/matrix';
import { post, getState, setState } from './vscode';

const TOP_K = 8;
const VIEWS: { name: ViewName; label: string }[] = [
  { name: 'model', label: 'Model' },
  { name: 'head', label: 'Heads' },
  { name: 'matrix', label: 'Matrix' },
];

/** What getState/setState keep: the UI state, versioned. */
interface Saved extends UiState {
  v: 1;
}

function readSaved(): Partial<UiState> {
  const s = getState() as Partial<Saved> | undefined;
  if (!s || typeof s !== 'object' || s.v !== 1) return {};
  const out: Partial<UiState> = {};
  if (s.view === 'model' || s.view === 'head' || s.view === 'matrix') out.view = s.view;
  if (Number.isInteger(s.layer) && (s.layer as number) >= 0) out.layer = s.layer;
  const agg = parseAgg(String(s.agg));
  if (agg !== null) out.agg = agg;
  if (Array.isArray(s.selected)) {
    const sel = s.selected.map((a) => parseAgg(String(a))).filter((a): a is Agg => a !== null);
    if (sel.length) out.selected = sel;
  }
  if (typeof s.hideSpecial === 'boolean') out.hideSpecial = s.hideSpecial;
  if (typeof s.threshold === 'number' && s.threshold >= 0 && s.threshold <= 1) out.threshold = s.threshold;
  return out;
}

export class App implements ViewContext {
  run: RunData | null = null;
  private pending: RunData | null = null;
  theme: Theme;
  ui: UiState;
  cursor: TokenRef | null = null;
  pinned = false;
  private hover: TokenRef | null = null;
  private lastPostedToken: number | null = null;
  private lastPostedRun = -1;
  private hoverFrame = 0;
  private rolloutTimer = 0;
  private lastSpoken = '';

  // DOM
  private readonly root: HTMLElement;
  private readonly titleEl: HTMLElement;
  private readonly metaEl: HTMLElement;
  private readonly statusEl: HTMLElement;
  private readonly noticesEl: HTMLElement;
  private readonly errorEl: HTMLElement;
  private readonly emptyEl: HTMLElement;
  private readonly controls: HTMLElement;
  private readonly tabs: HTMLButtonElement[] = [];
  private readonly layerSel: HTMLSelectElement;
  private readonly headSel: HTMLSelectElement;
  private readonly hideBox: HTMLInputElement;
  private readonly thrInput: HTMLInputElement;
  private readonly thrOut: HTMLOutputElement;
  private readonly legend: HTMLCanvasElement;
  private readonly main: HTMLElement;
  private readonly side: HTMLElement;
  private readonly sideTitle: HTMLElement;
  private readonly sideList: HTMLOListElement;
  private readonly sideHint: HTMLElement;
  private readonly live: HTMLElement;
  private readonly views: Record<ViewName, View>;
  private readonly modelView: ModelView;
  private readonly headView: HeadView;
  private readonly matrixView: MatrixView;

  constructor(root: HTMLElement) {
    this.root = root;
    this.theme = readTheme();
    this.ui = { view: 'model', layer: 0, agg: 'mean', selected: ['mean'], hideSpecial: false, threshold: 0, ...readSaved() };
    if (!this.ui.selected.length) this.ui.selected = [this.ui.agg];

    // Header
    this.titleEl = el('h1', { class: 'title', text: 'Attention Lens' });
    this.metaEl = el('span', { class: 'meta' });
    this.statusEl = el('span', { class: 'status', role: 'status', 'aria-live': 'polite' });
    const header = el('header', { class: 'top' }, this.titleEl, this.metaEl, this.statusEl);
    this.noticesEl = el('ul', { class: 'notices', 'aria-label': 'Notices', hidden: true });
    this.errorEl = el('div', { class: 'error', role: 'alert', hidden: true });

    // Controls
    const tablist = el('div', { class: 'tabs', role: 'tablist', 'aria-label': 'View' });
    for (const v of VIEWS) {
      const b = el('button', { class: 'tab', type: 'button', role: 'tab', id: `tab-${v.name}`, 'aria-controls': `view-${v.name}`, 'data-view': v.name, text: v.label });
      b.addEventListener('click', () => this.setView(v.name));
      tablist.append(b);
      this.tabs.push(b);
    }
    tablist.addEventListener('keydown', (e) => this.onTabKey(e));
    this.layerSel = el('select', { class: 'layer', 'aria-label': 'Layer' });
    this.layerSel.addEventListener('change', () => this.focusHead(Number(this.layerSel.value), this.ui.agg));
    this.headSel = el('select', { class: 'head', 'aria-label': 'Head' });
    this.headSel.addEventListener('change', () => {
      const a = parseAgg(this.headSel.value);
      if (a !== null) this.focusHead(this.ui.layer, a);
    });
    this.hideBox = el('input', { type: 'checkbox', class: 'hide-special', id: 'hide-special' });
    this.hideBox.checked = this.ui.hideSpecial;
    this.hideBox.addEventListener('change', () => this.setHideSpecial(this.hideBox.checked));
    this.thrInput = el('input', { type: 'range', class: 'threshold', id: 'threshold', min: 0, max: 0.5, step: 0.01, 'aria-label': 'Threshold: hide weights below' });
    this.thrInput.value = String(this.ui.threshold);
    this.thrOut = el('output', { class: 'thr-value', for: 'threshold' });
    this.thrInput.addEventListener('input', () => this.setThreshold(Number(this.thrInput.value)));
    this.legend = el('canvas', { class: 'legend', role: 'img', 'aria-label': 'Colour scale: background is 0, foreground is 1 (square-root scale)' });
    this.controls = el(
      'nav',
      { class: 'controls', 'aria-label': 'Attention controls' },
      tablist,
      el('label', { class: 'ctl' }, 'Layer ', this.layerSel),
      el('label', { class: 'ctl' }, 'Head ', this.headSel),
      el('label', { class: 'ctl check', for: 'hide-special' }, this.hideBox, ' Hide special tokens'),
      el('label', { class: 'ctl', for: 'threshold' }, 'Threshold ', this.thrInput, this.thrOut),
      el('span', { class: 'ctl legend-wrap', 'aria-hidden': 'false' }, el('span', { text: '0' }), this.legend, el('span', { text: '1' })),
    );

    // Views + side box
    this.modelView = new ModelView(this);
    this.headView = new HeadView(this);
    this.matrixView = new MatrixView(this);
    this.views = { model: this.modelView, head: this.headView, matrix: this.matrixView };
    for (const v of VIEWS) {
      const r = this.views[v.name].root;
      r.id = `view-${v.name}`;
      r.setAttribute('role', 'tabpanel');
      r.setAttribute('aria-labelledby', `tab-${v.name}`);
    }
    this.sideTitle = el('h2', { class: 'side-title', text: 'Top attended words' });
    this.sideHint = el('p', { class: 'side-hint', text: 'Hover or select a token to see the words it attends to most (sub-word pieces merged, weights summed).' });
    this.sideList = el('ol', { class: 'top-words', 'aria-label': 'Top attended words' });
    this.side = el('aside', { class: 'side', 'aria-label': 'Top attended words' }, this.sideTitle, this.sideHint, this.sideList);
    this.emptyEl = el('div', { class: 'empty' }, el('p', { text: 'Select text and run Attention Lens: Show Attention' }));
    this.main = el('main', { class: 'main' }, this.modelView.root, this.headView.root, this.matrixView.root, this.side);
    this.live = el('div', { class: 'sr-only', 'aria-live': 'polite', 'aria-atomic': 'true' });

    root.append(header, this.noticesEl, this.errorEl, this.controls, this.emptyEl, this.main, this.live);
    root.addEventListener('keydown', (e) => this.onGlobalKey(e));
    watchTheme(() => this.onTheme());
    this.paintLegend();
    this.setThresholdLabel();
    this.applyState();
    post({ type: 'ready', protocol: PROTOCOL_VERSION });
  }

  // ---------------------------------------------------------------- messages

  handle(raw: unknown): void {
    const m = parseHostMessage(raw);
    if (!m) return;
    try {
      this.dispatch(m);
    } catch (err) {
      // A message that passes validation but cannot be used (e.g. a layer of the wrong size)
      // is dropped; the view stays as it was.
      console.warn('attention-lens: dropped message', m.type, err);
    }
  }

  private dispatch(m: ParsedHostMessage): void {
    switch (m.type) {
      case 'run/start': {
        if (this.run?.runId === m.runId || this.pending?.runId === m.runId) return;
        const run = new RunData(m);
        run.setHideSpecial(this.ui.hideSpecial);
        this.hideError();
        if (!this.run) this.swapIn(run);
        else {
          this.pending = run;
          this.root.classList.add('updating');
        }
        return;
      }
      case 'run/thumbs': {
        const run = this.runById(m.runId);
        if (!run || !run.addThumbs(m)) return;
        // Only the model view paints thumbnails.
        if (run === this.pending) this.maybeSwap();
        else this.modelView.layerArrived(m.layer);
        return;
      }
      case 'run/layer': {
        const run = this.runById(m.runId);
        if (!run) return;
        if (!run.addLayer(m)) return;
        if (run.complete) this.markRun('complete', run.runId);
        if (run === this.pending) this.maybeSwap();
        else {
          for (const v of Object.values(this.views)) v.layerArrived(m.layer);
          this.continueRollout();
          this.scheduleHover();
        }
        this.updateMeta();
        return;
      }
      case 'run/done': {
        const run = this.runById(m.runId);
        if (!run) return;
        run.done = true;
        run.timings = m.timings;
        run.runtime = m.runtime;
        if (run === this.pending) this.swapIn(run);
        this.updateMeta();
        return;
      }
      case 'run/error': {
        if (this.pending?.runId === m.runId) {
          this.pending = null;
          this.root.classList.remove('updating');
        } else if (this.run && this.run.runId !== m.runId && m.runId < this.run.runId) return; // stale
        this.showError(m.message);
        return;
      }
      case 'status':
        setText(this.statusEl, m.message ?? '');
        return;
      case 'focus/token': {
        const run = this.run;
        if (!run || run.runId !== m.runId || m.tokenIndex >= run.T) return;
        if (run.hideSpecial && !run.keep[m.tokenIndex]) return;
        if (this.ui.view === 'model') this.setView('head');
        this.setCursor({ index: m.tokenIndex, side: 'q' }, true);
        this.headView.reveal(m.tokenIndex);
        this.matrixView.reveal(m.tokenIndex);
        return;
      }
    }
  }

  private runById(runId: number): RunData | null {
    return this.pending?.runId === runId ? this.pending : this.run?.runId === runId ? this.run : null;
  }

  /** The pending run takes over once the data the current view needs has arrived. */
  private maybeSwap(): void {
    const p = this.pending;
    if (!p) return;
    const layer = Math.min(this.ui.layer, p.L - 1);
    let ready = p.arrived > 0 || p.thumbsArrived > 0;
    if (this.ui.view !== 'model') ready = p.hasLayer(layer);
    if (ready || p.complete) this.swapIn(p);
  }

  private swapIn(run: RunData): void {
    const prev = this.run;
    const sameShape = prev !== null && prev.L === run.L && prev.H === run.H;
    this.run = run;
    this.pending = null;
    this.root.classList.remove('updating');
    this.root.dataset.runId = String(run.runId);
    this.root.dataset.state = 'ready';
    // Keep the user's focus where it still makes sense.
    const ui = this.ui;
    ui.layer = Math.min(Math.max(0, ui.layer), run.L - 1);
    const valid = (a: Agg): boolean => typeof a !== 'number' || a < run.H;
    if (!valid(ui.agg)) ui.agg = 'mean';
    ui.selected = ui.selected.filter(valid);
    if (!ui.selected.length) ui.selected = [ui.agg];
    const c = this.cursor;
    const keepCursor = c !== null && prev !== null && c.index < run.T && prev.tokens[c.index]?.text === run.tokens[c.index].text;
    if (!keepCursor) {
      this.cursor = null;
      this.pinned = false;
    }
    this.hover = null;
    clearTimeout(this.rolloutTimer);
    this.rolloutTimer = 0;
    this.fillSelects();
    this.updateMeta();
    this.emptyEl.hidden = true;
    this.main.hidden = false;
    this.controls.hidden = false;
    for (const v of Object.values(this.views)) v.setRun(sameShape);
    for (let l = 0; l < run.L; l++) {
      if (run.hasLayer(l)) for (const v of Object.values(this.views)) v.layerArrived(l);
      else if (run.thumbs(l)) this.modelView.layerArrived(l);
    }
    this.continueRollout();
    this.setView(ui.view, false);
    this.scheduleHover();
  }

  // ---------------------------------------------------------------- state

  private applyState(): void {
    const has = this.run !== null;
    this.emptyEl.hidden = has;
    this.main.hidden = !has;
    this.controls.hidden = !has;
    this.root.dataset.state = has ? 'ready' : 'empty';
    this.setView(this.ui.view, false);
  }

  private save(): void {
    const u = this.ui;
    const s: Saved = { v: 1, view: u.view, layer: u.layer, agg: u.agg, selected: u.selected, hideSpecial: u.hideSpecial, threshold: u.threshold };
    setState(s);
  }

  private fillSelects(): void {
    const run = this.run;
    if (!run) return;
    clear(this.layerSel);
    for (let l = 0; l < run.L; l++) this.layerSel.append(el('option', { value: l, text: `Layer ${l + 1}` }));
    clear(this.headSel);
    this.headSel.append(el('option', { value: 'mean', text: 'Mean of heads' }), el('option', { value: 'rollout', text: 'Rollout (layers 1…n)' }));
    for (let h = 0; h < run.H; h++) this.headSel.append(el('option', { value: h, text: `Head ${h + 1}` }));
    this.syncControls();
  }

  private syncControls(): void {
    this.layerSel.value = String(this.ui.layer);
    this.headSel.value = String(this.ui.agg);
    this.hideBox.checked = this.ui.hideSpecial;
    this.thrInput.value = String(this.ui.threshold);
    this.setThresholdLabel();
  }

  private updateMeta(): void {
    const run = this.run;
    if (!run) return;
    const parts = [run.model.id, `${run.L} layers × ${run.H} heads`, `${run.T} tokens`];
    if (run.source) parts.push(run.source);
    if (!run.complete) parts.push(`${run.arrived}/${run.L} layers`);
    if (run.done && run.runtime) parts.push(run.runtime);
    if (run.done && typeof run.timings.forwardMs === 'number') parts.push(`forward ${Math.round(run.timings.forwardMs)} ms`);
    setText(this.metaEl, parts.join(' · '));
    clear(this.noticesEl);
    if (run.truncation) this.noticesEl.append(el('li', { text: `Input truncated: showing the first ${run.truncation.kept} of ${run.truncation.total} tokens.` }));
    for (const n of run.notices) this.noticesEl.append(el('li', { text: n }));
    this.noticesEl.hidden = this.noticesEl.childElementCount === 0;
  }

  private showError(message: string): void {
    setText(this.errorEl, message);
    this.errorEl.hidden = false;
    if (!this.run) {
      this.root.dataset.state = 'error';
      this.emptyEl.hidden = true;
    }
  }

  private hideError(): void {
    this.errorEl.hidden = true;
    setText(this.errorEl, '');
  }

  setView(view: ViewName, save = true): void {
    if (view !== this.ui.view) this.hover = null; // the hovered element is no longer on screen
    this.ui.view = view;
    this.root.dataset.view = view;
    for (const b of this.tabs) {
      const on = b.dataset.view === view;
      b.setAttribute('aria-selected', on ? 'true' : 'false');
      b.tabIndex = on ? 0 : -1;
    }
    const has = this.run !== null;
    for (const v of VIEWS) this.views[v.name].setVisible(has && v.name === view);
    this.side.hidden = !has || view === 'model';
    if (save) this.save();
    this.scheduleHover();
  }

  focusHead(layer: number, agg: Agg, view?: ViewName): void {
    const run = this.run;
    if (!run) return;
    layer = Math.min(Math.max(0, layer), run.L - 1);
    if (typeof agg === 'number' && (agg < 0 || agg >= run.H)) return;
    const changed = layer !== this.ui.layer || agg !== this.ui.agg;
    this.ui.layer = layer;
    this.ui.agg = agg;
    if (changed || !this.ui.selected.includes(agg)) this.ui.selected = [agg];
    this.syncControls();
    if (changed) {
      const msg: SelectHeadMessage = { type: 'select/head', runId: run.runId, layer, ...aggregationToWire(agg) };
      post(msg);
      this.lastPostedToken = null; // the host should re-decorate with the new head
    }
    this.save();
    this.continueRollout();
    for (const v of Object.values(this.views)) v.render();
    if (view) {
      this.setView(view);
      this.views[view].focus();
    }
    this.scheduleHover();
    this.announce(`Layer ${layer + 1}, ${aggLabel(agg)}`);
  }

  setSelected(selected: Agg[]): void {
    this.ui.selected = selected;
    this.save();
    this.continueRollout();
    this.headView.render();
    this.scheduleHover();
  }

  private setHideSpecial(hide: boolean): void {
    this.ui.hideSpecial = hide;
    this.run?.setHideSpecial(hide);
    this.pending?.setHideSpecial(hide);
    if (hide && this.run && this.cursor && !this.run.keep[this.cursor.index]) {
      this.cursor = null;
      this.pinned = false;
    }
    this.save();
    this.continueRollout();
    for (const v of Object.values(this.views)) v.render();
    this.scheduleHover();
    this.postHover(true);
  }

  private setThreshold(t: number): void {
    if (!(t >= 0 && t <= 1)) return;
    this.ui.threshold = t;
    this.setThresholdLabel();
    this.save();
    for (const v of Object.values(this.views)) v.render();
  }

  private setThresholdLabel(): void {
    setText(this.thrOut, this.ui.threshold > 0 ? `≥ ${this.ui.threshold.toFixed(2)}` : 'off');
  }

  private onTheme(): void {
    this.theme = readTheme();
    this.paintLegend();
    for (const v of Object.values(this.views)) v.render();
  }

  private paintLegend(): void {
    const c = this.legend;
    c.width = 128;
    c.height = 1;
    const g = c.getContext('2d');
    if (!g) return;
    const img = g.createImageData(128, 1);
    const u32 = new Uint32Array(img.data.buffer);
    const lut = this.theme.heat;
    for (let i = 0; i < 128; i++) u32[i] = lut[Math.round((i / 127) ** 2 * (lut.length - 1))];
    g.putImageData(img, 0, 0);
  }

  // ---------------------------------------------------------------- rollout, computed in the background

  matrix(layer: number, agg: Agg): Float32Array | null {
    const run = this.run;
    if (!run) return null;
    const m = run.matrix(layer, agg);
    if (!m && agg === 'rollout') this.continueRollout();
    return m;
  }

  private wantsRollout(): boolean {
    const ui = this.ui;
    return ui.agg === 'rollout' || (ui.view === 'head' && ui.selected.includes('rollout'));
  }

  /** Computes one rollout layer per task until the focused layer is covered. */
  private continueRollout(): void {
    const run = this.run;
    if (!run || this.rolloutTimer || !this.wantsRollout()) return;
    if (run.rolloutProgress(run.hideSpecial) > this.ui.layer) return;
    this.rolloutTimer = window.setTimeout(() => {
      this.rolloutTimer = 0;
      if (this.run !== run) return;
      const did = run.stepRollout(this.ui.layer, run.hideSpecial);
      if (!did) return; // waiting for a layer to arrive
      if (run.rolloutProgress(run.hideSpecial) > this.ui.layer) {
        this.views.head.render();
        this.views.matrix.render();
        this.scheduleHover();
      } else {
        this.views.head.renderHover();
        this.views.matrix.renderHover();
        this.continueRollout();
      }
    }, 0);
  }

  // ---------------------------------------------------------------- hover / cursor

  active(): TokenRef | null {
    if (this.pinned && this.cursor) return this.cursor;
    return this.hover ?? this.cursor;
  }

  setHover(ref: TokenRef | null): void {
    const h = this.hover;
    if (h === ref || (h && ref && h.index === ref.index && h.side === ref.side)) return;
    this.hover = ref;
    this.scheduleHover();
  }

  setCursor(ref: TokenRef | null, pinned: boolean): void {
    this.cursor = ref;
    this.pinned = ref !== null && pinned;
    this.root.dataset.pinned = String(this.pinned);
    this.scheduleHover();
  }

  /** Hover repaints are coalesced to one per animation frame. */
  private scheduleHover(): void {
    this.postHover(false);
    if (this.hoverFrame) return;
    this.hoverFrame = requestAnimationFrame(() => {
      this.hoverFrame = 0;
      const t0 = performance.now();
      this.views[this.ui.view].renderHover();
      this.renderSide();
      this.root.dataset.hoverMs = (performance.now() - t0).toFixed(2);
    });
  }

  private postHover(force: boolean): void {
    const run = this.run;
    if (!run) return;
    const a = this.active();
    const idx = a ? a.index : null;
    if (!force && idx === this.lastPostedToken && run.runId === this.lastPostedRun) return;
    this.lastPostedToken = idx;
    this.lastPostedRun = run.runId;
    const msg: HoverTokenMessage = { type: 'hover/token', runId: run.runId, tokenIndex: idx, layer: this.ui.layer, ...aggregationToWire(this.ui.agg), hideSpecial: this.ui.hideSpecial };
    post(msg);
  }

  /** Weights of the active token under the current view's selection (row for a query, column for a key). */
  private activeWeights(a: TokenRef): Float32Array | null {
    const run = this.run!;
    const T = run.T;
    const aggs = this.ui.view === 'head' ? this.ui.selected : [this.ui.agg];
    const w = new Float32Array(T);
    let n = 0;
    for (const agg of aggs) {
      const m = this.matrix(this.ui.layer, agg);
      if (!m) continue;
      n++;
      if (a.side === 'q') for (let j = 0, b = a.index * T; j < T; j++) w[j] += m[b + j];
      else for (let i = 0; i < T; i++) w[i] += m[i * T + a.index];
    }
    if (!n) return null;
    if (n > 1) for (let j = 0; j < T; j++) w[j] /= n;
    return w;
  }

  private renderSide(): void {
    const run = this.run;
    if (!run || this.side.hidden) return;
    const a = this.active();
    let top: AttendedWord[] = [];
    if (a) {
      const w = this.activeWeights(a);
      if (w) top = topAttended(w, run.tokens, run.words, TOP_K);
      const tokenText = run.display[a.index];
      const sel = this.ui.view === 'head' ? this.ui.selected.map(aggLabel).join(' + ') : aggLabel(this.ui.agg);
      setText(
        this.sideTitle,
        a.side === 'q' ? `“${tokenText}” attends to` : `Attending to “${tokenText}”`,
      );
      setText(this.sideHint, `Token ${a.index + 1} of ${run.T} · layer ${this.ui.layer + 1} · ${sel}${this.pinned ? ' · pinned (Esc clears)' : ''}${w ? '' : ' · waiting for data'}`);
    } else {
      setText(this.sideTitle, 'Top attended words');
      setText(this.sideHint, 'Hover or select a token to see the words it attends to most (sub-word pieces merged, weights summed).');
    }
    this.side.dataset.token = a ? String(a.index) : '';
    // Keyboard users hear the token and its top words (pointer hovers stay quiet).
    if (a && this.hover === null && this.ui.view === 'head') {
      const key = `${a.index}:${a.side}:${this.ui.layer}:${this.ui.selected.join(',')}:${top.length}`;
      if (key !== this.lastSpoken) {
        this.lastSpoken = key;
        const words = top.slice(0, 3).map((t) => `${t.text} ${fmtWeight(t.weight)}`).join(', ');
        this.announce(`${this.sideTitle.textContent ?? ''}: ${words || 'no data yet'}`);
      }
    }
    // Reuse list items.
    const items = this.sideList.children;
    while (items.length < top.length) {
      const word = el('span', { class: 'word' });
      const bar = el('span', { class: 'bar' }, el('span', { class: 'fill' }));
      const val = el('span', { class: 'val' });
      this.sideList.append(el('li', {}, word, bar, val));
    }
    const max = top.length ? top[0].weight : 1;
    for (let i = 0; i < items.length; i++) {
      const li = items[i] as HTMLElement;
      if (i >= top.length) {
        li.hidden = true;
        continue;
      }
      li.hidden = false;
      const t = top[i];
      setText(li.children[0], t.text);
      (li.children[1].firstChild as HTMLElement).style.width = `${Math.round((t.weight / max) * 100)}%`;
      setText(li.children[2], fmtWeight(t.weight));
      li.title = t.start >= 0 ? `characters ${t.start}–${t.end}` : 'special token';
    }
  }

  announce(text: string): void {
    setText(this.live, '');
    // A fresh text node makes screen readers speak repeated messages too.
    requestAnimationFrame(() => setText(this.live, text));
  }

  reportPainted(painted: number, total: number): void {
    const run = this.run;
    if (!run) return;
    this.root.dataset.paintedLayers = String(painted);
    // From thumbnails, the grid can be whole before the full layers have all arrived ('complete').
    if (painted === total && total > 0) this.markRun('painted', run.runId);
  }

  /**
   * Milestones of a run, for tests and the benchmark: #app[data-painted-run] / [data-complete-run]
   * and a performance mark attention-lens:<what>:<runId> (the latest run's only: marks accumulate).
   */
  private markRun(what: 'painted' | 'complete', runId: number): void {
    const attr = what === 'painted' ? 'paintedRun' : 'completeRun';
    const prev = this.root.dataset[attr];
    if (prev === String(runId)) return;
    if (prev !== undefined) performance.clearMarks(`attention-lens:${what}:${prev}`);
    this.root.dataset[attr] = String(runId);
    performance.mark(`attention-lens:${what}:${runId}`);
  }

  // ---------------------------------------------------------------- keyboard

  private onTabKey(e: KeyboardEvent): void {
    const i = VIEWS.findIndex((v) => v.name === this.ui.view);
    let n = -1;
    if (e.key === 'ArrowRight') n = (i + 1) % VIEWS.length;
    else if (e.key === 'ArrowLeft') n = (i + VIEWS.length - 1) % VIEWS.length;
    else if (e.key === 'Home') n = 0;
    else if (e.key === 'End') n = VIEWS.length - 1;
    if (n < 0) return;
    e.preventDefault();
    this.setView(VIEWS[n].name);
    this.tabs[n].focus();
  }

  private onGlobalKey(e: KeyboardEvent): void {
    const t = e.target as HTMLElement;
    if (t.closest('select, input, textarea')) return;
    const run = this.run;
    if (!run || e.altKey || e.ctrlKey || e.metaKey) return;
    switch (e.key) {
      case 'Escape':
        if (this.cursor || this.hover) {
          this.hover = null;
          this.setCursor(null, false);
          e.preventDefault();
        }
        return;
      case '[':
      case ']': {
        e.preventDefault();
        this.focusHead(this.ui.layer + (e.key === ']' ? 1 : -1), this.ui.agg);
        return;
      }
      case ',':
      case '.': {
        e.preventDefault();
        const order: Agg[] = ['mean', 'rollout', ...Array.from({ length: run.H }, (_, h) => h)];
        const i = order.findIndex((a) => a === this.ui.agg);
        const n = (i + (e.key === '.' ? 1 : order.length - 1)) % order.length;
        this.focusHead(this.ui.layer, order[n]);
        return;
      }
      case '1':
      case '2':
      case '3': {
        e.preventDefault();
        const v = VIEWS[Number(e.key) - 1].name;
        this.setView(v);
        this.views[v].focus();
        return;
      }
    }
  }
}
