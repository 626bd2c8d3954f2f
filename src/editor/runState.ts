// The latest completed (or streaming) analysis, as the editor side needs it: where it lives in the
// document, its tokens with absolute offsets, its layers, and which head the panel has focused.
import * as vscode from 'vscode';
import { attendedWords, tokenAt } from '../analysis/attended';
import { layerTensor, type LayerTensor } from '../analysis/tensor';
import { groupWords, type AttendedWord, type WordGrouping } from '../analysis/words';
import type { HeadSelection, WireModel, WireToken } from '../protocol/webview';
import type { AttentionEncoding } from '../engine/types';

export class RunState {
  readonly layers: Array<LayerTensor | undefined>;
  readonly grouping: WordGrouping;
  layer: number;
  head: HeadSelection = 'mean';
  hideSpecial = false;

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
    this.layers = new Array(model.layers).fill(undefined);
    this.layer = model.layers - 1;
    this.grouping = groupWords(tokens, { text, offset: range.start });
  }

  addLayer(layer: number, data: ArrayBuffer): void {
    this.layers[layer] = layerTensor(data, this.encoding, this.model.heads, this.tokens.length);
  }

  /** Whether `document` still has the text this run analysed (hovers on stale text would lie). */
  matches(document: vscode.TextDocument): boolean {
    return document.uri.toString() === this.document.uri.toString() && document.version === this.version;
  }

  tokenAtOffset(offset: number): number {
    return tokenAt(this.tokens, offset);
  }

  /** Top words token `q` attends to in the focused layer and head (or mean), or null while the layer is still streaming. */
  attended(q: number, k: number, layer = this.layer, head: HeadSelection = this.head, hideSpecial = this.hideSpecial): AttendedWord[] | null {
    const tensor = this.layers[layer];
    if (!tensor) return null;
    return attendedWords(tensor, head, q, this.tokens, this.grouping, k, hideSpecial);
  }

  describeHead(layer = this.layer, head: HeadSelection = this.head): string {
    return `layer ${layer + 1}/${this.model.layers}, ${head === 'mean' ? 'mean of heads' : `head ${head + 1}/${this.model.heads}`}`;
  }
}
