// One run of the model on the user's text, as the extension host and the panel both hold it: its
// tokens and words, its attention as it arrives (layers, parts of layers, thumbnails), head means,
// incremental rollout, and the words a token attends to most. Built from the run/start message on
// both sides, fed the same payloads, so a hover in the editor and in the panel read one model.
// The editor adds the document (src/editor/runState.ts); the panel adds canvases and caches
// (webview/store.ts). No vscode, no DOM.
//
// Value-weighted attention (analysis/valueWeighted.ts) joins when the host has the run's value norms:
// its layer matrices stand in for the head means where the weighting is 'value' (rollout too).
//
// An encoder-decoder run is its decoder part, with a Run for its encoder beside it and its
// cross-attention in a CrossStore (target rows on source columns); payloads name their part.
//
// A long run (start.long) holds no whole layer: its thumbnails arrive as usual, and rows computed
// on demand (engine/long.ts) fill a RowCache query by query; hovers and top words read those.

import type { Aggregation, AttentionEncoding, AttentionPayload, Focus, HeadSelection, LayerData, LongStart, RowsData, Seq2seqStart, SourceText, ThumbsData, ValueNormsData, WireData, WireModel, WireToken, Weighting } from '../protocol/attention';
import { CrossStore } from '../analysis/cross';
import { aggregationLabel } from '../protocol/attention';
import type { RunStartMessage } from '../protocol/webview';
import { attendedWords, tokenAt } from '../analysis/attended';
import { Rollout, rolloutRow } from '../analysis/rollout';
import { LayerStore, addHead, keepMask, layerTensor, meanHeads, renormalizeRow, renormalizeRows, type LayerTensor } from '../analysis/tensor';
import { groupWords, topAttended, type AttendedWord, type WordGrouping } from '../analysis/words';
import { valueHeadRow, valueLayerRow, valueNormsFrom, type ValueNorms } from '../analysis/valueWeighted';
import { RowCache, headRow } from '../analysis/rows';

/** Rows of a value-weighted layer computed per step (stepMeans): about 5 ms at T = 512 with 12 heads. */
const VALUE_ROWS_PER_STEP = 32;

export class Run {
  readonly runId: number;
  readonly model: WireModel;
  readonly tokens: WireToken[];
  readonly encoding: AttentionEncoding;
  /** The analysed text and its document offset, when the host sent it. */
  readonly sourceText: SourceText | null;
  readonly T: number;
  readonly L: number;
  readonly H: number;
  readonly words: WordGrouping;
  /**
   * An encoder-decoder run: what the start said, its encoder part (a run over the source tokens)
   * and its cross-attention (target rows on source columns). This run is then the decoder's part.
   */
  readonly seq2seq: Seq2seqStart | null;
  readonly encoder: Run | null;
  readonly cross: CrossStore | null;
  /** A long run: no layers come, rows do (addRows); null for a run of whole layers. */
  readonly long: LongStart | null;
  /** Layers fully arrived, and layers whose thumbnails arrived. */
  arrived = 0;
  thumbsArrived = 0;

  /** The layers as they arrive (bit-packed ones unpacked on first use). */
  private readonly store: LayerStore;
  /** Per layer, its thumbnails as the worker pooled them: [H + 1][size][size], the head-mean last. */
  private readonly thumbList: (LayerTensor | undefined)[];
  /** Head means per layer (raw, before hiding), computed once. */
  private readonly means: (Float32Array | undefined)[];
  /** The head mean being summed a head at a time (stepMeans). */
  private meanWork: { layer: number; sum: Float32Array; heads: number } | null = null;
  /** A prepareMeans step is scheduled. */
  private preparing = false;
  /** The run's value norms (value-weighted attention), once the host has them. */
  private valueNorms: ValueNorms | null = null;
  /** Value-weighted layers (the heads together, analysis/valueWeighted.ts), computed once, rows filled by stepMeans. */
  private readonly valueMeans: (Float32Array | undefined)[];
  private valueWork: { layer: number; out: Float32Array; row: number } | null = null;
  /** Rollout matrices by weighting and whether special tokens are hidden. */
  private readonly rollouts = new Map<string, Rollout>();
  /** A long run's rows, as they came on demand. */
  private readonly rowCache: RowCache | null;

  constructor(start: RunStartMessage) {
    this.runId = start.runId;
    this.model = start.model;
    this.tokens = start.tokens;
    this.encoding = start.encoding;
    this.sourceText = start.sourceText ?? null;
    this.T = start.tokens.length;
    this.L = start.model.layers;
    this.H = start.model.heads;
    this.store = new LayerStore(this.encoding, this.L, this.H, this.T);
    this.thumbList = new Array(this.L).fill(undefined);
    this.means = new Array(this.L).fill(undefined);
    this.valueMeans = new Array(this.L).fill(undefined);
    this.words = groupWords(this.tokens, this.sourceText);
    this.long = start.long ?? null;
    this.rowCache = this.long ? new RowCache(this.L, this.H, this.T) : null;
    this.seq2seq = start.seq2seq ?? null;
    const s = this.seq2seq;
    this.encoder = s ? this.part({ ...start, model: { ...start.model, kind: 'encoder', layers: s.encoder.layers, heads: s.encoder.heads }, tokens: s.sourceTokens, seq2seq: undefined }) : null;
    this.cross = s ? new CrossStore(this.L, this.H, this.T, s.sourceTokens.length) : null;
  }

  /** A run of the same kind for an encoder-decoder run's encoder part (the panel's RunData makes its own kind). */
  protected part(start: RunStartMessage): Run {
    return new Run(start);
  }

  // ---------------------------------------------------------------- attention as it arrives

  /** Stores a payload; throws when it does not fit the run. Returns true when it completed something new. */
  add(p: AttentionPayload<WireData>): boolean {
    if (p.part === 'encoder') {
      if (!this.encoder) throw new Error('an encoder layer for a run without an encoder');
      return this.encoder.add({ ...p, part: undefined });
    }
    if (p.part === 'cross') {
      if (!this.cross || p.kind !== 'layer') throw new Error('cross-attention for a run without it (or as thumbnails)');
      return this.cross.add(p.layer, p.data);
    }
    return p.kind === 'layer' ? this.addLayer(p) : this.addThumbs(p);
  }

  /**
   * Stores one layer, or its part from cell `start` (bit-packed f16 when `packed`); throws when its
   * size is wrong. Returns true when the layer is complete with it.
   */
  addLayer(p: LayerData<WireData>): boolean {
    if (!this.store.add(p.layer, p.data, p.packed, p.start)) return false;
    this.arrived++;
    return true;
  }

  /** Stores one layer's thumbnails (throws when the size is wrong). Returns true when they are new. */
  addThumbs(p: ThumbsData<WireData>): boolean {
    if (p.layer >= this.L) throw new Error(`thumbnails of layer ${p.layer}: the run has ${this.L} layers`);
    if (p.size >= this.T) throw new Error(`thumbnails of ${p.size} px for ${this.T} tokens`);
    if (this.thumbList[p.layer]) return false;
    this.thumbList[p.layer] = layerTensor(p.data, this.encoding, this.H + 1, p.size, p.packed);
    this.thumbsArrived++;
    return true;
  }

  /** Layer `l`'s thumbnails, or undefined when none came (yet, or at all: small T). */
  thumbs(l: number): LayerTensor | undefined {
    return this.thumbList[l];
  }

  hasLayer(l: number): boolean {
    return this.store.has(l);
  }

  /** Layer `l`, or undefined while it has not arrived. */
  layer(l: number): LayerTensor | undefined {
    return this.store.get(l);
  }

  /** Every layer arrived (of every part, for an encoder-decoder run); a long run's layers are its thumbnails. */
  get complete(): boolean {
    if (this.long) return this.thumbsArrived === this.L;
    return this.arrived === this.L && (this.encoder?.complete ?? true) && (this.cross ? this.cross.arrived === this.L : true);
  }

  // ---------------------------------------------------------------- a long run's rows

  /** Stores rows of a long run (throws when they do not fit it). */
  addRows(r: RowsData<WireData>): void {
    if (!this.rowCache) throw new Error('rows for a run of whole layers');
    this.rowCache.add(r);
  }

  /** Query `q`'s row in layer `l` for one head or the heads' mean (a new array), or null while it has not come. */
  longRow(l: number, q: number, head: HeadSelection): Float32Array | null {
    const rows = this.rowCache?.get(l, q);
    return rows ? headRow(rows, this.H, this.T, head) : null;
  }

  /** Whether query `q`'s rows of every layer are here (a long run's hover asks for them once). */
  hasRows(q: number): boolean {
    return this.rowCache?.hasAll(q) ?? false;
  }

  /**
   * Why `focus` cannot be shown on a long run, or null when it can: rollout and value weighting
   * need whole matrices, which a long run never holds.
   */
  longRefusal(focus: { agg: Aggregation; weights?: Weighting }): string | null {
    if (!this.long) return null;
    if (focus.agg === 'rollout') return `Rollout needs every layer's whole matrix; above ${this.long.threshold.toLocaleString('en-US')} tokens Attention Lens keeps rows on demand instead. Choose a head or the mean of heads.`;
    if (focus.weights === 'value') return `Value weighting covers runs of up to ${this.long.threshold.toLocaleString('en-US')} tokens (it needs whole matrices).`;
    return null;
  }

  // ---------------------------------------------------------------- cross-attention (encoder-decoder runs)

  /**
   * The top `k` source tokens target token `q` attends to (layer and head of `focus`; rollout reads
   * the mean), or null while missing. Tokens, not words: an alignment is between tokens, and a
   * character-level model's source word is the whole name.
   */
  crossTokens(q: number, k: number, focus: Focus): AttendedWord[] | null {
    const enc = this.encoder;
    const row = enc && this.cross?.row(focus.layer, crossHead(focus.agg), q);
    if (!enc || !row) return null;
    if (focus.hideSpecial) renormalizeRow(row, keepMask(enc.tokens, true));
    const text = enc.sourceText;
    return Array.from(row, (weight, s) => ({ weight, s }))
      .filter(({ weight, s }) => weight > 0 && enc.tokens[s].start >= 0)
      .sort((a, b) => b.weight - a.weight)
      .slice(0, k)
      .map(({ weight, s }) => {
        const t = enc.tokens[s];
        return { text: text ? text.text.slice(t.start - text.offset, t.end - text.offset) : t.text, start: t.start, end: t.end, weight };
      });
  }

  /** The target tokens that attend most to source token `s`, heaviest first (at most `k`), or null while missing. */
  crossTargets(s: number, k: number, focus: Focus): { index: number; weight: number }[] | null {
    const col = this.cross?.column(focus.layer, crossHead(focus.agg), s);
    if (!col) return null;
    return Array.from(col, (weight, index) => ({ index, weight }))
      .filter((t) => t.weight > 0)
      .sort((a, b) => b.weight - a.weight)
      .slice(0, k);
  }

  // ---------------------------------------------------------------- value-weighted attention

  /** Stores the run's value norms (throws when they do not fit the run). */
  setValueNorms(data: ValueNormsData<WireData>): void {
    this.valueNorms = valueNormsFrom(data, this.L, this.H, this.T);
  }

  /** The run's value norms, or null until they came. */
  get values(): ValueNorms | null {
    return this.valueNorms;
  }

  // ---------------------------------------------------------------- head means and rollout

  /**
   * The layer's matrix of one weighting for the heads together: the head mean (attention), or
   * ‖Σ_h α^h_ij f^h(x_j)‖ as shares (value); raw, before hiding; null while its data is missing.
   */
  mean(l: number, weights: Weighting = 'attention'): Float32Array | null {
    if (weights === 'value') {
      while (!this.valueMeans[l]) if (!this.stepValueMean(l)) return null;
      return this.valueMeans[l]!;
    }
    const m = this.means[l];
    if (m) return m;
    const layer = this.layer(l);
    if (!layer) return null;
    const out = meanHeads(layer);
    this.means[l] = out;
    if (this.meanWork?.layer === l) this.meanWork = null;
    return out;
  }

  /** Whether the layer means of layers 0..upTo are all computed. */
  meansReady(upTo: number, weights: Weighting = 'attention'): boolean {
    const means = weights === 'value' ? this.valueMeans : this.means;
    for (let l = 0; l <= upTo; l++) if (!means[l]) return false;
    return true;
  }

  /** Computes the next rows of value-weighted layer `l` (the first missing one when l < 0). Returns false when there was nothing it could do. */
  private stepValueMean(l = -1): boolean {
    const v = this.valueNorms;
    if (!v) return false;
    if (l < 0) l = this.valueWork?.layer ?? this.valueMeans.findIndex((m, i) => !m && this.store.has(i));
    const tensor = l >= 0 && !this.valueMeans[l] ? this.layer(l) : undefined;
    if (!tensor) return false;
    let work = this.valueWork;
    if (!work || work.layer !== l) work = this.valueWork = { layer: l, out: new Float32Array(this.T * this.T), row: 0 };
    const alpha = new Float32Array(this.H * this.T);
    const end = Math.min(this.T, work.row + VALUE_ROWS_PER_STEP);
    for (; work.row < end; work.row++) valueLayerRow(tensor, v.gram[l], work.row, work.out.subarray(work.row * this.T, (work.row + 1) * this.T), alpha);
    if (work.row === this.T) {
      this.valueMeans[l] = work.out;
      this.valueWork = null;
    }
    return true;
  }

  /**
   * Adds one head to the next missing head mean of an arrived layer (a whole layer at T=512 is
   * 40-70 ms on a slow machine; a head a twelfth of that), so that a caller stepping between
   * event-loop turns never blocks. Returns false when there was nothing to do.
   */
  stepMeans(): boolean {
    const l = this.means.findIndex((m, i) => !m && this.store.has(i));
    if (l < 0) return this.stepValueMean();
    const tensor = this.layer(l)!;
    let work = this.meanWork;
    if (!work || work.layer !== l) work = this.meanWork = { layer: l, sum: new Float32Array(tensor.T * tensor.T), heads: 0 };
    addHead(tensor, work.heads++, work.sum);
    if (work.heads < tensor.heads) return true;
    const inv = 1 / tensor.heads; // as meanHeads computes it
    for (let i = 0; i < work.sum.length; i++) work.sum[i] *= inv;
    this.means[l] = work.sum;
    this.meanWork = null;
    return true;
  }

  /**
   * Computes the missing head means of arrived layers in the background, one head per turn that
   * `defer` schedules (setImmediate on the host), so that rollout hovers never block the caller.
   */
  prepareMeans(defer: (step: () => void) => void): void {
    if (this.preparing) return;
    this.preparing = true;
    defer(() => {
      this.preparing = false;
      if (this.stepMeans()) this.prepareMeans(defer);
    });
  }

  /** The rollout matrix through layer `l` (special tokens hidden or not), or null while it is not computed (stepRollout). */
  rollout(l: number, hideSpecial: boolean, weights: Weighting = 'attention'): Float32Array | null {
    return this.rollouts.get(`${weights}:${hideSpecial}`)?.get(l) ?? null;
  }

  /** How many layers of rollout matrices exist for this choice of hiding and weighting. */
  rolloutProgress(hideSpecial: boolean, weights: Weighting = 'attention'): number {
    return this.rollouts.get(`${weights}:${hideSpecial}`)?.length ?? 0;
  }

  /**
   * Computes the next rollout matrix if its input has arrived. Returns true when it did work.
   * (About 90 ms per layer at T = 512 for causal attention; the caller spreads it over tasks.)
   */
  stepRollout(upTo: number, hideSpecial: boolean, weights: Weighting = 'attention'): boolean {
    const key = `${weights}:${hideSpecial}`;
    let r = this.rollouts.get(key);
    if (!r) this.rollouts.set(key, (r = new Rollout(this.T)));
    const next = r.length;
    if (next > upTo || next >= this.L) return false;
    const mean = this.mean(next, weights);
    if (!mean) return false;
    r.push(hideSpecial ? renormalizeRows(mean, this.T, keepMask(this.tokens, true)) : mean);
    return true;
  }

  // ---------------------------------------------------------------- what a token attends to

  /**
   * The top `k` words token `q` attends to under `focus`, or null while that layer is still
   * streaming or, for rollout, while the head means are being computed (stepMeans): computing
   * them here would block the caller for up to 40 ms per layer at T=512.
   */
  attended(q: number, k: number, focus: Focus): AttendedWord[] | null {
    const { layer, agg, hideSpecial } = focus;
    const weights = focus.weights ?? 'attention';
    if (this.long) {
      if (this.longRefusal(focus)) return null;
      const row = this.longRow(layer, q, agg as HeadSelection);
      if (!row) return null;
      if (hideSpecial) renormalizeRow(row, keepMask(this.tokens, true));
      return topAttended(row, this.tokens, this.words, k);
    }
    if (weights === 'value' && agg !== 'rollout') {
      const tensor = this.layer(layer);
      const v = this.valueNorms;
      if (!tensor || !v) return null;
      const row = agg === 'mean' ? valueLayerRow(tensor, v.gram[layer], q) : valueHeadRow(tensor, v.norms[layer], agg, q);
      if (hideSpecial) renormalizeRow(row, keepMask(this.tokens, true));
      return topAttended(row, this.tokens, this.words, k);
    }
    if (agg !== 'rollout') {
      const tensor = this.layer(layer);
      return tensor ? attendedWords(tensor, agg, q, this.tokens, this.words, k, hideSpecial) : null;
    }
    if (!this.meansReady(layer, weights)) return null;
    const row = rolloutRow((weights === 'value' ? this.valueMeans : this.means) as Float32Array[], this.T, q, layer);
    if (hideSpecial) renormalizeRow(row, keepMask(this.tokens, true));
    return topAttended(row, this.tokens, this.words, k);
  }

  /** Index of the token whose source range holds the absolute `offset`, or -1. */
  tokenAtOffset(offset: number): number {
    return tokenAt(this.tokens, offset);
  }

  describe(focus: { layer: number; agg: Aggregation; weights?: Weighting }): string {
    const layer = `layer ${focus.layer + 1}/${this.L}`;
    const value = focus.weights === 'value' ? 'value-weighted ' : '';
    if (focus.agg === 'rollout') return `${value}rollout through ${layer}`;
    if (focus.agg === 'mean') return `${layer}, ${value ? 'value-weighted, heads together' : aggregationLabel('mean')}`;
    return `${layer}, ${value}head ${focus.agg + 1}/${this.H}`;
  }
}

/** Cross-attention has heads and their mean; rollout (a product through self-attention layers) reads the mean. */
function crossHead(agg: Aggregation): HeadSelection {
  return agg === 'rollout' ? 'mean' : agg;
}
