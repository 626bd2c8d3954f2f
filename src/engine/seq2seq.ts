// Encoder-decoder runs (Marian, BART, T5, M2M100 as transformers.js ships them: onnx/encoder_model.onnx
// with onnx/decoder_model_merged.onnx or onnx/decoder_model.onnx). The encoder runs once over the
// source; the decoder writes the target greedily, then one teacher-forced pass over the whole target
// gives its self-attention and its cross-attention on the source.
//
// The decoder is the merged file's no-past branch (inlineIf.ts), so each generation step reruns it
// over the whole prefix instead of feeding a key/value cache: quadratic in the target length, which
// is fine for the short targets a panel shows, and it keeps one graph for generation and attention.
import { f16Lut } from '../analysis/f16';
import { Detokenizer, argmaxRow, tokenSpelling, type GenerationSettings } from './generate';
import type { AttentionKind } from './onnx/exposeAttention';
import type { Ort } from './runtime';
import type { PreTrainedTokenizer } from './transformersjs';
import { EngineError, type GeneratedToken, type Seq2seqResult, type TokenSpan } from './types';
import type * as OrtTypes from 'onnxruntime-common';

export interface GraphSession {
  session: OrtTypes.InferenceSession;
  attentionOutputs: string[];
}

export interface Seq2seqGraphs {
  encoder: GraphSession;
  decoder: GraphSession & { kinds: AttentionKind[] };
}

export interface Seq2seqContext {
  ort: Ort;
  /** The model's id, for messages. */
  label: string;
  graphs: Seq2seqGraphs;
  tokenizer: PreTrainedTokenizer;
  settings: GenerationSettings;
}

export interface Seq2seqRunOptions {
  /** Token ids of a target to teacher-force (no start token); generate when absent. */
  target?: number[];
  /** Most tokens to generate (the end token included). */
  maxNewTokens: number;
  onToken?: (token: GeneratedToken) => void;
  signal?: AbortSignal;
}

/** What runSeq2seq gives the engine: the attention and the choices as Seq2seqResult holds them, the decoder input, and the generated text. */
export type Seq2seqRun = Pick<Seq2seqResult, 'finished' | 'predicted' | 'encoder' | 'encoderShape' | 'decoder' | 'decoderShape' | 'cross' | 'crossShape'> & {
  /** The decoder's input: the start token, then the target tokens. */
  targetIds: number[];
  /** Generated targets: their text and token ranges in it (start token excluded). */
  generated: { text: string; spans: TokenSpan[] } | null;
  generateMs: number;
  forwardMs: number;
};

const cancelled = () => new EngineError('CANCELLED', 'Generation cancelled.');

/** A float tensor's values as float32 (float16 widened). */
function floats(t: OrtTypes.Tensor): Float32Array {
  if (t.type !== 'float16') return t.data as Float32Array;
  const d = t.data as ArrayBufferView & { length: number };
  const bits = d instanceof Uint16Array ? d : new Uint16Array(d.buffer, d.byteOffset, d.length);
  const lut = f16Lut();
  return Float32Array.from(bits, (b) => lut[b]);
}

/** Layer outputs [1, H, Q, K] stacked into one [L, H, Q, K] array. */
function stack(label: string, what: string, tensors: OrtTypes.Tensor[], Q: number, K: number): { data: Float32Array; shape: [number, number, number, number] } {
  const H = tensors[0]?.dims[1] ?? 0;
  for (const t of tensors) {
    const [b, h, q, k] = t.dims;
    if (t.dims.length !== 4 || b !== 1 || h !== H || q !== Q || k !== K) {
      throw new EngineError('ATTENTION_UNSUPPORTED', `${label}: ${what} has shape [${t.dims.join(', ')}], expected [1, ${H}, ${Q}, ${K}].`);
    }
  }
  const stride = H * Q * K;
  const data = new Float32Array(tensors.length * stride);
  tensors.forEach((t, l) => data.set(floats(t), l * stride));
  return { data, shape: [tensors.length, H, Q, K] };
}

async function run(ctx: Seq2seqContext, g: GraphSession, feeds: Record<string, OrtTypes.Tensor>, outputs: string[], what: string) {
  try {
    return await g.session.run(feeds, outputs);
  } catch (e) {
    throw new EngineError('INTERNAL', `The ${what} of ${ctx.label} failed: ${(e as Error).message}`);
  }
}

/** Feeds for `session` from the tensors we know how to make; any other input is refused by name. */
function feedsFor(ctx: Seq2seqContext, g: GraphSession, known: Record<string, OrtTypes.Tensor>, what: string): Record<string, OrtTypes.Tensor> {
  const feeds: Record<string, OrtTypes.Tensor> = {};
  for (const name of g.session.inputNames) {
    const t = known[name];
    if (!t) throw new EngineError('ATTENTION_UNSUPPORTED', `${ctx.label}: the ${what} needs an input "${name}" that Attention Lens does not know how to fill.`);
    feeds[name] = t;
  }
  return feeds;
}

export async function runSeq2seq(ctx: Seq2seqContext, sourceIds: number[], opts: Seq2seqRunOptions): Promise<Seq2seqRun> {
  const { ort, graphs, label, settings } = ctx;
  const int64 = (v: number[]) => new ort.Tensor('int64', BigInt64Array.from(v, (x) => BigInt(x)), [1, v.length]);
  const ones = (n: number) => int64(new Array<number>(n).fill(1));
  const S = sourceIds.length;
  const start = settings.decoderStartTokenId;
  if (start === null) {
    throw new EngineError('MODEL_CORRUPT', `${label} declares no decoder start token (decoder_start_token_id in config.json or generation_config.json), so its decoder cannot be started.`);
  }

  const t0 = performance.now();
  const encFeeds = feedsFor(ctx, graphs.encoder, { input_ids: int64(sourceIds), attention_mask: ones(S), token_type_ids: int64(new Array<number>(S).fill(0)) }, 'encoder');
  const outs = graphs.encoder.session.outputNames;
  const hiddenName = outs.includes('last_hidden_state') ? 'last_hidden_state' : outs.find((o) => !graphs.encoder.attentionOutputs.includes(o));
  if (!hiddenName) throw new EngineError('ATTENTION_UNSUPPORTED', `${label}: the encoder has no output for the decoder to read.`);
  const enc = await run(ctx, graphs.encoder, encFeeds, [...graphs.encoder.attentionOutputs, hiddenName], 'encoder');
  const encoder = stack(label, 'the encoder attention', graphs.encoder.attentionOutputs.map((n) => enc[n] as OrtTypes.Tensor), S, S);
  const hidden = enc[hiddenName] as OrtTypes.Tensor;

  if (!graphs.decoder.session.outputNames.includes('logits')) {
    throw new EngineError('ATTENTION_UNSUPPORTED', `${label}: the decoder has no "logits" output to choose tokens from.`);
  }
  const decode = (ids: number[], outputs: string[], what: string) =>
    run(ctx, graphs.decoder, feedsFor(ctx, graphs.decoder, {
      input_ids: int64(ids),
      encoder_hidden_states: hidden,
      encoder_attention_mask: ones(S),
      attention_mask: ones(ids.length),
      decoder_attention_mask: ones(ids.length),
      use_cache_branch: new ort.Tensor('bool', [false], [1]),
    }, 'decoder'), outputs, what);

  const ids = [start];
  let generated: Seq2seqRun['generated'] = null;
  let finished = true;
  const t1 = performance.now();
  if (opts.target) ids.push(...opts.target);
  else {
    finished = false;
    const detok = new Detokenizer(ctx.tokenizer, [start]);
    const eos = new Set(settings.eosTokenIds);
    for (let step = 0; step < opts.maxNewTokens; step++) {
      if (opts.signal?.aborted) throw cancelled();
      const out = await decode(ids, ['logits'], 'decoder');
      if (opts.signal?.aborted) throw cancelled();
      const logits = out.logits as OrtTypes.Tensor;
      const V = logits.dims[2];
      const next = step === 0 && settings.forcedBosTokenId !== null ? settings.forcedBosTokenId : argmaxRow(floats(logits), ids.length - 1, V, settings.banned);
      const end = eos.has(next);
      const piece = end ? '' : detok.push(next);
      opts.onToken?.({ index: step, id: next, text: tokenSpelling(ctx.tokenizer, next).text, piece, end });
      if (end) {
        finished = true;
        break;
      }
      ids.push(next);
    }
    generated = { text: detok.text, spans: detok.tokenSpans(ids.slice(1), true) };
  }
  const generateMs = performance.now() - t1;

  // The teacher-forced pass over the whole target.
  if (opts.signal?.aborted) throw cancelled();
  const t2 = performance.now();
  const T = ids.length;
  const dec = await decode(ids, [...graphs.decoder.attentionOutputs, 'logits'], 'decoder pass');
  const pick = (kind: AttentionKind) => graphs.decoder.attentionOutputs.filter((_, i) => graphs.decoder.kinds[i] === kind).map((n) => dec[n] as OrtTypes.Tensor);
  const decoder = stack(label, 'the decoder self-attention', pick('self'), T, T);
  const cross = stack(label, 'the cross-attention', pick('cross'), T, S);
  const logits = dec.logits as OrtTypes.Tensor;
  const values = floats(logits);
  const predicted = Array.from({ length: T }, (_, t) => argmaxRow(values, t, logits.dims[2], settings.banned));
  const forwardMs = performance.now() - t2 + (t1 - t0);
  return {
    targetIds: ids, generated, finished, predicted,
    encoder: encoder.data, encoderShape: encoder.shape,
    decoder: decoder.data, decoderShape: decoder.shape,
    cross: cross.data, crossShape: cross.shape,
    generateMs, forwardMs,
  };
}
