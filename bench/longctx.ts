// Long inputs (issue part 4): the engine's long path (src/engine/long.ts) at T = 2,048, 4,096 and
// 8,192 on a generated BERT-base-sized decoder with a key/value cache: 12 layers x 12 heads (12 KV
// heads), hidden 768, head size 64, intermediate 3072, vocab 512, 8,192 positions, fused
// GroupQueryAttention with rotary (bench/make-qwen-gqa.ts writeQwenFolder, the stories260K
// tokenizer; generated on first use, about 440 MB, gitignored).
//
// Per T, in a fresh Node process (so no size reuses memory another size's worker freed unseen), a
// Node worker thread (bench/longctx-worker.ts: the extension runs its engine in a worker) loads the
// model, then analyzes a story repeated to at least T tokens with maxTokens T and longAbove 512
// (attentionPrecision left at the engine's default). That process's main thread measures:
//   forward_ms         the chunked prefill (timings.forwardMs: every chunk, the first followed by a check of one
//                      more row pass over the cache);
//   grid_ms            from the end of the forward pass (analyze returning in the worker) until every
//                      layer's thumbnails, encoded 'f16', have been posted to and received by the main
//                      thread (wall clocks of both threads). Panel painting is not in it (added later:
//                      `grid_scope` says so);
//   row_ms_p50/p95     over random tokens i: the main thread's request to its receipt of every layer's
//                      row of i (LongAttention.rows(i, 1) in the worker, buffers transferred back);
//   worker_peak_mb     peak process RSS during the prefill and the rows (sampled by the main thread every
//                      20 ms) minus rss_baseline_mb, the RSS once the model is loaded and the text read;
//                      cache_mb = LongAttention.cacheBytes / 2^20;
//   host_max_block_ms  the main thread's longest event-loop delay while the worker runs: the model's
//                      load, the prefill with the thumbnails, the rows (host_max_block_{load,prefill,rows}_ms);
//                      perf_hooks.monitorEventLoopDelay at 1 ms resolution; the Worker's construction is
//                      not in it;
//   chunk              LongAttention.chunk.
//
// Environment: BENCH_LONGCTX_T="2048,4096" (default 2048,4096,8192), BENCH_LONGCTX_ROWS=<rows per T>
// (default 20, 12 at T > 4096: a row pass there takes long enough for fewer to settle the p95),
// BENCH_LONGCTX_MAXPOS=<positions> (default 8192; another value generates its own model folder),
// BENCH_LONGCTX_PRECISION=float16 (the graph's attention outputs as the extension asks for them;
// default: the engine's default, float32).
// A T that fails (the worker's error) is recorded as { error } and the other sizes still run.
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import type { QwenDims } from './make-qwen-gqa';
import type { LongctxFromWorker, LongctxToWorker, LongctxWorkerData } from './longctx-worker';
import { BENCH_CACHE } from './real-run';
import { TARGETS, verdict } from './targets';
import { ROOT, median, mulberry32, percentile, round, table } from './util';

const MAX_POS = Number(process.env.BENCH_LONGCTX_MAXPOS ?? 8192);
const DIMS: QwenDims = { layers: 12, heads: 12, kvHeads: 12, hidden: 768, intermediate: 3072, headSize: 64, vocab: 512, maxPos: MAX_POS, seed: 1 };
export const LONGCTX_DIR = path.join(ROOT, `bench/models/qwen-longctx-random${MAX_POS === 8192 ? '' : `-pos${MAX_POS}`}`);
const TOKENIZER = path.resolve(ROOT, '../shared/models/stories260K');
const STORY = 'Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her friends. One day, she saw a big red ball under a tree. ';
const DEFAULT_T = [2048, 4096, 8192];
const PRECISION = process.env.BENCH_LONGCTX_PRECISION === 'float16' ? 'float16' : undefined;
const GRID_SCOPE = "worker: every layer's LongAttention.thumbs(l, 'f16') encoded and posted; main thread: all received. Panel painting not included (added later).";
const MB = 2 ** 20;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const wallNow = () => performance.timeOrigin + performance.now();

/** The generated model folder; (re)generated in a child process when missing or of other dimensions. */
export function ensureLongctxModel(): string {
  const config = path.join(LONGCTX_DIR, 'config.json');
  const onnxFiles = ['onnx/model.onnx', 'onnx/model.onnx.data', 'tokenizer.json', 'tokenizer_config.json'].map((f) => path.join(LONGCTX_DIR, f));
  if (fs.existsSync(config) && onnxFiles.every((f) => fs.existsSync(f))) {
    const c = JSON.parse(fs.readFileSync(config, 'utf8'));
    const have = [c.num_hidden_layers, c.num_attention_heads, c.num_key_value_heads, c.hidden_size, c.head_dim, c.intermediate_size, c.vocab_size, c.max_position_embeddings];
    const want = [DIMS.layers, DIMS.heads, DIMS.kvHeads, DIMS.hidden, DIMS.headSize, DIMS.intermediate, DIMS.vocab, DIMS.maxPos];
    if (have.join() === want.join() && String(c._comment ?? '').includes(`seed ${DIMS.seed}`)) return LONGCTX_DIR;
  }
  console.log(`Generating the 12 x 12, hidden 768, ${DIMS.maxPos}-position GQA model for longctx (once)…`);
  // writeQwenFolder copies the tokenizer read-only: start from an empty folder.
  fs.rmSync(LONGCTX_DIR, { recursive: true, force: true });
  const code = `require(${JSON.stringify(path.join(ROOT, 'bench/make-qwen-gqa.ts'))}).writeQwenFolder(${JSON.stringify(LONGCTX_DIR)}, ${JSON.stringify(DIMS)}, ${JSON.stringify(TOKENIZER)});`;
  execFileSync(process.execPath, ['--import', 'tsx', '-e', code], { stdio: 'inherit', cwd: ROOT });
  return LONGCTX_DIR;
}

function listOfT(): number[] {
  if (!Number.isInteger(MAX_POS) || MAX_POS <= 512) throw new Error(`BENCH_LONGCTX_MAXPOS: ${process.env.BENCH_LONGCTX_MAXPOS} is not a position count above 512`);
  const env = process.env.BENCH_LONGCTX_T;
  if (!env) return DEFAULT_T;
  const Ts = env.split(',').map((s) => Number(s.trim()));
  for (const T of Ts) if (!Number.isInteger(T) || T <= 512 || T > DIMS.maxPos) throw new Error(`BENCH_LONGCTX_T: ${T} is not a token count in 513..${DIMS.maxPos}`);
  return Ts;
}

function rowsFor(T: number): number {
  const env = Number(process.env.BENCH_LONGCTX_ROWS);
  return Number.isInteger(env) && env > 0 ? env : T > 4096 ? 12 : 20;
}

/** Seeded token indices (mulberry32), so every run asks for the same rows. */
function randomTokens(T: number, n: number, seed: number): number[] {
  const uniform = mulberry32(seed);
  return Array.from({ length: n }, () => Math.floor(uniform() * T));
}

/** A bench worker with a queue of its messages: `next(type)` waits for the next one of that type. */
class BenchWorker {
  readonly worker: Worker;
  private readonly inbox: LongctxFromWorker[] = [];
  private waiter: { type: LongctxFromWorker['type']; resolve: (m: LongctxFromWorker) => void; reject: (e: Error) => void } | null = null;
  private failure: Error | null = null;
  /** Wall clock at which each message arrived. */
  readonly arrived = new WeakMap<object, number>();

  constructor(data: LongctxWorkerData) {
    // tsx registered first, so the worker runs the TypeScript source as `npm run bench` does.
    const src = `require(${JSON.stringify(require.resolve('tsx/cjs'))}); require(${JSON.stringify(path.join(__dirname, 'longctx-worker.ts'))});`;
    this.worker = new Worker(src, { eval: true, workerData: data });
    this.worker.on('message', (m: LongctxFromWorker) => {
      this.arrived.set(m, wallNow());
      if (m.type === 'error') this.fail(new Error(`longctx worker: ${m.message}`));
      else this.inbox.push(m);
      this.pump();
    });
    this.worker.on('error', (e) => this.fail(e));
    this.worker.on('exit', (code) => this.fail(new Error(`longctx worker exited (code ${code})`)));
  }

  private fail(e: Error): void {
    this.failure ??= e;
    this.pump();
  }

  private pump(): void {
    const w = this.waiter;
    if (!w) return;
    const k = this.inbox.findIndex((m) => m.type === w.type);
    if (k >= 0) {
      this.waiter = null;
      w.resolve(this.inbox.splice(k, 1)[0]);
    } else if (this.failure) {
      this.waiter = null;
      w.reject(this.failure);
    }
  }

  next<K extends LongctxFromWorker['type']>(type: K): Promise<Extract<LongctxFromWorker, { type: K }>> {
    return new Promise((resolve, reject) => {
      this.waiter = { type, resolve: resolve as (m: LongctxFromWorker) => void, reject };
      this.pump();
    });
  }

  send(msg: LongctxToWorker): void {
    this.worker.postMessage(msg);
  }

  async close(): Promise<void> {
    this.failure ??= new Error('closed');
    await this.worker.terminate();
  }
}

/** Process RSS sampled every 20 ms; `peak()` is the largest sample since `reset()`. */
function rssSampler() {
  let max = 0;
  const sample = () => {
    max = Math.max(max, process.memoryUsage.rss());
  };
  const timer = setInterval(sample, 20);
  return {
    reset: () => {
      max = 0;
      sample();
    },
    peak: () => {
      sample();
      return max;
    },
    stop: () => clearInterval(timer),
  };
}

/** Largest |sum - 1| of a head's row of token i, and the largest weight after i (should be 0). */
function checkRows(rows: Float32Array[], H: number, T: number, i: number): { sumErr: number; future: number } {
  let sumErr = 0;
  let future = 0;
  for (const layer of rows) {
    if (layer.length !== H * T) throw new Error(`a row of ${layer.length} values, expected H x T = ${H * T}`);
    for (let h = 0; h < H; h++) {
      let s = 0;
      for (let k = 0; k < T; k++) {
        const v = layer[h * T + k];
        if (k > i) future = Math.max(future, Math.abs(v));
        s += v;
      }
      sumErr = Math.max(sumErr, Math.abs(s - 1));
    }
  }
  return { sumErr, future };
}

/** One T in this process (a child of the bench, see longctxSection): the worker's load, run, thumbnails and rows. */
async function measureT(folder: string, T: number) {
  const nRows = rowsFor(T);
  const tokens = randomTokens(T, nRows, T);
  // The main thread's event loop in each phase of the worker's life: the model's load, the prefill
  // with the thumbnails, the rows. The Worker's construction itself is left out.
  const phases = ['load', 'prefill', 'rows'] as const;
  const block = Object.fromEntries(phases.map((p) => [p, monitorEventLoopDelay({ resolution: 1 })])) as Record<(typeof phases)[number], ReturnType<typeof monitorEventLoopDelay>>;
  let gcMax = 0;
  const gcObs = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) gcMax = Math.max(gcMax, e.duration);
  });
  gcObs.observe({ entryTypes: ['gc'] });
  const rss = rssSampler();
  const rssBeforeWorker = process.memoryUsage.rss();
  const t0 = performance.now();
  const w = new BenchWorker({ folder, cacheDir: BENCH_CACHE, T, story: STORY, ...(PRECISION ? { attentionPrecision: PRECISION } : {}) });
  block.load.enable();
  try {
    const loaded = await w.next('loaded');
    block.load.disable();
    // Let the load's garbage and the runtime's threads settle before the baseline.
    await sleep(500);
    const baseline = process.memoryUsage.rss();

    rss.reset();
    block.prefill.enable();
    w.send({ type: 'run' });
    const fwd = await w.next('forward');
    let thumbBytes = 0;
    let thumbEncodeMs = 0;
    let thumbSize = 0;
    let gridEnd = 0;
    for (let l = 0; l < fwd.L; l++) {
      const th = await w.next('thumbs');
      if (th.l !== l) throw new Error(`thumbnails of layer ${th.l} arrived where ${l} was due`);
      thumbBytes += th.data.byteLength;
      thumbEncodeMs += th.encodeMs;
      thumbSize = th.size;
      gridEnd = w.arrived.get(th)!;
    }
    const gridMs = gridEnd - fwd.at;
    await sleep(5); // as host-driver.ts does: let the timers run once more, so a stall at the very end is observed
    block.prefill.disable();
    const prefillPeak = rss.peak();

    rss.reset();
    block.rows.enable();
    const rowMs: number[] = [];
    const rowWorkerMs: number[] = [];
    let sumErr = 0;
    let future = 0;
    for (const i of tokens) {
      // A click comes to an idle worker: let the runtime's spinning threads settle first.
      await sleep(100);
      const t = performance.now();
      w.send({ type: 'rows', i });
      const r = await w.next('rows');
      rowMs.push(performance.now() - t);
      rowWorkerMs.push(r.workerMs);
      if (r.i !== i || r.rows.length !== fwd.L) throw new Error(`rows of token ${r.i} (${r.rows.length} layers) for a request of ${i}`);
      const c = checkRows(r.rows, fwd.H, fwd.T, i);
      sumErr = Math.max(sumErr, c.sumErr);
      future = Math.max(future, c.future);
    }
    await sleep(5);
    block.rows.disable();
    const rowsPeak = rss.peak();
    w.send({ type: 'release' });
    await w.next('released');

    const chunks = fwd.chunkMs;
    const maxBlock = (p: (typeof phases)[number]) => round(block[p].max / 1e6, 1);
    return {
      tokens: fwd.T,
      text_chars: loaded.chars,
      chunk: fwd.chunk,
      chunks: chunks.length,
      forward_ms: round(fwd.forwardMs, 0),
      // The first chunk includes tokenizing the text (from analyze's start); the rest are chunks alone.
      chunk_ms_first: round(chunks[0], 0),
      chunk_ms_p50: round(median(chunks.slice(1)), 0),
      chunk_ms_last: round(chunks[chunks.length - 1], 0),
      after_chunks_ms: round(fwd.afterChunksMs, 0),
      grid_ms: round(gridMs, 1),
      grid_scope: GRID_SCOPE,
      thumbs_encode_ms: round(thumbEncodeMs, 1),
      thumb_size: thumbSize,
      thumbs_bytes: thumbBytes,
      rows: nRows,
      row_ms_p50: round(median(rowMs), 1),
      row_ms_p95: round(percentile(rowMs, 95), 1),
      row_ms_max: round(Math.max(...rowMs), 1),
      row_worker_ms_p50: round(median(rowWorkerMs), 1),
      row_sum_max_err: Number(sumErr.toExponential(2)),
      row_future_max: future,
      rss_before_worker_mb: round(rssBeforeWorker / MB, 0),
      rss_baseline_mb: round(baseline / MB, 0),
      worker_peak_mb: round((Math.max(prefillPeak, rowsPeak) - baseline) / MB, 0),
      worker_peak_prefill_mb: round((prefillPeak - baseline) / MB, 0),
      worker_peak_rows_mb: round((rowsPeak - baseline) / MB, 0),
      cache_mb: round(fwd.cacheBytes / MB, 1),
      host_max_block_ms: Math.max(...phases.map(maxBlock)),
      host_max_block_load_ms: maxBlock('load'),
      host_max_block_prefill_ms: maxBlock('prefill'),
      host_max_block_rows_ms: maxBlock('rows'),
      host_event_loop_p99_ms: round(Math.max(block.prefill.percentile(99), block.rows.percentile(99)) / 1e6, 2),
      host_gc_max_ms: round(gcMax, 1),
      load_ms: round(loaded.loadMs, 0),
      total_ms: round(performance.now() - t0, 0),
    };
  } finally {
    for (const p of phases) block[p].disable();
    gcObs.disconnect();
    rss.stop();
    await w.close();
  }
}

type Measured = Awaited<ReturnType<typeof measureT>>;

/**
 * measureT in a fresh Node process (this file, `child <folder> <T>`), so each size's RSS starts from
 * a process that has held nothing larger: a terminated worker's memory stays in the process's heap
 * and would be reused by the next size's worker unseen.
 */
function measureInChild(folder: string, T: number): Promise<Measured> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', __filename, 'child', folder, String(T)], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
    let stdout = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d: string) => {
      stdout += d;
    });
    child.on('error', reject);
    child.on('close', (code) => {
      const line = stdout.split('\n').find((l) => l.startsWith('RESULT '));
      const failed = stdout.split('\n').find((l) => l.startsWith('FAILED '));
      if (line) resolve(JSON.parse(line.slice(7)) as Measured);
      else reject(new Error(failed ? JSON.parse(failed.slice(7)) : `the longctx child for T=${T} exited with code ${code} and no result:\n${stdout.slice(-2000)}`));
    });
  });
}

export async function longctxSection() {
  const Ts = listOfT();
  const folder = ensureLongctxModel();
  fs.mkdirSync(BENCH_CACHE, { recursive: true });
  const out: Record<string, unknown> = {
    model: { ...DIMS, file_mb: round(fs.statSync(path.join(folder, 'onnx/model.onnx.data')).size / MB, 1), attention: 'GroupQueryAttention (fused, rotary)', tokenizer: 'stories260K' },
    attention_precision: PRECISION ?? 'float32 (engine default)',
    sizes: Ts,
  };
  const rows: Array<Record<string, string | number>> = [];
  for (const T of Ts) {
    console.log(`longctx: T=${T}…`);
    const t0 = performance.now();
    let r: Measured;
    try {
      r = await measureInChild(folder, T);
    } catch (e) {
      const error = String((e as Error)?.message ?? e);
      console.error(`longctx T=${T} FAILED: ${error}`);
      out[`T${T}`] = { error, failed_after_ms: round(performance.now() - t0, 0) };
      rows.push({ T, chunk: 'failed', 'forward ms (chunks, p50 chunk)': error.split('\n')[0].slice(0, 160), 'grid ms': '', 'row ms p50 / p95': '', 'peak MB (cache)': '', 'host block ms': '' });
      continue;
    }
    out[`T${T}`] = r;
    const mark = (v: number, t: (typeof TARGETS)[keyof typeof TARGETS] | null) => (t ? `${v} ${verdict(v, t)}` : `${v}`);
    rows.push({
      T,
      chunk: r.chunk,
      'forward ms (chunks, p50 chunk)': `${r.forward_ms} (${r.chunks}, ${r.chunk_ms_p50})`,
      'grid ms': mark(r.grid_ms, T === 4096 ? TARGETS.longctxGridT4096 : null),
      'row ms p50 / p95': `${r.row_ms_p50} / ${mark(r.row_ms_p95, T === 4096 ? TARGETS.longctxRowP95T4096 : null)}`,
      'peak MB (cache)': `${mark(r.worker_peak_mb, T === 8192 ? TARGETS.longctxPeakT8192 : null)} (${r.cache_mb})`,
      'host block ms': mark(r.host_max_block_ms, TARGETS.hostBlock),
    });
  }
  table(
    `longctx (long path in a worker thread; targets: grid ${TARGETS.longctxGridT4096.label} and row p95 ${TARGETS.longctxRowP95T4096.label} at T=4096, peak ${TARGETS.longctxPeakT8192.label} at T=8192, host block ${TARGETS.hostBlock.label})`,
    rows,
  );
  return out;
}

if (require.main === module && process.argv[2] === 'child') {
  const [folder, T] = [process.argv[3], Number(process.argv[4])];
  measureT(folder, T).then(
    (r) => {
      console.log(`RESULT ${JSON.stringify(r)}`);
      process.exit(0);
    },
    (e: unknown) => {
      console.log(`FAILED ${JSON.stringify(String((e as Error)?.message ?? e))}`);
      process.exit(1);
    },
  );
}
