// The engine in its worker thread (the built out/worker.js, as the extension ships it):
// streaming, cancel, supersede, and recovery after a crash.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { EngineClient } from '../../src/engine/client';
import { AttentionEngine } from '../../src/engine/engine';
import { EngineError } from '../../src/engine/types';
import { f14ByteLength, unpackF14 } from '../../src/analysis/f16';
import { layerTensor, layerThumbs, thumbSize, THUMB_MAX } from '../../src/analysis';
import { tempDir, STORIES } from './helpers/shared';

const WORKER = path.resolve(__dirname, '../../out/worker.js');
const text = 'Once upon a time, there was a little girl named Lily.';
const isCode = (code: string) => (e: unknown) => e instanceof EngineError && e.code === code;

describe('engine worker', () => {
  let client: EngineClient;
  before(() => {
    assert.ok(fs.existsSync(WORKER), 'run `npm run build` first');
    client = new EngineClient(WORKER, { cacheDir: tempDir(), runtime: 'cpu', offline: true }, { testHooks: true });
  });
  after(() => client.dispose());

  test('streams a start message, one transferred buffer per layer (bit-packed f16), then done', async () => {
    const layers: Array<[number, ArrayBuffer, boolean]> = [];
    let starts = 0;
    const run = client.analyze({ model: STORIES, text }, { onStart: () => starts++, onPayload: (p) => p.kind === 'layer' && layers.push([p.layer, p.data, p.packed]) });
    const { start, timings } = await run.done;
    const [L, H, T] = start.shape;
    assert.equal(starts, 1);
    assert.deepEqual(layers.map(([l]) => l), [0, 1, 2, 3, 4]);
    // The same half patterns the engine produces in process, 14 bits each.
    const local = new AttentionEngine({ cacheDir: tempDir(), runtime: 'cpu', offline: true });
    const expected = (await local.analyze(STORIES, text, { encoding: 'f16' })).attention as Uint16Array;
    await local.dispose();
    for (const [l, data, packed] of layers) {
      assert.ok(data instanceof ArrayBuffer);
      assert.equal(packed, true, 'probabilities always pack');
      assert.equal(data.byteLength, f14ByteLength(H * T * T), 'float16 by default, 14 bits per value');
      assert.deepEqual(unpackF14(new Uint32Array(data), H * T * T), expected.subarray(l * H * T * T, (l + 1) * H * T * T));
    }
    assert.equal(L, 5);
    assert.equal(start.tokens.length, T);
    assert.ok(timings.forwardMs > 0);
  });

  test('a long input: every layer\'s thumbnails come first (pooled from the same halves), then the layers', async () => {
    const long = Array.from({ length: 12 }, () => text).join(' ');
    const order: string[] = [];
    const thumbs: Array<[number, number, ArrayBuffer, boolean]> = [];
    const run = client.analyze({ model: STORIES, text: long }, { onPayload: (p) => (p.kind === 'thumbs' ? (order.push(`t${p.layer}`), thumbs.push([p.layer, p.size, p.data, p.packed])) : order.push(`l${p.layer}`)) });
    const { start } = await run.done;
    const [L, H, T] = start.shape;
    assert.ok(T > THUMB_MAX, `T=${T} is above the thumbnail size`);
    assert.deepEqual(order, [...Array.from({ length: L }, (_, l) => `t${l}`), ...Array.from({ length: L }, (_, l) => `l${l}`)]);
    const local = new AttentionEngine({ cacheDir: tempDir(), runtime: 'cpu', offline: true });
    const expected = (await local.analyze(STORIES, long, { encoding: 'f16' })).attention as Uint16Array;
    await local.dispose();
    for (const [l, size, data, packed] of thumbs) {
      assert.equal(size, thumbSize(T));
      const mine = layerThumbs(layerTensor(expected.subarray(l * H * T * T, (l + 1) * H * T * T), 'f16', H, T))!;
      assert.equal(packed, mine.packed);
      assert.deepEqual(new Uint8Array(data), new Uint8Array(mine.data), `layer ${l}`);
    }
  });

  test('cancel rejects with CANCELLED and sends nothing more', async () => {
    let layers = 0;
    const run = client.analyze({ model: STORIES, text }, { onPayload: (p) => p.kind === 'layer' && layers++ });
    run.cancel();
    await assert.rejects(run.done, isCode('CANCELLED'));
    // The worker keeps serving: the next request works.
    const next = client.analyze({ model: STORIES, text: 'Lily smiled.' });
    assert.equal((await next.done).start.shape[0], 5);
    assert.equal(layers, 0);
  });

  test('a new request supersedes a running one', async () => {
    const first = client.analyze({ model: STORIES, text });
    const second = client.analyze({ model: STORIES, text: 'The cat sat on the mat.' });
    await assert.rejects(first.done, isCode('SUPERSEDED'));
    const { start } = await second.done;
    assert.equal(start.tokens.at(-1)!.end, 'The cat sat on the mat.'.length, 'the result is the second text');
  });

  test('an error in the worker is reported, and the next request works', async () => {
    await assert.rejects(client.analyze({ model: '/no/such/model', text }).done, (e: unknown) => isCode('MODEL_NOT_FOUND')(e) && /\/no\/such\/model/.test((e as Error).message));
    // The crash is queued first, so the worker dies with the request in flight.
    client.injectCrash();
    const pending = client.analyze({ model: STORIES, text });
    await assert.rejects(pending.done, isCode('WORKER_CRASHED'));
    const after = client.analyze({ model: STORIES, text });
    assert.equal((await after.done).start.shape[1], 8);
  });
});
