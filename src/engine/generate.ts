// Greedy decoding pieces shared by the decoder-only Continue (engine.generate) and encoder-decoder
// runs (seq2seq.ts): the argmax of a logits row, the generation settings a model folder declares,
// and an incremental detokenizer that streams each new token's text and gives its range in the result.
import { getProfile } from './offsets/profile';
import type { PreTrainedTokenizer } from './transformersjs';
import type { TokenSpan } from './types';

/** The highest logit of row `row` of a [rows, V] array, skipping `banned` ids. */
export function argmaxRow(logits: ArrayLike<number>, row: number, V: number, banned?: ReadonlySet<number>): number {
  let best = -1;
  let bestValue = -Infinity;
  for (let v = 0, o = row * V; v < V; v++) {
    const x = logits[o + v];
    if (x > bestValue && !banned?.has(v)) {
      best = v;
      bestValue = x;
    }
  }
  return best;
}

const ids = (v: unknown): number[] => (typeof v === 'number' ? [v] : Array.isArray(v) ? v.filter((x): x is number => typeof x === 'number') : []);

/** What config.json and generation_config.json say about greedy generation (generation_config wins). */
export interface GenerationSettings {
  decoderStartTokenId: number | null;
  eosTokenIds: number[];
  /** Single-token bad_words_ids (Marian bans its pad token): never chosen. */
  banned: Set<number>;
  /** Forced as the first generated token (M2M100/NLLB target language). */
  forcedBosTokenId: number | null;
  /** max_new_tokens, or max_length less the start (null when neither is set). */
  maxNewTokens: number | null;
}

export function generationSettings(config: Record<string, unknown>, generation: Record<string, unknown>): GenerationSettings {
  const pick = (key: string) => (generation[key] !== undefined && generation[key] !== null ? generation[key] : config[key]);
  const first = (key: string) => ids(pick(key))[0] ?? null;
  const bad = Array.isArray(pick('bad_words_ids')) ? (pick('bad_words_ids') as unknown[]) : [];
  const maxNew = typeof pick('max_new_tokens') === 'number' ? (pick('max_new_tokens') as number) : null;
  const maxLength = typeof generation.max_length === 'number' ? generation.max_length : null;
  return {
    decoderStartTokenId: first('decoder_start_token_id'),
    eosTokenIds: ids(pick('eos_token_id')),
    banned: new Set(bad.flatMap((w) => (Array.isArray(w) && w.length === 1 && typeof w[0] === 'number' ? [w[0]] : []))),
    forcedBosTokenId: first('forced_bos_token_id'),
    maxNewTokens: maxNew ?? (maxLength !== null ? Math.max(1, maxLength - 1) : null),
  };
}

/** The vocabulary's spelling of a token, and whether it is a special token. */
export function tokenSpelling(tokenizer: PreTrainedTokenizer, id: number): { text: string; special: boolean } {
  const profile = getProfile(tokenizer as unknown as object);
  const added = profile.added.get(id);
  const text = profile.core.model.vocab[id] ?? added?.content ?? tokenizer.decode([id]);
  return { text, special: added?.special ?? false };
}

const stable = (s: string) => s.replace(/\uFFFD+$/, '');

/**
 * Decodes generated tokens one at a time after a context (the prompt, or nothing): each push
 * returns what the token adds to the text. A token that is only part of a character (a byte token)
 * adds nothing until the character is complete; the tokens of one character share its range.
 */
export class Detokenizer {
  private readonly all: number[];
  private readonly base: string;
  private shown: string;
  private readonly spans: { start: number; end: number }[] = [];
  private pending: number[] = [];

  constructor(private readonly tokenizer: PreTrainedTokenizer, context: readonly number[]) {
    this.all = [...context];
    this.base = this.decode();
    this.shown = stable(this.base);
  }

  private decode(): string {
    return this.tokenizer.decode(this.all, { skip_special_tokens: true });
  }

  /** Adds a token; returns the text it adds (possibly ''). */
  push(id: number): string {
    this.all.push(id);
    const now = stable(this.decode());
    let common = 0;
    while (common < this.shown.length && common < now.length && this.shown[common] === now[common]) common++;
    const piece = now.slice(common);
    const start = common - this.base.length;
    const end = now.length - this.base.length;
    this.spans.push({ start: -1, end: -1 });
    if (piece) {
      // Tokens still waiting for their character (byte pieces) share the range that completes it.
      const range = trimmed(now, this.base.length, start, end);
      for (const i of [...this.pending, this.spans.length - 1]) this.spans[i] = range;
      this.pending = [];
    } else if (!tokenSpelling(this.tokenizer, id).special) this.pending.push(this.spans.length - 1);
    this.shown = now;
    return piece;
  }

  /** The text the pushed tokens decode to. */
  get text(): string {
    return this.decode().slice(this.base.length);
  }

  /** TokenSpans of the pushed tokens, with ranges into `text` (-1 for a token that adds no text). */
  tokenSpans(idsPushed: readonly number[], generated: boolean): TokenSpan[] {
    return idsPushed.map((id, i) => {
      const { text, special } = tokenSpelling(this.tokenizer, id);
      const s = this.spans[i] ?? { start: -1, end: -1 };
      return { text, id, start: s.start, end: s.end, special: special || s.start < 0, ...(generated ? { generated: true } : {}) };
    });
  }
}

/** [start, end) of `full` (offset by `base`) without leading or trailing whitespace, unless it is all whitespace. */
function trimmed(full: string, base: number, start: number, end: number): { start: number; end: number } {
  let s = start;
  let e = end;
  while (s < e && /\s/.test(full[base + s])) s++;
  while (e > s && /\s/.test(full[base + e - 1])) e--;
  return s < e ? { start: s, end: e } : { start, end };
}
