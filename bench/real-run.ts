// Real runs for the benchmark sections after `engine`: the engine (AttentionEngine, float16 graph,
// as the worker runs it) on the BERT-base-shaped model for a real prose + code text, cut to T
// tokens, and the exact host -> webview message sequence the extension sends for it, made by the
// extension's own translation (src/run/messages.ts: run/start, run/thumbs x L when T is above the
// thumbnail size, run/layer x L bit-packed, as the worker makes them (src/engine/payloads.ts),
// run/done, status). Computed once per process.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { AttentionEngine } from '../src/engine/engine';
import type { AttentionResult } from '../src/engine/types';
import { runPayloads } from '../src/engine/payloads';
import type { HostToWebview, RunDoneMessage, RunLayerMessage, RunStartMessage, RunThumbsMessage } from '../src/protocol/webview';
import { payloadMessages, runDoneMessage, runStartMessage } from '../src/run/messages';
import { ROOT, ensureModel } from './util';
import { ensureBuilt } from '../test/webview/harness';

/** Persistent cache of the rewritten (attention-exposed) graph for the bench's engine runs (gitignored). */
export const BENCH_CACHE = path.join(ROOT, 'bench/out/cache');

/** A real text: prose and TypeScript, the kind of thing people select in an editor. About 900 BERT tokens. */
export const SAMPLE_TEXT = `# Streaming attention to the panel

When the user selects a paragraph and runs the command, the extension host hands the text to a worker
thread. The worker tokenizes it with exact source offsets, runs the model once, and sends the attention
of every layer back as one transferred buffer per layer. The host forwards each layer to the webview,
which paints a small heatmap for every head as soon as its layer arrives. Nothing waits for the whole
tensor: the first row of thumbnails should appear while the rest is still on its way.

Why does it matter? At 512 tokens a BERT-base model produces 12 layers of 12 heads, each a 512 by 512
matrix: thirty-seven million weights. As JSON text that is hundreds of megabytes, more than a JavaScript
string may hold; as half-precision floats it is seventy-two mebibytes, moved without parsing anything.

\`\`\`ts
export function topAttended(row: Float32Array, tokens: readonly Token[], k: number): Attended[] {
  const order = Array.from(row.keys()).sort((a, b) => row[b] - row[a]);
  const out: Attended[] = [];
  for (const i of order) {
    if (tokens[i].special) continue; // [CLS] and [SEP] soak up attention; users rarely want them
    out.push({ text: tokens[i].text, weight: row[i], start: tokens[i].start, end: tokens[i].end });
    if (out.length === k) break;
  }
  return out;
}
\`\`\`

Hovering a token must feel instant. The panel keeps the layers in their wire encoding and decodes only
the row it needs; the head view draws one line per key, batched by colour and opacity, and the matrix
view redraws a thin overlay instead of the whole heatmap. On the editor side the same row becomes
decorations: the five most attended words light up, stronger for larger weights, so you can read the
model's focus on the source itself rather than on a list of word pieces.

Once upon a time, in a small village by the sea, there lived an old clockmaker who repaired every clock
in town. Children gathered at his window each afternoon to watch the tiny gears turn, and he would tell
them stories about the sailors who had carried his grandfather's clocks across the ocean, long before the
lighthouse was built and the harbour was filled with fishing boats painted red, blue and yellow.

\`\`\`python
def rollout(attentions, residual=0.5):
    result = np.eye(attentions[0].shape[-1])
    for layer in attentions:
        mean = layer.mean(axis=0)
        mixed = residual * np.eye(mean.shape[0]) + (1 - residual) * mean
        mixed /= mixed.sum(axis=-1, keepdims=True)
        result = mixed @ result
    return result
\`\`\`

Rollout multiplies the head-averaged attention of successive layers, with the residual connection mixed
in, to estimate how much each input token flows into each position at a given depth. It is a heuristic,
not an explanation, but it often shows structure that a single layer hides: sentence boundaries, the
subject a pronoun refers to, or the opening bracket that a closing one belongs to in code.
`;

/** Where the analysed text sits in its (imaginary) document, as the controller computes offsets. */
const DOC_OFFSET = 0;
const SOURCE_LABEL = 'notes.md:1-60';

export interface RealRun {
  T: number;
  L: number;
  H: number;
  result: AttentionResult;
  /** run/start exactly as src/controller.ts builds it (runId filled in per use). */
  start: RunStartMessage;
  /** One f16 layer each, [heads][T][T] (views into fresh buffers, byteOffset 0). */
  layers: Uint16Array[];
  /**
   * The thumbnails and layers as the host posts them to the panel (runId 0), in its order: as the
   * worker makes them (runPayloads: thumbnails first, bit-packed when possible), a large layer in
   * parts (layerMessages), as the controller sends it.
   */
  wire: (RunThumbsMessage | RunLayerMessage)[];
  done: RunDoneMessage;
  /** The whole warm-run sequence the host posts, in order (layers as ArrayBuffers). */
  messages(runId: number): HostToWebview[];
}

/** The extension's message sequence for an engine result (src/run/messages.ts, as AttentionController.analyze sends it). */
export function toMessages(result: AttentionResult, text: string): Omit<RealRun, 'T' | 'L' | 'H' | 'result'> {
  const [L, H, T] = result.shape;
  const start = runStartMessage(result, { runId: 0, text, offset: DOC_OFFSET, label: SOURCE_LABEL });
  const stride = H * T * T;
  const all = result.attention as Uint16Array;
  const layers = Array.from({ length: L }, (_, l) => all.slice(l * stride, (l + 1) * stride));
  const wire = [...runPayloads(result)].flatMap((p) => payloadMessages(0, p, result.encoding));
  const done = runDoneMessage(0, result);
  return {
    start,
    layers,
    wire,
    done,
    messages(runId: number): HostToWebview[] {
      return [
        { ...start, runId },
        ...wire.map((m) => ({ ...m, runId, data: m.data.slice(0) })),
        { ...done, runId },
        { type: 'status' as const, message: null },
      ];
    },
  };
}

const cache = new Map<number, RealRun>();

/**
 * Real attention for SAMPLE_TEXT cut to each of `sizes` tokens (maxTokens, as the setting does),
 * computed once per process; the engine is released afterwards.
 */
export async function realRuns(sizes: number[]): Promise<Map<number, RealRun>> {
  const missing = sizes.filter((T) => !cache.has(T));
  if (missing.length) {
    const modelDir = ensureModel();
    fs.mkdirSync(BENCH_CACHE, { recursive: true });
    const engine = new AttentionEngine({ cacheDir: BENCH_CACHE, offline: true, runtime: 'cpu', attentionPrecision: 'float16' });
    try {
      for (const T of missing) {
        const result = await engine.analyze(modelDir, SAMPLE_TEXT, { maxTokens: T, encoding: 'f16' });
        const [L, H, realT] = result.shape;
        cache.set(T, { T: realT, L, H, result, ...toMessages(result, SAMPLE_TEXT) });
      }
    } finally {
      await engine.dispose();
    }
  }
  return new Map(sizes.map((T) => [T, cache.get(T)!]));
}

/**
 * VS Code's serialisation of a webview message (extHostWebview's serializeWebviewMessage, used for
 * extensions whose engines.vscode is >= 1.57; checked against code-server 4.139's bundle): JSON text
 * with each ArrayBuffer replaced by `{"$$vscode_array_buffer_reference$$":true,"index":i}`, plus the
 * buffers, sent as binary.
 */
export function serializeLikeVsCode(message: unknown): { json: string; buffers: ArrayBuffer[] } {
  const buffers: ArrayBuffer[] = [];
  const json = JSON.stringify(message, (_key, value) => {
    if (value instanceof ArrayBuffer) {
      let index = buffers.indexOf(value);
      if (index < 0) index = buffers.push(value) - 1;
      return { $$vscode_array_buffer_reference$$: true, index };
    }
    return value;
  });
  return { json, buffers };
}

/** Bytes of one message on the wire: its JSON text (UTF-8) and its binary buffers. */
export function wireBytes(message: unknown): { json: number; binary: number } {
  const { json, buffers } = serializeLikeVsCode(message);
  return { json: Buffer.byteLength(json, 'utf8'), binary: buffers.reduce((s, b) => s + b.byteLength, 0) };
}

/** Rebuilds out/ (extension, worker, webview) with `node esbuild.js` when missing or older than its sources. */
export function ensureBuiltAll(): void {
  ensureBuilt(['src', 'webview', 'media'], ['out/extension.js', 'out/worker.js', 'out/webview/main.js', 'out/webview/panel.css']);
}
