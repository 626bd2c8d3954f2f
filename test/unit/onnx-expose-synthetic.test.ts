// exposeAttention on hand-built graphs: refused fused kernels, graphs without attention, corrupt bytes, layer
// ordering, pass-through ops, output typing, subgraphs, and preservation of fields it does not know.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import * as ort from 'onnxruntime-node';
import { onnx } from 'onnx-proto';
import { exposeAttention, layerIndexOf } from '../../src/engine/onnx/exposeAttention';
import { encodeF16 } from '../../src/analysis/f16';
import { EngineError } from '../../src/engine/types';
import * as path from 'node:path';
import { T, attrGraph, attrInt, encodeModel, floatTensor, graphOf, node, readBytes, valueInfo } from './helpers/onnx-build';
import { TINY_BERT } from './helpers/shared';

const B = 1, H = 2, Q = 3, D = 4;

/** scores = q @ kT; probs = Softmax(scores) [-> extra ops]; out = probs @ v, names prefixed by `scope`. */
function attentionBlock(scope: string, opts: { between?: 'Dropout' | 'Cast' | 'Where' | 'Identity'; elem?: number } = {}) {
  const s = (n: string) => `${scope}/${n}`;
  const nodes = [
    node({ op: 'MatMul', name: s('MatMul'), inputs: ['q', 'kT'], outputs: [s('MatMul_output_0')] }),
    node({ op: 'Softmax', name: s('Softmax'), inputs: [s('MatMul_output_0')], outputs: [s('Softmax_output_0')], attrs: [attrInt('axis', -1)] }),
  ];
  let probs = s('Softmax_output_0');
  if (opts.between === 'Dropout') nodes.push(node({ op: 'Dropout', name: s('Dropout'), inputs: [probs], outputs: [(probs = s('Dropout_output_0'))] }));
  if (opts.between === 'Identity') nodes.push(node({ op: 'Identity', name: s('Identity'), inputs: [probs], outputs: [(probs = s('Identity_output_0'))] }));
  if (opts.between === 'Cast') nodes.push(node({ op: 'Cast', name: s('Cast'), inputs: [probs], outputs: [(probs = s('Cast_output_0'))], attrs: [attrInt('to', opts.elem ?? T.FLOAT)] }));
  if (opts.between === 'Where') nodes.push(node({ op: 'Where', name: s('Where'), inputs: ['keep', probs, 'zero'], outputs: [(probs = s('Where_output_0'))] }));
  nodes.push(node({ op: 'MatMul', name: s('MatMul_1'), inputs: [probs, 'v'], outputs: [s('out')] }));
  return { nodes, probs: s('Softmax_output_0'), out: s('out') };
}

const qkvInputs = (elem = T.FLOAT) => [valueInfo('q', elem, [B, H, Q, D]), valueInfo('kT', elem, [B, H, D, Q]), valueInfo('v', elem, [B, H, Q, D])];

function qkvFeeds() {
  const n = B * H * Q * D;
  const rand = (seed: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 12.9898 + seed) * 0.5);
  return {
    q: new ort.Tensor('float32', rand(1), [B, H, Q, D]),
    kT: new ort.Tensor('float32', rand(2), [B, H, D, Q]),
    v: new ort.Tensor('float32', rand(3), [B, H, Q, D]),
  };
}

function assertUnsupported(fn: () => unknown, ...fragments: (string | RegExp)[]) {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof EngineError, `expected EngineError, got ${err}`);
    assert.equal(err.code, 'ATTENTION_UNSUPPORTED');
    for (const f of fragments) assert.match(err.message, typeof f === 'string' ? new RegExp(f.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')) : f);
    return true;
  });
}

describe('fused attention kernels without an exact route are refused by name', () => {
  test('com.microsoft:QAttention (no output or input gives its probabilities)', () => {
    const bytes = encodeModel({
      opsets: [{ domain: '', version: 17 }, { domain: 'com.microsoft', version: 1 }],
      inputs: [valueInfo('x', T.UINT8, [1, 3, 8])],
      outputs: [valueInfo('y', T.FLOAT, [1, 3, 8])],
      nodes: [node({ op: 'QAttention', domain: 'com.microsoft', name: 'QAttention_0', inputs: ['x', 'w', 'b'], outputs: ['y'], attrs: [attrInt('num_heads', 2)] })],
    });
    assertUnsupported(() => exposeAttention(bytes, 'my-fused-bert'), 'com.microsoft:QAttention', 'QAttention_0', 'my-fused-bert', 'unfused export');
  });

  test('com.microsoft:Attention with rotary inside the op', () => {
    const bytes = encodeModel({
      opsets: [{ domain: '', version: 17 }, { domain: 'com.microsoft', version: 1 }],
      inputs: [valueInfo('x', T.FLOAT, [1, 3, 8])],
      outputs: [valueInfo('y', T.FLOAT, [1, 3, 8])],
      initializers: [floatTensor('w', [8, 24], new Float32Array(8 * 24)), floatTensor('b', [24], new Float32Array(24))],
      nodes: [node({ op: 'Attention', domain: 'com.microsoft', name: 'Attention_0', inputs: ['x', 'w', 'b'], outputs: ['y'], attrs: [attrInt('num_heads', 2), attrInt('do_rotary', 1)] })],
    });
    assertUnsupported(() => exposeAttention(bytes, 'rotary-bert'), 'com.microsoft:Attention', 'do_rotary', 'rotary-bert');
  });

  test('an ONNX-domain Attention in a model that imports an opset below 23', () => {
    const bytes = encodeModel({
      opsets: [{ domain: '', version: 22 }],
      inputs: qkvInputs(),
      outputs: [valueInfo('y', T.FLOAT)],
      nodes: [node({ op: 'Attention', inputs: ['q', 'kT', 'v'], outputs: ['y'] })],
    });
    assertUnsupported(() => exposeAttention(bytes, 'opset22-model'), 'ai.onnx:Attention', 'opset 22', 'opset22-model');
  });

  test('GroupQueryAttention with sliding-window attention, hidden in an If branch', () => {
    const gqa = (p: string): onnx.IGraphProto => ({
      name: p, input: [], output: [valueInfo(`${p}y`, T.FLOAT)],
      node: [node({ op: 'GroupQueryAttention', domain: 'com.microsoft', name: `${p}/gqa`, inputs: ['q', 'kT', 'v'], outputs: [`${p}y`], attrs: [attrInt('local_window_size', 4)] })],
    });
    const bytes = encodeModel({
      opsets: [{ domain: '', version: 17 }, { domain: 'com.microsoft', version: 1 }],
      inputs: [...qkvInputs(), valueInfo('c', T.BOOL, [1])],
      outputs: [valueInfo('y', T.FLOAT)],
      nodes: [node({ op: 'If', inputs: ['c'], outputs: ['y'], attrs: [attrGraph('then_branch', gqa('t')), attrGraph('else_branch', gqa('e'))] })],
    });
    assertUnsupported(() => exposeAttention(bytes, 'merged-gqa'), 'com.microsoft:GroupQueryAttention', 'local_window_size=4', 'merged-gqa');
  });
});

describe('graphs without a usable attention Softmax are refused', () => {
  test('no Softmax at all', () => {
    const bytes = encodeModel({
      inputs: [valueInfo('x', T.FLOAT, [2])], outputs: [valueInfo('y', T.FLOAT, [2])],
      nodes: [node({ op: 'Add', inputs: ['x', 'x'], outputs: ['y'] })],
    });
    assertUnsupported(() => exposeAttention(bytes, 'adder'), 'adder', 'no attention Softmax');
  });

  test('a classifier Softmax (not followed by probs @ V) is not attention', () => {
    const bytes = encodeModel({
      inputs: [valueInfo('x', T.FLOAT, [1, 5])], outputs: [valueInfo('p', T.FLOAT, [1, 5])],
      nodes: [node({ op: 'Softmax', inputs: ['x'], outputs: ['p'] })],
    });
    assertUnsupported(() => exposeAttention(bytes, 'classifier'), 'no attention Softmax');
  });

  test('dynamically quantized probs @ V (DynamicQuantizeLinear -> MatMulInteger) is found, typed FLOAT', () => {
    const bytes = encodeModel({
      inputs: [valueInfo('scores', T.FLOAT, [1, 2, 3, 3]), valueInfo('v', T.UINT8, [1, 2, 3, 4])],
      outputs: [valueInfo('ctx', T.INT32, [1, 2, 3, 4])],
      nodes: [
        node({ op: 'Softmax', name: '/encoder/layer.0/attention/self/Softmax', inputs: ['scores'], outputs: ['probs'], attrs: [attrInt('axis', -1)] }),
        node({ op: 'DynamicQuantizeLinear', inputs: ['probs'], outputs: ['probs_q', 'probs_scale', 'probs_zp'] }),
        node({ op: 'MatMulInteger', inputs: ['probs_q', 'v', 'probs_zp'], outputs: ['ctx'] }),
      ],
    });
    const exposed = exposeAttention(bytes, 'quantized');
    assert.deepEqual(exposed.attentionOutputs, ['probs']);
    const out = graphOf(exposed.bytes).output.find((o) => o.name === 'probs');
    assert.equal(out?.type?.tensorType?.elemType, T.FLOAT);
  });

  test('attention inside a Loop body cannot be surfaced per layer', () => {
    const block = attentionBlock('/layer.0');
    const body: onnx.IGraphProto = {
      name: 'body',
      input: [valueInfo('i', T.INT64, []), valueInfo('cond_in', T.BOOL, [])],
      output: [valueInfo('cond_out', T.BOOL, []), valueInfo(block.out, T.FLOAT)],
      node: [node({ op: 'Identity', inputs: ['cond_in'], outputs: ['cond_out'] }), ...block.nodes],
    };
    const bytes = encodeModel({
      inputs: [...qkvInputs(), valueInfo('n', T.INT64, []), valueInfo('c', T.BOOL, [])],
      outputs: [valueInfo('y', T.FLOAT)],
      nodes: [node({ op: 'Loop', name: 'the_loop', inputs: ['n', 'c'], outputs: ['y'], attrs: [attrGraph('body', body)] })],
    });
    assertUnsupported(() => exposeAttention(bytes, 'looped'), 'Loop', 'the_loop');
  });

  test('If branches with different attention counts', () => {
    const branch = (p: string, layers: number): onnx.IGraphProto => {
      const blocks = Array.from({ length: layers }, (_, l) => attentionBlock(`${p}/layer.${l}`));
      return { name: p, input: [], output: [valueInfo(blocks[0].out, T.FLOAT)], node: blocks.flatMap((b) => b.nodes) };
    };
    const bytes = encodeModel({
      inputs: [...qkvInputs(), valueInfo('c', T.BOOL, [1])], outputs: [valueInfo('y', T.FLOAT)],
      nodes: [node({ op: 'If', name: 'if0', inputs: ['c'], outputs: ['y'], attrs: [attrGraph('then_branch', branch('t', 2)), attrGraph('else_branch', branch('e', 1))] })],
    });
    assertUnsupported(() => exposeAttention(bytes, 'lopsided'), 'if0', '2 vs 1');
  });
});

describe('nested If', () => {
  test('attention two If levels deep is surfaced through both and runs in ORT', async () => {
    const leaf = (p: string): onnx.IGraphProto => {
      const b = attentionBlock(`${p}/layer.0`);
      return { name: p, input: [], output: [valueInfo(b.out, T.FLOAT)], node: b.nodes };
    };
    const middle = (p: string): onnx.IGraphProto => ({
      name: p, input: [], output: [valueInfo(`${p}/y`, T.FLOAT)],
      node: [node({ op: 'If', name: `${p}/if`, inputs: ['c2'], outputs: [`${p}/y`], attrs: [attrGraph('then_branch', leaf(`${p}/t`)), attrGraph('else_branch', leaf(`${p}/e`))] })],
    });
    const bytes = encodeModel({
      inputs: [...qkvInputs(), valueInfo('c1', T.BOOL, [1]), valueInfo('c2', T.BOOL, [1])],
      outputs: [valueInfo('y', T.FLOAT)],
      nodes: [node({ op: 'If', name: 'outer', inputs: ['c1'], outputs: ['y'], attrs: [attrGraph('then_branch', middle('T')), attrGraph('else_branch', middle('E'))] })],
    });
    const exposed = exposeAttention(bytes, 'nested');
    assert.equal(exposed.attentionOutputs.length, 1);
    const session = await ort.InferenceSession.create(exposed.bytes);
    const feeds = qkvFeeds();
    // Reference: the same block on its own.
    const plainBlock = attentionBlock('/layer.0');
    const plain = exposeAttention(encodeModel({ inputs: qkvInputs(), outputs: [valueInfo(plainBlock.out, T.FLOAT)], nodes: plainBlock.nodes }), 'plain');
    const ref = await ort.InferenceSession.create(plain.bytes);
    const expected = (await ref.run(feeds))[plain.attentionOutputs[0]].data as Float32Array;
    for (const c1 of [true, false]) {
      for (const c2 of [true, false]) {
        const r = await session.run({ ...feeds, c1: new ort.Tensor('bool', [c1], [1]), c2: new ort.Tensor('bool', [c2], [1]) });
        assert.deepEqual(r[exposed.attentionOutputs[0]].data, expected);
      }
    }
    await Promise.all([session.release(), ref.release()]);
  });
});

describe('corrupt input', () => {
  const tinyBert = readBytes(path.join(TINY_BERT, 'onnx/model.onnx'));
  const cases: [string, Uint8Array][] = [
    ['empty', new Uint8Array(0)],
    ['truncated in the middle', tinyBert.subarray(0, Math.floor(tinyBert.length / 2))],
    ['truncated by one byte', tinyBert.subarray(0, tinyBert.length - 1)],
    ['text', new TextEncoder().encode('this is not an onnx model, just some text\n')],
    ['random bytes', Uint8Array.from({ length: 4096 }, (_, i) => (i * 2654435761) >>> 24)],
  ];
  for (const [what, bytes] of cases) {
    test(`${what} -> MODEL_CORRUPT naming the model`, () => {
      assert.throws(() => exposeAttention(bytes, 'broken.onnx'), (err: unknown) => {
        assert.ok(err instanceof EngineError);
        assert.equal(err.code, 'MODEL_CORRUPT');
        assert.match(err.message, /broken\.onnx/);
        return true;
      });
    });
  }
});

describe('ordering, pass-through ops and typing', () => {
  test('layer index in names beats node order; Dropout/Cast/Where/Identity are followed; results run in ORT', async () => {
    // Independent blocks in node order 2, 0, 1, 3 with different ops between Softmax and MatMul.
    const blocks = [
      attentionBlock('/encoder/layer.2/attention/self', { between: 'Where' }),
      attentionBlock('/encoder/layer.0/attention/self', { between: 'Dropout' }),
      attentionBlock('/encoder/layer.1/attention/self', { between: 'Cast' }),
      attentionBlock('/encoder/layer.10/attention/self', { between: 'Identity' }),
    ];
    const bytes = encodeModel({
      inputs: qkvInputs(),
      outputs: blocks.map((b) => valueInfo(b.out, T.FLOAT)),
      initializers: [floatTensor('zero', [], [0])],
      nodes: [node({ op: 'Constant', inputs: [], outputs: ['keep'], attrs: [{ name: 'value', type: onnx.AttributeProto.AttributeType.TENSOR, t: { dataType: T.BOOL, dims: [], int32Data: [1] } }] }), ...blocks.flatMap((b) => b.nodes)],
    });
    const exposed = exposeAttention(bytes, 'shuffled');
    assert.deepEqual(exposed.attentionOutputs, [0, 1, 2, 10].map((l) => `/encoder/layer.${l}/attention/self/Softmax_output_0`));
    const session = await ort.InferenceSession.create(exposed.bytes);
    const r = await session.run(qkvFeeds());
    for (const name of exposed.attentionOutputs) {
      assert.deepEqual([...r[name].dims], [B, H, Q, Q]);
      const p = r[name].data as Float32Array;
      for (let row = 0; row < B * H * Q; row++) {
        const sum = p.subarray(row * Q, row * Q + Q).reduce((a, b) => a + b, 0);
        assert.ok(Math.abs(sum - 1) < 1e-6);
      }
    }
    await session.release();
  });

  test('without layer names, node order is kept', () => {
    const blocks = [attentionBlock('second'), attentionBlock('first')];
    const bytes = encodeModel({ inputs: qkvInputs(), outputs: blocks.map((b) => valueInfo(b.out, T.FLOAT)), nodes: blocks.flatMap((b) => b.nodes) });
    assert.deepEqual(exposeAttention(bytes, 'plain').attentionOutputs, ['second/Softmax_output_0', 'first/Softmax_output_0']);
  });

  test('layerIndexOf understands the usual naming schemes', () => {
    assert.equal(layerIndexOf('/encoder/layer.3/attention/self/Softmax'), 3);
    assert.equal(layerIndexOf('/transformer/h.11/attn/Softmax'), 11);
    assert.equal(layerIndexOf('/model/layers.7/self_attn/Softmax_output_0'), 7);
    assert.equal(layerIndexOf('/encoder/block.2/layer.0/SelfAttention/Softmax'), 2); // T5: the block, not the sub-layer
    assert.equal(layerIndexOf('/blocks_4/attn/Softmax'), 4);
    assert.equal(layerIndexOf('/gpt_neox/layers/5/attention/Softmax'), 5);
    assert.equal(layerIndexOf('n68_Softmax'), null);
    assert.equal(layerIndexOf('/graph/path.3/Softmax'), null);
  });

  test('fp16 model with Softmax run in fp32 between Casts: the output is declared FLOAT and runs', async () => {
    // Most initializers are fp16 (the fallback guess would be FLOAT16), but inference finds the Cast.
    const nodes = [
      node({ op: 'MatMul', name: '/h.0/attn/MatMul', inputs: ['q', 'kT'], outputs: ['s16'] }),
      node({ op: 'Cast', inputs: ['s16'], outputs: ['s32'], attrs: [attrInt('to', T.FLOAT)] }),
      node({ op: 'Softmax', name: '/h.0/attn/Softmax', inputs: ['s32'], outputs: ['p32'], attrs: [attrInt('axis', -1)] }),
      node({ op: 'Cast', inputs: ['p32'], outputs: ['p16'], attrs: [attrInt('to', T.FLOAT16)] }),
      node({ op: 'MatMul', inputs: ['p16', 'v'], outputs: ['o'] }),
      node({ op: 'Add', inputs: ['o', 'bias'], outputs: ['y'] }),
    ];
    const fp16 = (name: string) => ({ name, dims: [1], dataType: T.FLOAT16, rawData: new Uint8Array(2) });
    const bytes = encodeModel({
      inputs: qkvInputs(T.FLOAT16), outputs: [valueInfo('y', T.FLOAT16)], nodes,
      initializers: [fp16('bias'), fp16('unused1'), fp16('unused2')],
    });
    const exposed = exposeAttention(bytes, 'fp16');
    const out = graphOf(exposed.bytes).output.find((o) => o.name === 'p32');
    assert.equal(out?.type?.tensorType?.elemType, T.FLOAT);
    const session = await ort.InferenceSession.create(exposed.bytes, { logSeverityLevel: 3 });
    const zeros = (dims: number[]) => new ort.Tensor('float16', new Uint16Array(dims.reduce((a, b) => a * b)), dims);
    const r = await session.run({ q: zeros([B, H, Q, D]), kT: zeros([B, H, D, Q]), v: zeros([B, H, Q, D]) });
    assert.equal(r.p32.type, 'float32');
    assert.ok((r.p32.data as Float32Array).every((x) => Math.abs(x - 1 / Q) < 1e-6));
    await session.release();
  });

  test('a declared value_info type is used as is; an existing graph output is not added twice', () => {
    const block = attentionBlock('/layer.0');
    const bytes = encodeModel({
      inputs: qkvInputs(), nodes: block.nodes,
      outputs: [valueInfo(block.out, T.FLOAT), valueInfo(block.probs, T.FLOAT)],
      valueInfo: [valueInfo(block.probs, T.FLOAT, [B, H, Q, Q])],
    });
    const exposed = exposeAttention(bytes, 'already');
    assert.deepEqual(exposed.attentionOutputs, [block.probs]);
    assert.deepEqual(graphOf(exposed.bytes).output.map((o) => o.name), [block.out, block.probs]);
  });

  test('fields unknown to onnx-proto (newer ONNX) survive the rewrite byte for byte', () => {
    const block = attentionBlock('/layer.0');
    const plain = encodeModel({ inputs: qkvInputs(), outputs: [valueInfo(block.out, T.FLOAT)], nodes: block.nodes });
    // Field 1000 (varint 42) at the top level: protobufjs would drop it on a decode/encode round trip.
    const unknown = Uint8Array.from([0xc0, 0x3e, 42]);
    const bytes = Buffer.concat([plain, unknown]);
    const exposed = exposeAttention(bytes, 'future');
    assert.ok(Buffer.from(exposed.bytes).includes(Buffer.from(unknown)));
    assert.deepEqual(Buffer.from(exposed.bytes.subarray(exposed.bytes.length - unknown.length)), Buffer.from(unknown));
  });
});

describe('float16 outputs', () => {
  const halves = (t: ort.Tensor) => {
    const d = t.data as ArrayBufferView & { length: number };
    return new Uint16Array(d.buffer, d.byteOffset, d.length);
  };

  test('a Cast right after each Softmax (or the If that surfaces it); same bits as encoding the float32 output', async () => {
    const blocks = [attentionBlock('/h.1/attn', { between: 'Dropout' }), attentionBlock('/h.0/attn')];
    const leaf = (p: string): onnx.IGraphProto => {
      const b = attentionBlock(`${p}/h.2/attn`);
      return { name: p, input: [], output: [valueInfo(b.out, T.FLOAT)], node: b.nodes };
    };
    const bytes = encodeModel({
      inputs: [...qkvInputs(), valueInfo('c', T.BOOL, [1])],
      outputs: [...blocks.map((b) => valueInfo(b.out, T.FLOAT)), valueInfo('y', T.FLOAT)],
      nodes: [
        ...blocks[0].nodes,
        node({ op: 'If', name: 'branch', inputs: ['c'], outputs: ['y'], attrs: [attrGraph('then_branch', leaf('T')), attrGraph('else_branch', leaf('E'))] }),
        ...blocks[1].nodes,
      ],
    });
    const full = exposeAttention(bytes, 'model');
    const half = exposeAttention(bytes, 'model', { float16: true });
    assert.equal(half.attentionOutputs.length, 3);
    assert.deepEqual(half.attentionOutputs.slice(0, 2), ['/h.0/attn/Softmax_output_0.float16', '/h.1/attn/Softmax_output_0.float16']);

    const g = onnx.ModelProto.decode(half.bytes).graph!;
    const nodes = g.node!;
    for (const out of half.attentionOutputs) {
      const at = nodes.findIndex((n) => n.output?.[0] === out);
      assert.equal(nodes[at].opType, 'Cast');
      assert.ok(nodes[at - 1].output?.includes(nodes[at].input![0]), `${out} is cast right after its producer`);
      assert.equal(g.output!.find((o) => o.name === out)?.type?.tensorType?.elemType, T.FLOAT16);
    }
    assert.ok(!g.output!.some((o) => o.name?.endsWith('Softmax_output_0')), 'the float32 probabilities are not outputs');

    const [s32, s16] = await Promise.all([ort.InferenceSession.create(full.bytes), ort.InferenceSession.create(half.bytes)]);
    for (const c of [true, false]) {
      const feeds = { ...qkvFeeds(), c: new ort.Tensor('bool', [c], [1]) };
      const [r32, r16] = [await s32.run(feeds, full.attentionOutputs), await s16.run(feeds, half.attentionOutputs)];
      full.attentionOutputs.forEach((name, i) => {
        assert.equal(r16[half.attentionOutputs[i]].type, 'float16');
        assert.deepEqual(halves(r16[half.attentionOutputs[i]]), encodeF16(r32[name].data as Float32Array), `${name} (c=${c})`);
      });
    }
    await Promise.all([s32.release(), s16.release()]);
  });
});
