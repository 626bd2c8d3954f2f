// Decoder-only "Continue" (engine.generate) on the real stories260K: greedy tokens, streamed, and the
// attention of prompt plus output as one forward pass gives it.
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { AttentionEngine } from '../../src/engine/engine';
import { Detokenizer, generationSettings } from '../../src/engine/generate';
import type { PreTrainedTokenizer } from '../../src/engine/transformersjs';
import { EngineError, type GeneratedToken } from '../../src/engine/types';
import { STORIES, STORIES_GQA, tempDirs } from './helpers/shared';

const tempDir = tempDirs('attention-lens-generate-');
const prompt = 'Once upon a time';

/** Greedy choices from the untouched model.onnx: argmax of each position's logits, in one pass over `ids`. */
async function argmaxOfOnePass(ids: number[]): Promise<number[]> {
  const session = await ort.InferenceSession.create(path.join(STORIES, 'onnx/model.onnx'), { logSeverityLevel: 3 });
  const T = ids.length;
  const int64 = (v: number[]) => new ort.Tensor('int64', BigInt64Array.from(v, (x) => BigInt(x)), [1, T]);
  const feeds: Record<string, ort.Tensor> = {
    input_ids: int64(ids),
    attention_mask: int64(ids.map(() => 1)),
    position_ids: int64(ids.map((_, i) => i)),
  };
  for (const name of session.inputNames) if (name.startsWith('past_key_values')) feeds[name] = new ort.Tensor('float32', new Float32Array(0), [1, 4, 0, 8]);
  const logits = (await session.run(feeds, ['logits'])).logits;
  const V = logits.dims[2];
  const data = logits.data as Float32Array;
  await session.release();
  return Array.from({ length: T }, (_, t) => {
    let best = 0;
    for (let v = 1; v < V; v++) if (data[t * V + v] > data[t * V + best]) best = v;
    return best;
  });
}

describe('generate: Continue on stories260K', () => {
  const engine = new AttentionEngine({ cacheDir: tempDir(), runtime: 'cpu', offline: true });
  after(() => engine.dispose());

  test('writes the greedy story, streaming each token; the attention is one forward pass over prompt + output', async () => {
    const streamed: GeneratedToken[] = [];
    const r = await engine.generate(STORIES, prompt, { maxNewTokens: 20, onToken: (t) => streamed.push(t) });
    assert.ok(r.generation!.text.startsWith(', there was a little girl named Lily. She loved to play'), r.generation!.text);
    assert.deepEqual({ tokens: r.generation!.tokens, finished: r.generation!.finished }, { tokens: 20, finished: false });
    assert.equal(streamed.length, 20);
    assert.deepEqual(streamed.map((t) => t.index), [...Array(20).keys()]);
    assert.equal(streamed.map((t) => t.piece).join(''), r.generation!.text);

    const prompted = r.tokens.filter((t) => !t.generated);
    const written = r.tokens.filter((t) => t.generated);
    assert.deepEqual(written.map((t) => t.id), streamed.map((t) => t.id));
    assert.deepEqual(r.tokens.slice(-20), written, 'generated tokens come last');
    for (const t of written) assert.deepEqual([t.start, t.end, t.special], [-1, -1, true]);
    assert.equal(prompt.slice(prompted[1].start, prompted[1].end), 'Once');

    const ids = r.tokens.map((t) => t.id);
    const T = ids.length;
    assert.deepEqual(r.shape, [5, 8, T, T]);
    // The same as one forward pass over the ids...
    const [layers] = await engine.forward({ input_ids: [ids] });
    const attention = r.attention as Float32Array;
    let worst = 0;
    layers.forEach((l, li) => {
      for (let i = 0; i < l.length; i++) worst = Math.max(worst, Math.abs(l[i] - attention[li * 8 * T * T + i]));
    });
    assert.ok(worst < 1e-5, `vs forward: ${worst}`);
    // ...whose prompt rows are the prompt's own attention (causal).
    const alone = await engine.analyze(STORIES, prompt);
    const P = alone.tokens.length;
    assert.equal(P, prompted.length);
    let worstPrompt = 0;
    for (let lh = 0; lh < 5 * 8; lh++)
      for (let q = 0; q < P; q++)
        for (let k = 0; k < P; k++) worstPrompt = Math.max(worstPrompt, Math.abs((alone.attention as Float32Array)[(lh * P + q) * P + k] - attention[(lh * T + q) * T + k]));
    assert.ok(worstPrompt < 1e-5, `prompt rows: ${worstPrompt}`);

    // Each written token is the argmax of the position before it, in one pass of the untouched model.
    const greedy = await argmaxOfOnePass(ids);
    assert.deepEqual(written.map((t) => t.id), greedy.slice(P - 1, T - 1));
  });

  test('the fused GroupQueryAttention layout writes the same story', async () => {
    const gqa = new AttentionEngine({ cacheDir: tempDir(), runtime: 'cpu', offline: true });
    try {
      const a = await engine.generate(STORIES, prompt, { maxNewTokens: 12 });
      const b = await gqa.generate(STORIES_GQA, prompt, { maxNewTokens: 12 });
      assert.equal(b.generation!.text, a.generation!.text);
      assert.deepEqual(b.shape, a.shape);
    } finally {
      await gqa.dispose();
    }
  });

  test('an end token stops generation and is left out; the model maximum caps the new tokens, with a notice', async () => {
    // stories260K writes no </s> for hundreds of tokens: declare its third greedy token an end token.
    const first = await engine.generate(STORIES, prompt, { maxNewTokens: 3 });
    const third = first.tokens.at(-1)!.id;
    const model = (engine as unknown as { model: { generation: { eosTokenIds: number[] } } }).model;
    const declared = model.generation.eosTokenIds;
    model.generation.eosTokenIds = [third];
    try {
      const streamed: GeneratedToken[] = [];
      const r = await engine.generate(STORIES, prompt, { maxNewTokens: 10, onToken: (t) => streamed.push(t) });
      assert.equal(first.generation!.text, ', there was');
      assert.deepEqual(r.generation, { text: ', there', tokens: 2, finished: true });
      assert.deepEqual(streamed.map((t) => [t.id, t.end]), [...first.tokens.slice(-3, -1).map((t) => [t.id, false]), [third, true]]);
      assert.deepEqual(r.tokens.map((t) => t.id), first.tokens.slice(0, -1).map((t) => t.id));
    } finally {
      model.generation.eosTokenIds = declared;
    }

    const long = Array.from({ length: 60 }, () => 'Once upon a time, there was a girl.').join(' ');
    const capped = await engine.generate(STORIES, long, { maxNewTokens: 20, maxTokens: 505 });
    assert.equal(capped.tokens.length, 512);
    assert.ok(capped.notices.some((n) => /Only 7 new tokens fit/.test(n)), capped.notices.join('\n'));
  });

  test('cancelling through the signal stops generation', async () => {
    const controller = new AbortController();
    await assert.rejects(
      engine.generate(STORIES, prompt, { maxNewTokens: 50, signal: controller.signal, onToken: (t) => t.index === 2 && controller.abort() }),
      (e: unknown) => e instanceof EngineError && e.code === 'CANCELLED',
    );
  });
});

describe('generation helpers', () => {
  test('generation_config wins over config; single-token bad words are banned; max_length counts the start', () => {
    const s = generationSettings(
      { decoder_start_token_id: 5, eos_token_id: 2, forced_bos_token_id: null },
      { decoder_start_token_id: 7, eos_token_id: [2, 3], bad_words_ids: [[9], [1, 2]], max_length: 64 },
    );
    assert.deepEqual({ ...s, banned: [...s.banned] }, { decoderStartTokenId: 7, eosTokenIds: [2, 3], banned: [9], forcedBosTokenId: null, maxNewTokens: 63 });
  });

  test('Detokenizer: pieces concatenate to the text, byte tokens of one character share its range', async () => {
    const engine = new AttentionEngine({ cacheDir: tempDir(), runtime: 'cpu', offline: true });
    await engine.load(STORIES);
    const tokenizer = (engine as unknown as { model: { tokenizer: PreTrainedTokenizer } }).model.tokenizer;
    const context = tokenizer.encode('Hello');
    const ids = tokenizer.encode('猫 é', { add_special_tokens: false });
    const d = new Detokenizer(tokenizer, context);
    const pieces = ids.map((id) => d.push(id));
    assert.equal(pieces.join(''), d.text);
    assert.equal(d.text, ' 猫 é');
    const spans = d.tokenSpans(ids, true);
    // 猫 is three byte tokens: the first two add nothing, the third the character; all three cover it.
    assert.deepEqual(pieces.slice(1, 4), ['', '', '猫']);
    assert.deepEqual(spans.slice(1, 4).map((s) => [s.text, s.start, s.end]), [['<0xE7>', 1, 2], ['<0x8C>', 1, 2], ['<0xAB>', 1, 2]]);
    await engine.dispose();
  });
});

test('written tokens on the wire: not special (never hidden with special tokens), no range, shown by their cleaned spelling', async () => {
  const { runStartMessage } = await import('../../src/run/messages');
  const { parseHostMessage } = await import('../../src/protocol/validate');
  const { keepMask } = await import('../../src/analysis/tensor');
  const { groupWords } = await import('../../src/analysis/words');
  const engine = new AttentionEngine({ cacheDir: tempDir(), runtime: 'cpu', offline: true });
  try {
    const r = await engine.generate(STORIES, prompt, { maxNewTokens: 4, encoding: 'f16' });
    const start = runStartMessage(r, { runId: 1, text: prompt, offset: 10, label: 'x' });
    const parsed = parseHostMessage(start);
    assert.ok(parsed && parsed.type === 'run/start');
    const tokens = parsed.tokens;
    const written = tokens.filter((t) => t.generated);
    assert.equal(written.length, 4);
    assert.ok(written.every((t) => !t.special && t.start === -1 && t.end === -1));
    assert.deepEqual([...keepMask(tokens, true)].slice(-4), [1, 1, 1, 1], 'hiding special tokens keeps what the model wrote');
    const words = groupWords(tokens, parsed.sourceText);
    const last = words.words[words.tokenToWord[tokens.length - 1]];
    assert.equal(last.text, written.at(-1)!.text.replace(/^▁/, '').trim() || last.text, 'the word of a written token is its spelling without the ▁ marker');
    assert.ok(!/▁/.test(last.text));
  } finally {
    await engine.dispose();
  }
});
