// The worker thread of the `longctx` bench section (bench/longctx.ts): owns one AttentionEngine, as
// the extension's worker does (src/engine/worker.ts), and runs one long input through it:
//   load        the model (a short analyze) and the text: STORY repeated until it tokenizes to at
//               least T tokens; answers `loaded`;
//   run         engine.analyze(text, { maxTokens: T, longAbove: LONG_THRESHOLD = 512 }) (the chunked
//               prefill over the key/value cache), answers `forward` when it returns, then posts every layer's
//               thumbnails (LongAttention.thumbs(l, 'f16'), the buffer transferred) as `thumbs`;
//   rows i      LongAttention.rows(i, 1): every layer's row of token i, posted back transferring
//               the buffers;
//   release     drops the run's cache and the model; the main thread then terminates the worker.
// Started by bench/longctx.ts through a small eval script that registers tsx first.
import { parentPort, workerData } from 'node:worker_threads';
import { AttentionEngine } from '../src/engine/engine';
import { LONG_THRESHOLD } from '../src/engine/long';
import type { AttentionResult } from '../src/engine/types';

export interface LongctxWorkerData {
  folder: string;
  cacheDir: string;
  T: number;
  story: string;
  /** Absent: the engine's default (float32); the extension runs float16 (src/settings.ts). */
  attentionPrecision?: 'float32' | 'float16';
}

export type LongctxToWorker = { type: 'run' } | { type: 'rows'; i: number } | { type: 'release' };

export type LongctxFromWorker =
  | { type: 'loaded'; loadMs: number; tokens: number; chars: number }
  | {
      type: 'forward';
      /** Wall clock (performance.timeOrigin + now) when analyze returned: the end of the forward pass. */
      at: number;
      forwardMs: number;
      analyzeMs: number;
      T: number;
      L: number;
      H: number;
      chunk: number;
      cacheBytes: number;
      /** Each chunk's time, from the previous chunk's end (the first from analyze's start: tokenizing too). */
      chunkMs: number[];
      /** From the last chunk's end to analyze's return: the thumbnails' result. */
      afterChunksMs: number;
    }
  | { type: 'thumbs'; l: number; size: number; packed: boolean; data: ArrayBuffer; encodeMs: number }
  | { type: 'rows'; i: number; rows: Float32Array[]; workerMs: number }
  | { type: 'released' }
  | { type: 'error'; message: string };

const port = parentPort;
if (!port) throw new Error('longctx-worker.ts must run in a worker thread');
const data = workerData as LongctxWorkerData;
const post = (msg: LongctxFromWorker, transfer: ArrayBuffer[] = []) => port.postMessage(msg, transfer);
const wallNow = () => performance.timeOrigin + performance.now();

const engine = new AttentionEngine({ cacheDir: data.cacheDir, offline: true, runtime: 'cpu', ...(data.attentionPrecision ? { attentionPrecision: data.attentionPrecision } : {}) });
let text = '';
let result: AttentionResult | null = null;

async function load(): Promise<void> {
  const t0 = performance.now();
  await engine.analyze(data.folder, data.story);
  const loadMs = performance.now() - t0;
  let repeats = 1;
  text = data.story;
  let tokens = engine.tokenize(text).tokens.length;
  while (tokens < data.T) {
    repeats = Math.ceil(repeats * Math.max(1.05, (data.T + 8) / tokens));
    text = data.story.repeat(repeats);
    tokens = engine.tokenize(text).tokens.length;
  }
  post({ type: 'loaded', loadMs, tokens, chars: text.length });
}

async function run(): Promise<void> {
  const chunkMs: number[] = [];
  const t0 = performance.now();
  let last = t0;
  result = await engine.analyze(data.folder, text, {
    maxTokens: data.T,
    longAbove: LONG_THRESHOLD,
    onProgress: (p) => {
      if (p.phase !== 'forward') return;
      const now = performance.now();
      chunkMs.push(now - last);
      last = now;
    },
  });
  const end = performance.now();
  const at = wallNow();
  const long = result.longRun;
  if (!long) throw new Error(`no long result for T=${result.shape[2]}`);
  post({
    type: 'forward',
    at,
    forwardMs: result.timings.forwardMs,
    analyzeMs: end - t0,
    T: long.T,
    L: long.L,
    H: long.H,
    chunk: long.chunk,
    cacheBytes: long.cacheBytes,
    chunkMs,
    afterChunksMs: end - last,
  });
  for (let l = 0; l < long.L; l++) {
    const t = performance.now();
    const th = long.thumbs(l, 'f16');
    if (!th) throw new Error(`no thumbnails at T=${long.T}`);
    post({ type: 'thumbs', l, size: th.size, packed: th.packed, data: th.data, encodeMs: performance.now() - t }, [th.data]);
  }
}

async function rows(i: number): Promise<void> {
  const long = result?.longRun;
  if (!long) throw new Error('rows before run');
  const t = performance.now();
  const r = await long.rows(i, 1);
  post({ type: 'rows', i, rows: r, workerMs: performance.now() - t }, r.map((a) => a.buffer as ArrayBuffer));
}

async function release(): Promise<void> {
  result?.longRun?.release();
  result = null;
  await engine.dispose();
  post({ type: 'released' });
}

port.on('message', (msg: LongctxToWorker) => {
  const work = msg.type === 'run' ? run() : msg.type === 'rows' ? rows(msg.i) : release();
  work.catch((e: unknown) => post({ type: 'error', message: String((e as Error)?.stack ?? e) }));
});

load().catch((e: unknown) => post({ type: 'error', message: String((e as Error)?.stack ?? e) }));
