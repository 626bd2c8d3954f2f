// Over 450 lines on purpose: the Aligner's steps share one cursor over one stream and read best together.
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

/** Index just past the UTF-8 character at `at` in `buf` (continuation bytes skipped, up to `end`). */
function nextChar(buf: Uint8Array, at: number, end: number): number {
  at++;
  while (at < end && (buf[at] & 0xc0) === 0x80) at++;
  return at;
}

function span(text: string, id: number, start: number, end: number, special: boolean): TokenSpan {
  return { text, id, start, end, special };
}

export function alignWithProfile(profile: Profile, text: string, ids: ArrayLike<number>): AlignResult {
  return new Aligner(profile, buildStream(profile, text), ids).run();
}

/**
 * One alignment pass. The stream is read-only; the only mutable state is `p`, `oi`, `lastEnd` and
 * `fallbacks`.
 */
class Aligner {
  private readonly bytes: Uint8Array;
  private readonly cls: Uint8Array;
  private readonly unit: Int32Array;
  private readonly uStart: Int32Array;
  private readonly uEnd: Int32Array;
  private readonly occ: Occurrence[];
  private readonly len: number;
  /** 1 for each token the post-processor inserted. */
  private readonly ins: Uint8Array;
  /** Source position after the last unit: where empty tokens at the very end sit. */
  private readonly endSrc: number;

  /** Stream byte the next token is matched from. */
  private p = 0;
  /** Index in `occ` of the next added token written in the text. */
  private oi = 0;
  /** Stream byte where the last text token ended (a "##x" right there continues a word). */
  private lastEnd = -1;
  /** Resynchronizations so far. */
  private fallbacks = 0;

  constructor(
    private readonly profile: Profile,
    st: Stream,
    private readonly ids: ArrayLike<number>,
  ) {
    this.bytes = st.bytes;
    this.cls = st.cls;
    this.unit = st.unit;
    this.uStart = st.uStart;
    this.uEnd = st.uEnd;
    this.occ = st.occ;
    this.len = st.len;
    this.ins = insertedByTemplate(profile, ids, st.occ);
    this.endSrc = st.len > 0 ? st.uEnd[st.unit[st.len - 1]] : 0;
  }

  // Tokens are placed strictly in order: each one starts where the previous one stopped.
  run(): AlignResult {
    const spans: TokenSpan[] = new Array(this.ids.length);
    for (let i = 0; i < this.ids.length; i++) spans[i] = this.alignToken(i);
    return { spans, fallbacks: this.fallbacks };
  }

  // Inserted specials, added tokens and text tokens each get their range a different way.
  private alignToken(i: number): TokenSpan {
    const id = this.ids[i];
    const tokText = this.profile.core.model.vocab[id] ?? '';
    if (this.ins[i]) return span(tokText, id, -1, -1, true);
    // Text tokens must not run past the next literal added token.
    const lim = this.oi < this.occ.length ? this.occ[this.oi].pos : this.len;
    const added = this.profile.added.get(id);
    if (added) {
      const s = this.alignAdded(id, tokText, added.normalized, lim);
      if (s) return s;
    }
    return this.alignText(i, id, tokText, lim);
  }

  // An added token is written in the text, matched inside the normalized text, or inserted;
  // null for an [UNK] that is none of these, to be matched as a text token.
  private alignAdded(id: number, tokText: string, normalized: boolean, lim: number): TokenSpan | null {
    const o = this.oi < this.occ.length ? this.occ[this.oi] : null;
    if (o && o.id === id && this.skipWs(this.p, o.pos) === o.pos) {
      this.p = o.pos;
      this.oi++;
      return span(tokText, id, o.start, o.end, false);
    }
    if (id === this.profile.unkId) return null;
    if (normalized && this.profile.hasNormalizer) {
      const tb = tokenBytes(this.profile, id);
      if (tb && tb.length) {
        const first = this.match(tb, lim, true, -1);
        if (first >= 0) {
          const [s, e] = this.rangeOf(first, this.p);
          return span(tokText, id, s, e, false);
        }
      }
    }
    return span(tokText, id, -1, -1, true);
  }

  // A text token (or [UNK]) covers what it matched; one that covers nothing is empty at the cursor.
  private alignText(i: number, id: number, tokText: string, lim: number): TokenSpan {
    const tb = id === this.profile.unkId ? null : tokenBytes(this.profile, id);
    let first: number;
    if (!tb) first = this.matchUnknown(lim);
    else {
      // A WordPiece token can start a word that itself begins with "##" (Whitespace pre-tokenizer).
      const full = tokenBytesUnstripped(this.profile, id);
      first = full ? this.matchEither(tb, full, lim, i) : -2;
      if (first === -2) first = this.match(tb, lim, false, i);
    }
    this.lastEnd = this.p;
    if (first < 0) {
      const at = this.srcAt(this.p);
      return span(tokText, id, at, at, false);
    }
    const [s, e] = this.rangeOf(first, this.p);
    return span(tokText, id, s, e, false);
  }

  /**
   * Matches token bytes (token i, or -1 for none) at the cursor. Returns the first stream byte the
   * token covers (-1 if it covers none) and advances p past it. Strict mode gives up (-2, p
   * unchanged) on a mismatch instead of resynchronizing.
   */
  private match(tb: Uint8Array, lim: number, strict: boolean, i: number): number {
    const save = this.p;
    let k = this.skipRunBeforeMarkers(tb, lim);
    let first = -1;
    while (k < tb.length) {
      const t = tb[k];
      const p = this.p;
      if (p < lim && this.bytes[p] === t) {
        if (first < 0 && this.skipDroppedWs(tb, k, lim, i)) continue;
        if (first < 0) first = p;
        this.p++;
        k++;
        continue;
      }
      if (first < 0) {
        if (t === 0x20) {
          k = this.placeSpaceMarker(tb, k, lim, i);
          continue;
        }
        if (p < lim && this.cls[p] & WS) {
          this.p++;
          continue;
        }
      }
      if (strict) {
        this.p = save;
        return -2;
      }
      if (p >= lim) break;
      this.fallbacks++;
      const nk = this.resync(tb, k, lim);
      // A resync that stepped both sides took this text character as the token's.
      if (first < 0 && nk > k && this.p > p) first = p;
      k = nk;
    }
    return first;
  }

  // A token of space markers + text ("▁b") after a whitespace run longer than its markers (the
  // pre-tokenizer dropped the rest, e.g. WhitespaceSplit): its markers are the run's last spaces.
  // Returns the token byte to start matching at.
  private skipRunBeforeMarkers(tb: Uint8Array, lim: number): number {
    let m = 0;
    while (m < tb.length && tb[m] === 0x20) m++;
    if (m === 0 || m >= tb.length) return 0;
    const q = this.skipWs(this.p, lim);
    if (q - this.p <= m) return 0;
    for (let d = q - m; d < q; d++) {
      if (this.bytes[d] !== 0x20) {
        // The run does not end in spaces ("\t", "\r\n"): the markers are synthetic.
        this.p = q;
        return m;
      }
    }
    this.p = q - m;
    return 0;
  }

  // A multi-byte whitespace character (BOM, U+2028, ...) the tokenizer may have dropped: skip it
  // (true) unless the tokens spell all of it.
  private skipDroppedWs(tb: Uint8Array, k: number, lim: number, i: number): boolean {
    const p = this.p;
    if (!(this.cls[p] & WS) || this.bytes[p] < 0x80) return false;
    const n = Math.min(seqLength(this.bytes[p]), lim - p);
    for (let d = 1; d < n; d++) {
      if (this.upcoming(i, tb, k, d) !== this.bytes[p + d]) {
        this.p += n;
        return true;
      }
    }
    return false;
  }

  // A leading space marker: find the space it stands for, or it is synthetic (added by the
  // pre-tokenizer) when what follows it, in this token or the next, is here already.
  // Returns the token byte to go on from.
  private placeSpaceMarker(tb: Uint8Array, k: number, lim: number, i: number): number {
    const { bytes, cls } = this;
    let m = k;
    while (m < tb.length && tb[m] === 0x20) m++;
    const after = this.upcoming(i, tb, m, 0);
    let q = this.p;
    if (after < 0 || q >= lim || bytes[q] !== after) {
      while (q < lim && cls[q] & WS && bytes[q] !== 0x20) q++;
    }
    if (q < lim && bytes[q] === 0x20) {
      this.p = q;
      return k;
    }
    return k + 1;
  }

  // The stream disagrees with the token at (p, k): realign them locally so later tokens stay in
  // place. Returns the token byte to go on from.
  private resync(tb: Uint8Array, k: number, lim: number): number {
    const { bytes } = this;
    const p = this.p;
    const t = tb[k];
    // 1. The same character, spelled differently (case, accents, compatibility forms).
    if ((bytes[p] & 0xc0) !== 0x80 && (t & 0xc0) !== 0x80) {
      const sc = decodeAt(bytes, p, lim);
      const tc = decodeAt(tb, k, tb.length);
      if (sc >= 0 && tc >= 0 && loose(sc) === loose(tc)) {
        this.p += seqLength(bytes[p]);
        return k + seqLength(t);
      }
    }
    // 2. Characters in the text the tokenizer dropped.
    const m = Math.min(4, tb.length - k);
    let q = p;
    for (let d = 0; d < 4; d++) {
      q = nextChar(bytes, q, lim);
      if (q >= lim) break;
      if (this.sameAt(q, lim, tb, k, m)) {
        this.p = q;
        return k;
      }
    }
    // 3. Characters in the token the text does not have.
    let kk = k;
    for (let d = 0; d < 4; d++) {
      kk = nextChar(tb, kk, tb.length);
      if (kk >= tb.length) break;
      if (this.sameAt(p, lim, tb, kk, Math.min(4, tb.length - kk))) return kk;
    }
    // 4. Substitute one character for one character.
    this.p = nextChar(bytes, p, lim);
    return nextChar(tb, k, tb.length);
  }

  /** An unknown token: a whole word (WordPiece) or the unknown character(s) (BPE, Unigram). */
  private matchUnknown(lim: number): number {
    this.p = this.skipWs(this.p, lim);
    if (this.p >= lim) return -1;
    const first = this.p;
    this.p = this.profile.modelType === 'wordpiece' ? this.endOfWord(this.p, lim) : this.endOfUnknownChars(this.p, lim);
    return first;
  }

  // What one WordPiece [UNK] covers: a word as the pre-tokenizer delimits it.
  private endOfWord(p: number, lim: number): number {
    const { cls } = this;
    const rule = this.profile.wordRule;
    if (rule === 'bert') {
      if (cls[p] & PUNCT) return nextChar(this.bytes, p, lim);
      while (p < lim && !(cls[p] & (WS | PUNCT))) p++;
    } else if (rule === 'ascii-word') {
      const w = cls[p] & WORD;
      while (p < lim && !(cls[p] & WS) && (cls[p] & WORD) === w) p++;
    } else {
      while (p < lim && !(cls[p] & WS)) p++;
    }
    return p;
  }

  // What a BPE / Unigram [UNK] covers: one character, or the run of unknown ones when fused.
  private endOfUnknownChars(p: number, lim: number): number {
    const { bytes, cls } = this;
    p = nextChar(bytes, p, lim);
    if (!this.profile.fuseUnk) return p;
    const t2i = this.profile.core.model.tokens_to_ids;
    while (p < lim && !(cls[p] & WS)) {
      const cp = decodeAt(bytes, p, lim);
      if (cp < 0 || t2i.has(String.fromCodePoint(cp))) break;
      p = nextChar(bytes, p, lim);
    }
    return p;
  }

  /**
   * A "##x" WordPiece token is "x" continuing a word, or the start of a word written "##x". When the
   * text allows both, keep the one after which the next token fits; else "continuing" if the
   * previous token ends right here.
   */
  private matchEither(tb: Uint8Array, full: Uint8Array, lim: number, i: number): number {
    const p0 = this.p;
    const a = this.match(tb, lim, true, i);
    const pa = this.p;
    this.p = p0;
    const b = this.match(full, lim, true, i);
    const pb = this.p;
    this.p = p0;
    if (a === -2 && b === -2) return -2;
    let useFull = a === -2;
    if (a !== -2 && b !== -2) {
      const okA = this.matchesAt(i + 1, pa, lim);
      const okB = this.matchesAt(i + 1, pb, lim);
      useFull = okB === true && okA === false ? true : okA === true && okB === false ? false : this.lastEnd !== p0;
    }
    this.p = useFull ? pb : pa;
    return useFull ? b : a;
  }

  /** Whether the next text token from j on fits at byte q (strictly, either spelling); null when it cannot tell. */
  private matchesAt(j: number, q: number, lim: number): boolean | null {
    const { ids, profile, occ, oi } = this;
    while (j < ids.length && this.ins[j]) j++;
    if (j >= ids.length) return this.skipWs(q, this.len) >= this.len;
    if (ids[j] === profile.unkId && !(oi < occ.length && occ[oi].id === ids[j])) {
      return profile.modelType === 'wordpiece' ? this.wordBoundary(q, lim) : null;
    }
    if (profile.added.has(ids[j])) return oi < occ.length && occ[oi].id === ids[j] ? this.skipWs(q, occ[oi].pos) >= occ[oi].pos : null;
    const nb = tokenBytes(profile, ids[j]);
    if (!nb) return null;
    // Trial matches from q; the cursor is put back afterwards.
    const save = this.p;
    this.p = q;
    let ok = this.match(nb, lim, true, j) !== -2;
    this.p = q;
    const nf = ok ? null : tokenBytesUnstripped(profile, ids[j]);
    if (nf) ok = this.match(nf, lim, true, j) !== -2;
    this.p = save;
    return ok;
  }

  /** Whether a WordPiece word can end at byte q (what a following [UNK] needs). */
  private wordBoundary(q: number, lim: number): boolean {
    const { cls } = this;
    if (q >= lim || q === 0 || cls[q] & WS || cls[q - 1] & WS) return true;
    if (this.profile.wordRule === 'bert') return (cls[q] & PUNCT) !== 0 || (cls[q - 1] & PUNCT) !== 0;
    if (this.profile.wordRule === 'ascii-word') return (cls[q] & WORD) !== (cls[q - 1] & WORD);
    return false;
  }

  /** Byte `n` of the token stream from (token i, byte k) on, crossing into the next tokens; -1 past a non-text token. */
  private upcoming(i: number, tb: Uint8Array, k: number, n: number): number {
    if (k + n < tb.length) return tb[k + n];
    if (i < 0) return -1;
    n -= tb.length - k;
    const { ids, profile } = this;
    for (let j = i + 1; j < ids.length; j++) {
      if (profile.added.has(ids[j]) || ids[j] === profile.unkId) return -1;
      const nb = tokenBytes(profile, ids[j]);
      if (!nb) return -1;
      if (n < nb.length) return nb[n];
      n -= nb.length;
    }
    return -1;
  }

  /** Source range of stream bytes [b0, b1): trimmed of whitespace / synthetic bytes at the ends. */
  private rangeOf(b0: number, b1: number): [number, number] {
    const { cls, unit, uStart, uEnd } = this;
    let c0 = b0;
    while (c0 < b1 && cls[c0] & (WS | SYN)) c0++;
    if (c0 < b1) {
      let c1 = b1 - 1;
      while (cls[c1] & (WS | SYN)) c1--;
      return [uStart[unit[c0]], uEnd[unit[c1]]];
    }
    // Only whitespace: keep it, minus synthetic bytes.
    let n0 = b0;
    while (n0 < b1 && cls[n0] & SYN) n0++;
    if (n0 < b1) {
      let n1 = b1 - 1;
      while (cls[n1] & SYN) n1--;
      return [uStart[unit[n0]], uEnd[unit[n1]]];
    }
    const at = uStart[unit[b0]];
    return [at, at];
  }

  /** Source position of stream byte b (the end of the text past the last byte). */
  private srcAt(b: number): number {
    return b < this.len ? this.uStart[this.unit[b]] : this.endSrc;
  }

  /** First byte from q (before end) that is not whitespace; end if there is none. */
  private skipWs(q: number, end: number): number {
    while (q < end && this.cls[q] & WS) q++;
    return q;
  }

  private sameAt(q: number, lim: number, tb: Uint8Array, k: number, m: number): boolean {
    if (q + m > lim) return false;
    for (let i = 0; i < m; i++) if (this.bytes[q + i] !== tb[k + i]) return false;
    return true;
  }
}
