// Encoder-decoder models: the real aren-transliteration Marian-layout model (merged decoder whose
// cross-attention sits inside an If) against attention computed independently in numpy from
// CTranslate2's weights, greedy decoding, teacher forcing, and the errors.
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { AttentionEngine } from '../../src/engine/engine';
import { exposeAttention } from '../../src/engine/onnx/exposeAttention';
import { hasCacheSwitch, inlineNoPastBranch } from '../../src/engine/onnx/inlineIf';
import { scanModel } from '../../src/engine/onnx/modelScan';
import { EngineError, type GeneratedToken } from '../../src/engine/types';
import { SHARED, STORIES, tempDirs } from './helpers/shared';

const AREN = path.join(SHARED, 'models/aren-transliteration');
const tempDir = tempDirs('attention-lens-seq2seq-');

interface Case {
  id: string;
  source_text: string;
  greedy_output_text: string;
  input_ids: number[];
  decoder_input_ids: number[];
  predicted_ids: number[];
  files: Record<'encoder_self_attention' | 'decoder_self_attention' | 'cross_attention', { file: string; shape: number[] }>;
}
const cases = (JSON.parse(fs.readFileSync(path.join(AREN, 'reference/cases.json'), 'utf8')) as { cases: Case[] }).cases;

function reference(file: string): Float32Array {
  const b = fs.readFileSync(path.join(AREN, 'reference', file));
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return worst;
}

/** A copy of the model folder (files linked), with `edit` applied. */
function copyOfAren(edit: (dir: string) => void): string {
  const dir = tempDir();
  for (const f of ['config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json']) fs.copyFileSync(path.join(AREN, f), path.join(dir, f));
  fs.mkdirSync(path.join(dir, 'onnx'));
  for (const f of ['encoder_model.onnx', 'decoder_model_merged.onnx']) fs.copyFileSync(path.join(AREN, 'onnx', f), path.join(dir, 'onnx', f));
  edit(dir);
  return dir;
}

const rejectsWith = (p: Promise<unknown>, code: string, message: RegExp) =>
  assert.rejects(p, (e: unknown) => e instanceof EngineError && e.code === code && message.test(e.message));

describe('the merged decoder becomes a no-cache decoder', () => {
  const merged = fs.readFileSync(path.join(AREN, 'onnx/decoder_model_merged.onnx'));

  test('the If on use_cache_branch is replaced by its no-past branch; the switch and the past inputs go', () => {
    assert.ok(hasCacheSwitch(merged));
    const inlined = inlineNoPastBranch(merged, 'aren decoder');
    assert.equal(hasCacheSwitch(inlined), false);
    const graph = scanModel(inlined).graph;
    assert.deepEqual(graph.inputs.map((i) => i.name), ['encoder_attention_mask', 'input_ids', 'encoder_hidden_states']);
    assert.ok(!graph.nodes.some((n) => n.opType === 'If'));
    assert.ok(graph.outputs.some((o) => o.name === 'logits'));
    // A model without a switch is returned as is.
    const encoder = fs.readFileSync(path.join(AREN, 'onnx/encoder_model.onnx'));
    assert.equal(inlineNoPastBranch(encoder, 'aren encoder'), encoder);
  });

  test('self- and cross-attention are told apart by where their values come from, inlined or through the If', () => {
    const expected = Array.from({ length: 6 }, () => ['self', 'cross']).flat();
    const inlined = exposeAttention(merged, 'aren decoder', { inlineNoPast: true });
    assert.deepEqual(inlined.attentionKinds, expected);
    assert.match(inlined.attentionOutputs[1], /layers\.0\/encoder_attn\/Softmax/);
    assert.deepEqual(exposeAttention(merged, 'aren decoder').attentionKinds, expected, 'the with-past branch reads cross keys from the cache; the no-past branch decides');
    assert.equal(exposeAttention(fs.readFileSync(path.join(AREN, 'onnx/encoder_model.onnx')), 'aren encoder').attentionKinds, undefined);
  });
});

describe('aren-transliteration (real trained encoder-decoder) against the numpy reference', () => {
  const engine = new AttentionEngine({ cacheDir: tempDir(), runtime: 'cpu', offline: true });
  after(() => engine.dispose());

  test('loads as an encoder-decoder', async () => {
    const info = await engine.load(AREN);
    assert.deepEqual(info.seq2seq, {
      encoder: { layers: 6, heads: 8, file: 'onnx/encoder_model.onnx' },
      decoder: { layers: 6, heads: 8, file: 'onnx/decoder_model_merged.onnx' },
      decoderStartTokenId: 1,
      eosTokenIds: [2],
      maxSourceLength: 512,
      maxTargetLength: 512,
    });
  });

  for (const c of cases) {
    test(`${c.id}: ${c.source_text} -> ${c.greedy_output_text}: greedy text, encoder, decoder and cross attention to 1e-4`, async () => {
      const streamed: GeneratedToken[] = [];
      const r = await engine.analyzeSeq2seq(AREN, c.source_text, { onToken: (t) => streamed.push(t) });
      assert.equal(r.targetText, c.greedy_output_text);
      assert.equal(r.forced, false);
      assert.equal(r.finished, true);
      assert.deepEqual(r.sourceTokens.map((t) => t.id), c.input_ids);
      // The decoder's input: <s> and the output, not the </s> that ended it (the reference's T).
      assert.deepEqual(r.targetTokens.map((t) => t.id), c.decoder_input_ids);
      assert.deepEqual(r.predicted, c.predicted_ids);
      assert.deepEqual(streamed.map((t) => t.id), c.predicted_ids, 'every token streamed, the end token last');
      assert.equal(streamed.at(-1)!.end, true);
      assert.equal(streamed.map((t) => t.piece).join(''), r.targetText);

      for (const [got, shape, kind] of [
        [r.encoder, r.encoderShape, 'encoder_self_attention'],
        [r.decoder, r.decoderShape, 'decoder_self_attention'],
        [r.cross, r.crossShape, 'cross_attention'],
      ] as const) {
        assert.deepEqual(shape, c.files[kind].shape, kind);
        const diff = maxDiff(got, reference(c.files[kind].file));
        assert.ok(diff < 1e-4, `${kind}: max abs diff ${diff}`);
      }

      // Every token's range gives back its text: source characters, target characters.
      for (const t of r.sourceTokens) assert.equal(c.source_text.slice(t.start, t.end), t.text);
      assert.deepEqual(r.targetTokens[0], { text: '<s>', id: 1, start: -1, end: -1, special: true });
      for (const t of r.targetTokens.slice(1)) {
        assert.equal(r.targetText.slice(t.start, t.end), t.text);
        assert.equal(t.generated, true);
      }
    });
  }

  test('سعيد -> said (greedy, no reference attention)', async () => {
    const r = await engine.analyzeSeq2seq(AREN, 'سعيد');
    assert.equal(r.targetText, 'said');
    assert.deepEqual(r.crossShape, [6, 8, 5, 4]);
  });

  test('a given target is teacher-forced: the greedy output gives the same attention; another target its own', async () => {
    const c = cases[0];
    const greedy = await engine.analyzeSeq2seq(AREN, c.source_text);
    const forced = await engine.analyzeSeq2seq(AREN, c.source_text, { target: c.greedy_output_text });
    assert.equal(forced.forced, true);
    assert.equal(forced.finished, true);
    assert.deepEqual(forced.targetTokens.map((t) => t.id), c.decoder_input_ids);
    assert.ok(!forced.targetTokens.some((t) => t.generated));
    assert.ok(maxDiff(forced.cross, greedy.cross) < 1e-6);
    assert.ok(maxDiff(forced.decoder, greedy.decoder) < 1e-6);

    const other = await engine.analyzeSeq2seq(AREN, c.source_text, { target: 'atsmoon' });
    assert.equal(other.targetText, 'atsmoon');
    assert.deepEqual(other.crossShape, [6, 8, 8, 6]);
    for (const t of other.targetTokens.slice(1)) assert.equal(other.targetText.slice(t.start, t.end), t.text);
    const [L, H, T, S] = other.crossShape;
    for (let row = 0; row < L * H * T; row++) {
      let sum = 0;
      for (let k = 0; k < S; k++) sum += other.cross[row * S + k];
      assert.ok(Math.abs(sum - 1) < 1e-5, `cross row ${row} sums to ${sum}`);
    }
  });

  test('reaching the maximum of new tokens is no error: finished false and a notice', async () => {
    const r = await engine.analyzeSeq2seq(AREN, 'محمد', { maxNewTokens: 3 });
    assert.equal(r.finished, false);
    assert.equal(r.targetText, 'mah');
    assert.deepEqual(r.decoderShape, [6, 8, 4, 4]);
    assert.ok(r.notices.some((n) => /3 new tokens without an end token/.test(n)), r.notices.join('\n'));
  });

  test('cancelling through the signal stops generation', async () => {
    const controller = new AbortController();
    await rejectsWith(engine.analyzeSeq2seq(AREN, 'كونستانتين', { signal: controller.signal, onToken: () => controller.abort() }), 'CANCELLED', /cancelled/);
  });

  test('a source longer than the encoder takes is refused, saying the limit', async () => {
    await rejectsWith(engine.analyzeSeq2seq(AREN, 'م'.repeat(513)), 'INPUT_TOO_LONG', /513 tokens.*at most 512/);
    await rejectsWith(engine.analyzeSeq2seq(AREN, '  '), 'EMPTY_INPUT', /empty/);
  });

  test('analyze and generate send an encoder-decoder to analyzeSeq2seq; analyzeSeq2seq refuses a decoder-only model', async () => {
    await rejectsWith(engine.analyze(AREN, 'محمد'), 'ATTENTION_UNSUPPORTED', /encoder-decoder.*analyzeSeq2seq/);
    await rejectsWith(engine.generate(AREN, 'محمد'), 'ATTENTION_UNSUPPORTED', /analyzeSeq2seq/);
    const other = new AttentionEngine({ cacheDir: tempDir(), runtime: 'cpu', offline: true });
    await rejectsWith(other.analyzeSeq2seq(STORIES, 'Once'), 'ATTENTION_UNSUPPORTED', /not an encoder-decoder/);
    await other.dispose();
  });
});

describe('encoder-decoder folders', () => {
  test('decoder_model.onnx and dtype suffixes (q8: *_quantized.onnx) are found', async () => {
    const dir = copyOfAren((d) => {
      fs.renameSync(path.join(d, 'onnx/encoder_model.onnx'), path.join(d, 'onnx/encoder_model_quantized.onnx'));
      fs.renameSync(path.join(d, 'onnx/decoder_model_merged.onnx'), path.join(d, 'onnx/decoder_model_quantized.onnx'));
    });
    const engine = new AttentionEngine({ cacheDir: tempDir(), runtime: 'cpu', dtype: 'q8' });
    try {
      const info = await engine.load(dir);
      assert.equal(info.seq2seq?.encoder.file, 'onnx/encoder_model_quantized.onnx');
      assert.equal(info.seq2seq?.decoder.file, 'onnx/decoder_model_quantized.onnx');
      assert.equal((await engine.analyzeSeq2seq(dir, 'آتزمون')).targetText, 'atzmon');
    } finally {
      await engine.dispose();
    }
  });

  test('a missing decoder or encoder file is named', async () => {
    const noDecoder = copyOfAren((d) => fs.rmSync(path.join(d, 'onnx/decoder_model_merged.onnx')));
    const noEncoder = copyOfAren((d) => fs.rmSync(path.join(d, 'onnx/encoder_model.onnx')));
    const engine = new AttentionEngine({ cacheDir: tempDir(), runtime: 'cpu' });
    await rejectsWith(engine.load(noDecoder), 'MODEL_NOT_FOUND', /encoder onnx\/encoder_model\.onnx but no decoder: onnx\/decoder_model_merged\.onnx or onnx\/decoder_model\.onnx is missing/);
    await rejectsWith(engine.load(noEncoder), 'MODEL_NOT_FOUND', /not the encoder onnx\/encoder_model\.onnx/);
  });

  test('a model without a decoder start token says so', async () => {
    const dir = copyOfAren((d) => {
      for (const f of ['config.json', 'generation_config.json']) {
        const json = JSON.parse(fs.readFileSync(path.join(d, f), 'utf8'));
        delete json.decoder_start_token_id;
        fs.writeFileSync(path.join(d, f), JSON.stringify(json));
      }
    });
    const engine = new AttentionEngine({ cacheDir: tempDir(), runtime: 'cpu' });
    try {
      assert.equal((await engine.load(dir)).seq2seq?.decoderStartTokenId, null);
      await rejectsWith(engine.analyzeSeq2seq(dir, 'محمد'), 'MODEL_CORRUPT', /no decoder start token \(decoder_start_token_id/);
    } finally {
      await engine.dispose();
    }
  });

  test('from a hub: the decoder, then the encoder and generation_config.json are downloaded; offline it loads from the cache', async () => {
    const requests: string[] = [];
    const server = http.createServer((req, res) => {
      requests.push(req.url ?? '');
      const m = /^\/test\/aren\/resolve\/main\/(.+)$/.exec(req.url ?? '');
      const file = m && path.join(AREN, m[1]);
      if (!file || !fs.existsSync(file)) res.writeHead(404).end('Entry not found');
      else res.writeHead(200).end(fs.readFileSync(file));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const cacheDir = tempDir();
    try {
      const online = new AttentionEngine({ cacheDir, runtime: 'cpu', remoteHost: `http://127.0.0.1:${(server.address() as AddressInfo).port}/` });
      assert.equal((await online.analyzeSeq2seq('test/aren', 'محمد')).targetText, 'mahmad');
      await online.dispose();
      const fetched = requests.map((u) => u.replace('/test/aren/resolve/main/', ''));
      for (const f of ['generation_config.json', 'onnx/decoder_model_merged.onnx', 'onnx/encoder_model.onnx']) assert.ok(fetched.includes(f), fetched.join(', '));
    } finally {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    }
    const offline = new AttentionEngine({ cacheDir, runtime: 'cpu', offline: true });
    assert.equal((await offline.analyzeSeq2seq('test/aren', 'آتزمون')).targetText, 'atzmon');
    await offline.dispose();
  });
});

describe('an encoder-decoder run through the worker, as the extension runs it', () => {
  const WORKER = path.resolve(__dirname, '../../out/worker.js');

  test('start (target tokens, the source, shapes), the decoder, encoder and cross layers as parts; the run model holds all three', async () => {
    const { EngineClient } = await import('../../src/engine/client');
    const { Run } = await import('../../src/run/run');
    const { runStartMessage } = await import('../../src/run/messages');
    const { parseHostMessage } = await import('../../src/protocol/validate');
    assert.ok(fs.existsSync(WORKER), 'run `npm run build` first');
    const client = new EngineClient(WORKER, { cacheDir: tempDir(), runtime: 'cpu', offline: true });
    try {
      const payloads: import('../../src/protocol/attention').AttentionPayload[] = [];
      const handle = client.analyze({ model: AREN, text: 'آتزمون', encoding: 'f16' }, { onPayload: (p) => payloads.push(p) });
      const { start } = await handle.done;
      assert.equal(start.seq2seq?.targetText, 'atzmon');
      assert.deepEqual(start.shape, [6, 8, 7, 7]);
      assert.deepEqual(start.seq2seq?.crossShape, [6, 8, 7, 6]);
      const parts = (part?: string) => payloads.filter((p) => p.kind === 'layer' && p.part === part).length;
      assert.deepEqual([parts(undefined), parts('encoder'), parts('cross')], [6, 6, 6]);
      // As the host and the panel build it: the start validates, and every payload lands in its part.
      const message = runStartMessage(start, { runId: 1, text: 'آتزمون', offset: 6, label: 'names.txt:1' });
      const parsed = parseHostMessage(message);
      assert.ok(parsed && parsed.type === 'run/start' && parsed.seq2seq);
      const run = new Run(parsed);
      for (const p of payloads) run.add(p);
      assert.ok(run.complete);
      assert.deepEqual(run.encoder!.tokens.map((t) => [t.start, t.end]), [[6, 7], [7, 8], [8, 9], [9, 10], [10, 11], [11, 12]]);
      // The cross row of "z" (target 3) at the last layer, mean of heads: the source letters it attends to, ز first.
      const words = run.crossTokens(3, 3, { layer: 5, agg: 'mean', hideSpecial: false })!;
      assert.equal(words[0].text, 'ز');
      const targets = run.crossTargets(2, 7, { layer: 5, agg: 'mean', hideSpecial: false })!;
      assert.ok(targets.some((t) => t.index === 3), 'ز is attended by "z"');
      // Continue is for decoder-only models.
      await assert.rejects(client.analyze({ model: AREN, text: 'آتزمون', generate: 4 }).done, (e: EngineError) => e.code === 'ATTENTION_UNSUPPORTED' && /Continue is for decoder-only/.test(e.message));
    } finally {
      await client.dispose();
    }
  });
});
