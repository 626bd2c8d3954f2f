// Inside a head (analyze with qkv: true, the CLI's --qkv): the captured queries, keys and values
// rebuild the engine's attention, softmax(scale · q·kᵀ over the visible keys), and the head outputs,
// Σ_j α_ij v_j, in float64; on unfused graphs (tiny-bert, tiny-gpt2, stories260K with rotary and
// grouped KV heads) and on GroupQueryAttention with rotary inside the op (stories260K-gqa).
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { onnx } from 'onnx-proto';
import { AttentionEngine } from '../../src/engine/engine';
import type { AttentionResult, QkvCapture } from '../../src/engine/types';
import { main } from '../../src/cli/main';
import { STORIES, STORIES_GQA, TINY_BERT, TINY_GPT2, tempDirs } from './helpers/shared';
import { floatTensor, node } from './helpers/onnx-build';

const tempDir = tempDirs('attention-lens-qkv-');
const TEXT = 'Once upon a time, there was a little girl who liked to play.';

const cases = [
  { name: 'tiny-bert', folder: TINY_BERT, mask: 'none', kvHeadOf: [0, 1, 2, 3], d: 8, scale: 1 / Math.sqrt(8) },
  { name: 'tiny-gpt2', folder: TINY_GPT2, mask: 'causal', kvHeadOf: [0, 1, 2, 3], d: 8, scale: 1 / Math.sqrt(8) },
  { name: 'stories260K (rotary, 8 query heads on 4 KV heads, unfused)', folder: STORIES, mask: 'causal', kvHeadOf: [0, 0, 1, 1, 2, 2, 3, 3], d: 8, scale: 1 / Math.sqrt(8) },
  // Heads zero-padded to 16 dims, the scale that of the 8 real ones.
  { name: 'stories260K-gqa (fused GroupQueryAttention, interleaved rotary inside the op)', folder: STORIES_GQA, mask: 'causal', kvHeadOf: [0, 0, 1, 1, 2, 2, 3, 3], d: 16, scale: 1 / Math.sqrt(8) },
] as const;

/** Largest |engine attention − softmax(scale · q·k over visible keys)| and |out − Σ α v|, in float64. */
function rebuild(r: AttentionResult, qkv: QkvCapture): { attention: number; out: number } {
  const [L, H, T] = r.shape;
  const d = qkv.headDim;
  const att = r.attention as Float32Array;
  let worstAtt = 0, worstOut = 0;
  const scores = new Float64Array(T);
  for (let l = 0; l < L; l++) {
    const { [l]: q } = qkv.q, { [l]: k } = qkv.k, { [l]: v } = qkv.v, { [l]: out } = qkv.out, { [l]: visible } = qkv.visible;
    for (let h = 0; h < H; h++) {
      for (let i = 0; i < T; i++) {
        let max = -Infinity;
        for (let j = 0; j < T; j++) {
          if (!visible[i * T + j]) continue;
          let s = 0;
          for (let a = 0; a < d; a++) s += q[(h * T + i) * d + a] * k[(h * T + j) * d + a];
          scores[j] = s * qkv.scale[l];
          max = Math.max(max, scores[j]);
        }
        let sum = 0;
        for (let j = 0; j < T; j++) if (visible[i * T + j]) sum += Math.exp(scores[j] - max);
        const row = ((l * H + h) * T + i) * T;
        for (let j = 0; j < T; j++) {
          const p = visible[i * T + j] ? Math.exp(scores[j] - max) / sum : 0;
          worstAtt = Math.max(worstAtt, Math.abs(p - att[row + j]));
        }
        for (let a = 0; a < d; a++) {
          let o = 0;
          for (let j = 0; j < T; j++) o += att[row + j] * v[(h * T + j) * d + a];
          worstOut = Math.max(worstOut, Math.abs(o - out[(h * T + i) * d + a]));
        }
      }
    }
  }
  return { attention: worstAtt, out: worstOut };
}

/** ‖α_ij · v_j W_O^h‖ (or ‖α_ij v_j‖), float64, for one layer. */
function valueNorm64(att: Float32Array, v: Float32Array, wo: Float32Array | null, H: number, T: number, d: number): Float64Array {
  const out = new Float64Array(H * T * T);
  const D = wo ? wo.length / (H * d) : d;
  for (let h = 0; h < H; h++) {
    for (let j = 0; j < T; j++) {
      const vec = new Float64Array(D);
      for (let c = 0; c < D; c++) {
        if (!wo) vec[c] = v[(h * T + j) * d + c];
        else for (let a = 0; a < d; a++) vec[c] += v[(h * T + j) * d + a] * wo[(h * d + a) * D + c];
      }
      const norm = Math.hypot(...vec);
      for (let i = 0; i < T; i++) out[(h * T + i) * T + j] = att[(h * T + i) * T + j] * norm;
    }
  }
  return out;
}

function readNpy(file: string): { shape: number[]; data: Float32Array } {
  const bytes = fs.readFileSync(file);
  assert.equal(bytes.subarray(0, 8).toString('latin1'), '\x93NUMPY\x01\x00');
  const len = bytes.readUInt16LE(8);
  assert.equal((10 + len) % 64, 0, 'data is 64-byte aligned');
  const header = bytes.subarray(10, 10 + len).toString('latin1');
  assert.match(header, /^\{'descr': '<f4', 'fortran_order': False, 'shape': \([\d, ]+\), \} *\n$/);
  const shape = /'shape': \(([^)]*)\)/.exec(header)![1].split(',').filter((x) => x.trim()).map(Number);
  const body = bytes.subarray(10 + len);
  const data = new Float32Array(body.buffer.slice(body.byteOffset, body.byteOffset + body.byteLength));
  assert.equal(data.length, shape.reduce((a, b) => a * b, 1), 'payload matches the shape');
  return { shape, data };
}

describe('qkv capture: softmax(scale · q·kᵀ + mask) and Σ α v rebuilt in float64', () => {
  for (const c of cases) {
    test(c.name, async () => {
      const engine = new AttentionEngine({ cacheDir: tempDir(), runtime: 'cpu', offline: true });
      try {
        const plain = await engine.analyze(c.folder, TEXT);
        const r = await engine.analyze(c.folder, TEXT, { qkv: true });
        assert.equal(plain.qkv, undefined, 'a normal analyze captures nothing');
        const qkv = r.qkv!;
        const [L, H, T] = r.shape;
        assert.equal(qkv.headDim, c.d);
        assert.deepEqual(qkv.kvHeadOf, c.kvHeadOf);
        for (let l = 0; l < L; l++) {
          for (const x of [qkv.q[l], qkv.k[l], qkv.v[l], qkv.out[l]]) assert.equal(x.length, H * T * c.d);
          assert.equal(qkv.mask[l], c.mask);
          assert.ok(Math.abs(qkv.scale[l] - c.scale) < 1e-7, `scale ${qkv.scale[l]}`);
          assert.equal(qkv.outputProjection[l]?.length, H * c.d * (r.model.id === TINY_BERT || r.model.id === TINY_GPT2 ? 32 : 64), 'W_O found');
        }
        // Heads of one group read the same keys and values.
        for (let h = 1; h < H; h++) {
          if (c.kvHeadOf[h] !== c.kvHeadOf[h - 1]) continue;
          const size = T * c.d;
          assert.deepEqual(qkv.k[0].subarray(h * size, (h + 1) * size), qkv.k[0].subarray((h - 1) * size, h * size));
          assert.deepEqual(qkv.v[0].subarray(h * size, (h + 1) * size), qkv.v[0].subarray((h - 1) * size, h * size));
        }
        const worst = rebuild(r, qkv);
        assert.ok(worst.attention <= 1e-5, `attention max abs diff ${worst.attention}`);
        assert.ok(worst.out <= 1e-5, `head output max abs diff ${worst.out}`);
        // The capture's graph computes the same attention as the plain one.
        const a = r.attention as Float32Array, b = plain.attention as Float32Array;
        let same = 0;
        for (let i = 0; i < a.length; i++) same = Math.max(same, Math.abs(a[i] - b[i]));
        assert.ok(same <= 1e-6, `qkv vs plain attention ${same}`);
      } finally {
        await engine.dispose();
      }
    });
  }

  test('a normal analyze runs the plain rewrite: no extra outputs, and the qkv rewrite is cached separately', async () => {
    const cacheDir = tempDir();
    const engine = new AttentionEngine({ cacheDir, runtime: 'cpu', offline: true });
    const session = () => (engine as unknown as { model: { session: { outputNames: string[] }; attentionOutputs: string[] } }).model;
    try {
      await engine.analyze(STORIES, TEXT);
      const manifests = () => fs.readdirSync(path.join(cacheDir, 'exposed')).filter((f) => f.endsWith('.json')).sort();
      assert.equal(manifests().length, 1);
      assert.ok(!manifests()[0].includes('.qkv'));
      const plainOutputs = session().session.outputNames;
      const manifest = JSON.parse(fs.readFileSync(path.join(cacheDir, 'exposed', manifests()[0]), 'utf8'));
      assert.equal(manifest.qkv, undefined);
      await engine.analyze(STORIES, TEXT, { qkv: true });
      assert.equal(manifests().length, 2);
      const qkvManifest = JSON.parse(fs.readFileSync(path.join(cacheDir, 'exposed', manifests().find((f) => f.endsWith('.qkv.json'))!), 'utf8'));
      assert.equal(qkvManifest.qkv.length, 5);
      // The next normal run is on the same plain session, whose outputs are the model's plus the attention.
      await engine.analyze(STORIES, TEXT);
      assert.deepEqual(session().session.outputNames, plainOutputs);
      for (const name of qkvManifest.qkv.flatMap((p: Record<string, unknown>) => [p.q, p.k, p.wo])) assert.ok(!plainOutputs.includes(name as string), `${name} is not a plain output`);
    } finally {
      await engine.dispose();
    }
  });
});

describe('qkv capture refuses what it cannot show exactly', () => {
  /** tiny-bert with `edit` applied to its graph, in a folder of its own. */
  function editedBert(edit: (g: onnx.IGraphProto) => void): string {
    const folder = tempDir();
    for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json']) fs.copyFileSync(path.join(TINY_BERT, f), path.join(folder, f));
    const model = onnx.ModelProto.decode(fs.readFileSync(path.join(TINY_BERT, 'onnx/model.onnx')));
    edit(model.graph!);
    fs.mkdirSync(path.join(folder, 'onnx'));
    fs.writeFileSync(path.join(folder, 'onnx/model.onnx'), onnx.ModelProto.encode(model).finish());
    return folder;
  }
  const engine = new AttentionEngine({ cacheDir: tempDir(), runtime: 'cpu', offline: true });
  after(() => engine.dispose());

  test('a per-head score bias (as ALiBi adds) is refused, and the plain attention still works', async () => {
    const folder = editedBert((g) => {
      // Layer 0's mask operand gets a per-head constant added: [1, 4, 1, 1].
      const add = g.node!.find((n) => n.name === '/encoder/layer.0/attention/self/Add')!;
      g.initializer!.push(floatTensor('head_bias', [1, 4, 1, 1], [0, -0.5, -1, -1.5]));
      g.node!.splice(g.node!.indexOf(add), 0, node({ op: 'Add', inputs: [add.input![1], 'head_bias'], outputs: ['biased_mask'], name: 'bias' }));
      add.input![1] = 'biased_mask';
    });
    assert.equal((await engine.analyze(folder, TEXT)).shape[0], 2);
    await assert.rejects(engine.analyze(folder, TEXT, { qkv: true }), (e: Error & { code?: string }) => e.code === 'ATTENTION_UNSUPPORTED' && /layer 0: .*position bias such as ALiBi/.test(e.message));
  });

  test('an op on the scores it does not understand (softcapping) is refused by name', async () => {
    const folder = editedBert((g) => {
      const add = g.node!.find((n) => n.name === '/encoder/layer.1/attention/self/Add')!;
      g.node!.splice(g.node!.indexOf(add), 0, node({ op: 'Tanh', inputs: [add.input![0]], outputs: ['capped'], name: 'softcap' }));
      add.input![0] = 'capped';
    });
    await assert.rejects(engine.analyze(folder, TEXT, { qkv: true }), (e: Error & { code?: string }) => e.code === 'ATTENTION_UNSUPPORTED' && /layer 1 .*Tanh node "softcap"/.test(e.message));
  });
});

describe('attention-lens --qkv', () => {
  for (const folder of [STORIES, STORIES_GQA, TINY_BERT]) {
    test(`writes q, k, v and value_norm .npy files for ${path.basename(folder)}`, async () => {
      const cacheDir = tempDir();
      const out = path.join(tempDir(), 'run');
      const code = await main(['--model', folder, '--text', TEXT, '--out', out, '--offline', '--qkv', '--cache-dir', cacheDir, '--runtime', 'cpu']);
      assert.equal(code, 0);
      const json = JSON.parse(fs.readFileSync(`${out}.json`, 'utf8'));
      const [L, H, T] = json.shape;
      const d = folder === STORIES_GQA ? 16 : 8;
      assert.equal(json.value_norm, 'output-projected');
      assert.deepEqual(json.qkv.shape, [L, H, T, d]);
      assert.equal(json.qkv.mask.length, L);
      const att = readNpy(`${out}.npy`).data;
      const q = readNpy(`${out}.q.npy`), k = readNpy(`${out}.k.npy`), v = readNpy(`${out}.v.npy`), vn = readNpy(`${out}.value_norm.npy`);
      for (const x of [q, k, v]) assert.deepEqual(x.shape, [L, H, T, d]);
      assert.deepEqual(vn.shape, [L, H, T, T]);

      // The same capture from the engine: the files hold it, and value_norm is its float64 recomputation.
      const engine = new AttentionEngine({ cacheDir, runtime: 'cpu', offline: true });
      try {
        const qkv = (await engine.analyze(folder, TEXT, { qkv: true })).qkv!;
        const size = H * T * d;
        for (let l = 0; l < L; l++) assert.deepEqual(q.data.subarray(l * size, (l + 1) * size), qkv.q[l]);
        let worst = 0;
        for (let l = 0; l < L; l++) {
          const cells = H * T * T;
          const expected = valueNorm64(att.subarray(l * cells, (l + 1) * cells), v.data.subarray(l * size, (l + 1) * size), qkv.outputProjection[l], H, T, d);
          for (let i = 0; i < cells; i++) worst = Math.max(worst, Math.abs(expected[i] - vn.data[l * cells + i]) / Math.max(1, expected[i]));
        }
        assert.ok(worst <= 1e-5, `value_norm max diff ${worst}`);
      } finally {
        await engine.dispose();
      }
    });
  }

  test('value-only norms where the graph has no recognisable output projection', async () => {
    // tiny-gpt2 with its first head merge Reshape feeding a Gemm-free detour (an Identity) before W_O.
    const folder = tempDir();
    for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json']) fs.copyFileSync(path.join(TINY_GPT2, f), path.join(folder, f));
    const model = onnx.ModelProto.decode(fs.readFileSync(path.join(TINY_GPT2, 'onnx/model.onnx')));
    const g = model.graph!;
    const proj = g.node!.find((n) => n.name === '/transformer/h.0/attn/c_proj/MatMul')!;
    g.node!.splice(g.node!.indexOf(proj), 0, node({ op: 'Identity', inputs: [proj.input![0]], outputs: ['detour'], name: 'detour' }));
    proj.input![0] = 'detour';
    fs.mkdirSync(path.join(folder, 'onnx'));
    fs.writeFileSync(path.join(folder, 'onnx/model.onnx'), onnx.ModelProto.encode(model).finish());
    const out = path.join(tempDir(), 'run');
    assert.equal(await main(['--model', folder, '--text', TEXT, '--out', out, '--offline', '--qkv', '--cache-dir', tempDir(), '--runtime', 'cpu']), 0);
    const json = JSON.parse(fs.readFileSync(`${out}.json`, 'utf8'));
    assert.equal(json.value_norm, 'value-only');
    const [L, H, T] = json.shape;
    const att = readNpy(`${out}.npy`).data, v = readNpy(`${out}.v.npy`).data, vn = readNpy(`${out}.value_norm.npy`).data;
    const cells = H * T * T, size = H * T * 8;
    let worst = 0;
    for (let l = 0; l < L; l++) {
      const expected = valueNorm64(att.subarray(l * cells, (l + 1) * cells), v.subarray(l * size, (l + 1) * size), null, H, T, 8);
      for (let i = 0; i < cells; i++) worst = Math.max(worst, Math.abs(expected[i] - vn[l * cells + i]));
    }
    assert.ok(worst <= 1e-6, `value_norm max diff ${worst}`);
  });

  test('--qkv without --out is a usage error', async () => {
    assert.equal(await main(['--model', STORIES, '--text', TEXT, '--html', path.join(tempDir(), 'r.html'), '--qkv']), 2);
  });
});
