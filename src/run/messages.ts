// The one translation from engine output to the panel's messages, used by the extension
// (src/controller.ts) and every benchmark driver: run/start from the engine's start, run/thumbs and
// run/layer from its payloads (a large layer in parts), run/done from its result.

import { BYTES_PER_ELEMENT, type AttentionEncoding, type AttentionPayload, type LongStart, type WireToken } from '../protocol/attention';
import type { RunDoneMessage, RunLayerMessage, RunStartMessage, RunThumbsMessage } from '../protocol/webview';
import type { AttentionResult, TokenSpan } from '../engine/types';
import type { WorkerSeq2seqStart } from '../protocol/worker';
import { splitLayer } from '../analysis/tensor';

/** What the engine says before (or with) the attention: the worker's start message, or a whole result. */
export type EngineStart = Pick<AttentionResult, 'model' | 'tokens' | 'encoding' | 'shape' | 'truncation' | 'notices'> & { seq2seq?: WorkerSeq2seqStart; long?: LongStart };

/** Where the analysed text came from. */
export interface RunOrigin {
  runId: number;
  /** The text handed to the engine. */
  text: string;
  /** Its absolute offset in the document: the tokens' offsets are shifted by it. */
  offset: number;
  /** Shown in the panel's header ("story.txt:3-5"): of the text actually analysed (absolute offsets), which a cut input makes shorter than `text`. */
  label: string | ((analysed: { start: number; end: number }) => string);
}

/** run/start: tokens at absolute offsets, the model's shape, and the text actually analysed (cut where the engine cut it). */
export function runStartMessage(start: EngineStart, origin: RunOrigin): RunStartMessage {
  const { offset } = origin;
  const s2s = start.seq2seq;
  // An encoder-decoder run's tokens are the target's: none has a place in the document (the source does).
  const tokens: WireToken[] = s2s ? start.tokens.map(targetToken) : start.tokens.map((t) => wireToken(t, offset));
  const m = start.model;
  const analysed = start.truncation ? origin.text.slice(0, start.truncation.endOffset) : origin.text;
  return {
    type: 'run/start',
    runId: origin.runId,
    model: { id: m.id, architecture: m.architecture, kind: m.kind, layers: start.shape[0], heads: start.shape[1], maxLength: m.maxLength },
    tokens,
    encoding: start.encoding,
    source: typeof origin.label === 'string' ? origin.label : origin.label({ start: offset, end: offset + analysed.length }),
    sourceText: { offset, text: analysed },
    truncation: start.truncation ? { total: start.truncation.total, kept: start.truncation.kept, ...(start.truncation.atLeast ? { atLeast: true } : {}) } : null,
    notices: start.notices,
    ...(start.long ? { long: start.long } : {}),
    ...(s2s
      ? {
          seq2seq: {
            sourceTokens: s2s.sourceTokens.map((t) => wireToken(t, offset)),
            encoder: { layers: s2s.encoderShape[0], heads: s2s.encoderShape[1] },
            targetText: s2s.targetText,
            forced: s2s.forced,
            finished: s2s.finished,
          },
        }
      : {}),
  };
}

/** A token of the analysed text at its absolute offset; generated ones (engine: special, no range) are the run's own words, never hidden as special ones are. */
function wireToken(t: TokenSpan, offset: number): WireToken {
  if (t.generated) return { text: t.text, start: -1, end: -1, special: false, generated: true };
  return { text: t.text, start: t.special ? -1 : t.start + offset, end: t.special ? -1 : t.end + offset, special: t.special };
}

/** A target token of an encoder-decoder run: no range in the document (its offsets point into the target text). */
function targetToken(t: TokenSpan): WireToken {
  return { text: t.text, start: -1, end: -1, special: t.special, ...(t.generated ? { generated: true } : {}) };
}

/** The messages that carry one payload: its thumbnails, or the layer (in parts of at most 1 MB when it is large). */
export function payloadMessages(runId: number, p: AttentionPayload, encoding: AttentionEncoding): (RunThumbsMessage | RunLayerMessage)[] {
  const part = p.part ? { part: p.part } : {};
  if (p.kind === 'thumbs') return [{ type: 'run/thumbs', runId, layer: p.layer, size: p.size, data: p.data, ...(p.packed ? { packed: true } : {}), ...part }];
  // Cross-attention goes whole (float32 [heads][T][S]: the cross store takes no parts).
  if (p.part === 'cross') return [{ type: 'run/layer', runId, layer: p.layer, data: p.data, part: 'cross' }];
  return layerMessages(runId, p.layer, p.data, p.packed, encoding).map((m) => ({ ...m, ...part }));
}

/** The run/layer messages that carry one layer: the layer, or its parts in order when it is large. */
export function layerMessages(runId: number, layer: number, data: ArrayBuffer, packed: boolean, encoding: AttentionEncoding): RunLayerMessage[] {
  const parts = splitLayer(data, packed, BYTES_PER_ELEMENT[encoding]);
  return parts.map((p) => ({ type: 'run/layer', runId, layer, data: p.data, ...(packed ? { packed: true } : {}), ...(parts.length > 1 ? { start: p.start } : {}) }));
}

export function runDoneMessage(runId: number, done: Pick<AttentionResult, 'timings' | 'runtime'>): RunDoneMessage {
  return { type: 'run/done', runId, timings: { ...done.timings }, runtime: done.runtime };
}
