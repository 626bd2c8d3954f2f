// Synthetic but valid attention runs for the panel tests and benchmarks: a WordPiece-like
// tokenisation of a text (with real source offsets), and per-head softmax attention with
// recognisable patterns (previous token, self, sink on the first token, broad), f16-encoded with
// the engine's encoder.

import type { RunStartMessage } from '../../src/protocol/webview';
import type { AttentionEncoding, ExplainCell, Explanation, WireToken } from '../../src/protocol/attention';
import { encodeF16, encodeU8 } from '../../src/analysis';

export interface SyntheticRun {
  start: RunStartMessage;
  /** One [heads][T][T] buffer per layer, in the start message's encoding. */
  layers: (Uint16Array | Uint8Array | Float32Array)[];
}

/** Deterministic PRNG (mulberry32). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Splits text into word pieces of at most 4 characters ("un", "##beli", "##evab", ...),
 * punctuation tokens, and whole `<...>` spans (so markup-looking tokens exist verbatim).
 */
export function tokenize(text: string, special = true): WireToken[] {
  const out: WireToken[] = [];
  if (special) out.push({ text: '[CLS]', start: -1, end: -1, special: true });
  const re = /<script>[^<]*<\/script>|<[^>]*>|[\p{L}\p{N}_]+|[^\s\p{L}\p{N}_]/gu;
  for (const m of text.matchAll(re)) {
    const s = m.index ?? 0;
    const w = m[0];
    if (w.startsWith('<') || w.length <= 4) {
      out.push({ text: w.toLowerCase(), start: s, end: s + w.length, special: false });
      continue;
    }
    for (let i = 0; i < w.length; i += 4) {
      const piece = w.slice(i, i + 4).toLowerCase();
      out.push({ text: i === 0 ? piece : `##${piece}`, start: s + i, end: s + Math.min(w.length, i + 4), special: false });
    }
  }
  if (special) out.push({ text: '[SEP]', start: -1, end: -1, special: true });
  return out;
}

export const SAMPLE_TEXT =
  'The cat sat on the mat because it was tired. Unbelievably, the <img src=x onerror=alert(1)> tag and ' +
  '<script>alert(1)</script> are tokens too; attention_rollout works on code_identifiers as well.';

/** Row-wise softmax attention for one head with a pattern chosen by `kind`. */
function headAttention(T: number, kind: number, causal: boolean, r: () => number, out: Float32Array, offset: number): void {
  const s = new Float64Array(T);
  for (let i = 0; i < T; i++) {
    const n = causal ? i + 1 : T;
    let max = -Infinity;
    for (let j = 0; j < n; j++) {
      let v = r() * 2;
      if (kind === 0 && j === i - 1) v += 5; // previous token
      if (kind === 1 && j === i) v += 4; // self
      if (kind === 2 && j === 0) v += 5; // sink on the first token
      if (kind === 3) v = r() * 0.5; // broad
      if (kind === 4 && Math.abs(i - j) <= 2) v += 3; // local window
      s[j] = v;
      if (v > max) max = v;
    }
    let sum = 0;
    for (let j = 0; j < n; j++) {
      s[j] = Math.exp(s[j] - max);
      sum += s[j];
    }
    const base = offset + i * T;
    for (let j = 0; j < T; j++) out[base + j] = j < n ? s[j] / sum : 0;
  }
}

export interface SyntheticOptions {
  runId?: number;
  layers?: number;
  heads?: number;
  /** Use these tokens (else SAMPLE_TEXT is tokenised). */
  tokens?: WireToken[];
  text?: string;
  causal?: boolean;
  encoding?: AttentionEncoding;
  seed?: number;
}

export function syntheticRun(o: SyntheticOptions = {}): SyntheticRun {
  const text = o.text ?? SAMPLE_TEXT;
  const tokens = o.tokens ?? tokenize(text);
  const T = tokens.length;
  const L = o.layers ?? 4;
  const H = o.heads ?? 4;
  const causal = o.causal ?? false;
  const encoding = o.encoding ?? 'f16';
  const r = rng(o.seed ?? 1);
  const layers: SyntheticRun['layers'] = [];
  const f = new Float32Array(H * T * T);
  for (let l = 0; l < L; l++) {
    for (let h = 0; h < H; h++) headAttention(T, (h + l) % 5, causal, r, f, h * T * T);
    layers.push(encoding === 'f16' ? encodeF16(f) : encoding === 'u8' ? encodeU8(f) : f.slice());
  }
  const start: RunStartMessage = {
    type: 'run/start',
    runId: o.runId ?? 1,
    model: { id: 'synthetic/tiny', architecture: causal ? 'gpt2' : 'bert', kind: causal ? 'decoder' : 'encoder', layers: L, heads: H, maxLength: 512 },
    tokens,
    encoding,
    source: 'sample.txt:1',
    truncation: null,
    notices: [],
    sourceText: { offset: 0, text },
  };
  return { start, layers };
}

/** A long text whose tokenisation has exactly `T` tokens (specials included). */
export function tokensOfLength(T: number): { text: string; tokens: WireToken[] } {
  const words = ['attention', 'is', 'all', 'you', 'need', 'tokens', 'flow', 'through', 'layers', 'and', 'heads', '.'];
  let text = '';
  let tokens = tokenize(text);
  let i = 0;
  while (tokens.length < T) {
    text += (text && words[i % words.length] !== '.' ? ' ' : '') + words[i % words.length];
    i++;
    tokens = tokenize(text);
  }
  // Trim extra pieces from the end (keep [SEP] last).
  tokens = [...tokens.slice(0, T - 1), tokens[tokens.length - 1]];
  return { text, tokens };
}

export interface ExplanationOptions {
  dim?: number;
  causal?: boolean;
  seed?: number;
  /** Added to every shown weight of a visible key: an exposed row that the vectors do not explain. */
  shownError?: number;
}

/**
 * A head's computation for row `cell.query` of T keys, as the engine's capture would report it:
 * random query, keys and values, scale 1/√d, and `shown` = softmax(scale · q·k) over the visible
 * keys, computed in float64 from the float32 vectors, then stored as float32.
 */
export function syntheticExplanation(cell: ExplainCell, T: number, o: ExplanationOptions = {}): Explanation {
  const d = o.dim ?? 16;
  const r = rng(o.seed ?? 7);
  const rand = (n: number): Float32Array => Float32Array.from({ length: n }, () => (r() * 2 - 1) * 2);
  const q = rand(d);
  const k = rand(T * d);
  const v = rand(T * d);
  const scale = 1 / Math.sqrt(d);
  const visible = Uint8Array.from({ length: T }, (_, j) => (!o.causal || j <= cell.query ? 1 : 0));
  const scores = Array.from({ length: T }, (_, j) => {
    let s = 0;
    for (let t = 0; t < d; t++) s += q[t] * k[j * d + t];
    return visible[j] ? scale * s : -Infinity;
  });
  const max = Math.max(...scores);
  const e = scores.map((s) => Math.exp(s - max));
  const sum = e.reduce((a, b) => a + b, 0);
  const alpha = e.map((x) => x / sum);
  const out = new Float64Array(d);
  const valueNorm = new Float32Array(T);
  for (let j = 0; j < T; j++) {
    let norm = 0;
    for (let t = 0; t < d; t++) {
      out[t] += alpha[j] * v[j * d + t];
      norm += v[j * d + t] ** 2;
    }
    valueNorm[j] = alpha[j] * Math.sqrt(norm);
  }
  const shown = Float32Array.from(alpha, (a, j) => (visible[j] ? a + (o.shownError ?? 0) : a));
  return { cell, dim: d, kvHead: cell.head, q, k, v, scale, mask: o.causal ? 'causal' : 'none', visible, shown, out: Float32Array.from(out), valueNorm, valueNormKind: 'value-only' };
}
