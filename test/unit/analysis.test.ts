// Unit tests of the pure attention math (src/analysis): hand-computed small cases and invariants.
// Run: node --import tsx --test test/unit/analysis.test.ts

import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { rng } from '../webview/synthetic';
import {
  f16BitsToNumber,
  f16Lut,
  numberToF16Bits,
  encodeF16,
  encodeU8,
  packF14,
  unpackF14,
  f14ByteLength,
  layerTensor,
  LayerStore,
  splitLayer,
  decodeHead,
  decodeRow,
  meanHeads,
  meanOfHeads,
  meanRow,
  renormalizeRows,
  renormalizeRow,
  applyThreshold,
  keepMask,
  rowSums,
  groupWords,
  wordWeights,
  topAttended,
  cleanTokenText,
  residualAttention,
  matmul,
  rollout,
  rolloutRow,
  Rollout,
  attendedWords,
  tokenAt,
  layerThumbs,
  thumbSize,
  THUMB_MAX,
  type TokenLike,
} from '../../src/analysis';
import { BYTES_PER_ELEMENT, type AttentionPayload } from '../../src/protocol/attention';
import { runPayloads, streamPayloads } from '../../src/engine/payloads';

// ------------------------------------------------------------------ helpers

/** Row-wise softmax of random scores; causal masks keys after the query. */
function randomAttention(T: number, seed: number, causal: boolean): Float32Array {
  const r = rng(seed);
  const m = new Float32Array(T * T);
  for (let i = 0; i < T; i++) {
    const n = causal ? i + 1 : T;
    let max = -Infinity;
    const s = new Float64Array(n);
    for (let j = 0; j < n; j++) {
      s[j] = (r() - 0.5) * 6;
      if (s[j] > max) max = s[j];
    }
    let sum = 0;
    for (let j = 0; j < n; j++) {
      s[j] = Math.exp(s[j] - max);
      sum += s[j];
    }
    for (let j = 0; j < n; j++) m[i * T + j] = s[j] / sum;
  }
  return m;
}

function naiveMatmul(a: Float32Array, b: Float32Array, T: number): Float64Array {
  const c = new Float64Array(T * T);
  for (let i = 0; i < T; i++) for (let j = 0; j < T; j++) {
    let s = 0;
    for (let k = 0; k < T; k++) s += a[i * T + k] * b[k * T + j];
    c[i * T + j] = s;
  }
  return c;
}

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol = 1e-6, what = 'value'): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) {
    if (Math.abs(actual[i] - expected[i]) > tol) {
      assert.fail(`${what}[${i}] = ${actual[i]}, expected ${expected[i]} (tol ${tol})`);
    }
  }
}

function tok(text: string, start: number, end: number, special = false): TokenLike {
  return { text, start, end, special };
}

// ------------------------------------------------------------------ float16

describe('float16 decode', () => {
  const cases: [number, number][] = [
    [0x0000, 0],
    [0x3c00, 1],
    [0xbc00, -1],
    [0xc000, -2],
    [0x3800, 0.5],
    [0x3555, 0.333251953125],
    [0x7bff, 65504], // largest finite
    [0x0400, 2 ** -14], // smallest normal
    [0x0001, 2 ** -24], // smallest subnormal
    [0x03ff, 1023 * 2 ** -24], // largest subnormal
    [0x0200, 2 ** -15], // a middle subnormal
    [0x8001, -(2 ** -24)],
    [0x7c00, Infinity],
    [0xfc00, -Infinity],
  ];
  for (const [bits, value] of cases) {
    test(`0x${bits.toString(16).padStart(4, '0')} -> ${value}`, () => {
      assert.equal(f16BitsToNumber(bits), value);
      assert.equal(f16Lut()[bits], value);
    });
  }
  test('negative zero and NaN', () => {
    assert.ok(Object.is(f16BitsToNumber(0x8000), -0));
    assert.ok(Number.isNaN(f16BitsToNumber(0x7e00)));
    assert.ok(Number.isNaN(f16BitsToNumber(0x7c01)));
    assert.ok(Number.isNaN(f16Lut()[0xfe00]));
  });
  test('the LUT equals the scalar decoder for all 65536 patterns', () => {
    const lut = f16Lut();
    assert.equal(lut.length, 65536);
    for (let b = 0; b < 65536; b++) {
      const v = f16BitsToNumber(b);
      if (Number.isNaN(v)) assert.ok(Number.isNaN(lut[b]));
      else assert.ok(Object.is(lut[b], Math.fround(v)), `pattern ${b}`);
    }
  });
});

describe('float16 encode', () => {
  test('known values and rounding', () => {
    assert.equal(numberToF16Bits(0), 0x0000);
    assert.equal(numberToF16Bits(-0), 0x8000);
    assert.equal(numberToF16Bits(1), 0x3c00);
    assert.equal(numberToF16Bits(-2), 0xc000);
    assert.equal(numberToF16Bits(0.1), 0x2e66); // 0.0999755859375
    assert.equal(numberToF16Bits(1 / 3), 0x3555);
    assert.equal(numberToF16Bits(65504), 0x7bff);
    assert.equal(numberToF16Bits(65519), 0x7bff); // below the midpoint to infinity
    assert.equal(numberToF16Bits(65520), 0x7c00); // midpoint rounds to even = infinity
    assert.equal(numberToF16Bits(1e6), 0x7c00);
    assert.equal(numberToF16Bits(-Infinity), 0xfc00);
    assert.equal(numberToF16Bits(NaN), 0x7e00);
    // 1 + 2^-11 is exactly between 1 and 1 + 2^-10: ties to even (1).
    assert.equal(numberToF16Bits(1 + 2 ** -11), 0x3c00);
    // 1 + 3 * 2^-11 is between 0x3c01 and 0x3c02: ties to even (0x3c02).
    assert.equal(numberToF16Bits(1 + 3 * 2 ** -11), 0x3c02);
  });
  test('subnormals', () => {
    assert.equal(numberToF16Bits(2 ** -24), 0x0001);
    assert.equal(numberToF16Bits(2 ** -25), 0x0000); // tie to even -> 0
    assert.equal(numberToF16Bits(1.5 * 2 ** -25), 0x0001);
    assert.equal(numberToF16Bits(3 * 2 ** -25), 0x0002); // 1.5 ulp: tie to even -> 2
    assert.equal(numberToF16Bits(1023 * 2 ** -24), 0x03ff);
    assert.equal(numberToF16Bits(1023.5 * 2 ** -24), 0x0400); // carries into the smallest normal
    assert.equal(numberToF16Bits(1e-10), 0x0000);
    assert.equal(numberToF16Bits(-(2 ** -24)), 0x8001);
  });
  test('every finite pattern round-trips', () => {
    for (let b = 0; b < 65536; b++) {
      const v = f16BitsToNumber(b);
      if (Number.isNaN(v)) continue;
      assert.equal(numberToF16Bits(v), b, `pattern 0x${b.toString(16)}`);
    }
  });
  test('encodeF16 error on probabilities is within half an ulp', () => {
    const r = rng(7);
    const src = new Float32Array(10000).map(() => r());
    const enc = encodeF16(src);
    const lut = f16Lut();
    for (let i = 0; i < src.length; i++) {
      const x = src[i];
      const ulp = x >= 2 ** -14 ? 2 ** (Math.floor(Math.log2(x)) - 10) : 2 ** -24;
      assert.ok(Math.abs(lut[enc[i]] - x) <= ulp / 2 + 1e-12, `x=${x}`);
    }
  });
  test("encodeF16's fast path on Float32Array is bit-identical to numberToF16Bits over every float32 range", () => {
    const r = rng(11);
    const bits = new Uint32Array(200_000);
    for (let i = 0; i < bits.length; i++) bits[i] = Math.floor(r() * 2 ** 32) >>> 0; // every exponent, sign, NaN, inf
    const edges = [0, 0x80000000, 0x7f800000, 0xff800000, 0x7fc00000, 0x33000000, 0x33000001, 0x387fc000, 0x38800000, 0x477fe000, 0x477ff000, 0x3f7ff000, 0x3f7ff001];
    bits.set(edges);
    const src = new Float32Array(bits.buffer);
    const fast = encodeF16(src);
    const slow = encodeF16(Array.from(src));
    for (let i = 0; i < src.length; i++) assert.equal(fast[i], slow[i], `0x${bits[i].toString(16)} (${src[i]})`);
  });
  test('encodeU8 rounds and clamps', () => {
    assert.deepEqual([...encodeU8([0, 1, 0.5, 1 / 255, 2, -1, NaN])], [0, 255, 128, 1, 255, 0, 0]);
  });
});

// ------------------------------------------------------------------ 14-bit packing

describe('14-bit packing of probabilities', () => {
  test('every half pattern below 2.0 survives, at every length (tails included)', () => {
    const all = Uint16Array.from({ length: 0x4000 }, (_, i) => i);
    for (const n of [0, 1, 15, 16, 17, 31, 33, 0x4000 - 5, 0x4000]) {
      const codes = all.subarray(0, n);
      const packed = packF14(codes);
      assert.ok(packed, `n=${n} packs`);
      assert.equal(packed.byteLength, f14ByteLength(n));
      assert.equal(packed.byteLength, Math.ceil(n / 16) * 28, '16 values per 28 bytes');
      assert.deepEqual(unpackF14(packed, n), codes, `n=${n}`);
    }
  });
  test('random probabilities round-trip bit for bit, 1.75 bytes per value', () => {
    const rand = rng(7);
    const n = 12 * 37 * 37; // not a multiple of 16
    const codes = encodeF16(Float32Array.from({ length: n }, () => rand() ** 4));
    const packed = packF14(codes)!;
    assert.deepEqual(unpackF14(packed, n), codes);
    assert.ok(Math.abs(packed.byteLength / n - 1.75) < 0.01);
    // Neighbouring patterns must not bleed into each other: flip one value and only it changes.
    const changed = codes.slice();
    changed[100] ^= 0x2aaa;
    const back = unpackF14(packF14(changed)!, n);
    for (let i = 0; i < n; i++) assert.equal(back[i], changed[i], `index ${i}`);
  });
  test('values outside [0, 2) refuse to pack', () => {
    for (const v of [2, 1e4, -0.5, -0, Infinity, NaN]) {
      const codes = encodeF16(new Float32Array([0.25, v, 0.5]));
      assert.equal(packF14(codes), null, `value ${v}`);
    }
    assert.ok(packF14(encodeF16(new Float32Array([0, 1, 1.999]))));
  });
  test('unpacking rejects data too short for the count', () => {
    assert.throws(() => unpackF14(new Uint32Array(7), 17), /56 needed/);
  });
  test('a packed layer decodes like the plain f16 layer; wrong sizes and non-f16 are refused', () => {
    const rand = rng(3);
    const H = 3;
    const T = 5;
    const codes = encodeF16(Float32Array.from({ length: H * T * T }, () => rand()));
    const plain = layerTensor(codes.buffer, 'f16', H, T);
    const packed = packF14(codes)!;
    const fromPacked = layerTensor(packed.buffer, 'f16', H, T, true);
    assert.deepEqual(fromPacked.raw, plain.raw);
    assert.deepEqual(meanHeads(fromPacked), meanHeads(plain));
    // A misaligned view of the packed bytes works too.
    const shifted = new Uint8Array(packed.byteLength + 1);
    shifted.set(new Uint8Array(packed.buffer), 1);
    assert.deepEqual(layerTensor(shifted.subarray(1), 'f16', H, T, true).raw, plain.raw);
    assert.throws(() => layerTensor(packed.buffer.slice(4), 'f16', H, T, true), /packed layer has/);
    assert.throws(() => layerTensor(packed.buffer, 'f32', H, T, true), /only f16/);
  });
});

describe('LayerStore', () => {
  const H = 2;
  const T = 3;
  const rand = rng(11);
  const codes = () => encodeF16(Float32Array.from({ length: H * T * T }, () => rand()));
  test('plain and packed layers read back the same; packed ones unpack on first use only', () => {
    const store = new LayerStore('f16', 3, H, T);
    const a = codes();
    const b = codes();
    assert.equal(store.add(0, a.buffer), true);
    assert.equal(store.add(2, packF14(b)!.buffer, true), true);
    assert.deepEqual([store.has(0), store.has(1), store.has(2)], [true, false, true]);
    assert.equal(store.get(1), undefined);
    assert.deepEqual(store.get(0)!.raw, a);
    const unpacked = store.get(2)!;
    assert.deepEqual(unpacked.raw, b);
    assert.equal(store.get(2), unpacked, 'unpacked once, then kept');
    assert.equal(store.add(2, packF14(b)!.buffer, true), false, 'a duplicate is ignored');
  });
  test('a wrong size, a packed non-f16 layer or a layer out of range is refused when it arrives', () => {
    const store = new LayerStore('f16', 2, H, T);
    assert.throws(() => store.add(0, new ArrayBuffer(8), true), /packed layer has 8 bytes/);
    assert.throws(() => store.add(0, new ArrayBuffer(8)), /expected 36/);
    assert.throws(() => store.add(2, codes().buffer), /out of range/);
    assert.throws(() => new LayerStore('f32', 1, H, T).add(0, packF14(codes())!.buffer, true), /only f16/);
    assert.equal(store.has(0), false);
  });
});

describe('layers in parts (splitLayer)', () => {
  const rand = rng(23);
  // T = 7: a head (49 cells) is not whole 16-cell groups, so parts cut across heads and the last
  // packed group is zero-padded.
  const shapes = [
    { H: 3, T: 7 },
    { H: 2, T: 16 },
  ];
  for (const { H, T } of shapes) {
    const n = H * T * T;
    for (const packed of [true, false]) {
      for (const encoding of packed ? (['f16'] as const) : (['f16', 'f32', 'u8'] as const)) {
        test(`${encoding}${packed ? ' packed' : ''} ${H}x${T}x${T}: any part size reassembles the exact layer`, () => {
          const values = Float32Array.from({ length: n }, () => rand());
          const elements = encoding === 'f32' ? values : encoding === 'f16' ? encodeF16(values) : encodeU8(values);
          const wire = (packed ? packF14(elements as Uint16Array)!.buffer : elements.slice().buffer) as ArrayBuffer;
          const whole = new LayerStore(encoding, 1, H, T);
          whole.add(0, wire.slice(0), packed);
          for (const maxBytes of [1, 28, 60, 100, wire.byteLength - 1]) {
            const parts = splitLayer(wire, packed, BYTES_PER_ELEMENT[encoding], maxBytes);
            assert.ok(parts.length > 1, `${maxBytes} bytes: several parts`);
            assert.equal(parts.reduce((s, p) => s + p.data.byteLength, 0), wire.byteLength, 'no byte lost or repeated');
            const store = new LayerStore(encoding, 1, H, T);
            parts.forEach((p, i) => {
              assert.equal(p.start % 16, 0, 'cut at whole 16-cell units');
              assert.equal(store.add(0, p.data, packed, p.start), i === parts.length - 1, 'complete with the last part only');
              assert.equal(store.has(0), i === parts.length - 1);
            });
            assert.deepEqual(store.get(0)!.raw, whole.get(0)!.raw, `${maxBytes} bytes per part`);
          }
          assert.deepEqual(splitLayer(wire, packed, BYTES_PER_ELEMENT[encoding], wire.byteLength), [{ start: 0, data: wire }], 'a layer that fits is itself');
        });
      }
    }
  }
  test('a part out of order, overrunning the layer or not whole packed groups is refused', () => {
    const H = 2;
    const T = 8;
    const codes = encodeF16(Float32Array.from({ length: H * T * T }, () => rand()));
    const packed = packF14(codes)!.buffer as ArrayBuffer;
    const parts = splitLayer(packed, true, 2, 56);
    const store = new LayerStore('f16', 1, H, T);
    assert.throws(() => store.add(0, parts[1].data, true, parts[1].start), /starts at cell 32, expected 0/);
    store.add(0, parts[0].data, true, parts[0].start);
    assert.throws(() => store.add(0, parts[0].data, true, parts[0].start), /expected 32/, 'a repeated part');
    assert.throws(() => store.add(0, new ArrayBuffer(30), true, 32), /not whole groups/);
    assert.throws(() => store.add(0, new ArrayBuffer(28 * 8), true, 32), /overruns/);
    const plain = new LayerStore('f16', 1, H, T);
    assert.throws(() => plain.add(0, new ArrayBuffer(H * T * T * 2 + 2), false, 0), /does not fit/);
    assert.throws(() => plain.add(0, new ArrayBuffer(3), false, 0), /does not fit/);
    assert.equal(store.has(0), false);
  });
});

// ------------------------------------------------------------------ layer tensors

describe('thumbnails (layerThumbs)', () => {
  /** The reference: cell (i, j) of T goes to pixel (floor(i * size / T), floor(j * size / T)); each pixel is its block's maximum (0 when empty). */
  function maxPool(m: Float32Array, T: number, size: number): Float32Array {
    const out = new Float32Array(size * size);
    for (let i = 0; i < T; i++) {
      for (let j = 0; j < T; j++) {
        const o = Math.floor((i * size) / T) * size + Math.floor((j * size) / T);
        out[o] = Math.max(out[o], m[i * T + j]);
      }
    }
    return out;
  }
  const H = 3;
  /** How far the pooled mean may be off after its encoding rounds it (the heads are exact). */
  const meanTolerance = { f32: () => 1e-7, f16: (v: number) => Math.max(v, 2 ** -14) * 2 ** -11, u8: () => 0.5 / 255 + 1e-7 };
  for (const T of [129, 300, 512]) {
    for (const encoding of ['f16', 'f32', 'u8'] as const) {
      test(`${encoding}, T=${T}: each head max-pooled exactly, then the mean of the heads`, () => {
        const size = thumbSize(T);
        assert.ok(size < T && size <= THUMB_MAX);
        const values = new Float32Array(H * T * T);
        for (let h = 0; h < H; h++) values.set(randomAttention(T, 40 + h, h === 1), h * T * T);
        const elements = encoding === 'f32' ? values : encoding === 'f16' ? encodeF16(values) : encodeU8(values);
        const layer = layerTensor(elements, encoding, H, T);
        const thumbs = layerThumbs(layer)!;
        assert.equal(thumbs.size, size);
        assert.equal(thumbs.packed, encoding === 'f16', 'f16 thumbnails are bit-packed like layers');
        const got = layerTensor(thumbs.data, encoding, H + 1, size, thumbs.packed);
        // A head's pixel is one of its cells, re-encoded exactly: the panel paints it as it would from the layer.
        for (let h = 0; h < H; h++) assert.deepEqual(decodeHead(got, h), maxPool(decodeHead(layer, h), T, size), `head ${h}`);
        const mean = maxPool(meanHeads(layer), T, size);
        const gotMean = decodeHead(got, H);
        for (let i = 0; i < mean.length; i++) {
          assert.ok(Math.abs(gotMean[i] - mean[i]) <= meanTolerance[encoding](mean[i]), `mean pixel ${i}: ${gotMean[i]} vs ${mean[i]}`);
        }
      });
    }
  }

  test('none when the thumbnail would be the layer itself (T <= 128)', () => {
    for (const T of [1, 7, 128]) assert.equal(layerThumbs(layerTensor(new Float32Array(2 * T * T), 'f32', 2, T)), null, `T=${T}`);
  });

  test("runPayloads: every layer's thumbnails first, then the layers, each in a buffer of its own", () => {
    const [L, T] = [3, 200];
    const values = new Float32Array(L * H * T * T);
    for (let l = 0; l < L; l++) for (let h = 0; h < H; h++) values.set(randomAttention(T, 60 + l * H + h, false), (l * H + h) * T * T);
    const attention = encodeF16(values);
    const payloads = [...runPayloads({ attention, shape: [L, H, T, 64], encoding: 'f16' })];
    assert.deepEqual(payloads.map((p) => `${p.kind}${p.layer}`), ['thumbs0', 'thumbs1', 'thumbs2', 'layer0', 'layer1', 'layer2']);
    assert.equal(new Set(payloads.map((p) => p.data)).size, payloads.length, 'no shared buffer (each is transferred)');
    for (const p of payloads) {
      const expected = layerTensor(attention.subarray(p.layer * H * T * T, (p.layer + 1) * H * T * T), 'f16', H, T);
      if (p.kind === 'layer') assert.deepEqual(layerTensor(p.data, 'f16', H, T, p.packed).raw, expected.raw, `layer ${p.layer} exact`);
      else assert.deepEqual(new Uint8Array(p.data), new Uint8Array(layerThumbs(expected)!.data), `thumbs ${p.layer}`);
    }
    const small = [...runPayloads({ attention: new Float32Array(2 * H * 16 * 16), shape: [2, H, 16, 64], encoding: 'f32' })];
    assert.deepEqual(small.map((p) => p.kind), ['layer', 'layer'], 'no thumbnails for short inputs');
  });

  test('streamPayloads: a cancel arriving between payloads stops the stream, and the rest are never computed', async () => {
    const computed: number[] = [];
    function* payloads(): Generator<AttentionPayload> {
      for (let l = 0; l < 6; l++) {
        computed.push(l);
        yield { kind: 'layer', layer: l, data: new ArrayBuffer(8), packed: false };
      }
    }
    const controller = new AbortController();
    const sent: number[] = [];
    // The cancel is an event (the host's message), queued while the second payload goes out.
    const complete = await streamPayloads(payloads(), (p) => {
      sent.push(p.layer);
      if (p.layer === 1) setImmediate(() => controller.abort());
    }, controller.signal);
    assert.equal(complete, false);
    assert.deepEqual(sent, [0, 1]);
    assert.deepEqual(computed, [0, 1]);
    computed.length = 0;
    const all: number[] = [];
    assert.equal(await streamPayloads(payloads(), (p) => all.push(p.layer), new AbortController().signal), true);
    assert.deepEqual(all, [0, 1, 2, 3, 4, 5]);
    assert.equal(await streamPayloads(payloads(), () => assert.fail('nothing is sent once cancelled'), AbortSignal.abort()), false);
  });
});

describe('layer tensors', () => {
  // 2 heads, T = 2.  head 0 = [[1, 0], [0.25, 0.75]], head 1 = [[0.5, 0.5], [0.75, 0.25]]
  const values = new Float32Array([1, 0, 0.25, 0.75, 0.5, 0.5, 0.75, 0.25]);
  const expectedMean = [0.75, 0.25, 0.5, 0.5];

  test('decodes f32, f16 and u8 to the same floats', () => {
    for (const [enc, bytes, tol] of [
      ['f32', values.buffer, 0],
      ['f16', encodeF16(values).buffer, 0],
      ['u8', encodeU8(values).buffer, 0.5 / 255 + 1e-6],
    ] as const) {
      const layer = layerTensor(bytes, enc, 2, 2);
      assertClose(decodeHead(layer, 0), [1, 0, 0.25, 0.75], tol, `${enc} head 0`);
      assertClose(decodeHead(layer, 1), [0.5, 0.5, 0.75, 0.25], tol, `${enc} head 1`);
      assertClose(decodeRow(layer, 1, 1), [0.75, 0.25], tol, `${enc} row`);
      assertClose(meanHeads(layer), expectedMean, tol, `${enc} mean`);
    }
  });
  test('mean of a subset of heads and of one row', () => {
    const layer = layerTensor(values.buffer, 'f32', 2, 2);
    assertClose(meanOfHeads(layer, [1]), [0.5, 0.5, 0.75, 0.25]);
    assertClose(meanRow(layer, null, 1), [0.5, 0.5]);
    assertClose(meanRow(layer, [0], 1), [0.25, 0.75]);
  });
  test('rejects a buffer of the wrong size', () => {
    assert.throws(() => layerTensor(new ArrayBuffer(10), 'f16', 2, 2), /expected 16/);
    assert.throws(() => layerTensor(new ArrayBuffer(8), 'f32', 1, 2), /expected 16/);
  });
  test('accepts a view, copying when misaligned', () => {
    const enc = encodeF16(values);
    const bytes = new Uint8Array(enc.byteLength + 1);
    bytes.set(new Uint8Array(enc.buffer), 1);
    const layer = layerTensor(bytes.subarray(1), 'f16', 2, 2);
    assertClose(meanHeads(layer), expectedMean, 0);
  });
});

// ------------------------------------------------------------------ special tokens and threshold

describe('renormalisation and threshold', () => {
  test('hand case: hiding token 0 renormalises the other columns', () => {
    // 3 tokens: [CLS] a b; rows: CLS [1,0,0]; a [0.5,0.25,0.25]; b [0.6,0.1,0.3]
    const m = new Float32Array([1, 0, 0, 0.5, 0.25, 0.25, 0.6, 0.1, 0.3]);
    const keep = keepMask([{ special: true }, { special: false }, { special: false }], true);
    assert.deepEqual([...keep], [0, 1, 1]);
    const r = renormalizeRows(m, 3, keep);
    assertClose(r, [0, 0, 0, 0, 0.5, 0.5, 0, 0.25, 0.75]);
  });
  test('keepMask keeps everything when not hiding', () => {
    assert.deepEqual([...keepMask([{ special: true }, { special: false }], false)], [1, 1]);
  });
  test('kept rows sum to 1 for random attention, in place too', () => {
    const T = 37;
    const m = randomAttention(T, 3, true);
    const keep = new Uint8Array(T).fill(1);
    keep[0] = 0;
    keep[T - 1] = 0;
    keep[10] = 0;
    renormalizeRows(m, T, keep, m);
    const sums = rowSums(m, T);
    for (let i = 0; i < T; i++) {
      if (!keep[i]) assert.equal(sums[i], 0, `hidden row ${i}`);
      else if (i === 0 || i === 10) continue;
      else assert.ok(Math.abs(sums[i] - 1) < 1e-5, `row ${i} sums to ${sums[i]}`);
      for (const j of [0, 10, T - 1]) assert.equal(m[i * T + j], 0);
    }
  });
  test('a row whose only weight was on hidden tokens stays zero', () => {
    const r = renormalizeRow(new Float32Array([1, 0, 0]), new Uint8Array([0, 1, 1]));
    assertClose(r, [0, 0, 0]);
  });
  test('single-row renormalisation matches the matrix version', () => {
    const T = 9;
    const m = randomAttention(T, 5, false);
    const keep = new Uint8Array([0, 1, 1, 1, 0, 1, 1, 1, 1]);
    const full = renormalizeRows(m, T, keep);
    const row = renormalizeRow(m.slice(3 * T, 4 * T), keep);
    assertClose(row, full.subarray(3 * T, 4 * T), 1e-7);
  });
  test('threshold zeroes weights below it and keeps the rest unchanged', () => {
    assertClose(applyThreshold(new Float32Array([0.05, 0.1, 0.5, 0.35]), 0.1), [0, 0.1, 0.5, 0.35]);
  });
});

// ------------------------------------------------------------------ word grouping

describe('word grouping', () => {
  test('WordPiece pieces, punctuation, underscores and specials', () => {
    const text = 'Hello, unbelievable world_x 42!';
    const tokens = [
      tok('[CLS]', -1, -1, true),
      tok('hello', 0, 5),
      tok(',', 5, 6),
      tok('un', 7, 9),
      tok('##bel', 9, 12),
      tok('##ie', 12, 14),
      tok('##vable', 14, 19),
      tok('world', 20, 25),
      tok('_', 25, 26),
      tok('x', 26, 27),
      tok('42', 28, 30),
      tok('!', 30, 31),
      tok('[SEP]', -1, -1, true),
    ];
    const g = groupWords(tokens, { text, offset: 0 });
    assert.deepEqual(
      g.words.map((w) => [w.text, w.start, w.end, w.first, w.last]),
      [
        ['[CLS]', -1, -1, 0, 0],
        ['Hello', 0, 5, 1, 1],
        [',', 5, 6, 2, 2],
        ['unbelievable', 7, 19, 3, 6],
        ['world_x', 20, 27, 7, 9],
        ['42', 28, 30, 10, 10],
        ['!', 30, 31, 11, 11],
        ['[SEP]', -1, -1, 12, 12],
      ],
    );
    assert.deepEqual([...g.tokenToWord], [0, 1, 2, 3, 3, 3, 3, 4, 4, 4, 5, 6, 7]);
  });

  test('absolute offsets, BPE tokens that include their leading space, CRLF', () => {
    // The analysed text starts at document offset 100.
    const text = 'the cat\r\nsat';
    const tokens = [tok('the', 100, 103), tok('Ġc', 103, 105), tok('at', 105, 107), tok('Ċ', 107, 109), tok('sat', 109, 112)];
    const g = groupWords(tokens, { text, offset: 100 });
    assert.deepEqual(
      g.words.map((w) => [w.text, w.start, w.end]),
      [
        ['the', 100, 103],
        ['cat', 104, 107], // leading space trimmed, start moved past it
        ['\r\n', 107, 109], // whitespace-only word keeps its text
        ['sat', 109, 112],
      ],
    );
  });

  test('byte-fallback pieces of one emoji share its range and join; combining marks join', () => {
    const text = 'a 😀b e\u0301t';
    const tokens = [
      tok('▁a', 0, 1),
      tok('<0xF0>', 2, 4),
      tok('<0x9F>', 2, 4),
      tok('<0x98>', 2, 4),
      tok('<0x80>', 2, 4),
      tok('b', 4, 5),
      tok('▁e', 6, 7),
      tok('\u0301', 7, 8),
      tok('t', 8, 9),
    ];
    const g = groupWords(tokens, { text, offset: 0 });
    assert.deepEqual(
      g.words.map((w) => [w.text, w.first, w.last]),
      [
        ['a', 0, 0],
        ['😀', 1, 4],
        ['b', 5, 5], // emoji is not a word character: boundary
        ['e\u0301t', 6, 8],
      ],
    );
  });

  test('tabs and non-Latin letters', () => {
    const text = 'x\tДобро';
    const g = groupWords([tok('x', 0, 1), tok('\t', 1, 2), tok('Доб', 2, 5), tok('ро', 5, 7)], { text, offset: 0 });
    assert.deepEqual(g.words.map((w) => w.text), ['x', '\t', 'Добро']);
  });

  test('without the source text the vocabulary markers decide', () => {
    const tokens = [
      tok('[CLS]', -1, -1, true),
      tok('un', 0, 2),
      tok('##able', 2, 6),
      tok('Ġto', 6, 9),
      tok('Ġgo', 10, 13),
      tok('ing', 13, 16),
      tok('!', 16, 17),
    ];
    const g = groupWords(tokens);
    assert.deepEqual(g.words.map((w) => w.text), ['[CLS]', 'unable', 'to', 'going', '!']);
    assert.equal(cleanTokenText('▁Once'), 'Once');
  });

  test('word weights are sums over tokens; topAttended picks the heaviest words', () => {
    const text = 'Hello, unbelievable world';
    const tokens = [
      tok('[CLS]', -1, -1, true),
      tok('hello', 0, 5),
      tok(',', 5, 6),
      tok('un', 7, 9),
      tok('##believ', 9, 15),
      tok('##able', 15, 19),
      tok('world', 20, 25),
    ];
    const g = groupWords(tokens, { text, offset: 0 });
    // Dyadic weights so that the sums tie exactly.
    const row = new Float32Array([0.25, 0.125, 0, 0.125, 0.0625, 0.0625, 0.25]);
    assertClose(wordWeights(row, g), [0.25, 0.125, 0, 0.25, 0.25], 0);
    const top = topAttended(row, tokens, g, 3);
    // Ties keep source order: [CLS], unbelievable, world (0.25 each).
    assert.deepEqual(
      top.map((t) => t.text),
      ['[CLS]', 'unbelievable', 'world'],
    );
    assert.equal(top[1].weight, 0.25);
    assert.deepEqual([top[1].start, top[1].end], [7, 19]);
    // Zero-weight words never appear, and k larger than the words is fine.
    const all = topAttended(row, tokens, g, 50);
    assert.deepEqual(all.map((t) => t.text), ['[CLS]', 'unbelievable', 'world', 'Hello']);
    assert.deepEqual(topAttended(row, tokens, g, 0), []);
  });

  test('top-k agrees with a full sort on random weights', () => {
    const T = 200;
    const r = rng(11);
    const tokens: TokenLike[] = [];
    let pos = 0;
    let text = '';
    for (let i = 0; i < T; i++) {
      const piece = 'ab'.repeat(1 + Math.floor(r() * 2));
      const space = r() < 0.5 ? ' ' : '';
      text += space;
      pos += space.length;
      tokens.push(tok(piece, pos, pos + piece.length));
      text += piece;
      pos += piece.length;
    }
    const g = groupWords(tokens, { text, offset: 0 });
    const row = new Float32Array(T).map(() => r());
    const w = wordWeights(row, g);
    const expected = [...w].map((v, i) => ({ v, i })).sort((a, b) => b.v - a.v || a.i - b.i).slice(0, 7);
    const top = topAttended(row, tokens, g, 7);
    assert.deepEqual(top.map((t) => t.weight), expected.map((e) => e.v));
    const total = [...w].reduce((a, b) => a + b, 0);
    const rowTotal = [...row].reduce((a, b) => a + b, 0);
    assert.ok(Math.abs(total - rowTotal) < 1e-6, 'word weights conserve the row mass');
  });
});

// ------------------------------------------------------------------ rollout

describe('attention rollout', () => {
  test('hand case: 2 tokens, 2 identical layers', () => {
    const mean = new Float32Array([1, 0, 0.5, 0.5]);
    // A' = 0.5 * mean + 0.5 * I = [[1, 0], [0.25, 0.75]]
    assertClose(residualAttention(mean, 2), [1, 0, 0.25, 0.75]);
    // A' . A' = [[1, 0], [0.25 + 0.75 * 0.25, 0.75 * 0.75]]
    assertClose(rollout([mean, mean], 2), [1, 0, 0.4375, 0.5625]);
  });
  test('identity attention rolls out to the identity; no layers is the identity', () => {
    const T = 6;
    const id = new Float32Array(T * T);
    for (let i = 0; i < T; i++) id[i * T + i] = 1;
    assertClose(rollout([id, id, id], T), id, 1e-7);
    assertClose(rollout([], T), id, 0);
  });
  test('uniform attention: closed form', () => {
    // Every layer mean = U (all 1/T). A' = 0.5 U + 0.5 I; U^2 = U, so
    // A'^L = 0.5^L I + (1 - 0.5^L) U.
    const T = 5;
    const u = new Float32Array(T * T).fill(1 / T);
    const L = 4;
    const r = rollout(Array(L).fill(u), T);
    for (let i = 0; i < T; i++) for (let j = 0; j < T; j++) {
      const want = (i === j ? 0.5 ** L : 0) + (1 - 0.5 ** L) / T;
      assert.ok(Math.abs(r[i * T + j] - want) < 1e-6);
    }
  });
  test('matmul matches a naive product (dense and causal)', () => {
    for (const causal of [false, true]) {
      const T = 23;
      const a = randomAttention(T, 1, causal);
      const b = randomAttention(T, 2, causal);
      assertClose(matmul(a, b, T), naiveMatmul(a, b, T), 1e-5, `causal=${causal}`);
    }
  });
  test('rows sum to 1, causal stays causal, rolloutRow equals the full rollout', () => {
    for (const causal of [false, true]) {
      const T = 31;
      const means = [0, 1, 2, 3, 4].map((s) => randomAttention(T, 100 + s, causal));
      const inc = new Rollout(T);
      for (let l = 0; l < means.length; l++) {
        const r = inc.push(means[l]);
        const sums = rowSums(r, T);
        for (let i = 0; i < T; i++) assert.ok(Math.abs(sums[i] - 1) < 1e-5, `layer ${l} row ${i} sums to ${sums[i]}`);
        if (causal) for (let i = 0; i < T; i++) for (let j = i + 1; j < T; j++) assert.equal(r[i * T + j], 0);
        for (const q of [0, 7, T - 1]) {
          assertClose(rolloutRow(means, T, q, l), r.subarray(q * T, (q + 1) * T), 1e-5, `row ${q} layer ${l}`);
        }
      }
      assertClose(inc.get(4)!, rollout(means, T), 1e-7);
    }
  });
  test('T = 512, 12 causal layers completes (timing logged)', () => {
    const T = 512;
    const mean = randomAttention(T, 9, true);
    const t0 = performance.now();
    const r = new Rollout(T);
    for (let l = 0; l < 12; l++) r.push(mean);
    const ms = performance.now() - t0;
    const sums = rowSums(r.get(11)!, T);
    assert.ok(Math.abs(sums[T - 1] - 1) < 1e-3);
    console.log(`rollout T=512 x 12 causal layers: ${ms.toFixed(0)} ms`);
    const t1 = performance.now();
    rolloutRow(Array(12).fill(mean), T, T - 1);
    console.log(`rolloutRow T=512 x 12 layers: ${(performance.now() - t1).toFixed(1)} ms`);
  });
});

// ------------------------------------------------------------------ attended words (editor hover + panel)

describe('attendedWords and tokenAt', () => {
  const text = 'Hello unbelievable';
  const tokens = [tok('[CLS]', -1, -1, true), tok('hello', 0, 5), tok('un', 6, 8), tok('##believable', 8, 18)];
  const g = groupWords(tokens, { text, offset: 0 });
  // 2 heads, T = 4; only query row 3 matters here.
  const T = 4;
  const f = new Float32Array(2 * T * T);
  f.set([0.5, 0.25, 0.125, 0.125], 0 * T * T + 3 * T); // head 0, row 3
  f.set([0.25, 0.25, 0.25, 0.25], 1 * T * T + 3 * T); // head 1, row 3
  const layer = layerTensor(f.buffer, 'f32', 2, T);

  test('one head, the mean of heads, and hidden specials', () => {
    const pick = (ws: { text: string; weight: number }[]): [string, number][] => ws.map((w) => [w.text, w.weight]);
    assert.deepEqual(pick(attendedWords(layer, 0, 3, tokens, g, 5, false)), [['[CLS]', 0.5], ['Hello', 0.25], ['unbelievable', 0.25]]);
    // mean row = [0.375, 0.25, 0.1875, 0.1875]
    // (ties keep source order)
    assert.deepEqual(pick(attendedWords(layer, 'mean', 3, tokens, g, 2, false)), [['[CLS]', 0.375], ['unbelievable', 0.375]]);
    // hiding [CLS] renormalises head 0's row over the rest: [0, 0.5, 0.25, 0.25]
    assert.deepEqual(pick(attendedWords(layer, 0, 3, tokens, g, 5, true)), [['Hello', 0.5], ['unbelievable', 0.5]]);
  });

  test('tokenAt finds the token holding an offset, skipping specials', () => {
    assert.equal(tokenAt(tokens, 0), 1);
    assert.equal(tokenAt(tokens, 4), 1);
    assert.equal(tokenAt(tokens, 5), -1); // the space
    assert.equal(tokenAt(tokens, 7), 2);
    assert.equal(tokenAt(tokens, 8), 3);
    assert.equal(tokenAt(tokens, 18), -1);
  });
});
