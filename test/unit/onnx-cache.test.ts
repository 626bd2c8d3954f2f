// loadExposedGraph: first call rewrites and writes, later calls hit; damaged entries are rebuilt;
// bad sources leave nothing behind; models with external data keep working from the cache.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { onnx } from 'onnx-proto';
import { loadExposedGraph, sha256Hex } from '../../src/engine/onnx/exposedCache';
import { EngineError } from '../../src/engine/types';
import { readCases, tempDirs, TINY_BERT } from './helpers/shared';
import { T, attrInt, decodedGraph, encodeModel, int64, maxAbsDiff, node, valueInfo } from './helpers/onnx-build';

const SOURCE = path.join(TINY_BERT, 'onnx/model.onnx');
const fresh = tempDirs('attention-lens-onnx-cache-');

/** All files under `dir`, relative, sorted. */
function listing(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return (fs.readdirSync(dir, { recursive: true }) as string[]).map((p) => p.split(path.sep).join('/')).sort();
}

async function checkAgainstReference(modelPath: string, outputs: string[]) {
  const session = await ort.InferenceSession.create(modelPath);
  const c = readCases(TINY_BERT)[1];
  const r = await session.run({ input_ids: int64(c.input_ids), attention_mask: int64(c.attention_mask), token_type_ids: int64(c.token_type_ids!) });
  const diff = maxAbsDiff(c.reference, outputs.map((n) => r[n].data as Float32Array));
  assert.ok(diff <= 1e-4, `max abs diff ${diff}`);
  await session.release();
}

function assertEngineError(err: unknown, code: string, ...fragments: string[]) {
  assert.ok(err instanceof EngineError, `expected EngineError, got ${err}`);
  assert.equal(err.code, code, err.message);
  for (const f of fragments) assert.ok(err.message.includes(f), `"${err.message}" should mention ${f}`);
  return true;
}

describe('loadExposedGraph', () => {
  test('first call writes the entry, second call is a hit with the same result', async () => {
    const cache = fresh();
    const sha = sha256Hex(fs.readFileSync(SOURCE));
    const first = await loadExposedGraph(SOURCE, cache, 'tiny-bert');
    assert.equal(first.cached, false);
    assert.equal(first.path, path.join(cache, 'exposed', `${sha}.onnx`));
    assert.deepEqual(first.attentionOutputs, ['/encoder/layer.0/attention/self/Softmax_output_0', '/encoder/layer.1/attention/self/Softmax_output_0']);
    assert.ok(first.rewriteMs >= 0);
    const manifest = JSON.parse(fs.readFileSync(path.join(cache, 'exposed', `${sha}.json`), 'utf8'));
    assert.equal(manifest.version, 1);
    assert.deepEqual(manifest.attentionOutputs, first.attentionOutputs);
    await checkAgainstReference(first.path, first.attentionOutputs);
    const mtime = fs.statSync(first.path).mtimeMs;

    const second = await loadExposedGraph(SOURCE, cache, 'tiny-bert');
    assert.deepEqual(second, { ...first, cached: true, rewriteMs: second.rewriteMs });
    assert.equal(fs.statSync(first.path).mtimeMs, mtime, 'a hit must not rewrite the file');
    assert.deepEqual(listing(path.join(cache, 'exposed')).filter((f) => !f.startsWith('by-path')), [`${sha}.json`, `${sha}.onnx`]);

    // Without the path pre-key it is still a hit (by content hash), and so is a copy elsewhere.
    fs.rmSync(path.join(cache, 'exposed', 'by-path'), { recursive: true });
    assert.equal((await loadExposedGraph(SOURCE, cache, 'tiny-bert')).cached, true);
    const copy = path.join(fresh(), 'model.onnx');
    fs.copyFileSync(SOURCE, copy);
    const fromCopy = await loadExposedGraph(copy, cache, 'tiny-bert copy');
    assert.equal(fromCopy.cached, true);
    assert.equal(fromCopy.path, first.path);
  });

  test('a changed source file gets a new entry', async () => {
    const cache = fresh();
    const file = path.join(fresh(), 'model.onnx');
    fs.copyFileSync(SOURCE, file);
    const a = await loadExposedGraph(file, cache, 'm');
    // Different content, still a valid model: an unknown top-level field (field 1000 = 1) appended.
    fs.appendFileSync(file, Uint8Array.from([0xc0, 0x3e, 1]));
    const b = await loadExposedGraph(file, cache, 'm');
    assert.equal(b.cached, false);
    assert.notEqual(b.path, a.path);
    await checkAgainstReference(b.path, b.attentionOutputs);
  });

  test('a damaged entry (truncated model or garbage manifest) is rebuilt', async () => {
    const cache = fresh();
    const first = await loadExposedGraph(SOURCE, cache, 'tiny-bert');
    fs.truncateSync(first.path, 100);
    const rebuilt = await loadExposedGraph(SOURCE, cache, 'tiny-bert');
    assert.equal(rebuilt.cached, false);
    await checkAgainstReference(rebuilt.path, rebuilt.attentionOutputs);
    fs.writeFileSync(first.path.replace(/\.onnx$/, '.json'), '{ not json');
    assert.equal((await loadExposedGraph(SOURCE, cache, 'tiny-bert')).cached, false);
    assert.equal((await loadExposedGraph(SOURCE, cache, 'tiny-bert')).cached, true);
  });

  for (const [what, make] of [
    ['truncated', (b: Buffer) => b.subarray(0, Math.floor(b.length * 0.6))],
    ['garbage', () => Buffer.from('garbage '.repeat(100))],
    ['empty', () => Buffer.alloc(0)],
  ] as const) {
    test(`a ${what} source gives MODEL_CORRUPT naming the file and leaves no cache entry`, async () => {
      const cache = fresh();
      const file = path.join(fresh(), `${what}.onnx`);
      fs.writeFileSync(file, make(fs.readFileSync(SOURCE)));
      await assert.rejects(loadExposedGraph(file, cache, 'broken'), (err) => assertEngineError(err, 'MODEL_CORRUPT', file));
      assert.deepEqual(listing(path.join(cache, 'exposed')).filter((f) => !f.startsWith('by-path')), []);
    });
  }

  test('a model without exposable attention leaves no cache entry', async () => {
    const cache = fresh();
    const file = path.join(fresh(), 'fused.onnx');
    fs.writeFileSync(file, encodeModel({
      opsets: [{ domain: '', version: 17 }, { domain: 'com.microsoft', version: 1 }],
      inputs: [valueInfo('x', T.FLOAT, [1, 3, 8])], outputs: [valueInfo('y', T.FLOAT)],
      nodes: [node({ op: 'QAttention', domain: 'com.microsoft', inputs: ['x', 'w', 'b'], outputs: ['y'], attrs: [attrInt('num_heads', 2)] })],
    }));
    await assert.rejects(loadExposedGraph(file, cache, 'fused-model'), (err) => assertEngineError(err, 'ATTENTION_UNSUPPORTED', 'QAttention', 'fused-model'));
    assert.deepEqual(listing(path.join(cache, 'exposed')).filter((f) => !f.startsWith('by-path')), []);
  });

  test('a missing source gives MODEL_NOT_FOUND', async () => {
    const missing = path.join(fresh(), 'nope.onnx');
    await assert.rejects(loadExposedGraph(missing, fresh(), 'nope'), (err) => assertEngineError(err, 'MODEL_NOT_FOUND', missing));
  });

  test('a model with external data is cached in its own folder, linked to the data, and runs', async () => {
    // tiny-bert re-saved with every initializer in model.onnx_data, as big exports are.
    const folder = fresh();
    const model = onnx.ModelProto.decode(fs.readFileSync(SOURCE));
    const data: Buffer[] = [];
    let offset = 0;
    for (const t of decodedGraph(model.graph).initializer) {
      const raw = Buffer.from(t.rawData!);
      t.rawData = new Uint8Array(0);
      t.dataLocation = onnx.TensorProto.DataLocation.EXTERNAL;
      t.externalData = [
        { key: 'location', value: 'model.onnx_data' },
        { key: 'offset', value: String(offset) },
        { key: 'length', value: String(raw.length) },
      ];
      data.push(raw);
      offset += raw.length;
    }
    fs.writeFileSync(path.join(folder, 'model.onnx'), onnx.ModelProto.encode(model).finish());
    fs.writeFileSync(path.join(folder, 'model.onnx_data'), Buffer.concat(data));

    const cache = fresh();
    const first = await loadExposedGraph(path.join(folder, 'model.onnx'), cache, 'tiny-bert external');
    assert.equal(first.cached, false);
    assert.match(first.path, /[0-9a-f]{64}\.d[\\/]model\.onnx$/);
    assert.ok(fs.existsSync(path.join(path.dirname(first.path), 'model.onnx_data')));
    await checkAgainstReference(first.path, first.attentionOutputs);
    const second = await loadExposedGraph(path.join(folder, 'model.onnx'), cache, 'tiny-bert external');
    assert.equal(second.cached, true);
    assert.equal(second.path, first.path);
  });

  test('no temporary files are left behind', async () => {
    const cache = fresh();
    await loadExposedGraph(SOURCE, cache, 'tiny-bert');
    await loadExposedGraph(SOURCE, cache, 'tiny-bert');
    assert.ok(listing(cache).every((f) => !f.includes('.tmp-')), listing(cache).join(', '));
  });
});
