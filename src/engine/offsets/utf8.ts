// UTF-8 helpers for the offset aligner. Lone surrogates encode as U+FFFD (EF BF BD), exactly as
// TextEncoder (and so every transformers.js byte-level / byte-fallback path) encodes them.

/** Appends the UTF-8 bytes of one code point to `out` starting at `at`; returns the new end. */
export function putCodePoint(cp: number, out: Uint8Array, at: number): number {
  if (cp < 0x80) {
    out[at] = cp;
    return at + 1;
  }
  if (cp < 0x800) {
    out[at] = 0xc0 | (cp >> 6);
    out[at + 1] = 0x80 | (cp & 0x3f);
    return at + 2;
  }
  if (cp >= 0xd800 && cp <= 0xdfff) cp = 0xfffd; // lone surrogate
  if (cp < 0x10000) {
    out[at] = 0xe0 | (cp >> 12);
    out[at + 1] = 0x80 | ((cp >> 6) & 0x3f);
    out[at + 2] = 0x80 | (cp & 0x3f);
    return at + 3;
  }
  out[at] = 0xf0 | (cp >> 18);
  out[at + 1] = 0x80 | ((cp >> 12) & 0x3f);
  out[at + 2] = 0x80 | ((cp >> 6) & 0x3f);
  out[at + 3] = 0x80 | (cp & 0x3f);
  return at + 4;
}

/** Number of UTF-8 bytes of a code point (lone surrogates count as U+FFFD). */
export function utf8Length(cp: number): number {
  return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
}

/** UTF-8 bytes of a string; when `spaceMarker` is set, U+2581 (▁) becomes a plain space. */
export function utf8(s: string, spaceMarker = false): Uint8Array {
  const out = new Uint8Array(s.length * 3);
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    let cp = s.charCodeAt(i);
    if (cp >= 0xd800 && cp <= 0xdbff && i + 1 < s.length) {
      const lo = s.charCodeAt(i + 1);
      if (lo >= 0xdc00 && lo <= 0xdfff) {
        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        i++;
      }
    }
    if (spaceMarker && cp === 0x2581) cp = 0x20;
    n = putCodePoint(cp, out, n);
  }
  return out.slice(0, n);
}

/** Length in bytes of the UTF-8 sequence that starts with lead byte `b` (1 for stray continuation bytes). */
export function seqLength(b: number): number {
  return b < 0xc0 ? 1 : b < 0xe0 ? 2 : b < 0xf0 ? 3 : 4;
}

/** Decodes the code point at byte `at` (bounded by `end`); -1 if `at` is not a well-formed lead. */
export function decodeAt(bytes: Uint8Array, at: number, end: number): number {
  const b = bytes[at];
  if (b < 0x80) return b;
  const n = seqLength(b);
  if (n === 1 || at + n > end) return -1;
  let cp = b & (n === 2 ? 0x1f : n === 3 ? 0x0f : 0x07);
  for (let i = 1; i < n; i++) {
    const c = bytes[at + i];
    if ((c & 0xc0) !== 0x80) return -1;
    cp = (cp << 6) | (c & 0x3f);
  }
  return cp;
}

/**
 * GPT-2's byte-to-unicode table, reversed: the printable character a byte-level BPE vocabulary uses
 * for each byte ("Ġ" for 0x20, "Ċ" for 0x0A, ...) back to the byte.
 */
export const BYTE_LEVEL_DECODER: ReadonlyMap<number, number> = (() => {
  const bs: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) bs.push(b);
  for (let b = 0xa1; b <= 0xac; b++) bs.push(b);
  for (let b = 0xae; b <= 0xff; b++) bs.push(b);
  const cs = bs.slice();
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n);
      n++;
    }
  }
  const m = new Map<number, number>();
  bs.forEach((b, i) => m.set(cs[i], b));
  return m;
})();
