// The protocol's vocabulary: the words the worker, the host, the run model and the panel share.
// Each is defined here once; messages (webview.ts, worker.ts) and the math (src/analysis) use them.

/** How attention crosses thread/process boundaries. f16 = IEEE half in a Uint16Array; u8 = round(p * 255). */
export type AttentionEncoding = 'f32' | 'f16' | 'u8';

export const ENCODINGS: readonly AttentionEncoding[] = ['f32', 'f16', 'u8'];

export const BYTES_PER_ELEMENT: Record<AttentionEncoding, number> = { f32: 4, f16: 2, u8: 1 };

export interface WireToken {
  text: string;
  /** UTF-16 offsets into the analysed document text (absolute document offsets); -1 for special tokens. */
  start: number;
  end: number;
  special: boolean;
  /** Written by the model after the text (Continue): no source range (-1), not special, shown marked as written. */
  generated?: boolean;
}

/** The text the token offsets point into: `text[i]` is at absolute document offset `offset + i`. */
export interface SourceText {
  text: string;
  offset: number;
}

export interface WireModel {
  id: string;
  architecture: string;
  kind: 'encoder' | 'decoder';
  layers: number;
  heads: number;
  maxLength: number;
}

/**
 * What one matrix shows for a layer: one head, the mean of the layer's heads, or attention rollout
 * through the layer (head means of every layer up to it, with the residual mixed in). New kinds
 * (value-weighted, the difference of two runs) join this union; every view and the editor take it.
 */
export type Aggregation = number | 'mean' | 'rollout';

/** The heads of one layer an aggregation reads directly (rollout reads the head means of many). */
export type HeadSelection = Exclude<Aggregation, 'rollout'>;

export function aggregationLabel(a: Aggregation): string {
  return a === 'mean' ? 'mean of heads' : a === 'rollout' ? 'rollout' : `head ${a + 1}`;
}

/** An aggregation from its string form (a select's value, a data attribute, saved state); null when it is none. */
export function parseAggregation(s: string): Aggregation | null {
  if (s === 'mean' || s === 'rollout') return s;
  const n = Number(s);
  return s !== '' && Number.isInteger(n) && n >= 0 ? n : null;
}

/**
 * On the wire (hover/token, select/head) an aggregation travels as `head` plus a `rollout` flag,
 * the form earlier panels spoke: rollout is { head: 'mean', rollout: true }.
 */
export function aggregationToWire(a: Aggregation): { head: HeadSelection; rollout?: true } {
  return a === 'rollout' ? { head: 'mean', rollout: true } : { head: a };
}

export function aggregationFromWire(m: { head: HeadSelection; rollout?: boolean }): Aggregation {
  return m.rollout === true ? 'rollout' : m.head;
}

/**
 * What the weights of a matrix are: the attention α itself, or value-weighted attention
 * (‖α_ij f(x_j)‖ shares, analysis/valueWeighted.ts), which needs the run's value norms.
 */
export type Weighting = 'attention' | 'value';

export function weightingLabel(w: Weighting, kind?: ValueNormsData['kind']): string {
  if (w === 'attention') return 'attention';
  return kind === 'value-only' ? 'value-weighted (‖α·v‖)' : 'value-weighted (‖α·v·W_O‖)';
}

/** What the panel and the editor hover focus: a layer, an aggregation of it, and whether special tokens are hidden. */
export interface Focus {
  layer: number;
  agg: Aggregation;
  hideSpecial: boolean;
  /** Absent: attention. */
  weights?: Weighting;
  /** Encoder-decoder runs: the attention focused (absent: the decoder's self-attention). */
  part?: SeqPart;
}

/**
 * A run's value norms, for value-weighted attention: with f^h(x_j) = v^h_j W_O^h, `norms` holds
 * ‖f^h(x_j)‖ [L][H][T] and `gram` the heads' Gram matrices f^h(x_j)·f^k(x_j) [L][T][H][H], float32.
 * "value-only" when the graph has no output projection we recognise (f^h(x_j) = v^h_j).
 */
export interface ValueNormsData<D = ArrayBuffer> {
  norms: D;
  gram: D;
  kind: 'output-projected' | 'value-only';
}

/**
 * Attention as it travels from the worker to a run's store (host and panel alike), the one shape
 * for it: a layer ([heads][T][T], row = query, column = key) or a part of one, or one layer's
 * thumbnails. `D` is ArrayBuffer from the worker; a webview may deliver a typed-array view.
 * Messages carry the same fields under their own type (run/layer, run/thumbs) instead of `kind`.
 */
export type AttentionPayload<D = ArrayBuffer> = (({ kind: 'layer' } & LayerData<D>) | ({ kind: 'thumbs' } & ThumbsData<D>)) & { part?: SeqPart };

/**
 * An encoder-decoder run's other parts beside its main one (the decoder's self-attention, over the
 * target tokens): the encoder's self-attention over the source, and the decoder's cross-attention,
 * target tokens (rows) on source tokens (columns), always float32 [heads][T][S].
 */
export type SeqPart = 'encoder' | 'cross';

/** What a seq2seq run's start says besides the decoder part (RunStartMessage.seq2seq). */
export interface Seq2seqStart {
  /** The source (the selection) as the encoder read it, with absolute document offsets. */
  sourceTokens: WireToken[];
  encoder: { layers: number; heads: number };
  /** The target: what the model wrote (or the text given to teacher-force), and whether an end token stopped it. */
  targetText: string;
  forced: boolean;
  finished: boolean;
}

/** Attention bytes as a webview receives them: an ArrayBuffer or any typed-array view (some hosts deliver a Uint8Array). */
export type WireData = ArrayBuffer | ArrayBufferView;

export interface LayerData<D = ArrayBuffer> {
  layer: number;
  data: D;
  /** f16 bit-packed 14 bits a cell (analysis/f16.ts packF14); false when a value lies outside [0, 2). */
  packed: boolean;
  /** A part of the layer: its cells from this index of the flattened [heads][T][T] on, in order. Absent: the whole layer. */
  start?: number;
}

/** One layer's thumbnails (analysis/thumbs.ts): [heads + 1][size][size], each head max-pooled, the head-mean last. */
export interface ThumbsData<D = ArrayBuffer> {
  layer: number;
  size: number;
  data: D;
  packed: boolean;
}

/**
 * A long run (RunStartMessage.long): above `threshold` tokens no whole layer crosses. Every layer's
 * thumbnails come as usual; rows of the matrix come on demand (rows/request, run/rows), computed
 * by the engine over the model's key/value cache (src/engine/long.ts).
 */
export interface LongStart {
  /** Runs of more tokens than this are long. */
  threshold: number;
}

/**
 * Rows of a long run's matrix: queries start..start+count-1 of `layers`, on keys
 * keyStart..keyStart+keyCount-1. `data[i]` is layer layers[i] as float32 [heads][count][keyCount].
 */
export interface RowsData<D = ArrayBuffer> {
  start: number;
  count: number;
  keyStart: number;
  keyCount: number;
  layers: number[];
  data: D[];
}

/** Which cell "Why this weight?" explains: layer, head, query token i, key token j (0-based). */
export interface ExplainCell {
  layer: number;
  head: number;
  query: number;
  key: number;
}

/**
 * One head's computation for one query token, as the model did it (the engine's query/key/value
 * capture): enough for the panel to recompute the row's scores, softmax and weighted sum and to show
 * that they equal the attention it displays.
 */
export interface Explanation {
  cell: ExplainCell;
  /** The head's dimension d. */
  dim: number;
  /** The key/value head this query head reads (grouped-query attention), else the head itself. */
  kvHead: number;
  /** Query i [d], after rotary embeddings where the model applies them. */
  q: Float32Array;
  /** Every key of the row [T * d] (row j = key j), as it meets q in q·kᵀ. */
  k: Float32Array;
  /** Every value of the row [T * d]. */
  v: Float32Array;
  /** The factor on q·k, read from the graph (1/√d or the model's own). */
  scale: number;
  /** What masks the scores: none, the causal rule, or another mask (see `visible`). */
  mask: 'none' | 'causal' | 'custom';
  /** Which keys query i sees [T]: 1 visible, 0 masked. */
  visible: Uint8Array;
  /** The attention row the panel shows [T], as the engine exposed it (float32). */
  shown: Float32Array;
  /** The head's output for query i [d], from the graph (Σ_j α_ij v_j, before the output projection). */
  out: Float32Array;
  /** ‖α_ij · v_j W_O^h‖ per key j [T] ("output-projected"), or ‖α_ij v_j‖ ("value-only"). */
  valueNorm: Float32Array;
  valueNormKind: 'output-projected' | 'value-only';
}
