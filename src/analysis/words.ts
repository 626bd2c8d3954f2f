// Sub-word tokens -> words, and the words a token attends to most.
//
// Grouping rule: two consecutive (non-special) tokens belong to one word when
//   - there is no gap between them (previous.end === next.start) and the boundary lies inside a
//     word: the characters on both sides are letters, digits, combining marks or underscores; or
//   - they share (part of) one character's range (next.start < previous.end), as byte-fallback
//     pieces of one emoji or CJK character do.
// A word's weight is the sum of its tokens' weights. Special tokens are words of their own.

import type { SourceText } from '../protocol/attention';

export interface TokenLike {
  text: string;
  /** UTF-16 offsets into the source (absolute; see SourceText.offset); -1 for special tokens. */
  start: number;
  end: number;
  special: boolean;
  /** Written by the model (no range): shown by its cleaned spelling. */
  generated?: boolean;
}


export interface Word {
  /** The word as written in the source (trimmed), or the token text for special tokens. */
  text: string;
  /** Absolute UTF-16 range in the source; -1 for special tokens. */
  start: number;
  end: number;
  /** Token indices [first, last] (inclusive, consecutive). */
  first: number;
  last: number;
  special: boolean;
}

export interface WordGrouping {
  words: Word[];
  /** tokenToWord[i] = index of the word holding token i. */
  tokenToWord: Int32Array;
}

export interface AttendedWord {
  text: string;
  start: number;
  end: number;
  weight: number;
}

const WORD_CHAR = /^[\p{L}\p{N}\p{M}_]$/u;

/** Whether a code point (as a string) is a letter, digit, combining mark or underscore. */
export function isWordChar(ch: string | undefined): boolean {
  return ch !== undefined && ch !== '' && WORD_CHAR.test(ch);
}

/** The code point that ends just before UTF-16 index i. */
function charBefore(s: string, i: number): string | undefined {
  if (i <= 0 || i > s.length) return undefined;
  const lo = s.charCodeAt(i - 1);
  if (lo >= 0xdc00 && lo <= 0xdfff && i >= 2) {
    const hi = s.charCodeAt(i - 2);
    if (hi >= 0xd800 && hi <= 0xdbff) return s.slice(i - 2, i);
  }
  return s[i - 1];
}

/** The code point that starts at UTF-16 index i. */
function charAt(s: string, i: number): string | undefined {
  if (i < 0 || i >= s.length) return undefined;
  const cp = s.codePointAt(i);
  return cp === undefined ? undefined : String.fromCodePoint(cp);
}

/** Vocabulary markers that are not part of the text: WordPiece "##", byte-level BPE "Ġ"/"Ċ", SentencePiece "▁". */
export function cleanTokenText(text: string): string {
  return text.replace(/^##/, '').replace(/^[\u0120\u2581]+/, '').replace(/\u010a/g, '\n');
}

/** Whether a token's vocabulary text marks it as a word continuation (WordPiece "##"). */
function isContinuationPiece(text: string): boolean {
  return text.startsWith('##');
}

/** Whether a token's vocabulary text marks it as a word start (BPE "Ġ", SentencePiece "▁"). */
function isWordStartPiece(text: string): boolean {
  return /^[\u0120\u2581]/.test(text);
}

function hasRange(t: TokenLike): boolean {
  return !t.special && t.start >= 0 && t.end >= t.start;
}

/**
 * Groups tokens into words. With `source`, word boundaries and word texts come from the source
 * characters; without it (e.g. only the tokens are known) the vocabulary spellings decide
 * (markers stripped, same boundary rule applied to the pieces' characters).
 */
export function groupWords(tokens: readonly TokenLike[], source?: SourceText | null): WordGrouping {
  const T = tokens.length;
  const tokenToWord = new Int32Array(T);
  const words: Word[] = [];
  const src = source ?? null;
  let cur: Word | null = null;
  // Without a source, remember the cleaned text of the group so far.
  let pieceText = '';

  const sourceJoins = (prev: TokenLike, next: TokenLike): boolean => {
    if (next.start < prev.end) return true; // share one character's range
    if (next.start !== prev.end) return false; // gap
    if (src === null) return false;
    const i = next.start - src.offset;
    return isWordChar(charBefore(src.text, i)) && isWordChar(charAt(src.text, i));
  };
  const piecesJoin = (prevClean: string, next: TokenLike): boolean => {
    if (isContinuationPiece(next.text)) return true;
    if (isWordStartPiece(next.text)) return false;
    const nextClean = cleanTokenText(next.text);
    return isWordChar(charBefore(prevClean, prevClean.length)) && isWordChar(charAt(nextClean, 0));
  };

  const finish = (w: Word): void => {
    if (w.special) return;
    if (src !== null && w.start >= 0) {
      const a = Math.max(0, w.start - src.offset);
      const b = Math.max(a, Math.min(src.text.length, w.end - src.offset));
      const raw = src.text.slice(a, b);
      const lead = raw.length - raw.trimStart().length;
      const trimmed = raw.trim();
      if (trimmed.length > 0) {
        w.text = trimmed;
        w.start = w.start + lead;
        w.end = w.start + trimmed.length;
      } else {
        w.text = raw.length > 0 ? raw : pieceText;
      }
    } else {
      w.text = pieceText.trim() || pieceText;
    }
  };

  for (let i = 0; i < T; i++) {
    const t = tokens[i];
    if (!hasRange(t)) {
      if (cur) finish(cur);
      cur = { text: t.generated ? cleanTokenText(t.text).trim() || t.text : t.text, start: -1, end: -1, first: i, last: i, special: true };
      words.push(cur);
      tokenToWord[i] = words.length - 1;
      cur = null;
      pieceText = '';
      continue;
    }
    const prev = cur !== null ? tokens[cur.last] : null;
    let join = false;
    if (cur !== null && prev !== null) {
      const rangesTouch = t.start <= prev.end;
      if (src !== null) join = sourceJoins(prev, t);
      else join = t.start < prev.end || (rangesTouch && piecesJoin(pieceText, t));
    }
    if (join && cur !== null) {
      cur.last = i;
      cur.end = Math.max(cur.end, t.end);
      pieceText += cleanTokenText(t.text);
    } else {
      if (cur) finish(cur);
      cur = { text: '', start: t.start, end: t.end, first: i, last: i, special: false };
      words.push(cur);
      pieceText = cleanTokenText(t.text);
    }
    tokenToWord[i] = words.length - 1;
  }
  if (cur) finish(cur);
  return { words, tokenToWord };
}

/** Sums token weights into word weights. */
export function wordWeights(rowWeights: ArrayLike<number>, grouping: WordGrouping, out?: Float64Array): Float64Array {
  const n = grouping.words.length;
  const o = out && out.length >= n ? out : new Float64Array(n);
  o.fill(0, 0, n);
  const map = grouping.tokenToWord;
  const T = Math.min(rowWeights.length, map.length);
  for (let i = 0; i < T; i++) o[map[i]] += rowWeights[i];
  return o;
}

/**
 * The k words with the most weight in `rowWeights` (a query's row, or any weight vector over
 * tokens), heaviest first; ties keep source order. Words with zero weight are left out.
 */
export function topAttended(
  rowWeights: ArrayLike<number>,
  tokens: readonly TokenLike[],
  words: WordGrouping,
  k: number,
): AttendedWord[] {
  void tokens; // the grouping already maps tokens to words; kept for the documented signature
  const w = wordWeights(rowWeights, words);
  const n = words.words.length;
  const kk = Math.max(0, Math.min(k | 0, n));
  if (kk === 0) return [];
  // Partial selection: keep a small sorted list of the best kk indices.
  const best: number[] = [];
  for (let i = 0; i < n; i++) {
    const v = w[i];
    if (!(v > 0)) continue;
    if (best.length === kk && v <= w[best[kk - 1]]) continue;
    let pos = best.length;
    while (pos > 0 && w[best[pos - 1]] < v) pos--;
    best.splice(pos, 0, i);
    if (best.length > kk) best.pop();
  }
  return best.map((i) => {
    const word = words.words[i];
    return { text: word.text, start: word.start, end: word.end, weight: w[i] };
  });
}
