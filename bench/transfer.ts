// Host -> webview transfer at T = 128 and 512 on the BERT-base-shaped model (12 x 12):
// - bytes the extension sends per run (run/start + run/layer x 12 in f16 + run/done + status),
//   counted the way VS Code serialises webview messages (JSON text, ArrayBuffers as binary);
// - the notebook-style baseline: the same tensor as JSON text (JSON.stringify of nested number
//   arrays + JSON.parse); at T = 512 one string cannot hold it ("Invalid string length"), which is
//   recorded with the size it needed, and layer-by-layer JSON is timed instead;
// - the binary path: structured clone of the run's messages through a Node MessageChannel, to a
//   worker thread (clone and transfer), and in Chromium through window.postMessage into a
//   same-origin iframe, a cross-origin one (its own process, as VS Code desktop hosts a webview), to
//   the window itself, and to a dedicated worker.
import { constants as bufferConstants } from 'node:buffer';
import * as wt from 'node:worker_threads';
import { f16Lut } from '../src/analysis/f16';
import { median, round, table } from './util';
import { realRuns, wireBytes, type RealRun } from './real-run';
import { launch, openPlainPage, stageRun, type StagedWindow } from './render-page';
import { TARGETS, verdict } from './targets';

const SIZES = [128, 512];
const REPS = 5;

function nestedLayer(layer: Uint16Array, H: number, T: number, lut: Float32Array): number[][][] {
  const out: number[][][] = new Array(H);
  for (let h = 0; h < H; h++) {
    const rows: number[][] = new Array(T);
    for (let q = 0; q < T; q++) {
      const row: number[] = new Array(T);
      const base = (h * T + q) * T;
      for (let k = 0; k < T; k++) row[k] = lut[layer[base + k]];
      rows[q] = row;
    }
    out[h] = rows;
  }
  return out;
}

interface JsonResult {
  ok: boolean;
  /** stringify + parse of the whole [L][H][T][T] tensor (null when it failed). */
  ms: number | null;
  stringify_ms: number | null;
  parse_ms: number | null;
  /** Bytes of the JSON text (UTF-8 = length: ASCII only); when the whole failed, what it needed. */
  bytes: number;
  error: string | null;
  /** When it failed: how far a string can go (V8's maximum string length, characters). */
  failed_at_chars: number | null;
  failed_after_ms: number | null;
  /** The same tensor as one JSON message per layer: stringify + parse of each, summed. */
  per_layer_ms: number;
  per_layer_bytes: number;
  /** How many layers the per-layer figures were measured on (scaled to all layers when fewer). */
  per_layer_sampled: number;
}

/** Layers whose per-layer JSON is timed at large T (the rest is extrapolated: about 3 s a layer at T = 512). */
const JSON_SAMPLE_LAYERS = 2;

function jsonBaseline(run: RealRun): JsonResult {
  const lut = f16Lut();
  const { L, H, T } = run;
  // Layer by layer first: always fits. Every layer at T <= 128; a sample of layers above, scaled to L.
  const sample = T <= 128 ? L : Math.min(L, JSON_SAMPLE_LAYERS);
  const layers = Array.from({ length: sample }, (_, i) => Math.round((i * (L - 1)) / Math.max(1, sample - 1)));
  let perLayerMs = 0;
  let perLayerBytes = 0;
  for (const l of layers) {
    const nested = nestedLayer(run.layers[l], H, T, lut);
    const t0 = performance.now();
    const s = JSON.stringify(nested);
    const back = JSON.parse(s) as number[][][];
    perLayerMs += performance.now() - t0;
    perLayerBytes += s.length;
    if (back.length !== H) throw new Error('JSON round trip lost data');
  }
  perLayerMs *= L / sample;
  perLayerBytes = Math.round((perLayerBytes * L) / sample);
  const needed = perLayerBytes + (L - 1) + 2; // commas and the outer brackets
  // The whole tensor as one JSON text, as notebook tools send it.
  let all: number[][][][] | null = run.layers.map((d) => nestedLayer(d, H, T, lut));
  const t0 = performance.now();
  let s: string;
  try {
    s = JSON.stringify(all);
  } catch (e) {
    const failedAfter = performance.now() - t0;
    // eslint-disable-next-line no-useless-assignment -- drops the tensor before the next attempt allocates
    all = null;
    return {
      ok: false,
      ms: null,
      stringify_ms: null,
      parse_ms: null,
      bytes: needed,
      error: `${(e as Error).name}: ${(e as Error).message}`,
      failed_at_chars: bufferConstants.MAX_STRING_LENGTH,
      failed_after_ms: round(failedAfter, 1),
      per_layer_ms: round(perLayerMs, 1),
      per_layer_bytes: perLayerBytes,
      per_layer_sampled: sample,
    };
  }
  // eslint-disable-next-line no-useless-assignment -- drops the tensor before parsing allocates as much again
  all = null;
  const t1 = performance.now();
  const back = JSON.parse(s) as unknown[];
  const t2 = performance.now();
  if (back.length !== L) throw new Error('JSON round trip lost data');
  return {
    ok: true,
    ms: round(t2 - t0, 1),
    stringify_ms: round(t1 - t0, 1),
    parse_ms: round(t2 - t1, 1),
    bytes: s.length,
    error: null,
    failed_at_chars: null,
    failed_after_ms: null,
    per_layer_ms: round(perLayerMs, 1),
    per_layer_bytes: perLayerBytes,
    per_layer_sampled: sample,
  };
}

/** Structured clone of the run's messages through a MessageChannel in this thread: first post -> last received. */
async function viaMessageChannel(run: RealRun): Promise<number[]> {
  const times: number[] = [];
  const msgs = run.messages(1);
  for (let r = 0; r < REPS; r++) {
    const { port1, port2 } = new wt.MessageChannel();
    const got = new Promise<number>((resolve) => {
      let n = 0;
      port2.on('message', () => {
        if (++n === msgs.length) resolve(performance.now());
      });
    });
    const t0 = performance.now();
    for (const m of msgs) port1.postMessage(m);
    times.push((await got) - t0);
    port1.close();
    port2.close();
  }
  return times;
}

const WORKER_SRC = `
const { parentPort, workerData } = require('node:worker_threads');
let n = 0;
parentPort.on('message', (m) => { if (++n === workerData.count) { n = 0; parentPort.postMessage('ack'); } });
`;

/** Structured clone (or transfer) of the run's messages to a worker thread, which acks the last one. */
async function viaWorker(run: RealRun, transfer: boolean): Promise<number[]> {
  const count = run.messages(1).length;
  const worker = new wt.Worker(WORKER_SRC, { eval: true, workerData: { count } });
  const times: number[] = [];
  try {
    for (let r = 0; r < REPS; r++) {
      const msgs = run.messages(1); // fresh buffers: a transfer detaches them
      const ack = new Promise<number>((resolve) => worker.once('message', () => resolve(performance.now())));
      const t0 = performance.now();
      for (const m of msgs) {
        const data = (m as { data?: ArrayBuffer }).data;
        worker.postMessage(m, transfer && data ? [data] : []);
      }
      times.push((await ack) - t0);
    }
  } finally {
    await worker.terminate();
  }
  return times;
}

/**
 * In Chromium: the run's messages (cloned ArrayBuffers) into a same-origin iframe, into a
 * cross-origin iframe (another process: how VS Code desktop hosts a webview), to the window itself
 * and to a dedicated worker. Each receiver reads every message's data (Chromium decodes a message
 * when its data is first read) and acknowledges the last.
 */
async function viaChromium(run: RealRun): Promise<{ iframe: number[]; crossOrigin: number[]; self: number[]; worker: number[] }> {
  const browser = await launch();
  try {
    const receiver = (ack: string) => `addEventListener('message', (e) => { const d = e.data; if (d && d.type === 'status') ${ack}; });`;
    const { page, close } = await openPlainPage(browser, { 'https://panel.test/': `<script>${receiver("parent.postMessage('ack', '*')")}</script>` });
    await stageRun(page, run);
    const result = await page.evaluate(
      async ([reps, frameScript, workerScript]) => {
        const msgs = (): unknown[] => (window as unknown as StagedWindow).__runMessages(1);
        const frame = async (attrs: Partial<HTMLIFrameElement>): Promise<Window> => {
          const f = Object.assign(document.createElement('iframe'), attrs);
          await new Promise<void>((r) => {
            f.onload = () => r();
            document.body.append(f);
          });
          return f.contentWindow!;
        };
        const acked = () =>
          new Promise<number>((resolve) =>
            addEventListener('message', function on(e) {
              if (e.data === 'ack') {
                removeEventListener('message', on);
                resolve(performance.now());
              }
            }),
          );
        const timeInto = async (target: Window): Promise<number[]> => {
          const times: number[] = [];
          for (let r = 0; r < reps; r++) {
            const m = msgs();
            const ack = acked();
            const t0 = performance.now();
            for (const x of m) target.postMessage(x, '*');
            times.push((await ack) - t0);
          }
          return times;
        };
        const iframe = await timeInto(await frame({ srcdoc: `<script>${frameScript}</script>` }));
        const crossOrigin = await timeInto(await frame({ src: 'https://panel.test/' }));
        // The window itself (what the test harness does).
        const self: number[] = [];
        for (let r = 0; r < reps; r++) {
          const m = msgs();
          const got = new Promise<number>((resolve) =>
            addEventListener('message', function on(e) {
              const d = e.data as { type?: string };
              if (d && d.type === 'status') {
                removeEventListener('message', on);
                resolve(performance.now());
              }
            }),
          );
          const t0 = performance.now();
          for (const x of m) window.postMessage(x, '*');
          self.push((await got) - t0);
        }
        // A dedicated worker (another thread).
        const worker = new Worker(URL.createObjectURL(new Blob([workerScript], { type: 'text/javascript' })));
        const workerTimes: number[] = [];
        for (let r = 0; r < reps; r++) {
          const m = msgs();
          const ack = new Promise<number>((resolve) => (worker.onmessage = () => resolve(performance.now())));
          const t0 = performance.now();
          for (const x of m) worker.postMessage(x);
          workerTimes.push((await ack) - t0);
        }
        worker.terminate();
        return { iframe, crossOrigin, self, worker: workerTimes };
      },
      [REPS, receiver("parent.postMessage('ack', '*')"), receiver("self.postMessage('ack')")] as const,
    );
    await close();
    return result;
  } finally {
    await browser.close();
  }
}

export async function transferSection() {
  const runs = await realRuns(SIZES);
  const out: Record<string, unknown> = {};
  const rows: Array<Record<string, string | number>> = [];
  for (const T of SIZES) {
    const run = runs.get(T)!;
    const msgs = run.messages(1);
    const perMessage = msgs.map((m) => ({ type: m.type, ...wireBytes(m) }));
    const sum = (pred: (t: string) => boolean) => perMessage.filter((m) => pred(m.type)).reduce((s, m) => s + m.json + m.binary, 0);
    const startBytes = sum((t) => t === 'run/start');
    const layerBytes = sum((t) => t === 'run/layer');
    const thumbBytes = sum((t) => t === 'run/thumbs');
    const otherBytes = sum((t) => t !== 'run/start' && t !== 'run/layer' && t !== 'run/thumbs');
    const layerBinary = perMessage.filter((m) => m.type === 'run/layer').reduce((s, m) => s + m.binary, 0);
    const cells = run.L * run.H * run.T * run.T;
    const total = startBytes + thumbBytes + layerBytes + otherBytes;
    const json = jsonBaseline(run);
    const mc = await viaMessageChannel(run);
    const wClone = await viaWorker(run, false);
    const wTransfer = await viaWorker(run, true);
    const chromium = await viaChromium(run);
    const entry = {
      tokens: run.T,
      cells,
      total_bytes: total,
      run_start_bytes: startBytes,
      run_layer_bytes: layerBytes,
      // The thumbnails sent ahead of the layers (T above the thumbnail size only).
      run_thumbs_bytes: thumbBytes,
      other_bytes: otherBytes,
      bytes_per_cell: round(total / cells, 4),
      // run/start + run/thumbs + run/layer (the brief's definition); the rest is two tiny messages.
      bytes_per_cell_start_layers: round((startBytes + thumbBytes + layerBytes) / cells, 4),
      // The attention payload alone (the layers' ArrayBuffers).
      bytes_per_cell_layers: round(layerBinary / cells, 4),
      json_ms: json.ms,
      json_ok: json.ok,
      json_bytes: json.bytes,
      json_bytes_per_cell: round(json.bytes / cells, 2),
      json_error: json.error,
      json_failed_at_chars: json.failed_at_chars,
      json_failed_after_ms: json.failed_after_ms,
      json_stringify_ms: json.stringify_ms,
      json_parse_ms: json.parse_ms,
      json_per_layer_ms: json.per_layer_ms,
      json_per_layer_bytes: json.per_layer_bytes,
      json_per_layer_sampled_layers: json.per_layer_sampled,
      // The binary path the extension takes, structured clone of the same run's messages:
      binary_ms: round(median(mc), 2),
      binary_worker_clone_ms: round(median(wClone), 2),
      binary_worker_transfer_ms: round(median(wTransfer), 2),
      binary_chromium_iframe_ms: round(median(chromium.iframe), 2),
      binary_chromium_cross_origin_ms: round(median(chromium.crossOrigin), 2),
      binary_chromium_self_ms: round(median(chromium.self), 2),
      binary_chromium_worker_ms: round(median(chromium.worker), 2),
      reps: REPS,
    };
    out[`T${T}`] = entry;
    rows.push({
      T: run.T,
      'sent MiB': round(total / 2 ** 20, 2),
      'B/cell (all)': entry.bytes_per_cell,
      target: TARGETS.bytesPerCell.label,
      '': verdict(entry.bytes_per_cell, TARGETS.bytesPerCell),
      'B/cell (layer buffers)': entry.bytes_per_cell_layers,
      'JSON MiB': round(json.bytes / 2 ** 20, 1),
      'JSON ms': json.ok ? String(json.ms) : `FAILED (${json.error?.split(':')[0]} at ${round(bufferConstants.MAX_STRING_LENGTH / 2 ** 20, 0)} Mi chars)`,
      'JSON per layer ms': json.per_layer_sampled < run.L ? `~${Math.round(json.per_layer_ms)} (${json.per_layer_sampled} of ${run.L} layers timed)` : json.per_layer_ms,
      'clone ms (MessageChannel)': entry.binary_ms,
      'worker clone/transfer ms': `${entry.binary_worker_clone_ms} / ${entry.binary_worker_transfer_ms}`,
      'Chromium iframe/cross-origin iframe/self/worker ms': `${entry.binary_chromium_iframe_ms} / ${entry.binary_chromium_cross_origin_ms} / ${entry.binary_chromium_self_ms} / ${entry.binary_chromium_worker_ms}`,
    });
  }
  table('transfer (one run host -> webview; binary = structured clone of the real messages, medians of 5)', rows);
  return out;
}
