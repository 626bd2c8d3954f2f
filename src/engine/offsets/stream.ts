// The normalized text of an input, as UTF-8 bytes, with a map from every byte back to the source
// unit (a code point, plus its combining marks when the tokenizer normalizes marks) it came from.
//
// The text is cut into sections at the added tokens the tokenizer matches on the raw text
// ([CLS], <s>, <|endoftext|> written literally), exactly as transformers.js does; each section is
// normalized unit by unit with the tokenizer's own normalizer.

import { Profile, SYN, UnitRec, WS, unitRec, unitRecOf } from './profile';

export interface Occurrence {
  /** Added-token id. */
  id: number;
  /** UTF-16 range in the source. */
  start: number;
  end: number;
  /** Byte position in the stream where it sits (it has no bytes of its own). */
  pos: number;
}

export interface Stream {
  /** Number of bytes. */
  len: number;
  bytes: Uint8Array;
  /** Class flags per byte (WS, PUNCT, SYN, WORD). */
  cls: Uint8Array;
  /** Unit index per byte. */
  unit: Int32Array;
  /** UTF-16 range of each unit (synthetic units are empty). */
  uStart: Int32Array;
  uEnd: Int32Array;
  nUnits: number;
  /** Added tokens found in the raw text, in order. */
  occ: Occurrence[];
}

const MARK_RE = /^\p{M}$/u;
const SIGMA = '\u03a3';

function isMark(cp: number): boolean {
  if (cp < 0x300) return false;
  return MARK_RE.test(String.fromCodePoint(cp));
}

/** Hangul conjoining jamo (leading, vowel, trailing; old and extended blocks). */
function isJamo(cp: number): boolean {
  return (cp >= 0x1100 && cp <= 0x11ff) || (cp >= 0xa960 && cp <= 0xa97f) || (cp >= 0xd7b0 && cp <= 0xd7ff);
}

function isJamoLead(cp: number): boolean {
  return (cp >= 0x1100 && cp <= 0x115f) || (cp >= 0xa960 && cp <= 0xa97f);
}

export function buildStream(profile: Profile, text: string): Stream {
  let cap = text.length * 3 + 64;
  let bytes = new Uint8Array(cap);
  let cls = new Uint8Array(cap);
  let unit = new Int32Array(cap);
  let ucap = text.length + 16;
  let uStart = new Int32Array(ucap);
  let uEnd = new Int32Array(ucap);
  let len = 0;
  let nUnits = 0;
  const occ: Occurrence[] = [];

  const grow = (need: number) => {
    if (len + need <= cap) return;
    while (len + need > cap) cap *= 2;
    const b = new Uint8Array(cap);
    b.set(bytes.subarray(0, len));
    bytes = b;
    const c = new Uint8Array(cap);
    c.set(cls.subarray(0, len));
    cls = c;
    const u = new Int32Array(cap);
    u.set(unit.subarray(0, len));
    unit = u;
  };
  const pushUnit = (s: number, e: number, rec: UnitRec, extra: number) => {
    if (nUnits === ucap) {
      ucap *= 2;
      const a = new Int32Array(ucap);
      a.set(uStart);
      uStart = a;
      const b = new Int32Array(ucap);
      b.set(uEnd);
      uEnd = b;
    }
    uStart[nUnits] = s;
    uEnd[nUnits] = e;
    const n = rec.bytes.length;
    if (n) {
      grow(n);
      bytes.set(rec.bytes, len);
      for (let i = 0; i < n; i++) {
        cls[len + i] = rec.cls[i] | extra;
        unit[len + i] = nUnits;
      }
      len += n;
    }
    nUnits++;
  };

  // Sections, as the tokenizer cuts them: added tokens matched on the raw text.
  const core = profile.core;
  const pieces = core.splitter_unnormalized ? core.splitter_unnormalized.split(text) : [text];
  const spans: { s: number; e: number; added: ReturnType<typeof core.added_tokens_map.get> }[] = [];
  let off = 0;
  for (const piece of pieces) {
    spans.push({ s: off, e: off + piece.length, added: core.added_tokens_map?.get(piece) });
    off += piece.length;
  }
  // lstrip / rstrip of added tokens trim the neighbouring sections.
  for (let i = 0; i < spans.length; i++) {
    const a = spans[i].added;
    if (!a) continue;
    const prev = spans[i - 1];
    if (a.lstrip && prev && !prev.added) prev.e = prev.s + text.slice(prev.s, prev.e).trimEnd().length;
    const next = spans[i + 1];
    if (a.rstrip && next && !next.added) {
      const t = text.slice(next.s, next.e);
      next.s += t.length - t.trimStart().length;
    }
  }

  for (const sp of spans) {
    if (sp.added) {
      occ.push({ id: sp.added.id, start: sp.s, end: sp.e, pos: len });
      continue;
    }
    if (sp.e <= sp.s) continue;
    if (profile.prependBytes) {
      pushUnit(sp.s, sp.s, { bytes: profile.prependBytes, cls: new Uint8Array(profile.prependBytes.length) }, SYN | WS);
    }
    let i = sp.s;
    const end = sp.e;
    while (i < end) {
      const c = text.charCodeAt(i);
      let j = i + 1;
      let cp = c;
      if (c >= 0xd800 && c <= 0xdbff && j < end) {
        const lo = text.charCodeAt(j);
        if (lo >= 0xdc00 && lo <= 0xdfff) {
          cp = 0x10000 + ((c - 0xd800) << 10) + (lo - 0xdc00);
          j++;
        }
      }
      if (profile.groupMarks) {
        while (j < end) {
          const m = text.codePointAt(j)!;
          if (!isMark(m)) break;
          j += m > 0xffff ? 2 : 1;
        }
      }
      if (profile.groupJamo && isJamoLead(cp)) {
        while (j < end) {
          const m = text.charCodeAt(j);
          if (!isJamo(m) || isJamoLead(m)) break;
          j++;
        }
      }
      const u = j - i === 1 && c < 128 ? String.fromCharCode(c) : text.slice(i, j);
      let rec: UnitRec;
      if (profile.lowercases && u.includes(SIGMA)) {
        rec = sigmaRec(profile, text, i, j, u, sp.s, sp.e);
      } else {
        rec = unitRec(profile, u);
      }
      pushUnit(i, j, rec, 0);
      i = j;
    }
  }

  return { len, bytes, cls, unit, uStart, uEnd, nUnits, occ };
}

/**
 * Lowercasing "Σ" depends on context (final sigma "ς" at the end of a word), which unit-by-unit
 * normalization cannot see: lowercase it inside a window of its neighbours and keep the choice.
 */
function sigmaRec(profile: Profile, text: string, i: number, j: number, u: string, secStart: number, secEnd: number): UnitRec {
  // Context as the tokenizer sees it: this section only, without the characters it drops.
  const kept = (ch: string) => profile.normalizeUnit(ch) !== '';
  let before = '';
  for (let q = i, n = 0; q > secStart && n < 16; ) {
    let ch = text[q - 1];
    if (q - 1 > secStart && /[\udc00-\udfff]/.test(ch) && /[\ud800-\udbff]/.test(text[q - 2])) ch = text.slice(q - 2, q);
    q -= ch.length;
    if (kept(ch)) {
      before = ch + before;
      n++;
    }
  }
  let after = '';
  for (let q = j, n = 0; q < secEnd && n < 16; ) {
    const ch = String.fromCodePoint(text.codePointAt(q)!);
    q += ch.length;
    if (kept(ch)) {
      after += ch;
      n++;
    }
  }
  const lowered = (before + u + after).toLowerCase();
  const at = before.toLowerCase().length;
  const mine = lowered.slice(at, at + u.toLowerCase().length);
  let norm = profile.normalizeUnit(u);
  if (mine.includes('\u03c2')) norm = norm.replace(/\u03c3/g, '\u03c2');
  return unitRecOf(profile, norm);
}
