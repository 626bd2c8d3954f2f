// Models whose weights sit in an external data file, under both names in use: transformers.js'
// `model.onnx_data` and onnxruntime-genai's `model.onnx.data`. ONNX Runtime reads whichever name the
// model records; local folders just work, hub downloads fetch the file the model names, and a missing
// file fails with an error that says which file (and the other name, when that is what the folder has).
import { test, describe, after } from 'node:test';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import type { AddressInfo } from 'node:net';
import assert from 'node:assert/strict';
import { AttentionEngine } from '../../src/engine/engine';
import { EngineError, type DtypeChoice } from '../../src/engine/types';
import { toExternalData, toQ4 } from './helpers/convertModel';
import { STORIES, STORIES_GQA, tempDirs } from './helpers/shared';

const newDir = tempDirs('attention-lens-external-');
const NAMES = ['model.onnx_data', 'model.onnx.data'] as const;
const source = fs.readFileSync(path.join(STORIES, 'onnx/model.onnx'));

/** The unfused stories260K's attention for its first reference text, [layers, heads, q, k]. */
const reference = (() => {
  const c = (JSON.parse(fs.readFileSync(path.join(STORIES_GQA, 'reference/cases.json'), 'utf8')) as Array<{ input_ids: number[][]; file: string }>)[0];
  const bytes = fs.readFileSync(path.join(STORIES_GQA, 'reference', c.file));
  return { input_ids: c.input_ids, attention: new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)) };
})();

/** A stories260K folder with the given files (paths relative to it). */
function folderWith(files: Record<string, Uint8Array>): string {
  const folder = newDir();
  for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json']) fs.copyFileSync(path.join(STORIES, f), path.join(folder, f));
  for (const [name, bytes] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(folder, name)), { recursive: true });
    fs.writeFileSync(path.join(folder, name), bytes);
  }
  return folder;
}

async function maxDiffToReference(engine: AttentionEngine): Promise<number> {
  const [layers] = await engine.forward({ input_ids: reference.input_ids });
  const per = layers[0].length;
  let worst = 0;
  layers.forEach((a, l) => {
    for (let i = 0; i < per; i++) worst = Math.max(worst, Math.abs(a[i] - reference.attention[l * per + i]));
  });
  return worst;
}

describe('external data in a local folder', () => {
  for (const name of NAMES) {
    test(`${name}: the model loads and gives the reference attention`, async () => {
      const { model, data } = toExternalData(source, name);
      assert.ok(model.length < source.length / 10, 'the weights moved out of the model file');
      const folder = folderWith({ 'onnx/model.onnx': model, [`onnx/${name}`]: data });
      const engine = new AttentionEngine({ cacheDir: newDir(), runtime: 'cpu', offline: true });
      try {
        await engine.load(folder);
        assert.ok((await maxDiffToReference(engine)) <= 1e-4);
      } finally {
        await engine.dispose();
      }
    });
  }

  test('the data file under the other name: the error says to rename it', async () => {
    const { model, data } = toExternalData(source, 'model.onnx_data');
    const folder = folderWith({ 'onnx/model.onnx': model, 'onnx/model.onnx.data': data });
    const engine = new AttentionEngine({ cacheDir: newDir(), runtime: 'cpu', offline: true });
    await assert.rejects(engine.load(folder), (e: unknown) => {
      assert.ok(e instanceof EngineError && e.code === 'MODEL_NOT_FOUND', String(e));
      assert.match(e.message, /model\.onnx keeps its weights in model\.onnx_data, which is not in .*onnx\b/);
      assert.match(e.message, /rename model\.onnx\.data to model\.onnx_data/);
      return true;
    });
  });

  test('no data file at all: the error names the file the model needs', async () => {
    const { model } = toExternalData(source, 'model.onnx.data');
    const folder = folderWith({ 'onnx/model.onnx': model });
    const engine = new AttentionEngine({ cacheDir: newDir(), runtime: 'cpu', offline: true });
    await assert.rejects(engine.load(folder), (e: unknown) => {
      assert.ok(e instanceof EngineError && e.code === 'MODEL_NOT_FOUND', String(e));
      assert.match(e.message, /keeps its weights in model\.onnx\.data, which is not in .*Copy it next to model\.onnx\./);
      return true;
    });
  });
});

/** Serves /{owner}/{name}/resolve/main/{file} from `repos` ({ "owner/name": { file: bytes } }), recording requests. */
async function startHub(repos: Record<string, Record<string, Uint8Array>>) {
  const requests: string[] = [];
  const server = http.createServer((req, res) => {
    requests.push(req.url ?? '');
    const m = /^\/([^/]+\/[^/]+)\/resolve\/main\/(.+)$/.exec(req.url ?? '');
    const body = m ? repos[m[1]]?.[m[2]] : undefined;
    if (!body) {
      res.writeHead(404).end('Entry not found');
      return;
    }
    res.writeHead(200, { 'content-length': body.length, 'content-type': 'application/octet-stream' }).end(body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`,
    requests,
    stop: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
}

const jsonFiles = () => Object.fromEntries(['config.json', 'tokenizer.json', 'tokenizer_config.json'].map((f) => [f, fs.readFileSync(path.join(STORIES, f))]));

describe('external data from the hub', () => {
  const stops: Array<() => Promise<void>> = [];
  after(async () => { for (const s of stops) await s(); });

  // A q4 export with its data beside it, under each name: the data file is the one the model records.
  for (const [repo, name] of [['test/q4-transformersjs', 'model_q4.onnx_data'], ['test/q4-genai', 'model_q4.onnx.data']] as const) {
    test(`${repo}: onnx/model_q4.onnx and its ${name} are downloaded, then load offline`, async () => {
      const { model, data } = toExternalData(toQ4(source, { blockSize: 32 }), name, 256);
      const hub = await startHub({ [repo]: { ...jsonFiles(), 'onnx/model_q4.onnx': model, [`onnx/${name}`]: data } });
      stops.push(hub.stop);
      const cacheDir = newDir();
      const dtype: DtypeChoice = 'q4';
      const online = new AttentionEngine({ cacheDir, remoteHost: hub.url, runtime: 'cpu', dtype });
      const info = await online.load(repo);
      assert.equal(info.file, 'onnx/model_q4.onnx');
      assert.ok(hub.requests.some((u) => u.endsWith(`/onnx/${name}`)), `the data file was requested: ${hub.requests.join(' ')}`);
      const expected = await online.forward({ input_ids: reference.input_ids });
      await online.dispose();

      const offline = new AttentionEngine({ cacheDir, runtime: 'cpu', dtype, offline: true });
      try {
        await offline.load(repo);
        assert.deepEqual(await offline.forward({ input_ids: reference.input_ids }), expected);
      } finally {
        await offline.dispose();
      }
      const otherDtype = new AttentionEngine({ cacheDir, runtime: 'cpu', dtype: 'fp16', offline: true });
      await assert.rejects(otherDtype.load(repo), (e: unknown) => e instanceof EngineError && e.code === 'OFFLINE_NOT_CACHED' && /The cache has it as q4\./.test(e.message));
    });
  }

  test('a data file the hub lacks: a clear error, and no model file cached without its data', async () => {
    const { model, data } = toExternalData(source, 'model.onnx_data');
    const repo = 'test/no-data';
    const broken = await startHub({ [repo]: { ...jsonFiles(), 'onnx/model.onnx': model } });
    stops.push(broken.stop);
    const cacheDir = newDir();
    const engine = new AttentionEngine({ cacheDir, remoteHost: broken.url, runtime: 'cpu' });
    await assert.rejects(engine.load(repo), (e: unknown) => {
      assert.ok(e instanceof EngineError && e.code === 'MODEL_NOT_FOUND', String(e));
      assert.match(e.message, /test\/no-data\/onnx\/model\.onnx keeps its weights in model\.onnx_data, but the hub has no onnx\/model\.onnx_data/);
      return true;
    });
    assert.deepEqual(fs.readdirSync(path.join(cacheDir, 'models', repo, 'onnx')), [], 'nothing half-downloaded stays in the cache');

    const fixed = await startHub({ [repo]: { ...jsonFiles(), 'onnx/model.onnx': model, 'onnx/model.onnx_data': data } });
    stops.push(fixed.stop);
    const retry = new AttentionEngine({ cacheDir, remoteHost: fixed.url, runtime: 'cpu' });
    try {
      await retry.load(repo);
      assert.ok((await maxDiffToReference(retry)) <= 1e-4);
    } finally {
      await retry.dispose();
    }
  });
});
