// The message pump: validated host messages in, runs out. A new run loads behind the one on
// screen (which stays, marked 'updating') until what the current view needs has arrived, then
// swaps in, so a re-run never flashes an empty panel. Every piece of attention read is
// acknowledged (the host keeps only a few MB unread in flight: src/run/outbox.ts), and the run
// milestones go to the host too (tests and the benchmark wait for them).

import { parseHostMessage, type ParsedHostMessage } from '../src/protocol/validate';
import type { ExplainDataMessage, ExplainOpenMessage, ExportRequestMessage } from '../src/protocol/webview';
import type { SeqPart } from '../src/protocol/attention';
import type { UiState } from './context';
import { RunData } from './store';
import { post } from './vscode';

/** What the app does as runs come and go. */
export interface RunEvents {
  /** `run` replaced `prev` on screen (prev null: the first run). */
  shown(run: RunData, prev: RunData | null): void;
  /** Thumbnails / a full layer of the shown run arrived (of its `part`, for an encoder-decoder run; absent: the decoder's). */
  thumbsArrived(layer: number, part?: SeqPart): void;
  layerArrived(layer: number, part?: SeqPart): void;
  /** Facts in the header changed (layers arrived, timings). */
  metaChanged(): void;
  status(message: string): void;
  error(message: string): void;
  clearError(): void;
  /** The host asked to show a token of the shown run (checked: in range and not hidden). */
  focusToken(index: number): void;
  /** The host pinned run `runId` as Compare's baseline (null: cleared). */
  baseline(runId: number | null): void;
  /** The host asked for an image of the view on screen. */
  exportRequest(m: ExportRequestMessage): void;
  /** The host asked for "Why this weight?" on a cell (the editor hover's link). */
  explainOpen(m: ExplainOpenMessage): void;
  /** The host's answer to an explain/request ("Why this weight?"). */
  explainData(m: ExplainDataMessage): void;
  /** The host's answer to a values/request (value-weighted attention). */
  valuesData(m: Extract<ParsedHostMessage, { type: 'values/data' }>): void;
  /** Rows of a long run (a hover's, stored in the run already, or a window's), or why there are none. */
  rows(run: RunData, m: Extract<ParsedHostMessage, { type: 'run/rows' }>): void;
}

export class Runs {
  private shown: RunData | null = null;
  private pending: RunData | null = null;

  constructor(
    private readonly root: HTMLElement,
    private readonly ui: UiState,
    private readonly on: RunEvents,
  ) {}

  /** The run on screen. */
  get current(): RunData | null {
    return this.shown;
  }

  handle(raw: unknown): void {
    const m = parseHostMessage(raw);
    if (!m) return;
    try {
      this.dispatch(m);
    } catch (err) {
      // A message that passes validation but cannot be used (e.g. a layer of the wrong size)
      // is dropped; the view stays as it was.
      console.warn('attention-lens: dropped message', m.type, err);
    } finally {
      // Used, stale or refused: the host may send more.
      if (m.type === 'run/layer' || m.type === 'run/thumbs') post({ type: 'ack', bytes: m.data.byteLength });
    }
  }

  private dispatch(m: ParsedHostMessage): void {
    switch (m.type) {
      case 'run/start': {
        if (this.shown?.runId === m.runId || this.pending?.runId === m.runId) return;
        const run = new RunData(m);
        run.setHideSpecial(this.ui.hideSpecial);
        this.on.clearError();
        if (!this.shown) this.swapIn(run);
        else {
          this.pending = run;
          this.root.classList.add('updating');
        }
        return;
      }
      case 'run/thumbs': {
        const run = this.runById(m.runId);
        if (!run || !run.add({ ...m, kind: 'thumbs' })) return;
        // A long run's layers are its thumbnails: with the last of them it is complete.
        if (run.long && run.complete) this.markRun('complete', run.runId);
        if (run === this.pending) this.maybeSwap();
        else this.on.thumbsArrived(m.layer, m.part);
        if (run.long) this.on.metaChanged();
        return;
      }
      case 'run/rows': {
        const run = this.runById(m.runId);
        if (!run?.long) return;
        // Rows over every key are a token's (a hover's): the run keeps them. A window's go to the app.
        if (m.rows && m.rows.keyStart === 0 && m.rows.keyCount === run.T) run.addRows(m.rows);
        this.on.rows(run, m);
        return;
      }
      case 'run/layer': {
        const run = this.runById(m.runId);
        if (!run) return;
        if (!run.add({ ...m, kind: 'layer' })) return;
        if (run.complete) this.markRun('complete', run.runId);
        if (run === this.pending) this.maybeSwap();
        else this.on.layerArrived(m.layer, m.part);
        this.on.metaChanged();
        return;
      }
      case 'run/done': {
        const run = this.runById(m.runId);
        if (!run) return;
        run.done = true;
        run.timings = m.timings;
        run.runtime = m.runtime;
        if (run === this.pending) this.swapIn(run);
        this.on.metaChanged();
        return;
      }
      case 'run/error': {
        if (this.pending?.runId === m.runId) {
          this.pending = null;
          this.root.classList.remove('updating');
        } else if (this.shown && this.shown.runId !== m.runId && m.runId < this.shown.runId) return; // stale
        this.on.error(m.message);
        return;
      }
      case 'status':
        this.on.status(m.message ?? '');
        return;
      case 'compare/baseline':
        this.on.baseline(m.baseline);
        return;
      case 'export/request':
        this.on.exportRequest(m);
        return;
      case 'explain/open':
        this.on.explainOpen(m);
        return;
      case 'explain/data':
        this.on.explainData(m);
        return;
      case 'values/data':
        this.on.valuesData(m);
        return;
      case 'focus/token': {
        const run = this.shown;
        if (!run || run.runId !== m.runId || m.tokenIndex >= run.T) return;
        if (run.hideSpecial && !run.keep[m.tokenIndex]) return;
        this.on.focusToken(m.tokenIndex);
        return;
      }
    }
  }

  /** Hiding special tokens applies to the loading run too. */
  setHideSpecial(hide: boolean): void {
    this.shown?.setHideSpecial(hide);
    this.pending?.setHideSpecial(hide);
  }

  /** The run on screen or loading behind it with this id, or null. */
  find(runId: number): RunData | null {
    return this.runById(runId);
  }

  private runById(runId: number): RunData | null {
    return this.pending?.runId === runId ? this.pending : this.shown?.runId === runId ? this.shown : null;
  }

  /** The pending run takes over once the data the current view needs has arrived. */
  private maybeSwap(): void {
    const p = this.pending;
    if (!p) return;
    const layer = Math.min(this.ui.layer, p.L - 1);
    let ready = p.arrived > 0 || p.thumbsArrived > 0;
    // A long run's views other than the model's ask for their rows once it is on screen.
    if (this.ui.view !== 'model' && !p.long) ready = p.hasLayer(layer);
    if (ready || p.complete) this.swapIn(p);
  }

  private swapIn(run: RunData): void {
    const prev = this.shown;
    this.shown = run;
    this.pending = null;
    this.root.classList.remove('updating');
    this.root.dataset.runId = String(run.runId);
    this.root.dataset.state = 'ready';
    this.on.shown(run, prev);
  }

  /** The model view painted `painted` of `total` layers of the shown run. */
  reportPainted(painted: number, total: number): void {
    const run = this.shown;
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
    post({ type: 'run/milestone', runId, what });
  }
}
