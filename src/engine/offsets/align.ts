// Walks token ids through the normalized byte stream of the text, greedily, in one pass.
//
// Each token's bytes (see tokenBytes) must match the stream at the cursor; whitespace the
// tokenizer dropped (WordPiece) is skipped before a token, a leading space marker ("▁", "Ġ") that
// has no space in the text is taken as synthetic. A token's range is the union of the source units
// its bytes came from, trimmed of whitespace at either end (unless it is only whitespace). Byte
// pieces of one character therefore share that character's range. Special tokens the
// post-processor inserted get -1/-1. If the stream ever disagrees with a token (a normalization
// this aligner does not model), a small local resync keeps later tokens in place; such events are
// counted in `fallbacks`.

import type { TokenSpan } from '../types';
import { PUNCT, Profile, SYN, WORD, WS, tokenBytes, tokenBytesUnstripped } from './profile';
import { Occurrence, Stream, buildStream } from './stream';
import { decodeAt, seqLength } from './utf8';

export interface AlignResult {
  spans: TokenSpan[];
  /** Times the aligner had to resynchronize (0 when the tokenizer was modelled exactly). */
  fallbacks: number;
}

const looseCache = new Map<number, string>();
function loose(cp: number): string {
  let r = looseCache.get(cp);
  if (r === undefined) {
    r = String.fromCodePoint(cp).normalize('NFKD').replace(/\p{M}/gu, '').toLowerCase().replace(/\u03c2/g, '\u03c3');
    if (looseCache.size < 10_000) looseCache.set(cp, r);
  }
  return r;
}

/** Which tokens are special tokens inserted by the post-processor (not written in the text). */
function insertedByTemplate(profile: Profile, ids: ArrayLike<number>, occ: Occurrence[]): Uint8Array {
  const n = ids.length;
  const ins = new Uint8Array(n);
  if (!profile.added.size) return ins;
  const excess = new Map<number, number>();
  for (let i = 0; i < n; i++) if (profile.added.has(ids[i])) excess.set(ids[i], (excess.get(ids[i]) ?? 0) + 1);
  if (!excess.size) return ins;
  for (const o of occ) if (excess.has(o.id)) excess.set(o.id, excess.get(o.id)! - 1);
  const take = (i: number) => {
    const e = excess.get(ids[i]) ?? 0;
    if (e > 0) {
      ins[i] = 1;
      excess.set(ids[i], e - 1);
    }
  };
  const P = profile.tplPrefix;
  if (P.length && n >= P.length && P.every((x, i) => ids[i] === x)) for (let i = 0; i < P.length; i++) take(i);
  const S = profile.tplSuffix;
  if (S.length && n >= P.length + S.length && S.every((x, i) => ids[n - S.length + i] === x)) {
    for (let i = n - 1; i >= n - S.length; i--) take(i);
  }
  return ins;
}

export function alignWithProfile(profile: Profile, text: string, ids: ArrayLike<number>): AlignResult {
  const st: Stream = buildStream(profile, text);
  const { bytes, cls, unit, uStart, uEnd, occ } = st;
  const len = st.len;
  const vocab = profile.core.model.vocab;
  const ins = insertedByTemplate(profile, ids, occ);
  const spans: TokenSpan[] = new Array(ids.length);
  const endSrc = len > 0 ? uEnd[unit[len - 1]] : 0;
  let p = 0;
  let oi = 0;
  let fallbacks = 0;

  const srcAt = (b: number) => (b < len ? uStart[unit[b]] : endSrc);
  const nextChar = (b: number, lim: number) => {
    b++;
    while (b < lim && (bytes[b] & 0xc0) === 0x80) b++;
    return b;
  };
  const nextTokChar = (tb: Uint8Array, k: number) => {
    k++;
    while (k < tb.length && (tb[k] & 0xc0) === 0x80) k++;
    return k;
  };
  const sameAt = (q: number, lim: number, tb: Uint8Array, k: number, m: number) => {
    if (q + m > lim) return false;
    for (let i = 0; i < m; i++) if (bytes[q + i] !== tb[k + i]) return false;
    return true;
  };

  /** Source range of stream bytes [b0, b1): trimmed of whitespace / synthetic bytes at the ends. */
  const rangeOf = (b0: number, b1: number): [number, number] => {
    let c0 = b0;
    while (c0 < b1 && cls[c0] & (WS | SYN)) c0++;
    if (c0 < b1) {
      let c1 = b1 - 1;
      while (cls[c1] & (WS | SYN)) c1--;
      return [uStart[unit[c0]], uEnd[unit[c1]]];
    }
    let n0 = b0;
    while (n0 < b1 && cls[n0] & SYN) n0++;
    if (n0 < b1) {
      let n1 = b1 - 1;
      while (cls[n1] & SYN) n1--;
      return [uStart[unit[n0]], uEnd[unit[n1]]];
    }
    const at = uStart[unit[b0]];
    return [at, at];
  };

  /** Byte `n` of the token stream from (token i, byte k) on, crossing into the next tokens; -1 past a non-text token. */
  const upcoming = (i: number, tb: Uint8Array, k: number, n: number): number => {
    if (k + n < tb.length) return tb[k + n];
    if (i < 0) return -1;
    n -= tb.length - k;
    for (let j = i + 1; j < ids.length; j++) {
      if (profile.added.has(ids[j]) || ids[j] === profile.unkId) return -1;
      const nb = tokenBytes(profile, ids[j]);
      if (!nb) return -1;
      if (n < nb.length) return nb[n];
      n -= nb.length;
    }
    return -1;
  };

  /**
   * Matches token bytes (token i, or -1 for none) at the cursor. Returns the first stream byte the
   * token covers (-1 if it covers none) and advances p past it. Strict mode gives up (-2, p
   * unchanged) on a mismatch instead of resynchronizing.
   */
  const match = (tb: Uint8Array, lim: number, strict: boolean, i: number): number => {
    const save = p;
    let k = 0;
    let first = -1;
    // A token of space markers + text ("▁b") after a whitespace run longer than its markers (the
    // pre-tokenizer dropped the rest, e.g. WhitespaceSplit): its markers are the run's last spaces.
    let m = 0;
    while (m < tb.length && tb[m] === 0x20) m++;
    if (m > 0 && m < tb.length) {
      let q = p;
      while (q < lim && cls[q] & WS) q++;
      if (q - p > m) {
        let allSpaces = true;
        for (let d = q - m; d < q; d++) if (bytes[d] !== 0x20) allSpaces = false;
        if (allSpaces) p = q - m;
        else {
          // The run does not end in spaces ("\t", "\r\n"): the markers are synthetic.
          p = q;
          k = m;
        }
      }
    }
    outer: while (k < tb.length) {
      const t = tb[k];
      if (p < lim && bytes[p] === t) {
        if (first < 0 && cls[p] & WS && bytes[p] >= 0x80) {
          // A multi-byte whitespace character (BOM, U+2028, ...) the tokenizer may have dropped:
          // take it only if the tokens spell all of it.
          const n = Math.min(seqLength(bytes[p]), lim - p);
          let all = true;
          for (let d = 1; d < n && all; d++) all = upcoming(i, tb, k, d) === bytes[p + d];
          if (!all) {
            p += n;
            continue;
          }
        }
        if (first < 0) first = p;
        p++;
        k++;
        continue;
      }
      if (first < 0) {
        if (t === 0x20) {
          // A leading space marker: find the space it stands for, or it is synthetic (added by
          // the pre-tokenizer) when what follows it, in this token or the next, is here already.
          let m = k;
          while (m < tb.length && tb[m] === 0x20) m++;
          const after = upcoming(i, tb, m, 0);
          let q = p;
          if (after < 0 || p >= lim || bytes[p] !== after) {
            while (q < lim && cls[q] & WS && bytes[q] !== 0x20) q++;
          }
          if (q < lim && bytes[q] === 0x20) p = q;
          else k++;
          continue;
        }
        if (p < lim && cls[p] & WS) {
          p++;
          continue;
        }
      }
      if (strict) {
        p = save;
        return -2;
      }
      if (p >= lim) break;
      fallbacks++;
      // 1. The same character, spelled differently (case, accents, compatibility forms).
      if ((bytes[p] & 0xc0) !== 0x80 && (t & 0xc0) !== 0x80) {
        const sc = decodeAt(bytes, p, lim);
        const tc = decodeAt(tb, k, tb.length);
        if (sc >= 0 && tc >= 0 && loose(sc) === loose(tc)) {
          if (first < 0) first = p;
          p += seqLength(bytes[p]);
          k += seqLength(t);
          continue;
        }
      }
      // 2. Characters in the text the tokenizer dropped.
      const m = Math.min(4, tb.length - k);
      let q = p;
      for (let d = 0; d < 4; d++) {
        q = nextChar(q, lim);
        if (q >= lim) break;
        if (sameAt(q, lim, tb, k, m)) {
          p = q;
          continue outer;
        }
      }
      // 3. Characters in the token the text does not have.
      let kk = k;
      for (let d = 0; d < 4; d++) {
        kk = nextTokChar(tb, kk);
        if (kk >= tb.length) break;
        if (sameAt(p, lim, tb, kk, Math.min(4, tb.length - kk))) {
          k = kk;
          continue outer;
        }
      }
      // 4. Substitute one character for one character.
      if (first < 0) first = p;
      p = nextChar(p, lim);
      k = nextTokChar(tb, k);
    }
    return first;
  };

  /** An unknown token: a whole word (WordPiece) or the unknown character(s) (BPE, Unigram). */
  const matchUnknown = (lim: number): number => {
    while (p < lim && cls[p] & WS) p++;
    if (p >= lim) return -1;
    const first = p;
    if (profile.modelType === 'wordpiece') {
      const rule = profile.wordRule;
      if (rule === 'bert') {
        if (cls[p] & PUNCT) p = nextChar(p, lim);
        else while (p < lim && !(cls[p] & (WS | PUNCT))) p++;
      } else if (rule === 'ascii-word') {
        const w = cls[p] & WORD;
        while (p < lim && !(cls[p] & WS) && (cls[p] & WORD) === w) p++;
      } else {
        while (p < lim && !(cls[p] & WS)) p++;
      }
    } else {
      p = nextChar(p, lim);
      if (profile.fuseUnk) {
        const t2i = profile.core.model.tokens_to_ids;
        while (p < lim && !(cls[p] & WS)) {
          const cp = decodeAt(bytes, p, lim);
          if (cp < 0 || t2i.has(String.fromCodePoint(cp))) break;
          p = nextChar(p, lim);
        }
      }
    }
    return first;
  };

  const onlyWs = (q: number, end: number) => {
    while (q < end && cls[q] & WS) q++;
    return q >= end;
  };
  /** Whether a WordPiece word can end at byte q (what a following [UNK] needs). */
  const wordBoundary = (q: number, lim: number): boolean => {
    if (q >= lim || q === 0 || cls[q] & WS || cls[q - 1] & WS) return true;
    if (profile.wordRule === 'bert') return (cls[q] & PUNCT) !== 0 || (cls[q - 1] & PUNCT) !== 0;
    if (profile.wordRule === 'ascii-word') return (cls[q] & WORD) !== (cls[q - 1] & WORD);
    return false;
  };
  /** Whether the next text token from j on fits at byte q (strictly, either spelling); null when it cannot tell. */
  const matchesAt = (j: number, q: number, lim: number): boolean | null => {
    while (j < ids.length && ins[j]) j++;
    if (j >= ids.length) return onlyWs(q, len);
    if (ids[j] === profile.unkId && !(oi < occ.length && occ[oi].id === ids[j])) {
      return profile.modelType === 'wordpiece' ? wordBoundary(q, lim) : null;
    }
    if (profile.added.has(ids[j])) return oi < occ.length && occ[oi].id === ids[j] ? onlyWs(q, occ[oi].pos) : null;
    const nb = tokenBytes(profile, ids[j]);
    if (!nb) return null;
    const save = p;
    p = q;
    let ok = match(nb, lim, true, j) !== -2;
    p = q;
    const nf = ok ? null : tokenBytesUnstripped(profile, ids[j]);
    if (nf) ok = match(nf, lim, true, j) !== -2;
    p = save;
    return ok;
  };

  /**
   * A "##x" WordPiece token is "x" continuing a word, or the start of a word written "##x". When the
   * text allows both, keep the one after which the next token fits; else "continuing" if the
   * previous token ends right here.
   */
  const matchEither = (tb: Uint8Array, full: Uint8Array, lim: number, i: number): number => {
    const p0 = p;
    const a = match(tb, lim, true, i);
    const pa = p;
    p = p0;
    const b = match(full, lim, true, i);
    const pb = p;
    p = p0;
    if (a === -2 && b === -2) return -2;
    let useFull = a === -2;
    if (a !== -2 && b !== -2) {
      const okA = matchesAt(i + 1, pa, lim);
      const okB = matchesAt(i + 1, pb, lim);
      useFull = okB === true && okA === false ? true : okA === true && okB === false ? false : lastEnd !== p0;
    }
    p = useFull ? pb : pa;
    return useFull ? b : a;
  };

  let lastEnd = -1;
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    const tokText = vocab[id] ?? '';
    const special = (): TokenSpan => ({ text: tokText, id, start: -1, end: -1, special: true });
    if (ins[i]) {
      spans[i] = special();
      continue;
    }
    const lim = oi < occ.length ? occ[oi].pos : len;
    const added = profile.added.get(id);
    if (added) {
      const o = oi < occ.length ? occ[oi] : null;
      if (o && o.id === id) {
        let q = p;
        while (q < o.pos && cls[q] & WS) q++;
        if (q === o.pos) {
          spans[i] = { text: tokText, id, start: o.start, end: o.end, special: false };
          p = o.pos;
          oi++;
          continue;
        }
      }
      if (id !== profile.unkId) {
        // A normalized added token is matched inside the normalized text; otherwise it was inserted.
        if (added.normalized && profile.hasNormalizer) {
          const tb = tokenBytes(profile, id);
          if (tb && tb.length) {
            const first = match(tb, lim, true, -1);
            if (first >= 0) {
              const [s, e] = rangeOf(first, p);
              spans[i] = { text: tokText, id, start: s, end: e, special: false };
              continue;
            }
          }
        }
        spans[i] = special();
        continue;
      }
    }
    const tb = id === profile.unkId ? null : tokenBytes(profile, id);
    let first: number;
    if (!tb) first = matchUnknown(lim);
    else {
      // A WordPiece token can start a word that itself begins with "##" (Whitespace pre-tokenizer).
      const full = tokenBytesUnstripped(profile, id);
      first = full ? matchEither(tb, full, lim, i) : -2;
      if (first === -2) first = match(tb, lim, false, i);
    }
    lastEnd = p;
    if (first < 0) {
      const at = srcAt(p);
      spans[i] = { text: tokText, id, start: at, end: at, special: false };
    } else {
      const [s, e] = rangeOf(first, p);
      spans[i] = { text: tokText, id, start: s, end: e, special: false };
    }
  }
  return { spans, fallbacks };
}
