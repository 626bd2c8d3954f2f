// The cache folder is checked before use: a folder that cannot hold files (procfs, sysfs, a file
// in the way, read-only) fails fast with CACHE_UNUSABLE instead of hanging the load.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { checkCacheDir } from '../../src/engine/cacheDir';
import { EngineClient } from '../../src/engine/client';
import { AttentionEngine } from '../../src/engine/engine';
import { EngineError } from '../../src/engine/types';
import { STORIES, tempDirs } from './helpers/shared';

const linux = process.platform === 'linux';
const fresh = tempDirs('attention-lens-cache-dir-');

function unusable(folder: string, ...fragments: Array<string | RegExp>) {
  return (e: unknown) => {
    assert.ok(e instanceof EngineError, `expected EngineError, got ${e}`);
    assert.equal(e.code, 'CACHE_UNUSABLE', e.message);
    assert.ok(e.message.includes(folder), `"${e.message}" should name ${folder}`);
    assert.ok(e.message.includes('attentionLens.cacheDirectory'), `"${e.message}" should name the setting`);
    for (const f of fragments) assert.ok(typeof f === 'string' ? e.message.includes(f) : f.test(e.message), `"${e.message}" should mention ${f}`);
    return true;
  };
}

describe('the engine with an unusable cache folder', () => {
  test('a cache folder under /proc fails fast instead of hanging in "Exposing attention"', { skip: !linux, timeout: 15_000 }, async () => {
    const folder = `/proc/attention-cache-${process.pid}`;
    const engine = new AttentionEngine({ cacheDir: folder, runtime: 'cpu', offline: true });
    const t0 = performance.now();
    await assert.rejects(engine.analyze(STORIES, 'Once upon a time'), unusable(folder));
    assert.ok(performance.now() - t0 < 3000, `took ${performance.now() - t0} ms`);
  });

  test('a hub model with a cache folder under /proc fails before any download', { skip: !linux, timeout: 15_000 }, async () => {
    const folder = `/proc/attention-cache-${process.pid}/nested`;
    const engine = new AttentionEngine({ cacheDir: folder, remoteHost: 'http://127.0.0.1:9/' });
    await assert.rejects(engine.load('test/some-model'), unusable(folder));
  });

  test('a file where the cache folder should be', { timeout: 15_000 }, async () => {
    const file = path.join(fresh(), 'a-file');
    fs.writeFileSync(file, 'x');
    const engine = new AttentionEngine({ cacheDir: file, runtime: 'cpu', offline: true });
    await assert.rejects(engine.analyze(STORIES, 'Once upon a time'), unusable(file, 'not a folder'));
  });
});

describe('checkCacheDir', () => {
  const root = process.getuid?.() === 0;

  test('creates a missing nested folder and leaves no probe behind', async () => {
    const dir = path.join(fresh(), 'a', 'b', 'cache');
    await checkCacheDir(dir);
    assert.ok(fs.statSync(dir).isDirectory());
    assert.deepEqual(fs.readdirSync(dir), []);
    await checkCacheDir(dir); // an existing folder is fine too
    assert.deepEqual(fs.readdirSync(dir), []);
  });

  test('refuses procfs and sysfs, existing or not, at once', { skip: !linux, timeout: 15_000 }, async () => {
    for (const [dir, fsName] of [['/proc', 'procfs'], [`/proc/attention-cache-${process.pid}`, 'procfs'], ['/proc/self/x/y', 'procfs'], ['/sys/attention-cache', 'sysfs']]) {
      const t0 = performance.now();
      await assert.rejects(checkCacheDir(dir), unusable(dir, fsName));
      assert.ok(performance.now() - t0 < 1000, `${dir}: ${performance.now() - t0} ms`);
      assert.ok(!fs.existsSync(path.join(dir, '.attention-lens-probe')));
    }
  });

  test('refuses a file in the way', async () => {
    const file = path.join(fresh(), 'a-file');
    fs.writeFileSync(file, 'x');
    await assert.rejects(checkCacheDir(file), unusable(file, 'not a folder'));
    await assert.rejects(checkCacheDir(path.join(file, 'sub')), unusable(path.join(file, 'sub'), 'not a folder'));
  });

  test('refuses a folder it cannot write to', { skip: root || process.platform === 'win32' ? 'root writes anywhere' : false }, async () => {
    const dir = fresh();
    fs.chmodSync(dir, 0o500);
    try {
      await assert.rejects(checkCacheDir(dir), unusable(dir, 'cannot be written', 'EACCES'));
      await assert.rejects(checkCacheDir(path.join(dir, 'sub')), unusable(path.join(dir, 'sub'), 'cannot be created'));
    } finally {
      fs.chmodSync(dir, 0o700);
    }
  });

  test('a file system that never answers fails after the time bound', async () => {
    // A cache folder on a hung mount: stat never answers. Stand-in: a stat that never settles.
    const stat = fs.promises.stat;
    fs.promises.stat = (() => new Promise(() => undefined)) as typeof fs.promises.stat;
    try {
      const dir = path.join(fresh(), 'hung');
      const t0 = performance.now();
      await assert.rejects(checkCacheDir(dir, 300), unusable(dir, 'did not answer within 0.3 s'));
      assert.ok(performance.now() - t0 < 1000);
    } finally {
      fs.promises.stat = stat;
    }
  });
});

describe('the engine worker with a cache folder under /proc', () => {
  test('fails with CACHE_UNUSABLE, and the worker serves the next request', { skip: !linux, timeout: 60_000 }, async () => {
    const worker = path.resolve(__dirname, '../../out/worker.js');
    assert.ok(fs.existsSync(worker), 'run `npm run build` first');
    const folder = '/proc/attention-cache';
    const client = new EngineClient(worker, { cacheDir: folder, runtime: 'cpu', offline: true });
    try {
      await assert.rejects(client.analyze({ model: STORIES, text: 'Once upon a time' }).done, unusable(folder));
      client.setOptions({ cacheDir: fresh(), runtime: 'cpu', offline: true });
      assert.equal((await client.analyze({ model: STORIES, text: 'Once upon a time' }).done).start.shape[0], 5);
    } finally {
      await client.dispose();
    }
  });
});
