// Minimal protobuf wire-format reading and writing, enough to walk an ONNX ModelProto without decoding it.
//
// Why not decode the whole model with protobufjs (onnx-proto)? Two reasons:
//  - speed and memory: a BERT-base is ~440 MB of initializers; walking the wire format skips every
//    `raw_data` by its length prefix and never copies it;
//  - fidelity: onnx-proto is generated from ONNX 1.10, and protobufjs drops fields it does not know
//    (newer ONNX fields such as metadata_props on nodes) on re-encode. Splicing bytes keeps every field
//    we do not touch exactly as it was.

export const WT_VARINT = 0;
export const WT_I64 = 1;
export const WT_LEN = 2;
export const WT_I32 = 5;

/** Thrown by the reader when the bytes are not a well-formed protobuf message. */
export class WireError extends Error {
  constructor(message: string, public readonly offset: number) {
    super(`${message} at byte ${offset}`);
    this.name = 'WireError';
  }
}

/** One field occurrence inside a message. Offsets are absolute positions in the buffer. */
export interface WireField {
  /** Field number. */
  no: number;
  /** Wire type (0, 1, 2 or 5). */
  wt: number;
  /** Where the tag starts. */
  tagStart: number;
  /** Where the length prefix starts (LEN fields) or the value starts (others). */
  tagEnd: number;
  /** Where the payload starts (after the length prefix for LEN fields). */
  dataStart: number;
  /** One past the payload's last byte. */
  end: number;
  /** The value of a VARINT field (as a JS number; exact up to 2^53). */
  varint: number;
}

/** Reads a varint at `pos`; returns [value, next position]. Values above 2^53 lose precision (never used for lengths). */
export function readVarint(buf: Uint8Array, pos: number, end: number): [number, number] {
  let result = 0;
  let mul = 1;
  const start = pos;
  for (let i = 0; i < 10; i++) {
    if (pos >= end) throw new WireError('truncated varint', start);
    const b = buf[pos++];
    result += (b & 0x7f) * mul;
    if ((b & 0x80) === 0) return [result, pos];
    mul *= 128;
  }
  throw new WireError('varint longer than 10 bytes', start);
}

/**
 * Iterates the fields of the message occupying buf[start, end). Throws WireError on malformed input
 * (truncated fields, lengths past the end, group or reserved wire types).
 */
export function* fields(buf: Uint8Array, start: number, end: number): Generator<WireField> {
  let pos = start;
  while (pos < end) {
    const tagStart = pos;
    const [tag, afterTag] = readVarint(buf, pos, end);
    const no = Math.floor(tag / 8);
    const wt = tag & 7;
    if (no === 0) throw new WireError('field number 0', tagStart);
    let dataStart = afterTag;
    let fieldEnd: number;
    let varint = 0;
    switch (wt) {
      case WT_VARINT: {
        const [v, next] = readVarint(buf, afterTag, end);
        varint = v;
        fieldEnd = next;
        break;
      }
      case WT_I64:
        fieldEnd = afterTag + 8;
        break;
      case WT_I32:
        fieldEnd = afterTag + 4;
        break;
      case WT_LEN: {
        const [len, next] = readVarint(buf, afterTag, end);
        dataStart = next;
        fieldEnd = next + len;
        break;
      }
      default:
        throw new WireError(`unsupported wire type ${wt} (field ${no})`, tagStart);
    }
    if (fieldEnd > end) throw new WireError(`field ${no} runs past the end of its message`, tagStart);
    yield { no, wt, tagStart, tagEnd: afterTag, dataStart, end: fieldEnd, varint };
    pos = fieldEnd;
  }
}

const utf8 = new TextDecoder('utf-8');

export function readString(buf: Uint8Array, f: WireField): string {
  return utf8.decode(buf.subarray(f.dataStart, f.end));
}

export function encodeVarint(value: number): Uint8Array {
  const out: number[] = [];
  let v = value;
  while (v >= 0x80) {
    out.push((v % 128) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return Uint8Array.from(out);
}

/** Tag + length prefix + payload for a LEN field. */
export function lenField(no: number, payload: Uint8Array): Uint8Array[] {
  return [encodeVarint(no * 8 + WT_LEN), encodeVarint(payload.length), payload];
}

export function stringField(no: number, s: string): Uint8Array[] {
  return lenField(no, new TextEncoder().encode(s));
}

/**
 * A set of edits to one LEN-delimited message, applied by `rebuild`: child messages (identified by the
 * tagStart of their field) are rebuilt recursively, extra fields are inserted right after a given
 * field (keyed by that field's end offset), and others appended at the end. Protobuf keeps the
 * relative order of repeated fields, so inserting a repeated field's occurrence after another
 * places the new element right after it.
 */
export interface MessagePatch {
  children: Map<number, { field: WireField; patch: MessagePatch }>;
  insertAfter: Map<number, Uint8Array[]>;
  /** Fields to drop, keyed by their tagStart (e.g. an attribute that is replaced by an appended one). */
  remove: Map<number, WireField>;
  append: Uint8Array[];
}

export function newPatch(): MessagePatch {
  return { children: new Map(), insertAfter: new Map(), remove: new Map(), append: [] };
}

/** Queues `field` (an untouched field of the patched message) to be left out. */
export function removeField(patch: MessagePatch, field: WireField): void {
  patch.remove.set(field.tagStart, field);
}

/** Queues `chunks` to be written right after `field` (an untouched field of the patched message). */
export function insertAfter(patch: MessagePatch, field: WireField, chunks: Uint8Array[]): void {
  const list = patch.insertAfter.get(field.end);
  if (list) list.push(...chunks);
  else patch.insertAfter.set(field.end, [...chunks]);
}

/** The patch for the child message in `field`, created on first use. */
export function childPatch(parent: MessagePatch, field: WireField): MessagePatch {
  let entry = parent.children.get(field.tagStart);
  if (!entry) {
    entry = { field, patch: newPatch() };
    parent.children.set(field.tagStart, entry);
  }
  return entry.patch;
}

/**
 * Returns the chunks making up the patched payload of the message at buf[start, end). Untouched byte
 * ranges are returned as views of `buf` (no copy); only length prefixes along edited paths are new.
 */
export function rebuild(buf: Uint8Array, start: number, end: number, patch: MessagePatch): { chunks: Uint8Array[]; length: number } {
  const chunks: Uint8Array[] = [];
  let length = 0;
  const push = (c: Uint8Array) => {
    if (c.length > 0) {
      chunks.push(c);
      length += c.length;
    }
  };
  let cursor = start;
  // Edits in byte order. An insertion keyed by field A's end comes before a child that starts
  // there (the field after A), and after A itself even when A is a rebuilt child (its end is
  // reached before the insertion's offset is).
  type Edit = { at: number; child?: { field: WireField; patch: MessagePatch }; insert?: Uint8Array[]; skip?: WireField };
  const edits: Edit[] = [
    ...[...patch.children.values()].map((child): Edit => ({ at: child.field.tagStart, child })),
    ...[...patch.insertAfter].map(([at, insert]): Edit => ({ at, insert })),
    ...[...patch.remove.values()].map((skip): Edit => ({ at: skip.tagStart, skip })),
  ].sort((a, b) => a.at - b.at || (a.insert ? -1 : 1));
  for (const { at, child, insert, skip } of edits) {
    if (at < cursor || at > end) throw new Error('overlapping or out-of-range patch');
    push(buf.subarray(cursor, at));
    cursor = at;
    if (insert) {
      for (const c of insert) push(c);
      continue;
    }
    if (skip) {
      if (skip.end > end) throw new Error('overlapping or out-of-range patch');
      cursor = skip.end;
      continue;
    }
    const { field, patch: sub } = child!;
    if (field.end > end) throw new Error('overlapping or out-of-range patch');
    const inner = rebuild(buf, field.dataStart, field.end, sub);
    push(buf.subarray(field.tagStart, field.tagEnd)); // the original tag bytes
    push(encodeVarint(inner.length));
    for (const c of inner.chunks) push(c);
    cursor = field.end;
  }
  push(buf.subarray(cursor, end));
  for (const c of patch.append) push(c);
  return { chunks, length };
}
