// Validation of both directions of the host <-> webview protocol. Each side trusts nothing it
// receives: anything malformed is dropped (null), and a bad message must not break the current view.

import { ENCODINGS, type AttentionEncoding, type RowsData, type ExplainCell, type Explanation, type HeadSelection, type LayerData, type Seq2seqStart, type SeqPart, type ThumbsData, type ValueNormsData, type WireData, type WireModel, type WireToken } from './attention';
import type { ExportResultMessage, HostToWebview, RunLayerMessage, RunRowsMessage, RunStartMessage, RunThumbsMessage, ValuesDataMessage, WebviewToHost } from './webview';

/** Limits that keep a bad message from allocating absurd amounts of memory. */
/** Tokens in a run: long runs (rows on demand) go to the longest context a model of today takes. */
export const MAX_TOKENS = 131072;
export const MAX_LAYERS = 512;
export const MAX_HEADS = 512;
/** Largest export scale (a multiple of the screen's pixel ratio): the canvas limits come next. */
export const MAX_EXPORT_SCALE = 8;

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isInt = (v: unknown, min = 0, max = Number.MAX_SAFE_INTEGER): v is number => typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max;
const isStr = (v: unknown): v is string => typeof v === 'string';
const isHead = (v: unknown): v is HeadSelection => v === 'mean' || isInt(v);

// ---------------------------------------------------------------- webview -> host

export function parseWebviewMessage(raw: unknown): WebviewToHost | null {
  if (!isObj(raw)) return null;
  const m = raw;
  switch (m.type) {
    case 'ready':
      return isInt(m.protocol) ? { type: 'ready', protocol: m.protocol } : null;
    case 'hover/token':
      if (!isInt(m.runId) || !(m.tokenIndex === null || isInt(m.tokenIndex)) || !isInt(m.layer) || !isHead(m.head)) return null;
      return { type: 'hover/token', runId: m.runId, tokenIndex: m.tokenIndex as number | null, layer: m.layer, head: m.head, hideSpecial: m.hideSpecial === true, rollout: m.rollout === true, ...valueWeights(m) };
    case 'select/head':
      if (!isInt(m.runId) || !isInt(m.layer) || !isHead(m.head)) return null;
      return { type: 'select/head', runId: m.runId, layer: m.layer, head: m.head, rollout: m.rollout === true, ...valueWeights(m) };
    case 'values/request':
      return isInt(m.runId) ? { type: 'values/request', runId: m.runId } : null;
    case 'run/continue':
      return isInt(m.runId) ? { type: 'run/continue', runId: m.runId } : null;
    case 'rows/request': {
      if (!isInt(m.runId) || !isInt(m.start, 0, MAX_TOKENS - 1) || !isInt(m.count, 1, MAX_TOKENS)) return null;
      if (m.layers !== undefined && !(Array.isArray(m.layers) && m.layers.length > 0 && m.layers.length <= MAX_LAYERS && m.layers.every((l) => isInt(l, 0, MAX_LAYERS - 1)))) return null;
      if ((m.keyStart !== undefined || m.keyCount !== undefined) && !(isInt(m.keyStart, 0, MAX_TOKENS - 1) && isInt(m.keyCount, 1, MAX_TOKENS))) return null;
      return {
        type: 'rows/request',
        runId: m.runId,
        start: m.start,
        count: m.count,
        ...(m.layers !== undefined ? { layers: m.layers as number[] } : {}),
        ...(m.keyStart !== undefined ? { keyStart: m.keyStart as number, keyCount: m.keyCount as number } : {}),
      };
    }
    case 'ack':
      return isInt(m.bytes) ? { type: 'ack', bytes: m.bytes } : null;
    case 'run/milestone':
      if (!isInt(m.runId) || (m.what !== 'painted' && m.what !== 'complete')) return null;
      return { type: 'run/milestone', runId: m.runId, what: m.what };
    case 'compare/pin':
      return isInt(m.runId) ? { type: 'compare/pin', runId: m.runId } : null;
    case 'compare/clear':
      return { type: 'compare/clear' };
    case 'explain/request': {
      // Within the protocol's limits here; the host checks the cell against its run's shape.
      const cell = parseExplainCell(m.cell);
      return isInt(m.runId) && cell ? { type: 'explain/request', runId: m.runId, cell } : null;
    }
    case 'export/result':
      return parseExportResult(m);
    case 'export/menu':
      if (m.action !== 'png' && m.action !== 'svg' && m.action !== 'html' && m.action !== 'data') return null;
      if (m.scale !== undefined && !isScale(m.scale)) return null;
      return { type: 'export/menu', action: m.action, ...(m.scale === undefined ? {} : { scale: m.scale }) };
    default:
      return null;
  }
}

const valueWeights = (m: Record<string, unknown>): { weights?: 'value'; part?: SeqPart; side?: 'k' } => ({
  ...(m.weights === 'value' ? { weights: 'value' as const } : {}),
  ...(isPart(m.part) ? { part: m.part } : {}),
  ...(m.side === 'k' ? { side: 'k' as const } : {}),
});
const isPart = (v: unknown): v is SeqPart => v === 'encoder' || v === 'cross';

const isScale = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v > 0 && v <= MAX_EXPORT_SCALE;

function parseExportResult(m: Record<string, unknown>): ExportResultMessage | null {
  if (!isInt(m.id)) return null;
  const r: ExportResultMessage = { type: 'export/result', id: m.id };
  // VS Code hands binary over as an ArrayBuffer or a typed array: either becomes bytes.
  if (isStr(m.data) || m.data instanceof ArrayBuffer) r.data = m.data;
  else if (ArrayBuffer.isView(m.data)) r.data = new Uint8Array(m.data.buffer, m.data.byteOffset, m.data.byteLength);
  if (isStr(m.error)) r.error = m.error;
  if (r.data === undefined && r.error === undefined) return null;
  if (m.view === 'model' || m.view === 'head' || m.view === 'matrix') r.view = m.view;
  if (isInt(m.layer, 0, MAX_LAYERS - 1)) r.layer = m.layer;
  if (isInt(m.width)) r.width = m.width;
  if (isInt(m.height)) r.height = m.height;
  return r;
}

// ---------------------------------------------------------------- host -> webview

/** A host message as the panel uses it: attention with the fields its run's store takes. */
export type ParsedHostMessage =
  | Exclude<HostToWebview, RunLayerMessage | RunThumbsMessage | ValuesDataMessage | RunRowsMessage>
  | ({ type: 'run/rows'; runId: number } & ({ rows: RowsData<WireData>; error?: undefined } | { rows?: undefined; error: string; start: number; count: number }))
  | ({ type: 'values/data'; runId: number } & ({ data: ValueNormsData<WireData>; error?: undefined } | { data?: undefined; error: string }))
  | ({ type: 'run/layer'; runId: number; part?: SeqPart } & LayerData<WireData>)
  | ({ type: 'run/thumbs'; runId: number; part?: SeqPart } & ThumbsData<WireData>);

function parseModel(v: unknown): WireModel | null {
  if (!isObj(v)) return null;
  if (!isStr(v.id) || !isStr(v.architecture) || (v.kind !== 'encoder' && v.kind !== 'decoder')) return null;
  if (!isInt(v.layers, 1, MAX_LAYERS) || !isInt(v.heads, 1, MAX_HEADS) || !isInt(v.maxLength, 0)) return null;
  return { id: v.id, architecture: v.architecture, kind: v.kind, layers: v.layers, heads: v.heads, maxLength: v.maxLength };
}

function parseToken(v: unknown): WireToken | null {
  if (!isObj(v) || !isStr(v.text) || typeof v.special !== 'boolean') return null;
  if (!isInt(v.start, -1) || !isInt(v.end, -1)) return null;
  if (v.start >= 0 && v.end < v.start) return null;
  return { text: v.text, start: v.start, end: v.end, special: v.special, ...(v.generated === true ? { generated: true } : {}) };
}

function parseStart(m: Record<string, unknown>): RunStartMessage | null {
  if (!isInt(m.runId)) return null;
  const model = parseModel(m.model);
  if (!model) return null;
  if (!Array.isArray(m.tokens) || m.tokens.length < 1 || m.tokens.length > MAX_TOKENS) return null;
  const tokens: WireToken[] = [];
  for (const t of m.tokens) {
    const p = parseToken(t);
    if (!p) return null;
    tokens.push(p);
  }
  if (!ENCODINGS.includes(m.encoding as AttentionEncoding)) return null;
  const source = isStr(m.source) ? m.source : '';
  let truncation: RunStartMessage['truncation'] = null;
  if (isObj(m.truncation) && isInt(m.truncation.total) && isInt(m.truncation.kept)) {
    truncation = { total: m.truncation.total, kept: m.truncation.kept, ...(m.truncation.atLeast === true ? { atLeast: true } : {}) };
  }
  const notices = Array.isArray(m.notices) ? m.notices.filter(isStr) : [];
  const msg: RunStartMessage = { type: 'run/start', runId: m.runId, model, tokens, encoding: m.encoding as AttentionEncoding, source, truncation, notices };
  if (isObj(m.sourceText) && isStr(m.sourceText.text) && isInt(m.sourceText.offset)) {
    msg.sourceText = { text: m.sourceText.text, offset: m.sourceText.offset };
  }
  if (m.long !== undefined) {
    if (!isObj(m.long) || !isInt(m.long.threshold)) return null;
    msg.long = { threshold: m.long.threshold };
  }
  if (m.seq2seq !== undefined) {
    const s = parseSeq2seq(m.seq2seq);
    if (!s) return null;
    msg.seq2seq = s;
  }
  return msg;
}

function parseSeq2seq(v: unknown): Seq2seqStart | null {
  if (!isObj(v) || !isObj(v.encoder) || !isInt(v.encoder.layers, 1, MAX_LAYERS) || !isInt(v.encoder.heads, 1, MAX_HEADS)) return null;
  if (!Array.isArray(v.sourceTokens) || v.sourceTokens.length < 1 || v.sourceTokens.length > MAX_TOKENS || !isStr(v.targetText)) return null;
  const sourceTokens: WireToken[] = [];
  for (const t of v.sourceTokens) {
    const p = parseToken(t);
    if (!p) return null;
    sourceTokens.push(p);
  }
  return { sourceTokens, encoder: { layers: v.encoder.layers, heads: v.encoder.heads }, targetText: v.targetText, forced: v.forced === true, finished: v.finished === true };
}

function asData(v: unknown): WireData | null {
  return v instanceof ArrayBuffer || ArrayBuffer.isView(v) ? v : null;
}

export function parseHostMessage(raw: unknown): ParsedHostMessage | null {
  if (!isObj(raw)) return null;
  switch (raw.type) {
    case 'run/start':
      return parseStart(raw);
    case 'run/layer': {
      const data = asData(raw.data);
      if (!isInt(raw.runId) || !isInt(raw.layer, 0, MAX_LAYERS - 1) || !data) return null;
      if (raw.start !== undefined && !isInt(raw.start, 0)) return null;
      return { type: 'run/layer', runId: raw.runId, layer: raw.layer, data, packed: raw.packed === true, ...(raw.start === undefined ? {} : { start: raw.start }), ...(isPart(raw.part) ? { part: raw.part } : {}) };
    }
    case 'run/thumbs': {
      const data = asData(raw.data);
      if (!isInt(raw.runId) || !isInt(raw.layer, 0, MAX_LAYERS - 1) || !isInt(raw.size, 1, MAX_TOKENS) || !data) return null;
      return { type: 'run/thumbs', runId: raw.runId, layer: raw.layer, size: raw.size, data, packed: raw.packed === true, ...(isPart(raw.part) ? { part: raw.part } : {}) };
    }
    case 'run/rows': {
      if (!isInt(raw.runId)) return null;
      if (isStr(raw.error)) return isInt(raw.start) && isInt(raw.count) ? { type: 'run/rows', runId: raw.runId, error: raw.error, start: raw.start, count: raw.count } : null;
      const r = raw.rows;
      if (!isObj(r) || !isInt(r.start, 0, MAX_TOKENS - 1) || !isInt(r.count, 1, MAX_TOKENS) || !isInt(r.keyStart, 0, MAX_TOKENS - 1) || !isInt(r.keyCount, 1, MAX_TOKENS)) return null;
      if (!Array.isArray(r.layers) || !Array.isArray(r.data) || r.layers.length !== r.data.length || !r.layers.every((l) => isInt(l, 0, MAX_LAYERS - 1))) return null;
      const data = r.data.map(asData);
      if (data.some((d) => d === null)) return null;
      // Sizes are checked against the run when it stores them (Run.addRows).
      return { type: 'run/rows', runId: raw.runId, rows: { start: r.start, count: r.count, keyStart: r.keyStart, keyCount: r.keyCount, layers: r.layers as number[], data: data as WireData[] } };
    }
    case 'run/done': {
      if (!isInt(raw.runId)) return null;
      const timings: Record<string, number> = {};
      if (isObj(raw.timings)) {
        for (const [k, v] of Object.entries(raw.timings)) if (typeof v === 'number' && Number.isFinite(v)) timings[k] = v;
      }
      return { type: 'run/done', runId: raw.runId, timings, runtime: isStr(raw.runtime) ? raw.runtime : '' };
    }
    case 'run/error':
      if (!isInt(raw.runId) || !isStr(raw.message)) return null;
      return { type: 'run/error', runId: raw.runId, message: raw.message };
    case 'status':
      if (!(raw.message === null || isStr(raw.message))) return null;
      return { type: 'status', message: raw.message };
    case 'focus/token':
      if (!isInt(raw.runId) || !isInt(raw.tokenIndex)) return null;
      return { type: 'focus/token', runId: raw.runId, tokenIndex: raw.tokenIndex };
    case 'compare/baseline':
      if (!(raw.baseline === null || isInt(raw.baseline))) return null;
      return { type: 'compare/baseline', baseline: raw.baseline };
    case 'export/request':
      if (!isInt(raw.id) || (raw.format !== 'png' && raw.format !== 'svg') || !isScale(raw.scale)) return null;
      return { type: 'export/request', id: raw.id, format: raw.format, scale: raw.scale };
    case 'explain/open': {
      const cell = parseExplainCell(raw.cell);
      return isInt(raw.runId) && cell ? { type: 'explain/open', runId: raw.runId, cell } : null;
    }
    case 'values/data': {
      if (!isInt(raw.runId)) return null;
      if (isStr(raw.error)) return { type: 'values/data', runId: raw.runId, error: raw.error };
      const d = raw.data;
      if (!isObj(d) || (d.kind !== 'output-projected' && d.kind !== 'value-only')) return null;
      // The sizes are checked against the run when it stores them (Run.setValueNorms).
      const norms = asData(d.norms), gram = asData(d.gram);
      if (!norms || !gram) return null;
      return { type: 'values/data', runId: raw.runId, data: { norms, gram, kind: d.kind } };
    }
    case 'explain/data': {
      const cell = parseExplainCell(raw.cell);
      if (!isInt(raw.runId) || !cell) return null;
      if (isStr(raw.error)) return { type: 'explain/data', runId: raw.runId, cell, error: raw.error };
      const explanation = parseExplanation(raw.explanation);
      return explanation ? { type: 'explain/data', runId: raw.runId, cell, explanation } : null;
    }
    default:
      return null;
  }
}

export function parseExplainCell(v: unknown): ExplainCell | null {
  if (!isObj(v) || !isInt(v.layer, 0, MAX_LAYERS - 1) || !isInt(v.head, 0, MAX_HEADS - 1) || !isInt(v.query, 0, MAX_TOKENS - 1) || !isInt(v.key, 0, MAX_TOKENS - 1)) return null;
  return { layer: v.layer, head: v.head, query: v.query, key: v.key };
}

/** A head dimension no model exceeds: bounds the vectors a message may ask us to hold. */
const MAX_HEAD_DIM = 4096;

/** Float32 numbers as a Float32Array or its ArrayBuffer (VS Code keeps a typed array's type), of length `n`. */
function f32(v: unknown, n: number): Float32Array | null {
  const a = v instanceof Float32Array ? v : v instanceof ArrayBuffer && v.byteLength % 4 === 0 ? new Float32Array(v) : null;
  return a && a.length === n ? a : null;
}

function u8(v: unknown, n: number): Uint8Array | null {
  const a = v instanceof Uint8Array ? v : v instanceof ArrayBuffer ? new Uint8Array(v) : null;
  return a && a.length === n ? a : null;
}

/** An Explanation whose arrays all fit its T (the length of `visible`) and d. */
export function parseExplanation(v: unknown): Explanation | null {
  if (!isObj(v)) return null;
  const cell = parseExplainCell(v.cell);
  if (!cell || !isInt(v.dim, 1, MAX_HEAD_DIM) || !isInt(v.kvHead, 0, MAX_HEADS - 1)) return null;
  if (typeof v.scale !== 'number' || !Number.isFinite(v.scale)) return null;
  if (v.mask !== 'none' && v.mask !== 'causal' && v.mask !== 'custom') return null;
  if (v.valueNormKind !== 'output-projected' && v.valueNormKind !== 'value-only') return null;
  const visibleRaw = v.visible instanceof Uint8Array || v.visible instanceof ArrayBuffer ? v.visible : null;
  const T = visibleRaw ? visibleRaw.byteLength : 0;
  if (T < 1 || T > MAX_TOKENS) return null;
  const d = v.dim;
  const visible = u8(visibleRaw, T);
  const q = f32(v.q, d);
  const k = f32(v.k, T * d);
  const val = f32(v.v, T * d);
  const shown = f32(v.shown, T);
  const out = f32(v.out, d);
  const valueNorm = f32(v.valueNorm, T);
  if (!visible || !q || !k || !val || !shown || !out || !valueNorm) return null;
  return { cell, dim: d, kvHead: v.kvHead, q, k, v: val, scale: v.scale, mask: v.mask, visible, shown, out, valueNorm, valueNormKind: v.valueNormKind };
}
