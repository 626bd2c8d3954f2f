// Shared types of the attention engine. Nothing here (or anywhere under src/engine) imports `vscode`.
import type { AttentionEncoding } from '../protocol/attention';
import type { LongAttention } from './long';

/** Which ONNX Runtime build runs the model. `auto` = native, falling back to WASM if the binary cannot load. */
export type RuntimeChoice = 'auto' | 'cpu' | 'wasm' | 'webgpu';
/**
 * Which weights to load: transformers.js' dtypes, each a file-name suffix (hub.ts): fp32 reads
 * `onnx/model.onnx`, fp16 `onnx/model_fp16.onnx`, q8 `onnx/model_quantized.onnx`, and so on.
 */
export const DTYPES = ['fp32', 'fp16', 'q8', 'int8', 'uint8', 'q4', 'q4f16', 'bnb4'] as const;
export type DtypeChoice = (typeof DTYPES)[number];

export interface EngineOptions {
  /** Folder for downloaded hub models and rewritten graphs. */
  cacheDir: string;
  /** When true no network request is ever made; hub ids must already be cached. */
  offline?: boolean;
  runtime?: RuntimeChoice;
  dtype?: DtypeChoice;
  /** Hub base URL and path template (transformers.js `env.remoteHost` / `env.remotePathTemplate` conventions). */
  remoteHost?: string;
  remotePathTemplate?: string;
  /** ONNX Runtime intra-op threads (default: runtime's choice). */
  threads?: number;
  /**
   * Precision in which the graph hands out attention (default float32). float16 casts inside the
   * graph: ONNX Runtime converts natively and copies out half the bytes, and f16 results need no
   * packing; float32 keeps full precision for exact comparisons (the CLI, the reference tests).
   */
  attentionPrecision?: 'float32' | 'float16';
  /**
   * Hub downloads: the longest wait for a server to connect and send its response headers, and the
   * longest pause mid-body without a byte, in ms (defaults 20 000 and 30 000).
   */
  downloadConnectTimeoutMs?: number;
  downloadIdleTimeoutMs?: number;
}

export interface ModelInfo {
  /** Hub id or absolute local folder, as given. */
  id: string;
  /** e.g. "bert", "gpt2", "llama" (config.model_type). */
  architecture: string;
  kind: 'encoder' | 'decoder';
  layers: number;
  /** Query heads (what the attention tensor has). */
  heads: number;
  /** Key/value heads when they differ (grouped-query attention). */
  kvHeads: number;
  /** Longest input the model takes, in tokens (special tokens included). */
  maxLength: number;
  /** Which file was loaded, relative to the model folder (an encoder-decoder's decoder file). */
  file: string;
  /**
   * Encoder-decoder models (Marian, BART, T5, ...: onnx/encoder_model.onnx with a decoder): run them
   * with analyzeSeq2seq. `kind` is then 'decoder' and layers/heads are the decoder's.
   */
  seq2seq?: Seq2seqInfo;
}

export interface Seq2seqInfo {
  encoder: { layers: number; heads: number; file: string };
  decoder: { layers: number; heads: number; file: string };
  /** The decoder's first input (config or generation_config decoder_start_token_id); null when neither declares one. */
  decoderStartTokenId: number | null;
  /** Tokens that end generation (eos_token_id); empty when none is declared. */
  eosTokenIds: number[];
  /** Longest source the encoder takes, in tokens (`maxLength` too). */
  maxSourceLength: number;
  /** Longest decoder input (start token included). */
  maxTargetLength: number;
}

export interface TokenSpan {
  /** The token as the vocabulary spells it (e.g. "##ing", "Ġthe", "▁Once", "<0xE2>"). */
  text: string;
  id: number;
  /** UTF-16 offsets into the input text; -1 for special tokens. */
  start: number;
  end: number;
  special: boolean;
  /** Written by the model (generate, or a seq2seq target that was generated), not read from the input text. */
  generated?: boolean;
}

/** One token of greedy generation, as it is streamed. */
export interface GeneratedToken {
  /** 0 for the first new token. */
  index: number;
  id: number;
  /** The vocabulary's spelling ("▁the", "Ġcat"). */
  text: string;
  /** What it adds to the decoded text (may be '' for a byte that completes no character yet). */
  piece: string;
  /** An end-of-sequence token: generation stops and it is not part of the result's tokens. */
  end: boolean;
}

/** Loading a model's phases, and `capture`: an explain's forward pass that captures the queries, keys and values. */
export type LoadPhase = 'resolve' | 'download' | 'rewrite' | 'session' | 'tokenizer' | 'ready' | 'capture' | 'generate' | 'forward';

export interface LoadProgress {
  phase: LoadPhase;
  message: string;
  file?: string;
  /** Bytes done / total for downloads (total may be 0 when the server gives no length). */
  loaded?: number;
  total?: number;
}

export interface Timings {
  loadMs: number;
  rewriteMs: number;
  tokenizeMs: number;
  forwardMs: number;
  packMs: number;
}

export interface Truncation {
  /** Tokens the full text would have produced (special tokens included). */
  total: number;
  /** Tokens kept. */
  kept: number;
  /** UTF-16 offset where the analysed text now ends. */
  endOffset: number;
  /** `total` is a lower bound: the text given was itself the start of a longer one (a selection the host cut). */
  atLeast?: boolean;
}

export interface AttentionResult {
  model: ModelInfo;
  tokens: TokenSpan[];
  /** [layers][heads][T][T], row = query, column = key, padding trimmed; empty when `longRun` holds the run. */
  attention: Float32Array | Uint16Array | Uint8Array;
  /**
   * A long input (AnalyzeOptions.longAbove): no whole matrices, but every layer's thumbnails and any
   * rows on demand, computed over the model's key/value cache (long.ts).
   */
  longRun?: LongAttention;
  encoding: AttentionEncoding;
  shape: [number, number, number, number];
  truncation: Truncation | null;
  timings: Timings;
  /** The runtime that actually ran ("onnxruntime-node cpu", "onnxruntime-web wasm", ...). */
  runtime: string;
  /** Human-readable notices (runtime fallback, truncation) the caller should surface. */
  notices: string[];
  /** What each head's attention is made of: only when analyze was asked for it (`qkv: true`). */
  qkv?: QkvCapture;
  /**
   * generate() only: the text the generated tokens decode to (the tokens marked `generated`, which
   * have start = end = -1: they are not in the input text), and whether an end token stopped it.
   */
  generation?: { text: string; tokens: number; finished: boolean };
}

/**
 * An encoder-decoder run: the encoder's self-attention over the source, and one teacher-forced
 * decoder pass over the target giving the decoder's self-attention and its cross-attention on the source.
 */
export interface Seq2seqResult {
  model: ModelInfo;
  /** The source as the encoder reads it, with UTF-16 offsets into the source text (-1 for special tokens). */
  sourceTokens: TokenSpan[];
  /**
   * The decoder's input: the start token (special, -1), then the target tokens with offsets into
   * `targetText`, marked `generated` when the model wrote them. The end token that stopped
   * generation is not an input (it is what the last row predicts).
   */
  targetTokens: TokenSpan[];
  /** The generated text (special tokens skipped), or the target given to teacher-force. */
  targetText: string;
  /** True when the target was given (teacher-forced), false when it was generated. */
  forced: boolean;
  /** Generation ended at an end token (always true when forced). */
  finished: boolean;
  /** Per target row, the decoder's greedy choice for the next token (argmax of that row's logits). */
  predicted: number[];
  /** [L, H, S, S] float32, C order. */
  encoder: Float32Array;
  encoderShape: [number, number, number, number];
  /** [L, H, T, T]: the decoder's (causal) self-attention. */
  decoder: Float32Array;
  decoderShape: [number, number, number, number];
  /** [L, H, T, S]: row = target token, column = source token. */
  cross: Float32Array;
  crossShape: [number, number, number, number];
  truncation: Truncation | null;
  timings: Timings & { generateMs: number };
  runtime: string;
  notices: string[];
}

/** Which keys a query sees: all of them, itself and those before it, or another pattern (`visible`). */
export type QkvMaskKind = 'none' | 'causal' | 'custom';

/**
 * Inside each head, on the analysed text: attention[l][h][i][j] = softmax_j(scale[l] · q_i·k_j over the
 * keys visible[l][i][j]), and out[l][h][i] = Σ_j attention[l][h][i][j] · v_j, with q, k, v of that
 * layer and head. Arrays are per layer, float32, row-major.
 */
export interface QkvCapture {
  /** [H, T, d]: the queries and keys as they meet in q·kᵀ (after rotary embeddings where the model applies them). */
  q: Float32Array[];
  /** [H, T, d], expanded to the query heads for grouped-query attention (query head h holds KV head kvHeadOf[h]). */
  k: Float32Array[];
  v: Float32Array[];
  /** [H, T, d]: each head's output Σ_j α_ij v_j, before the output projection. */
  out: Float32Array[];
  /** d, the head size as the graph computes it (zero-padded dims included). */
  headDim: number;
  /** The factor on q·k before the Softmax (1/√d in most models), from the graph's own constants. */
  scale: number[];
  mask: QkvMaskKind[];
  /** [T, T]: 1 where query i attends key j, 0 where the model masks it out. */
  visible: Uint8Array[];
  /** The key/value head each query head uses (h itself without grouped-query attention). */
  kvHeadOf: number[];
  /** The output projection's weight [H·d, D] (rows h·d..(h+1)·d act on head h's output), or null where the graph has none we recognise. */
  outputProjection: (Float32Array | null)[];
}

/** Errors the engine raises on purpose; `code` lets callers pick an action. */
export type EngineErrorCode =
  | 'MODEL_NOT_FOUND'
  | 'MODEL_CORRUPT'
  | 'DOWNLOAD_FAILED'
  /** The cache folder cannot hold files (a pseudo file system, a file in the way, read-only, hung). */
  | 'CACHE_UNUSABLE'
  | 'OFFLINE_NOT_CACHED'
  | 'ATTENTION_UNSUPPORTED'
  | 'EMPTY_INPUT'
  /** The input is longer than the model takes (an encoder-decoder's source is never cut). */
  | 'INPUT_TOO_LONG'
  | 'RUNTIME_UNAVAILABLE'
  | 'CANCELLED'
  | 'SUPERSEDED'
  | 'WORKER_CRASHED'
  | 'INTERNAL';

export class EngineError extends Error {
  constructor(public readonly code: EngineErrorCode, message: string) {
    super(message);
    this.name = 'EngineError';
  }
}
