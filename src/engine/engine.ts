// The attention engine: "model + text" -> "tokens with exact source ranges + attention of every
// layer and head". Runs anywhere Node runs (worker thread, CLI, tests); never imports `vscode`.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { checkCacheDir } from './cacheDir';
import { resolveModel } from './hub';
import { loadRuntime, type LoadedRuntime } from './runtime';
import { loadTokenizer, type PreTrainedTokenizer } from './transformersjs';
import { loadExposedGraph } from './onnx/exposedCache';
import type { QkvLayerPlan } from './onnx/exposeQkv';
import { assembleQkv, qkvOutputNames, type Dense } from './qkv';
import { tokenizeWithOffsets } from './offsets';
import { encodeF16, encodeU8, f16Lut } from '../analysis/f16';
import { newElements } from '../analysis/tensor';
import type { AttentionEncoding } from '../protocol/attention';
import {
  EngineError,
  type AttentionResult,
  type EngineOptions,
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
    const resolved = await resolveModel(ref, {
      cacheDir: this.options.cacheDir,
      dtype,
      offline: this.options.offline ?? false,
      remoteHost: this.options.remoteHost,
      remotePathTemplate: this.options.remotePathTemplate,
      connectTimeoutMs: this.options.downloadConnectTimeoutMs,
      idleTimeoutMs: this.options.downloadIdleTimeoutMs,
      signal,
      onProgress,
    });
    checkAborted(signal, 'Model loading');

    const configPath = path.join(resolved.folder, 'config.json');
    let config: Record<string, unknown>;
    try {
      config = JSON.parse(fs.readFileSync(configPath, 'utf8'));
    } catch (e) {
      throw new EngineError('MODEL_CORRUPT', `${configPath} is not valid JSON: ${(e as Error).message}`);
    }

    onProgress?.({ phase: 'rewrite', message: 'Exposing attention in the ONNX graph' });
    const source = path.join(resolved.folder, resolved.onnxFile);
    const exposed = await loadExposedGraph(source, this.options.cacheDir, ref, {
      float16: this.options.attentionPrecision === 'float16',
    });
    checkAborted(signal, 'Model loading');

    const runtime = loadRuntime(this.options.runtime ?? 'auto', this.options.threads);
    onProgress?.({ phase: 'session', message: `Starting ${runtime.label}` });
    const session = await this.startSession(runtime, exposed.path, `${resolved.onnxFile} of ${ref}`);
    checkAborted(signal, 'Model loading');

    onProgress?.({ phase: 'tokenizer', message: 'Loading the tokenizer' });
    let tokenizer: PreTrainedTokenizer;
    try {
      tokenizer = await loadTokenizer(runtime.ort, resolved.folder);
    } catch (e) {
      throw new EngineError('MODEL_CORRUPT', `The tokenizer of ${ref} could not be loaded: ${(e as Error).message}`);
    }

    const info = this.describe(ref, resolved.onnxFile, config, session, exposed.attentionOutputs.length, tokenizer);
    const loaded: LoadedModel = {
      key,
      info,
      session,
      tokenizer,
      attentionOutputs: exposed.attentionOutputs,
      runtime,
      config,
      loadMs: performance.now() - t0,
      rewriteMs: exposed.rewriteMs,
      source,
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
    const tokLimit = num((tokenizer as unknown as { model_max_length?: number }).model_max_length);
    const posLimit = num(c.max_position_embeddings, c.n_positions, c.n_ctx, c.max_seq_len, text.max_position_embeddings);
    const limits = [posLimit, tokLimit].filter((v): v is number => v !== undefined && v > 0 && v < 1e7);
    return {
      id,
      architecture: String(c.model_type ?? architectures[0] ?? 'unknown'),
      kind: isDecoder ? 'decoder' : 'encoder',
      layers,
      heads,
      kvHeads,
      maxLength: limits.length ? Math.min(...limits) : 512,
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

    const T = tokens.length;
    const encoding = opts.encoding ?? 'f32';
    const notices: string[] = [];
    if (model.runtime.notice) notices.push(model.runtime.notice);
    if (truncation) {
      const of = `${truncation.atLeast ? 'more than ' : ''}${truncation.total}`;
      notices.push(`The input was cut to ${truncation.kept} of ${of} tokens (the limit is ${Math.min(opts.maxTokens ?? Infinity, model.info.maxLength)}).`);
    }
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
   * Runs a batch of token ids and returns, per batch row, the attention of each layer [heads][q][k]
   * (q = k = the row's full padded length; callers trim padding): a Float32Array, or with
   * attentionPrecision float16 a Uint16Array of half-precision bit patterns.
   */
  async forward(batch: IdBatch): Promise<AttentionData[][]> {
    return (await this.forwardWith(batch, this.requireModel(), [])).attention;
  }

  /** forward on `graph` (the model's or its qkv rewrite's session), also returning the graph outputs `extra`. */
  private async forwardWith(
    batch: IdBatch,
    graph: { session: OrtTypes.InferenceSession; attentionOutputs: string[] },
    extra: string[],
  ): Promise<{ attention: AttentionData[][]; extra: Record<string, Dense> }> {
    const model = this.requireModel();
    const { ort } = model.runtime;
    const B = batch.input_ids.length;
    const T = batch.input_ids[0]?.length ?? 0;
    if (!B || !T || batch.input_ids.some((r) => r.length !== T)) throw new EngineError('INTERNAL', 'input_ids must be a non-empty rectangular batch.');
    const int64 = (rows: number[][]) => new ort.Tensor('int64', BigInt64Array.from(rows.flat(), (v) => BigInt(v)), [B, T]);
    const fill = (f: (b: number, t: number) => number) =>
      Array.from({ length: B }, (_, b) => Array.from({ length: T }, (_, t) => f(b, t)));

    const metadata = (model.session as unknown as { inputMetadata?: Array<{ name: string; type?: string; shape?: Array<number | string> }> }).inputMetadata ?? [];
    const meta = new Map(metadata.map((m) => [m.name, m]));
    const c = model.config;
    const feeds: Record<string, OrtTypes.Tensor> = {};
    for (const name of model.session.inputNames) {
      if (name === 'input_ids') feeds[name] = int64(batch.input_ids);
      else if (name === 'attention_mask') feeds[name] = int64(batch.attention_mask ?? fill(() => 1));
      else if (name === 'token_type_ids') feeds[name] = int64(batch.token_type_ids ?? fill(() => 0));
      else if (name === 'position_ids') feeds[name] = int64(batch.position_ids ?? fill((_, t) => t));
      else if (name === 'use_cache_branch') feeds[name] = new ort.Tensor('bool', [false], [1]);
      else if (name.startsWith('past_key_values') || name.startsWith('past_')) {
        // An empty cache: [batch, kv_heads, 0, head_dim], from the graph's declared shape or the config.
        const shape = meta.get(name)?.shape ?? [];
        const kv = typeof shape[1] === 'number' ? shape[1] : num(c.num_key_value_heads, c.n_head, c.num_attention_heads)!;
        const hd =
          typeof shape[3] === 'number'
            ? shape[3]
            : num(c.head_dim) ?? num(c.hidden_size, c.n_embd)! / num(c.num_attention_heads, c.n_head)!;
        const type = meta.get(name)?.type === 'float16' ? 'float16' : 'float32';
        feeds[name] = new ort.Tensor(type, type === 'float16' ? new Uint16Array(0) : new Float32Array(0), [B, kv, 0, hd]);
      } else {
        throw new EngineError('ATTENTION_UNSUPPORTED', `${model.info.id}: the graph needs an input "${name}" that Attention Lens does not know how to fill.`);
      }
    }

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
