// The latest completed (or streaming) analysis, as the editor side needs it: where it lives in the
// document, its tokens with absolute offsets, its layers, and which head the panel has focused.
import * as vscode from 'vscode';
import { attendedWords, tokenAt } from '../analysis/attended';
import { rolloutRow } from '../analysis/rollout';
import { LayerStore, addHead, keepMask, renormalizeRow, type LayerTensor } from '../analysis/tensor';
import { groupWords, topAttended, type AttendedWord, type WordGrouping } from '../analysis/words';
import type { HeadSelection, WireModel, WireToken } from '../protocol/webview';
import type { AttentionEncoding } from '../engine/types';

/** What the panel has focused; the editor hover follows it. */
export interface HeadView {
  layer: number;
  head: HeadSelection;
  hideSpecial: boolean;
  /** Attention rollout through `layer` instead of one layer's heads. */
  rollout: boolean;
}

export class RunState {
  /** The layers as they arrive (bit-packed ones unpacked on first use). */
  private readonly store: LayerStore;
  readonly grouping: WordGrouping;
  view: HeadView;
  /** Head means per layer, computed on first use by rollout. */
  private readonly means: Array<Float32Array | undefined>;
  /** A prepareRollout step is scheduled. */
  private preparing = false;
  /** The head mean being summed a head at a time. */
  private meanWork: { layer: number; sum: Float32Array; heads: number } | null = null;

  constructor(
    readonly runId: number,
    readonly document: vscode.TextDocument,
    /** Absolute offset range of the analysed text in the document, updated as the user edits around it. */
    public range: { start: number; end: number },
    readonly text: string,
    readonly tokens: WireToken[],
    readonly model: WireModel,
    readonly encoding: AttentionEncoding,
    readonly version: number,
  ) {
    this.store = new LayerStore(encoding, model.layers, model.heads, tokens.length);
    this.means = new Array(model.layers).fill(undefined);
    // The panel opens on the first layer's mean; it posts select/head when the user moves.
    this.view = { layer: 0, head: 'mean', hideSpecial: false, rollout: false };
    this.grouping = groupWords(tokens, { text, offset: range.start });
  }

  /** `packed`: bit-packed f16 (as the worker sends it), unpacked the first time a hover needs it. */
  addLayer(layer: number, data: ArrayBuffer, packed = false): void {
    this.store.add(layer, data, packed);
  }

  hasLayer(l: number): boolean {
    return this.store.has(l);
  }

  layer(l: number): LayerTensor | undefined {
    return this.store.get(l);
  }

  /** Whether `document` still has the text this run analysed (hovers on stale text would lie). */
  matches(document: vscode.TextDocument): boolean {
    return document.uri.toString() === this.document.uri.toString() && document.version === this.version;
  }

  tokenAtOffset(offset: number): number {
    return tokenAt(this.tokens, offset);
  }

  /**
   * Top words token `q` attends to in `view` (default: what the panel focuses), or null while that
   * layer is still streaming or, for rollout, while the head means are being computed.
   */
  attended(q: number, k: number, view: HeadView = this.view): AttendedWord[] | null {
    if (!view.rollout) {
      const tensor = this.layer(view.layer);
      return tensor ? attendedWords(tensor, view.head, q, this.tokens, this.grouping, k, view.hideSpecial) : null;
    }
    // The head means rollout needs are computed in the background (prepareRollout): computing the
    // missing ones here would block the host for up to 40 ms per layer at T=512.
    for (let l = 0; l <= view.layer; l++) {
      if (!this.layer(l)) return null;
      if (!this.means[l]) {
        this.prepareRollout();
        return null;
      }
    }
    const row = rolloutRow(this.means as Float32Array[], this.tokens.length, q, view.layer);
    if (view.hideSpecial) renormalizeRow(row, keepMask(this.tokens, true));
    return topAttended(row, this.tokens, this.grouping, k);
  }

  /**
   * Computes the head means rollout needs in the background, one head per event-loop turn (a whole
   * layer at T=512 is 40-70 ms on a slow machine; one head a twelfth of that), so that rollout
   * hovers never block the host.
   */
  prepareRollout(): void {
    if (this.preparing) return;
    const next = this.means.findIndex((m, l) => !m && this.store.has(l));
    if (next < 0) return;
    this.preparing = true;
    setImmediate(() => {
      this.preparing = false;
      this.addMeanHead(next);
      this.prepareRollout();
    });
  }

  /** Adds the next head of layer `l` to its mean; the mean is stored once every head is in (as meanHeads computes it). */
  private addMeanHead(l: number): void {
    const tensor = this.layer(l);
    if (!tensor || this.means[l]) return;
    let work = this.meanWork;
    if (!work || work.layer !== l) work = this.meanWork = { layer: l, sum: new Float32Array(tensor.T * tensor.T), heads: 0 };
    addHead(tensor, work.heads++, work.sum);
    if (work.heads < tensor.heads) return;
    const inv = 1 / tensor.heads;
    for (let i = 0; i < work.sum.length; i++) work.sum[i] *= inv;
    this.means[l] = work.sum;
    this.meanWork = null;
  }

  describeView(view: HeadView = this.view): string {
    const layer = `layer ${view.layer + 1}/${this.model.layers}`;
    if (view.rollout) return `rollout through ${layer}`;
    return `${layer}, ${view.head === 'mean' ? 'mean of heads' : `head ${view.head + 1}/${this.model.heads}`}`;
  }
}
