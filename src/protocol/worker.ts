// Messages between the extension host (EngineClient) and the engine's worker thread.
// Attention crosses as one transferred ArrayBuffer per layer, so the host can stream layers on.
import type { AttentionEncoding, AttentionPayload, ExplainCell, Explanation, LongStart, RowsData, ValueNormsData } from './attention';
import type { EngineErrorCode, EngineOptions, LoadProgress, ModelInfo, Timings, TokenSpan, Truncation } from '../engine/types';

export interface AnalyzeRequest {
  /** Hub id or local folder. */
  model: string;
  text: string;
  maxTokens?: number;
  /** `text` is the start of a longer selection the host cut (counts of the whole are lower bounds). */
  textContinues?: boolean;
  encoding: AttentionEncoding;
  /** Continue: greedily write this many tokens after the text; the run covers the text and what was written. */
  generate?: number;
  /** Encoder-decoder models: the most tokens the decoder writes (the end token included). */
  maxNewTokens?: number;
  /** Encoder-decoder models: teacher-force this target instead of writing one. */
  target?: string;
  /** Texts of more tokens than this run long (engine/long.ts): thumbnails streamed, rows on demand. Absent: whole layers always. */
  longAbove?: number;
}

/** Rows of the latest long run (`run`: its analyze requestId): queries start..start+count-1, on keys keyStart..keyStart+keyCount-1 (absent: all). */
export interface RowsRequest {
  run: number;
  start: number;
  count: number;
  layers?: number[];
  keyStart?: number;
  keyCount?: number;
}

/** What an encoder-decoder run's start adds (the engine's Seq2seqResult less its attention). */
export interface WorkerSeq2seqStart {
  sourceTokens: TokenSpan[];
  encoderShape: [number, number, number, number];
  crossShape: [number, number, number, number];
  targetText: string;
  forced: boolean;
  finished: boolean;
}

export type HostToWorker =
  | ({ type: 'analyze'; requestId: number; options: EngineOptions } & AnalyzeRequest)
  | { type: 'cancel'; requestId: number }
  /** "Why this weight?": the head's computation for one cell of the text analysed by `analyze` fields (same model, text, limits). */
  | ({ type: 'explain'; requestId: number; options: EngineOptions; cell: ExplainCell } & Omit<AnalyzeRequest, 'encoding'>)
  /** Value norms of the text analysed by `analyze` fields, for value-weighted attention (the same capture as explain). */
  | ({ type: 'values'; requestId: number; options: EngineOptions } & Omit<AnalyzeRequest, 'encoding'>)
  | ({ type: 'rows'; requestId: number } & RowsRequest)
  /** Test hook (only honoured when the worker was started with test hooks on): throw outside any handler. */
  | { type: 'crash' };

export type WorkerToHost =
  | { type: 'progress'; requestId: number; progress: LoadProgress }
  /** The run's tokens and shape: before the forward pass when the model's config declares its heads, else with the result. */
  | {
      type: 'start';
      requestId: number;
      model: ModelInfo;
      tokens: TokenSpan[];
      encoding: AttentionEncoding;
      shape: [number, number, number, number];
      truncation: Truncation | null;
      notices: string[];
      runtime: string;
      /** An encoder-decoder run: `tokens` and `shape` are the decoder's (the target); the source and the other shapes here. */
      seq2seq?: WorkerSeq2seqStart;
      /** A long run: only thumbnails stream; rows come on request (`rows`). */
      long?: LongStart;
    }
  /**
   * One layer or one layer's thumbnails in the request's encoding (buffer transferred, not copied),
   * as the host forwards it to the panel: every layer's thumbnails first when T is above their size.
   */
  | { type: 'payload'; requestId: number; payload: AttentionPayload }
  | { type: 'done'; requestId: number; timings: Timings }
  | { type: 'explained'; requestId: number; explanation: Explanation }
  | { type: 'values'; requestId: number; data: ValueNormsData }
  | { type: 'rows'; requestId: number; rows: RowsData }
  | { type: 'error'; requestId: number; code: EngineErrorCode; message: string }
  /**
   * A request's work has really ended, however it ended (done, error, cancelled, superseded). A
   * cancel is answered at once, but the work it stops may take a while to notice; EngineClient
   * terminates a worker whose cancelled request has not settled within a grace period.
   */
  | { type: 'settled'; requestId: number };
