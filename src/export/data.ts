// The attention data export: <prefix>.json (model, tokens, shape) and <prefix>.npy (float32
// [layers, heads, T, T]). The CLI writes the JSON's first four keys exactly as it always has; the
// extension's export adds what a run from an editor knows besides (the text, where it came from,
// layer and head names).

import { npyHeader } from './npy';
import { layerFloats, snapshotShape, type RunSnapshot } from './snapshot';

export interface DataJsonCore {
  model: { id: string; architecture: string; layers: number; heads: number };
  /** Offsets into the analysed text (UTF-16); -1 for special tokens. */
  tokens: { text: string; start: number; end: number; special: boolean }[];
  shape: readonly number[];
  truncation: unknown;
}

/** The JSON's core, in the CLI's key order (model, tokens, shape, truncation). */
export function dataJsonCore(
  model: { id: string; architecture: string; layers: number; heads: number },
  tokens: readonly { text: string; start: number; end: number; special: boolean }[],
  shape: readonly number[],
  truncation: unknown,
): DataJsonCore {
  return {
    model: { id: model.id, architecture: model.architecture, layers: model.layers, heads: model.heads },
    tokens: tokens.map((t) => ({ text: t.text, start: t.start, end: t.end, special: t.special })),
    shape,
    truncation,
  };
}

export function dataJsonText(json: object): string {
  return JSON.stringify(json, null, 1) + '\n';
}

/** Where a snapshot's text lives, for the JSON: a document and the offset of the text's first character in it. */
export interface DataSource {
  /** The document's URI (or path). */
  document: string;
  /** Absolute offset of the analysed text in the document: a token's document range is offset + start .. offset + end. */
  offset: number;
  label: string;
}

/** The extension's JSON: the CLI's keys (token offsets relative to `text`), then the text, its source, the axes and their names. */
export function snapshotJson(s: RunSnapshot, source: DataSource): object {
  const offset = s.sourceText.offset;
  const tokens = s.tokens.map((t) => (t.special ? t : { ...t, start: t.start - offset, end: t.end - offset }));
  // A cut as the CLI reports it: the analysed text (`text`) ends where the cut fell.
  const t = s.truncation;
  const truncation = t ? { total: t.total, kept: t.kept, endOffset: s.sourceText.text.length, ...(t.atLeast ? { atLeast: true } : {}) } : null;
  return {
    ...dataJsonCore(s.model, tokens, snapshotShape(s), truncation),
    text: s.sourceText.text,
    source,
    axes: ['layer', 'head', 'query', 'key'],
    layerNames: Array.from({ length: s.model.layers }, (_, l) => `layer ${l + 1}`),
    headNames: Array.from({ length: s.model.heads }, (_, h) => `head ${h + 1}`),
  };
}

/** The .npy file in pieces: the header, then each layer as float32 (a whole BERT-base run at T=512 is 150 MB). */
export function* npyChunks(s: RunSnapshot): Generator<Uint8Array> {
  const shape = snapshotShape(s);
  yield npyHeader(shape);
  for (let l = 0; l < shape[0]; l++) {
    const f = layerFloats(s, l);
    yield new Uint8Array(f.buffer, f.byteOffset, f.byteLength);
  }
}
