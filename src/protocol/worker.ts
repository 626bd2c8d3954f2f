// Messages between the extension host (EngineClient) and the engine's worker thread.
// Attention crosses as one transferred ArrayBuffer per layer, so the host can stream layers on.
import type { AttentionEncoding, EngineErrorCode, EngineOptions, LoadProgress, ModelInfo, Timings, TokenSpan, Truncation } from '../engine/types';

export interface AnalyzeRequest {
  /** Hub id or local folder. */
  model: string;
  text: string;
  maxTokens?: number;
  encoding: AttentionEncoding;
}

export type HostToWorker =
  | ({ type: 'analyze'; requestId: number; options: EngineOptions } & AnalyzeRequest)
  | { type: 'cancel'; requestId: number }
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
    }
  /**
   * One layer, [heads][T][T] in the request's encoding (buffer transferred, not copied). `packed`:
   * f16 bit-packed (packF14), as the host forwards it to the panel; absent when a value did not fit.
   */
  | { type: 'layer'; requestId: number; layer: number; data: ArrayBuffer; packed?: boolean }
  /** One layer's thumbnails (analysis/thumbs.ts), sent before the layers when T is above their size. */
  | { type: 'thumbs'; requestId: number; layer: number; size: number; data: ArrayBuffer; packed?: boolean }
  | { type: 'done'; requestId: number; timings: Timings }
  | { type: 'error'; requestId: number; code: EngineErrorCode; message: string };
