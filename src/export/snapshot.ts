// A finished run as the exports read it (the HTML report, the .npy + .json data): the run's
// start facts and its whole attention as float16, whether it comes from the extension's run model
// or from the CLI's engine result. No vscode: the CLI builds these too.

import type { SourceText, WireModel, WireToken } from '../protocol/attention';
import type { RunStartMessage } from '../protocol/webview';
import type { Run } from '../run/run';
import { decodeLayer, encodeF16, f16Lut } from '../analysis';

export interface RunSnapshot {
  model: WireModel;
  /** Offsets are absolute: `sourceText.text[i]` is at offset `sourceText.offset + i`; -1 for special tokens. */
  tokens: WireToken[];
  /** The text actually analysed. */
  sourceText: SourceText;
  /** Where the text came from ("story.txt:3-5"). */
  source: string;
  truncation: RunStartMessage['truncation'];
  notices: string[];
  /** The runtime that ran it, when known ("onnxruntime-node cpu"). */
  runtime: string;
  /** [layers][heads][T][T] float16 bit patterns, row = query, column = key. */
  attention: Uint16Array;
}

export type SnapshotFacts = Pick<RunSnapshot, 'source'> & Partial<Pick<RunSnapshot, 'truncation' | 'notices' | 'runtime'>>;

/** [layers, heads, T, T]. */
export function snapshotShape(s: RunSnapshot): [number, number, number, number] {
  const T = s.tokens.length;
  return [s.model.layers, s.model.heads, T, T];
}

/** Throws unless the attention has exactly [layers][heads][T][T] cells. */
export function checkSnapshot(s: RunSnapshot): void {
  const [L, H, T] = snapshotShape(s);
  if (s.attention.length !== L * H * T * T) throw new Error(`attention has ${s.attention.length} cells, expected ${L}x${H}x${T}x${T}`);
}

/**
 * A complete run of the run model (the extension's RunState, the panel's RunData) as a snapshot;
 * null while a layer is missing. f16 layers are copied as they are (the extension's encoding);
 * others are rounded to f16. Null for a long run, which keeps no whole layer.
 */
export function snapshotOfRun(run: Run, facts: SnapshotFacts): RunSnapshot | null {
  // A long run holds no whole layer (and its [L][H][T][T] array would not fit in memory).
  if (!run.complete || !run.sourceText || run.long) return null;
  const cells = run.H * run.T * run.T;
  const attention = new Uint16Array(run.L * cells);
  for (let l = 0; l < run.L; l++) {
    const tensor = run.layer(l);
    if (!tensor) return null;
    const out = attention.subarray(l * cells, (l + 1) * cells);
    if (tensor.encoding === 'f16') out.set(tensor.raw as Uint16Array);
    else encodeF16(decodeLayer(tensor), out);
  }
  return {
    model: run.model,
    tokens: run.tokens,
    sourceText: run.sourceText,
    source: facts.source,
    truncation: facts.truncation ?? null,
    notices: facts.notices ?? [],
    runtime: facts.runtime ?? '',
    attention,
  };
}

/** Layer `l` of the snapshot as float32 (exact: every half is a float32). */
export function layerFloats(s: RunSnapshot, l: number): Float32Array {
  const [, H, T] = snapshotShape(s);
  const cells = H * T * T;
  const lut = f16Lut();
  const out = new Float32Array(cells);
  const src = s.attention.subarray(l * cells, (l + 1) * cells);
  for (let i = 0; i < cells; i++) out[i] = lut[src[i]];
  return out;
}
