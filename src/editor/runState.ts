// The latest run as the editor needs it: the run model (src/run) plus the document it analysed,
// where that text lives now (the range follows edits around it), and what the panel focuses.
import type * as vscode from 'vscode';
import { Run } from '../run/run';
import type { RowFetcher } from '../run/rowFetcher';
import { decodeRow, keepMask, meanRow, renormalizeRow } from '../analysis/tensor';
import { wordWeights, type AttendedWord } from '../analysis/words';
import type { EngineOptions } from '../engine/types';
import type { AnalyzeRequest } from '../protocol/worker';
import type { Focus } from '../protocol/attention';
import type { RunStartMessage } from '../protocol/webview';

/** What the engine was asked for a run: an explain asks the same, to get the same tokens. */
export type RunRequest = Omit<AnalyzeRequest, 'encoding'> & { options: EngineOptions };

export class RunState extends Run {
  /** Absolute offset range of the analysed text in the document, updated as the user edits around it. */
  range: { start: number; end: number };
  /** What the panel focuses; the editor hover follows it. The panel opens on the first layer's mean and posts select/head when the user moves. */
  view: Focus = { layer: 0, agg: 'mean', hideSpecial: false };
  /** A long run's rows from the engine (the controller sets it): hovers ask it for the rows they read. */
  rows: RowFetcher | null = null;
  /** The engine request that made the run (a long run's rows are asked of it). */
  engineRun: number | null = null;
  /** What the run's start said besides the run model: where the text came from ("story.txt:3-5"), a cut, notices (the exports repeat them). */
  readonly facts: Pick<RunStartMessage, 'source' | 'truncation' | 'notices'>;

  constructor(
    start: RunStartMessage,
    readonly document: vscode.TextDocument,
    readonly version: number,
    readonly request: RunRequest,
  ) {
    super(start);
    this.facts = { source: start.source, truncation: start.truncation, notices: start.notices };
    const text = start.sourceText ?? { offset: 0, text: '' };
    this.range = { start: text.offset, end: text.offset + text.text.length };
  }

  /** Whether `document` still has the text this run analysed (hovers on stale text would lie). */
  matches(document: vscode.TextDocument): boolean {
    return document.uri.toString() === this.document.uri.toString() && document.version === this.version;
  }

  /** Top words token `q` attends to in `focus` (default: what the panel focuses), or null while its data is not ready. */
  attendedIn(q: number, k: number, focus: Focus = this.view): AttendedWord[] | null {
    const words = this.attended(q, k, focus);
    if (!words && focus.agg === 'rollout') this.prepareRollout();
    return words;
  }

  /**
   * The token `q` attends to most under `focus` (within the top word, its heaviest token), as the
   * hover's top word; -1 while the layer has not arrived, or under rollout (no one head's softmax).
   */
  topKey(q: number, focus: Focus = this.view): number {
    if (focus.agg === 'rollout') return -1;
    const layer = this.layer(focus.layer);
    const row = this.long ? this.longRow(focus.layer, q, focus.agg) : layer ? (focus.agg === 'mean' ? meanRow(layer, null, q) : decodeRow(layer, focus.agg, q)) : null;
    if (!row) return -1;
    if (focus.hideSpecial) renormalizeRow(row, keepMask(this.tokens, true));
    const weights = wordWeights(row, this.words);
    let top = -1;
    weights.forEach((w, i) => {
      if (w > 0 && (top < 0 || w > weights[top])) top = i;
    });
    if (top < 0) return -1;
    const { first, last } = this.words.words[top];
    let key = first;
    for (let t = first + 1; t <= last; t++) if (row[t] > row[key]) key = t;
    return key;
  }

  /** The head of layer `l` that gives query `q`'s weight on `key` most (head 0 while the layer has not arrived). */
  strongestHead(l: number, q: number, key: number): number {
    const layer = this.layer(l);
    if (!layer && !this.hasRows(q)) return 0;
    let best = 0, top = -1;
    for (let h = 0; h < this.H; h++) {
      const w = (layer ? decodeRow(layer, h, q) : this.longRow(l, q, h)!)[key];
      if (w > top) [best, top] = [h, w];
    }
    return best;
  }

  /** Computes the head means rollout needs in the background, one head per event-loop turn, so rollout hovers never block the host. */
  prepareRollout(): void {
    this.prepareMeans(setImmediate);
  }
}
