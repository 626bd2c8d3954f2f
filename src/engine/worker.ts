// Worker-thread entry: owns one AttentionEngine (the model stays warm between runs) and streams
// results back layer by layer. The newest analyze request supersedes any still running. Explains
// ("Why this weight?") and value norms wait for the analyze in flight, then capture the run's
// queries, keys and values (the last capture kept for further clicks on the same run).
import { parentPort, workerData } from 'node:worker_threads';
import { AttentionEngine, type AttentionPreview } from './engine';
import { longPayloads, runPayloads, seq2seqPayloads, streamPayloads } from './payloads';
import type { LongAttention } from './long';
import { explainCell, valueNormsData } from './qkv';
import { EngineError, type AttentionResult, type EngineOptions, type GeneratedToken, type LoadProgress } from './types';
import type { HostToWorker, WorkerToHost } from '../protocol/worker';

const port = parentPort;
if (!port) throw new Error('worker.ts must run in a worker thread');
const testHooks = (workerData as { testHooks?: boolean } | undefined)?.testHooks === true;

let engine: AttentionEngine | null = null;
let engineKey = '';
const running = new Map<number, AbortController>();
/** The latest analyze request's work (settled however it ends). */
let analyzing: Promise<void> = Promise.resolve();
/** Explains run one after another. */
let explaining: Promise<void> = Promise.resolve();
/** The latest long run (by its analyze request), whose cache answers `rows`; released when a newer run starts. */
let longRun: { requestId: number; long: LongAttention } | null = null;
/** Rows requests run one after another. */
let rowing: Promise<void> = Promise.resolve();
/** The last capture, by what it analysed: clicks on the same run reuse it. */
let capture: { key: string; result: Promise<AttentionResult> } | null = null;

const post = (msg: WorkerToHost, transfer: ArrayBuffer[] = []) => port.postMessage(msg, transfer);

function engineFor(options: EngineOptions): AttentionEngine {
  const key = JSON.stringify(options);
  if (!engine || key !== engineKey) {
    void engine?.dispose();
    engine = new AttentionEngine(options);
    engineKey = key;
  }
  return engine;
}

/**
 * Test hook (only with test hooks on): a request for model `test-hook:spin-sync` or
 * `test-hook:spin-async` spins forever without looking at its abort signal, as work stuck in a
 * native call does, with the event loop blocked (sync) or free (async).
 */
async function spinHook(mode: string, requestId: number): Promise<never> {
  post({ type: 'progress', requestId, progress: { phase: 'resolve', message: `test hook: spinning (${mode})` } });
  const busy = (ms: number) => {
    const end = performance.now() + ms;
    while (performance.now() < end) {
      // spin
    }
  };
  for (;;) {
    if (mode === 'sync') busy(1000);
    else {
      busy(5);
      await new Promise((r) => setImmediate(r));
    }
  }
}

async function analyze(msg: Extract<HostToWorker, { type: 'analyze' }>): Promise<void> {
  try {
    await analyzeRequest(msg);
  } finally {
    // The request's work has really ended (not just been told to stop): the client's watchdog
    // for a cancelled request stands down.
    post({ type: 'settled', requestId: msg.requestId });
  }
}

async function analyzeRequest(msg: Extract<HostToWorker, { type: 'analyze' }>): Promise<void> {
  for (const [id, controller] of running) {
    controller.abort();
    running.delete(id);
    post({ type: 'error', requestId: id, code: 'SUPERSEDED', message: 'A newer request replaced this one.' });
  }
  // A newer run replaces the long one: its cache (hundreds of MB at 8k tokens) goes now.
  longRun?.long.release();
  longRun = null;
  const controller = new AbortController();
  running.set(msg.requestId, controller);
  const { signal } = controller;
  // The start goes out before the forward pass when the shape is known then (the panel lays
  // itself out while the model runs), else with the result.
  let started = false;
  const start = (p: AttentionPreview) => {
    started = true;
    const long = msg.longAbove !== undefined && p.tokens.length > msg.longAbove ? { long: { threshold: msg.longAbove } } : {};
    post({ type: 'start', requestId: msg.requestId, model: p.model, tokens: p.tokens, encoding: p.encoding, shape: p.shape, truncation: p.truncation, notices: p.notices, runtime: p.runtime, ...long });
  };
  try {
    const hook = testHooks ? /^test-hook:spin-(sync|async)$/.exec(msg.model) : null;
    if (hook) await spinHook(hook[1], msg.requestId);
    const options = {
      maxTokens: msg.maxTokens,
      textContinues: msg.textContinues,
      encoding: msg.encoding,
      longAbove: msg.longAbove,
      signal,
      onProgress: (progress: LoadProgress) => post({ type: 'progress', requestId: msg.requestId, progress }),
    };
    const runner = engineFor(msg.options);
    const info = await runner.load(msg.model, { onProgress: options.onProgress, signal });
    if (info.seq2seq) {
      if (msg.generate) throw new EngineError('ATTENTION_UNSUPPORTED', `${info.id} is an encoder-decoder model: it writes its translation of the selection on Show Attention; Continue is for decoder-only models.`);
      // An encoder-decoder model: the text is the source; the model writes the target, then one teacher-forced pass.
      const r = await runner.analyzeSeq2seq(msg.model, msg.text, { ...options, maxNewTokens: msg.maxNewTokens, target: msg.target, onToken: written(msg.requestId, msg.maxNewTokens ?? 0) });
      if (signal.aborted) return;
      post({
        type: 'start', requestId: msg.requestId, model: r.model, tokens: r.targetTokens, encoding: msg.encoding, shape: r.decoderShape, truncation: r.truncation, notices: r.notices, runtime: r.runtime,
        seq2seq: { sourceTokens: r.sourceTokens, encoderShape: r.encoderShape, crossShape: r.crossShape, targetText: r.targetText, forced: r.forced, finished: r.finished },
      });
      const sent = await streamPayloads(seq2seqPayloads(r, msg.encoding), (payload) => post({ type: 'payload', requestId: msg.requestId, payload }, [payload.data]), signal);
      if (sent) post({ type: 'done', requestId: msg.requestId, timings: r.timings });
      return;
    }
    if (msg.target !== undefined) throw new EngineError('ATTENTION_UNSUPPORTED', `${info.id} is not an encoder-decoder model: a target text is for translation models (the selection is their source).`);
    // Continue: the tokens are known only once written, so the start goes out with the result.
    const result = msg.generate
      ? await runner.generate(msg.model, msg.text, { ...options, maxNewTokens: msg.generate, onToken: written(msg.requestId, msg.generate) })
      : await runner.analyze(msg.model, msg.text, { ...options, onTokenized: start });
    if (signal.aborted) return; // cancelled or superseded: its error was already posted
    if (!started) start(result);
    if (result.longRun) longRun = { requestId: msg.requestId, long: result.longRun };
    // Thumbnails and packing are computed here, off the extension host's thread; the host keeps the layers and forwards everything to the panel.
    const sent = await streamPayloads(result.longRun ? longPayloads(result.longRun, result.encoding) : runPayloads(result), (payload) => post({ type: 'payload', requestId: msg.requestId, payload }, [payload.data]), signal);
    if (!sent) return; // cancelled or superseded mid-stream: its error was already posted
    post({ type: 'done', requestId: msg.requestId, timings: result.timings });
  } catch (e) {
    if (signal.aborted) return; // its CANCELLED/SUPERSEDED error was already posted
    const code = e instanceof EngineError ? e.code : 'INTERNAL';
    post({ type: 'error', requestId: msg.requestId, code, message: (e as Error).message ?? String(e) });
  } finally {
    if (running.get(msg.requestId) === controller) running.delete(msg.requestId);
  }
}

/** Streams each token Continue writes as progress: the text so far, as the status line shows it. */
function written(requestId: number, total: number): (t: GeneratedToken) => void {
  let text = '';
  return (t) => {
    text += t.piece;
    const tail = (text.length > 60 ? `…${text.slice(-60)}` : text).replace(/\s+/g, ' ');
    const of = total > 0 ? ` of ${total}` : '';
    post({ type: 'progress', requestId, progress: { phase: 'generate', message: t.end ? `Written: “${tail}”` : `Writing ${t.index + 1}${of}: “${tail}”` } });
  };
}

/** Resolves once no analyze is in flight (one that starts while waiting is waited for too). */
async function runsIdle(): Promise<void> {
  let seen: Promise<void>;
  do {
    seen = analyzing;
    await seen;
  } while (seen !== analyzing);
}

type CaptureRequest = Extract<HostToWorker, { type: 'explain' | 'values' }>;

/** The capture of the text `msg` names: the last one when it analysed the same, else a new forward pass. */
async function captured(msg: CaptureRequest): Promise<AttentionResult> {
  // A run in progress keeps the CPU: the capture is a second forward pass of the same text.
  await runsIdle();
  const key = JSON.stringify([msg.model, msg.options, msg.text, msg.maxTokens ?? null, msg.textContinues === true, msg.generate ?? 0]);
  let entry = capture;
  if (entry?.key !== key) {
    post({ type: 'progress', requestId: msg.requestId, progress: { phase: 'capture', message: 'Capturing queries, keys and values' } });
    const options = {
      qkv: true,
      maxTokens: msg.maxTokens,
      textContinues: msg.textContinues,
      encoding: 'f32' as const,
      onProgress: (progress: LoadProgress) => post({ type: 'progress', requestId: msg.requestId, progress }),
    };
    // A Continue run is captured by writing the same greedy tokens again: its tokens are the run's.
    const result = msg.generate
      ? engineFor(msg.options).generate(msg.model, msg.text, { ...options, maxNewTokens: msg.generate })
      : engineFor(msg.options).analyze(msg.model, msg.text, options);
    const made = (entry = capture = { key, result });
    // A refused model is not kept: the next click says why again.
    result.catch(() => {
      if (capture === made) capture = null;
    });
  }
  return entry.result;
}

/** Explains and value norms run one after another, each answered by its message or an error, then `settled`. */
async function answerCapture(msg: CaptureRequest): Promise<void> {
  try {
    const result = await captured(msg);
    if (msg.type === 'explain') {
      const explanation = explainCell(result, msg.cell);
      const { q, k, v, visible, shown, out, valueNorm } = explanation;
      post({ type: 'explained', requestId: msg.requestId, explanation }, [q, k, v, visible, shown, out, valueNorm].map((a) => a.buffer as ArrayBuffer));
    } else {
      const [L, H, T] = result.shape;
      const data = await valueNormsData(result.qkv!, H, T, (l) => {
        post({ type: 'progress', requestId: msg.requestId, progress: { phase: 'capture', message: `Value norms: layer ${l + 1} of ${L}` } });
        return new Promise((r) => setImmediate(r));
      });
      post({ type: 'values', requestId: msg.requestId, data }, [data.norms, data.gram]);
    }
  } catch (e) {
    const code = e instanceof EngineError ? e.code : 'INTERNAL';
    post({ type: 'error', requestId: msg.requestId, code, message: (e as Error).message ?? String(e) });
  } finally {
    post({ type: 'settled', requestId: msg.requestId });
  }
}

/** Rows of the latest long run, answered with `rows` or an error, then `settled`. */
async function answerRows(msg: Extract<HostToWorker, { type: 'rows' }>): Promise<void> {
  try {
    // Rows wait for the run's own stream: its prefill owns the CPU and the cache.
    await runsIdle();
    const run = longRun;
    if (!run || run.requestId !== msg.run) throw new EngineError('SUPERSEDED', 'That run was replaced by a newer one.');
    const { long } = run;
    const T = long.T;
    const keyStart = msg.keyStart ?? 0;
    const keyCount = msg.keyCount ?? T - keyStart;
    if (msg.start + msg.count > T || keyStart + keyCount > T || (msg.layers ?? []).some((l) => l >= long.L)) {
      throw new EngineError('INTERNAL', `Rows ${msg.start}..${msg.start + msg.count - 1} on keys ${keyStart}..${keyStart + keyCount - 1} lie outside the run (${T} tokens, ${long.L} layers).`);
    }
    const layers = msg.layers ?? Array.from({ length: long.L }, (_, l) => l);
    const rows = await long.rows(msg.start, msg.count, layers);
    const H = long.H;
    // A window of keys is cut here: only what the panel shows crosses.
    const data = rows.map((r) => {
      if (keyStart === 0 && keyCount === T) return r.buffer as ArrayBuffer;
      const out = new Float32Array(H * msg.count * keyCount);
      for (let i = 0; i < H * msg.count; i++) out.set(r.subarray(i * T + keyStart, i * T + keyStart + keyCount), i * keyCount);
      return out.buffer;
    });
    post({ type: 'rows', requestId: msg.requestId, rows: { start: msg.start, count: msg.count, keyStart, keyCount, layers, data } }, data);
  } catch (e) {
    const code = e instanceof EngineError ? e.code : 'INTERNAL';
    post({ type: 'error', requestId: msg.requestId, code, message: (e as Error).message ?? String(e) });
  } finally {
    post({ type: 'settled', requestId: msg.requestId });
  }
}

port.on('message', (msg: HostToWorker) => {
  switch (msg.type) {
    case 'rows':
      rowing = rowing.then(() => answerRows(msg));
      break;
    case 'analyze':
      analyzing = analyze(msg);
      break;
    case 'explain':
    case 'values':
      explaining = explaining.then(() => answerCapture(msg));
      break;
    case 'cancel': {
      const controller = running.get(msg.requestId);
      if (controller) {
        controller.abort();
        running.delete(msg.requestId);
        post({ type: 'error', requestId: msg.requestId, code: 'CANCELLED', message: 'Cancelled.' });
      }
      break;
    }
    case 'crash':
      if (testHooks) throw new Error('Injected worker crash (test hook)'); // uncaught: the worker dies
      break;
  }
});
