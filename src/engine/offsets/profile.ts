// What the aligner needs to know about one tokenizer, read once from the transformers.js
// tokenizer instance (its tokenizer.json and the live normalizer / model objects) and cached.
//
// transformers.js v4 wraps `@huggingface/tokenizers`: a PreTrainedTokenizer holds the core
// tokenizer in `_tokenizer` and the parsed tokenizer.json in `_tokenizerJSON`. Those are not
// typed as public, so they are read through the small structural types below.

import { BYTE_LEVEL_DECODER, utf8 } from './utf8';

/** Character classes kept per normalized byte (bit flags). */
export const WS = 1; // whitespace: skipped between tokens when no token claims it
export const PUNCT = 2; // punctuation as BertPreTokenizer sees it
export const SYN = 4; // synthetic: produced by the tokenizer (Prepend normalizer), not in the source
export const WORD = 8; // ASCII \w (the `Whitespace` pre-tokenizer's word class)

interface CoreNormalizer {
  config?: { type?: string; prepend?: string; lowercase?: boolean; strip_accents?: boolean | null };
  normalizers?: (CoreNormalizer | null)[];
  normalize(text: string): string;
}

interface CoreAddedToken {
  content: string;
  id: number;
  lstrip: boolean;
  rstrip: boolean;
  special: boolean;
  normalized: boolean;
}

interface CoreModel {
  vocab: (string | undefined)[];
  tokens_to_ids: Map<string, number>;
  unk_token_id?: number;
}

interface CorePostProcessor {
  post_process(tokens: string[], pair: string[] | null, addSpecialTokens: boolean): { tokens: string[] };
}

/** The parts of `@huggingface/tokenizers`' Tokenizer the aligner reads. */
export interface CoreTokenizer {
  normalizer: CoreNormalizer | null;
  model: CoreModel;
  post_processor: CorePostProcessor | null;
  added_tokens: CoreAddedToken[];
  added_tokens_map: Map<string, CoreAddedToken>;
  splitter_unnormalized: { split(text: string): string[] };
  do_lowercase_and_remove_accent?: boolean;
  encode(text: string, options?: { add_special_tokens?: boolean }): { ids: number[] };
  tokenizer?: TokenizerJson;
}

interface JsonPart {
  type?: string;
  [key: string]: unknown;
}

interface TokenizerJson {
  normalizer?: JsonPart | null;
  pre_tokenizer?: JsonPart | null;
  decoder?: JsonPart | null;
  model?: JsonPart;
}

/** Anything that carries a transformers.js core tokenizer (a PreTrainedTokenizer, or the core itself). */
export interface TokenizerLike {
  _tokenizer?: unknown;
  _tokenizerJSON?: unknown;
}

/** Normalized form of one source unit, as bytes with a class per byte. */
export interface UnitRec {
  bytes: Uint8Array;
  cls: Uint8Array;
}

export interface Profile {
  core: CoreTokenizer;
  modelType: 'wordpiece' | 'bpe' | 'unigram' | 'other';
  /** GPT-2 style: vocabulary strings are bytes spelled with the byte-to-unicode table. */
  byteLevel: boolean;
  /** SentencePiece style: "▁" stands for a space (in tokens and in normalized text). */
  metaspace: boolean;
  /** "<0xNN>" tokens are raw bytes. */
  byteFallback: boolean;
  /** Units are a code point plus following combining marks (the normalizer may change marks). */
  groupMarks: boolean;
  /** Hangul conjoining jamo are grouped into one unit (NFC/NFKC compose them). */
  groupJamo: boolean;
  /** The normalizer lowercases (Greek final sigma needs context). */
  lowercases: boolean;
  hasNormalizer: boolean;
  /** Normalizes one unit: the tokenizer's own normalizers minus Prepend and Strip. */
  normalizeUnit: (s: string) => string;
  /** Bytes a Prepend normalizer adds at the start of every text section, or null. */
  prependBytes: Uint8Array | null;
  unkId: number;
  fuseUnk: boolean;
  /** How WordPiece words (what one [UNK] covers) are delimited. */
  wordRule: 'bert' | 'ascii-word' | 'whitespace';
  contPrefix: string | null;
  endSuffix: string | null;
  added: Map<number, CoreAddedToken>;
  /** Ids the post-processor puts before / after a single sequence. */
  tplPrefix: number[];
  tplSuffix: number[];
  tokenBytesCache: (Uint8Array | null | undefined)[];
  fullBytesCache: (Uint8Array | null | undefined)[];
  unitCache: Map<string, UnitRec>;
  asciiCache: (UnitRec | undefined)[];
}

const PUNCT_RE = /^[\p{P}\u0021-\u002F\u003A-\u0040\u005B-\u0060\u007B-\u007E]$/u;
const WS_RE = /^\s$/u;
const BYTE_TOKEN_RE = /^<0x([0-9A-Fa-f]{2})>$/;

const profiles = new WeakMap<object, Profile>();

export function coreOf(tokenizer: unknown): { core: CoreTokenizer; json: TokenizerJson } {
  const t = tokenizer as TokenizerLike & Partial<CoreTokenizer>;
  const core = (t && (typeof t === 'object' || typeof t === 'function') && t._tokenizer ? t._tokenizer : t) as CoreTokenizer;
  if (!core || !core.model || !core.model.tokens_to_ids) {
    throw new TypeError('alignTokens: expected a transformers.js tokenizer (PreTrainedTokenizer)');
  }
  const json = ((t as TokenizerLike)._tokenizerJSON ?? core.tokenizer ?? {}) as TokenizerJson;
  return { core, json };
}

export function getProfile(tokenizer: object): Profile {
  let p = profiles.get(tokenizer);
  if (!p) {
    p = buildProfile(tokenizer);
    profiles.set(tokenizer, p);
  }
  return p;
}

/** All leaves of a (possibly nested) Sequence config, in order. */
function leaves(part: JsonPart | null | undefined, key: string): JsonPart[] {
  if (!part) return [];
  if (part.type === 'Sequence' && Array.isArray(part[key])) {
    return (part[key] as JsonPart[]).flatMap((x) => leaves(x, key));
  }
  return [part];
}

/** Live normalizer leaves, paired with their config type. */
function liveLeaves(n: CoreNormalizer | null): CoreNormalizer[] {
  if (!n) return [];
  if (n.config?.type === 'Sequence' && Array.isArray(n.normalizers)) {
    return n.normalizers.flatMap((x) => liveLeaves(x));
  }
  return [n];
}

function patternString(part: JsonPart): string | undefined {
  const pat = part.pattern as { String?: string } | undefined;
  return pat?.String;
}

function buildProfile(tokenizer: object): Profile {
  const { core, json } = coreOf(tokenizer);
  const modelJson = (json.model ?? {}) as JsonPart;
  const mt = String(modelJson.type ?? '');
  const modelType: Profile['modelType'] =
    mt === 'WordPiece' ? 'wordpiece' : mt === 'BPE' ? 'bpe' : mt === 'Unigram' ? 'unigram' : 'other';

  const preLeaves = leaves(json.pre_tokenizer, 'pretokenizers');
  const decLeaves = leaves(json.decoder, 'decoders');
  const normLeaves = leaves(json.normalizer, 'normalizers');
  const types = (xs: JsonPart[]) => new Set(xs.map((x) => String(x.type)));
  const preTypes = types(preLeaves);
  const decTypes = types(decLeaves);
  const normTypes = types(normLeaves);

  const byteLevel = preTypes.has('ByteLevel') || decTypes.has('ByteLevel');
  const metaspace =
    !byteLevel &&
    (preTypes.has('Metaspace') ||
      decTypes.has('Metaspace') ||
      normLeaves.some((x) => (x.type === 'Replace' && x.content === '\u2581') || (x.type === 'Prepend' && x.prepend === '\u2581')) ||
      decLeaves.some((x) => x.type === 'Replace' && patternString(x) === '\u2581'));
  const byteFallback = modelJson.byte_fallback === true || decTypes.has('ByteFallback');

  // The normalizer, unit by unit: every live leaf except Prepend (modelled as a synthetic piece
  // at the start of each section) and Strip (its whitespace is skipped like any other).
  const live = liveLeaves(core.normalizer).filter((n) => n.config?.type !== 'Prepend' && n.config?.type !== 'Strip');
  const prependLeaf = liveLeaves(core.normalizer).find((n) => n.config?.type === 'Prepend');
  const lowerAccents = core.do_lowercase_and_remove_accent === true;
  const normalizeUnit = (s: string): string => {
    if (lowerAccents) s = s.toLowerCase().replace(/\p{M}/gu, '');
    for (const n of live) s = n.normalize(s);
    return s;
  };
  const markTypes = ['BertNormalizer', 'NFC', 'NFD', 'NFKC', 'NFKD', 'StripAccents', 'Precompiled'];
  const groupMarks = lowerAccents || markTypes.some((t) => normTypes.has(t));
  const groupJamo = ['NFC', 'NFKC', 'Precompiled'].some((t) => normTypes.has(t));
  const lowercases =
    lowerAccents ||
    normTypes.has('Lowercase') ||
    normLeaves.some((x) => x.type === 'BertNormalizer' && x.lowercase !== false);

  let prependBytes: Uint8Array | null = null;
  if (prependLeaf && typeof prependLeaf.config?.prepend === 'string' && prependLeaf.config.prepend) {
    prependBytes = utf8(normalizeUnit(prependLeaf.config.prepend), metaspace);
  }

  let wordRule: Profile['wordRule'] = 'whitespace';
  if (preTypes.has('BertPreTokenizer')) wordRule = 'bert';
  else if (preTypes.has('Whitespace')) wordRule = 'ascii-word';

  const added = new Map<number, CoreAddedToken>();
  for (const a of core.added_tokens ?? []) added.set(a.id, a);

  const toId = (t: string) => core.added_tokens_map?.get(t)?.id ?? core.model.tokens_to_ids.get(t);
  let tplPrefix: number[] = [];
  let tplSuffix: number[] = [];
  if (core.post_processor && typeof core.post_processor.post_process === 'function') {
    const sentinel = '\u0000attention-lens-sentinel\u0000';
    try {
      const out = core.post_processor.post_process([sentinel], null, true).tokens;
      const at = out.indexOf(sentinel);
      if (at >= 0) {
        const ids = out.map(toId);
        if (ids.every((x, i) => i === at || typeof x === 'number')) {
          tplPrefix = ids.slice(0, at) as number[];
          tplSuffix = ids.slice(at + 1) as number[];
        }
      }
    } catch {
      // A post-processor that cannot run on a sentinel: rely on the walker alone.
    }
  }

  const unkToken = typeof modelJson.unk_token === 'string' ? modelJson.unk_token : undefined;
  const unkId = core.model.unk_token_id ?? (unkToken !== undefined ? toId(unkToken) : undefined) ?? -1;

  return {
    core,
    modelType,
    byteLevel,
    metaspace,
    byteFallback,
    groupMarks,
    groupJamo,
    lowercases,
    hasNormalizer: core.normalizer !== null || lowerAccents,
    normalizeUnit,
    prependBytes,
    unkId,
    fuseUnk: modelJson.fuse_unk === true,
    wordRule,
    contPrefix: typeof modelJson.continuing_subword_prefix === 'string' && modelJson.continuing_subword_prefix ? modelJson.continuing_subword_prefix : null,
    endSuffix: typeof modelJson.end_of_word_suffix === 'string' && modelJson.end_of_word_suffix ? modelJson.end_of_word_suffix : null,
    added,
    tplPrefix,
    tplSuffix,
    tokenBytesCache: [],
    fullBytesCache: [],
    unitCache: new Map(),
    asciiCache: new Array(128),
  };
}

/** Bytes + classes of an already-normalized string. */
export function unitRecOf(profile: Profile, normalized: string): UnitRec {
  const bytes = utf8(normalized, profile.metaspace);
  const cls = new Uint8Array(bytes.length);
  let b = 0;
  for (const ch of normalized) {
    const c = profile.metaspace && ch === '\u2581' ? ' ' : ch;
    const code = c.charCodeAt(0);
    let k = 0;
    if (code < 0x80) {
      if (code === 0x20 || (code >= 0x09 && code <= 0x0d)) k = WS;
      else if (PUNCT_RE.test(c)) k = PUNCT;
      if ((code >= 0x30 && code <= 0x39) || (code >= 0x41 && code <= 0x5a) || (code >= 0x61 && code <= 0x7a) || code === 0x5f) k |= WORD;
    } else if (WS_RE.test(c)) k = WS;
    else if (PUNCT_RE.test(c)) k = PUNCT;
    const n = utf8(c).length;
    for (let i = 0; i < n && b < cls.length; i++) cls[b++] = k;
  }
  return { bytes, cls };
}

/** Normalized bytes of one source unit (cached per unit string). */
export function unitRec(profile: Profile, unit: string): UnitRec {
  if (unit.length === 1) {
    const c = unit.charCodeAt(0);
    if (c < 128) {
      let r = profile.asciiCache[c];
      if (!r) profile.asciiCache[c] = r = unitRecOf(profile, profile.normalizeUnit(unit));
      return r;
    }
  }
  let r = profile.unitCache.get(unit);
  if (!r) {
    r = unitRecOf(profile, profile.normalizeUnit(unit));
    if (profile.unitCache.size > 50_000) profile.unitCache.clear();
    profile.unitCache.set(unit, r);
  }
  return r;
}

/**
 * The bytes a (non-added) token contributes to the normalized text: "##" / end-of-word suffix
 * stripped, byte-level characters back to bytes, "<0xNN>" to the byte, "▁" to a space.
 * null for ids the vocabulary does not have.
 */
export function tokenBytes(profile: Profile, id: number): Uint8Array | null {
  const cached = profile.tokenBytesCache[id];
  if (cached !== undefined) return cached;
  const out = computeTokenBytes(profile, id);
  if (id >= 0 && id < 10_000_000) profile.tokenBytesCache[id] = out;
  return out;
}

/**
 * For tokens whose continuing-subword prefix / end-of-word suffix tokenBytes strips: the bytes with
 * it kept (a word can itself start with "##"). null for every other token.
 */
export function tokenBytesUnstripped(profile: Profile, id: number): Uint8Array | null {
  if (!profile.contPrefix && !profile.endSuffix) return null;
  const cached = profile.fullBytesCache[id];
  if (cached !== undefined) return cached;
  let out: Uint8Array | null = null;
  const s = profile.core.model.vocab[id];
  if (typeof s === 'string' && !profile.added.has(id)) {
    const stripped =
      (profile.contPrefix !== null && s.length > profile.contPrefix.length && s.startsWith(profile.contPrefix)) ||
      (profile.endSuffix !== null && s.length > profile.endSuffix.length && s.endsWith(profile.endSuffix));
    if (stripped) out = profile.byteLevel ? null : utf8(s, profile.metaspace);
  }
  if (id >= 0 && id < 10_000_000) profile.fullBytesCache[id] = out;
  return out;
}

function computeTokenBytes(profile: Profile, id: number): Uint8Array | null {
  let s = profile.core.model.vocab[id];
  if (typeof s !== 'string') return null;
  const added = profile.added.get(id);
  if (added) {
    return utf8(added.normalized && profile.hasNormalizer ? profile.normalizeUnit(added.content) : added.content, profile.metaspace);
  }
  if (profile.byteFallback) {
    const m = BYTE_TOKEN_RE.exec(s);
    if (m) return Uint8Array.of(parseInt(m[1], 16));
  }
  if (profile.contPrefix && s.length > profile.contPrefix.length && s.startsWith(profile.contPrefix)) {
    s = s.slice(profile.contPrefix.length);
  }
  if (profile.endSuffix && s.length > profile.endSuffix.length && s.endsWith(profile.endSuffix)) {
    s = s.slice(0, s.length - profile.endSuffix.length);
  }
  if (profile.byteLevel) {
    const bytes: number[] = [];
    for (const ch of s) {
      const b = BYTE_LEVEL_DECODER.get(ch.codePointAt(0)!);
      if (b !== undefined) bytes.push(b);
      else for (const x of utf8(ch)) bytes.push(x);
    }
    return Uint8Array.from(bytes);
  }
  return utf8(s, profile.metaspace);
}
