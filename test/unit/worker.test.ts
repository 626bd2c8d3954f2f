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

describe('a request stuck in the worker', () => {
  // Work that never looks at the abort signal (a native call that spins, a synchronous loop): a
  // cancel must still stop it. The test hook makes the worker spin, synchronously (its event loop
  // blocked) or asynchronously (its event loop free, the request never finishing).
  const GRACE = 2000;
  let client: EngineClient;
  before(() => {
    assert.ok(fs.existsSync(WORKER), 'run `npm run build` first');
    client = new EngineClient(WORKER, { cacheDir: tempDir(), runtime: 'cpu', offline: true }, { testHooks: true });
  });
  after(() => client.dispose());

  /** CPU time the whole process (every thread) spends per wall-clock second, over `ms`. */
  async function cpuLoad(ms: number): Promise<number> {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    await new Promise((r) => setTimeout(r, ms));
    const c = process.cpuUsage(c0);
    return (c.user + c.system) / 1000 / (performance.now() - t0);
  }

  /** Starts a spinning request and resolves once the worker has begun to spin. */
  async function spin(mode: 'sync' | 'async') {
    let began: () => void = () => undefined;
    const spinning = new Promise<void>((r) => (began = r));
    const run = client.analyze({ model: `test-hook:spin-${mode}`, text }, { onProgress: () => began() });
    await spinning;
    return run;
  }

  for (const mode of ['sync', 'async'] as const) {
    test(`${mode}: cancel terminates the worker within the grace period, and the next request works`, { timeout: 30_000 }, async () => {
      // A warm worker first, so the spin happens in a worker that has a model loaded.
      await client.analyze({ model: STORIES, text }).done;
      const before = client.workerThreadId;
      assert.ok(before !== null && before !== undefined);
      const run = await spin(mode);
      // CPU shares vary with the machine's load: compare with the load while spinning.
      const spinning = await cpuLoad(500);
      assert.ok(spinning > 0.2, `the worker is spinning (load ${spinning.toFixed(2)})`);
      const t0 = performance.now();
      run.cancel();
      await assert.rejects(run.done, isCode('CANCELLED'));
      assert.ok(performance.now() - t0 < 100, 'the cancel is answered at once');
      await new Promise((r) => setTimeout(r, GRACE + 300));
      const load = await cpuLoad(700);
      assert.ok(load < spinning / 3, `CPU no longer busy after the grace period (load ${load.toFixed(2)}, ${spinning.toFixed(2)} while spinning)`);
      assert.equal(client.workerThreadId, null, 'the stuck worker was terminated');
      const next = client.analyze({ model: STORIES, text: 'Lily smiled.' });
      assert.equal((await next.done).start.shape[0], 5);
      assert.notEqual(client.workerThreadId, before, 'a fresh worker');
    });
  }

  test('a request made during the grace period goes to a fresh worker when the stuck one is terminated', { timeout: 30_000 }, async () => {
    const run = await spin('sync');
    run.cancel();
    await assert.rejects(run.done, isCode('CANCELLED'));
    const t0 = performance.now();
    const next = client.analyze({ model: STORIES, text: 'The cat sat on the mat.' });
    const { start } = await next.done;
    assert.equal(start.tokens.at(-1)!.end, 'The cat sat on the mat.'.length);
    assert.ok(performance.now() - t0 < GRACE + 5000, `answered after ${performance.now() - t0} ms`);
  });

  test('a cancel the worker honours promptly keeps the worker (and its warm model)', { timeout: 30_000 }, async () => {
    await client.analyze({ model: STORIES, text }).done;
    const id = client.workerThreadId;
    const run = client.analyze({ model: STORIES, text });
    run.cancel();
    await assert.rejects(run.done, isCode('CANCELLED'));
    await new Promise((r) => setTimeout(r, GRACE + 300));
    assert.equal(client.workerThreadId, id, 'the same worker');
    await client.analyze({ model: STORIES, text: 'Lily smiled.' }).done;
    assert.equal(client.workerThreadId, id);
  });
});
