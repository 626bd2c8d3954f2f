// Child process of the `host` and `memory` sections: plays the extension host's part of a run.
// It drives EngineClient with the built worker (out/worker.js) on the BERT-base-shaped model and,
// for every run, does what AttentionController does on the host's event loop, with the same code:
// the translation to panel messages (src/run/messages.ts) and the run model (src/run/run.ts) that
// keeps each arriving layer for the hovers; every message goes to the webview the way VS Code's
// extension host serialises it (JSON text with ArrayBuffer references, the buffers copied into the
// outgoing RPC message). Only the latest run is kept.
//
//   node --expose-gc --import tsx bench/host-driver.ts block  <T> <warmRuns>
//   node --expose-gc --import tsx bench/host-driver.ts memory <T> <runs>
// Prints one line `RESULT <json>`.
import * as path from 'node:path';
import { PerformanceObserver, monitorEventLoopDelay } from 'node:perf_hooks';
import { EngineClient, type RunStart } from '../src/engine/client';
import type { HostToWebview } from '../src/protocol/webview';
import type { AttentionPayload, Focus } from '../src/protocol/attention';
import { payloadMessages, runDoneMessage, runStartMessage } from '../src/run/messages';
import { Run } from '../src/run/run';
import { BENCH_CACHE, SAMPLE_TEXT, serializeLikeVsCode } from './real-run';
import { MODEL_DIR, ROOT } from './util';

const [mode, tArg, nArg] = process.argv.slice(2);
const T = Number(tArg ?? 512);
const N = Number(nArg ?? 3);

/** What VS Code's extension host does with webview.postMessage(message): JSON with buffer references, buffers copied into the RPC message. */
function postToWebview(message: HostToWebview): number {
  const { json, buffers } = serializeLikeVsCode(message);
  const out = Buffer.concat([Buffer.from(json), ...buffers.map((b) => Buffer.from(b))]);
  return out.byteLength;
}

let latest: Run | null = null;
let runId = 0;
/** Longest synchronous time spent in one of this process's run handlers, per run, and by handler. */
let handlerMax = 0;
let handlerMaxBy: Record<string, number> = {};
let handlerTotalBy: Record<string, number> = {};
const timed =
  <A extends unknown[]>(name: string, fn: (...a: A) => void) =>
  (...a: A): void => {
    const t0 = performance.now();
    fn(...a);
    const ms = performance.now() - t0;
    handlerMax = Math.max(handlerMax, ms);
    handlerMaxBy[name] = Math.max(handlerMaxBy[name] ?? 0, ms);
    handlerTotalBy[name] = (handlerTotalBy[name] ?? 0) + ms;
  };

async function oneRun(client: EngineClient): Promise<{ ms: number; sent: number }> {
  const id = ++runId;
  let sent = 0;
  let run: Run | null = null;
  const t0 = performance.now();
  const handle = client.analyze(
    { model: MODEL_DIR, text: SAMPLE_TEXT, maxTokens: T, encoding: 'f16' },
    {
      onProgress: timed('progress', (p: { message: string }) => {
        sent += postToWebview({ type: 'status', message: p.message });
      }),
      onStart: timed('start', (s: RunStart) => {
        const start = runStartMessage(s, { runId: id, text: SAMPLE_TEXT, offset: 0, label: 'notes.md:1-60' });
        run = new Run(start);
        latest = run; // the previous run's state is dropped, as AttentionController.state is replaced
        sent += postToWebview(start);
      }),
      // Thumbnails and layers are timed apart (their costs differ by an order of magnitude).
      onPayload: (p: AttentionPayload) => (p.kind === 'thumbs' ? onThumbs(p) : onLayer(p)),
    },
  );
  const onThumbs = timed('thumbs', (p: AttentionPayload) => {
    for (const m of payloadMessages(id, p, run!.encoding)) sent += postToWebview(m);
  });
  const onLayer = timed('layer', (p: AttentionPayload) => {
    if (p.kind === 'layer') run!.addLayer(p);
    for (const m of payloadMessages(id, p, run!.encoding)) sent += postToWebview(m);
  });
  const { timings, start } = await handle.done;
  sent += postToWebview(runDoneMessage(id, { timings, runtime: start.runtime }));
  sent += postToWebview({ type: 'status', message: null });
  return { ms: performance.now() - t0, sent };
}

/** What measureBlock reports for one run (host.ts reads these from the driver's output). */
export interface BlockMeasure {
  maxBlockMs: number;
  histMaxMs: number;
  driftMaxMs: number;
  p99Ms: number;
  gcMaxMs: number;
  handlerMaxMs: number;
  handlerMaxBy: Record<string, number>;
  handlerTotalBy: Record<string, number>;
}

/** Longest event-loop stall during `fn`: perf_hooks' delay histogram and a 1 ms interval drift probe. */
async function measureBlock<R>(fn: () => Promise<R>): Promise<BlockMeasure & { result: R }> {
  const h = monitorEventLoopDelay({ resolution: 1 });
  let gcMax = 0;
  const gcObs = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) gcMax = Math.max(gcMax, e.duration);
  });
  gcObs.observe({ entryTypes: ['gc'] });
  handlerMax = 0;
  handlerMaxBy = {};
  handlerTotalBy = {};
  let last = performance.now();
  let drift = 0;
  const probe = setInterval(() => {
    const now = performance.now();
    drift = Math.max(drift, now - last - 1);
    last = now;
  }, 1);
  h.enable();
  let result: R;
  try {
    result = await fn();
    // The last messages of a run (the layers, then done) are often handled in one turn of the
    // event loop (a MessagePort drains its queue): let the timers run once more, or that stall
    // would end unobserved.
    await new Promise((r) => setTimeout(r, 5));
  } finally {
    h.disable();
    clearInterval(probe);
    gcObs.disconnect();
  }
  const histMaxMs = h.max / 1e6;
  return { result, histMaxMs, driftMaxMs: drift, maxBlockMs: Math.max(histMaxMs, drift), p99Ms: h.percentile(99) / 1e6, gcMaxMs: gcMax, handlerMaxMs: handlerMax, handlerMaxBy: { ...handlerMaxBy }, handlerTotalBy: { ...handlerTotalBy } };
}

function gc(): void {
  const g = (globalThis as { gc?: () => void }).gc;
  if (!g) throw new Error('run with --expose-gc');
  g();
  g();
}

function heap() {
  gc();
  const m = process.memoryUsage();
  return { heapUsed: m.heapUsed, external: m.external, arrayBuffers: m.arrayBuffers, rss: m.rss };
}

/**
 * The host's side of a hover (AttentionController.onPanelMessage -> RunState.attendedIn, which is
 * Run.attended, rollout's head means prepared one head per turn) at this T, on the latest run.
 */
async function hoverOnHost(): Promise<Record<string, number> | { error: string }> {
  try {
    const state = latest!;
    const model = state.model;
    const time = (fn: () => unknown): number => {
      const t0 = performance.now();
      fn();
      return performance.now() - t0;
    };
    const q = Math.floor(state.T / 2);
    const mean = [0, 1, 2, 3, 4].map((i) => time(() => state.attended(q + i, 5, { layer: 0, agg: 'mean', hideSpecial: false })));
    const head = [0, 1, 2, 3, 4].map((i) => time(() => state.attended(q + i, 5, { layer: 5, agg: 3, hideSpecial: true })));
    // Rollout: the first hover starts computing the head means in the background (one head per
    // turn) and answers null meanwhile; the longest turn while they are computed is the block.
    const rollout: Focus = { layer: model.layers - 1, agg: 'rollout', hideSpecial: false };
    const attendRollout = (q: number) => {
      const words = state.attended(q, 5, rollout);
      if (!words) state.prepareMeans(setImmediate); // as RunState.attendedIn does
      return words;
    };
    const rolloutFirst = time(() => attendRollout(q));
    const t0 = performance.now();
    let stepMax = 0;
    while (attendRollout(q) === null) {
      const t = performance.now();
      await new Promise((r) => setImmediate(r));
      stepMax = Math.max(stepMax, performance.now() - t);
    }
    const rolloutReady = performance.now() - t0;
    const rolloutNext = time(() => attendRollout(q + 1));
    return { mean_ms: Math.max(...mean), head_hidden_specials_ms: Math.max(...head), rollout_first_ms: rolloutFirst, rollout_step_max_ms: stepMax, rollout_ready_ms: rolloutReady, rollout_next_ms: rolloutNext };
  } catch (e) {
    return { error: String((e as Error).message ?? e) };
  }
}

/**
 * A newer request arriving while a run streams its payloads (a live update): from the moment the
 * first thumbnails (or layer) reach the host to the newer run's start. The worker stops the old
 * stream between payloads (streamPayloads), so this is about one payload plus tokenizing.
 */
async function supersedeProbe(client: EngineClient, tries = 3): Promise<number[]> {
  const samples: number[] = [];
  for (let i = 0; i < tries; i++) {
    let t0 = 0;
    let newer: Promise<unknown> | null = null;
    const started = new Promise<number>((resolve) => {
      const first = () => {
        if (newer) return;
        t0 = performance.now();
        newer = client.analyze({ model: MODEL_DIR, text: 'A newer selection.', maxTokens: T, encoding: 'f16' }, { onStart: () => resolve(performance.now() - t0) }).done;
      };
      client.analyze({ model: MODEL_DIR, text: SAMPLE_TEXT, maxTokens: T, encoding: 'f16' }, { onPayload: first }).done.catch(() => undefined);
    });
    samples.push(await started);
    await newer;
  }
  return samples;
}

async function main(): Promise<unknown> {
  const client = new EngineClient(path.join(ROOT, 'out', 'worker.js'), { cacheDir: BENCH_CACHE, offline: true, runtime: 'cpu', attentionPrecision: 'float16' });
  try {
    if (mode === 'block') {
      const cold = await measureBlock(() => oneRun(client));
      const warm = [];
      for (let i = 0; i < N; i++) warm.push(await measureBlock(() => oneRun(client)));
      const hover = await hoverOnHost();
      const supersede = await supersedeProbe(client);
      return {
        T: latest!.T,
        runState: 'src/run/run.ts',
        cold: { runMs: cold.result.ms, maxBlockMs: cold.maxBlockMs, histMaxMs: cold.histMaxMs, driftMaxMs: cold.driftMaxMs, p99Ms: cold.p99Ms, gcMaxMs: cold.gcMaxMs, handlerMaxMs: cold.handlerMaxMs, handlerMaxBy: cold.handlerMaxBy, handlerTotalBy: cold.handlerTotalBy },
        warm: warm.map((w) => ({
          runMs: w.result.ms,
          sentBytes: w.result.sent,
          maxBlockMs: w.maxBlockMs,
          histMaxMs: w.histMaxMs,
          driftMaxMs: w.driftMaxMs,
          p99Ms: w.p99Ms,
          gcMaxMs: w.gcMaxMs,
          handlerMaxMs: w.handlerMaxMs,
          handlerMaxBy: w.handlerMaxBy,
          handlerTotalBy: w.handlerTotalBy,
        })),
        hover,
        supersede,
      };
    }
    if (mode === 'memory') {
      await oneRun(client);
      const after1 = heap();
      const runMs: number[] = [];
      for (let i = 1; i < N; i++) runMs.push((await oneRun(client)).ms);
      const afterN = heap();
      return { T: latest!.T, runs: N, after1, afterN, runMs };
    }
    throw new Error(`unknown mode ${mode}`);
  } finally {
    await client.dispose();
  }
}

main().then(
  (r) => {
    console.log(`RESULT ${JSON.stringify(r)}`);
    process.exit(0);
  },
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
