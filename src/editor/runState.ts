// The latest run as the editor needs it: the run model (src/run) plus the document it analysed,
// where that text lives now (the range follows edits around it), and what the panel focuses.
import type * as vscode from 'vscode';
import { Run } from '../run/run';
import type { AttendedWord } from '../analysis/words';
import type { Focus } from '../protocol/attention';
import type { RunStartMessage } from '../protocol/webview';

export class RunState extends Run {
  /** Absolute offset range of the analysed text in the document, updated as the user edits around it. */
  range: { start: number; end: number };
  /** What the panel focuses; the editor hover follows it. The panel opens on the first layer's mean and posts select/head when the user moves. */
  view: Focus = { layer: 0, agg: 'mean', hideSpecial: false };
  /** What the run's start said besides the run model: where the text came from ("story.txt:3-5"), a cut, notices (the exports repeat them). */
  readonly facts: Pick<RunStartMessage, 'source' | 'truncation' | 'notices'>;

  constructor(
    start: RunStartMessage,
    readonly document: vscode.TextDocument,
    readonly version: number,
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

  /** Computes the head means rollout needs in the background, one head per event-loop turn, so rollout hovers never block the host. */
  prepareRollout(): void {
    this.prepareMeans(setImmediate);
  }
}
