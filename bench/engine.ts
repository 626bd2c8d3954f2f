// Engine costs at T = 32, 128, 512 on the BERT-base-shaped model: plain vs attention-exposed
// forward (interleaved runs in one process, medians and their ratio), graph rewrite time,
// tokenization with offsets, packing for the panel, attention bytes. "Exposed" is the graph the
// extension runs (attention cast to float16 inside it); the float32-output graph the CLI runs is
// timed beside it.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { loadExposedGraph } from '../src/engine/onnx/exposedCache';
import { loadTokenizer } from '../src/engine/transformersjs';
import { tokenizeWithOffsets } from '../src/engine/offsets';
import { encodeF16, packF14 } from '../src/analysis/f16';
import { runPayloads } from '../src/engine/payloads';
import { ensureModel, median, round, table } from './util';

const SIZES = [32, 128, 512];
// Pairs of runs per size. This shared 2-core VM's speed drifts by tens of percent within a minute,
// so T = 512 gets enough pairs for the medians to settle.
const RUNS: Record<number, number> = { 32: 30, 128: 20, 512: 16 };

function feeds(T: number): Record<string, ort.Tensor> {
  const ids = BigInt64Array.from({ length: T }, (_, i) => BigInt(i === 0 ? 101 : i === T - 1 ? 102 : 1000 + ((i * 7919) % 28000)));
  return {
    input_ids: new ort.Tensor('int64', ids, [1, T]),
    attention_mask: new ort.Tensor('int64', new BigInt64Array(T).fill(1n), [1, T]),
    token_type_ids: new ort.Tensor('int64', new BigInt64Array(T), [1, T]),
  };
}

/** A prose + code text of at least `T` BERT tokens. */
function sampleText(): string {
  const prose = 'The quick brown fox jumps over the lazy dog, while naïve cafés serve crème brûlée to 42 guests. ';
  const code = 'function add(a: number, b: number): number { return a + b; } // sum\n';
  return Array.from({ length: 40 }, (_, i) => (i % 2 ? prose : code)).join('');
}

export async function engineSection() {
  const modelDir = ensureModel();
  const source = path.join(modelDir, 'onnx/model.onnx');
  const cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'attention-lens-bench-'));
  const exposed = await loadExposedGraph(source, cacheDir, 'bert-base-random', { float16: true });
  const cachedAgain = await loadExposedGraph(source, cacheDir, 'bert-base-random', { float16: true });
  const exposed32 = await loadExposedGraph(source, cacheDir, 'bert-base-random');
  const opts: ort.InferenceSession.SessionOptions = { graphOptimizationLevel: 'all', logSeverityLevel: 3 };
  const plain = await ort.InferenceSession.create(source, opts);
  const withAttention = await ort.InferenceSession.create(exposed.path, opts);
  const withAttention32 = await ort.InferenceSession.create(exposed32.path, opts);

  const tokenizer = await loadTokenizer(ort as never, modelDir);
  const text = sampleText();

  const out: Record<string, unknown> = {
    model: { layers: 12, heads: 12, hidden: 768, file_mb: round(fs.statSync(source).size / 2 ** 20, 1) },
    rewrite_ms: round(exposed.rewriteMs, 1),
    rewrite_cached_ms: round(cachedAgain.rewriteMs, 1),
  };
  const rows: Array<Record<string, string | number>> = [];
  for (const T of SIZES) {
    const f = feeds(T);
    const runs = {
      plain: () => plain.run(f),
      exposed: () => withAttention.run(f, exposed.attentionOutputs),
      exposed32: () => withAttention32.run(f, exposed32.attentionOutputs),
    };
    for (let i = 0; i < 2; i++) for (const run of Object.values(runs)) await run();
    const times: Record<keyof typeof runs, number[]> = { plain: [], exposed: [], exposed32: [] };
    const keys = Object.keys(runs) as (keyof typeof runs)[];
    for (let i = 0; i < RUNS[T]; i++) {
      // Interleaved, alternating the order, so drift on a shared machine hits all alike.
      for (const k of i % 2 ? [...keys].reverse() : keys) {
        // Each session has its own thread pool, whose threads spin for a while after a run: on two
        // cores they would slow whichever session runs next. Let them settle first.
        await new Promise((r) => setTimeout(r, 30));
        const t0 = performance.now();
        await runs[k]();
        times[k].push(performance.now() - t0);
      }
    }
    const { plain: tPlain, exposed: tExposed, exposed32: tExposed32 } = times;
    // Beside the ratio of medians: the median of each adjacent pair's ratio, which cancels drift.
    const pairRatios = tExposed.map((e, i) => e / tPlain[i]);
    // Tokenization with offsets for a text cut to T tokens, and f16 packing of the whole tensor.
    const words = text.split(' ');
    let cut = text;
    for (let n = words.length; n > 0; n = Math.floor(n * 0.9)) {
      cut = words.slice(0, n).join(' ');
      if (tokenizer.encode(cut).length <= T) break;
    }
    const tokTimes: number[] = [];
    for (let i = 0; i < 10; i++) {
      const t0 = performance.now();
      tokenizeWithOffsets(tokenizer, cut);
      tokTimes.push(performance.now() - t0);
    }
    // Packing: the worker bit-packs the float16 layers for the panel (packF14); a float32 graph's
    // output would first need encoding to float16 in JS (what the float16 graph saves).
    const cells = 12 * 12 * T * T;
    const tensor = new Float32Array(cells).fill(1 / T);
    const halves = encodeF16(tensor);
    const packTimes: number[] = [];
    const encodeTimes: number[] = [];
    // What the worker does after the forward pass (runPayloads): every layer's thumbnails (T > 128
    // only), then the layers packed; the panel's grid can paint once the thumbnails are out.
    const thumbTimes: number[] = [];
    const payloadTimes: number[] = [];
    for (let i = 0; i < 3; i++) {
      const t0 = performance.now();
      let thumbsDone = 0;
      for (const p of runPayloads({ attention: halves, shape: [12, 12, T, 64], encoding: 'f16' })) if (p.kind === 'layer' && !thumbsDone) thumbsDone = performance.now();
      payloadTimes.push(performance.now() - t0);
      thumbTimes.push(thumbsDone - t0);
    }
    for (let i = 0; i < 3; i++) {
      const t0 = performance.now();
      packF14(halves);
      packTimes.push(performance.now() - t0);
      const t1 = performance.now();
      encodeF16(tensor);
      encodeTimes.push(performance.now() - t1);
    }
    const entry = {
      plain_ms: round(median(tPlain)),
      exposed_ms: round(median(tExposed)),
      ratio: round(median(tExposed) / median(tPlain), 3),
      ratio_paired_median: round(median(pairRatios), 3),
      exposed_f32_outputs_ms: round(median(tExposed32)),
      ratio_f32_outputs: round(median(tExposed32) / median(tPlain), 3),
      runs: RUNS[T],
      tokenize_offsets_ms: round(median(tokTimes)),
      tokens_in_sample: tokenizer.encode(cut).length,
      pack_f14_ms: round(median(packTimes)),
      encode_f16_in_js_ms: round(median(encodeTimes)),
      thumbs_ms: round(median(thumbTimes)),
      worker_payloads_ms: round(median(payloadTimes)),
      attention_bytes_f32: cells * 4,
      attention_bytes_f16: cells * 2,
    };
    out[`T${T}`] = entry;
    rows.push({ T, 'plain ms': entry.plain_ms, 'exposed ms (f16 out)': entry.exposed_ms, ratio: entry.ratio, 'paired ratio': entry.ratio_paired_median, 'f32 out: ms / ratio': `${entry.exposed_f32_outputs_ms} / ${entry.ratio_f32_outputs}`, 'tokenize ms': entry.tokenize_offsets_ms, 'pack for panel ms': entry.pack_f14_ms, 'thumbnails ms': entry.thumbs_ms, '(f16 encode in JS ms)': entry.encode_f16_in_js_ms, 'attention MiB (f16)': round(entry.attention_bytes_f16 / 2 ** 20, 1) });
  }
  table(`engine (rewrite ${out.rewrite_ms} ms once, ${out.rewrite_cached_ms} ms when cached)`, rows);
  await plain.release();
  await withAttention.release();
  await withAttention32.release();
  fs.rmSync(cacheDir, { recursive: true, force: true });
  return out;
}
