// The one typed protocol between the extension host and the webview panel.
// Message types are string literals (never numeric enums: reordering would break the wire).
// Big data crosses as ArrayBuffers (VS Code sends them as binary); everything else is small JSON.

import type { AttentionEncoding, ExplainCell, Explanation, HeadSelection, LayerData, LongStart, RowsData, Seq2seqStart, SeqPart, SourceText, ThumbsData, ValueNormsData, WireModel, WireToken } from './attention';

export const PROTOCOL_VERSION = 1;

// ---------------------------------------------------------------- host -> webview

export interface RunStartMessage {
  type: 'run/start';
  runId: number;
  model: WireModel;
  tokens: WireToken[];
  encoding: AttentionEncoding;
  /** Label of the source ("story.txt:3-5"). */
  source: string;
  /** Non-null when the input was cut to the model's maximum. */
  truncation: { total: number; kept: number; atLeast?: boolean } | null;
  notices: string[];
  /**
   * Optional: the analysed text, so the panel can show tokens as written and group sub-word
   * tokens into words. `text[i]` is at absolute document offset `offset + i` (the tokens'
   * offsets are absolute). Without it the panel falls back to the vocabulary spellings.
   */
  sourceText?: SourceText;
  /**
   * Optional: an encoder-decoder run. `tokens`, `model.layers` and `model.heads` are then the
   * decoder's (tokens: the target, without ranges); its encoder and cross parts arrive as
   * run/layer (and run/thumbs) messages with `part` set.
   */
  seq2seq?: Seq2seqStart;
  /**
   * Optional: a long run. No run/layer message comes; every layer's run/thumbs does, and rows of
   * the matrix come on demand (rows/request answered by run/rows).
   */
  long?: LongStart;
}

/** The answer to a rows/request: rows of a long run's matrix (float32), or why there are none. */
export type RunRowsMessage = { type: 'run/rows'; runId: number } & ({ rows: RowsData; error?: undefined } | { rows?: undefined; error: string; start: number; count: number });

/**
 * A layer or a part of one (LayerData in the run's encoding) on the wire: `packed` and `start`
 * are left out when false / absent. The parts of a large layer come in order.
 */
export type RunLayerMessage = { type: 'run/layer'; runId: number; part?: SeqPart } & WireFields<LayerData>;

/**
 * One layer's thumbnails (ThumbsData). Sent for every layer before the layers themselves when T
 * is above their size, so the model view's grid paints from a few MB while the full layers (what
 * the other views, hovers and rollout read) are on their way.
 */
export type RunThumbsMessage = { type: 'run/thumbs'; runId: number; part?: SeqPart } & WireFields<ThumbsData>;

/** A payload's fields as a message carries them: `packed` only when true. */
type WireFields<P extends { packed: boolean }> = Omit<P, 'packed'> & { packed?: boolean };

export interface RunDoneMessage {
  type: 'run/done';
  runId: number;
  timings: Record<string, number>;
  runtime: string;
}

export interface RunErrorMessage {
  type: 'run/error';
  runId: number;
  message: string;
}

export interface StatusMessage {
  type: 'status';
  /** Shown in the panel's header while a run is loading or running; null clears it. */
  message: string | null;
}

/** Ask the panel to focus a token (from the editor hover's command link). */
export interface FocusTokenMessage {
  type: 'focus/token';
  runId: number;
  tokenIndex: number;
}

/** The image formats the panel draws for an export (attentionLens.exportPng / exportSvg). */
export type ExportFormat = 'png' | 'svg';

/** Ask the panel for an image of the view it shows; it answers with an `export/result` of the same id. */
export interface ExportRequestMessage {
  type: 'export/request';
  id: number;
  format: ExportFormat;
  /** PNG: device pixels per CSS pixel as a multiple of the screen's (1 = as on screen, 2 = twice as sharp). */
  scale: number;
}

/**
 * The run pinned as the baseline of Compare (attentionLens.pinBaseline, or the panel's Pin button
 * through compare/pin), or null when it is cleared. The panel keeps that run's data for its
 * Difference mode; a run it no longer holds cannot be a baseline there.
 */
export interface CompareBaselineMessage {
  type: 'compare/baseline';
  /** The run's id. Not `runId`: the message belongs to no run, and the outbox drops older runs' messages. */
  baseline: number | null;
}

/** The answer to an `explain/request`: the head's computation for that cell, or why there is none. */
export interface ExplainDataMessage {
  type: 'explain/data';
  runId: number;
  cell: ExplainCell;
  explanation?: Explanation;
  error?: string;
}

/** Ask the panel to open "Why this weight?" on a cell (the editor hover's link): it answers with explain/request. */
export interface ExplainOpenMessage {
  type: 'explain/open';
  runId: number;
  cell: ExplainCell;
}

/** The answer to a `values/request`: run `runId`'s value norms (ValueNormsData, float32 buffers), or why there are none. */
export type ValuesDataMessage = { type: 'values/data'; runId: number } & ({ data: ValueNormsData; error?: undefined } | { data?: undefined; error: string });

export type HostToWebview =
  | RunRowsMessage
  | ValuesDataMessage
  | ExplainDataMessage
  | ExplainOpenMessage
  | ExportRequestMessage
  | CompareBaselineMessage
  | RunStartMessage
  | RunLayerMessage
  | RunThumbsMessage
  | RunDoneMessage
  | RunErrorMessage
  | StatusMessage
  | FocusTokenMessage;

// ---------------------------------------------------------------- webview -> host

export interface ReadyMessage {
  type: 'ready';
  protocol: number;
}

/** Pointer entered (tokenIndex) or left (null) a token in the panel. */
export interface HoverTokenMessage {
  type: 'hover/token';
  runId: number;
  tokenIndex: number | null;
  layer: number;
  head: HeadSelection;
  hideSpecial: boolean;
  /** Optional: true when the panel shows attention rollout through `layer` (head is then 'mean'). */
  rollout?: boolean;
  /** Optional: 'value' when the panel shows value-weighted attention (absent: attention). */
  weights?: 'value';
  /** Optional, seq2seq runs: the part the panel shows (absent: the decoder's self-attention; tokenIndex then indexes its tokens, for 'encoder' the source's). */
  part?: SeqPart;
  /** Optional, part 'cross': 'k' when tokenIndex is a source token (a column), else it is a target token (a row). */
  side?: 'k';
}

/** The user changed the focused layer/head; the editor hover follows it. */
export interface SelectHeadMessage {
  type: 'select/head';
  runId: number;
  layer: number;
  head: HeadSelection;
  /** Optional: true when the panel shows attention rollout through `layer` (head is then 'mean'). */
  rollout?: boolean;
  /** Optional: 'value' when the panel shows value-weighted attention (absent: attention). */
  weights?: 'value';
  /** Optional, seq2seq runs: the part the panel shows (absent: the decoder's). */
  part?: SeqPart;
}

/**
 * The panel has read `bytes` of attention (run/layer, run/thumbs data, used or dropped): the host
 * keeps only a few MB unread in flight (src/run/outbox.ts), so a newer run never queues behind a
 * backlog of older ones and nothing piles up in either process.
 */
export interface AckMessage {
  type: 'ack';
  bytes: number;
}

/** A run reached a milestone on screen: its grid painted, or all its layers stored. For the status, tests and the benchmark. */
export interface RunMilestoneMessage {
  type: 'run/milestone';
  runId: number;
  what: 'painted' | 'complete';
}

/** The panel's answer to an `export/request`: the image (PNG bytes, SVG text) or why there is none. */
export interface ExportResultMessage {
  type: 'export/result';
  id: number;
  data?: ArrayBuffer | Uint8Array | string;
  error?: string;
  /** What was drawn, for the file name: the view and its layer (0-based). */
  view?: 'model' | 'head' | 'matrix';
  layer?: number;
  /** The image's size in pixels (PNG) or user units (SVG). */
  width?: number;
  height?: number;
}

/** The panel's Export menu: the host runs the export command (it owns the save dialog and the file). */
export interface ExportMenuMessage {
  type: 'export/menu';
  action: 'png' | 'svg' | 'html' | 'data';
  /** PNG: the scale of ExportRequestMessage. */
  scale?: number;
}

/** The panel's Pin button: pin run `runId` (the one it shows) as the baseline. The host answers with compare/baseline. */
export interface ComparePinMessage {
  type: 'compare/pin';
  runId: number;
}

/** The panel's Clear button, or the panel cannot show the baseline the host named: no baseline. */
export interface CompareClearMessage {
  type: 'compare/clear';
}

/** "Why this weight?" for a cell of run `runId`: the host captures the head's Q, K, V and answers with explain/data. */
export interface ExplainRequestMessage {
  type: 'explain/request';
  runId: number;
  cell: ExplainCell;
}

/** Value-weighted attention for run `runId`: the host captures its value norms and answers with values/data. */
export interface ValuesRequestMessage {
  type: 'values/request';
  runId: number;
}

/**
 * Rows of long run `runId`: queries start..start+count-1 of `layers` (absent: all), on keys
 * keyStart..keyStart+keyCount-1 (absent: all). The host answers with run/rows.
 */
export interface RowsRequestMessage {
  type: 'rows/request';
  runId: number;
  start: number;
  count: number;
  layers?: number[];
  keyStart?: number;
  keyCount?: number;
}

/** The panel's Continue button: the model writes after run `runId`'s text (a new run follows). */
export interface RunContinueMessage {
  type: 'run/continue';
  runId: number;
}

export type WebviewToHost =
  | RowsRequestMessage
  | RunContinueMessage
  | ValuesRequestMessage
  | ExplainRequestMessage
  | ReadyMessage
  | HoverTokenMessage
  | SelectHeadMessage
  | AckMessage
  | RunMilestoneMessage
  | ExportResultMessage
  | ExportMenuMessage
  | ComparePinMessage
  | CompareClearMessage;
