// "Why this weight?" through the real worker (the built out/worker.js, as the extension ships it):
// an explained cell rebuilds, in float64, the attention row it shows and the head's output; the
// row is the run's; a second click on the same run answers from the last capture; a run streaming
// meanwhile is not disturbed; grouped-query attention (stories260K-gqa) works; a model the capture
// refuses answers with the engine's error.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { onnx } from 'onnx-proto';
import { EngineClient, type ExplainRequest } from '../../src/engine/client';
import { EngineError, type EngineOptions, type LoadProgress } from '../../src/engine/types';
import { decodeRow, layerTensor } from '../../src/analysis';
import type { AttentionPayload, Explanation } from '../../src/protocol/attention';
import { parseHostMessage, parseWebviewMessage } from '../../src/protocol/validate';
import { STORIES, STORIES_GQA, TINY_BERT, tempDirs } from './helpers/shared';
import { floatTensor, node } from './helpers/onnx-build';

const WORKER = path.resolve(__dirname, '../../out/worker.js');
const tempDir = tempDirs('attention-lens-explain-');
const TEXT = 'Once upon a time, there was a little girl named Lily. She liked to play.';

/** Largest |shown − softmax(scale · q·k over the visible keys)| and |out − Σ α v|, in float64. */
function rebuild(e: Explanation): { softmax: number; out: number; masked: number } {
  const T = e.shown.length, d = e.dim;
  const scores = new Float64Array(T);
  let max = -Infinity;
  for (let j = 0; j < T; j++) {
    if (!e.visible[j]) continue;
    let s = 0;
    for (let a = 0; a < d; a++) s += e.q[a] * e.k[j * d + a];
    scores[j] = s * e.scale;
    max = Math.max(max, scores[j]);
  }
  let sum = 0;
  for (let j = 0; j < T; j++) if (e.visible[j]) sum += Math.exp(scores[j] - max);
  let softmax = 0, masked = 0;
  for (let j = 0; j < T; j++) {
    if (e.visible[j]) softmax = Math.max(softmax, Math.abs(Math.exp(scores[j] - max) / sum - e.shown[j]));
    else masked = Math.max(masked, Math.abs(e.shown[j]));
  }
  let out = 0;
  for (let a = 0; a < d; a++) {
    let o = 0;
    for (let j = 0; j < T; j++) o += e.shown[j] * e.v[j * d + a];
    out = Math.max(out, Math.abs(o - e.out[a]));
  }
  return { softmax, out, masked };
}

/** Runs `text` to the end, keeping its layers (as the host gets them). */
async function run(client: EngineClient, model: string, text: string) {
  const layers = new Map<number, AttentionPayload>();
  const { start } = await client.analyze({ model, text }, { onPayload: (p) => p.kind === 'layer' && layers.set(p.layer, p) }).done;
  return { start, layers };
}

function checkShape(e: Explanation, T: number, d: number): void {
  assert.equal(e.dim, d);
  assert.equal(e.q.length, d);
  assert.equal(e.out.length, d);
  assert.equal(e.k.length, T * d);
  assert.equal(e.v.length, T * d);
  for (const a of [e.shown, e.valueNorm, e.visible]) assert.equal(a.length, T);
  for (const a of [e.q, e.k, e.v, e.shown, e.out, e.valueNorm]) assert.equal(a.byteLength, a.buffer.byteLength, 'each array owns its buffer');
}

describe('explain (Why this weight?) through the engine worker', () => {
  const clients: EngineClient[] = [];
  const client = (options: Partial<EngineOptions> = {}) => {
    const c = new EngineClient(WORKER, { cacheDir: tempDir(), runtime: 'cpu', offline: true, ...options });
    clients.push(c);
    return c;
  };
  before(() => assert.ok(fs.existsSync(WORKER), 'run `npm run build` first'));
  after(() => Promise.all(clients.map((c) => c.dispose())));

  test('rebuilds its row and the head output (float32 attention), the run\'s row; the same run again answers from its capture', async () => {
    const c = client({ attentionPrecision: 'float32' });
    const { start, layers } = await run(c, STORIES, TEXT);
    const [, H, T] = start.shape;
    const captures: LoadProgress[] = [];
    const ask = (cell: ExplainRequest['cell']) => c.explain({ model: STORIES, text: TEXT, cell }, (p) => p.phase === 'capture' && captures.push(p));

    const cell = { layer: 3, head: 5, query: T - 2, key: 4 };
    const e = await ask(cell);
    assert.deepEqual(e.cell, cell);
    checkShape(e, T, 8);
    assert.equal(e.kvHead, 2, '8 query heads on 4 KV heads');
    assert.equal(e.mask, 'causal');
    assert.deepEqual([...e.visible], Array.from({ length: T }, (_, j) => (j <= cell.query ? 1 : 0)));
    assert.ok(Math.abs(e.scale - 1 / Math.sqrt(8)) < 1e-7);
    const err = rebuild(e);
    assert.ok(err.softmax < 1e-5, `softmax(scale · q·k) vs shown: ${err.softmax}`);
    assert.ok(err.out < 1e-5, `Σ α v vs out: ${err.out}`);
    assert.equal(err.masked, 0);
    // The row the panel shows: the run's own (float16 on the wire).
    const p = layers.get(cell.layer)!;
    const row = decodeRow(layerTensor(p.data, start.encoding, H, T, p.packed), cell.head, cell.query);
    for (let j = 0; j < T; j++) assert.ok(Math.abs(row[j] - e.shown[j]) < 1e-3, `key ${j}: run ${row[j]}, explained ${e.shown[j]}`);
    assert.equal(e.valueNormKind, 'output-projected', 'stories260K has its output projection in the graph');
    for (let j = 0; j < T; j++) assert.equal(e.valueNorm[j] === 0, e.shown[j] === 0, `value norm ${j} is 0 exactly where the weight is`);
    assert.equal(captures.length, 1, 'the first explain captured');

    // Another cell of the same run: no second capture.
    const again = await ask({ layer: 0, head: 0, query: 1, key: 0 });
    assert.equal(captures.length, 1, 'answered from the last capture');
    assert.ok(rebuild(again).softmax < 1e-5);
    // A cell outside the run is refused, and the client keeps serving.
    await assert.rejects(ask({ layer: 0, head: 8, query: 0, key: 0 }), (x: EngineError) => x instanceof EngineError && /outside this run \(5 layers, 8 heads/.test(x.message));
    await ask({ layer: 1, head: 1, query: 2, key: 2 });
    // Another text is another capture.
    await c.explain({ model: STORIES, text: 'Lily smiled.', cell: { layer: 0, head: 0, query: 1, key: 0 } }, (x) => x.phase === 'capture' && captures.push(x));
    assert.equal(captures.length, 2);
  });

  test('as the extension runs it (float16 attention): the capture stays float32, so the check holds to 1e-5; the run\'s row is its float16 rounding', async () => {
    const c = client({ attentionPrecision: 'float16' });
    const { start, layers } = await run(c, STORIES, TEXT);
    const [, H, T] = start.shape;
    const cell = { layer: 2, head: 1, query: T - 1, key: 0 };
    const e = await c.explain({ model: STORIES, text: TEXT, cell });
    const err = rebuild(e);
    assert.ok(err.softmax < 1e-5, `softmax(scale · q·k) vs shown: ${err.softmax}`);
    const p = layers.get(cell.layer)!;
    const row = decodeRow(layerTensor(p.data, start.encoding, H, T, p.packed), cell.head, cell.query);
    for (let j = 0; j < T; j++) assert.ok(Math.abs(row[j] - e.shown[j]) <= Math.max(1e-7, e.shown[j] * 2 ** -10), `key ${j}: run ${row[j]}, explained ${e.shown[j]}`);
  });

  test('value norms (value-weighted attention) come from the same capture: one forward pass for explains and norms of a run', async () => {
    const c = client();
    const { start } = await run(c, STORIES, TEXT);
    const [L, H, T] = start.shape;
    const captures: LoadProgress[] = [];
    const data = await c.values({ model: STORIES, text: TEXT }, (p) => p.phase === 'capture' && captures.push(p));
    assert.equal(data.kind, 'output-projected');
    assert.equal(data.norms.byteLength, L * H * T * 4);
    assert.equal(data.gram.byteLength, L * T * H * H * 4);
    const e = await c.explain({ model: STORIES, text: TEXT, cell: { layer: 2, head: 3, query: T - 1, key: 1 } });
    assert.equal(captures.filter((p) => /Capturing/.test(p.message)).length, 1, 'the explain reused the capture the norms made');
    // The explanation's ‖α_ij v_j W_O^h‖ is α_ij times the norm sent for key j of that head.
    const norms = new Float32Array(data.norms);
    for (let j = 0; j < T; j++) {
      const expected = e.shown[j] * norms[(2 * H + 3) * T + j];
      assert.ok(Math.abs(e.valueNorm[j] - expected) <= 1e-5 * Math.max(1, expected), `key ${j}: ${e.valueNorm[j]} vs ${expected}`);
    }
  });

  test('an explain while a run streams: the run delivers every layer and finishes, then the explain answers', async () => {
    const c = client();
    await run(c, STORIES, TEXT);
    // The capture's graph loaded beforehand: only waiting keeps a capture from landing mid-stream.
    await c.explain({ model: STORIES, text: 'Lily smiled.', cell: { layer: 0, head: 0, query: 0, key: 0 } });
    const long = Array.from({ length: 12 }, () => TEXT).join(' ');
    const order: string[] = [];
    const streaming = c.analyze({ model: STORIES, text: long }, { onPayload: (p) => order.push(`${p.kind}${p.layer}`) });
    const explained = c.explain({ model: STORIES, text: TEXT, cell: { layer: 4, head: 7, query: 5, key: 5 } }).then((e) => (order.push('explained'), e));
    const { start } = await streaming.done;
    const e = await explained;
    const [L, , T] = start.shape;
    assert.ok(T > 128, 'long enough to stream thumbnails first');
    const layersSeen = order.filter((x) => x.startsWith('layer'));
    assert.equal(layersSeen.length, L, 'every layer arrived');
    assert.equal(order.at(-1), 'explained', 'the explain waited for the run in flight');
    assert.ok(rebuild(e).softmax < 1e-3);
  });

  test('stories260K-gqa (fused GroupQueryAttention, heads zero-padded to 16 dims)', async () => {
    const c = client({ attentionPrecision: 'float32' });
    const { start } = await run(c, STORIES_GQA, TEXT);
    const T = start.shape[2];
    const e = await c.explain({ model: STORIES_GQA, text: TEXT, cell: { layer: 1, head: 3, query: T - 1, key: 2 } });
    checkShape(e, T, 16);
    assert.equal(e.kvHead, 1);
    assert.equal(e.mask, 'causal');
    assert.ok(Math.abs(e.scale - 1 / Math.sqrt(8)) < 1e-7, 'the scale of the 8 real dims');
    const err = rebuild(e);
    assert.ok(err.softmax < 1e-5, `softmax: ${err.softmax}`);
    assert.ok(err.out < 1e-5, `Σ α v: ${err.out}`);
  });

  test('a model whose capture is refused (a per-head score bias, as ALiBi adds) answers with the engine\'s error; runs go on', async () => {
    // tiny-bert with a per-head constant added to layer 0's mask operand (as qkv.test.ts builds it).
    const folder = tempDir();
    for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json']) fs.copyFileSync(path.join(TINY_BERT, f), path.join(folder, f));
    const model = onnx.ModelProto.decode(fs.readFileSync(path.join(TINY_BERT, 'onnx/model.onnx')));
    const g = model.graph!;
    const add = g.node!.find((n) => n.name === '/encoder/layer.0/attention/self/Add')!;
    g.initializer!.push(floatTensor('head_bias', [1, 4, 1, 1], [0, -0.5, -1, -1.5]));
    g.node!.splice(g.node!.indexOf(add), 0, node({ op: 'Add', inputs: [add.input![1], 'head_bias'], outputs: ['biased_mask'], name: 'bias' }));
    add.input![1] = 'biased_mask';
    fs.mkdirSync(path.join(folder, 'onnx'));
    fs.writeFileSync(path.join(folder, 'onnx/model.onnx'), onnx.ModelProto.encode(model).finish());

    const c = client();
    const text = 'the cat sat on the mat';
    assert.equal((await run(c, folder, text)).start.shape[0], 2);
    const refused = (x: unknown) => x instanceof EngineError && x.code === 'ATTENTION_UNSUPPORTED' && /position bias such as ALiBi/.test(x.message);
    await assert.rejects(c.explain({ model: folder, text, cell: { layer: 0, head: 0, query: 1, key: 1 } }), refused);
    await assert.rejects(c.explain({ model: folder, text, cell: { layer: 0, head: 0, query: 1, key: 1 } }), refused, 'a refusal is not kept as a capture');
    assert.equal((await run(c, folder, text)).start.shape[0], 2);
  });
});

describe('explain messages are validated', () => {
  const cell = { layer: 1, head: 2, query: 3, key: 0 };
  test('explain/request (webview -> host): a run id and a cell of whole numbers within the limits', () => {
    assert.deepEqual(parseWebviewMessage({ type: 'explain/request', runId: 4, cell, extra: 1 }), { type: 'explain/request', runId: 4, cell });
    for (const bad of [{ ...cell, key: -1 }, { ...cell, query: 1.5 }, { ...cell, layer: 512 }, { ...cell, head: '2' }, null]) {
      assert.equal(parseWebviewMessage({ type: 'explain/request', runId: 4, cell: bad }), null, JSON.stringify(bad));
    }
    assert.equal(parseWebviewMessage({ type: 'explain/request', cell }), null);
  });
  test('explain/open (host -> webview)', () => {
    assert.deepEqual(parseHostMessage({ type: 'explain/open', runId: 4, cell }), { type: 'explain/open', runId: 4, cell });
    assert.equal(parseHostMessage({ type: 'explain/open', runId: 4, cell: { ...cell, query: -2 } }), null);
  });
});
