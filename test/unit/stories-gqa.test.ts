// stories260K-gqa: the real stories260K weights in onnxruntime-genai's builder layout (packed QKV,
// GroupQueryAttention with rotary inside the op, no position_ids). Its attention comes out of the
// fused op and must equal the unfused model's Softmax outputs (the folder's reference).
import { test, describe, before, after } from 'node:test';
import * as fs from 'node:fs';
import * as path from 'node:path';
import assert from 'node:assert/strict';
import { onnx } from 'onnx-proto';
import { AttentionEngine } from '../../src/engine/engine';
import { STORIES, STORIES_GQA, tempDir } from './helpers/shared';

interface GqaCase {
  name: string;
  text: string;
  input_ids: number[][];
  file: string;
  /** [layers, heads, query, key] */
  shape: [number, number, number, number];
}

const cases = (JSON.parse(fs.readFileSync(path.join(STORIES_GQA, 'reference/cases.json'), 'utf8')) as GqaCase[]).map((c) => {
  const bytes = fs.readFileSync(path.join(STORIES_GQA, 'reference', c.file));
  return { ...c, reference: new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)) };
});

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return worst;
}

describe('stories260K-gqa: attention out of GroupQueryAttention (do_rotary=1, interleaved, 8 query heads on 4 KV heads)', () => {
  const engine = new AttentionEngine({ cacheDir: tempDir(), runtime: 'cpu' });
  before(() => engine.load(STORIES_GQA));
  after(() => engine.dispose());

  test('loads in the builder layout (no position_ids input) and reports 5 layers x 8 heads on 4 KV heads', async () => {
    const info = await engine.load(STORIES_GQA);
    assert.equal(info.layers, 5);
    assert.equal(info.heads, 8);
    assert.equal(info.kvHeads, 4);
    assert.equal(info.kind, 'decoder');
  });

  for (const c of cases) {
    test(`${c.name}: T=${c.shape[2]}, equals the unfused model's Softmax outputs to 1e-4`, async () => {
      const r = await engine.analyze(STORIES_GQA, c.text);
      assert.deepEqual(r.tokens.map((t) => t.id), c.input_ids[0], 'the tokenizer gives the reference ids');
      assert.deepEqual(r.shape, c.shape);
      const diff = maxDiff(r.attention as Float32Array, c.reference);
      assert.ok(diff <= 1e-4, `max abs diff ${diff}`);
    });
  }

  test('the same attention as the unfused stories260K folder, token for token, with float16 on the wire', async () => {
    const unfused = new AttentionEngine({ cacheDir: tempDir(), runtime: 'cpu' });
    try {
      const text = cases[0].text;
      const fused = await engine.analyze(STORIES_GQA, text, { encoding: 'f16' });
      const plain = await unfused.analyze(STORIES, text, { encoding: 'f16' });
      assert.deepEqual(fused.tokens, plain.tokens);
      let differing = 0;
      const a = fused.attention as Uint16Array, b = plain.attention as Uint16Array;
      for (let i = 0; i < a.length; i++) if (Math.abs(a[i] - b[i]) > 2) differing++;
      assert.equal(differing, 0, 'float16 bit patterns differ by more than 2 ulps');
    } finally {
      await unfused.dispose();
    }
  });
});

describe('builder exports since mid-2026: the KV cache\'s last dimension is a symbol (kv_cache_dim)', () => {
  test('the engine takes the head size from the config, not from the declared shape, and the attention is unchanged', async () => {
    const folder = tempDir();
    for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json']) fs.copyFileSync(path.join(STORIES_GQA, f), path.join(folder, f));
    const model = onnx.ModelProto.decode(fs.readFileSync(path.join(STORIES_GQA, 'onnx/model.onnx')));
    let renamed = 0;
    for (const input of model.graph!.input!) {
      if (!input.name!.startsWith('past_key_values')) continue;
      const dims = input.type!.tensorType!.shape!.dim!;
      dims[3] = { dimParam: 'kv_cache_dim' };
      renamed++;
    }
    assert.equal(renamed, 10);
    fs.mkdirSync(path.join(folder, 'onnx'));
    fs.writeFileSync(path.join(folder, 'onnx/model.onnx'), onnx.ModelProto.encode(model).finish());

    const engine = new AttentionEngine({ cacheDir: tempDir(), runtime: 'cpu' });
    try {
      const c = cases[0];
      const r = await engine.analyze(folder, c.text);
      const diff = maxDiff(r.attention as Float32Array, c.reference);
      assert.ok(diff <= 1e-4, `max abs diff ${diff}`);
    } finally {
      await engine.dispose();
    }
  });
});
