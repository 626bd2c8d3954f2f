// The one typed protocol between the extension host and the webview panel.
// Message types are string literals (never numeric enums: reordering would break the wire).
// Big data crosses as ArrayBuffers (VS Code sends them as binary); everything else is small JSON.

import { BYTES_PER_ELEMENT, splitLayer } from '../analysis/tensor';

export const PROTOCOL_VERSION = 1;

export type AttentionEncoding = 'f32' | 'f16' | 'u8';

export interface WireToken {
  text: string;
  /** UTF-16 offsets into the analysed document text (absolute document offsets); -1 for special tokens. */
  start: number;
  end: number;
  special: boolean;
}

export interface WireModel {
  id: string;
  architecture: string;
  kind: 'encoder' | 'decoder';
  layers: number;
  heads: number;
  maxLength: number;
}

/** Which heads an aggregate covers: one head index, or the mean of all heads of the layer. */
export type HeadSelection = number | 'mean';

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
  truncation: { total: number; kept: number } | null;
  notices: string[];
  /**
   * Optional: the analysed text, so the panel can show tokens as written and group sub-word
   * tokens into words. `text[i]` is at absolute document offset `offset + i` (the tokens'
   * offsets are absolute). Without it the panel falls back to the vocabulary spellings.
   */
  sourceText?: { offset: number; text: string };
}

/** One layer: [heads][T][T] in `encoding`, row = query, column = key. */
export interface RunLayerMessage {
  type: 'run/layer';
  runId: number;
  layer: number;
  data: ArrayBuffer;
  /**
   * Optional (f16 runs): `data` holds the half-precision patterns bit-packed 14 bits each
   * (analysis/f16.ts packF14, 1.75 bytes per cell). Absent when a value of this layer lies outside
   * [0, 2) and the layer travels as plain f16.
   */
  packed?: boolean;
  /**
   * Optional: `data` is a part of the layer (analysis/tensor.ts splitLayer), its cells from this
   * index of the flattened [heads][T][T] on; the parts come in order. Absent: the whole layer.
   */
  start?: number;
}

/**
 * One layer's thumbnails (analysis/thumbs.ts layerThumbs): [heads + 1][size][size] in the run's
 * encoding (f16 bit-packed when `packed`), each head max-pooled and the head-mean last. Sent for
 * every layer before the layers themselves when T > size, so the model view's grid paints from a
 * few MB while the full layers (what the other views, hovers and rollout read) are on their way.
 */
export interface RunThumbsMessage {
  type: 'run/thumbs';
  runId: number;
  layer: number;
  size: number;
  data: ArrayBuffer;
  packed?: boolean;
}

/** The run/layer messages that carry one layer: the layer, or its parts in order when it is large. */
export function layerMessages(runId: number, layer: number, data: ArrayBuffer, packed: boolean, encoding: AttentionEncoding): RunLayerMessage[] {
  const parts = splitLayer(data, packed, BYTES_PER_ELEMENT[encoding]);
  return parts.map((p) => ({ type: 'run/layer', runId, layer, data: p.data, ...(packed ? { packed: true } : {}), ...(parts.length > 1 ? { start: p.start } : {}) }));
}

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

export type HostToWebview =
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
}

/** The user changed the focused layer/head; the editor hover follows it. */
export interface SelectHeadMessage {
  type: 'select/head';
  runId: number;
  layer: number;
  head: HeadSelection;
  /** Optional: true when the panel shows attention rollout through `layer` (head is then 'mean'). */
  rollout?: boolean;
}

export type WebviewToHost = ReadyMessage | HoverTokenMessage | SelectHeadMessage;

// ---------------------------------------------------------------- validators (webview input is untrusted)

const isInt = (v: unknown, min = 0): v is number => typeof v === 'number' && Number.isInteger(v) && v >= min;
const isHead = (v: unknown): v is HeadSelection => v === 'mean' || isInt(v);

export function parseWebviewMessage(raw: unknown): WebviewToHost | null {
  if (typeof raw !== 'object' || raw === null) return null;
  const m = raw as Record<string, unknown>;
  switch (m.type) {
    case 'ready':
      return isInt(m.protocol) ? { type: 'ready', protocol: m.protocol } : null;
    case 'hover/token':
      if (!isInt(m.runId) || !(m.tokenIndex === null || isInt(m.tokenIndex)) || !isInt(m.layer) || !isHead(m.head)) return null;
      return { type: 'hover/token', runId: m.runId, tokenIndex: m.tokenIndex as number | null, layer: m.layer, head: m.head, hideSpecial: m.hideSpecial === true, rollout: m.rollout === true };
    case 'select/head':
      if (!isInt(m.runId) || !isInt(m.layer) || !isHead(m.head)) return null;
      return { type: 'select/head', runId: m.runId, layer: m.layer, head: m.head, rollout: m.rollout === true };
    default:
      return null;
  }
}
