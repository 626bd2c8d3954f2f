// The attention engine: "model + text" -> "tokens with exact source ranges + attention of every
// layer and head". Runs anywhere Node runs (worker thread, CLI, tests); never imports `vscode`.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { checkCacheDir } from './cacheDir';
import { encoderFile, resolveCompanion, resolveModel, type ResolveOptions } from './hub';
import { loadRuntime, type LoadedRuntime } from './runtime';
import { loadTokenizer, type PreTrainedTokenizer } from './transformersjs';
import { loadExposedGraph } from './onnx/exposedCache';
import type { QkvLayerPlan } from './onnx/exposeQkv';
import { assembleQkv, qkvOutputNames, type Dense } from './qkv';
import { tokenizeWithOffsets } from './offsets';
import { Detokenizer, argmaxRow, generationSettings, tokenSpelling, type GenerationSettings } from './generate';
import { runSeq2seq, type Seq2seqGraphs } from './seq2seq';
import { LONG_THRESHOLD, LongAttention, type CacheData, type CachedGraph, type CachedPass, type LongOptions } from './long';
import { encodeF16, encodeU8, f16Lut } from '../analysis/f16';
import { newElements } from '../analysis/tensor';
import type { AttentionEncoding } from '../protocol/attention';
import {
  EngineError,
  type AttentionResult,
  type EngineOptions,
  type GeneratedToken,
  type Seq2seqResult,
  type LoadProgress,
  type ModelInfo,
  type TokenSpan,
  type Truncation,
} from './types';
import type * as OrtTypes from 'onnxruntime-common';

export interface LoadOptions {
  onProgress?: (p: LoadProgress) => void;
  signal?: AbortSignal;
}

export interface AnalyzeOptions {
  /** Cap on tokens (special tokens included); the model's own maximum always applies too. */
  maxTokens?: number;
  /** `text` is the start of a longer one (the caller cut it): token counts of the whole are then lower bounds. */
  textContinues?: boolean;
  encoding?: AttentionEncoding;
  signal?: AbortSignal;
  /**
   * Called after tokenization, before the forward pass, with everything of the result but the
   * attention (so a viewer can lay itself out while the model runs). Only when the model's config
   * declares its heads; the result then has exactly this shape.
   */
  onTokenized?: (preview: AttentionPreview) => void;
  /**
   * Also capture each head's queries, keys, values and output, its score scale and mask
   * (AttentionResult.qkv). Runs a second rewrite of the graph, made and loaded on first use: a
   * normal run pays nothing for it.
   */
  qkv?: boolean;
  /**
   * Inputs of more tokens than this run through the model's key/value cache in chunks (long.ts):
   * the result's `longRun` then holds thumbnails and rows on demand, and `attention` is empty. Absent:
   * whole matrices at any length (the CLI, the reference tests).
   */
  longAbove?: number;
  long?: Omit<LongOptions, 'signal' | 'onChunk'>;
}

export interface GenerateOptions {
  /** Most tokens to write after the text (default 20; the model's maximum length also applies). */
  maxNewTokens?: number;
  /** Called with each new token as it is chosen. */
  onToken?: (token: GeneratedToken) => void;
}

export interface Seq2seqOptions {
  /** Cap on source tokens (cut visibly); a source longer than the encoder takes is refused (INPUT_TOO_LONG). */
  maxTokens?: number;
  textContinues?: boolean;
  /** A target text to teacher-force instead of generating. */
  target?: string;
  /** Most tokens to generate, the end token included (default: generation_config, else 64). */
  maxNewTokens?: number;
  onToken?: (token: GeneratedToken) => void;
  signal?: AbortSignal;
}

/** An AttentionResult without the attention and timings: what is known before the forward pass. */
export type AttentionPreview = Omit<AttentionResult, 'attention' | 'timings' | 'qkv'>;

/** A batch given as token ids (as the PyTorch reference cases are). */
export interface IdBatch {
  input_ids: number[][];
  attention_mask?: number[][];
  token_type_ids?: number[][];
  position_ids?: number[][];
}

interface LoadedModel {
  key: string;
  info: ModelInfo;
  session: OrtTypes.InferenceSession;
  tokenizer: PreTrainedTokenizer;
  attentionOutputs: string[];
  runtime: LoadedRuntime;
  config: Record<string, unknown>;
  loadMs: number;
  rewriteMs: number;
  /** The model file the graphs were rewritten from. */
  source: string;
  /** The qkv rewrite's session, started by the first analyze that asks for it. */
  qkv?: Promise<QkvSession>;
  generation: GenerationSettings;
  /** Encoder-decoder models: both graphs (`session` is then the decoder's). */
  seq2seq?: Seq2seqGraphs;
}

interface QkvSession {
  session: OrtTypes.InferenceSession;
  attentionOutputs: string[];
  plans: QkvLayerPlan[];
}

const num = (...values: unknown[]): number | undefined => values.find((v): v is number => typeof v === 'number' && Number.isFinite(v));

function checkAborted(signal: AbortSignal | undefined, what: string): void {
  if (signal?.aborted) throw new EngineError('CANCELLED', `${what} cancelled.`);
}

export class AttentionEngine {
  private model: LoadedModel | null = null;
  private loading: { key: string; promise: Promise<LoadedModel> } | null = null;

  constructor(private readonly options: EngineOptions) {}

  get modelInfo(): ModelInfo | null {
    return this.model?.info ?? null;
  }

  /** Loads (or keeps) a model. The same reference, dtype and runtime reuse the loaded session. */
  async load(ref: string, opts: LoadOptions = {}): Promise<ModelInfo> {
    return (await this.ensureLoaded(ref, opts)).info;
  }

  private async ensureLoaded(ref: string, opts: LoadOptions): Promise<LoadedModel> {
    const key = JSON.stringify([ref, this.options.dtype ?? 'fp32', this.options.runtime ?? 'auto', this.options.attentionPrecision ?? 'float32']);
    if (this.model?.key === key) return this.model;
    if (this.loading?.key !== key) {
      const promise = this.doLoad(ref, key, opts);
      this.loading = { key, promise };
      promise.catch(() => undefined).finally(() => {
        if (this.loading?.promise === promise) this.loading = null;
      });
    }
    return this.loading!.promise;
  }

  private async doLoad(ref: string, key: string, { onProgress, signal }: LoadOptions): Promise<LoadedModel> {
    const t0 = performance.now();
    const dtype = this.options.dtype ?? 'fp32';
    onProgress?.({ phase: 'resolve', message: `Resolving ${ref}` });
    // Downloads and rewritten graphs go there: fail now, clearly, if it cannot hold files.
    await checkCacheDir(this.options.cacheDir);
    checkAborted(signal, 'Model loading');
    const resolveOptions: ResolveOptions = {
      cacheDir: this.options.cacheDir,
      dtype,
      offline: this.options.offline ?? false,
      remoteHost: this.options.remoteHost,
      remotePathTemplate: this.options.remotePathTemplate,
      connectTimeoutMs: this.options.downloadConnectTimeoutMs,
      idleTimeoutMs: this.options.downloadIdleTimeoutMs,
      signal,
      onProgress,
    };
    const resolved = await resolveModel(ref, resolveOptions);
    checkAborted(signal, 'Model loading');

    const readJson = (file: string, required: boolean): Record<string, unknown> => {
      const p = path.join(resolved.folder, file);
      if (!required && !fs.existsSync(p)) return {};
      try {
        return JSON.parse(fs.readFileSync(p, 'utf8'));
      } catch (e) {
        throw new EngineError('MODEL_CORRUPT', `${p} is not valid JSON: ${(e as Error).message}`);
      }
    };
    const config = readJson('config.json', true);
    const generation = generationSettings(config, readJson('generation_config.json', false));
    const encoder = encoderFile(dtype);
    const isSeq2seq = config.is_encoder_decoder === true || fs.existsSync(path.join(resolved.folder, encoder));
    if (isSeq2seq) {
      if (!/decoder_model/.test(resolved.onnxFile)) {
        throw new EngineError('MODEL_NOT_FOUND', `${ref} is an encoder-decoder model, but ${resolved.folder} has ${resolved.onnxFile} instead of a decoder (onnx/decoder_model_merged.onnx or onnx/decoder_model.onnx).`);
      }
      await resolveCompanion(ref, resolved, encoder, resolveOptions);
      checkAborted(signal, 'Model loading');
    }

    onProgress?.({ phase: 'rewrite', message: 'Exposing attention in the ONNX graph' });
    const float16 = this.options.attentionPrecision === 'float16';
    const source = path.join(resolved.folder, resolved.onnxFile);
    // An encoder-decoder's decoder runs without a cache: the merged file's no-past branch alone.
    const exposed = await loadExposedGraph(source, this.options.cacheDir, ref, { float16, ...(isSeq2seq ? { inlineNoPast: true } : {}) });
    const exposedEncoder = isSeq2seq ? await loadExposedGraph(path.join(resolved.folder, encoder), this.options.cacheDir, ref, { float16 }) : null;
    if (isSeq2seq && !exposed.attentionKinds) {
      throw new EngineError(
        'ATTENTION_UNSUPPORTED',
        `${ref}: found no cross-attention in ${resolved.onnxFile} (an attention Softmax whose values come from encoder_hidden_states), so its attention on the source cannot be shown.`,
      );
    }
    checkAborted(signal, 'Model loading');

    const runtime = loadRuntime(this.options.runtime ?? 'auto', this.options.threads);
    onProgress?.({ phase: 'session', message: `Starting ${runtime.label}` });
    const session = await this.startSession(runtime, exposed.path, `${resolved.onnxFile} of ${ref}`);
    const seq2seq: Seq2seqGraphs | undefined = exposedEncoder
      ? {
          encoder: { session: await this.startSession(runtime, exposedEncoder.path, `${encoder} of ${ref}`), attentionOutputs: exposedEncoder.attentionOutputs },
          decoder: { session, attentionOutputs: exposed.attentionOutputs, kinds: exposed.attentionKinds! },
        }
      : undefined;
    checkAborted(signal, 'Model loading');

    onProgress?.({ phase: 'tokenizer', message: 'Loading the tokenizer' });
    let tokenizer: PreTrainedTokenizer;
    try {
      tokenizer = await loadTokenizer(runtime.ort, resolved.folder);
    } catch (e) {
      throw new EngineError('MODEL_CORRUPT', `The tokenizer of ${ref} could not be loaded: ${(e as Error).message}`);
    }

    const info = seq2seq
      ? describeSeq2seq(ref, { encoder, decoder: resolved.onnxFile }, config, seq2seq, tokenizer, generation)
      : this.describe(ref, resolved.onnxFile, config, session, exposed.attentionOutputs.length, tokenizer);
    const loaded: LoadedModel = {
      key,
      info,
      session,
      tokenizer,
      attentionOutputs: exposed.attentionOutputs,
      runtime,
      config,
      loadMs: performance.now() - t0,
      rewriteMs: exposed.rewriteMs + (exposedEncoder?.rewriteMs ?? 0),
      source,
      generation,
      ...(seq2seq ? { seq2seq } : {}),
    };
    const previous = this.model;
    this.model = loaded;
    if (previous) await release(previous);
    onProgress?.({ phase: 'ready', message: `${info.architecture} ready (${info.layers} layers x ${info.heads} heads)` });
    return loaded;
  }

  private async startSession(runtime: LoadedRuntime, file: string, label: string): Promise<OrtTypes.InferenceSession> {
    try {
      return await runtime.ort.InferenceSession.create(file, {
        executionProviders: runtime.executionProviders,
        graphOptimizationLevel: 'all',
        logSeverityLevel: 3, // errors only: ORT's warnings about unused initializers are noise to users
        ...(this.options.threads ? { intraOpNumThreads: this.options.threads } : {}),
      });
    } catch (e) {
      const msg = (e as Error).message;
      if (runtime.executionProviders.includes('webgpu')) {
        throw new EngineError('RUNTIME_UNAVAILABLE', `WebGPU is not available here (${msg}). Set the runtime to "auto".`);
      }
      throw new EngineError('MODEL_CORRUPT', `ONNX Runtime could not load ${label}: ${msg}`);
    }
  }

  /** The qkv rewrite of the loaded model and its session, made once per model. */
  private qkvSession(model: LoadedModel): Promise<QkvSession> {
    model.qkv ??= (async () => {
      // Always float32: "Why this weight?" recomputes the row from the captured vectors and must
      // find the exposed attention to 1e-5, which float16 outputs would round away.
      const exposed = await loadExposedGraph(model.source, this.options.cacheDir, model.info.id, { qkv: true });
      const session = await this.startSession(model.runtime, exposed.path, `the query/key/value capture of ${model.info.id}`);
      return { session, attentionOutputs: exposed.attentionOutputs, plans: exposed.qkv! };
    })();
    // A failed attempt (a refused model) is not kept: the next call says why again.
    const attempt = model.qkv;
    attempt.catch(() => {
      if (model.qkv === attempt) model.qkv = undefined;
    });
    return attempt;
  }

  private describe(
    id: string,
    file: string,
    config: Record<string, unknown>,
    session: OrtTypes.InferenceSession,
    attentionLayers: number,
    tokenizer: PreTrainedTokenizer,
  ): ModelInfo {
    const c = config;
    const text = (c.text_config ?? {}) as Record<string, unknown>;
    const layers = num(c.num_hidden_layers, c.n_layer, c.num_layers, c.n_layers, text.num_hidden_layers) ?? attentionLayers;
    if (layers !== attentionLayers) {
      throw new EngineError(
        'ATTENTION_UNSUPPORTED',
        `${id}: the config declares ${layers} layers but ${attentionLayers} attention blocks were found in the ONNX graph; refusing to guess which is which.`,
      );
    }
    const heads = num(c.num_attention_heads, c.n_head, c.num_heads, c.n_heads, text.num_attention_heads) ?? 0;
    const kvHeads = num(c.num_key_value_heads, c.n_kv_heads, text.num_key_value_heads) ?? heads;
    const architectures = Array.isArray(c.architectures) ? (c.architectures as string[]) : [];
    const isDecoder =
      session.inputNames.some((n) => n.startsWith('past_key_values')) ||
      c.is_decoder === true ||
      architectures.some((a) => /CausalLM|LMHead/.test(a));
    return {
      id,
      architecture: String(c.model_type ?? architectures[0] ?? 'unknown'),
      kind: isDecoder ? 'decoder' : 'encoder',
      layers,
      heads,
      kvHeads,
      maxLength: maxLengthOf(c, tokenizer),
      file,
    };
  }

  /** Tokenizes `text` with exact source ranges, truncating visibly to `maxTokens`. */
  tokenize(text: string, maxTokens?: number, textContinues = false): { tokens: TokenSpan[]; truncation: Truncation | null } {
    const model = this.requireModel();
    const limit = Math.max(1, Math.min(maxTokens ?? Infinity, model.info.maxLength));
    const full = tokenizeWithOffsets(model.tokenizer, text);
    if (full.length <= limit) {
      // All of `text` fits, but it was itself cut from a longer one: say so.
      return { tokens: full, truncation: textContinues ? { total: full.length, kept: full.length, endOffset: text.length, atLeast: true } : null };
    }

    // Cut the text after the last token that fits, keeping room for the trailing special tokens
    // ([SEP], EOS), and tokenize again so the specials are where the model expects them.
    let trailing = 0;
    while (trailing < full.length && full[full.length - 1 - trailing].special) trailing++;
    let room = limit - trailing;
    for (let attempt = 0; attempt < 16 && room > 0; attempt++, room--) {
      const body = full.slice(0, room).filter((t) => !t.special);
      const endOffset = body.length ? body[body.length - 1].end : 0;
      const tokens = tokenizeWithOffsets(model.tokenizer, text.slice(0, endOffset));
      if (tokens.length <= limit) return { tokens, truncation: { total: full.length, kept: tokens.length, endOffset, ...(textContinues ? { atLeast: true } : {}) } };
    }
    throw new EngineError('INTERNAL', `Could not truncate the input to ${limit} tokens.`);
  }

  /** Tokenizes and runs `text`, returning attention of every layer and head for it. */
  async analyze(ref: string, text: string, opts: AnalyzeOptions & LoadOptions = {}): Promise<AttentionResult> {
    const model = await this.ensureLoaded(ref, opts);
    checkAborted(opts.signal, 'Analysis');
    refuseSeq2seq(model);
    const { tokens, truncation, tokenizeMs } = this.tokenizeInput(model, text, opts);
    return this.attend(model, tokens, truncation, tokenizeMs, opts, []);
  }

  /**
   * Decoder-only "Continue": greedily writes up to `maxNewTokens` tokens after `text` (streamed
   * through onToken), then returns the attention of one forward pass over the prompt and what was
   * written. The new tokens come last in `tokens`, marked `generated`, with start = end = -1 and
   * special: true (they are not in `text`; `generation.text` is what they decode to). An end token
   * stops generation and is left out. Each step reruns the whole sequence (no key/value cache):
   * simple, and fine for the few tokens a panel shows.
   */
  async generate(ref: string, text: string, opts: GenerateOptions & AnalyzeOptions & LoadOptions = {}): Promise<AttentionResult> {
    const model = await this.ensureLoaded(ref, opts);
    checkAborted(opts.signal, 'Generation');
    refuseSeq2seq(model);
    if (!model.session.outputNames.includes('logits')) {
      throw new EngineError('ATTENTION_UNSUPPORTED', `${model.info.id}: the graph has no "logits" output, so it cannot write tokens.`);
    }
    const { tokens, truncation, tokenizeMs } = this.tokenizeInput(model, text, opts);
    const notices: string[] = [];
    const asked = opts.maxNewTokens ?? 20;
    const room = Math.max(0, model.info.maxLength - tokens.length);
    const maxNew = Math.min(asked, room);
    if (maxNew < asked) notices.push(`Only ${maxNew} new token${maxNew === 1 ? '' : 's'} fit after the text (the model takes ${model.info.maxLength} tokens in all).`);

    const ids = tokens.map((t) => t.id);
    const written: number[] = [];
    const detok = new Detokenizer(model.tokenizer, ids);
    const eos = new Set(model.generation.eosTokenIds);
    let finished = false;
    for (let step = 0; step < maxNew; step++) {
      checkAborted(opts.signal, 'Generation');
      const logits = await this.logits(model, [...ids, ...written]);
      checkAborted(opts.signal, 'Generation');
      const next = argmaxRow(logits.data, logits.rows - 1, logits.V, model.generation.banned);
      const end = eos.has(next);
      const piece = end ? '' : detok.push(next);
      opts.onToken?.({ index: step, id: next, text: tokenSpelling(model.tokenizer, next).text, piece, end });
      if (end) {
        finished = true;
        break;
      }
      written.push(next);
    }
    const spans = detok.tokenSpans(written, true).map((t) => ({ ...t, start: -1, end: -1, special: true }));
    const result = await this.attend(model, [...tokens, ...spans], truncation, tokenizeMs, opts, notices);
    return { ...result, generation: { text: detok.text, tokens: written.length, finished } };
  }

  /**
   * Encoder-decoder models: the encoder's self-attention over `sourceText`, then the target, written
   * greedily (streamed through onToken) or given as `opts.target`, and one teacher-forced decoder pass
   * giving the decoder's self-attention and its cross-attention on the source. Generation that
   * reaches maxNewTokens without an end token is not an error: `finished` is false and a notice says so.
   */
  async analyzeSeq2seq(ref: string, sourceText: string, opts: Seq2seqOptions & LoadOptions = {}): Promise<Seq2seqResult> {
    const model = await this.ensureLoaded(ref, opts);
    checkAborted(opts.signal, 'Analysis');
    const info = model.info.seq2seq;
    if (!model.seq2seq || !info) {
      throw new EngineError('ATTENTION_UNSUPPORTED', `${model.info.id} is not an encoder-decoder model (it has no ${encoderFile(this.options.dtype ?? 'fp32')}): analyse its text with analyze.`);
    }
    if (sourceText.trim()) {
      const total = tokenizeWithOffsets(model.tokenizer, sourceText).length;
      if (total > info.maxSourceLength) {
        throw new EngineError('INPUT_TOO_LONG', `The source is ${total} tokens long; the encoder of ${model.info.id} takes at most ${info.maxSourceLength}. Select less text.`);
      }
    }
    const { tokens, truncation, tokenizeMs } = this.tokenizeInput(model, sourceText, opts);
    const notices: string[] = [];
    if (model.runtime.notice) notices.push(model.runtime.notice);
    if (truncation && truncation.kept < truncation.total) {
      notices.push(`The source was cut to ${truncation.kept} of ${truncation.atLeast ? 'more than ' : ''}${truncation.total} tokens (the limit is ${opts.maxTokens}).`);
    }

    let target: TokenSpan[] | undefined;
    if (opts.target !== undefined) {
      // What the tokenizer adds around a text (</s> after a Marian or T5 target) is not decoder input.
      target = tokenizeWithOffsets(model.tokenizer, opts.target).filter((t) => !(t.special && t.start < 0));
      if (target.length + 1 > info.maxTargetLength) {
        throw new EngineError('INPUT_TOO_LONG', `The target is ${target.length} tokens long; the decoder of ${model.info.id} takes at most ${info.maxTargetLength - 1} after its start token.`);
      }
    }
    const askedNew = opts.maxNewTokens ?? model.generation.maxNewTokens ?? 64;
    const maxNewTokens = Math.max(1, Math.min(askedNew, info.maxTargetLength - 1));
    const ran = await runSeq2seq(
      { ort: model.runtime.ort, label: model.info.id, graphs: model.seq2seq, tokenizer: model.tokenizer, settings: model.generation },
      tokens.map((t) => t.id),
      { ...(target ? { target: target.map((t) => t.id) } : {}), maxNewTokens, onToken: opts.onToken, signal: opts.signal },
    );
    if (!ran.finished) {
      notices.push(`Generation stopped after ${maxNewTokens} new tokens without an end token; the target may be incomplete (raise the maximum of new tokens).`);
    }
    const startSpelling = tokenSpelling(model.tokenizer, ran.targetIds[0]);
    const startToken: TokenSpan = { text: startSpelling.text, id: ran.targetIds[0], start: -1, end: -1, special: true };
    const [eL, eH] = ran.encoderShape;
    const [dL, dH] = ran.decoderShape;
    if ((info.encoder.heads && eH !== info.encoder.heads) || (info.decoder.heads && dH !== info.decoder.heads) || eL !== info.encoder.layers || dL !== info.decoder.layers) {
      throw new EngineError(
        'ATTENTION_UNSUPPORTED',
        `${model.info.id}: the config declares ${info.encoder.layers} x ${info.encoder.heads} encoder and ${info.decoder.layers} x ${info.decoder.heads} decoder layers x heads, but the graphs' attention has ${eL} x ${eH} and ${dL} x ${dH}.`,
      );
    }
    return {
      model: { ...model.info, heads: dH },
      sourceTokens: tokens,
      targetTokens: [startToken, ...(ran.generated ? ran.generated.spans : target!)],
      targetText: ran.generated ? ran.generated.text : opts.target!,
      forced: !ran.generated,
      finished: ran.finished,
      predicted: ran.predicted,
      encoder: ran.encoder,
      encoderShape: ran.encoderShape,
      decoder: ran.decoder,
      decoderShape: ran.decoderShape,
      cross: ran.cross,
      crossShape: ran.crossShape,
      truncation,
      timings: { loadMs: model.loadMs, rewriteMs: model.rewriteMs, tokenizeMs, forwardMs: ran.forwardMs, packMs: 0, generateMs: ran.generateMs },
      runtime: model.runtime.label,
      notices,
    };
  }

  /** The logits of one unpadded sequence: [rows, V] float32. */
  private async logits(model: LoadedModel, ids: number[]): Promise<{ data: Float32Array; rows: number; V: number }> {
    let out: OrtTypes.InferenceSession.OnnxValueMapType;
    try {
      out = await model.session.run(this.feedsFor(model, model.session, { input_ids: [ids] }), ['logits']);
    } catch (e) {
      throw new EngineError('INTERNAL', `The forward pass of ${model.info.id} failed: ${(e as Error).message}`);
    }
    const t = out.logits as OrtTypes.Tensor;
    const data = t.type === 'float16' ? toFloat32(halfBits(t)) : (t.data as Float32Array);
    return { data, rows: t.dims[1], V: t.dims[2] };
  }

  /** analyze's checks and tokenization of its input. */
  private tokenizeInput(model: LoadedModel, text: string, opts: AnalyzeOptions): { tokens: TokenSpan[]; truncation: Truncation | null; tokenizeMs: number } {
    if (!text.trim()) {
      throw new EngineError('EMPTY_INPUT', 'The text is empty or only whitespace: select some text to analyse.');
    }
    const t0 = performance.now();
    const { tokens, truncation } = this.tokenize(text, opts.maxTokens, opts.textContinues);
    const tokenizeMs = performance.now() - t0;
    if (!tokens.some((t) => !t.special)) {
      if (truncation && truncation.kept < truncation.total) {
        const specials = tokens.length;
        throw new EngineError(
          'EMPTY_INPUT',
          `The limit of ${Math.min(opts.maxTokens ?? Infinity, model.info.maxLength)} tokens leaves no room for the text: the model adds ${specials} special token${specials === 1 ? '' : 's'} of its own. Raise attentionLens.maxTokens (or --max-tokens).`,
        );
      }
      throw new EngineError('EMPTY_INPUT', 'The tokenizer produced no tokens for this text (it only holds characters the model ignores).');
    }
    checkAborted(opts.signal, 'Analysis');
    return { tokens, truncation, tokenizeMs };
  }

  /** The forward pass over `tokens` and the packing of its attention (analyze after tokenization). */
  private async attend(
    model: LoadedModel,
    tokens: TokenSpan[],
    truncation: Truncation | null,
    tokenizeMs: number,
    opts: AnalyzeOptions & LoadOptions,
    extraNotices: string[],
  ): Promise<AttentionResult> {
    const T = tokens.length;
    const encoding = opts.encoding ?? 'f32';
    const notices: string[] = [];
    if (model.runtime.notice) notices.push(model.runtime.notice);
    if (truncation) {
      const of = `${truncation.atLeast ? 'more than ' : ''}${truncation.total}`;
      notices.push(`The input was cut to ${truncation.kept} of ${of} tokens (the limit is ${Math.min(opts.maxTokens ?? Infinity, model.info.maxLength)}).`);
    }
    notices.push(...extraNotices);
    const preview = (L: number, H: number): AttentionPreview => ({
      model: { ...model.info, heads: H },
      tokens,
      encoding,
      shape: [L, H, T, T],
      truncation,
      runtime: model.runtime.label,
      notices,
    });
    const announced = model.info.heads > 0 && opts.onTokenized ? preview(model.info.layers, model.info.heads) : null;
    if (opts.longAbove !== undefined && T > opts.longAbove) {
      const graph = this.cachedGraph(model);
      if (announced) opts.onTokenized!(announced);
      const t1 = performance.now();
      const longRun = await LongAttention.prefill(
        graph,
        tokens.map((t) => t.id),
        { ...opts.long, signal: opts.signal, onChunk: (done, total) => opts.onProgress?.({ phase: 'forward', message: `Reading the text: ${done.toLocaleString('en-US')} of ${total.toLocaleString('en-US')} tokens` }) },
      );
      const forwardMs = performance.now() - t1;
      return {
        ...preview(graph.L, graph.H),
        attention: newElements(encoding, 0),
        longRun,
        timings: { loadMs: model.loadMs, rewriteMs: model.rewriteMs, tokenizeMs, forwardMs, packMs: 0 },
      };
    }
    if (announced) opts.onTokenized!(announced);

    const qkvGraph = opts.qkv ? await this.qkvSession(model) : null;
    checkAborted(opts.signal, 'Analysis');
    const t1 = performance.now();
    const batch = { input_ids: [tokens.map((t) => t.id)] };
    const ran = qkvGraph ? await this.forwardWith(batch, qkvGraph, qkvOutputNames(qkvGraph.plans)) : { attention: await this.forward(batch), extra: {} };
    const [layerData] = ran.attention;
    const forwardMs = performance.now() - t1;
    checkAborted(opts.signal, 'Analysis');

    const t2 = performance.now();
    const L = layerData.length;
    const H = layerData[0].length / (T * T);
    if (announced && (announced.shape[0] !== L || announced.shape[1] !== H)) {
      throw new EngineError(
        'ATTENTION_UNSUPPORTED',
        `${model.info.id}: the config declares ${announced.shape[0]} layers x ${announced.shape[1]} heads but the graph's attention has ${L} x ${H}.`,
      );
    }
    // Each layer is encoded straight into its slot of the one [L][H][T][T] array (float16 graph
    // outputs are already the f16 wire format).
    const stride = H * T * T;
    const attention = newElements(encoding, L * stride);
    layerData.forEach((d, l) => {
      const slot = attention.subarray(l * stride, (l + 1) * stride);
      if (slot instanceof Uint16Array) {
        if (d instanceof Uint16Array) slot.set(d);
        else encodeF16(d, slot);
      } else if (slot instanceof Uint8Array) encodeU8(toFloat32(d), slot);
      else toFloat32(d, slot);
    });
    const qkv = qkvGraph ? assembleQkv(qkvGraph.plans, (name) => ran.extra[name], { heads: H, kvHeads: model.info.kvHeads, tokens: T, label: model.info.id }) : undefined;
    const packMs = performance.now() - t2;
    return {
      ...preview(L, H),
      attention,
      timings: { loadMs: model.loadMs, rewriteMs: model.rewriteMs, tokenizeMs, forwardMs, packMs },
      ...(qkv ? { qkv } : {}),
    };
  }

  /**
   * The loaded model as long.ts runs it: passes of a few tokens over its key/value cache, the next
   * cache written into buffers long.ts owns. Refused (ATTENTION_UNSUPPORTED) for a graph without a
   * cache, whose inputs the long path cannot feed.
   */
  private cachedGraph(model: LoadedModel): CachedGraph {
    const { session, info } = model;
    const { ort } = model.runtime;
    const pasts = session.inputNames.filter((n) => n.startsWith('past_key_values') || n.startsWith('past_'));
    const presentOf = new Map<string, string>();
    for (const name of pasts) {
      const candidates = [name.replace(/^past_key_values/, 'present'), name.replace(/^past_key_values/, 'present_key_values'), name.replace(/^past_/, 'present_')];
      const found = candidates.find((c) => session.outputNames.includes(c));
      if (found) presentOf.set(name, found);
    }
    if (!pasts.length || presentOf.size !== pasts.length) {
      throw new EngineError(
        'ATTENTION_UNSUPPORTED',
        `${info.id} has no key/value cache in its graph (past_key_values inputs with present outputs), which long inputs are computed through. Select fewer tokens, or lower attentionLens.maxTokens.`,
      );
    }
    const shapes = new Map(pasts.map((name) => [name, this.pastShape(model, session, name)]));
    if ([...shapes.values()].some((sh) => sh.half)) {
      // The cache lives in buffers ONNX Runtime writes into; float16 ones cannot be handed over where
      // JavaScript has Float16Array (see the attention fetches below).
      throw new EngineError('ATTENTION_UNSUPPORTED', `${info.id} keeps its key/value cache in float16 (an fp16 or q4f16 export), which long inputs cannot use yet. Choose fp32, q8 or q4 weights (attentionLens.dtype), or select at most ${LONG_THRESHOLD} tokens.`);
    }
    const H = info.heads;
    // The graph's attention outputs are float16 when asked for (the Cast the rewrite adds), else float32.
    const half = this.options.attentionPrecision === 'float16';
    const cacheTensor = (name: string, data: CacheData, length: number) => {
      const { kvHeads, headDim, half } = shapes.get(name)!;
      const view = data.subarray(0, kvHeads * length * headDim);
      return new ort.Tensor(half ? 'float16' : 'float32', view, [1, kvHeads, length, headDim]);
    };
    return {
      label: info.id,
      L: info.layers,
      H,
      cacheShape: () => shapes,
      run: async (pass: CachedPass) => {
        const n = pass.ids.length;
        const P = pass.past?.length ?? 0;
        const keys = P + n;
        const feeds = this.feedsFor(model, session, { input_ids: [pass.ids] });
        feeds.attention_mask = new ort.Tensor('int64', new BigInt64Array(keys).fill(1n), [1, keys]);
        if (feeds.position_ids) feeds.position_ids = new ort.Tensor('int64', BigInt64Array.from(pass.positions, (v) => BigInt(v)), [1, n]);
        if (pass.past) for (const name of pasts) feeds[name] = cacheTensor(name, pass.past.data.get(name)!, P);
        if (feeds.use_cache_branch && pass.past) feeds.use_cache_branch = new ort.Tensor('bool', [true], [1]);
        // Attention comes back as new arrays; the next cache is written straight into long.ts's buffer.
        const fetches: Record<string, OrtTypes.Tensor | null> = {};
        const size = H * n * keys;
        const into = new Map<number, Float32Array>();
        for (const l of pass.layers) {
          const reuse = pass.scratch ? scratchFor(pass.scratch, l, size).subarray(0, size) : null;
          if (reuse) into.set(l, reuse);
          // Float32 attention is written straight into the reused buffer; float16 is widened into it
          // after the run. (Where JavaScript has Float16Array, Node 24 in VS Code's extension host,
          // onnxruntime-common wraps float16 data in one, which onnxruntime-node 1.30 reads as empty.)
          fetches[model.attentionOutputs[l]] = reuse && !half ? new ort.Tensor('float32', reuse, [1, H, n, keys]) : null;
        }
        if (pass.present) for (const name of pasts) fetches[presentOf.get(name)!] = cacheTensor(name, pass.present.get(name)!, keys);
        let out: OrtTypes.InferenceSession.OnnxValueMapType;
        try {
          out = await session.run(feeds, fetches as OrtTypes.InferenceSession.FetchesType);
        } catch (e) {
          throw new EngineError('INTERNAL', `The forward pass of ${info.id} over its key/value cache failed: ${(e as Error).message}`);
        }
        const attention = pass.layers.map((l) => {
          const reuse = into.get(l);
          if (reuse && !half) return reuse;
          const t = out[model.attentionOutputs[l]] as OrtTypes.Tensor;
          const [b, h, q, k] = t.dims;
          if (t.dims.length !== 4 || b !== 1 || h !== H || q !== n || k !== keys) {
            throw new EngineError('ATTENTION_UNSUPPORTED', `${info.id}: attention output ${model.attentionOutputs[l]} has shape [${t.dims.join(', ')}] in a pass over the cache, expected [1, ${H}, ${n}, ${keys}].`);
          }
          if (t.type !== 'float16') return t.data as Float32Array;
          return toFloat32(halfBits(t), reuse);
        });
        return { attention };
      },
    };
  }

  /** [kv_heads, head_dim] of a cache input, from the graph's declared shape or the config, and whether it is float16. */
  private pastShape(model: LoadedModel, session: OrtTypes.InferenceSession, name: string): { kvHeads: number; headDim: number; half: boolean } {
    const metadata = (session as unknown as { inputMetadata?: Array<{ name: string; type?: string; shape?: Array<number | string> }> }).inputMetadata ?? [];
    const meta = metadata.find((m) => m.name === name);
    const shape = meta?.shape ?? [];
    const c = model.config;
    const kvHeads = typeof shape[1] === 'number' ? shape[1] : num(c.num_key_value_heads, c.n_head, c.num_attention_heads)!;
    const headDim = typeof shape[3] === 'number' ? shape[3] : num(c.head_dim) ?? num(c.hidden_size, c.n_embd)! / num(c.num_attention_heads, c.n_head)!;
    return { kvHeads, headDim, half: meta?.type === 'float16' };
  }

  /**
   * Runs a batch of token ids and returns, per batch row, the attention of each layer [heads][q][k]
   * (q = k = the row's full padded length; callers trim padding): a Float32Array, or with
   * attentionPrecision float16 a Uint16Array of half-precision bit patterns.
   */
  async forward(batch: IdBatch): Promise<AttentionData[][]> {
    return (await this.forwardWith(batch, this.requireModel(), [])).attention;
  }

  /** The inputs of `session` for a batch of ids: masks, positions and empty caches made up as the graph declares them. */
  private feedsFor(model: LoadedModel, session: OrtTypes.InferenceSession, batch: IdBatch): Record<string, OrtTypes.Tensor> {
    const { ort } = model.runtime;
    const B = batch.input_ids.length;
    const T = batch.input_ids[0]?.length ?? 0;
    if (!B || !T || batch.input_ids.some((r) => r.length !== T)) throw new EngineError('INTERNAL', 'input_ids must be a non-empty rectangular batch.');
    const int64 = (rows: number[][]) => new ort.Tensor('int64', BigInt64Array.from(rows.flat(), (v) => BigInt(v)), [B, T]);
    const fill = (f: (b: number, t: number) => number) =>
      Array.from({ length: B }, (_, b) => Array.from({ length: T }, (_, t) => f(b, t)));

    const feeds: Record<string, OrtTypes.Tensor> = {};
    for (const name of session.inputNames) {
      if (name === 'input_ids') feeds[name] = int64(batch.input_ids);
      else if (name === 'attention_mask') feeds[name] = int64(batch.attention_mask ?? fill(() => 1));
      else if (name === 'token_type_ids') feeds[name] = int64(batch.token_type_ids ?? fill(() => 0));
      else if (name === 'position_ids') feeds[name] = int64(batch.position_ids ?? fill((_, t) => t));
      else if (name === 'use_cache_branch') feeds[name] = new ort.Tensor('bool', [false], [1]);
      else if (name.startsWith('past_key_values') || name.startsWith('past_')) {
        // An empty cache: [batch, kv_heads, 0, head_dim].
        const { kvHeads, headDim, half } = this.pastShape(model, session, name);
        feeds[name] = new ort.Tensor(half ? 'float16' : 'float32', half ? new Uint16Array(0) : new Float32Array(0), [B, kvHeads, 0, headDim]);
      } else {
        throw new EngineError('ATTENTION_UNSUPPORTED', `${model.info.id}: the graph needs an input "${name}" that Attention Lens does not know how to fill.`);
      }
    }
    return feeds;
  }

  /** forward on `graph` (the model's or its qkv rewrite's session), also returning the graph outputs `extra`. */
  private async forwardWith(
    batch: IdBatch,
    graph: { session: OrtTypes.InferenceSession; attentionOutputs: string[] },
    extra: string[],
  ): Promise<{ attention: AttentionData[][]; extra: Record<string, Dense> }> {
    const model = this.requireModel();
    const B = batch.input_ids.length;
    const T = batch.input_ids[0]?.length ?? 0;
    const feeds = this.feedsFor(model, model.session, batch);

    let outputs: OrtTypes.InferenceSession.OnnxValueMapType;
    try {
      outputs = await graph.session.run(feeds, [...graph.attentionOutputs, ...extra]);
    } catch (e) {
      throw new EngineError('INTERNAL', `The forward pass of ${model.info.id} failed: ${(e as Error).message}`);
    }

    const half = this.options.attentionPrecision === 'float16';
    const perRow: AttentionData[][] = Array.from({ length: B }, () => []);
    for (const name of graph.attentionOutputs) {
      const tensor = outputs[name] as OrtTypes.Tensor;
      const [b, h, q, k] = tensor.dims;
      if (tensor.dims.length !== 4 || b !== B || q !== T || k !== T) {
        throw new EngineError(
          'ATTENTION_UNSUPPORTED',
          `${model.info.id}: attention output ${name} has shape [${tensor.dims.join(', ')}], expected [${B}, heads, ${T}, ${T}].`,
        );
      }
      const data: AttentionData = tensor.type !== 'float16' ? (tensor.data as Float32Array) : half ? halfBits(tensor) : toFloat32(halfBits(tensor));
      const stride = h * q * k;
      // Views, not copies: at T=512 a 12x12 model returns 150 MB of attention.
      for (let r = 0; r < B; r++) {
        const row = data.subarray(r * stride, (r + 1) * stride);
        if (batch.attention_mask) zeroMaskedKeys(row, batch.attention_mask[r], h * q);
        perRow[r].push(row);
      }
      tensor.dispose?.();
    }
    return { attention: perRow, extra: Object.fromEntries(extra.map((name) => [name, dense(outputs[name] as OrtTypes.Tensor)])) };
  }

  async dispose(): Promise<void> {
    const model = this.model;
    this.model = null;
    if (model) await release(model);
  }

  private requireModel(): LoadedModel {
    if (!this.model) throw new EngineError('INTERNAL', 'No model is loaded.');
    return this.model;
  }
}

/** Layer `l`'s reusable attention buffer in `scratch`, grown to hold `size` values (by half again at least: the chunks' keys grow). */
function scratchFor(scratch: Map<number, Float32Array>, l: number, size: number): Float32Array {
  let s = scratch.get(l);
  if (!s || s.length < size) {
    s = new Float32Array(Math.max(size, Math.ceil((s?.length ?? 0) * 1.5)));
    scratch.set(l, s);
  }
  return s;
}

/** analyze and generate read one text: an encoder-decoder needs a source and a target. */
function refuseSeq2seq(model: LoadedModel): void {
  if (model.seq2seq) {
    throw new EngineError('ATTENTION_UNSUPPORTED', `${model.info.id} is an encoder-decoder (translation) model: its attention comes from analyzeSeq2seq (Show Attention and the command line run it); Why this weight?, value weighting and Continue do not cover encoder-decoder models yet.`);
  }
}

/** Longest input in tokens: the position table's and the tokenizer's limits, 512 when neither is known. */
function maxLengthOf(c: Record<string, unknown>, tokenizer: PreTrainedTokenizer): number {
  const text = (c.text_config ?? {}) as Record<string, unknown>;
  const tokLimit = num((tokenizer as unknown as { model_max_length?: number }).model_max_length);
  const posLimit = num(c.max_position_embeddings, c.n_positions, c.n_ctx, c.max_seq_len, text.max_position_embeddings);
  const limits = [posLimit, tokLimit].filter((v): v is number => v !== undefined && v > 0 && v < 1e7);
  return limits.length ? Math.min(...limits) : 512;
}

/**
 * ModelInfo of an encoder-decoder (BART/Marian, T5 and M2M100 config names), checked against the
 * attention the graphs expose: one Softmax per encoder layer, one self and one cross per decoder layer.
 */
function describeSeq2seq(
  id: string,
  files: { encoder: string; decoder: string },
  c: Record<string, unknown>,
  graphs: Seq2seqGraphs,
  tokenizer: PreTrainedTokenizer,
  generation: GenerationSettings,
): ModelInfo {
  const found = {
    encoder: graphs.encoder.attentionOutputs.length,
    self: graphs.decoder.kinds.filter((k) => k === 'self').length,
    cross: graphs.decoder.kinds.filter((k) => k === 'cross').length,
  };
  const encoderLayers = num(c.encoder_layers, c.num_layers, c.num_hidden_layers) ?? found.encoder;
  const decoderLayers = num(c.decoder_layers, c.num_decoder_layers, c.num_layers, c.num_hidden_layers) ?? found.self;
  if (encoderLayers !== found.encoder || decoderLayers !== found.self || decoderLayers !== found.cross) {
    throw new EngineError(
      'ATTENTION_UNSUPPORTED',
      `${id}: the config declares ${encoderLayers} encoder and ${decoderLayers} decoder layers, but the graphs have ${found.encoder} encoder, ` +
        `${found.self} decoder self- and ${found.cross} cross-attention Softmax nodes; refusing to guess which is which.`,
    );
  }
  const encoderHeads = num(c.encoder_attention_heads, c.num_heads, c.num_attention_heads) ?? 0;
  const decoderHeads = num(c.decoder_attention_heads, c.num_heads, c.num_attention_heads) ?? 0;
  const maxLength = maxLengthOf(c, tokenizer);
  const architectures = Array.isArray(c.architectures) ? (c.architectures as string[]) : [];
  return {
    id,
    architecture: String(c.model_type ?? architectures[0] ?? 'unknown'),
    kind: 'decoder',
    layers: decoderLayers,
    heads: decoderHeads,
    kvHeads: decoderHeads,
    maxLength,
    file: files.decoder,
    seq2seq: {
      encoder: { layers: encoderLayers, heads: encoderHeads, file: files.encoder },
      decoder: { layers: decoderLayers, heads: decoderHeads, file: files.decoder },
      decoderStartTokenId: generation.decoderStartTokenId,
      eosTokenIds: generation.eosTokenIds,
      maxSourceLength: maxLength,
      maxTargetLength: num(c.max_target_positions, c.max_position_embeddings, c.n_positions) ?? maxLength,
    },
  };
}

/**
 * Sets to 0 the columns of keys the attention mask leaves out, in each of `rows` rows of one batch
 * row's attention. Unfused graphs already hold 0 there (their softmax of a -1e4 or -inf score);
 * GroupQueryAttention leaves those entries of output_qk unwritten, so they hold whatever the buffer
 * held. Only padded batches (tests, never the editor's one-row runs) have such keys.
 */
export function zeroMaskedKeys(row: AttentionData, mask: number[], rows: number): void {
  const K = mask.length;
  const masked = mask.flatMap((m, k) => (m ? [] : [k]));
  if (masked.length === 0) return;
  for (let r = 0; r < rows; r++) for (const k of masked) row[r * K + k] = 0;
}

async function release(model: LoadedModel): Promise<void> {
  await model.session.release?.();
  await model.seq2seq?.encoder.session.release?.();
  const qkv = await model.qkv?.catch(() => null);
  await qkv?.session.release?.();
}

/** A graph output as plain numbers for the qkv capture (float16 widened, bool and integers as numbers). */
function dense(tensor: OrtTypes.Tensor): Dense {
  const d = tensor.data;
  const data = tensor.type === 'float16' ? toFloat32(halfBits(tensor)) : d instanceof BigInt64Array || d instanceof BigUint64Array ? Float64Array.from(d, Number) : (d as ArrayLike<number>);
  return { dims: tensor.dims, data };
}

/** One layer of attention from the graph: floats, or half-precision bit patterns. */
export type AttentionData = Float32Array | Uint16Array;

/** A float16 tensor's bit patterns (ONNX Runtime hands them out as Uint16Array, or Float16Array where that exists). */
function halfBits(tensor: OrtTypes.Tensor): Uint16Array {
  const d = tensor.data as ArrayBufferView & { length: number };
  return d instanceof Uint16Array ? d : new Uint16Array(d.buffer, d.byteOffset, d.length);
}

function toFloat32(d: AttentionData, out?: Float32Array): Float32Array {
  if (d instanceof Float32Array) {
    if (!out) return d;
    out.set(d);
    return out;
  }
  const lut = f16Lut();
  const o = out ?? new Float32Array(d.length);
  for (let i = 0; i < d.length; i++) o[i] = lut[d[i]];
  return o;
}
