// The panel app: puts the page together (chrome, the three views, the side list) and is the
// ViewContext they share: the UI state, the focused layer and head, and the hovered or cursor
// token, whose repaints it coalesces to one per frame and reports to the host.
// Messages and runs: runs.ts; controls: chrome.ts; keys: keys.ts. A long run: the model view draws
// it whole from thumbnails, the Heads and Matrix views a window of it (longView.ts), and the side
// list its tokens' rows as the host sends them on each hover.

import { PROTOCOL_VERSION, type ExportRequestMessage, type HoverTokenMessage, type RowsRequestMessage, type SelectHeadMessage } from '../src/protocol/webview';
import { aggregationLabel, aggregationToWire, type Aggregation, type ExplainCell, type Weighting } from '../src/protocol/attention';
import type { ParsedHostMessage } from '../src/protocol/validate';
import type { RunData } from './store';
import { readTheme, watchTheme, type Theme } from './theme';
import type { ShownPart, TokenRef, UiState, View, ViewContext, ViewName } from './context';
import { el, setText } from './dom';
import { Chrome, VIEWS } from './chrome';
import { Compare, curIndexOf, isDiff, viewIndexOf } from './compare';
import { HelpDialog } from './help';
import { onGlobalKey, onTabKey, type KeyTarget } from './keys';
import { RolloutSteps } from './rollout';
import { Runs } from './runs';
import { loadUiState, saveUiState } from './savedState';
import { SideList } from './side';
import { Coalesced } from './tasks';
import { ModelView } from './views/model';
import { HeadView } from './views/head';
import { MatrixView } from './views/matrix';
import { ExplainView } from './views/explain';
import { AlignmentView, type AlignmentData } from './views/alignment';
import { post } from './vscode';
import { exportView, type ExportSource } from './export/exporter';
import { LongWindows, WindowBar, WindowContext, compareRefusal, whyRefusal } from './longView';

/** A long run's hovered token whose rows the host has not sent after this long is asked for by the panel itself. */
const ROWS_FALLBACK_MS = 1500;

export class App implements ViewContext, KeyTarget, ExportSource {
  theme: Theme;
  readonly ui: UiState;
  cursor: TokenRef | null = null;
  pinned = false;
  private hover: TokenRef | null = null;
  private lastPostedToken: number | null = null;
  private lastPostedRun = -1;
  private readonly hoverFrame = new Coalesced(() => this.paintHover());
  private readonly runs: Runs;
  private readonly rollout: RolloutSteps;
  private readonly compare = new Compare();
  /** What the views were last given: the run on screen, or its difference from the baseline. */
  private viewRun: RunData | null = null;
  /** The run whose value norms were last asked of the host. */
  private valuesAsked = -1;
  /** A long run's window in the Heads and Matrix views, the context they see it through, and its bars. */
  private readonly windows: LongWindows;
  private readonly win: WindowContext;
  private readonly bars: WindowBar[];
  /** What the panel changed of the UI's choices to show a long run (rollout, value weighting), for the notices. */
  private longNotes: string[] = [];
  /** A long run's token whose rows the panel asked for itself (the host sent none), and the timer that will. */
  private rowsAsked: { runId: number; q: number; error: string | null } | null = null;
  private rowsTimer = 0;

  private readonly root: HTMLElement;
  private readonly chrome: Chrome;
  private readonly help = new HelpDialog();
  private readonly main: HTMLElement;
  private readonly side: SideList;
  /** Screen-reader announcements. */
  private readonly live: HTMLElement;
  private readonly views: Record<ViewName, View>;
  private readonly modelView: ModelView;
  private readonly headView: HeadView;
  private readonly matrixView: MatrixView;
  private readonly explainView: ExplainView;
  private readonly alignment: AlignmentView;

  constructor(root: HTMLElement) {
    this.root = root;
    this.theme = readTheme();
    this.ui = loadUiState();
    this.runs = new Runs(root, this.ui, {
      shown: (run, prev) => this.showRun(run, prev),
      thumbsArrived: (layer, part) => {
        if (this.showsPart(part)) this.modelView.layerArrived(layer); // only the model view paints thumbnails
        // A long run's windows are asked for once it is complete (the host answers rows then).
        if (this.runs.current?.long && this.runs.current.complete) this.windowMoved();
      },
      layerArrived: (layer, part) => {
        if (part === 'cross') {
          if (this.crossShown()) {
            this.alignment.layerArrived();
            this.reportCrossPainted();
          }
          return;
        }
        if (!this.showsPart(part)) return;
        for (const v of Object.values(this.views)) v.layerArrived(layer);
        this.rollout.continue();
        this.scheduleHover();
      },
      metaChanged: () => {
        const run = this.runs.current;
        if (!run) return;
        this.chrome.updateMeta(run, this.longNotes);
        this.showCompare(); // a run that completes can be pinned
      },
      status: (message) => this.chrome.setStatus(message),
      error: (message) => this.showError(message),
      clearError: () => this.clearError(),
      focusToken: (index) => this.focusToken(index),
      baseline: (runId) => this.setBaseline(runId),
      exportRequest: (m) => void this.exportRequest(m),
      explainOpen: (m) => this.openExplain(m.runId, m.cell),
      explainData: (m) => this.explainView.receive(m),
      valuesData: (m) => this.receiveValues(m),
      rows: (run, m) => this.receiveRows(run, m),
    });
    this.windows = new LongWindows(
      (m) => post(m),
      () => this.windowMoved(),
    );
    this.win = new WindowContext(this, this.windows);
    this.rollout = new RolloutSteps(() => this.run, this.ui, {
      covered: () => {
        this.headView.render();
        this.matrixView.render();
        this.scheduleHover();
      },
      stepped: () => {
        this.headView.renderHover();
        this.matrixView.renderHover();
      },
    });
    this.chrome = new Chrome(this.ui, {
      view: (v) => this.setView(v),
      layer: (l) => this.focusHead(l, this.ui.agg),
      head: (a) => this.focusHead(this.ui.layer, a),
      hideSpecial: (hide) => this.setHideSpecial(hide),
      weights: (w) => this.setWeights(w),
      part: (p) => this.setPart(p),
      continueRun: () => {
        const run = this.runs.current;
        if (run) post({ type: 'run/continue', runId: run.runId });
      },
      threshold: (t) => this.setThreshold(t),
      tabKey: (e) => onTabKey(e, this),
      help: () => this.help.toggle(),
      exportAs: (c) => post({ type: 'export/menu', ...c }),
      pinBaseline: () => {
        const run = this.runs.current;
        if (run) post({ type: 'compare/pin', runId: run.runId });
      },
      clearBaseline: () => post({ type: 'compare/clear' }),
      difference: (on) => {
        this.compare.setWanted(on);
        this.applyWeights();
        this.refreshView();
      },
    });

    this.modelView = new ModelView(this);
    // The Heads and Matrix views see a long run's window (their context maps its tokens).
    this.headView = new HeadView(this.win);
    this.matrixView = new MatrixView(this.win);
    this.bars = [this.headView.root, this.matrixView.root].map((root) => {
      const bar = new WindowBar({ by: (halves) => this.pageWindow(halves), size: (n) => this.windows.setSize(n, this.active()?.index) });
      root.prepend(bar.root);
      return bar;
    });
    this.views = { model: this.modelView, head: this.headView, matrix: this.matrixView };
    for (const v of VIEWS) {
      const r = this.views[v.name].root;
      r.id = `view-${v.name}`;
      r.setAttribute('role', 'tabpanel');
      r.setAttribute('aria-labelledby', `tab-${v.name}`);
    }
    this.side = new SideList(this, { rowsNote: (q) => this.rowsNote(q), window: () => (this.runs.current?.long ? this.windows.view : null) });
    this.explainView = new ExplainView({
      theme: () => this.theme,
      request: (runId, cell) => post({ type: 'explain/request', runId, cell }),
      announce: (text) => this.announce(text),
    });
    this.alignment = new AlignmentView({
      theme: () => this.theme,
      data: () => this.alignmentData(),
      threshold: () => this.ui.threshold,
      active: () => this.active(),
      pinned: () => this.pinned,
      setHover: (ref) => this.setHover(ref),
      setCursor: (ref, pinned) => this.setCursor(ref, pinned),
      announce: (text) => this.announce(text),
    });
    this.alignment.root.id = 'view-alignment';
    this.main = el('main', { class: 'main' }, this.modelView.root, this.headView.root, this.matrixView.root, this.alignment.root, this.side.root);
    this.live = el('div', { class: 'sr-only', 'aria-live': 'polite', 'aria-atomic': 'true' });

    const c = this.chrome;
    root.append(c.header, c.notices, c.error, c.previousNote, c.controls, c.empty, this.main, this.live, this.help.root, this.explainView.root);
    // On the document, not the root: right after the panel takes focus (Focus Attention Panel) or a
    // click on a blank part, the body has focus, and ? and the other panel keys must still work.
    document.addEventListener('keydown', (e) => onGlobalKey(e, this));
    watchTheme(() => this.onTheme());
    c.paintLegend(this.theme);
    c.showThreshold();
    this.showLoaded(false);
    this.root.dataset.state = 'empty';
    this.setView(this.ui.view, false);
    post({ type: 'ready', protocol: PROTOCOL_VERSION });
  }

  /**
   * The run the views show: the run on screen, or in Difference mode its difference from the
   * baseline; for an encoder-decoder run, its encoder part when that is shown (else the decoder's,
   * whose layers and heads the cross-attention shares).
   */
  get run(): RunData | null {
    const cur = this.runs.current;
    if (cur?.encoder && this.ui.part === 'encoder') return cur.encoder;
    return this.compare.view ?? cur;
  }

  // ---------------------------------------------------------------- encoder-decoder runs

  /** Whether the shown run's attention of `part` (absent: the main one) is what the three views draw. */
  private showsPart(part: 'encoder' | 'cross' | undefined): boolean {
    const cur = this.runs.current;
    if (!cur?.seq2seq) return part === undefined;
    return (part ?? 'decoder') === this.ui.part;
  }

  /** An encoder-decoder run shows its cross-attention: the Alignment view alone. */
  private crossShown(): boolean {
    return this.runs.current?.seq2seq != null && this.ui.part === 'cross';
  }

  /** The Alignment view has every layer to show: the run's 'painted' milestone (the model view, hidden, reports none). */
  private reportCrossPainted(): void {
    const run = this.runs.current;
    if (run?.cross && run.cross.arrived === run.L) this.runs.reportPainted(run.L, run.L);
  }

  /** Cross, encoder or decoder attention of an encoder-decoder run (Attention select). */
  private setPart(part: ShownPart): void {
    if (part === this.ui.part) return;
    this.ui.part = part;
    this.save();
    // Token indices mean other tokens in another part.
    this.cursor = null;
    this.pinned = false;
    this.hover = null;
    const run = this.runs.current;
    if (run) this.showRun(run, run);
    this.announce(part === 'cross' ? 'Cross-attention: target tokens on source tokens' : `${part === 'encoder' ? 'Encoder' : 'Decoder'} self-attention`);
  }

  /** The Alignment view's matrix: cross-attention of the focused layer and head. */
  private alignmentData(): AlignmentData | null {
    const run = this.runs.current;
    const enc = run?.encoder;
    if (!run?.cross || !enc) return null;
    const { layer, agg } = this.ui;
    const rollout = agg === 'rollout';
    const matrix = rollout ? null : run.cross.matrix(layer, agg);
    return {
      rows: run.display,
      cols: enc.display,
      rowDim: run.tokens.map((t) => t.special),
      colDim: enc.tokens.map((t) => t.special),
      rowWritten: run.tokens.map((t) => t.generated === true),
      matrix,
      title: `Layer ${layer + 1} · ${aggregationLabel(agg)} · cross-attention`,
      waiting: rollout ? 'Rollout follows self-attention through the layers: pick the mean or a head for cross-attention.' : `Waiting for layer ${layer + 1}…`,
    };
  }

  handle(raw: unknown): void {
    this.runs.handle(raw);
  }

  // ---------------------------------------------------------------- runs

  /** A run is on screen now: keep the user's layer, head and token where they still make sense. */
  private showRun(run: RunData, prev: RunData | null): void {
    // An open "Why this weight?" explains the previous run's numbers: it goes with that run.
    this.explainView.close();
    // An encoder-decoder run opens on its alignment (cross-attention), unless the last one showed another part.
    if (run.seq2seq && run !== prev && !prev?.seq2seq) this.ui.part = 'cross';
    this.compare.setCurrent(run);
    const view = this.run!;
    const old = this.viewRun;
    const sameShape = prev !== null && prev.L === run.L && prev.H === run.H;
    const ui = this.ui;
    ui.layer = Math.min(Math.max(0, ui.layer), view.L - 1);
    const valid = (a: Aggregation): boolean => typeof a !== 'number' || a < view.H;
    if (!valid(ui.agg)) ui.agg = 'mean';
    ui.selected = ui.selected.filter(valid);
    if (!ui.selected.length) ui.selected = [ui.agg];
    const c = this.cursor;
    const keepCursor = c !== null && old !== null && c.index < view.T && old.tokens[c.index]?.text === view.tokens[c.index].text;
    if (!keepCursor) {
      this.cursor = null;
      this.pinned = false;
    }
    this.hover = null;
    this.showLong(run);
    this.applyWeights();
    this.chrome.fillSelects(view);
    this.chrome.updateMeta(run, this.longNotes);
    this.showLoaded(true);
    this.alignment.setRun();
    this.attachViews(view, sameShape);
    this.setView(ui.view, false);
    this.scheduleHover();
  }

  // ---------------------------------------------------------------- long runs

  /**
   * A run is on screen: when it is long, its window (centred on the cursor), and the choices it
   * cannot show (rollout, value weighting) fall back to the mean and attention, with a notice.
   */
  private showLong(run: RunData): void {
    this.windows.setRun(run, this.cursor?.index ?? null);
    this.longNotes = [];
    clearTimeout(this.rowsTimer);
    this.rowsAsked = null;
    if (!run.long) return;
    const ui = this.ui;
    const threshold = run.long.threshold.toLocaleString('en-US');
    this.longNotes.push(
      `Long input: ${run.T.toLocaleString('en-US')} tokens, above ${threshold}. The Model view shows the whole sequence (each thumbnail max-pooled); the Heads and Matrix views show a window of the matrix around the focused token, its rows computed on demand. Rollout, value weighting, Compare and Why this weight? need whole matrices and are off.`,
    );
    if (ui.agg === 'rollout' || ui.selected.includes('rollout')) {
      if (ui.agg === 'rollout') ui.agg = 'mean';
      ui.selected = ui.selected.filter((a) => a !== 'rollout');
      if (!ui.selected.length) ui.selected = [ui.agg];
      this.longNotes.push(`${run.longRefusal({ agg: 'rollout' })} Showing the mean of heads instead.`);
    }
    if (ui.weights === 'value') {
      ui.weights = 'attention';
      this.longNotes.push(`${run.longRefusal({ agg: 'mean', weights: 'value' })} Showing attention α.`);
    }
    if (this.longNotes.length > 1) this.save();
  }

  /** The window moved, changed size, or can now be asked for: the Heads and Matrix views get it. */
  private windowMoved(): void {
    const win = this.windows.view;
    for (const bar of this.bars) bar.update(win && this.runs.current?.long ? win : null);
    if (!win) return;
    this.headView.setRun();
    this.matrixView.setRun();
    this.scheduleHover();
  }

  /** Moves a long run's window by half windows (the bar's buttons, PageUp / PageDown outside the views). */
  private pageWindow(halves: number): void {
    if (this.windows.moveBy(halves) === 0) return;
    const w = this.windows.view!;
    this.announce(`${w.range} (window)`);
  }

  /** Rows of a long run arrived (a hover's, or a window's), or the host could not compute them. */
  private receiveRows(run: RunData, m: Extract<ParsedHostMessage, { type: 'run/rows' }>): void {
    if (run !== this.runs.current) return;
    const asked = this.rowsAsked;
    if (asked && asked.runId === run.runId && m.error !== undefined && m.count === 1 && m.start === asked.q) asked.error = m.error;
    if (this.windows.receive(m)) {
      this.headView.render();
      this.matrixView.render();
    }
    this.scheduleHover();
  }

  /**
   * The host sends a long run's hovered token's rows on its own (it fetches them for the editor);
   * when none came after a while (no editor to light, say) the panel asks for them once itself.
   */
  private wantRows(run: RunData, q: number | null): void {
    clearTimeout(this.rowsTimer);
    if (q === null || run.hasRows(q) || run.longRefusal({ agg: this.ui.agg })) return;
    if (this.rowsAsked?.runId === run.runId && this.rowsAsked.q === q) return;
    this.rowsTimer = window.setTimeout(() => {
      const a = this.active();
      if (run !== this.runs.current || a?.index !== q || run.hasRows(q)) return;
      this.rowsAsked = { runId: run.runId, q, error: null };
      post({ type: 'rows/request', runId: run.runId, start: q, count: 1 } satisfies RowsRequestMessage);
    }, ROWS_FALLBACK_MS);
  }

  /** What the side list says while a long run's token has no rows: computing, or why there are none. */
  rowsNote(q: number): string {
    const asked = this.rowsAsked;
    const run = this.runs.current;
    if (asked && run && asked.runId === run.runId && asked.q === q && asked.error !== null) return `No rows for this token: ${asked.error}`;
    return 'Computing this token’s rows…';
  }

  /** Gives the views `view` (the run, or its difference from the baseline) and paints what has arrived of it. */
  private attachViews(view: RunData, sameShape: boolean): void {
    this.viewRun = view;
    this.rollout.stop();
    for (const bar of this.bars) bar.update(view.long ? this.windows.view : null);
    for (const v of Object.values(this.views)) v.setRun(sameShape);
    for (let l = 0; l < view.L; l++) {
      if (view.hasLayer(l)) for (const v of Object.values(this.views)) v.layerArrived(l);
      else if (view.thumbs(l)) this.modelView.layerArrived(l);
    }
    this.rollout.continue();
    this.showCompare();
  }

  // ---------------------------------------------------------------- compare

  /** The host pinned run `runId` as the baseline (null: cleared). */
  private setBaseline(runId: number | null): void {
    const run = runId === null ? null : this.runs.find(runId);
    // A run this panel no longer holds cannot be compared with: no baseline, on both sides.
    if (runId !== null && !run) {
      post({ type: 'compare/clear' });
      return;
    }
    this.compare.setBaseline(run);
    this.refreshView();
    this.announce(run ? `Pinned ${run.source || `run ${run.runId}`} as the baseline` : 'Baseline cleared');
  }

  /** After the baseline or the Difference toggle changed: the views get what they should show now. */
  private refreshView(): void {
    const view = this.run;
    const old = this.viewRun;
    if (!view || view === old) {
      this.showCompare();
      return;
    }
    // The cursor follows its token onto the new axis (a deleted token has none in the current run).
    const c = this.cursor;
    if (c && old) {
      const i = viewIndexOf(view, curIndexOf(old, c.index));
      if (i < 0) this.setCursor(null, false);
      else this.cursor = { ...c, index: i };
    }
    this.hover = null;
    this.attachViews(view, true);
    this.setView(this.ui.view, false);
    this.scheduleHover();
  }

  /** The Compare controls and what they say. */
  private showCompare(): void {
    const cur = this.runs.current;
    const base = this.compare.baseline;
    const view = this.run;
    this.root.dataset.compare = isDiff(view) ? 'difference' : base ? 'baseline' : '';
    let note = '';
    if (base) {
      const name = base.source || `run ${base.runId}`;
      const refusal = this.compare.refusal;
      if (refusal) note = refusal;
      else if (!isDiff(view)) note = `Baseline: ${name}${base === cur ? ' (this run)' : ''}.`;
      else if (this.ui.weights === 'value') note = 'The difference compares attention α, not value-weighted attention: turn Difference off to see the value weighting.';
      else if (view.base === view.cur) note = 'This run is the baseline: edit the text or select other text, then compare.';
      else {
        const { a, b } = view.align.axis;
        const inserted = a.filter((i) => i < 0).length;
        const deleted = b.filter((j) => j < 0).length;
        note = `Now − baseline (${name}): red more attention, blue less; grey: ${inserted} inserted, ${deleted} deleted token${inserted + deleted === 1 ? '' : 's'}.`;
      }
    }
    const longRefusal = compareRefusal(cur);
    if (longRefusal && base) note = longRefusal;
    this.chrome.showCompare({ canPin: (cur?.complete ?? false) && !cur?.seq2seq && !longRefusal, pinTitle: longRefusal ?? undefined, hasBaseline: base !== null, on: isDiff(view), available: base !== null && this.compare.refusal === null, note });
  }

  /** The empty-page message, or the controls and views. */
  private showLoaded(has: boolean): void {
    this.chrome.empty.hidden = has;
    this.main.hidden = !has;
    this.chrome.controls.hidden = !has;
    this.chrome.exportMenu.root.hidden = !has;
  }

  private showError(message: string): void {
    // A failed run leaves no stale progress behind; the run still on screen is marked as the previous one.
    this.chrome.setStatus('');
    const run = this.run;
    this.chrome.showError(message, run ? run.source || `run ${run.runId}` : undefined);
    this.root.classList.toggle('previous', run !== null);
    if (!run) {
      this.root.dataset.state = 'error';
      this.chrome.empty.hidden = true;
    }
  }

  private clearError(): void {
    this.chrome.hideError();
    this.root.classList.remove('previous');
  }

  /** The host asked to show a token (e.g. the editor's cursor): pin it in a view that shows tokens. */
  private focusToken(curIndex: number): void {
    const index = viewIndexOf(this.run!, curIndex);
    if (index < 0) return;
    if (this.ui.view === 'model') this.setView('head');
    this.setCursor({ index, side: 'q' }, true);
    // A long run's window follows the token (setCursor): the views reveal its place in the window.
    const local = this.win.toLocal({ index, side: 'q' })?.index ?? -1;
    if (local < 0) return;
    this.headView.reveal(local);
    this.matrixView.reveal(local);
  }

  // ---------------------------------------------------------------- why this weight?

  canExplain(): boolean {
    return this.run !== null && !isDiff(this.run) && !this.runs.current?.seq2seq && !this.runs.current?.long;
  }

  explain(query: number, key: number): void {
    const run = this.run;
    const refusal = whyRefusal(this.runs.current);
    if (refusal) {
      this.refuse(refusal);
      return;
    }
    if (this.runs.current?.seq2seq) {
      this.announce('Why this weight? does not cover encoder-decoder models yet.');
      return;
    }
    if (!run || isDiff(run)) {
      this.announce('Why this weight? explains the run’s own weights: turn off the difference first.');
      return;
    }
    const { layer, agg, selected } = this.ui;
    // One head on screen: that head. The head view may draw several: the first single head among them.
    const single = this.ui.view === 'head' ? selected.find((a) => typeof a === 'number') : agg;
    let head = typeof single === 'number' ? single : -1;
    let note: string | undefined;
    if (head < 0) {
      // The mean or rollout has no query and key of its own: explain the head that gives the pair the most weight.
      let best = -1;
      for (let h = 0; h < run.H; h++) {
        const w = run.matrix(layer, h)?.[query * run.T + key] ?? -1;
        if (w > best) [best, head] = [w, h];
      }
      if (best < 0) return;
      note = `The panel shows the ${aggregationLabel(this.ui.view === 'head' ? selected[0] : agg)}, which has no query or key of its own: this is head ${head + 1}, the head of layer ${layer + 1} that gives this pair the most weight.`;
    }
    this.openExplain(run.runId, { layer, head, query, key }, note);
  }

  /** Opens the view on a cell of run `runId` (a run this panel holds, the cell inside it) and asks the host for its data. */
  private openExplain(runId: number, cell: ExplainCell, note?: string): void {
    const run = this.runs.find(runId);
    if (!run || cell.layer >= run.L || cell.head >= run.H || cell.query >= run.T || cell.key >= run.T) return;
    const refusal = whyRefusal(run);
    if (refusal) return this.refuse(refusal);
    this.explainView.open({ runId, cell, labels: run.display, renormalised: run.hideSpecial, note });
  }

  // ---------------------------------------------------------------- export

  private async exportRequest(m: ExportRequestMessage): Promise<void> {
    // A long run's Heads and Matrix views draw its window: that is what they export.
    post(await exportView(this.runs.current?.long && this.ui.view !== 'model' ? this.win : this, m));
  }

  /** Says why something cannot be done, in the status line and to screen readers. */
  private refuse(reason: string): void {
    this.chrome.setStatus(reason);
    this.announce(reason);
  }

  viewRoot(): HTMLElement {
    return this.views[this.ui.view].root;
  }

  repaintView(): void {
    this.views[this.ui.view].renderHover();
  }

  reportPainted(painted: number, total: number): void {
    this.runs.reportPainted(painted, total);
  }

  // ---------------------------------------------------------------- state

  private save(): void {
    saveUiState(this.ui);
  }

  setView(view: ViewName, save = true): void {
    if (view !== this.ui.view) this.hover = null; // the hovered element is no longer on screen
    this.ui.view = view;
    this.root.dataset.view = view;
    this.chrome.selectTab(view);
    const has = this.run !== null;
    const cross = this.crossShown();
    this.root.dataset.part = this.runs.current?.seq2seq ? this.ui.part : '';
    this.chrome.showTabs(!cross);
    for (const v of VIEWS) this.views[v.name].setVisible(has && !cross && v.name === view);
    this.alignment.setVisible(has && cross);
    if (cross) this.reportCrossPainted();
    this.side.root.hidden = !has || cross || view === 'model';
    if (save) this.save();
    this.scheduleHover();
  }

  focusView(view: ViewName): void {
    if (this.crossShown()) this.alignment.focus();
    else this.views[view].focus();
  }

  focusTab(i: number): void {
    this.chrome.focusTab(i);
  }

  focusHead(layer: number, agg: Aggregation, view?: ViewName): void {
    const run = this.run;
    if (!run) return;
    layer = Math.min(Math.max(0, layer), run.L - 1);
    if (typeof agg === 'number' && (agg < 0 || agg >= run.H)) return;
    const refusal = run.longRefusal({ agg });
    if (refusal) {
      this.chrome.syncControls();
      return this.refuse(refusal);
    }
    const changed = layer !== this.ui.layer || agg !== this.ui.agg;
    this.ui.layer = layer;
    this.ui.agg = agg;
    if (changed || !this.ui.selected.includes(agg)) this.ui.selected = [agg];
    this.chrome.syncControls();
    if (changed) {
      this.windows.retry();
      const msg: SelectHeadMessage = { type: 'select/head', runId: this.runs.current?.runId ?? run.runId, layer, ...aggregationToWire(agg), ...this.wireWeights(), ...this.wirePart() };
      post(msg);
      this.lastPostedToken = null; // the host should re-decorate with the new head
    }
    this.save();
    this.rollout.continue();
    for (const v of Object.values(this.views)) v.render();
    this.alignment.render();
    if (view) {
      this.setView(view);
      this.focusView(view);
    }
    this.scheduleHover();
    this.announce(`Layer ${layer + 1}, ${aggregationLabel(agg)}`);
  }

  setSelected(selected: Aggregation[]): void {
    const refusal = this.run?.longRefusal({ agg: 'rollout' });
    if (refusal && selected.includes('rollout')) {
      this.refuse(refusal);
      selected = selected.filter((a) => a !== 'rollout');
      if (!selected.length) return;
    }
    this.ui.selected = selected;
    this.save();
    this.rollout.continue();
    this.headView.render();
    this.scheduleHover();
  }

  private setHideSpecial(hide: boolean): void {
    this.ui.hideSpecial = hide;
    this.runs.setHideSpecial(hide);
    this.compare.setHideSpecial(hide);
    this.windows.setHideSpecial(hide);
    if (hide && this.run && this.cursor && !this.run.keep[this.cursor.index]) {
      this.cursor = null;
      this.pinned = false;
    }
    this.save();
    this.rollout.continue();
    for (const v of Object.values(this.views)) v.render();
    this.scheduleHover();
    this.postHover(true);
  }

  // ---------------------------------------------------------------- value-weighted attention

  /** Attention or value-weighted attention in every view and hover (V, the Weights select). */
  setWeights(w: Weighting): void {
    const refusal = w === 'value' ? this.runs.current?.longRefusal({ agg: 'mean', weights: 'value' }) : null;
    if (refusal) {
      this.chrome.syncControls();
      return this.refuse(refusal);
    }
    if (w === this.ui.weights) return;
    if (this.runs.current?.seq2seq) {
      this.announce('Value weighting does not cover encoder-decoder models yet.');
      return;
    }
    this.ui.weights = w;
    this.save();
    this.chrome.syncControls();
    this.applyWeights();
    this.showCompare();
    const run = this.run;
    if (run) post({ type: 'select/head', runId: run.runId, layer: this.ui.layer, ...aggregationToWire(this.ui.agg), ...this.wireWeights() } satisfies SelectHeadMessage);
    this.rollout.continue();
    for (const v of Object.values(this.views)) v.render();
    this.scheduleHover();
    this.postHover(true);
    this.announce(w === 'value' ? 'Value-weighted attention' : 'Attention weights');
  }

  /**
   * The run on screen weighs as the UI asks (attention in Difference mode: it compares attention),
   * and its value norms are asked of the host once when value weighting needs them.
   */
  private applyWeights(): void {
    const cur = this.runs.current;
    if (!cur) return;
    const w = this.compare.on || cur.seq2seq || cur.long ? 'attention' : this.ui.weights;
    cur.setWeights(w);
    if (w === 'value' && !cur.values && this.valuesAsked !== cur.runId) {
      this.valuesAsked = cur.runId;
      this.chrome.setStatus('Computing value norms…');
      post({ type: 'values/request', runId: cur.runId });
    }
  }

  /** The host's answer to values/request. */
  private receiveValues(m: Extract<ParsedHostMessage, { type: 'values/data' }>): void {
    const run = this.runs.find(m.runId);
    if (!run) return;
    if (m.error !== undefined) {
      this.valuesAsked = -1;
      this.chrome.setStatus(`Value weighting: ${m.error}`);
      if (run === this.runs.current) this.setWeights('attention');
      return;
    }
    run.setValueNorms(m.data);
    this.chrome.setStatus('');
    if (run !== this.runs.current) return;
    this.rollout.continue();
    for (const v of Object.values(this.views)) v.render();
    this.scheduleHover();
    this.postHover(true);
  }

  /** The hover and select messages' part field: which attention of an encoder-decoder run the indices and the focus are of. */
  private wirePart(): Pick<HoverTokenMessage, 'part'> {
    const p = this.runs.current?.seq2seq ? this.ui.part : 'decoder';
    return p === 'decoder' ? {} : { part: p };
  }

  /** The hover and select messages' weighting field. */
  private wireWeights(): Pick<HoverTokenMessage, 'weights'> {
    return this.ui.weights === 'value' && !isDiff(this.run) && !this.runs.current?.seq2seq && !this.runs.current?.long ? { weights: 'value' } : {};
  }

  private setThreshold(t: number): void {
    if (!(t >= 0 && t <= 1)) return;
    this.ui.threshold = t;
    this.chrome.showThreshold();
    this.save();
    for (const v of Object.values(this.views)) v.render();
  }

  private onTheme(): void {
    this.theme = readTheme();
    this.chrome.paintLegend(this.theme);
    for (const v of Object.values(this.views)) v.render();
    this.explainView.render();
  }

  matrix(layer: number, agg: Aggregation): Float32Array | null {
    const run = this.run;
    if (!run) return null;
    const m = run.matrix(layer, agg);
    if (!m && agg === 'rollout') this.rollout.continue();
    return m;
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
    // A long run's window follows a cursor that is outside it (the editor's, a key past the window's edge).
    if (ref && this.runs.current?.long) this.windows.follow(ref.index);
    this.scheduleHover();
  }

  /** Zooms a long run's window in (fewer tokens) or out, around the active token; false without one. */
  zoomWindow(dir: 1 | -1): boolean {
    if (!this.runs.current?.long || this.ui.view === 'model') return false;
    if (!this.windows.zoom(dir, this.active()?.index)) return true;
    this.announce(`${this.windows.view!.range} (window)`);
    return true;
  }

  /** PageUp / PageDown outside the views: a long run's window by half a window; false without one. */
  pageKey(dir: 1 | -1): boolean {
    if (!this.runs.current?.long || this.ui.view === 'model') return false;
    this.pageWindow(dir);
    return true;
  }

  showHelp(): void {
    this.help.open();
  }

  clearToken(): boolean {
    if (!this.cursor && !this.hover) return false;
    this.hover = null;
    this.setCursor(null, false);
    return true;
  }

  /** The host hears of the new token at once; the repaint waits for the frame. */
  private scheduleHover(): void {
    this.postHover(false);
    this.hoverFrame.request();
  }

  private paintHover(): void {
    const t0 = performance.now();
    if (this.crossShown()) this.alignment.renderHover();
    else this.views[this.ui.view].renderHover();
    this.side.render(this.hover === null);
    this.root.dataset.hoverMs = (performance.now() - t0).toFixed(2);
  }

  private postHover(force: boolean): void {
    const run = this.run;
    if (!run) return;
    const a = this.active();
    // The host knows the current run's tokens: a token of the difference axis is sent as that (a deleted one as none).
    const cur = a ? curIndexOf(run, a.index) : -1;
    const idx = cur >= 0 ? cur : null;
    if (!force && idx === this.lastPostedToken && run.runId === this.lastPostedRun) return;
    this.lastPostedToken = idx;
    this.lastPostedRun = run.runId;
    if (run.long) this.wantRows(run, idx);
    const msg: HoverTokenMessage = {
      type: 'hover/token',
      runId: this.runs.current?.runId ?? run.runId,
      tokenIndex: idx,
      layer: this.ui.layer,
      ...aggregationToWire(this.ui.agg),
      hideSpecial: this.ui.hideSpecial,
      ...this.wireWeights(),
      ...this.wirePart(),
      ...(this.crossShown() && a?.side === 'k' ? { side: 'k' as const } : {}),
    };
    post(msg);
  }

  announce(text: string): void {
    setText(this.live, '');
    // A fresh text node makes screen readers speak repeated messages too.
    requestAnimationFrame(() => setText(this.live, text));
  }
}
