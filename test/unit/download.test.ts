// The hub download path, for real: a hub-shaped folder served over HTTP on 127.0.0.1.
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as path from 'node:path';
import type { AddressInfo } from 'node:net';
import { AttentionEngine } from '../../src/engine/engine';
import { EngineError, type LoadProgress } from '../../src/engine/types';
import { tempDir, TINY_BERT } from './helpers/shared';

type Mode = 'ok' | 'truncate' | 'stall';

/** Serves /{owner}/{name}/resolve/main/{file} from the tiny-bert fixture; `modes` misbehave per model. */
async function startHub(modes: Record<string, Mode> = {}) {
  const requests: string[] = [];
  const server = http.createServer((req, res) => {
    requests.push(req.url ?? '');
    const m = /^\/([^/]+\/[^/]+)\/resolve\/main\/(.+)$/.exec(req.url ?? '');
    const file = m && path.join(TINY_BERT, m[2]);
    if (!m || !m[1].startsWith('test/') || !file || !fs.existsSync(file)) {
      res.writeHead(404).end('Entry not found');
      return;
    }
    const body = fs.readFileSync(file);
    const mode = modes[m[1]] ?? 'ok';
    res.writeHead(200, { 'content-length': body.length, 'content-type': 'application/octet-stream' });
    if (mode === 'ok' || !m[2].endsWith('.onnx')) {
      res.end(body);
    } else if (mode === 'truncate') {
      res.write(body.subarray(0, body.length >> 1), () => res.destroy());
    } else {
      res.write(body.subarray(0, 1024)); // then never finish
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/`,
    requests,
    stop: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
}

/** A server that accepts connections and never answers (as a dead proxy or a black-holed CDN does). */
async function startSilent() {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    host,
    url: `http://${host}/`,
    connections: () => sockets.size,
    stop: () => new Promise<void>((r) => { for (const s of sockets) s.destroy(); server.close(() => r()); }),
  };
}

const text = 'the quick brown fox';
const isCode = (code: string) => (e: unknown) => e instanceof EngineError && e.code === code;

describe('hub downloads', () => {
  const cacheDir = tempDir();
  const stops: Array<() => Promise<void>> = [];
  after(async () => { for (const s of stops) await s(); });

  test('downloads with byte progress, then loads from the cache with the server gone', async () => {
    const hub = await startHub();
    const events: LoadProgress[] = [];
    const engine = new AttentionEngine({ cacheDir, remoteHost: hub.url, runtime: 'cpu' });
    const r = await engine.analyze('test/tiny-bert', text, { onProgress: (p) => events.push(p) });
    assert.equal(r.shape[0], 2);
    const onnx = events.filter((e) => e.phase === 'download' && e.file === 'onnx/model.onnx');
    const size = fs.statSync(path.join(TINY_BERT, 'onnx/model.onnx')).size;
    assert.ok(onnx.length >= 2, 'progress events for the model file');
    assert.equal(onnx.at(-1)!.loaded, size);
    assert.equal(onnx.at(-1)!.total, size);
    assert.ok(hub.requests.some((u) => u.endsWith('/onnx/model.onnx')));
    await engine.dispose();
    await hub.stop();

    for (const offline of [false, true]) {
      const again = new AttentionEngine({ cacheDir, remoteHost: hub.url, runtime: 'cpu', offline });
      const r2 = await again.analyze('test/tiny-bert', text);
      assert.deepEqual(Array.from(r2.attention as Float32Array), Array.from(r.attention as Float32Array));
      await again.dispose();
    }
  });

  test('a missing model gives a clear 404 error', async () => {
    const hub = await startHub();
    stops.push(hub.stop);
    const engine = new AttentionEngine({ cacheDir: tempDir(), remoteHost: hub.url });
    await assert.rejects(engine.load('test-missing/nothing-here'), (e: unknown) => isCode('MODEL_NOT_FOUND')(e) && /404/.test((e as Error).message) && /test-missing\/nothing-here/.test((e as Error).message));
  });

  test('a truncated download leaves no corrupt cache behind, and a retry succeeds', async () => {
    const dir = tempDir();
    const bad = await startHub({ 'test/cut': 'truncate' });
    const engine = new AttentionEngine({ cacheDir: dir, remoteHost: bad.url, runtime: 'cpu' });
    await assert.rejects(engine.load('test/cut'), isCode('DOWNLOAD_FAILED'));
    await bad.stop();
    const onnxDir = path.join(dir, 'models/test/cut/onnx');
    const left = fs.existsSync(onnxDir) ? fs.readdirSync(onnxDir) : [];
    assert.deepEqual(left, [], `nothing left in the cache: ${left.join(', ')}`);

    const good = await startHub();
    stops.push(good.stop);
    const retry = new AttentionEngine({ cacheDir: dir, remoteHost: good.url, runtime: 'cpu' });
    assert.equal((await retry.analyze('test/cut', text)).shape[0], 2);
    await retry.dispose();
  });

  test('offline mode makes no request and says the model is not cached', async () => {
    const hub = await startHub();
    stops.push(hub.stop);
    const engine = new AttentionEngine({ cacheDir: tempDir(), remoteHost: hub.url, offline: true });
    await assert.rejects(engine.load('test/never-downloaded'), (e: unknown) => isCode('OFFLINE_NOT_CACHED')(e) && /offline/i.test((e as Error).message));
    assert.deepEqual(hub.requests, []);
  });

  test('a download can be cancelled', async () => {
    const hub = await startHub({ 'test/slow': 'stall' });
    stops.push(hub.stop);
    const controller = new AbortController();
    const engine = new AttentionEngine({ cacheDir: tempDir(), remoteHost: hub.url });
    const loading = engine.load('test/slow', {
      signal: controller.signal,
      onProgress: (p) => { if (p.phase === 'download' && p.file?.endsWith('.onnx') && (p.loaded ?? 0) > 0) controller.abort(); },
    });
    setTimeout(() => controller.abort(), 3000);
    await assert.rejects(loading, isCode('CANCELLED'));
  });

  test('a server that accepts and never answers fails after the connect timeout, naming the host', { timeout: 15_000 }, async () => {
    const silent = await startSilent();
    stops.push(silent.stop);
    const engine = new AttentionEngine({ cacheDir: tempDir(), remoteHost: silent.url, downloadConnectTimeoutMs: 700 });
    const t0 = performance.now();
    await assert.rejects(engine.load('test/silent'), (e: unknown) => {
      assert.ok(isCode('DOWNLOAD_FAILED')(e), String(e));
      const m = (e as Error).message;
      for (const f of [silent.host, '0.7 s', 'attentionLens.download.connectTimeout', 'attentionLens.offline', 'proxy']) assert.ok(m.includes(f), `"${m}" should mention ${f}`);
      return true;
    });
    const ms = performance.now() - t0;
    assert.ok(ms >= 650 && ms < 3000, `failed after ${ms} ms, the timeout is 700 ms`);
  });

  test('a download that stalls mid-body fails after the idle timeout and leaves nothing behind', { timeout: 15_000 }, async () => {
    const hub = await startHub({ 'test/stalls': 'stall' });
    stops.push(hub.stop);
    const dir = tempDir();
    const engine = new AttentionEngine({ cacheDir: dir, remoteHost: hub.url, downloadIdleTimeoutMs: 700 });
    let firstBytes = 0;
    const loading = engine.load('test/stalls', { onProgress: (p) => { if (p.file?.endsWith('.onnx') && (p.loaded ?? 0) > 0 && !firstBytes) firstBytes = performance.now(); } });
    await assert.rejects(loading, (e: unknown) => {
      assert.ok(isCode('DOWNLOAD_FAILED')(e), String(e));
      const m = (e as Error).message;
      for (const f of [new URL(hub.url).host, 'onnx/model.onnx', '0.7 s', 'attentionLens.download.idleTimeout', 'attentionLens.offline']) assert.ok(m.includes(f), `"${m}" should mention ${f}`);
      return true;
    });
    const ms = performance.now() - firstBytes;
    assert.ok(firstBytes > 0 && ms < 3000, `failed ${ms} ms after the first bytes, the idle timeout is 700 ms`);
    const onnxDir = path.join(dir, 'models/test/stalls/onnx');
    assert.deepEqual(fs.existsSync(onnxDir) ? fs.readdirSync(onnxDir) : [], [], 'no partial file left');
  });

  test('a cancel during a stalled download (long timeouts) cancels promptly', { timeout: 15_000 }, async () => {
    for (const server of ['silent', 'stall'] as const) {
      const hub = server === 'silent' ? await startSilent() : await startHub({ 'test/stalled': 'stall' });
      stops.push(hub.stop);
      const controller = new AbortController();
      const engine = new AttentionEngine({ cacheDir: tempDir(), remoteHost: hub.url, downloadConnectTimeoutMs: 60_000, downloadIdleTimeoutMs: 60_000 });
      let abortedAt = 0;
      const abort = () => { if (!abortedAt) { abortedAt = performance.now(); controller.abort(); } };
      const loading = engine.load('test/stalled', {
        signal: controller.signal,
        onProgress: (p) => { if (p.phase === 'download' && p.file?.endsWith('.onnx') && (p.loaded ?? 0) > 0) setTimeout(abort, 200); },
      });
      if (server === 'silent') setTimeout(abort, 500);
      await assert.rejects(loading, isCode('CANCELLED'));
      const ms = performance.now() - abortedAt;
      assert.ok(abortedAt > 0 && ms < 500, `${server}: cancelled ${ms} ms after the abort`);
    }
  });
});
