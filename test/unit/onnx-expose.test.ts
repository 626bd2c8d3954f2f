// exposeAttention on real exports, run through onnxruntime-node and compared with PyTorch's own
// attention (reference/caseK.f32), plus the real stories260K Llama and a hand-built merged decoder.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { onnx } from 'onnx-proto';
import { exposeAttention } from '../../src/engine/onnx/exposeAttention';
import { readCases, TINY_BERT, TINY_GPT2, STORIES } from './helpers/shared';
import { decodedGraph, decodedNode, decoderFeeds, int64, makeMergedDecoder, maxAbsDiff, readBytes } from './helpers/onnx-build';

const TOLERANCE = 1e-4;

async function runAttention(session: ort.InferenceSession, feeds: Record<string, ort.Tensor>, outputs: string[]) {
  const result = await session.run(feeds);
  return outputs.map((name) => {
    const t = result[name];
    assert.ok(t, `missing output ${name}`);
    assert.equal(t.type, 'float32');
    return { dims: [...t.dims], data: t.data as Float32Array };
  });
}

describe('exposeAttention: tiny-bert (encoder, right padding, length 1)', () => {
  const file = path.join(TINY_BERT, 'onnx/model.onnx');
  const exposed = exposeAttention(readBytes(file), 'tiny-bert');

  test('finds one Softmax per layer, in layer order', () => {
    assert.deepEqual(exposed.attentionOutputs, [
      '/encoder/layer.0/attention/self/Softmax_output_0',
      '/encoder/layer.1/attention/self/Softmax_output_0',
    ]);
  });

  test('every reference case matches PyTorch (all rows and columns, padding included)', async () => {
    const session = await ort.InferenceSession.create(exposed.bytes);
    for (const [k, c] of readCases(TINY_BERT).entries()) {
      const feeds = { input_ids: int64(c.input_ids), attention_mask: int64(c.attention_mask), token_type_ids: int64(c.token_type_ids!) };
      const layers = await runAttention(session, feeds, exposed.attentionOutputs);
      const [, B, H, Q, K] = c.shape;
      for (const l of layers) assert.deepEqual(l.dims, [B, H, Q, K], `case ${k}`);
      const diff = maxAbsDiff(c.reference, layers.map((l) => l.data));
      assert.ok(diff <= TOLERANCE, `case ${k}: max abs diff ${diff}`);
    }
    await session.release();
  });

  test('the rewrite leaves the model computation unchanged', async () => {
    const [plain, rewritten] = await Promise.all([ort.InferenceSession.create(file), ort.InferenceSession.create(exposed.bytes)]);
    const c = readCases(TINY_BERT)[1];
    const feeds = { input_ids: int64(c.input_ids), attention_mask: int64(c.attention_mask), token_type_ids: int64(c.token_type_ids!) };
    const [a, b] = await Promise.all([plain.run(feeds), rewritten.run(feeds)]);
    assert.deepEqual(b.last_hidden_state.data, a.last_hidden_state.data);
    await Promise.all([plain.release(), rewritten.release()]);
  });

  test('initializers and everything untouched stay byte-identical (decoded with onnx-proto)', () => {
    const before = onnx.ModelProto.decode(readBytes(file));
    const after = onnx.ModelProto.decode(exposed.bytes);
    const [g0, g1] = [decodedGraph(before.graph), decodedGraph(after.graph)];
    assert.equal(g1.node.length, g0.node.length);
    assert.equal(g1.initializer.length, g0.initializer.length);
    g1.initializer.forEach((t, i) => assert.deepEqual(Buffer.from(t.rawData!), Buffer.from(g0.initializer[i].rawData!)));
    assert.deepEqual(g1.output.map((o) => o.name), ['last_hidden_state', ...exposed.attentionOutputs]);
    // No value_info in this export: the type comes from inference (Softmax of a float chain).
    assert.equal(g1.output[1].type?.tensorType?.elemType, onnx.TensorProto.DataType.FLOAT);
    assert.deepEqual(after.opsetImport, before.opsetImport);
  });
});

describe('exposeAttention: tiny-gpt2 (decoder with KV-cache inputs, left padding, explicit position_ids)', () => {
  const file = path.join(TINY_GPT2, 'onnx/model.onnx');
  const exposed = exposeAttention(readBytes(file), 'tiny-gpt2');

  test('finds one Softmax per layer, in layer order', () => {
    assert.deepEqual(exposed.attentionOutputs, ['/transformer/h.0/attn/Softmax_output_0', '/transformer/h.1/attn/Softmax_output_0']);
  });

  test('every reference case matches PyTorch (all rows and columns, padding included)', async () => {
    const session = await ort.InferenceSession.create(exposed.bytes);
    for (const [k, c] of readCases(TINY_GPT2).entries()) {
      const layers = await runAttention(session, decoderFeeds(session, c, 4, 8), exposed.attentionOutputs);
      const [, B, H, Q, K] = c.shape;
      for (const l of layers) assert.deepEqual(l.dims, [B, H, Q, K], `case ${k}`);
      const diff = maxAbsDiff(c.reference, layers.map((l) => l.data));
      assert.ok(diff <= TOLERANCE, `case ${k}: max abs diff ${diff}`);
    }
    await session.release();
  });
});

describe('exposeAttention: merged decoder (If node with the decoder in both branches)', () => {
  for (const initializers of ['top', 'branches'] as const) {
    test(`initializers ${initializers === 'top' ? 'at the top level' : 'inside the branches'}: both branches match PyTorch`, async () => {
      const merged = makeMergedDecoder(readBytes(path.join(TINY_GPT2, 'onnx/model.onnx')), initializers);
      const exposed = exposeAttention(merged, 'tiny-gpt2 merged');
      assert.deepEqual(exposed.attentionOutputs, ['attentions.0', 'attentions.1']);

      const ifNode = decodedNode(decodedGraph(onnx.ModelProto.decode(exposed.bytes).graph).node[0]);
      assert.equal(ifNode.output.slice(-2).join(), 'attentions.0,attentions.1');
      const branchOutputs = (attr: string) => decodedGraph(ifNode.attribute.find((a) => a.name === attr)?.g).output.map((o) => o.name);
      assert.deepEqual(branchOutputs('then_branch').slice(-2), ['then/transformer/h.0/attn/Softmax_output_0', 'then/transformer/h.1/attn/Softmax_output_0']);
      assert.deepEqual(branchOutputs('else_branch').slice(-2), ['else/transformer/h.0/attn/Softmax_output_0', 'else/transformer/h.1/attn/Softmax_output_0']);

      const session = await ort.InferenceSession.create(exposed.bytes);
      for (const useCache of [false, true]) {
        for (const [k, c] of readCases(TINY_GPT2).entries()) {
          const feeds = decoderFeeds(session, c, 4, 8);
          feeds.use_cache_branch = new ort.Tensor('bool', [useCache], [1]);
          const layers = await runAttention(session, feeds, exposed.attentionOutputs);
          const diff = maxAbsDiff(c.reference, layers.map((l) => l.data));
          assert.ok(diff <= TOLERANCE, `use_cache_branch=${useCache} case ${k}: max abs diff ${diff}`);
        }
      }
      await session.release();
    });
  }
});

describe('exposeAttention: stories260K (real Llama, grouped-query attention)', () => {
  const file = path.join(STORIES, 'onnx/model.onnx');

  test('5 causal [1, 8, T, T] layers whose rows sum to 1, logits unchanged', async () => {
    const exposed = exposeAttention(readBytes(file), 'stories260K');
    // Node names are generic (n68_Softmax); the layer order comes from the output names.
    assert.deepEqual(exposed.attentionOutputs, [0, 1, 2, 3, 4].map((l) => `/model/layers.${l}/self_attn/Softmax_output_0`));

    // logSeverityLevel 3: the export carries a few unused initializers ORT warns about.
    const quiet = { logSeverityLevel: 3 } as const;
    const [plain, session] = await Promise.all([ort.InferenceSession.create(file, quiet), ort.InferenceSession.create(exposed.bytes, quiet)]);
    // Inputs: input_ids, attention_mask, position_ids, past_key_values.{0..4}.{key,value} [b, 4 kv heads, past, 8].
    assert.deepEqual(session.inputNames.slice(0, 3), ['input_ids', 'attention_mask', 'position_ids']);
    assert.equal(session.inputNames.length, 3 + 2 * 5);
    const ids = [1, 403, 407, 261, 378, 414, 13]; // arbitrary ids < vocab 512
    const T = ids.length;
    const feeds = decoderFeeds(session, { input_ids: [ids], attention_mask: [ids.map(() => 1)] }, 4, 8);
    const [a, b] = await Promise.all([plain.run(feeds), session.run(feeds)]);
    assert.deepEqual(b.logits.data, a.logits.data);
    for (const name of exposed.attentionOutputs) {
      const t = b[name];
      assert.deepEqual([...t.dims], [1, 8, T, T]);
      const p = t.data as Float32Array;
      for (let h = 0; h < 8; h++)
        for (let q = 0; q < T; q++) {
          let sum = 0;
          for (let k = 0; k < T; k++) {
            const v = p[(h * T + q) * T + k];
            sum += v;
            if (k > q) assert.ok(v < 1e-6, `${name} head ${h}: future position ${k} of query ${q} has ${v}`);
          }
          assert.ok(Math.abs(sum - 1) < 1e-5, `${name} head ${h} row ${q} sums to ${sum}`);
        }
    }
    await Promise.all([plain.release(), session.release()]);
  });
});
